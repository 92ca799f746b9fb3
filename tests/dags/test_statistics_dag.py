"""programme_statistics: after identification and weekly; a real run publishes one protected release and
records one aggregate_release entry, and a second run of the same facts records nothing new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from supporting_families.audit import Ledger, LedgerSearch
from supporting_families.store import layout
from tests.unit.statistics.test_publish import borough, identified  # noqa: F401 (fixtures)

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "programme_statistics.py"), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags["programme_statistics"]


def test_it_runs_after_identification_and_weekly(dag: Any) -> None:
    assert dag.timetable.asset_condition.name == "sf_identification"
    assert "30 7 * * 1" in dag.timetable.summary


def test_a_run_publishes_and_records_one_release(
    dag: Any,
    identified: UPath,  # noqa: F811 (the fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("SF_LEDGER_URL", f"sqlite:///{db}")
    monkeypatch.setenv("SF_STORE_URI", str(identified))
    monkeypatch.delenv("SF_STORE_CONN_ID", raising=False)
    # dag.test() names the user who ran it: the entry records their staff id under this key.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_STAFF_ID_KEY", json.dumps({"conn_type": "generic", "password": "ab" * 32})
    )
    run = dag.test()
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {
        "publish": "success",
        "record": "success",
    }
    with Ledger(f"sqlite:///{db}") as ledger:
        [entry] = ledger.search(LedgerSearch(kind="aggregate_release"))
    release_id = entry.details["release_id"]
    folder = layout.statistics_release_dir(identified, release_id)
    assert (folder / "release.json").exists()
    assert entry.details["sdc"] == {"threshold": 10, "rounding_base": 5}
    dag.test()
    with Ledger(f"sqlite:///{db}") as ledger:
        assert len(ledger.search(LedgerSearch(kind="aggregate_release"))) == 1
