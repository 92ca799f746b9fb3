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
