"""Every demo secret the data agreements name, generated once into a private state directory.

The demo must run with nothing configured by hand, yet secrets must never sit in YAML, code or git. The
agreements (``include/agreements/*.yaml``) are the single source of truth for *names*: this module reads
them and creates, in ``var/secrets/`` (git-ignored), exactly what they reference:

* per agreement, a 256-bit HMAC-SHA256 pseudonymisation key at its ``pseudonymisation.key_version``,
  behind the connection ``pseudonymisation.key_conn_id`` (the current version) and
  ``<key_conn_id>_v<N>`` for every version kept (so references made before a rotation still resolve);
* per distinct ``sftp.conn_id``, an SFTP connection to the local partner SFTP server, host key pinned;
  the SFTP client key (ed25519) it uses is authorised on that server;
* per partner code whose agreement pins its key through a ``${NAME_FINGERPRINT}`` placeholder, an OpenPGP
  key whose private part lives only in a separate simulator keyring (a partner's key never belongs on the
  council's side); its public key is imported into the council keyring and certified there with a local
  signature, and the fingerprint is written to ``fingerprints.env`` under ``NAME_FINGERPRINT``. A partner
  pinned by a literal fingerprint is a real partner: its key is not generated (the summary says so);
* the council's OpenPGP key (sign and encrypt, passphrase-protected) in the council keyring, behind the
  connection ``sf_openpgp_council``, its public key in the simulator keyring;
* Airflow's local-filesystem secrets backend file ``connections.json`` pointing at all of the above
  (one machine, one trust domain: the demo's LocalExecutor), and the same split for a deployment with a
  worker per partner: ``connections-central.json`` holds no partner's secret (the API server, scheduler,
  dag-processor and triggerer read it) and ``partners/<code>/connections.json`` holds only that partner's
  SFTP connection and pseudonym keys (its worker's own ``[workers] secrets_backend``).

When the local server jails each partner apart (``sf_demo.sftp_server``, as root), every partner gets its
own SFTP login and client key, authorised for that login only; otherwise one key and the local login
serve every connection.

Running it again changes nothing; an agreement file added since gets its keys and connections added,
with no code change.

CLI, after ``python -m sf_demo.sftp_server start --state-dir var/sftp ...``::

    python -m sf_demo.secrets --state-dir var/secrets --sftp-state-dir var/sftp \
        [--agreements-dir include/agreements] [--rotate-hmac AGREEMENT_OR_KEY_CONN_ID]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sf_demo.sftp_server import (
    SftpServerInfo,
    authorize_key,
    ensure_ssh_keypair,
    partner_login,
    read_public_key,
)
from supporting_families.config import Agreement, SourcesConfig, load_agreements, load_sources
from supporting_families.share.pseudonymise import KEY_BYTES
from supporting_families.transport.openpgp import (
    InvalidFingerprint,
    KeyListing,
    gpg_command,
    gpg_environment,
    normalise_fingerprint,
    parse_key_listing,
)
from supporting_families.transport.sftp import SftpEndpoint

log = logging.getLogger(__name__)

GPG = "gpg"
# Demo keys expire so that a forgotten one cannot be used for ever; an expired key is no longer "usable"
# (KeyListing.usable), so the next set-up run generates a fresh one and rewrites fingerprints.env.
OPENPGP_EXPIRY = "2y"
COUNCIL_UID = "Supporting Families council (demo) <supporting-families@council.invalid>"
#: 256 bits: the size the pseudonymiser requires of a key, and HMAC-SHA256's full strength.
HMAC_KEY_BYTES = KEY_BYTES
HMAC_ALGORITHM = "HMAC-SHA256"

OPENPGP_COUNCIL_CONN_ID = "sf_openpgp_council"
#: The council's own fingerprint in ``fingerprints.env``; named like the agreements' placeholders
#: (``*_FINGERPRINT``) so an agreement could pin it the same way.
COUNCIL_FINGERPRINT_ENV = "SF_COUNCIL_PGP_FINGERPRINT"
#: The public key file of the council; a partner code may therefore not be ``council``.
COUNCIL_KEY_NAME = "council"
DPO_UID = "Data protection officer (demo) <dpo@council.invalid>"
DPO_KEY_NAME = "dpo"
#: The rights tooling's connection: the DPO's OpenPGP fingerprint (bundles are encrypted to it).
RIGHTS_CONN_ID = "sf_rights"
#: The council's tombstone key (HMAC-SHA256 of an erased person's identifying keys).
TOMBSTONE_CONN_ID = "sf_tombstone_key"
#: The key of pseudonymous staff ids in the ledger (plugins/sf_airflow/access.py reads it; the same file as
#: scripts/airflow_access.py writes, so either may come first).
STAFF_ID_KEY_CONN_ID = "sf_staff_id_key"
SMTP_CONN_ID = "sf_smtp"
#: Where the demo's SMTP sink listens (scripts/airflow-services.sh starts it; the tests start their own).
SMTP_SINK_PORT = int(os.environ.get("SF_SMTP_SINK_PORT", "8025"))

#: A test run's canary, in hex (tests/integration/platform_fixtures.py sets it while it generates): every
#: secret made here then begins with its bytes, so the run can search everything the platform wrote for
#: every secret at once. Never set in a deployment.
CANARY_ENV = "SF_DEMO_SECRET_CANARY"

_VERSION_RE = re.compile(r"v([1-9][0-9]*)")
_HEX_RE = re.compile(r"[0-9a-f]{64}")
_PLACEHOLDER_RE = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*)\}")
# A key_conn_id names a directory under hmac/; Airflow allows '.', so refuse a leading dot ('..', hidden).
_KEY_DIR_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class DemoSecretsError(RuntimeError):
    """A demo secret cannot be created; the message says which and why (never a secret value)."""


# -- new secret values ---------------------------------------------------------------------------------


def new_secret_bytes(size: int) -> bytes:
    """``size`` bytes from the operating system's CSPRNG; under ``$SF_DEMO_SECRET_CANARY`` the first
    ones are the canary's (at most half of them: the rest stays random)."""
    canary = bytes.fromhex(os.environ.get(CANARY_ENV, ""))
    if 2 * len(canary) > size:
        raise DemoSecretsError(f"${CANARY_ENV} is longer than half a {size}-byte secret")
    return canary + secrets.token_bytes(size - len(canary))


def new_secret_hex(size: int) -> str:
    """A new secret of ``size`` bytes in hex (HMAC keys, database passwords)."""
    return new_secret_bytes(size).hex()


def new_secret_text(size: int) -> str:
    """A new secret of ``size`` bytes as URL-safe base64 without padding, as ``secrets.token_urlsafe``."""
    return base64.urlsafe_b64encode(new_secret_bytes(size)).rstrip(b"=").decode("ascii")


# -- what the agreements reference ---------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementRefs:
    """The names one agreement references that set-up must bring into existence, and nothing else."""

    id: str
    partner: str
    sftp_conn_id: str
    remote_inbox: str
    remote_outbox: str
    key_conn_id: str
    key_version: int
    previous_key_versions: tuple[int, ...]
    #: ``SF_DWP_PGP_FINGERPRINT`` from ``${SF_DWP_PGP_FINGERPRINT}``; None when the agreement pins a
    #: literal fingerprint, i.e. a real partner key the demo must not replace with one of its own.
    fingerprint_env_var: str | None
    literal_fingerprint: str | None

    @classmethod
    def from_agreement(cls, agreement: Agreement) -> AgreementRefs:
        pinned = agreement.openpgp.partner_fingerprint.strip()
        placeholder = _PLACEHOLDER_RE.fullmatch(pinned)
        if placeholder is None:
            try:
                pinned = normalise_fingerprint(pinned)
            except InvalidFingerprint:
                # Loaded with resolve=True, the placeholder would already be gone and the demo would
                # silently treat a generated key as a real partner's: load with resolve=False.
                raise DemoSecretsError(
                    f"{agreement.id}: openpgp.partner_fingerprint is neither a ${{NAME_FINGERPRINT}} "
                    "placeholder nor a 40-hex fingerprint (load the agreements with resolve=False)"
                ) from None
        pseudonymisation = agreement.pseudonymisation
        return cls(
            id=agreement.id,
            partner=agreement.partner.code,
            sftp_conn_id=agreement.sftp.conn_id,
            remote_inbox=agreement.sftp.remote_inbox,
            remote_outbox=agreement.sftp.remote_outbox,
            key_conn_id=pseudonymisation.key_conn_id,
            key_version=pseudonymisation.key_version,
            previous_key_versions=tuple(pseudonymisation.previous_key_versions),
            fingerprint_env_var=placeholder["name"] if placeholder else None,
            literal_fingerprint=None if placeholder else pinned,
        )


def _grouped(refs: Iterable[AgreementRefs], key: str) -> dict[str, tuple[AgreementRefs, ...]]:
    groups: dict[str, list[AgreementRefs]] = {}
    for ref in refs:
        groups.setdefault(getattr(ref, key), []).append(ref)
    return {name: tuple(members) for name, members in groups.items()}


@dataclass(frozen=True)
class DemoSpec:
    """What set-up generates, derived from the agreements (their order kept, for stable output)."""

    agreements: tuple[AgreementRefs, ...]

    def __post_init__(self) -> None:
        problems: list[str] = []
        for ref in self.agreements:
            if not _KEY_DIR_RE.fullmatch(ref.key_conn_id):
                problems.append(f"{ref.id}: key_conn_id {ref.key_conn_id!r} cannot name a key directory")
            if ref.partner == COUNCIL_KEY_NAME:
                problems.append(f"{ref.id}: partner code {COUNCIL_KEY_NAME!r} is the council's own key")
            if ref.fingerprint_env_var == COUNCIL_FINGERPRINT_ENV:
                problems.append(f"{ref.id}: {COUNCIL_FINGERPRINT_ENV} is the council's fingerprint")
        for var, partners in self.fingerprint_env_vars().items():
            if len(partners) > 1:
                # One variable can hold one fingerprint: two partners would be encrypted to the same key.
                problems.append(f"${{{var}}} is used for partners {', '.join(partners)}")
        # A clash would let one connection silently replace another in connections.json, e.g. an SFTP
        # connection standing in for a pseudonym key.
        key_ids = {ref.key_conn_id for ref in self.agreements}
        for conn_id in sorted((key_ids | {OPENPGP_COUNCIL_CONN_ID}) & set(self.sftp_connections())):
            problems.append(f"connection id {conn_id!r} is both an SFTP connection and a key")
        if OPENPGP_COUNCIL_CONN_ID in key_ids:
            problems.append(f"{OPENPGP_COUNCIL_CONN_ID!r} is the council's OpenPGP connection")
        if problems:
            raise DemoSecretsError("the agreements cannot be set up: " + "; ".join(problems))

    @classmethod
    def from_agreements(cls, agreements: Iterable[Agreement]) -> DemoSpec:
        return cls(tuple(AgreementRefs.from_agreement(a) for a in agreements))

    @classmethod
    def load(cls, agreements_dir: Path | None = None) -> DemoSpec:
        """The spec of the agreements in ``agreements_dir`` (None: ``$SF_AGREEMENTS_DIR`` or the project's).

        ``resolve=False``: the ``${..._FINGERPRINT}`` placeholders name the variables set-up is about to
        write, so they cannot be resolved yet.
        """
        return cls.from_agreements(load_agreements(agreements_dir, resolve=False))

    def sftp_connections(self) -> dict[str, tuple[AgreementRefs, ...]]:
        """One entry per distinct ``sftp.conn_id``: several agreements may share a partner's server."""
        return _grouped(self.agreements, "sftp_conn_id")

    def partners(self) -> dict[str, tuple[AgreementRefs, ...]]:
        return _grouped(self.agreements, "partner")

    def generated_partners(self) -> tuple[str, ...]:
        """Partner codes whose key the demo generates: those pinned by at least one placeholder."""
        return tuple(
            code for code, refs in self.partners().items() if any(r.fingerprint_env_var for r in refs)
        )

    def fingerprint_env_vars(self) -> dict[str, tuple[str, ...]]:
        """Each placeholder variable with the partner codes that use it (exactly one when valid)."""
        found: dict[str, dict[str, None]] = {}
        for ref in self.agreements:
            if ref.fingerprint_env_var is not None:
                found.setdefault(ref.fingerprint_env_var, {})[ref.partner] = None
        return {var: tuple(codes) for var, codes in found.items()}

    def find(self, name: str) -> AgreementRefs:
        """The agreement whose id or ``key_conn_id`` is ``name`` (for ``--rotate-hmac``)."""
        for ref in self.agreements:
            if name in (ref.id, ref.key_conn_id):
                return ref
        known = ", ".join(ref.id for ref in self.agreements)
        raise DemoSecretsError(f"no agreement has id or key_conn_id {name!r}; agreements: {known}")


# -- where things live -------------------------------------------------------------------------------


def partner_uid(partner: str) -> str:
    """The demo key's user id. From the code only: renaming a partner must not silently make a new key."""
    return f"{partner.upper()} (Supporting Families demo partner) <{partner}@partner.invalid>"


def pseudonym_conn_id(key_conn_id: str, version: int | None = None) -> str:
    """``<key_conn_id>`` is the agreement's current key; ``<key_conn_id>_v<N>`` pins version N."""
    return key_conn_id if version is None else f"{key_conn_id}_v{version}"


@dataclass(frozen=True)
class SecretsLayout:
    """The files under the state directory; other modules (the partner simulator) find keys through it."""

    state_dir: Path

    @property
    def hmac_dir(self) -> Path:
        return self.state_dir / "hmac"

    def hmac_key_file(self, key_conn_id: str, version: int) -> Path:
        return self.hmac_dir / key_conn_id / f"v{version}.key"

    @property
    def sftp_client_key(self) -> Path:
        return self.state_dir / "ssh" / "sftp_client_ed25519"

    def partner_sftp_client_key(self, partner: str) -> Path:
        """The client key of the council's login on ``partner``'s server (one key per partner)."""
        return self.state_dir / "ssh" / f"sftp_client_{partner}_ed25519"

    @property
    def central_connections_file(self) -> Path:
        """Every connection but the partners' own: what the central components' backend serves."""
        return self.state_dir / "connections-central.json"

    def partner_connections_file(self, partner: str) -> Path:
        """Only ``partner``'s SFTP connection and pseudonym keys: its worker's own secrets backend."""
        return self.state_dir / "partners" / partner / "connections.json"

    @property
    def gnupg_council(self) -> Path:
        return self.state_dir / "gnupg-council"

    @property
    def gnupg_partners(self) -> Path:
        """The partner simulator's keyring: the only place partner private keys exist."""
        return self.state_dir / "gnupg-partners"

    @property
    def gnupg_dpo(self) -> Path:
        """The data protection officer's keyring: stands for the DPO's own machine, where bundles are read."""
        return self.state_dir / "gnupg-dpo"

    @property
    def tombstone_key_file(self) -> Path:
        return self.state_dir / "tombstone.key"

    @property
    def staff_id_key_file(self) -> Path:
        return self.state_dir / "staff-id-key.hex"

    @property
    def data_keys_dir(self) -> Path:
        """The file key store of data keys per retention period (supporting_families.store.keystore)."""
        return self.state_dir / "data_keys"

    @property
    def council_passphrase_file(self) -> Path:
        return self.state_dir / "openpgp-council.passphrase"

    @property
    def public_keys_dir(self) -> Path:
        return self.state_dir / "openpgp-public"

    def public_key_file(self, owner: str) -> Path:
        """``council.asc`` or ``<partner code>.asc``: ASCII-armoured public keys, as exchanged."""
        return self.public_keys_dir / f"{owner}.asc"

    @property
    def connections_file(self) -> Path:
        return self.state_dir / "connections.json"

    @property
    def fingerprints_env(self) -> Path:
        return self.state_dir / "fingerprints.env"


def read_fingerprints_env(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of ``fingerprints.env`` (what ``scripts/env.sh`` exports), comments skipped."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


# -- small file helpers ------------------------------------------------------------------------------


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _create_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600; O_EXCL makes overwriting an existing key impossible."""
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_secret_file(path: Path, data: bytes) -> bool:
    """Replace ``path`` atomically with mode 0600 unless it already holds ``data``; True when written."""
    _private_dir(path.parent)
    if path.exists() and path.read_bytes() == data:
        path.chmod(0o600)
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return True


# -- HMAC keys ---------------------------------------------------------------------------------------


def hmac_key_versions(layout: SecretsLayout, key_conn_id: str) -> list[int]:
    """The versions present behind ``key_conn_id``, oldest first."""
    directory = layout.hmac_dir / key_conn_id
    if not directory.is_dir():
        return []
    found = (_VERSION_RE.fullmatch(p.stem) for p in directory.glob("v*.key"))
    return sorted(int(m.group(1)) for m in found if m)


def _read_hmac_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if not _HEX_RE.fullmatch(key):
        raise DemoSecretsError(f"{path} does not hold a 256-bit key in hex")
    return key


def _new_hmac_key(layout: SecretsLayout, key_conn_id: str, version: int) -> None:
    _private_dir(layout.hmac_dir)
    _create_secret_file(
        layout.hmac_key_file(key_conn_id, version),
        (new_secret_hex(HMAC_KEY_BYTES) + "\n").encode("ascii"),
    )


def ensure_hmac_key(layout: SecretsLayout, key_conn_id: str, version: int = 1) -> bool:
    """Create key ``version`` behind ``key_conn_id`` unless it exists; True when it was created."""
    if version < 1:
        raise ValueError(f"key versions start at 1, not {version}")
    if layout.hmac_key_file(key_conn_id, version).exists():
        return False
    _new_hmac_key(layout, key_conn_id, version)
    log.info("generated HMAC key v%s for %s", version, key_conn_id)
    return True


def rotate_hmac_key(layout: SecretsLayout, key_conn_id: str) -> int:
    """Add the next key version behind ``key_conn_id`` (newest present + 1) and return it.

    This only prepares the key: it becomes the current one (the connection ``<key_conn_id>``) once the
    agreement says ``key_version: <it>``, because every reference carries the agreement's version and a
    key that disagreed with it would make references that never resolve. The older versions stay behind
    ``<key_conn_id>_v<N>`` until their files are deleted (which also crypto-shreds their references).
    """
    versions = hmac_key_versions(layout, key_conn_id)
    new = versions[-1] + 1 if versions else 1
    _new_hmac_key(layout, key_conn_id, new)
    log.info("added HMAC key v%s for %s", new, key_conn_id)
    return new


def retire_hmac_key(layout: SecretsLayout, ref: AgreementRefs, version: int) -> bool:
    """Destroy key ``version`` behind the agreement's ``key_conn_id`` (True when it was there). Refused
    while the agreement still names it: its references would stop resolving under a live agreement."""
    if version == ref.key_version or version in ref.previous_key_versions:
        raise DemoSecretsError(
            f"{ref.id}: key version {version} is still named in the agreement; remove it from"
            " key_version/previous_key_versions first"
        )
    path = layout.hmac_key_file(ref.key_conn_id, version)
    if not path.exists():
        return False
    # The file system's unlink: the demo's secrets backend; in production the secrets manager's delete.
    path.unlink()
    log.info("destroyed HMAC key v%s for %s", version, ref.key_conn_id)
    return True


def ensure_agreement_keys(layout: SecretsLayout, ref: AgreementRefs) -> list[int]:
    """The agreement's current key version, created if missing; returns previous versions that are missing.

    A missing *previous* version is reported, never invented: a fresh key could not resolve the references
    that were made with the lost one, and pretending otherwise would hide that they are unresolvable.
    """
    ensure_hmac_key(layout, ref.key_conn_id, ref.key_version)
    present = set(hmac_key_versions(layout, ref.key_conn_id))
    missing = [v for v in ref.previous_key_versions if v not in present]
    if missing:
        log.warning(
            "%s: previous key version(s) %s of %s are missing; references made with them cannot resolve",
            ref.id,
            ", ".join(map(str, missing)),
            ref.key_conn_id,
        )
    return missing


# -- GnuPG -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GnuPG:
    """Key management on one project-local keyring: what the demo does and the product never does
    (generate, import, export and certify keys). Invoked as the product invokes gpg
    (:func:`~supporting_families.transport.openpgp.gpg_command`: batch mode, this home only, no option file,
    no network), keys read with the product's colon-listing parser; passphrases through stdin only."""

    home: Path
    binary: str = GPG

    def run(
        self, *args: str, passphrase: str | None = None, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run gpg; the passphrase, when given, goes through fd 0 and never onto the command line."""
        if passphrase is not None and stdin is not None:
            raise ValueError("stdin carries the passphrase; pass data through files")
        command = [*gpg_command(self.home, self.binary), "--yes"]
        if passphrase is not None:
            command += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
            stdin = (passphrase + "\n").encode("utf-8")
        command += list(args)
        try:
            # umask 077: gpg would otherwise leave its public keyring world-readable.
            result = subprocess.run(
                command, input=stdin, capture_output=True, check=False, env=gpg_environment(), umask=0o077
            )
        except FileNotFoundError as exc:
            raise DemoSecretsError(
                f"{self.binary} is missing: install the Debian package gnupg (apt-get install -y gnupg)"
            ) from exc
        if result.returncode != 0:
            # Options only: values may be user ids or paths, and never a passphrase (that went to stdin).
            operation = " ".join(a for a in args if a.startswith("--"))
            raise DemoSecretsError(
                f"gpg {operation} failed in {self.home} (exit {result.returncode}): "
                f"{result.stderr.decode('utf-8', 'replace').strip()}"
            )
        return result

    def list_keys(self, *, secret: bool = False) -> list[KeyListing]:
        """Every key in the keyring (``secret``: those with a secret part), with subkeys and user ids."""
        if not (self.home / "pubring.kbx").exists():
            return []
        listing = "--list-secret-keys" if secret else "--list-keys"
        out = self.run("--with-colons", "--fixed-list-mode", listing).stdout.decode("utf-8", "replace")
        return parse_key_listing(out)

    def find(self, uid: str, *, secret: bool = False) -> KeyListing | None:
        """The usable key with exactly this user id (the newest when there are several)."""
        matches = [k for k in self.list_keys(secret=secret) if uid in k.uids and k.usable]
        return matches[-1] if matches else None

    def key(self, fingerprint: str) -> KeyListing | None:
        return next((k for k in self.list_keys() if k.fingerprint == fingerprint), None)

    def stop_agent(self) -> None:
        """Stop this home's gpg-agent (one runs per home directory until told otherwise)."""
        if self.home.exists():
            subprocess.run(
                ["gpgconf", "--homedir", str(self.home), "--kill", "all"], capture_output=True, check=False
            )


def _ensure_openpgp_key(gpg: GnuPG, uid: str, passphrase: str) -> str:
    """A usable sign + encrypt key for ``uid`` in ``gpg.home``; create it if needed; return its fingerprint.

    ed25519 signs, a cv25519 subkey encrypts: the modern default of GnuPG 2.2, and what partners' tools read.
    An empty ``passphrase`` leaves the key unprotected.
    """
    key = gpg.find(uid, secret=True)
    if key is None:
        gpg.run("--quick-gen-key", uid, "ed25519", "sign", OPENPGP_EXPIRY, passphrase=passphrase)
        key = gpg.find(uid, secret=True)
        if key is None:
            raise DemoSecretsError(f"gpg created no usable key for {uid!r} in {gpg.home}")
        log.info("generated OpenPGP key %s in %s", key.fingerprint, gpg.home)
    if not key.can_encrypt:
        # Also repairs a key whose subkey step was interrupted on an earlier run.
        gpg.run("--quick-add-key", key.fingerprint, "cv25519", "encr", OPENPGP_EXPIRY, passphrase=passphrase)
    return key.fingerprint


def _import_and_certify(
    target: GnuPG, armoured: Path, fingerprint: str, signer_fpr: str, signer_passphrase: str
) -> None:
    """Import a public key into ``target`` and certify it locally, so gpg treats it as valid.

    A local (non-exportable) signature records that its fingerprint was checked out of band, the
    OpenPGP way to pin it, instead of weakening the trust model for every key with ``--trust-model always``.
    """
    key = target.key(fingerprint)
    if key is None:
        target.run("--import", str(armoured))
        key = target.key(fingerprint)
        if key is None:
            raise DemoSecretsError(f"importing {armoured.name} into {target.home} gave no key {fingerprint}")
    if key.validity not in ("f", "u"):
        target.run("--local-user", signer_fpr, "--quick-lsign-key", fingerprint, passphrase=signer_passphrase)


def _export_public(gpg: GnuPG, fingerprint: str, path: Path) -> None:
    armoured = gpg.run("--armor", "--export-options", "export-minimal", "--export", fingerprint).stdout
    if not armoured:
        raise DemoSecretsError(f"gpg exported nothing for {fingerprint} from {gpg.home}")
    write_secret_file(path, armoured)


def _council_passphrase(layout: SecretsLayout) -> str:
    path = layout.council_passphrase_file
    if not path.exists():
        _create_secret_file(path, (new_secret_text(32) + "\n").encode("ascii"))
    return path.read_text(encoding="ascii").strip()


@dataclass(frozen=True)
class OpenPgpFingerprints:
    council: str
    #: Generated partner keys, by partner code.
    partners: dict[str, str]
    dpo: str = ""


def ensure_openpgp_keys(
    layout: SecretsLayout, partners: Sequence[str], gpg_binary: str = GPG
) -> OpenPgpFingerprints:
    """The council key, one key per partner code, and each side's public keys in the other's keyring."""
    council = GnuPG(_private_dir(layout.gnupg_council), gpg_binary)
    simulator = GnuPG(_private_dir(layout.gnupg_partners), gpg_binary)
    passphrase = _council_passphrase(layout)
    council_fpr = _ensure_openpgp_key(council, COUNCIL_UID, passphrase)
    _export_public(council, council_fpr, layout.public_key_file(COUNCIL_KEY_NAME))

    partner_fprs: dict[str, str] = {}
    for partner in partners:
        # Simulated partners keep their keys unprotected: they stand for keys held on the partners' own
        # systems, which the council platform never touches, and the simulator then needs no second secret.
        fpr = _ensure_openpgp_key(simulator, partner_uid(partner), "")
        _export_public(simulator, fpr, layout.public_key_file(partner))
        _import_and_certify(council, layout.public_key_file(partner), fpr, council_fpr, passphrase)
        partner_fprs[partner] = fpr
    if partner_fprs:
        first = next(iter(partner_fprs.values()))
        _import_and_certify(simulator, layout.public_key_file(COUNCIL_KEY_NAME), council_fpr, first, "")
    # The DPO reads subject access bundles on their own machine: their private key never enters the
    # council platform's keyring, only their public key, certified like a partner's.
    dpo = GnuPG(_private_dir(layout.gnupg_dpo), gpg_binary)
    dpo_fpr = _ensure_openpgp_key(dpo, DPO_UID, "")
    _export_public(dpo, dpo_fpr, layout.public_key_file(DPO_KEY_NAME))
    _import_and_certify(council, layout.public_key_file(DPO_KEY_NAME), dpo_fpr, council_fpr, passphrase)
    _import_and_certify(dpo, layout.public_key_file(COUNCIL_KEY_NAME), council_fpr, dpo_fpr, "")
    return OpenPgpFingerprints(council=council_fpr, partners=partner_fprs, dpo=dpo_fpr)


def stop_gpg_agents(state_dir: Path) -> None:
    """Stop the gpg-agents of both keyrings (tests call this; the demo may leave them running)."""
    layout = SecretsLayout(Path(state_dir))
    for home in (layout.gnupg_council, layout.gnupg_partners, layout.gnupg_dpo):
        if home.exists():
            GnuPG(home).stop_agent()


# -- connections -------------------------------------------------------------------------------------


class _Connections(dict[str, dict[str, Any]]):
    """connections.json content that refuses to define one id twice (a clash would lose a connection)."""

    def add(self, conn_id: str, value: dict[str, Any]) -> None:
        if conn_id in self:
            raise DemoSecretsError(f"connection id {conn_id!r} would be defined twice")
        self[conn_id] = value


def sftp_connection(endpoint: SftpEndpoint, description: str) -> dict[str, Any]:
    """The Airflow connection for ``endpoint``, in the shape ``sf_airflow.sftp`` turns back into it and
    ``SFTPHook`` (the return sensor) reads. Only a key file: the demo keeps no key text in connections."""
    if endpoint.private_key_path is None:
        raise DemoSecretsError(f"{endpoint.describe()}: the demo's SFTP connections use a key file")
    return {
        "conn_type": "sftp",
        "description": description,
        "host": endpoint.host,
        "port": endpoint.port,
        "login": endpoint.username,
        "extra": {
            "key_file": str(endpoint.private_key_path),
            # Pinned with its type: the SSH hook reads a bare base64 value as an RSA key.
            "host_key": endpoint.host_key,
            "no_host_key_check": False,
            # Only the key above: never whatever happens to sit in ~/.ssh.
            "look_for_keys": False,
            # Payloads are OpenPGP ciphertext, which does not compress; zlib would only cost time.
            "compress": False,
            "conn_timeout": int(endpoint.connect_timeout),
        },
    }


def partner_conn_ids(spec: DemoSpec, layout: SecretsLayout) -> dict[str, list[str]]:
    """Each partner's own connection ids: its SFTP connections and every version of its pseudonym keys.

    These are the secrets only that partner's worker may hold (docs/ARCHITECTURE.md, "Credentials per
    partner"): with one partner's key another's references could be linked, with its SFTP key its
    folders read.
    """
    owned: dict[str, list[str]] = {}
    for ref in spec.agreements:
        ids = owned.setdefault(ref.partner, [])
        ids.append(ref.sftp_conn_id)
        ids.append(pseudonym_conn_id(ref.key_conn_id))
        ids += [pseudonym_conn_id(ref.key_conn_id, v) for v in hmac_key_versions(layout, ref.key_conn_id)]
    return {code: list(dict.fromkeys(ids)) for code, ids in owned.items()}


def split_connections(
    conns: dict[str, dict[str, Any]], owned: dict[str, list[str]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``conns`` as (central, by partner): no partner's connection in the central part."""
    partner_ids = {conn_id for ids in owned.values() for conn_id in ids}
    central = {k: v for k, v in conns.items() if k not in partner_ids}
    by_partner = {code: {k: conns[k] for k in ids if k in conns} for code, ids in owned.items()}
    return central, by_partner


def _connections(
    layout: SecretsLayout,
    spec: DemoSpec,
    endpoints: dict[str, SftpEndpoint],
    fingerprints: OpenPgpFingerprints,
) -> dict[str, dict[str, Any]]:
    """The ``connections.json`` content, in the shape LocalFilesystemBackend reads. ``endpoints``: the
    endpoint of each SFTP connection id."""
    conns = _Connections()
    for conn_id, refs in spec.sftp_connections().items():
        partners = ", ".join(dict.fromkeys(r.partner for r in refs))
        conns.add(
            conn_id,
            sftp_connection(
                endpoints[conn_id], f"Local partner SFTP server (demo) standing in for {partners}"
            ),
        )
    for ref in spec.agreements:
        for version in hmac_key_versions(layout, ref.key_conn_id):
            key = _read_hmac_key(layout.hmac_key_file(ref.key_conn_id, version))
            conns.add(
                pseudonym_conn_id(ref.key_conn_id, version),
                {
                    "conn_type": "generic",
                    "description": f"HMAC-SHA256 pseudonym key v{version} for the {ref.id} agreement",
                    "password": key,
                    "extra": {"version": version, "algorithm": HMAC_ALGORITHM},
                },
            )
        # The agreement's key_version, not the newest file: a rotated key waits until the agreement
        # adopts it (see rotate_hmac_key).
        conns.add(
            pseudonym_conn_id(ref.key_conn_id),
            {
                **conns[pseudonym_conn_id(ref.key_conn_id, ref.key_version)],
                "description": f"Current HMAC-SHA256 pseudonym key for the {ref.id} agreement",
            },
        )
    conns.add(
        OPENPGP_COUNCIL_CONN_ID,
        {
            "conn_type": "generic",
            "description": "Council OpenPGP signing and decryption key (demo)",
            "password": _council_passphrase(layout),
            "extra": {
                "fingerprint": fingerprints.council,
                "gnupg_home": str(layout.gnupg_council),
                "partner_fingerprints": dict(fingerprints.partners),
            },
        },
    )
    conns.add(
        RIGHTS_CONN_ID,
        {
            "conn_type": "generic",
            "description": "Data subjects' rights: the DPO's OpenPGP key, and the data keys' store",
            "extra": {"dpo_fingerprint": fingerprints.dpo, "data_keys_dir": str(layout.data_keys_dir)},
        },
    )
    conns.add(
        SMTP_CONN_ID,
        {
            "conn_type": "smtp",
            "description": "The council's mail relay (demo: the local SMTP sink, sf_demo.smtp_sink)",
            "host": "127.0.0.1",
            "port": SMTP_SINK_PORT,
            "extra": {
                "disable_tls": True,
                "disable_ssl": True,
                "from_email": "supporting-families@council.invalid",
                "to": ["dpo@council.invalid"],
                "lead_practitioner": ["lead.practitioner@council.invalid"],
                "operations": ["data.engineers@council.invalid"],
                "timeout": 10,
            },
        },
    )
    if not layout.tombstone_key_file.exists():
        _create_secret_file(layout.tombstone_key_file, (new_secret_hex(32) + "\n").encode("ascii"))
    conns.add(
        TOMBSTONE_CONN_ID,
        {
            "conn_type": "generic",
            "description": "HMAC-SHA256 key of erased persons' tombstones",
            "password": layout.tombstone_key_file.read_text(encoding="ascii").strip(),
        },
    )
    if not layout.staff_id_key_file.exists():
        _create_secret_file(layout.staff_id_key_file, new_secret_hex(32).encode("ascii"))
    conns.add(
        STAFF_ID_KEY_CONN_ID,
        {
            "conn_type": "generic",
            "password": layout.staff_id_key_file.read_text(encoding="ascii").strip(),
        },
    )
    return dict(conns)


@dataclass(frozen=True)
class AgencyRefs:
    """What one voluntary-sector agency (``inbound:`` in ``sources.yaml``) needs from set-up."""

    code: str
    sftp_conn_id: str
    remote_outbox: str
    #: ``SF_MONEY_ADVICE_PGP_FINGERPRINT``; None when the source pins a literal (a real agency's key).
    fingerprint_env_var: str | None


def inbound_agencies(sources: SourcesConfig | None = None) -> tuple[AgencyRefs, ...]:
    """Every agency that sends an extract over SFTP, from ``sources.yaml`` (placeholders unresolved)."""
    config = sources if sources is not None else load_sources()
    found: list[AgencyRefs] = []
    for spec in config.sources.values():
        if spec.inbound is None:
            continue
        placeholder = _PLACEHOLDER_RE.fullmatch(spec.inbound.signer_fingerprint.strip())
        found.append(
            AgencyRefs(
                code=spec.inbound.agency.code,
                sftp_conn_id=spec.inbound.sftp.conn_id,
                remote_outbox=spec.inbound.sftp.remote_outbox,
                fingerprint_env_var=placeholder["name"] if placeholder else None,
            )
        )
    return tuple(found)


def _add_agencies(
    conns: dict[str, dict[str, Any]],
    agencies: Sequence[AgencyRefs],
    layout: SecretsLayout,
    sftp: SftpServerInfo,
    jailed: bool,
    ssh_keygen: str,
) -> None:
    """Each agency's SFTP connection: its own key and login when the server jails partners apart."""
    for agency in agencies:
        if agency.sftp_conn_id in conns:
            continue
        key_file, login = layout.sftp_client_key, None
        if jailed:
            key_file, login = layout.partner_sftp_client_key(agency.code), partner_login(agency.code)
            if login not in sftp.partner_keys:
                raise DemoSecretsError(f"the SFTP server has no login {login}: restart it with these sources")
            public = ensure_ssh_keypair(key_file, f"supporting-families-council {login}", ssh_keygen)
            key_file.with_name(key_file.name + ".pub").chmod(0o600)
            authorize_key(sftp.partner_keys[login], public)
        conns[agency.sftp_conn_id] = sftp_connection(
            sftp.endpoint(key_file, login), f"Local partner SFTP server (demo) standing in for {agency.code}"
        )


def _fingerprints_env(spec: DemoSpec, fingerprints: OpenPgpFingerprints) -> str:
    lines = [
        "# Written by sf_demo.secrets from the agreements' ${..._FINGERPRINT} placeholders.",
        "# Fingerprints are public, not secret.",
        f"{COUNCIL_FINGERPRINT_ENV}={fingerprints.council}",
    ]
    lines += [
        f"{var}={fingerprints.partners[codes[0]]}" for var, codes in spec.fingerprint_env_vars().items()
    ]
    return "\n".join(lines) + "\n"


# -- the whole set -----------------------------------------------------------------------------------


def _spec(agreements: Iterable[Agreement] | None, agreements_dir: Path | None) -> DemoSpec:
    if agreements is not None:
        return DemoSpec.from_agreements(agreements)
    return DemoSpec.load(agreements_dir)


def generate_demo_secrets(
    state_dir: Path,
    sftp: SftpServerInfo,
    agreements: Iterable[Agreement] | None = None,
    *,
    agreements_dir: Path | None = None,
    gpg_binary: str = GPG,
    ssh_keygen: str = "ssh-keygen",
    sources: SourcesConfig | None = None,
) -> dict[str, Any]:
    """Create whatever the agreements need and is missing, rewrite the derived files if they changed.

    ``sources`` (default ``include/sources.yaml``): each voluntary-sector agency (``inbound:``) gets an
    OpenPGP key like a generated partner's and its SFTP connection.

    ``sftp``: the local server the SFTP connections point at (its client key is authorised there).
    ``agreements``: already loaded (with ``resolve=False``); else those in ``agreements_dir`` (None: the
    project's). Returns :func:`summarize`.
    """
    spec = _spec(agreements, agreements_dir)
    layout = SecretsLayout(Path(os.path.abspath(state_dir)))
    jailed = bool(sftp.partner_keys)
    try:
        # One key and login per partner when the server jails partners apart; else the one shared key.
        endpoints = {
            conn_id: sftp.endpoint(*_client(layout, refs, jailed))
            for conn_id, refs in spec.sftp_connections().items()
        }
    except ValueError as exc:  # checked before anything is written, like the agreements
        raise DemoSecretsError(f"the SFTP server cannot be pinned in a connection: {exc}") from None
    _private_dir(layout.state_dir)

    for ref in spec.agreements:
        ensure_agreement_keys(layout, ref)

    _private_dir(layout.sftp_client_key.parent)
    clients = {_client(layout, refs, jailed) for refs in spec.sftp_connections().values()}
    for key_file, login in sorted(clients, key=str):
        client_public = ensure_ssh_keypair(key_file, f"supporting-families-council {login or ''}", ssh_keygen)
        key_file.with_name(key_file.name + ".pub").chmod(0o600)
        authorized = sftp.partner_keys.get(login, sftp.authorized_keys) if login else sftp.authorized_keys
        if login and login not in sftp.partner_keys:
            raise DemoSecretsError(f"the SFTP server has no login {login}: restart it with these agreements")
        if authorize_key(authorized, client_public):
            log.info("authorised the SFTP client key %s on the local server", key_file.name)

    generated = spec.generated_partners()
    for code, refs in spec.partners().items():
        if code not in generated:
            log.info(
                "partner %s: pinned by a literal fingerprint in %s, a real partner key; not generated",
                code,
                ", ".join(r.id for r in refs),
            )
    agencies = inbound_agencies(sources)
    fingerprints = ensure_openpgp_keys(
        layout, tuple(dict.fromkeys((*generated, *(a.code for a in agencies)))), gpg_binary
    )

    conns = _connections(layout, spec, endpoints, fingerprints)
    _add_agencies(conns, agencies, layout, sftp, jailed, ssh_keygen)
    central, by_partner = split_connections(conns, partner_conn_ids(spec, layout))
    files = {layout.connections_file: conns, layout.central_connections_file: central}
    files |= {layout.partner_connections_file(code): part for code, part in by_partner.items()}
    _private_dir(layout.partner_connections_file("_").parent.parent)
    for path, content in files.items():
        if write_secret_file(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()):
            log.info("wrote %s connections to %s", len(content), path)
    env_text = _fingerprints_env(spec, fingerprints) + "".join(
        f"{a.fingerprint_env_var}={fingerprints.partners[a.code]}\n"
        for a in agencies
        if a.fingerprint_env_var
    )
    if write_secret_file(layout.fingerprints_env, env_text.encode("ascii")):
        log.info("wrote %s", layout.fingerprints_env)
    return _summary(layout, spec, gpg_binary)


def _client(layout: SecretsLayout, refs: tuple[AgreementRefs, ...], jailed: bool) -> tuple[Path, str | None]:
    """The client key and login of one SFTP connection: its partner's own when partners are jailed."""
    if not jailed:
        return layout.sftp_client_key, None
    partners = list(dict.fromkeys(r.partner for r in refs))
    if len(partners) != 1:
        raise DemoSecretsError(
            f"SFTP connection {refs[0].sftp_conn_id} serves partners {', '.join(partners)}: one login and"
            " jail per partner needs one connection per partner"
        )
    return layout.partner_sftp_client_key(partners[0]), partner_login(partners[0])


def summarize(
    state_dir: Path,
    agreements: Iterable[Agreement] | None = None,
    *,
    agreements_dir: Path | None = None,
    gpg_binary: str = GPG,
) -> dict[str, Any]:
    """Which secrets exist and where, with names, fingerprints and versions but never a secret value."""
    layout = SecretsLayout(Path(os.path.abspath(state_dir)))
    return _summary(layout, _spec(agreements, agreements_dir), gpg_binary)


def _summary(layout: SecretsLayout, spec: DemoSpec, gpg_binary: str) -> dict[str, Any]:
    council = GnuPG(layout.gnupg_council, gpg_binary)
    simulator = GnuPG(layout.gnupg_partners, gpg_binary)
    council_key = council.find(COUNCIL_UID, secret=True) if layout.gnupg_council.exists() else None
    connections: list[str] = []
    if layout.connections_file.exists():
        connections = sorted(json.loads(layout.connections_file.read_text(encoding="utf-8")))
    env_vars: list[str] = []
    if layout.fingerprints_env.exists():
        env_vars = sorted(read_fingerprints_env(layout.fingerprints_env))
    client_pub = layout.sftp_client_key.with_name(layout.sftp_client_key.name + ".pub")

    agreements_summary: dict[str, Any] = {}
    for ref in spec.agreements:
        versions = hmac_key_versions(layout, ref.key_conn_id)
        agreements_summary[ref.id] = {
            "partner": ref.partner,
            "sftp_connection": ref.sftp_conn_id,
            "remote_inbox": ref.remote_inbox,
            "remote_outbox": ref.remote_outbox,
            "pseudonym_connection": pseudonym_conn_id(ref.key_conn_id),
            "pseudonym_key_version": ref.key_version,
            "pseudonym_versions_present": versions,
            "pseudonym_versions_missing": [
                v for v in (ref.key_version, *ref.previous_key_versions) if v not in versions
            ],
            "openpgp_env_var": ref.fingerprint_env_var,
            "openpgp_key": "generated"
            if ref.fingerprint_env_var
            else "real partner key (literal fingerprint)",
        }

    generated = spec.generated_partners()
    partners_summary: dict[str, Any] = {}
    for code, refs in spec.partners().items():
        entry: dict[str, Any] = {
            "agreements": [r.id for r in refs],
            "openpgp_generated": code in generated,
            "openpgp_env_vars": list(
                dict.fromkeys(r.fingerprint_env_var for r in refs if r.fingerprint_env_var)
            ),
            "pinned_fingerprints": list(
                dict.fromkeys(r.literal_fingerprint for r in refs if r.literal_fingerprint)
            ),
        }
        if code in generated:
            key = simulator.find(partner_uid(code), secret=True) if layout.gnupg_partners.exists() else None
            fingerprint = key.fingerprint if key else None
            entry["public_key_file"] = str(layout.public_key_file(code))
        else:
            fingerprint = entry["pinned_fingerprints"][0]
            entry["note"] = (
                "pinned by a literal fingerprint: a real partner key, not generated by the demo; import it "
                f"into {layout.gnupg_council} and certify it (gpg --quick-lsign-key) before sharing"
            )
        in_council = council.key(fingerprint) if fingerprint and layout.gnupg_council.exists() else None
        entry["openpgp_fingerprint"] = fingerprint
        entry["openpgp_valid_in_council_keyring"] = bool(in_council and in_council.validity in ("f", "u"))
        partners_summary[code] = entry

    return {
        "state_dir": str(layout.state_dir),
        "connections_file": str(layout.connections_file),
        "connections": connections,
        "fingerprints_env": str(layout.fingerprints_env),
        "fingerprint_env_vars": env_vars,
        "sftp_client_key": str(layout.sftp_client_key),
        "sftp_client_public_key": read_public_key(client_pub) if client_pub.exists() else None,
        # Per SFTP connection: its login and client key (each partner's own when partners are jailed).
        "sftp_clients": _sftp_clients(layout),
        "central_connections_file": str(layout.central_connections_file),
        "partner_connections_files": {
            code: str(layout.partner_connections_file(code)) for code in spec.partners()
        },
        "openpgp_council": {
            "connection": OPENPGP_COUNCIL_CONN_ID,
            "fingerprint": council_key.fingerprint if council_key else None,
            "env_var": COUNCIL_FINGERPRINT_ENV,
            "gnupg_home": str(layout.gnupg_council),
            "passphrase_set": layout.council_passphrase_file.exists(),
        },
        "gnupg_partners_home": str(layout.gnupg_partners),
        "agreements": agreements_summary,
        "sftp_connections": {
            conn_id: {
                "partners": list(dict.fromkeys(r.partner for r in refs)),
                "agreements": [r.id for r in refs],
            }
            for conn_id, refs in spec.sftp_connections().items()
        },
        "partners": partners_summary,
    }


def _sftp_clients(layout: SecretsLayout) -> dict[str, dict[str, Any]]:
    if not layout.connections_file.exists():
        return {}
    clients: dict[str, dict[str, Any]] = {}
    for conn_id, conn in json.loads(layout.connections_file.read_text(encoding="utf-8")).items():
        if conn.get("conn_type") != "sftp":
            continue
        key_file = Path(conn["extra"]["key_file"])
        pub = key_file.with_name(key_file.name + ".pub")
        clients[conn_id] = {
            "login": conn["login"],
            "key_file": str(key_file),
            "public_key": read_public_key(pub) if pub.exists() else None,
        }
    return clients


# -- CLI ---------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sf_demo.secrets",
        description="Generate every demo secret the data agreements name (idempotent) and Airflow's "
        "connections.json.",
    )
    parser.add_argument("--state-dir", type=Path, required=True, help="e.g. var/secrets (made 0700)")
    parser.add_argument(
        "--sftp-state-dir", type=Path, help="the SFTP server's --state-dir (reads its server.json)"
    )
    parser.add_argument("--sftp-port", type=int, help="instead of --sftp-state-dir")
    parser.add_argument("--sftp-host-key-file", type=Path, help="the server's ssh_host_ed25519_key.pub")
    parser.add_argument("--sftp-authorized-keys", type=Path, help="the server's authorized_keys")
    parser.add_argument(
        "--agreements-dir",
        type=Path,
        help="the data agreements to set up (default: $SF_AGREEMENTS_DIR or include/agreements)",
    )
    parser.add_argument(
        "--rotate-hmac",
        metavar="AGREEMENT",
        action="append",
        default=[],
        help="add the next key version for this agreement id or key_conn_id; it becomes current once the "
        "agreement's key_version says so",
    )
    parser.add_argument(
        "--retire-hmac",
        metavar="AGREEMENT:VERSION",
        action="append",
        default=[],
        help="destroy that key version (refused while the agreement names it); its references then resolve"
        " to no one",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: writes the summary (no secret values) as JSON to stdout."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parse_args(argv)
    try:
        if args.sftp_state_dir is not None:
            sftp = SftpServerInfo.from_server_state(args.sftp_state_dir)
        elif args.sftp_port and args.sftp_host_key_file and args.sftp_authorized_keys:
            sftp = SftpServerInfo(
                port=args.sftp_port,
                host_public_key=read_public_key(args.sftp_host_key_file),
                authorized_keys=args.sftp_authorized_keys,
            )
        else:
            sys.stderr.write(
                "give --sftp-state-dir, or --sftp-port, --sftp-host-key-file and --sftp-authorized-keys\n"
            )
            return 2
        # Loaded once, so the rotation and the generation see the same agreements.
        agreements = load_agreements(args.agreements_dir, resolve=False)
        spec = DemoSpec.from_agreements(agreements)
        layout = SecretsLayout(Path(os.path.abspath(args.state_dir)))
        for name in args.rotate_hmac:
            ref = spec.find(name)
            new = rotate_hmac_key(layout, ref.key_conn_id)
            log.info(
                "%s still uses key_version %s: set key_version: %s (and list %s in previous_key_versions) "
                "to use the new key for new shares",
                ref.id,
                ref.key_version,
                new,
                ref.key_version,
            )
        for item in args.retire_hmac:
            name, _, version = item.rpartition(":")
            if not name or not version.isdigit():
                raise DemoSecretsError(f"--retire-hmac {item!r}: give AGREEMENT:VERSION")
            retire_hmac_key(layout, spec.find(name), int(version))
        summary = generate_demo_secrets(args.state_dir, sftp, agreements)
    except (DemoSecretsError, RuntimeError, ValueError) as exc:  # ValueError includes AgreementError
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
