"""A local partner SFTP server: OpenSSH ``sshd`` on 127.0.0.1, for the demo and the integration tests.

Partners run real SFTP servers with pinned host keys, so the demo runs a real one too rather than a Python
imitation: the same ``SFTPHook`` code path, the same host-key checks and the same failure modes. The server
is SFTP only (``ForceCommand internal-sftp``), accepts public keys only, and when started as root jails
clients in the SFTP root with ``ChrootDirectory``.

The folders come from the data agreements (``include/agreements/*.yaml``), the single source of truth:
every agreement's ``sftp.remote_inbox`` (the council delivers there) and ``sftp.remote_outbox`` (the
partner's returns) is created under the SFTP root, so adding an agreement file adds its folders at the
next ``start``, with no code change.

Remote paths are relative to the SFTP root (``dwp/inbox``): the session starts there whether or not the
server is chrooted, so the same connection and agreement work in both modes.

**One login and one jail per partner.** When the folders come from the agreements and sshd runs as root,
each partner code gets a local system account (:func:`partner_login`, e.g. ``sfp-dwp``: the council's
login on that partner's server), its own ``authorized_keys`` file and a ``Match User`` block whose
``ChrootDirectory`` is the partner's top folder (``<root>/dwp``). Inside that jail a link ``dwp -> .``
keeps the agreement's ``dwp/inbox`` valid, and nothing of another partner exists: the DWP key cannot even
name the police folders. Each partner stands for a different organisation's server, so no login of one
may reach another's folders (the agreements' ``sftp`` sections; the privacy notice's "shared only with
the partner named for each purpose"). The local user's own login (the tests' and the operator's) keeps
the whole root.

CLI, for the set-up script and the Makefile::

    python -m sf_demo.sftp_server start  --state-dir var/sftp --root var/sftp/root \
        [--agreements-dir DIR | --folders dwp/inbox,dwp/outbox | --partners dwp,ons]
    python -m sf_demo.sftp_server status --state-dir var/sftp
    python -m sf_demo.sftp_server stop   --state-dir var/sftp

``start`` leaves ``server.json`` in the state directory: what :class:`SftpServerInfo` reads back for the
secrets generator (``python -m sf_demo.secrets --sftp-state-dir var/sftp``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from supporting_families.config import Agreement, SourcesConfig, load_agreements, load_sources
from supporting_families.transport.paths import check_remote_dir
from supporting_families.transport.sftp import SftpEndpoint

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SSHD = Path("/usr/sbin/sshd")
# sshd refuses to start as root without its privilege-separation directory; Debian creates it at boot
# through systemd, which a container or a fresh chroot never ran.
PRIVSEP_DIR = Path("/run/sshd")
SERVER_INFO = "server.json"

_PORT_RE = re.compile(r"^\s*Port\s+(\d+)\s*$", re.MULTILINE)
#: The council's login on a partner's server: ``sfp-<partner code>`` (a local system account here).
PARTNER_LOGIN_PREFIX = "sfp-"
# useradd's own rule (Debian's NAME_REGEX without the trailing $), and Linux's 32-byte limit.
_LOGIN_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: sshd reads a partner login's keys through this, as root: its AuthorizedKeysFile would be opened as the
#: login itself, which cannot traverse the private state directory.
CAT = Path("/usr/bin/cat")

Box = Literal["inbox", "outbox"]
BOXES: tuple[Box, ...] = ("inbox", "outbox")


class SftpServerError(RuntimeError):
    """The local SFTP server cannot be set up, started or stopped; the message says why and what to do."""


def agreement_folders(agreements: Iterable[Agreement]) -> tuple[str, ...]:
    """Every agreement's ``remote_inbox`` and ``remote_outbox``, in agreement order, each once.

    Several agreements with one partner may share folders; a set would lose the stable order that makes
    ``status`` and ``server.json`` diff cleanly between runs.
    """
    folders: dict[str, None] = {}
    for agreement in agreements:
        folders.setdefault(agreement.sftp.remote_inbox)
        folders.setdefault(agreement.sftp.remote_outbox)
    return tuple(folders)


def default_folders(agreements_dir: Path | None = None) -> tuple[str, ...]:
    """The folders the agreements in ``agreements_dir`` (default: the project's agreements) name.

    ``resolve=False``: set-up runs before the partner fingerprints exist, and folders do not depend on them.
    """
    folders = agreement_folders(load_agreements(agreements_dir, resolve=False))
    # And each voluntary-sector agency's outbox (include/sources.yaml, `inbound:`): it sends extracts.
    return tuple(dict.fromkeys((*folders, *inbound_folders())))


def inbound_jails(sources: SourcesConfig | None = None) -> dict[str, str]:
    """Each agency's login and its jail, the top folder of its outbox (one agency, one jail)."""
    config = sources if sources is not None else load_sources()
    return {
        partner_login(s.inbound.agency.code): check_remote_dir(s.inbound.sftp.remote_outbox).split("/")[0]
        for s in config.sources.values()
        if s.inbound is not None
    }


def inbound_folders(sources: SourcesConfig | None = None) -> tuple[str, ...]:
    """The outbox of every source that arrives over SFTP (``inbound:`` in ``include/sources.yaml``)."""
    config = sources if sources is not None else load_sources()
    return tuple(s.inbound.sftp.remote_outbox for s in config.sources.values() if s.inbound is not None)


def partner_folders(partners: Iterable[str]) -> tuple[str, ...]:
    """``<partner>/inbox`` and ``<partner>/outbox`` per name: the ``--partners`` shorthand."""
    return tuple(f"{partner}/{box}" for partner in partners for box in BOXES)


def partner_login(partner_code: str) -> str:
    """The demo sshd's login for ``partner_code`` (``sfp-dwp``)."""
    login = PARTNER_LOGIN_PREFIX + partner_code
    if not _LOGIN_RE.fullmatch(login):
        raise SftpServerError(f"partner code {partner_code!r} cannot name a local account ({login!r})")
    return login


def partner_jails(agreements: Iterable[Agreement]) -> dict[str, str]:
    """Each partner's login and the one top folder that holds all its agreements' folders (its jail).

    A partner whose folders sit under two top folders, or a top folder two partners share, cannot be
    jailed apart: refused, because the jail is what keeps one partner's key out of another's folders.
    """
    jails: dict[str, str] = {}
    owners: dict[str, str] = {}
    for agreement in agreements:
        login = partner_login(agreement.partner.code)
        for folder in (agreement.sftp.remote_inbox, agreement.sftp.remote_outbox):
            top = check_remote_dir(folder).split("/")[0]
            if jails.setdefault(login, top) != top:
                raise SftpServerError(
                    f"partner {agreement.partner.code}: folders under both {jails[login]!r} and {top!r}; "
                    "one jail per partner needs one top folder"
                )
            if owners.setdefault(top, login) != login:
                raise SftpServerError(f"top folder {top!r} is shared by {owners[top]} and {login}")
    return jails


def ensure_accounts(logins: Iterable[str], useradd: str = "useradd") -> list[str]:
    """Create each login as a system account unless it exists; return those created (root only).

    No home, no shell, password field ``*``: sshd (UsePAM no) refuses an account whose password is locked
    (``!``), but ``*`` only means no password works. Keys are the only way in, and ForceCommand makes any
    session SFTP.
    """
    created: list[str] = []
    for login in logins:
        try:
            pwd.getpwnam(login)
            continue
        except KeyError:
            pass
        done = subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "--password",
                "*",
                login,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        # Exit 9: another set-up created it meanwhile.
        if done.returncode not in (0, 9):
            raise SftpServerError(f"useradd {login} failed: {done.stderr.strip()}")
        log.info("created the local SFTP account %s", login)
        created.append(login)
    return created


def local_user() -> str:
    """The login name of the effective user: the only account a project-run sshd can log in."""
    return pwd.getpwuid(os.geteuid()).pw_name


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_ssh_keypair(path: Path, comment: str, ssh_keygen: str = "ssh-keygen") -> str:
    """Create an ed25519 key pair at ``path`` (and ``path.pub``) unless it exists; return the public key.

    An existing key is never replaced: host keys are pinned by clients and client keys are authorised on
    servers, so a silent new key would break both.
    """
    pub = path.with_name(path.name + ".pub")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # An empty passphrase: sshd cannot prompt for one, and the file's 0600 mode protects it.
        result = subprocess.run(
            [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SftpServerError(f"ssh-keygen failed for {path}: {result.stderr.strip()}")
        log.info("generated ed25519 key %s", path)
    elif not pub.exists():
        derived = subprocess.run(
            [ssh_keygen, "-y", "-f", str(path)], capture_output=True, text=True, check=False
        )
        if derived.returncode != 0:
            raise SftpServerError(f"cannot derive the public key of {path}: {derived.stderr.strip()}")
        pub.write_text(f"{derived.stdout.strip()} {comment}\n", encoding="utf-8")
    path.chmod(0o600)
    return read_public_key(pub)


def read_public_key(pub_file: Path) -> str:
    """``"ssh-ed25519 AAAA..."`` from an OpenSSH public key file, without its comment.

    Airflow's SSH hook reads a bare base64 host key as RSA, so the type prefix must stay.
    """
    parts = pub_file.read_text(encoding="utf-8").split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
        raise SftpServerError(f"{pub_file} is not an OpenSSH public key")
    return f"{parts[0]} {parts[1]}"


def authorize_key(authorized_keys: Path, public_key: str) -> bool:
    """Add ``public_key`` to ``authorized_keys`` unless it is there; return True when it was added.

    Each line carries ``restrict`` (no forwarding, no pty, no rc file) on top of the server's ForceCommand,
    so a key that leaks can only ever do SFTP.
    """
    parts = public_key.split()
    if len(parts) < 2:
        raise ValueError("a public key looks like 'ssh-ed25519 AAAA... [comment]'")
    key_type, blob = parts[0], parts[1]
    existing = authorized_keys.read_text(encoding="utf-8") if authorized_keys.exists() else ""
    for line in existing.splitlines():
        if blob in line.split():
            return False
    authorized_keys.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(authorized_keys, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        if existing and not existing.endswith("\n"):
            fh.write("\n")
        fh.write(" ".join(["restrict", key_type, blob, *parts[2:]]) + "\n")
    authorized_keys.chmod(0o600)
    return True


def chroot_problems(path: Path) -> list[str]:
    """Why sshd would refuse ``path`` as a ChrootDirectory (empty when it is fine).

    sshd (session.c, safely_chroot) requires the directory and every parent up to ``/`` to be owned by
    root and not writable by group or others, or a user could swap a component and escape the jail.
    """
    problems: list[str] = []
    path = Path(os.path.abspath(path))
    for component in [*reversed(path.parents), path]:
        try:
            st = component.stat()
        except FileNotFoundError:
            problems.append(f"{component} does not exist")
            break
        if not stat.S_ISDIR(st.st_mode):
            problems.append(f"{component} is not a directory")
        if st.st_uid != 0:
            owner = _owner_name(st.st_uid)
            problems.append(f"{component} is owned by {owner}, not root")
        if st.st_mode & 0o022:
            problems.append(f"{component} has mode {stat.filemode(st.st_mode)}: group or others can write it")
    return problems


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _sshd_quote(value: Path | str) -> str:
    """Quote a path for sshd_config, escaping ``%`` which sshd expands as a token in these options."""
    text = str(value)
    if '"' in text or "\n" in text:
        raise SftpServerError(f"path {text!r} cannot be written into sshd_config")
    return '"' + text.replace("%", "%%") + '"'


def _sftp_start_dir(value: Path | str) -> str:
    """The ``internal-sftp -d`` argument: unquoted, because sshd splits ForceCommand on whitespace but keeps
    double quotes as part of the word (OpenSSH 9.2), so a quoted directory is never found and the session
    silently starts in the login's home instead of the SFTP root. ``%`` is escaped: ``-d`` expands tokens."""
    text = str(value)
    if any(c.isspace() or c in "\"'\\" for c in text):
        raise SftpServerError(
            f"the SFTP root {text!r} contains whitespace, a quote or a backslash, which sshd's ForceCommand "
            "cannot pass to internal-sftp; choose a plainer path"
        )
    return text.replace("%", "%%")


def _process_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (an unreaped zombie still answers kill(pid, 0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    # The state letter follows the command name, which is in parentheses and may itself hold spaces.
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class LocalSftpServer:
    """OpenSSH ``sshd`` on 127.0.0.1 serving ``root`` over SFTP, with its keys and config in ``state_dir``.

    ``folders``: the remote folders to create under ``root`` (relative, e.g. ``dwp/inbox``); None derives
    them from the agreements in ``agreements_dir`` (None: the project's agreements), as the demo does.
    The resolved list is :attr:`remote_dirs`.
    ``requested_port``: None picks a free port at first start and keeps it on later starts while it stays
    free. ``chroot``: None jails clients when running as root (the only case sshd can chroot) and not
    otherwise; True insists; False opts out explicitly.
    ``jails``: partner login -> its top folder (:func:`partner_jails`); None derives them from the
    agreements when the folders do too and the server chroots, and gives none otherwise.
    """

    root: Path
    state_dir: Path
    folders: Sequence[str] | None = None
    agreements_dir: Path | None = None
    requested_port: int | None = None
    chroot: bool | None = None
    jails: dict[str, str] | None = None
    sshd: Path = SSHD
    ssh_keygen: str = "ssh-keygen"
    start_timeout: float = 10.0
    _port: int | None = field(default=None, init=False, repr=False)
    _remote_dirs: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(os.path.abspath(self.root))
        self.state_dir = Path(os.path.abspath(self.state_dir))
        if self.folders is None:
            agreements = load_agreements(self.agreements_dir, resolve=False)
            # With each voluntary-sector agency's outbox (include/sources.yaml, inbound:), in its own jail.
            folders: Sequence[str] = (*agreement_folders(agreements), *inbound_folders())
            if self.jails is None:
                self.jails = partner_jails(agreements) | inbound_jails() if self.uses_chroot else {}
        else:
            folders = self.folders
        self.jails = dict(self.jails or {})
        if self.jails and not self.uses_chroot:
            raise SftpServerError("partner jails need chroot, which needs sshd to run as root")
        self._remote_dirs = tuple(dict.fromkeys(check_remote_dir(f) for f in folders))

    # -- where things live ---------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.state_dir / "sshd_config"

    @property
    def host_key_file(self) -> Path:
        return self.state_dir / "ssh_host_ed25519_key"

    @property
    def host_public_key_file(self) -> Path:
        return self.state_dir / "ssh_host_ed25519_key.pub"

    @property
    def authorized_keys_file(self) -> Path:
        return self.state_dir / "authorized_keys"

    @property
    def partner_keys_dir(self) -> Path:
        """One ``authorized_keys`` file per partner login, named after the login."""
        return self.state_dir / "authorized_keys.d"

    def partner_authorized_keys(self, login: str) -> Path:
        if login not in (self.jails or {}):
            raise SftpServerError(f"{login!r} is not a partner login of this server")
        return self.partner_keys_dir / login

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "sshd.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "sshd.log"

    @property
    def info_file(self) -> Path:
        return self.state_dir / SERVER_INFO

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        """The port the server listens on (or last listened on)."""
        port = self._port if self._port is not None else self._configured_port()
        if port is None:
            raise SftpServerError(f"the SFTP server in {self.state_dir} has never been started")
        return port

    @property
    def host_public_key(self) -> str:
        """The host key to pin in a connection: ``"ssh-ed25519 AAAA..."``."""
        if not self.host_public_key_file.exists():
            raise SftpServerError(f"no host key yet in {self.state_dir}: start the server first")
        return read_public_key(self.host_public_key_file)

    @property
    def uses_chroot(self) -> bool:
        if self.chroot is None:
            return os.geteuid() == 0
        return self.chroot

    @property
    def remote_dirs(self) -> tuple[str, ...]:
        """The folders this server provides, as clients name them (relative to the SFTP root)."""
        return self._remote_dirs

    def local_dir(self, remote_dir: str) -> Path:
        """The server-side directory behind ``remote_dir`` (e.g. ``dwp/inbox``)."""
        return self.root.joinpath(*check_remote_dir(remote_dir).split("/"))

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> LocalSftpServer:
        """Start sshd unless this server already runs; return self. Safe to call any number of times."""
        if not self.sshd.exists():
            raise SftpServerError(
                f"{self.sshd} is missing: install the Debian package openssh-server "
                "(apt-get update && apt-get install -y openssh-server)"
            )
        if self.is_running():
            self._port = self._configured_port()
            if self.requested_port is not None and self.requested_port != self._port:
                raise SftpServerError(
                    f"the SFTP server in {self.state_dir} already runs on port {self._port}, "
                    f"not {self.requested_port}: stop it first"
                )
            # An agreement added since the server started still needs its folders.
            self._ensure_folders()
            self._write_info()
            log.info("SFTP server already running on %s:%s", self.host, self._port)
            return self
        self._prepare_directories()
        ensure_ssh_keypair(self.host_key_file, "supporting-families-local-sftp-host", self.ssh_keygen)
        for keys_file in [self.authorized_keys_file, *map(self.partner_authorized_keys, self.jails or {})]:
            keys_file.parent.mkdir(mode=0o700, exist_ok=True)
            if not keys_file.exists():
                fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT, 0o600)
                os.close(fd)
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._remove_stale_pid_file()

        attempts = 1 if self.requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self._choose_port()
            self._write_config(port)
            if self._launch(port, last_attempt=attempt == attempts):
                self._port = port
                self._write_info()
                log.info("SFTP server started on %s:%s (chroot %s)", self.host, port, self.uses_chroot)
                return self
            # Another process took the port between our probe and sshd's bind: pick another.
            log.warning("port %s was taken before sshd could bind it; trying another", port)
        raise SftpServerError("sshd could not bind a port")  # pragma: no cover - _launch raises first

    def is_running(self) -> bool:
        """True when the sshd named in our pid file is alive and is ours (not a recycled pid)."""
        pid = self._read_pid()
        if pid is None or not _process_alive(pid):
            return False
        return str(self.config_file) in _cmdline(pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the sshd in our pid file and wait until it is gone and the port is free."""
        pid = self._read_pid()
        port = self._configured_port()
        if pid is None or not self.is_running():
            self._remove_stale_pid_file()
            log.info("SFTP server in %s is not running", self.state_dir)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _process_alive(pid):
            if time.monotonic() > deadline:
                log.warning("sshd %s ignored SIGTERM for %ss; sending SIGKILL", pid, timeout)
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        # The listener closes its socket on exit; wait for it so a caller can reuse the port at once.
        while port is not None and port_accepts(port, self.host, timeout=0.2):
            if time.monotonic() > deadline + 2:
                raise SftpServerError(f"port {port} still accepts connections after sshd {pid} stopped")
            time.sleep(0.02)
        # A per-connection sshd child (e.g. the readiness probe's, still closing) can hold an accepted socket
        # on the port for a moment after the listener is gone, and then the port cannot be bound yet. It
        # exits by itself within milliseconds, so wait briefly rather than hand back a port that cannot be
        # bound yet. Bounded and silent: a TIME_WAIT remnant also fails this check for a minute, but sshd
        # (SO_REUSEADDR) binds over it anyway.
        settle = time.monotonic() + 0.5
        while port is not None and not port_is_free(port, self.host) and time.monotonic() < settle:
            time.sleep(0.02)
        self.pid_file.unlink(missing_ok=True)
        log.info("SFTP server stopped (pid %s)", pid)

    def status(self) -> dict[str, Any]:
        """What a set-up script or an operator needs to know; no secrets."""
        port = self._port if self._port is not None else self._configured_port()
        return {
            "running": self.is_running(),
            "pid": self._read_pid() if self.is_running() else None,
            "host": self.host,
            "port": port,
            "host_public_key": self.host_public_key if self.host_public_key_file.exists() else None,
            "host_public_key_file": str(self.host_public_key_file),
            "authorized_keys": str(self.authorized_keys_file),
            "root": str(self.root),
            "chroot": self.uses_chroot,
            "folders": list(self.remote_dirs),
            "login": local_user(),
            # Partner login -> its jail and its authorized_keys (the secrets generator authorises there).
            "partner_logins": {
                login: {"jail": str(self.root / top), "authorized_keys": str(self.partner_keys_dir / login)}
                for login, top in (self.jails or {}).items()
            },
            "config": str(self.config_file),
            "log": str(self.log_file),
        }

    # -- internals -----------------------------------------------------------------------------------

    def _prepare_directories(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        if self.uses_chroot:
            if os.geteuid() != 0:
                raise SftpServerError("chroot=True needs sshd to run as root; run as root or drop chroot")
            # Our own directory: make it acceptable; parents are the operator's to fix, so explain.
            self.root.chmod(0o755)
            problems = chroot_problems(self.root)
            if problems:
                raise SftpServerError(
                    f"cannot jail SFTP clients in {self.root}: sshd's ChrootDirectory needs the directory "
                    "and every parent to be owned by root and not writable by group or others, and here "
                    + "; ".join(problems)
                    + ". Put the SFTP root under a root-owned path (e.g. /srv/supporting-families/sftp), "
                    "fix the modes (chmod go-w), or pass chroot=False / --no-chroot to run unjailed."
                )
        if self.jails:
            ensure_accounts(self.jails)
        self._ensure_folders()

    def _ensure_folders(self) -> None:
        for remote_dir in self.remote_dirs:
            path = self.root
            # Segment by segment, so a partner's own folder (``met-police``) is 0750 like its inbox, not
            # whatever the umask gives the parents mkdir(parents=True) creates: no other local user lists it.
            for segment in remote_dir.split("/"):
                path = path / segment
                if not path.is_dir():
                    path.mkdir(mode=0o750)
                    log.info("created SFTP folder %s", path.relative_to(self.root))
        for login, top in (self.jails or {}).items():
            self._prepare_jail(login, top)

    def _prepare_jail(self, login: str, top: str) -> None:
        """``<root>/<top>``: root-owned (sshd's chroot rule), group ``login`` (0750: no other local user
        lists it); ``<top> -> .`` inside it so the agreement's ``<top>/inbox`` resolves in the jail; the
        partner's folders owned by the login, which writes deliveries and removes collected returns."""
        account = pwd.getpwnam(login)
        jail = self.root / top
        os.chown(jail, 0, account.pw_gid)
        jail.chmod(0o750)
        link = jail / top
        if not link.is_symlink():
            link.symlink_to(".")
        for remote_dir in self.remote_dirs:
            if remote_dir.split("/")[0] != top:
                continue
            path = jail
            for segment in remote_dir.split("/")[1:]:
                path = path / segment
                os.chown(path, account.pw_uid, account.pw_gid)
                path.chmod(0o770)

    def _configured_port(self) -> int | None:
        if not self.config_file.exists():
            return None
        match = _PORT_RE.search(self.config_file.read_text(encoding="utf-8"))
        return int(match.group(1)) if match else None

    def _choose_port(self) -> int:
        if self.requested_port is not None:
            if not port_is_free(self.requested_port, self.host):
                raise SftpServerError(f"port {self.requested_port} on {self.host} is already in use")
            return self.requested_port
        previous = self._configured_port()
        if previous is not None:
            if port_is_free(previous, self.host):
                return previous
            # Connections pin this port: say so, because they must be regenerated.
            log.warning(
                "previous SFTP port %s is taken by another process; choosing a new one "
                "(regenerate the connections with demo_secrets)",
                previous,
            )
        return free_port(self.host)

    def _write_config(self, port: int) -> None:
        if self.uses_chroot:
            # Inside the jail the SFTP root is "/"; -d makes every session start there.
            jail = [f"ChrootDirectory {_sshd_quote(self.root)}"]
            start_dir = "/"
        else:
            jail = []
            start_dir = str(self.root)
        lines = [
            "# Written by sf_demo.sftp_server on every start; edits are lost.",
            "ListenAddress 127.0.0.1",
            f"Port {port}",
            f"HostKey {_sshd_quote(self.host_key_file)}",
            f"PidFile {_sshd_quote(self.pid_file)}",
            f"AuthorizedKeysFile {_sshd_quote(self.authorized_keys_file)}",
            "AuthorizedPrincipalsFile none",
            f"AllowUsers {' '.join([local_user(), *(self.jails or {})])}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "PermitEmptyPasswords no",
            "PermitRootLogin prohibit-password",
            # The keys live in the project tree, whose ownership sshd's strict checks would reject.
            "StrictModes no",
            "UsePAM no",
            "MaxAuthTries 3",
            "LoginGraceTime 30",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "GatewayPorts no",
            "X11Forwarding no",
            "PermitTunnel no",
            "PermitTTY no",
            "PermitUserEnvironment no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            # SFTP only, like a partner's drop box: any shell or exec request runs the SFTP server instead.
            f"ForceCommand internal-sftp -d {_sftp_start_dir(start_dir)}",
            *jail,
            *self._partner_blocks(),
            "",
        ]
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines))

    def _partner_blocks(self) -> list[str]:
        """One ``Match User`` block per partner login: its own jail and its own keys only."""
        lines: list[str] = []
        for login, top in (self.jails or {}).items():
            lines += [
                f"Match User {login}",
                f"    ChrootDirectory {_sshd_quote(self.root / top)}",
                "    ForceCommand internal-sftp -d /",
                "    AuthorizedKeysFile none",
                f"    AuthorizedKeysCommand {CAT} {_sshd_quote(self.partner_keys_dir / login)}",
                "    AuthorizedKeysCommandUser root",
            ]
        return lines

    def _launch(self, port: int, *, last_attempt: bool) -> bool:
        """Start sshd on ``port``; False when the port was taken meanwhile and another may be tried."""
        check = subprocess.run(
            [str(self.sshd), "-t", "-f", str(self.config_file)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise SftpServerError(f"sshd rejected {self.config_file}: {check.stderr.strip()}")
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        # Without -D sshd forks into the background and its first process exits: the daemon is not our
        # child, so it outlives this Python process, and stop() finds it through the PidFile.
        launched = subprocess.run(
            [str(self.sshd), "-f", str(self.config_file), "-E", str(self.log_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        deadline = time.monotonic() + self.start_timeout
        while launched.returncode == 0 and time.monotonic() < deadline:
            pid = self._read_pid()
            if pid is not None and _process_alive(pid) and _speaks_ssh(port, self.host):
                return True
            if pid is not None and not _process_alive(pid):
                break
            time.sleep(0.02)
        tail = self._log_since(log_offset)
        if "Address already in use" in tail and not last_attempt:
            self._remove_stale_pid_file()
            return False
        raise SftpServerError(
            f"sshd did not start on {self.host}:{port} within {self.start_timeout}s "
            f"(exit code {launched.returncode}): {(launched.stderr + tail).strip() or 'no output'}; "
            f"see {self.log_file}"
        )

    def _log_since(self, offset: int) -> str:
        if not self.log_file.exists():
            return ""
        with self.log_file.open("rb") as fh:
            fh.seek(offset)
            return fh.read()[-4000:].decode("utf-8", "replace")

    def _read_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _remove_stale_pid_file(self) -> None:
        if self.pid_file.exists() and not self.is_running():
            log.info("removing stale pid file %s", self.pid_file)
            self.pid_file.unlink(missing_ok=True)

    def _write_info(self) -> None:
        """``server.json``: the non-secret facts the secrets generator pins in the connections."""
        # Only what stays true while the server runs (no pid, no "running"): it is read later.
        info = {k: v for k, v in self.status().items() if k not in ("running", "pid")}
        tmp = self.info_file.with_name(self.info_file.name + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.info_file)


def _speaks_ssh(port: int, host: str) -> bool:
    """True once ``host:port`` answers with an SSH banner, so we know it is sshd and it is ready."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def read_server_info(state_dir: Path) -> dict[str, Any]:
    """The ``server.json`` a started server left in ``state_dir`` (port, host key, authorized_keys...)."""
    path = Path(state_dir) / SERVER_INFO
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SftpServerError(f"{path} is missing: start the SFTP server first") from exc
    return info


@dataclass(frozen=True)
class SftpServerInfo:
    """A started server as its clients see it: address, login and pinned host key, plus the
    ``authorized_keys`` file a client's key is authorised in. Read from ``server.json``; the product's
    :class:`~supporting_families.transport.sftp.SftpEndpoint` for one client key is :meth:`endpoint`."""

    port: int
    host_public_key: str
    authorized_keys: Path
    host: str = LOOPBACK
    login: str = field(default_factory=local_user)
    #: Partner login -> its own authorized_keys file (empty when the server jails no partner apart).
    partner_keys: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_server_state(cls, state_dir: Path) -> SftpServerInfo:
        """Read the ``server.json`` that :meth:`LocalSftpServer.start` leaves in its state directory."""
        info = read_server_info(state_dir)
        return cls(
            port=int(info["port"]),
            host_public_key=str(info["host_public_key"]),
            authorized_keys=Path(info["authorized_keys"]),
            host=str(info["host"]),
            login=str(info["login"]),
            partner_keys={
                str(login): Path(entry["authorized_keys"])
                for login, entry in (info.get("partner_logins") or {}).items()
            },
        )

    def endpoint(self, private_key_path: Path, login: str | None = None) -> SftpEndpoint:
        """How a client whose key is ``private_key_path`` (authorised here) reaches this server, as
        ``login`` (default: the local user's login).

        ValueError when the facts cannot make an endpoint (e.g. a host key that is not a key).
        """
        return SftpEndpoint(
            self.host,
            self.port,
            login or self.login,
            host_key=self.host_public_key,
            private_key_path=private_key_path,
        )


# -- CLI ---------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sf_demo.sftp_server",
        description="Start, stop or inspect the local partner SFTP server (OpenSSH sshd on 127.0.0.1).",
    )
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--state-dir", type=Path, required=True, help="host key, sshd_config, pid, log")
    parser.add_argument("--root", type=Path, help="SFTP root holding the agreements' folders (for start)")
    parser.add_argument("--port", type=int, help="fixed port (default: a free port, kept across starts)")
    # start creates the folders the agreements name unless told otherwise; stop and status only report
    # what start recorded, so a broken agreement file never stops an operator stopping the server.
    folders = parser.add_mutually_exclusive_group()
    folders.add_argument(
        "--agreements-dir",
        type=Path,
        help="start: create every remote_inbox/remote_outbox of the agreements here "
        "(default: $SF_AGREEMENTS_DIR or include/agreements)",
    )
    folders.add_argument(
        "--folders", help="start: comma-separated remote folders instead, e.g. dwp/inbox,dwp/outbox"
    )
    folders.add_argument(
        "--partners", help="start: comma-separated names, each getting <name>/inbox and <name>/outbox"
    )
    parser.add_argument(
        "--no-chroot", action="store_true", help="do not jail clients even when running as root"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point. Writes one JSON object to stdout; exit 0, or 3 from ``status`` when stopped."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parse_args(argv)
    recorded: dict[str, Any] = {}
    with contextlib.suppress(SftpServerError):
        recorded = read_server_info(args.state_dir)
    if args.command == "start" and args.root is None and "root" not in recorded:
        sys.stderr.write("the first start needs --root\n")
        return 2
    # stop and status need only the state directory: start recorded the root and folders there.
    root = args.root or Path(recorded.get("root") or args.state_dir / "root")
    folders: Sequence[str] | None = None  # start: the agreements' folders
    if args.folders is not None:
        folders = [f.strip() for f in args.folders.split(",") if f.strip()]
    elif args.partners is not None:
        folders = partner_folders(p.strip() for p in args.partners.split(",") if p.strip())
    jails: dict[str, str] | None = None
    if args.command != "start" and folders is None:
        folders = list(recorded.get("folders") or ())
        jails = {k: Path(v["jail"]).name for k, v in (recorded.get("partner_logins") or {}).items()}
    try:
        server = LocalSftpServer(
            root=root,
            state_dir=args.state_dir,
            folders=folders,
            jails=jails,
            agreements_dir=args.agreements_dir,
            requested_port=args.port,
            chroot=False if args.no_chroot else None,
        )
    except ValueError as exc:  # includes AgreementError, which lists every bad key of every file
        sys.stderr.write(f"error: {exc}\n")
        return 1
    try:
        if args.command == "start":
            server.start()
        elif args.command == "stop":
            server.stop()
    except SftpServerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    status = server.status()
    sys.stdout.write(json.dumps(status, indent=2) + "\n")
    if args.command == "status" and not status["running"]:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
