"""Credentials per partner on the Celery deployment (docs/ARCHITECTURE.md, "Credentials per partner").

A partner's SFTP connection and pseudonym keys exist only in that partner's worker's own secrets backend.
A lookup the worker's backend misses falls through to the API server (the execution API), whose backends
(environment, the central file, the metadata database) hold no partner's connection, so it finds nothing.
The probe DAG (``probe_dags/isolation_probe.py``) asks, on each partner's queue, for every partner's
connections and for two central ones; the central components are then searched directly: their
environment, their backend's file, the metadata database, and a lookup through their own secrets chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.celery.conftest import WORKERS, CeleryCluster
from tests.integration.platform_fixtures import PlatformEnv

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CENTRAL = ("sf_ledger", "sf_openpgp_council")
CENTRAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def _task(code: str) -> str:
    return f"ask_on_{code.replace('-', '_')}"


def _owned(cluster: CeleryCluster) -> dict[str, dict[str, Any]]:
    """Each partner's own connections, as its worker's file holds them."""
    return {code: json.loads(path.read_text()) for code, path in cluster.partner_files.items()}


def _secret_values(owned: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """What of a partner's connections is secret: pseudonym keys, client key paths and key text."""
    values: dict[str, list[str]] = {}
    for code, conns in owned.items():
        found = values.setdefault(code, [])
        for conn in conns.values():
            if conn.get("password"):
                found.append(str(conn["password"]))
            key_file = (conn.get("extra") or {}).get("key_file")
            if key_file:
                found.append(str(key_file))
                lines = Path(key_file).read_text().splitlines()
                found += [ln for ln in lines if ln and not ln.startswith("-----")]
    return values


@pytest.fixture(scope="module")
def probe(celery_cluster: CeleryCluster) -> dict[str, dict[str, str]]:
    """task id -> {connection id: "found" or the error's type}, from one probe run."""
    cluster = celery_cluster
    ids = sorted({conn_id for conns in _owned(cluster).values() for conn_id in conns}) + list(CENTRAL)
    run_id = cluster.trigger(["isolation_probe"], conf={"conn_ids": ids})["isolation_probe"]
    cluster.wait_for(
        "the probe done", lambda: cluster.run_state("isolation_probe", run_id) in ("success", "failed"), 300
    )
    assert cluster.run_state("isolation_probe", run_id) == "success", cluster.task_instances(
        "isolation_probe", run_id
    )
    rows = cluster.query(
        "SELECT task_id, value FROM xcom WHERE dag_id = 'isolation_probe' AND run_id = :r"
        " AND key = 'return_value'",
        r=run_id,
    )
    found: dict[str, dict[str, str]] = {}
    for task_id, value in rows:
        while isinstance(value, str):
            value = json.loads(value)
        found[str(task_id)] = value
    assert set(found) == {_task(code) for code in WORKERS}, found
    return found


def test_a_partner_task_gets_its_own_connections_and_no_other_partners(
    celery_cluster: CeleryCluster, probe: dict[str, dict[str, str]]
) -> None:
    owned = _owned(celery_cluster)
    for code in WORKERS:
        answers = probe[_task(code)]
        for other, conns in owned.items():
            for conn_id in conns:
                expected = "found" if other == code else "AirflowNotFoundException"
                assert answers[conn_id] == expected, (code, conn_id, answers[conn_id])
        # The fall-through works: what is central reaches every partner's task through the execution API.
        for conn_id in CENTRAL:
            assert answers[conn_id] == "found", (code, conn_id)


def test_the_execution_api_was_asked_and_had_nothing(
    celery_cluster: CeleryCluster, probe: dict[str, dict[str, str]]
) -> None:
    # The DWP worker's lookups of the police connection went to the API server, which answered 404.
    log = (celery_cluster.logs / "api-server.log").read_text(errors="replace")
    for conn_id in _owned(celery_cluster)["met-police"]:
        asked = [ln for ln in log.splitlines() if f"path=/execution/connections/{conn_id} " in ln]
        assert asked, conn_id
        assert all("status_code=404" in ln for ln in asked), asked


def test_no_central_component_holds_a_partner_secret(
    celery_cluster: CeleryCluster, platform_env: PlatformEnv
) -> None:
    cluster = celery_cluster
    owned = _owned(cluster)
    secrets = _secret_values(owned)
    partner_ids = {conn_id for conns in owned.values() for conn_id in conns}
    assert all(secrets.values()) and len(partner_ids) >= 6

    # The environment each central component was started with (conftest.py's CeleryCluster.start; its
    # /proc environ is overwritten by setproctitle, so the launch environment is what is read).
    for name in CENTRAL_COMPONENTS:
        assert name in cluster.processes, name
        environ = "\0".join(f"{k}={v}" for k, v in cluster.env.items())
        for code, values in secrets.items():
            for value in values:
                assert value not in environ, (name, code)
        assert "AIRFLOW__WORKERS__SECRETS_BACKEND" not in environ, name
        # The one file their secrets backend reads holds no partner's connection or secret.
        kwargs = cluster.env["AIRFLOW__SECRETS__BACKEND_KWARGS"]
        backend_file = Path(json.loads(kwargs)["connections_file_path"])
        text = backend_file.read_text()
        assert not partner_ids & set(json.loads(text)), name
        assert not any(v in text for values in secrets.values() for v in values), name

    # Not in the metadata database either (the API server's last backend).
    assert not partner_ids & {r[0] for r in cluster.query("SELECT conn_id FROM connection")}

    # Through the central components' own secrets chain (environment, central file, metadata database),
    # as the API server searches it for the execution API and the triggerer for its triggers.
    script = (
        "import json,sys\n"
        "from airflow.models.connection import Connection\n"
        "out={}\n"
        "for c in sys.argv[1:]:\n"
        "    try:\n"
        "        Connection.get_connection_from_secrets(c); out[c]='found'\n"
        "    except Exception as e:\n"
        "        out[c]=type(e).__name__\n"
        "print('FOUND='+json.dumps(out))\n"
    )
    answers, printed = cluster.python(
        script,
        [*sorted(partner_ids), "sf_ledger"],
        "FOUND",
        env={**cluster.env, "_AIRFLOW_PROCESS_CONTEXT": "server"},
    )
    assert answers.pop("sf_ledger") == "found"
    assert set(answers.values()) == {"AirflowNotFoundException"}, answers
    for values in secrets.values():
        assert not any(v in printed for v in values)


def test_each_worker_holds_its_own_partners_secrets_only(celery_cluster: CeleryCluster) -> None:
    owned = _owned(celery_cluster)
    secrets = _secret_values(owned)
    for code in WORKERS:
        assert f"worker-{code}" in celery_cluster.processes
        environ = "\0".join(f"{k}={v}" for k, v in celery_cluster.worker_env(code).items())
        assert "\0AIRFLOW__SECRETS__BACKEND=" not in environ, code  # no central backend of its own
        assert str(celery_cluster.partner_files[code]) in environ
        for other, conns in owned.items():
            if other != code:
                text = celery_cluster.partner_files[code].read_text()
                assert not set(conns) & set(json.loads(text)), (code, other)
                assert not any(v in text for v in secrets[other]), (code, other)


def test_the_return_sensors_reschedule_on_the_partners_queues(
    celery_cluster: CeleryCluster, platform_env: PlatformEnv
) -> None:
    # The triggerer is shared: a deferred return sensor would need the partner's SFTP connection there.
    queues = {
        f"receive__{a.dag_id_suffix}": WORKERS[a.partner.code][0] for a in platform_env.agreements.values()
    }
    rows = celery_cluster.query(
        "SELECT dag_id, data FROM serialized_dag WHERE dag_id = ANY(:ids)", ids=list(queues)
    )
    assert {r[0] for r in rows} == set(queues)
    for dag_id, data in rows:
        while isinstance(data, str):
            data = json.loads(data)
        tasks = {t["__var"]["task_id"]: t["__var"] for t in data["dag"]["tasks"]}
        sensor = tasks["wait_for_return"]
        assert sensor.get("reschedule") is True, (dag_id, sensor)
        assert sensor.get("queue") == queues[dag_id], (dag_id, sensor.get("queue"))
