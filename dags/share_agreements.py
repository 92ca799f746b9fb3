"""One share DAG per data agreement, generated from ``include/agreements/*.yaml`` (``share__<agreement>``).

Adding a partner is a new agreement file: this factory builds its DAG with no Python change. Each task
reads its context, calls one function of ``supporting_families.share.delivery`` and passes counts through
XCom.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from sf_airflow.common import DEFAULT_ARGS, IDENTIFICATION, START_DATE, delivery_asset, partner_queue, store
from supporting_families.config import Agreement, load_agreements

AGREEMENTS = load_agreements(resolve=False)


def _doc(a: Agreement) -> str:
    fields = ", ".join(f"`{f}`" for f in a.fields)
    gateways = "; ".join(a.legal_gateways)
    return f"""
### Share: {a.title}

**Partner:** {a.partner.name} (`{a.partner.code}`) · **agreement** `{a.id}` v{a.version} ·
**cohort** `{a.cohort}`

**Purpose** (the privacy notice): {a.purpose}

**Legal gateways:** {gateways}

**Fields that leave, in order:** {fields}. Nothing else: minimisation fails closed.

1. **prepare**: takes the newest identification, selects the cohort (`supporting_families.share.cohort`),
   leaves out anyone with an active restriction or objection (counted, never named), replaces internal
   ids with this agreement's keyed references (HMAC-SHA256, key `{a.pseudonymisation.key_conn_id}`
   v{a.pseudonymisation.key_version}), keeps exactly the agreed fields, and writes the partner's CSV to
   staging with the delivery's reference list and manifest.
2. **encrypt**: OpenPGP with GnuPG to the partner key pinned in the agreement, signed by the council
   key, no compression; an expired, revoked or different key stops the run. The plaintext is deleted.
3. **deliver**: SFTP to `{a.sftp.remote_inbox}` through `{a.sftp.conn_id}` with the host key pinned;
   temporary name, size and hash check, atomic rename, never an overwrite; a retry finds the delivery
   done and sends nothing. Records one `disclosure` in the audit ledger and emits
   `{delivery_asset(a.id).name}`.

**Schedule:** `{a.schedule.expression}` ({a.schedule.timezone}), or as soon as identification publishes
new results after fresh internal extracts (`{IDENTIFICATION.name}`). Every delivery is named by its run
(`sf-{a.id}-<delivery id>.csv.gpg`), so each run delivers at most once.

Authentication and host-key failures, key problems and minimisation failures fail at once; network
faults are retried with backoff. Logs and XCom hold counts and hashes only.
"""


def build_share_dag(agreement: Agreement) -> Any:
    @dag(
        dag_id=f"share__{agreement.dag_id_suffix}",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(
                agreement.schedule.expression, timezone=agreement.schedule.timezone
            ),
            assets=[IDENTIFICATION],
        ),
        start_date=START_DATE,
        catchup=False,
        default_args={**DEFAULT_ARGS, "queue": partner_queue(agreement.partner.code)},
        max_active_runs=1,
        tags=["supporting-families", "share", agreement.partner.code],
        doc_md=_doc(agreement),
    )
    def share() -> None:
        @task
        def prepare(run_id: str | None = None) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            from sf_airflow.credentials import data_keys, pseudonym_key
            from sf_airflow.lineage import declare_share_prepare
            from supporting_families.identify import latest_identification
            from supporting_families.share import (
                Delivery,
                MinimisationError,
                delivery_id_for,
                prepare_delivery,
            )

            assert run_id is not None
            root = store()
            if latest_identification(root) is None:
                # A new installation's first scheduled run: nobody has been identified, so nothing may leave.
                raise AirflowSkipException("no identification yet: nothing to share")
            delivery = Delivery(root, agreement.id, delivery_id_for(agreement.id, run_id))
            try:
                prepared = prepare_delivery(
                    delivery, agreement, pseudonym_key(agreement), run_id, keys=data_keys()
                )
            except MinimisationError as exc:
                raise AirflowFailException(str(exc)) from None
            declare_share_prepare(agreement, prepared)
            return prepared

        @task
        def encrypt(prepared: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from sf_airflow.credentials import council_openpgp, data_keys, pseudonym_key, resolved_agreement
            from supporting_families.share import Delivery, encrypt_delivery, prepare_delivery
            from supporting_families.transport import KeyProblem

            assert run_id is not None
            key = council_openpgp()
            delivery = Delivery(store(), agreement.id, prepared["delivery_id"])
            if not delivery.manifest_path.exists():
                # A failed encryption undid the package (no plaintext waits in staging): package again.
                prepare_delivery(delivery, agreement, pseudonym_key(agreement), run_id, keys=data_keys())
            try:
                manifest = encrypt_delivery(
                    delivery,
                    resolved_agreement(agreement),
                    council_fingerprint=key.fingerprint,
                    passphrase=key.passphrase,
                    gnupg_home=key.gnupg_home,
                )
            except KeyProblem as exc:
                # An expired, revoked or mismatched key will not fix itself by retrying.
                raise AirflowFailException(str(exc)) from None
            return {**prepared, "ciphertext_sha256": manifest.ciphertext_sha256}

        def _conflict(delivery: Any, actor: str | None, context: dict[str, Any]) -> None:
            from datetime import UTC, datetime

            from sf_airflow.credentials import ledger
            from sf_airflow.notify import email_operations
            from supporting_families.share import conflict_entry

            ti = context["ti"]
            manifest = delivery.manifest()
            with ledger() as book:
                recorded = book.append(
                    conflict_entry(
                        agreement,
                        delivery,
                        manifest,
                        occurred_at=datetime.now(UTC),
                        dag_id=ti.dag_id,
                        run_id=ti.run_id,
                        task_id=ti.task_id,
                        try_number=ti.try_number,
                        triggered_by=actor,
                    )
                )
            email_operations(
                context,
                subject=f"Delivery conflict: {agreement.id}",
                note=(
                    "The partner's inbox already holds a different file under this delivery's name (an "
                    "earlier file not collected). Nothing was sent or overwritten; ask the partner to "
                    "collect it, then clear the deliver task."
                ),
                rows=[
                    {
                        "agreement": agreement.id,
                        "partner": agreement.partner.code,
                        "delivery_id": delivery.delivery_id,
                        "file": str(manifest.ciphertext_name),
                        "run": ti.run_id,
                        "ledger_seq": recorded.seq,
                    }
                ],
            )

        @task(outlets=[delivery_asset(agreement.id)])
        def deliver(prepared: dict[str, Any], outlet_events: Any = None, **context: Any) -> dict[str, Any]:
            from datetime import UTC, datetime

            from airflow.sdk.exceptions import AirflowFailException

            from sf_airflow.access import run_actor
            from sf_airflow.credentials import data_keys, ledger
            from sf_airflow.lineage import declare_share_deliver
            from sf_airflow.sftp import sftp_endpoint
            from supporting_families.retention.rotation import rotation_entry
            from supporting_families.share import Delivery, deliver_delivery, disclosure_entry
            from supporting_families.transport import DeliveryConflict, PermanentTransferError

            delivery = Delivery(store(), agreement.id, prepared["delivery_id"])

            ti, dag_run = context["ti"], context["dag_run"]
            # Who acted: the staff id of the user who triggered the run, else the schedule or asset event.
            actor = run_actor(dag_run)
            counts = {k: v for k, v in prepared.items() if isinstance(v, int)}

            def entry(receipt: dict[str, Any]) -> Any:
                return disclosure_entry(
                    agreement,
                    delivery,
                    delivery.manifest(),
                    receipt,
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    task_id=ti.task_id,
                    try_number=ti.try_number,
                    triggered_by=actor,
                    counts=counts,
                )

            # Check the disclosure's ledger entry before sending: what cannot be recorded must not leave.
            entry({"delivered_at": datetime.now(UTC).isoformat(), "bytes": 0}).validate()
            try:
                receipt = deliver_delivery(
                    delivery, agreement, sftp_endpoint(agreement.sftp.conn_id), keys=data_keys()
                )
            except DeliveryConflict as exc:
                # An earlier file the partner has not collected holds the name: nothing left, and a person
                # must act (ask the partner to collect it). Recorded once however often this is retried,
                # then the data engineers are mailed; a failed mail fails the task, so a retry sends it.
                _conflict(delivery, actor, context)
                raise AirflowFailException(str(exc)) from None
            except PermanentTransferError as exc:
                # Host key, authentication, permissions: retrying would only knock on the door again.
                raise AirflowFailException(str(exc)) from None
            # A retry after a failed append finds the receipt, sends nothing, and records the entry once.
            with ledger() as book:
                recorded = book.append(entry(receipt))
                # The first delivery under a new key version records the rotation (once: idempotency key).
                rotated = rotation_entry(
                    agreement,
                    delivery,
                    delivery.manifest(),
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    task_id=ti.task_id,
                    triggered_by=actor,
                )
                if rotated is not None:
                    book.append(rotated)
            if outlet_events is not None:
                # The receive DAG learns which delivery to expect an answer for.
                outlet_events[delivery_asset(agreement.id)].extra = {"delivery_id": delivery.delivery_id}
            delivered = {
                "delivery_id": delivery.delivery_id,
                "rows": prepared["rows"],
                "status": receipt["status"],
                "bytes": receipt["bytes"],
                "ledger_seq": recorded.seq,
            }
            declare_share_deliver(agreement, delivered, counts)
            return delivered

        # An XComArg stands in for the upstream's value: Airflow's stubs type a task call with
        # the function's own parameters, so they cannot accept it.
        deliver(encrypt(prepare()))  # type: ignore[arg-type]

    return share()


for _agreement in AGREEMENTS:
    build_share_dag(_agreement)
