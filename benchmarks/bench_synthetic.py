"""Benchmark the synthetic borough: generate and write N persons, print seconds, rows and peak memory.

    .venv/bin/python benchmarks/bench_synthetic.py --persons 1000000 --out file:///tmp/sf-bench

A script, not a test: the figure it prints is the generator's budget (1,000,000 persons in under 60 s).
Only counts and timings are printed, never a row.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date

from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.store import store_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument(
        "--out", required=True, help="store URI, e.g. file:///tmp/sf-bench or s3://bucket/prefix"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2025, 3, 31))
    parser.add_argument("--clean", action="store_true", help="no dirt (DirtConfig.clean())")
    args = parser.parse_args(argv)

    root = store_root(args.out)
    dirt = DirtConfig.clean() if args.clean else DirtConfig()
    t0 = time.perf_counter()
    borough = generate_borough(args.persons, seed=args.seed, as_of=args.as_of, dirt=dirt)
    t1 = time.perf_counter()
    counts = write_borough(borough, root)
    t2 = time.perf_counter()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    fam = borough.family_criteria
    eligible_internal = sum(fam.column("eligible_internal").to_pylist())
    eligible_all = sum(fam.column("eligible_with_partners").to_pylist())
    print(f"persons            {borough.n_persons:>12,}")
    print(f"families           {fam.num_rows:>12,}")
    print(f"eligible families  {eligible_internal:>12,} internal, {eligible_all:,} with partners")
    print("rows per output:")
    for key, rows in counts.items():
        print(f"  {key:<34} {rows:>12,}")
    print(f"extract rows       {sum(v for k, v in counts.items() if k.startswith('extracts/')):>12,}")
    print(f"generate seconds   {t1 - t0:>12.2f}")
    print(f"write seconds      {t2 - t1:>12.2f}")
    print(f"total seconds      {t2 - t0:>12.2f}")
    print(f"peak RSS MiB       {peak_mib:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
