"""The demo borough's postcode-to-ward lookup: what a council takes from the ONS postcode directory.

A council supplies the file (``landing/reference/postcode_wards.csv``, :mod:`supporting_families.store.
layout`); here each postcode sector of the synthetic borough falls in a ward named after its district's
locality, so the programme statistics have wards to count by. Every postcode the borough uses, current or
previous, is listed: a lookup of the whole borough is public reference data, not a list of anyone's
address.
"""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pyarrow.compute as pc

from sf_demo.synthetic.names import POSTCODE_DISTRICTS

__all__ = ["ward_lookup", "ward_lookup_csv"]


def _ward(postcode: str) -> str:
    outward, _, inward = postcode.partition(" ")
    locality = POSTCODE_DISTRICTS[outward][0] if outward in POSTCODE_DISTRICTS else outward
    sector = int(inward[:1]) if inward[:1].isdigit() else 0
    # Two or three sectors to a ward, as wards are drawn around a few thousand electors.
    return f"{locality} {'North' if sector < 5 else 'South'}"


def ward_lookup(persons: pa.Table) -> pa.Table:
    """postcode, ward for every distinct postcode in the borough's ``persons`` (current and previous)."""
    columns = [c for c in ("postcode", "previous_postcode") if c in persons.column_names]
    postcodes = pc.unique(pa.concat_arrays([persons.column(c).combine_chunks() for c in columns])).drop_null()
    values = sorted(str(p) for p in postcodes.to_pylist())
    return pa.table({"postcode": values, "ward": [_ward(p) for p in values]})


def ward_lookup_csv(lookup: pa.Table) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["postcode", "ward"])
    writer.writerows(
        zip(lookup.column("postcode").to_pylist(), lookup.column("ward").to_pylist(), strict=True)
    )
    return buf.getvalue().encode("utf-8")
