"""The tasks' ledger comes from the ``sf_ledger`` connection when the secrets backend serves one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_the_connection_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.sdk  # noqa: F401 (puts plugins/ on the path)

    from sf_airflow.credentials import ledger, ledger_location

    path = tmp_path / "from-connection.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_SF_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.setenv("SF_LEDGER_URL", f"sqlite:///{tmp_path / 'from-env.sqlite'}")
    assert ledger_location() == f"sqlite:///{path}"
    with ledger() as book:
        assert book.count("disclosure") == 0
    assert path.exists() and not (tmp_path / "from-env.sqlite").exists()


def test_without_the_connection_a_password_free_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.sdk  # noqa: F401 (puts plugins/ on the path)

    from sf_airflow.credentials import ledger_location

    monkeypatch.delenv("AIRFLOW_CONN_SF_LEDGER", raising=False)
    monkeypatch.setenv("SF_LEDGER_URL", f"sqlite:///{tmp_path / 'l.sqlite'}")
    assert ledger_location() == f"sqlite:///{tmp_path / 'l.sqlite'}"
    monkeypatch.setenv("SF_LEDGER_URL", "postgresql://platform:hunter2@db/ledger")
    with pytest.raises(RuntimeError, match="sf_ledger"):
        ledger_location()
