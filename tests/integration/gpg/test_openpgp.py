"""OpenPGP with the real ``gpg``: encryption for a share, and the decrypt/verify half of receiving a return.

The keyrings are the demo's own (``demo_secrets.ensure_openpgp_keys``: a passphrase-protected council key,
unprotected partner keys in a separate simulator keyring, each side's public keys certified by the other),
so these tests exercise exactly what the demo and the partner simulator run. Keys the demo never makes
(expired, revoked, a stranger's) are made in an "outsider" keyring with ``gpg --quick-gen-key``.

Messages the platform must refuse but would never produce (no MDC, unsigned, 3DES, plaintext only) are made
with the ``gpg`` command line, as an attacker or a misconfigured partner would.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sf_demo.secrets import GnuPG, SecretsLayout, ensure_openpgp_keys
from supporting_families.transport import openpgp
from supporting_families.transport.openpgp import (
    BadPassphrase,
    BadSignature,
    DecryptionResult,
    EncryptionFailed,
    EncryptionResult,
    IntegrityCheckFailed,
    InvalidFingerprint,
    KeyExpired,
    KeyMismatch,
    KeyNotCertified,
    KeyRevoked,
    MissingKey,
    MultipleSignatures,
    NoSecretKey,
    NotEncrypted,
    NotIntegrityProtected,
    OpenPgpError,
    PlaintextTooLarge,
    Status,
    UnknownSigner,
    UnsignedMessage,
    WeakAlgorithm,
    WrongSigner,
    decrypt_and_verify,
    encrypt_and_sign,
    interpret_decryption,
    interpret_encryption,
    normalise_fingerprint,
    parse_recipients,
    recipient_key_ids,
)

#: The OpenPGP error a helper expects, so that it can hand the caught error back with its own type.
RefusalT = TypeVar("RefusalT", bound=OpenPgpError)

#: CSV-like, compressible, with a "formula" cell: what a delivery looks like, never real data.
ROWS = b"person_ref,address_line_1,town,postcode,uprn\n" + b"".join(
    b"DWP1-%06d,%d High Street,London,W8 %dAB,1000%08d\n" % (i, i % 300, i % 9, i) for i in range(20000)
)


@dataclass(frozen=True)
class Keys:
    council_home: Path
    partners_home: Path
    outsider_home: Path
    passphrase: str
    council: str
    dwp: str
    police: str
    dwp_encryption_key: str
    expired: str
    revoked: str
    #: A key with DWP's user id that the council has never imported (e.g. DWP's next key).
    dwp_lookalike: str
    #: A signer the council has never heard of.
    stranger: str


def _fingerprint(gpg: GnuPG, uid: str) -> str:
    key = next(k for k in gpg.list_keys() if uid in k.uids)
    return key.fingerprint


def _subkey(home: Path, primary: str, usage: str) -> str:
    listing = openpgp._list_key(home, primary, role="recipient", secret=False, binary="gpg")
    assert listing is not None
    return next(p.fingerprint for p in listing.subkeys if usage in p.usage)


def _make_key(gpg: GnuPG, uid: str, *, faked_time: str | None = None, expiry: str = "2y") -> str:
    when = ["--faked-system-time", faked_time] if faked_time else []
    gpg.run(*when, "--quick-gen-key", uid, "ed25519", "sign", expiry, passphrase="")
    fpr = _fingerprint(gpg, uid)
    gpg.run(*when, "--quick-add-key", fpr, "cv25519", "encr", expiry, passphrase="")
    return fpr


def _revoke(gpg: GnuPG, fpr: str) -> None:
    """Import the revocation certificate gpg made with the key (the leading ':' guards it from accidents)."""
    certificate = gpg.home / "openpgp-revocs.d" / f"{fpr}.rev"
    armoured = certificate.read_text(encoding="ascii").replace(":-----BEGIN", "-----BEGIN")
    revocation = gpg.home / f"{fpr}.rev.asc"
    revocation.write_text(armoured, encoding="ascii")
    gpg.run("--import", str(revocation))


def _move_keys(source: GnuPG, target: GnuPG, *fingerprints: str) -> None:
    exported = source.home / "export.pgp"
    exported.write_bytes(source.run("--export", *fingerprints).stdout)
    target.run("--import", str(exported))


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    base = tmp_path_factory.mktemp("openpgp")
    layout = SecretsLayout(base / "secrets")
    # gpg-agent calibrates the passphrase KDF to its machine (s2k-count ~260M here, 0.3-1.4 s per signature
    # on these loaded cores) and runs it on every signature. The tests are not about the KDF: a small count,
    # set before the council key is made, saves about a second per share.
    layout.gnupg_council.mkdir(mode=0o700, parents=True)
    (layout.gnupg_council / "gpg-agent.conf").write_text("s2k-count 65536\n", encoding="ascii")
    demo = ensure_openpgp_keys(layout, ["dwp", "police"])
    council = GnuPG(layout.gnupg_council)
    outsider_home = base / "outsider"
    outsider_home.mkdir(mode=0o700)
    outsider = GnuPG(outsider_home)
    homes = [council, GnuPG(layout.gnupg_partners), outsider]
    try:
        # Expiry: a key made as if on 1 January 2020 with a one-day lifetime (gpg --faked-system-time),
        # so it is genuinely expired now; gpg cannot set an expiry date in the past on an existing key.
        expired = _make_key(
            outsider, "Expired partner <expired@partner.invalid>", faked_time="20200101T000000", expiry="1d"
        )
        revoked = _make_key(outsider, "Revoked partner <revoked@partner.invalid>")
        _revoke(outsider, revoked)
        lookalike = _make_key(outsider, "DWP (Supporting Families demo partner) <dwp@partner.invalid>")
        stranger = _make_key(outsider, "Stranger <stranger@elsewhere.invalid>")
        _move_keys(outsider, council, expired, revoked)
        council_public = layout.public_key_file("council")
        outsider.run("--import", str(council_public))
        yield Keys(
            council_home=layout.gnupg_council,
            partners_home=layout.gnupg_partners,
            outsider_home=outsider_home,
            passphrase=layout.council_passphrase_file.read_text(encoding="ascii").strip(),
            council=demo.council,
            dwp=demo.partners["dwp"],
            police=demo.partners["police"],
            dwp_encryption_key=_subkey(layout.gnupg_council, demo.partners["dwp"], "e"),
            expired=expired,
            revoked=revoked,
            dwp_lookalike=lookalike,
            stranger=stranger,
        )
    finally:
        for gpg in homes:
            gpg.stop_agent()


@pytest.fixture
def plaintext(tmp_path: Path) -> Path:
    path = tmp_path / "dwp-benefits-matching_2025-04-02.csv"
    path.write_bytes(ROWS)
    return path


def _share(keys: Keys, plaintext: Path, ciphertext: Path, **overrides: Any) -> EncryptionResult:
    """Encrypt and sign as the council's share does: to DWP, signed by the council, in the council keyring.

    ``overrides`` replace one of those arguments (or add ``gpg_binary``) for the case a test is about.
    """
    arguments: dict[str, Any] = {
        "recipient_fingerprint": keys.dwp,
        "signer_fingerprint": keys.council,
        "passphrase": keys.passphrase,
        "gnupg_home": keys.council_home,
    }
    arguments.update(overrides)
    return encrypt_and_sign(plaintext, ciphertext, **arguments)


def _partner_receives(keys: Keys, ciphertext: Path, out: Path, **overrides: Any) -> DecryptionResult:
    """Decrypt and verify as the partner simulator does: its unprotected keys, the council as the signer.

    ``overrides`` replace one of those arguments (or add ``max_plaintext_bytes``) for a single case.
    """
    arguments: dict[str, Any] = {
        "expected_signer_fingerprint": keys.council,
        "passphrase": None,
        "gnupg_home": keys.partners_home,
    }
    arguments.update(overrides)
    return decrypt_and_verify(ciphertext, out, **arguments)


def _council_receives(
    keys: Keys, ciphertext: Path, out: Path, expected_signer: str, **overrides: Any
) -> DecryptionResult:
    """Decrypt a return as the council does: its passphrase-protected key, ``expected_signer`` pinned."""
    arguments: dict[str, Any] = {"passphrase": keys.passphrase, "gnupg_home": keys.council_home}
    arguments.update(overrides)
    return decrypt_and_verify(ciphertext, out, expected_signer_fingerprint=expected_signer, **arguments)


def _partner_returns(keys: Keys, plaintext: Path, returned: Path, signer: str) -> Path:
    """A return as the partner simulator writes it: encrypted to the council, signed by ``signer``'s
    unprotected key in the partners' keyring (which holds both DWP's and the police's secret keys)."""
    encrypt_and_sign(
        plaintext,
        returned,
        recipient_fingerprint=keys.council,
        signer_fingerprint=signer,
        passphrase="",
        gnupg_home=keys.partners_home,
    )
    return returned


@pytest.fixture
def council_keyring_copy(keys: Keys, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the council keyring, whose gpg-agent is stopped afterwards.

    The copy has its own gpg-agent, so no passphrase cached by an earlier test can make a call succeed,
    and keys imported into it never reach the session's keyring.
    """
    home = tmp_path / "gnupg"
    shutil.copytree(keys.council_home, home, ignore=shutil.ignore_patterns("S.*"))
    try:
        yield home
    finally:
        GnuPG(home).stop_agent()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


def _flip(source: Path, target: Path, offset: int) -> Path:
    data = bytearray(source.read_bytes())
    data[offset] ^= 0x01
    target.write_bytes(bytes(data))
    return target


def _list_packets(home: Path, path: Path) -> bytes:
    """``gpg --list-packets``, whose exit code is 2 whenever it cannot decrypt what it lists."""
    command = ["gpg", "--homedir", str(home), "--batch", "--list-packets", str(path)]
    return subprocess.run(command, capture_output=True, check=False).stdout


def _cli_message(keys: Keys, tmp_path: Path, name: str, *options: str, home: Path | None = None) -> Path:
    """A message made with the gpg command line in the council keyring (or ``home``), from ROWS."""
    source = tmp_path / "cli-source.csv"
    source.write_bytes(ROWS)
    out = tmp_path / name
    gpg = GnuPG(home or keys.council_home)
    gpg.run(*options, "--output", str(out), str(source), passphrase=keys.passphrase)
    return out


# -- the happy paths --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_partner_decrypts_the_delivery_and_verifies_the_council_signature(
    keys: Keys, plaintext: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ciphertext = tmp_path / "dwp-benefits-matching_2025-04-02.csv.gpg"

    shared = _share(keys, plaintext, ciphertext)
    received = _partner_receives(keys, ciphertext, tmp_path / "received.csv")

    assert (tmp_path / "received.csv").read_bytes() == ROWS
    sent_bytes = ciphertext.read_bytes()
    assert shared.plaintext_sha256 == received.plaintext_sha256 == hashlib.sha256(ROWS).hexdigest()
    assert shared.ciphertext_sha256 == received.ciphertext_sha256 == hashlib.sha256(sent_bytes).hexdigest()
    assert (shared.plaintext_bytes, shared.ciphertext_bytes) == (len(ROWS), len(sent_bytes))
    assert (received.plaintext_bytes, received.ciphertext_bytes) == (len(ROWS), len(sent_bytes))
    assert shared.recipient_fingerprint == keys.dwp
    assert shared.recipient_key_fingerprint == keys.dwp_encryption_key
    assert shared.signer_fingerprint == received.signer_fingerprint == keys.council
    assert (shared.cipher_algo, received.cipher_algo) == ("AES256", "AES256")
    assert (shared.integrity, received.integrity) == ("MDC", "MDC")
    assert received.decryption_key_fingerprint == keys.dwp_encryption_key
    assert shared.signature_created == received.signature_created
    # Exactly one recipient, the pinned key's encryption subkey; nothing left behind; private file modes.
    assert recipient_key_ids(ciphertext) == (keys.dwp_encryption_key[-16:],)
    assert _leftovers(tmp_path) == []
    assert stat.S_IMODE(ciphertext.stat().st_mode) == 0o600
    # Logs name files, sizes and fingerprints; never the passphrase or a byte of content.
    assert caplog.records
    assert keys.passphrase not in caplog.text
    assert "High Street" not in caplog.text


@pytest.mark.integration
def test_delivery_has_no_compression_packet(keys: Keys, plaintext: Path, tmp_path: Path) -> None:
    ciphertext = _share(keys, plaintext, tmp_path / "delivery.csv.gpg")
    assert ciphertext.ciphertext_bytes > len(ROWS)  # compressible text, yet nothing was compressed

    packets = GnuPG(keys.partners_home).run("--list-packets", str(tmp_path / "delivery.csv.gpg")).stdout
    assert b"literal data packet" in packets
    assert b"compressed packet" not in packets
    # The same check sees gpg's default compression, so its silence above means something.
    compressed = _cli_message(keys, tmp_path, "default.gpg", "--sign", "--encrypt", "-r", keys.dwp)
    assert b"compressed packet" in GnuPG(keys.partners_home).run("--list-packets", str(compressed)).stdout


@pytest.mark.integration
def test_partner_return_reaches_the_council_verified(keys: Keys, plaintext: Path, tmp_path: Path) -> None:
    """The receive direction: the partner (simulator) signs and encrypts to the council, which verifies."""
    returned = _partner_returns(keys, plaintext, tmp_path / "dwp-return-2025-04-20.csv.gpg", signer=keys.dwp)
    result = _council_receives(keys, returned, tmp_path / "return.csv", expected_signer=keys.dwp)
    assert (tmp_path / "return.csv").read_bytes() == ROWS
    assert result.signer_fingerprint == keys.dwp


@pytest.mark.integration
def test_spaced_fingerprints_are_accepted_and_key_ids_refused(
    keys: Keys, plaintext: Path, tmp_path: Path
) -> None:
    spaced = " ".join(keys.dwp[i : i + 4] for i in range(0, 40, 4)).lower()
    assert _share(
        keys, plaintext, tmp_path / "a.gpg", recipient_fingerprint=spaced
    ).recipient_fingerprint == (keys.dwp)
    for bad in (keys.dwp[-16:], keys.dwp + "!", "", "not a fingerprint"):
        with pytest.raises(InvalidFingerprint):
            normalise_fingerprint(bad)
    assert not (tmp_path / "b.gpg").exists()


# -- keys refused before anything is encrypted -----------------------------------------------------------


def _share_refused(
    keys: Keys, plaintext: Path, error: type[RefusalT], *, match: str | None = None, **overrides: Any
) -> RefusalT:
    """Share with ``overrides``; assert ``error`` and that nothing but the plaintext is in its folder.

    The plaintext fixture is the only file in the test's ``tmp_path``, and the ciphertext would go there.
    """
    with pytest.raises(error, match=match) as refused:
        _share(keys, plaintext, plaintext.parent / "out.gpg", **overrides)
    assert list(plaintext.parent.iterdir()) == [plaintext]
    return refused.value


@pytest.mark.integration
def test_expired_partner_key_is_refused(keys: Keys, plaintext: Path) -> None:
    refused = _share_refused(keys, plaintext, KeyExpired, recipient_fingerprint=keys.expired)
    assert refused.role == "recipient"
    assert refused.fingerprint == keys.expired
    assert refused.expired_at is not None and refused.expired_at.year == 2020
    assert "expired on 2020-01-02" in str(refused)


@pytest.mark.integration
def test_revoked_partner_key_is_refused(keys: Keys, plaintext: Path) -> None:
    refused = _share_refused(keys, plaintext, KeyRevoked, match="revoked", recipient_fingerprint=keys.revoked)
    assert refused.fingerprint == keys.revoked


@pytest.mark.integration
@pytest.mark.parametrize("expiry", ["expired", "revoked"])
def test_gpg_refusal_after_the_check_is_named_too(
    keys: Keys, plaintext: Path, monkeypatch: pytest.MonkeyPatch, expiry: str
) -> None:
    """A key that expires or is revoked between the keyring check and gpg's run: gpg's status decides.

    gpg 2.2 reports both as ``INV_RECP 0`` (with KEYEXPIRED for expiry only); the error still names why.
    """
    pinned = keys.expired if expiry == "expired" else keys.revoked
    real = openpgp._recipient_key
    calls: list[int] = []

    def passes_first_check(home: Path, fingerprint: str, binary: str) -> openpgp.KeyPart:
        calls.append(1)
        if len(calls) > 1:
            return real(home, fingerprint, binary)
        listing = openpgp._list_key(home, fingerprint, role="recipient", secret=False, binary=binary)
        assert listing is not None
        return next(p for p in listing.subkeys if "e" in p.usage)

    monkeypatch.setattr(openpgp, "_recipient_key", passes_first_check)
    expected = KeyExpired if expiry == "expired" else KeyRevoked
    _share_refused(keys, plaintext, expected, recipient_fingerprint=pinned)


@pytest.mark.integration
def test_pinned_key_missing_although_a_key_with_the_same_user_id_is_present(
    keys: Keys, plaintext: Path
) -> None:
    """The agreement pins a DWP key the keyring lacks; the DWP-named key it has is never substituted."""
    _share_refused(
        keys, plaintext, MissingKey, match="not in the keyring", recipient_fingerprint=keys.dwp_lookalike
    )


@pytest.mark.integration
def test_pinning_a_subkey_instead_of_the_primary_key_is_a_mismatch(keys: Keys, plaintext: Path) -> None:
    _share_refused(
        keys, plaintext, KeyMismatch, match=keys.dwp, recipient_fingerprint=keys.dwp_encryption_key
    )


@pytest.mark.integration
def test_uncertified_partner_key_is_refused(
    keys: Keys, plaintext: Path, tmp_path: Path, council_keyring_copy: Path
) -> None:
    """Imported but never checked out of band and certified: refused, with what to do."""
    _move_keys(GnuPG(keys.outsider_home), GnuPG(council_keyring_copy), keys.stranger)
    with pytest.raises(KeyNotCertified, match="quick-lsign-key"):
        _share(
            keys,
            plaintext,
            tmp_path / "out.gpg",
            recipient_fingerprint=keys.stranger,
            gnupg_home=council_keyring_copy,
        )
    assert not (tmp_path / "out.gpg").exists()


@pytest.mark.integration
def test_signer_without_secret_key_is_refused(keys: Keys, plaintext: Path) -> None:
    refused = _share_refused(keys, plaintext, MissingKey, match="secret key", signer_fingerprint=keys.police)
    assert refused.role == "signer"


@pytest.mark.integration
def test_wrong_council_passphrase_is_refused(
    keys: Keys, plaintext: Path, tmp_path: Path, council_keyring_copy: Path
) -> None:
    # In the copy, with its own gpg-agent, no cached passphrase can make the call succeed.
    with pytest.raises(BadPassphrase):
        _share(
            keys,
            plaintext,
            tmp_path / "out.gpg",
            passphrase="not the passphrase",
            gnupg_home=council_keyring_copy,
        )
    assert not (tmp_path / "out.gpg").exists()
    assert _leftovers(tmp_path) == []


# -- how gpg is driven ----------------------------------------------------------------------------------


def _wrapper(tmp_path: Path, body: str) -> str:
    script = tmp_path / "gpg-wrapper"
    script.write_text(f"#!/bin/sh\n{body}\n", encoding="ascii")
    script.chmod(0o700)
    return str(script)


@pytest.mark.integration
def test_gpg_is_driven_in_batch_with_pinned_keys_and_no_secret_on_argv(
    keys: Keys, plaintext: Path, tmp_path: Path
) -> None:
    argv_log = tmp_path / "argv.log"
    wrapper = _wrapper(tmp_path, f'printf "%s\\n" "--- call" "$@" >> {argv_log}\nexec gpg "$@"')
    _share(keys, plaintext, tmp_path / "out.gpg")  # the real binary, for the passphrase cache
    _share(keys, plaintext, tmp_path / "out.gpg", gpg_binary=wrapper)
    calls = [c.splitlines() for c in argv_log.read_text(encoding="utf-8").split("--- call\n") if c]
    encrypt = next(c for c in calls if "--encrypt" in c)
    assert keys.passphrase not in argv_log.read_text(encoding="utf-8")
    for flag in ("--batch", "--no-tty", "--no-options", "--no-auto-key-locate", "--no-auto-key-retrieve"):
        assert all(flag in call for call in calls), flag
    assert encrypt[encrypt.index("--pinentry-mode") + 1] == "loopback"
    assert encrypt[encrypt.index("--passphrase-fd") + 1].isdigit()
    assert encrypt[encrypt.index("--status-fd") + 1].isdigit()
    assert encrypt[encrypt.index("--compress-algo") + 1] == "none"
    assert encrypt[encrypt.index("--recipient") + 1] == f"{keys.dwp_encryption_key}!"
    assert encrypt[encrypt.index("--local-user") + 1] == f"{keys.council}!"
    assert encrypt.count("--recipient") == 1
    assert encrypt[-2:] == ["--output", "-"]  # data through pipes, no file name for gpg to embed


@pytest.mark.integration
def test_exit_code_zero_without_status_is_not_success(keys: Keys, plaintext: Path, tmp_path: Path) -> None:
    """A gpg that exits 0 but reports no END_ENCRYPTION / SIG_CREATED produced nothing trustworthy."""
    wrapper = _wrapper(
        tmp_path,
        'case " $* " in *" --encrypt "*) cat >/dev/null; echo "not ciphertext"; exit 0;; esac\nexec gpg "$@"',
    )
    with pytest.raises(EncryptionFailed, match="did not complete"):
        _share(keys, plaintext, tmp_path / "out.gpg", gpg_binary=wrapper)
    assert not (tmp_path / "out.gpg").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.integration
def test_missing_gpg_binary_is_a_clear_error(keys: Keys, plaintext: Path, tmp_path: Path) -> None:
    with pytest.raises(openpgp.GnuPGUnavailable, match="not installed"):
        _share(keys, plaintext, tmp_path / "out.gpg", gpg_binary=str(tmp_path / "no-such-gpg"))


def test_passphrase_with_a_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="newline"):
        encrypt_and_sign(
            tmp_path / "in.csv",
            tmp_path / "out.gpg",
            recipient_fingerprint="A" * 40,
            signer_fingerprint="B" * 40,
            passphrase="first line\nsecond",
            gnupg_home=tmp_path,
        )


# -- messages refused on decryption ----------------------------------------------------------------------


@pytest.fixture
def delivery(keys: Keys, plaintext: Path, tmp_path: Path) -> Path:
    ciphertext = tmp_path / "delivery.csv.gpg"
    _share(keys, plaintext, ciphertext)
    return ciphertext


def _refused(
    keys: Keys, ciphertext: Path, tmp_path: Path, error: type[OpenPgpError], *, signer: str | None = None
) -> OpenPgpError:
    """Decrypt as the partner; assert ``error`` and that an existing output file was left untouched."""
    out = tmp_path / "received.csv"
    out.write_bytes(b"previous run\n")
    with pytest.raises(error) as refused:
        _partner_receives(keys, ciphertext, out, expected_signer_fingerprint=signer or keys.council)
    assert out.read_bytes() == b"previous run\n"
    assert _leftovers(tmp_path) == []
    return refused.value


@pytest.mark.integration
@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("middle", BadSignature),  # the signed literal data changed: gpg stops at the bad signature
        ("last byte", IntegrityCheckFailed),  # the MDC packet changed: signature good, MDC bad
    ],
)
def test_tampered_ciphertext_is_refused_and_no_plaintext_is_left(
    keys: Keys, delivery: Path, tmp_path: Path, where: str, error: type[OpenPgpError]
) -> None:
    size = delivery.stat().st_size
    offset = size // 2 if where == "middle" else size - 1
    tampered = _flip(delivery, tmp_path / "tampered.gpg", offset)
    message = str(_refused(keys, tampered, tmp_path, error))
    assert "High Street" not in message


@pytest.mark.integration
def test_truncated_ciphertext_is_refused(keys: Keys, delivery: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.gpg"
    truncated.write_bytes(delivery.read_bytes()[: delivery.stat().st_size // 2])
    _refused(keys, truncated, tmp_path, IntegrityCheckFailed)


@pytest.mark.integration
def test_message_without_mdc_is_refused(keys: Keys, tmp_path: Path) -> None:
    """gpg 2.2 still *writes* messages without MDC with ``--rfc2440`` (it warns "encrypting without
    integrity protection is dangerous"): a v1 Symmetrically Encrypted Data packet (tag 9), signed."""
    legacy = _cli_message(
        keys, tmp_path, "legacy.gpg", "--rfc2440", "--compress-algo", "none", "--sign", "--encrypt",
        "-r", f"{keys.dwp_encryption_key}!", "-u", f"{keys.council}!",
    )  # fmt: skip
    # Listed where no key can decrypt it, so only the outer packets show: tag 9 has no mdc_method.
    outer = _list_packets(keys.outsider_home, legacy)
    assert b":encrypted data packet:" in outer
    assert b"mdc_method" not in outer
    _refused(keys, legacy, tmp_path, NotIntegrityProtected)


def test_no_mdc_is_refused_even_if_gpg_let_it_through() -> None:
    """What gpg reports with ``--ignore-mdc-error`` (or before 2.2.8): decrypted "OK", no GOODMDC."""
    transcript = b"""\
[GNUPG:] ENC_TO 355DCA3A486AF95F 18 0
[GNUPG:] DECRYPTION_KEY 640974B97A122B3D7157B0BA355DCA3A486AF95F 1985B88A9687FC16B77052B3B9BFA170255BC8E9 u
[GNUPG:] BEGIN_DECRYPTION
[GNUPG:] DECRYPTION_INFO 0 9 0
[GNUPG:] PLAINTEXT 62 1795721058
[GNUPG:] NEWSIG
[GNUPG:] GOODSIG FB0998D3466D1D5B Council <c@x.invalid>
[GNUPG:] VALIDSIG 9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B 2026-11-26 1795721058 0 4 0 22 10 00 \
9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B
[GNUPG:] DECRYPTION_OKAY
[GNUPG:] END_DECRYPTION
"""
    status = Status.parse(transcript)
    with pytest.raises(NotIntegrityProtected):
        interpret_decryption(
            status, 0, name="x.gpg", expected_signer="9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B"
        )
    # The same transcript with MDC 2 but without gpg's GOODMDC confirmation is refused too.
    no_goodmdc = Status.parse(transcript.replace(b"DECRYPTION_INFO 0 9", b"DECRYPTION_INFO 2 9"))
    with pytest.raises(NotIntegrityProtected, match="GOODMDC"):
        interpret_decryption(
            no_goodmdc, 0, name="x.gpg", expected_signer="9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B"
        )
    ok = Status.parse(
        transcript.replace(b"DECRYPTION_INFO 0 9", b"DECRYPTION_INFO 2 9") + b"[GNUPG:] GOODMDC\n"
    )
    assert interpret_decryption(ok, 0, name="x", expected_signer="9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B")


@pytest.mark.integration
def test_unsigned_encrypted_message_is_refused(keys: Keys, tmp_path: Path) -> None:
    unsigned = _cli_message(keys, tmp_path, "unsigned.gpg", "--encrypt", "-r", keys.dwp)
    _refused(keys, unsigned, tmp_path, UnsignedMessage)


@pytest.mark.integration
@pytest.mark.parametrize(
    "options",
    [
        pytest.param(("--store",), id="plaintext-only"),
        pytest.param(("--sign",), id="signature-only"),
        pytest.param(("--clearsign",), id="clear-signed"),
        pytest.param(("--symmetric",), id="passphrase-encrypted"),
        pytest.param((), id="not-openpgp"),
    ],
)
def test_input_that_is_not_encrypted_to_a_key_is_refused(
    keys: Keys, tmp_path: Path, options: tuple[str, ...]
) -> None:
    if options:
        message = _cli_message(keys, tmp_path, "message.gpg", *options)
    else:
        message = tmp_path / "message.csv"
        message.write_bytes(ROWS)
    _refused(keys, message, tmp_path, NotEncrypted)


def _council_refuses(keys: Keys, message: Path, error: type[RefusalT], *, match: str | None = None) -> None:
    """Decrypt ``message`` as the council expecting DWP's signature; assert ``error`` and that neither the
    output file nor a partial one was written next to ``message``."""
    out = message.parent / "return.csv"
    with pytest.raises(error, match=match):
        _council_receives(keys, message, out, expected_signer=keys.dwp)
    assert not out.exists()
    assert _leftovers(message.parent) == []


@pytest.mark.integration
def test_signature_by_another_partner_is_refused(keys: Keys, plaintext: Path, tmp_path: Path) -> None:
    """A return claiming to be DWP's but signed by the police key: valid signature, wrong signer."""
    forged = _partner_returns(keys, plaintext, tmp_path / "dwp-return.csv.gpg", signer=keys.police)
    _council_refuses(keys, forged, WrongSigner, match=keys.police)


@pytest.mark.integration
def test_signature_by_an_unknown_key_is_refused(keys: Keys, tmp_path: Path) -> None:
    message = _cli_message(
        keys, tmp_path, "stranger.gpg", "--trust-model", "always", "--sign", "--encrypt",
        "-r", keys.council, "-u", f"{keys.stranger}!", home=keys.outsider_home,
    )  # fmt: skip
    _council_refuses(keys, message, UnknownSigner)


@pytest.mark.integration
def test_two_signatures_are_refused(keys: Keys, tmp_path: Path) -> None:
    # Two signers need two secret keys in one keyring: the partner simulator holds dwp and police.
    source = tmp_path / "two.csv"
    source.write_bytes(ROWS)
    message = tmp_path / "two.gpg"
    GnuPG(keys.partners_home).run(
        "--sign", "--encrypt", "-r", keys.council, "-u", f"{keys.dwp}!", "-u", f"{keys.police}!",
        "--output", str(message), str(source), passphrase="",
    )  # fmt: skip
    _council_refuses(keys, message, MultipleSignatures)


@pytest.mark.integration
def test_expected_signer_missing_from_keyring_is_refused_before_decrypting(
    keys: Keys, delivery: Path, tmp_path: Path
) -> None:
    with pytest.raises(MissingKey) as refused:
        _partner_receives(keys, delivery, tmp_path / "x.csv", expected_signer_fingerprint=keys.stranger)
    assert refused.value.role == "signer"


@pytest.mark.integration
def test_message_for_someone_else_is_refused(keys: Keys, plaintext: Path, tmp_path: Path) -> None:
    """A delivery meant for the police, handed to the council's decryption: no secret key for it."""
    for_police = _share(keys, plaintext, tmp_path / "police.gpg", recipient_fingerprint=keys.police)
    assert for_police.recipient_fingerprint == keys.police
    with pytest.raises(NoSecretKey):
        _council_receives(keys, tmp_path / "police.gpg", tmp_path / "x.csv", expected_signer=keys.council)


@pytest.mark.integration
@pytest.mark.parametrize(
    "weak_option",
    [
        # 3DES has 64-bit blocks, open to birthday attacks on long messages (Sweet32).
        pytest.param(("--cipher-algo", "3DES"), id="64-bit-block-cipher"),
        # SHA-1 signatures can be forged by a chosen-prefix collision (SHAmbles).
        pytest.param(("--digest-algo", "SHA1"), id="sha1-signature"),
    ],
)
def test_weak_algorithm_is_refused(keys: Keys, tmp_path: Path, weak_option: tuple[str, str]) -> None:
    legacy = _cli_message(
        keys, tmp_path, "weak.gpg", *weak_option, "--sign", "--encrypt", "-r", keys.dwp,
        "-u", f"{keys.council}!",
    )  # fmt: skip
    _refused(keys, legacy, tmp_path, WeakAlgorithm)


@pytest.mark.integration
def test_plaintext_over_the_limit_is_refused(keys: Keys, delivery: Path, tmp_path: Path) -> None:
    out = tmp_path / "received.csv"
    with pytest.raises(PlaintextTooLarge):
        _partner_receives(keys, delivery, out, max_plaintext_bytes=len(ROWS) // 2)
    assert not out.exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.integration
def test_wrong_passphrase_on_decryption_is_refused(
    keys: Keys, plaintext: Path, tmp_path: Path, council_keyring_copy: Path
) -> None:
    returned = _partner_returns(keys, plaintext, tmp_path / "return.gpg", signer=keys.dwp)
    # In the copy, with its own gpg-agent, no cached passphrase can stand in for a wrong or missing one.
    for passphrase in ("wrong", None):
        with pytest.raises(BadPassphrase):
            _council_receives(
                keys,
                returned,
                tmp_path / "return.csv",
                expected_signer=keys.dwp,
                passphrase=passphrase,
                gnupg_home=council_keyring_copy,
            )
    assert not (tmp_path / "return.csv").exists()


# -- the status interpretation and the packet reader, on their own -------------------------------------

_SIGNING_KEY = openpgp.KeyPart("9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B", "u", 0, None, "sc", True)
_ENCRYPTED = b"""\
[GNUPG:] BEGIN_SIGNING H10
[GNUPG:] BEGIN_ENCRYPTION 2 9
[GNUPG:] SIG_CREATED S 22 10 00 1795721053 9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B
[GNUPG:] END_ENCRYPTION
"""


def _interpret(transcript: bytes, returncode: int = 0) -> object:
    return interpret_encryption(
        Status.parse(transcript),
        returncode,
        recipient="1985B88A9687FC16B77052B3B9BFA170255BC8E9",
        signer=_SIGNING_KEY.fingerprint,
        signing_key=_SIGNING_KEY,
    )


@pytest.mark.parametrize(
    ("transcript", "error"),
    [
        (
            b"[GNUPG:] KEYEXPIRED 1577923200\n[GNUPG:] INV_RECP 0 X!\n[GNUPG:] FAILURE sign-encrypt 53\n",
            KeyExpired,
        ),
        (b"[GNUPG:] INV_RECP 4 X!\n", KeyRevoked),
        (b"[GNUPG:] INV_RECP 1 X!\n", MissingKey),
        (b"[GNUPG:] INV_RECP 10 X!\n", KeyNotCertified),
        (b"[GNUPG:] INV_SGNR 5 Y!\n", KeyExpired),
        (b"[GNUPG:] BEGIN_ENCRYPTION 2 9\n[GNUPG:] FAILURE sign-encrypt 67108875\n", BadPassphrase),
        (_ENCRYPTED.replace(b"END_ENCRYPTION", b"NOTHING"), EncryptionFailed),
        (_ENCRYPTED.replace(b"BEGIN_ENCRYPTION 2 9", b"BEGIN_ENCRYPTION 0 9"), EncryptionFailed),
        (_ENCRYPTED.replace(b"BEGIN_ENCRYPTION 2 9", b"BEGIN_ENCRYPTION 2 2"), EncryptionFailed),
        (_ENCRYPTED.replace(b"SIG_CREATED S 22 10", b"SIG_CREATED S 22 2"), EncryptionFailed),
        (_ENCRYPTED.replace(b"9D3C54F4E99F7F3F2BE37FD0FB0998D3466D1D5B", b"A" * 40), KeyMismatch),
        (_ENCRYPTED + _ENCRYPTED.splitlines(keepends=True)[2], EncryptionFailed),
    ],
    ids=[
        "expired",
        "revoked",
        "not-found",
        "not-trusted",
        "signer-expired",
        "bad-passphrase",
        "no-end",
        "no-mdc",
        "3des",
        "sha1",
        "other-signer",
        "two-signatures",
    ],
)
def test_encryption_status_is_what_decides(transcript: bytes, error: type[OpenPgpError]) -> None:
    with pytest.raises(error):
        _interpret(transcript)


def test_encryption_status_success_still_needs_exit_code_zero() -> None:
    assert _interpret(_ENCRYPTED)
    with pytest.raises(EncryptionFailed, match="exited with 2"):
        _interpret(_ENCRYPTED, returncode=2)


@pytest.mark.integration
def test_recipient_reader_counts_every_recipient(keys: Keys, tmp_path: Path) -> None:
    both = _cli_message(keys, tmp_path, "both.gpg", "--encrypt", "-r", keys.dwp, "-r", keys.police)
    assert len(recipient_key_ids(both)) == 2
    with pytest.raises(NotEncrypted):
        parse_recipients(ROWS[:200])
    symmetric = _cli_message(keys, tmp_path, "sym.gpg", "--symmetric")
    with pytest.raises(NotEncrypted, match="passphrase"):
        recipient_key_ids(symmetric)


def test_no_gnupg_home_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"x\n")
    with pytest.raises(openpgp.GnuPGUnavailable, match="not a directory"):
        decrypt_and_verify(
            source,
            tmp_path / "out.csv",
            expected_signer_fingerprint="A" * 40,
            passphrase=None,
            gnupg_home=tmp_path / "missing",
        )
    assert os.listdir(tmp_path) == ["in.csv"]
