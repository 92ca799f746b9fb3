"""A release from a synthetic borough: files, tags, notes, who is not counted, no personal data, ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from upath import UPath

from sf_demo.synthetic import Borough, generate_borough, write_borough
from supporting_families.audit import Ledger
from supporting_families.audit.entries import NewEntry
from supporting_families.audit.guard import _string_problem
from supporting_families.config import load_sources
from supporting_families.identify import identify, refresh_register
from supporting_families.ingest import ingest_source
from supporting_families.registers.restrictions import record_restriction
from supporting_families.statistics import (
    SdcParameters,
    aggregate_release_entry,
    exchange_table,
    publish_statistics,
    read_family_facts,
    sdc_parameters,
)
from supporting_families.store import layout, store_root

AS_OF = date(2026, 3, 31)


@pytest.fixture(scope="module")
def borough() -> Borough:
    return generate_borough(3000, seed=3, as_of=AS_OF)


@pytest.fixture(scope="module")
def identified(borough: Borough, tmp_path_factory: pytest.TempPathFactory) -> UPath:
    root = store_root(tmp_path_factory.mktemp("stats-store").as_uri())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    sources = load_sources()
    for spec in sources.sources.values():
        ingest_source(root, spec)
    refresh_register(root, list(sources.sources), tombstone_key=None)
    identify(root, list(sources.sources), today=AS_OF)
    return root


@pytest.fixture(scope="module")
def release(identified: UPath) -> Iterator[tuple[UPath, object]]:
    yield identified, publish_statistics(identified, [], today=AS_OF)


def _folder(root: UPath, release_id: str) -> Path:
    return Path(layout.statistics_release_dir(root, release_id).path)


def test_every_table_is_written_as_csv_parquet_and_tagged(release: tuple[UPath, object]) -> None:
    root, rel = release
    folder = _folder(root, rel.release_id)  # type: ignore[attr-defined]
    names = {p.name for p in folder.iterdir()}
    for table in (
        "headline_problem",
        "number_of_problems",
        "ward",
        "age_band",
        "month",
        "ward_by_month",
        "partner_exchanges",
    ):
        assert {f"{table}.csv", f"{table}.parquet"} <= names
        parquet = pq.read_table(folder / f"{table}.parquet")
        assert set(pc.unique(parquet["sdc_threshold"]).to_pylist()) <= {10}
        assert parquet.schema.metadata[b"sdc_threshold"] == b"10"
        values = [v for v in parquet["value"].to_pylist() if v is not None]
        if table != "partner_exchanges":
            assert all(v % 5 == 0 for v in values), table  # rounded to base 5
            assert all(v == 0 or v >= 10 for v in values), table  # nothing below the threshold shown
    svg = (folder / "eligible_by_ward.svg").read_text()
    assert (
        svg.startswith("<svg")
        and "threshold 10" in svg
        and "<script" not in svg
        and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    )
    manifest = json.loads((folder / "release.json").read_text())
    assert manifest["sdc"]["threshold"] == 10 and manifest["sdc"]["rounding_base"] == 5
    assert any("restriction, objection" in note for note in manifest["notes"])
    assert set(manifest["files"]) == names - {"release.json"}
    assert manifest["ward_lookup"] == "supplied"


def test_wards_come_from_the_lookup(release: tuple[UPath, object]) -> None:
    root, rel = release
    ward = pq.read_table(_folder(root, rel.release_id) / "ward.parquet")  # type: ignore[attr-defined]
    rows = set(ward["row"].to_pylist())
    assert len(rows - {"Not known", "Total"}) >= 5
    counted = ward.filter(pc.and_(pc.equal(ward["row"], "Not known"), pc.equal(ward["column"], "identified")))
    assert counted["value"].to_pylist() == [0]  # every family's postcode is in the demo's lookup


def test_same_facts_same_release(release: tuple[UPath, object]) -> None:
    root, rel = release
    again = publish_statistics(root, [], today=AS_OF)
    assert again.release_id == rel.release_id  # type: ignore[attr-defined]
    assert again.files == rel.files  # type: ignore[attr-defined]


def test_no_person_level_row_and_the_personal_data_scan_finds_nothing(
    borough: Borough, release: tuple[UPath, object]
) -> None:
    from tests.integration.airflow.test_cycle_no_personal_data import _find, _needles

    root, rel = release
    folder = _folder(root, rel.release_id)  # type: ignore[attr-defined]
    text = "\n".join(p.read_text() for p in folder.iterdir() if p.suffix in (".csv", ".json", ".svg"))
    text += "\n".join(str(pq.read_table(p).to_pylist()) for p in folder.iterdir() if p.suffix == ".parquet")
    assert _find(text, _needles(borough.persons)) == {}
    ids = set(borough.persons["person_id"].to_pylist()) | set(borough.persons["family_id"].to_pylist())
    assert not any(i in text for i in list(ids)[:2000])
    facts, *_ = read_family_facts(root, AS_OF)
    register_families = set(
        pq.read_table(str(layout.register_file(root, "persons").path))["family_id"].to_pylist()
    )
    assert not any(f in text for f in register_families)  # no family id, so no row per family
    assert facts.num_rows > 50


def test_restricted_persons_families_are_not_counted(identified: UPath) -> None:
    facts, *_ = read_family_facts(identified, AS_OF)
    family = facts["family_id"][0].as_py()
    persons = pq.read_table(str(layout.register_file(identified, "persons").path))
    member = persons.filter(pc.equal(persons["family_id"], family))["person_id"][0].as_py()
    record_restriction(identified, member, "objection", "DSR-2026-00042", AS_OF)
    after, *_ = read_family_facts(identified, AS_OF)
    assert family not in after["family_id"].to_pylist()
    assert after.num_rows == facts.num_rows - 1


def test_exchange_table_suppresses_small_rows_and_rates() -> None:
    class E:
        def __init__(self, kind: str, rows: int | None = None, **details: object) -> None:
            self.kind, self.row_count, self.details = kind, rows, details
            self.partner, self.occurred_at = "dwp", datetime(2026, 3, 5, tzinfo=UTC)

    entries = [E("disclosure", 120), E("reconciliation", outcome="reconciled", matched=115, no_trace=5)]
    table = exchange_table(entries, SdcParameters())  # type: ignore[arg-type]
    got = {r["column"]: r["value"] for r in table.to_pylist()}
    assert got == {"deliveries": 1, "rows_sent": 120, "rows_matched": 115, "match_rate_percent": None}
    entries[1] = E("reconciliation", outcome="reconciled", matched=100, no_trace=20)
    got = {r["column"]: r["value"] for r in exchange_table(entries, SdcParameters()).to_pylist()}  # type: ignore[arg-type]
    assert got["match_rate_percent"] == 83


def test_aggregate_release_entry_passes_the_ledger_guard(
    release: tuple[UPath, object], tmp_path: Path
) -> None:
    _, rel = release
    entry = aggregate_release_entry(rel, dag_id="programme_statistics", run_id="manual__x", task_id="publish")  # type: ignore[arg-type]
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        recorded = ledger.append(entry)
        assert recorded.kind == "aggregate_release"
        assert recorded.details["sdc"] == {"threshold": 10, "rounding_base": 5}
        assert recorded.details["tables"]["ward_csv"] == rel.files["ward.csv"]  # type: ignore[attr-defined]
        ledger.append(entry)  # a retry records it once
        assert len(list(ledger.entries())) == 1
    with pytest.raises(Exception, match="release_id"):
        NewEntry(
            kind="aggregate_release",
            occurred_at=datetime.now(UTC),
            file_name="release.json",
            plaintext_sha256="0" * 64,
            dag_id="d",
            run_id="r",
            details={},
        ).validate()
    assert _string_problem(rel.release_id) is None  # type: ignore[attr-defined]


def test_the_councils_statistics_yaml_sets_the_parameters_and_every_output_carries_them(
    identified: UPath, tmp_path: Path
) -> None:
    # include/statistics.yaml is the one place: a council that sets threshold 20 and base 10 gets exactly
    # that in every row, every Parquet file's metadata, release.json, the chart and the ledger entry.
    config = tmp_path / "statistics.yaml"
    config.write_text("version: 1\ndisclosure_control:\n  threshold: 20\n  rounding_base: 10\n")
    params = sdc_parameters(config)
    assert (params.threshold, params.rounding_base) == (20, 10)
    assert (sdc_parameters().threshold, sdc_parameters().rounding_base) == (10, 5)  # the committed file
    rel = publish_statistics(identified, [], params, today=AS_OF)
    folder = _folder(identified, rel.release_id)
    for path in folder.glob("*.parquet"):
        table = pq.read_table(path)
        assert set(table["sdc_threshold"].to_pylist()) <= {20}, path.name  # no exchange: no row
        assert set(table["sdc_rounding_base"].to_pylist()) <= {10}, path.name
        assert table.schema.metadata[b"sdc_threshold"] == b"20", path.name
        if path.stem != "partner_exchanges":
            values = [v for v in table["value"].to_pylist() if v is not None]
            assert all(v % 10 == 0 and (v == 0 or v >= 20) for v in values), path.name
    manifest = json.loads((folder / "release.json").read_text())
    assert manifest["sdc"]["threshold"] == 20 and manifest["sdc"]["rounding_base"] == 10
    assert "threshold 20, rounded to base 10" in (folder / "eligible_by_ward.svg").read_text()
    entry = aggregate_release_entry(rel, dag_id="programme_statistics", run_id="r", task_id="record")
    assert entry.details["sdc"] == {"threshold": 20, "rounding_base": 10}
