"""ledger_anchor: scheduled after every delivery and return (and daily); a real run keeps the head outside the
ledger's database, and a run on a chain whose tail was dropped fails at once, keeping nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from supporting_families.audit import TABLE_NAME, Ledger, NewEntry
from supporting_families.audit.anchors import read_anchors
from supporting_families.config import load_agreements
from tests.unit.audit.test_anchors import T0, truncate_tail

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "ledger_anchor.py"), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags["ledger_anchor"]


def test_it_runs_after_every_delivery_and_return_and_daily(dag: Any) -> None:
    from sf_airflow.common import delivery_asset, return_asset

    agreements = load_agreements(resolve=False)
    expected = {delivery_asset(a.id).name for a in agreements} | {return_asset(a.id).name for a in agreements}
    assert {a.name for a in dag.timetable.asset_condition.objects} == expected
    assert "15 6 * * *" in dag.timetable.summary


def test_a_run_anchors_the_head_and_a_dropped_tail_fails_the_next(
    dag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "ledger.sqlite"
    anchors = UPath((tmp_path / "anchors").as_uri())
    monkeypatch.setenv("SF_LEDGER_URL", f"sqlite:///{db}")
    monkeypatch.setenv("SF_LEDGER_ANCHORS_URI", str(anchors))
    with Ledger(f"sqlite:///{db}") as ledger:
        ledger.append_many(
            [NewEntry(kind="assessment", occurred_at=T0, details={"families": n}) for n in range(3)]
        )
        head = ledger.head()

    run = dag.test()
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"anchor": "success"}
    assert read_anchors(anchors) == [head]

    truncate_tail(db, from_seq=3)  # the triggers put back afterwards: only the anchor can tell
    failed = dag.test()
    [ti] = failed.get_task_instances()
    assert str(ti.state) == "failed" and ti.try_number == 1, "a chain that disagrees is not retried"
    assert read_anchors(anchors) == [head]

    with sqlite3.connect(db) as conn:
        conn.execute(f"DROP TRIGGER {TABLE_NAME}_no_delete")
    [ti] = dag.test().get_task_instances()
    assert str(ti.state) == "failed" and ti.try_number == 1, "nor is a ledger whose guards were dropped"
