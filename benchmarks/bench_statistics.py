"""Produce every programme statistics table for 1,000,000 persons and time each stage.

    .venv/bin/python benchmarks/bench_statistics.py [--persons 1000000]

Generates a synthetic borough (persons with real postcodes, and the demo's postcode-to-ward lookup), gives
its families headline problems at random (seeded; about a quarter with one or more) and assesses some, then
runs the platform's own functions in order:

    facts (DuckDB: restrictions out, ward, youngest child's age band, month) · cells (the two linked table
    sets as sums of atoms) · protect (threshold rule, secondary suppression and the audit as LPs, HiGHS)
    · lay out (rounded tables) · write (CSV + Parquet in memory)

and, in the same run, a peer: pandas crosstabs of the same tables with no disclosure control. Prints
seconds per stage and the ratio to the peer; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sf_demo.synthetic import generate_borough
from sf_demo.synthetic.wards import ward_lookup
from supporting_families.statistics import build_cell_sets, family_facts, protected_tables, sdc_parameters
from supporting_families.statistics.publish import _csv

AS_OF = date(2026, 3, 31)
HEADLINES = ["school_attendance", "children_needing_help", "worklessness_financial_exclusion",
             "domestic_abuse", "health", "crime_asb"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    borough = generate_borough(args.persons, seed=5, as_of=AS_OF)
    persons = borough.persons.select(["person_id", "family_id", "date_of_birth", "postcode"])
    wards = ward_lookup(borough.persons)
    families = np.unique(persons.column("family_id").to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(5)
    n_problems = rng.choice([0, 1, 2, 3, 4], size=len(families), p=[0.75, 0.13, 0.08, 0.03, 0.01])
    fam_rows = np.repeat(families, n_problems)
    heads = np.concatenate([rng.choice(HEADLINES, k, replace=False) for k in n_problems if k])
    problems = pa.table({"family_id": fam_rows, "headline": heads})
    flagged = np.unique(fam_rows)
    months = np.array(["2026-01-31", "2026-02-28", "2026-03-31"], dtype="datetime64[D]")
    first_seen = pa.table({"family_id": flagged, "first_as_of": rng.choice(months, len(flagged))})
    chosen = rng.choice(flagged, len(flagged) // 10, replace=False)
    assessed = pa.table({"family_id": chosen, "identification_as_of": np.full(len(chosen), months[-1])})
    blocked = pa.array(
        rng.choice(persons.column("person_id").to_numpy(zero_copy_only=False), 500), pa.string()
    )
    print(f"borough: {args.persons:,} persons, {len(families):,} families, {len(flagged):,} with a problem;"
          f" generated in {time.perf_counter() - t0:.1f} s")  # fmt: skip

    times: dict[str, float] = {}
    t = time.perf_counter()
    facts = family_facts(persons, problems, first_seen, assessed, wards, blocked, HEADLINES, AS_OF)
    times["facts"] = time.perf_counter() - t
    t = time.perf_counter()
    sets = build_cell_sets(facts, HEADLINES, 2)
    times["cells"] = time.perf_counter() - t
    params = sdc_parameters()  # include/statistics.yaml, as the DAG publishes
    t = time.perf_counter()
    tables = protected_tables(sets, params)  # protects both sets as one, then lays the tables out
    times["protect + lay out"] = time.perf_counter() - t
    t = time.perf_counter()
    size = 0
    for table in tables.values():
        size += len(_csv(table))
        buf = io.BytesIO()
        pq.write_table(table, buf)
        size += buf.tell()
    times["write"] = time.perf_counter() - t
    total = sum(times.values())

    # Peer: the same breakdowns as pandas crosstabs, no disclosure control.
    t = time.perf_counter()
    df = facts.to_pandas()
    df["problems"] = df["headline_mask"].map(lambda m: bin(m).count("1"))
    for column in ("ward", "month", "age_band", "problems"):
        df.groupby(column).agg(identified=("problems", lambda s: int((s > 0).sum())),
                               eligible=("problems", lambda s: int((s >= 2).sum())),
                               assessed=("assessed", "sum"))  # fmt: skip
    df[df["problems"] >= 2].groupby(["ward", "month"]).size()
    peer = time.perf_counter() - t

    suppressed = int(sets.status.suppressed.sum() + sets.places.suppressed.sum())
    cells = len(sets.status.keys) + len(sets.places.keys)
    print(f"families counted: {facts.num_rows:,}; atoms: {len(sets.status.atoms) + len(sets.places.atoms):,};"
          f" cells: {cells}, suppressed: {suppressed}; {size / 1e3:.0f} kB written")  # fmt: skip
    for stage, seconds in times.items():
        print(f"  {stage:<20} {seconds:8.2f} s")
    print(f"  {'every table':<20} {total:8.2f} s")
    print(f"  peer: pandas crosstabs, no SDC {peer:8.2f} s  (ratio {total / peer:.1f}x)")
    # The README's benchmark table is rewritten from this line (benchmarks/readme_table.py).
    print(
        f"README-ROW: `bench_statistics.py --persons {args.persons}` | every programme statistics table"
        " (facts, cells, disclosure control, CSV + Parquet) against pandas crosstabs without SDC in the"
        f" same run | {total:.2f} s (facts {times['facts']:.2f} s,"
        f" protect and lay out {times['protect + lay out']:.2f} s,"
        f" {suppressed} cells suppressed) against {peer:.2f} s, {total / peer:.1f}x"
    )


if __name__ == "__main__":
    main()
