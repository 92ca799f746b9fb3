"""SFTP delivery and fetch against a real OpenSSH ``sshd`` on 127.0.0.1.

What "delivered exactly once" has to survive: a rerun, a different file under the same name, a SIGKILL of
the uploading process and a cut connection in the middle of an upload; what a pinned host key must
refuse; and what a hostile partner folder must not be able to do to the council's disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

import paramiko
import pytest

from sf_demo.sftp_server import LocalSftpServer, ensure_ssh_keypair, local_user
from supporting_families.transport import sftp as sftp_module
from supporting_families.transport.sftp import (
    AuthenticationFailed,
    DeliveryConflict,
    DeliveryOutcome,
    HostKeyMismatch,
    HostKeyRejected,
    LocalFileMismatch,
    PermanentTransferError,
    RemoteFolderMissing,
    SftpEndpoint,
    TransientTransferError,
    UnknownHostKey,
    UnsafeName,
    _RefuseUnpinnedHostKey,
    deliver,
    fetch,
    list_names,
    open_session,
    unsafe_name_reason,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("isolated_home")]

Snapshot = Callable[[Path], dict[str, int]]
MIB = 1024 * 1024
#: Big enough that an upload over loopback lasts long enough to be interrupted (64-200 MiB).
BIG_MIB = 192
TEST_ROOT = "sftp-transfer-tests"


# -- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
def endpoint(sftp_server: LocalSftpServer, sftp_client_key: Path) -> SftpEndpoint:
    return SftpEndpoint(
        sftp_server.host,
        sftp_server.port,
        local_user(),
        host_key=sftp_server.host_public_key,
        private_key_path=sftp_client_key,
    )


@contextlib.contextmanager
def _fresh_folder(server: LocalSftpServer, box: str) -> Iterator[tuple[str, Path]]:
    """A new empty remote folder (its remote name and its server-side path), removed afterwards.

    Under a top-level folder of its own, not the agreements' inboxes, and gone after the test: other
    tests check that the inboxes start empty and that the SFTP root holds only the agreements' folders.
    """
    remote = f"{TEST_ROOT}/{box}-{uuid.uuid4().hex[:12]}"
    local = server.root / remote
    local.mkdir(mode=0o750, parents=True)
    try:
        yield remote, local
    finally:
        shutil.rmtree(server.root / TEST_ROOT, ignore_errors=True)


@pytest.fixture
def inbox(sftp_server: LocalSftpServer) -> Iterator[tuple[str, Path]]:
    with _fresh_folder(sftp_server, "inbox") as folder:
        yield folder


@pytest.fixture
def outbox(sftp_server: LocalSftpServer) -> Iterator[tuple[str, Path]]:
    with _fresh_folder(sftp_server, "outbox") as folder:
        yield folder


def _write(path: Path, size: int, seed: bytes = b"") -> str:
    """A file of ``size`` pseudo-random bytes at ``path``; its SHA-256."""
    digest = hashlib.sha256()
    block = hashlib.sha512(seed + path.name.encode()).digest() * (MIB // 64)
    with path.open("wb") as fh:
        remaining = size
        counter = 0
        while remaining:
            # Vary each MiB so a misplaced block changes the hash.
            chunk = (counter.to_bytes(8, "big") + block)[: min(MIB, remaining)]
            fh.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
            counter += 1
    return digest.hexdigest()


def _share_file(tmp_path: Path, size: int) -> tuple[Path, str]:
    """The local file a test delivers: ``share.csv.gpg`` in ``tmp_path``, ``size`` pseudo-random bytes; and
    its SHA-256, which the share's manifest would record."""
    source = tmp_path / "share.csv.gpg"
    return source, _write(source, size)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def big_payload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "share.csv.gpg"
    return path, _write(path, BIG_MIB * MIB)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".part"))


def _wait_for_partial_upload(folder: Path, final: str, at_least: int, timeout: float = 60.0) -> None:
    """Return once a temporary file in ``folder`` holds ``at_least`` bytes (fail if the final name shows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (folder / final).exists():
            pytest.fail("the upload finished before it could be interrupted")
        for name in _temporaries(folder):
            try:
                if (folder / name).stat().st_size >= at_least:
                    return
            except FileNotFoundError:
                continue
        time.sleep(0.002)
    pytest.fail("no upload started")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _cut_connections(server: LocalSftpServer) -> int:
    """SIGKILL every per-connection process of ``server``'s sshd (the listener stays): a cut connection."""
    listener = int(server.pid_file.read_text().strip())
    victims: list[int] = []
    queue = _children(listener)
    while queue:
        pid = queue.pop()
        victims.append(pid)
        queue.extend(_children(pid))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(victims)


CutMidUpload = Callable[..., Future[DeliveryOutcome]]


@pytest.fixture
def cut_mid_upload(
    endpoint: SftpEndpoint,
    sftp_server: LocalSftpServer,
    inbox: tuple[str, Path],
    big_payload: tuple[Path, str],
) -> Iterator[CutMidUpload]:
    """``cut_mid_upload(**options)``: deliver ``big_payload`` into ``inbox`` as ``share.csv.gpg`` in a
    thread (``options`` go to ``deliver``) and cut the connection once 4 MiB are in the temporary file.

    Returns the delivery's future, so the test sees how the delivery ends after the cut.
    """
    remote, folder = inbox
    source, sha256 = big_payload
    with ThreadPoolExecutor(max_workers=1) as pool:

        def cut(**options: Any) -> Future[DeliveryOutcome]:
            future = pool.submit(deliver, endpoint, source, remote, "share.csv.gpg", sha256=sha256, **options)
            _wait_for_partial_upload(folder, "share.csv.gpg", at_least=4 * MIB)
            assert _cut_connections(sftp_server) > 0
            return future

        yield cut


# -- delivery ----------------------------------------------------------------------------------------


def test_round_trip_deliver_then_fetch_gives_equal_hashes(
    endpoint: SftpEndpoint, inbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = inbox
    source, sha256 = _share_file(tmp_path, 3 * MIB + 17)

    outcome = deliver(endpoint, source, remote, "dwp-share-2026-01.csv.gpg", sha256=sha256)

    assert outcome.status == "delivered"
    assert (outcome.size, outcome.bytes_sent, outcome.attempts) == (source.stat().st_size,) * 2 + (1,)
    assert outcome.remote_path == f"{remote}/dwp-share-2026-01.csv.gpg"
    assert sorted(p.name for p in folder.iterdir()) == ["dwp-share-2026-01.csv.gpg"]
    assert _sha256(folder / "dwp-share-2026-01.csv.gpg") == sha256

    local_dir = tmp_path / "fetched"
    local_dir.mkdir()
    result = fetch(endpoint, remote, "dwp-share-*.csv.gpg", local_dir, max_bytes=4 * MIB)
    assert result.rejected == ()
    [fetched] = result.fetched
    assert (fetched.name, fetched.size, fetched.sha256) == ("dwp-share-2026-01.csv.gpg", outcome.size, sha256)
    assert fetched.local_path == local_dir.resolve() / fetched.name
    assert _sha256(fetched.local_path) == sha256
    assert fetched.mtime.tzinfo is UTC
    assert int(fetched.mtime.timestamp()) == int((folder / fetched.name).stat().st_mtime)
    assert sorted(p.name for p in local_dir.iterdir()) == [fetched.name]  # no temporary left behind


def test_rerun_finds_the_delivery_and_sends_nothing(
    endpoint: SftpEndpoint, inbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = inbox
    source, sha256 = _share_file(tmp_path, 2 * MIB)
    first = deliver(endpoint, source, remote, "share.csv.gpg", sha256=sha256)
    before = (folder / "share.csv.gpg").stat()

    again = deliver(endpoint, source, remote, "share.csv.gpg", sha256=sha256)

    assert (first.status, again.status) == ("delivered", "already_present")
    assert again.bytes_sent == 0
    after = (folder / "share.csv.gpg").stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert sorted(p.name for p in folder.iterdir()) == ["share.csv.gpg"]


@pytest.mark.parametrize("other_size", [2 * MIB, 2 * MIB + 1], ids=["same-size", "other-size"])
def test_a_different_file_under_a_delivered_name_is_a_conflict_and_the_original_stays(
    endpoint: SftpEndpoint, inbox: tuple[str, Path], tmp_path: Path, other_size: int
) -> None:
    remote, folder = inbox
    original = tmp_path / "original.csv.gpg"
    other = tmp_path / "other.csv.gpg"
    sha_original = _write(original, 2 * MIB, seed=b"first")
    sha_other = _write(other, other_size, seed=b"second")
    deliver(endpoint, original, remote, "share.csv.gpg", sha256=sha_original)

    with pytest.raises(DeliveryConflict, match="not collected"):
        deliver(endpoint, other, remote, "share.csv.gpg", sha256=sha_other, attempts=3, backoff=30)

    assert _sha256(folder / "share.csv.gpg") == sha_original
    assert sorted(p.name for p in folder.iterdir()) == ["share.csv.gpg"]


def test_a_local_file_that_does_not_match_the_manifest_is_not_delivered(
    endpoint: SftpEndpoint, inbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = inbox
    source, _ = _share_file(tmp_path, MIB)  # delivered below against another hash than its own

    with pytest.raises(LocalFileMismatch):
        deliver(endpoint, source, remote, "share.csv.gpg", sha256="0" * 64, attempts=3, backoff=30)

    assert list(folder.iterdir()) == []


def test_sigkill_mid_upload_leaves_nothing_under_the_final_name_and_the_rerun_delivers_once(
    endpoint: SftpEndpoint, inbox: tuple[str, Path], big_payload: tuple[Path, str]
) -> None:
    remote, folder = inbox
    source, sha256 = big_payload
    args = {
        "host": endpoint.host,
        "port": endpoint.port,
        "user": endpoint.username,
        "host_key": endpoint.host_key,
        "key": str(endpoint.private_key_path),
        "file": str(source),
        "dir": remote,
        "name": "share.csv.gpg",
        "sha256": sha256,
    }
    child = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from supporting_families.transport.sftp import SftpEndpoint, deliver\n"
        "a = json.loads(sys.argv[1])\n"
        "e = SftpEndpoint(a['host'], a['port'], a['user'], host_key=a['host_key'], "
        "private_key_path=Path(a['key']))\n"
        "deliver(e, Path(a['file']), a['dir'], a['name'], sha256=a['sha256'], attempts=1)\n"
    )
    uploader = subprocess.Popen([sys.executable, "-c", child, json.dumps(args)])
    try:
        _wait_for_partial_upload(folder, "share.csv.gpg", at_least=4 * MIB)
        uploader.send_signal(signal.SIGKILL)
        assert uploader.wait(timeout=30) == -signal.SIGKILL
    finally:
        if uploader.poll() is None:
            uploader.kill()
            uploader.wait()

    # sshd notices the dead client and closes the file; what stays is a partial, hidden temporary.
    assert not (folder / "share.csv.gpg").exists()
    [stale] = _temporaries(folder)
    assert (folder / stale).stat().st_size < source.stat().st_size
    # The rerun comes after the stale-temporary timeout (younger ones may be a running attempt's).
    from supporting_families.transport.sftp import STALE_TEMPORARY_SECONDS

    old = time.time() - STALE_TEMPORARY_SECONDS - 60
    os.utime(folder / stale, (old, old))

    outcome = deliver(endpoint, source, remote, "share.csv.gpg", sha256=sha256)

    assert (outcome.status, outcome.attempts, outcome.bytes_sent) == ("delivered", 1, source.stat().st_size)
    assert sorted(p.name for p in folder.iterdir()) == ["share.csv.gpg"]  # the stale temporary is gone
    assert _sha256(folder / "share.csv.gpg") == sha256


def test_a_cut_connection_mid_upload_is_transient(
    inbox: tuple[str, Path], cut_mid_upload: CutMidUpload
) -> None:
    _, folder = inbox
    # A single attempt: the cut is reported as transient (worth retrying later), not as a refusal.
    future = cut_mid_upload(attempts=1)

    with pytest.raises(TransientTransferError, match="gave up after 1 attempt"):
        future.result(timeout=60)
    assert not (folder / "share.csv.gpg").exists()


def test_a_cut_connection_mid_upload_is_retried_and_delivered_once(
    inbox: tuple[str, Path], big_payload: tuple[Path, str], cut_mid_upload: CutMidUpload
) -> None:
    _, folder = inbox
    _, sha256 = big_payload
    # The default attempts, with a short backoff: the second attempt starts afresh and delivers.
    future = cut_mid_upload(backoff=0.1)

    outcome = future.result(timeout=120)

    assert (outcome.status, outcome.attempts) == ("delivered", 2)
    assert outcome.bytes_sent > outcome.size  # the first attempt's bytes were sent too, and lost
    assert sorted(p.name for p in folder.iterdir()) == ["share.csv.gpg"]
    assert _sha256(folder / "share.csv.gpg") == sha256


# -- refusals ----------------------------------------------------------------------------------------


def _other_key(tmp_path: Path, key_type: str = "ed25519") -> str:
    """A public key the server does not have, as ``"type base64"``."""
    path = tmp_path / f"impostor_{key_type}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True, capture_output=True
    )
    key_type_name, blob = path.with_name(path.name + ".pub").read_text().split()[:2]
    return f"{key_type_name} {blob}"


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa"], ids=["changed-key", "other-key-type"])
def test_a_host_key_other_than_the_pinned_one_is_refused_with_nothing_written(
    endpoint: SftpEndpoint,
    sftp_server: LocalSftpServer,
    inbox: tuple[str, Path],
    tmp_path: Path,
    tree_snapshot: Snapshot,
    key_type: str,
) -> None:
    remote, _ = inbox
    source, sha256 = _share_file(tmp_path, MIB)
    impostor = dataclasses.replace(endpoint, host_key=_other_key(tmp_path, key_type))
    before = tree_snapshot(sftp_server.root)

    started = time.monotonic()
    with pytest.raises(HostKeyMismatch, match="is pinned: refused"):
        deliver(impostor, source, remote, "share.csv.gpg", sha256=sha256, attempts=3, backoff=30)
    assert time.monotonic() - started < 10  # no retry: a backoff of 30 s would show

    assert tree_snapshot(sftp_server.root) == before


def test_a_server_with_no_pinned_key_is_refused(sftp_server: LocalSftpServer, sftp_client_key: Path) -> None:
    # The policy open_session installs, with nothing pinned for this name: trust on first use is refused.
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_RefuseUnpinnedHostKey())
    try:
        with pytest.raises(UnknownHostKey, match="no key is pinned"):
            client.connect(
                sftp_server.host,
                port=sftp_server.port,
                username=local_user(),
                key_filename=str(sftp_client_key),
                allow_agent=False,
                look_for_keys=False,
                timeout=10,
            )
    finally:
        client.close()
    assert issubclass(UnknownHostKey, HostKeyRejected)


def test_an_unauthorised_client_key_fails_at_once_without_retrying(
    endpoint: SftpEndpoint, inbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = inbox
    stranger = tmp_path / "stranger"
    ensure_ssh_keypair(stranger, "not-authorised")
    source, sha256 = _share_file(tmp_path, MIB)
    refused = dataclasses.replace(endpoint, private_key_path=stranger)

    started = time.monotonic()
    with pytest.raises(AuthenticationFailed) as caught:
        deliver(refused, source, remote, "share.csv.gpg", sha256=sha256, attempts=4, backoff=30)
    elapsed = time.monotonic() - started

    assert isinstance(caught.value, PermanentTransferError)
    assert elapsed < 10, f"took {elapsed:.1f} s: a permanent error must not be retried (backoff 30 s)"
    assert list(folder.iterdir()) == []


def test_a_missing_remote_folder_is_permanent(endpoint: SftpEndpoint, tmp_path: Path) -> None:
    source, sha256 = _share_file(tmp_path, 1000)
    started = time.monotonic()
    with pytest.raises(RemoteFolderMissing):
        deliver(endpoint, source, f"{TEST_ROOT}/no-such-folder", "share.csv.gpg", sha256=sha256, backoff=30)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "name", ["../share.gpg", "a/b.gpg", ".share.gpg", "share\n.gpg", "-share.gpg", "x" * 240 + ".gpg"]
)
def test_unsafe_delivery_names_are_refused_before_connecting(
    endpoint: SftpEndpoint, tmp_path: Path, name: str
) -> None:
    source, sha256 = _share_file(tmp_path, 10)
    with pytest.raises(UnsafeName):
        deliver(endpoint, source, f"{TEST_ROOT}/any", name, sha256=sha256)


# -- fetch -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("dwp-return-1.csv.gpg", None),
        ("../x", "path separator"),
        ("..", "parent reference '..'"),
        ("a..b.gpg", "parent reference '..'"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a\nb", "control or invisible character"),
        ("a\x00b", "control or invisible character"),
        ("a\x1b[31mb", "control or invisible character"),
        ("return\u202egpg.csv", "control or invisible character"),  # right-to-left override
        ("a\udcffb", "control or invisible character"),  # an undecodable byte, surrogate-escaped
        (".hidden", "hidden (leading dot)"),
        ("-o.gpg", "leading dash"),
        ("é" * 128, "longer than 255 bytes"),
        ("", "empty"),
    ],
)
def test_unsafe_name_reason(name: str, reason: str | None) -> None:
    assert unsafe_name_reason(name) == reason


def test_fetch_skips_and_reports_hostile_entries_and_writes_nothing_outside_its_folder(
    endpoint: SftpEndpoint, outbox: tuple[str, Path], tmp_path: Path, tree_snapshot: Snapshot
) -> None:
    remote, folder = outbox
    good_sha = _write(folder / "dwp-return-2026-01.csv.gpg", 300_000)
    _write(folder / "dwp-return-a\nb.csv.gpg", 100)
    _write(folder / ".dwp-return-hidden.csv.gpg", 100)
    _write(folder / "-dwp-return.gpg", 100)
    _write(folder / "dwp-return-big.csv.gpg", 1_000_001)
    _write(folder / "notes.txt", 100)  # not the pattern, not hostile: someone else's file, ignored
    os.symlink("/etc/passwd", folder / "dwp-return-passwd.csv.gpg")
    os.symlink("dwp-return-2026-01.csv.gpg", folder / "dwp-return-alias.csv.gpg")
    (folder / "dwp-return-folder.gpg").mkdir()
    not_utf8 = os.fsencode(folder) + b"/dwp-return-\xff.csv.gpg"
    with open(not_utf8, "wb") as fh:
        fh.write(b"latin-1 name")
    local_dir = tmp_path / "fetched"
    local_dir.mkdir()
    outside = tree_snapshot(tmp_path)

    result = fetch(endpoint, remote, "*.gpg", local_dir, max_bytes=1_000_000)

    assert [(f.name, f.sha256) for f in result.fetched] == [("dwp-return-2026-01.csv.gpg", good_sha)]
    rejected = {r.name: (r.reason, r.detail) for r in result.rejected}
    assert rejected == {
        "-dwp-return.gpg": ("unsafe_name", "leading dash"),
        ".dwp-return-hidden.csv.gpg": ("unsafe_name", "hidden (leading dot)"),
        "dwp-return-\udcff.csv.gpg": ("unsafe_name", "not UTF-8"),
        "dwp-return-a\nb.csv.gpg": ("unsafe_name", "control or invisible character"),
        "dwp-return-alias.csv.gpg": ("not_regular_file", "symbolic link"),
        "dwp-return-big.csv.gpg": ("too_large", "1000001 bytes > limit 1000000"),
        "dwp-return-folder.gpg": ("not_regular_file", "not a file"),
        "dwp-return-passwd.csv.gpg": ("not_regular_file", "symbolic link"),
    }
    assert all("\n" not in r.printable_name for r in result.rejected)
    assert sorted(p.name for p in local_dir.iterdir()) == ["dwp-return-2026-01.csv.gpg"]
    after = tree_snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("fetched/")} == outside


def test_fetch_again_reuses_an_identical_local_file_and_never_replaces_a_different_one(
    endpoint: SftpEndpoint, outbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = outbox
    sha = _write(folder / "dwp-return-1.csv.gpg", 5000)
    local_dir = tmp_path / "fetched"
    local_dir.mkdir()
    first = fetch(endpoint, remote, "dwp-return-*.csv.gpg", local_dir, max_bytes=10_000)
    again = fetch(endpoint, remote, "dwp-return-*.csv.gpg", local_dir, max_bytes=10_000)
    assert [f.sha256 for f in first.fetched] == [f.sha256 for f in again.fetched] == [sha]

    (local_dir / "dwp-return-1.csv.gpg").write_bytes(b"something else")
    third = fetch(endpoint, remote, "dwp-return-*.csv.gpg", local_dir, max_bytes=10_000)
    assert third.fetched == ()
    assert [(r.name, r.reason) for r in third.rejected] == [("dwp-return-1.csv.gpg", "local_conflict")]
    assert (local_dir / "dwp-return-1.csv.gpg").read_bytes() == b"something else"
    assert sorted(p.name for p in local_dir.iterdir()) == ["dwp-return-1.csv.gpg"]


def test_a_file_that_ends_before_its_listed_size_is_refused_not_fetched(
    endpoint: SftpEndpoint, outbox: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, folder = outbox
    served = folder / "dwp-return-short.csv.gpg"
    _write(served, 48 * MIB)
    real_put = sftp_module._HashingSink.put

    def truncate_once_reading(self: Any, chunk: bytes) -> None:
        # The partner's file is cut short after the fetch listed, opened and began to read it: the reads
        # already requested past the new end come back as EOF.
        if served.stat().st_size > MIB:
            os.truncate(served, MIB)
        real_put(self, chunk)

    monkeypatch.setattr(sftp_module._HashingSink, "put", truncate_once_reading)
    local_dir = tmp_path / "fetched"
    local_dir.mkdir()
    result = fetch(endpoint, remote, "dwp-return-*.csv.gpg", local_dir, max_bytes=64 * MIB, attempts=1)
    assert result.fetched == ()
    [rejected] = result.rejected
    assert (rejected.reason, rejected.size) == ("changed_while_reading", 48 * MIB)
    assert list(local_dir.iterdir()) == [], "nothing kept, not even the temporary"


def test_a_read_back_that_ends_before_the_expected_size_is_refused(
    endpoint: SftpEndpoint, inbox: tuple[str, Path]
) -> None:
    remote, folder = inbox
    _write(folder / "short.bin", 3 * MIB)
    with open_session(endpoint) as session, pytest.raises(TransientTransferError, match="early"):
        sftp_module._remote_sha256(
            session.sftp, f"{remote}/short.bin", 3 * MIB + 1, endpoint.request_size, then_fsync=True
        )


def test_list_names_shows_whether_the_partner_has_collected(
    endpoint: SftpEndpoint, sftp_client_key: Path, inbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = inbox
    source, sha256 = _share_file(tmp_path, 1000)
    deliver(endpoint, source, remote, "share.csv.gpg", sha256=sha256)
    # The key given as text, as a connection's private_key extra carries it.
    by_text = dataclasses.replace(
        endpoint, private_key_path=None, private_key_text=sftp_client_key.read_text()
    )
    assert list_names(by_text, remote) == ["share.csv.gpg"]
    (folder / "share.csv.gpg").unlink()  # the partner collected it
    assert list_names(by_text, remote) == []


def test_open_session_refuses_compression_and_prefers_aes_gcm(endpoint: SftpEndpoint) -> None:
    with open_session(endpoint) as session:
        transport = session.client.get_transport()
        assert transport.local_cipher == "aes256-gcm@openssh.com"
        assert transport.local_compression == "none"
        assert session.sftp.get_channel().gettimeout() == endpoint.io_timeout


def test_endpoint_repr_shows_no_secrets(endpoint: SftpEndpoint, sftp_client_key: Path) -> None:
    with_text = dataclasses.replace(
        endpoint,
        private_key_path=None,
        private_key_text=sftp_client_key.read_text(),
        private_key_passphrase="hunter2",
    )
    assert "PRIVATE KEY" not in repr(with_text)
    assert "hunter2" not in repr(with_text)


# -- the Airflow side --------------------------------------------------------------------------------


def _airflow_sftp() -> Any:
    import airflow  # noqa: F401  (importing Airflow puts its plugins folder on sys.path)

    import sf_airflow.sftp

    return sf_airflow.sftp


def test_endpoint_from_an_airflow_connection_delivers(
    pinned_sftp_conn: str, inbox: tuple[str, Path], tmp_path: Path
) -> None:
    sftp_endpoint = _airflow_sftp().sftp_endpoint
    remote, folder = inbox
    source, sha256 = _share_file(tmp_path, 1000)
    outcome = deliver(sftp_endpoint(pinned_sftp_conn), source, remote, "share.csv.gpg", sha256=sha256)
    assert outcome.status == "delivered"
    assert _sha256(folder / "share.csv.gpg") == sha256


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "host_key is missing"),
        ({"host_key": "KEY", "no_host_key_check": True}, "no_host_key_check is true"),
        ({"host_key": "KEY", "allow_host_key_change": "true"}, "allow_host_key_change is true"),
        ({"host_key": "KEY", "private_key": "-----BEGIN"}, "exactly one of"),
    ],
    ids=["no-pin", "checking-off", "key-change-allowed", "two-keys"],
)
def test_a_connection_that_does_not_pin_the_host_key_is_refused(
    sftp_server: LocalSftpServer, sftp_client_key: Path, extra: dict[str, Any], message: str
) -> None:
    airflow_sftp = _airflow_sftp()
    fields = {"key_file": str(sftp_client_key), **extra}
    if fields.get("host_key") == "KEY":
        fields["host_key"] = sftp_server.host_public_key
    with pytest.raises(airflow_sftp.SftpConnectionError, match=message):
        airflow_sftp.endpoint_from_fields(
            "sf_sftp_x", host="127.0.0.1", port=sftp_server.port, login="x", extra=fields
        )


def test_no_transport_thread_is_left_behind() -> None:
    # Each operation closes its session; a leaked paramiko transport would keep a thread and a socket.
    time.sleep(0.2)
    assert [t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()] == []


def test_a_remote_path_that_is_not_a_folder_is_refused(
    endpoint: SftpEndpoint, inbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = inbox
    (folder / "plain").write_bytes(b"")
    source, sha256 = _share_file(tmp_path, 10)
    with pytest.raises(RemoteFolderMissing, match="is not a folder"):
        deliver(endpoint, source, f"{remote}/plain", "x.gpg", sha256=sha256)
    assert stat.S_ISREG((folder / "plain").stat().st_mode)


@pytest.fixture
def full_inbox(inbox: tuple[str, Path]) -> Iterator[tuple[str, Path]]:
    """An inbox on a 1 MiB tmpfs: the partner's disk, full after the first MiB."""
    remote, folder = inbox
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0750", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        # Run as root, as CI does: a full partner disk must be tested for real, never skipped.
        pytest.fail(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield remote, folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_partner_disk_fails_the_write_and_publishes_nothing(
    endpoint: SftpEndpoint, full_inbox: tuple[str, Path], tmp_path: Path
) -> None:
    remote, folder = full_inbox
    source, sha256 = _share_file(tmp_path, 3 * MIB)

    with pytest.raises(TransientTransferError, match="gave up after 2 attempt") as caught:
        deliver(endpoint, source, remote, "share.csv.gpg", sha256=sha256, attempts=2, backoff=0.1)

    # The server's own answer to the failed WRITE (OpenSSH's status text "Failure"), not a size or hash
    # mismatch found afterwards; and shown by its SHA-256 only, since a server chooses that text.
    message = str(caught.value)
    assert hashlib.sha256(b"Failure").hexdigest() in message, message
    assert "Failure" not in message, "a server's status text is never echoed"
    assert list(folder.iterdir()) == []  # nothing published, the partial temporary removed
