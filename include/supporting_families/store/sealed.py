"""Sealed files: AES-256-GCM under a period's data key (:mod:`supporting_families.store.keystore`).

Format: ``SFS1`` (4 bytes), the period (7 bytes, ``YYYY-MM``), a 96-bit random nonce, then the ciphertext
with its 128-bit tag. The associated data binds the file to its place in the store (its relative path), so
a sealed copy moved to another delivery's folder does not open there. The cipher is OpenSSL's, through
``cryptography``; nothing here is a cipher of its own.
"""

from __future__ import annotations

import io
import os
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from upath import UPath

from supporting_families.store.io import write_bytes_atomic
from supporting_families.store.keystore import KeyShredded, KeyStore
from supporting_families.store.layout import delivery_references_file, relative

MAGIC: Final = b"SFS1"
_NONCE: Final = 12


class SealError(ValueError):
    """A sealed file is malformed, altered, or opened in the wrong place; names the file, never content."""


def seal_bytes(data: bytes, keys: KeyStore, period: str, context: str) -> bytes:
    key = keys.key(period, create=True)
    nonce = os.urandom(_NONCE)
    return MAGIC + period.encode("ascii") + nonce + AESGCM(key).encrypt(nonce, data, context.encode())


def sealed_period(blob: bytes) -> str:
    if blob[:4] != MAGIC or len(blob) < 4 + 7 + _NONCE + 16:
        raise SealError("not a sealed file")
    return blob[4:11].decode("ascii")


def open_bytes(blob: bytes, keys: KeyStore, context: str) -> bytes:
    period = sealed_period(blob)
    key = keys.key(period)  # KeyShredded once the period is shredded
    nonce = blob[11 : 11 + _NONCE]
    try:
        return AESGCM(key).decrypt(nonce, blob[11 + _NONCE :], context.encode())
    except InvalidTag:
        raise SealError(f"{context}: altered, or not sealed for this place") from None


def write_sealed_table(table: pa.Table, path: UPath, keys: KeyStore, period: str, context: str) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_bytes_atomic(path, seal_bytes(buffer.getvalue(), keys, period, context))


def read_sealed_table(
    path: UPath,
    keys: KeyStore,
    context: str,
    columns: list[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
) -> pa.Table:
    return pq.read_table(
        io.BytesIO(open_bytes(path.read_bytes(), keys, context)), columns=columns, filters=filters
    )


def read_delivery_references(
    root: UPath,
    agreement_id: str,
    delivery_id: str,
    keys: KeyStore,
    columns: list[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
) -> pa.Table | None:
    """A delivery's reference list (``person_id, family_id, person_ref, family_ref``), or None when it is
    gone: deleted by retention, or its period's key shredded (then nobody can resolve its references)."""
    path = delivery_references_file(root, agreement_id, delivery_id)
    if not path.exists():
        return None
    try:
        return read_sealed_table(path, keys, relative(root, path), columns, filters)
    except KeyShredded:
        return None


__all__ = [
    "KeyShredded",
    "SealError",
    "open_bytes",
    "read_delivery_references",
    "read_sealed_table",
    "seal_bytes",
    "sealed_period",
    "write_sealed_table",
]
