"""The demo secrets generator with the real ``gpg``, ``ssh-keygen`` and ``sshd``.

It must create every secret the data agreements name, under exactly the names they reference (connection
ids, fingerprint variables), keep them private (0600/0700), never replace one on a rerun, produce a
connections file Airflow reads as is, and never show a secret value in its summary or logs. A partner is
added by adding an agreement file; a literal fingerprint marks a real partner whose key is not generated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.sftp.hooks.sftp import SFTPHook
from airflow.secrets.local_filesystem import LocalFilesystemBackend

from sf_airflow.sftp import endpoint_from_fields
from sf_demo.secrets import (
    COUNCIL_FINGERPRINT_ENV,
    OPENPGP_COUNCIL_CONN_ID,
    RIGHTS_CONN_ID,
    SMTP_CONN_ID,
    STAFF_ID_KEY_CONN_ID,
    TOMBSTONE_CONN_ID,
    DemoSecretsError,
    DemoSpec,
    GnuPG,
    SecretsLayout,
    generate_demo_secrets,
    inbound_agencies,
    main,
    read_fingerprints_env,
    stop_gpg_agents,
    summarize,
)
from sf_demo.sftp_server import LocalSftpServer, SftpServerInfo
from supporting_families.config.agreements import Agreement, load_agreements
from tests.integration.conftest import (
    AGREEMENTS_DIR,
    NEW_PARTNER_AGREEMENT,
    NEW_PARTNER_FILE,
    MakeAgreementsDir,
)

pytestmark = pytest.mark.integration

DWP_KEY = "sf_pseudonym_dwp_benefits_matching"


def _placeholder(agreement: Agreement) -> str:
    """``SF_DWP_PGP_FINGERPRINT`` from the agreement's ``${SF_DWP_PGP_FINGERPRINT}``."""
    match = re.fullmatch(r"\$\{(\w+)\}", agreement.openpgp.partner_fingerprint)
    assert match, f"{agreement.id} pins a literal fingerprint"
    return match.group(1)


def _expected_connections(agreements: list[Agreement]) -> set[str]:
    """What the agreements reference, derived from them: a new agreement needs no edit here either."""
    return {
        OPENPGP_COUNCIL_CONN_ID,
        RIGHTS_CONN_ID,
        SMTP_CONN_ID,
        STAFF_ID_KEY_CONN_ID,
        TOMBSTONE_CONN_ID,
        RIGHTS_CONN_ID,
        TOMBSTONE_CONN_ID,
        SMTP_CONN_ID,
        *(a.sftp.conn_id for a in agreements),
        *(a.pseudonymisation.key_conn_id for a in agreements),
        *(f"{a.pseudonymisation.key_conn_id}_v{a.pseudonymisation.key_version}" for a in agreements),
        # The voluntary-sector agencies that send extracts (include/sources.yaml, inbound:).
        *AGENCY_CONN_IDS,
    }


AGENCY_CONN_IDS = {a.sftp_conn_id for a in inbound_agencies()}


def _agency_fingerprints(layout: SecretsLayout) -> dict[str, str]:
    """Each sending agency's signing key, by agency code, as set-up wrote it for sources.yaml."""
    env = read_fingerprints_env(layout.fingerprints_env)
    return {a.code: env[a.fingerprint_env_var] for a in inbound_agencies() if a.fingerprint_env_var}


@dataclass(frozen=True)
class Generated:
    layout: SecretsLayout
    server: SftpServerInfo
    summary: dict[str, Any]
    log_text: str


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def generated(sftp_server: LocalSftpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    state_dir = tmp_path_factory.mktemp("secrets") / "secrets"
    server = SftpServerInfo.from_server_state(sftp_server.state_dir)
    collect = _Collect()
    logger = logging.getLogger("supporting_families")
    logger.addHandler(collect)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        summary = generate_demo_secrets(state_dir, server)
    finally:
        logger.removeHandler(collect)
        logger.setLevel(old_level)
    try:
        yield Generated(SecretsLayout(state_dir), server, summary, "\n".join(collect.lines))
    finally:
        stop_gpg_agents(state_dir)


def _secret_values(layout: SecretsLayout) -> list[str]:
    """Every secret value in the state directory, to look for where it must not be."""
    values = [p.read_text().strip() for p in layout.hmac_dir.rglob("*.key")]
    values.append(layout.council_passphrase_file.read_text().strip())
    for key_file in _client_keys(layout):
        private_ssh = key_file.read_text().splitlines()
        values += [line for line in private_ssh if line and not line.startswith("-----")]
    return values


def _client_keys(layout: SecretsLayout) -> list[Path]:
    """The SFTP client private keys: one per partner when the server jails partners apart."""
    keys = [p for p in layout.sftp_client_key.parent.glob("sftp_client_*ed25519")]
    assert keys
    return keys


def _authorized_file(server: SftpServerInfo, login: str) -> Path:
    return server.partner_keys.get(login, server.authorized_keys)


def _digest_tree(layout: SecretsLayout) -> dict[str, str]:
    """Hashes of every key, passphrase and derived file (gpg's own trust bookkeeping aside)."""
    files = [
        *layout.hmac_dir.rglob("*.key"),
        layout.council_passphrase_file,
        *_client_keys(layout),
        layout.connections_file,
        layout.central_connections_file,
        *layout.state_dir.glob("partners/*/connections.json"),
        layout.fingerprints_env,
        *layout.public_keys_dir.glob("*.asc"),
        *(layout.gnupg_council / "private-keys-v1.d").glob("*.key"),
        *(layout.gnupg_partners / "private-keys-v1.d").glob("*.key"),
    ]
    return {str(p.relative_to(layout.state_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_every_demo_secret_is_created(generated: Generated, real_agreements: list[Agreement]) -> None:
    layout, summary = generated.layout, generated.summary
    assert set(summary["connections"]) == _expected_connections(real_agreements)
    for agreement in real_agreements:
        key_conn_id = agreement.pseudonymisation.key_conn_id
        key = layout.hmac_key_file(key_conn_id, agreement.pseudonymisation.key_version).read_text().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", key), "a 256-bit key in hex"
        partner = summary["partners"][agreement.partner.code]
        assert partner["openpgp_generated"]
        assert re.fullmatch(r"[0-9A-F]{40}", partner["openpgp_fingerprint"])
        assert partner["openpgp_valid_in_council_keyring"]
        assert Path(partner["public_key_file"]).read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert re.fullmatch(r"[0-9A-F]{40}", summary["openpgp_council"]["fingerprint"])
    assert summary["sftp_clients"].keys() == {a.sftp.conn_id for a in real_agreements} | AGENCY_CONN_IDS
    for client in summary["sftp_clients"].values():
        assert Path(client["key_file"]).exists()
        authorized = _authorized_file(generated.server, client["login"]).read_text()
        assert client["public_key"].split()[1] in authorized
    if generated.server.partner_keys:
        # One login and one key per partner, each authorised for its own login only.
        clients = summary["sftp_clients"]
        assert (
            len({c["login"] for c in clients.values()})
            == len({c["key_file"] for c in clients.values()})
            == 3 + len(AGENCY_CONN_IDS)
        )
        for client in clients.values():
            for login, keys in generated.server.partner_keys.items():
                if login != client["login"]:
                    assert client["public_key"].split()[1] not in keys.read_text()

    assert read_fingerprints_env(layout.fingerprints_env) == {
        COUNCIL_FINGERPRINT_ENV: summary["openpgp_council"]["fingerprint"],
        **{
            _placeholder(a): summary["partners"][a.partner.code]["openpgp_fingerprint"]
            for a in real_agreements
        },
        **{
            a.fingerprint_env_var: fpr
            for a in inbound_agencies()
            if a.fingerprint_env_var
            for fpr in [_agency_fingerprints(layout)[a.code]]
        },
    }


def test_every_name_the_real_agreements_reference_exists_and_resolves(
    generated: Generated, real_agreements: list[Agreement]
) -> None:
    layout, summary = generated.layout, generated.summary
    backend = LocalFilesystemBackend(connections_file_path=str(layout.connections_file))
    env = read_fingerprints_env(layout.fingerprints_env)
    for agreement in real_agreements:
        sftp = backend.get_connection(agreement.sftp.conn_id)
        assert sftp is not None and sftp.conn_type == "sftp", agreement.sftp.conn_id
        pseudo = agreement.pseudonymisation
        current = backend.get_connection(pseudo.key_conn_id)
        assert current is not None, pseudo.key_conn_id
        assert current.extra_dejson == {"version": pseudo.key_version, "algorithm": "HMAC-SHA256"}
        for version in (pseudo.key_version, *pseudo.previous_key_versions):
            pinned = backend.get_connection(f"{pseudo.key_conn_id}_v{version}")
            assert pinned is not None
            assert pinned.password == layout.hmac_key_file(pseudo.key_conn_id, version).read_text().strip()
        assert (
            current.password
            == layout.hmac_key_file(pseudo.key_conn_id, pseudo.key_version).read_text().strip()
        )
        assert _placeholder(agreement) in env

    # What scripts/env.sh exports is enough to load the agreements fully resolved, each pinning the key
    # generated for its partner, whose private half only the partner simulator holds.
    council, simulator = GnuPG(layout.gnupg_council), GnuPG(layout.gnupg_partners)
    partner_secret = {k.fingerprint for k in simulator.list_keys(secret=True)}
    resolved = load_agreements(env=env)
    assert [a.id for a in resolved] == [a.id for a in real_agreements]
    for agreement in resolved:
        fingerprint = agreement.openpgp.partner_fingerprint
        assert fingerprint == summary["partners"][agreement.partner.code]["openpgp_fingerprint"]
        assert fingerprint in partner_secret
        key = council.key(fingerprint)
        assert key is not None and key.can_encrypt and key.validity == "f"
    # Partners' keys are distinct: a file for one partner cannot be read by another.
    assert len({a.openpgp.partner_fingerprint for a in resolved}) == len({a.partner.code for a in resolved})


def test_partner_private_keys_live_only_in_the_simulator_keyring(generated: Generated) -> None:
    layout, summary = generated.layout, generated.summary
    council_secret = {k.fingerprint for k in GnuPG(layout.gnupg_council).list_keys(secret=True)}
    partner_secret = {k.fingerprint for k in GnuPG(layout.gnupg_partners).list_keys(secret=True)}
    partner_fprs = {p["openpgp_fingerprint"] for p in summary["partners"].values()}
    assert council_secret == {summary["openpgp_council"]["fingerprint"]}
    # The agencies' signing keys are the simulator's too (they sign the extracts the agencies send).
    assert partner_secret == partner_fprs | set(_agency_fingerprints(layout).values())
    # Their public halves are in the council keyring, which encrypts to them.
    assert partner_fprs <= {k.fingerprint for k in GnuPG(layout.gnupg_council).list_keys()}


def test_files_are_0600_and_directories_0700(generated: Generated) -> None:
    state = generated.layout.state_dir
    checked = 0
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink() or stat.S_ISSOCK(path.lstat().st_mode):
            continue  # gpg-agent's sockets
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{path.relative_to(state)} has mode {oct(mode)}"
        checked += 1
    assert checked > 20


def test_a_second_run_changes_nothing(generated: Generated) -> None:
    before = _digest_tree(generated.layout)
    again = generate_demo_secrets(generated.layout.state_dir, generated.server)
    assert again == generated.summary
    assert _digest_tree(generated.layout) == before
    for client in generated.summary["sftp_clients"].values():
        authorized = _authorized_file(generated.server, client["login"]).read_text()
        assert authorized.count(client["public_key"].split()[1]) == 1


def test_connections_file_is_read_by_airflows_local_filesystem_backend(
    generated: Generated, sftp_server: LocalSftpServer
) -> None:
    backend = LocalFilesystemBackend(connections_file_path=str(generated.layout.connections_file))

    sftp = backend.get_connection("sf_sftp_dwp")
    assert sftp is not None
    assert (sftp.conn_type, sftp.host, sftp.port) == ("sftp", "127.0.0.1", sftp_server.port)
    assert sftp.extra_dejson["host_key"] == sftp_server.host_public_key
    assert sftp.extra_dejson["host_key"].startswith("ssh-ed25519 AAAA")
    assert sftp.extra_dejson["no_host_key_check"] is False
    assert sftp.extra_dejson["key_file"] == generated.summary["sftp_clients"]["sf_sftp_dwp"]["key_file"]

    pseudonym = backend.get_connection(DWP_KEY)
    assert pseudonym is not None
    assert pseudonym.password == generated.layout.hmac_key_file(DWP_KEY, 1).read_text().strip()
    assert pseudonym.extra_dejson == {"version": 1, "algorithm": "HMAC-SHA256"}

    council = backend.get_connection("sf_openpgp_council")
    assert council is not None
    assert council.extra_dejson["fingerprint"] == generated.summary["openpgp_council"]["fingerprint"]
    assert council.extra_dejson["gnupg_home"] == str(generated.layout.gnupg_council)
    assert council.password == generated.layout.council_passphrase_file.read_text().strip()
    # Keyed by partner code, as the agreements spell it.
    assert council.extra_dejson["partner_fingerprints"] == {
        code: partner["openpgp_fingerprint"] for code, partner in generated.summary["partners"].items()
    } | _agency_fingerprints(generated.layout)
    assert "met-police" in council.extra_dejson["partner_fingerprints"]


def test_each_sftp_connection_is_the_endpoint_the_server_describes(generated: Generated) -> None:
    # What the DAGs build from the connection (sf_airflow.sftp) is the product's endpoint for the server
    # that set-up pinned, with the council's generated client key: one contract, written and read back.
    conns = json.loads(generated.layout.connections_file.read_text())
    for conn_id in generated.summary["sftp_connections"]:
        client = generated.summary["sftp_clients"][conn_id]
        expected = generated.server.endpoint(Path(client["key_file"]), client["login"])
        conn = conns[conn_id]
        fields = {"host": conn["host"], "port": conn["port"], "login": conn["login"], "extra": conn["extra"]}
        assert endpoint_from_fields(conn_id, **fields) == expected, conn_id


def _reaches_folders(conns_file: Path, agreements: list[Agreement], define: Callable[..., str]) -> None:
    """Each agreement's own generated SFTP connection lists its inbox and outbox on the server."""
    conns = json.loads(conns_file.read_text())
    for agreement in agreements:
        conn_id = define(agreement.sftp.conn_id, **conns[agreement.sftp.conn_id])
        hook = SFTPHook(ssh_conn_id=conn_id, conn_retry_attempts=1)
        try:
            assert hook.list_directory(agreement.sftp.remote_inbox) == [], agreement.id
            assert hook.list_directory(agreement.sftp.remote_outbox) == [], agreement.id
        finally:
            hook.close_conn()


@pytest.mark.usefixtures("isolated_home")
def test_every_generated_sftp_connection_reaches_its_agreements_folders(
    generated: Generated, real_agreements: list[Agreement], airflow_connection: Callable[..., str]
) -> None:
    _reaches_folders(generated.layout.connections_file, real_agreements, airflow_connection)


def test_council_signed_message_decrypts_and_verifies_in_the_partner_keyring(
    generated: Generated, tmp_path: Path
) -> None:
    layout, summary = generated.layout, generated.summary
    council_fpr = summary["openpgp_council"]["fingerprint"]
    plaintext = tmp_path / "message.csv"
    plaintext.write_bytes(b"ref,flag\nv1:abc,1\n")
    ciphertext = tmp_path / "message.csv.gpg"
    passphrase = layout.council_passphrase_file.read_text().strip()

    GnuPG(layout.gnupg_council).run(
        "--local-user", council_fpr,
        "--recipient", summary["partners"]["dwp"]["openpgp_fingerprint"],
        "--compress-algo", "none",
        "--output", str(ciphertext),
        "--sign", "--encrypt", str(plaintext),
        passphrase=passphrase,
    )  # fmt: skip

    decrypted = tmp_path / "decrypted.csv"
    result = GnuPG(layout.gnupg_partners).run(
        "--status-fd", "1", "--output", str(decrypted), "--decrypt", str(ciphertext)
    )
    status = result.stdout.decode()
    assert "[GNUPG:] DECRYPTION_OKAY" in status
    assert "[GNUPG:] GOODSIG" in status
    assert f"[GNUPG:] VALIDSIG {council_fpr}" in status
    assert "[GNUPG:] TRUST_FULLY" in status or "[GNUPG:] TRUST_ULTIMATE" in status
    assert decrypted.read_bytes() == plaintext.read_bytes()

    # Another partner's key cannot read it: the file is for DWP only.
    ons_only = tmp_path / "ons-keyring"
    shutil.copytree(layout.gnupg_partners, ons_only, ignore=shutil.ignore_patterns("S.*"))
    ons = GnuPG(ons_only)
    for partner in ("dwp", "met-police"):
        ons.run("--delete-secret-and-public-keys", summary["partners"][partner]["openpgp_fingerprint"])
    try:
        with pytest.raises(RuntimeError, match="decrypt"):
            ons.run("--output", str(tmp_path / "nope.csv"), "--decrypt", str(ciphertext))
    finally:
        ons.stop_agent()


def test_summary_and_logs_hold_no_secret_value(generated: Generated) -> None:
    text = json.dumps(generated.summary)
    secrets = _secret_values(generated.layout)
    assert len(secrets) >= 5
    for value in secrets:
        assert value not in text
        assert value not in generated.log_text
    assert "password" not in text
    assert summarize(generated.layout.state_dir) == generated.summary


def test_cli_runs_after_the_server_and_prints_the_same_summary(
    generated: Generated, sftp_server: LocalSftpServer
) -> None:
    command = [
        sys.executable, "-m", "sf_demo.secrets",
        "--state-dir", str(generated.layout.state_dir),
        "--sftp-state-dir", str(sftp_server.state_dir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == generated.summary
    for value in _secret_values(generated.layout):
        assert value not in result.stdout + result.stderr

    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "sf_demo.sftp_server",
            "status",
            "--state-dir",
            str(sftp_server.state_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["port"] == sftp_server.port


def test_a_new_partner_is_a_file_and_a_rotation_waits_for_the_agreement(
    generated: Generated,
    make_agreements_dir: MakeAgreementsDir,
    airflow_connection: Callable[..., str],
    isolated_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Work on a copy so the other tests keep their state (gpg-agent sockets are not copied).
    state = tmp_path / "secrets"
    shutil.copytree(generated.layout.state_dir, state, ignore=shutil.ignore_patterns("S.*"))
    layout = SecretsLayout(state)
    agreements_dir = make_agreements_dir(extra={NEW_PARTNER_FILE: NEW_PARTNER_AGREEMENT})
    agreements = load_agreements(agreements_dir, resolve=False)
    # Its own server, started the way set-up does, for the extended agreements.
    server = LocalSftpServer(
        root=tmp_path / "root", state_dir=tmp_path / "sftp", agreements_dir=agreements_dir, chroot=False
    ).start()
    try:
        # The CLI as set-up runs it, plus the two added options; a rotation of DWP's key rides along.
        argv = ["--state-dir", str(state), "--sftp-state-dir", str(server.state_dir)]
        argv += ["--agreements-dir", str(agreements_dir), "--rotate-hmac", "dwp-benefits-matching"]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)

        # The new partner's key, connections, folders and fingerprint variable exist, named by its file.
        assert set(summary["connections"]) == _expected_connections(agreements) | {f"{DWP_KEY}_v2"}
        assert {
            "sf_sftp_hmrc",
            "sf_pseudonym_hmrc_earnings_check",
            "sf_pseudonym_hmrc_earnings_check_v1",
        } <= set(summary["connections"])
        hmrc = summary["partners"]["hmrc"]
        assert hmrc["openpgp_generated"] and hmrc["openpgp_valid_in_council_keyring"]
        env = read_fingerprints_env(layout.fingerprints_env)
        assert env["SF_HMRC_PGP_FINGERPRINT"] == hmrc["openpgp_fingerprint"]
        assert {a.openpgp.partner_fingerprint for a in load_agreements(agreements_dir, env=env)} == {
            p["openpgp_fingerprint"] for p in summary["partners"].values()
        }
        _reaches_folders(layout.connections_file, agreements, airflow_connection)
        # Nothing that existed was regenerated.
        for code, partner in generated.summary["partners"].items():
            assert summary["partners"][code]["openpgp_fingerprint"] == partner["openpgp_fingerprint"]

        # The rotated key exists, but the agreement still says key_version 1, so the current key is v1:
        # references carry the agreement's version, and a key that disagreed would never resolve them.
        conns = json.loads(layout.connections_file.read_text())
        v1 = generated.layout.hmac_key_file(DWP_KEY, 1).read_text().strip()
        assert conns[DWP_KEY]["password"] == conns[f"{DWP_KEY}_v1"]["password"] == v1
        assert conns[f"{DWP_KEY}_v2"]["extra"] == {"version": 2, "algorithm": "HMAC-SHA256"}
        assert conns[f"{DWP_KEY}_v2"]["password"] != v1

        # The agreement adopts v2 (and keeps v1 for returns in flight): now v2 is current, v1 still resolves.
        (agreements_dir / "dwp-benefits-matching.yaml").write_text(
            (agreements_dir / "dwp-benefits-matching.yaml")
            .read_text()
            .replace("  key_version: 1\n", "  key_version: 2\n  previous_key_versions: [1]\n"),
        )
        summary = generate_demo_secrets(
            state, SftpServerInfo.from_server_state(server.state_dir), None, agreements_dir=agreements_dir
        )
        conns = json.loads(layout.connections_file.read_text())
        assert conns[DWP_KEY]["extra"] == {"version": 2, "algorithm": "HMAC-SHA256"}
        assert conns[DWP_KEY]["password"] == conns[f"{DWP_KEY}_v2"]["password"]
        assert conns[f"{DWP_KEY}_v1"]["password"] == v1
        assert summary["agreements"]["dwp-benefits-matching"]["pseudonym_versions_missing"] == []
    finally:
        server.stop()
        stop_gpg_agents(state)
    assert os.stat(layout.hmac_key_file(DWP_KEY, 2)).st_mode & 0o077 == 0


def test_shared_connections_and_real_partner_keys(
    sftp_server: LocalSftpServer, make_agreements_dir: MakeAgreementsDir, tmp_path: Path
) -> None:
    real_ons = "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"
    second_dwp = (
        (AGREEMENTS_DIR / "dwp-benefits-matching.yaml")
        .read_text()
        .replace("id: dwp-benefits-matching", "id: dwp-second-share")
        .replace("sf_pseudonym_dwp_benefits_matching", "sf_pseudonym_dwp_second_share")
        .replace("dwp/inbox", "dwp/second/inbox")
        .replace("dwp/outbox", "dwp/second/outbox")
    )
    agreements_dir = make_agreements_dir(
        extra={"dwp-second-share.yaml": second_dwp},
        edits={"ons-evaluation.yaml": [('"${SF_ONS_PGP_FINGERPRINT}"', f'"{real_ons}"')]},
    )
    spec = DemoSpec.load(agreements_dir)
    # Two DWP agreements, one DWP server: one connection, serving both.
    assert list(spec.sftp_connections()) == ["sf_sftp_dwp", "sf_sftp_met_police", "sf_sftp_ons"]
    assert [r.id for r in spec.sftp_connections()["sf_sftp_dwp"]] == [
        "dwp-benefits-matching",
        "dwp-second-share",
    ]
    assert spec.generated_partners() == ("dwp", "met-police")

    state = tmp_path / "secrets"
    server = SftpServerInfo.from_server_state(sftp_server.state_dir)
    try:
        summary = generate_demo_secrets(state, server, agreements_dir=agreements_dir)
        layout = SecretsLayout(state)
        conns = json.loads(layout.connections_file.read_text())
        assert [c for c in conns if c.startswith("sf_sftp_") and c not in AGENCY_CONN_IDS] == [
            "sf_sftp_dwp",
            "sf_sftp_met_police",
            "sf_sftp_ons",
        ]
        assert {"sf_pseudonym_dwp_second_share", "sf_pseudonym_dwp_second_share_v1"} <= set(conns)
        assert conns["sf_pseudonym_dwp_second_share"]["password"] != conns[DWP_KEY]["password"]

        # ONS pins a literal fingerprint: a real partner, so no key is generated and the summary says so.
        ons = summary["partners"]["ons"]
        assert not ons["openpgp_generated"]
        assert ons["openpgp_fingerprint"] == ons["pinned_fingerprints"][0] == real_ons.replace(" ", "")
        assert "real partner key" in ons["note"]
        assert not ons["openpgp_valid_in_council_keyring"]
        assert summary["agreements"]["ons-evaluation"]["openpgp_env_var"] is None
        assert not layout.public_key_file("ons").exists()
        # DWP's and the police's generated keys, and each agency's signing key.
        assert len(GnuPG(layout.gnupg_partners).list_keys(secret=True)) == 2 + len(AGENCY_CONN_IDS)
        env = read_fingerprints_env(layout.fingerprints_env)
        assert set(env) == {
            COUNCIL_FINGERPRINT_ENV,
            "SF_DWP_PGP_FINGERPRINT",
            "SF_MET_POLICE_PGP_FINGERPRINT",
            *(a.fingerprint_env_var for a in inbound_agencies() if a.fingerprint_env_var),
        }
        assert "ons" not in conns[OPENPGP_COUNCIL_CONN_ID]["extra"]["partner_fingerprints"]
        resolved = {a.id: a.openpgp.partner_fingerprint for a in load_agreements(agreements_dir, env=env)}
        assert (
            resolved["dwp-second-share"] == resolved["dwp-benefits-matching"] == env["SF_DWP_PGP_FINGERPRINT"]
        )
        assert resolved["ons-evaluation"] == real_ons.replace(" ", "")
    finally:
        stop_gpg_agents(state)


def test_names_that_would_clash_are_refused_before_anything_is_written(
    make_agreements_dir: MakeAgreementsDir, tmp_path: Path
) -> None:
    # An SFTP connection id equal to a pseudonym key's would make one connection replace the other.
    agreements_dir = make_agreements_dir(
        edits={"ons-evaluation.yaml": [("conn_id: sf_sftp_ons", f"conn_id: {DWP_KEY}")]}
    )
    with pytest.raises(DemoSecretsError, match="both an SFTP connection and a key"):
        DemoSpec.load(agreements_dir)
    # One fingerprint variable for two partners would encrypt one partner's files to the other's key.
    agreements_dir = make_agreements_dir(
        "shared-variable",
        edits={"ons-evaluation.yaml": [("SF_ONS_PGP_FINGERPRINT", "SF_DWP_PGP_FINGERPRINT")]},
    )
    server = SftpServerInfo(port=1, host_public_key="ssh-ed25519 AAAA", authorized_keys=tmp_path / "ak")
    with pytest.raises(DemoSecretsError, match="SF_DWP_PGP_FINGERPRINT"):
        generate_demo_secrets(tmp_path / "secrets", server, agreements_dir=agreements_dir)
    assert not (tmp_path / "secrets").exists()
