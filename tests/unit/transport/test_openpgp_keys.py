"""The one fingerprint rule and the one ``gpg --with-colons`` parser, without running gpg.

The agreements, encryption, verification and the demo kit all pin keys through
``normalise_fingerprint`` and read keyrings through ``parse_key_listing``; these tests hold both to the
rules the agreement schema documents (a full v4 fingerprint, spaces allowed) and to what gpg 2.2 prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from supporting_families.config.agreements import OpenPgp
from supporting_families.transport.openpgp import (
    InvalidFingerprint,
    gpg_command,
    gpg_environment,
    normalise_fingerprint,
    parse_key_listing,
)

FPR = "FCFCC856287D0718466A542CC8B256D07900292C"
SUBKEY = "E4C21D1F0D491AC5B519583866BE6E0925885FE0"

#: ``gpg --with-colons --fixed-list-mode --list-secret-keys`` for an ed25519 key with a cv25519 subkey,
#: as gpg 2.2.40 printed it; the user id's colon comes escaped as ``\x3a``.
SECRET_LISTING = f"""\
sec:u:255:22:C8B256D07900292C:1796619359:1828155359::u:::scESC:::+::ed25519:::0:
fpr:::::::::{FPR}:
grp:::::::::9C63D3BED458B2F2CA4DF39600E2BD5CD4FA0C05:
uid:u::::1796619359::5B6544DBA44986B2ED6C06A82E435500C072FEC4::DWP\\x3a test <dwp@partner.invalid>::::::::::0:
ssb:u:255:18:66BE6E0925885FE0:1796619359:1828155359:::::e:::+::cv25519::
fpr:::::::::{SUBKEY}:
grp:::::::::47EC8AB3BB314D20165738FC1FB0EC390E8D8F7F:
"""

SPACED = " ".join(FPR[i : i + 4] for i in range(0, 40, 4))


# -- fingerprints ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [FPR, FPR.lower(), SPACED, f"  {SPACED.lower()}\n", SPACED.replace(" ", "\t")]
)
def test_a_full_v4_fingerprint_is_normalised(value: str) -> None:
    assert normalise_fingerprint(value) == FPR


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(FPR[-16:], id="long-key-id"),
        pytest.param(FPR[-8:], id="short-key-id"),
        pytest.param(FPR + "!", id="gpg-exact-match-suffix"),
        pytest.param("0x" + FPR, id="hex-prefix"),
        pytest.param(FPR[:-1] + "G", id="not-hex"),
        pytest.param(FPR + FPR[:24], id="v5-length"),
        pytest.param("", id="empty"),
        pytest.param("DWP test <dwp@partner.invalid>", id="user-id"),
    ],
)
def test_anything_but_a_full_v4_fingerprint_is_refused(value: str) -> None:
    with pytest.raises(InvalidFingerprint) as caught:
        normalise_fingerprint(value)
    # The message gives the length only: the value may be an environment variable holding something else.
    assert caught.value.characters == len("".join(value.split()))
    if value:
        assert value not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "value", [FPR, SPACED.lower(), FPR[-16:], FPR + FPR[:24], FPR + "!", "0x" + FPR, "", "not a fingerprint"]
)
def test_the_agreement_schema_pins_by_the_same_rule(value: str) -> None:
    try:
        expected: str | None = normalise_fingerprint(value)
    except InvalidFingerprint:
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match="is not an OpenPGP v4 fingerprint"):
            OpenPgp(partner_fingerprint=value)
    else:
        assert OpenPgp(partner_fingerprint=value).partner_fingerprint == expected


# -- the colon listing --------------------------------------------------------------------------------


def test_a_secret_listing_gives_the_key_its_subkey_and_its_user_id() -> None:
    [key] = parse_key_listing(SECRET_LISTING)
    assert key.fingerprint == key.primary.fingerprint == FPR
    assert [p.fingerprint for p in key.subkeys] == [SUBKEY]
    assert key.uids == ("DWP: test <dwp@partner.invalid>",)
    assert (key.validity, key.usable, key.can_sign, key.can_encrypt) == ("u", True, True, True)
    assert key.primary.usage == "sc" and key.subkeys[0].usage == "e"
    assert all(part.has_secret for part in key.parts)
    assert key.primary.key_id == FPR[-16:]
    assert key.primary.expires == 1828155359


def test_several_keys_keep_their_own_user_ids() -> None:
    other = SECRET_LISTING.replace(FPR, "A" * 40).replace("DWP\\x3a test", "Police")
    keys = parse_key_listing(SECRET_LISTING + other)
    assert [(k.fingerprint, k.uids) for k in keys] == [
        (FPR, ("DWP: test <dwp@partner.invalid>",)),
        ("A" * 40, ("Police <dwp@partner.invalid>",)),
    ]


@pytest.mark.parametrize(
    ("validity", "capabilities", "usable"),
    [
        ("u", "scESC", True),
        ("f", "scESC", True),
        ("e", "scESC", False),
        ("r", "scESC", False),
        ("i", "scESC", False),
        ("n", "scESC", False),
        ("d", "scESC", False),
        ("u", "scESCD", False),
    ],
)
def test_a_key_is_usable_unless_revoked_expired_invalid_never_valid_or_disabled(
    validity: str, capabilities: str, usable: bool
) -> None:
    listing = SECRET_LISTING.replace("sec:u:", f"sec:{validity}:").replace(":scESC:", f":{capabilities}:")
    [key] = parse_key_listing(listing)
    assert key.usable is usable


def test_a_key_without_an_encryption_subkey_cannot_encrypt() -> None:
    sign_only = "\n".join(SECRET_LISTING.splitlines()[:4]).replace(":scESC:", ":scSC:")
    [key] = parse_key_listing(sign_only)
    assert key.subkeys == () and key.can_sign and not key.can_encrypt


def test_nothing_listed_is_no_key() -> None:
    assert parse_key_listing("") == []
    assert parse_key_listing("tru::1:1796619359:1828155359:3:1:5\n") == []


# -- how gpg is invoked -----------------------------------------------------------------------------


def test_gpg_runs_on_its_home_only_without_options_or_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNUPGHOME", "/somewhere/else")
    command = gpg_command(tmp_path)
    assert command[:3] == ["gpg", "--homedir", str(tmp_path)]
    for option in ("--no-options", "--batch", "--no-tty", "--no-auto-key-retrieve", "--disable-dirmngr"):
        assert option in command
    env = gpg_environment()
    assert "GNUPGHOME" not in env and env["LC_ALL"] == "C"
