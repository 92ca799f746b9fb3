"""Legal holds: data that must be kept although a request or the retention rule would delete it.

UK GDPR Article 17(3)(b) and (e): erasure does not apply where the data is needed to comply with a legal
obligation or for legal claims; the notice says data is deleted "provided that there are no legitimate
grounds for retaining it". A child protection plan, litigation or a police investigation are such grounds.
A hold is on a person or on a whole agreement; erasure refuses a held person (nothing is half-erased) and
the retention sweep skips what is held and reports it.

Kept in ``register/legal_holds.parquet``, one row per hold; lifting sets its end date.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Final, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.registers._table import append_rows, read_table, replace_table
from supporting_families.registers.requests import (
    HEX_AS_LETTERS,
    RequestError,
    check_case_reference,
    check_internal_id,
)
from supporting_families.store.layout import register_file

HoldScope = Literal["person", "agreement"]
HOLD_SCOPES: Final = get_args(HoldScope)
HoldReason = Literal["child_protection_plan", "litigation", "police_investigation", "statutory_inquiry"]
HOLD_REASONS: Final = get_args(HoldReason)

HOLDS_SCHEMA: Final = pa.schema(
    [
        pa.field("hold_id", pa.string(), nullable=False),
        pa.field("scope", pa.string(), nullable=False),
        pa.field("subject_id", pa.string(), nullable=False),  # a person id or an agreement id
        pa.field("reason", pa.string(), nullable=False),
        pa.field("case_reference", pa.string(), nullable=False),
        pa.field("starts_on", pa.date32(), nullable=False),
        pa.field("ends_on", pa.date32()),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def holds_path(store: UPath) -> UPath:
    return register_file(store, "holds")


def read_holds(store: UPath) -> pa.Table:
    return read_table(holds_path(store), HOLDS_SCHEMA)


def place_hold(
    store: UPath,
    scope: HoldScope,
    subject_id: str,
    reason: HoldReason,
    case_reference: str,
    starts_on: date,
    *,
    now: datetime | None = None,
) -> str:
    """Record a hold (once per case reference and subject); returns its id."""
    if scope not in HOLD_SCOPES:
        raise RequestError(f"scope: one of {', '.join(HOLD_SCOPES)} (rule: known scope)")
    if reason not in HOLD_REASONS:
        raise RequestError(f"reason: one of {', '.join(HOLD_REASONS)} (rule: known reason)")
    check_case_reference(case_reference)
    check_internal_id(subject_id, "subject_id")
    digest = hashlib.sha256(f"{scope}\n{subject_id}\n{case_reference}".encode()).hexdigest()[:16]
    hold_id = "hl" + digest.translate(HEX_AS_LETTERS)
    existing = read_holds(store)
    if existing.num_rows and pc.any(pc.equal(existing["hold_id"], hold_id)).as_py():
        return hold_id
    row = {
        "hold_id": hold_id,
        "scope": scope,
        "subject_id": subject_id,
        "reason": reason,
        "case_reference": case_reference,
        "starts_on": starts_on,
        "ends_on": None,
        "recorded_at": (now or datetime.now(UTC)).astimezone(UTC),
    }
    append_rows(holds_path(store), HOLDS_SCHEMA, [row])
    return hold_id


def lift_hold(store: UPath, hold_id: str, ends_on: date) -> bool:
    """End a hold on ``ends_on`` (its last day); False if it had already ended."""
    table = read_holds(store)
    mine = pc.equal(table["hold_id"], hold_id)
    if not pc.any(mine).as_py():
        raise RequestError("hold_id: not a recorded hold (rule: known hold)")
    open_ = pc.and_(mine, pc.is_null(table["ends_on"]))
    if not pc.any(open_).as_py():
        return False
    ends = pc.if_else(open_, pa.scalar(ends_on, pa.date32()), table["ends_on"])
    replace_table(holds_path(store), table.set_column(6, "ends_on", ends))
    return True


def active_holds(holds: pa.Table, on: date) -> pa.Table:
    day = pa.scalar(on, pa.date32())
    started = pc.less_equal(holds["starts_on"], day)
    not_ended = pc.fill_null(pc.greater_equal(holds["ends_on"], day), True)
    return holds.filter(pc.and_(started, not_ended))


def holds_on_person(holds: pa.Table, person_id: str, agreements: list[str], on: date) -> pa.Table:
    """Holds in force on ``on`` that cover the person: on them, or on an agreement that sent them."""
    active = active_holds(holds, on)
    on_person = pc.and_(pc.equal(active["scope"], "person"), pc.equal(active["subject_id"], person_id))
    on_agreement = pc.and_(
        pc.equal(active["scope"], "agreement"),
        pc.is_in(active["subject_id"], value_set=pa.array(agreements, pa.string())),
    )
    return active.filter(pc.or_(on_person, on_agreement))
