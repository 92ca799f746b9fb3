"""After processing: the outbox cleared of what was handled, collections recorded, a run's problems."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from upath import UPath

from supporting_families.audit import Ledger, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.receive.quarantine import _quarantine_records, handled_state, quarantine_reason
from supporting_families.receive.records import _DELIVERY_ID, Received, ReturnPaths, RunInfo, _entry
from supporting_families.receive.remote import Collected, remove_collected
from supporting_families.share.delivery import Delivery
from supporting_families.transport.sftp import (
    SftpEndpoint,
    list_names,
)

log = logging.getLogger(__name__)


def clear_outbox(
    store: UPath, agreement: Agreement, endpoint: SftpEndpoint, names: Sequence[str]
) -> dict[str, int]:
    """Remove from the partner's outbox the returns of ``names`` that were taken in or quarantined.

    A name may have several handled versions (one taken in, later different ones quarantined): the file
    in the outbox goes if it is any of them, so a refused second answer is not fetched again on every run.
    """
    done: list[Collected] = []
    handled = 0
    for name in names:
        state, _ = handled_state(store, agreement, name)
        if state in ("accepted", "quarantined"):
            handled += 1
            done.extend(version.collected for version in _handled_versions(store, agreement, name))
    counts = remove_collected(endpoint, agreement.sftp.remote_outbox, done)
    counts["not_handled"] = len(set(names)) - handled
    return counts


def _handled_versions(store: UPath, agreement: Agreement, name: str) -> list[Received]:
    """Every version of ``name`` taken in or quarantined (their ``received.json``)."""
    paths = ReturnPaths(store, agreement.id, name)
    found = [folder / "received.json" for folder, _ in _quarantine_records(paths)]
    if paths.reconciliation_path.exists():
        found.append(paths.received_path)
    return [Received.from_json(p.read_text()) for p in found if p.exists()]


def record_collections(
    store: UPath, agreement: Agreement, endpoint: SftpEndpoint, *, ledger: Ledger, run: RunInfo | None = None
) -> dict[str, int]:
    """Record ``collection`` once for every delivered file that has left the partner's inbox.

    The time recorded is when the council saw it gone (SFTP cannot say when the partner took it), so it is
    at most one receive run late.
    """
    root = store / "deliveries" / agreement.id
    counts = {"collected": 0, "recorded_before": 0, "awaiting_collection": 0}
    if not root.exists():
        return counts
    inbox: set[str] | None = None
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        delivery = Delivery(store, agreement.id, folder.name)
        if not _DELIVERY_ID.fullmatch(folder.name) or delivery.receipt() is None:
            continue
        key = idempotency_key("collection", agreement.id, delivery.delivery_id)
        if ledger.find(key) is not None:
            counts["recorded_before"] += 1
            continue
        if inbox is None:
            inbox = set(list_names(endpoint, agreement.sftp.remote_inbox))
        manifest = delivery.manifest()
        file_name = manifest.ciphertext_name or f"{delivery.name}.csv.gpg"
        if file_name in inbox:
            counts["awaiting_collection"] += 1
            continue
        ledger.append(
            _entry(
                agreement,
                "collection",
                run,
                occurred_at=datetime.now(UTC),
                file_name=file_name,
                ciphertext_sha256=manifest.ciphertext_sha256,
                row_count=manifest.row_count,
                details={"observed": "left_inbox"},
                idempotency_key=key,
            )
        )
        counts["collected"] += 1
        log.info("%s: %s was collected by %s", agreement.id, file_name, agreement.partner.code)
    return counts


def _quarantine_message(store: UPath, agreement: Agreement, name: str) -> str:
    reason = quarantine_reason(store, agreement, name) or {}
    rows = reason.get("row_numbers") or []
    shown = f"; rows {', '.join(map(str, rows[:20]))}" if rows else ""
    more = f" and {reason.get('rows_with_problems', 0) - 20} more" if len(rows) > 20 else ""
    return f"{name}: quarantined by rule {reason.get('rule')!r} ({reason.get('detail')}){shown}{more}"


def run_problems(
    store: UPath,
    agreement: Agreement,
    names: Sequence[str],
    *,
    quarantined: Sequence[str] = (),
    expected: str | None = None,
    refused: int = 0,
) -> list[str]:
    """Why a receive run must fail: quarantined or unprocessed returns, refused entries, a missing answer.

    ``names`` were fetched for processing, ``quarantined`` were quarantined as they were fetched (a second,
    different answer to a delivery already taken in). Each message names the file, the rule and the row
    numbers (from ``reason.json``), never a value.
    """
    problems: list[str] = [_quarantine_message(store, agreement, name) for name in dict.fromkeys(quarantined)]
    wanted = list(dict.fromkeys([*names, *([expected] if expected else [])]))
    for name in wanted:
        state, _ = handled_state(store, agreement, name)
        if state == "accepted":
            continue
        if state == "quarantined":
            problems.append(_quarantine_message(store, agreement, name))
        elif state == "pending":
            problems.append(f"{name}: fetched but not processed")
        elif name == expected:
            problems.append(f"{name}: the return for this run's delivery has not arrived")
    if refused:
        problems.append(
            f"{refused} entr{'y' if refused == 1 else 'ies'} in {agreement.sftp.remote_outbox} refused "
            f"(see quarantine/returns/{agreement.id}/refused-*/reason.json)"
        )
    return problems
