"""Every DAG meets the house rules, and parsing the folder is cheap and touches nothing outside."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _refuse(*_: Any, **__: Any) -> None:
    raise AssertionError("DAG parsing must not touch the network, a connection or a variable")


@pytest.fixture(scope="module")
def dagbag_and_seconds() -> tuple[Any, float]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(socket, "create_connection", _refuse)
        mp.setattr(BaseHook, "get_connection", classmethod(_refuse))
        mp.setattr(Variable, "get", staticmethod(_refuse))
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
        seconds = time.perf_counter() - started
    return bag, seconds


@pytest.fixture(scope="module")
def dagbag(dagbag_and_seconds: tuple[Any, float]) -> Any:
    return dagbag_and_seconds[0]


def test_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in dagbag.import_errors.items())


def test_there_are_dags(dagbag: Any) -> None:
    assert dagbag.dags, "no DAGs parsed from dags/"


def test_parsing_is_fast(dagbag: Any, dagbag_and_seconds: tuple[Any, float]) -> None:
    # The bound: the whole folder parses in under a second (the scheduler re-parses it often).
    # The first DagBag in a process also pays for importing Airflow's models, so time a second parse.
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert time.perf_counter() - started < 1.0


def _dag_ids() -> list[str]:
    from airflow.dag_processing.dagbag import DagBag

    return sorted(DagBag(dag_folder=str(DAGS), safe_mode=False).dag_ids)


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_dag_policy(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag_id}: doc_md missing or too thin"
    assert dag.tags, f"{dag_id}: no tags"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: owner not set"
        assert task.retries >= 2, f"{dag_id}.{task.task_id}: retries {task.retries} < 2"


def test_access_control_follows_from_the_one_role_mapping(dagbag: Any) -> None:
    from sf_airflow.access import DPO, PRACTITIONER, access_control_for

    confirm = dagbag.dags["confirm_assessment"].access_control
    assert set(confirm) == {PRACTITIONER}
    assert confirm[PRACTITIONER]["DAG Runs"] >= {"can_create"}
    for dag_id, dag in dagbag.dags.items():
        expected = access_control_for(dag_id, dag.tags)
        assert (dag.access_control or None) == expected, dag_id
        if dag_id.startswith("rights_"):
            assert DPO in (dag.access_control or {}), dag_id
    # A DAG that does not exist yet gets the DPO's rights by its name alone, or by a tag.
    assert set(access_control_for("rights_access_request", ())) == {DPO}
    assert set(access_control_for("erasure", ("rights",))) == {DPO}
    assert access_control_for("share__dwp_benefits_matching", ("share",)) is None
