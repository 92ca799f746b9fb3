"""The ingest DAG factory: one DAG per source, and a real run over a small synthetic landing area."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.config import load_sources

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"
SOURCES = load_sources()
AS_OF = date(2025, 3, 31)
SOURCE = "neet"  # small, UTF-8, compact postcodes, %Y%m%d dates


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "ingest_sources.py"), safe_mode=False)
    assert bag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in bag.import_errors.items())
    return bag


def test_one_dag_per_source(dagbag: Any) -> None:
    assert set(dagbag.dag_ids) == {f"ingest_{name}" for name in SOURCES.sources}


@pytest.mark.parametrize("source", list(SOURCES.sources), ids=str)
def test_each_dag_is_scheduled_on_the_landing_asset_and_emits_its_curated_asset(
    dagbag: Any, source: str
) -> None:
    from sf_airflow.common import INTERNAL_EXTRACTS, curated_asset, landed_asset

    dag = dagbag.dags[f"ingest_{source}"]
    assert {t.task_id for t in dag.tasks} == {"find", "ingest", "announce", "verdict"}
    # A voluntary-sector agency's extract lands when collect_<source> has verified it.
    inbound = load_sources().sources[source].inbound is not None
    landing = landed_asset(source) if inbound else INTERNAL_EXTRACTS
    assert landing.name in str(dag.timetable.asset_condition)
    outlets = {o.name for t in dag.tasks for o in t.outlets}
    assert outlets == {curated_asset(source).name}
    assert dag.max_active_runs == 1
    assert dag.tasks and all(t.retries >= 2 for t in dag.tasks)


def _states(run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def test_a_run_ingests_the_good_file_and_fails_only_the_malformed_ones_task(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = UPath(tmp_path.as_uri())
    monkeypatch.setenv("SF_STORE_URI", tmp_path.as_uri())
    monkeypatch.delenv("SF_STORE_CONN_ID", raising=False)
    borough = generate_borough(800, seed=4, as_of=AS_OF, dirt=DirtConfig.clean())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    spec = SOURCES.sources[SOURCE]
    good = spec.path_for(AS_OF)
    bad_name = f"{SOURCE}_2025-04-30.csv"
    # The same extract with a byte-order mark sources.yaml does not declare for this source.
    (root / "landing" / good).with_name(bad_name).write_bytes(
        b"\xef\xbb\xbf" + (root / "landing" / good).read_bytes()
    )

    run = dagbag.dags[f"ingest_{SOURCE}"].test()

    states = _states(run)
    ingest_states = sorted(state for (task, _), state in states.items() if task == "ingest")
    assert ingest_states == ["failed", "success"], states
    assert states[("find", -1)] == "success"
    assert states[("announce", -1)] == "success"  # the good file was curated, so the asset is emitted
    assert states[("verdict", -1)] == "failed"  # and the run shows the rejected file
    assert str(run.state) == "failed"

    report = json.loads((root / "ingest_reports" / SOURCE / f"{SOURCE}_2025-03-31.json").read_text())
    assert report["status"] == "ingested"
    assert report["received"] == report["accepted"] == borough.extracts[SOURCE].num_rows
    assert (root / "curated" / SOURCE / f"{SOURCE}_2025-03-31.parquet").exists()
    rejected = json.loads((root / "ingest_reports" / SOURCE / f"{SOURCE}_2025-04-30.json").read_text())
    assert rejected["status"] == "rejected" and rejected["rule"] == "unexpected_bom"
    assert (root / "quarantine" / SOURCE / bad_name / bad_name).exists()
    assert not (root / "curated" / SOURCE / f"{SOURCE}_2025-04-30.parquet").exists()

    # The map index shows the file, and the failed mapped task is not retried (a malformed file stays bad).
    failed = [ti for ti in run.get_task_instances() if ti.task_id == "ingest" and str(ti.state) == "failed"]
    assert [ti.rendered_map_index for ti in failed] == [bad_name]
    assert failed[0].try_number == 1

    # A second run finds nothing new: no task fails and nothing is announced.
    second = _states(dagbag.dags[f"ingest_{SOURCE}"].test())
    assert second[("announce", -1)] == "skipped"
    assert second[("verdict", -1)] == "success"
    assert not any(task == "ingest" and state == "failed" for (task, _), state in second.items())


def test_an_ingest_run_emits_its_datasets_fields_and_counts_and_no_file_name(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from supporting_families.ingest import curated_schema
    from tests.lineage_events import completed, lineage_events, schema

    root = UPath(tmp_path.as_uri())
    monkeypatch.setenv("SF_STORE_URI", tmp_path.as_uri())
    monkeypatch.delenv("SF_STORE_CONN_ID", raising=False)
    borough = generate_borough(300, seed=5, as_of=AS_OF, dirt=DirtConfig.clean())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    spec = SOURCES.sources[SOURCE]

    run = dagbag.dags[f"ingest_{SOURCE}"].test()

    [event] = completed(lineage_events(f"ingest_{SOURCE}", run.run_id), "ingest")
    assert event["eventType"] == "COMPLETE"
    [landing] = event["inputs"]
    assert landing["name"].endswith(f"landing/extracts/{SOURCE}")
    assert schema(landing) == [c.name for c in spec.columns]
    rows = borough.extracts[SOURCE].num_rows
    assert landing["inputFacets"]["inputStatistics"]["rowCount"] == rows
    [curated] = event["outputs"]
    assert curated["name"].endswith(f"curated/{SOURCE}")
    assert schema(curated) == curated_schema(spec).names
    assert curated["outputFacets"]["outputStatistics"]["rowCount"] == rows
    counts = event["run"]["facets"]["supportingFamilies_counts"]
    assert counts["received"] == counts["accepted"] == rows and counts["rejected"] == 0
    assert event["run"]["facets"]["supportingFamilies_source"]["source"] == SOURCE
    # The landed file's name is the department's: it is in no event (the map index is hashed).
    assert spec.path_for(AS_OF).split("/")[-1] not in json.dumps(event)
