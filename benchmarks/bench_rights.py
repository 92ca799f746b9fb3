"""Subject access and erasure on a 1,000,000-person register with a year of weekly deliveries to 3 partners.

    .venv/bin/python benchmarks/bench_rights.py [--persons 1000000] [--weeks 52] [--cohort 50000]

Builds a store: the register (persons, links), one curated extract of every person, and ``weeks`` weekly
deliveries to each of DWP, the police and ONS, each packaged by the platform's own ``package_delivery``
(keyed references, the partner's CSV, the sealed controller-side copy) for ``cohort`` persons drawn at
random plus the person asked about, who is in every delivery (the worst case). Then times, for that person:

    subject access: the dossier (every area, the disclosure history with the values, from 3 x weeks sealed
                    copies) rendered to JSON, HTML and CSV and zipped (OpenPGP to the DPO not included: gpg's
                    cost for a small bundle is fixed, see bench_openpgp)
    erasure, request time: tombstones, register, curated, identification, partner flags, every sealed copy
                    re-sealed and every reference list rewritten
    erasure, compaction: timed separately

Targets (the rights' design): under 10 s for subject access and for the request-time part. Prints seconds
and peak RSS; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from supporting_families.config import load_agreements
from supporting_families.rights.bundle import _zip, disclosures_csv, render_html
from supporting_families.rights.dossier import person_dossier, to_json
from supporting_families.rights.erase import compact, erase_now, plan_erasure
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

TARGET = "P0000042"


def register(n: int, rng: np.random.Generator) -> pa.Table:
    ids = np.array([f"P{i:07d}" for i in range(n)], dtype=object)
    households = np.array([f"H{i // 3:07d}" for i in range(n)], dtype=object)
    days = rng.integers(0, 365 * 80, n)
    dob = pa.array((np.datetime64("1940-01-01") + days.astype("timedelta64[D]")).astype("datetime64[D]"))
    return pa.table(
        {
            "person_id": ids,
            "household_id": households,
            "family_id": households,
            "given_name": np.array([f"Given{i % 5000}" for i in range(n)], dtype=object),
            "family_name": np.array([f"Family{i // 3 % 40000}" for i in range(n)], dtype=object),
            "date_of_birth": dob.cast(pa.date32()),
            "sex": np.where(rng.random(n) < 0.5, "F", "M").astype(object),
            "address_line_1": np.array([f"{i // 3 % 300} STREET {i // 900}" for i in range(n)], dtype=object),
            "address_line_2": pa.nulls(n, pa.string()),
            "town": np.array(["LONDON"] * n, dtype=object),
            "postcode": np.array(
                [f"W{i // 3000 % 14 + 1} {i // 300 % 10}AB" for i in range(n)], dtype=object
            ),
            "uprn": np.array([f"{100000000000 + i // 3}" for i in range(n)], dtype=object),
        },
        schema=REGISTER_SCHEMA,
    )


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--cohort", type=int, default=50_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    agreements = {a.id: a for a in load_agreements(resolve=False)}
    with tempfile.TemporaryDirectory(prefix="sf-bench-rights-") as tmp:
        root = store_root((Path(tmp) / "store").as_uri())
        keys = FileKeyStore(Path(tmp) / "keys")
        t0 = time.perf_counter()
        persons = register(args.persons, rng)
        write_parquet(persons, register_file(root, "persons"))
        links = pa.table(
            {
                "source": pa.array(["housing"] * args.persons),
                "record_id": pa.array([f"HS{i}" for i in range(args.persons)]),
                "person_id": persons["person_id"],
                "rule": pa.array(["single"] * args.persons),
            }
        )
        write_parquet(links, register_file(root, "links"))
        curated = pa.table(
            {
                "source": links["source"],
                "record_id": links["record_id"],
                "given_name": persons["given_name"],
                "family_name": persons["family_name"],
                "date_of_birth": persons["date_of_birth"],
                "postcode": persons["postcode"],
            }
        )
        write_parquet(curated, curated_file(root, "housing", date(2026, 11, 30)))
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        start = datetime(2025, 12, 1, 9, tzinfo=UTC)
        n_deliveries = 0
        for week in range(args.weeks):
            for agreement in agreements.values():
                pick = rng.choice(args.persons, args.cohort, replace=False)
                ids = sorted({f"P{i:07d}" for i in pick} | {TARGET})
                cohort = pa.table({"person_id": ids})
                if agreement.sends("programme_status"):
                    cohort = cohort.append_column(
                        "programme_status", pa.array(["assessed_as_meeting_criteria"] * len(ids))
                    )
                key = PseudonymKey(agreement.id, 1, bytes(range(32)))
                run_id = f"scheduled__week{week}"
                delivery = Delivery(root, agreement.id, delivery_id_for(agreement.id, run_id))
                view, refs = share_view(cohort, persons, key, agreement)
                package_delivery(delivery, agreement, view, refs, run_id, keys=keys)
                when = (start + timedelta(weeks=week)).isoformat()
                write_bytes_atomic(
                    delivery.receipt_path, json.dumps({"delivered_at": when, "bytes": 1}).encode()
                )
                n_deliveries += 1
        packaged = time.perf_counter() - t0
        print(
            f"store: {args.persons:,} persons, {n_deliveries} deliveries of {args.cohort:,} + 1 "
            f"(built in {built:.1f} s, deliveries packaged in {packaged:.1f} s)"
        )

        t0 = time.perf_counter()
        dossier = person_dossier(root, TARGET, agreements, keys)
        files = {
            "a.json": to_json(dossier),
            "a.html": render_html(dossier),
            "a.csv": disclosures_csv(dossier),
        }
        bundle = _zip(files)
        access = time.perf_counter() - t0
        print(
            f"subject access: {access:.2f} s ({len(dossier['disclosures'])} disclosures, "
            f"{len(bundle) / 1024:.0f} KiB zipped); target < 10 s: {'met' if access < 10 else 'NOT met'}"
        )

        t0 = time.perf_counter()
        plan = plan_erasure(root, TARGET, keys)
        changes = erase_now(
            root, plan, tombstone_key=bytes(32), keys=keys, request_id="rqbench", on=date.today()
        )
        erase = time.perf_counter() - t0
        print(
            f"erasure, request time: {erase:.2f} s ({changes.counts()['files_rewritten']} files rewritten); "
            f"target < 10 s: {'met' if erase < 10 else 'NOT met'}"
        )
        t0 = time.perf_counter()
        compacted = compact(root, plan, {"housing": "extracts/housing/housing_*.csv"})
        print(
            f"erasure, compaction: {time.perf_counter() - t0:.2f} s "
            f"({compacted.counts()['files_deleted']} files deleted)"
        )
        print(f"peak RSS: {rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
