"""A small store with a register, a curated extract and one packaged, delivered DWP share of three people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.config import Agreement, load_agreements
from supporting_families.share import Delivery, PseudonymKey, delivery_id_for
from supporting_families.share.delivery import package_delivery, share_view
from supporting_families.store import (
    REGISTER_SCHEMA,
    FileKeyStore,
    store_root,
    write_bytes_atomic,
    write_parquet,
)
from supporting_families.store.layout import curated_file, register_file

PERSONS = [
    # person_id, household, given, family, dob, sex, line 1, line 2, town, postcode, uprn
    (
        "P1",
        "H1",
        "Amara",
        "Okafor",
        date(1984, 2, 29),
        "F",
        "12 Elm Road",
        None,
        "London",
        "W8 7NX",
        "100023336956",
    ),
    (
        "P2",
        "H1",
        "Tobi",
        "Okafor",
        date(2012, 6, 3),
        "M",
        "12 Elm Road",
        None,
        "London",
        "W8 7NX",
        "100023336956",
    ),
    ("P3", "H2", "Wei", "Zhang", date(1990, 11, 11), "F", "4 Oak Lane", "Flat 2", "London", "W11 2AB", None),
]


@dataclass(frozen=True)
class SmallStore:
    root: UPath
    keys: FileKeyStore
    agreements: dict[str, Agreement]
    delivery: Delivery

    @property
    def dwp(self) -> Agreement:
        return self.agreements["dwp-benefits-matching"]


def persons_table() -> pa.Table:
    rows = [
        dict(
            zip(
                (
                    "person_id",
                    "household_id",
                    "given_name",
                    "family_name",
                    "date_of_birth",
                    "sex",
                    "address_line_1",
                    "address_line_2",
                    "town",
                    "postcode",
                    "uprn",
                ),
                p,
                strict=True,
            )
        )
        for p in PERSONS
    ]
    for row in rows:
        row["family_id"] = row["household_id"]
    return pa.Table.from_pylist(rows, schema=REGISTER_SCHEMA)


@pytest.fixture
def small_store(tmp_path: Path) -> SmallStore:
    root = store_root((tmp_path / "store").as_uri())
    keys = FileKeyStore(tmp_path / "keys")
    persons = persons_table()
    write_parquet(persons, register_file(root, "persons"))
    write_parquet(
        pa.table(
            {
                "source": ["housing", "housing", "housing"],
                "record_id": ["HS1", "HS2", "HS3"],
                "person_id": ["P1", "P2", "P3"],
                "rule": ["single", "single", "single"],
            }
        ),
        register_file(root, "links"),
    )
    write_parquet(
        pa.table(
            {
                "source": ["housing"] * 3,
                "record_id": ["HS1", "HS2", "HS3"],
                "given_name": persons["given_name"],
                "family_name": persons["family_name"],
                "date_of_birth": persons["date_of_birth"],
                "postcode": persons["postcode"],
                "rent_arrears": [True, True, False],
            }
        ),
        curated_file(root, "housing", date(2026, 11, 30)),
    )
    agreements = {a.id: a for a in load_agreements(resolve=False)}
    dwp = agreements["dwp-benefits-matching"]
    key = PseudonymKey(dwp.id, 1, bytes(range(32)))
    run_id = "manual__rights-test"
    delivery = Delivery(root, dwp.id, delivery_id_for(dwp.id, run_id))
    view, refs = share_view(pa.table({"person_id": ["P1", "P2", "P3"]}), persons, key, dwp)
    package_delivery(delivery, dwp, view, refs, run_id, keys=keys)
    # The SFTP step is exercised by the integration tests; here the receipt stands for a delivery made.
    receipt = {
        "status": "delivered",
        "delivered_at": "2026-12-01T09:00:00+00:00",
        "bytes": 1,
        "sha256": "0" * 64,
    }
    write_bytes_atomic(delivery.receipt_path, json.dumps(receipt).encode())
    return SmallStore(root, keys, agreements, delivery)
