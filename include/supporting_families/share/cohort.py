"""Who each agreement's share is about: the cohort rules of the privacy notice, then restrictions.

Each rule returns ``person_id`` (and, for ONS, ``programme_status``): the fields themselves come from the
register afterwards, and only the agreed ones survive minimisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.config.agreements import Agreement
from supporting_families.registers.restrictions import exclude_restricted, objecting_families

#: Age of criminal responsibility in England and Wales (Children and Young Persons Act 1933 s.50): the
#: police can hold nothing relevant about a younger child, so sending one would not be necessary.
POLICE_MIN_AGE = 10

ASSESSED = "assessed_as_meeting_criteria"
COMPARISON = "comparison_group"


@dataclass(frozen=True)
class CohortInputs:
    """What cohort selection reads, all controller-side tables keyed by internal ids."""

    persons: pa.Table  # the register: person_id, family_id, date_of_birth, ...
    person_flags: pa.Table  # identification: person_id, family_id, headline, sub_criterion, ...
    family_problems: pa.Table  # identification: family_id, headline, ...
    assessments: pa.Table  # assessment_status(): family_id, programme_status, ...
    other_services: pa.Array  # person ids known to a non-criterion service (children's centres)
    restrictions: pa.Table  # registers.read_restrictions()
    as_of: date  # the identification's date: the cohort rules' facts are as of this day
    #: the day of the share: restrictions and objections are checked on it, not on ``as_of``, so one
    #: recorded after the latest extract still keeps the person out of today's share
    share_date: date | None = None


@dataclass(frozen=True)
class Cohort:
    table: pa.Table  # person_id (+ programme_status for ONS)
    selected: int  # before restrictions
    excluded_by_restriction: int
    #: members of families whose practitioner recorded a withdrawal because the family objected
    excluded_by_objection: int = 0


def _members(persons: pa.Table, family_ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    keep = pc.is_in(persons["family_id"], value_set=pc.unique(family_ids))
    return persons.filter(keep).select(["person_id", "family_id", "date_of_birth"])


def _age_on(dob: pa.ChunkedArray, on: date) -> pa.Array:
    """Completed years on ``on``: a birthday counts from its own date (29 February from 1 March)."""
    years = pc.subtract(pa.scalar(on.year), pc.year(dob))
    month_day = pc.add(pc.multiply(pc.month(dob), 100), pc.day(dob))
    birthday_to_come = pc.greater(month_day, pa.scalar(on.month * 100 + on.day))
    return pc.subtract(years, pc.cast(birthday_to_come, pa.int64()))


def meets_any_criterion(inputs: CohortInputs) -> pa.Table:
    """DWP agreement: "individuals who meet any of the eligibility criteria" — anyone with a flag."""
    return pa.table({"person_id": pc.unique(inputs.person_flags["person_id"])})


def may_benefit_from_wider_service(inputs: CohortInputs) -> pa.Table:
    """Police agreement: "individuals (who may benefit from a wider service from the local authority)".

    Read as: members, aged 10 or over on the day, of families with at least one headline problem — the
    families a wider service could reach — so the police answer can complete the picture for them.
    """
    members = _members(inputs.persons, inputs.family_problems["family_id"])
    age = _age_on(members["date_of_birth"], inputs.as_of)
    old_enough = pc.fill_null(pc.greater_equal(age, POLICE_MIN_AGE), False)
    return members.filter(old_enough).select(["person_id"])


def assessed_and_comparison(inputs: CohortInputs) -> pa.Table:
    """ONS agreement: families "assessed as meeting criteria for the programme and those who have not
    been included on the programme but may have received other services".

    Assessed: members of families whose latest practitioner decision is that they meet the criteria.
    Comparison: members of other families where someone received another service (children's centres).
    """
    status = inputs.assessments
    assessed_families = status.filter(pc.equal(status["programme_status"], ASSESSED))["family_id"]
    assessed = _members(inputs.persons, assessed_families).select(["person_id", "family_id"])
    served = inputs.persons.filter(pc.is_in(inputs.persons["person_id"], value_set=inputs.other_services))
    served_families = pc.unique(served["family_id"])
    comparison_families = pc.filter(
        served_families, pc.invert(pc.is_in(served_families, value_set=pc.unique(assessed_families)))
    )
    comparison = _members(inputs.persons, comparison_families).select(["person_id", "family_id"])
    return pa.concat_tables(
        [
            assessed.select(["person_id"]).append_column(
                "programme_status", pa.array([ASSESSED] * assessed.num_rows, pa.string())
            ),
            comparison.select(["person_id"]).append_column(
                "programme_status", pa.array([COMPARISON] * comparison.num_rows, pa.string())
            ),
        ]
    )


def register_rows(
    cohort: pa.Table, persons: pa.Table, columns: Sequence[str] | None = None
) -> tuple[pa.Table, int]:
    """The register's rows for the cohort, in the cohort's order, with the cohort's own columns after them.

    The same rows as an inner join on ``person_id`` (person ids are the register's key, so each cohort
    person matches one row at most; were one held twice, its first row is taken). ``columns`` narrows the
    register to what the share needs (``person_id`` first): the rows are gathered only for those.

    The join runs in DuckDB on the ids and row positions alone (both cores, a third of Arrow's single-threaded
    ``index_in`` for a million persons), then Arrow gathers the rows by position, so no text column is copied
    through DuckDB. Returns the rows and how many cohort persons the register does not have (left out).
    """
    if columns is not None:
        persons = persons.select(["person_id", *(c for c in columns if c != "person_id")])
    ids = pa.table(
        {
            "person_id": cohort["person_id"],
            "ci": pa.array(np.arange(cohort.num_rows, dtype=np.int64)),
        }
    )
    register = pa.table(
        {
            "person_id": persons["person_id"],
            "pi": pa.array(np.arange(persons.num_rows, dtype=np.int64)),
        }
    )
    con = duckdb.connect()
    try:
        con.register("ids", ids)
        con.register("register", register)
        found = con.sql(
            "SELECT ci, pi FROM ids JOIN register USING (person_id) ORDER BY ci, pi"
        ).to_arrow_table()
    finally:
        con.close()
    if found is None:  # DuckDB types the fetch as optional; a SELECT always yields a table
        raise RuntimeError("DuckDB returned no result for the register join")
    at_cohort = found["ci"].to_numpy()
    at_register = found["pi"].to_numpy()
    first = np.ones(len(at_cohort), dtype=bool)
    first[1:] = at_cohort[1:] != at_cohort[:-1]  # a person held twice: the first row only
    if not first.all():
        at_cohort, at_register = at_cohort[first], at_register[first]
    missing = cohort.num_rows - len(at_cohort)
    rows = persons.take(pa.array(at_register))
    if missing:
        cohort = cohort.take(pa.array(at_cohort))
    for name in cohort.column_names:
        if name != "person_id":
            rows = rows.append_column(name, cohort[name])
    return rows, missing


RULES = {
    "meets_any_criterion": meets_any_criterion,
    "may_benefit_from_wider_service": may_benefit_from_wider_service,
    "assessed_and_comparison": assessed_and_comparison,
}


def select_cohort(agreement: Agreement, inputs: CohortInputs) -> Cohort:
    """The agreement's cohort, less anyone with a restriction, objection or consent withdrawal in force on
    the day of the share, and less every member of a family that objected (docs/ARCHITECTURE.md, "Rights").
    The ONS comparison group is no exception: an objection is to the processing, whatever its purpose."""
    selected = RULES[agreement.cohort](inputs)
    kept, excluded = exclude_restricted(selected, inputs.restrictions, inputs.share_date or inputs.as_of)
    objected = objecting_families(inputs.assessments)
    by_objection = 0
    if len(objected):
        members = inputs.persons.filter(pc.is_in(inputs.persons["family_id"], value_set=objected))[
            "person_id"
        ]
        keep = pc.invert(pc.is_in(kept["person_id"], value_set=members.combine_chunks()))
        before = kept.num_rows
        kept = kept.filter(keep)
        by_objection = before - kept.num_rows
    return Cohort(kept, int(selected.num_rows), excluded, by_objection)
