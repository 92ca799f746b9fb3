"""OpenPGP with GnuPG: encrypt and sign a delivery to a pinned partner key; decrypt and verify a return.

Sharing: a delivery is encrypted to the partner's key pinned by fingerprint in its data agreement
and signed with the council's key, without compression; an expired, revoked or mismatched key stops the run
with a clear error, and success is read from gpg's status output, not its exit code. Receiving:
a return's signature is verified against the partner's pinned fingerprint, and a message without integrity
protection (no MDC, no AEAD) is refused.

How it drives ``gpg`` (why each choice, in short):

* ``--batch --no-tty --no-options``: behaviour comes from this module's arguments only, never from a
  ``gpg.conf`` that could add ``encrypt-to`` recipients, ``throw-keyids`` or a keyserver.
* ``--status-fd`` on a pipe of its own: the machine-readable protocol (GnuPG ``doc/DETAILS``) is what
  decides success; human messages on stderr are neither parsed nor put into exceptions.
* ``--pinentry-mode loopback --passphrase-fd`` on a pipe of its own, always (empty when there is no
  passphrase): the passphrase is never on argv, and gpg never falls back to reading stdin, which carries the
  data.
* ``--no-auto-key-locate --no-auto-key-retrieve --disable-dirmngr``: no key is ever fetched from a network
  (which would also tell a keyserver who wrote to whom); only the project-local keyring counts.
* Data are streamed through pipes in 1 MiB chunks, hashed (SHA-256) on the way, and written to a temporary
  file next to the destination that is renamed only once the status output says the operation succeeded.
  gpg writes plaintext before it has checked the MDC or the signature, so a failure must never leave that
  output under the final name: the temporary file is deleted.

Pinning: the agreement pins the *primary* key's fingerprint (what partners print on their key-exchange
forms). The modern key shape (ed25519 primary that signs, cv25519 subkey that encrypts) means
``--recipient PRIMARY!`` would force the sign-only primary and fail; so the usable encryption (sub)key of the
pinned primary is chosen here from the ``--with-colons`` listing and given as ``--recipient SUBKEY!``, which
forces exactly that key. The output is then read back to check it has exactly one recipient, that key.

Nothing here logs or raises with the passphrase or any content: only file names of deliveries, sizes,
hashes and fingerprints.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Final, Literal, cast

from supporting_families.progress import Progress

log = logging.getLogger(__name__)

__all__ = [
    "BadPassphrase",
    "BadSignature",
    "DecryptionError",
    "DecryptionFailed",
    "DecryptionResult",
    "EncryptionFailed",
    "EncryptionResult",
    "GnuPGUnavailable",
    "IntegrityCheckFailed",
    "InvalidFingerprint",
    "KeyExpired",
    "KeyListing",
    "KeyMismatch",
    "KeyNotCertified",
    "KeyPart",
    "KeyProblem",
    "KeyRevoked",
    "KeyUnusable",
    "MissingKey",
    "MultipleSignatures",
    "NoSecretKey",
    "NotEncrypted",
    "NotIntegrityProtected",
    "OpenPgpError",
    "PlaintextTooLarge",
    "SignatureError",
    "UnknownSigner",
    "UnsignedMessage",
    "WeakAlgorithm",
    "WrongSigner",
    "decrypt_and_verify",
    "encrypt_and_sign",
    "gpg_command",
    "gpg_environment",
    "normalise_fingerprint",
    "parse_key_listing",
    "recipient_key_ids",
]

GPG: Final = "gpg"
CHUNK: Final = 1 << 20
# A pipe of 1 MiB (Linux's default pipe-max-size) instead of 64 KiB: 16x fewer wake-ups between gpg and us.
_PIPE_SIZE: Final = 1 << 20
# Warn ahead of a partner key's expiry, so the key exchange happens before a share is refused.
EXPIRY_WARNING: Final = timedelta(days=30)

Role = Literal["recipient", "signer"]

# RFC 4880 section 9 algorithm ids, as gpg's status lines give them.
CIPHER_NAMES: Final = {
    1: "IDEA",
    2: "3DES",
    3: "CAST5",
    4: "BLOWFISH",
    7: "AES128",
    8: "AES192",
    9: "AES256",
    10: "TWOFISH",
    11: "CAMELLIA128",
    12: "CAMELLIA192",
    13: "CAMELLIA256",
}
DIGEST_NAMES: Final = {
    1: "MD5",
    2: "SHA1",
    3: "RIPEMD160",
    8: "SHA256",
    9: "SHA384",
    10: "SHA512",
    11: "SHA224",
}
AEAD_NAMES: Final = {1: "EAX", 2: "OCB"}
# We ask for AES256 (personal preferences); any AES the recipient's preferences force is still acceptable.
_ENCRYPT_CIPHERS: Final = frozenset({7, 8, 9})
# 64-bit block ciphers: Sweet32 (CVE-2016-2183) makes them unfit for files of hundreds of MB.
_WEAK_CIPHERS: Final = frozenset({1, 2, 3, 4})
# MD5 and SHA-1 signatures can be forged by chosen-prefix collision (SHA-1 "Shambles", 2020); RIPEMD-160 is
# deprecated for signatures by RFC 9580.
_WEAK_DIGESTS: Final = frozenset({1, 2, 3})

# libgpg-error codes (the low 16 bits of the numbers in ERROR/FAILURE status lines).
_ERR_BAD_PASSPHRASE: Final = 11
_ERR_NO_PASSPHRASE: Final = 177
_PASSPHRASE_ERRORS: Final = frozenset({_ERR_BAD_PASSPHRASE, _ERR_NO_PASSPHRASE})

# INV_RECP / INV_SGNR reason codes (doc/DETAILS).
_REASON_NOT_FOUND: Final = "1"
_REASON_WRONG_USAGE: Final = "3"
_REASON_REVOKED: Final = "4"
_REASON_EXPIRED: Final = "5"
_REASON_NOT_SECRET: Final = "9"  # noqa: S105 (a reason code, not a password)
_REASON_NOT_TRUSTED: Final = "10"
_REASON_DISABLED: Final = "13"

_V4_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
_STATUS_PREFIX: Final = "[GNUPG:] "


# -- errors ----------------------------------------------------------------------------------------------


class OpenPgpError(RuntimeError):
    """An OpenPGP operation was refused or failed; the message names file, key and rule, never content."""


class GnuPGUnavailable(OpenPgpError):
    """The ``gpg`` binary or its home directory cannot be used."""


class InvalidFingerprint(OpenPgpError, ValueError):
    """A pinned fingerprint is not a full v4 fingerprint (40 hex digits).

    The message gives only the length: the value may come from an environment variable that was meant
    to hold something else.
    """

    def __init__(self, characters: int) -> None:
        super().__init__(
            f"not a full OpenPGP v4 fingerprint: {characters} characters after removing spaces, "
            "40 hexadecimal digits expected (key ids are refused)"
        )
        #: How many characters were left after removing white space.
        self.characters = characters


class KeyProblem(OpenPgpError):
    """The key pinned for ``role`` cannot be used; ``fingerprint`` is the pinned one."""

    def __init__(self, role: Role, fingerprint: str, detail: str) -> None:
        super().__init__(f"{role} key {fingerprint}: {detail}")
        self.role: Role = role
        self.fingerprint = fingerprint


class MissingKey(KeyProblem):
    """The pinned key is not in the keyring (or, for a signer, its secret part is not)."""


class KeyMismatch(KeyProblem):
    """The key gpg found or used is not the pinned one."""


class KeyExpired(KeyProblem):
    """The pinned key (or every subkey that could do the job) has expired."""

    def __init__(self, role: Role, fingerprint: str, detail: str, expired_at: datetime | None = None) -> None:
        super().__init__(role, fingerprint, detail)
        self.expired_at = expired_at


class KeyRevoked(KeyProblem):
    """The pinned key (or every subkey that could do the job) has been revoked."""


class KeyNotCertified(KeyProblem):
    """The pinned key is in the keyring but the council has not certified (locally signed) it."""


class KeyUnusable(KeyProblem):
    """The pinned key exists but cannot do the job: disabled, invalid, or no capable (sub)key."""


class BadPassphrase(OpenPgpError):
    """The passphrase given for the council's secret key was wrong or missing."""


class EncryptionFailed(OpenPgpError):
    """gpg did not report a complete, signed, integrity-protected encryption."""


class DecryptionError(OpenPgpError):
    """The message could not be decrypted safely; no plaintext was kept."""


class NotEncrypted(DecryptionError):
    """The input is not an OpenPGP message encrypted to a public key (plaintext, signature only, garbage)."""


class NotIntegrityProtected(DecryptionError):
    """The message has no MDC and no AEAD: it could have been modified undetectably (EFAIL, 2018)."""


class IntegrityCheckFailed(DecryptionError):
    """The message's MDC (or AEAD tag) does not match: it was modified or truncated."""


class NoSecretKey(DecryptionError):
    """The message is not encrypted to any secret key in this keyring."""


class DecryptionFailed(DecryptionError):
    """gpg did not report a successful decryption (corrupt, truncated, symmetric-only, ...)."""


class PlaintextTooLarge(DecryptionError):
    """The plaintext exceeded the caller's limit (e.g. a compression bomb); nothing was kept."""


class SignatureError(OpenPgpError):
    """The message's signature does not prove that the expected signer sent exactly these bytes."""


class UnsignedMessage(SignatureError):
    """The message carries no signature."""


class BadSignature(SignatureError):
    """A signature does not verify: the signed data were modified."""


class UnknownSigner(SignatureError):
    """A signature was made by a key that is not in the keyring, so it cannot be checked."""


class WrongSigner(SignatureError):
    """The message is validly signed, but not by the expected (pinned) key."""


class MultipleSignatures(SignatureError):
    """More than one signature: the rule is exactly one, by the pinned key."""


class WeakAlgorithm(DecryptionError, SignatureError):
    """The message uses a cipher or digest that is refused (64-bit blocks, MD5, SHA-1)."""


# -- results ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptionResult:
    """What the manifest and the ledger record about one encrypted delivery."""

    plaintext_sha256: str
    plaintext_bytes: int
    ciphertext_sha256: str
    ciphertext_bytes: int
    #: The pinned primary fingerprint, and the (sub)key the session key was encrypted to.
    recipient_fingerprint: str
    recipient_key_fingerprint: str
    #: The council's pinned primary fingerprint, and the (sub)key that made the signature.
    signer_fingerprint: str
    signing_key_fingerprint: str
    cipher_algo: str
    digest_algo: str
    integrity: str
    signature_created: datetime


@dataclass(frozen=True)
class DecryptionResult:
    """What the receive side records about one verified return."""

    plaintext_sha256: str
    plaintext_bytes: int
    ciphertext_sha256: str
    ciphertext_bytes: int
    #: Primary fingerprint of the signer (equal to the expected one), and the (sub)key that signed.
    signer_fingerprint: str
    signing_key_fingerprint: str
    signature_created: datetime
    digest_algo: str
    cipher_algo: str
    #: ``MDC`` or ``AEAD-<mode>``.
    integrity: str
    #: The (sub)key of ours that decrypted the session key.
    decryption_key_fingerprint: str


# -- fingerprints and the colon listing -------------------------------------------------------------------


def normalise_fingerprint(value: str) -> str:
    """Upper-case hex without white space; InvalidFingerprint unless it is a full v4 fingerprint.

    The one rule for every pinned key: the agreements' ``openpgp.partner_fingerprint`` (a v4 fingerprint,
    ``config/agreements.py``), encryption, verification and the demo kit. White space is allowed, as GnuPG
    prints fingerprints in groups of four. Short and long key ids are refused: they can be forged (the
    "Evil 32" key-id collisions). A 64-digit v5 fingerprint is refused too: no agreement may pin one.
    """
    fpr = "".join(value.split()).upper()
    if not _V4_FINGERPRINT.fullmatch(fpr):
        raise InvalidFingerprint(len(fpr))
    return fpr


@dataclass(frozen=True)
class KeyPart:
    """A primary key or subkey from ``gpg --with-colons --fixed-list-mode``."""

    fingerprint: str
    #: Field 2: ``r`` revoked, ``e`` expired, ``i`` invalid, ``d`` disabled, ``n`` never, ``f``/``u`` valid.
    validity: str
    created: int
    expires: int | None
    #: This key's own usage flags, lower case (``s`` sign, ``e`` encrypt, ``c`` certify, ``a`` auth).
    usage: str
    #: For secret listings: the secret part is here (``+``) or on a card, not a stub (``#``).
    has_secret: bool

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:] if len(self.fingerprint) == 40 else self.fingerprint[:16]

    @property
    def expires_at(self) -> datetime | None:
        return None if self.expires is None else datetime.fromtimestamp(self.expires, UTC)

    @property
    def unusable(self) -> bool:
        return self.validity in ("r", "e", "i", "d", "n")


@dataclass(frozen=True)
class KeyListing:
    """One primary key with its subkeys and user ids.

    ``capabilities`` is field 12 of the primary: lower case for the primary's own usage, upper case for
    what the key can do with all its usable subkeys (``E`` encrypt, ``S`` sign), ``D`` when disabled.
    """

    primary: KeyPart
    subkeys: tuple[KeyPart, ...]
    capabilities: str
    #: The user ids (``Name <mail>``), unescaped, in listing order.
    uids: tuple[str, ...] = ()

    @property
    def parts(self) -> tuple[KeyPart, ...]:
        return (self.primary, *self.subkeys)

    @property
    def fingerprint(self) -> str:
        """The primary key's fingerprint: what an agreement pins."""
        return self.primary.fingerprint

    @property
    def validity(self) -> str:
        """The primary key's validity letter (field 2), as :attr:`KeyPart.validity`."""
        return self.primary.validity

    @property
    def usable(self) -> bool:
        """Neither revoked, expired, invalid, never valid nor disabled."""
        return not self.primary.unusable and "D" not in self.capabilities

    @property
    def can_encrypt(self) -> bool:
        return "E" in self.capabilities

    @property
    def can_sign(self) -> bool:
        return "S" in self.capabilities


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() and int(value) > 0 else None


def _unescape(value: str) -> str:
    """gpg escapes ``:`` and other bytes in ``--with-colons`` fields as ``\\xHH`` (``doc/DETAILS``)."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def parse_key_listing(text: str) -> list[KeyListing]:
    """Keys from ``--with-colons --fixed-list-mode --list-keys`` or ``--list-secret-keys`` output."""
    # Per key: its pub/sec record then its sub/ssb records, each paired with the fpr record that follows it.
    groups: list[list[tuple[list[str], str]]] = []
    uids: list[list[str]] = []
    for line in text.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind in ("pub", "sec"):
            groups.append([])
            uids.append([])
        if kind in ("pub", "sec", "sub", "ssb") and groups:
            groups[-1].append(([*fields, *([""] * (20 - len(fields)))], ""))
        elif kind == "fpr" and groups and groups[-1] and not groups[-1][-1][1] and len(fields) > 9:
            record, _ = groups[-1][-1]
            groups[-1][-1] = (record, fields[9].upper())
        elif kind == "uid" and uids and len(fields) > 9:
            uids[-1].append(_unescape(fields[9]))
    keys: list[KeyListing] = []
    for group, names in zip(groups, uids, strict=True):
        parts = [_key_part(record, fingerprint) for record, fingerprint in group]
        primary, subkeys = parts[0], tuple(parts[1:])
        keys.append(KeyListing(primary, subkeys, capabilities=group[0][0][11], uids=tuple(names)))
    return keys


def _key_part(record: list[str], fingerprint: str) -> KeyPart:
    return KeyPart(
        fingerprint=fingerprint,
        validity=record[1],
        created=int(record[5]) if record[5].isdigit() else 0,
        expires=_int_or_none(record[6]),
        usage="".join(ch for ch in record[11] if ch.islower()),
        has_secret=record[14] not in ("", "#"),
    )


# -- running gpg ------------------------------------------------------------------------------------------


def _check_home(gnupg_home: Path) -> Path:
    if not gnupg_home.is_dir():
        raise GnuPGUnavailable(f"GnuPG home {gnupg_home} is not a directory")
    return gnupg_home


def gpg_command(gnupg_home: Path, binary: str = GPG) -> list[str]:
    """``gpg`` on exactly this home, in batch mode, with no option file and no network (see the top)."""
    return [
        binary,
        "--homedir",
        str(gnupg_home),
        "--no-options",
        "--batch",
        "--no-tty",
        "--no-greeting",
        "--no-auto-key-locate",
        "--no-auto-key-retrieve",
        "--disable-dirmngr",
    ]


def gpg_environment() -> dict[str, str]:
    """The environment to run :func:`gpg_command` in."""
    # GNUPGHOME dropped so --homedir is the only keyring; C locale so nothing depends on translations.
    env = {k: v for k, v in os.environ.items() if k not in ("GNUPGHOME", "GPG_AGENT_INFO")}
    env["LC_ALL"] = "C"
    return env


def _list_key(
    gnupg_home: Path, fingerprint: str, *, role: Role, secret: bool, binary: str
) -> KeyListing | None:
    """The key the keyring holds under ``fingerprint`` (primary or subkey match), or None.

    KeyMismatch when gpg returns more than one key for a full fingerprint (it never should).
    """
    listing = "--list-secret-keys" if secret else "--list-keys"
    command = [*gpg_command(gnupg_home, binary), "--with-colons", "--fixed-list-mode", listing, "--"]
    try:
        done = subprocess.run(
            [*command, fingerprint], capture_output=True, check=False, env=gpg_environment(), umask=0o077
        )
    except FileNotFoundError as exc:
        raise GnuPGUnavailable(f"{binary} is not installed (Debian: apt-get install -y gnupg)") from exc
    keys = parse_key_listing(done.stdout.decode("utf-8", "replace"))
    if len(keys) > 1:
        raise KeyMismatch(role, fingerprint, f"{len(keys)} keys match one fingerprint")
    return keys[0] if keys else None


@dataclass(frozen=True)
class Status:
    """gpg's ``--status-fd`` lines (``[GNUPG:] KEYWORD args``), in order."""

    lines: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, raw: bytes) -> Status:
        lines: list[tuple[str, tuple[str, ...]]] = []
        for line in raw.decode("utf-8", "replace").splitlines():
            if line.startswith(_STATUS_PREFIX):
                keyword, *args = line[len(_STATUS_PREFIX) :].split(" ")
                lines.append((keyword, tuple(args)))
        return cls(tuple(lines))

    def all(self, keyword: str) -> list[tuple[str, ...]]:
        return [args for kw, args in self.lines if kw == keyword]

    def first(self, keyword: str) -> tuple[str, ...] | None:
        return next((args for kw, args in self.lines if kw == keyword), None)

    def has(self, keyword: str) -> bool:
        return any(kw == keyword for kw, _ in self.lines)

    def count(self, keyword: str) -> int:
        return sum(1 for kw, _ in self.lines if kw == keyword)

    def keywords(self) -> str:
        """The keywords in order, for error messages (no arguments: PLAINTEXT's carries a file name)."""
        return " ".join(kw for kw, _ in self.lines if kw != "KEY_CONSIDERED")

    def error_codes(self) -> set[int]:
        """libgpg-error codes of ERROR and FAILURE lines."""
        codes: set[int] = set()
        for args in (*self.all("ERROR"), *self.all("FAILURE")):
            if len(args) >= 2 and args[1].isdigit():
                codes.add(int(args[1]) & 0xFFFF)
        return codes


@dataclass(frozen=True)
class _Digest:
    sha256: str
    size: int


@dataclass(frozen=True)
class _Run:
    returncode: int
    status: Status
    source: _Digest
    output: _Digest


def _widen_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):  # an unprivileged user over its pipe quota keeps 64 KiB
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def _passphrase_pipe(passphrase: str | None) -> int:
    """A pipe holding the passphrase and a newline (nothing when None); returns its read end."""
    data = b"" if passphrase is None else passphrase.encode("utf-8") + b"\n"
    if len(data) > 4096:
        # A pipe holds at least 4 KiB atomically; nobody's passphrase is longer.
        raise ValueError("passphrase longer than 4 KiB")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


def _check_passphrase(passphrase: str | None) -> None:
    # gpg reads one line from --passphrase-fd: a newline would silently truncate it.
    if passphrase is not None and any(ch in passphrase for ch in "\r\n\x00"):
        raise ValueError("passphrase must not contain a newline or NUL")


class _Feeder(threading.Thread):
    """Copies the source file into gpg's stdin, hashing it on the way."""

    def __init__(self, source: io.RawIOBase, sink: IO[bytes], progress: Progress | None = None) -> None:
        super().__init__(name="gpg-feeder", daemon=True)
        self._source = source
        self._sink = sink
        self._progress = progress
        self.hash = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None
        self.broken_pipe = False

    def run(self) -> None:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while n := self._source.readinto(buffer):
                chunk = view[:n]
                self.hash.update(chunk)  # hashlib releases the GIL on large buffers
                self.size += n
                _write_all(self._sink, chunk)
                if self._progress is not None:
                    self._progress.advance(n)
            if self._progress is not None:
                self._progress.finish()
        except BrokenPipeError:
            self.broken_pipe = True  # gpg stopped reading (refused early); its status says why
        except BaseException as exc:  # re-raised in the calling thread
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                self._sink.close()


class _Drain(threading.Thread):
    """Reads the status pipe to its end so gpg can never block on it."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(name="gpg-status", daemon=True)
        self._stream = stream
        self.data = bytearray()

    def run(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := self._stream.read(65536):
                self.data += chunk


def _write_all(sink: IO[bytes], chunk: memoryview) -> None:
    # Raw (unbuffered) writes may be partial, e.g. when a signal interrupts a pipe write.
    while chunk:
        written = sink.write(chunk)
        chunk = chunk[written or 0 :]


def _stream_through_gpg(
    command: Sequence[str],
    source: Path,
    sink: IO[bytes],
    *,
    passphrase: str | None,
    max_output: int | None = None,
) -> _Run:
    """Run gpg with ``source`` on stdin and its stdout into ``sink``; hash both sides; collect status.

    gpg's stderr (human messages, which name key owners) is discarded: the status lines say everything the
    decision needs, and nothing of a key owner or of the data reaches our logs.
    """
    passphrase_read = _passphrase_pipe(passphrase)
    try:
        status_read, status_write = os.pipe()
    except BaseException:
        os.close(passphrase_read)
        raise
    argv = [
        *command[:1],
        "--status-fd",
        str(status_write),
        "--pinentry-mode",
        "loopback",
        "--passphrase-fd",
        str(passphrase_read),
        *command[1:],
    ]
    with os.fdopen(status_read, "rb", buffering=0) as status_stream, source.open("rb", buffering=0) as data:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(status_write, passphrase_read),
                bufsize=0,
                env=gpg_environment(),
                umask=0o077,
            )
        except FileNotFoundError as exc:
            raise GnuPGUnavailable(f"{argv[0]} is not installed (Debian: apt-get install -y gnupg)") from exc
        finally:
            # Only gpg may hold the write end, or the status pipe would never reach its end.
            os.close(status_write)
            os.close(passphrase_read)
        # Input bytes through gpg, about every ten seconds for a large file (counts only).
        step = "encryption" if "--encrypt" in command else "decryption"
        progress = Progress(log, step, os.fstat(data.fileno()).st_size, unit="bytes")
        return _pump(proc, data, sink, status_stream, max_output, progress)


def _pump(
    proc: subprocess.Popen[bytes],
    source: io.RawIOBase,
    sink: IO[bytes],
    status_stream: IO[bytes],
    max_output: int | None,
    progress: Progress | None = None,
) -> _Run:
    assert proc.stdin is not None and proc.stdout is not None
    _widen_pipe(proc.stdin.fileno())
    _widen_pipe(proc.stdout.fileno())
    feeder = _Feeder(source, proc.stdin, progress)
    status = _Drain(status_stream)
    feeder.start()
    status.start()
    out_hash = hashlib.sha256()
    out_size = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        # bufsize=0 made stdout an unbuffered FileIO: readinto returns what the pipe holds, up to 1 MiB.
        stdout = cast(io.RawIOBase, proc.stdout)
        while n := stdout.readinto(buffer):
            out_size += n
            if max_output is not None and out_size > max_output:
                raise PlaintextTooLarge(f"output exceeds the limit of {max_output} bytes: refused")
            chunk = view[:n]
            out_hash.update(chunk)
            _write_all(sink, chunk)
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        returncode = proc.wait()
        feeder.join()
        status.join()
    if feeder.error is not None:
        raise feeder.error
    return _Run(
        returncode=returncode,
        status=Status.parse(bytes(status.data)),
        source=_Digest(feeder.hash.hexdigest(), feeder.size),
        output=_Digest(out_hash.hexdigest(), out_size),
    )


@contextlib.contextmanager
def _atomic_output(destination: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A 0600 temporary file beside ``destination`` for the caller to commit; deleted on any failure."""
    fd, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb", buffering=0) as sink:
            yield sink, temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _commit(sink: IO[bytes], temporary: Path, destination: Path) -> None:
    """fsync, then rename: the final name only ever holds a complete, checked file."""
    os.fsync(sink.fileno())
    os.replace(temporary, destination)
    directory = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _check_paths(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(f"input {source} is not a file")
    if destination.exists() and destination.resolve() == source.resolve():
        raise ValueError(f"output {destination} is the input file")


# -- key checks -------------------------------------------------------------------------------------------


def _check_primary(role: Role, pinned: str, key: KeyListing | None, *, secret: bool = False) -> KeyListing:
    """The pinned key, refusing a missing, mismatched, revoked, expired, invalid or disabled one."""
    if key is None:
        where = "secret key is not in the keyring" if secret else "is not in the keyring"
        raise MissingKey(role, pinned, where)
    found = key.primary.fingerprint
    if found != pinned:
        raise KeyMismatch(
            role, pinned, f"the keyring resolves it to primary key {found}: pin the primary key's fingerprint"
        )
    validity = key.primary.validity
    if validity == "r":
        raise KeyRevoked(role, pinned, "has been revoked")
    if validity == "e":
        when = key.primary.expires_at
        on = f" on {when:%Y-%m-%d}" if when else ""
        raise KeyExpired(role, pinned, f"expired{on}", when)
    if validity == "i":
        raise KeyUnusable(role, pinned, "is invalid (no valid self-signature)")
    if validity == "d" or "D" in key.capabilities:
        raise KeyUnusable(role, pinned, "is disabled in the keyring")
    if validity == "n":
        raise KeyUnusable(role, pinned, "is marked as never valid in the keyring")
    return key


def _choose_part(role: Role, pinned: str, key: KeyListing, usage: str, *, secret: bool) -> KeyPart:
    """The newest usable (sub)key with ``usage`` (gpg's own rule), refusing when none is left."""
    capable = [p for p in key.parts if usage in p.usage and (p.has_secret or not secret)]
    usable = [p for p in capable if not p.unusable]
    if usable:
        # Prefer subkeys, as gpg does; the primary only when no subkey can.
        return max(usable, key=lambda p: (p is not key.primary, p.created))
    job = "encryption" if usage == "e" else "signing"
    if any(p.validity == "e" for p in capable):
        when = max((p.expires_at for p in capable if p.expires_at), default=None)
        on = f" on {when:%Y-%m-%d}" if when else ""
        raise KeyExpired(role, pinned, f"every {job} subkey expired{on}", when)
    if any(p.validity == "r" for p in capable):
        raise KeyRevoked(role, pinned, f"every {job} subkey has been revoked")
    what = "with its secret part in the keyring " if secret else ""
    raise KeyUnusable(role, pinned, f"has no usable {job} (sub)key {what}")


def _warn_if_expiring(role: Role, pinned: str, key: KeyListing, part: KeyPart) -> None:
    soonest = min((t for t in (key.primary.expires_at, part.expires_at) if t), default=None)
    if soonest is not None and soonest - datetime.now(UTC) < EXPIRY_WARNING:
        log.warning("%s key %s expires on %s: exchange a new key with the partner", role, pinned, soonest)


def _recipient_key(gnupg_home: Path, pinned: str, binary: str) -> KeyPart:
    listing = _list_key(gnupg_home, pinned, role="recipient", secret=False, binary=binary)
    key = _check_primary("recipient", pinned, listing)
    if key.primary.validity not in ("f", "u"):
        # gpg refuses an uncertified key in batch mode ("skipped: Unusable public key"); say what to do.
        raise KeyNotCertified(
            "recipient",
            pinned,
            "is not certified in this keyring: check the fingerprint with the partner out of band, "
            "then certify it (gpg --quick-lsign-key)",
        )
    part = _choose_part("recipient", pinned, key, "e", secret=False)
    _warn_if_expiring("recipient", pinned, key, part)
    return part


def _signing_key(gnupg_home: Path, pinned: str, binary: str) -> KeyPart:
    key = _list_key(gnupg_home, pinned, role="signer", secret=True, binary=binary)
    key = _check_primary("signer", pinned, key, secret=True)
    part = _choose_part("signer", pinned, key, "s", secret=True)
    _warn_if_expiring("signer", pinned, key, part)
    return part


# -- the encrypted message's recipients -------------------------------------------------------------------

_TAG_PKESK: Final = 1
_TAG_SKESK: Final = 3
_TAG_SEIPD: Final = 18
_TAG_AEAD: Final = 20
_HEAD_BYTES: Final = 65536


def _packet_header(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """``(tag, body offset, body length)`` of the packet at ``offset`` (RFC 4880 4.2); None when partial.

    A partial or indeterminate length gives length -1: only data packets use them.
    """
    if offset + 2 > len(data):
        return None
    ctb = data[offset]
    if not ctb & 0x80:
        raise NotEncrypted("not OpenPGP (bad packet header)")
    if ctb & 0x40:  # new format
        tag, first = ctb & 0x3F, data[offset + 1]
        if first < 192:
            return tag, offset + 2, first
        if first < 224:
            if offset + 3 > len(data):
                return None
            return tag, offset + 3, ((first - 192) << 8) + data[offset + 2] + 192
        if first == 255:
            if offset + 6 > len(data):
                return None
            return tag, offset + 6, int.from_bytes(data[offset + 2 : offset + 6], "big")
        return tag, offset + 2, -1
    tag, kind = (ctb >> 2) & 0x0F, ctb & 0x03
    if kind == 3:
        return tag, offset + 1, -1
    width = 1 << kind
    if offset + 1 + width > len(data):
        return None
    return tag, offset + 1 + width, int.from_bytes(data[offset + 1 : offset + 1 + width], "big")


def parse_recipients(head: bytes) -> tuple[str, ...]:
    """Key ids (16 hex) of the public-key session-key packets in front of an encrypted message.

    NotEncrypted when the message starts otherwise, has a symmetric (passphrase) session key, or its
    encrypted data packet is not integrity protected (v1 SEIPD with MDC, or AEAD).
    """
    recipients: list[str] = []
    offset = 0
    while True:
        header = _packet_header(head, offset)
        if header is None:
            raise NotEncrypted("no encrypted data packet in the first 64 KiB")
        tag, body, length = header
        if tag == _TAG_PKESK and length >= 9 and body + 9 <= len(head):
            if head[body] != 3:
                raise NotEncrypted(f"unsupported session-key packet version {head[body]}")
            recipients.append(head[body + 1 : body + 9].hex().upper())
        elif tag == _TAG_SKESK:
            raise NotEncrypted("message has a passphrase (symmetric) session key")
        elif tag in (_TAG_SEIPD, _TAG_AEAD):
            return tuple(recipients)
        else:
            raise NotEncrypted(f"unexpected packet (tag {tag}) before the encrypted data")
        offset = body + length


def recipient_key_ids(path: Path) -> tuple[str, ...]:
    """Key ids the message in ``path`` is encrypted to (reads only its first 64 KiB)."""
    with path.open("rb") as fh:
        return parse_recipients(fh.read(_HEAD_BYTES))


# -- interpreting the status output -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Signed:
    cipher: int
    integrity: str
    digest: int
    created: datetime


def _timestamp(value: str) -> datetime:
    # VALIDSIG may give ISO 8601 (with --fixed-list-mode off) or seconds since the epoch.
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def _integrity(mdc_method: str, aead: str) -> str | None:
    if aead not in ("", "0"):
        return "AEAD-" + AEAD_NAMES.get(int(aead), aead) if aead.isdigit() else "AEAD"
    if mdc_method not in ("", "0"):
        return "MDC"
    return None


def _invalid_key(role: Role, pinned: str, reason: str, status: Status) -> KeyProblem:
    """The typed error for an INV_RECP / INV_SGNR reason (doc/DETAILS), with KEYEXPIRED/KEYREVOKED hints."""
    if reason == _REASON_EXPIRED or status.has("KEYEXPIRED"):
        stamp = (status.first("KEYEXPIRED") or ("",))[0]
        when = datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None
        return KeyExpired(role, pinned, "expired (gpg refused it)", when)
    if reason == _REASON_REVOKED or status.has("KEYREVOKED"):
        return KeyRevoked(role, pinned, "has been revoked (gpg refused it)")
    if reason in (_REASON_NOT_FOUND, _REASON_NOT_SECRET):
        return MissingKey(role, pinned, "gpg did not find it")
    if reason == _REASON_NOT_TRUSTED:
        return KeyNotCertified(role, pinned, "gpg does not consider it valid")
    if reason == _REASON_WRONG_USAGE:
        return KeyUnusable(role, pinned, "gpg says it cannot be used for this")
    if reason == _REASON_DISABLED:
        return KeyUnusable(role, pinned, "is disabled")
    return KeyUnusable(role, pinned, f"gpg refused it (reason {reason or 'unspecified'})")


def interpret_encryption(
    status: Status, returncode: int, *, recipient: str, signer: str, signing_key: KeyPart
) -> _Signed:
    """Success only when gpg reported a complete, integrity-protected encryption and one signature by
    ``signing_key``; otherwise the most specific typed error."""
    invalid_recipient = status.first("INV_RECP")
    if invalid_recipient is not None:
        raise _invalid_key("recipient", recipient, (*invalid_recipient, "")[0], status)
    invalid_signer = status.first("INV_SGNR")
    if invalid_signer is not None:
        raise _invalid_key("signer", signer, (*invalid_signer, "")[0], status)
    if status.has("NO_RECP"):
        raise KeyUnusable("recipient", recipient, "gpg found no valid recipient")
    if status.has("NO_SGNR"):
        raise KeyUnusable("signer", signer, "gpg found no valid signing key")
    if status.has("BAD_PASSPHRASE") or status.error_codes() & _PASSPHRASE_ERRORS:
        raise BadPassphrase(f"the passphrase for signer key {signer} was refused")
    begin = status.first("BEGIN_ENCRYPTION")
    if status.has("FAILURE") or status.has("ERROR") or begin is None or not status.has("END_ENCRYPTION"):
        raise EncryptionFailed(f"gpg did not complete the encryption (status: {status.keywords()})")
    mdc, algo, aead = (*begin, "", "")[:3]
    integrity = _integrity(mdc, aead)
    if integrity is None:
        raise EncryptionFailed("gpg encrypted without integrity protection (no MDC)")
    if not algo.isdigit() or int(algo) not in _ENCRYPT_CIPHERS:
        raise EncryptionFailed(f"gpg chose cipher {CIPHER_NAMES.get(int(algo), algo)}, not AES")
    created = status.all("SIG_CREATED")
    if len(created) != 1:
        raise EncryptionFailed(f"expected one signature, gpg made {len(created)}")
    sig = created[0]
    if len(sig) < 6 or sig[5].upper() != signing_key.fingerprint:
        raise KeyMismatch("signer", signer, f"gpg signed with {sig[5] if len(sig) >= 6 else 'no key'}")
    digest = int(sig[2]) if sig[2].isdigit() else 0
    if digest in _WEAK_DIGESTS or digest not in DIGEST_NAMES:
        raise EncryptionFailed(f"gpg signed with digest {DIGEST_NAMES.get(digest, digest)}")
    if returncode != 0:
        raise EncryptionFailed(f"gpg exited with {returncode} (status: {status.keywords()})")
    return _Signed(cipher=int(algo), integrity=integrity, digest=digest, created=_timestamp(sig[4]))


@dataclass(frozen=True)
class _Verified:
    cipher: int
    integrity: str
    digest: int
    created: datetime
    signing_key: str
    decryption_key: str


def _check_decryption(status: Status, name: str) -> tuple[int, str, str]:
    """(cipher, integrity, decryption key) when gpg decrypted an integrity-protected message."""
    if not status.has("BEGIN_DECRYPTION") and not status.has("ENC_TO"):
        # Plaintext-only (literal data), signature-only, clear-signed, or not OpenPGP at all.
        raise NotEncrypted(f"{name}: not an encrypted OpenPGP message")
    if status.has("NEED_PASSPHRASE_SYM"):
        raise NotEncrypted(f"{name}: encrypted with a passphrase, not to our public key")
    info = status.first("DECRYPTION_INFO")
    if info is not None:
        mdc, algo, aead = (*info, "", "")[:3]
        if _integrity(mdc, aead) is None:
            # gpg >= 2.2.8 forces these to fail too; checked first so the error says why.
            raise NotIntegrityProtected(f"{name}: message has no integrity protection (no MDC): refused")
        if algo.isdigit() and int(algo) in _WEAK_CIPHERS:
            raise WeakAlgorithm(f"{name}: encrypted with 64-bit block cipher {CIPHER_NAMES[int(algo)]}")
    if status.has("BADMDC"):
        raise IntegrityCheckFailed(f"{name}: integrity check (MDC) failed: modified or truncated")
    decryption_key = status.first("DECRYPTION_KEY")
    if decryption_key is None:
        if status.has("BAD_PASSPHRASE") or status.error_codes() & _PASSPHRASE_ERRORS:
            raise BadPassphrase(f"{name}: the passphrase for our decryption key was refused")
        if status.has("NO_SECKEY"):
            ids = " ".join(args[0] for args in status.all("NO_SECKEY") if args)
            raise NoSecretKey(f"{name}: encrypted to key id(s) {ids}, none of which is ours")
        raise DecryptionFailed(f"{name}: the session key could not be decrypted ({status.keywords()})")
    if status.has("DECRYPTION_FAILED") or not status.has("DECRYPTION_OKAY"):
        if status.has("BADSIG"):
            raise BadSignature(f"{name}: bad signature: the message was modified")
        raise IntegrityCheckFailed(f"{name}: decryption did not complete: modified or truncated")
    if info is None:
        raise NotIntegrityProtected(f"{name}: gpg reported no integrity protection information")
    mdc, algo, aead = (*info, "", "")[:3]
    integrity = _integrity(mdc, aead)
    if integrity is None:  # unreachable: refused above; kept so the rule reads in one place
        raise NotIntegrityProtected(f"{name}: message has no integrity protection")
    if integrity == "MDC" and not status.has("GOODMDC"):
        raise NotIntegrityProtected(f"{name}: gpg did not confirm the MDC (no GOODMDC)")
    if status.count("PLAINTEXT") != 1:
        raise DecryptionFailed(f"{name}: expected one literal data packet, found {status.count('PLAINTEXT')}")
    return int(algo) if algo.isdigit() else 0, integrity, decryption_key[0].upper()


def _check_signature(status: Status, name: str, expected: str) -> tuple[int, datetime, str]:
    """(digest, created, signing key) when exactly one good signature by ``expected`` covers the data."""
    if status.has("BADSIG"):
        raise BadSignature(f"{name}: bad signature: the message was modified")
    for args in status.all("ERRSIG"):
        # ERRSIG <keyid> <pkalgo> <hashalgo> <sig_class> <time> <rc> [<fpr>]; rc 9 = no public key.
        if len(args) >= 6 and args[5] == "9":
            raise UnknownSigner(f"{name}: signed by key id {args[0]}, which is not in the keyring")
        digest = int(args[2]) if len(args) > 2 and args[2].isdigit() else 0
        if digest in _WEAK_DIGESTS:
            raise WeakAlgorithm(f"{name}: signed with weak digest {DIGEST_NAMES[digest]}")
        code = args[5] if len(args) > 5 else "unknown"
        raise BadSignature(f"{name}: signature could not be checked (gpg error code {code})")
    if status.has("EXPKEYSIG"):
        raise KeyExpired("signer", expected, f"{name}: signed by an expired key")
    if status.has("REVKEYSIG"):
        raise KeyRevoked("signer", expected, f"{name}: signed by a revoked key")
    if status.has("EXPSIG"):
        raise BadSignature(f"{name}: the signature has expired")
    valid = status.all("VALIDSIG")
    signatures = max(status.count("NEWSIG"), len(valid))
    if signatures == 0:
        raise UnsignedMessage(f"{name}: message is not signed")
    if signatures > 1:
        raise MultipleSignatures(f"{name}: {signatures} signatures, expected exactly one")
    if len(valid) != 1 or status.count("GOODSIG") != 1:
        raise BadSignature(f"{name}: gpg did not report a good signature ({status.keywords()})")
    args = valid[0]
    # VALIDSIG <fpr> <date> <timestamp> <expire> <version> <reserved> <pkalgo> <hashalgo> <class> <primary>
    if len(args) < 10:
        raise BadSignature(f"{name}: VALIDSIG without the primary key fingerprint")
    primary = args[9].upper()
    if primary != expected:
        raise WrongSigner(f"{name}: signed by {primary}, expected {expected}")
    digest = int(args[7]) if args[7].isdigit() else 0
    if digest in _WEAK_DIGESTS or digest not in DIGEST_NAMES:
        raise WeakAlgorithm(f"{name}: signed with digest {DIGEST_NAMES.get(digest, digest)}")
    return digest, _timestamp(args[2]), args[0].upper()


def interpret_decryption(status: Status, returncode: int, *, name: str, expected_signer: str) -> _Verified:
    """Success only when gpg decrypted an integrity-protected message to our key and found exactly one
    valid signature by ``expected_signer``; otherwise the most specific typed error."""
    cipher, integrity, decryption_key = _check_decryption(status, name)
    digest, created, signing_key = _check_signature(status, name, expected_signer)
    if returncode != 0:
        raise DecryptionFailed(f"{name}: gpg exited with {returncode} ({status.keywords()})")
    return _Verified(cipher, integrity, digest, created, signing_key, decryption_key)


# -- the two operations -----------------------------------------------------------------------------------


def encrypt_and_sign(
    plaintext: Path,
    ciphertext: Path,
    *,
    recipient_fingerprint: str,
    signer_fingerprint: str,
    passphrase: str,
    gnupg_home: Path,
    gpg_binary: str = GPG,
) -> EncryptionResult:
    """Encrypt ``plaintext`` to exactly the pinned recipient, signed by the pinned signer, as ``ciphertext``.

    Binary OpenPGP, no compression, AES256 preferred, MDC. Both keys are checked in the keyring first
    (present, the pinned primary, not expired or revoked, certified, able to encrypt / sign), gpg's status
    output must report the encryption and the signature, and the output must name exactly one recipient,
    the chosen key. ``ciphertext`` appears only when all of that holds; it is replaced if it exists.
    """
    recipient = normalise_fingerprint(recipient_fingerprint)
    signer = normalise_fingerprint(signer_fingerprint)
    _check_passphrase(passphrase)
    home = _check_home(gnupg_home)
    _check_paths(plaintext, ciphertext)
    encryption_key = _recipient_key(home, recipient, gpg_binary)
    signing_key = _signing_key(home, signer, gpg_binary)
    command = [
        *gpg_command(home, gpg_binary),
        "--sign",
        "--encrypt",
        # '!' forces exactly this (sub)key: no other key, subkey or alias can be substituted.
        "--recipient",
        f"{encryption_key.fingerprint}!",
        "--local-user",
        f"{signing_key.fingerprint}!",
        "--no-encrypt-to",
        "--no-throw-keyids",
        # Compression costs about 9x in throughput here, and only OpenPGP would use it.
        "--compress-algo",
        "none",
        "--personal-cipher-preferences",
        "AES256 AES192 AES",
        "--personal-digest-preferences",
        "SHA512 SHA384 SHA256",
        "--output",
        "-",
    ]
    with _atomic_output(ciphertext) as (sink, temporary):
        run = _stream_through_gpg(command, plaintext, sink, passphrase=passphrase)
        try:
            signed = interpret_encryption(
                run.status, run.returncode, recipient=recipient, signer=signer, signing_key=signing_key
            )
        except KeyUnusable:
            # gpg 2.2 says only "INV_RECP 0" for a key that expired or was revoked since the check above:
            # list it again so the error names the cause.
            _recipient_key(home, recipient, gpg_binary)
            raise
        try:
            recipients = recipient_key_ids(temporary)
        except NotEncrypted as exc:
            raise EncryptionFailed(f"gpg's output is not an encrypted message: {exc}") from exc
        if recipients != (encryption_key.key_id,):
            raise KeyMismatch(
                "recipient",
                recipient,
                f"output is encrypted to {list(recipients)}, not {encryption_key.key_id}",
            )
        _commit(sink, temporary, ciphertext)
    result = EncryptionResult(
        plaintext_sha256=run.source.sha256,
        plaintext_bytes=run.source.size,
        ciphertext_sha256=run.output.sha256,
        ciphertext_bytes=run.output.size,
        recipient_fingerprint=recipient,
        recipient_key_fingerprint=encryption_key.fingerprint,
        signer_fingerprint=signer,
        signing_key_fingerprint=signing_key.fingerprint,
        cipher_algo=CIPHER_NAMES[signed.cipher],
        digest_algo=DIGEST_NAMES[signed.digest],
        integrity=signed.integrity,
        signature_created=signed.created,
    )
    log.info(
        "encrypted %s: %s bytes to %s bytes, %s, to %s, signed by %s",
        ciphertext.name,
        result.plaintext_bytes,
        result.ciphertext_bytes,
        result.cipher_algo,
        recipient,
        signer,
    )
    return result


def decrypt_and_verify(
    ciphertext: Path,
    plaintext: Path,
    *,
    expected_signer_fingerprint: str,
    passphrase: str | None,
    gnupg_home: Path,
    max_plaintext_bytes: int | None = None,
    gpg_binary: str = GPG,
) -> DecryptionResult:
    """Decrypt ``ciphertext`` into ``plaintext`` only if it is integrity protected and signed by exactly the
    pinned signer.

    Refused (typed error, nothing written under ``plaintext``): not encrypted to a key of ours, no MDC/AEAD,
    modified or truncated, unsigned, more than one signature, a bad, unknown, expired, revoked or different
    signer, a 64-bit block cipher or a SHA-1/MD5 signature, or a plaintext over ``max_plaintext_bytes``
    (a compression bomb). ``passphrase`` unlocks our decryption key (None for an unprotected key).
    """
    signer = normalise_fingerprint(expected_signer_fingerprint)
    _check_passphrase(passphrase)
    home = _check_home(gnupg_home)
    _check_paths(ciphertext, plaintext)
    # The expected signer must be in the keyring, as pinned, and usable: refused before any decryption.
    _check_primary("signer", signer, _list_key(home, signer, role="signer", secret=False, binary=gpg_binary))
    command = [*gpg_command(home, gpg_binary), "--decrypt", "--output", "-"]
    with _atomic_output(plaintext) as (sink, temporary):
        run = _stream_through_gpg(
            command, ciphertext, sink, passphrase=passphrase, max_output=max_plaintext_bytes
        )
        verified = interpret_decryption(
            run.status, run.returncode, name=ciphertext.name, expected_signer=signer
        )
        _commit(sink, temporary, plaintext)
    result = DecryptionResult(
        plaintext_sha256=run.output.sha256,
        plaintext_bytes=run.output.size,
        ciphertext_sha256=run.source.sha256,
        ciphertext_bytes=run.source.size,
        signer_fingerprint=signer,
        signing_key_fingerprint=verified.signing_key,
        signature_created=verified.created,
        digest_algo=DIGEST_NAMES[verified.digest],
        cipher_algo=CIPHER_NAMES.get(verified.cipher, str(verified.cipher)),
        integrity=verified.integrity,
        decryption_key_fingerprint=verified.decryption_key,
    )
    log.info(
        "decrypted %s: %s bytes to %s bytes, %s, signed by %s",
        ciphertext.name,
        result.ciphertext_bytes,
        result.plaintext_bytes,
        result.integrity,
        signer,
    )
    return result
