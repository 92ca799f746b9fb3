from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from supporting_families.registers.restrictions import (
    exclude_restricted,
    read_restrictions,
    record_restriction,
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
    with pytest.raises(ValueError, match="unknown restriction kind"):
        record_restriction(store, "P1", "forget", "RQ", date(2026, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot end before"):
        record_restriction(store, "P1", "objection", "RQ", date(2026, 2, 1), date(2026, 1, 1))
    assert read_restrictions(store).num_rows == 0
