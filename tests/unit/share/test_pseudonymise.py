from __future__ import annotations

import os

import pyarrow as pa
import pytest

from supporting_families.share.pseudonymise import (
    PseudonymKey,
    PseudonymKeyError,
    reference,
    reference_version,
    references,
    resolve,
)

IDS = pa.array([f"P{i:08d}" for i in range(5_000)] + [None])


@pytest.fixture
def key() -> PseudonymKey:
    return PseudonymKey("dwp-benefits-matching", 1, os.urandom(32))


def test_vectorised_equals_python_hmac(key: PseudonymKey) -> None:
    got = references(IDS, key).to_pylist()
    want = [None if i is None else reference(key, i) for i in IDS.to_pylist()]
    assert got == want


def test_same_person_same_reference_every_run(key: PseudonymKey) -> None:
    assert references(IDS, key).equals(references(IDS, key))


def test_different_agreements_give_unrelated_references(key: PseudonymKey) -> None:
    other = PseudonymKey("met-police-wider-help", 1, os.urandom(32))
    a, b = references(IDS, key).to_pylist(), references(IDS, other).to_pylist()
    assert not set(a[:-1]) & set(b[:-1])


def test_person_and_family_namespaces_differ(key: PseudonymKey) -> None:
    assert reference(key, "X1", "person") != reference(key, "X1", "family")


def test_reference_carries_its_key_version(key: PseudonymKey) -> None:
    v2 = PseudonymKey(key.agreement_id, 2, os.urandom(32))
    assert reference_version(reference(key, "P1")) == 1
    assert reference_version(reference(v2, "P1")) == 2
    with pytest.raises(PseudonymKeyError):
        reference_version("P00000001")


def test_references_are_not_unkeyed_hashes(key: PseudonymKey) -> None:
    import hashlib

    ref = reference(key, "P00000001")
    assert hashlib.sha256(b"person:P00000001").hexdigest()[:32] not in ref


def test_rotation_old_references_resolve_until_retired(key: PseudonymKey) -> None:
    v2 = PseudonymKey(key.agreement_id, 2, os.urandom(32))
    old = references(IDS[:10], key)
    new = references(IDS[10:20], v2)
    returned = pa.concat_arrays([old, new, pa.array(["v1-" + "0" * 32])])
    both = resolve(returned, IDS, [key, v2])
    mapping = dict(zip(both.column("ref").to_pylist(), both.column("id").to_pylist(), strict=True))
    assert [mapping[r] for r in old.to_pylist()] == IDS[:10].to_pylist()
    assert [mapping[r] for r in new.to_pylist()] == IDS[10:20].to_pylist()
    assert mapping["v1-" + "0" * 32] is None  # never sent
    retired = resolve(returned, IDS, [v2])
    resolved = dict(zip(retired.column("ref").to_pylist(), retired.column("id").to_pylist(), strict=True))
    assert all(resolved[r] is None for r in old.to_pylist())  # crypto-shredded
    assert all(resolved[r] is not None for r in new.to_pylist())


def test_keys_must_be_256_bit() -> None:
    with pytest.raises(PseudonymKeyError, match="expected 32 bytes"):
        PseudonymKey("dwp", 1, b"short")
    with pytest.raises(PseudonymKeyError, match="not hexadecimal"):
        PseudonymKey.from_hex("dwp", 1, "zz")


def test_repr_hides_the_secret(key: PseudonymKey) -> None:
    assert key.secret.hex() not in repr(key)


def test_compiled_and_sql_paths_agree_with_python_hmac(key: PseudonymKey) -> None:
    from supporting_families.share import pseudonymise

    chunked = pa.chunked_array([IDS[:2500], IDS[2500:]])  # slices with offsets, and a null at the end
    want = [None if i is None else reference(key, i, "family") for i in IDS.to_pylist()]
    assert pseudonymise._sql_references(chunked, key, "family").to_pylist() == want
    if pseudonymise._hmac is not None:  # built by setup.py where a C compiler is present
        assert pseudonymise._compiled_references(chunked, key, "family").to_pylist() == want


def test_ids_longer_than_one_hash_block_give_the_same_references(key: PseudonymKey) -> None:
    long_ids = pa.array(["X" * 60, "Y" * 48, "Z" * 300, ""])
    assert references(long_ids, key).to_pylist() == [reference(key, i) for i in long_ids.to_pylist()]
