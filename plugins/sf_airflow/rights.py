"""What the ``rights_*`` DAGs share: the acting run, the keys, the ledger, the partners' notices.

Called inside tasks only. Nothing here holds personal data: the person's details stay in the store and the
core; the tasks pass ids, counts and hashes.
"""

from __future__ import annotations

from typing import Any

from sf_airflow.common import store
from sf_airflow.credentials import council_openpgp, data_keys, ledger, resolved_agreement
from sf_airflow.sftp import sftp_endpoint
from supporting_families.config import Agreement, load_agreements
from supporting_families.rights import (
    Notice,
    NoticeKind,
    OpenPgp,
    Outcome,
    Run,
    deliver_notice,
    notice_entry,
    notice_id_for,
    notice_table,
    prepare_notice,
)


def acting_run(context: dict[str, Any]) -> Run:
    ti, dag_run = context["ti"], context["dag_run"]
    triggered = getattr(dag_run, "triggered_by", None) or dag_run.run_type
    return Run(ti.dag_id, ti.run_id, ti.task_id, str(getattr(triggered, "value", triggered)))


def openpgp() -> OpenPgp:
    key = council_openpgp()
    return OpenPgp(key.fingerprint, key.gnupg_home, key.passphrase)


def agreements() -> dict[str, Agreement]:
    """The agreements with their fingerprints resolved (purpose, gateways, fields, partner key)."""
    return {a.id: a for a in load_agreements()}


def record(outcome: Outcome) -> list[int]:
    """Append the outcome's entries (each once, by its idempotency key); returns their sequence numbers."""
    with ledger() as book:
        return [book.append(entry).seq for entry in outcome.entries]


def send_notices(
    kind: NoticeKind,
    request_id: str,
    due: list[tuple[Agreement, list[str], dict[str, object]]],
    person_id: str,
    run: Run,
) -> dict[str, Any]:
    """Prepare, deliver and record one notice per partner in ``due``; idempotent per request and partner."""
    pgp = openpgp()
    sent: dict[str, Any] = {}
    for agreement, refs, corrected in due:
        agreement = resolved_agreement(agreement)
        notice = Notice(store(), agreement.id, notice_id_for(kind, agreement.id, request_id), kind)
        manifest = prepare_notice(
            notice,
            agreement,
            notice_table(kind, refs, corrected),
            person_id,
            council_fingerprint=pgp.council_fingerprint,
            passphrase=pgp.passphrase,
            gnupg_home=pgp.gnupg_home,
        )
        receipt = deliver_notice(notice, agreement, sftp_endpoint(agreement.sftp.conn_id))
        entry = notice_entry(
            agreement,
            notice,
            manifest,
            receipt,
            request_id=request_id,
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=run.task_id,
            triggered_by=run.triggered_by,
        )
        with ledger() as book:
            seq = book.append(entry).seq
        sent[agreement.id] = {"notice_id": notice.notice_id, "rows": manifest["row_count"], "ledger_seq": seq}
    return sent


__all__ = ["acting_run", "agreements", "data_keys", "openpgp", "record", "send_notices"]
