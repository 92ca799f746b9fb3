"""Row rules: every value of an extract checked against ``sources.yaml`` with pandera, lazily.

A pandera schema is built per source (and extract date) from its
:class:`~supporting_families.config.sources.SourceSpec` and run with ``lazy=True``, so every failure in
every row
and column is collected in one pass rather than stopping at the first. Failures come back as (row number,
column, rule): pandera's own failure cases hold the offending values, so they are read for their position
only and never logged or raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import pandas as pd
import pandera.pandas as pdr
import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.config.sources import ColumnSpec, SourceSpec
from supporting_families.ingest.read import RawExtract
from supporting_families.validation.rows import blank_rows, lazy_failures

#: Row-level rules: each rejects the row, never the file. The keys are what ``report.csv`` names.
ROW_RULES: Final[dict[str, str]] = {
    "blank_row": "every field of the row is empty",
    "required": "an empty value in a column sources.yaml does not mark nullable",
    "pattern": "the value does not match the column's pattern",
    "code": "the value is not one of the column's codes",
    "date_format": "the value is not a real date in the declared format",
    "datetime_format": "the value is not a real date and time in the declared format",
    "integer": "the value is not a whole number",
    "decimal": "the value is not a number with at most the column's decimal places",
    "postcode": "the value is not shaped like a UK postcode",
    "uprn": "the value is not a UPRN: 1 to 12 digits, not all zeros",
    "date_of_birth_range": "the date of birth is after the extract date or before 1900",
}

#: Shape of a UK postcode once spaces are removed and letters upper-cased: outward code (area letters,
#: district digit, optional letter or digit), inward code (sector digit, two unit letters never C, I, K, M,
#: O or V).
#: The rule follows the Royal Mail/ONS postcode format (ONS Postcode Directory user guide).
POSTCODE_COMPACT: Final = r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][ABD-HJLNP-UW-Z]{2}"
EARLIEST_BIRTH: Final = date(1900, 1, 1)

CheckFn = Callable[["pd.Series[str]"], "pd.Series[bool]"]


@dataclass(frozen=True)
class RowVerdict:
    """Which rows passed, and one line per (row, column, rule) for those that did not.

    ``failures`` has columns row_number (int64, as a spreadsheet shows it), column (the header as the source
    writes it; empty for a rule about the whole row) and rule (a key of :data:`ROW_RULES`), and no values.
    """

    accepted: np.ndarray  # bool per row of the extract
    failures: pa.Table

    @property
    def n_accepted(self) -> int:
        return int(self.accepted.sum())

    @property
    def n_rejected(self) -> int:
        return int(len(self.accepted) - self.accepted.sum())


def _arrow(series: pd.Series[str]) -> pa.Array:
    return pa.array(series, type=pa.string(), from_pandas=True)


def _as_series(mask: pa.Array | pa.ChunkedArray, like: pd.Series[str]) -> pd.Series[bool]:
    values = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=np.bool_)
    return pd.Series(values, index=like.index)


def _full_match(pattern: str) -> CheckFn:
    # Anchored once more so an unanchored pattern in sources.yaml still means the whole value.
    anchored = f"^(?:{pattern})$"

    def check(series: pd.Series[str]) -> pd.Series[bool]:
        return _as_series(pc.match_substring_regex(_arrow(series), anchored), series)

    return check


#: Fixed-width strptime directives: their text shape and width. A format made only of these and literal
#: characters has every field at a known offset, which lets :func:`parse_dates` check the day cheaply.
_FIXED_DIRECTIVES: Final[dict[str, tuple[str, int]]] = {
    "%d": ("[0-9]{2}", 2),
    "%m": ("[0-9]{2}", 2),
    "%Y": ("[0-9]{4}", 4),
    "%y": ("[0-9]{2}", 2),
    "%H": ("[0-9]{2}", 2),
    "%M": ("[0-9]{2}", 2),
    "%S": ("[0-9]{2}", 2),
    "%b": ("[A-Za-z]{3}", 3),
}


@dataclass(frozen=True)
class _Shape:
    regex: str
    day_offset: int | None


def _shape_of(fmt: str) -> _Shape | None:
    """The exact text shape of ``fmt`` and where its day sits; None unless every field is fixed-width."""
    parts: list[str] = ["^"]
    offset = 0
    day_offset: int | None = None
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            directive = fmt[i : i + 2]
            if directive not in _FIXED_DIRECTIVES:
                return None
            regex, width = _FIXED_DIRECTIVES[directive]
            if directive == "%d":
                day_offset = offset
            parts.append(regex)
            offset += width
            i += 2
        else:
            parts.append(re.escape(fmt[i]))
            offset += 1
            i += 1
    parts.append("$")
    return _Shape("".join(parts), day_offset)


def parse_dates(values: pa.Array | pa.ChunkedArray, fmt: str) -> pa.Array | pa.ChunkedArray:
    """Timestamps (s) for values that are real dates written exactly in ``fmt``, null otherwise.

    Arrow's strptime is lenient twice over: it takes "1/3/2025" for ``%d/%m/%Y`` and rolls impossible dates
    over (31/02/2025 becomes 3 March). A value counts only if it has the format's exact shape and its day of
    month survives parsing; for a format that is not fixed-width, only if formatting the parsed value with
    ``fmt`` gives the value back (month names compared case-insensitively).
    """
    parsed = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
    shape = _shape_of(fmt)
    if shape is None:
        back = pc.strftime(parsed, format=fmt)
        ok = pc.equal(pc.utf8_upper(back), pc.utf8_upper(values))
    else:
        ok = pc.match_substring_regex(values, shape.regex)
        if shape.day_offset is not None:
            written = pc.utf8_slice_codeunits(values, shape.day_offset, shape.day_offset + 2)
            kept = pc.utf8_lpad(pc.cast(pc.day(parsed), pa.string()), width=2, padding="0")
            ok = pc.and_(ok, pc.equal(written, kept))
    out: pa.Array | pa.ChunkedArray = pc.if_else(
        pc.fill_null(ok, False), parsed, pa.scalar(None, parsed.type)
    )
    return out


def _date_check(fmt: str) -> CheckFn:
    def check(series: pd.Series[str]) -> pd.Series[bool]:
        return _as_series(pc.is_valid(parse_dates(_arrow(series), fmt)), series)

    return check


def _birth_range_check(fmt: str, extract_date: date) -> CheckFn:
    low = pa.scalar(EARLIEST_BIRTH, pa.date32())
    high = pa.scalar(extract_date, pa.date32())

    def check(series: pd.Series[str]) -> pd.Series[bool]:
        born = pc.cast(parse_dates(_arrow(series), fmt), pa.date32())
        in_range = pc.and_(pc.greater_equal(born, low), pc.less_equal(born, high))
        # An unparseable date is the date_format rule's failure, not this one's.
        return _as_series(pc.or_kleene(pc.is_null(born), in_range), series)

    return check


def _code_check(codes: list[str]) -> CheckFn:
    value_set = pa.array(codes, pa.string())

    def check(series: pd.Series[str]) -> pd.Series[bool]:
        return _as_series(pc.is_in(_arrow(series), value_set=value_set), series)

    return check


def _postcode_check(series: pd.Series[str]) -> pd.Series[bool]:
    compact = pc.utf8_upper(pc.replace_substring_regex(_arrow(series), r"\s+", ""))
    return _as_series(pc.match_substring_regex(compact, f"^{POSTCODE_COMPACT}$"), series)


def _uprn_check(series: pd.Series[str]) -> pd.Series[bool]:
    values = _arrow(series)
    digits = pc.match_substring_regex(values, r"^[0-9]{1,12}$")
    zeros = pc.match_substring_regex(values, r"^0+$")
    return _as_series(pc.and_(digits, pc.invert(zeros)), series)


def _decimal_pattern(scale: int) -> str:
    # At most `scale` places: sources.yaml promises exactly that many, fewer lose nothing, more would.
    return r"-?[0-9]{1,15}" + (rf"(\.[0-9]{{1,{scale}}})?" if scale else "")


def column_checks(col: ColumnSpec, spec: SourceSpec, extract_date: date) -> list[pdr.Check]:
    """The pandera checks of one column, each named by its rule in :data:`ROW_RULES`."""
    checks: list[pdr.Check] = []
    if col.pattern is not None:
        checks.append(pdr.Check(_full_match(col.pattern), name="pattern"))
    if col.type in ("code", "boolean"):
        checks.append(pdr.Check(_code_check(list(col.codes or {})), name="code"))
    elif col.type in ("date", "datetime"):
        fmt = spec.date_format_of(col)
        checks.append(pdr.Check(_date_check(fmt), name=f"{col.type}_format"))
        if col.standard == "date_of_birth":
            checks.append(pdr.Check(_birth_range_check(fmt, extract_date), name="date_of_birth_range"))
    elif col.type == "integer":
        checks.append(pdr.Check(_full_match(r"-?[0-9]{1,18}"), name="integer"))
    elif col.type == "decimal":
        checks.append(pdr.Check(_full_match(_decimal_pattern(col.scale or 0)), name="decimal"))
    elif col.type == "postcode":
        checks.append(pdr.Check(_postcode_check, name="postcode"))
    elif col.type == "uprn":
        checks.append(pdr.Check(_uprn_check, name="uprn"))
    return checks


def extract_schema(spec: SourceSpec, extract_date: date) -> pdr.DataFrameSchema:
    """The pandera schema of a source's raw text columns (by header), for an extract of ``extract_date``."""
    return pdr.DataFrameSchema(
        {
            col.name: pdr.Column(
                nullable=col.nullable, checks=column_checks(col, spec, extract_date), coerce=False
            )
            for col in spec.columns
        },
        strict=True,
        name=spec.name,
    )


def _failures_table(row_index: np.ndarray, columns: list[str], rules: list[str]) -> pa.Table:
    table = pa.table(
        {
            "row_number": pa.array(row_index.astype(np.int64) + 2, pa.int64()),
            "column": pa.array(columns, pa.string()),
            "rule": pa.array(rules, pa.string()),
        }
    )
    if table.num_rows == 0:
        return table
    return table.sort_by([("row_number", "ascending"), ("column", "ascending"), ("rule", "ascending")])


def validate_rows(extract: RawExtract, spec: SourceSpec, extract_date: date) -> RowVerdict:
    """Run every row rule over ``extract`` (lazily: all failures) and say which rows are accepted."""
    values = extract.values
    n = values.num_rows
    blank = blank_rows(values)
    frame = values.to_pandas()
    if blank.any():
        frame = frame.loc[~blank]
    found = lazy_failures(
        extract_schema(spec, extract_date), frame, blank, what=spec.name, known_rules=ROW_RULES
    )
    row_index, columns, rules = found.rows, found.columns, found.rules
    accepted = np.ones(n, dtype=np.bool_)
    accepted[row_index] = False
    return RowVerdict(accepted=accepted, failures=_failures_table(row_index, columns, rules))
