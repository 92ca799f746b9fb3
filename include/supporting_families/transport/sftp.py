"""SFTP delivery to a partner's inbox and safe fetch from its outbox, over paramiko with a pinned host key.

The guarantees, each backed by an integration test
against a real OpenSSH ``sshd``:

* Only the pinned host key is accepted: an unknown or changed key is refused before authentication, so
  nothing is sent (docs/ARCHITECTURE.md: partner host keys are pinned).
* A delivery is all or nothing under its final name: bytes go to a dot-prefixed temporary name in the same
  folder, are synced, size-checked and read back against the manifest's SHA-256, and only then renamed.
* A delivery never overwrites: a final name that already holds the same bytes means "already delivered"
  (nothing is sent); different bytes mean the partner has not collected the earlier delivery, which is a
  :class:`DeliveryConflict`, never a replacement.
* Permanent faults (host key, authentication, permission, missing folder) fail at once; transient ones
  (reset, timeout, EOF, closed channel) are retried with exponential backoff.
* A fetch trusts nothing the server says: names are checked before they become local paths, symlinks are
  never followed, sizes are capped, and a hostile entry is reported rather than silently dropped.

Throughput: the SFTP layer uses 255 KiB requests, pipelined 4 MiB writes, prefetched reads (hashed, and for a
fetch written, in a second thread while the next answers arrive), 4 MiB channel
windows and AES-256-GCM: on loopback uploads match OpenSSH's own ``sftp put``, and fetch and read-back, which
also hash and fsync where ``get`` does neither, reach about 0.7-0.9 of ``get`` (see benchmarks/bench_sftp.py,
which also showed that windows of 32 MiB or more collapse paramiko downloads, and that zlib only costs
time on OpenPGP ciphertext). Nothing here imports Airflow: ``plugins/sf_airflow/sftp.py`` builds the
:class:`SftpEndpoint` from a connection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fnmatch
import hashlib
import io
import logging
import os
import posixpath
import queue
import re
import secrets
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_EXTENDED,
    CMD_HANDLE,
    CMD_NAME,
    CMD_OPENDIR,
    CMD_READDIR,
    CMD_STATUS,
)
from paramiko.sftp_attr import SFTPAttributes

from supporting_families.progress import Progress
from supporting_families.transport.paths import (
    MAX_NAME_BYTES,
    SEVERE_NAME_REASONS,
    check_remote_dir,
    unsafe_name_reason,
)
from supporting_families.transport.paths import printable_name as _printable

log = logging.getLogger(__name__)

T = TypeVar("T")

# -- tuning (measured on these machines with benchmarks/bench_sftp.py) ------------------------------------

#: SSH channel window. paramiko's default (2 MiB) is fine; 32 MiB or more collapses its downloads.
WINDOW_SIZE = 4 * 1024 * 1024
#: Largest SSH packet we accept, so one 255 KiB SFTP read answer fits in one packet.
MAX_PACKET_SIZE = 256 * 1024
#: Data per SFTP read/write request. OpenSSH's sftp-server caps a message at 256 KiB
#: (SFTP_MAX_MSG_LENGTH) and a read at 255 KiB, which its own client also uses; paramiko's 32 KiB default
#: spends most of its time on per-request overhead.
REQUEST_SIZE = 255 * 1024
#: Bytes handed to paramiko per pipelined write: it splits them into REQUEST_SIZE requests without
#: waiting for each answer.
WRITE_CHUNK = 4 * 1024 * 1024
#: The payloads are OpenPGP ciphertext, so the cipher is the cost; AES-GCM is the fastest paramiko has
#: (AES-NI) and is authenticated. CBC modes are dropped outright (CVE-2008-5161 plaintext recovery).
PREFERRED_CIPHER = "aes256-gcm@openssh.com"

#: Longest file name most file systems store (NAME_MAX), in UTF-8 bytes.
#: A delivered name leaves room for the temporary name ``.<name>.<16 hex>.part`` within MAX_NAME_BYTES.
MAX_DELIVERY_NAME_BYTES = MAX_NAME_BYTES - len(".") - len(".0123456789abcdef.part")

#: Age after which another attempt's temporary file counts as abandoned and is removed: a running attempt
#: writes or reads its temporary continuously, and a stall longer than the I/O timeout kills it, so an
#: hour without a change is far beyond any live attempt.
STALE_TEMPORARY_SECONDS = 3600

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
#: OpenSSH's fsync extension (PROTOCOL, section 3.6): durable bytes before the rename makes them visible.
_FSYNC_EXTENSION = "fsync@openssh.com"


# -- errors ------------------------------------------------------------------------------------------


class TransferError(Exception):
    """An SFTP transfer failed. Messages name hosts, folders, file names and fingerprints, never data."""


class PermanentTransferError(TransferError):
    """Retrying cannot help: fix the configuration, the partner's server, or the delivery first."""


class TransientTransferError(TransferError):
    """The network or the server failed for now (reset, timeout, EOF, closed channel): retry later."""


class HostKeyRejected(PermanentTransferError):
    """The server's host key is not the pinned one: possibly an impostor, so nothing was sent."""


class HostKeyMismatch(HostKeyRejected):
    """The server presented a host key other than the pinned one (changed, or of another type)."""


class UnknownHostKey(HostKeyRejected):
    """No host key is pinned for the name we connected to."""


class AuthenticationFailed(PermanentTransferError):
    """The server refused our client key."""


class NegotiationFailed(PermanentTransferError):
    """Client and server share no acceptable algorithm (cipher, key exchange, host key type)."""


class RemotePermissionDenied(PermanentTransferError):
    """The server refused an operation on a path (permissions on the partner's side)."""


class RemotePathMissing(PermanentTransferError):
    """A path the transfer needs does not exist on the server."""


class RemoteFolderMissing(RemotePathMissing):
    """The agreement's remote folder does not exist (or is not a folder) on the partner's server."""


class DeliveryConflict(PermanentTransferError):
    """The final name already holds different bytes: the partner has not collected an earlier delivery.

    Never resolved by overwriting: the partner may be reading it, and the ledger records what it holds.
    """


class LocalFileMismatch(PermanentTransferError):
    """The local file does not hash to the SHA-256 the caller (the manifest) gave: it changed or is wrong."""


class LocalFileError(PermanentTransferError):
    """A file operation on the council's side failed (local folder missing, not writable, full)."""


class UnsafeName(PermanentTransferError, ValueError):
    """A file name that must not be used as a remote or local path component."""


# -- endpoint and session ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SftpEndpoint:
    """Where and how to reach one partner SFTP server. Secrets come in here and are never logged.

    ``host_key`` is the pinned server key as OpenSSH writes it: ``"ssh-ed25519 AAAA..."`` (the type is
    required; a bare base64 value is ambiguous). Exactly one of ``private_key_path`` and
    ``private_key_text`` is the client key (OpenSSH or PEM format; ``private_key_passphrase`` if it is
    encrypted). ``request_size`` may be lowered for a server with a smaller SFTP message limit.
    """

    host: str
    port: int
    username: str
    _: KW_ONLY
    host_key: str
    private_key_path: Path | None = None
    private_key_text: str | None = field(default=None, repr=False)
    private_key_passphrase: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    #: Seconds a read or write may stall before the connection counts as dead (a transient error).
    io_timeout: float = 60.0
    request_size: int = REQUEST_SIZE

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host):
            raise ValueError("SftpEndpoint.host must be a host name or address")
        if not 0 < self.port < 65536:
            raise ValueError(f"SftpEndpoint.port {self.port} is not a TCP port")
        if not self.username:
            raise ValueError("SftpEndpoint.username must not be empty")
        if (self.private_key_path is None) == (self.private_key_text is None):
            raise ValueError("give exactly one of SftpEndpoint.private_key_path and private_key_text")
        if not 1024 <= self.request_size <= REQUEST_SIZE:
            raise ValueError(f"SftpEndpoint.request_size must be between 1024 and {REQUEST_SIZE}")
        parse_host_key(self.host_key)  # fail at construction, not at the first connection

    @property
    def known_hosts_name(self) -> str:
        """The name the host key is pinned under, as OpenSSH writes it in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def describe(self) -> str:
        """``user@host:port`` for messages and logs (no secrets)."""
        return f"{self.username}@{self.host}:{self.port}"


def parse_host_key(text: str) -> paramiko.PKey:
    """The public key in ``"ssh-ed25519 AAAA... [comment]"``; ValueError when it is not one."""
    parts = text.split()
    if len(parts) < 2:
        raise ValueError("a pinned host key looks like 'ssh-ed25519 AAAA...' (type, then base64)")
    key_type, blob = parts[0], parts[1]
    try:
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob, validate=True))
    except (binascii.Error, paramiko.SSHException, paramiko.pkey.UnknownKeyType, ValueError) as exc:
        raise ValueError(f"the pinned host key of type {key_type!r} cannot be read: {exc}") from None
    if key_type not in key.identifiers():
        raise ValueError(f"the pinned host key says {key_type!r} but holds a {key.get_name()} key")
    return key


def _load_private_key(endpoint: SftpEndpoint) -> paramiko.PKey:
    """The client key, from a file or from text (a connection's ``private_key`` extra)."""
    if endpoint.private_key_path is not None:
        try:
            return paramiko.PKey.from_path(endpoint.private_key_path, endpoint.private_key_passphrase)
        except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
            raise AuthenticationFailed(
                f"cannot load the SFTP client key {endpoint.private_key_path}: {type(exc).__name__}"
            ) from None
    text = endpoint.private_key_text or ""
    password = endpoint.private_key_passphrase.encode() if endpoint.private_key_passphrase else None
    try:
        # As paramiko's own PKey.from_path: the OpenSSH format first, then legacy PEM.
        try:
            loaded: Any = serialization.load_ssh_private_key(text.encode(), password=password)
        except ValueError:
            loaded = serialization.load_pem_private_key(text.encode(), password=password)
        key_class: Any
        if isinstance(loaded, ed25519.Ed25519PrivateKey):
            key_class = paramiko.Ed25519Key
        elif isinstance(loaded, rsa.RSAPrivateKey):
            key_class = paramiko.RSAKey
        elif isinstance(loaded, ec.EllipticCurvePrivateKey):
            key_class = paramiko.ECDSAKey
        else:
            raise ValueError("unsupported key type")
        key: paramiko.PKey = key_class.from_private_key(
            io.StringIO(text), password=endpoint.private_key_passphrase
        )
        return key
    except (ValueError, TypeError, paramiko.SSHException) as exc:
        # The exception text could quote the key material: only its type is reported.
        raise AuthenticationFailed(f"cannot load the SFTP client key text: {type(exc).__name__}") from None


class _RefuseUnpinnedHostKey(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Never trust a host key on first use: only the pinned key, loaded into the client, is accepted."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKey(
            f"{hostname} presented a {key.get_name()} host key {key.fingerprint} and no key is pinned for "
            "it: refused (pin the partner's key in the connection's host_key)"
        )


# -- algorithm policy: only what paramiko has of the modern set, nothing negotiable below it ---------------

#: Key exchange: hybrid post-quantum, X25519, ECDH over NIST P-256 and above. No finite-field DH.
ALLOWED_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
)
#: AES-GCM only (authenticated; paramiko has no chacha20-poly1305). No CTR, no CBC.
ALLOWED_CIPHERS = (PREFERRED_CIPHER, "aes128-gcm@openssh.com")
#: SHA-2 encrypt-then-MAC only (GCM needs none; these only matter if a cipher ever needs a MAC).
ALLOWED_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
#: Host keys: Ed25519, ECDSA, RSA with SHA-2 signatures (never ssh-rsa's SHA-1).
ALLOWED_HOST_KEYS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)


def _policy(offered: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``allowed`` in its own order of preference, as far as this paramiko implements it."""
    return tuple(a for a in allowed if a in offered)


class _StrictKexTransport(paramiko.Transport):  # type: ignore[misc]
    """Refuses to authenticate (so sends no secret and no file byte) unless strict kex was agreed."""

    #: The key exchange agreed on; paramiko drops its engine once the new keys are in use.
    agreed_kex: str = ""

    def _parse_kex_init(self, m: paramiko.Message) -> None:
        super()._parse_kex_init(m)
        engine = type(self.kex_engine)
        # The first of our preferred names with this engine: the one agreed, or its alias
        # (curve25519-sha256 and curve25519-sha256@libssh.org are one algorithm).
        self.agreed_kex = next((n for n in self.preferred_kex if self._kex_info.get(n) is engine), "")

    def auth_publickey(self, username: str, key: paramiko.PKey, event: Any = None) -> Any:
        if not self.agreed_on_strict_kex:
            raise NegotiationFailed(
                f"{self.getpeername()[0]}: the server did not agree on strict key exchange "
                "(kex-strict-s-v00@openssh.com): refused before authentication, nothing sent"
            )
        return super().auth_publickey(username, key, event)


def _transport_factory(sock: socket.socket, **kwargs: Any) -> paramiko.Transport:
    transport = _StrictKexTransport(
        sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE, **kwargs
    )
    options = transport.get_security_options()
    options.kex = _policy(tuple(transport._kex_info), ALLOWED_KEX)
    options.ciphers = _policy(tuple(transport._cipher_info), ALLOWED_CIPHERS)
    options.digests = _policy(tuple(transport._mac_info), ALLOWED_MACS)
    options.key_types = _policy(tuple(transport._key_info), ALLOWED_HOST_KEYS)
    return transport


def negotiated_algorithms(session: SftpSession) -> dict[str, str]:
    """What the session's SSH transport agreed on (for the connectivity check; no secrets)."""
    transport = session.client.get_transport()
    if transport is None:
        return {}
    return {
        "kex": str(getattr(transport, "agreed_kex", "")),
        "host_key": str(transport.host_key_type or ""),
        "cipher": str(transport.local_cipher),
        "mac": str(transport.local_mac or "implicit"),
        "strict_kex": "yes" if transport.agreed_on_strict_kex else "no",
    }


@dataclass(frozen=True)
class ConnectivityReport:
    """What :func:`check_connectivity` found: the folders missing and the negotiated algorithms."""

    missing: tuple[str, ...]
    algorithms: dict[str, str]


def check_connectivity(endpoint: SftpEndpoint, folders: list[str]) -> ConnectivityReport:
    """Connect under the policy with the pinned host key, and list which of ``folders`` are missing."""
    for folder in folders:
        check_remote_dir(folder)
    with open_session(endpoint) as session:
        missing = []
        for folder in folders:
            try:
                _require_dir(session.sftp, folder)
            except RemoteFolderMissing:
                missing.append(folder)
        algorithms = negotiated_algorithms(session)
    log.info("%s: negotiated %s", endpoint.describe(), algorithms)
    return ConnectivityReport(tuple(missing), algorithms)


@dataclass
class SftpSession:
    """An open, host-key-verified, authenticated SFTP session (from :func:`open_session`)."""

    endpoint: SftpEndpoint
    client: paramiko.SSHClient
    sftp: paramiko.SFTPClient


@contextlib.contextmanager
def open_session(endpoint: SftpEndpoint) -> Iterator[SftpSession]:
    """Connect, verify the pinned host key, authenticate with the client key only, open SFTP.

    Errors inside the ``with`` block that come from the network, SSH or SFTP leave it classified as
    :class:`PermanentTransferError` or :class:`TransientTransferError`.
    """
    host_key = parse_host_key(endpoint.host_key)
    client = paramiko.SSHClient()
    # No load_system_host_keys(): ~/.ssh/known_hosts must not be able to vouch for a partner server.
    client.get_host_keys().add(endpoint.known_hosts_name, host_key.get_name(), host_key)
    client.set_missing_host_key_policy(_RefuseUnpinnedHostKey())
    try:
        pkey = _load_private_key(endpoint)
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.username,
            pkey=pkey,
            timeout=endpoint.connect_timeout,
            banner_timeout=endpoint.connect_timeout,
            auth_timeout=endpoint.connect_timeout,
            channel_timeout=endpoint.connect_timeout,
            # Only the key we were given: never an agent's or whatever sits in ~/.ssh.
            allow_agent=False,
            look_for_keys=False,
            compress=False,
            transport_factory=_transport_factory,
        )
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(endpoint.io_timeout)
    except Exception as exc:
        client.close()
        _raise_classified(exc, f"connecting to {endpoint.describe()}")
    try:
        yield SftpSession(endpoint, client, sftp)
    except Exception as exc:
        _raise_classified(exc, f"SFTP session with {endpoint.describe()}")
    finally:
        client.close()


def _raise_classified(exc: Exception, context: str) -> NoReturn:
    classified = _classified(exc, context)
    if classified is exc:
        raise exc
    raise classified from exc


def _opaque(exc: BaseException) -> str:
    """An exception as a message may show it: its type, its errno, and its text by SHA-256 only.

    The text of an SFTP status, a banner or a disconnect is the server's own choosing: it could carry
    terminal escapes or a partner's file name (personal data), and messages reach logs and Airflow's
    metadata database. The hash still lets an engineer match it against the partner's server log.
    """
    code = getattr(exc, "errno", None)
    shown = type(exc).__name__
    if isinstance(code, int):
        shown += f" [{errno.errorcode.get(code, str(code))}: {os.strerror(code)}]"
    text = str(exc)
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{shown} (server text sha256 {digest})" if text else shown


def _classified(exc: Exception, context: str) -> Exception:
    """``exc`` as a Permanent- or TransientTransferError; unrelated exceptions are returned unchanged."""
    if isinstance(exc, TransferError):
        return exc
    what = f"{context}: {_opaque(exc)}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyMismatch(
            f"{context}: the server presented {exc.key.get_name()} {exc.key.fingerprint}, but "
            f"{exc.expected_key.get_name()} {exc.expected_key.fingerprint} is pinned: refused, nothing sent"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return AuthenticationFailed(f"{context}: the server refused the client key ({_opaque(exc)})")
    if isinstance(exc, paramiko.ssh_exception.IncompatiblePeer):
        return NegotiationFailed(what)
    if isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM)
    ):
        return RemotePermissionDenied(what)
    if isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
        return RemotePathMissing(what)
    # Everything below is the network or the session failing under us: a reset or refused connection,
    # a timeout, EOF, "Socket is closed" from a dead channel, a dropped SSH transport, an SFTP status of
    # plain "Failure" (OpenSSH's answer to EIO or ENOSPC), or a garbled SFTP reply.
    if isinstance(exc, (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError)):
        return TransientTransferError(what)
    return exc


def _with_retries(operation: Callable[[int], T], *, attempts: int, backoff: float, what: str) -> T:
    """Run ``operation(attempt)``; retry TransientTransferError with exponential backoff, not others."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return operation(attempt)
        except TransientTransferError as exc:
            if attempt == attempts:
                raise TransientTransferError(f"{what}: gave up after {attempts} attempt(s): {exc}") from exc
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "%s: transient error on attempt %d of %d (%s); retrying in %.1f s",
                what,
                attempt,
                attempts,
                type(exc.__cause__ or exc).__name__,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# -- names -------------------------------------------------------------------------------------------


def _check_delivery_name(final_name: str) -> None:
    reason = unsafe_name_reason(final_name)
    if reason is None and len(final_name.encode("utf-8")) > MAX_DELIVERY_NAME_BYTES:
        reason = f"longer than {MAX_DELIVERY_NAME_BYTES} bytes (room is kept for the temporary name)"
    if reason is not None:
        raise UnsafeName(f"delivery name {_printable(final_name)} is not safe: {reason}")


def _temporary_name(final_name: str) -> str:
    # Dot-prefixed so a partner's glob (``*.csv.gpg``) and our own fetch skip it; random so two attempts
    # never share one; named after the final name so a rerun can find and remove an attempt's leftovers.
    return f".{final_name}.{secrets.token_hex(8)}.part"


def _is_temporary_of(name: str, final_name: str) -> bool:
    return re.fullmatch(re.escape(f".{final_name}.") + r"[0-9a-f]{16}\.part", name) is not None


# -- low-level SFTP helpers --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    raw: bytes
    attrs: SFTPAttributes

    @property
    def name(self) -> str:
        """The name as text; undecodable bytes become surrogate escapes (and fail unsafe_name_reason)."""
        return self.raw.decode("utf-8", "surrogateescape")

    @property
    def utf8(self) -> bool:
        try:
            self.raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def _list_dir(sftp: paramiko.SFTPClient, remote_dir: str) -> list[_Entry]:
    """``remote_dir``'s entries without ``.`` and ``..``, names as raw bytes.

    paramiko's listdir_attr decodes names as strict UTF-8, so one file a partner names in Latin-1 would
    make the whole listing fail and block every return; this is listdir_attr's own loop (OPENDIR, READDIR
    until EOF, CLOSE; draft-ietf-secsh-filexfer-02 section 6.7) keeping the bytes.
    """
    kind, msg = sftp._request(CMD_OPENDIR, remote_dir)
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("expected a handle for OPENDIR")
    handle = msg.get_binary()
    entries: list[_Entry] = []
    while True:
        try:
            kind, msg = sftp._request(CMD_READDIR, handle)
        except EOFError:
            break
        if kind != CMD_NAME:
            raise paramiko.SFTPError("expected names for READDIR")
        for _ in range(msg.get_int()):
            raw: bytes = msg.get_string()
            msg.get_string()  # longname: an ``ls -l`` line, which repeats the name
            attrs = SFTPAttributes._from_msg(msg)
            if raw not in (b".", b".."):
                entries.append(_Entry(raw, attrs))
    sftp._request(CMD_CLOSE, handle)
    return entries


def _require_dir(sftp: paramiko.SFTPClient, remote_dir: str) -> None:
    try:
        attrs = sftp.stat(remote_dir)
    except FileNotFoundError:
        raise RemoteFolderMissing(f"remote folder {remote_dir} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise RemoteFolderMissing(f"remote folder {remote_dir} does not exist") from None
        raise
    if attrs.st_mode is None or not stat.S_ISDIR(attrs.st_mode):
        raise RemoteFolderMissing(f"remote path {remote_dir} is not a folder")


def _lstat_or_none(sftp: paramiko.SFTPClient, path: str) -> SFTPAttributes | None:
    try:
        attrs: SFTPAttributes = sftp.lstat(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
            return None
        raise
    return attrs


def _collect_write_answers(sftp: paramiko.SFTPClient, remote: paramiko.SFTPFile) -> None:
    """Wait for the answer to every pipelined write still outstanding, raising the first failure.

    paramiko files its pipelined writes under no owner, so an answer that arrives while another request
    is awaited (the next request, or close) is dropped unread, and a failed write (the partner's disk full)
    would only show later as a wrong size or hash. SFTPFile keeps their ids in ``_reqs`` and drains them
    itself only after 100; this drains the rest the same way, in order (sftp-server answers in order).
    """
    pending = remote._reqs
    while pending:
        kind, _ = sftp._read_response(pending.popleft())
        if kind != CMD_STATUS:
            raise paramiko.SFTPError("expected a status for WRITE")


def _remote_fsync(sftp: paramiko.SFTPClient, handle: bytes, path: str) -> None:
    """Ask the server to fsync ``handle`` (OpenSSH ``fsync@openssh.com``), so the bytes survive a crash of
    the partner's server before the rename publishes them.

    paramiko has no API for it (nor keeps the server's extension list), so the request is sent as
    SFTPFile.check sends its own extension. A server without the extension answers with a status: we
    carry on, since the read-back hash, not the fsync, is what proves the content.
    """
    try:
        sftp._request(CMD_EXTENDED, _FSYNC_EXTENSION, handle)
    except OSError as exc:
        if exc.errno is not None:
            raise
        log.warning(
            "the server did not fsync %s (%s); relying on close and the read-back hash", path, _opaque(exc)
        )


#: Chunks (of one request each) waiting for the hashing thread: 4 MiB at 255 KiB, so memory stays bounded.
_SINK_DEPTH = 16


class _HashingSink:
    """SHA-256 (and, for a fetch, the local write) of the chunks read, in a second thread.

    hashlib and write(2) release the GIL, so while this thread hashes and writes one chunk, the caller's
    thread and paramiko's transport thread take in the next: the hash and the disk no longer stand between
    one read answer and the next (benchmarks/bench_sftp.py). Chunks are processed in order; the first
    failure (a LocalFileError from ``write``) is raised in the caller's thread on the next :meth:`put` or on
    :meth:`finish`, and after it nothing more is written.
    """

    def __init__(self, write: Callable[[bytes], None] | None = None) -> None:
        self._write = write
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_SINK_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sftp-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so the reader never blocks on a full queue
            try:
                if self._write is not None:
                    self._write(chunk)
                self._digest.update(chunk)
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> str:
        """Wait for every chunk; the hex SHA-256 of all of them (raises the thread's failure, if any)."""
        self._stop()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def __enter__(self) -> _HashingSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()  # on an early return or an exception too: the thread never outlives the transfer


def _remote_sha256(
    sftp: paramiko.SFTPClient, path: str, size: int, request_size: int, *, then_fsync: bool = False
) -> str:
    """SHA-256 of the first ``size`` bytes of ``path``, streamed with pipelined (prefetched) reads.

    ``then_fsync``: fsync the file through the same handle afterwards (fsync(2) works on a read-only
    descriptor); by then the server has had the whole read-back to write its pages out, so the fsync is
    short, where right after the writes it waits for the whole file.
    """
    with sftp.open(path, "rb") as remote, _HashingSink() as sink:
        remote.MAX_REQUEST_SIZE = request_size  # this file only: the class attribute stays paramiko's
        remote.prefetch(size)
        remaining = size
        progress = Progress(log, "read-back check", size, unit="bytes")
        while remaining:
            # One request's worth per read: larger reads make paramiko concatenate bytes repeatedly.
            chunk = remote.read(min(request_size, remaining))
            if not chunk:
                raise TransientTransferError(f"{path} ended {remaining} bytes early while reading it back")
            sink.put(chunk)
            remaining -= len(chunk)
            progress.advance(len(chunk))
        digest = sink.finish()
        progress.finish()
        if then_fsync:
            _remote_fsync(sftp, remote.handle, path)
    return digest


def _local_sha256(source: io.FileIO) -> str:
    digest = hashlib.sha256()
    source.seek(0)
    while chunk := source.read(WRITE_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


# -- deliver -----------------------------------------------------------------------------------------

DeliveryStatus = Literal["delivered", "already_present"]


@dataclass(frozen=True)
class DeliveryOutcome:
    """What :func:`deliver` did. ``bytes_sent`` counts payload bytes written, over all attempts."""

    status: DeliveryStatus
    remote_path: str
    size: int
    sha256: str
    bytes_sent: int
    attempts: int
    seconds: float
    #: Time spent writing the temporary file until the server acknowledged every write, over all attempts.
    upload_seconds: float
    #: Time spent reading back and hashing (the new file, or an existing one under the final name), and
    #: having the server fsync the new file before the rename.
    verify_seconds: float


@dataclass
class _DeliveryProgress:
    bytes_sent: int = 0
    upload_seconds: float = 0.0
    verify_seconds: float = 0.0
    #: A rename was requested: if the connection died before its answer, the next attempt finds our own
    #: file under the final name, and that is this call's delivery, not an earlier one.
    rename_requested: bool = False
    #: This call's own temporary names: an earlier attempt's is removed whatever its age.
    own_temporaries: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Delivery:
    local_file: Path
    #: Opened once for all attempts, so every attempt sends the same file even if the path is replaced.
    source: io.FileIO
    size: int
    remote_dir: str
    final_name: str
    sha256: str

    @property
    def final_path(self) -> str:
        return posixpath.join(self.remote_dir, self.final_name)


def deliver(
    endpoint: SftpEndpoint,
    local_file: Path,
    remote_dir: str,
    final_name: str,
    *,
    sha256: str,
    attempts: int = 4,
    backoff: float = 2.0,
) -> DeliveryOutcome:
    """Deliver ``local_file`` as ``remote_dir/final_name`` exactly once; ``sha256`` is the manifest's.

    Idempotent: when the final name already holds these bytes the outcome is ``already_present`` and
    nothing is sent; when it holds other bytes, :class:`DeliveryConflict`. Transient errors are retried
    ``attempts`` times in all, waiting ``backoff``, 2x, 4x... seconds; permanent ones raise at once.

    Exactly-once holds while the file sits in the partner's inbox: once the partner has collected it,
    only the caller's own record (the ledger) can tell that this delivery was made.
    """
    check_remote_dir(remote_dir)
    _check_delivery_name(final_name)
    expected = sha256.lower()
    if not _SHA256_RE.fullmatch(expected):
        raise ValueError("sha256 must be 64 hexadecimal digits")
    progress = _DeliveryProgress()
    started = time.monotonic()
    attempts_made = 0
    with local_file.open("rb", buffering=0) as source:
        delivery = _Delivery(
            local_file, source, os.fstat(source.fileno()).st_size, remote_dir, final_name, expected
        )

        def attempt(number: int) -> DeliveryStatus:
            nonlocal attempts_made
            attempts_made = number
            with open_session(endpoint) as session:
                return _deliver_once(session, delivery, progress)

        status = _with_retries(attempt, attempts=attempts, backoff=backoff, what=f"delivering {final_name}")
    outcome = DeliveryOutcome(
        status=status,
        remote_path=delivery.final_path,
        size=delivery.size,
        sha256=expected,
        bytes_sent=progress.bytes_sent,
        attempts=attempts_made,
        seconds=time.monotonic() - started,
        upload_seconds=progress.upload_seconds,
        verify_seconds=progress.verify_seconds,
    )
    log.info(
        "%s %s (%d bytes, sha256 %s) to %s in %.2f s, %d attempt(s), %d bytes sent",
        status,
        final_name,
        outcome.size,
        expected[:16],
        remote_dir,
        outcome.seconds,
        outcome.attempts,
        outcome.bytes_sent,
    )
    return outcome


def _deliver_once(session: SftpSession, delivery: _Delivery, progress: _DeliveryProgress) -> DeliveryStatus:
    sftp = session.sftp
    _require_dir(sftp, delivery.remote_dir)
    entries = _list_dir(sftp, delivery.remote_dir)
    names = {entry.name for entry in entries}
    # Another attempt may still be writing its temporary (attempts of one delivery can overlap when a
    # task is retried while the first try hangs): only one older than STALE_TEMPORARY_SECONDS is stale.
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    stale = sorted(
        e.name
        for e in entries
        if _is_temporary_of(e.name, delivery.final_name)
        and (
            e.name in progress.own_temporaries or (e.attrs.st_mtime is not None and e.attrs.st_mtime < cutoff)
        )
    )
    if delivery.final_name in names:
        status = _existing_delivery(session, delivery, progress)
        _remove_quietly(sftp, delivery.remote_dir, stale)
        return status
    # Leftovers of attempts that crashed or lost their connection: never published, safe to remove.
    _remove_quietly(sftp, delivery.remote_dir, stale)

    temporary = posixpath.join(delivery.remote_dir, _temporary_name(delivery.final_name))
    progress.own_temporaries.add(posixpath.basename(temporary))
    published = False
    try:
        _upload(session, delivery, temporary, progress)
        _verify_temporary(session, delivery, temporary, progress)
        # Checked again right before the rename, so a concurrent delivery of the same file ends as
        # already_present (and a different file as a conflict) rather than as a failed rename.
        if _lstat_or_none(sftp, delivery.final_path) is not None:
            return _existing_delivery(session, delivery, progress)
        progress.rename_requested = True
        try:
            _publish(sftp, temporary, delivery.final_path)
        except OSError:
            # Refused because the final name appeared after our check: whose file is it?
            if _lstat_or_none(sftp, delivery.final_path) is not None:
                return _existing_delivery(session, delivery, progress)
            raise
        published = True
    finally:
        if not published:
            _remove_quietly(sftp, delivery.remote_dir, [posixpath.basename(temporary)])
    return "delivered"


def _publish(sftp: paramiko.SFTPClient, temporary: str, final_path: str) -> None:
    """Rename ``temporary`` to ``final_path``, failing if the final name exists.

    Plain SFTP RENAME, not ``posix-rename@openssh.com``: the SFTP draft (draft-ietf-secsh-filexfer-02,
    6.5) says RENAME is an error when the target exists, and OpenSSH's sftp-server implements it for
    regular files as link(2) then unlink(2), which is atomic and cannot replace. posix-rename is rename(2),
    which silently replaces an uncollected delivery if another writer slips in after our check.
    """
    sftp.rename(temporary, final_path)


def _upload(session: SftpSession, delivery: _Delivery, temporary: str, progress: _DeliveryProgress) -> None:
    started = time.monotonic()
    try:
        # "x" adds O_EXCL to "w" (which alone would truncate): an attempt never writes into a file that
        # another attempt is writing.
        source = delivery.source
        source.seek(0)
        with session.sftp.open(temporary, "wx") as dest:
            dest.MAX_REQUEST_SIZE = session.endpoint.request_size  # this file only
            # Pipelined: writes do not wait for each answer; failures surface at the latest on close.
            dest.set_pipelined(True)
            buffer = bytearray(WRITE_CHUNK)
            view = memoryview(buffer)
            lines = Progress(log, "upload", delivery.size, unit="bytes")
            while count := source.readinto(buffer):
                dest.write(view[:count])
                progress.bytes_sent += count
                lines.advance(count)
            _collect_write_answers(session.sftp, dest)
            lines.finish()
    finally:
        progress.upload_seconds += time.monotonic() - started


def _verify_temporary(
    session: SftpSession, delivery: _Delivery, temporary: str, progress: _DeliveryProgress
) -> None:
    sftp = session.sftp
    started = time.monotonic()
    try:
        remote_size = sftp.stat(temporary).st_size
        if remote_size != delivery.size:
            raise TransientTransferError(
                f"{temporary} holds {remote_size} bytes after the upload, expected {delivery.size}"
            )
        # The fsync comes here, before the rename publishes the file (see _remote_sha256).
        remote_hash = _remote_sha256(
            sftp, temporary, delivery.size, session.endpoint.request_size, then_fsync=True
        )
    finally:
        progress.verify_seconds += time.monotonic() - started
    if remote_hash != delivery.sha256:
        # Either the local file is not what the manifest describes (permanent), or the bytes changed on
        # the way or on the partner's disk (worth another attempt).
        if _local_sha256(delivery.source) != delivery.sha256:
            raise LocalFileMismatch(
                f"{delivery.local_file.name} does not hash to the manifest's SHA-256 "
                f"{delivery.sha256[:16]}...: it changed after packaging; not delivered"
            )
        raise TransientTransferError(f"{temporary} read back with another SHA-256 than was sent")


def _existing_delivery(
    session: SftpSession, delivery: _Delivery, progress: _DeliveryProgress
) -> DeliveryStatus:
    """The final name exists: the same bytes are a finished delivery; anything else is a conflict."""
    sftp = session.sftp
    attrs = _lstat_or_none(sftp, delivery.final_path)
    if attrs is None:
        raise TransientTransferError(f"{delivery.final_path} vanished while being checked")
    where = f"{delivery.remote_dir} already holds {delivery.final_name}"
    if attrs.st_mode is None or not stat.S_ISREG(attrs.st_mode):
        raise DeliveryConflict(f"{where}, and it is not a regular file: not overwritten")
    if attrs.st_size != delivery.size:
        raise DeliveryConflict(
            f"{where} with {attrs.st_size} bytes, this delivery has {delivery.size}: the partner has not "
            "collected the earlier file; not overwritten"
        )
    started = time.monotonic()
    try:
        found = _remote_sha256(sftp, delivery.final_path, delivery.size, session.endpoint.request_size)
    finally:
        progress.verify_seconds += time.monotonic() - started
    if found != delivery.sha256:
        raise DeliveryConflict(
            f"{where} with the same size but SHA-256 {found[:16]}..., this delivery is "
            f"{delivery.sha256[:16]}...: the partner has not collected the earlier file; not overwritten"
        )
    return "delivered" if progress.rename_requested else "already_present"


def _remove_quietly(sftp: paramiko.SFTPClient, remote_dir: str, names: list[str]) -> None:
    """Best-effort removal of our own temporary files; a failure only leaves them for the next run."""
    for name in names:
        try:
            sftp.remove(posixpath.join(remote_dir, name))
            log.info("removed temporary file %s from %s", name, remote_dir)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            log.warning(
                "could not remove temporary file %s from %s: %s", name, remote_dir, type(exc).__name__
            )


# -- fetch -------------------------------------------------------------------------------------------

#: Why an entry was not fetched. ``unsafe_name``, ``not_regular_file`` and ``too_large`` are the partner's
#: folder holding something it should not (quarantine and alert); ``changed_while_reading``
#: is usually a file still being written (fetch again later); ``local_conflict`` means ``local_dir``
#: already holds different bytes under that name, which the caller must resolve.
RejectReason = Literal[
    "unsafe_name", "not_regular_file", "too_large", "changed_while_reading", "local_conflict"
]


@dataclass(frozen=True)
class FetchedFile:
    """A file fetched whole into ``local_path``; ``sha256`` was computed while it streamed."""

    name: str
    size: int
    sha256: str
    local_path: Path
    #: The server's modification time (when the partner finished writing it), timezone-aware UTC.
    mtime: datetime


@dataclass(frozen=True)
class RejectedFile:
    """A listed entry that was not fetched, and why. ``name`` may be hostile: show ``printable_name``."""

    name: str
    reason: RejectReason
    detail: str
    size: int | None = None

    @property
    def printable_name(self) -> str:
        return _printable(self.name)


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch` took (``fetched``) and what it refused (``rejected``: quarantine and alert)."""

    fetched: tuple[FetchedFile, ...]
    rejected: tuple[RejectedFile, ...]


def fetch(
    endpoint: SftpEndpoint,
    remote_dir: str,
    pattern: str,
    local_dir: Path,
    *,
    max_bytes: int,
    attempts: int = 4,
    backoff: float = 2.0,
) -> FetchResult:
    """Download every regular file in ``remote_dir`` whose name matches ``pattern`` into ``local_dir``.

    ``pattern`` is an fnmatch glob (the agreement's ``returns.file_pattern``), matched case-sensitively.
    Entries that match but are unsafe (see :func:`unsafe_name_reason`), not regular files (symlinks are
    never followed), larger than ``max_bytes`` or changing while read are rejected and reported; so is
    any entry whose name holds a path separator, a control character or invalid UTF-8, whatever the
    pattern, since no honest server lists one. Other names are someone else's files and are ignored.
    Files are written to a temporary name in ``local_dir`` and linked into place, never replacing a
    different local file. Transient errors retry the whole fetch (files already fetched are reused).
    """
    check_remote_dir(remote_dir)
    if not pattern or "/" in pattern or "\\" in pattern:
        raise ValueError("pattern must be a file name glob, without path separators")
    if max_bytes < 0:
        raise ValueError("max_bytes must not be negative")
    if not local_dir.is_dir():
        raise FileNotFoundError(f"local folder {local_dir} does not exist")

    def attempt(_: int) -> FetchResult:
        with open_session(endpoint) as session:
            return _fetch_once(session, remote_dir, pattern, local_dir.resolve(), max_bytes)

    result = _with_retries(attempt, attempts=attempts, backoff=backoff, what=f"fetching from {remote_dir}")
    for rejected in result.rejected:
        # A partner-chosen name may itself be personal data or hostile: the log gets its hash only.
        log.warning(
            "not fetched from %s: name sha256 %s (%s: %s)",
            remote_dir,
            hashlib.sha256(rejected.name.encode("utf-8", "surrogateescape")).hexdigest(),
            rejected.reason,
            rejected.detail,
        )
    log.info(
        "fetched %d file(s), %d bytes, from %s; %d rejected",
        len(result.fetched),
        sum(f.size for f in result.fetched),
        remote_dir,
        len(result.rejected),
    )
    return result


def _fetch_once(
    session: SftpSession, remote_dir: str, pattern: str, local_dir: Path, max_bytes: int
) -> FetchResult:
    sftp = session.sftp
    _require_dir(sftp, remote_dir)
    fetched: list[FetchedFile] = []
    rejected: list[RejectedFile] = []
    for entry in sorted(_list_dir(sftp, remote_dir), key=lambda e: e.raw):
        name = entry.name
        reason = "not UTF-8" if not entry.utf8 else unsafe_name_reason(name)
        matches = fnmatch.fnmatchcase(name, pattern)
        if reason is not None and (matches or reason in SEVERE_NAME_REASONS):
            rejected.append(RejectedFile(name, "unsafe_name", reason, entry.attrs.st_size))
            continue
        if not matches:
            continue
        remote_path = posixpath.join(remote_dir, name)
        # lstat, not the listing's attributes: some servers stat() for READDIR, which follows links.
        attrs = _lstat_or_none(sftp, remote_path)
        if attrs is None:
            continue  # removed since the listing: nothing to take
        if attrs.st_mode is None or not stat.S_ISREG(attrs.st_mode):
            kind = (
                "symbolic link" if attrs.st_mode is not None and stat.S_ISLNK(attrs.st_mode) else "not a file"
            )
            rejected.append(RejectedFile(name, "not_regular_file", kind, attrs.st_size))
            continue
        size = int(attrs.st_size or 0)
        if size > max_bytes:
            rejected.append(RejectedFile(name, "too_large", f"{size} bytes > limit {max_bytes}", size))
            continue
        outcome = _download(session, remote_path, name, attrs, local_dir)
        if isinstance(outcome, FetchedFile):
            fetched.append(outcome)
        else:
            rejected.append(outcome)
    return FetchResult(tuple(fetched), tuple(rejected))


def _download(
    session: SftpSession, remote_path: str, name: str, attrs: SFTPAttributes, local_dir: Path
) -> FetchedFile | RejectedFile:
    """Stream ``remote_path`` into ``local_dir/name`` through a temporary file, hashing as it goes."""
    size = int(attrs.st_size or 0)
    target = local_dir / name
    if target.parent != local_dir:  # unsafe_name_reason already excludes this; a second lock on the door
        raise UnsafeName(f"{_printable(name)} would leave the local folder")
    with _local_io(f"creating a temporary file in {local_dir}"):
        descriptor, temporary_name = tempfile.mkstemp(dir=local_dir, prefix=".fetch-", suffix=".part")
    temporary = Path(temporary_name)
    try:
        # Unbuffered: every write reaches the file at once, so a failing disk fails in the writer.
        with (
            os.fdopen(descriptor, "wb", buffering=0) as out,
            session.sftp.open(remote_path, "rb") as remote,
            _HashingSink(_LocalWriter(out, temporary).write) as sink,
        ):
            # The handle's own attributes: the path may have been swapped since the lstat.
            opened = remote.stat()
            if opened.st_size != size or opened.st_mtime != attrs.st_mtime:
                return RejectedFile(
                    name, "changed_while_reading", "changed between listing and opening", size
                )
            remote.MAX_REQUEST_SIZE = session.endpoint.request_size  # this file only
            remote.prefetch(size)
            remaining = size
            progress = Progress(log, "fetch", size, unit="bytes")  # counts only: never the partner's name
            while remaining:
                chunk = remote.read(min(session.endpoint.request_size, remaining))
                if not chunk:
                    return RejectedFile(name, "changed_while_reading", "shorter than listed", size)
                sink.put(chunk)  # written and hashed in the sink's thread, in order, while the next arrives
                remaining -= len(chunk)
                progress.advance(len(chunk))
            sha256 = sink.finish()  # every byte written (or the write's failure raised) before the fsync
            progress.finish()
            after = remote.stat()
            if after.st_size != size or after.st_mtime != attrs.st_mtime:
                return RejectedFile(name, "changed_while_reading", "changed while being read", size)
            with _local_io(f"syncing {temporary}"):
                os.fsync(out.fileno())
        mtime = float(attrs.st_mtime or 0)
        with _local_io(f"placing {target.name} in {local_dir}"):
            os.utime(temporary, (mtime, mtime))
            linked = _link_no_replace(temporary, target, sha256)
        if not linked:
            return RejectedFile(
                name, "local_conflict", f"{target.name} exists locally with other bytes", size
            )
        return FetchedFile(name, size, sha256, target, datetime.fromtimestamp(mtime, tz=UTC))
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _local_io(what: str) -> Iterator[None]:
    """Local OSErrors as LocalFileError, so they are not mistaken for the partner's server failing."""
    try:
        yield
    except OSError as exc:
        raise LocalFileError(f"{what}: {type(exc).__name__}: {exc.strerror or exc}") from exc


#: Bytes written locally between two requests to start their writeback (see :class:`_LocalWriter`).
WRITEBACK_BYTES = 16 * 1024 * 1024


class _LocalWriter:
    """Writes a fetched file's chunks, starting the disk's writeback as it goes.

    The fsync before the file is linked into place must wait for every dirty page; left to the end, that
    wait comes after the last byte has arrived (about a fifth of a 256 MiB fetch here,
    benchmarks/bench_sftp.py). ``POSIX_FADV_DONTNEED`` on what was written so far starts its writeback
    without waiting for it (Linux), so the disk works while the network does and the final fsync, which
    still guarantees durability, finds little left. The hash is taken from the chunks in memory, so the
    pages need not stay cached.
    """

    def __init__(self, out: io.FileIO, path: Path) -> None:
        self._out = out
        self._path = path
        self._written = 0
        self._started = 0

    def write(self, chunk: bytes) -> None:
        with _local_io(f"writing {self._path}"):
            view = memoryview(chunk)
            while view:
                written = self._out.write(view)
                if not written:
                    raise OSError(errno.EIO, "the local file took no bytes")
                view = view[written:]
                self._written += written
            if self._written - self._started >= WRITEBACK_BYTES and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(
                    self._out.fileno(), self._started, self._written - self._started, os.POSIX_FADV_DONTNEED
                )
                self._started = self._written


def _link_no_replace(temporary: Path, target: Path, sha256: str) -> bool:
    """Put ``temporary`` at ``target`` unless a different file is there; True when target has our bytes."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        if target.is_symlink() or not target.is_file():
            return False
        with target.open("rb", buffering=0) as existing:
            return _local_sha256(existing) == sha256
    return True


# -- listing -----------------------------------------------------------------------------------------


def list_names(
    endpoint: SftpEndpoint, remote_dir: str, *, attempts: int = 4, backoff: float = 2.0
) -> list[str]:
    """The names in ``remote_dir`` (sorted, without ``.`` and ``..``), e.g. to see whether the partner has
    collected a delivery (its name has left the inbox). Undecodable bytes in a name are
    kept as surrogate escapes, so every entry appears."""
    check_remote_dir(remote_dir)

    def attempt(_: int) -> list[str]:
        with open_session(endpoint) as session:
            _require_dir(session.sftp, remote_dir)
            return sorted(entry.name for entry in _list_dir(session.sftp, remote_dir))

    return _with_retries(attempt, attempts=attempts, backoff=backoff, what=f"listing {remote_dir}")
