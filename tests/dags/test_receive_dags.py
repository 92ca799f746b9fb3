"""The receive DAG factory: one DAG per agreement, its schedule, sensor, deadline and callbacks.

A real run of a receive DAG (``dag.test()`` against the real sshd and gpg) is in
tests/integration/test_receive.py, where the session's sshd and generated keys are.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sf_demo.smtp_sink import SmtpSink
from supporting_families.audit import Ledger
from supporting_families.config import Agreement, load_agreements

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"
AGREEMENTS = load_agreements(resolve=False)
IDS = [a.label for a in AGREEMENTS]


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "receive_agreements.py"), safe_mode=False)
    assert bag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in bag.import_errors.items())
    return bag


def test_one_receive_dag_per_agreement_file(dagbag: Any) -> None:
    # ONS's return is a receipt, but it is a return all the same: it gets its DAG.
    assert set(dagbag.dag_ids) == {f"receive__{a.dag_id_suffix}" for a in AGREEMENTS}
    assert len(dagbag.dag_ids) == 3


@pytest.mark.parametrize("agreement", AGREEMENTS, ids=IDS)
def test_each_dag_runs_on_its_delivery_and_emits_its_return(dagbag: Any, agreement: Agreement) -> None:
    from sf_airflow.common import delivery_asset, return_asset

    dag = dagbag.dags[f"receive__{agreement.dag_id_suffix}"]
    assert [a.name for a in dag.timetable.asset_condition.objects] == [delivery_asset(agreement.id).name]
    assert {t.task_id for t in dag.tasks} == {
        "expect_return",
        "wait_for_return",
        "record_collection",
        "fetch",
        "process",
        "finish",
        "verdict",
    }
    outlets = {t.task_id: [o.name for o in t.outlets] for t in dag.tasks if t.outlets}
    assert outlets == {"finish": [return_asset(agreement.id).name]}
    assert dag.get_task("finish").trigger_rule == "all_done"
    assert dag.get_task("verdict").trigger_rule == "all_done"
    assert dag.get_task("verdict").downstream_task_ids == set(), (
        "verdict is a leaf: it decides the run's state"
    )
    assert all(t.retries >= 2 for t in dag.tasks)
    assert agreement.returns.file_pattern in (dag.doc_md or "")


@pytest.mark.parametrize("agreement", AGREEMENTS, ids=IDS)
def test_the_sensor_is_the_deferrable_sftp_sensor_on_the_agreements_outbox(
    dagbag: Any, agreement: Agreement
) -> None:
    from airflow.providers.sftp.sensors.sftp import SFTPSensor

    sensor = dagbag.dags[f"receive__{agreement.dag_id_suffix}"].get_task("wait_for_return")
    assert isinstance(sensor, SFTPSensor)
    assert sensor.deferrable is True
    assert sensor.sftp_conn_id == agreement.sftp.conn_id
    assert sensor.path == agreement.sftp.remote_outbox
    assert "expect_return" in sensor.file_pattern  # the agreement's pattern with this run's delivery id
    # It keeps waiting one deadline period after the alert, then fails the run.
    assert sensor.timeout == 2 * agreement.returns.deadline_days * 86400
    assert sensor.on_failure_callback is not None


@pytest.mark.parametrize("agreement", AGREEMENTS, ids=IDS)
def test_a_deadline_alert_fires_deadline_days_after_the_delivery(dagbag: Any, agreement: Agreement) -> None:
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineReference

    [alert] = dagbag.dags[f"receive__{agreement.dag_id_suffix}"].deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(days=agreement.returns.deadline_days)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "sf_airflow.receive_sensor.return_deadline_missed"
    assert alert.callback.kwargs == {
        "agreement_id": agreement.id,
        "deadline_days": agreement.returns.deadline_days,
    }


# --- which delivery a run waits for ----------------------------------------------------------------------


def _event(source_run_id: str, minutes: int, extra: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(
        source_run_id=source_run_id,
        timestamp=datetime(2026, 1, 5, tzinfo=UTC) + timedelta(minutes=minutes),
        extra=extra or {},
    )


@pytest.fixture(scope="module")
def dag_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "receive_agreements_under_test", DAGS / "receive_agreements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_waits_for_the_delivery_that_triggered_it(dag_module: Any) -> None:
    from supporting_families.share.delivery import delivery_id_for

    _expected_delivery = dag_module._expected_delivery

    dwp = next(a for a in AGREEMENTS if a.id == "dwp-benefits-matching")
    events = {"asset": [_event("scheduled__a", 1), _event("scheduled__b", 5)]}
    context = {"dag_run": SimpleNamespace(conf={}), "triggering_asset_events": events}
    assert _expected_delivery(context, dwp) == delivery_id_for(dwp.id, "scheduled__b")
    events["asset"].append(_event("scheduled__c", 9, {"delivery_id": "d" + "1" * 16}))
    assert _expected_delivery(context, dwp) == "d" + "1" * 16
    manual = {"dag_run": SimpleNamespace(conf={"delivery_id": "d" + "a" * 16}), "triggering_asset_events": {}}
    assert _expected_delivery(manual, dwp) == "d" + "a" * 16
    anything = {"dag_run": SimpleNamespace(conf={}), "triggering_asset_events": {}}
    assert _expected_delivery(anything, dwp) is None
    with pytest.raises(ValueError, match="delivery_id"):
        _expected_delivery({"dag_run": SimpleNamespace(conf={"delivery_id": "../x"})}, dwp)


# --- the sensor's pin check and the deadline callbacks -----------------------------------------------------


def test_the_sensor_refuses_a_connection_that_turns_host_key_checking_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from sf_airflow.receive_sensor import PinnedSFTPSensor

    conn = {
        "conn_type": "sftp",
        "host": "127.0.0.1",
        "port": 2222,
        "login": "council",
        "extra": {"key_file": str(tmp_path / "id"), "no_host_key_check": True},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SF_TEST_UNPINNED", json.dumps(conn))
    sensor = PinnedSFTPSensor(
        task_id="wait",
        sftp_conn_id="sf_test_unpinned",
        path="dwp/outbox",
        file_pattern="x-*.gpg",
        deferrable=True,
    )
    with pytest.raises(AirflowFailException, match="host_key") as caught:
        sensor.execute({})
    assert "no_host_key_check is true" in str(caught.value)


@pytest.fixture
def ledger_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("SF_LEDGER_URL", url)
    return url


def test_a_missed_deadline_is_logged_mailed_and_recorded_once(
    ledger_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sf_airflow.receive_sensor import return_deadline_missed

    context = {"dag_run": {"dag_id": "receive__dwp_benefits_matching", "dag_run_id": "asset_triggered__x"}}
    with SmtpSink(tmp_path / "mail") as sink:
        smtp = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": sink.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "to": ["dpo@council.invalid"]},
        }
        monkeypatch.setenv("AIRFLOW_CONN_SF_SMTP", json.dumps(smtp))
        for _ in range(2):  # the scheduler may hand the callback over twice; the ledger records it once
            asyncio.run(return_deadline_missed("dwp-benefits-matching", 20, context=context))
        mails = sink.messages()
    assert any("DEADLINE ALERT" in r.getMessage() for r in caplog.records)
    assert mails and all(b"Return deadline missed: dwp-benefits-matching" in m for m in mails)
    with Ledger(ledger_url) as book:
        [entry] = book.entries()
    assert entry.kind == "reconciliation" and entry.agreement_id == "dwp-benefits-matching"
    assert entry.details["outcome"] == "deadline_missed" and entry.details["deadline_days"] == 20
    assert entry.run_id == "asset_triggered__x"


def test_the_sensor_timeout_records_no_return_and_other_failures_record_nothing(ledger_url: str) -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

    from sf_airflow.receive_sensor import return_not_received

    ti = SimpleNamespace(dag_id="receive__ons_evaluation", run_id="manual__y", task_id="wait_for_return")
    return_not_received("ons-evaluation", {"exception": AirflowException("host key"), "ti": ti})
    with Ledger(ledger_url) as book:
        assert book.count() == 0
    return_not_received("ons-evaluation", {"exception": AirflowSensorTimeout("timed out"), "ti": ti})
    with Ledger(ledger_url) as book:
        [entry] = book.entries()
    assert entry.details["outcome"] == "no_return" and entry.task_id == "wait_for_return"
