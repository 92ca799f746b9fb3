"""The share's file order: exactly the order of the person references, however it is found."""

from __future__ import annotations

import secrets

import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.share.delivery import reference_order
from supporting_families.share.pseudonymise import PseudonymKey, references


def test_reference_order_is_the_string_sort_of_real_references() -> None:
    key = PseudonymKey.from_hex("dwp-benefits-matching", 3, secrets.token_hex(32))
    refs = references(pa.array([f"TP{i:08d}" for i in range(5000)]), key, "person")
    assert reference_order(refs).to_pylist() == pc.sort_indices(refs).to_pylist()


def test_reference_order_falls_back_to_the_string_sort_for_ties_and_other_shapes() -> None:
    tied = pa.array(["v1-" + "a" * 16 + "1", "v1-" + "a" * 16 + "0", "v1-" + "0" * 17])
    assert reference_order(tied).to_pylist() == [2, 1, 0]
    ragged = pa.array(["v1-ff", "v1-0", None, "x"])
    assert reference_order(ragged).to_pylist() == pc.sort_indices(ragged).to_pylist()
    upper = pa.array(["v1-" + "A" * 16, "v1-" + "1" * 16])
    assert reference_order(upper).to_pylist() == [1, 0]
    assert reference_order(pa.array([], pa.string())).to_pylist() == []
