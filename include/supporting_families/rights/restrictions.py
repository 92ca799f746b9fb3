"""Restrictions and objections: people whose data must not be shared.

The notice: "You have a right to withdraw consent and the right to object and restrict further
processing of your data" (UK GDPR Articles 18 and 21). A person with an active restriction or objection is
left out of every share; the share records how many were left out, never who.

Restrictions are kept controller-side in ``<store>/register/restrictions.parquet``, one row per decision,
so the history of a person's request is kept (and is itself erasable by person).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.store.io import read_parquet, write_parquet

RestrictionKind = Literal["restriction", "objection"]

RESTRICTIONS_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("starts_on", pa.date32(), nullable=False),
        pa.field("ends_on", pa.date32()),  # null: until lifted
        pa.field("reference", pa.string(), nullable=False),  # the council's case reference for the request
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def restrictions_path(store: UPath) -> UPath:
    return store / "register" / "restrictions.parquet"


def read_restrictions(store: UPath) -> pa.Table:
    path = restrictions_path(store)
    if not path.exists():
        return RESTRICTIONS_SCHEMA.empty_table()
    return read_parquet(path).cast(RESTRICTIONS_SCHEMA)


def record_restriction(
    store: UPath,
    person_id: str,
    kind: RestrictionKind,
    reference: str,
    starts_on: date,
    ends_on: date | None = None,
) -> int:
    """Append one decision; returns the number of decisions now held."""
    if kind not in ("restriction", "objection"):
        raise ValueError(f"unknown restriction kind {kind!r}")
    if ends_on is not None and ends_on < starts_on:
        raise ValueError("a restriction cannot end before it starts")
    row = pa.table(
        {
            "person_id": [person_id],
            "kind": [kind],
            "starts_on": [starts_on],
            "ends_on": [ends_on],
            "reference": [reference],
            "recorded_at": [datetime.now(UTC)],
        },
        schema=RESTRICTIONS_SCHEMA,
    )
    table = pa.concat_tables([read_restrictions(store), row])
    write_parquet(table, restrictions_path(store))
    return int(table.num_rows)


def restricted_persons(restrictions: pa.Table, on: date) -> pa.Array:
    """Distinct person ids with a restriction or objection in force on ``on``."""
    starts = pc.less_equal(restrictions["starts_on"], pa.scalar(on, pa.date32()))
    open_ended = pc.is_null(restrictions["ends_on"])
    not_ended = pc.fill_null(pc.greater_equal(restrictions["ends_on"], pa.scalar(on, pa.date32())), False)
    active = pc.and_(starts, pc.or_(open_ended, not_ended))
    return pc.unique(restrictions.filter(active)["person_id"])


def exclude_restricted(cohort: pa.Table, restrictions: pa.Table, on: date) -> tuple[pa.Table, int]:
    """Drop people with an active restriction or objection; return the rest and how many were dropped."""
    blocked = restricted_persons(restrictions, on)
    keep = pc.invert(pc.is_in(cohort["person_id"], value_set=blocked))
    kept = cohort.filter(keep)
    return kept, int(cohort.num_rows - kept.num_rows)
