"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose specification says the file is well formed; these tests say it would run: every Airflow
component shares the JWT and API secrets (otherwise a Celery worker's task calls fail signature checks),
waits for ``airflow-init``, has a healthcheck and a restart policy, and mounts what it needs; each partner's
worker serves its own queue with its own secrets, which no other service mounts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
PARTNERS = ("dwp", "police", "ons")
#: The queues the DAGs route each partner's tasks to (sf_airflow.common.partner_queue of the partner code).
QUEUES = {"dwp": "sf_dwp", "police": "sf_met_police", "ons": "sf_ons"}
SHARED_SECRETS = {
    "airflow_jwt_secret",
    "airflow_api_secret_key",
    "airflow_db_url",
    "airflow_celery_result_url",
}


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _airflow() -> list[str]:
    return [*AIRFLOW_SERVICES, *(f"worker-{p}" for p in PARTNERS)]


def _bin(name: str) -> str:
    found = shutil.which(str(Path(sys.executable).parent / name)) or shutil.which(name)
    assert found, f"{name} is missing: it is in requirements-dev.txt (make install)"
    return found


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    run = subprocess.run(
        [_bin("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_dockerfile_passes_hadolint() -> None:
    run = subprocess.run(
        [_bin("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("name", _airflow())
def test_every_airflow_service_shares_the_secrets_waits_for_init_and_is_checked(name: str) -> None:
    service = _services()[name]
    env = service["environment"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /run/secrets/airflow_jwt_secret"
    assert env["AIRFLOW__API__SECRET_KEY_CMD"] == "cat /run/secrets/airflow_api_secret_key"
    assert set(service["secrets"]) >= SHARED_SECRETS
    assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    assert service["healthcheck"]["test"]
    assert service["restart"] == "unless-stopped"
    mounts = {v.split(":")[1] for v in service["volumes"]}
    assert {"/opt/airflow/logs", "/opt/sf/var", "/opt/sf/gnupg/council"} <= mounts
    assert not any(k.endswith(("PASSWORD", "SECRET", "SECRET_KEY")) for k in env), "secrets come from files"


@pytest.mark.parametrize("partner", PARTNERS)
def test_each_partner_worker_serves_its_queue_with_secrets_no_other_service_mounts(partner: str) -> None:
    services = _services()
    worker = services[f"worker-{partner}"]
    command = worker["command"]
    assert command[command.index("--queues") + 1] == QUEUES[partner]
    assert command[command.index("--celery-hostname") + 1].startswith(f"{partner}@")
    own = {s for s in worker["secrets"] if s.startswith(f"sf_partner_{partner}_")}
    assert own == {f"sf_partner_{partner}_connections", f"sf_partner_{partner}_ssh_key"}
    assert (
        f"/run/secrets/sf_partner_{partner}_connections"
        in worker["environment"]["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS"]
    )
    for name, other in services.items():
        if name != f"worker-{partner}":
            assert not own & set(other.get("secrets", [])), f"{name} mounts {partner}'s secrets"


@pytest.mark.parametrize("partner", PARTNERS)
def test_a_partner_worker_has_no_central_backend_and_sensors_reschedule(partner: str) -> None:
    # Credentials per partner (docs/ARCHITECTURE.md): the worker's own backend, then the API server's.
    worker = _services()[f"worker-{partner}"]
    assert worker["environment"]["AIRFLOW__SECRETS__BACKEND"] == ""
    assert "sf_council_connections" not in worker["secrets"]
    for name in _airflow():
        assert _services()[name]["environment"]["SF_RETURN_SENSOR"] == "reschedule", name


def test_the_partner_sshd_creates_one_login_per_partner() -> None:
    script = " ".join(_services()["partner-sshd"]["entrypoint"])
    for code in QUEUES.values():
        assert f"sfp-{code.removeprefix('sf_').replace('_', '-')}" in script
    assert script.rstrip().endswith("-f /opt/sf/sftp/sshd_config")


def test_only_loopback_ports_are_published_and_images_are_pinned() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), name
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), name
