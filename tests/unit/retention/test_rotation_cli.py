"""The key check: the agreement's key_version and the secret behind its connection must agree; a newer key
waits for its review, an older one no longer named is due for retirement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supporting_families.config import load_agreements
from supporting_families.retention.cli import main


def _connections(tmp_path: Path, current_holds: str = "k1") -> Path:
    conns = {}
    for agreement in load_agreements(resolve=False):
        conn = agreement.pseudonymisation.key_conn_id
        version = agreement.pseudonymisation.key_version
        conns[f"{conn}_v{version}"] = {"conn_type": "generic", "password": "k1"}
        conns[f"{conn}_v{version + 1}"] = {"conn_type": "generic", "password": "k2"}
        conns[conn] = {"conn_type": "generic", "password": current_holds}
    path = tmp_path / "connections.json"
    path.write_text(json.dumps(conns))
    return path


def test_a_new_key_waits_for_the_agreements_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "--connections", str(_connections(tmp_path))]) == 0
    out = json.loads(capsys.readouterr().out)
    dwp = out["dwp-benefits-matching"]
    assert dwp["waiting_for_review"] == [dwp["key_version"] + 1] and dwp["to_retire"] == []


def test_a_connection_holding_another_version_than_the_yaml_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "--connections", str(_connections(tmp_path, current_holds="k2"))]) == 2
    err = capsys.readouterr().err
    assert "does not hold key version" in err and "k2" not in err
