"""The demo secrets' pure parts, without gpg, ssh-keygen or sshd: what a connection pins and when set-up
refuses before writing anything. The real tools are in ``tests/integration/sshd/test_demo_secrets.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sf_demo.secrets import DemoSecretsError, SecretsLayout, generate_demo_secrets, sftp_connection
from sf_demo.sftp_server import LOOPBACK, SERVER_INFO, SftpServerInfo, local_user
from supporting_families.transport.sftp import SftpEndpoint


def _host_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode("ascii")


def _server_json(state_dir: Path, host_key: str, **overrides: object) -> Path:
    info = {
        "host": LOOPBACK,
        "port": 2222,
        "host_public_key": host_key,
        "host_public_key_file": str(state_dir / "ssh_host_ed25519_key.pub"),
        "authorized_keys": str(state_dir / "authorized_keys"),
        "root": str(state_dir / "root"),
        "chroot": False,
        "folders": ["dwp/inbox", "dwp/outbox"],
        "login": "council",
        **overrides,
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / SERVER_INFO).write_text(json.dumps(info))
    return state_dir


def test_the_server_state_gives_the_products_endpoint_for_a_client_key(tmp_path: Path) -> None:
    host_key = _host_key()
    server = SftpServerInfo.from_server_state(_server_json(tmp_path / "sftp", host_key))
    assert server == SftpServerInfo(
        port=2222,
        host_public_key=host_key,
        authorized_keys=tmp_path / "sftp" / "authorized_keys",
        host=LOOPBACK,
        login="council",
    )
    endpoint = server.endpoint(tmp_path / "client_ed25519")
    assert endpoint == SftpEndpoint(
        LOOPBACK, 2222, "council", host_key=host_key, private_key_path=tmp_path / "client_ed25519"
    )


def test_a_server_given_by_hand_logs_in_as_the_local_user_on_loopback(tmp_path: Path) -> None:
    server = SftpServerInfo(port=2222, host_public_key=_host_key(), authorized_keys=tmp_path / "ak")
    assert (server.host, server.login) == (LOOPBACK, local_user())


def test_the_connection_pins_exactly_what_the_endpoint_holds(tmp_path: Path) -> None:
    host_key = _host_key()
    endpoint = SftpEndpoint("127.0.0.1", 2222, "council", host_key=host_key, private_key_path=tmp_path / "k")
    connection = sftp_connection(endpoint, "Local partner SFTP server (demo) standing in for dwp")
    assert connection == {
        "conn_type": "sftp",
        "description": "Local partner SFTP server (demo) standing in for dwp",
        "host": "127.0.0.1",
        "port": 2222,
        "login": "council",
        "extra": {
            "key_file": str(tmp_path / "k"),
            "host_key": host_key,
            "no_host_key_check": False,
            "look_for_keys": False,
            "compress": False,
            "conn_timeout": 10,
        },
    }


def test_a_connection_never_carries_key_text(tmp_path: Path) -> None:
    endpoint = SftpEndpoint(
        "127.0.0.1", 2222, "council", host_key=_host_key(), private_key_text="-----BEGIN OPENSSH PRIVATE KEY"
    )
    with pytest.raises(DemoSecretsError, match="key file") as caught:
        sftp_connection(endpoint, "demo")
    assert "BEGIN" not in str(caught.value)


def test_a_host_key_that_is_no_key_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    server = SftpServerInfo(port=2222, host_public_key="ssh-ed25519 AAAA", authorized_keys=tmp_path / "ak")
    state = tmp_path / "secrets"
    with pytest.raises(DemoSecretsError, match="cannot be pinned"):
        generate_demo_secrets(state, server)
    assert not state.exists() and not (tmp_path / "ak").exists()
    assert not SecretsLayout(state).connections_file.exists()
