from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pytest

from supporting_families.config.agreements import load_agreements
from supporting_families.registers.restrictions import RESTRICTIONS_SCHEMA
from supporting_families.share.cohort import ASSESSED, COMPARISON, CohortInputs, select_cohort

AGREEMENTS = {a.cohort: a for a in load_agreements(resolve=False)}
AS_OF = date(2026, 3, 31)


def _inputs(**overrides: object) -> CohortInputs:
    persons = pa.table(
        {
            "person_id": ["A1", "A2", "B1", "B2", "C1", "D1"],
            "family_id": ["A", "A", "B", "B", "C", "D"],
            "date_of_birth": [
                date(1985, 1, 1),
                date(2016, 3, 31),  # turns 10 on as_of: old enough
                date(1990, 1, 1),
                date(2016, 4, 1),  # turns 10 the day after: too young
                date(1970, 1, 1),
                date(2000, 1, 1),
            ],
        }
    )
    base = {
        "persons": persons,
        "person_flags": pa.table({"person_id": ["A1", "B1", "B1"], "family_id": ["A", "B", "B"]}),
        "family_problems": pa.table({"family_id": ["A", "B"], "headline": ["crime_asb", "health"]}),
        "assessments": pa.table(
            {
                "family_id": ["A", "C"],
                "decision": ["meets_criteria", "does_not_meet"],
                "reason": ["confirmed_at_panel", "evidence_not_confirmed"],
                "programme_status": [ASSESSED, "not_included"],
            }
        ),
        "other_services": pa.array(["C1", "A2"]),
        "restrictions": RESTRICTIONS_SCHEMA.empty_table(),
        "as_of": AS_OF,
    }
    base.update(overrides)
    return CohortInputs(**base)  # type: ignore[arg-type]


def test_dwp_gets_everyone_meeting_any_criterion() -> None:
    cohort = select_cohort(AGREEMENTS["meets_any_criterion"], _inputs())
    assert sorted(cohort.table["person_id"].to_pylist()) == ["A1", "B1"]


def test_police_get_members_of_families_with_a_problem_aged_ten_or_over() -> None:
    cohort = select_cohort(AGREEMENTS["may_benefit_from_wider_service"], _inputs())
    assert sorted(cohort.table["person_id"].to_pylist()) == ["A1", "A2", "B1"]


def test_ons_gets_assessed_families_and_a_comparison_group() -> None:
    cohort = select_cohort(AGREEMENTS["assessed_and_comparison"], _inputs())
    got = dict(
        zip(cohort.table["person_id"].to_pylist(), cohort.table["programme_status"].to_pylist(), strict=True)
    )
    # Family A is assessed (A2's children's centre use does not move it to the comparison group);
    # family C was not included but received another service.
    assert got == {"A1": ASSESSED, "A2": ASSESSED, "C1": COMPARISON}


@pytest.mark.parametrize("rule", sorted(AGREEMENTS))
def test_restricted_people_are_left_out_of_every_share_by_count(rule: str) -> None:
    restrictions = pa.table(
        {
            "person_id": ["A1"],
            "kind": ["objection"],
            "starts_on": [date(2026, 1, 1)],
            "ends_on": [None],
            "reference": ["RQ-1"],
            "recorded_at": pa.array([0], pa.timestamp("us", tz="UTC")),
        },
        schema=RESTRICTIONS_SCHEMA,
    )
    cohort = select_cohort(AGREEMENTS[rule], _inputs(restrictions=restrictions))
    assert "A1" not in cohort.table["person_id"].to_pylist()
    assert cohort.excluded_by_restriction == 1
    assert cohort.selected == cohort.table.num_rows + 1


@pytest.mark.parametrize("rule", sorted(AGREEMENTS))
def test_a_restriction_starting_after_the_identification_keeps_them_out_of_todays_share(
    rule: str,
) -> None:
    """The restriction starts after the identification's date (the latest extract): it is checked on the
    day of the share, so today's share already leaves the person out."""
    restrictions = pa.table(
        {
            "person_id": ["A1"],
            "kind": ["restriction"],
            "starts_on": [AS_OF + timedelta(days=5)],
            "ends_on": [None],
            "reference": ["DSR-2026-00001"],
            "recorded_at": pa.array([0], pa.timestamp("us", tz="UTC")),
        },
        schema=RESTRICTIONS_SCHEMA,
    )
    cohort = select_cohort(
        AGREEMENTS[rule], _inputs(restrictions=restrictions, share_date=AS_OF + timedelta(days=5))
    )
    assert "A1" not in cohort.table["person_id"].to_pylist()
    assert cohort.excluded_by_restriction == 1


@pytest.mark.parametrize("rule", sorted(AGREEMENTS))
def test_a_family_that_objected_is_left_out_of_every_share_and_another_withdrawal_is_not(rule: str) -> None:
    assessments = pa.table(
        {
            "family_id": ["A", "B", "C"],
            "decision": ["withdrawn", "withdrawn", "does_not_meet"],
            "reason": ["family_objected", "recorded_in_error", "evidence_not_confirmed"],
            "programme_status": [None, None, "not_included"],
        }
    )
    cohort = select_cohort(AGREEMENTS[rule], _inputs(assessments=assessments))
    ids = cohort.table["person_id"].to_pylist()
    assert not {"A1", "A2"} & set(ids)  # family A objected: no member goes, ONS comparison group included
    if rule == "meets_any_criterion":
        assert "B1" in ids  # recorded in error is not an objection
    assert cohort.excluded_by_objection >= 1


def test_register_rows_are_the_inner_join_in_the_cohort_order() -> None:
    from supporting_families.share.cohort import register_rows

    persons = pa.table({"person_id": ["a", "b", "c", "d"], "given": ["1", "2", "3", "4"]})
    cohort = pa.table({"person_id": ["c", "x", "a"], "programme_status": ["s1", "s2", "s3"]})
    rows, missing = register_rows(cohort, persons)
    assert missing == 1
    joined = (
        cohort.join(persons, "person_id", join_type="inner").select(rows.column_names).sort_by("person_id")
    )
    assert rows.to_pylist() == joined.to_pylist()[::-1]
    assert rows.column_names == ["person_id", "given", "programme_status"]


def test_register_rows_narrowed_to_columns_and_first_row_of_a_person_held_twice() -> None:
    from supporting_families.share.cohort import register_rows

    persons = pa.table(
        {"person_id": ["a", "b", "a", "c"], "given": ["1", "2", "3", "4"], "town": ["t1", "t2", "t3", "t4"]}
    )
    cohort = pa.table({"person_id": ["c", "a", "z"]})
    rows, missing = register_rows(cohort, persons, ["person_id", "town"])
    assert missing == 1
    assert rows.to_pylist() == [{"person_id": "c", "town": "t4"}, {"person_id": "a", "town": "t1"}]
    empty, missing = register_rows(cohort.slice(0, 0), persons)
    assert (empty.num_rows, missing, empty.column_names) == (0, 0, ["person_id", "given", "town"])
