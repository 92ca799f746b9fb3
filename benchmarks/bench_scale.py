"""The exchange cycle on CeleryExecutor with many partners: one partner worker against several.

    .venv/bin/python benchmarks/bench_scale.py [--agreements 12] [--workers 1,3] [--persons 2000]

Sets up a second deployment beside the demo, in a temporary folder (its own SF_VAR, metadata database
``sf_bench_scale``, API port, sshd, secrets and Redis key prefix), with ``--agreements`` synthetic
agreements, each with a partner of its own (a receipt-only agreement like ONS's, so the partner simulator
can answer for any of them). Then, for each worker count, ``scripts/airflow-services.sh`` starts Airflow on
CeleryExecutor with the partners' queues spread over that many workers (SF_WORKERS; the central worker
for the default queue comes on top) and ``scripts/run_cycle.py`` runs the whole cycle on a new borough
(generate, ingest, identify, a share and a receive per agreement, the agencies' returns, identify again,
anchor). It prints each cycle's wall time, the task instances it ran and tasks per second, and the ratio
against the first worker count, measured in the same run. Asserts nothing; the deployment is removed
afterwards (``--keep`` keeps its folder under var/).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "include" / "agreements" / "ons-evaluation.yaml"
DB = "sf_bench_scale"
#: Settings of the demo's environment that must not leak into the benchmark's deployment.
OWN = ("AIRFLOW", "SF_")
TASK_LINE = re.compile(r"^\s+(\S+)\s+(\S+)\s+(\d+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_agreements(folder: Path, count: int) -> list[str]:
    """``count`` receipt-only agreements, each with its own partner, SFTP login, key and fingerprint."""
    template = yaml.safe_load(TEMPLATE.read_text())
    folder.mkdir(parents=True)
    ids = []
    for n in range(1, count + 1):
        code = f"scale-{n:02d}"
        snake = code.replace("-", "_")
        doc = {**template, "id": f"{code}-evaluation", "title": f"Scale benchmark partner {n:02d}"}
        doc["partner"] = {**template["partner"], "name": f"Scale benchmark partner {n:02d}", "code": code}
        doc["pseudonymisation"] = {**template["pseudonymisation"], "key_conn_id": f"sf_pseudonym_{snake}"}
        doc["sftp"] = {
            "conn_id": f"sf_sftp_{snake}",
            "remote_inbox": f"{code}/inbox",
            "remote_outbox": f"{code}/outbox",
        }
        doc["openpgp"] = {"partner_fingerprint": f"${{SF_{snake.upper()}_PGP_FINGERPRINT}}"}
        (folder / f"{doc['id']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        ids.append(doc["id"])
    return ids


def run(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> tuple[int, str]:
    with log.open("w") as out:
        done = subprocess.run(
            cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    return done.returncode, log.read_text(errors="replace")


def tasks_ran(output: str) -> int:
    """The task instances run_cycle.py counted (its "Task instances by queue and worker" lines)."""
    if "Task instances by queue and worker:" not in output:
        return 0
    part = output.split("Task instances by queue and worker:", 1)[1].split("\n\n", 1)[0]
    return sum(int(m.group(3)) for line in part.splitlines() if (m := TASK_LINE.match(line)))


def settle(env: dict[str, str], timeout: float = 900) -> float:
    """Wait until no run is queued or running but the agencies' waiting collect sensors (the scheduled
    runs Airflow makes when the DAGs are first unpaused); the seconds it took."""
    url = (Path(env["SF_VAR"]) / "secrets" / "airflow-db-url").read_text().replace("+psycopg2", "")
    sql = "SELECT count(*) FROM dag_run WHERE state IN ('queued', 'running') AND dag_id NOT LIKE 'collect_%'"
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        busy = subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, check=False)
        if busy.returncode == 0 and busy.stdout.strip() == "0":
            return time.monotonic() - began
        time.sleep(5)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agreements", type=int, default=12)
    parser.add_argument("--workers", default="1,3", help="partner worker counts to compare, comma-separated")
    parser.add_argument("--persons", type=int, default=2000, help="each cycle's synthetic borough")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for each cycle")
    parser.add_argument("--keep", action="store_true", help="keep the deployment's folder")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]

    # Under the repository's var/, not /tmp: sshd jails each partner only under root-owned folders that
    # no one else can write (include/sf_demo/sftp_server.py).
    (REPO / "var").mkdir(mode=0o700, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=REPO / "var"))
    base.chmod(0o700)
    var = base / "var"
    ids = write_agreements(base / "agreements", args.agreements)
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN)}
    env.update(
        SF_VAR=str(var),
        SF_AGREEMENTS_DIR=str(base / "agreements"),
        SF_AIRFLOW_PORT=str(free_port()),
        SF_SMTP_SINK_PORT=str(free_port()),
        SF_AIRFLOW_DB=DB,
        SF_EXECUTOR="celery",
        SF_WORKERS=str(counts[0]),
        SF_CELERY_KEY_PREFIX=f"sf-bench-scale-{os.getpid()}-",
    )
    print(f"bench_scale: {len(ids)} agreements, {args.persons:,} persons a cycle, deployment in {base}")
    results: list[tuple[int, float, int]] = []
    code = 0
    try:
        began = time.monotonic()
        rc, out = run(["bash", "scripts/setup.sh"], env, base / "setup.log", 1800)
        if rc != 0:
            print(out[-3000:], file=sys.stderr)
            return 1
        print(f"  set-up: {time.monotonic() - began:.0f} s; settling the runs made at unpause ...")
        print(f"  settled in {settle(env):.0f} s")
        for i, workers in enumerate(counts):
            env["SF_WORKERS"] = str(workers)
            rc, out = run(
                ["bash", "scripts/airflow-services.sh", "start"], env, base / f"start-{workers}.log", 600
            )
            if rc != 0:
                print(out[-3000:], file=sys.stderr)
                return 1
            settle(env)
            began = time.monotonic()
            rc, out = run(
                [
                    sys.executable,
                    "scripts/run_cycle.py",
                    "--persons",
                    str(args.persons),
                    "--seed",
                    str(101 + i),
                ],
                env,
                base / f"cycle-{workers}.log",
                args.timeout,
            )
            wall = time.monotonic() - began
            tasks = tasks_ran(out)
            state = "ok" if rc == 0 else f"exit {rc} (see {base / f'cycle-{workers}.log'})"
            code = code or rc
            print(
                f"  {workers} partner worker(s): {wall:7.1f} s, {tasks:,} tasks,"
                f" {tasks / wall:.2f} tasks/s, {state}"
            )
            results.append((workers, wall, tasks))
    finally:
        subprocess.run(
            ["bash", "scripts/airflow-services.sh", "stop"],
            env=env,
            cwd=REPO,
            capture_output=True,
            check=False,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sf_demo.sftp_server",
                "stop",
                "--state-dir",
                str(var / "sftp"),
                "--root",
                str(var / "sftp" / "root"),
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            check=False,
        )
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-qc",
                f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)",
                "-c",
                f"DROP ROLE IF EXISTS {DB}",
            ],
            capture_output=True,
            check=False,
        )
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if len(results) >= 2:
        w0, t0, n0 = results[0]
        row = []
        for w, t, n in results:
            print(
                f"  {w} worker(s) against {w0}: {t0 / t:.2f}x the speed"
                f" ({n / t:.2f} against {n0 / t0:.2f} tasks/s)"
            )
            row.append(f"{w} worker(s) {t:.0f} s, {n / t:.2f} tasks/s")
        seen = "; ".join(row) + f" ({t0 / results[-1][1]:.2f}x)"
        print(
            f"README-ROW: bench_scale | cycle, {args.agreements} agreements on CeleryExecutor,"
            f" {' vs '.join(map(str, counts))} partner workers | {seen}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
