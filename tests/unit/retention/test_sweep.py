"""The retention sweep on a real store of files: the clock moves past each limit and each area goes in turn;
holds survive and are reported; keys are shredded, and a leftover copy then opens for nobody."""

from __future__ import annotations

import functools
import json
import logging
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.audit import Ledger
from supporting_families.config import Agreement, load_agreements, load_sources
from supporting_families.config.retention import RetentionPolicy
from supporting_families.progress import Progress
from supporting_families.registers.holds import place_hold
from supporting_families.retention import (
    apply_sweep,
    deletion_entries,
    hold_key_id,
    overdue,
    plan_sweep,
    sweep,
)
from supporting_families.share import Delivery, delivery_id_for
from supporting_families.share.delivery import archive_delivered, package_delivery, share_view
from supporting_families.share.pseudonymise import PseudonymKey
from supporting_families.store import (
    FileKeyStore,
    KeyShredded,
    curated_file,
    identification_dir,
    open_bytes,
    read_parquet,
    register_file,
    store_root,
    write_bytes_atomic,
    write_parquet,
)
from supporting_families.store.sealed import read_sealed_table
from tests.unit.rights.conftest import persons_table

TODAY = datetime.now(UTC).date()
POLICY = RetentionPolicy.model_validate(
    {
        "version": 1,
        "programme_end": TODAY + timedelta(days=200),
        "ceiling_days": 365,
        "classes": {
            "landing": {"days": 7, "from": "ingested"},
            "curated": {"days": 120, "from": "superseded"},
            "ingest_quarantine": {"days": 30, "from": "quarantined"},
            "register": {"days": 0, "from": "absent_from_sources"},
            "identification": {"days": 90, "from": "superseded"},
            "staging": {"days": 1, "from": "written"},
            "return_quarantine": {"days": 60, "from": "quarantined"},
            "reports": {"days": 365, "from": "written"},
            "rights": {"days": 30, "from": "written"},
            "tombstones": {"days": 365, "from": "written"},
            "demo": {"days": 365, "from": "written"},
        },
        "airflow": {"metadata_days": 180, "task_logs_days": 90},
    }
)
OLD, NEW = TODAY - timedelta(days=30), TODAY - timedelta(days=2)


@dataclass
class Store:
    root: UPath
    keys: FileKeyStore
    agreements: dict[str, Agreement]
    delivery: Delivery

    def exists(self, relative: str) -> bool:
        return (self.root / relative).exists()

    def sweep(self, as_of: date) -> tuple[object, object]:
        sources = load_sources()
        plan = plan_sweep(self.root, POLICY, self.agreements, sources, as_of)
        result = apply_sweep(self.root, plan, self.keys)
        assert overdue(self.root, POLICY, self.agreements, sources, as_of) == [], "the scan finds nothing due"
        return plan, result


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_store(tmp_path)


def build_store(tmp_path: Path) -> Store:
    """A small store with something in every area the sweep knows, written today (and two older files)."""
    root = store_root((tmp_path / "store").as_uri())
    keys = FileKeyStore(tmp_path / "keys")
    persons = persons_table()
    write_parquet(persons, register_file(root, "persons"))
    links = pa.table(
        {"source": ["housing"] * 3, "record_id": ["HS1", "HS2", "HS3"], "person_id": ["P1", "P2", "P3"]}
    )
    write_parquet(links, register_file(root, "links"))
    # HS3 is in the older extract only: its person left the source when the newer one came.
    write_parquet(links, register_file(root, "id_map"))
    for day, ids in ((OLD, ["HS1", "HS2", "HS3"]), (NEW, ["HS1", "HS2"])):
        write_parquet(
            pa.table({"record_id": ids, "rent_arrears": [True] * len(ids)}),
            curated_file(root, "housing", day),
        )
        folder = identification_dir(root, day)
        write_parquet(pa.table({"person_id": ["P1"]}), folder / "person_flags.parquet")
    spec = load_sources().sources["housing"]
    landing = root / "landing" / spec.file_glob.replace("*", NEW.isoformat())
    write_bytes_atomic(landing, b"record_id\nHS1\n")
    stem = landing.name.rsplit(".", 1)[0]
    write_bytes_atomic(
        root / "ingest_reports" / "housing" / f"{stem}.json", json.dumps({"status": "ingested"}).encode()
    )
    write_bytes_atomic(root / "quarantine" / "housing" / "bad.csv" / "reason.json", b"{}")
    write_bytes_atomic(
        root / "staging" / "dwp-benefits-matching" / "dleftover" / "sf-x.csv", b"left,behind\n"
    )

    agreements = {a.id: a for a in load_agreements(resolve=False)}
    dwp = agreements["dwp-benefits-matching"]
    run_id = "scheduled__retention-test"
    delivery = Delivery(root, dwp.id, delivery_id_for(dwp.id, run_id))
    view, refs = share_view(
        pa.table({"person_id": ["P1", "P2", "P3"]}), persons, PseudonymKey(dwp.id, 1, bytes(32)), dwp
    )
    package_delivery(delivery, dwp, view, refs, run_id, keys=keys)
    (delivery.staging_csv).unlink()  # as encryption would
    write_bytes_atomic(delivery.ciphertext, b"-----OpenPGP bytes as delivered-----")
    receipt = {"status": "delivered", "delivered_at": TODAY.isoformat() + "T09:00:00+00:00", "bytes": 1}
    write_bytes_atomic(delivery.receipt_path, json.dumps(receipt).encode())
    archive_delivered(delivery, keys)
    return Store(root, keys, agreements, delivery)


def _rel(store: Store, path: UPath) -> str:
    return path.relative_to(store.root).as_posix()


def test_each_area_goes_in_turn_as_the_clock_passes_its_limit(store: Store) -> None:
    d = store.delivery
    staged = "staging/dwp-benefits-matching/dleftover/sf-x.csv"
    landing = next(p for p in (store.root / "landing").rglob("*.csv"))
    old_curated = _rel(store, curated_file(store.root, "housing", OLD))
    new_curated = _rel(store, curated_file(store.root, "housing", NEW))
    old_snapshot = _rel(store, identification_dir(store.root, OLD) / "person_flags.parquet")

    store.sweep(TODAY)
    assert store.exists(staged) and landing.exists(), "nothing is due on the day it was written"

    store.sweep(TODAY + timedelta(days=2))
    assert not store.exists(staged) and landing.exists()

    store.sweep(TODAY + timedelta(days=8))
    assert not landing.exists(), "an ingested extract goes a week after ingest"
    assert store.exists("quarantine/housing/bad.csv/reason.json")

    store.sweep(TODAY + timedelta(days=31))
    assert not store.exists("quarantine/housing/bad.csv/reason.json")

    store.sweep(NEW + timedelta(days=91))
    assert not store.exists(old_snapshot), "a superseded snapshot goes 90 days after the next one"
    assert store.exists(old_curated)

    store.sweep(NEW + timedelta(days=121))
    assert not store.exists(old_curated) and store.exists(new_curated)
    # HS3 is in no curated extract any more: its record and its person leave the register.
    assert sorted(read_parquet(register_file(store.root, "id_map"))["record_id"].to_pylist()) == [
        "HS1",
        "HS2",
    ]
    assert read_parquet(register_file(store.root, "persons"))["person_id"].to_pylist() == ["P1", "P2"]
    assert d.archive_path.exists() and d.references_path.exists(), "the delivery is within its year"

    leftover_archive = d.archive_path.read_bytes()  # a copy deletion cannot reach (an object version)
    leftover_refs = d.references_path.read_bytes()
    store.sweep(POLICY.ceiling + timedelta(days=1))
    assert not any(p.is_file() for p in store.root.rglob("*") if "register" not in p.parts), [
        _rel(store, p) for p in store.root.rglob("*") if p.is_file()
    ]
    assert store.keys.periods() == [], "the period's key is shredded once nothing live is sealed under it"
    with pytest.raises(KeyShredded):
        open_bytes(leftover_archive, store.keys, d.archive_context)
    with pytest.raises(KeyShredded):
        open_bytes(leftover_refs, store.keys, d.references_context)


def test_a_held_person_is_copied_out_under_the_holds_key_and_the_period_still_goes(store: Store) -> None:
    hold = place_hold(store.root, "person", "P1", "litigation", "LIT-2026-0042", TODAY)
    d = store.delivery
    plan, _result = store.sweep(POLICY.ceiling + timedelta(days=1))
    assert plan.held_persons == frozenset({"P1"})  # type: ignore[attr-defined]
    assert not d.sent_copy_path.exists()
    assert store.keys.periods() == [hold_key_id(hold)], "only the hold's own key is left"
    copy = store.root / "holds" / hold / _rel(store, d.sent_copy_path)
    sent = read_sealed_table(copy, store.keys, _rel(store, copy))
    assert sent["person_id"].to_pylist() == ["P1"], "the held person's rows only"
    refs = store.root / "holds" / hold / _rel(store, d.references_path)
    assert read_sealed_table(refs, store.keys, _rel(store, refs))["person_id"].to_pylist() == ["P1"]
    # Their register record is kept too, the others' go.
    assert read_parquet(register_file(store.root, "persons"))["person_id"].to_pylist() == ["P1"]


def test_a_held_agreement_keeps_its_files_under_the_holds_key(store: Store) -> None:
    hold = place_hold(
        store.root, "agreement", "dwp-benefits-matching", "police_investigation", "POL-2026-0007", TODAY
    )
    d = store.delivery
    plan, result = store.sweep(POLICY.ceiling + timedelta(days=1))
    assert {h for item in plan.held for h in item.held_by} == {hold}  # type: ignore[attr-defined]
    assert result.held["deliveries"] >= 2  # type: ignore[attr-defined]
    assert d.archive_path.exists() and d.references_path.exists() and d.manifest_path.exists()
    assert store.keys.periods() == [hold_key_id(hold)], "the month's key went; the hold's key keeps them"
    assert d.archived_ciphertext(store.keys).startswith(b"-----OpenPGP")
    assert sorted(d.references(store.keys)["person_id"].to_pylist()) == ["P1", "P2", "P3"]


def test_the_ledger_gets_one_deletion_entry_per_area_and_day_and_the_chain_verifies(
    store: Store, tmp_path: Path
) -> None:
    plan, result = store.sweep(POLICY.ceiling + timedelta(days=1))
    entries = deletion_entries(
        plan, result, dag_id="retention", run_id="r1", task_id="sweep", triggered_by="timetable"
    )  # type: ignore[arg-type]
    areas = [e.details["area"] for e in entries]
    assert len(areas) == len(set(areas)) and {
        "deliveries",
        "references",
        "curated",
        "register",
        "data_keys",
    } <= set(areas)
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        for _ in range(2):  # a retried sweep records each area once
            for entry in entries:
                ledger.append(entry)
        recorded = list(
            ledger.search_all(
                __import__("supporting_families.audit", fromlist=["LedgerSearch"]).LedgerSearch(
                    kind="deletion"
                )
            )
        )
        assert len(recorded) == len(entries)
        ledger.verify()
    text = json.dumps([e.details for e in entries])
    assert "HS1" not in text and "housing_" not in text and "P1" not in text, "counts and hashes only"
    deliveries = next(e for e in entries if e.details["area"] == "deliveries")
    assert deliveries.details["files_deleted"] >= 2 and len(deliveries.details["paths_sha256"]) == 64


def test_the_dry_run_deletes_nothing(store: Store) -> None:
    before = sorted(_rel(store, p) for p in store.root.rglob("*") if p.is_file())
    plan = plan_sweep(
        store.root, POLICY, store.agreements, load_sources(), POLICY.ceiling + timedelta(days=1)
    )
    assert plan.summary()["deliveries"]["files"] >= 2
    assert sorted(_rel(store, p) for p in store.root.rglob("*") if p.is_file()) == before


def test_a_rotation_is_recorded_at_its_first_delivery_and_a_retired_version_resolves_to_no_one(
    store: Store,
) -> None:
    from supporting_families.retention.rotation import RotationError, retire_version, rotation_entry
    from supporting_families.rights import person_deliveries

    dwp = store.agreements["dwp-benefits-matching"]
    d = store.delivery
    assert rotation_entry(dwp, d, d.manifest(), dag_id="s", run_id="r", task_id="t", triggered_by="x") is None
    rotated = dwp.model_copy(
        update={
            "pseudonymisation": dwp.pseudonymisation.model_copy(
                update={"key_version": 2, "previous_key_versions": (1,)}
            )
        }
    )
    second = Delivery(store.root, dwp.id, delivery_id_for(dwp.id, "scheduled__after-rotation"))
    persons = persons_table()
    view, refs = share_view(
        pa.table({"person_id": ["P1", "P2"]}), persons, PseudonymKey(dwp.id, 2, bytes(32)), rotated
    )
    package_delivery(second, rotated, view, refs, "scheduled__after-rotation", keys=store.keys)
    assert second.manifest().key_version == 2
    assert all(r.startswith("v2-") for r in second.references(store.keys)["person_ref"].to_pylist())
    entry = rotation_entry(
        rotated, second, second.manifest(), dag_id="s", run_id="r", task_id="t", triggered_by="x"
    )
    assert entry is not None and entry.kind == "key_rotation" and entry.details["key_version"] == 2
    entry.validate()

    with pytest.raises(RotationError):
        retire_version(store.root, rotated, 1)  # still listed among previous_key_versions
    retired_yaml = rotated.model_copy(
        update={"pseudonymisation": rotated.pseudonymisation.model_copy(update={"previous_key_versions": ()})}
    )
    retired = retire_version(store.root, retired_yaml, 1)
    assert (retired.deliveries, retired.reference_lists_deleted) == (1, 1)
    assert not d.references_path.exists() and second.references_path.exists()
    # The old delivery's references resolve to no one; the new one's still do.
    assert [delivery for _, delivery, _ in person_deliveries(store.root, "P1", store.keys)] == [
        second.delivery_id
    ]


def test_the_sweep_logs_progress_as_counts_of_files_only(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Every advance past the interval logs: an interval of zero makes a line per file.
    monkeypatch.setattr(sweep, "Progress", functools.partial(Progress, interval=0.0))
    sources = load_sources()
    plan = plan_sweep(store.root, POLICY, store.agreements, sources, POLICY.ceiling + timedelta(days=1))
    total = sum(len(item.paths) for item in plan.due)
    assert total > 3
    with caplog.at_level(logging.INFO, logger=sweep.log.name):
        apply_sweep(store.root, plan, store.keys)
    lines = [r.getMessage() for r in caplog.records if r.name == sweep.log.name]
    assert len(lines) == total + 1, "a line per file, then the final count"
    assert lines[-1].startswith(f"retention sweep: {total:,} of {total:,} files (100%), ")
    assert all(re.fullmatch(r"retention sweep: [\d,]+ of [\d,]+ files \(\d+%\), [\d,]+ files/s, ETA .+", line)
               for line in lines)  # fmt: skip
    every_path = {p for item in plan.due for p in item.paths}
    shown = "\n".join(lines)
    assert not any(p in shown or posixpath.basename(p) in shown for p in every_path), "counts only"
    assert store.delivery.delivery_id not in shown and "P1" not in shown
