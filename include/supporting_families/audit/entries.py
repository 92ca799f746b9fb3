"""The ledger's entries: a new entry as a caller makes it, a recorded entry, an anchor, idempotency keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from supporting_families.config.agreements import Agreement

from supporting_families.audit.actors import STAFF_ID_PATTERN
from supporting_families.audit.canonical import (
    _REQUIRED,
    ENTRY_KINDS,
    HASHED_COLUMNS,
    EntryKind,
    _utc_text,
    hash_record,
)
from supporting_families.audit.errors import EntryValidationError
from supporting_families.audit.guard import (
    _CONTROL,
    _FIELD_NAME,
    _MAX_SAFE_INT,
    _SHA256,
    _SLUG,
    _TRIGGERED_BY,
    _check_details_into,
    _Problems,
)


def idempotency_key(kind: EntryKind, *parts: str) -> str:
    """A key for one event of one logical run, e.g. ``idempotency_key("disclosure", agreement_id, dag_id,
    run_id)``: a retry of the task gives the same key, so the ledger records the event once."""
    if not parts:
        raise ValueError("give at least one part (agreement, DAG and run ids)")
    # A plain hex digest on purpose: the personal-data guard reads any run of nine digits or a date-like run
    # inside a longer string as personal data, and run ids, hex ids and hashes contain such runs by chance.
    # The kind is hashed in, so keys of different kinds never meet.
    return hashlib.sha256("\n".join((kind, *parts)).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class NewEntry:
    """An event to record. The ledger adds ``seq``, ``entry_id``, ``recorded_at`` and the hashes."""

    kind: EntryKind
    #: When it happened (e.g. the rename that completed a delivery); timezone-aware.
    occurred_at: datetime
    agreement_id: str | None = None
    #: SHA-256 of the agreement file that governed (``Agreement.source_sha256``).
    agreement_sha256: str | None = None
    #: The partner's code, e.g. ``dwp``.
    partner: str | None = None
    #: The agreement's purpose, as the privacy notice words it.
    purpose: str | None = None
    legal_gateways: tuple[str, ...] = ()
    #: Names of the fields that left, in file order. Names, never values.
    fields: tuple[str, ...] = ()
    row_count: int | None = None
    plaintext_sha256: str | None = None
    ciphertext_sha256: str | None = None
    file_name: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    #: Who or what started the run (``timetable``, ``asset``, ``ui:<user>``): staff accountability, UK GDPR
    #: Article 5(2). Staff, never a data subject.
    triggered_by: str | None = None
    #: Counts, hashes, ids, field names and short codes only (see :func:`check_details`).
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    idempotency_key: str | None = None

    @classmethod
    def for_agreement(
        cls, agreement: Agreement, *, kind: EntryKind, occurred_at: datetime, **columns: Any
    ) -> NewEntry:
        """An entry citing ``agreement``: its id, file hash, partner, purpose and gateways, and for a
        disclosure its fields. ``details`` gets ``agreement_version`` (each disclosure records its version).
        """
        if agreement.source_sha256 is None:
            raise EntryValidationError(["agreement_sha256: the agreement was not loaded from a file"])
        details = {"agreement_version": agreement.version, **dict(columns.pop("details", {}))}
        defaults: dict[str, Any] = {
            "agreement_id": agreement.id,
            "agreement_sha256": agreement.source_sha256,
            "partner": agreement.partner.code,
            "purpose": agreement.purpose,
            "legal_gateways": tuple(agreement.legal_gateways),
        }
        if kind == "disclosure":
            defaults["fields"] = tuple(agreement.fields)
        return cls(kind=kind, occurred_at=occurred_at, details=details, **{**defaults, **columns})

    def validate(self) -> dict[str, Any]:
        """Check every column; return ``details`` as plain JSON. Raises :class:`EntryValidationError`, or
        :class:`PersonalDataError` when something looks like personal data."""
        problems = _Problems()
        if self.kind not in ENTRY_KINDS:
            problems.add("kind", f"not one of {', '.join(ENTRY_KINDS)}")
        if not isinstance(self.occurred_at, datetime):
            problems.add("occurred_at", "must be a datetime")
        elif self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            problems.add("occurred_at", "must be timezone-aware (UTC)")
        for name in _REQUIRED.get(self.kind, ()):
            value = getattr(self, name)
            if value is None or (isinstance(value, str | tuple | list) and not value):
                problems.add(name, f"required for a {self.kind} entry")
        self._check_columns(problems)
        details = _check_details_into(self.details, problems)
        if self.kind == "rights_action" and "action" not in details:
            problems.add("details.action", "a rights_action says which right (access, rectify, erase, ...)")
        if self.kind == "aggregate_release":
            for key in ("release_id", "sdc", "tables"):
                if key not in details:
                    problems.add(f"details.{key}", "an aggregate_release names its release, SDC and tables")
        problems.raise_if_any()
        return details

    def _check_columns(self, problems: _Problems) -> None:
        if self.agreement_id is not None and not (
            _SLUG.fullmatch(self.agreement_id) and len(self.agreement_id) <= 64
        ):
            problems.add("agreement_id", "not an agreement slug")
        if self.partner is not None and not (_SLUG.fullmatch(self.partner) and len(self.partner) <= 64):
            problems.add("partner", "not a partner code (a slug such as 'dwp')")
        for name in ("agreement_sha256", "plaintext_sha256", "ciphertext_sha256"):
            value = getattr(self, name)
            if value is not None and not _SHA256.fullmatch(value):
                problems.add(name, "not a lower-case hex SHA-256")
        if self.purpose is not None and (
            _CONTROL.search(self.purpose.replace("\n", " ")) or len(self.purpose) > 2000
        ):
            problems.add("purpose", "the agreement's purpose: at most 2000 characters, no control characters")
        for i, gateway in enumerate(self.legal_gateways):
            if not isinstance(gateway, str) or not gateway or len(gateway) > 100 or _CONTROL.search(gateway):
                problems.add(f"legal_gateways[{i}]", "a gateway's name, 1 to 100 characters")
        for i, name in enumerate(self.fields):
            if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
                problems.add(f"fields[{i}]", "a field name (snake_case), never a value", personal=True)
        for name in ("row_count", "try_number"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SAFE_INT
            ):
                problems.add(name, "a non-negative integer")
        # Names the platform makes: still checked, a file or run named after a person would leak them.
        checks: tuple[tuple[str, int], ...] = (
            ("file_name", 255),
            ("dag_id", 250),
            ("run_id", 250),
            ("task_id", 250),
            ("idempotency_key", 250),
        )
        for name, max_length in checks:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                problems.add(name, "a non-empty string")
                continue
            if name == "file_name" and ("/" in value or value in (".", "..")):
                problems.add(name, "a file name, not a path")
            problems.string(name, value, max_length=max_length)
        if self.triggered_by is not None and not STAFF_ID_PATTERN.fullmatch(self.triggered_by):
            problems.string("triggered_by", self.triggered_by, pattern=_TRIGGERED_BY)


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One recorded entry, as stored."""

    seq: int
    entry_id: str
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    agreement_id: str | None
    agreement_sha256: str | None
    partner: str | None
    purpose: str | None
    legal_gateways: tuple[str, ...]
    fields: tuple[str, ...]
    row_count: int | None
    plaintext_sha256: str | None
    ciphertext_sha256: str | None
    file_name: str | None
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    try_number: int | None
    triggered_by: str | None
    details: Mapping[str, Any] = field(hash=False)
    idempotency_key: str | None
    prev_hash: str
    entry_hash: str

    def hashed_record(self) -> dict[str, Any]:
        """The record the hash covers: every column but ``entry_hash``, in canonical JSON form."""
        record: dict[str, Any] = {name: getattr(self, name) for name in HASHED_COLUMNS}
        record["occurred_at"] = _utc_text(self.occurred_at)
        record["recorded_at"] = _utc_text(self.recorded_at)
        record["legal_gateways"] = list(self.legal_gateways)
        record["fields"] = list(self.fields)
        record["details"] = dict(self.details)
        return record

    def computed_hash(self) -> str:
        """The hash this entry's content should have; differs from ``entry_hash`` if it was edited."""
        return hash_record(self.hashed_record())

    def to_dict(self) -> dict[str, Any]:
        """Every column as JSON-ready values (what ``show`` prints; ``del .entry_hash`` re-verifies)."""
        return {**self.hashed_record(), "entry_hash": self.entry_hash}

    @classmethod
    def _from_row(cls, row: Mapping[Any, Any]) -> LedgerEntry:
        values = dict(row)
        values["legal_gateways"] = tuple(values["legal_gateways"] or ())
        values["fields"] = tuple(values["fields"] or ())
        values["details"] = dict(values["details"] or {})
        return cls(**values)


class Anchor(NamedTuple):
    """A (seq, entry_hash) pair kept outside the database, to detect a re-hashed or truncated tail."""

    seq: int
    entry_hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.entry_hash}"

    @classmethod
    def parse(cls, text_value: str) -> Anchor:
        """Read ``SEQ:HASH`` (what ``str(anchor)`` and the CLI print)."""
        seq, _, digest = text_value.partition(":")
        if not seq.isdigit() or not _SHA256.fullmatch(digest):
            raise ValueError("an anchor is SEQ:SHA256, e.g. 42:3f1c... (64 hex digits)")
        return cls(int(seq), digest)


@dataclass(frozen=True)
class LedgerSearch:
    """What the auditor's console filters on; ``since`` inclusive, ``until`` exclusive (``occurred_at``)."""

    kind: str | None = None
    agreement_id: str | None = None
    partner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
