"""Tombstones: what stops an erased person coming back with the next extract.

An erased person's source records are still in the departments' systems, and their next extract brings
them again. So erasure leaves a tombstone for each of the person's identifying keys, and ingest and linkage
drop any record whose key has one. A tombstone is a keyed hash (HMAC-SHA256 under the council's tombstone
key, an Airflow connection) of the key, never the values: without the key nobody can test a name and date
of birth against the list, and the list itself is no record of who was erased (UK GDPR Article 17).

Two keys per record:

* ``record``: the source and the source's own record id: the same record in a later extract;
* ``identity``: given name, family name and date of birth, case-folded to letters only with accents
  removed (the linkage's own name normalisation): the person under a new record id or in another source.
  Two different people with the same names and date of birth would both be dropped; in a borough that is
  rare, and the ingest report counts every record dropped this way, so a false drop is seen.

``register/tombstones.parquet`` (tokens only, no personal data) is kept for as long as the programme's
data is: a tombstone removed early would let the person come back.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from datetime import UTC, date, datetime
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.registers._table import append_rows, read_table
from supporting_families.store.layout import register_file

TOMBSTONE_KEY_BYTES: Final = 32

TOMBSTONES_SCHEMA: Final = pa.schema(
    [
        pa.field("token", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # record | identity
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class TombstoneKeyError(ValueError):
    """The tombstone key is missing or malformed (the message never holds key material)."""


def tombstones_path(store: UPath) -> UPath:
    return register_file(store, "tombstones")


def read_tombstones(store: UPath) -> pa.Table:
    return read_table(tombstones_path(store), TOMBSTONES_SCHEMA)


def _letters(value: object) -> str:
    text = unicodedata.normalize("NFKD", str(value or ""))
    return "".join(ch for ch in text.casefold() if ch.isalpha() and not unicodedata.combining(ch))


def _mac(key: bytes, message: str) -> str:
    if len(key) != TOMBSTONE_KEY_BYTES:
        raise TombstoneKeyError(f"tombstone key: expected {TOMBSTONE_KEY_BYTES} bytes")
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def record_tokens(key: bytes, sources: list[str], record_ids: list[str]) -> list[str]:
    return [_mac(key, f"record\x1f{s}\x1f{r}") for s, r in zip(sources, record_ids, strict=True)]


def identity_tokens(
    key: bytes, given: list[object], family: list[object], dobs: list[object]
) -> list[str | None]:
    """One token per row, or None where a name or the date of birth is missing (too weak a key)."""
    out: list[str | None] = []
    for g, f, d in zip(given, family, dobs, strict=True):
        g_, f_ = _letters(g), _letters(f)
        if not g_ or not f_ or not isinstance(d, date):
            out.append(None)
        else:
            out.append(_mac(key, f"identity\x1f{g_}\x1f{f_}\x1f{d.isoformat()}"))
    return out


def tokens_for(key: bytes, records: pa.Table) -> tuple[list[str], list[str | None]]:
    """Record and identity tokens of a table with source, record_id and the identity columns."""
    n = records.num_rows
    sources = records["source"].to_pylist() if "source" in records.column_names else [""] * n
    record_ids = records["record_id"].to_pylist()
    given = records["given_name"].to_pylist() if "given_name" in records.column_names else [None] * n
    family = records["family_name"].to_pylist() if "family_name" in records.column_names else [None] * n
    dobs = records["date_of_birth"].to_pylist() if "date_of_birth" in records.column_names else [None] * n
    return (
        record_tokens(key, [str(s) for s in sources], [str(r) for r in record_ids]),
        identity_tokens(key, given, family, dobs),
    )


def add_tombstones(
    store: UPath, key: bytes, records: pa.Table, request_id: str, *, now: datetime | None = None
) -> int:
    """Tombstone every key of ``records`` (the person's source records); returns how many are new."""
    by_record, by_identity = tokens_for(key, records)
    known = set(read_tombstones(store)["token"].to_pylist())
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    rows: list[dict[str, object]] = []
    for kind, tokens in (("record", by_record), ("identity", by_identity)):
        for token in tokens:
            if token is not None and token not in known:
                known.add(token)
                rows.append({"token": token, "kind": kind, "request_id": request_id, "recorded_at": stamp})
    if rows:
        append_rows(tombstones_path(store), TOMBSTONES_SCHEMA, rows)
    return len(rows)


def tombstoned_mask(key: bytes, records: pa.Table, tombstones: pa.Table) -> pa.Array:
    """True for each row of ``records`` whose record or identity key has a tombstone."""
    if tombstones.num_rows == 0 or records.num_rows == 0:
        return pa.array([False] * records.num_rows, pa.bool_())
    by_record, by_identity = tokens_for(key, records)
    tokens = pc.unique(tombstones["token"].combine_chunks())
    hit_record = pc.is_in(pa.array(by_record, pa.string()), value_set=tokens)
    hit_identity = pc.fill_null(pc.is_in(pa.array(by_identity, pa.string()), value_set=tokens), False)
    return pc.or_(hit_record, hit_identity)


def drop_tombstoned(key: bytes | None, records: pa.Table, tombstones: pa.Table) -> tuple[pa.Table, int]:
    """``records`` without tombstoned rows, and how many went. Without tombstones no key is needed."""
    if tombstones.num_rows == 0:
        return records, 0
    if key is None:
        raise TombstoneKeyError("tombstones exist but no tombstone key was given")
    mask = tombstoned_mask(key, records, tombstones)
    kept = records.filter(pc.invert(mask))
    return kept, records.num_rows - kept.num_rows
