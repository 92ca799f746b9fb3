"""Run the exchange cycle on the local Airflow through its REST API and print a summary.

The runs are real DAG runs made by the scheduler, so they stay in the Airflow UI's run history. Only the
first step is triggered by hand: every later DAG is started by Airflow's asset scheduling (extracts landed
-> ingest -> identification -> shares -> partners answer -> receive -> identification again), and this
script waits for each run and prints what its summary task returned through XCom: counts and hashes,
never a row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from supporting_families.config import load_agreements, load_sources

#: (stage, how, DAG id, summary task). "trigger" starts a run; "await" waits for the run that asset
#: scheduling started for that DAG, the first one queued after the earliest run of the stage before: what a
#: stage starts is queued after that stage began, so an older run (a scheduled one, or one an earlier cycle
#: left queued) is never taken for this cycle's. "collect" makes sure a collect run is waiting for an
#: agency's file (collect_run) without waiting for it: the ingest its file starts is awaited instead.
Step = tuple[int, str, str, str]
# From the same files the DAG factories read, so a new source or agreement is a new YAML file here too.
SOURCES = [name for name, spec in load_sources().sources.items() if spec.inbound is None]
# Voluntary-sector agencies send extracts with the partners' answers: collected over SFTP, then ingested.
AGENCIES = [name for name, spec in load_sources().sources.items() if spec.inbound is not None]
# Every agreement has a share DAG and a receive DAG (a return, or at least a receipt, is required).
SHARES = [a.dag_id_suffix for a in load_agreements(resolve=False)]
CYCLE: list[Step] = [
    (0, "trigger", "partner_connectivity", "summarise"),
    (0, "trigger", "demo_synthetic_borough", "generate"),
    *[(1, "await", f"ingest_{s}", "announce") for s in SOURCES],
    (2, "await", "identify_families", "evaluate_criteria"),
    *[(3, "await", f"share__{a}", "deliver") for a in SHARES],
    # Each receive run starts when its delivery is made and then waits for the partner's answer.
    (4, "await", "demo_partner_simulator", "summarise"),
    *[(4, "await", f"receive__{a}", "process") for a in SHARES],
    *[(4, "collect", f"collect_{s}", "collect") for s in AGENCIES],
    *[(4, "await", f"ingest_{s}", "announce") for s in AGENCIES],
    (5, "await", "identify_families", "evaluate_criteria"),
    # The deliveries and returns queued anchoring runs already; one more, started once everything above
    # has finished, anchors the cycle's last ledger entry and reports the chain's state.
    (6, "trigger", "ledger_anchor", "anchor"),
]


class Api:
    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base.rstrip("/")
        body = self._call("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        self.token = body["access_token"]

    def _call(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 (loopback)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
                    return json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == 4:
                    raise
            time.sleep(2 * (attempt + 1))
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body)


def wait_for_dag(api: Api, dag_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.get(f"/api/v2/dags/{dag_id}")
            return
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or time.monotonic() > deadline:
                msg = f"DAG {dag_id} is not available ({exc.code}); check `make import-errors`"
                raise SystemExit(msg) from None
        time.sleep(1)


def trigger(api: Api, dag_id: str, conf: dict[str, Any]) -> str:
    wait_for_dag(api, dag_id)
    run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    return str(run["dag_run_id"])


def collect_run(api: Api, dag_id: str, cycle_began: datetime, seen: set[str]) -> str:
    """A collect run that will take this cycle's agency file: one already waiting, or else a new one.

    The hourly schedule keeps a sensor waiting (one starts when the DAG is first unpaused) and one run at
    a time is allowed, so a run triggered behind a waiting one would find the outbox already emptied and
    wait out its whole window. The cycle then awaits the ingest run the collected file starts.
    """
    wait_for_dag(api, dag_id)
    runs = api.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")["dag_runs"]
    for r in runs:
        active = r["state"] in ("queued", "running")
        this_cycle = bool(r.get("queued_at")) and _when(r["queued_at"]) >= cycle_began
        if r["dag_run_id"] not in seen and (active or this_cycle):
            return str(r["dag_run_id"])
    return trigger(api, dag_id, {})


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def awaited_run(api: Api, dag_id: str, since: datetime, timeout: float, seen: set[str]) -> str:
    """The first run of ``dag_id`` queued after ``since`` and not ``seen`` yet, once the scheduler made it."""
    wait_for_dag(api, dag_id)
    deadline = time.monotonic() + timeout
    while True:
        runs = api.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")["dag_runs"]
        later = [
            r
            for r in runs
            if r.get("queued_at") and _when(r["queued_at"]) >= since and r["dag_run_id"] not in seen
        ]
        if later:
            return str(later[0]["dag_run_id"])
        if time.monotonic() > deadline:
            raise SystemExit(f"no run of {dag_id} started within {timeout:.0f} s (is it paused?)")
        time.sleep(2)


def wait_for_run(api: Api, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return dict(run)
        if time.monotonic() > deadline:
            raise SystemExit(f"{dag_id} run {run_id} did not finish in {timeout:.0f} s")
        time.sleep(2)


def xcom(api: Api, dag_id: str, run_id: str, task_id: str) -> Any:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    # A mapped task (one per received file) answers for its first file.
    mapped = "&map_index=0" if task_id == "process" else ""
    try:
        return api.get(path + "?deserialize=true" + mapped).get("value")
    except urllib.error.HTTPError:
        return None


def show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {show(v)}" for k, v in value.items())
    return str(value)


def where_tasks_ran(api: Api, runs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How many of the cycle's task instances ran on each (queue, worker hostname)."""
    counts: dict[tuple[str, str], int] = {}
    for dag_id, run_id in runs:
        tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
        for ti in tis:
            if ti.get("state") in ("success", "failed"):
                key = (str(ti.get("queue") or "-"), str(ti.get("hostname") or "-"))
                counts[key] = counts.get(key, 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000, help="size of the synthetic borough")
    parser.add_argument("--seed", type=int, default=2026, help="the synthetic borough's seed")
    parser.add_argument(
        "--as-of",
        default=date.today().isoformat(),
        help="extract date of the departments' files (default: today)",
    )
    parser.add_argument(
        "--dirt",
        choices=["clean", "default"],
        default="clean",
        help="clean (identification must equal the ground truth) or the generator's default dirt",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each run")
    args = parser.parse_args()

    port = os.environ.get("SF_AIRFLOW_PORT", "8080")
    # The demo users' passwords (scripts/airflow_access.py demo-users), in a 0600 file and in no log.
    users_file = Path(os.environ["SF_SECRETS_DIR"]) / "airflow-users.json"
    passwords = json.loads(users_file.read_text())
    api = Api(f"http://127.0.0.1:{port}", "admin", passwords["admin"])

    print(f"Exchange cycle on the synthetic borough ({args.persons:,} persons)")
    # When each stage's earliest run was queued; stage -1 is the cycle's start.
    stage_began: dict[int, datetime] = {-1: datetime.now(UTC)}
    failed = curated = 0
    seen: set[str] = set()
    eligible: list[int] = []
    ran: list[tuple[str, str]] = []
    for stage, how, dag_id, task_id in CYCLE:
        started = time.monotonic()
        since = stage_began[max(s for s in stage_began if s < stage)]
        if how == "trigger":
            conf = (
                {"persons": args.persons, "seed": args.seed, "as_of": args.as_of, "dirt": args.dirt}
                if dag_id == "demo_synthetic_borough"
                else {}
            )
            run_id = trigger(api, dag_id, conf)
        elif how == "collect":
            run_id = collect_run(api, dag_id, stage_began[-1], seen)
            print(f"\n{dag_id}: collecting (run {run_id}); its file starts the ingest awaited next")
            seen.add(run_id)
            continue
        else:
            run_id = awaited_run(api, dag_id, since, args.timeout, seen)
        seen.add(run_id)
        ran.append((dag_id, run_id))
        run = wait_for_run(api, dag_id, run_id, args.timeout)
        queued = _when(run["queued_at"]) if run.get("queued_at") else datetime.now(UTC)
        stage_began[stage] = min(queued, stage_began.get(stage, queued))
        print(f"\n{dag_id}: {run['state']} after {time.monotonic() - started:.0f} s (run {run_id})")
        if run["state"] != "success":
            failed += 1
            continue
        summary = xcom(api, dag_id, run_id, task_id) or {}
        for key, value in summary.items():
            if key != "written":  # store paths, not news
                print(f"  {key}: {show(value)}")
        if dag_id == "identify_families" and "eligible families" in summary:
            eligible.append(int(summary["eligible families"]))
            if len(eligible) == 2:
                print(f"  families eligible because of the partners' returns: {eligible[1] - eligible[0]:,}")
        if dag_id.startswith("ingest_"):
            curated += int(summary.get("files curated", 0))
            if dag_id == f"ingest_{SOURCES[-1]}" and not curated:
                # Ingest is idempotent: files it has seen are not taken again, so nothing downstream runs.
                print("\nNo new extracts (this borough was ingested before): nothing else needed to run.")
                print("Run again with another --seed or --as-of to see a whole cycle.")
                break
    # On CeleryExecutor each partner's tasks must show its own queue and worker (sf_demo/celery_workers.py).
    print("\nTask instances by queue and worker:")
    for (queue, host), n in sorted(where_tasks_ran(api, ran).items()):
        print(f"  {queue:<16} {host:<28} {n:>4}")
    print(f"\nRun history: http://127.0.0.1:{port}/dags  (user admin, password in {users_file})")
    if failed:
        print(f"{failed} run(s) failed: open them in the UI for the task logs.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
