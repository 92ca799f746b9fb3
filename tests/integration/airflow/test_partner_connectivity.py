"""partner_connectivity through Airflow against the real sshd: the same endpoint and SSH algorithm policy
as delivery, and the negotiated algorithms in the task's XCom and log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supporting_families.transport import ALLOWED_CIPHERS, ALLOWED_HOST_KEYS, ALLOWED_KEX, ALLOWED_MACS
from tests.integration.platform_fixtures import PlatformEnv, set_deployment_env

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[3] / "dags"


def test_the_connectivity_dag_negotiates_under_the_policy_and_reports_the_algorithms(
    platform_env: PlatformEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from sf_airflow.common import partner_queue

    set_deployment_env(
        platform_env, monkeypatch, (tmp_path / "store").as_uri(), f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    )
    bag = DagBag(dag_folder=str(DAGS / "partner_connectivity.py"), safe_mode=False)
    assert bag.import_errors == {}
    caplog.set_level("INFO")
    run = bag.dags["partner_connectivity"].test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states

    dag = bag.dags["partner_connectivity"]
    for agreement in platform_env.agreements.values():
        # On the partner's own queue: only its worker holds the connection under the Celery deployment.
        task_id = f"check_{agreement.dag_id_suffix}"
        assert dag.get_task(task_id).queue == partner_queue(agreement.partner.code)
        [ti] = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
        result = ti.xcom_pull(task_ids=task_id)
        assert result["kex"] in ALLOWED_KEX
        assert result["cipher"] in ALLOWED_CIPHERS
        assert result["mac"] in (*ALLOWED_MACS, "implicit")  # AES-GCM carries its own MAC
        assert result["host_key"] in ALLOWED_HOST_KEYS
        assert result["strict_kex"] == "yes"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for agreement_id in platform_env.agreements:
        assert f"{agreement_id}: negotiated cipher " in logged
