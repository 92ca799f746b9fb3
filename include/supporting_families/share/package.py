"""Minimise a share to its agreement's fields and package it: the partner's CSV and a manifest.

Minimisation fails closed (UK GDPR Article 5(1)(c), data minimisation): the file holds exactly the
agreement's fields in the agreement's order. Anything else — a field missing from the input, a column the
agreement does not list reaching the packager, a field the register does not hold — stops the run before
a byte is written.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from supporting_families.config.agreements import Agreement
from supporting_families.progress import Progress
from supporting_families.store.io import atomic_writer
from supporting_families.store.schemas import SHAREABLE_FIELDS

MANIFEST_SCHEMA_VERSION = 1

# A cell starting with one of these is read as a formula by spreadsheet programs (CSV injection, OWASP):
# such cells get a leading apostrophe, which spreadsheets show as text and strip from the value.
_FORMULA_START = r"^[=+\-@\t\r]"


#: Rows per slice the packager converts and writes at a time (about 30 MB of CSV for the DWP fields).
_PACKAGE_SLICE_ROWS = 262_144

log = logging.getLogger(__name__)


class MinimisationError(ValueError):
    """The share does not have exactly the agreement's fields. Names columns, never values."""


def minimise(table: pa.Table, agreement: Agreement) -> pa.Table:
    """Exactly ``agreement.fields``, in order, from a wider share view; fails if any is missing."""
    unknown = [f for f in agreement.fields if f not in SHAREABLE_FIELDS]
    if unknown:
        raise MinimisationError(f"{agreement.id}: fields not in the register schema: {unknown}")
    missing = [f for f in agreement.fields if f not in table.column_names]
    if missing:
        raise MinimisationError(f"{agreement.id}: the share view lacks agreed fields {missing}")
    return table.select(list(agreement.fields))


def check_minimised(table: pa.Table, agreement: Agreement) -> None:
    """The packager's own guard: the table's columns are the agreement's fields, no more, no fewer."""
    if tuple(table.column_names) != agreement.fields:
        extra = [c for c in table.column_names if c not in agreement.fields]
        missing = [f for f in agreement.fields if f not in table.column_names]
        raise MinimisationError(
            f"{agreement.id}: refusing to package columns that differ from the agreement "
            f"(extra: {extra}, missing: {missing}, order must be {list(agreement.fields)})"
        )


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """Prefix text cells that a spreadsheet would evaluate as a formula with an apostrophe."""

    def neutralised(column: pa.ChunkedArray) -> pa.ChunkedArray:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return column
        risky = pc.match_substring_regex(column, _FORMULA_START)
        # Most columns have no such cell: they are passed on as they are, not copied cell by cell.
        if not pc.any(risky).as_py():
            return column
        risky = pc.fill_null(risky, False)
        return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)

    # Arrow's kernels release the GIL: the columns are checked on both cores.
    with ThreadPoolExecutor(max_workers=min(len(table.columns), os.cpu_count() or 1) or 1) as pool:
        columns = list(pool.map(neutralised, table.columns))
    return pa.table(columns, names=table.column_names)


def to_csv_text_columns(table: pa.Table) -> pa.Table:
    """Dates as ISO 8601 text, everything else as it is: the partner's file has one unambiguous form."""
    columns = []
    for column in table.columns:
        if pa.types.is_date(column.type):
            column = pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write_partner_csv(table: pa.Table, agreement: Agreement, path: Path) -> int:
    """Write the partner's CSV (UTF-8, header, RFC 4180 quoting); returns the number of rows."""
    check_minimised(table, agreement)
    options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    progress = Progress(log, "packaging", table.num_rows)
    with atomic_writer(path) as handle:
        if not table.num_rows:
            pacsv.write_csv(neutralise_formulas(to_csv_text_columns(table)), handle, write_options=options)
        # In slices: the file is the same bytes as one write, without a text copy of the whole table.
        writer: pacsv.CSVWriter | None = None
        for start in range(0, table.num_rows, _PACKAGE_SLICE_ROWS):
            ready = neutralise_formulas(to_csv_text_columns(table.slice(start, _PACKAGE_SLICE_ROWS)))
            if writer is None:
                writer = pacsv.CSVWriter(handle, ready.schema, write_options=options)
            writer.write_table(ready)
            progress.advance(ready.num_rows)
        if writer is not None:
            writer.close()
    progress.finish()
    return int(table.num_rows)


@dataclass(frozen=True)
class Manifest:
    """What was packaged for one delivery: counts and hashes, never a row."""

    schema_version: int
    agreement_id: str
    agreement_version: int
    agreement_sha256: str | None
    partner: str
    run_id: str
    fields: tuple[str, ...]
    row_count: int
    key_version: int
    plaintext_name: str
    plaintext_sha256: str
    ciphertext_name: str | None
    ciphertext_sha256: str | None
    created_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["fields"] = tuple(data["fields"])
        return cls(**data)


def new_manifest(
    agreement: Agreement,
    run_id: str,
    row_count: int,
    plaintext_name: str,
    plaintext_sha256: str,
    created_at: datetime | None = None,
) -> Manifest:
    return Manifest(
        schema_version=MANIFEST_SCHEMA_VERSION,
        agreement_id=agreement.id,
        agreement_version=agreement.version,
        agreement_sha256=agreement.source_sha256,
        partner=agreement.partner.code,
        run_id=run_id,
        fields=agreement.fields,
        row_count=row_count,
        key_version=agreement.pseudonymisation.key_version,
        plaintext_name=plaintext_name,
        plaintext_sha256=plaintext_sha256,
        ciphertext_name=None,
        ciphertext_sha256=None,
        created_at=(created_at or datetime.now(UTC)).isoformat(),
    )
