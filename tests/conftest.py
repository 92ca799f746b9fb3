"""Test-wide settings. Airflow reads its configuration at import, so set it before anything imports it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_AIRFLOW_HOME = REPO / "var" / "test-airflow-home"

os.environ.setdefault("AIRFLOW_HOME", str(TEST_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault(
    "AIRFLOW__CORE__AUTH_MANAGER", "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
)
# A shell that sourced scripts/env.sh carries the demo's store, ledger and anchors: tests set their own.
for _name in ("SF_STORE_URI", "SF_STORE_CONN_ID", "SF_LEDGER_URL", "SF_LEDGER_ANCHORS_URI"):
    os.environ.pop(_name, None)
TEST_AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)

# Lineage as the demo emits it (scripts/env.sh), to a file of this test session's own: the tests that run
# DAGs read the events back (tests/lineage_events.py). Airflow's plugins read this once, at import.
LINEAGE_FILE = TEST_AIRFLOW_HOME / "lineage" / "events.jsonl"
LINEAGE_FILE.parent.mkdir(mode=0o700, exist_ok=True)
LINEAGE_FILE.unlink(missing_ok=True)
os.environ["SF_LINEAGE_FILE"] = str(LINEAGE_FILE)
os.environ["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "supporting-families"
os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
    {
        "type": "transform",
        "transformer_class": "sf_airflow.lineage.PrivacyTransformer",
        "transport": {"type": "file", "log_file_path": str(LINEAGE_FILE), "append": True},
    }
)
os.environ["AIRFLOW__OPENLINEAGE__EXTRACTORS"] = "sf_airflow.lineage.TaskFlowExtractor"
os.environ["AIRFLOW__OPENLINEAGE__EMISSION_POLICY"] = json.dumps(
    [{"scope": {}, "controls": {"hook_lineage": False}, "locked": True}]
)
os.environ["AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD"] = "True"

pytest_plugins = ["tests.s3_fixtures", "tests.integration.platform_fixtures"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """No test skips: a test that needs sshd, gpg, jq, PostgreSQL or root and cannot have it fails.

    A skipped real-component test would look green while testing nothing. Expected failures (``xfail``)
    are reported as such, not as skips.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped, and no test may skip (tests/conftest.py): {reason}"
