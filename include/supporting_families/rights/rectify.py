"""Rectification: correct a value in the register, keep it against the sources, tell the partners.

The notice: "You have a right to request your data to be rectified if it is inaccurate or incomplete"
(UK GDPR Article 16), and Article 19: each recipient of the old value is told. The corrected value is kept
in ``register/corrections.parquet`` and outranks the sources until they agree
(:mod:`supporting_families.registers.corrections`); the register is corrected at once, so the next share
already sends the new value. Each partner that received the person gets a notice with the corrected fields
its agreement allows (:mod:`supporting_families.rights.notices`).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pyarrow.compute as pc
from upath import UPath

from supporting_families.config.agreements import Agreement
from supporting_families.registers import (
    apply_corrections,
    normalise_value,
    read_corrections,
    record_correction,
    save_corrections,
)
from supporting_families.registers.requests import (
    RequestError,
    check_case_reference,
    check_internal_id,
    request_id_for,
)
from supporting_families.rights.history import person_deliveries
from supporting_families.share.package import to_csv_text_columns
from supporting_families.store.io import delete_file, read_parquet, write_bytes_atomic, write_parquet
from supporting_families.store.keystore import KeyStore, period_of
from supporting_families.store.layout import register_file, rights_dir
from supporting_families.store.schemas import REGISTER_SCHEMA
from supporting_families.store.sealed import open_bytes, seal_bytes


def rectify(store: UPath, person_id: str, field: str, value: str | None, request_id: str) -> dict[str, int]:
    """Record the correction and apply it to the register now; counts only."""
    persons_path = register_file(store, "persons")
    persons = read_parquet(persons_path).cast(REGISTER_SCHEMA)
    if not pc.any(pc.equal(persons["person_id"], person_id)).as_py():
        raise LookupError(f"person {person_id}: not in the register")
    recorded = record_correction(store, person_id, field, normalise_value(field, value), request_id)
    corrected, corrections, counts = apply_corrections(persons, read_corrections(store))
    write_parquet(corrected, persons_path)
    if counts["settled"]:
        save_corrections(store, corrections)
    return {"recorded": int(recorded), "applied": counts["applied"]}


def notices_due(
    store: UPath, person_id: str, fields: list[str], agreements: dict[str, Agreement], keys: KeyStore
) -> list[tuple[Agreement, list[str], dict[str, object]]]:
    """``(agreement, person_refs, corrected values)`` for each partner that received one of ``fields``.

    "Within retention": the deliveries the store still keeps (retention removes the rest). The values are
    the register's current ones, in the form the partner's file has them (dates as ISO text).
    """
    persons = read_parquet(register_file(store, "persons")).cast(REGISTER_SCHEMA)
    row = persons.filter(pc.equal(persons["person_id"], person_id))
    if row.num_rows == 0:
        raise LookupError(f"person {person_id}: not in the register")
    as_text = to_csv_text_columns(row).to_pylist()[0]
    refs_by_agreement: dict[str, list[str]] = {}
    fields_by_agreement: dict[str, set[str]] = {}
    for agreement_id, _delivery_id, refs in person_deliveries(store, person_id, keys):
        agreement = agreements.get(agreement_id)
        if agreement is None:
            continue
        allowed = [f for f in fields if f in agreement.fields]
        if not allowed:
            continue
        refs_by_agreement.setdefault(agreement_id, [])
        refs_by_agreement[agreement_id] += [r for r in refs if r not in refs_by_agreement[agreement_id]]
        fields_by_agreement.setdefault(agreement_id, set()).update(allowed)
    out = []
    for agreement_id, refs in sorted(refs_by_agreement.items()):
        agreement = agreements[agreement_id]
        ordered = [f for f in agreement.fields if f in fields_by_agreement[agreement_id]]
        out.append((agreement, refs, {f: as_text[f] for f in ordered}))
    return out


# -- corrections staged by the CLI for the rights_rectification DAG -----------------------------------------
#
# The DAG's form cannot carry the corrected value (Airflow keeps form values in its metadata database), so
# the officer stages it controller-side, sealed under the period's data key, in the request's folder. The DAG
# applies what is staged for its case and deletes the staged file; the value then lives in the register's
# corrections.


def _staged_path(store: UPath, case_reference: str) -> UPath:
    return rights_dir(store, request_id_for("rectification", case_reference)) / "staged_corrections.sealed"


def stage_correction(
    store: UPath, case_reference: str, person_id: str, field: str, value: str | None, keys: KeyStore
) -> int:
    """Stage one corrected value for a case; returns how many fields the case has staged."""
    check_case_reference(case_reference)
    check_internal_id(person_id)
    value = normalise_value(field, value)
    path = _staged_path(store, case_reference)
    context = "/".join(path.parts[len(store.parts) :])
    doc: dict[str, Any] = {"person_id": person_id, "fields": {}}
    if path.exists():
        doc = json.loads(open_bytes(path.read_bytes(), keys, context))
        if doc["person_id"] != person_id:
            raise RequestError("case_reference: already used for another person (rule: one case, one person)")
    doc["fields"][field] = value
    write_bytes_atomic(path, seal_bytes(json.dumps(doc).encode(), keys, period_of(date.today()), context))
    return len(doc["fields"])


def staged_corrections(
    store: UPath, case_reference: str, person_id: str, keys: KeyStore
) -> dict[str, str | None]:
    """What the CLI staged for the case (field -> value); refuses if nothing is, or for another person."""
    path = _staged_path(store, case_reference)
    if not path.exists():
        # A retried run after the staged file was applied and dropped: the register's corrections have it.
        recorded = read_corrections(store)
        mine = recorded.filter(
            pc.and_(
                pc.equal(recorded["request_id"], request_id_for("rectification", case_reference)),
                pc.equal(recorded["person_id"], person_id),
            )
        )
        if mine.num_rows:
            return {str(r["field"]): r["value"] for r in mine.to_pylist()}
        raise RequestError(
            "case_reference: nothing staged; run `python -m supporting_families.rights stage-correction` "
            "first (rule: staged correction)"
        )
    context = "/".join(path.parts[len(store.parts) :])
    doc = json.loads(open_bytes(path.read_bytes(), keys, context))
    if doc["person_id"] != person_id:
        raise RequestError(
            "person_id: the staged correction is for another person (rule: one case, one person)"
        )
    fields: dict[str, str | None] = doc["fields"]
    return fields


def drop_staged(store: UPath, case_reference: str) -> None:
    path = _staged_path(store, case_reference)
    if path.exists():
        delete_file(path)
