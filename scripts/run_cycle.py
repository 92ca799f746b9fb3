"""Run the exchange cycle on the local Airflow through its REST API and print a summary.

The runs are real DAG runs made by the scheduler, so they stay in the Airflow UI's run history. The
summary is built only from what the tasks returned through XCom: counts and hashes, never a row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

#: The cycle, in order: (DAG id, the task whose return value summarises the run, run conf).
#: Later steps (ingest, identify, share, receive) join this list as they are built.
CYCLE: list[tuple[str, str, dict[str, Any]]] = [
    ("demo_synthetic_borough", "generate", {}),
    ("partner_connectivity", "summarise", {}),
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
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body)


def wait_for_dag(api: Api, dag_id: str, timeout: float = 120) -> None:
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


def run_dag(api: Api, dag_id: str, conf: dict[str, Any], timeout: float) -> dict[str, Any]:
    wait_for_dag(api, dag_id)
    run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]
    deadline = time.monotonic() + timeout
    while run["state"] not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{dag_id} run {run_id} did not finish in {timeout:.0f} s")
        time.sleep(2)
        run = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    return dict(run)


def xcom(api: Api, dag_id: str, run_id: str, task_id: str) -> Any:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    try:
        return api.get(path + "?deserialize=true").get("value")
    except urllib.error.HTTPError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000, help="size of the synthetic borough")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each run")
    args = parser.parse_args()

    home = Path(os.environ["AIRFLOW_HOME"])
    port = os.environ.get("SF_AIRFLOW_PORT", "8080")
    passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    api = Api(f"http://127.0.0.1:{port}", "admin", passwords["admin"])

    print(f"Exchange cycle on the synthetic borough ({args.persons:,} persons)")
    failed = 0
    for dag_id, task_id, conf in CYCLE:
        if dag_id == "demo_synthetic_borough":
            conf = {**conf, "persons": args.persons}
        started = time.monotonic()
        run = run_dag(api, dag_id, conf, args.timeout)
        seconds = time.monotonic() - started
        print(f"\n{dag_id}: {run['state']} in {seconds:.0f} s (run {run['dag_run_id']})")
        if run["state"] != "success":
            failed += 1
            continue
        summary = xcom(api, dag_id, run["dag_run_id"], task_id) or {}
        for key, value in summary.items():
            shown = f"{value:,}" if isinstance(value, int) else value
            print(f"  {key}: {shown}")
    print(
        f"\nRun history: http://127.0.0.1:{port}/dags  (user admin, password in {home}/"
        "simple_auth_manager_passwords.json.generated)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
