"""The ledger's kinds and columns, and the canonical form of an entry that its hash is taken over
(the format is described in :mod:`supporting_families.audit.ledger`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from supporting_families.audit.errors import EntryValidationError

TABLE_NAME: Final = "audit_ledger"
#: ``prev_hash`` of the first entry.
GENESIS_HASH: Final = "0" * 64

#: What happened. ``disclosure``: a delivery left the council; ``delivery_conflict``: a delivery found
#: other bytes under its final name on the partner's server (an earlier file not collected): nothing sent,
#: nothing overwritten; ``collection``: the partner took it
#: from its inbox; ``return_received``, ``reconciliation``, ``quarantine``: the receive side;
#: ``assessment``: an identification run; ``practitioner_decision``: a practitioner recorded a decision
#: about a family (who: a pseudonymous staff id in ``triggered_by``, never a name);
#: ``rights_action``: access, rectification, erasure, restriction,
#: objection, portability; ``deletion``: retention sweep; ``key_rotation``: pseudonymisation or OpenPGP keys;
#: ``aggregate_release``: anonymised statistics were published (tables, SDC parameters, file hashes);
#: ``extract_received``: an outside organisation's extract (a voluntary-sector agency's) was collected over
#: SFTP, verified and landed (the file named by its hash: its name carries a date);
#: ``test``: written only by the ``append-test`` command, never by the platform.
EntryKind = Literal[
    "disclosure",
    "delivery_conflict",
    "collection",
    "return_received",
    "reconciliation",
    "quarantine",
    "assessment",
    "practitioner_decision",
    "rights_action",
    "deletion",
    "key_rotation",
    "aggregate_release",
    "extract_received",
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
# "agreement, partner, purpose, legal gateways, fields, row count, file hashes, DAG, run and
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
    "delivery_conflict": ("agreement_id", "partner", "file_name", "ciphertext_sha256", "dag_id", "run_id"),
    "collection": ("agreement_id", "partner", "file_name"),
    "return_received": ("agreement_id", "partner", "file_name", "ciphertext_sha256"),
    "reconciliation": ("agreement_id", "partner"),
    "quarantine": ("file_name",),
    # A publication names its run and the hash of its release.json, which lists every file's hash.
    "aggregate_release": ("file_name", "plaintext_sha256", "dag_id", "run_id"),
    "extract_received": ("partner", "file_name", "ciphertext_sha256", "plaintext_sha256"),
}

# Upper bound of an integer in ``details``: JSON parsers in JavaScript (a likely auditor tool) read larger


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
