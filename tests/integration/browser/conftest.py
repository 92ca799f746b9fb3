"""One real Airflow api-server per test session, with the FAB auth manager, the platform's roles and one
demo user per role, and a store and ledger seeded with made-up data; and Debian's chromium through
Playwright.

The server gets its own AIRFLOW_HOME (SQLite metadata), its own secrets file (the staff id key), store,
ledger and anchors, and listens on 127.0.0.1 at a free port. Screenshots go to ``var/screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from supporting_families.audit import Ledger, NewEntry, anchor, idempotency_key
from supporting_families.config import load_agreements
from supporting_families.identify import FAMILY_PROBLEMS_SCHEMA, WORKLIST_SCHEMA
from supporting_families.store import (
    FileKeyStore,
    delivery_references_file,
    identification_dir,
    register_file,
    store_root,
    write_sealed_table,
)
from supporting_families.store.io import write_parquet
from supporting_families.store.layout import relative
from tests.integration.platform_fixtures import small_register

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AS_OF = date(2026, 3, 31)
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
#: Made-up deliveries: (agreement id, days after T0, rows).
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DELIVERIES = [
    ("dwp-benefits-matching", 0, 30),
    ("met-police-wider-help", 1, 20),
    ("dwp-benefits-matching", 7, 31),
    ("ons-evaluation", 8, 40),
    ("dwp-benefits-matching", 14, 33),
    ("met-police-wider-help", 15, 21),
]
#: The person the DPO looks up: in the first two deliveries only.
LOOKUP_PERSON = "P000001"


@dataclass(frozen=True)
class AirflowUi:
    base_url: str
    passwords: dict[str, str]
    ledger_url: str
    store: Any
    home: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(store: Any, ledger_url: str, anchors: Path, keys: FileKeyStore) -> None:
    persons = small_register(60)
    write_parquet(persons, register_file(store, "persons"))
    families = sorted(set(persons["family_id"].to_pylist()))[:5]
    folder = identification_dir(store, AS_OF)
    problems = []
    for fid in families:
        problems.append(
            {
                "family_id": fid,
                "headline": "education",
                "title": "Getting a good education",
                "sub_criteria": ["persistent_absence"],
                "sources": ["education"],
                "persons": 1,
                "latest_evidence_date": AS_OF,
                "from_partner": False,
                "reason": "attendance 84.0% over the last 3 terms (under 90%)",
            }
        )
        problems.append(
            {
                "family_id": fid,
                "headline": "crime",
                "title": "Crime prevention and tackling crime",
                "sub_criteria": ["asb"],
                "sources": ["asb"],
                "persons": 1,
                "latest_evidence_date": AS_OF,
                "from_partner": False,
                "reason": "an anti-social behaviour intervention within the last 12 months",
            }
        )
    write_parquet(
        pa.Table.from_pylist(problems, schema=FAMILY_PROBLEMS_SCHEMA), folder / "family_problems.parquet"
    )
    worklist = [
        {
            "as_of": AS_OF,
            "family_id": fid,
            "problems": 2,
            "headline_problems": ["crime", "education"],
            "reasons": ["asb", "attendance"],
            "persons_flagged": 1,
            "members": 3,
            "latest_evidence_date": AS_OF,
            "from_partner": False,
        }
        for fid in families
    ]
    table = pa.Table.from_pylist(
        [{**row, **{f.name: None for f in WORKLIST_SCHEMA if f.name not in row}} for row in worklist],
        schema=WORKLIST_SCHEMA,
    )
    write_parquet(table, folder / "worklist.parquet")

    agreements = {a.id: a for a in load_agreements(resolve=False)}
    with Ledger(ledger_url) as ledger:
        for i, (agreement_id, days, rows) in enumerate(DELIVERIES):
            agreement = agreements[agreement_id]
            delivery_id = f"d{i:02d}-{days:02d}"
            ids = [f"P{n:06d}" for n in range(rows)] if i < 2 else [f"P{n:06d}" for n in range(10, 10 + rows)]
            refs = delivery_references_file(store, agreement_id, delivery_id)
            write_sealed_table(
                pa.table({"person_id": ids, "family_id": ids, "person_ref": ids, "family_ref": ids}),
                refs,
                keys,
                "2026-03",
                relative(store, refs),
            )
            ledger.append(
                NewEntry.for_agreement(
                    agreement,
                    kind="disclosure",
                    occurred_at=T0 + timedelta(days=days),
                    row_count=rows,
                    plaintext_sha256=f"{i:x}" * 64 if i < 10 else "a" * 64,
                    ciphertext_sha256="b" * 63 + f"{i:x}",
                    file_name=f"sf-{agreement_id}-{delivery_id}.csv.gpg",
                    dag_id=f"share__{agreement.dag_id_suffix}",
                    run_id=f"scheduled__2026-03-{2 + days:02d}T09:00:00+00:00",
                    task_id="deliver",
                    try_number=1,
                    triggered_by="schedule",
                    details={"delivery_id": delivery_id, "key_version": 1, "bytes": 1000 + rows},
                    idempotency_key=idempotency_key("disclosure", agreement_id, delivery_id),
                )
            )
            ledger.append(
                NewEntry.for_agreement(
                    agreement,
                    kind="reconciliation",
                    occurred_at=T0 + timedelta(days=days + 2),
                    row_count=rows,
                    triggered_by="asset_event",
                    details={
                        "outcome": "reconciled",
                        "matched": rows - 2,
                        "rejected_by_partner": 1,
                        "no_trace": 1,
                        "unexpected": 0,
                        "duplicate": 0,
                        "late": i == 3,
                        "days_after_delivery": 2,
                    },
                    idempotency_key=idempotency_key("reconciliation", agreement_id, delivery_id),
                )
            )
        anchor(ledger, store_root(anchors.as_uri()))


@pytest.fixture(scope="session")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUi]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs it (apt-get install chromium)")
    root = tmp_path_factory.mktemp("airflow-ui")
    home, secrets_dir = root / "home", root / "secrets"
    home.mkdir()
    store = store_root((root / "store").as_uri())
    ledger_url = f"sqlite:///{root / 'ledger.sqlite'}"
    anchors = root / "anchors"
    keys_dir = root / "data_keys"
    _seed(store, ledger_url, anchors, FileKeyStore(keys_dir))
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "SF_", "_AIRFLOW")) and k != "PYTEST_CURRENT_TEST"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            # FAB allows 5 logins per 40 s from one address by default; the session signs in each role once.
            "AIRFLOW__FAB__AUTH_RATE_LIMIT": "30 per 40 second",
            "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(
                {"connections_file_path": str(secrets_dir / "connections.json")}
            ),
            "SF_STORE_URI": str(store),
            "SF_LEDGER_URL": ledger_url,
            "SF_LEDGER_ANCHORS_URI": anchors.as_uri(),
            "PYTHONPATH": str(REPO / "include"),
        }
    )
    venv_bin = Path(sys.executable).parent
    log = (root / "setup.log").open("w")
    for cmd in (
        [str(venv_bin / "airflow"), "db", "migrate"],
        [str(venv_bin / "airflow"), "fab-db", "migrate"],
        [sys.executable, str(REPO / "scripts" / "airflow_access.py"), "roles"],
        [
            sys.executable,
            str(REPO / "scripts" / "airflow_access.py"),
            "demo-users",
            "--secrets-dir",
            str(secrets_dir),
        ],
    ):
        subprocess.run(cmd, env=env, check=True, stdout=log, stderr=subprocess.STDOUT, timeout=240)
    passwords = json.loads((secrets_dir / "airflow-users.json").read_text())
    # The DPO's lookup opens the sealed reference lists with the data keys named by the rights connection.
    connections_file = secrets_dir / "connections.json"
    connections = json.loads(connections_file.read_text())
    connections["sf_rights"] = {"conn_type": "generic", "extra": {"data_keys_dir": str(keys_dir)}}
    connections_file.write_text(json.dumps(connections))
    server_log = root / "api-server.log"
    with server_log.open("w") as out:
        proc = subprocess.Popen(
            [str(venv_bin / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2) as r:  # noqa: S310 (http on loopback)
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the api-server did not start; last lines:\n{server_log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield AirflowUi(base, passwords, ledger_url, store, home)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        # No password in any log the server or the set-up wrote.
        logs = server_log.read_text() + (root / "setup.log").read_text()
        leaked = [user for user, pw in passwords.items() if pw in logs]
        assert not leaked, f"passwords of {leaked} found in a log"
        shutil.rmtree(home / "logs", ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API runs an event loop in this thread until it stops, and later
    tests that call asyncio.run() (the deferrable sensor's trigger) need it gone."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


_signed_in: dict[str, Any] = {}


def login(browser: Any, ui: AirflowUi, username: str) -> Any:
    """A new browser context signed in as ``username`` (through FAB's login form the first time in the
    session, then with the cookies that login gave); returns its page."""
    options: dict[str, Any] = {"accept_downloads": True, "viewport": {"width": 1400, "height": 1000}}
    if username in _signed_in:
        context = browser.new_context(storage_state=_signed_in[username], **options)
        return context.new_page()
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{ui.base_url}/auth/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", ui.passwords[username])
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30000)
    if not any(c["name"] == "_token" for c in context.cookies()):
        raise AssertionError(f"{username}: no _token cookie after login (at {page.url})")
    _signed_in[username] = context.storage_state()
    return page


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
