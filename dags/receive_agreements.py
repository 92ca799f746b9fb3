"""One receive DAG per data agreement from ``include/agreements/*.yaml`` (``receive__<agreement>``).

Adding a partner is a new agreement file: this factory builds its receive DAG with no Python change. Each
task reads its context and calls one function of ``supporting_families.receive``; XCom carries
counts and
the names of the agreement's own return files (to map one processing task per file), never a row.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from sf_airflow.common import DEFAULT_ARGS, START_DATE, delivery_asset, partner_queue, return_asset, store
from sf_airflow.receive_sensor import PinnedSFTPSensor, return_deadline_missed, return_not_received
from supporting_families.config import Agreement, load_agreements

AGREEMENTS = load_agreements(resolve=False)

#: How often the deferred sensor looks in the partner's outbox. Returns take days; a look costs one SFTP
#: listing, in the triggerer, with no worker slot held. ``$SF_RETURN_POKE_SECONDS`` shortens it where a
#: test waits for a return that arrives in seconds (tests/integration/celery).
POKE_SECONDS = int(os.environ.get("SF_RETURN_POKE_SECONDS") or 15 * 60)
#: Where the return sensor waits. ``deferrable`` (one machine): in the triggerer, no worker slot held.
#: ``reschedule`` (a worker per partner): on the partner's own queue, so that the shared triggerer holds
#: no partner's SFTP connection (docs/ARCHITECTURE.md, "Credentials per partner").
RETURN_SENSOR = os.environ.get("SF_RETURN_SENSOR") or "deferrable"
if RETURN_SENSOR not in ("deferrable", "reschedule"):
    raise ValueError(f"SF_RETURN_SENSOR is {RETURN_SENSOR!r}: give deferrable or reschedule")


def _doc(a: Agreement) -> str:
    kind = (
        "a receipt (row count and hash of what it received), checked against the delivery's manifest"
        if a.returns.kind == "receipt"
        else "one row per reference, reconciled against the delivery's reference list"
    )
    flags = ", ".join(f"`{f.column}` → `{f.sub_criterion}`" for f in a.returns.flags) or "none"
    return f"""
### Receive: {a.title}

**Partner:** {a.partner.name} (`{a.partner.code}`) · **agreement** `{a.id}` v{a.version}.
The partner answers each delivery with {kind}, named `{a.returns.file_pattern}` with the delivery id for
`*`, in `{a.sftp.remote_outbox}`. Flags taken into the register: {flags}.

**Schedule: on `{delivery_asset(a.id).name}`**, which the share DAG emits when a delivery has reached the
partner's inbox. A return only exists after a delivery, so each delivery starts one run, which knows
its delivery (from the triggering asset event: the share's run id gives the delivery id) and waits for
that delivery's return (`<prefix><delivery id>*`, so a hostilely named one wakes it too and is
refused). A manual run waits for the delivery given as `{{"delivery_id": "d..."}}` in its conf, or,
with no conf, takes whatever returns are in the outbox (e.g. a late one whose run had stopped).

1. **expect_return**: which delivery this run answers, and so which file to wait for.
2. **wait_for_return**: deferrable `SFTPSensor` (no worker slot while waiting) on that file in
   `{a.sftp.remote_outbox}` through `{a.sftp.conn_id}`; the connection must pin the server's host key
   (`PinnedSFTPSensor` refuses one that turns checking off; the provider's asyncssh trigger refuses any
   other key). It waits up to twice the deadline.
3. **record_collection**: a `collection` ledger entry for each delivery that has left the partner's inbox.
4. **fetch**: the core SFTP client downloads the file (names checked, links never followed, size capped
   at {a.returns.max_size_mib} MiB), archives the encrypted original under `returns/{a.id}/<file>/` and
   records `return_received`. Hostile entries are set aside in the outbox and recorded as `quarantine`.
5. **process** (one per file): decrypt and verify against the partner's pinned fingerprint (no MDC,
   tampered or wrongly signed files refused), validate strictly (pandera, every row), reconcile every
   reference (matched, rejected by the partner, no trace, duplicate, unexpected) and merge the matched
   rows' flags into `register/partner_flags/` with their source; or check the receipt. A bad file moves
   to `quarantine/returns/{a.id}/<file>/` with `reason.json` and `report.csv` (rule and row numbers, no
   values), is recorded, and this task fails without retrying. The register is untouched.
6. **finish**: removes the returns taken in or quarantined from the partner's outbox, so a bad file is
   never picked up again and a corrected one is taken in normally; emits `{return_asset(a.id).name}`
   when a return was merged, so identification runs again.
7. **verdict**: fails the run, naming every quarantined file with its rule and row numbers, when anything
   was refused or quarantined, or when this run's return never arrived.

**Deadline: {a.returns.deadline_days} days.** A `DeadlineAlert` on the run (queued at + deadline) e-mails
the `sf_smtp` recipients and records `deadline_missed` in the ledger if the return has not been taken in
by then. The sensor keeps waiting another {a.returns.deadline_days} days so a late return is still taken
in (marked late in the store and the ledger, with an alert in the log); then it times out, records
`no_return` and the run fails. Other agreements' receive DAGs are separate and carry on.
"""


def _run_info(context: dict[str, Any]) -> Any:
    from sf_airflow.access import run_actor
    from supporting_families.receive import RunInfo

    ti, dag_run = context["ti"], context["dag_run"]
    return RunInfo(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        try_number=ti.try_number,
        # Who acted: the staff id of the user who triggered the run, else the schedule or asset event.
        triggered_by=run_actor(dag_run),
    )


def build_receive_dag(agreement: Agreement) -> Any:
    deadline = timedelta(days=agreement.returns.deadline_days)

    @dag(
        dag_id=f"receive__{agreement.dag_id_suffix}",
        schedule=[delivery_asset(agreement.id)],
        start_date=START_DATE,
        catchup=False,
        default_args={**DEFAULT_ARGS, "queue": partner_queue(agreement.partner.code)},
        # Runs for different deliveries wait side by side (each for its own file); the tasks that write
        # the store and the partner's outbox take one run at a time (max_active_tis_per_dag below).
        max_active_runs=4,
        tags=["supporting-families", "receive", agreement.partner.code],
        doc_md=_doc(agreement),
        deadline=DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=deadline,
            callback=AsyncCallback(
                return_deadline_missed,
                kwargs={"agreement_id": agreement.id, "deadline_days": agreement.returns.deadline_days},
            ),
        ),
    )
    def receive() -> None:
        @task
        def expect_return(**context: Any) -> dict[str, Any]:
            from supporting_families.receive import expected_return

            return expected_return(agreement, _expected_delivery(context, agreement))

        expected = expect_return()
        wait = PinnedSFTPSensor(
            task_id="wait_for_return",
            sftp_conn_id=agreement.sftp.conn_id,
            path=agreement.sftp.remote_outbox,
            # This run's delivery's return (or, for a run without one, the agreement's pattern).
            file_pattern="{{ ti.xcom_pull(task_ids='expect_return')['pattern'] }}",
            deferrable=RETURN_SENSOR == "deferrable",
            mode="reschedule" if RETURN_SENSOR == "reschedule" else "poke",
            poke_interval=POKE_SECONDS,
            timeout=int(2 * deadline.total_seconds()),
            on_failure_callback=functools.partial(return_not_received, agreement.id),
        )

        @task
        def record_collection(**context: Any) -> dict[str, int]:
            from sf_airflow.credentials import ledger
            from sf_airflow.sftp import sftp_endpoint
            from supporting_families.receive import record_collections

            with ledger() as book:
                return record_collections(
                    store(),
                    agreement,
                    sftp_endpoint(agreement.sftp.conn_id),
                    ledger=book,
                    run=_run_info(context),
                )

        @task(max_active_tis_per_dag=1)
        def fetch(expected: dict[str, Any], **context: Any) -> list[str]:
            from airflow.sdk.exceptions import AirflowException, AirflowFailException

            from sf_airflow.credentials import ledger
            from sf_airflow.sftp import sftp_endpoint
            from supporting_families.receive import fetch_returns
            from supporting_families.transport import PermanentTransferError

            try:
                with ledger() as book:
                    summary = fetch_returns(
                        store(),
                        agreement,
                        sftp_endpoint(agreement.sftp.conn_id),
                        ledger=book,
                        run=_run_info(context),
                        delivery_id=expected["delivery_id"],
                    )
            except PermanentTransferError as exc:
                raise AirflowFailException(str(exc)) from None
            if summary.changing:
                # The partner is still writing: try again after the retry delay (what was fetched stays).
                raise AirflowException(f"{summary.changing} return(s) still being written; retrying")
            ti = context["ti"]
            # The names follow the agreement's own pattern (checked safe); counts beside them, never a row.
            ti.xcom_push(key="quarantined", value=list(summary.quarantined))
            ti.xcom_push(key="counts", value=summary.counts())
            return list(summary.fetched)

        @task(map_index_template="{{ task.op_kwargs['file_name'] }}", max_active_tis_per_dag=1)
        def process(file_name: str, **context: Any) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from sf_airflow.credentials import council_openpgp, data_keys, ledger, resolved_agreement
            from sf_airflow.lineage import declare_receive
            from supporting_families.receive import ReturnQuarantined, process_return
            from supporting_families.transport import KeyProblem

            key = council_openpgp()
            try:
                with ledger() as book:
                    outcome = process_return(
                        store(),
                        resolved_agreement(agreement),
                        file_name,
                        gnupg_home=key.gnupg_home,
                        passphrase=key.passphrase,
                        ledger=book,
                        keys=data_keys(),
                        run=_run_info(context),
                    )
            except ReturnQuarantined as exc:
                # The file is at fault: retrying cannot fix it; the partner must send a corrected one.
                raise AirflowFailException(str(exc)) from None
            except KeyProblem as exc:
                # The partner's pinned key is missing, expired or revoked in the council keyring: a
                # configuration fault (the file stays archived, unprocessed, for the run after the fix).
                raise AirflowFailException(str(exc)) from None
            declare_receive(agreement, outcome)
            return outcome.summary()

        @task(trigger_rule="all_done", outlets=[return_asset(agreement.id)], max_active_tis_per_dag=1)
        def finish(**context: Any) -> dict[str, int]:
            from airflow.sdk.exceptions import AirflowSkipException

            from sf_airflow.sftp import sftp_endpoint
            from supporting_families.receive import clear_outbox, handled_state

            names = _fetched_names(context)
            if not names:
                raise AirflowSkipException("nothing was fetched")
            root = store()
            counts = clear_outbox(root, agreement, sftp_endpoint(agreement.sftp.conn_id), names)
            counts["accepted"] = sum(handled_state(root, agreement, n)[0] == "accepted" for n in names)
            if not counts["accepted"]:
                # No asset event: identification has nothing new from this partner.
                raise AirflowSkipException(f"no return was taken in ({counts})")
            return counts

        @task(trigger_rule="all_done")
        def verdict(expected: dict[str, Any], **context: Any) -> dict[str, int]:
            from airflow.sdk.exceptions import AirflowFailException

            from supporting_families.receive import run_problems

            ti = context["ti"]
            counts = ti.xcom_pull(task_ids="fetch", key="counts")
            if counts is None:
                raise AirflowFailException(
                    f"{agreement.id}: no return was fetched (see wait_for_return and fetch for why)"
                )
            expected_name = expected.get("file") if expected else None
            problems = run_problems(
                store(),
                agreement,
                ti.xcom_pull(task_ids="fetch") or [],
                quarantined=ti.xcom_pull(task_ids="fetch", key="quarantined") or [],
                expected=expected_name,
                refused=int(counts["refused"]),
            )
            if problems:
                raise AirflowFailException(f"{agreement.id}: " + " | ".join(problems))
            return {"returns_checked": len(_fetched_names(context))}

        # An XComArg stands in for the upstream's value: Airflow's stubs type a task call with
        # the function's own parameters, so they cannot accept it.
        fetched = fetch(expected)  # type: ignore[arg-type]
        processed = process.expand(file_name=fetched)
        wait.set_upstream(expected)
        wait >> [record_collection(), fetched]
        processed >> finish()
        # An XComArg stands in for the upstream's value: Airflow's stubs type a task call with
        # the function's own parameters, so they cannot accept it.
        processed >> verdict(expected)  # type: ignore[arg-type]

    return receive()


def _expected_delivery(context: dict[str, Any], agreement: Agreement) -> str | None:
    """The delivery this run answers, from its conf and its triggering delivery events (receive.expected)."""
    from supporting_families.receive import DeliveryEvent, expected_delivery

    conf = getattr(context.get("dag_run"), "conf", None) or {}
    events = [
        DeliveryEvent(event.timestamp, (event.extra or {}).get("delivery_id"), event.source_run_id)
        for asset_events in (context.get("triggering_asset_events") or {}).values()
        for event in asset_events
    ]
    return expected_delivery(agreement.id, conf.get("delivery_id"), events)


def _fetched_names(context: dict[str, Any]) -> list[str]:
    ti = context["ti"]
    files = ti.xcom_pull(task_ids="fetch") or []
    quarantined = ti.xcom_pull(task_ids="fetch", key="quarantined") or []
    return [*files, *quarantined]


for _agreement in AGREEMENTS:
    build_receive_dag(_agreement)
