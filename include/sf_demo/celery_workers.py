"""The demo's Celery workers on one machine: which worker serves which queues with which secrets.

Credentials per partner (docs/ARCHITECTURE.md): a partner's connections (its SFTP login and pseudonym
keys) are only in the worker-side secrets backend of the worker serving that partner's queue
(``partner_queue``). One worker per partner is the default, as docker-compose.yml runs them; the scale
benchmark (benchmarks/bench_scale.py) runs fewer, each serving several partners' queues, with a
connections file holding just those partners' connections. The ``central`` worker serves the default
queue (ingest, identification, statistics, rights requests): it has no worker-side backend, so it asks the
API server, whose backend holds no partner secret.

The workers share one host, so each reports its own name through ``[core] hostname_callable``
(:func:`hostname`, from ``$SF_WORKER_HOSTNAME``): the task instances then say which worker ran them.

``python -m sf_demo.celery_workers plan --secrets-dir DIR [--workers N]`` prints one tab-separated line
per worker: name, queues (comma-separated), hostname, connections file (``-`` for none). Paths and names
only; no secret is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sf_demo.secrets import DemoSpec, SecretsLayout, write_secret_file
from supporting_families.config import partner_queue

HOSTNAME_ENV = "SF_WORKER_HOSTNAME"
#: Airflow's ``[operators] default_queue``: every task without a partner's queue.
DEFAULT_QUEUE = "default"


def hostname() -> str:
    """This worker's name for the task instances it runs (``[core] hostname_callable``)."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


@dataclass(frozen=True)
class WorkerPlan:
    name: str
    queues: tuple[str, ...]
    hostname: str
    #: Its worker-side secrets backend's file; None for the central worker (it asks the API server).
    connections_file: Path | None
    partners: tuple[str, ...]


def plan_workers(spec: DemoSpec, layout: SecretsLayout, workers: int | None = None) -> list[WorkerPlan]:
    """The central worker, then the partners' queues spread over ``workers`` workers (None: one each).

    A worker serving several partners gets a file of its own with just their connections, written from
    the partners' own files (mode 0600), so no worker holds a partner it does not serve.
    """
    partners = list(spec.partners())
    count = len(partners) if workers is None else workers
    if count < 1 or count > len(partners):
        raise ValueError(f"workers must be between 1 and {len(partners)} (one per partner), not {count}")
    groups: list[list[str]] = [[] for _ in range(count)]
    for i, code in enumerate(partners):
        groups[i % count].append(code)
    plans = [WorkerPlan("central", (DEFAULT_QUEUE,), "sf-worker-central", None, ())]
    for i, codes in enumerate(groups):
        if len(codes) == 1:
            name, conn_file = codes[0], layout.partner_connections_file(codes[0])
        else:
            name = f"group-{i + 1}"
            merged: dict[str, object] = {}
            for code in codes:
                merged.update(json.loads(layout.partner_connections_file(code).read_text()))
            conn_file = layout.state_dir / "workers" / name / "connections.json"
            write_secret_file(conn_file, json.dumps(merged, indent=2, sort_keys=True).encode())
        plans.append(
            WorkerPlan(
                name=name,
                queues=tuple(partner_queue(c) for c in codes),
                hostname=f"sf-worker-{name}",
                connections_file=conn_file,
                partners=tuple(codes),
            )
        )
    return plans


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sf_demo.celery_workers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="one line per worker: name, queues, hostname, connections file")
    plan.add_argument("--secrets-dir", type=Path, required=True)
    plan.add_argument("--workers", type=int, default=None, help="partner workers (default: one per partner)")
    args = parser.parse_args(argv)
    try:
        plans = plan_workers(DemoSpec.load(), SecretsLayout(args.secrets_dir), args.workers)
    except ValueError as exc:
        sys.stderr.write(f"celery_workers: {exc}\n")
        return 2
    for p in plans:
        conn = str(p.connections_file) if p.connections_file else "-"
        sys.stdout.write(f"{p.name}\t{','.join(p.queues)}\t{p.hostname}\t{conn}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
