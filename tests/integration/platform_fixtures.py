"""A whole demo environment for share/receive tests: the session's sshd, generated keys, agreements."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from upath import UPath

from sf_demo.secrets import CANARY_ENV, SecretsLayout, generate_demo_secrets, stop_gpg_agents
from sf_demo.sftp_server import LocalSftpServer
from sf_demo.sftp_server import SftpServerInfo as ServerEndpoint
from sf_demo.smtp_sink import SmtpSink
from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.config import Agreement, load_agreements, load_sources
from supporting_families.identify import identify, refresh_register
from supporting_families.ingest import ingest_source
from supporting_families.share.pseudonymise import PseudonymKey
from supporting_families.store import REGISTER_SCHEMA, FileKeyStore
from supporting_families.transport.sftp import SftpEndpoint

#: This session's secret canary: every secret generated for the session's platform (demo secrets, and the
#: Celery deployment's database, ledger and admin passwords) begins with these bytes, so
#: tests/integration/celery/test_secret_canaries.py can search every trace for every secret at once.
SECRET_CANARY = secrets.token_bytes(8)


@contextmanager
def secret_canary() -> Iterator[dict[str, str]]:
    """``$SF_DEMO_SECRET_CANARY`` set while secrets are generated (yields it, for a subprocess's env)."""
    before = os.environ.get(CANARY_ENV)
    os.environ[CANARY_ENV] = SECRET_CANARY.hex()
    try:
        yield {CANARY_ENV: SECRET_CANARY.hex()}
    finally:
        if before is None:
            del os.environ[CANARY_ENV]
        else:
            os.environ[CANARY_ENV] = before


@dataclass(frozen=True)
class PlatformEnv:
    secrets: SecretsLayout
    agreements: dict[str, Agreement]
    council_fingerprint: str
    # Secrets: never in a failing assertion's repr (pytest prints the objects it compares).
    council_passphrase: str = field(repr=False)
    server: LocalSftpServer
    connections: dict[str, dict[str, object]] = field(repr=False)

    def endpoint(self, agreement: Agreement) -> SftpEndpoint:
        return self.connection_endpoint(agreement.sftp.conn_id)

    def connection_endpoint(self, conn_id: str) -> SftpEndpoint:
        """The pinned endpoint a demo SFTP connection (a partner's or an agency's) describes."""
        conn = self.connections[conn_id]
        extra = conn["extra"]
        assert isinstance(extra, dict)
        return SftpEndpoint(
            str(conn["host"]),
            int(str(conn["port"])),
            str(conn["login"]),
            host_key=str(extra["host_key"]),
            private_key_path=Path(str(extra["key_file"])),
        )

    @property
    def data_keys(self) -> FileKeyStore:
        """The data keys per retention period (the sealed controller-side copies)."""
        return FileKeyStore(self.secrets.data_keys_dir)

    def key(self, agreement: Agreement) -> PseudonymKey:
        conn = self.connections[agreement.pseudonymisation.key_conn_id]
        return PseudonymKey.from_hex(
            agreement.id, agreement.pseudonymisation.key_version, str(conn["password"])
        )

    def inbox(self, agreement: Agreement) -> Path:
        return self.server.root / agreement.sftp.remote_inbox

    def outbox(self, agreement: Agreement) -> Path:
        return self.server.root / agreement.sftp.remote_outbox


def set_deployment_env(
    env: PlatformEnv, monkeypatch: pytest.MonkeyPatch, store_uri: str, ledger_url: str
) -> None:
    """What a deployment provides the DAGs: store and ledger URLs, fingerprints, every connection."""
    monkeypatch.setenv("SF_STORE_URI", store_uri)
    monkeypatch.delenv("SF_STORE_CONN_ID", raising=False)
    monkeypatch.setenv("SF_LEDGER_URL", ledger_url)
    for name, value in _env_file(env.secrets.fingerprints_env).items():
        monkeypatch.setenv(name, value)
    for conn_id, fields in env.connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def small_register(n: int, first_birth_year: int = 1980) -> pa.Table:
    """A register of ``n`` made-up persons, three to a household, for share and receive tests."""
    rows = {
        "person_id": [f"P{i:06d}" for i in range(n)],
        "household_id": [f"H{i // 3:06d}" for i in range(n)],
        "family_id": [f"H{i // 3:06d}" for i in range(n)],
        "given_name": [f"Given{i}" for i in range(n)],
        "family_name": [f"Family{i // 3}" for i in range(n)],
        "date_of_birth": [date(first_birth_year + i % 10, 1 + i % 12, 1 + i % 28) for i in range(n)],
        "sex": ["F" if i % 2 else "M" for i in range(n)],
        "address_line_1": [f"{i // 3} TEST STREET" for i in range(n)],
        "address_line_2": [None] * n,
        "town": ["LONDON"] * n,
        "postcode": ["W10 5AB"] * n,
        "uprn": [f"{100000000000 + i // 3}" for i in range(n)],
    }
    return pa.table(rows, schema=REGISTER_SCHEMA)


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="session")
def platform_env(
    sftp_server: LocalSftpServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformEnv]:
    state = tmp_path_factory.mktemp("platform-secrets")
    with secret_canary():
        generate_demo_secrets(state, ServerEndpoint.from_server_state(sftp_server.state_dir))
    layout = SecretsLayout(state)
    env = _env_file(layout.fingerprints_env)
    agreements = {a.id: a for a in load_agreements(env=env)}
    connections = json.loads(layout.connections_file.read_text())
    council = connections["sf_openpgp_council"]
    # The council's mail relay for the session: identification tells the lead practitioner by e-mail.
    sink = SmtpSink(tmp_path_factory.mktemp("platform-mail"))
    connections["sf_smtp"] = {**connections["sf_smtp"], "port": sink.port}
    try:
        with sink:
            yield PlatformEnv(
                secrets=layout,
                agreements=agreements,
                council_fingerprint=str(council["extra"]["fingerprint"]),
                council_passphrase=str(council["password"]),
                server=sftp_server,
                connections=connections,
            )
    finally:
        stop_gpg_agents(state)


def seed_identified(root: UPath, persons: int, seed: int, as_of: date) -> None:
    """The store as the cycle leaves it before the shares: a clean synthetic borough ingested, linked into
    the register and identified."""
    borough = generate_borough(persons, seed=seed, as_of=as_of, dirt=DirtConfig.clean())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    sources = load_sources().sources
    for spec in sources.values():
        ingest_source(root, spec)
    refresh_register(root, list(sources), tombstone_key=None)
    identify(root, list(sources))
