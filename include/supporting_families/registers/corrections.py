"""Rectifications: a corrected value outranks the sources until the sources agree.

The notice: "You have a right to request your data to be rectified if it is inaccurate or incomplete"
(UK GDPR Article 16). The register is rebuilt from the departments' extracts at every identification, so a
correction made only in the register would be reverted by the next run. A correction is therefore kept here
and applied over the linked register (:func:`apply_corrections`) until the register's own value, built from
the sources, equals it: from then on the source says the same thing, the correction is settled and no longer
applied, and a later change in the source is the source's to make.

``register/corrections.parquet`` holds the corrected values (personal data, direct): the register's
retention class, and erasable by person.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.registers._table import append_rows, read_table, replace_table
from supporting_families.registers.requests import RequestError, check_internal_id
from supporting_families.store.layout import register_file
from supporting_families.store.schemas import REGISTER_SCHEMA

#: The register's identity fields a person may have corrected (internal ids are the council's own).
CORRECTABLE_FIELDS: Final = tuple(
    f.name for f in REGISTER_SCHEMA if f.name not in ("person_id", "household_id", "family_id")
)

CORRECTIONS_SCHEMA: Final = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("value", pa.string()),  # as text; dates ISO 8601. Null: the field is cleared
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("settled_at", pa.timestamp("us", tz="UTC")),  # when the register's sources agreed
    ]
)


def corrections_path(store: UPath) -> UPath:
    return register_file(store, "corrections")


def read_corrections(store: UPath) -> pa.Table:
    return read_table(corrections_path(store), CORRECTIONS_SCHEMA)


def _as_field_type(field: str, value: str | None) -> object:
    if value is None:
        return None
    if field == "date_of_birth":
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise RequestError("value: a date of birth as YYYY-MM-DD (rule: ISO date)") from None
    return value


def normalise_value(field: str, value: str | None) -> str | None:
    """The value as the register holds it: trimmed; postcodes upper-case with one space."""
    if field not in CORRECTABLE_FIELDS:
        raise RequestError(f"field: one of {', '.join(CORRECTABLE_FIELDS)} (rule: correctable field)")
    if value is None or not value.strip():
        return None
    value = " ".join(value.split())
    if field == "postcode":
        compact = value.replace(" ", "").upper()
        value = f"{compact[:-3]} {compact[-3:]}" if len(compact) > 3 else compact
    if field == "sex" and value.upper() not in ("F", "M"):
        raise RequestError("value: F or M, as the source systems record it (rule: sex code)")
    if field == "uprn" and not (value.isdigit() and len(value) <= 12):
        raise RequestError("value: a UPRN of up to 12 digits (rule: UPRN)")
    _as_field_type(field, value)
    return value.upper() if field == "sex" else value


def record_correction(
    store: UPath,
    person_id: str,
    field: str,
    value: str | None,
    request_id: str,
    *,
    now: datetime | None = None,
) -> bool:
    """Keep a corrected value; False if this request already recorded this field (a retry)."""
    check_internal_id(person_id)
    value = normalise_value(field, value)
    existing = read_corrections(store)
    same = pc.and_(pc.equal(existing["request_id"], request_id), pc.equal(existing["field"], field))
    if existing.num_rows and pc.any(same).as_py():
        return False
    row = {
        "person_id": person_id,
        "field": field,
        "value": value,
        "request_id": request_id,
        "recorded_at": (now or datetime.now(UTC)).astimezone(UTC),
        "settled_at": None,
    }
    append_rows(corrections_path(store), CORRECTIONS_SCHEMA, [row])
    return True


def latest_corrections(corrections: pa.Table) -> pa.Table:
    """The newest unsettled correction per person and field."""
    live = corrections.filter(pc.is_null(corrections["settled_at"]))
    if live.num_rows == 0:
        return live
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for row in live.sort_by("recorded_at").to_pylist():
        rows[(str(row["person_id"]), str(row["field"]))] = row
    return pa.Table.from_pylist(list(rows.values()), schema=CORRECTIONS_SCHEMA)


def apply_corrections(
    persons: pa.Table, corrections: pa.Table, *, now: datetime | None = None
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Apply unsettled corrections over the register built from the sources.

    Returns ``(persons, corrections, counts)``: the corrected register; the corrections table with
    ``settled_at`` set where the sources now agree; counts ``applied`` and ``settled``.
    """
    latest = latest_corrections(corrections)
    counts = {"applied": 0, "settled": 0}
    if latest.num_rows == 0 or persons.num_rows == 0:
        return persons, corrections, counts
    index = {pid: i for i, pid in enumerate(persons["person_id"].to_pylist())}
    columns = {name: persons[name].to_pylist() for name in CORRECTABLE_FIELDS}
    settled_now: set[tuple[str, str, str]] = set()
    for row in latest.to_pylist():
        i = index.get(str(row["person_id"]))
        if i is None:
            continue  # not in the register now (erased, or in no current source): nothing to correct
        field = str(row["field"])
        wanted = _as_field_type(field, row["value"])  # type: ignore[arg-type]
        if columns[field][i] == wanted:
            settled_now.add((str(row["person_id"]), field, str(row["request_id"])))
            counts["settled"] += 1
            continue
        columns[field][i] = wanted
        counts["applied"] += 1
    for name in CORRECTABLE_FIELDS:
        position = persons.schema.get_field_index(name)
        persons = persons.set_column(
            position, persons.schema.field(name), pa.array(columns[name], persons.schema.field(name).type)
        )
    if settled_now:
        stamp = pa.scalar((now or datetime.now(UTC)).astimezone(UTC), pa.timestamp("us", tz="UTC"))
        keys = [
            (p, f, r) in settled_now
            for p, f, r in zip(
                corrections["person_id"].to_pylist(),
                corrections["field"].to_pylist(),
                corrections["request_id"].to_pylist(),
                strict=True,
            )
        ]
        settled = pc.and_(pa.array(keys, pa.bool_()), pc.is_null(corrections["settled_at"]))
        corrections = corrections.set_column(
            5, "settled_at", pc.if_else(settled, stamp, corrections["settled_at"])
        )
    return persons, corrections, counts


def save_corrections(store: UPath, corrections: pa.Table) -> None:
    replace_table(corrections_path(store), corrections.cast(CORRECTIONS_SCHEMA))
