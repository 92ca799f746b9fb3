"""The secret-canary search (tests/secret_canaries.py) finds a canaried secret in every simple encoding,
and the demo's generators put the canary into every secret they make (sf_demo.secrets)."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable

import pytest

from sf_demo.secrets import CANARY_ENV, DemoSecretsError, new_secret_hex, new_secret_text
from tests.secret_canaries import canary_secrets, needles, search

CANARY = bytes.fromhex("5ecc0a1e5ecc0a1e")


@pytest.fixture
def canaried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CANARY_ENV, CANARY.hex())


def test_every_generated_secret_begins_with_the_canary_and_stays_random(canaried: None) -> None:
    keys = {new_secret_hex(32) for _ in range(3)}
    assert len(keys) == 3 and all(k.startswith(CANARY.hex()) and len(k) == 64 for k in keys)
    text = new_secret_text(18)
    assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).startswith(CANARY)
    with pytest.raises(DemoSecretsError):
        new_secret_hex(len(CANARY))  # the canary would be most of the secret


LEAKS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "json": lambda s: json.dumps({"password": s}),
    "base64-of-text": lambda s: base64.b64encode(("x" + s).encode()).decode(),  # off alignment
    "hex-of-text": lambda s: ("prefix" + s).encode().hex(),
    "in-a-url": lambda s: urllib.parse.quote(f"postgresql://u:{s}@h/db"),
}


@pytest.mark.parametrize("leak", sorted(LEAKS))
@pytest.mark.parametrize("make", [new_secret_hex, new_secret_text], ids=["hex", "text"])
def test_a_leaked_secret_is_found_in_every_simple_encoding(
    canaried: None, make: Callable[[int], str], leak: str
) -> None:
    secret = make(24)
    haystack = f"log line before {LEAKS[leak](secret)} after".encode()
    assert search({"log": haystack}, needles(canary_secrets(CANARY)))
    assert search({"log": b"log line before nothing after"}, needles(canary_secrets(CANARY))) == []


def test_an_upper_cased_hex_secret_is_found(canaried: None) -> None:
    assert search({"log": new_secret_hex(24).upper().encode()}, needles(canary_secrets(CANARY)))


def test_raw_key_bytes_are_found_raw_and_encoded() -> None:
    key = bytes(range(7, 39))
    wanted = needles({"data key": key})
    for form in (key, key.hex().encode(), base64.b64encode(b"ab" + key), base64.urlsafe_b64encode(key)):
        assert search({"file": b"\x00junk" + form + b"junk"}, wanted), form
    assert search({"file": b"nothing of it here" * 10}, wanted) == []
