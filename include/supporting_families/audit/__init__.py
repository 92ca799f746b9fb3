"""The audit ledger: append-only, hash-chained, anchored outside its database; nothing personal in it.

Every disclosure, collection, return, reconciliation, quarantine, rights action, deletion, key rotation and
assessment writes one entry (docs/ARCHITECTURE.md). The format and its guarantees are described in
:mod:`supporting_families.audit.ledger`; the command line is ``python -m supporting_families.audit``.
"""

from supporting_families.audit.actors import STAFF_ID_PREFIX, actor, staff_id
from supporting_families.audit.anchors import AnchorError, anchor, read_anchors, verify_with_anchors
from supporting_families.audit.canonical import (
    ENTRY_KINDS,
    GENESIS_HASH,
    HASHED_COLUMNS,
    TABLE_NAME,
    EntryKind,
    canonical_json,
    hash_record,
)
from supporting_families.audit.chain import Problem, VerifyReport
from supporting_families.audit.entries import Anchor, LedgerEntry, LedgerSearch, NewEntry, idempotency_key
from supporting_families.audit.errors import (
    AppendConflictError,
    EntryValidationError,
    IdempotencyConflictError,
    LedgerError,
    LedgerSchemaError,
    PersonalDataError,
)
from supporting_families.audit.guard import check_details
from supporting_families.audit.history import ExchangeHistory, exchange_history
from supporting_families.audit.ledger import Ledger
from supporting_families.audit.settings import (
    ANCHORS_URI_ENV,
    LEDGER_CONN_ID,
    LEDGER_URL_ENV,
    LedgerSettingError,
    ledger_url,
    ledger_url_from_connection,
)

__all__ = [
    "ANCHORS_URI_ENV",
    "ENTRY_KINDS",
    "GENESIS_HASH",
    "HASHED_COLUMNS",
    "LEDGER_CONN_ID",
    "LEDGER_URL_ENV",
    "STAFF_ID_PREFIX",
    "TABLE_NAME",
    "Anchor",
    "AnchorError",
    "AppendConflictError",
    "EntryKind",
    "EntryValidationError",
    "ExchangeHistory",
    "IdempotencyConflictError",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LedgerSchemaError",
    "LedgerSearch",
    "LedgerSettingError",
    "NewEntry",
    "PersonalDataError",
    "Problem",
    "VerifyReport",
    "actor",
    "anchor",
    "canonical_json",
    "check_details",
    "exchange_history",
    "hash_record",
    "idempotency_key",
    "ledger_url",
    "ledger_url_from_connection",
    "read_anchors",
    "staff_id",
    "verify_with_anchors",
]
