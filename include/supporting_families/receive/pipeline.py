"""Receive a partner's return: fetch safely, archive, verify, validate, reconcile, merge, or quarantine.

One return answers one delivery and is named after it (docs/STORE.md):
``<return prefix>-<delivery id>.csv.gpg``, the agreement's ``returns.file_pattern`` with its one ``*`` being
the delivery id. The steps, each idempotent per (agreement, file name, SHA-256 of the file as received):

1. :func:`fetch_returns`: download from the partner's outbox with the core SFTP client (host key pinned,
   names checked, symbolic links never followed, a size cap), archive the encrypted original whole under
   ``returns/<agreement>/<file>/`` with ``received.json`` (bytes, hash, when the partner finished writing
   it), and record ``return_received`` in the ledger. Entries refused for their name, type or size are set
   aside in the outbox and recorded as ``quarantine``.
2. :func:`process_return`: decrypt and verify against the partner's pinned fingerprint (no MDC, a wrong or
   missing signature, tampering: refused), validate strictly (``receive_validate``), then for a
   per-reference return reconcile against the delivery's ``references.parquet`` (``receive_reconcile``),
   write ``classified.parquet`` and merge the accepted flags into ``register/partner_flags/``; for a
   receipt (ONS) check the row count and hash against the delivery's manifest. ``reconciliation.json`` is
   written last and marks the return as taken in; the ledger gets a ``reconciliation`` entry.
   Anything wrong with the file moves it to ``quarantine/returns/<agreement>/<file>/`` (the encrypted
   original whole, ``reason.json``, ``report.csv`` with row numbers and no values), records ``quarantine``
   and raises :class:`ReturnQuarantined`; the register is untouched.
3. :func:`clear_outbox`: remove returns taken in or quarantined from the outbox (receive_remote explains
   why), so a bad file is never picked up again and a corrected one is taken in normally.
4. :func:`record_collections`: a ``collection`` entry for each delivery that has left the partner's inbox.

Deadlines: a return that arrives more than ``returns.deadline_days`` after its delivery is
still taken in (its answers are still true), but it is marked late in ``received.json``,
``reconciliation.json`` and the ledger, and logged as an alert; the receive DAG also raises a deadline
alert while it is still waiting (see dags/receive_agreements.py).

Nothing here logs or raises with a value from a return: file names, counts, hashes, rules and row numbers.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.audit import EntryKind, Ledger, NewEntry, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.receive.reconcile import (
    CLASSES,
    PARTNER_FLAGS_SCHEMA,
    Reconciliation,
    ReconciliationError,
    partner_flags,
    reconcile,
)
from supporting_families.receive.remote import Collected, name_sha256, remove_collected, set_aside
from supporting_families.receive.validate import (
    MIB,
    PROBLEMS_SCHEMA,
    RETURN_FILE_RULES,
    RETURN_ROW_RULES,
    ReturnRejected,
    ValidatedReturn,
    validate_return,
)
from supporting_families.share.delivery import DELIVERY_ID_PATTERN, Delivery, local_file, upload
from supporting_families.share.package import Manifest
from supporting_families.store.io import (
    delete_file,
    private_tempdir,
    sha256_of,
    write_bytes_atomic,
    write_parquet,
)
from supporting_families.transport.openpgp import (
    DecryptionError,
    IntegrityCheckFailed,
    NotIntegrityProtected,
    SignatureError,
    WeakAlgorithm,
    decrypt_and_verify,
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

__all__ = [
    "CLASSES",
    "PARTNER_FLAGS_SCHEMA",
    "QUARANTINE_RULES",
    "FetchSummary",
    "MergeConflict",
    "MergeResult",
    "Received",
    "Reconciliation",
    "ReconciliationError",
    "ReturnOutcome",
    "ReturnPaths",
    "ReturnQuarantined",
    "ReturnRejected",
    "RunInfo",
    "ValidatedReturn",
    "check_receipt",
    "clear_outbox",
    "deadline_entry",
    "delivery_id_of",
    "fetch_returns",
    "handled_state",
    "merge_flags",
    "process_return",
    "quarantine_reason",
    "read_references",
    "reconcile",
    "record_collections",
    "return_file_name",
    "run_problems",
    "validate_return",
]

#: Every rule a quarantined return can name: the file and row rules of validation, and these.
QUARANTINE_RULES: Final[dict[str, str]] = {
    **RETURN_FILE_RULES,
    "file_name": "the name matches the agreement's pattern but carries no delivery id (d + 16 letters a-p)",
    "unknown_delivery": "the return names a delivery this agreement never made",
    "signature": "the signature is missing, bad, or not by the partner's pinned key",
    "integrity": "the ciphertext is not integrity protected or was modified",
    "decryption": "the file is not a message encrypted to the council's key",
    "receipt_mismatch": "the receipt's row count or hash differs from the delivery's manifest",
    "already_received": "a different file under this name was already taken in",
    "superseded": "an earlier file under this name was replaced by the partner before it was processed",
    "unsafe_name": "the remote name is unsafe (path separator, '..', control character, ...)",
    "not_regular_file": "the remote entry is not a regular file (e.g. a symbolic link)",
    "too_large": "the file is larger than the agreement's returns.max_size_mib",
}

_DELIVERY_ID: Final = re.compile(DELIVERY_ID_PATTERN)
#: Row numbers kept in reason.json (report.csv has them all).
_REASON_ROWS: Final = 100
_DAY: Final = timedelta(days=1)

ReturnState = Literal["accepted", "quarantined", "pending", "absent"]


# -- names and paths ---------------------------------------------------------------------------------


def return_file_name(agreement: Agreement, delivery_id: str) -> str:
    """The name of the return answering ``delivery_id``: the agreement's pattern with the id for its ``*``."""
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ValueError("a delivery id is 'd' and 16 lower-case hex digits")
    return agreement.returns.file_pattern.replace("*", delivery_id, 1)


def delivery_id_of(agreement: Agreement, name: str) -> str | None:
    """The delivery id a return's name carries, or None when it does not match ``<prefix>-<id><suffix>``."""
    prefix, _, suffix = agreement.returns.file_pattern.partition("*")
    if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) < len(prefix) + len(suffix):
        return None
    middle = name[len(prefix) : len(name) - len(suffix)]
    return middle if _DELIVERY_ID.fullmatch(middle) else None


def _stem(name: str) -> str:
    for suffix in (".csv.gpg", ".csv.pgp", ".gpg", ".pgp"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class ReturnPaths:
    """Where one return lives in the store once fetched (docs/STORE.md)."""

    store: UPath
    agreement_id: str
    name: str

    @property
    def folder(self) -> UPath:
        return self.store / "returns" / self.agreement_id / self.name

    @property
    def original(self) -> UPath:
        """The encrypted file exactly as the partner left it."""
        return self.folder / self.name

    @property
    def received_path(self) -> UPath:
        return self.folder / "received.json"

    @property
    def reconciliation_path(self) -> UPath:
        """Written last: its presence means the return was taken in."""
        return self.folder / "reconciliation.json"

    @property
    def classified_path(self) -> UPath:
        return self.folder / "classified.parquet"

    @property
    def flags_path(self) -> UPath:
        return self.store / "register" / "partner_flags" / f"{self.agreement_id}__{_stem(self.name)}.parquet"

    @property
    def quarantine_base(self) -> UPath:
        return self.store / "quarantine" / "returns" / self.agreement_id / self.name

    def quarantine_folders(self) -> list[UPath]:
        """This name's quarantine folders: ``<name>/`` and, for later bad files, ``<name>~<sha prefix>/``."""
        parent = self.quarantine_base.parent
        if not parent.exists():
            return []
        return sorted(
            (p for p in parent.iterdir() if p.name == self.name or p.name.startswith(f"{self.name}~")),
            key=lambda p: p.name,
        )


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Which DAG run, task and try acted, for the ledger (all optional outside Airflow)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    triggered_by: str | None = None

    def columns(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Received:
    """What the council knows about a fetched return before opening it (``received.json``)."""

    name: str
    ciphertext_sha256: str
    size: int
    #: The server's modification time: when the partner finished writing the file.
    arrived_at: datetime
    fetched_at: datetime
    delivery_id: str | None
    #: None when the delivery is unknown (no receipt to count from).
    late: bool | None
    days_after_delivery: int | None

    def to_json(self) -> bytes:
        data = asdict(self)
        data["arrived_at"] = self.arrived_at.isoformat()
        data["fetched_at"] = self.fetched_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, text: str) -> Received:
        data = json.loads(text)
        data["arrived_at"] = datetime.fromisoformat(data["arrived_at"])
        data["fetched_at"] = datetime.fromisoformat(data["fetched_at"])
        return cls(**data)

    @property
    def collected(self) -> Collected:
        return Collected(self.name, self.size, self.arrived_at)


def _read_json(path: UPath) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _entry(agreement: Agreement, kind: EntryKind, run: RunInfo | None, **columns: Any) -> NewEntry:
    return NewEntry.for_agreement(agreement, kind=kind, **{**(run.columns() if run else {}), **columns})


# -- deadlines ----------------------------------------------------------------------------------------


def _lateness(
    store: UPath, agreement: Agreement, delivery_id: str | None, arrived_at: datetime
) -> tuple[bool | None, int | None]:
    """Whether a return arriving at ``arrived_at`` missed ``returns.deadline_days`` after its delivery."""
    if delivery_id is None:
        return None, None
    receipt = Delivery(store, agreement.id, delivery_id).receipt()
    if receipt is None or "delivered_at" not in receipt:
        return None, None
    delivered_at = datetime.fromisoformat(str(receipt["delivered_at"]))
    late = arrived_at > delivered_at + timedelta(days=agreement.returns.deadline_days)
    return late, max(0, (arrived_at - delivered_at) // _DAY)


def _alert_if_late(agreement: Agreement, received: Received) -> None:
    if received.late:
        # a late return raises a visible alert rather than passing silently.
        log.error(
            "DEADLINE ALERT: %s arrived %s days after its delivery; %s's deadline is %s days",
            received.name,
            received.days_after_delivery,
            agreement.id,
            agreement.returns.deadline_days,
        )


def deadline_entry(
    agreement: Agreement,
    *,
    outcome: Literal["deadline_missed", "no_return"],
    occurred_at: datetime,
    run: RunInfo,
    delivery_id: str | None = None,
) -> NewEntry:
    """The ledger entry for a return that had not arrived by the deadline (or by the end of waiting).

    Recorded as a ``reconciliation`` whose outcome says nothing came back: at that moment every reference
    of the delivery is ``no_trace``.
    """
    details: dict[str, Any] = {"outcome": outcome, "deadline_days": agreement.returns.deadline_days}
    if delivery_id is not None:
        details["expected_file"] = return_file_name(agreement, delivery_id)
    return _entry(
        agreement,
        "reconciliation",
        run,
        occurred_at=occurred_at,
        details=details,
        idempotency_key=idempotency_key(
            "reconciliation", outcome, agreement.id, run.run_id or "", delivery_id or ""
        ),
    )


# -- fetch --------------------------------------------------------------------------------------------


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
            file_name=rejected.name if safe else "unsafe-name",
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
        log.info("%s: %s was already %s", agreement.id, file.name, state)
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
    log.info("%s: archived %s (%d bytes, sha256 %s)", agreement.id, file.name, file.size, file.sha256)
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
            file_name=received.name,
            ciphertext_sha256=received.ciphertext_sha256,
            details=details,
            idempotency_key=idempotency_key(
                "return_received", agreement.id, received.name, received.ciphertext_sha256
            ),
        )
    )


# -- state --------------------------------------------------------------------------------------------


def _quarantine_records(paths: ReturnPaths) -> Iterator[tuple[UPath, dict[str, Any]]]:
    for folder in paths.quarantine_folders():
        reason = _read_json(folder / "reason.json")
        if reason is not None:
            yield folder, reason


def handled_state(store: UPath, agreement: Agreement, name: str) -> tuple[ReturnState, Received | None]:
    """Whether ``name`` was taken in, quarantined (the latest), is archived but unprocessed, or absent."""
    paths = ReturnPaths(store, agreement.id, name)
    if paths.reconciliation_path.exists():
        return "accepted", Received.from_json(paths.received_path.read_text())
    if paths.received_path.exists():
        return "pending", Received.from_json(paths.received_path.read_text())
    records = sorted(_quarantine_records(paths), key=lambda r: str(r[1].get("quarantined_at", "")))
    if records:
        folder, _ = records[-1]
        received = folder / "received.json"
        return "quarantined", Received.from_json(received.read_text()) if received.exists() else None
    return "absent", None


def _quarantined_before(store: UPath, agreement: Agreement, name: str) -> ReturnQuarantined:
    """The quarantine of an earlier try, raised again so a retried task stays failed."""
    paths = ReturnPaths(store, agreement.id, name)
    folder, reason = sorted(_quarantine_records(paths), key=lambda r: str(r[1].get("quarantined_at", "")))[-1]
    problems = PROBLEMS_SCHEMA.empty_table()
    report = folder / "report.csv"
    if report.exists():
        rows = [r for r in csv.DictReader(io.StringIO(report.read_text())) if r["row_number"]]
        problems = pa.table(
            {
                "row_number": pa.array([int(r["row_number"]) for r in rows], pa.int64()),
                "column": pa.array([r["column"] for r in rows], pa.string()),
                "rule": pa.array([r["rule"] for r in rows], pa.string()),
            },
            schema=PROBLEMS_SCHEMA,
        )
    relative = str(folder.path).removeprefix(str(store.path)).lstrip("/")
    return ReturnQuarantined(name, str(reason.get("rule")), str(reason.get("detail")), problems, relative)


def quarantine_reason(store: UPath, agreement: Agreement, name: str) -> dict[str, Any] | None:
    """The most recent ``reason.json`` of a quarantined return (no values: rule, rows, counts, hashes)."""
    paths = ReturnPaths(store, agreement.id, name)
    records = sorted(_quarantine_records(paths), key=lambda r: str(r[1].get("quarantined_at", "")))
    return records[-1][1] if records else None


# -- quarantine ---------------------------------------------------------------------------------------


class ReturnQuarantined(ReturnRejected):
    """A return was rejected and moved to quarantine; ``folder`` is its place in the store."""

    def __init__(
        self, file: str, rule: str, detail: str, problems: pa.Table | None = None, folder: str = ""
    ) -> None:
        self.folder = folder
        super().__init__(file, rule, detail, problems)

    def _message(self) -> str:
        return super()._message() + (f"; quarantined in {self.folder}" if self.folder else "")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.rule, self.detail, self.problems, self.folder))


def _report_csv(file: str, problems: pa.Table, rule: str) -> bytes:
    """``report.csv``: file, row_number, column, rule; never a value from the file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "row_number", "column", "rule"])
    if problems.num_rows == 0:
        writer.writerow([file, "", "", rule])
    for row in problems.to_pylist():
        writer.writerow([file, row["row_number"], row["column"], row["rule"]])
    return out.getvalue().encode("utf-8")


def _quarantine_target(paths: ReturnPaths, sha256: str) -> UPath:
    base = paths.quarantine_base
    reason = _read_json(base / "reason.json")
    if reason is None or reason.get("ciphertext_sha256") == sha256:
        return base
    # An earlier, different bad file under the same name keeps its folder: nothing is lost.
    return base.with_name(f"{paths.name}~{sha256[:16]}")


def _write_quarantine(
    store: UPath,
    agreement: Agreement,
    original: Path,
    received: Received,
    exc: ReturnRejected,
    *,
    ledger: Ledger,
    run: RunInfo | None,
) -> ReturnQuarantined:
    paths = ReturnPaths(store, agreement.id, received.name)
    target = _quarantine_target(paths, received.ciphertext_sha256)
    upload(original, target / received.name)
    if sha256_of(target / received.name) != received.ciphertext_sha256:
        raise RuntimeError(f"{agreement.id}: the quarantined copy of {received.name} does not match")
    write_bytes_atomic(target / "received.json", received.to_json())
    write_bytes_atomic(target / "report.csv", _report_csv(received.name, exc.problems, exc.rule))
    rows = exc.row_numbers
    reason = {
        "file": received.name,
        "agreement_id": agreement.id,
        "rule": exc.rule,
        "rule_description": QUARANTINE_RULES.get(exc.rule, ""),
        "detail": exc.detail,
        "row_rules": sorted(set(exc.problems.column("rule").to_pylist())) if exc.problems.num_rows else [],
        "row_rule_descriptions": {
            r: RETURN_ROW_RULES.get(r, "") for r in set(exc.problems.column("rule").to_pylist())
        },
        "problems": exc.problems.num_rows,
        "row_numbers": rows[:_REASON_ROWS],
        "rows_with_problems": len(rows),
        "ciphertext_sha256": received.ciphertext_sha256,
        "bytes": received.size,
        "delivery_id": received.delivery_id,
        "late": received.late,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    # reason.json last: its presence marks the quarantine as complete.
    write_bytes_atomic(target / "reason.json", json.dumps(reason, indent=2, sort_keys=True).encode() + b"\n")
    relative = str(target.path).removeprefix(str(store.path)).lstrip("/")
    ledger.append(
        _entry(
            agreement,
            "quarantine",
            run,
            occurred_at=datetime.now(UTC),
            file_name=received.name,
            ciphertext_sha256=received.ciphertext_sha256,
            details={"rule": exc.rule, "problems": exc.problems.num_rows, "rows_with_problems": len(rows)},
            idempotency_key=idempotency_key(
                "quarantine", agreement.id, received.name, received.ciphertext_sha256
            ),
        )
    )
    quarantined = ReturnQuarantined(exc.file, exc.rule, exc.detail, exc.problems, relative)
    log.error("%s: %s", agreement.id, quarantined)
    return quarantined


def _quarantine_archived(
    store: UPath,
    agreement: Agreement,
    paths: ReturnPaths,
    received: Received,
    exc: ReturnRejected,
    *,
    ledger: Ledger,
    run: RunInfo | None,
) -> ReturnQuarantined:
    """Move an archived return from returns/ to quarantine/ (copy, check, then remove the archive)."""
    with local_file(paths.original) as original:
        quarantined = _write_quarantine(store, agreement, original, received, exc, ledger=ledger, run=run)
    for leftover in (paths.original, paths.received_path, paths.classified_path):
        if leftover.exists():
            delete_file(leftover)
    with contextlib.suppress(OSError, NotImplementedError):
        paths.folder.rmdir()  # an object store has no folders to remove
    return quarantined


# -- process ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeResult:
    path: UPath
    #: Real flags only (rows with a sub-criterion), never the answer markers beside them.
    flags: int
    status: Literal["merged", "already_merged"]


class MergeConflict(RuntimeError):
    """A different return under the same name was merged before (the register keeps the first)."""


def merge_flags(
    store: UPath,
    agreement: Agreement,
    accepted: pa.Table,
    *,
    return_file: str,
    file_sha256: str,
    answered_at: datetime | None,
) -> MergeResult:
    """Write the accepted rows' flags, and an answer marker per matched person, to
    ``register/partner_flags/<agreement>__<return stem>.parquet`` (receive_reconcile.partner_flags).

    ``answered_at`` is when the delivery this return answers was delivered (None: unknown, the answers
    then supersede nothing). Atomic (the whole file appears at once) and idempotent per file hash: the same
    return merged again changes nothing; a different one under the same name is a :class:`MergeConflict`.
    """
    path = ReturnPaths(store, agreement.id, return_file).flags_path
    if path.exists():
        with path.open("rb") as fh:
            metadata = pq.read_metadata(fh)
        written = metadata.schema.to_arrow_schema().metadata or {}
        if written.get(b"file_sha256", b"").decode() == file_sha256:
            # The flag count is kept in the metadata because the file also holds markers; a file merged
            # before markers existed has none, so its row count is its flag count.
            return MergeResult(path, int(written.get(b"flags", metadata.num_rows)), "already_merged")
        raise MergeConflict(f"{agreement.id}: {path.name} was merged from a different file")
    rows = partner_flags(accepted, agreement, file_sha256, answered_at=answered_at)
    flags = rows.num_rows - rows.column("sub_criterion").null_count
    rows = rows.replace_schema_metadata(
        {
            "file_sha256": file_sha256,
            "return_file": return_file,
            "agreement_id": agreement.id,
            "flags": str(flags),
        }
    )
    write_parquet(rows, path)
    log.info(
        "%s: merged %d partner flags and %d answers from %s",
        agreement.id,
        flags,
        rows.num_rows - flags,
        return_file,
    )
    return MergeResult(path, flags, "merged")


def _delivered_at(receipt: Mapping[str, Any] | None) -> datetime | None:
    """When a delivery was delivered, by its receipt.json (None if the receipt does not say)."""
    value = (receipt or {}).get("delivered_at")
    return datetime.fromisoformat(str(value)) if value else None


def check_receipt(validated: ValidatedReturn, manifest: Manifest, agreement: Agreement) -> dict[str, Any]:
    """A receipt's row count and hash against the delivery's manifest; ReturnRejected on any difference."""
    receipt = agreement.returns.receipt
    if receipt is None:
        raise ValueError(f"{agreement.id}: the return is not a receipt")
    row = validated.table.to_pylist()[0]
    rows = int(row[receipt.row_count_column])
    expected_sha = manifest.plaintext_sha256 if receipt.hash_of == "plaintext" else manifest.ciphertext_sha256
    problems: list[str] = []
    if rows != manifest.row_count:
        problems.append(f"{receipt.row_count_column} {rows} differs from the manifest's {manifest.row_count}")
    if str(row[receipt.sha256_column]) != expected_sha:
        problems.append(f"{receipt.sha256_column} differs from the manifest's {receipt.hash_of} SHA-256")
    if problems:
        raise ReturnRejected(validated.file, "receipt_mismatch", "; ".join(problems))
    return {"rows_received": rows, "manifest_rows": manifest.row_count, "hash_of": receipt.hash_of}


@dataclass(frozen=True)
class ReturnOutcome:
    """What taking in one return did: counts only (the summary is what XCom carries)."""

    file: str
    agreement_id: str
    delivery_id: str
    kind: Literal["per_reference", "receipt"]
    status: Literal["accepted", "already_accepted"]
    rows: int
    counts: Mapping[str, int]
    flags_merged: int
    late: bool | None
    days_after_delivery: int | None
    ciphertext_sha256: str
    plaintext_sha256: str

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rows": self.rows,
            **dict(self.counts),
            "flags_merged": self.flags_merged,
            "late": bool(self.late),
        }

    def to_json(self) -> bytes:
        data = asdict(self)
        data["counts"] = dict(self.counts)
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, text: str) -> ReturnOutcome:
        data = json.loads(text)
        data["status"] = "already_accepted"
        return cls(**data)


def _decrypt(
    cipher: Path, plain: Path, agreement: Agreement, *, gnupg_home: Path, passphrase: str, name: str
) -> str:
    """Decrypt and verify; the plaintext's SHA-256. Faults of the file become ReturnRejected.

    Problems on the council's side (a missing or expired pinned partner key in our keyring, a wrong
    passphrase, no gpg) are not the file's fault and are raised as they are.
    """
    try:
        result = decrypt_and_verify(
            cipher,
            plain,
            expected_signer_fingerprint=agreement.openpgp.partner_fingerprint,
            passphrase=passphrase,
            gnupg_home=gnupg_home,
            max_plaintext_bytes=agreement.returns.max_size_mib * MIB,
        )
    except (IntegrityCheckFailed, NotIntegrityProtected) as exc:
        raise ReturnRejected(name, "integrity", type(exc).__name__) from None
    except (SignatureError, WeakAlgorithm) as exc:
        raise ReturnRejected(name, "signature", type(exc).__name__) from None
    except DecryptionError as exc:
        if type(exc).__name__ == "PlaintextTooLarge":
            raise ReturnRejected(name, "too_large", f"over {agreement.returns.max_size_mib} MiB") from None
        raise ReturnRejected(name, "decryption", type(exc).__name__) from None
    return result.plaintext_sha256


def process_return(
    store: UPath,
    agreement: Agreement,
    name: str,
    *,
    gnupg_home: Path,
    passphrase: str,
    ledger: Ledger,
    run: RunInfo | None = None,
) -> ReturnOutcome:
    """Verify, validate, reconcile (or check the receipt) and merge one archived return.

    ``agreement`` must have its fingerprint resolved. Raises :class:`ReturnQuarantined` (after moving the
    file to quarantine and recording it) when the file is at fault; running it again for the same file
    returns the earlier outcome, or raises the same quarantine again.
    """
    paths = ReturnPaths(store, agreement.id, name)
    state, received = handled_state(store, agreement, name)
    if state == "accepted":
        return ReturnOutcome.from_json(paths.reconciliation_path.read_text())
    if state == "quarantined":
        raise _quarantined_before(store, agreement, name)
    if state == "absent" or received is None:
        raise FileNotFoundError(f"{agreement.id}: {name} was not fetched into the store")
    try:
        outcome = _take(store, agreement, paths, received, gnupg_home=gnupg_home, passphrase=passphrase)
    except ReturnRejected as exc:
        raise _quarantine_archived(store, agreement, paths, received, exc, ledger=ledger, run=run) from None
    # A late arrival was alerted when it was fetched; the entry below records it again with the counts.
    ledger.append(_reconciliation_entry(agreement, outcome, run))
    log.info("%s: took in %s: %s", agreement.id, name, outcome.summary())
    return outcome


def _take(
    store: UPath,
    agreement: Agreement,
    paths: ReturnPaths,
    received: Received,
    *,
    gnupg_home: Path,
    passphrase: str,
) -> ReturnOutcome:
    name = received.name
    delivery_id = delivery_id_of(agreement, name)
    if delivery_id is None:
        raise ReturnRejected(name, "file_name", f"the name does not fit {agreement.returns.file_pattern}")
    delivery = Delivery(store, agreement.id, delivery_id)
    receipt = delivery.receipt()
    if not delivery.manifest_path.exists() or receipt is None:
        raise ReturnRejected(name, "unknown_delivery", f"no delivery {delivery.name} was made")
    with local_file(paths.original) as cipher, private_tempdir("sf-return-") as tmp:
        plain = tmp / _stem(name)
        plaintext_sha256 = _decrypt(
            cipher, plain, agreement, gnupg_home=gnupg_home, passphrase=passphrase, name=name
        )
        validated = validate_return(plain, agreement, name=name)
    manifest = delivery.manifest()
    flags = 0
    counts: dict[str, int]
    if agreement.returns.kind == "receipt":
        checked = check_receipt(validated, manifest, agreement)
        counts = {"rows_received": checked["rows_received"], "manifest_rows": checked["manifest_rows"]}
    else:
        sent = read_references(delivery.references_path, agreement)
        reconciliation = reconcile(validated.table, sent, agreement)
        write_parquet(reconciliation.classified, paths.classified_path)
        # The answer is dated by the question (the delivery), not by when the file came back, so answers
        # to two deliveries are ordered as the questions were even if the returns arrive out of order.
        merged = merge_flags(
            store,
            agreement,
            reconciliation.accepted,
            return_file=name,
            file_sha256=received.ciphertext_sha256,
            answered_at=_delivered_at(receipt),
        )
        counts, flags = reconciliation.report(), merged.flags
    outcome = ReturnOutcome(
        file=name,
        agreement_id=agreement.id,
        delivery_id=delivery_id,
        kind=agreement.returns.kind,
        status="accepted",
        rows=validated.rows,
        counts=counts,
        flags_merged=flags,
        late=received.late,
        days_after_delivery=received.days_after_delivery,
        ciphertext_sha256=received.ciphertext_sha256,
        plaintext_sha256=plaintext_sha256,
    )
    write_bytes_atomic(paths.reconciliation_path, outcome.to_json())
    return outcome


def read_references(path: UPath, agreement: Agreement | None = None) -> pa.Table:
    """A delivery's ``references.parquet``, only the columns reconciliation needs (person id, reference)."""
    refers_to = "person_ref"
    if agreement is not None and agreement.returns.reference is not None:
        refers_to = agreement.returns.reference.refers_to
    with path.open("rb") as fh:
        return pq.read_table(fh, columns=["person_id", refers_to])


def _reconciliation_entry(agreement: Agreement, outcome: ReturnOutcome, run: RunInfo | None) -> NewEntry:
    details: dict[str, Any] = {
        "outcome": "receipt_confirmed" if outcome.kind == "receipt" else "reconciled",
        **dict(outcome.counts),
        "flags_merged": outcome.flags_merged,
        "delivery_file": f"sf-{agreement.id}-{outcome.delivery_id}.csv.gpg",
    }
    if outcome.late is not None:
        details |= {"late": outcome.late, "days_after_delivery": outcome.days_after_delivery}
    return _entry(
        agreement,
        "reconciliation",
        run,
        occurred_at=datetime.now(UTC),
        row_count=outcome.rows,
        file_name=outcome.file,
        plaintext_sha256=outcome.plaintext_sha256,
        ciphertext_sha256=outcome.ciphertext_sha256,
        details=details,
        idempotency_key=idempotency_key(
            "reconciliation", agreement.id, outcome.file, outcome.ciphertext_sha256
        ),
    )


# -- after processing ---------------------------------------------------------------------------------


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
