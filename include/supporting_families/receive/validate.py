"""Reading and validating a partner's decrypted return strictly by its agreement's ``returns`` spec.

"validation against the agreement's return schema with pandera, lazy, with a row-level
report". Two layers, as for the internal extracts (``ingest_read`` / ``ingest_validate``):

* **File rules** (:data:`RETURN_FILE_RULES`): size, encoding, header, row shape. Breaking one means the file
  cannot be read reliably (a shifted delimiter moves a flag into the reference column), so it is rejected
  whole before any row is looked at.
* **Row rules** (:data:`RETURN_ROW_RULES`): every cell of every row against the column's type, allowed values
  and nullability, and the reference column against the reference format, checked lazily with pandera so
  the report lists every failure in one pass.

A return is all or nothing: one failing row rejects the file ("a bad return file ... is
quarantined"), because its answers change who is eligible and a partial answer cannot be told from a
complete one. Nothing here ever puts a value from the file in a message, a log line or the report: only
the file name, the rule, the column and the row number as a spreadsheet shows it (the header is row 1).

The cell format the partners write (see ``sf_demo.partner_simulator.answers.render_csv``): UTF-8 without a
byte-order mark, RFC 4180 quoting, booleans ``true``/``false``, dates ISO 8601 (``2025-03-31``), integers in
decimal, an empty cell for "no value".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pandera.pandas as pdr
import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.audit import PersonalDataError, check_details
from supporting_families.config.agreements import Agreement, Column
from supporting_families.validation import csv_rules as csv_checks
from supporting_families.validation.rows import blank_rows, lazy_failures

__all__ = [
    "PROBLEMS_SCHEMA",
    "RETURN_FILE_RULES",
    "RETURN_ROW_RULES",
    "ReturnRejected",
    "ValidatedReturn",
    "validate_return",
]

MIB: Final = 1 << 20

#: File-level rules: each rejects the whole file. Their keys are what reports and exceptions name.
RETURN_FILE_RULES: Final[dict[str, str]] = {
    "too_large": "the decrypted file is larger than the agreement's returns.max_size_mib",
    "empty_file": "the file has no content",
    "unexpected_bom": "the file starts with a byte-order mark (returns are UTF-8 without one)",
    "encoding": "the bytes are not valid UTF-8 text",
    "duplicate_headers": "a column header appears more than once",
    "header": "the header is not exactly the agreement's return columns, in order",
    "unparseable": "the CSV cannot be parsed (for example an unbalanced quote)",
    "ragged_rows": "a row has more or fewer fields than the header",
    "receipt_rows": "a receipt must have exactly one data row",
    "row_rules": "one or more rows break a row rule (see the report)",
}

#: Row-level rules, named in ``report.csv`` (one line per row, column and rule).
RETURN_ROW_RULES: Final[dict[str, str]] = {
    "blank_row": "every field of the row is empty",
    "required": "an empty value in a column the agreement does not mark nullable",
    "allowed": "the value is not one of the column's allowed values",
    "boolean": "the value is not 'true' or 'false'",
    "date": "the value is not a real date written YYYY-MM-DD",
    "integer": "the value is not a whole number",
    "reference": "the reference is not of the form v<key version>-<32 lower-case hex digits>",
    "sha256": "the value is not a SHA-256 digest (64 hex digits)",
    "ragged_row": "the row has more or fewer fields than the header",
}

#: ``report.csv`` and :attr:`ReturnRejected.problems`: where, never what.
PROBLEMS_SCHEMA: Final = pa.schema(
    [
        pa.field("row_number", pa.int64()),
        pa.field("column", pa.string()),
        pa.field("rule", pa.string()),
    ]
)

# pseudonymise.REFERENCE_RE, anchored for Arrow's regex engine: what a partner must echo back.
REFERENCE_PATTERN: Final = r"^v[1-9][0-9]{0,5}-[0-9a-f]{32}$"
_SHA256_PATTERN: Final = r"^[0-9a-fA-F]{64}$"
_INTEGER_PATTERN: Final = r"^-?[0-9]{1,18}$"
_DATE_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_BOOLEANS: Final = ("true", "false")
#: Row numbers quoted in an exception message; the report has them all.
_ROWS_IN_MESSAGE: Final = 10
#: The shape of a return's name as the platform asks for it: the agreement's prefix, a delivery id (d + 16
#: letters a-p) and the suffix. Anything else is the partner's own choice.
_RETURN_NAME_SHAPE: Final = re.compile(r"[a-z]+(?:-[a-z]+)*-d[a-p]{16}(?:\.[a-z]+){1,3}")


def shown_name(name: str) -> str:
    """A return's name as a message may show it: as it is when it has the platform's shape and nothing
    personal-looking, else by its SHA-256 (a partner-chosen name can carry a date of birth or a name)."""
    if _RETURN_NAME_SHAPE.fullmatch(name):
        try:
            check_details({"file": name})
        except PersonalDataError:
            pass
        else:
            return name
    return "name sha256 " + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()


_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "string": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "integer": pa.int64(),
}


def _empty_problems() -> pa.Table:
    return PROBLEMS_SCHEMA.empty_table()


class ReturnRejected(csv_checks.FileRejected):
    """A return file was rejected: ``str()`` names the file, the rule and the row numbers, never a value.

    ``problems`` holds one row per (row_number, column, rule) for row-level failures (empty for a file rule
    without rows); it is what ``report.csv`` in the quarantine contains.
    """

    def __init__(self, file: str, rule: str, detail: str, problems: pa.Table | None = None) -> None:
        # Before the base builds the message, which lists the problem rows.
        self.problems = problems if problems is not None else _empty_problems()
        super().__init__(file, rule, detail)

    def _message(self) -> str:
        message = f"{shown_name(self.file)}: rejected by rule {self.rule!r}: {self.detail}"
        rows = self.row_numbers
        if rows:
            shown = ", ".join(str(r) for r in rows[:_ROWS_IN_MESSAGE])
            more = f" and {len(rows) - _ROWS_IN_MESSAGE} more" if len(rows) > _ROWS_IN_MESSAGE else ""
            rules = sorted(set(self.problems.column("rule").to_pylist()))
            message += f" (row rules {rules}; rows {shown}{more}; see report.csv)"
        return message

    @property
    def row_numbers(self) -> list[int]:
        """Distinct row numbers with a problem, ascending (as a spreadsheet numbers them)."""
        if self.problems.num_rows == 0:
            return []
        rows = pc.unique(pc.drop_null(self.problems.column("row_number"))).to_pylist()
        return sorted(int(r) for r in rows)

    def __reduce__(self) -> tuple[type[ReturnRejected], tuple[str, str, str, pa.Table]]:
        # Keep the fields across pickling (Airflow's exception transport, multiprocessing).
        return (type(self), (self.file, self.rule, self.detail, self.problems))


@dataclass(frozen=True)
class ValidatedReturn:
    """A return that passed every rule: its rows typed by the agreement (string, bool, date32, int64)."""

    file: str
    table: pa.Table

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


# -- file rules ----------------------------------------------------------------------------------------


def _decode(data: bytes, file: str) -> str:
    # Always UTF-8 without a byte-order mark: the partners' format is fixed, where each extract source
    # declares its own encoding.
    return csv_checks.decode(
        data, file, ReturnRejected, encoding="utf-8", declared="returns are UTF-8 without one"
    )


def _check_header(text: str, expected: list[str], file: str) -> None:
    header = csv_checks.split_header(csv_checks.split_first_line(text)[0])
    csv_checks.check_duplicate_headers(header, set(expected), file, ReturnRejected)
    # The rows are read by position under the agreement's names, so, unlike an extract's, the header must
    # match in order too, and every mismatch (a wrong delimiter included) is the one rule "header".
    if header != expected:
        known = set(expected)
        missing = [name for name in expected if name not in header]
        unknown = sum(1 for h in header if h not in known)
        if not missing and not unknown:
            detail = f"the columns are in another order; the agreement's order is {expected}"
        else:
            detail = (
                f"missing {missing}, {unknown} header(s) the agreement does not name; expected {expected}"
            )
        raise ReturnRejected(file, "header", detail)


def _parse(data: bytes, expected: list[str], file: str) -> pa.Table:
    # The whole file, unlike an extract's trimmed body: partners write one line end per row, so a blank
    # line, even the last, is a row that breaks "blank_row"; and no rows at all is a valid answer.
    table, ragged = csv_checks.read_rows(data, expected, file, ReturnRejected, header_in_data=True)
    if ragged:
        problems = pa.table(
            {
                "row_number": pa.array(ragged, pa.int64()),
                "column": pa.array([""] * len(ragged), pa.string()),
                "rule": pa.array(["ragged_row"] * len(ragged), pa.string()),
            },
            schema=PROBLEMS_SCHEMA,
        )
        raise ReturnRejected(file, "ragged_rows", csv_checks.ragged_detail(ragged, len(expected)), problems)
    return table


# -- row rules -----------------------------------------------------------------------------------------


def _arrow(series: pd.Series[str]) -> pa.ChunkedArray:
    # The frame is Arrow-backed (pd.ArrowDtype), so this hands the checks Arrow's own buffers.
    return pa.chunked_array(pa.array(series.array))


def _as_series(mask: pa.ChunkedArray | pa.Array, like: pd.Series[str]) -> pd.Series[bool]:
    values = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=np.bool_)
    return pd.Series(values, index=like.index)


def _regex_check(pattern: str, name: str) -> pdr.Check:
    def check(series: pd.Series[str]) -> pd.Series[bool]:
        return _as_series(pc.match_substring_regex(_arrow(series), pattern), series)

    # element-wise nulls are the nullability rule's business, not this one's.
    return pdr.Check(check, name=name, ignore_na=True)


def _in_check(values: tuple[str, ...], name: str) -> pdr.Check:
    value_set = pa.array(values, pa.string())

    def check(series: pd.Series[str]) -> pd.Series[bool]:
        return _as_series(pc.is_in(_arrow(series), value_set=value_set), series)

    return pdr.Check(check, name=name, ignore_na=True)


def _date_check() -> pdr.Check:
    def check(series: pd.Series[str]) -> pd.Series[bool]:
        values = _arrow(series)
        shaped = pc.match_substring_regex(values, _DATE_PATTERN)
        # strptime rolls impossible dates over (2025-02-31 becomes 3 March): the day must survive.
        parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
        day = pc.utf8_lpad(pc.cast(pc.day(parsed), pa.string()), width=2, padding="0")
        same_day = pc.equal(pc.utf8_slice_codeunits(values, 8, 10), day)
        return _as_series(pc.and_(shaped, same_day), series)

    return pdr.Check(check, name="date", ignore_na=True)


def _column_checks(column: Column, agreement: Agreement) -> list[pdr.Check]:
    spec = agreement.returns
    checks: list[pdr.Check] = []
    if column.type == "boolean":
        checks.append(_in_check(_BOOLEANS, "boolean"))
    elif column.type == "date":
        checks.append(_date_check())
    elif column.type == "integer":
        checks.append(_regex_check(_INTEGER_PATTERN, "integer"))
    if column.allowed is not None:
        checks.append(_in_check(column.allowed, "allowed"))
    if spec.reference is not None and column.name == spec.reference.column:
        checks.append(_regex_check(REFERENCE_PATTERN, "reference"))
    if spec.receipt is not None and column.name == spec.receipt.sha256_column:
        checks.append(_regex_check(_SHA256_PATTERN, "sha256"))
    return checks


def return_schema(agreement: Agreement) -> pdr.DataFrameSchema:
    """The pandera schema of a return's text columns (empty cells already null)."""
    return pdr.DataFrameSchema(
        {
            c.name: pdr.Column(nullable=c.nullable, checks=_column_checks(c, agreement), coerce=False)
            for c in agreement.returns.columns
        },
        strict=True,
        ordered=True,
        name=f"{agreement.id} return",
    )


def _row_failures(values: pa.Table, agreement: Agreement) -> pa.Table:
    """Every (row_number, column, rule) that fails, sorted; empty when every row passes."""
    blank = blank_rows(values)
    frame = values.to_pandas(types_mapper=pd.ArrowDtype)
    if blank.any():
        frame = frame.loc[~blank]  # a blank row is reported once, not once per empty column
    found = lazy_failures(
        return_schema(agreement), frame, blank, what=agreement.id, known_rules=RETURN_ROW_RULES
    )
    index, columns, rules = found.rows, found.columns, found.rules
    table = pa.table(
        {
            # Row i of the table is spreadsheet row i + 2: the header is row 1 (no row was skipped,
            # since ragged rows reject the file before this runs).
            "row_number": pa.array(index.astype(np.int64) + 2, pa.int64()),
            "column": pa.array(columns, pa.string()),
            "rule": pa.array(rules, pa.string()),
        },
        schema=PROBLEMS_SCHEMA,
    )
    return table.sort_by([("row_number", "ascending"), ("column", "ascending"), ("rule", "ascending")])


def _typed(values: pa.Table, agreement: Agreement) -> pa.Table:
    """The validated text columns in the agreement's types (every value is known to convert)."""
    columns: list[pa.ChunkedArray] = []
    receipt = agreement.returns.receipt
    for spec in agreement.returns.columns:
        column = values.column(spec.name)
        if spec.type == "boolean":
            column = pc.equal(column, "true")
        elif spec.type == "date":
            column = pc.cast(pc.strptime(column, format="%Y-%m-%d", unit="s"), pa.date32())
        elif spec.type == "integer":
            column = pc.cast(column, pa.int64())
        elif receipt is not None and spec.name == receipt.sha256_column:
            column = pc.utf8_lower(column)  # hex digits compare case-insensitively
        columns.append(column)
    schema = pa.schema(
        [pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in agreement.returns.columns]
    )
    return pa.table(columns, schema=schema)


def validate_return(plaintext: Path, agreement: Agreement, *, name: str | None = None) -> ValidatedReturn:
    """Read ``plaintext`` (a decrypted return) strictly by ``agreement.returns``; ReturnRejected otherwise.

    ``name`` is the return's file name for messages and the report (default: ``plaintext.name``).
    """
    file = name or plaintext.name
    spec = agreement.returns
    size = plaintext.stat().st_size
    if size > spec.max_size_mib * MIB:
        raise ReturnRejected(file, "too_large", f"{size} bytes > {spec.max_size_mib} MiB")
    data = plaintext.read_bytes()
    text = _decode(data, file)
    expected = [c.name for c in spec.columns]
    _check_header(text, expected, file)
    raw = _parse(data, expected, file)
    if spec.receipt is not None and raw.num_rows != 1:
        raise ReturnRejected(file, "receipt_rows", f"{raw.num_rows} data rows; a receipt has exactly one")
    # Not trimmed, unlike an extract: the partners' format is exact, so a padded reference or flag breaks a
    # row rule rather than being quietly mended.
    values = pa.table([csv_checks.blank_to_null(c) for c in raw.columns], names=raw.column_names)
    failures = _row_failures(values, agreement)
    if failures.num_rows:
        rows = len(pc.unique(failures.column("row_number")))
        raise ReturnRejected(
            file, "row_rules", f"{failures.num_rows} problem(s) in {rows} of {raw.num_rows} row(s)", failures
        )
    return ValidatedReturn(file=file, table=_typed(values, agreement))
