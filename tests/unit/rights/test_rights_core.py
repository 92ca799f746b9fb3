from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from supporting_families.registers import (
    CORRECTIONS_SCHEMA,
    add_tombstones,
    apply_corrections,
    drop_tombstoned,
    due_requests,
    one_month_after,
    open_request,
    place_hold,
    read_requests,
    read_tombstones,
    record_correction,
)
from supporting_families.rights import Probe, disclosure_history, find_candidates, person_dossier
from supporting_families.rights.actions import Run, erasure, rectification
from supporting_families.rights.erase import compact, load_plan
from supporting_families.store import KeyShredded, SealError, read_parquet, read_sealed_table, write_parquet
from supporting_families.store.layout import curated_file, register_file
from tests.unit.rights.conftest import SmallStore, persons_table

RUN = Run("rights_test", "manual__rights-test", "act", "manual")
KEY = bytes(range(32, 64))


def test_one_month_is_the_same_day_next_month_or_its_last_day() -> None:
    assert one_month_after(date(2026, 1, 15)) == date(2026, 2, 15)
    assert one_month_after(date(2026, 1, 31)) == date(2026, 2, 28)
    assert one_month_after(date(2028, 1, 31)) == date(2028, 2, 29)
    assert one_month_after(date(2026, 12, 31)) == date(2027, 1, 31)


def test_a_request_open_for_31_days_is_overdue_and_one_due_in_three_days_is_near(
    small_store: SmallStore,
) -> None:
    today = datetime.now(UTC).date()
    open_request(small_store.root, "access", "DSR-2026-00031", "P1", today - timedelta(days=31))
    open_request(
        small_store.root, "erasure", "DSR-2026-00032", "P2", one_month_before(today + timedelta(days=3))
    )
    open_request(small_store.root, "access", "DSR-2026-00033", "P3", today)
    due = due_requests(read_requests(small_store.root), today, warn_days=7)
    assert [r["case_reference"] for r in due.overdue] == ["DSR-2026-00031"]
    assert [r["case_reference"] for r in due.due_soon] == ["DSR-2026-00032"]


def one_month_before(day: date) -> date:
    for back in range(27, 32):
        if one_month_after(day - timedelta(days=back)) == day:
            return day - timedelta(days=back)
    raise AssertionError("no such day")


def test_the_case_reference_shape_keeps_names_and_dates_out(small_store: SmallStore) -> None:
    with pytest.raises(ValueError, match="rule: case reference"):
        open_request(small_store.root, "access", "Amara Okafor 1984-02-29", "P1", date(2026, 12, 1))


def test_the_disclosure_history_has_the_values_exactly_as_sent(small_store: SmallStore) -> None:
    [sent] = disclosure_history(small_store.root, "P3", small_store.agreements, small_store.keys)
    assert sent.agreement_id == "dwp-benefits-matching" and sent.partner == "dwp"
    assert sent.fields == small_store.dwp.fields
    assert sent.purpose == small_store.dwp.purpose and sent.legal_gateways
    [row] = sent.values
    assert row["address_line_2"] == "Flat 2" and row["postcode"] == "W11 2AB" and row["uprn"] is None
    assert row["person_ref"] == sent.references[0]
    assert disclosure_history(small_store.root, "P9", small_store.agreements, small_store.keys) == []


def test_the_per_person_lookup_is_the_same_history_without_the_values(small_store: SmallStore) -> None:
    """The DPO's lookup on the console and the subject access bundle call one function; without the data
    values it names partners, fields, dates and reasons, and reads no value."""
    full = disclosure_history(small_store.root, "P3", small_store.agreements, small_store.keys)
    lookup = disclosure_history(
        small_store.root, "P3", small_store.agreements, small_store.keys, with_values=False
    )
    assert [(d.delivery_id, d.partner, d.fields, d.delivered_at) for d in lookup] == [
        (d.delivery_id, d.partner, d.fields, d.delivered_at) for d in full
    ]
    assert lookup[0].values == [] and lookup[0].copy_status == "not_read"
    assert lookup[0].agreement_version == small_store.dwp.version


def test_the_sealed_copy_opens_only_in_its_place_and_not_once_its_key_is_shredded(
    small_store: SmallStore,
) -> None:
    copy = small_store.delivery.sent_copy_path
    assert read_sealed_table(copy, small_store.keys, small_store.delivery.sent_copy_context).num_rows == 3
    with pytest.raises(SealError):
        read_sealed_table(copy, small_store.keys, "deliveries/other/place/sent.parquet.sealed")
    for period in small_store.keys.periods():
        small_store.keys.destroy(period)
    with pytest.raises(KeyShredded):
        read_sealed_table(copy, small_store.keys, small_store.delivery.sent_copy_context)
    # The reference list was sealed under the same key: nobody can say any more who was in the delivery.
    with pytest.raises(KeyShredded):
        small_store.delivery.references(small_store.keys)
    assert disclosure_history(small_store.root, "P3", small_store.agreements, small_store.keys) == []


def test_the_dossier_gathers_the_register_the_source_records_and_the_disclosures(
    small_store: SmallStore,
) -> None:
    dossier = person_dossier(small_store.root, "P1", small_store.agreements, small_store.keys)
    assert dossier["register_record"]["person_id"] == "P1"
    assert [r["record_id"] for r in dossier["source_records"]] == ["HS1"]
    assert len(dossier["disclosures"]) == 1


def test_find_ranks_the_person_first_through_a_nickname_typo_and_a_transposed_date(
    small_store: SmallStore,
) -> None:
    found = find_candidates(small_store.root, Probe("Amara", "Okafur", date(1984, 2, 29), "w87nx"))
    assert found[0]["person_id"] == "P1"
    assert found[0]["evidence"] == {
        "given": "exact",
        "family": "similar",
        "date_of_birth": "exact",
        "postcode": "exact",
    }
    swapped = find_candidates(small_store.root, Probe("Wei", "Zhang", date(1990, 11, 11), None))
    assert swapped[0]["person_id"] == "P3"
    assert not [c for c in found if c["person_id"] == "P3"]


def test_a_correction_outranks_the_sources_until_they_agree() -> None:
    persons = persons_table()
    corrections = pa.Table.from_pylist(
        [
            {
                "person_id": "P3",
                "field": "postcode",
                "value": "W11 3CD",
                "request_id": "rq1",
                "recorded_at": datetime(2026, 12, 1, tzinfo=UTC),
                "settled_at": None,
            }
        ],
        schema=CORRECTIONS_SCHEMA,
    )
    corrected, after, counts = apply_corrections(persons, corrections)
    assert counts == {"applied": 1, "settled": 0}
    assert corrected.filter(pc.equal(corrected["person_id"], "P3"))["postcode"].to_pylist() == ["W11 3CD"]
    # The source now says the same: the correction is settled and applies no more.
    agreeing = corrected
    _, settled, counts = apply_corrections(agreeing, after)
    assert counts == {"applied": 0, "settled": 1}
    assert settled["settled_at"].null_count == 0


def test_rectification_corrects_the_register_and_finds_the_partners_to_tell(small_store: SmallStore) -> None:
    outcome, due = rectification(
        small_store.root,
        "P3",
        "DSR-2026-00040",
        date(2026, 12, 2),
        {"postcode": "w11 3cd"},
        agreements=small_store.agreements,
        run=RUN,
        keys=small_store.keys,
    )
    persons = read_parquet(register_file(small_store.root, "persons"))
    assert persons.filter(pc.equal(persons["person_id"], "P3"))["postcode"].to_pylist() == ["W11 3CD"]
    [(agreement, refs, corrected)] = due
    assert agreement.id == "dwp-benefits-matching" and corrected == {"postcode": "W11 3CD"} and len(refs) == 1
    entry = outcome.entries[0]
    details = entry.validate()
    assert entry.kind == "rights_action" and details["action"] == "rectify"
    assert "W11" not in json.dumps(details)


def test_erasure_removes_the_person_everywhere_and_keeps_the_others(small_store: SmallStore) -> None:
    root = small_store.root
    outcome, plan = erasure(
        root, "P1", "DSR-2026-00050", date(2026, 12, 3), tombstone_key=KEY, keys=small_store.keys, run=RUN
    )
    assert plan is not None and plan.agreements == ["dwp-benefits-matching"]
    assert load_plan(root, outcome.counts["request_id"], small_store.keys) is not None
    for entry in outcome.entries:
        entry.validate()
    assert {e.kind for e in outcome.entries} == {"rights_action", "deletion"}
    persons = read_parquet(register_file(root, "persons"))
    assert persons["person_id"].to_pylist() == ["P2", "P3"]
    curated = read_parquet(curated_file(root, "housing", date(2026, 11, 30)))
    assert curated["record_id"].to_pylist() == ["HS2", "HS3"]
    refs = small_store.delivery.references(small_store.keys)
    assert sorted(refs["person_id"].to_pylist()) == ["P2", "P3"]
    sent = read_sealed_table(
        small_store.delivery.sent_copy_path, small_store.keys, small_store.delivery.sent_copy_context
    )
    assert sorted(sent["person_id"].to_pylist()) == ["P2", "P3"]
    assert read_tombstones(root).num_rows >= 2
    # A later extract with the same record is dropped at ingest by its tombstone.
    again = pa.table(
        {
            "source": ["housing", "housing"],
            "record_id": ["HS1", "HS9"],
            "given_name": ["Amara", "Nia"],
            "family_name": ["Okafor", "Bello"],
            "date_of_birth": [date(1984, 2, 29), date(1999, 1, 1)],
        }
    )
    kept, dropped = drop_tombstoned(KEY, again, read_tombstones(root))
    assert dropped == 1 and kept["record_id"].to_pylist() == ["HS9"]
    # Under a new record id in another source, the identity tombstone still holds.
    moved = again.set_column(1, "record_id", pa.array(["CC7", "HS9"]))
    assert drop_tombstoned(KEY, moved, read_tombstones(root))[1] == 1


def test_erasure_is_refused_whole_under_a_legal_hold(small_store: SmallStore) -> None:
    place_hold(small_store.root, "person", "P1", "child_protection_plan", "LH-2026-00001", date(2026, 1, 1))
    before = read_parquet(register_file(small_store.root, "persons")).num_rows
    outcome, plan = erasure(
        small_store.root,
        "P1",
        "DSR-2026-00051",
        date(2026, 12, 3),
        tombstone_key=KEY,
        keys=small_store.keys,
        run=RUN,
    )
    assert plan is None and outcome.counts["hold_reasons"] == ["child_protection_plan"]
    assert read_parquet(register_file(small_store.root, "persons")).num_rows == before
    assert read_tombstones(small_store.root).num_rows == 0
    [request] = [r for r in read_requests(small_store.root).to_pylist() if r["right"] == "erasure"]
    assert request["status"] == "refused" and request["outcome"] == "refused_legal_hold"
    assert outcome.entries[0].validate()["hold_reasons"] == ["child_protection_plan"]


def test_compaction_deletes_the_archive_and_ingested_landing_extracts(
    small_store: SmallStore, tmp_path: Path
) -> None:
    root = small_store.root
    archive = small_store.delivery.ciphertext
    archive.write_bytes(b"ciphertext stands in")
    landing = root / "landing" / "extracts" / "housing" / "housing_2026-11-30.csv"
    landing.parent.mkdir(parents=True, exist_ok=True)
    landing.write_text("record_id\nHS1\n")
    report = root / "ingest_reports" / "housing" / "housing_2026-11-30.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"status": "ingested"}))
    _, plan = erasure(
        root, "P1", "DSR-2026-00052", date(2026, 12, 3), tombstone_key=KEY, keys=small_store.keys, run=RUN
    )
    assert plan is not None
    changes = compact(root, plan, {"housing": "extracts/housing/housing_*.csv"})
    assert not archive.exists() and not landing.exists()
    assert len(changes.files_deleted) == 2
    assert changes.counts()["paths_sha256"] != changes.__class__().counts()["paths_sha256"]


def test_tombstones_hold_no_values(small_store: SmallStore) -> None:
    records = pa.table(
        {
            "source": ["housing"],
            "record_id": ["HS1"],
            "given_name": ["Amara"],
            "family_name": ["Okafor"],
            "date_of_birth": [date(1984, 2, 29)],
        }
    )
    add_tombstones(small_store.root, KEY, records, "rq1")
    text = json.dumps(read_tombstones(small_store.root).to_pylist(), default=str)
    for value in ("Amara", "Okafor", "1984", "HS1"):
        assert value not in text


def test_a_correction_retry_records_nothing_twice(small_store: SmallStore) -> None:
    assert record_correction(small_store.root, "P3", "postcode", "W11 3CD", "rq1")
    assert not record_correction(small_store.root, "P3", "postcode", "W11 3CD", "rq1")
    with pytest.raises(ValueError, match="rule: correctable field"):
        record_correction(small_store.root, "P3", "person_id", "P4", "rq2")


def test_the_portability_export_follows_its_documented_schema(small_store: SmallStore) -> None:
    import jsonschema

    from supporting_families.rights import portability_document, to_json

    schema = json.loads(
        (Path(__file__).resolve().parents[3] / "docs" / "portability.schema.json").read_text()
    )
    dossier = person_dossier(small_store.root, "P3", small_store.agreements, small_store.keys)
    document = json.loads(to_json(portability_document(dossier)))
    jsonschema.validate(document, schema)
    assert document["person"]["person_id"] == "P3" and document["source_records"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "format": "something-else"}, schema)


def test_compaction_deletes_every_return_that_holds_the_persons_reference(small_store: SmallStore) -> None:
    """Two returns not named after a delivery, both holding the person's reference: both originals go
    (the second is not missed because the first already counted rows for the same area)."""
    root = small_store.root
    [ref] = (
        (refs := small_store.delivery.references(small_store.keys))
        .filter(pc.equal(refs["person_id"], "P1"))["person_ref"]
        .to_pylist()
    )
    originals = []
    for name in ("resent-return-a", "resent-return-b"):
        folder = root / "returns" / "dwp-benefits-matching" / name
        folder.mkdir(parents=True, exist_ok=True)
        write_parquet(pa.table({"reference": [ref, "v1-other"]}), folder / "classified.parquet")
        original = folder / f"{name}.csv.gpg"
        original.write_bytes(b"ciphertext stands in")
        originals.append(original)
    _, plan = erasure(
        root, "P1", "DSR-2026-00053", date(2026, 12, 3), tombstone_key=KEY, keys=small_store.keys, run=RUN
    )
    assert plan is not None
    changes = compact(root, plan, {})
    assert not any(o.exists() for o in originals)
    assert changes.rows_removed["returns__classified"] == 2
