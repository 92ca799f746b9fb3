"""Each role in a real browser (Debian's chromium through Playwright) against the real api-server.

Viewer is refused the console and the worklist (403); the Auditor sees the chain verified, filters to one
agreement and a date range, downloads a CSV that matches the ledger's rows and sees the charts; the
Practitioner reads the reasons and confirms an assessment, and the ledger then names that user by staff id
only; the DPO looks a person up. Screenshots are saved under var/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from supporting_families.audit import Ledger, LedgerSearch, staff_id
from tests.integration.browser.conftest import LOOKUP_PERSON, T0, AirflowUi, login, screenshot

pytestmark = pytest.mark.integration


def _status(page: Any, path: str) -> int:
    response = page.goto(path)
    assert response is not None
    return int(response.status)


@pytest.mark.parametrize("path", ["/auditor/", "/worklist/", "/auditor/person", "/auditor/entries.csv"])
def test_viewer_is_refused_the_console_and_the_worklist(
    airflow_ui: AirflowUi, browser: Any, path: str
) -> None:
    page = login(browser, airflow_ui, "viewer")
    try:
        assert _status(page, airflow_ui.base_url + path) == 403
        assert "Forbidden" in page.content()
        if path == "/auditor/":
            screenshot(page, "viewer-console-403")
    finally:
        page.context.close()


def test_without_a_login_the_pages_answer_401(airflow_ui: AirflowUi) -> None:
    for path in ("/auditor/", "/worklist/", "/auditor/entries.csv"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(airflow_ui.base_url + path, timeout=10)  # noqa: S310 (http on loopback)
        assert err.value.code == 401


@pytest.mark.parametrize("username", ["practitioner", "dpo", "op"])
def test_other_roles_are_refused_the_console(airflow_ui: AirflowUi, browser: Any, username: str) -> None:
    page = login(browser, airflow_ui, username)
    try:
        assert _status(page, airflow_ui.base_url + "/auditor/") == 403
    finally:
        page.context.close()


def test_auditor_sees_the_chain_verified_filters_downloads_and_charts(
    airflow_ui: AirflowUi, browser: Any, tmp_path: Path
) -> None:
    page = login(browser, airflow_ui, "auditor")
    try:
        assert _status(page, airflow_ui.base_url + "/auditor/") == 200
        status = page.locator("#chain-status")
        assert "Chain verified" in status.inner_text()
        assert "anchors kept outside the database" in status.inner_text()
        screenshot(page, "auditor-console")

        # One agreement and a date range: the first two weeks' DWP deliveries only.
        page.select_option("select[name=agreement]", "dwp-benefits-matching")
        page.select_option("select[name=kind]", "disclosure")
        page.fill("input[name=since]", T0.date().isoformat())
        page.fill("input[name=until]", "2026-03-10")
        page.click("#filters button[type=submit]")
        page.wait_for_load_state()
        rows = page.locator("#entries tbody tr")
        assert rows.count() == 2
        first = rows.nth(0).inner_text()
        assert "dwp-benefits-matching" in first and "purpose" in first and "legal gateway" in first
        assert "fields sent" in first and "delivery" in first
        link = rows.nth(0).locator("a[target=_top]")
        assert link.get_attribute("href", timeout=5000).startswith("/dags/share__")
        screenshot(page, "auditor-filtered")

        with page.expect_download() as download_info:
            page.click("#csv")
        path = tmp_path / "ledger.csv"
        download_info.value.save_as(path)
        exported = list(csv.DictReader(io.StringIO(path.read_text())))
        with Ledger(airflow_ui.ledger_url, create=False) as ledger:
            expected = list(
                ledger.search_all(
                    LedgerSearch(
                        kind="disclosure",
                        agreement_id="dwp-benefits-matching",
                        since=T0,
                        until=datetime(2026, 3, 11, tzinfo=T0.tzinfo),
                    )
                )
            )
        assert [int(r["seq"]) for r in exported] == [e.seq for e in expected]
        assert [r["entry_hash"] for r in exported] == [e.entry_hash for e in expected]
        assert [r["ciphertext_sha256"] for r in exported] == [e.ciphertext_sha256 for e in expected]
        assert {r["purpose"] for r in exported} == {e.purpose for e in expected}

        # Who acted: the ledger holds the DPO's staff id; the Auditor sees the login it stands for.
        page.goto(airflow_ui.base_url + "/auditor/?kind=rights_action")
        who = page.locator("#entries tbody tr").nth(0).locator("td").last
        assert who.locator(".staff-name").inner_text() == "dpo"
        with Ledger(airflow_ui.ledger_url, create=False) as ledger:
            [action] = ledger.search(LedgerSearch(kind="rights_action"), 1)
        assert action.triggered_by in who.inner_text() and "dpo" not in json.dumps(action.to_dict())
        screenshot(page, "auditor-staff-names")

        # The charts are drawn by the server as SVG (no script, no CDN) and load in the page.
        page.goto(airflow_ui.base_url + "/auditor/")
        images = page.locator("#charts img")
        assert images.count() == 5
        for i in range(images.count()):
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=images.nth(i).element_handle()
            )
        svg = page.request.get(airflow_ui.base_url + "/auditor/charts/deliveries.svg")
        assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert "<rect" in svg.text() and "http" not in svg.text().replace("http://www.w3.org/2000/svg", "")
        screenshot(page, "auditor-charts")
    finally:
        page.context.close()


def test_practitioner_sees_reasons_confirms_and_the_ledger_names_the_staff_id(
    airflow_ui: AirflowUi, browser: Any
) -> None:
    page = login(browser, airflow_ui, "practitioner")
    try:
        assert _status(page, airflow_ui.base_url + "/worklist/") == 200
        families = page.locator("#worklist tbody tr")
        assert families.count() == 5
        first = families.nth(0)
        text = first.inner_text()
        assert "attendance 84.0%" in text and "anti-social behaviour" in text
        assert "TEST STREET" in text  # the address, resolved from the register at view time
        screenshot(page, "practitioner-worklist")
        family_id = first.get_attribute("data-family")
        first.locator("button[type=submit]").click()
        # The POST records the decision (register and ledger) in the api-server; on 2 loaded cores in a full
        # CI run it once took longer than Playwright's default 30 s. What is checked is unchanged.
        page.wait_for_selector("#confirmed", timeout=90_000)
        screenshot(page, "practitioner-confirmed")
    finally:
        page.context.close()

    key = bytes.fromhex(
        json.loads((airflow_ui.home.parent / "secrets" / "connections.json").read_text())["sf_staff_id_key"][
            "password"
        ]
    )
    with Ledger(airflow_ui.ledger_url, create=False) as ledger:
        decisions = ledger.search(LedgerSearch(kind="practitioner_decision"))
        assert ledger.verify().ok
    assert len(decisions) == 1
    entry = decisions[0]
    assert entry.triggered_by == staff_id(key, "practitioner")
    assert entry.details["decision"] == "meets_criteria"
    # Neither the login, the family nor any name is in the entry.
    blob = json.dumps(entry.to_dict())
    assert "practitioner" not in blob.replace("practitioner_decision", "")
    assert str(family_id) not in blob


def test_dpo_looks_up_one_persons_disclosures(airflow_ui: AirflowUi, browser: Any) -> None:
    page = login(browser, airflow_ui, "dpo")
    try:
        assert _status(page, airflow_ui.base_url + "/auditor/person") == 200
        page.fill("input[name=person_id]", LOOKUP_PERSON)
        page.click("#lookup button[type=submit]")
        page.wait_for_selector("#lookup-count")
        assert "2 disclosures" in page.locator("#lookup-count").inner_text()
        table = page.locator("#disclosures").inner_text()
        assert "dwp-benefits-matching" in table and "met-police-wider-help" in table
        assert "ons-evaluation" not in table
        screenshot(page, "dpo-lookup")
        # The DPO reads no ledger console.
        assert _status(page, airflow_ui.base_url + "/auditor/") == 403
    finally:
        page.context.close()
