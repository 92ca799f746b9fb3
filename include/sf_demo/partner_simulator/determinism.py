"""Deterministic choices from a seed: the same seed, delivery and reference always give the same answer.

SHA-256 of the seed and labels, not ``random``: a choice about one reference never depends on which other
references were in the file, so the same person gets the same "address not confirmed" in every delivery.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_SEP = "\x1f"  # unit separator: no label can run into the next


def digest(seed: int, *labels: str) -> bytes:
    """SHA-256 of the seed and the labels."""
    return hashlib.sha256(_SEP.join((str(seed), *labels)).encode("utf-8")).digest()


def unit(seed: int, *labels: str) -> float:
    """A number in [0, 1), uniform and fixed for these labels."""
    return int.from_bytes(digest(seed, *labels)[:7], "big") / float(1 << 56)


def hex_digits(seed: int, n: int, *labels: str) -> str:
    """``n`` hexadecimal digits (at most 64), fixed for these labels."""
    return digest(seed, *labels).hex()[:n]


def pick(keys: Sequence[str], k: int, seed: int, label: str) -> list[int]:
    """Indices of ``k`` of ``keys`` chosen by their hash (deterministic, unbiased), in index order."""
    ranked = sorted(range(len(keys)), key=lambda i: digest(seed, label, keys[i]))
    return sorted(ranked[: max(0, min(k, len(keys)))])


def share_of(n: int, fraction: float) -> int:
    """``fraction`` of ``n`` rounded, at least one when ``n`` is positive (a fault must show)."""
    return 0 if n <= 0 else max(1, round(n * fraction))
