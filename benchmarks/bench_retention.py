"""The retention sweep over a store with 1,000,000 persons and a year of weekly deliveries to 3 partners.

    .venv/bin/python benchmarks/bench_retention.py [--persons 1000000] [--weeks 52] [--cohort 20000]

Builds a store in a temporary folder, every file dated as the pipeline would have left it (file times set
with ``os.utime``, receipts' ``delivered_at`` weekly):

    register       persons (bench_rights' generator), links and the id map: one housing record per person,
                   and a record in each other source for a share of them
    curated        ``--extracts`` weekly extracts of each of the 9 sources in include/sources.yaml, each a
                   little smaller than the one before (people leave a source), so older ones are superseded
                   and their departed records leave the register when the extract holding them goes
    landing        each extract as landed, with its ingest report
    identification ``--snapshots`` weekly snapshots (person flags for every person)
    deliveries     ``weeks`` weekly deliveries to each of DWP, the police and ONS: the reference list and the
                   sent copy sealed under the delivery month's key (``write_sealed_table``, references from
                   the platform's ``share_view``), the OpenPGP file's sealed archive, manifest and receipt
    returns        a return folder for every fourth delivery

The policy is include/retention.yaml with the agreements' own classes; ``as_of`` is chosen so that about half
the deliveries and half the superseded extracts and snapshots are past their limit. Then times the dry run
(``plan_sweep``), the sweep (``apply_sweep``: deletion, the register's rewrite, key shredding) and the
verification scan (``overdue``), and prints seconds per phase, files deleted, keys shredded and peak RSS.
The peer is the reading no sweep can avoid, timed in the same run with pyarrow and ``os``: stat-ing every
file of the store, and reading the id map and the record ids of the curated extracts that survive (the newer
half of each source's, by construction; what the register's check needs). The plan's ratio to it is the
sweep's own overhead. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rights import register  # the same 1,000,000-person register generator

from supporting_families.config import load_agreements, load_sources
from supporting_families.config.retention import load_retention
from supporting_families.retention import apply_sweep, overdue, plan_sweep
from supporting_families.share import Delivery, PseudonymKey, delivery_id_for
from supporting_families.share.delivery import share_view
from supporting_families.share.package import minimise
from supporting_families.store import FileKeyStore, store_root, write_bytes_atomic, write_parquet
from supporting_families.store.keystore import period_of
from supporting_families.store.layout import (
    curated_file,
    identification_dir,
    ingest_report_file,
    register_file,
    return_dir,
)
from supporting_families.store.sealed import seal_bytes, write_sealed_table

#: The last weekly delivery: the programme's final month (include/retention.yaml's programme_end).
LAST_DELIVERY = datetime(2026, 3, 26, 9, tzinfo=UTC)


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def stamp(path: Path, when: datetime | date) -> None:
    """Date a file as the pipeline would have left it (the sweep reads the store's own clock)."""
    moment = when if isinstance(when, datetime) else datetime(when.year, when.month, when.day, 6, tzinfo=UTC)
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def stamp_tree(folder: Path, when: datetime | date) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            stamp(path, when)


def half_due_days(as_of: date, days: int, n: int) -> list[date]:
    """``n`` weekly dates such that about half of the ``n - 1`` superseded ones are past ``days`` after the
    next one on ``as_of``."""
    middle = as_of - timedelta(days=days)  # superseded on or before this day: due
    first = middle - timedelta(weeks=n // 2)
    return [first + timedelta(weeks=i, days=-3) for i in range(n)]


def walk(root: Path) -> int:
    """List and stat every file of the store (what any sweep must do at least once)."""
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(dirpath, name))
            n += 1
    return n


def must_read(root: Path) -> int:
    """The peer: every file stat-ed, the id map read, and the record ids of the extracts that survive (the
    newer half of each source's: :func:`half_due_days` makes the older half due)."""
    rows = pq.read_table(root / "register" / "id_map.parquet").num_rows
    for folder in sorted((root / "curated").iterdir()):
        extracts = sorted(folder.glob("*.parquet"))
        for path in extracts[len(extracts) // 2 :]:
            rows += pq.read_table(path, columns=["record_id"]).num_rows
    walk(root)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--cohort", type=int, default=20_000)
    parser.add_argument("--extracts", type=int, default=6, help="weekly curated extracts per source")
    parser.add_argument("--snapshots", type=int, default=8, help="weekly identification snapshots")
    parser.add_argument(
        "--keep", metavar="DIR", help="build the store in DIR and leave it there, unswept (for profiling)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(11)
    policy = load_retention()
    sources = load_sources()
    agreements = {a.id: a for a in load_agreements(resolve=False)}
    # Half the year's deliveries are past their days (365, every agreement's `retention:`) on as_of.
    first_delivery = LAST_DELIVERY - timedelta(weeks=args.weeks - 1)
    days = max(a.retention.days_for("deliveries") for a in agreements.values())
    as_of = (first_delivery + timedelta(weeks=args.weeks // 2, days=days)).date()
    n = args.persons

    with tempfile.TemporaryDirectory(prefix="sf-bench-retention-") as scratch:
        tmp = args.keep or scratch
        local = Path(tmp) / "store"
        root = store_root(local.as_uri())
        keys = FileKeyStore(Path(tmp) / "keys")
        t0 = time.perf_counter()
        persons = register(n, rng)
        write_parquet(persons, register_file(root, "persons"))

        # Records: every person in housing, a share of them in each other source. Each newer extract of a
        # source lacks the records of those who left it (0.5% a week), so when an old extract goes, their
        # records leave the id map and a person left with no record leaves the register.
        extract_days = half_due_days(as_of, policy.rule("curated").days, args.extracts)
        id_map_parts = []
        n_curated = 0
        for s, spec in enumerate(sources.sources.values()):
            share = 1.0 if spec.name == "housing" else 0.05 + 0.03 * s
            members = np.sort(rng.choice(n, max(1, int(n * share)), replace=False))
            record_ids = pa.array([f"{spec.name[:2].upper()}{i:08d}" for i in members])
            person_ids = persons["person_id"].take(pa.array(members))
            id_map_parts.append(
                pa.table(
                    {
                        "source": pa.repeat(pa.scalar(spec.name), len(members)),
                        "record_id": record_ids,
                        "person_id": person_ids,
                    }
                )
            )
            staying = np.ones(len(members), dtype=bool)
            for day in extract_days:
                rows = pa.table(
                    {
                        "record_id": record_ids,
                        "given_name": persons["given_name"].take(pa.array(members)),
                        "family_name": persons["family_name"].take(pa.array(members)),
                        "date_of_birth": persons["date_of_birth"].take(pa.array(members)),
                        "postcode": persons["postcode"].take(pa.array(members)),
                    }
                ).filter(pa.array(staying))
                path = curated_file(root, spec.name, day)
                write_parquet(rows, path)
                stamp(Path(path.path), day)
                landed = (
                    root / "landing" / spec.file_glob.replace("*", day.strftime(spec.extract_date_format))
                )
                write_bytes_atomic(landed, b"header\n")  # the extract as received (its size is immaterial)
                stamp(Path(landed.path), day)
                report = ingest_report_file(root, spec.name, landed.name.rsplit(".", 1)[0])
                write_bytes_atomic(report, json.dumps({"status": "ingested", "rows": rows.num_rows}).encode())
                stamp(Path(report.path), day)
                n_curated += 1
                staying &= rng.random(len(members)) >= 0.005
        id_map = pa.concat_tables(id_map_parts)
        write_parquet(id_map, register_file(root, "id_map"))
        write_parquet(
            id_map.append_column("rule", pa.repeat(pa.scalar("single"), id_map.num_rows)),
            register_file(root, "links"),
        )

        snapshot_days = half_due_days(as_of, policy.rule("identification").days, args.snapshots)
        for day in snapshot_days:
            folder = identification_dir(root, day)
            flags = pa.table({"person_id": persons["person_id"], "eligible": pa.array(rng.random(n) < 0.04)})
            write_parquet(flags, folder / "person_flags.parquet")
            write_parquet(flags.filter(flags["eligible"]).select(["person_id"]), folder / "cohort.parquet")
            stamp_tree(Path(folder.path), day)
        built = time.perf_counter() - t0

        # Deliveries. References from the platform's share_view over a pool per partner (the key is fixed, so
        # a person has the same reference every week); each week's cohort is drawn from it.
        t0 = time.perf_counter()
        n_deliveries = n_returns = 0
        pool = np.sort(rng.choice(n, min(n, args.cohort * 8), replace=False))
        for agreement in agreements.values():
            cohort = pa.table({"person_id": persons["person_id"].take(pa.array(pool))})
            if agreement.sends("programme_status"):
                cohort = cohort.append_column(
                    "programme_status", pa.repeat(pa.scalar("assessed_as_meeting_criteria"), cohort.num_rows)
                )
            view, refs = share_view(
                cohort, persons, PseudonymKey(agreement.id, 1, bytes(range(32))), agreement
            )
            sent_all = minimise(view, agreement).append_column("person_id", view["person_id"])
            for week in range(args.weeks):
                when = first_delivery + timedelta(weeks=week)
                pick = pa.array(np.sort(rng.choice(refs.num_rows, args.cohort, replace=False)))
                run_id = f"scheduled__{when.date().isoformat()}"
                d = Delivery(root, agreement.id, delivery_id_for(agreement.id, run_id))
                period = period_of(when)
                write_sealed_table(refs.take(pick), d.references_path, keys, period, d.references_context)
                write_sealed_table(sent_all.take(pick), d.sent_copy_path, keys, period, d.sent_copy_context)
                # The OpenPGP file as archived: its size is the CSV's, about 60 bytes a row.
                ciphertext = rng.bytes(60 * args.cohort)
                write_bytes_atomic(d.archive_path, seal_bytes(ciphertext, keys, period, d.archive_context))
                write_bytes_atomic(
                    d.manifest_path, json.dumps({"run_id": run_id, "rows": args.cohort}).encode()
                )
                receipt = {"status": "delivered", "delivered_at": when.isoformat(), "bytes": len(ciphertext)}
                write_bytes_atomic(d.receipt_path, json.dumps(receipt).encode())
                stamp_tree(Path(d.folder.path), when)
                n_deliveries += 1
                if week % 4 == 0:
                    back = return_dir(root, agreement.id, f"{d.name}.return.csv.gpg")
                    write_bytes_atomic(back / "received.json", json.dumps({"rows": 100}).encode())
                    write_bytes_atomic(
                        back / "return.csv.gpg.sealed", seal_bytes(b"x" * 6000, keys, period, "r")
                    )
                    stamp_tree(Path(back.path), when + timedelta(days=14))
                    n_returns += 1
        packaged = time.perf_counter() - t0
        files = walk(local)
        print(
            f"store: {n:,} persons, {id_map.num_rows:,} source records, {n_curated} curated extracts, "
            f"{len(snapshot_days)} identification snapshots, {n_deliveries} deliveries of {args.cohort:,} "
            f"(3 partners x {args.weeks} weeks), {n_returns} returns; {files:,} files, "
            f"{len(keys.periods())} period keys (built in {built:.1f} s, deliveries in {packaged:.1f} s)"
        )
        print(f"as_of {as_of}: deliveries {first_delivery.date()} .. {LAST_DELIVERY.date()}")
        if args.keep:
            return 0

        t0 = time.perf_counter()
        must_read(local)
        peer = time.perf_counter() - t0

        t0 = time.perf_counter()
        plan = plan_sweep(root, policy, agreements, sources, as_of)
        planned = time.perf_counter() - t0
        summary = plan.summary()
        due_files = sum(row["files"] for row in summary.values())

        t0 = time.perf_counter()
        result = apply_sweep(root, plan, keys)
        applied = time.perf_counter() - t0
        deleted = sum(len(paths) for paths in result.deleted.values())

        t0 = time.perf_counter()
        left = overdue(root, policy, agreements, sources, as_of)
        verified = time.perf_counter() - t0

        per_class = ", ".join(f"{cls} {len(paths)}" for cls, paths in sorted(result.deleted.items()))
        delivered_due = len({item.delivery_id for item in plan.due if item.delivery_id})
        print(
            f"peer (stat {files:,} files, read the id map and the surviving extracts' record ids): "
            f"{peer:.2f} s"
        )
        print(
            f"plan (dry run): {planned:.2f} s, {due_files:,} files due "
            f"({delivered_due} of {n_deliveries} deliveries)"
        )
        print(
            f"apply: {applied:.2f} s, {deleted:,} files deleted ({per_class}); register rows removed "
            f"{result.rows_removed.get('register', 0):,}; keys shredded {len(result.keys_shredded)} "
            f"({', '.join(result.keys_shredded)})"
        )
        print(f"verify (overdue): {verified:.2f} s, {len(left)} items still due")
        total = planned + applied + verified
        rss = rss_gib()
        print(f"sweep total (plan + apply + verify): {total:.2f} s; peak RSS {rss:.2f} GiB")
        print(
            "README-ROW: `bench_retention.py` | the retention sweep (include/retention.yaml and the "
            f"agreements' days) over a store of {n:,} persons with {args.weeks} weekly deliveries of "
            f"{args.cohort:,} to each of the 3 partners, {files:,} files, as_of where about half are due | "
            f"sweep {total:.1f} s: plan (dry run) {planned:.1f} s, apply {applied:.1f} s ({deleted:,} files "
            f"deleted, {result.rows_removed.get('register', 0):,} register rows, "
            f"{len(result.keys_shredded)} keys shredded), verify {verified:.1f} s ({len(left)} left); "
            f"plan {planned / peer:.1f}× the reading it cannot avoid ({peer:.2f} s: every file stat-ed, the "
            f"id map and the surviving extracts' record ids read with pyarrow); "
            f"peak RSS {rss:.2f} GiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
