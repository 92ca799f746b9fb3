"""Row-level validation shared by ingest and receive: where rows fail, never what they hold.

Both sides validate a CSV's rows with pandera, lazily (every failure collected), and report each failure as
(row, column, rule) without the offending value, since the value is personal data. This is that step.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.compute as pc

#: pandera's name for a null in a non-nullable column; both sides report it as the rule "required".
_PANDERA_NOT_NULL: Final = "not_nullable"


@dataclass(frozen=True)
class RowFailures:
    """0-based positions in the validated table, with the column and rule of each failure."""

    rows: np.ndarray
    columns: list[str]
    rules: list[str]


def blank_rows(values: pa.Table) -> np.ndarray:
    """Which rows are empty in every column (reported once, as ``blank_row``, not per column)."""
    blank = np.ones(values.num_rows, dtype=np.bool_)
    for column in values.columns:
        blank &= np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=np.bool_)
    return blank


def lazy_failures(
    schema: Any, frame: pd.DataFrame, blank: np.ndarray, *, what: str, known_rules: Collection[str]
) -> RowFailures:
    """Validate ``frame`` (the non-blank rows) with ``schema``; every failing row, column and rule.

    ``what`` names the source or agreement in the errors that would mean a bug rather than bad data.
    """
    rows: list[np.ndarray] = [np.flatnonzero(blank)]
    columns: list[str] = [""] * int(blank.sum())
    rules: list[str] = ["blank_row"] * int(blank.sum())
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        # failure_case holds the offending value: only the index, column and check are read.
        cases = exc.failure_cases
        located = cases["index"].notna() & cases["column"].notna()
        if not bool(located.all()):
            # The headers were checked before, so every failure is a cell; anything else is a bug.
            raise RuntimeError(f"{what}: a pandera failure without a row or column") from None
        check = cases["check"].astype(str)
        rule = check.where(check != _PANDERA_NOT_NULL, "required")
        unknown = sorted(set(rule) - set(known_rules))
        if unknown:
            raise RuntimeError(f"{what}: pandera reported checks {unknown} that are not row rules") from None
        rows.append(cases["index"].to_numpy(dtype=np.int64))
        columns.extend(cases["column"].astype(str).tolist())
        rules.extend(rule.tolist())
    return RowFailures(np.concatenate(rows) if rows else np.empty(0, dtype=np.int64), columns, rules)
