"""Check that every partner's SFTP server answers with its pinned host key and has its folders."""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from sf_airflow.common import DEFAULT_ARGS, START_DATE
from supporting_families.config import load_agreements

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

A failure here, before a share runs, names the agreement and the folder, so an engineer can fix a rotated
host key or a missing folder before any personal data is packaged.
""",
)
def partner_connectivity() -> None:
    @task(map_index_template="{{ task.op_kwargs['agreement_id'] }}")
    def check(agreement_id: str, conn_id: str, inbox: str, outbox: str) -> dict[str, Any]:
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        hook = SFTPHook(ssh_conn_id=conn_id)
        try:
            missing = [folder for folder in (inbox, outbox) if not hook.isdir(folder)]
        finally:
            hook.close_conn()
        if missing:
            raise RuntimeError(f"{agreement_id}: missing remote folder(s) {missing} on {conn_id}")
        return {"agreement": agreement_id, "inbox": inbox, "outbox": outbox}

    @task
    def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
        return {"partner servers reachable with pinned host keys": len(results)}

    checks = check.expand_kwargs(
        [
            {
                "agreement_id": a.id,
                "conn_id": a.sftp.conn_id,
                "inbox": a.sftp.remote_inbox,
                "outbox": a.sftp.remote_outbox,
            }
            for a in AGREEMENTS
        ]
    )
    # An XComArg stands in for the upstream's value: Airflow's stubs type a task call with
    # the function's own parameters, so they cannot accept it.
    summarise(checks)  # type: ignore[arg-type]


partner_connectivity()
