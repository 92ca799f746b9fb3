"""Check that every partner's SFTP server answers with its pinned host key and has its folders."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import dag, task

from sf_airflow.common import DEFAULT_ARGS, START_DATE, partner_queue
from supporting_families.config import load_agreements

log = logging.getLogger(__name__)

AGREEMENTS = load_agreements(resolve=False)


@dag(
    dag_id="partner_connectivity",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["supporting-families", "sftp", "health"],
    doc_md="""
### Partner SFTP connectivity

For each data agreement, connects to the partner's SFTP server through the agreement's Airflow
connection, **with the host key pinned in that connection** (an unknown or changed key is refused), and
checks that the agreement's inbox (deliveries) and outbox (returns) folders exist. Nothing is written.
It connects exactly as delivery does (`supporting_families.transport`: the SSH algorithm policy, strict key
exchange required) and its log and XCom show the negotiated key exchange, cipher, MAC and host key.

A failure here, before a share runs, names the agreement and the folder, so an engineer can fix a rotated
host key or a missing folder before any personal data is packaged.
""",
)
def partner_connectivity() -> None:
    @task
    def check(agreement_id: str, conn_id: str, inbox: str, outbox: str) -> dict[str, Any]:
        from sf_airflow.sftp import sftp_endpoint
        from supporting_families.transport import check_connectivity

        # The same pinned endpoint and SSH algorithm policy (strict key exchange required) as delivery and
        # fetch, not the stock SFTPHook: a check that negotiates differently would prove nothing about them.
        report = check_connectivity(sftp_endpoint(conn_id), [inbox, outbox])
        missing = list(report.missing)
        # In the task log, so an engineer sees what the partner's server agreed to.
        log.info(
            "%s: negotiated %s",
            agreement_id,
            ", ".join(f"{name} {value}" for name, value in sorted(report.algorithms.items())),
        )
        if missing:
            raise RuntimeError(f"{agreement_id}: missing remote folder(s) {missing} on {conn_id}")
        return {"agreement": agreement_id, "inbox": inbox, "outbox": outbox, **report.algorithms}

    @task
    def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
        return {"partner servers reachable with pinned host keys": len(results)}

    # One task per agreement on its partner's queue, not one mapped task: a mapped task has one queue, and
    # only the partner's own worker holds its SFTP connection (docs/ARCHITECTURE.md, "Credentials per
    # partner").
    checks = [
        check.override(task_id=f"check_{a.dag_id_suffix}", queue=partner_queue(a.partner.code))(
            a.id, a.sftp.conn_id, a.sftp.remote_inbox, a.sftp.remote_outbox
        )
        for a in AGREEMENTS
    ]
    # An XComArg stands in for the upstream's value: Airflow's stubs type a task call with
    # the function's own parameters, so they cannot accept it.
    summarise(checks)  # type: ignore[arg-type]


partner_connectivity()
