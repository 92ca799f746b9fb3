"""``include/sources.yaml`` seen from the generator: the two directions of the extract description.

The strict model itself (:class:`SourcesConfig`, :func:`load_sources`...) lives in the core module
:mod:`supporting_families.config.sources`, shared with the ingest; it is re-exported here for existing
callers.

:func:`render_extract` turns a canonical table (standard names, typed values) into the source's own columns,
codes and formats; :func:`encode_extract` writes those as the source's bytes (delimiter, quoting, line ends,
encoding). :func:`read_extract` is the inverse, used by the tests to prove that the file alone is enough to
read every extract back; the ingest (:mod:`supporting_families.ingest.pipeline`) follows the same description.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from supporting_families.config import (
    DEFAULT_SOURCES_PATH,
    IDENTITY_FIELDS,
    ColumnSpec,
    SourcesConfig,
    SourcesConfigError,
    SourceSpec,
    load_sources,
)

__all__ = [
    "DEFAULT_SOURCES_PATH",
    "IDENTITY_FIELDS",
    "ColumnSpec",
    "SourceSpec",
    "SourcesConfig",
    "SourcesConfigError",
    "encode_extract",
    "load_sources",
    "read_extract",
    "render_extract",
]


# --- rendering: canonical -> the source's own text -------------------------------------------------------


def _decimal_text(minor_units: Any, scale: int) -> Any:
    """Integer minor units (pence, tenths of a percent) as fixed-point text, e.g. 899 at scale 1 -> "89.9"."""
    values = minor_units.cast(pa.int64())
    if scale == 0:
        return pc.cast(values, pa.string())
    factor = 10**scale
    whole = pc.cast(pc.divide(values, factor), pa.string())
    frac = pc.utf8_lpad(
        pc.cast(pc.subtract(values, pc.multiply(pc.divide(values, factor), factor)), pa.string()),
        width=scale,
        padding="0",
    )
    return pc.binary_join_element_wise(whole, frac, ".")


def _code_text(values: Any, codes: dict[str, str | bool], rng: np.random.Generator) -> Any:
    """Standard values back to raw codes; where several raw codes share a value, pick one at random."""
    standard_values: list[str | bool] = sorted(set(codes.values()), key=str)
    raw_by_value = {v: [raw for raw, std in codes.items() if std == v] for v in standard_values}
    index = pc.index_in(values, value_set=pa.array(standard_values))
    if index.null_count > values.null_count:
        raise SourcesConfigError.one("sources.yaml", "codes", "a generated value has no raw code")
    idx = np.asarray(pc.fill_null(index, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    counts = np.array([len(raw_by_value[v]) for v in standard_values], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    flat = pa.array([raw for v in standard_values for raw in raw_by_value[v]], pa.string())
    choice = (rng.random(len(idx)) * counts[idx]).astype(np.int64) if (counts > 1).any() else 0
    taken = flat.take(pa.array(starts[idx] + choice))
    return pc.if_else(pc.is_null(values), pa.nulls(len(values), pa.string()), taken)


def _case(values: Any, case: str) -> Any:
    if case == "upper":
        return pc.utf8_upper(values)
    if case == "lower":
        return pc.utf8_lower(values)
    return values


def render_extract(canonical: pa.Table, spec: SourceSpec, rng: np.random.Generator) -> pa.Table:
    """The canonical table (standard names) as the source writes it: its headers, order, codes and formats.

    Canonical types: text for string/postcode (spaced, upper case)/uprn (12 digits); ``date32`` for dates;
    ``timestamp[s]`` for datetimes; ``int64`` for integers and for decimals (in minor units: tenths, pence);
    ``bool`` for booleans; text standard values for codes.
    """
    missing = [c.standard for c in spec.columns if c.standard not in canonical.column_names]
    extra = [n for n in canonical.column_names if n not in spec.by_standard]
    if missing or extra:
        raise SourcesConfigError.one(
            "sources.yaml",
            f"sources.{spec.name}.columns",
            f"the file and the generator disagree: named in the file but not generated {missing}, "
            f"generated but not in the file {extra}",
        )
    out = []
    for col in spec.columns:
        values = canonical.column(col.standard).combine_chunks()
        if col.type in ("date", "datetime"):
            text = pc.strftime(values, format=spec.date_format_of(col))
        elif col.type in ("code", "boolean"):
            text = _code_text(values, col.codes or {}, rng)
        elif col.type == "decimal":
            text = _decimal_text(values, col.scale or 0)
        elif col.type == "integer":
            text = pc.cast(values, pa.string())
        elif col.type == "postcode":
            text = pc.replace_substring(values, " ", "") if col.format == "compact" else values
        elif col.type == "uprn" and col.format == "integer":
            text = pc.cast(pc.cast(values, pa.int64()), pa.string())
        else:
            text = values
        out.append(_case(text, col.case))
    return pa.table(out, names=[c.name for c in spec.columns])


def encode_extract(rendered: pa.Table, spec: SourceSpec) -> bytes:
    """The rendered table as the bytes the department's system would send."""
    style = "all_valid" if spec.quoting == "all" else "none"
    buf = io.BytesIO()
    pacsv.write_csv(
        rendered,
        buf,
        pacsv.WriteOptions(
            delimiter=spec.delimiter,
            quoting_style=style,
            quoting_header=style,
            eol="\r\n" if spec.line_terminator == "crlf" else "\n",
        ),
    )
    data = buf.getvalue()
    if spec.encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + data
    if spec.encoding == "cp1252":
        return data.decode("utf-8").encode("cp1252")
    return data


# --- reading: the source's bytes -> canonical ------------------------------------------------------------


def _parse_column(values: Any, col: ColumnSpec, spec: SourceSpec) -> Any:
    where = f"{spec.name}.{col.name}"
    if col.pattern is not None:
        ok = pc.match_substring_regex(values, col.pattern)
        if pc.any(pc.invert(pc.fill_null(ok, True))).as_py():
            raise ValueError(f"{where}: values that do not match {col.pattern}")
    if not col.nullable and values.null_count:
        raise ValueError(f"{where}: {values.null_count} empty values in a column that cannot be empty")
    if col.type in ("date", "datetime"):
        stamps = pc.strptime(values, format=spec.date_format_of(col), unit="s")
        return stamps.cast(pa.date32()) if col.type == "date" else stamps
    if col.type in ("code", "boolean"):
        codes = col.codes or {}
        raw = list(codes)
        index = pc.index_in(values, value_set=pa.array(raw, pa.string()))
        if index.null_count > values.null_count:
            raise ValueError(f"{where}: values that are not among its codes")
        target = pa.array([codes[r] for r in raw], pa.bool_() if col.type == "boolean" else pa.string())
        return target.take(index)
    if col.type == "integer":
        return pc.cast(values, pa.int64())
    if col.type == "decimal":
        return pc.cast(values, pa.decimal128(18, col.scale or 0))
    if col.type == "postcode":
        compact = pc.utf8_upper(pc.replace_substring(values, " ", ""))
        outward = pc.utf8_slice_codeunits(compact, 0, -3)
        inward = pc.utf8_slice_codeunits(compact, -3)
        return pc.binary_join_element_wise(outward, inward, " ")
    if col.type == "uprn":
        return pc.utf8_lpad(values, width=12, padding="0")
    return values


def read_extract(data: bytes, spec: SourceSpec) -> pa.Table:
    """Read one extract's bytes into standard names and types, using nothing but ``spec``.

    A reference reader: it checks the header, patterns, nullability and codes, and raises ``ValueError``
    naming the source and column (never a value). Postcodes come back spaced and upper case, UPRNs as
    12-digit text, decimals as ``decimal128``; names and addresses keep the source's case.
    """
    text = data.decode(spec.encoding)
    names = [c.name for c in spec.columns]
    quote = '"' if spec.quoting == "all" else None
    first_line = text.split("\n", 1)[0].rstrip("\r")
    header = next(
        csv.reader(
            [first_line],
            delimiter=spec.delimiter,
            quotechar=quote or '"',
            quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
        )
    )
    if header != names:
        raise ValueError(f"{spec.name}: header does not match sources.yaml")
    table = pacsv.read_csv(
        io.BytesIO(text.encode("utf-8")),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(delimiter=spec.delimiter, quote_char=quote or False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    out = [_parse_column(table.column(c.name).combine_chunks(), c, spec) for c in spec.columns]
    return pa.table(out, names=[c.standard for c in spec.columns])
