"""Practitioners' assessments: the programme state comes from a recorded decision, never from the engine.

UK GDPR Article 22: the worklist is evidence; "assessed as meeting the criteria" exists only once a
practitioner records it, for a family on the current worklist.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.identify import (
    ALL_REASONS,
    REASONS,
    WORKLIST_SCHEMA,
    AssessmentError,
    Recorded,
    assessment_status,
    record_assessment,
)
from supporting_families.store import read_parquet, register_file, write_parquet

AS_OF = date(2025, 3, 31)
T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)


def _worklist(store: UPath, as_of: date, families: list[str]) -> None:
    n = len(families)
    table = pa.table(
        {
            "as_of": pa.array([as_of] * n, pa.date32()),
            "family_id": families,
            "problems": [2] * n,
            "headline_problems": [["school_attendance", "health"]] * n,
            "reasons": [["a reason", "another"]] * n,
            "persons_flagged": [2] * n,
            "members": [3] * n,
            "latest_evidence_date": pa.array([as_of] * n, pa.date32()),
            "from_partner": [False] * n,
        },
        schema=WORKLIST_SCHEMA,
    )
    write_parquet(table, store / "identification" / as_of.isoformat() / "worklist.parquet")


@pytest.fixture
def store(tmp_path: Path) -> UPath:
    root = UPath(tmp_path.as_uri())
    persons = pa.table(
        {
            "person_id": ["P1", "P2", "P3", "P4"],
            "household_id": ["FAM-A", "FAM-A", "FAM-B", "FAM-C"],
            "family_id": ["FAM-A", "FAM-A", "FAM-B", "FAM-C"],
        }
    )
    write_parquet(persons, root / "register" / "persons.parquet")
    _worklist(root, AS_OF, ["FAM-A", "FAM-C"])
    return root


def decide(
    store: UPath, family: str, decision: str, practitioner: str, *args: Any, **kwargs: Any
) -> Recorded:
    """record_assessment with the decision's first reason unless the test gives one."""
    kwargs.setdefault("reason", REASONS.get(decision, ("recorded_in_error",))[0])
    return record_assessment(store, family, decision, practitioner, *args, **kwargs)


def _status(store: UPath) -> dict[str, tuple[str, str | None]]:
    t = assessment_status(store)
    return {
        f: (d, s)
        for f, d, s in zip(
            t.column("family_id").to_pylist(),
            t.column("decision").to_pylist(),
            t.column("programme_status").to_pylist(),
            strict=True,
        )
    }


def test_only_a_recorded_decision_makes_a_family_assessed(store: UPath) -> None:
    assert _status(store) == {}, "the worklist alone assesses nobody"
    rec = decide(
        store,
        "FAM-A",
        "meets_criteria",
        "pr.jones-01",
        AS_OF,
        reason="confirmed_with_lead_professional",
        now=T0,
    )
    assert rec.programme_status == "assessed_as_meeting_criteria" and not rec.already_recorded
    assert _status(store) == {"FAM-A": ("meets_criteria", "assessed_as_meeting_criteria")}
    row = read_parquet(register_file(store, "assessments")).to_pylist()[0]
    assert row["practitioner"] == "pr.jones-01" and row["identification_as_of"] == AS_OF
    assert row["worklist_sha256"] and len(row["worklist_sha256"]) == 64, "the evidence reviewed is pinned"
    assert row["recorded_at"] == T0 and row["reason"] == "confirmed_with_lead_professional"


def test_meets_criteria_needs_the_family_on_the_current_worklist(store: UPath) -> None:
    with pytest.raises(AssessmentError, match=r"family_id: not on the worklist of 2025-03-31") as caught:
        decide(store, "FAM-B", "meets_criteria", "pr.jones-01", AS_OF)
    assert "FAM-B" not in str(caught.value), "errors name the field and rule, not the value"
    _worklist(store, date(2025, 4, 30), ["FAM-C"])  # a newer identification: FAM-A dropped off
    with pytest.raises(AssessmentError, match=r"as_of: the worklist of 2025-03-31 is not the current one"):
        decide(store, "FAM-A", "meets_criteria", "pr.jones-01", AS_OF)
    with pytest.raises(AssessmentError, match=r"not on the worklist of 2025-04-30"):
        decide(store, "FAM-A", "meets_criteria", "pr.jones-01")
    rec = decide(store, "FAM-C", "meets_criteria", "pr.jones-01")  # default: the current worklist
    assert rec.identification_as_of == date(2025, 4, 30)
    assert (
        not (register_file(store, "assessments")).exists()
        or read_parquet(register_file(store, "assessments")).num_rows == 1
    )


def test_does_not_meet_needs_only_a_family_in_the_register(store: UPath) -> None:
    rec = decide(store, "FAM-B", "does_not_meet", "pr.smith", reason="already_supported_elsewhere")
    assert rec.programme_status == "not_included"
    assert _status(store) == {"FAM-B": ("does_not_meet", "not_included")}
    with pytest.raises(AssessmentError, match=r"family_id: not a family in the register") as caught:
        decide(store, "FAM-ZZ", "does_not_meet", "pr.smith")
    assert "FAM-ZZ" not in str(caught.value)


def test_no_decision_before_identification_or_without_a_register(tmp_path: Path) -> None:
    root = UPath(tmp_path.as_uri())
    with pytest.raises(AssessmentError, match="there is no register yet"):
        decide(root, "FAM-A", "does_not_meet", "pr.smith")
    write_parquet(pa.table({"family_id": ["FAM-A"]}), root / "register" / "persons.parquet")
    with pytest.raises(AssessmentError, match="no identification has been run"):
        decide(root, "FAM-A", "meets_criteria", "pr.smith")


def test_the_latest_decision_wins_and_withdrawn_clears_the_state(store: UPath) -> None:
    decide(store, "FAM-A", "meets_criteria", "pr.jones-01", now=T0)
    decide(store, "FAM-C", "meets_criteria", "pr.jones-01", now=T0)
    decide(
        store, "FAM-A", "withdrawn", "pr.jones-01", reason="recorded_in_error", now=T0 + timedelta(hours=1)
    )
    # Recorded later but stamped earlier (a clock behind): the time recorded decides, not file order.
    decide(store, "FAM-C", "does_not_meet", "pr.smith", now=T0 - timedelta(hours=1))
    assert _status(store) == {
        "FAM-A": ("withdrawn", None),
        "FAM-C": ("meets_criteria", "assessed_as_meeting_criteria"),
    }
    # Two decisions at the same instant: the one recorded last wins.
    decide(store, "FAM-C", "withdrawn", "pr.smith", now=T0)
    assert _status(store)["FAM-C"] == ("withdrawn", None)
    assert read_parquet(register_file(store, "assessments")).num_rows == 5, (
        "every decision is kept: an audit trail"
    )
    assert assessment_status(store).column("reason").to_pylist() == ["recorded_in_error", "recorded_in_error"]


def test_a_retried_request_is_recorded_once(store: UPath) -> None:
    first = decide(store, "FAM-A", "meets_criteria", "pr.jones-01", request_id="manual__2025-04-01", now=T0)
    again = decide(
        store,
        "FAM-A",
        "meets_criteria",
        "pr.jones-01",
        request_id="manual__2025-04-01",
        now=T0 + timedelta(minutes=5),
    )
    assert again.already_recorded and again.assessment_id == first.assessment_id
    assert read_parquet(register_file(store, "assessments")).num_rows == 1
    assert not list((Path(store.path) / "register").glob(".*partial")), "appends leave no partial file behind"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("decision", "eligible", "decision: must be one of meets_criteria, does_not_meet, withdrawn"),
        ("practitioner", "Jane Jones", "practitioner: a directory id"),
        ("practitioner", "", "practitioner: a directory id"),
        ("family_id", "  ", "family_id: required"),
        ("reason", "family moved to W10 5AB", "reason: for meets_criteria, one of confirmed_with_"),
        ("reason", "family_objected", "reason: for meets_criteria, one of confirmed_with_"),
        ("reason", "", "reason: for meets_criteria, one of"),
    ],
    ids=[
        "unknown-decision",
        "practitioner-with-space",
        "practitioner-empty",
        "family-blank",
        "reason-free-text",
        "reason-of-another-decision",
        "reason-empty",
    ],
)
def test_invalid_requests_fail_naming_field_and_rule(
    store: UPath, field: str, value: str, fragment: str
) -> None:
    args = {
        "family_id": "FAM-A",
        "decision": "meets_criteria",
        "practitioner": "pr.jones-01",
        "reason": "confirmed_at_panel",
    }
    args[field] = value
    with pytest.raises(AssessmentError) as caught:
        record_assessment(
            store, args["family_id"], args["decision"], args["practitioner"], AS_OF, reason=args["reason"]
        )
    message = str(caught.value)
    assert fragment in message and "(rule: " in message
    if field == "reason" and value:
        assert value not in message, "what was typed is never echoed"
    assert not (register_file(store, "assessments")).exists()


def test_every_decision_has_its_reasons() -> None:
    assert all(REASONS[d] for d in ("meets_criteria", "does_not_meet", "withdrawn"))
    assert len(ALL_REASONS) == len(set(ALL_REASONS))


def test_what_is_returned_for_xcom_holds_no_family(store: UPath) -> None:
    rec = decide(store, "FAM-A", "meets_criteria", "pr.jones-01", reason="confirmed_at_panel", now=T0)
    returned = rec.as_dict()
    assert set(returned) == {
        "assessment_id",
        "decision",
        "programme_status",
        "identification_as_of",
        "recorded_at",
        "already_recorded",
    }
    assert "FAM-A" not in str(returned)


def test_status_of_an_empty_store_is_an_empty_table(tmp_path: Path) -> None:
    t = assessment_status(UPath(tmp_path.as_uri()))
    assert t.num_rows == 0 and "programme_status" in t.column_names
