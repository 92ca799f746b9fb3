"""Accepted rows into the curated table: the register's names and types, one vocabulary downstream.

The curated contract (docs/STORE.md): lineage columns (source, extract_date, file_sha256, row_number),
``record_id``, the identity columns the source has under the person register's names
(``store/schemas.py``, ``REGISTER_SCHEMA``), then the source's measures by their ``standard`` names, typed.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.config.sources import ColumnSpec, SourceSpec
from supporting_families.ingest.validate import parse_dates
from supporting_families.store.schemas import REGISTER_FIELDS, REGISTER_SCHEMA

LINEAGE_FIELDS: Final = (
    pa.field("source", pa.string(), nullable=False),
    pa.field("extract_date", pa.date32(), nullable=False),
    pa.field("file_sha256", pa.string(), nullable=False),
    pa.field("row_number", pa.int64(), nullable=False),  # as a spreadsheet shows it: the header is row 1
    pa.field("record_id", pa.string(), nullable=False),
)

#: Identity columns in the register's order; a source carries those it has.
IDENTITY_ORDER: Final = tuple(
    f for f in REGISTER_FIELDS if f not in ("person_id", "household_id", "family_id")
)

_NAMES: Final = ("given_name", "family_name")
_ADDRESS: Final = ("address_line_1", "address_line_2", "town")

_MEASURE_TYPES: Final[dict[str, pa.DataType]] = {
    "code": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("s"),  # local (Europe/London) wall-clock time, as the source records it
    "decimal": pa.float64(),
    "integer": pa.int64(),
    "string": pa.string(),
}

_IDENTITY_TYPES: Final[dict[str, pa.DataType]] = {f.name: f.type for f in REGISTER_SCHEMA}


def _identity_columns(spec: SourceSpec) -> list[ColumnSpec]:
    return [spec.by_standard[name] for name in IDENTITY_ORDER if name in spec.by_standard]


def _measure_columns(spec: SourceSpec) -> list[ColumnSpec]:
    return [c for c in spec.columns if not c.is_identity]


def curated_schema(spec: SourceSpec) -> pa.Schema:
    """The schema of ``curated/<source>/<source>_<YYYY-MM-DD>.parquet`` for one source.

    Datetimes are whole seconds, ``timestamp[s]`` as the contract says; Parquet has no seconds unit, so the
    file stores them as milliseconds and a reader gets ``timestamp[ms]`` back (the same instants).
    """
    fields = list(LINEAGE_FIELDS)
    fields += [pa.field(c.standard, _IDENTITY_TYPES[c.standard]) for c in _identity_columns(spec)]
    fields += [pa.field(c.standard, _MEASURE_TYPES[c.type]) for c in _measure_columns(spec)]
    return pa.schema(fields)


def _collapse(values: pa.ChunkedArray) -> pa.ChunkedArray:
    out: pa.ChunkedArray = pc.replace_substring_regex(pc.utf8_trim_whitespace(values), r"\s+", " ")
    return out


def standard_postcode(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Upper case with one space before the three-character inward code ("w105ab" -> "W10 5AB")."""
    compact = pc.utf8_upper(pc.replace_substring_regex(values, r"\s+", ""))
    outward = pc.utf8_slice_codeunits(compact, 0, -3)
    inward = pc.utf8_slice_codeunits(compact, -3)
    out: pa.ChunkedArray = pc.binary_join_element_wise(outward, inward, " ")
    return out


def standard_uprn(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Twelve digits, left-padded: a source that holds the UPRN as a number has lost its leading zeros."""
    out: pa.ChunkedArray = pc.utf8_lpad(values, width=12, padding="0")
    return out


def _coded(values: pa.ChunkedArray, col: ColumnSpec) -> pa.ChunkedArray:
    codes = col.codes or {}
    raw = list(codes)
    target = pa.array([codes[r] for r in raw], pa.bool_() if col.type == "boolean" else pa.string())
    index = pc.index_in(values, value_set=pa.array(raw, pa.string()))
    out: pa.ChunkedArray = pc.take(target, index)
    return out


def standard_column(values: pa.ChunkedArray, col: ColumnSpec, spec: SourceSpec) -> pa.ChunkedArray:
    """One validated text column (trimmed, empty = null) in its curated form and type."""
    if col.standard in _NAMES:
        # Title case whatever the system stores (housing writes upper case): names compare alike downstream.
        out: pa.ChunkedArray = pc.utf8_title(_collapse(values))
        return out
    if col.standard in _ADDRESS:
        out = pc.utf8_upper(_collapse(values))
        return out
    if col.type in ("code", "boolean"):
        return _coded(values, col)
    if col.type == "date":
        out = pc.cast(parse_dates(values, spec.date_format_of(col)), pa.date32())
        return out
    if col.type == "datetime":
        out = pc.cast(parse_dates(values, spec.date_format_of(col)), pa.timestamp("s"))
        return out
    if col.type == "integer":
        out = pc.cast(values, pa.int64())
        return out
    if col.type == "decimal":
        out = pc.cast(values, pa.float64())
        return out
    if col.type == "postcode":
        return standard_postcode(values)
    if col.type == "uprn":
        return standard_uprn(values)
    return values


def standardise(
    values: pa.Table, row_numbers: pa.Array, spec: SourceSpec, extract_date: date, file_sha256: str
) -> pa.Table:
    """Accepted rows (text, under their headers) as the curated table of :func:`curated_schema`."""
    n = values.num_rows
    schema = curated_schema(spec)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "source": pa.repeat(pa.scalar(spec.name, pa.string()), n),
        "extract_date": pa.repeat(pa.scalar(extract_date, pa.date32()), n),
        "file_sha256": pa.repeat(pa.scalar(file_sha256, pa.string()), n),
        "row_number": row_numbers,
    }
    for col in spec.columns:
        columns[col.standard] = standard_column(values.column(col.name), col, spec)
    return pa.table([columns[f.name] for f in schema], schema=schema)
