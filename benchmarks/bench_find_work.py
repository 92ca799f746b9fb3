"""Benchmark finding work: how long an ingest run takes to see that no landed extract is new.

    .venv/bin/python benchmarks/bench_find_work.py [--persons 1000000] [--days 1]

Landed extracts stay in ``landing/`` after they are ingested, so every scheduled run looks at all of them.
``pending_extracts`` trusts a file's stamp (ETag on S3, size and modification time on a file system) and
reads only files whose stamp changed; before stamps it hashed every landed byte on every run. This lands
``--days`` days of a borough's nine extracts, ingests them, then times finding work both ways (the stamp
switched off for the second). Prints sizes and milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from upath import UPath

import supporting_families.ingest.pipeline as ingest
from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.config import load_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=1, help="daily drops of every extract")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    specs = load_sources().sources.values()
    with tempfile.TemporaryDirectory(prefix="sf-bench-find-") as tmp:
        root = UPath(Path(tmp).as_uri())
        for day in range(args.days):
            borough = generate_borough(
                args.persons, seed=day, as_of=date(2025, 3, 31) + timedelta(days=day), dirt=DirtConfig.clean()
            )
            write_borough(borough, root / "landing", truth_root=root / "demo")
        for spec in specs:
            ingest.ingest_source(root, spec)
        landed = [p for p in Path(tmp, "landing").rglob("*") if p.is_file()]
        mib = sum(p.stat().st_size for p in landed) / 2**20
        print(f"{len(landed)} landed extracts, {mib:,.0f} MiB, all ingested")
        stamp = ingest.landed_stamp
        for label, stamps in (("stamps trusted", True), ("every file hashed", False)):
            ingest.landed_stamp = stamp if stamps else (lambda path: None)
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                pending = [name for spec in specs for name in ingest.pending_extracts(root, spec)]
                best = min(best, time.perf_counter() - started)
            print(f"finding work, {label}: best {best * 1000:,.1f} ms ({len(pending)} pending)")
        ingest.landed_stamp = stamp


if __name__ == "__main__":
    main()
