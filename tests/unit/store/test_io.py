"""The one write path into the store: atomic, unique temporary names, private on a local file system."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from supporting_families.store.io import (
    atomic_writer,
    copy_into,
    private_tempdir,
    read_parquet,
    sha256_of,
    store_root,
    write_bytes_atomic,
    write_parquet,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_are_0600_in_0700_folders_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = store_root(tmp_path.as_uri())
        write_bytes_atomic(store / "register" / "persons.json", b"{}")
        write_parquet(pa.table({"person_id": ["P1"]}), store / "curated" / "housing" / "housing.parquet")
        source = tmp_path / "outside.csv"
        source.write_bytes(b"a,b\n")
        copy_into(source, store / "staging" / "dwp" / "d1" / "x.csv")
    finally:
        os.umask(old)
    for relative in ("register/persons.json", "curated/housing/housing.parquet", "staging/dwp/d1/x.csv"):
        assert _mode(tmp_path / relative) == 0o600, relative
    for relative in ("register", "curated", "curated/housing", "staging", "staging/dwp", "staging/dwp/d1"):
        assert _mode(tmp_path / relative) == 0o700, relative
    assert read_parquet(store / "curated" / "housing" / "housing.parquet")["person_id"].to_pylist() == ["P1"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "file.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"new, half written")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_two_writers_never_share_a_temporary_name(tmp_path: Path) -> None:
    target = tmp_path / "f"
    with atomic_writer(target) as first, atomic_writer(target) as second:
        names = [p.name for p in tmp_path.iterdir()]
        assert len(names) == 2 and all(n.startswith(".f.") and n.endswith(".partial") for n in names)
        first.write(b"1")
        second.write(b"2")
    assert target.read_bytes() in (b"1", b"2")
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_the_private_tempdir_is_0700_and_goes_away() -> None:
    with private_tempdir() as folder:
        assert _mode(folder) == 0o700
    assert not folder.exists()


def test_one_hash_of_a_stored_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_of(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
