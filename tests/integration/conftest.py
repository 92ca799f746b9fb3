"""Integration fixtures: a real OpenSSH ``sshd`` on 127.0.0.1 and Airflow connections from the environment.

The server is the project's own :class:`LocalSftpServer`, serving the folders the project's agreements
name, so the tests exercise exactly what the demo runs. Connections are given as ``AIRFLOW_CONN_<ID>``
JSON, which Airflow resolves before its metadata database, so these tests need no migrated database.

``make_agreements_dir`` copies the project's agreements into a temporary directory, optionally edited and
with extra files; ``NEW_PARTNER_AGREEMENT`` is such an extra file, a partner the code has never heard of.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sf_demo.sftp_server import (
    LocalSftpServer,
    authorize_key,
    chroot_problems,
    ensure_ssh_keypair,
    local_user,
)
from supporting_families.config import Agreement, load_agreements

REPO = Path(__file__).resolve().parents[2]
# sshd's ChrootDirectory rejects any path with a non-root or group/world-writable component, and pytest's
# tmp directories live under /tmp (mode 1777). As root we therefore put the SFTP root under the
# git-ignored var/ of the repository, or under /run when the checkout's parents are not root-owned.
CHROOT_BASES = (REPO / "var" / "test-sftp", Path("/run/supporting-families-test"))

AGREEMENTS_DIR = REPO / "include" / "agreements"

DefineConnection = Callable[..., str]
MakeAgreementsDir = Callable[..., Path]

#: A fourth partner, as a new agreement file: no Python names it anywhere, so whatever set-up creates for
#: it (key, connection, folders, fingerprint variable) can only have come from this text. Its folders are
#: nested one level deeper than the others' to show any relative path works.
NEW_PARTNER_FILE = "hmrc-earnings-check.yaml"
NEW_PARTNER_AGREEMENT = """\
# Test fixture: a partner added by adding a file.
id: hmrc-earnings-check
title: HMRC earnings check for Supporting Families (test fixture)
version: 1
partner:
  name: HM Revenue and Customs
  code: hmrc
  contact:
    team: HMRC Local Authority Data Sharing
    email: la-data-sharing@hmrc.example
purpose: >-
  The purpose of this test fixture is to show that a partner is added by adding an agreement file.
legal_gateways:
  - Data Protection Act 2018
  - UK GDPR Article 6(1)(e)
  - Localism Act 2011 s.1
  - Local Government Act 1972 s.111
cohort: meets_any_criterion
fields: [person_ref, address_line_1, address_line_2, town, postcode]
pseudonymisation:
  algorithm: hmac-sha256
  key_conn_id: sf_pseudonym_hmrc_earnings_check
  key_version: 1
schedule:
  cron: "0 6 3 * *"
  timezone: Europe/London
sftp:
  conn_id: sf_sftp_hmrc
  remote_inbox: hmrc/supporting-families/inbox
  remote_outbox: hmrc/supporting-families/outbox
openpgp:
  partner_fingerprint: "${SF_HMRC_PGP_FINGERPRINT}"
returns:
  file_pattern: hmrc-return-*.csv.gpg
  format: csv
  max_size_mib: 16
  deadline_days: 20
  columns:
    - name: person_ref
      type: string
    - name: match_status
      type: string
      allowed: [matched, not_found]
    - name: in_work
      type: boolean
      nullable: true
  reference:
    column: person_ref
    refers_to: person_ref
  status:
    column: match_status
    matched: [matched]
    rejected: [not_found]
retention:
  days:
    deliveries: 365
    references: 365
    returns: 365
    manifests: 365
"""


def _sftp_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path | None]:
    """A directory sshd accepts as the SFTP root, and what to delete afterwards (None: pytest does)."""
    if os.geteuid() != 0:
        return tmp_path_factory.mktemp("sftp-root"), None
    reasons: list[str] = []
    for base in CHROOT_BASES:
        try:
            base.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            reasons.append(f"{base}: {exc}")
            continue
        problems = chroot_problems(base)
        if not problems:
            root = Path(tempfile.mkdtemp(prefix="sftp-root-", dir=base))
            return root, root
        reasons.append("; ".join(problems))
    pytest.fail("no directory is fit to be sshd's ChrootDirectory: " + " | ".join(reasons))


def write_agreements_dir(
    directory: Path,
    extra: Mapping[str, str] | None = None,
    edits: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> Path:
    """The project's agreements copied into ``directory``, each ``edits[file]`` (old, new) text replacement
    applied (exactly once, so a stale edit fails loudly), plus the ``extra`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in sorted(AGREEMENTS_DIR.glob("*.yaml")):
        text = source.read_text(encoding="utf-8")
        for old, new in (edits or {}).get(source.name, ()):
            assert text.count(old) == 1, f"{source.name}: {old!r} occurs {text.count(old)} times"
            text = text.replace(old, new)
        (directory / source.name).write_text(text, encoding="utf-8")
    unknown = set(edits or {}) - {p.name for p in AGREEMENTS_DIR.glob("*.yaml")}
    assert not unknown, f"edits for files that do not exist: {sorted(unknown)}"
    for name, text in (extra or {}).items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def make_agreements_dir(tmp_path: Path) -> MakeAgreementsDir:
    """``make(name, extra={file: text}, edits={file: [(old, new)]})``: a test's own agreements directory."""

    def make(
        name: str = "agreements",
        extra: Mapping[str, str] | None = None,
        edits: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> Path:
        return write_agreements_dir(tmp_path / name, extra, edits)

    return make


@pytest.fixture(scope="session")
def real_agreements() -> list[Agreement]:
    """The agreements set-up reads by default (placeholders unresolved), which the defaults must match."""
    return load_agreements(resolve=False)


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSftpServer]:
    """The project's partner SFTP server on a free loopback port, stopped at the end of the session.

    Its folders are the defaults, i.e. those of the project's agreements, as in the demo.
    """
    root, cleanup = _sftp_root(tmp_path_factory)
    server = LocalSftpServer(root=root, state_dir=tmp_path_factory.mktemp("sftp-state"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)


@pytest.fixture(scope="session")
def sftp_client_key(sftp_server: LocalSftpServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated ed25519 client key, authorised on ``sftp_server``; the private key's path."""
    key = tmp_path_factory.mktemp("sftp-client") / "id_ed25519"
    authorize_key(sftp_server.authorized_keys_file, ensure_ssh_keypair(key, "integration-tests"))
    return key


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$HOME``: no ``~/.ssh/known_hosts`` or keys of the machine can make a test pass."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def airflow_connection(monkeypatch: pytest.MonkeyPatch) -> DefineConnection:
    """``define(conn_id, conn_type=..., host=..., extra={...})`` sets ``AIRFLOW_CONN_<ID>`` for one test."""

    def define(conn_id: str, **fields: Any) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
        return conn_id

    return define


@pytest.fixture
def sftp_conn_fields(sftp_server: LocalSftpServer, sftp_client_key: Path) -> Callable[..., dict[str, Any]]:
    """``fields(host_key, **extra)``: an SFTP connection to the server; ``host_key=None`` pins nothing."""

    def fields(host_key: str | None, **extra: Any) -> dict[str, Any]:
        extras: dict[str, Any] = {
            "key_file": str(sftp_client_key),
            "no_host_key_check": False,
            "look_for_keys": False,
            "conn_timeout": 10,
            **extra,
        }
        if host_key is not None:
            extras["host_key"] = host_key
        return {
            "conn_type": "sftp",
            "host": sftp_server.host,
            "port": sftp_server.port,
            "login": local_user(),
            "extra": extras,
        }

    return fields


@pytest.fixture
def pinned_sftp_conn(
    sftp_server: LocalSftpServer,
    sftp_conn_fields: Callable[..., dict[str, Any]],
    airflow_connection: DefineConnection,
) -> str:
    """An SFTP connection id that pins the server's real host key."""
    return airflow_connection("sftp_pinned", **sftp_conn_fields(sftp_server.host_public_key))


@pytest.fixture
def tree_snapshot() -> Callable[[Path], dict[str, int]]:
    """``snapshot(root)``: every file under ``root`` with its size, to show a refused client wrote nothing."""

    def snapshot(root: Path) -> dict[str, int]:
        return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}

    return snapshot
