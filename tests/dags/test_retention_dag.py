"""The retention DAG: a dry run deletes nothing; a run past the ceiling deletes every area, shreds the keys,
cleans Airflow's own metadata and logs, writes one deletion entry per area, and verifies nothing is left."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from supporting_families.audit import Ledger, LedgerSearch
from supporting_families.config.retention import load_retention
from tests.unit.retention.test_sweep import build_store

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "retention.py"), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags["retention"]


def test_the_form_holds_a_date_and_a_switch_only(dag: Any) -> None:
    assert set(dag.params) == {"dry_run", "as_of"}
    assert dag.params.get_param("as_of").schema["pattern"]
    assert "30 2 * * *" in dag.timetable.summary


def test_a_dry_run_deletes_nothing_and_a_run_past_the_ceiling_deletes_every_area(
    dag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = build_store(tmp_path)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("SF_STORE_URI", str(store.root))
    monkeypatch.setenv("SF_LEDGER_URL", ledger_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_RIGHTS",
        json.dumps({"conn_type": "generic", "extra": {"data_keys_dir": str(store.keys.folder)}}),
    )
    # The ledger names who acted by a keyed staff id (a scheduled run: the schedule itself).
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_STAFF_ID_KEY", json.dumps({"conn_type": "generic", "password": "ab" * 32})
    )
    after = (load_retention().ceiling + timedelta(days=1)).isoformat()
    files = sorted(str(p) for p in Path(store.root.path).rglob("*") if p.is_file())

    dry = dag.test(run_conf={"dry_run": True, "as_of": after})
    assert {ti.task_id: str(ti.state) for ti in dry.get_task_instances()} == dict.fromkeys(
        ("plan", "sweep", "verify", "airflow_metadata", "task_logs"), "success"
    )
    assert sorted(str(p) for p in Path(store.root.path).rglob("*") if p.is_file()) == files

    run = dag.test(run_conf={"dry_run": False, "as_of": after})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    left = [p for p in Path(store.root.path).rglob("*") if p.is_file() and "register" not in p.parts]
    assert left == []
    assert store.keys.periods() == []
    with Ledger(ledger_url) as ledger:
        entries = list(ledger.search_all(LedgerSearch(kind="deletion")))
        ledger.verify()
    areas = [e.details["area"] for e in entries]
    assert len(areas) == len(set(areas)), "one entry per area and day"
    assert {"deliveries", "references", "manifests", "curated", "landing", "data_keys"} <= set(areas)
    # Airflow's own records: `airflow db clean` ran (the earlier runs' rows are younger than the limit) and
    # the logs rule ran; each leaves its entry.
    assert {"airflow_metadata", "task_logs"} <= set(areas)
    # Run again for the same day: nothing more to delete, nothing recorded twice.
    again = dag.test(run_conf={"dry_run": False, "as_of": after})
    assert {str(ti.state) for ti in again.get_task_instances()} == {"success"}
    with Ledger(ledger_url) as ledger:
        assert len(list(ledger.search_all(LedgerSearch(kind="deletion")))) == len(entries)
