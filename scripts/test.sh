#!/usr/bin/env bash
# The test command: installs what the tests need (system packages, the pinned virtual environment),
# then runs the whole suite. The tests start their own sshd, GnuPG keyrings and S3 server on 127.0.0.1;
# PostgreSQL and Redis are expected on 127.0.0.1 as on these machines (started here if stopped).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --install-only
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
mkdir -p var
# A migrated metadata DB for the DAG tests (SQLite, inside var/test-airflow-home).
export AIRFLOW_HOME="$PWD/var/test-airflow-home" AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$PWD/plugins"
.venv/bin/airflow db migrate >var/test-db-migrate.log 2>&1 || { tail -20 var/test-db-migrate.log; exit 1; }
exec .venv/bin/python -m pytest "$@"
