"""Needles for secrets: every simple encoding in which a secret (or the canary it begins with) could leak.

A secret leaks as itself, as hex, as base64 (standard or URL-safe, at any of the three byte alignments
inside a longer encoded value), or, when it is text, as the hex or base64 of that text. Each needle is a
byte string searched in raw bytes (logs, database dumps, store files alike); a finding is reported by the
secret's name and the encoding, never by the value.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping


def _base64_forms(value: bytes) -> set[bytes]:
    """``value`` base64-encoded at each alignment: the characters that depend on ``value`` alone."""
    forms: set[bytes] = set()
    for shift in range(3):
        padded = b"\0" * shift + value
        usable = len(padded) - len(padded) % 3  # whole 3-byte groups only
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(padded[:usable])
            forms.add(encoded[4:] if shift else encoded)  # the first group mixes in the padding
    return {f for f in forms if len(f) >= 8}


def encodings(value: bytes) -> dict[str, bytes]:
    """``value`` raw, as hex (both cases), and as base64 at every alignment."""
    found = {"raw": value, "hex": value.hex().encode(), "HEX": value.hex().upper().encode()}
    for i, form in enumerate(sorted(_base64_forms(value))):
        found[f"base64/{i}"] = form
    return found


def needles(secrets: Mapping[str, bytes]) -> dict[tuple[str, str], bytes]:
    """Every encoding of every secret. Keys: (secret name, encoding)."""
    return {(name, how): n for name, value in secrets.items() for how, n in encodings(value).items()}


def canary_secrets(canary: bytes) -> dict[str, bytes]:
    """The canary as the generated secrets hold it: its bytes, the hex text of them (HMAC keys, database
    passwords) and the URL-safe base64 text (passphrases, passwords); each is then encoded again."""
    return {
        "canary": canary,
        "canary as hex text": canary.hex().encode(),
        "canary as base64 text": base64.urlsafe_b64encode(canary[: len(canary) // 3 * 3]),
    }


def search(haystacks: Mapping[str, bytes], wanted: Mapping[tuple[str, str], bytes]) -> list[str]:
    """Where each needle occurs: ``"<haystack>: <secret> as <encoding>"``, never the value itself."""
    return [
        f"{where}: {name} as {how}"
        for where, data in haystacks.items()
        for (name, how), needle in wanted.items()
        if needle in data
    ]
