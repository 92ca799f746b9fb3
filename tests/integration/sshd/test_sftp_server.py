"""The local partner SFTP server against a real ``sshd``, driven through Airflow's own ``SFTPHook``.

What a partner server must guarantee before any delivery code can claim to be safe: the pinned host key is
the only one accepted, nothing is written when it does not match, clients get SFTP and nothing else, they
cannot see outside the SFTP root, and the server is reachable from this machine only. And the folders it
provides are the agreements': every ``remote_inbox`` and ``remote_outbox``, an added file's included.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest
from airflow.providers.sftp.hooks.sftp import SFTPHook

from sf_demo.sftp_server import (
    LocalSftpServer,
    SftpServerError,
    SftpServerInfo,
    agreement_folders,
    authorize_key,
    chroot_problems,
    ensure_ssh_keypair,
    inbound_folders,
    local_user,
    port_accepts,
    port_is_free,
    read_public_key,
)
from supporting_families.config.agreements import Agreement, load_agreements
from supporting_families.transport.sftp import open_session
from tests.integration.conftest import NEW_PARTNER_AGREEMENT, NEW_PARTNER_FILE, REPO, MakeAgreementsDir

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("isolated_home")]

Fields = Callable[..., dict[str, Any]]
Snapshot = Callable[[Path], dict[str, int]]


def _hook(conn_id: str) -> SFTPHook:
    # One attempt: a refused host key is permanent, and the hook's default retries only cost seconds here.
    return SFTPHook(ssh_conn_id=conn_id, conn_retry_attempts=1)


def _dwp(agreements: list[Agreement]) -> Agreement:
    return next(a for a in agreements if a.id == "dwp-benefits-matching")


def _payload(tmp_path: Path, size: int = 300_000) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(size))
    return path


def test_round_trip_through_sftp_hook_with_pinned_host_key(
    sftp_server: LocalSftpServer, pinned_sftp_conn: str, real_agreements: list[Agreement], tmp_path: Path
) -> None:
    upload = _payload(tmp_path)
    inbox = _dwp(real_agreements).sftp.remote_inbox
    remote = f"{inbox}/round-trip.bin"
    hook = _hook(pinned_sftp_conn)
    try:
        hook.store_file(remote, str(upload))
        assert "round-trip.bin" in (hook.list_directory(inbox) or [])
        download = tmp_path / "download.bin"
        hook.retrieve_file(remote, str(download))

        sent = upload.read_bytes()
        assert download.read_bytes() == sent
        assert hashlib.sha256(download.read_bytes()).hexdigest() == hashlib.sha256(sent).hexdigest()
        # And the bytes really sit in the partner's inbox on the server side.
        on_server = sftp_server.local_dir(inbox) / "round-trip.bin"
        assert hashlib.sha256(on_server.read_bytes()).hexdigest() == hashlib.sha256(sent).hexdigest()
    finally:
        hook.delete_file(remote)
        hook.close_conn()


def test_every_agreement_has_its_inbox_and_outbox_by_default(
    sftp_server: LocalSftpServer, pinned_sftp_conn: str, real_agreements: list[Agreement]
) -> None:
    # The session server was started with no folder list: the agreements are the default.
    # ...and every voluntary-sector agency's outbox (include/sources.yaml, inbound:).
    assert sftp_server.remote_dirs == (*agreement_folders(real_agreements), *inbound_folders())
    assert "met-police/inbox" in sftp_server.remote_dirs  # a code with a hyphen, as the agreement spells it
    hook = _hook(pinned_sftp_conn)
    try:
        for agreement in real_agreements:
            assert hook.isdir(agreement.sftp.remote_inbox), agreement.id
            assert hook.isdir(agreement.sftp.remote_outbox), agreement.id
            assert hook.list_directory(agreement.sftp.remote_inbox) == []
    finally:
        hook.close_conn()


def test_an_added_agreement_file_gets_its_folders_at_the_next_start(
    make_agreements_dir: MakeAgreementsDir, tmp_path: Path
) -> None:
    agreements_dir = make_agreements_dir()
    server = LocalSftpServer(
        root=tmp_path / "root", state_dir=tmp_path / "state", agreements_dir=agreements_dir, chroot=False
    )
    server.start()
    try:
        pid = server.status()["pid"]
        new_inbox = server.root / "hmrc" / "supporting-families" / "inbox"
        assert not new_inbox.exists()

        # Adding a partner is adding a file: the running server gets its folders on the next start.
        (agreements_dir / NEW_PARTNER_FILE).write_text(NEW_PARTNER_AGREEMENT, encoding="utf-8")
        again = LocalSftpServer(
            root=server.root, state_dir=server.state_dir, agreements_dir=agreements_dir, chroot=False
        ).start()
        assert again.status()["pid"] == pid, "the running sshd was kept"
        assert again.remote_dirs == (
            *agreement_folders(load_agreements(agreements_dir, resolve=False)),
            *inbound_folders(),
        )
        assert {"hmrc/supporting-families/inbox", "hmrc/supporting-families/outbox"} <= set(again.remote_dirs)
        for path in (new_inbox, new_inbox.parent, new_inbox.parent.parent, new_inbox.with_name("outbox")):
            assert path.is_dir()
            assert stat.S_IMODE(path.stat().st_mode) == 0o750, path
        # server.json records them, for status and stop.
        assert json.loads(again.info_file.read_text())["folders"] == list(again.remote_dirs)
    finally:
        server.stop()


def test_folders_that_would_leave_the_sftp_root_are_refused(tmp_path: Path) -> None:
    for folder in ("../etc", "/etc", "dwp//inbox", "dwp/./inbox", "dwp\\inbox", ""):
        with pytest.raises(ValueError, match="remote folder"):
            LocalSftpServer(root=tmp_path / "r", state_dir=tmp_path / "s", folders=[folder])
    server = LocalSftpServer(root=tmp_path / "r", state_dir=tmp_path / "s", folders=["a/inbox", "a/inbox"])
    assert server.remote_dirs == ("a/inbox",)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sf_demo.sftp_server", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def test_cli_start_creates_the_agreements_folders_and_status_reports_them(
    real_agreements: list[Agreement], tmp_path: Path
) -> None:
    state, root = str(tmp_path / "state"), str(tmp_path / "root")
    # The set-up script's exact invocation (plus --no-chroot: pytest's tmp dir cannot be a chroot).
    started = _cli("start", "--state-dir", state, "--root", root, "--no-chroot")
    try:
        assert started.returncode == 0, started.stderr
        expected = [*agreement_folders(real_agreements), *inbound_folders()]
        assert json.loads(started.stdout)["folders"] == expected
        for folder in expected:
            assert (Path(root) / folder).is_dir()

        status = _cli("status", "--state-dir", state)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["folders"] == expected

        legacy = _cli("start", "--state-dir", state, "--partners", "hmrc", "--no-chroot")
        assert legacy.returncode == 0, legacy.stderr
        assert json.loads(legacy.stdout)["folders"] == ["hmrc/inbox", "hmrc/outbox"]
        assert (Path(root) / "hmrc" / "outbox").is_dir()
    finally:
        stopped = _cli("stop", "--state-dir", state)
    assert stopped.returncode == 0, stopped.stderr
    assert _cli("status", "--state-dir", state).returncode == 3


def test_cli_start_refuses_invalid_agreements_naming_file_and_key(tmp_path: Path) -> None:
    invalid = REPO / "tests" / "fixtures" / "agreements" / "invalid"
    result = _cli(
        "start",
        "--state-dir",
        str(tmp_path / "s"),
        "--root",
        str(tmp_path / "r"),
        "--agreements-dir",
        str(invalid),
    )
    assert result.returncode == 1
    assert "sftp-path-traversal.yaml: sftp.remote_inbox:" in result.stderr
    assert not (tmp_path / "s" / "sshd.pid").exists()


def test_unknown_host_key_is_refused_and_nothing_is_written(
    sftp_server: LocalSftpServer,
    sftp_conn_fields: Fields,
    airflow_connection: Callable[..., str],
    tree_snapshot: Snapshot,
    tmp_path: Path,
) -> None:
    # No host_key, no known_hosts (isolated $HOME), host-key checking on: the host is unknown.
    conn_id = airflow_connection("sftp_unknown", **sftp_conn_fields(None))
    before = tree_snapshot(sftp_server.root)

    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _hook(conn_id).store_file(f"{sftp_server.remote_dirs[0]}/unknown-host.bin", str(_payload(tmp_path)))

    assert tree_snapshot(sftp_server.root) == before


def test_changed_host_key_is_refused_with_zero_bytes_written(
    sftp_server: LocalSftpServer,
    sftp_conn_fields: Fields,
    airflow_connection: Callable[..., str],
    tree_snapshot: Snapshot,
    tmp_path: Path,
) -> None:
    # A valid ed25519 key, just not the server's: what a pinned client sees when a server is replaced.
    other_key = ensure_ssh_keypair(tmp_path / "impostor_host_key", "impostor")
    assert other_key != sftp_server.host_public_key
    conn_id = airflow_connection("sftp_changed", **sftp_conn_fields(other_key))
    before = tree_snapshot(sftp_server.root)

    with pytest.raises(paramiko.BadHostKeyException):
        _hook(conn_id).store_file(f"{sftp_server.remote_dirs[0]}/changed-host.bin", str(_payload(tmp_path)))

    after = tree_snapshot(sftp_server.root)
    assert after == before
    assert sum(after.values()) - sum(before.values()) == 0


def _ssh_client(server: LocalSftpServer, key_file: Path) -> paramiko.SSHClient:
    """A plain paramiko client that pins the server's host key, for requests SFTPHook never makes."""
    key_type, blob = server.host_public_key.split()
    client = paramiko.SSHClient()
    client.get_host_keys().add(
        f"[{server.host}]:{server.port}", key_type, paramiko.Ed25519Key(data=base64.b64decode(blob))
    )
    client.connect(
        server.host,
        port=server.port,
        username=local_user(),
        key_filename=str(key_file),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def _read_channel(channel: paramiko.Channel, seconds: float = 2.0) -> bytes:
    channel.settimeout(0.2)
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not channel.closed:
        try:
            chunk = channel.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        out += chunk
    return out


def test_exec_and_shell_requests_get_no_shell(sftp_server: LocalSftpServer, sftp_client_key: Path) -> None:
    client = _ssh_client(sftp_server, sftp_client_key)
    try:
        transport = client.get_transport()
        assert transport is not None

        exec_channel = transport.open_session()
        exec_channel.exec_command("echo exec-marker-5a1; cat /etc/hostname")
        output = _read_channel(exec_channel)
        assert b"exec-marker-5a1" not in output
        assert b"sftp connections only" in output or output == b""

        pty_channel = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            pty_channel.get_pty()  # PermitTTY no

        shell_channel = transport.open_session()
        shell_channel.invoke_shell()
        # The server may already have closed the channel: no shell either way.
        with contextlib.suppress(OSError):
            shell_channel.sendall(b"echo shell-marker-5a1\n")
        assert b"shell-marker-5a1" not in _read_channel(shell_channel)
    finally:
        client.close()


def test_clients_cannot_see_outside_the_sftp_root(
    sftp_server: LocalSftpServer, pinned_sftp_conn: str
) -> None:
    if not sftp_server.uses_chroot:
        pytest.fail("sshd chroots only when started as root: run the tests as root, as CI does")
    # "/" is the SFTP root, whose entries are the first segments of the agreements' folders.
    top_level = sorted({folder.split("/")[0] for folder in sftp_server.remote_dirs})
    hook = _hook(pinned_sftp_conn)
    with hook.get_managed_conn() as sftp:
        assert sorted(sftp.listdir("/")) == top_level
        assert sorted(sftp.listdir("../../..")) == top_level
        with pytest.raises(FileNotFoundError):
            sftp.listdir("/etc")
        with pytest.raises(FileNotFoundError):
            sftp.stat("/etc/passwd")


def test_unjailed_sessions_start_in_the_sftp_root(sftp_client_key: Path, tmp_path: Path) -> None:
    # Without a chroot (a non-root demo) the relative agreement paths only work if the session starts in
    # the SFTP root; a quoted `internal-sftp -d` once left it in the login's home directory instead.
    server = LocalSftpServer(root=tmp_path / "root", state_dir=tmp_path / "state", chroot=False).start()
    try:
        pub = sftp_client_key.with_name(sftp_client_key.name + ".pub")
        authorize_key(server.authorized_keys_file, read_public_key(pub))
        client = _ssh_client(server, sftp_client_key)
        try:
            sftp = client.open_sftp()
            assert sftp.normalize(".") == str(server.root)
            assert sorted(sftp.listdir(server.remote_dirs[0])) == []
        finally:
            client.close()
    finally:
        server.stop()


def _listening_addresses(port: int) -> list[str]:
    """Local addresses with a TCP listener on ``port``, read from the kernel's socket tables."""
    found: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A is TCP_LISTEN
                found.append(address)
    return found


def _non_loopback_address() -> str | None:
    """This machine's outward address, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed on the internet
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_server_listens_on_loopback_only(sftp_server: LocalSftpServer) -> None:
    # 0100007F is 127.0.0.1 in /proc's little-endian hex.
    assert _listening_addresses(sftp_server.port) == ["0100007F"]
    outward = _non_loopback_address()
    if outward is not None:
        assert not port_accepts(sftp_server.port, outward)


def test_server_json_gives_an_endpoint_the_product_client_reaches(
    sftp_server: LocalSftpServer, sftp_client_key: Path
) -> None:
    # What set-up pins in the connections is read back from server.json, not from the running object.
    info = SftpServerInfo.from_server_state(sftp_server.state_dir)
    assert (info.host, info.port, info.host_public_key) == (
        sftp_server.host,
        sftp_server.port,
        sftp_server.host_public_key,
    )
    assert info.authorized_keys == sftp_server.authorized_keys_file
    with open_session(info.endpoint(sftp_client_key)) as session:
        # A partner's jail holds the link that keeps "dwp/inbox" valid inside it (sf_demo.sftp_server).
        jail_link = {"dwp"} if sftp_server.jails else set()
        assert set(session.sftp.listdir("dwp")) == {"inbox", "outbox"} | jail_link


def test_start_is_idempotent(sftp_server: LocalSftpServer) -> None:
    pid = sftp_server.status()["pid"]
    port = sftp_server.port
    sftp_server.start()
    assert sftp_server.is_running()
    assert (sftp_server.port, sftp_server.status()["pid"]) == (port, pid)


def test_stop_frees_the_port_and_a_stale_pid_file_is_handled(tmp_path: Path) -> None:
    # chroot=False: this test is about the life cycle, and pytest's tmp dir is under world-writable /tmp.
    server = LocalSftpServer(root=tmp_path / "root", state_dir=tmp_path / "state", chroot=False)
    server.start()
    try:
        port = server.port
        assert server.is_running() and port_accepts(port)
        assert (
            LocalSftpServer(root=server.root, state_dir=server.state_dir, chroot=False).start().port == port
        )

        server.stop()
        assert not server.is_running()
        assert port_is_free(port)
        server.stop()  # stopping a stopped server is a no-op

        # A pid file left by a dead sshd (here: a pid that cannot exist) must not block the next start.
        server.pid_file.write_text("4194304\n", encoding="ascii")
        server.start()
        assert server.is_running()
        assert server.port == port  # the connections pin the port, so it is kept while free
    finally:
        server.stop()
    assert port_is_free(port)


def test_missing_sshd_names_the_debian_package(tmp_path: Path) -> None:
    server = LocalSftpServer(root=tmp_path / "r", state_dir=tmp_path / "s", sshd=tmp_path / "no-sshd")
    with pytest.raises(SftpServerError, match="openssh-server"):
        server.start()


def test_unsafe_chroot_parents_are_explained(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("chroot is only attempted as root: run the tests as root, as CI does")
    # A parent that others may write, made so here rather than hoped for (pytest's tmp dir is under /tmp
    # on most machines, but not on all): sshd would refuse to chroot below it.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    problems = chroot_problems(shared)
    assert problems, "a folder others may write is never fit for chroot"
    server = LocalSftpServer(root=shared / "root", state_dir=tmp_path / "state")
    with pytest.raises(SftpServerError, match="ChrootDirectory") as refused:
        server.start()
    assert problems[0] in str(refused.value)
    assert not server.is_running()
