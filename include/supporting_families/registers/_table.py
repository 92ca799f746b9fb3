"""Append-only controller-side tables under ``register/``: read with a schema, append whole-file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
from upath import UPath

from supporting_families.store.io import read_parquet, write_parquet


def read_table(path: UPath, schema: pa.Schema) -> pa.Table:
    """The table at ``path`` cast to ``schema``, or an empty one before the first write."""
    if not path.exists():
        return schema.empty_table()
    return read_parquet(path).cast(schema)


def append_rows(path: UPath, schema: pa.Schema, rows: Sequence[Mapping[str, object]]) -> pa.Table:
    """Append ``rows`` and write the file whole (readers see the old or the new table, never a part).

    Callers run one at a time (each writing DAG has ``max_active_runs=1``; the CLI is for one officer).
    """
    table = pa.concat_tables(
        [read_table(path, schema), pa.Table.from_pylist([dict(r) for r in rows], schema=schema)]
    )
    write_parquet(table, path)
    return table


def replace_table(path: UPath, table: pa.Table) -> None:
    write_parquet(table, path)
