"""Alerts that alert someone: a missed return deadline, and a delivery that finds an uncollected file under
its final name, each send a real e-mail through Airflow's SMTP notifier (connection ``sf_smtp``) to the
demo's SMTP sink and write one ledger entry."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
from pathlib import Path

import pytest

from sf_demo.smtp_sink import SmtpSink
from supporting_families.audit import Ledger
from tests.integration.platform_fixtures import PlatformEnv, seed_identified, set_deployment_env

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[3] / "dags"


def test_a_missed_return_deadline_sends_a_mail_and_records_it(
    platform_env: PlatformEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.plugins_manager  # noqa: F401 (puts plugins/ on the path, as in a worker)

    from sf_airflow.receive_sensor import return_deadline_missed

    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    set_deployment_env(platform_env, monkeypatch, (tmp_path / "store").as_uri(), ledger_url)
    smtp = dict(platform_env.connections["sf_smtp"])
    with SmtpSink(tmp_path / "mail") as sink:
        smtp["port"] = sink.port
        monkeypatch.setenv("AIRFLOW_CONN_SF_SMTP", json.dumps(smtp))
        # What the triggerer passes a DeadlineAlert callback: the run as the REST API shows it.
        context = {"dag_run": {"dag_id": "receive__dwp-benefits-matching", "dag_run_id": "manual__d1"}}
        asyncio.run(return_deadline_missed("dwp-benefits-matching", 28, context))
        mails = sink.messages()

    assert len(mails) == 1, "one mail reached the sink"
    mail = message_from_bytes(mails[0])
    assert mail["Subject"] == "Return deadline missed: dwp-benefits-matching"
    body = "".join(
        part.get_payload(decode=True).decode("utf-8", "replace")
        for part in mail.walk()
        if part.get_content_type() == "text/html"
    )
    assert "manual__d1" in body
    with Ledger(ledger_url) as book:
        entries = list(book.entries())
    assert [e.details.get("outcome") for e in entries] == ["deadline_missed"]


def _body(raw: bytes) -> str:
    mail = message_from_bytes(raw)
    return "".join(
        part.get_payload(decode=True).decode("utf-8", "replace")  # type: ignore[union-attr]
        for part in mail.walk()
        if part.get_content_type() == "text/html"
    )


def test_an_uncollected_file_under_the_final_name_mails_the_engineers_and_records_one_conflict(
    platform_env: PlatformEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, date, datetime

    from airflow.dag_processing.dagbag import DagBag

    from supporting_families.share import delivery_id_for
    from supporting_families.store import store_root

    agreement = platform_env.agreements["dwp-benefits-matching"]
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    root = store_root((tmp_path / "store").as_uri())
    set_deployment_env(platform_env, monkeypatch, str(root), ledger_url)
    seed_identified(root, 600, seed=5, as_of=date(2026, 3, 31))

    # The run's id, hence its delivery's name, follows from the run's date (dag.test's manual run id). The
    # partner has not collected an earlier file under that name, with other bytes.
    when = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    delivery_id = delivery_id_for(agreement.id, f"manual__{when.isoformat()}")
    uncollected = platform_env.inbox(agreement) / f"sf-{agreement.id}-{delivery_id}.csv.gpg"
    uncollected.write_bytes(b"an earlier delivery the partner has not collected")
    dag = DagBag(dag_folder=str(DAGS), safe_mode=False).dags[f"share__{agreement.dag_id_suffix}"]
    smtp = dict(platform_env.connections["sf_smtp"])
    try:
        with SmtpSink(tmp_path / "mail") as sink:
            smtp["port"] = sink.port
            monkeypatch.setenv("AIRFLOW_CONN_SF_SMTP", json.dumps(smtp))
            runs = [dag.test(logical_date=when, run_after=when) for _ in range(2)]  # the run, then its rerun
            mails = sink.messages()
        # Nothing was sent or overwritten: the partner's file is as it was, and nothing else arrived.
        assert uncollected.read_bytes() == b"an earlier delivery the partner has not collected"
        assert not [
            p for p in platform_env.inbox(agreement).iterdir() if delivery_id in p.name and p != uncollected
        ]
    finally:
        uncollected.unlink()
    for run in runs:
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert states["deliver"] == "failed", states

    # A mail to the data engineers (sf_smtp's extra "operations") per attempt, naming the delivery.
    assert len(mails) == 2, len(mails)
    for raw in mails:
        assert raw.startswith(b"X-Sink-Recipients: data.engineers@council.invalid")
        mail = message_from_bytes(raw)
        assert mail["Subject"] == f"Delivery conflict: {agreement.id}"
        assert delivery_id in _body(raw)
    # One ledger entry for the conflict, however often it is retried; no disclosure.
    with Ledger(ledger_url) as book:
        entries = list(book.entries())
        assert book.verify().ok
    conflicts = [e for e in entries if e.kind == "delivery_conflict"]
    assert len(conflicts) == 1 and not [e for e in entries if e.kind == "disclosure"]
    [conflict] = conflicts
    assert conflict.file_name == uncollected.name and conflict.details["delivery_id"] == delivery_id
    assert conflict.run_id == runs[0].run_id
