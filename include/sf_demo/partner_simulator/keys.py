"""The partner's keys in the simulator's keyring, and the wrong signers the ``wrong_signer`` fault uses."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sf_demo.secrets import DemoSecretsError, GnuPG
from supporting_families.transport.openpgp import KeyListing, normalise_fingerprint

log = logging.getLogger(__name__)

OUTSIDER_UID = "Outsider (partner simulator, wrong_signer fault) <outsider@partner-simulator.invalid>"


class KeyringError(RuntimeError):
    """The simulator's keyring lacks a key it needs; the message names the fingerprint, never a secret."""


@dataclass(frozen=True)
class Signer:
    """A keyring and the fingerprint of a secret key in it that can sign (no passphrase)."""

    gnupg_home: Path
    fingerprint: str


def secret_keys(gnupg_home: Path) -> list[KeyListing]:
    """Every secret key in ``gnupg_home`` with its subkeys."""
    return GnuPG(gnupg_home).list_keys(secret=True)


def own_key_ids(gnupg_home: Path, fingerprint: str) -> frozenset[str]:
    """Key ids (primary and subkeys) of the partner's own secret key: what a delivery must be encrypted to."""
    pinned = normalise_fingerprint(fingerprint)
    for key in secret_keys(gnupg_home):
        if key.primary.fingerprint == pinned:
            return frozenset(part.key_id for part in key.parts if part.has_secret)
    raise KeyringError(f"the partner's secret key {pinned} is not in {gnupg_home}")


def other_signer(gnupg_home: Path, partner_fingerprint: str, council_fingerprint: str) -> Signer | None:
    """Another secret key in the keyring that can sign (another partner's), lowest fingerprint first."""
    exclude = {normalise_fingerprint(partner_fingerprint), normalise_fingerprint(council_fingerprint)}
    for key in sorted(secret_keys(gnupg_home), key=lambda k: k.primary.fingerprint):
        if key.primary.fingerprint in exclude or key.primary.unusable:
            continue
        if any("s" in part.usage and part.has_secret and not part.unusable for part in key.parts):
            return Signer(gnupg_home, key.primary.fingerprint)
    return None


@contextlib.contextmanager
def outsider_signer(partner_home: Path, council_fingerprint: str) -> Iterator[Signer]:
    """A throw-away keyring with a freshly generated outsider key and the council's public key, certified
    there so gpg will encrypt to it. Removed (and its agent stopped) on exit."""
    council = normalise_fingerprint(council_fingerprint)
    with tempfile.TemporaryDirectory(prefix="sf-outsider-") as tmp:
        home = Path(tmp)
        home.chmod(0o700)
        gpg = GnuPG(home)
        try:
            signer = _make_outsider(gpg, partner_home, council)
            yield signer
        finally:
            gpg.stop_agent()


def _make_outsider(gpg: GnuPG, partner_home: Path, council: str) -> Signer:
    try:
        gpg.run("--quick-gen-key", OUTSIDER_UID, "ed25519", "sign", "1d", passphrase="")
        key = gpg.find(OUTSIDER_UID, secret=True)
        if key is None:
            raise KeyringError("gpg generated no outsider key")
        public = GnuPG(partner_home).run("--export", council).stdout
        if not public:
            raise KeyringError(f"the council's public key {council} is not in {partner_home}")
        exported = gpg.home / "council.pgp"
        exported.write_bytes(public)
        gpg.run("--import", str(exported))
        gpg.run("--local-user", key.fingerprint, "--quick-lsign-key", council, passphrase="")
    except DemoSecretsError as exc:
        raise KeyringError(f"cannot set up the outsider keyring: {exc}") from None
    log.info("generated outsider key %s for the wrong_signer fault", key.fingerprint)
    return Signer(gpg.home, key.fingerprint)
