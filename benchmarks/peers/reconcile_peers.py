"""Reconcile a partner's return against what was sent with two peer tools, for comparison with ours.

    benchmarks/peers/.venv/bin/python benchmarks/peers/reconcile_peers.py DIR [--repeat 2]
        [--reference-column person_ref] [--status-column match_status] [--rejected address_not_confirmed]

Runs in the peers' environment (``make bench-peers``), never the product's. ``DIR`` holds two Parquet
files, as benchmarks/bench_reconcile.py writes them:

* ``sent.parquet``: the delivery's references (``person_id``, ``person_ref``), one row per sent person;
* ``return.parquet``: the partner's return in file order (the reference, its status, its flags).

Each return row gets one of the five classes of supporting_families.receive.reconcile, with the same
rules: a reference's **first** row (in file order) is ``matched`` or ``rejected_by_partner`` (by its
status) when the reference was sent and ``unexpected`` when it was not; every later row of a reference is
a ``duplicate``; a sent reference on no row is ``no_trace``. Two peers compute them:

``datacompy``
    ``datacompy.PolarsCompare(sent, return, join_columns=reference)``. On duplicate join keys datacompy
    numbers the rows of each key in row order and joins on (key, number), so a reference's first return
    row pairs with its sent row: the intersection is matched or rejected (by status), the sent-only rows
    are no_trace, and the return-only rows are duplicates, or unexpected for a reference never sent
    (counted once per reference).
``duckdb``
    one SQL statement over the two tables loaded into DuckDB: a window numbers each reference's rows in
    file order, a left join to the sent list classifies them, and an anti join adds no_trace. It
    materialises the classified table (one row per sent reference and per later row), as ours does.

Timed per repeat, wall seconds: ``read`` (both Parquet files into the tool's memory: the product has the
return in memory already, from validation, and reads only the references) and ``classify``. Printed on
stdout: one JSON object with each peer's best times and its per-class counts, so the caller can check that
they agree with ours. Only counts and times are printed, never a reference.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from datacompy import PolarsCompare

CLASSES = ("matched", "rejected_by_partner", "no_trace", "unexpected", "duplicate")


def datacompy_read(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_parquet(folder / "sent.parquet"), pl.read_parquet(folder / "return.parquet")


def datacompy_classify(
    tables: tuple[pl.DataFrame, pl.DataFrame], reference: str, status: str | None, rejected: list[str]
) -> dict[str, int]:
    sent, returned = tables
    compare = PolarsCompare(
        sent, returned, join_columns=reference, df1_name="sent", df2_name="ret", cast_column_names_lower=False
    )
    both = compare.intersect_rows
    if status is None or not rejected:
        rejected_rows = 0
    else:
        # Non-join columns carry the frame's name as a suffix in the intersection; a null status is not a
        # rejection (as in ours).
        rejected_rows = both.select(pl.col(f"{status}_ret").is_in(rejected).fill_null(False).sum()).item()
    extra = compare.df2_unq_rows.get_column(reference)
    unexpected = extra.filter(~extra.is_in(sent.get_column(reference))).n_unique()
    return {
        "matched": len(both) - rejected_rows,
        "rejected_by_partner": rejected_rows,
        "no_trace": len(compare.df1_unq_rows),
        "unexpected": unexpected,
        "duplicate": len(extra) - unexpected,
    }


def duckdb_read(folder: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # preserve_insertion_order is DuckDB's default; file_row_number makes "file order" explicit anyway.
    con.execute("CREATE TABLE sent AS SELECT * FROM read_parquet(?)", [str(folder / "sent.parquet")])
    con.execute(
        "CREATE TABLE ret AS SELECT * FROM read_parquet(?, file_row_number = true)",
        [str(folder / "return.parquet")],
    )
    return con


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_classify(
    con: duckdb.DuckDBPyConnection, reference: str, status: str | None, rejected: list[str]
) -> dict[str, int]:
    ref = _ident(reference)
    if status is None or not rejected:
        is_rejected = "false"
    else:
        # coalesce: a null status is not a rejection (as in ours).
        is_rejected = f"coalesce(list_contains($rejected, r.{_ident(status)}), false)"
    con.execute("DROP TABLE IF EXISTS classified")
    con.execute(
        f"""
        CREATE TEMP TABLE classified AS
        WITH ranked AS (
            SELECT r.{ref} AS reference, {is_rejected} AS is_rejected, r.file_row_number + 2 AS row_number,
                   row_number() OVER (PARTITION BY r.{ref} ORDER BY r.file_row_number) AS occurrence
            FROM ret r
        )
        SELECT k.reference, s.person_id,
               CASE WHEN k.occurrence > 1 THEN 'duplicate'
                    WHEN s.{ref} IS NULL THEN 'unexpected'
                    WHEN k.is_rejected THEN 'rejected_by_partner'
                    ELSE 'matched' END AS class,
               k.row_number
        FROM ranked k LEFT JOIN sent s ON s.{ref} = k.reference
        UNION ALL
        SELECT s.{ref}, s.person_id, 'no_trace', NULL
        FROM sent s ANTI JOIN ret r ON r.{ref} = s.{ref}
        """,  # noqa: S608 -- the only interpolations are quoted column names given by the caller
        {"rejected": rejected} if "$rejected" in is_rejected else None,
    )
    rows = con.execute("SELECT class, count(*) FROM classified GROUP BY class").fetchall()
    tally = dict.fromkeys(CLASSES, 0) | {str(name): int(n) for name, n in rows}
    return tally


def timed(read: Callable[[], Any], classify: Callable[[Any], dict[str, int]], repeat: int) -> dict[str, Any]:
    reads, classifies = [], []
    counts: dict[str, int] = {}
    for _ in range(repeat):
        t = time.perf_counter()
        loaded = read()
        reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        counts = classify(loaded)
        classifies.append(time.perf_counter() - t)
        if isinstance(loaded, duckdb.DuckDBPyConnection):
            loaded.close()
    return {
        "read_seconds": min(reads),
        "classify_seconds": min(classifies),
        "classify_runs": classifies,
        "counts": {name: counts[name] for name in CLASSES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="holds sent.parquet and return.parquet")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--reference-column", default="person_ref")
    parser.add_argument("--status-column", default="match_status", help="empty: the return has none")
    parser.add_argument("--rejected", action="append", help="a status counted as rejected (repeatable)")
    parser.add_argument("--peer", action="append", choices=["datacompy", "duckdb"], help="default: both")
    args = parser.parse_args()
    reference, status = args.reference_column, args.status_column or None
    rejected = args.rejected if args.rejected is not None else ["address_not_confirmed"]
    peers = args.peer or ["datacompy", "duckdb"]
    out: dict[str, Any] = {"repeat": args.repeat, "peers": {}}
    if "datacompy" in peers:
        result = timed(
            lambda: datacompy_read(args.folder),
            lambda t: datacompy_classify(t, reference, status, rejected),
            args.repeat,
        )
        out["peers"]["datacompy"] = {
            "version": f"datacompy {version('datacompy')}, polars {version('polars')}",
            **result,
        }
    if "duckdb" in peers:
        result = timed(
            lambda: duckdb_read(args.folder),
            lambda con: duckdb_classify(con, reference, status, rejected),
            args.repeat,
        )
        out["peers"]["duckdb"] = {"version": f"duckdb {version('duckdb')}", **result}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
