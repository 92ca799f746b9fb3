"""The audit ledger: an append-only, hash-chained record of every disclosure, receipt, rights action and
deletion, so the council can prove to an auditor what left the building, when, why and to whom.

Issue 4 item 9; ARCHITECTURE.md: "Every disclosure, receipt, rights action and deletion writes one entry to
the audit ledger". SQLite (a file, ``sqlite:///path``) by default, PostgreSQL (``postgresql://...``) in
production, through SQLAlchemy Core. Nothing here imports Airflow: the Airflow side reads the URL from a
connection and passes it in, with the DAG, run and task ids as plain strings.

Tamper evidence
---------------
Each entry carries ``prev_hash`` (the previous entry's ``entry_hash``; 64 zeros for seq 1) and
``entry_hash``, the SHA-256 of its canonical form. Editing an entry breaks its own hash; deleting or
reordering entries breaks ``seq`` continuity or a ``prev_hash`` link; :meth:`Ledger.verify` names the
first bad ``seq`` and why. Someone who can write the database can also re-hash the tail of the chain, or
drop its last entries: only a copy of a recent head kept out of the database's reach (an :class:`Anchor`,
from :meth:`Ledger.head`) reveals that, so anchor the head regularly and pass the anchors to ``verify``.

The database refuses change as well: triggers reject UPDATE and DELETE (and TRUNCATE on PostgreSQL, where
they are ``ENABLE ALWAYS`` so ``session_replication_role = replica`` does not switch them off). They stop
mistakes and ordinary users, not the owner of the table, who can drop them; that is what the chain is for.
In production grant the platform's role only SELECT and INSERT on the table.

Canonical form (format 1), so an auditor can re-verify with a few lines of any language
--------------------------------------------------------------------------------------
``entry_hash`` = lower-case hex SHA-256 of the UTF-8 bytes of one JSON object holding every column except
``entry_hash`` (:data:`HASHED_COLUMNS`, ``prev_hash`` included), where

* keys are sorted, at every level (``details`` too), with no whitespace: ``{"a":1,"b":[2,3]}``;
* an empty column is ``null``; ``seq``, ``row_count``, ``try_number`` and numbers in ``details`` are JSON
  integers (floats are refused, so no language's float printing can differ);
* ``occurred_at`` and ``recorded_at`` are UTC strings with microseconds: ``2025-04-02T06:00:00.000000Z``;
* ``legal_gateways`` and ``fields`` are JSON arrays of strings, in the order recorded;
* non-ASCII characters are written as themselves (UTF-8), not ``\\u`` escapes.

For these values (ASCII keys, integers, strings) this is exactly RFC 8785 (JSON Canonicalization
Scheme). In Python, for a row ``r`` as a dict: ``sha256(json.dumps({k: v for k, v in r.items() if k !=
"entry_hash"}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()``; with
``jq`` on a line of ``show`` output: ``jq -cjS 'del(.entry_hash)' | sha256sum``. Then check that each
``prev_hash`` equals the ``entry_hash`` of the entry with the previous ``seq``.

No personal data
----------------
The ledger is kept longer than the data it describes and cannot be edited, so a right to erasure (UK GDPR
Article 17) could never reach personal data written into it; and auditors read it who need not see any.
So an entry holds the agreement, hashes, counts, field *names*, file names and run ids, never a value from
a row. :meth:`NewEntry.validate` (called by :meth:`Ledger.append`) enforces that for every free-form
column and for ``details``: strings there must be hashes, uuids, or short codes without spaces (at most 128
characters), and are refused when they look like a UK postcode, a date (a date of birth), an e-mail address,
a National Insurance number, a long number (NHS number, UPRN, telephone) or a capitalised name; floats,
long lists (per-row data) and deep nesting are refused too. It is a net for mistakes (a row or a message
with a value in it), not proof against someone determined: callers put counts and hashes in by design.
Errors name the key and the rule, never the value.

Concurrency and retries
-----------------------
Appends are serialised so two writers never fork the chain: SQLite with ``BEGIN IMMEDIATE`` (one writer
at a time, others wait up to ``busy_timeout_s``), PostgreSQL with a transaction-level advisory lock. The
UNIQUE constraints on ``seq`` and ``prev_hash`` refuse a fork even from a writer that skipped the lock.
An ``idempotency_key`` (unique) makes a retried task's append return the entry its first try recorded;
build it per logical run with :func:`idempotency_key`, never per try.

CLI (prints JSON; the URL from ``--url`` or ``$SF_LEDGER_URL``, which keeps a password out of ``ps``)::

    python -m supporting_families.audit.ledger init    [--repair-guards]
    python -m supporting_families.audit.ledger verify  [--anchor SEQ:HASH ...] [--anchors-from URI]
                                                                           # exit 1 if anything is wrong
    python -m supporting_families.audit.ledger head                              # an anchor to keep elsewhere
    python -m supporting_families.audit.ledger anchor --to URI                   # verify, then keep the head
    python -m supporting_families.audit.ledger show    [--kind K] [--agreement ID] [--since ISO] [--limit N]
    python -m supporting_families.audit.ledger append-test [--count N] [--batch B] [--workers W]

``append-test`` writes entries of kind ``test`` (a scratch ledger only) and prints appends per second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from supporting_families.config.agreements import Agreement

__all__ = [
    "ENTRY_KINDS",
    "GENESIS_HASH",
    "HASHED_COLUMNS",
    "LEDGER_URL_ENV",
    "TABLE_NAME",
    "Anchor",
    "AppendConflictError",
    "EntryKind",
    "EntryValidationError",
    "IdempotencyConflictError",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LedgerSchemaError",
    "NewEntry",
    "PersonalDataError",
    "Problem",
    "VerifyReport",
    "canonical_json",
    "check_details",
    "hash_record",
    "idempotency_key",
    "main",
]

log = logging.getLogger(__name__)

#: The ledger URL when the CLI gets no ``--url`` (keeps a password out of the process list).
LEDGER_URL_ENV: Final = "SF_LEDGER_URL"
#: Where the ledger's anchors are kept (see supporting_families.audit.anchors).
ANCHORS_URI_ENV: Final = "SF_LEDGER_ANCHORS_URI"
TABLE_NAME: Final = "audit_ledger"
#: ``prev_hash`` of the first entry.
GENESIS_HASH: Final = "0" * 64

#: What happened. ``disclosure``: a delivery left the council (issue 4); ``collection``: the partner took it
#: from its inbox; ``return_received``, ``reconciliation``, ``quarantine``: issue 5; ``assessment``: an
#: identification run; ``rights_action``: access, rectification, erasure, restriction, objection,
#: portability; ``deletion``: retention sweep; ``key_rotation``: pseudonymisation or OpenPGP keys;
#: ``test``: written only by the ``append-test`` command, never by the platform.
EntryKind = Literal[
    "disclosure",
    "collection",
    "return_received",
    "reconciliation",
    "quarantine",
    "assessment",
    "rights_action",
    "deletion",
    "key_rotation",
    "test",
]
ENTRY_KINDS: Final[tuple[str, ...]] = get_args(EntryKind)

#: Every column except ``entry_hash``, i.e. the keys of the canonical form (format 1). Fixed: a new
#: column would need a new format, or old entries would no longer verify.
HASHED_COLUMNS: Final = (
    "seq",
    "entry_id",
    "kind",
    "occurred_at",
    "recorded_at",
    "agreement_id",
    "agreement_sha256",
    "partner",
    "purpose",
    "legal_gateways",
    "fields",
    "row_count",
    "plaintext_sha256",
    "ciphertext_sha256",
    "file_name",
    "dag_id",
    "run_id",
    "task_id",
    "try_number",
    "triggered_by",
    "details",
    "idempotency_key",
    "prev_hash",
)

# What each kind must say, so an auditor never meets a disclosure without its agreement, hashes or run.
# Issue 4 item 9: "agreement, partner, purpose, legal gateways, fields, row count, file hashes, DAG, run and
# task ids, who triggered it, timestamps".
_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "disclosure": (
        "agreement_id",
        "agreement_sha256",
        "partner",
        "purpose",
        "legal_gateways",
        "fields",
        "row_count",
        "plaintext_sha256",
        "ciphertext_sha256",
        "file_name",
        "dag_id",
        "run_id",
        "task_id",
    ),
    "collection": ("agreement_id", "partner", "file_name"),
    "return_received": ("agreement_id", "partner", "file_name", "ciphertext_sha256"),
    "reconciliation": ("agreement_id", "partner"),
    "quarantine": ("file_name",),
}

# Upper bound of an integer in ``details``: JSON parsers in JavaScript (a likely auditor tool) read larger
# ones as floats and would re-serialise them differently.
_MAX_SAFE_INT: Final = 2**53 - 1
_MAX_DETAIL_STRING: Final = 128
_MAX_LIST: Final = 64
_MAX_KEYS: Final = 64
#: Levels of objects or lists below ``details`` itself, e.g. ``{"classes": {"matched": 9}}`` is one.
_MAX_DEPTH: Final = 2
_MAX_DETAILS_BYTES: Final = 8192
_ENTRIES_LIMIT_MAX: Final = 10_000


# ---------------------------------------------------------------------------------------------------------
# Errors. Messages name keys, kinds and rules, never a value that was refused.
# ---------------------------------------------------------------------------------------------------------


class LedgerError(Exception):
    """Base class of every ledger error."""


class EntryValidationError(LedgerError, ValueError):
    """An entry was refused before it reached the database; one ``key: rule`` per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("ledger entry refused: " + "; ".join(self.problems))


class PersonalDataError(EntryValidationError):
    """An entry looked as if it carried personal data. The ledger holds none (see the module docstring)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(
            [
                *problems,
                "the ledger holds no personal data: record counts, hashes, ids, field names and short codes",
            ]
        )


class IdempotencyConflictError(LedgerError):
    """An idempotency key already names a different event (another kind or agreement)."""


class AppendConflictError(LedgerError):
    """The append could not take the chain's head after several attempts (another writer kept winning)."""


class LedgerSchemaError(LedgerError):
    """The ledger table is missing, or its append-only triggers are missing or disabled."""


# ---------------------------------------------------------------------------------------------------------
# The personal-data guard.
# ---------------------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{32,128}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: A short code: letters, digits and the punctuation of file names, Airflow ids and run ids. No spaces
#: (free text), no '@' (e-mail), no quotes or commas (a row pasted in).
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/~-]*")
_DETAIL_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_TRIGGERED_BY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")
# UK postcode (Royal Mail's letter rules, so 'v1 2ab' and the like are not taken for one), with a space,
# '_', '-' or nothing between the outward and inward codes, anywhere in a value; and GIR 0AA.
_POSTCODE = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-PR-UWYZ][A-HK-Y]?[0-9][A-HJKMNPR-Y0-9]?[ _-]?[0-9][ABD-HJLNP-UW-Z]{2}"
    r"|GIR[ _-]?0AA)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:1[89][0-9]{2}|20[0-9]{2})"
# A date of birth in the forms source systems write: 1985-03-12, 12/03/1985, 12/03/85, 12.03.1985,
# 19850312, 12-Mar-1985, 12march1985.
_DATE = re.compile(
    rf"(?<![0-9])(?:{_YEAR}[-/.]{_MON}[-/.]{_DAY}"
    rf"|{_DAY}[-/.]{_MON}[-/.]{_YEAR}"
    rf"|{_DAY}/{_MON}/[0-9]{{2}}"
    rf"|{_YEAR}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    rf"|{_DAY}[-/. ]?{_MONTH}[-/. ]?(?:{_YEAR}|[0-9]{{2}}))(?![0-9])",
    re.IGNORECASE,
)
# An Airflow run id's logical date, e.g. scheduled__2025-04-02T06:00:00+00:00: a timestamp with a time of
# day that Airflow wrote, not a date of birth, so it is taken out before the date rule looks.
_RUN_ID_TIMESTAMP = re.compile(r"__[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:[+-][0-9]{2}:?[0-9]{2}|Z)?")
# File names the platform generates (dwp-delivery-2025-04-02.csv.gpg, dwp-20250402T060000Z.csv.gpg).
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(?:csv|gpg|pgp|asc|json|parquet|txt|zip|sig)")
# Loose on the prefix letters on purpose: source data holds invalid and example (QQ) numbers too.
_NI_NUMBER = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}[ _-]?[0-9]{2}[ _-]?[0-9]{2}[ _-]?[0-9]{2}[ _-]?[A-D](?![A-Za-z0-9])",
    re.IGNORECASE,
)
_LONG_NUMBER = re.compile(r"[0-9]{9,}")
_NAME = re.compile(r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)*")


def _string_problem(
    value: str,
    *,
    max_length: int = _MAX_DETAIL_STRING,
    allow_at: bool = False,
    pattern: re.Pattern[str] = _TOKEN,
) -> tuple[str, bool] | None:
    """Why ``value`` may not go into the ledger, and whether the reason is personal data; None if it may.

    The message never quotes the value: it is exactly what must not be written anywhere.
    """
    if _CONTROL.search(value):
        return "contains control characters", False
    if (_HEX_DIGEST.fullmatch(value) and not value.isdigit()) or _UUID.fullmatch(value):
        return None  # all digits is not a digest: it could be numbers run together
    if "@" in value and not allow_at:
        return "looks like an e-mail address", True
    if _POSTCODE.search(value):
        return "looks like a UK postcode", True
    if _NI_NUMBER.search(value):
        return "looks like a National Insurance number", True
    # The names of files the platform makes carry their date or timestamp, and run ids their logical date;
    # anywhere else a date is most likely someone's date of birth.
    is_file_name = _FILE_NAME.fullmatch(value) is not None
    if not is_file_name and _DATE.search(_RUN_ID_TIMESTAMP.sub("__", value)):
        return "holds a date (a date of birth is personal data; dates belong in occurred_at)", True
    if not is_file_name and _LONG_NUMBER.search(value):
        return "holds a number of 9 or more digits (an NHS number, UPRN or telephone number?)", True
    if len(value) > max_length:
        return f"is free text over {max_length} characters", True
    if any(c.isspace() for c in value):
        return "is free text (it has spaces): use a short code such as 'address_not_confirmed'", True
    if not pattern.fullmatch(value):
        return "is not a hash, id or short code (letters, digits and . _ : + / ~ - only)", True
    if _NAME.fullmatch(value):
        return "looks like a name (codes are lower case)", True
    return None


class _Problems:
    """Collects every problem with one entry, so its author sees them all at once."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.personal = False

    def add(self, path: str, message: str, *, personal: bool = False) -> None:
        self.messages.append(f"{path}: {message}")
        self.personal = self.personal or personal

    def string(self, path: str, value: str, **rules: Any) -> None:
        problem = _string_problem(value, **rules)
        if problem is not None:
            self.add(path, problem[0], personal=problem[1])

    def raise_if_any(self) -> None:
        if self.messages:
            raise (PersonalDataError if self.personal else EntryValidationError)(self.messages)


def _check_detail(value: object, path: str, depth: int, problems: _Problems) -> Any:
    """``value`` as plain JSON (lists, dicts), with every problem found added to ``problems``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            problems.add(path, f"integer beyond +/-{_MAX_SAFE_INT} (not portable JSON)")
        return value
    if isinstance(value, float):
        # Floats print differently across languages, which would break the canonical form.
        problems.add(path, "floats are not allowed: give a count, or a rate in parts per million")
        return None
    if isinstance(value, str):
        problems.string(path, value)
        return value
    if isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            problems.add(path, f"nested deeper than {_MAX_DEPTH} levels")
            return None
        return _check_mapping(value, path, depth + 1, problems)
    if isinstance(value, list | tuple):
        if depth >= _MAX_DEPTH:
            problems.add(path, f"nested deeper than {_MAX_DEPTH} levels")
            return None
        if len(value) > _MAX_LIST:
            # Summaries are short; a long list is per-row data (references, values) by another name.
            problems.add(
                path, f"a list of more than {_MAX_LIST} items is per-row data: record a count", personal=True
            )
            return None
        return [_check_detail(item, f"{path}[{i}]", depth + 1, problems) for i, item in enumerate(value)]
    problems.add(path, f"a {type(value).__name__} is not allowed (numbers, strings, lists and objects only)")
    return None


def _check_mapping(value: Mapping[Any, Any], path: str, depth: int, problems: _Problems) -> dict[str, Any]:
    if len(value) > _MAX_KEYS:
        problems.add(path, f"more than {_MAX_KEYS} keys")
    out: dict[str, Any] = {}
    for i, (key, item) in enumerate(value.items()):
        if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
            # The key is not echoed either: it could be the value someone meant to put in.
            problems.add(
                f"{path}[key {i}]", "keys are snake_case names of at most 64 characters", personal=True
            )
            continue
        out[key] = _check_detail(item, f"{path}.{key}", depth, problems)
    return out


def check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` as plain JSON, or :class:`PersonalDataError` / :class:`EntryValidationError`.

    Use it before an irreversible step (an upload) so a bad entry stops the run before data leaves, not after.
    """
    problems = _Problems()
    plain = _check_details_into(details, problems)
    problems.raise_if_any()
    return plain


def _check_details_into(details: Mapping[str, Any], problems: _Problems) -> dict[str, Any]:
    if not isinstance(details, Mapping):
        problems.add("details", "must be an object (a mapping of names to values)")
        return {}
    plain = _check_mapping(details, "details", 0, problems)
    # Refused values are None in ``plain``, so it always serialises.
    if len(canonical_json(plain)) > _MAX_DETAILS_BYTES:
        problems.add("details", f"over {_MAX_DETAILS_BYTES} bytes: details are a summary, not a report")
    return plain


# ---------------------------------------------------------------------------------------------------------
# Canonical form.
# ---------------------------------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The canonical serialisation (module docstring): sorted keys, no whitespace, UTF-8, no floats."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def hash_record(record: Mapping[str, Any]) -> str:
    """``entry_hash`` of a record holding exactly :data:`HASHED_COLUMNS` in their canonical JSON form."""
    if set(record) != set(HASHED_COLUMNS):
        raise ValueError("a hashed record holds exactly the columns in HASHED_COLUMNS")
    return hashlib.sha256(canonical_json(record)).hexdigest()


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise EntryValidationError([f"{name}: must be timezone-aware (UTC)"])
    return value.astimezone(UTC)


def idempotency_key(kind: EntryKind, *parts: str) -> str:
    """A key for one event of one logical run, e.g. ``idempotency_key("disclosure", agreement_id, dag_id,
    run_id)``: a retry of the task gives the same key, so the ledger records the event once."""
    if not parts:
        raise ValueError("give at least one part (agreement, DAG and run ids)")
    return "/".join((kind, *parts))


# ---------------------------------------------------------------------------------------------------------
# Entries.
# ---------------------------------------------------------------------------------------------------------


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
        if self.triggered_by is not None:
            problems.string("triggered_by", self.triggered_by, allow_at=True, pattern=_TRIGGERED_BY)


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


# ---------------------------------------------------------------------------------------------------------
# Verification results.
# ---------------------------------------------------------------------------------------------------------

Reason = Literal[
    "edited", "deleted", "reordered", "chain_broken", "truncated", "anchor_mismatch", "malformed"
]


class Problem(NamedTuple):
    seq: int
    reason: Reason
    message: str


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    """What :meth:`Ledger.verify` found. ``ok`` needs both an intact chain and the append-only guards."""

    chain_ok: bool
    guards_ok: bool
    entries: int
    last_seq: int | None
    head_hash: str | None
    first_bad_seq: int | None
    reason: Reason | None
    message: str | None
    problems: int
    first_problems: tuple[Problem, ...]
    by_kind: Mapping[str, int] = field(hash=False)
    anchors_checked: int
    guard_message: str | None

    @property
    def ok(self) -> bool:
        return self.chain_ok and self.guards_ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain_ok": self.chain_ok,
            "guards_ok": self.guards_ok,
            "guard_message": self.guard_message,
            "entries": self.entries,
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "message": self.message,
            "problems": self.problems,
            "first_problems": [p._asdict() for p in self.first_problems],
            "by_kind": dict(sorted(self.by_kind.items())),
            "anchors_checked": self.anchors_checked,
        }


# ---------------------------------------------------------------------------------------------------------
# Schema.
# ---------------------------------------------------------------------------------------------------------


class _UtcDateTime(TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; on SQLite, naive UTC text that sorts in time order. Always aware UTC out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _aware_utc(value, "timestamp")
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = JSON().with_variant(JSONB(), "postgresql")
_metadata = MetaData()
_table = Table(
    TABLE_NAME,
    _metadata,
    # Assigned by the appender under its lock, not by a sequence: a PostgreSQL sequence skips numbers on
    # rollback, and a gap must mean a deleted entry.
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("entry_id", String(36), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("occurred_at", _UtcDateTime(), nullable=False),
    Column("recorded_at", _UtcDateTime(), nullable=False),
    Column("agreement_id", String(64)),
    Column("agreement_sha256", String(64)),
    Column("partner", String(64)),
    Column("purpose", Text()),
    Column("legal_gateways", _JSON, nullable=False),
    Column("fields", _JSON, nullable=False),
    Column("row_count", BigInteger()),
    Column("plaintext_sha256", String(64)),
    Column("ciphertext_sha256", String(64)),
    Column("file_name", String(255)),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("task_id", String(250)),
    Column("try_number", Integer()),
    Column("triggered_by", String(128)),
    Column("details", _JSON, nullable=False),
    Column("idempotency_key", String(250), unique=True),
    # UNIQUE: two entries claiming the same predecessor would be a fork.
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("entry_hash", String(64), nullable=False, unique=True),
    CheckConstraint("seq >= 1", name=f"{TABLE_NAME}_seq_positive"),
    Index(f"{TABLE_NAME}_kind_occurred", "kind", "occurred_at"),
    Index(f"{TABLE_NAME}_agreement_occurred", "agreement_id", "occurred_at"),
    Index(f"{TABLE_NAME}_run", "dag_id", "run_id"),
)
assert tuple(c.name for c in _table.columns if c.name != "entry_hash") == HASHED_COLUMNS

_SQLITE_GUARDS: Final = {
    f"{TABLE_NAME}_no_update": f"""
        CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_update BEFORE UPDATE ON {TABLE_NAME}
        BEGIN SELECT RAISE(ABORT, '{TABLE_NAME} is append-only: UPDATE rejected'); END""",
    f"{TABLE_NAME}_no_delete": f"""
        CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_delete BEFORE DELETE ON {TABLE_NAME}
        BEGIN SELECT RAISE(ABORT, '{TABLE_NAME} is append-only: DELETE rejected'); END""",
}
_PG_FUNCTION: Final = f"""
    CREATE OR REPLACE FUNCTION {TABLE_NAME}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{TABLE_NAME} is append-only: % rejected', TG_OP USING ERRCODE = 'restrict_violation';
    END $$"""
# ENABLE ALWAYS: a trigger in the default mode does not fire under session_replication_role = replica,
# the usual way to bypass triggers for a bulk load.
_PG_GUARDS: Final = {
    f"{TABLE_NAME}_no_update_delete": (
        f"CREATE TRIGGER {TABLE_NAME}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE_NAME} "
        f"FOR EACH ROW EXECUTE FUNCTION {TABLE_NAME}_append_only()"
    ),
    # Row triggers do not see TRUNCATE.
    f"{TABLE_NAME}_no_truncate": (
        f"CREATE TRIGGER {TABLE_NAME}_no_truncate BEFORE TRUNCATE ON {TABLE_NAME} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE_NAME}_append_only()"
    ),
}
_PG_TRIGGERS: Final = text(
    "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(:table) AND NOT tgisinternal"
)
# Appenders on PostgreSQL take this transaction-level advisory lock; it is released at commit or rollback.
_PG_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(f"supporting_families.audit.ledger/{TABLE_NAME}".encode()).digest()[:8], "big", signed=True
)
_SQLITE_BEGIN: Final = "sf_ledger_sqlite_begin"
_APPEND_ATTEMPTS: Final = 5


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:")
    if not memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout_s, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own empty database
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, so appends can say BEGIN IMMEDIATE (the
        # SQLAlchemy recipe for pysqlite; otherwise the driver begins lazily and two writers could both
        # read the same head before either takes the write lock).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            # WAL: readers (verify, the auditor page) do not block the appender, nor it them.
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a recorded disclosure survives a power cut; it is evidence, one fsync per append is cheap.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _describe(url: URL) -> str:
    """The backend and database name for logs, never host credentials."""
    return f"{url.get_backend_name()}:{Path(url.database or ':memory:').name}"


# ---------------------------------------------------------------------------------------------------------
# The ledger.
# ---------------------------------------------------------------------------------------------------------


class Ledger:
    """The audit ledger at ``url`` (``sqlite:///path`` or ``postgresql://...``). Safe to share across threads.

    ``create=True`` creates the table and its guards if they are missing; on an existing table whose guards
    were dropped or disabled it raises :class:`LedgerSchemaError` (fail closed: someone changed the ledger's
    protection; run ``verify`` and investigate, then ``init --repair-guards``).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        create: bool = True,
        repair_guards: bool = False,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self._url = make_url(url)
        backend = self._url.get_backend_name()
        if backend == "sqlite":
            self._engine = _sqlite_engine(self._url, busy_timeout_s)
        elif backend == "postgresql":
            self._engine = create_engine(self._url, pool_pre_ping=True)
        else:
            raise LedgerError(f"unsupported ledger backend {backend!r}: use sqlite:/// or postgresql://")
        self._dialect = backend
        self.description = _describe(self._url)
        if create:
            self.ensure_schema(repair_guards=repair_guards)
        else:
            with self._read() as conn:
                self._require_table(conn)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that holds the ledger's write lock until it ends."""
        with self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                if self._dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction with one snapshot throughout (WAL on SQLite, REPEATABLE READ on PostgreSQL)."""
        with self._engine.connect() as conn:
            if self._dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # -- schema ---------------------------------------------------------------------------------------

    def ensure_schema(self, *, repair_guards: bool = False) -> None:
        """Create the table, indexes and append-only triggers if missing; idempotent, safe to race."""
        with self._write() as conn:
            existed = conn.dialect.has_table(conn, TABLE_NAME)
            _metadata.create_all(conn)
            problem = None if not existed else self._guard_problem(conn)
            if problem is not None and not repair_guards:
                raise LedgerSchemaError(
                    f"{problem}: the ledger's protection was changed. Run `python -m "
                    "supporting_families.audit.ledger verify`, investigate, then `init --repair-guards`"
                )
            if problem is not None:
                log.warning("ledger %s: restoring append-only guards (%s)", self.description, problem)
            if not existed or problem is not None:
                self._create_guards(conn)
                log.info(
                    "ledger %s: table %s and its append-only guards are in place",
                    self.description,
                    TABLE_NAME,
                )

    def _create_guards(self, conn: Connection) -> None:
        if self._dialect == "sqlite":
            for ddl in _SQLITE_GUARDS.values():
                conn.execute(text(ddl))
            return
        conn.execute(text(_PG_FUNCTION))
        present = {row[0] for row in conn.execute(_PG_TRIGGERS, {"table": TABLE_NAME})}
        for name, ddl in _PG_GUARDS.items():
            if name not in present:
                conn.execute(text(ddl))
            conn.execute(text(f"ALTER TABLE {TABLE_NAME} ENABLE ALWAYS TRIGGER {name}"))

    def _guard_problem(self, conn: Connection) -> str | None:
        """None when every append-only trigger is present and enabled; otherwise what is wrong."""
        if self._dialect == "sqlite":
            rows = conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
                {"table": TABLE_NAME},
            )
            missing = sorted(set(_SQLITE_GUARDS) - {row[0] for row in rows})
            return f"append-only triggers missing: {', '.join(missing)}" if missing else None
        states = {row[0]: row[1] for row in conn.execute(_PG_TRIGGERS, {"table": TABLE_NAME})}
        missing = sorted(set(_PG_GUARDS) - set(states))
        if missing:
            return f"append-only triggers missing: {', '.join(missing)}"
        # 'A' = ENABLE ALWAYS; 'O' fires except under replica mode; 'D' disabled.
        weak = sorted(name for name in _PG_GUARDS if states[name] != "A")
        return f"append-only triggers disabled or not ENABLE ALWAYS: {', '.join(weak)}" if weak else None

    def _require_table(self, conn: Connection) -> None:
        if not conn.dialect.has_table(conn, TABLE_NAME):
            raise LedgerSchemaError(f"no table {TABLE_NAME} in {self.description}: run `init` first")

    # -- appending ------------------------------------------------------------------------------------

    def append(self, entry: NewEntry) -> LedgerEntry:
        """Record ``entry``; with an ``idempotency_key`` already recorded, return that entry instead."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[NewEntry]) -> list[LedgerEntry]:
        """Record several entries in one transaction (all or none), in order."""
        validated = [(entry, entry.validate()) for entry in entries]
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            try:
                with self._write() as conn:
                    return self._append_locked(conn, validated)
            except IntegrityError as exc:
                # Reached only if a writer skipped the lock (a manual INSERT, another program): the UNIQUE
                # constraints on seq and prev_hash refused the fork. Read the new head and try again.
                if attempt == _APPEND_ATTEMPTS:
                    raise AppendConflictError(
                        f"could not append to {self.description} after {attempt} attempts"
                    ) from exc
                log.warning("ledger %s: append conflict, attempt %d; retrying", self.description, attempt)
                time.sleep(0.01 * attempt)
            except OperationalError as exc:
                if "locked" in str(exc.orig).lower():
                    raise AppendConflictError(
                        f"{self.description} stayed locked by another writer beyond the busy timeout"
                    ) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_locked(
        self, conn: Connection, entries: Sequence[tuple[NewEntry, dict[str, Any]]]
    ) -> list[LedgerEntry]:
        head = conn.execute(
            select(_table.c.seq, _table.c.entry_hash).order_by(_table.c.seq.desc()).limit(1)
        ).first()
        seq, prev_hash = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS_HASH)
        recorded_at = datetime.now(UTC)
        out: list[LedgerEntry] = []
        rows: list[dict[str, Any]] = []
        by_key: dict[str, LedgerEntry] = {}
        for entry, details in entries:
            key = entry.idempotency_key
            if key is not None:
                existing = by_key.get(key) or self._find_by_key(conn, key)
                if existing is not None:
                    _check_same_event(existing, entry)
                    log.info(
                        "ledger: %s seq=%d already recorded for this idempotency key",
                        existing.kind,
                        existing.seq,
                    )
                    out.append(existing)
                    continue
            seq += 1
            record = _new_record(entry, details, seq=seq, prev_hash=prev_hash, recorded_at=recorded_at)
            stored = LedgerEntry._from_row({**record, "entry_hash": hash_record(_canonical_values(record))})
            rows.append({**record, "entry_hash": stored.entry_hash})
            prev_hash = stored.entry_hash
            out.append(stored)
            if key is not None:
                by_key[key] = stored
        if rows:
            conn.execute(insert(_table), rows)
            for row in rows:
                log.info(
                    "ledger: appended %s seq=%d hash=%s", row["kind"], row["seq"], row["entry_hash"][:16]
                )
        return out

    def _find_by_key(self, conn: Connection, key: str) -> LedgerEntry | None:
        row = conn.execute(select(_table).where(_table.c.idempotency_key == key)).mappings().first()
        return LedgerEntry._from_row(row) if row is not None else None

    # -- reading --------------------------------------------------------------------------------------

    def head(self) -> Anchor | None:
        """The last entry's (seq, entry_hash): keep it outside the database as an anchor."""
        with self._read() as conn:
            row = conn.execute(
                select(_table.c.seq, _table.c.entry_hash).order_by(_table.c.seq.desc()).limit(1)
            ).first()
        return Anchor(int(row[0]), str(row[1])) if row is not None else None

    def get(self, seq: int) -> LedgerEntry | None:
        with self._read() as conn:
            row = conn.execute(select(_table).where(_table.c.seq == seq)).mappings().first()
        return LedgerEntry._from_row(row) if row is not None else None

    def find(self, idempotency_key: str) -> LedgerEntry | None:
        """The entry recorded under ``idempotency_key``, if any (e.g. to show a retry what it recorded)."""
        with self._read() as conn:
            return self._find_by_key(conn, idempotency_key)

    def count(self, kind: EntryKind | None = None) -> int:
        query = select(func.count()).select_from(_table)
        if kind is not None:
            query = query.where(_table.c.kind == kind)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def entries(
        self,
        kind: EntryKind | None = None,
        agreement_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        *,
        after_seq: int | None = None,
        newest_first: bool = False,
    ) -> list[LedgerEntry]:
        """Entries in seq order (or newest first), filtered; ``since`` is on ``occurred_at`` (inclusive).
        Page with ``after_seq`` (oldest first) or a ``since``; at most 10,000 per call."""
        if not 1 <= limit <= _ENTRIES_LIMIT_MAX:
            raise ValueError(f"limit must be between 1 and {_ENTRIES_LIMIT_MAX}")
        query = select(_table)
        if kind is not None:
            query = query.where(_table.c.kind == kind)
        if agreement_id is not None:
            query = query.where(_table.c.agreement_id == agreement_id)
        if since is not None:
            query = query.where(_table.c.occurred_at >= _aware_utc(since, "since"))
        if after_seq is not None:
            query = query.where(_table.c.seq > after_seq)
        query = query.order_by(_table.c.seq.desc() if newest_first else _table.c.seq).limit(limit)
        with self._read() as conn:
            return [LedgerEntry._from_row(row) for row in conn.execute(query).mappings()]

    def disclosures_for_run(self, dag_id: str, run_id: str) -> list[LedgerEntry]:
        """The disclosures a DAG run recorded (the auditor page links an entry to its run, and back)."""
        query = (
            select(_table)
            .where(_table.c.kind == "disclosure", _table.c.dag_id == dag_id, _table.c.run_id == run_id)
            .order_by(_table.c.seq)
        )
        with self._read() as conn:
            return [LedgerEntry._from_row(row) for row in conn.execute(query).mappings()]

    # -- verifying ------------------------------------------------------------------------------------

    def verify(self, anchors: Iterable[Anchor] = (), *, max_problems: int = 20) -> VerifyReport:
        """Walk the whole chain in one snapshot; report the first bad seq and why, with counts."""
        walk = _ChainWalk({a.seq: a for a in anchors}, max_problems)
        with self._read() as conn:
            self._require_table(conn)
            guard_problem = self._guard_problem(conn)
            result = conn.execution_options(yield_per=2000).execute(select(_table).order_by(_table.c.seq))
            for row in result.mappings():
                walk.feed(row)
            result.close()
            walk.finish(lambda digest: self._seq_of_hash(conn, digest))
        report = walk.report(guard_problem)
        if report.ok:
            log.info(
                "ledger %s verified: %d entries, head seq=%s",
                self.description,
                report.entries,
                report.last_seq,
            )
        else:
            log.warning(
                "ledger %s FAILED verification: first bad seq=%s (%s), %d problems, guards_ok=%s",
                self.description,
                report.first_bad_seq,
                report.reason,
                report.problems,
                report.guards_ok,
            )
        return report

    @staticmethod
    def _seq_of_hash(conn: Connection, digest: str) -> int | None:
        row = conn.execute(select(_table.c.seq).where(_table.c.entry_hash == digest)).first()
        return int(row[0]) if row is not None else None


def _new_record(
    entry: NewEntry, details: dict[str, Any], *, seq: int, prev_hash: str, recorded_at: datetime
) -> dict[str, Any]:
    """The row for ``entry`` (Python values, timestamps as aware datetimes), without ``entry_hash``."""
    return {
        "seq": seq,
        "entry_id": str(uuid.uuid4()),
        "kind": entry.kind,
        "occurred_at": _aware_utc(entry.occurred_at, "occurred_at"),
        "recorded_at": recorded_at,
        "agreement_id": entry.agreement_id,
        "agreement_sha256": entry.agreement_sha256,
        "partner": entry.partner,
        "purpose": entry.purpose,
        "legal_gateways": list(entry.legal_gateways),
        "fields": list(entry.fields),
        "row_count": entry.row_count,
        "plaintext_sha256": entry.plaintext_sha256,
        "ciphertext_sha256": entry.ciphertext_sha256,
        "file_name": entry.file_name,
        "dag_id": entry.dag_id,
        "run_id": entry.run_id,
        "task_id": entry.task_id,
        "try_number": entry.try_number,
        "triggered_by": entry.triggered_by,
        "details": details,
        "idempotency_key": entry.idempotency_key,
        "prev_hash": prev_hash,
    }


def _canonical_values(record: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(record)
    values["occurred_at"] = _utc_text(record["occurred_at"])
    values["recorded_at"] = _utc_text(record["recorded_at"])
    return values


def _check_same_event(existing: LedgerEntry, entry: NewEntry) -> None:
    if existing.kind != entry.kind or existing.agreement_id != entry.agreement_id:
        raise IdempotencyConflictError(
            f"idempotency key of seq {existing.seq} ({existing.kind}, {existing.agreement_id}) reused for "
            f"a {entry.kind} under {entry.agreement_id}: build keys with idempotency_key(kind, ...)"
        )
    differing = [
        name
        for name in ("row_count", "plaintext_sha256", "ciphertext_sha256", "file_name")
        if getattr(existing, name) != getattr(entry, name)
    ]
    if differing:
        # The first record stands (what it describes is what left); a retry that made different bytes is
        # worth a look, so say which columns differ, never their values.
        log.warning(
            "ledger: retry of seq %d differs in %s; keeping the first record",
            existing.seq,
            ", ".join(differing),
        )


class _ChainWalk:
    """Checks entries one by one in seq order, remembering only the previous one (constant memory)."""

    def __init__(self, anchors: Mapping[int, Anchor], max_problems: int) -> None:
        self.anchors = anchors
        self.max_problems = max_problems
        self.entries = 0
        self.by_kind: Counter[str] = Counter()
        self.prev_seq = 0
        self.prev_hash = GENESIS_HASH
        self.problems = 0
        self.first: list[Problem] = []
        # (seq, prev_hash, own hash ok): link failures to explain once the walk is over.
        self.unexplained: list[tuple[int, str, bool]] = []
        self.anchors_checked = 0

    def _problem(self, seq: int, reason: Reason, message: str) -> None:
        self.problems += 1
        if len(self.first) < self.max_problems:
            self.first.append(Problem(seq, reason, message))

    def feed(self, row: Mapping[Any, Any]) -> None:
        seq = int(row["seq"])
        stored_hash = str(row["entry_hash"])
        self.entries += 1
        self.by_kind[str(row["kind"])] += 1
        try:
            hash_ok = LedgerEntry._from_row(row).computed_hash() == stored_hash
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self._problem(
                seq, "malformed", f"entry cannot be read ({type(exc).__name__}): edited outside the ledger"
            )
            self._advance(seq, stored_hash)
            return
        link_ok = row["prev_hash"] == self.prev_hash
        if seq != self.prev_seq + 1:
            missing = (
                f"{self.prev_seq + 1}" if seq == self.prev_seq + 2 else f"{self.prev_seq + 1}..{seq - 1}"
            )
            self._problem(seq, "deleted", f"seq {missing} missing before seq {seq}: entries deleted")
        elif not link_ok:
            self._problem(seq, "chain_broken", "")  # explained in finish(), with one lookup
            if len(self.unexplained) < self.max_problems:
                self.unexplained.append((seq, str(row["prev_hash"]), hash_ok))
        elif not hash_ok:
            self._problem(seq, "edited", f"content of seq {seq} does not match its entry_hash: entry edited")
        anchor = self.anchors.get(seq)
        if anchor is not None:
            self.anchors_checked += 1
            if anchor.entry_hash != stored_hash or not hash_ok:
                self._problem(
                    seq, "anchor_mismatch", f"seq {seq} differs from its anchor: the chain was rewritten"
                )
        self._advance(seq, stored_hash)

    def _advance(self, seq: int, stored_hash: str) -> None:
        self.prev_seq = seq
        self.prev_hash = stored_hash

    def finish(self, seq_of_hash: Any) -> None:
        for anchor in sorted(self.anchors.values()):
            if anchor.seq > self.prev_seq:
                self.anchors_checked += 1
                self._problem(
                    anchor.seq,
                    "truncated",
                    f"anchor seq {anchor.seq} is beyond the last entry (seq {self.prev_seq}): "
                    "entries removed",
                )
        explained: dict[int, Problem] = {}
        for seq, prev_hash, hash_ok in self.unexplained:
            points_at = seq_of_hash(prev_hash)
            if points_at is not None:
                problem = Problem(
                    seq,
                    "reordered",
                    f"seq {seq} was recorded after the entry now at seq {points_at}, "
                    f"not after seq {seq - 1}: entries reordered",
                )
            elif not hash_ok:
                problem = Problem(seq, "edited", f"seq {seq} edited, prev_hash included")
            else:
                problem = Problem(
                    seq,
                    "chain_broken",
                    f"prev_hash of seq {seq} does not match seq {seq - 1}: an entry before it was replaced "
                    "(edited and re-hashed) or inserted",
                )
            explained[seq] = problem
        self.first = sorted(
            (explained.get(p.seq, p) if p.reason == "chain_broken" else p for p in self.first),
            key=lambda p: p.seq,
        )

    def report(self, guard_problem: str | None) -> VerifyReport:
        first = self.first[0] if self.first else None
        return VerifyReport(
            chain_ok=self.problems == 0,
            guards_ok=guard_problem is None,
            guard_message=guard_problem,
            entries=self.entries,
            last_seq=self.prev_seq or None,
            head_hash=self.prev_hash if self.entries else None,
            first_bad_seq=first.seq if first else None,
            reason=first.reason if first else None,
            message=first.message if first else None,
            problems=self.problems,
            first_problems=tuple(self.first),
            by_kind=dict(self.by_kind),
            anchors_checked=self.anchors_checked,
        )


# ---------------------------------------------------------------------------------------------------------
# CLI: python -m supporting_families.audit.ledger init|verify|show|head|append-test --url URL
# ---------------------------------------------------------------------------------------------------------


def _test_entry(worker: int, i: int) -> NewEntry:
    return NewEntry(
        kind="test",
        occurred_at=datetime.now(UTC),
        dag_id="ledger_append_test",
        run_id=f"append_test__w{worker}",
        task_id="append",
        details={"worker": worker, "i": i},
    )


def _append_test_worker(
    url: str, count: int, batch: int, worker: int, start_at: float
) -> tuple[float, float]:
    """Append ``count`` test entries; returns (start, end) wall-clock times. Top-level so it pickles."""
    ledger = Ledger(url)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        done = 0
        while done < count:
            n = min(batch, count - done)
            ledger.append_many([_test_entry(worker, done + k) for k in range(n)])
            done += n
        return started, time.time()
    finally:
        ledger.close()


def _append_test(args: argparse.Namespace, url: str) -> dict[str, Any]:
    ledger = Ledger(url)
    try:
        others = ledger.count() - ledger.count("test")
        if others and not args.allow_nonempty:
            raise LedgerError(
                f"{ledger.description} holds {others} real entries; append-test writes permanent test "
                "entries: use a scratch ledger, or --allow-nonempty"
            )
    finally:
        ledger.close()
    per_worker = [
        args.count // args.workers + (1 if w < args.count % args.workers else 0) for w in range(args.workers)
    ]
    if args.workers == 1:
        started, ended = _append_test_worker(url, per_worker[0], args.batch, 0, time.time())
    else:
        # Separate processes, each with its own connections: the concurrency an Airflow deployment has.
        start_at = time.time() + 2.0
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            spans = list(
                pool.map(
                    _append_test_worker,
                    [url] * args.workers,
                    per_worker,
                    [args.batch] * args.workers,
                    range(args.workers),
                    [start_at] * args.workers,
                )
            )
        started, ended = min(s for s, _ in spans), max(e for _, e in spans)
    seconds = ended - started
    ledger = Ledger(url, create=False)
    try:
        t0 = time.perf_counter()
        report = ledger.verify()
        verify_seconds = time.perf_counter() - t0
    finally:
        ledger.close()
    return {
        "appended": args.count,
        "workers": args.workers,
        "batch": args.batch,
        "seconds": round(seconds, 3),
        "appends_per_s": round(args.count / seconds, 1) if seconds > 0 else None,
        "verify_ok": report.ok,
        "verify_entries": report.entries,
        "verify_seconds": round(verify_seconds, 3),
        "verify_entries_per_s": round(report.entries / verify_seconds, 1) if verify_seconds > 0 else None,
        "head": str(Anchor(report.last_seq, report.head_hash))
        if report.last_seq and report.head_hash
        else None,
    }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m supporting_families.audit.ledger",
        description="Inspect, verify or smoke-test the audit ledger. Prints JSON to stdout.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--url", help=f"sqlite:///path or postgresql://... (default: ${LEDGER_URL_ENV})")
        return p

    init = command("init", "create the table and its append-only triggers")
    init.add_argument("--repair-guards", action="store_true", help="recreate dropped or disabled triggers")
    verify = command("verify", "walk the chain; exit 1 on the first bad entry or missing guards")
    verify.add_argument(
        "--anchor", action="append", type=Anchor.parse, default=[], help="SEQ:HASH kept elsewhere"
    )
    verify.add_argument(
        "--anchors-from",
        default=os.environ.get(ANCHORS_URI_ENV),
        help=f"a folder of anchor files, e.g. s3://bucket/ledger-anchors/ (default: ${ANCHORS_URI_ENV})",
    )
    command("head", "print the last seq and hash, to keep as an anchor")
    keep = command("anchor", "verify against the kept anchors, then keep the head as a new one")
    keep.add_argument(
        "--to",
        default=os.environ.get(ANCHORS_URI_ENV),
        help=f"the anchors' folder (default: ${ANCHORS_URI_ENV})",
    )
    show = command("show", "print entries as JSON lines")
    show.add_argument("--kind", choices=ENTRY_KINDS)
    show.add_argument("--agreement")
    show.add_argument("--since", type=datetime.fromisoformat, help="ISO 8601 with offset, on occurred_at")
    show.add_argument("--after-seq", type=int)
    show.add_argument("--limit", type=int, default=100)
    show.add_argument("--newest-first", action="store_true")
    test = command("append-test", "append test entries and print appends per second")
    test.add_argument("--count", type=int, default=1000)
    test.add_argument("--batch", type=int, default=1, help="entries per transaction (default 1)")
    test.add_argument("--workers", type=int, default=1, help="concurrent processes")
    test.add_argument("--allow-nonempty", action="store_true", help="even if the ledger holds real entries")
    return parser.parse_args(argv)


def _emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 ok, 1 verification failed, 2 usage or connection error."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parse_args(argv)
    url = args.url or os.environ.get(LEDGER_URL_ENV)
    if not url:
        sys.stderr.write(f"error: give --url or set {LEDGER_URL_ENV}\n")
        return 2
    try:
        if args.command == "append-test":
            if args.count < 1 or args.batch < 1 or args.workers < 1:
                sys.stderr.write("error: --count, --batch and --workers must be at least 1\n")
                return 2
            _emit(_append_test(args, url))
            return 0
        if args.command == "init":
            with Ledger(url, repair_guards=args.repair_guards) as ledger:
                head = ledger.head()
                _emit(
                    {"ledger": ledger.description, "table": TABLE_NAME, "head": str(head) if head else None}
                )
            return 0
        with Ledger(url, create=False) as ledger:
            if args.command == "verify":
                anchors = list(args.anchor)
                if args.anchors_from:
                    from upath import UPath

                    from supporting_families.audit.anchors import read_anchors

                    anchors += read_anchors(UPath(args.anchors_from))
                report = ledger.verify(anchors)
                _emit(report.to_dict())
                return 0 if report.ok else 1
            if args.command == "anchor":
                if not args.to:
                    sys.stderr.write(f"error: give --to or set {ANCHORS_URI_ENV}\n")
                    return 2
                from upath import UPath

                from supporting_families.audit.anchors import AnchorError, anchor

                try:
                    _emit(anchor(ledger, UPath(args.to)).to_dict())
                except AnchorError as exc:
                    sys.stderr.write(f"error: {exc}\n")
                    return 1
                return 0
            if args.command == "head":
                head = ledger.head()
                _emit({"seq": head.seq, "entry_hash": head.entry_hash, "anchor": str(head)} if head else None)
                return 0
            since = args.since
            if since is not None and since.tzinfo is None:
                sys.stderr.write("error: --since needs an offset, e.g. 2025-04-01T00:00:00+00:00\n")
                return 2
            for entry in ledger.entries(
                args.kind,
                args.agreement,
                since,
                args.limit,
                after_seq=args.after_seq,
                newest_first=args.newest_first,
            ):
                sys.stdout.write(json.dumps(entry.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
            return 0
    except (LedgerError, ValueError, OperationalError) as exc:
        # OperationalError: cannot connect. Its text can hold the host, never the password.
        sys.stderr.write(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
