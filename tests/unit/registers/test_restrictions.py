from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from supporting_families.registers.restrictions import (
    RestrictionError,
    exclude_restricted,
    lift_restriction,
    objecting_families,
    read_restrictions,
    record_restriction,
    restricted_persons,
)
from supporting_families.store.io import store_root


def test_active_restrictions_and_objections_are_excluded(tmp_path: Path) -> None:
    store = store_root(tmp_path.as_uri())
    record_restriction(store, "P1", "objection", "RQ-1", date(2026, 1, 1))
    record_restriction(store, "P2", "restriction", "RQ-2", date(2026, 1, 1), date(2026, 2, 1))  # lifted
    record_restriction(store, "P3", "restriction", "RQ-3", date(2026, 5, 1))  # not yet in force
    record_restriction(store, "P4", "restriction", "RQ-4", date(2026, 1, 1), date(2026, 3, 31))  # ends today
    cohort = pa.table({"person_id": ["P1", "P2", "P3", "P4", "P5"]})
    kept, excluded = exclude_restricted(cohort, read_restrictions(store), date(2026, 3, 31))
    assert kept["person_id"].to_pylist() == ["P2", "P3", "P5"]
    assert excluded == 2


def test_restrictions_are_validated(tmp_path: Path) -> None:
    store = store_root(tmp_path.as_uri())
    with pytest.raises(ValueError, match="rule: known kind"):
        record_restriction(store, "P1", "forget", "RQ", date(2026, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot end before"):
        record_restriction(store, "P1", "objection", "RQ", date(2026, 2, 1), date(2026, 1, 1))
    assert read_restrictions(store).num_rows == 0


def test_consent_withdrawal_counts_and_lifting_keeps_the_history(tmp_path: Path) -> None:
    store = store_root(tmp_path.as_uri())
    record_restriction(store, "P1", "consent_withdrawal", "DSR-2026-00001", date(2026, 1, 1))
    record_restriction(store, "P1", "consent_withdrawal", "DSR-2026-00001", date(2026, 1, 1))  # a retry
    assert read_restrictions(store).num_rows == 1
    assert restricted_persons(read_restrictions(store), date(2026, 6, 1)).to_pylist() == ["P1"]
    assert lift_restriction(store, "P1", "DSR-2026-00001", date(2026, 6, 1)) == 1
    table = read_restrictions(store)
    assert table.num_rows == 1 and table["ends_on"].to_pylist() == [date(2026, 6, 1)]
    assert restricted_persons(table, date(2026, 6, 1)).to_pylist() == ["P1"]  # the last day in force
    assert restricted_persons(table, date(2026, 6, 2)).to_pylist() == []
    with pytest.raises(RestrictionError, match="rule: known"):
        lift_restriction(store, "P2", "DSR-2026-00001", date(2026, 6, 1))


def test_only_a_withdrawal_because_the_family_objected_is_an_objection() -> None:
    latest = pa.table(
        {
            "family_id": ["F1", "F2", "F3", "F4"],
            "decision": ["withdrawn", "withdrawn", "withdrawn", "meets_criteria"],
            "reason": ["family_objected", "recorded_in_error", "family_moved_away", "confirmed_at_panel"],
        }
    )
    assert objecting_families(latest).to_pylist() == ["F1"]
