"""Everything the council holds about one person, gathered from every area the store layout lists.

The notice: "You have the right to request a copy of the information that we hold about you" (UK GDPR
Article 15). :func:`person_dossier` walks the register, the source records that linked to the person, the
flags with their reasons, the practitioners' decisions about the family, the partners' answers, the
person's requests and restrictions, and the disclosure history with the values as sent. Subject access
renders it for a person to read; portability exports part of it for another authority.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.config.agreements import Agreement
from supporting_families.identify import assessment_status, latest_identification, read_partner_flags
from supporting_families.identify.store import curated_files
from supporting_families.registers import (
    read_corrections,
    read_holds,
    read_requests,
    read_restrictions,
)
from supporting_families.rights.history import disclosure_history
from supporting_families.store.keystore import KeyStore
from supporting_families.store.layout import identification_dir, register_file


class PersonNotFound(LookupError):
    """No such person in the register (the message holds the id only: an internal id, not a name)."""


def _rows(table: pa.Table, column: str, value: str) -> list[dict[str, Any]]:
    if table.num_rows == 0 or column not in table.column_names:
        return []
    rows: list[dict[str, Any]] = table.filter(pc.equal(table[column], value)).to_pylist()
    return rows


def _read(path: UPath, filters: list[tuple[str, str, Any]] | None = None) -> pa.Table:
    if not path.exists():
        return pa.table({})
    with path.open("rb") as fh:
        return pq.read_table(fh, filters=filters)


def person_record(store: UPath, person_id: str) -> dict[str, Any]:
    persons = _read(register_file(store, "persons"), [("person_id", "==", person_id)])
    if persons.num_rows == 0:
        raise PersonNotFound(f"person {person_id}: not in the register")
    record: dict[str, Any] = persons.to_pylist()[0]
    return record


def source_records(store: UPath, person_id: str) -> list[dict[str, Any]]:
    """The curated rows, in every kept extract, of the source records linked to the person."""
    links = _read(register_file(store, "links"), [("person_id", "==", person_id)])
    out: list[dict[str, Any]] = []
    by_source: dict[str, list[str]] = {}
    for row in links.to_pylist():
        by_source.setdefault(str(row["source"]), []).append(str(row["record_id"]))
    for source, record_ids in sorted(by_source.items()):
        for _day, path in sorted(curated_files(store, source).items()):
            table = _read(path, [("record_id", "in", record_ids)])
            out.extend(table.to_pylist())
    return out


def person_dossier(
    store: UPath, person_id: str, agreements: dict[str, Agreement], keys: KeyStore
) -> dict[str, Any]:
    """The whole dossier as plain data (dates as ``date`` objects; see :func:`to_json`)."""
    record = person_record(store, person_id)
    family_id = str(record["family_id"])
    links = _read(register_file(store, "links"), [("person_id", "==", person_id)]).to_pylist()
    as_of = latest_identification(store)
    flags: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    on_worklist = False
    if as_of is not None:
        folder = identification_dir(store, as_of)
        flags = _read(folder / "person_flags.parquet", [("person_id", "==", person_id)]).to_pylist()
        problems = _read(folder / "family_problems.parquet", [("family_id", "==", family_id)]).to_pylist()
        worklist = _read(folder / "worklist.parquet", [("family_id", "==", family_id)])
        on_worklist = worklist.num_rows > 0
    partner = read_partner_flags(store)
    answers = _rows(partner, "person_id", person_id) if partner is not None else []
    assessments = _read(register_file(store, "assessments"), [("family_id", "==", family_id)]).to_pylist()
    latest = _rows(assessment_status(store), "family_id", family_id)
    disclosures = [d.as_dict() for d in disclosure_history(store, person_id, agreements, keys)]
    return {
        "person_id": person_id,
        "register_record": record,
        "source_links": links,
        "source_records": source_records(store, person_id),
        "identification": {
            "as_of": as_of,
            "flags_with_reasons": flags,
            "family_headline_problems": problems,
            "family_on_practitioners_worklist": on_worklist,
        },
        "assessments": assessments,
        "current_programme_status": latest[0]["programme_status"] if latest else None,
        "partner_answers": answers,
        "requests": _rows(read_requests(store), "person_id", person_id),
        "restrictions": _rows(read_restrictions(store), "person_id", person_id),
        "corrections": _rows(read_corrections(store), "person_id", person_id),
        "legal_holds": _rows(read_holds(store), "subject_id", person_id),
        "disclosures": disclosures,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=_plain, ensure_ascii=False) + "\n"
