"""What the ``rights_*`` DAGs share: the acting run, the keys, the ledger, the partners' notices.

Called inside tasks only. Nothing here holds personal data: the person's details stay in the store and the
core; the tasks pass ids, counts and hashes.
"""

from __future__ import annotations

from typing import Any

from sf_airflow.access import run_actor
from sf_airflow.common import store
from sf_airflow.credentials import council_openpgp, data_keys, ledger
from sf_airflow.sftp import sftp_endpoint
from supporting_families.audit import NewEntry
from supporting_families.config import Agreement, load_agreements
from supporting_families.rights import NoticeKind, OpenPgp, Outcome, Run, deliver_prepared_notice
from supporting_families.rights import prepare_notices as core_prepare_notices


def acting_run(context: dict[str, Any]) -> Run:
    ti, dag_run = context["ti"], context["dag_run"]
    # Who acted: the DPO's staff id (the user who triggered the run), else the schedule (rights_deadlines).
    return Run(ti.dag_id, ti.run_id, ti.task_id, run_actor(dag_run))


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


def prepare_notices(
    kind: NoticeKind,
    request_id: str,
    due: list[tuple[Agreement, list[str], dict[str, object]]],
    person_id: str,
) -> list[str]:
    """Encrypt one notice per partner in ``due`` with the council's key (controller side, default queue);
    returns the agreement ids. ``due``'s agreements come from :func:`agreements`."""
    return core_prepare_notices(store(), kind, request_id, due, person_id, openpgp=openpgp())


def deliver_notice(kind: NoticeKind, request_id: str, agreement_id: str, run: Run) -> dict[str, Any]:
    """Deliver the notice prepared for one agreement and record its disclosure. The task runs on the
    partner's queue: only that partner's worker holds its SFTP connection (docs/ARCHITECTURE.md,
    "Credentials per partner")."""
    agreement = agreements()[agreement_id]

    def append(entry: NewEntry) -> int:
        with ledger() as book:
            return int(book.append(entry).seq)

    sent = deliver_prepared_notice(
        store(),
        kind,
        request_id,
        agreement,
        lambda a: sftp_endpoint(a.sftp.conn_id),
        append=append,
        run=run,
    )
    return {"agreement": agreement_id, "due": sent is not None, **(sent or {})}


__all__ = [
    "acting_run",
    "agreements",
    "data_keys",
    "deliver_notice",
    "openpgp",
    "prepare_notices",
    "record",
]
