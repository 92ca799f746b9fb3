"""Identification end to end on a synthetic borough: ingest, link, evaluate the criteria; scored and timed.

    .venv/bin/python benchmarks/bench_identification.py --persons 1000000 [--clean]

Writes a borough's extracts to a temporary ``file://`` store, then runs what the DAGs run, in order:
``ingest_source`` for every source, ``build_register`` (linkage) and ``identify`` (criteria), and prints
seconds per stage, pairwise linkage precision and recall against the truth, eligible families against the
truth's eligible households, and peak memory. The budget: linkage and identification of 1,000,000 persons
under 120 s and 8 GiB on these 2 cores (ingest and generation printed apart). Asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date

import pyarrow.compute as pc
from upath import UPath

from sf_demo.linkage_eval import pairwise_quality
from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.config import load_sources
from supporting_families.identify import (
    build_register,
    identify,
    identities_from_curated,
    read_latest_curated,
    save_register,
)
from supporting_families.ingest import ingest_source

AS_OF = date(2026, 3, 31)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--clean", action="store_true", help="no dirt: identification must equal the truth")
    args = parser.parse_args()
    dirt = DirtConfig.clean() if args.clean else DirtConfig()
    sources = load_sources()

    with tempfile.TemporaryDirectory(prefix="sf-bench-ident-") as tmp:
        root = UPath(f"file://{tmp}")
        t = time.perf_counter()
        borough = generate_borough(args.persons, seed=3, as_of=AS_OF, dirt=dirt)
        write_borough(borough, root / "landing", truth_root=root / "demo")
        print(f"generate and land {args.persons:,} persons: {time.perf_counter() - t:.1f} s (not counted)")

        t = time.perf_counter()
        received = sum(r.received or 0 for s in sources.sources.values() for r in ingest_source(root, s))
        ingest = time.perf_counter() - t
        print(f"ingest {received:,} extract rows: {ingest:.1f} s (not counted)")

        t = time.perf_counter()
        curated, _ = read_latest_curated(root, list(sources.sources))
        result = build_register(identities_from_curated(curated.values()))
        save_register(result, root)
        linkage = time.perf_counter() - t

        t = time.perf_counter()
        counts = identify(root, list(sources.sources))
        criteria = time.perf_counter() - t

        quality = pairwise_quality(result.links, borough.links)
        crit = borough.person_criteria.filter(pc.equal(borough.person_criteria["origin"], "internal"))
        per = crit.group_by("household_id").aggregate([("headline_problem", "count_distinct")])
        truth_eligible = per.filter(pc.greater_equal(per["headline_problem_count_distinct"], 2)).num_rows

    records = f"persons {result.persons.num_rows:,} from {result.links.num_rows:,} records"
    print(f"\nlinkage  {linkage:6.1f} s   {records}")
    print(f"criteria {criteria:6.1f} s")
    print(f"total    {linkage + criteria:6.1f} s   (budget 120 s)")
    print(f"peak RSS {_peak_mib():,.0f} MiB (budget 8 GiB)")
    print(f"pairwise precision {quality.precision:.5f}   recall {quality.recall:.5f}")
    print(f"eligible families {counts['eligible_families']:,}   truth (households) {truth_eligible:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
