"""``include/sources.yaml``: the strict model of the internal source extracts, and the two directions of it.

:func:`render_extract` turns a canonical table (standard names, typed values) into the source's own columns,
codes and formats; :func:`encode_extract` writes those as the source's bytes (delimiter, quoting, line ends,
encoding). :func:`read_extract` is the inverse, used by the tests to prove that the file alone is enough to
read every extract back; the ingest (issue 3) follows the same description.
"""

from __future__ import annotations

import csv
import io
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from supporting_families.register import REGISTER_FIELDS

#: Identity fields a source column may carry: the register's personal fields plus the source's own record id.
IDENTITY_FIELDS = (
    "record_id",
    *[f for f in REGISTER_FIELDS if f not in ("person_id", "household_id", "family_id")],
)

DEFAULT_SOURCES_PATH = Path(__file__).resolve().parents[2] / "sources.yaml"

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


class SourcesConfigError(ValueError):
    """``sources.yaml`` is invalid or disagrees with the generator; the message names the file and key."""


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    standard: str
    type: Literal["string", "code", "boolean", "date", "datetime", "integer", "decimal", "postcode", "uprn"]
    nullable: bool = False
    format: str | None = None
    case: Literal["as_recorded", "upper", "lower"] = "as_recorded"
    scale: int | None = Field(default=None, ge=0, le=6)
    codes: dict[str, str | bool] | None = None
    pattern: str | None = None
    description: str | None = None

    @property
    def is_identity(self) -> bool:
        return self.standard in IDENTITY_FIELDS

    @field_validator("standard")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _SNAKE.match(value):
            raise ValueError(f"standard name {value!r} must be snake_case")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _type_rules(self) -> ColumnSpec:
        if self.type in ("code", "boolean") and not self.codes:
            raise ValueError(f"column {self.name!r}: type {self.type} needs codes")
        if self.type not in ("code", "boolean") and self.codes:
            raise ValueError(f"column {self.name!r}: codes are only for code and boolean columns")
        if self.type == "boolean" and not all(isinstance(v, bool) for v in (self.codes or {}).values()):
            raise ValueError(f"column {self.name!r}: boolean codes map to true or false")
        if self.type == "code" and not all(isinstance(v, str) for v in (self.codes or {}).values()):
            raise ValueError(f"column {self.name!r}: code values map to text")
        if self.type == "decimal" and self.scale is None:
            raise ValueError(f"column {self.name!r}: decimal needs scale")
        if self.type == "postcode" and self.format not in ("spaced", "compact"):
            raise ValueError(f"column {self.name!r}: postcode format is spaced or compact")
        if self.type == "uprn" and self.format not in ("text", "integer"):
            raise ValueError(f"column {self.name!r}: uprn format is text or integer")
        if self.type in ("string", "code", "boolean", "integer", "decimal") and self.format is not None:
            raise ValueError(f"column {self.name!r}: format is not used by type {self.type}")
        if self.standard == "sex" and self.type != "code":
            raise ValueError(f"column {self.name!r}: sex is a code column")
        if self.standard == "sex" and set((self.codes or {}).values()) - {"F", "M"}:
            raise ValueError(f"column {self.name!r}: sex codes map to F or M")
        expected = {"date_of_birth": "date", "postcode": "postcode", "uprn": "uprn"}.get(self.standard)
        if expected and self.type != expected:
            raise ValueError(f"column {self.name!r}: {self.standard} has type {expected}")
        return self


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    department: str
    system: str
    holds: str
    row_grain: str
    file_glob: str
    extract_date_format: str = "%Y-%m-%d"
    encoding: Literal["utf-8", "utf-8-sig", "cp1252"]
    delimiter: str = Field(min_length=1, max_length=1)
    quoting: Literal["all", "none"]
    line_terminator: Literal["lf", "crlf"]
    date_format: str
    datetime_format: str | None = None
    record_id: str
    columns: tuple[ColumnSpec, ...]

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names {dupes}")
        standards = [c.standard for c in self.columns]
        dupes = sorted({s for s in standards if standards.count(s) > 1})
        if dupes:
            raise ValueError(f"duplicate standard names {dupes}")
        by_name = {c.name: c for c in self.columns}
        if self.record_id not in by_name or by_name[self.record_id].standard != "record_id":
            raise ValueError(f"record_id {self.record_id!r} must name the column whose standard is record_id")
        if by_name[self.record_id].nullable:
            raise ValueError("the record id column cannot be nullable")
        if self.file_glob.count("*") != 1 or f"/{self.name}/" not in f"/{self.file_glob}":
            raise ValueError(
                "file_glob has one '*' (the extract date) and sits in a folder named after the source"
            )
        if any(c.type == "datetime" for c in self.columns) and not self.datetime_format:
            raise ValueError("a datetime column needs datetime_format")
        if self.delimiter in ('"', "\n", "\r"):
            raise ValueError("delimiter cannot be a quote or a line break")
        return self

    @cached_property
    def by_standard(self) -> dict[str, ColumnSpec]:
        return {c.standard: c for c in self.columns}

    @property
    def identity_fields(self) -> tuple[str, ...]:
        return tuple(c.standard for c in self.columns if c.is_identity)

    @property
    def measure_fields(self) -> tuple[str, ...]:
        return tuple(c.standard for c in self.columns if not c.is_identity)

    def path_for(self, extract_date: Any) -> str:
        """The file's path under the store root for one extract date."""
        return self.file_glob.replace("*", extract_date.strftime(self.extract_date_format))

    def date_format_of(self, column: ColumnSpec) -> str:
        if column.format:
            return column.format
        if column.type == "datetime":
            assert self.datetime_format is not None  # guaranteed by _consistent
            return self.datetime_format
        return self.date_format


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    sources: dict[str, SourceSpec]

    @model_validator(mode="before")
    @classmethod
    def _name_sources(cls, data: Any) -> Any:
        # The mapping key is the source's name; copy it in so each spec knows itself.
        if isinstance(data, dict) and isinstance(data.get("sources"), dict):
            data = dict(data)
            data["sources"] = {
                key: ({**value, "name": key} if isinstance(value, dict) and "name" not in value else value)
                for key, value in data["sources"].items()
            }
        return data

    @model_validator(mode="after")
    def _keys_are_names(self) -> SourcesConfig:
        for key, spec in self.sources.items():
            if not _SNAKE.match(key):
                raise ValueError(f"source name {key!r} must be snake_case")
            if spec.name != key:
                raise ValueError(f"source {key!r} carries a different name {spec.name!r}")
        return self


def load_sources(path: Path | str | None = None) -> SourcesConfig:
    """Load and validate ``sources.yaml`` (by default ``include/sources.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_SOURCES_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SourcesConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        return SourcesConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise SourcesConfigError(f"{path}: {problems}") from exc


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
        raise SourcesConfigError("a value has no raw code in sources.yaml")
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
        raise SourcesConfigError(
            f"sources.yaml and the generator disagree on source {spec.name!r}: "
            f"named in the file but not generated {missing}, generated but not in the file {extra}"
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
