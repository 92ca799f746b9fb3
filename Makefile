# One entry point. `make demo` sets up a fresh Debian 12 machine and runs the exchange cycle;
# `make test` runs the whole test suite (installing and starting what it needs).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ENV := source scripts/env.sh &&

.PHONY: runs ledger-verify ledger-show help demo setup install services-start services-stop sftp-start sftp-stop cycle test test-unit check fmt lint types lock import-errors bench bench-peers lock-peers stop clean

# EXECUTOR=celery (demo, setup, services-start, cycle): CeleryExecutor with a worker per partner queue
# (scripts/airflow-services.sh); the default is LocalExecutor. WORKERS=n spreads the partners over n workers.
EXECUTOR_ENV = $(if $(EXECUTOR),SF_EXECUTOR=$(EXECUTOR)) $(if $(WORKERS),SF_WORKERS=$(WORKERS))

demo:  ## set up everything and run the exchange cycle (idempotent; EXECUTOR=celery for Celery workers)
	$(EXECUTOR_ENV) bash scripts/setup.sh --run

setup:  ## set up everything, start the services, run nothing
	$(EXECUTOR_ENV) bash scripts/setup.sh

install:  ## the virtual environment with the pinned requirements
	bash scripts/setup.sh --install-only

cycle:  ## run the exchange cycle (SEED=n for a new borough; EXECUTOR=celery restarts the services on Celery)
	$(if $(EXECUTOR),$(EXECUTOR_ENV) bash scripts/airflow-services.sh start &&) $(ENV) $(PY) scripts/run_cycle.py $(if $(SEED),--seed $(SEED))

runs:  ## the latest runs of every DAG
	bash scripts/runs.sh

ledger-verify:  ## walk the audit ledger's hash chain against its anchors (exit 1 on an edited, deleted, reordered or dropped entry)
	$(ENV) $(PY) -m supporting_families.audit verify

ledger-show:  ## the newest ledger entries as JSON lines (no personal data in them)
	$(ENV) $(PY) -m supporting_families.audit show --newest-first --limit 20

services-start:
	$(EXECUTOR_ENV) bash scripts/airflow-services.sh start
services-stop:
	bash scripts/airflow-services.sh stop
sftp-start:
	$(ENV) $(PY) -m sf_demo.sftp_server start --state-dir $$SF_VAR/sftp --root $$SF_VAR/sftp/root
sftp-stop:
	$(ENV) $(PY) -m sf_demo.sftp_server stop --state-dir $$SF_VAR/sftp --root $$SF_VAR/sftp/root

stop: services-stop sftp-stop  ## stop Airflow and the local SFTP server

test:  ## the README's test command: installs what the tests need, then runs them all
	bash scripts/test.sh

test-unit:
	$(PY) -m pytest -q tests/unit

check: lint types  ## format check, lint, mypy --strict (core, demo kit, plugins/, dags/); CI runs it (.ci/run)

fmt: $(VENV)/bin/ruff
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

lint: $(VENV)/bin/ruff
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

types: $(VENV)/bin/mypy  ## mypy --strict over the files pyproject.toml lists
	$(VENV)/bin/mypy

$(VENV)/bin/ruff $(VENV)/bin/mypy:
	@echo "$@ is missing: run 'make install' (bash scripts/setup.sh --install-only) first" >&2; exit 1

import-errors:
	$(ENV) airflow dags list-import-errors --local

lock:  ## re-pin requirements.txt (production) from requirements.in, then requirements-dev.txt (adds the test tools)
	$(VENV)/bin/uv pip compile -q requirements.in -o requirements.txt -p 3.11
	$(VENV)/bin/uv pip compile -q requirements-dev.in -o requirements-dev.txt -p 3.11

BENCH_OUT := var/bench
BENCH = set -o pipefail; $(PY) benchmarks/$(1) | tee $(BENCH_OUT)/$(firstword $(subst ., ,$(1))).txt

bench: bench-peers  ## benchmarks print figures and peers' ratios, assert nothing (1,000,000 persons; several minutes); then the README's table is rewritten from them
	mkdir -p $(BENCH_OUT) && rm -f $(BENCH_OUT)/*.txt && uptime >$(BENCH_OUT)/uptime-before.txt
	$(call BENCH,bench_synthetic.py --persons 1000000 --out file:///tmp/sf-bench-synthetic)
	$(call BENCH,bench_identification.py --persons 1000000)
	$(call BENCH,bench_linkage.py --persons 1000000)
	$(call BENCH,bench_share.py --persons 1000000 --repeat 3)
	$(call BENCH,bench_reconcile.py --repeat 3)
	$(call BENCH,bench_find_work.py --days 3)
	$(call BENCH,bench_sftp.py --mib 256)
	$(call BENCH,bench_openpgp.py)
	$(call BENCH,bench_rights.py)
	$(call BENCH,bench_retention.py)
	$(call BENCH,bench_console.py --entries 1000000)
	$(call BENCH,bench_statistics.py --persons 1000000)
	uptime >$(BENCH_OUT)/uptime-after.txt
	$(PY) benchmarks/readme_table.py $(BENCH_OUT) README.md

bench-peers:  ## the peers' separate pinned venv (benchmarks/peers/.venv) that bench_reconcile compares against
	UV=$(abspath $(VENV))/bin/uv bash benchmarks/peers/setup.sh

lock-peers:  ## re-pin benchmarks/peers/requirements.txt from its requirements.in
	$(VENV)/bin/uv pip compile -q benchmarks/peers/requirements.in -o benchmarks/peers/requirements.txt -p 3.11

clean: stop
	rm -rf var

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
