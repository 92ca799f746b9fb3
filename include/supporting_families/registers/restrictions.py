"""Restrictions, objections and consent withdrawals: people whose data must not be shared or processed.

The notice: "You have a right to withdraw consent and the right to object and restrict further
processing of your data; however, this may affect service delivery to you" (UK GDPR Articles 7(3), 18
and 21). A person with one in force is left out of every share from the day it is recorded, and out of
identification and the merging of partners' answers (docs/ARCHITECTURE.md, "Rights"): shares, logs and
counts say how many were left out, never who.

A practitioner's ``withdrawn`` decision with the reason ``family_objected`` is the same objection,
recorded on the family: :func:`objecting_families` reads it from the assessments, so every member is left
out. Other withdrawals (``recorded_in_error``, ``family_moved_away``) correct the programme state and are
not objections.

Kept controller-side in ``register/restrictions.parquet``, one row per decision (recorded or lifted), so a
request's history is kept; the file is erasable by person.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.registers._table import append_rows, read_table, replace_table
from supporting_families.store.layout import register_file

RestrictionKind = Literal["restriction", "objection", "consent_withdrawal"]
RESTRICTION_KINDS: Final = get_args(RestrictionKind)

#: The assessment reasons that are an objection by the family (see the module's docstring).
OBJECTION_REASONS: Final = ("family_objected",)

RESTRICTIONS_SCHEMA: Final = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("starts_on", pa.date32(), nullable=False),
        pa.field("ends_on", pa.date32()),  # null: until lifted
        pa.field("reference", pa.string(), nullable=False),  # the council's case reference for the request
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class RestrictionError(ValueError):
    """A restriction cannot be recorded or lifted; names the field and rule, never a value."""


def restrictions_path(store: UPath) -> UPath:
    return register_file(store, "restrictions")


def read_restrictions(store: UPath) -> pa.Table:
    return read_table(restrictions_path(store), RESTRICTIONS_SCHEMA)


def record_restriction(
    store: UPath,
    person_id: str,
    kind: RestrictionKind,
    reference: str,
    starts_on: date,
    ends_on: date | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """Append one decision; returns the number of decisions now held. Recording the same reference,
    person and kind again is a retry and appends nothing."""
    if kind not in RESTRICTION_KINDS:
        raise RestrictionError(f"kind: one of {', '.join(RESTRICTION_KINDS)} (rule: known kind)")
    if ends_on is not None and ends_on < starts_on:
        raise RestrictionError("ends_on: a restriction cannot end before it starts (rule: date order)")
    existing = read_restrictions(store)
    same = pc.and_(
        pc.and_(pc.equal(existing["reference"], reference), pc.equal(existing["person_id"], person_id)),
        pc.equal(existing["kind"], kind),
    )
    if existing.num_rows and pc.any(same).as_py():
        return int(existing.num_rows)
    row = {
        "person_id": person_id,
        "kind": kind,
        "starts_on": starts_on,
        "ends_on": ends_on,
        "reference": reference,
        "recorded_at": (now or datetime.now(UTC)).astimezone(UTC),
    }
    return int(append_rows(restrictions_path(store), RESTRICTIONS_SCHEMA, [row]).num_rows)


def lift_restriction(store: UPath, person_id: str, reference: str, ends_on: date) -> int:
    """End the person's restrictions under ``reference`` on ``ends_on`` (the last day in force).

    The rows are kept, with their end date set: the history of the request stays. Returns how many were
    lifted; a restriction already ended on or before ``ends_on`` is left as it is.
    """
    table = read_restrictions(store)
    if table.num_rows == 0:
        return 0
    mine = pc.and_(pc.equal(table["person_id"], person_id), pc.equal(table["reference"], reference))
    if not pc.any(mine).as_py():
        raise RestrictionError("reference: no restriction under this reference for the person (rule: known)")
    ends = table["ends_on"]
    later = pc.fill_null(pc.greater(ends, pa.scalar(ends_on, pa.date32())), True)
    change = pc.and_(mine, later)
    before_start = pc.and_(change, pc.greater(table["starts_on"], pa.scalar(ends_on, pa.date32())))
    if pc.any(before_start).as_py():
        raise RestrictionError("ends_on: before the restriction starts (rule: date order)")
    new_ends = pc.if_else(change, pa.scalar(ends_on, pa.date32()), ends)
    lifted = int(pc.sum(change.cast(pa.int64())).as_py() or 0)
    replace_table(restrictions_path(store), table.set_column(3, "ends_on", new_ends))
    return lifted


def restricted_persons(restrictions: pa.Table, on: date) -> pa.Array:
    """Distinct person ids with a restriction, objection or consent withdrawal in force on ``on``."""
    day = pa.scalar(on, pa.date32())
    starts = pc.less_equal(restrictions["starts_on"], day)
    not_ended = pc.fill_null(pc.greater_equal(restrictions["ends_on"], day), True)
    return pc.unique(restrictions.filter(pc.and_(starts, not_ended))["person_id"].combine_chunks())


def objecting_families(assessments: pa.Table) -> pa.Array:
    """Families whose latest practitioner decision is ``withdrawn`` because the family objected.

    ``assessments`` is the latest decision per family (``identify.assessment_status``). A later decision
    (the family agrees to take part again) supersedes the objection, because only the latest counts.
    """
    if assessments.num_rows == 0:
        return pa.array([], pa.string())
    objected = pc.and_(
        pc.equal(assessments["decision"], "withdrawn"),
        pc.is_in(assessments["reason"], value_set=pa.array(OBJECTION_REASONS)),
    )
    return pc.unique(assessments.filter(objected)["family_id"].combine_chunks())


def exclude_restricted(cohort: pa.Table, restrictions: pa.Table, on: date) -> tuple[pa.Table, int]:
    """Drop people with a restriction in force on ``on``; return the rest and how many were dropped."""
    blocked = restricted_persons(restrictions, on)
    if len(blocked) == 0:
        return cohort, 0
    keep = pc.invert(pc.is_in(cohort["person_id"], value_set=blocked))
    kept = cohort.filter(keep)
    return kept, int(cohort.num_rows - kept.num_rows)
