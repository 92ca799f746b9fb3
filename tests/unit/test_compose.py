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
    return [*AIRFLOW_SERVICES, "worker-council", *(f"worker-{p}" for p in PARTNERS)]


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


def test_airflow_init_migrates_then_makes_the_roles_and_the_admin_from_a_secret_file() -> None:
    init = _services()["airflow-init"]
    script = " ".join(init["command"])
    steps = [
        "airflow db migrate",
        "airflow fab-db migrate",
        "scripts/airflow_access.py roles",
        "scripts/airflow_access.py admin --password-file /run/secrets/airflow_admin_password",
    ]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), script
    assert "airflow_admin_password" in init["secrets"]
    assert init["restart"] == "no"
    assert set(init["depends_on"]) == {"postgres", "redis"}
    for name, service in _services().items():
        if name != "airflow-init":
            assert "airflow_admin_password" not in service.get("secrets", []), name


def test_every_queue_the_dags_route_to_has_a_worker() -> None:
    sys.path.insert(0, str(REPO / "plugins"))
    try:
        from sf_airflow.common import partner_queue
    finally:
        sys.path.remove(str(REPO / "plugins"))
    from supporting_families.config import load_agreements

    served = set()
    for name, service in _services().items():
        command = service.get("command", [])
        if name.startswith("worker-"):
            assert command[:2] == ["celery", "worker"], name
            served.update(command[command.index("--queues") + 1].split(","))
    # Airflow's [operators] default_queue: every task the DAGs do not route to a partner.
    wanted = {"default"} | {partner_queue(a.partner.code) for a in load_agreements(resolve=False)}
    assert served == wanted


def test_the_partner_sshd_keeps_its_folders_and_keys_on_volumes_and_is_checked() -> None:
    sshd = _services()["partner-sshd"]
    mounts = {v.split(":")[1] for v in sshd["volumes"]}
    assert {"/opt/sf/sftp", "/opt/sf/ssh"} <= mounts
    assert sshd["healthcheck"]["test"] and sshd["restart"] == "unless-stopped"
    assert "sshd" in _dockerfile_stages()["partner-sshd"]


def _dockerfile_stages() -> dict[str, str]:
    """Each stage's text by its name (``AS name``); the last, unnamed stage is ``runtime``."""
    stages: dict[str, str] = {}
    for chunk in (REPO / "Dockerfile").read_text().split("\nFROM ")[1:]:
        head = chunk.splitlines()[0].split()
        stages[head[2] if len(head) > 2 and head[1].upper() == "AS" else "runtime"] = chunk
    return stages


def test_the_dockerfile_builds_the_extension_and_copies_the_dags_and_plugins() -> None:
    stages = _dockerfile_stages()
    build, runtime = stages["build"], stages["runtime"]
    # setup.py's extension is optional: without OpenSSL's headers it is skipped without a word.
    assert "libssl-dev" in build and "gcc" in build
    assert "COPY --chown=50000:0 pyproject.toml setup.py ./" in build
    assert "_hmac*.so" in build  # the image fails if the extension was not built
    assert "COPY --from=build --chown=50000:0 /opt/sf/include ./include" in runtime
    for folder in ("dags", "plugins"):
        assert f"COPY --chown=50000:0 {folder} ./{folder}" in runtime
    assert "scripts/airflow_access.py" in runtime  # airflow-init runs it
    images = [
        line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")
    ]
    assert all(":" in i and not i.endswith(":latest") for i in images), images


def test_the_image_installs_the_production_lock_which_has_no_test_tools() -> None:
    runtime = _dockerfile_stages()["runtime"]
    assert "pip install --no-cache-dir -r requirements.txt" in runtime
    assert "requirements-dev" not in (REPO / "Dockerfile").read_text()
    pinned = {
        line.split("==")[0].split("[")[0].lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    assert {"apache-airflow", "apache-airflow-providers-celery", "celery"} <= pinned
    tools = {
        "pytest",
        "pytest-timeout",
        "hypothesis",
        "moto",
        "ruff",
        "mypy",
        "playwright",
        "check-jsonschema",
    }
    assert not pinned & tools, pinned & tools
    dev = (REPO / "requirements-dev.txt").read_text()
    assert all(f"\n{t}==" in dev for t in ("pytest", "moto", "hypothesis", "ruff", "mypy"))
