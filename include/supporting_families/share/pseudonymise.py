"""Per-agreement keyed pseudonymous references (HMAC-SHA256), computed a column at a time.

Why keyed: a partner must not be able to recompute a reference from what it knows. An unkeyed hash of a
person's details is no protection (dates of birth and postcodes can be enumerated in seconds), and a
shared key would let two partners link their files. So each agreement has its own 256-bit key, held in an
Airflow connection or secrets backend (the agreement names it, ``pseudonymisation.key_conn_id``).

A reference is ``v<key version>-<32 hex digits>``: the first 128 bits of
``HMAC-SHA256(key, "<kind>:<internal id>")``. The version lets the council resolve a returned reference
with the right key after a rotation; the kind ("person", "family") keeps person and family references in
separate namespaces under one key. 128 bits leave collisions out of reach for any borough.

The council maps references back by recomputing them for the register's ids (``resolve``): no key or
reference table needs to travel with the data, and deleting a retired key makes its references
unresolvable for good (crypto-shredding, docs/ARCHITECTURE.md).

The HMAC is OpenSSL's (libcrypto), called a column at a time from the optional C extension ``_hmac``
with the GIL released and the batch split over the cores. Where the extension was not built, the HMAC is
evaluated inside DuckDB with its vectorised SHA-256 (RFC 2104's construction written out:
``H((K ^ opad) || H((K ^ ipad) || m))``); both give the same references.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:  # the optional compiled path (setup.py); absent without a C compiler at install time
    from supporting_families.share import _hmac  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _hmac = None

Kind = Literal["person", "family"]

KEY_BYTES = 32  # 256-bit keys; HMAC-SHA256's block is 64 bytes, so no pre-hashing
_BLOCK = 64
_HEX_DIGITS = 32
_MAX_THREADS = 16  # the C extension's own cap
_THREADED_ROWS = 65_536  # below this, starting threads costs more than it saves
REFERENCE_RE = re.compile(r"^v(?P<version>[1-9][0-9]{0,5})-(?P<mac>[0-9a-f]{32})$")


class PseudonymKeyError(ValueError):
    """A key is missing, malformed or retired. The message never contains key material."""


@dataclass(frozen=True)
class PseudonymKey:
    """One version of an agreement's key. ``repr`` never shows the secret."""

    agreement_id: str
    version: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise PseudonymKeyError(
                f"{self.agreement_id} key v{self.version}: expected {KEY_BYTES} bytes, got {len(self.secret)}"
            )
        if self.version < 1:
            raise PseudonymKeyError(f"{self.agreement_id}: key versions start at 1")

    @classmethod
    def from_hex(cls, agreement_id: str, version: int, hex_secret: str) -> PseudonymKey:
        try:
            secret = bytes.fromhex(hex_secret.strip())
        except ValueError:
            raise PseudonymKeyError(f"{agreement_id} key v{version}: not hexadecimal") from None
        return cls(agreement_id, version, secret)

    def _pads(self) -> tuple[bytes, bytes]:
        padded = self.secret.ljust(_BLOCK, b"\0")
        return bytes(b ^ 0x5C for b in padded), bytes(b ^ 0x36 for b in padded)


def reference(key: PseudonymKey, internal_id: str, kind: Kind = "person") -> str:
    """One reference, computed with Python's ``hmac`` (the reference implementation the tests compare to)."""
    mac = hmac.new(key.secret, f"{kind}:{internal_id}".encode(), hashlib.sha256).hexdigest()
    return f"v{key.version}-{mac[:_HEX_DIGITS]}"


def active_path() -> str:
    """Which implementation ``references`` uses here, for set-up and the benchmarks to print."""
    if _hmac is None:
        return "DuckDB SQL (the compiled extension was not built)"
    return f"OpenSSL libcrypto HMAC-SHA256 (compiled extension, up to {_threads()} threads)"


def references(ids: pa.Array | pa.ChunkedArray, key: PseudonymKey, kind: Kind = "person") -> pa.Array:
    """References for a column of internal ids, in the same order (null stays null).

    Uses the compiled batch HMAC (``_hmac``: OpenSSL's HMAC-SHA256, both cores for a large batch) when
    it was built; otherwise the vectorised SQL, which gives the same references (the tests compare both
    with Python's ``hmac``).
    """
    if _hmac is not None:
        return _compiled_references(ids, key, kind)
    return _sql_references(ids, key, kind)


def _threads() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), _MAX_THREADS))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(os.cpu_count() or 1, _MAX_THREADS))


def _compiled_references(ids: pa.Array | pa.ChunkedArray, key: PseudonymKey, kind: Kind) -> pa.Array:
    column = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if column.type != pa.string():
        column = column.cast(pa.string())
    n = len(column)
    if n == 0:
        return pa.array([], pa.string())
    # Arrow's string layout: n + 1 int32 offsets into one data buffer; a slice starts at column.offset.
    _, offsets_buf, data_buf = column.buffers()
    raw = np.frombuffer(offsets_buf, dtype=np.int32)[column.offset : column.offset + n + 1]
    first, last = int(raw[0]), int(raw[-1])
    data = data_buf.slice(first, last - first) if data_buf is not None else pa.py_buffer(b"")
    offsets = raw - first if first else raw
    version = f"v{key.version}-".encode()
    threads = _threads() if n >= _THREADED_ROWS else 1
    assert _hmac is not None
    out = _hmac.references(key.secret, f"{kind}:".encode(), data, offsets, _HEX_DIGITS, version, threads)
    width = len(version) + _HEX_DIGITS
    out_offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    # A null id has an empty (or ignored) value in the data buffer; its reference is computed and dropped.
    refs = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(out_offsets), pa.py_buffer(out)])
    if column.null_count == 0:
        return refs
    return pc.if_else(pc.is_valid(column), refs, pa.scalar(None, pa.string()))


def _sql_references(ids: pa.Array | pa.ChunkedArray, key: PseudonymKey, kind: Kind) -> pa.Array:
    opad, ipad = key._pads()
    table = pa.table({"id": ids})
    con = duckdb.connect()
    try:
        con.register("ids", table)
        # The kind's prefix is folded into the inner pad's constant, so each row concatenates once.
        result = con.sql(
            """
            SELECT $version || substr(
                       sha256($opad::BLOB || unhex(sha256($ipad::BLOB || encode(id)))), 1, $digits
                   ) AS ref  -- a null id stays null: every operator here propagates null
            FROM ids
            """,
            params={
                "opad": opad,
                "ipad": ipad + f"{kind}:".encode(),
                "version": f"v{key.version}-",
                "digits": _HEX_DIGITS,
            },
        ).to_arrow_table()
    finally:
        con.close()
    if result is None:  # DuckDB types the fetch as optional; a SELECT always yields a table
        raise RuntimeError("DuckDB returned no result for the reference query")
    return result.column("ref").combine_chunks().cast(pa.string())


def reference_version(ref: str) -> int:
    match = REFERENCE_RE.fullmatch(ref)
    if not match:
        raise PseudonymKeyError("a reference is not of the form v<version>-<32 hex digits>")
    return int(match["version"])


def resolve(
    refs: pa.Array | pa.ChunkedArray,
    ids: pa.Array | pa.ChunkedArray,
    keys: Mapping[int, PseudonymKey] | Iterable[PseudonymKey],
    kind: Kind = "person",
) -> pa.Table:
    """Map returned references back to internal ids by recomputing them for ``ids`` under each key.

    Returns ``(ref, id)`` for every distinct well-formed reference in ``refs``; ``id`` is null when the
    reference matches nobody (never sent, mistyped, or made with a retired key). Keys are given by version;
    a version with no key simply resolves nothing, which is what retiring a key means.
    """
    by_version = dict(keys) if isinstance(keys, Mapping) else {k.version: k for k in keys}
    wanted = pa.table({"ref": refs}).group_by("ref").aggregate([])
    candidates = [pa.table({"ref": references(ids, k, kind), "id": ids}) for k in by_version.values()]
    if not candidates:
        return wanted.append_column("id", pa.nulls(wanted.num_rows, pa.string()))
    lookup = pa.concat_tables(candidates)
    return wanted.join(lookup, "ref", join_type="left outer").sort_by("ref")
