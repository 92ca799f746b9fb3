"""The compiled references: OpenSSL's HMAC, equal to Python's ``hmac`` on any key and input."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supporting_families.share import pseudonymise
from supporting_families.share.pseudonymise import PseudonymKey, reference, references

C_SOURCE = Path(pseudonymise.__file__).with_name("_hmac.c")


def _extension() -> object:
    # scripts/setup.sh installs gcc, python3-dev and libssl-dev, so where the tests run it is built.
    assert pseudonymise._hmac is not None, (
        "the compiled HMAC was not built (setup.sh --install-only builds it)"
    )
    return pseudonymise._hmac


def _raw(
    key: bytes, prefix: bytes, ids: list[bytes], digits: int, out_prefix: bytes, threads: int
) -> list[str]:
    offsets = np.cumsum([0] + [len(i) for i in ids], dtype=np.int32)
    out = _extension().references(key, prefix, b"".join(ids), offsets.tobytes(), digits, out_prefix, threads)  # type: ignore[attr-defined]
    width = len(out_prefix) + digits
    return [out[i * width : (i + 1) * width].decode() for i in range(len(ids))]


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=200),
    prefix=st.binary(max_size=80),
    ids=st.lists(st.binary(max_size=150), max_size=40),
    digits=st.integers(1, 64),
    threads=st.integers(1, 4),
)
def test_the_extension_equals_python_hmac_on_random_keys_and_inputs(
    key: bytes, prefix: bytes, ids: list[bytes], digits: int, threads: int
) -> None:
    got = _raw(key, prefix, ids, digits, b"v7-", threads)
    want = ["v7-" + hmac.new(key, prefix + i, hashlib.sha256).hexdigest()[:digits] for i in ids]
    assert got == want


@settings(max_examples=100, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    ids=st.lists(st.one_of(st.none(), st.text(max_size=70)), max_size=60),
    start=st.integers(0, 5),
)
def test_references_equal_python_hmac_for_any_ids_nulls_and_slices(
    secret: bytes, ids: list[str | None], start: int
) -> None:
    key = PseudonymKey("dwp-benefits-matching", 3, secret)
    column = pa.array(["pad"] * start + ids, pa.string()).slice(start)
    want = [None if i is None else reference(key, i, "family") for i in ids]
    assert pseudonymise._compiled_references(column, key, "family").to_pylist() == want


def test_a_large_batch_split_over_threads_equals_one_thread() -> None:
    _extension()
    key = PseudonymKey("dwp-benefits-matching", 1, os.urandom(32))
    ids = pa.array([f"P{i:09d}" for i in range(200_000)])
    threaded = references(ids, key)
    assert threaded.equals(pseudonymise._sql_references(ids, key, "person"))
    sample = range(0, 200_000, 9_973)
    assert [threaded[i].as_py() for i in sample] == [reference(key, ids[i].as_py()) for i in sample]


def _needed(elf: bytes) -> list[str]:
    """The DT_NEEDED entries of a 64-bit little-endian ELF shared object."""
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "not a 64-bit little-endian ELF"
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    dynamic = next(s for s in sections if s[1] == 6)  # SHT_DYNAMIC; sh_link names its string table
    strtab = sections[dynamic[6]]
    names = []
    for at in range(dynamic[4], dynamic[4] + dynamic[5], 16):
        tag, value = struct.unpack_from("<qQ", elf, at)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            start = strtab[4] + value
            names.append(elf[start : elf.index(b"\0", start)].decode())
    return names


def test_the_built_extension_links_openssl_libcrypto() -> None:
    built = Path(_extension().__file__)  # type: ignore[attr-defined]
    assert any(re.fullmatch(r"libcrypto\.so(\.\d+)*", name) for name in _needed(built.read_bytes()))


def test_the_c_source_carries_no_hash_implementation() -> None:
    source = C_SOURCE.read_text()
    assert "#include <openssl/evp.h>" in source and "EVP_MAC_fetch" in source
    # SHA-256's initial hash value and first round constant (FIPS 180-4): any hand-written SHA-256 has them.
    for constant in ("6a09e667", "428a2f98", "0x36", "0x5c"):
        assert constant not in source.lower(), constant


@pytest.mark.parametrize("built", [True, False], ids=["extension", "sql"])
def test_the_active_path_is_named(built: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not built:
        monkeypatch.setattr(pseudonymise, "_hmac", None)
    assert pseudonymise.active_path().startswith("OpenSSL" if built else "DuckDB")
