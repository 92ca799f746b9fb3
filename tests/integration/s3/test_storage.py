"""The core's reads and writes behave the same on file:// and on S3 (moto's standalone server)."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.store.io import (
    delete_file,
    read_parquet,
    sha256_of,
    store_root,
    write_bytes_atomic,
    write_parquet,
)
from supporting_families.transport.paths import unsafe_name_reason

pytestmark = pytest.mark.integration


def test_bytes_round_trip_and_hash(any_store: UPath) -> None:
    data = b"reference,flag\n" * 100_000
    target = any_store / "deliveries" / "dwp" / "file.csv"
    write_bytes_atomic(target, data)
    assert target.read_bytes() == data
    assert sha256_of(target) == hashlib.sha256(data).hexdigest()
    # No temporary file is left beside the delivered one.
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.csv"]


def test_overwrite_is_whole(any_store: UPath) -> None:
    target = any_store / "x.bin"
    write_bytes_atomic(target, b"a" * 10)
    write_bytes_atomic(target, b"b" * 3)
    assert target.read_bytes() == b"bbb"


def test_parquet_round_trip(any_store: UPath) -> None:
    table = pa.table({"person_ref": ["r1", "r2"], "count": pa.array([1, 2], pa.int64())})
    path = any_store / "curated" / "t.parquet"
    write_parquet(table, path)
    assert read_parquet(path).equals(table)


def test_store_root_needs_a_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SF_STORE_URI", raising=False)
    with pytest.raises(ValueError, match="SF_STORE_URI"):
        store_root()
    with pytest.raises(ValueError, match="no scheme"):
        store_root("/tmp/x")


def test_a_delete_is_literal_even_for_a_name_that_looks_like_a_pattern(any_store: UPath) -> None:
    # A partner-chosen name with glob characters must delete only itself: fsspec's rm (UPath.unlink on
    # S3) expands it as a pattern and would take every return beside it.
    folder = any_store / "returns" / "dwp-benefits-matching"
    hostile = folder / "dwp-return-*.csv.gpg"
    kept = [folder / "dwp-return-dabcdefghijklmnop.csv.gpg", folder / "dwp-return-dponmlkjihgfedcba.csv.gpg"]
    for path in (hostile, *kept):
        write_bytes_atomic(path, b"ciphertext")
    delete_file(hostile)
    assert not hostile.exists()
    assert all(path.read_bytes() == b"ciphertext" for path in kept)


def test_remote_names_with_glob_characters_are_refused() -> None:
    for name in ("dwp-return-*.csv.gpg", "dwp-return-?.csv.gpg", "dwp-return-[ab].csv.gpg"):
        assert unsafe_name_reason(name) == "glob character"
    assert unsafe_name_reason("dwp-return-dabcdefghijklmnop.csv.gpg") is None
