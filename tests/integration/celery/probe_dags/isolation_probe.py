"""The isolation test's probe: on each partner's queue, ask for the connections the run's conf names.

Each task reports only whether its worker could get each connection and, if not, the error's type: never
a field of a connection (tests/integration/celery/test_isolation.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task

from sf_airflow.common import partner_queue

PARTNERS = ("dwp", "met-police", "ons")


@dag(
    dag_id="isolation_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
    default_args={"retries": 0, "owner": "tests"},
    params={"conn_ids": ["sf_sftp_dwp"]},
)
def isolation_probe() -> None:
    for code in PARTNERS:

        @task(task_id=f"ask_on_{code.replace('-', '_')}", queue=partner_queue(code))
        def ask(**context: Any) -> dict[str, str]:
            from airflow.sdk import BaseHook

            found: dict[str, str] = {}
            for conn_id in context["params"]["conn_ids"]:
                try:
                    BaseHook.get_connection(str(conn_id))
                except Exception as exc:  # the type is the finding
                    found[str(conn_id)] = type(exc).__name__
                else:
                    found[str(conn_id)] = "found"
            return found

        ask()


isolation_probe()
