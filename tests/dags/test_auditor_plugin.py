"""The auditor's console: behind Airflow's authentication and the auth manager's authorisation, and it
shows the chain's state (the whole console, per role, in a real browser: tests/integration/browser/)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags

import airflow  # noqa: E402,F401  (importing Airflow puts the plugins folder on sys.path)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from supporting_families.audit import Ledger, NewEntry

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("SF_LEDGER_URL", url)
    with Ledger(url) as ledger:
        ledger.append(
            NewEntry(
                kind="collection",
                occurred_at=datetime(2026, 4, 1, tzinfo=UTC),
                agreement_id="dwp-benefits-matching",
                partner="dwp",
                file_name="sf-dwp-benefits-matching-dabcdefghijklmnop.csv.gpg",
                dag_id="receive__dwp_benefits_matching",
                run_id="manual__x",
            )
        )
    import sf_auditor

    sf_auditor._verified.clear()
    sf_auditor._names_cache.clear()
    return TestClient(sf_auditor.app), sf_auditor


@pytest.fixture
def authorised(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Stand in for the auth manager's answer (FAB itself is exercised in the browser tests)."""
    import sf_airflow.access

    answers = {"allow": True}
    monkeypatch.setattr(
        sf_airflow.access, "is_authorized_view", lambda user, resource, method="GET": answers["allow"]
    )
    return answers


def test_the_page_needs_an_airflow_login(client) -> None:  # type: ignore[no-untyped-def]
    http, _ = client
    assert http.get("/").status_code == 401
    assert http.get("/entries.json").status_code == 401


def test_a_role_the_auth_manager_refuses_gets_403(client, authorised) -> None:  # type: ignore[no-untyped-def]
    from airflow.api_fastapi.core_api.security import get_user

    http, module = client
    authorised["allow"] = False
    module.app.dependency_overrides[get_user] = lambda: object()
    try:
        for path in ("/", "/entries.json", "/entries.csv", "/charts/deliveries.svg", "/person"):
            assert http.get(path).status_code == 403, path
    finally:
        module.app.dependency_overrides.clear()


def test_the_page_lists_entries_and_the_chain_state(client, authorised) -> None:  # type: ignore[no-untyped-def]
    from airflow.api_fastapi.core_api.security import get_user

    http, module = client
    # Stand in for a logged-in user only: the authentication itself is Airflow's and tested above.
    module.app.dependency_overrides[get_user] = lambda: object()
    try:
        page = http.get("/")
        assert page.status_code == 200
        assert "Chain verified: 1 entries" in page.text
        assert "no anchors configured" in page.text
        assert '/dags/receive__dwp_benefits_matching/runs/manual__x" target="_top"' in page.text
        rows = http.get("/entries.json").json()
        assert [r["kind"] for r in rows] == ["collection"]
    finally:
        module.app.dependency_overrides.clear()


def test_the_plugin_registers_the_app_and_a_nav_link() -> None:
    import sf_auditor

    plugin = sf_auditor.SupportingFamiliesAuditor
    assert plugin.fastapi_apps[0]["url_prefix"] == "/auditor"
    assert plugin.external_views[0]["href"] == "/auditor/"


def test_the_page_verifies_against_the_kept_anchors(
    client, authorised, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from airflow.api_fastapi.core_api.security import get_user
    from upath import UPath

    from supporting_families.audit import Ledger
    from supporting_families.audit.anchors import anchor

    http, module = client
    folder = UPath((tmp_path / "anchors").as_uri())
    monkeypatch.setenv("SF_LEDGER_ANCHORS_URI", str(folder))
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        anchor(ledger, folder)
    module.app.dependency_overrides[get_user] = lambda: object()
    try:
        assert "against 1 anchors kept outside the database" in http.get("/").text
        # The next request walks only what came after the head verified last time.
        assert module._verified
    finally:
        module.app.dependency_overrides.clear()


def test_a_staff_id_is_shown_with_its_login_only_to_a_role_that_may_see_names(
    client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The ledger holds the staff id; the console resolves it at view time, and only for a role the auth
    manager grants ``Staff Names`` (FAB's own answer per role is exercised in the browser tests)."""
    import json

    from airflow.api_fastapi.core_api.security import get_user

    import sf_airflow.access
    from supporting_families.audit import Ledger, NewEntry, staff_id

    key = "cd" * 32
    monkeypatch.setenv("AIRFLOW_CONN_SF_STAFF_ID_KEY", json.dumps({"conn_type": "generic", "password": key}))
    who = staff_id(bytes.fromhex(key), "practitioner")
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        ledger.append(
            NewEntry(
                kind="practitioner_decision",
                occurred_at=datetime(2026, 4, 2, tzinfo=UTC),
                triggered_by=who,
                details={
                    "assessment_id": "a" * 32,
                    "decision": "meets_criteria",
                    "reason": "confirmed_at_panel",
                },
            )
        )
    granted = {sf_airflow.access.LEDGER_CONSOLE}
    monkeypatch.setattr(
        sf_airflow.access, "is_authorized_view", lambda user, resource, method="GET": resource in granted
    )
    real = sf_airflow.access.staff_names
    # The user directory: FAB's user table in the API server; here the logins it would list.
    monkeypatch.setattr(sf_airflow.access, "staff_names", lambda: real(["auditor", "practitioner"]))
    http, module = client
    module.app.dependency_overrides[get_user] = lambda: object()
    try:
        hidden = http.get("/").text
        assert who in hidden and 'class="staff-name"' not in hidden
        granted.add(sf_airflow.access.STAFF_NAMES)
        shown = http.get("/").text
        assert f'<span class="staff-name">practitioner</span><div class="muted"><code>{who}</code>' in shown
        # The export is the ledger as it is: ids, never names.
        assert "practitioner," not in http.get("/entries.csv").text.replace("practitioner_decision", "")
    finally:
        module.app.dependency_overrides.clear()
