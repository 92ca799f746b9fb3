"""A missed return deadline alerts someone: a real e-mail through Airflow's SMTP notifier (connection
``sf_smtp``) to the demo's SMTP sink, and a ``deadline_missed`` entry in the ledger."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
from pathlib import Path

import pytest

from sf_demo.smtp_sink import SmtpSink
from supporting_families.audit import Ledger
from tests.integration.platform_fixtures import PlatformEnv, set_deployment_env

pytestmark = pytest.mark.integration


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
