"""Fetching returns from the partner's outbox: safe names, archived whole, recorded once."""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from upath import UPath

from supporting_families.audit import Ledger, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.receive.deadlines import _alert_if_late, _lateness
from supporting_families.receive.quarantine import _quarantine_archived, _write_quarantine, handled_state
from supporting_families.receive.records import (
    QUARANTINE_RULES,
    Received,
    ReturnPaths,
    ReturnState,
    RunInfo,
    _entry,
    delivery_id_of,
    ledger_file_name,
    return_file_name,
)
from supporting_families.receive.remote import name_sha256, set_aside
from supporting_families.receive.validate import (
    MIB,
    ReturnRejected,
)
from supporting_families.share.delivery import upload
from supporting_families.store.io import (
    private_tempdir,
    sha256_of,
    write_bytes_atomic,
)
from supporting_families.transport.paths import unsafe_name_reason
from supporting_families.transport.sftp import (
    FetchedFile,
    RejectedFile,
    SftpEndpoint,
    fetch,
    list_names,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchSummary:
    """What one fetch took and refused. Names are the agreement's own pattern, never a refused name."""

    #: Returns archived under returns/ (new now, or from an earlier try) or already handled: process them.
    fetched: tuple[str, ...]
    #: Returns quarantined at fetch (a different file under a name already taken in, ...).
    quarantined: tuple[str, ...]
    #: Entries refused (hostile name, not a file, too large): counts by reason; set aside on the server.
    refused: Mapping[str, int] = field(default_factory=dict)
    #: Files still being written by the partner: left for the next try.
    changing: int = 0
    late: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "fetched": len(self.fetched),
            "quarantined_at_fetch": len(self.quarantined),
            "refused": sum(self.refused.values()),
            "changing": self.changing,
            "late": self.late,
        }


def fetch_returns(
    store: UPath,
    agreement: Agreement,
    endpoint: SftpEndpoint,
    *,
    ledger: Ledger,
    run: RunInfo | None = None,
    delivery_id: str | None = None,
    attempts: int = 4,
    backoff: float = 2.0,
) -> FetchSummary:
    """Fetch the return for ``delivery_id`` (or every return when None) from the partner's outbox.

    Each new file is archived whole under ``returns/<agreement>/<file>/`` with ``received.json`` and
    recorded as ``return_received``. Entries refused by the safe fetch (and, when only one delivery's file
    is fetched, unsafe names matching the agreement's pattern seen in a listing) are set aside on the
    server and recorded as ``quarantine``.
    """
    outbox = agreement.sftp.remote_outbox
    pattern = return_file_name(agreement, delivery_id) if delivery_id else agreement.returns.file_pattern
    # Ciphertext is the plaintext plus a few hundred bytes of OpenPGP framing (no compression is used).
    cap = agreement.returns.max_size_mib * MIB + MIB
    fetched: list[str] = []
    quarantined: list[str] = []
    late = 0
    with private_tempdir("sf-fetch-") as tmp:
        result = fetch(endpoint, outbox, pattern, tmp, max_bytes=cap, attempts=attempts, backoff=backoff)
        for file in result.fetched:
            state, received = _take_in(store, agreement, file, ledger=ledger, run=run)
            (quarantined if state == "quarantined" else fetched).append(file.name)
            late += int(bool(received and received.late))
    refused = [r for r in result.rejected if r.reason in ("unsafe_name", "not_regular_file", "too_large")]
    changing = sum(1 for r in result.rejected if r.reason == "changed_while_reading")
    conflicts = [r for r in result.rejected if r.reason == "local_conflict"]
    if conflicts:  # a fresh temporary folder cannot hold another file: a bug, not the partner's doing
        raise RuntimeError(f"{agreement.id}: {len(conflicts)} local conflict(s) in a fresh fetch folder")
    if delivery_id is not None:
        refused += _unsafe_in_listing(
            endpoint, agreement, already={r.name for r in refused}, attempts=attempts
        )
    by_reason: dict[str, int] = {}
    for rejected in refused:
        _refuse(store, agreement, endpoint, rejected, ledger=ledger, run=run)
        by_reason[rejected.reason] = by_reason.get(rejected.reason, 0) + 1
    summary = FetchSummary(tuple(fetched), tuple(quarantined), by_reason, changing, late)
    log.info("%s: fetch %s", agreement.id, summary.counts())
    return summary


def _unsafe_in_listing(
    endpoint: SftpEndpoint, agreement: Agreement, *, already: set[str], attempts: int
) -> list[RejectedFile]:
    """Unsafe names matching the agreement's pattern, which a fetch of one delivery's file does not see."""
    names = list_names(endpoint, agreement.sftp.remote_outbox, attempts=attempts)
    found: list[RejectedFile] = []
    for name in names:
        reason = unsafe_name_reason(name)
        if name in already or reason is None or reason.startswith("hidden"):
            continue  # hidden names are our own set-aside files and partners' in-progress uploads
        if fnmatch.fnmatchcase(name, agreement.returns.file_pattern) or reason in (
            "path separator",
            "control or invisible character",
        ):
            found.append(RejectedFile(name, "unsafe_name", reason))
    return found


def _refuse(
    store: UPath,
    agreement: Agreement,
    endpoint: SftpEndpoint,
    rejected: RejectedFile,
    *,
    ledger: Ledger,
    run: RunInfo | None,
) -> None:
    """Record a refused entry (never downloaded), set it aside on the server and note it in quarantine/."""
    digest = name_sha256(rejected.name)
    safe = unsafe_name_reason(rejected.name) is None
    set_aside_as = set_aside(endpoint, agreement.sftp.remote_outbox, rejected.name)
    reason = {
        "agreement_id": agreement.id,
        "rule": rejected.reason,
        "rule_description": QUARANTINE_RULES[rejected.reason],
        # The detail is the fetch's own text ("parent reference '..'", "symbolic link", sizes): no value.
        "detail": rejected.detail,
        "name_sha256": digest,
        # Escaped and truncated: safe to show, and what an engineer needs to find the entry.
        "printable_name": rejected.printable_name,
        "bytes": rejected.size,
        "set_aside_as": set_aside_as,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    folder = store / "quarantine" / "returns" / agreement.id / f"refused-{digest[:16]}"
    write_bytes_atomic(folder / "reason.json", json.dumps(reason, indent=2, sort_keys=True).encode() + b"\n")
    ledger.append(
        _entry(
            agreement,
            "quarantine",
            run,
            occurred_at=datetime.now(UTC),
            file_name=ledger_file_name(agreement, rejected.name) if safe else "unsafe-name",
            details={"rule": rejected.reason, "name_sha256": digest, "set_aside": set_aside_as is not None},
            idempotency_key=idempotency_key(
                "quarantine", agreement.id, "refused", digest, str(rejected.size)
            ),
        )
    )
    # The name itself stays in reason.json (in the quarantine, with the data): the log gets its hash.
    log.error(
        "%s: refused an entry (name sha256 %s) in %s (%s: %s)%s",
        agreement.id,
        digest,
        agreement.sftp.remote_outbox,
        rejected.reason,
        rejected.detail,
        f", set aside as {set_aside_as}" if set_aside_as else ", left in place",
    )


def _take_in(
    store: UPath, agreement: Agreement, file: FetchedFile, *, ledger: Ledger, run: RunInfo | None
) -> tuple[ReturnState, Received | None]:
    """Archive one fetched file (once per hash) and record it; its state afterwards."""
    paths = ReturnPaths(store, agreement.id, file.name)
    state, known = handled_state(store, agreement, file.name)
    if known is not None and known.ciphertext_sha256 == file.sha256 and state in ("accepted", "quarantined"):
        log.info("%s: name sha256 %s was already %s", agreement.id, name_sha256(file.name), state)
        return state, known
    delivery_id = delivery_id_of(agreement, file.name)
    late, days = _lateness(store, agreement, delivery_id, file.mtime)
    received = Received(
        name=file.name,
        ciphertext_sha256=file.sha256,
        size=file.size,
        arrived_at=file.mtime,
        fetched_at=datetime.now(UTC),
        delivery_id=delivery_id,
        late=late,
        days_after_delivery=days,
    )
    if state == "accepted":
        # The answer for this delivery was taken in already; a second, different answer cannot replace it
        # silently (the register holds the first one's flags), so it is kept aside for a person to decide.
        _record_received(agreement, received, ledger=ledger, run=run)
        _write_quarantine(
            store,
            agreement,
            file.local_path,
            received,
            ReturnRejected(file.name, "already_received", "a different file under this name was taken in"),
            ledger=ledger,
            run=run,
        )
        return "quarantined", received
    if state == "pending" and known is not None and known.ciphertext_sha256 != file.sha256:
        # An earlier try archived another version that was never processed: keep it, in quarantine.
        _quarantine_archived(
            store,
            agreement,
            paths,
            known,
            ReturnRejected(file.name, "superseded", "replaced by the partner before it was processed"),
            ledger=ledger,
            run=run,
        )
    elif state == "pending" and known is not None:
        # Archived by an earlier try that may have died before its ledger entry: the entry's idempotency
        # key makes this record it exactly once, whether or not that try got that far.
        _record_received(agreement, known, ledger=ledger, run=run)
        return "pending", known
    elif state == "pending":
        return "pending", known
    upload(file.local_path, paths.original)
    if sha256_of(paths.original) != file.sha256:
        raise RuntimeError(
            f"{agreement.id}: the archived copy of {file.name} does not match what was fetched"
        )
    write_bytes_atomic(paths.received_path, received.to_json())
    _record_received(agreement, received, ledger=ledger, run=run)
    _alert_if_late(agreement, received)
    log.info(
        "%s: archived name sha256 %s (%d bytes, sha256 %s)",
        agreement.id,
        name_sha256(file.name),
        file.size,
        file.sha256,
    )
    return "pending", received


def _record_received(
    agreement: Agreement, received: Received, *, ledger: Ledger, run: RunInfo | None
) -> None:
    details: dict[str, Any] = {"bytes": received.size}
    if received.late is not None:
        details |= {"late": received.late, "days_after_delivery": received.days_after_delivery}
        details["deadline_days"] = agreement.returns.deadline_days
    ledger.append(
        _entry(
            agreement,
            "return_received",
            run,
            occurred_at=received.arrived_at,
            file_name=ledger_file_name(agreement, received.name),
            ciphertext_sha256=received.ciphertext_sha256,
            details=details,
            idempotency_key=idempotency_key(
                "return_received", agreement.id, received.name, received.ciphertext_sha256
            ),
        )
    )
