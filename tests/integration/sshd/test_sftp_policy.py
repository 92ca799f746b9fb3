"""The SSH algorithm policy and the stale-temporary age rule, against real SSH servers on 127.0.0.1.

An extra OpenSSH ``sshd`` offers only algorithms outside the policy: the client refuses it before any
authentication, so no file byte is sent. OpenSSH always offers strict key exchange, so the server that
does not is paramiko's own server (a real SSH implementation over TCP, with ``strict_kex=False``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from sf_demo.sftp_server import LocalSftpServer, authorize_key, ensure_ssh_keypair, local_user
from supporting_families.transport.sftp import (
    ALLOWED_KEX,
    NegotiationFailed,
    SftpEndpoint,
    check_connectivity,
    deliver,
    open_session,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("isolated_home")]

Snapshot = Callable[[Path], dict[str, int]]

#: Each is what a server outside the policy offers, as sshd_config lines.
WEAK = {
    "kex-dh-group14": ["KexAlgorithms diffie-hellman-group14-sha256"],
    "kex-dh-group-exchange": ["KexAlgorithms diffie-hellman-group-exchange-sha256"],
    "cipher-ctr-with-etm": ["Ciphers aes256-ctr,aes128-ctr", "MACs hmac-sha2-256-etm@openssh.com"],
    "mac-sha1": ["Ciphers aes256-ctr", "MACs hmac-sha1"],
    "mac-sha2-not-etm": ["Ciphers aes256-ctr", "MACs hmac-sha2-256,hmac-sha2-512"],
    "mac-md5": ["Ciphers aes128-ctr", "MACs hmac-md5,hmac-md5-96,hmac-sha1-96"],
}


class _WeakSshd(LocalSftpServer):
    """The project's sshd with extra lines appended to its config (sshd takes the first value it reads,
    and the project's config sets none of these)."""

    extra_lines: tuple[str, ...] = ()

    def _write_config(self, port: int) -> None:
        super()._write_config(port)
        with self.config_file.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(self.extra_lines) + "\n")


@pytest.fixture(scope="module")
def weak_sshds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[_WeakSshd, Path]]]:
    """One extra sshd per weak configuration, each with an ``inbox`` and an authorised client key."""
    servers: dict[str, tuple[_WeakSshd, Path]] = {}
    try:
        for name, lines in WEAK.items():
            base = tmp_path_factory.mktemp(f"weak-{name}")
            server = _WeakSshd(root=base / "root", state_dir=base / "state", folders=("inbox",), chroot=False)
            server.extra_lines = tuple(lines)
            server.start()
            key = base / "id_ed25519"
            authorize_key(server.authorized_keys_file, ensure_ssh_keypair(key, "weak-sshd-tests"))
            servers[name] = (server, key)
        yield servers
    finally:
        for server, _ in servers.values():
            server.stop()


def _endpoint(server: LocalSftpServer, key: Path) -> SftpEndpoint:
    return SftpEndpoint(
        server.host, server.port, local_user(), host_key=server.host_public_key, private_key_path=key
    )


def _payload(tmp_path: Path) -> tuple[Path, str]:
    source = tmp_path / "share.csv.gpg"
    source.write_bytes(os.urandom(256 * 1024))
    return source, hashlib.sha256(source.read_bytes()).hexdigest()


@pytest.mark.parametrize("weak", WEAK, ids=WEAK.keys())
def test_a_server_offering_only_weak_algorithms_is_refused_and_nothing_is_sent(
    weak_sshds: dict[str, tuple[_WeakSshd, Path]], tmp_path: Path, tree_snapshot: Snapshot, weak: str
) -> None:
    server, key = weak_sshds[weak]
    source, sha256 = _payload(tmp_path)
    log_before = server.log_file.stat().st_size if server.log_file.exists() else 0

    with pytest.raises(NegotiationFailed):
        deliver(_endpoint(server, key), source, "inbox", "share.csv.gpg", sha256=sha256, attempts=1)

    assert tree_snapshot(server.root) == {}, "no file byte reached the server"
    with server.log_file.open("rb") as log:
        log.seek(log_before)
        assert b"Accepted publickey" not in log.read(), "refused before authentication"


def test_the_connectivity_check_reports_the_negotiated_algorithms(
    sftp_server: LocalSftpServer, sftp_client_key: Path
) -> None:
    endpoint = SftpEndpoint(
        sftp_server.host,
        sftp_server.port,
        local_user(),
        host_key=sftp_server.host_public_key,
        private_key_path=sftp_client_key,
    )
    folder = sftp_server.remote_dirs[0]
    report = check_connectivity(endpoint, [folder])
    assert report.missing == ()
    algorithms = report.algorithms
    assert algorithms["kex"] in ALLOWED_KEX, "the key exchange is named (paramiko forgets it after kex)"
    assert algorithms["cipher"] in ("aes256-gcm@openssh.com", "aes128-gcm@openssh.com")
    assert algorithms["host_key"] == "ssh-ed25519"
    assert algorithms["strict_kex"] == "yes"


# -- strict key exchange: a real SSH server that does not offer it -----------------------------------------


class _RecordingServer(paramiko.ServerInterface):  # type: ignore[misc]
    def __init__(self) -> None:
        self.auth_attempts = 0
        self.channels = 0

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.auth_attempts += 1
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        self.channels += 1
        return paramiko.OPEN_SUCCEEDED


@pytest.fixture
def no_strict_kex_server(tmp_path: Path) -> Iterator[tuple[SftpEndpoint, _RecordingServer]]:
    host_key_file = tmp_path / "host_ed25519"
    ensure_ssh_keypair(host_key_file, "no-strict-kex")
    client_key = tmp_path / "client_ed25519"
    ensure_ssh_keypair(client_key, "client")
    host_key = paramiko.Ed25519Key.from_private_key_file(str(host_key_file))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    recorder = _RecordingServer()
    done = threading.Event()

    def serve() -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        transport = paramiko.Transport(sock, strict_kex=False)
        transport.add_server_key(host_key)
        try:
            transport.start_server(server=recorder)
            done.wait(20)
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    endpoint = SftpEndpoint(
        "127.0.0.1",
        listener.getsockname()[1],
        local_user(),
        host_key=f"ssh-ed25519 {host_key.get_base64()}",
        private_key_path=client_key,
    )
    try:
        yield endpoint, recorder
    finally:
        done.set()
        listener.close()
        thread.join(10)


def test_a_server_without_strict_key_exchange_is_refused_before_authentication(
    no_strict_kex_server: tuple[SftpEndpoint, _RecordingServer], tmp_path: Path
) -> None:
    endpoint, recorder = no_strict_kex_server
    source, sha256 = _payload(tmp_path)
    with pytest.raises(NegotiationFailed, match="strict key exchange"):
        deliver(endpoint, source, "inbox", "share.csv.gpg", sha256=sha256, attempts=1)
    time.sleep(0.2)
    assert recorder.auth_attempts == 0 and recorder.channels == 0, "nothing sent past the handshake"


# -- the deferrable sensor's asyncssh connection ---------------------------------------------------------


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def _trigger_event(
    airflow_connection: Any, server: LocalSftpServer, key: Path, folder: str
) -> dict[str, Any]:
    import airflow.settings  # noqa: F401  (puts the plugins folder on sys.path, as Airflow does)

    from sf_airflow.receive_sensor import PolicySFTPTrigger

    conn_id = airflow_connection(
        "sf_test_policy_trigger",
        conn_type="sftp",
        host=server.host,
        port=server.port,
        login=local_user(),
        extra={"key_file": str(key), "host_key": server.host_public_key, "no_host_key_check": False},
    )
    trigger = PolicySFTPTrigger(
        path=folder, file_pattern="*.csv.gpg", sftp_conn_id=conn_id, poke_interval=0.2
    )
    classpath, _ = trigger.serialize()
    assert classpath == "sf_airflow.receive_sensor.PolicySFTPTrigger"
    return asyncio.run(asyncio.wait_for(_first_event(trigger), timeout=30))


@pytest.mark.parametrize("weak", ["kex-dh-group14", "cipher-ctr-with-etm", "mac-sha1"])
def test_the_sensors_trigger_refuses_weak_algorithms(
    weak_sshds: dict[str, tuple[_WeakSshd, Path]], airflow_connection: Any, weak: str
) -> None:
    server, key = weak_sshds[weak]
    (server.local_dir("inbox") / "x.csv.gpg").write_bytes(b"x")
    event = _trigger_event(airflow_connection, server, key, "inbox")
    assert event["status"] == "error"


def test_the_sensors_trigger_connects_to_a_server_within_the_policy(
    sftp_server: LocalSftpServer, sftp_client_key: Path, airflow_connection: Any
) -> None:
    folder = sftp_server.remote_dirs[0]
    (sftp_server.local_dir(folder) / "policy-probe.csv.gpg").write_bytes(b"x")
    try:
        event = _trigger_event(airflow_connection, sftp_server, sftp_client_key, folder)
    finally:
        (sftp_server.local_dir(folder) / "policy-probe.csv.gpg").unlink()
    assert event["status"] == "success", event


def test_the_receive_sensor_defers_to_the_policy_trigger(
    sftp_server: LocalSftpServer, sftp_client_key: Path, airflow_connection: Any
) -> None:
    import airflow.settings  # noqa: F401  (puts the plugins folder on sys.path, as Airflow does)
    from airflow.sdk.exceptions import TaskDeferred

    from sf_airflow.receive_sensor import PinnedSFTPSensor, PolicySFTPTrigger

    conn_id = airflow_connection(
        "sf_test_policy_sensor",
        conn_type="sftp",
        host=sftp_server.host,
        port=sftp_server.port,
        login=local_user(),
        extra={"key_file": str(sftp_client_key), "host_key": sftp_server.host_public_key},
    )
    sensor = PinnedSFTPSensor(
        task_id="wait", path="dwp/outbox", file_pattern="*.gpg", sftp_conn_id=conn_id, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert isinstance(deferred.value.trigger, PolicySFTPTrigger)


# -- the stale-temporary age rule ------------------------------------------------------------------------


def test_another_attempts_fresh_temporary_is_left_alone_and_an_old_one_is_removed(
    sftp_server: LocalSftpServer, sftp_client_key: Path, tmp_path: Path
) -> None:
    from supporting_families.transport.sftp import STALE_TEMPORARY_SECONDS

    folder = "sftp-policy-tests/inbox"
    local = sftp_server.root / folder
    local.mkdir(mode=0o750, parents=True)
    try:
        endpoint = SftpEndpoint(
            sftp_server.host,
            sftp_server.port,
            local_user(),
            host_key=sftp_server.host_public_key,
            private_key_path=sftp_client_key,
        )
        source, sha256 = _payload(tmp_path)
        running = local / ".share.csv.gpg.0123456789abcdef.part"  # another attempt, still writing
        running.write_bytes(b"half of a file")
        crashed = local / ".share.csv.gpg.fedcba9876543210.part"  # an attempt that died long ago
        crashed.write_bytes(b"a quarter")
        old = time.time() - STALE_TEMPORARY_SECONDS - 60
        os.utime(crashed, (old, old))

        outcome = deliver(endpoint, source, folder, "share.csv.gpg", sha256=sha256, attempts=1)

        assert outcome.status == "delivered"
        assert running.exists(), "a temporary younger than the timeout may belong to a running attempt"
        assert not crashed.exists(), "older than the timeout: a crashed attempt's, removed"
        assert (local / "share.csv.gpg").read_bytes() == source.read_bytes()
    finally:
        import shutil

        shutil.rmtree(sftp_server.root / "sftp-policy-tests", ignore_errors=True)


def test_open_session_still_connects_within_the_policy(
    sftp_server: LocalSftpServer, sftp_client_key: Path
) -> None:
    endpoint = SftpEndpoint(
        sftp_server.host,
        sftp_server.port,
        local_user(),
        host_key=sftp_server.host_public_key,
        private_key_path=sftp_client_key,
    )
    with open_session(endpoint) as session:
        transport = session.client.get_transport()
        assert transport is not None and transport.agreed_on_strict_kex


def test_concurrent_triggers_in_one_event_loop_each_keep_the_policy(
    sftp_server: LocalSftpServer,
    sftp_client_key: Path,
    weak_sshds: dict[str, tuple[_WeakSshd, Path]],
    airflow_connection: Any,
) -> None:
    """A triggerer runs every partner's sensor in one event loop: several connecting at once must each
    get the algorithm policy, and none may fail for another's (an earlier version swapped
    ``asyncssh.connect`` per connection and failed with "multiple values for keyword argument
    'kex_algs'" under a real triggerer)."""
    import airflow.settings  # noqa: F401  (puts the plugins folder on sys.path, as Airflow does)

    from sf_airflow.receive_sensor import PolicySFTPTrigger

    weak, weak_key = weak_sshds["cipher-ctr-with-etm"]
    (weak.local_dir("inbox") / "y.csv.gpg").write_bytes(b"y")
    folder = sftp_server.remote_dirs[0]
    probe = sftp_server.local_dir(folder) / "concurrent-probe.csv.gpg"
    probe.write_bytes(b"x")

    def trigger(name: str, server: Any, key: Path, path: str) -> PolicySFTPTrigger:
        conn_id = airflow_connection(
            name,
            conn_type="sftp",
            host=server.host,
            port=server.port,
            login=local_user(),
            extra={"key_file": str(key), "host_key": server.host_public_key, "no_host_key_check": False},
        )
        return PolicySFTPTrigger(path=path, file_pattern="*.csv.gpg", sftp_conn_id=conn_id, poke_interval=0.2)

    triggers = [
        trigger("sf_test_concurrent_a", sftp_server, sftp_client_key, folder),
        trigger("sf_test_concurrent_weak", weak, weak_key, "inbox"),
        trigger("sf_test_concurrent_b", sftp_server, sftp_client_key, folder),
    ]

    async def all_events() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(_first_event(t) for t in triggers)))

    try:
        events = asyncio.run(asyncio.wait_for(all_events(), timeout=60))
    finally:
        probe.unlink()
    assert [e["status"] for e in events] == ["success", "error", "success"], events
