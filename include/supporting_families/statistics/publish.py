"""Read the store, protect the tables, write one release to ``published/statistics/<release_id>/``.

Nothing leaves the controller's area before disclosure control: the family facts are built and protected
in memory, and only the protected, rounded cells are written. Each file carries its SDC parameters (columns
of every CSV and Parquet row, the chart's caption, ``release.json``), and ``release.json`` holds the notes
(who is not counted) and the SHA-256 of every file, which the ``aggregate_release`` ledger entry records.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.audit.entries import LedgerEntry, NewEntry, idempotency_key
from supporting_families.config.criteria import load_criteria
from supporting_families.config.statistics import load_statistics
from supporting_families.identify.decisions import assessment_status
from supporting_families.identify.store import latest_identification, restricted_for_identification
from supporting_families.statistics.sdc import (
    CellSet,
    SdcParameters,
    primary_suppression,
    protect_linked,
    round_to_base,
)
from supporting_families.statistics.tables import (
    AGE_BANDS,
    COLUMNS,
    TOTAL,
    TableSets,
    build_cell_sets,
    family_facts,
)
from supporting_families.store import layout
from supporting_families.store.io import write_bytes_atomic

__all__ = [
    "NOTES",
    "Release",
    "aggregate_release_entry",
    "exchange_table",
    "protected_tables",
    "publish_statistics",
    "read_family_facts",
]

log = logging.getLogger(__name__)

#: The notes every release carries (release.json and the chart's caption).
NOTES: Final = (
    "Counts of families. Persons with a restriction, objection or consent withdrawal in force, and every"
    " member of a family that objected, are not counted: a family is left out when any member is. Erased"
    " persons are not in the register and are not counted.",
    "Identified: at least one headline problem in the latest identification. Eligible: at least the"
    " criteria's minimum number of headline problems. Assessed: a practitioner recorded that the family"
    " meets the criteria.",
    "Cells marked [c] are suppressed: counts below the threshold (primary) and the cells needed so that"
    " none can be worked out from the others (secondary). Other counts are rounded to the base; totals are"
    " rounded from unrounded data, so they may not equal the sum of the rounded cells.",
    "Partner exchanges count persons' rows sent and matched per partner and month; rows and match rates"
    " below the threshold are suppressed; deliveries count files.",
)
SUPPRESSED: Final = "[c]"
_TABLE_ROW_DIM: Final = {
    "headline_problem": "headline_problem",
    "number_of_problems": "number_of_problems",
    "ward": "ward",
    "age_band": "age_band",
    "month": "month",
    "ward_by_month": "ward",
}
_LONG_SCHEMA: Final = pa.schema(
    [
        pa.field("table", pa.string(), nullable=False),
        pa.field("row", pa.string(), nullable=False),
        pa.field("column", pa.string(), nullable=False),
        pa.field("value", pa.int64()),  # null: suppressed
        pa.field("marker", pa.string(), nullable=False),  # "[c]" when suppressed, else ""
        pa.field("sdc_threshold", pa.int64(), nullable=False),
        pa.field("sdc_rounding_base", pa.int64(), nullable=False),
    ]
)


def _read_parquet(path: UPath, columns: list[str]) -> pa.Table:
    with path.open("rb") as fh:
        return pq.read_table(fh, columns=columns)


def _read_wards(store: UPath) -> pa.Table:
    """The council's lookup; without one every family's ward is "Not known" (and the release says so)."""
    path = layout.ward_lookup_file(store)
    if not path.exists():
        return pa.table({"postcode": pa.array([], pa.string()), "ward": pa.array([], pa.string())})
    text = path.read_bytes().decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"postcode", "ward"} <= set(reader.fieldnames):
        raise ValueError(f"{path.name}: row 1: the header must name the columns postcode and ward")
    postcodes, wards = [], []
    for line, row in enumerate(reader, start=2):
        if not (row.get("postcode") or "").strip() or not (row.get("ward") or "").strip():
            raise ValueError(f"{path.name}: row {line}: postcode and ward are required")
        postcodes.append(row["postcode"].strip())
        wards.append(row["ward"].strip())
    return pa.table({"postcode": postcodes, "ward": wards})


def read_family_facts(
    store: UPath, today: date, criteria_path: Path | str | None = None
) -> tuple[pa.Table, date, Sequence[str], int]:
    """(facts, as_of, headline problems, min_problems) from the register and the identifications."""
    as_of = latest_identification(store)
    if as_of is None:
        raise ValueError("no identification under identification/: identify families before the statistics")
    config = load_criteria(criteria_path)
    persons = _read_parquet(
        layout.register_file(store, "persons"), ["person_id", "family_id", "date_of_birth", "postcode"]
    )
    latest = layout.identification_dir(store, as_of) / "family_problems.parquet"
    problems = _read_parquet(latest, ["family_id", "headline"])
    first: dict[str, date] = {}
    root = layout.identification_root(store)
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        path = folder / "family_problems.parquet"
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.name) or not path.exists():
            continue
        day = date.fromisoformat(folder.name)
        for family in pc.unique(_read_parquet(path, ["family_id"]).column("family_id")).to_pylist():
            first.setdefault(family, day)
    first_seen = pa.table(
        {
            "family_id": pa.array(list(first), pa.string()),
            "first_as_of": pa.array(list(first.values()), pa.date32()),
        }
    )
    status = assessment_status(store)
    met = status.filter(pc.equal(status.column("decision"), "meets_criteria"))
    assessed = met.select(["family_id", "identification_as_of"])
    blocked = restricted_for_identification(store, persons, today)
    headlines = list(config.headline_problems)
    facts = family_facts(
        persons, problems, first_seen, assessed, _read_wards(store), blocked, headlines, as_of
    )
    return facts, as_of, headlines, config.min_problems


def _long(cells: CellSet, params: SdcParameters, keep: Iterable[str]) -> pa.Table:
    """The protected cells of ``cells`` as rows: rounded value, or null and ``[c]`` when suppressed."""
    wanted = set(keep)
    values = round_to_base(cells.values, params.rounding_base)
    rows: dict[str, list[Any]] = {name: [] for name in _LONG_SCHEMA.names}
    for (table, row, column), value, hidden in zip(cells.keys, values, cells.suppressed, strict=True):
        if table not in wanted:
            continue
        rows["table"].append(table)
        rows["row"].append(row)
        rows["column"].append(column)
        rows["value"].append(None if hidden else int(value))
        rows["marker"].append(SUPPRESSED if hidden else "")
    n = len(rows["table"])
    rows["sdc_threshold"] = [params.threshold] * n
    rows["sdc_rounding_base"] = [params.rounding_base] * n
    return pa.table(rows, schema=_LONG_SCHEMA)


def protected_tables(sets: TableSets, params: SdcParameters) -> dict[str, pa.Table]:
    """Protect both table sets together and lay out every published table (each with its Total rows)."""
    protect_linked([sets.status, sets.places], params)
    totals = _long(sets.status, params, ["totals"])
    out: dict[str, pa.Table] = {}
    for table, cells in (
        ("headline_problem", sets.status),
        ("number_of_problems", sets.status),
        ("ward", sets.places),
        ("age_band", sets.places),
        ("month", sets.places),
        ("ward_by_month", sets.places),
    ):
        body = _long(cells, params, [table])
        if table != "ward_by_month":
            total = totals.set_column(0, "table", pa.array([table] * totals.num_rows, pa.string()))
            total = total.cast(_LONG_SCHEMA)
            body = pa.concat_tables([body, total])
        out[table] = body
    return out


def exchange_table(entries: Iterable[LedgerEntry], params: SdcParameters) -> pa.Table:
    """Deliveries, rows sent, rows matched and the match rate per partner and month, from the ledger.

    Published per partner and month only, without totals, so no cell is a sum of others and the threshold
    rule alone protects them; a match rate is shown only when its matched and unmatched rows both pass it.
    """
    cells: dict[tuple[str, str], list[int]] = {}
    for entry in entries:
        key = (entry.occurred_at.astimezone(UTC).strftime("%Y-%m"), entry.partner or "-")
        cell = cells.setdefault(key, [0, 0, 0, 0])  # deliveries, rows, answered, matched
        if entry.kind == "disclosure":
            cell[0] += 1
            cell[1] += entry.row_count or 0
        elif entry.kind == "reconciliation" and entry.details.get("outcome") == "reconciled":
            d = entry.details
            cell[2] += sum(int(d.get(k, 0)) for k in ("matched", "rejected_by_partner", "no_trace"))
            cell[3] += int(d.get("matched", 0))
    rows: dict[str, list[Any]] = {name: [] for name in _LONG_SCHEMA.names}

    def put(month: str, partner: str, column: str, value: int | None) -> None:
        rows["table"].append("partner_exchanges")
        rows["row"].append(f"{month}/{partner}")
        rows["column"].append(column)
        rows["value"].append(value)
        rows["marker"].append(SUPPRESSED if value is None else "")

    for (month, partner), (deliveries, sent, answered, matched) in sorted(cells.items()):
        put(month, partner, "deliveries", deliveries)
        for column, count in (("rows_sent", sent), ("rows_matched", matched)):
            hidden = bool(primary_suppression(np.array([count]), params.threshold)[0])
            put(
                month,
                partner,
                column,
                None if hidden else int(round_to_base(np.array([count]), params.rounding_base)[0]),
            )
        unmatched = answered - matched
        ok = answered and all(c == 0 or c >= params.threshold for c in (matched, unmatched))
        put(month, partner, "match_rate_percent", round(100 * matched / answered) if ok else None)
    n = len(rows["table"])
    rows["sdc_threshold"] = [params.threshold] * n
    rows["sdc_rounding_base"] = [params.rounding_base] * n
    return pa.table(rows, schema=_LONG_SCHEMA)


def _csv(table: pa.Table) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(["" if row[c] is None else row[c] for c in table.column_names])
    return buf.getvalue().encode("utf-8")


def _parquet(table: pa.Table, params: SdcParameters) -> bytes:
    meta = {b"sdc_" + k.encode(): str(v).encode() for k, v in params.as_dict().items()}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf, compression="zstd")
    return buf.getvalue()


def bar_chart_svg(title: str, labels: Sequence[str], values: Sequence[int | None], caption: str) -> bytes:
    """A horizontal bar chart as plain SVG (no script, no CDN); a suppressed bar is drawn as ``[c]``."""
    width, left, bar, gap = 640, 220, 18, 6
    top = 40
    height = top + len(labels) * (bar + gap) + 50
    biggest = max([v for v in values if v is not None] or [1]) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * (bar + gap)
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{left + 4}" y="{y + 13}" fill="#555">{SUPPRESSED}</text>')
            continue
        w = round((width - left - 60) * value / biggest)
        parts.append(f'<rect x="{left}" y="{y}" width="{w}" height="{bar}" fill="#1d70b8"/>')
        parts.append(f'<text x="{left + w + 4}" y="{y + 13}">{value}</text>')
    parts.append(f'<text x="10" y="{height - 20}" fill="#555">{escape(caption)}</text>')
    parts.append("</svg>")
    return ("\n".join(parts) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Release:
    """What one publication wrote: counts, parameters and hashes only (safe for XCom, logs and ledger)."""

    release_id: str
    as_of_month: str
    params: SdcParameters
    files: dict[str, str]  # file name -> SHA-256
    release_sha256: str
    cells: int
    suppressed: int

    def summary(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "as_of_month": self.as_of_month,
            "sdc": self.params.as_dict(),
            "files": len(self.files),
            "cells": self.cells,
            "suppressed": self.suppressed,
        }


def sdc_parameters(path: Path | str | None = None) -> SdcParameters:
    """The disclosure-control parameters of ``statistics.yaml`` (by default ``include/statistics.yaml``)."""
    control = load_statistics(path).disclosure_control
    return SdcParameters(threshold=control.threshold, rounding_base=control.rounding_base)


def publish_statistics(
    store: UPath,
    exchanges: Iterable[LedgerEntry],
    params: SdcParameters | None = None,
    *,
    today: date | None = None,
    criteria_path: Path | str | None = None,
) -> Release:
    """The one call the ``programme_statistics`` DAG makes. Idempotent: the release id is the hash of the
    protected tables, so the same facts give the same folder and files. ``params`` defaults to
    ``include/statistics.yaml``'s, the council's setting."""
    params = params or sdc_parameters()
    today = today or datetime.now(UTC).date()
    facts, as_of, headlines, min_problems = read_family_facts(store, today, criteria_path)
    sets = build_cell_sets(facts, headlines, min_problems)
    tables = protected_tables(sets, params)
    tables["partner_exchanges"] = exchange_table(exchanges, params)
    files: dict[str, bytes] = {}
    for name, table in tables.items():
        files[f"{name}.csv"] = _csv(table)
        files[f"{name}.parquet"] = _parquet(table, params)
    ward = tables["ward"].filter(pc.equal(tables["ward"].column("column"), "eligible"))
    caption = f"SDC: threshold {params.threshold}, rounded to base {params.rounding_base}; [c] suppressed."
    files["eligible_by_ward.svg"] = bar_chart_svg(
        "Eligible families by ward", ward.column("row").to_pylist(), ward.column("value").to_pylist(), caption
    )
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    release_id = "r" + hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:20]
    manifest = {
        "release_id": release_id,
        "as_of_month": as_of.strftime("%Y-%m"),
        "sdc": params.as_dict(),
        "notes": list(NOTES),
        "age_bands": list(AGE_BANDS),
        "columns": list(COLUMNS),
        "total_label": TOTAL,
        "ward_lookup": "supplied"
        if layout.ward_lookup_file(store).exists()
        else "missing: every ward Not known",
        "files": hashes,
    }
    body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    folder = layout.statistics_release_dir(store, release_id)
    for name, data in files.items():
        write_bytes_atomic(folder / name, data)
    write_bytes_atomic(folder / "release.json", body)  # last: a release with release.json is complete
    suppressed = int(sets.status.suppressed.sum() + sets.places.suppressed.sum())
    log.info(
        "published statistics release %s: %d files, %d cells suppressed", release_id, len(files), suppressed
    )
    return Release(
        release_id=release_id,
        as_of_month=as_of.strftime("%Y-%m"),
        params=params,
        files=hashes,
        release_sha256=hashlib.sha256(body).hexdigest(),
        cells=len(sets.status.keys) + len(sets.places.keys),
        suppressed=suppressed,
    )


def aggregate_release_entry(
    release: Release, *, dag_id: str, run_id: str, task_id: str, triggered_by: str | None = None
) -> NewEntry:
    """The ``aggregate_release`` ledger entry: which tables, the SDC parameters, every file's SHA-256."""
    return NewEntry(
        kind="aggregate_release",
        occurred_at=datetime.now(UTC),
        file_name="release.json",
        plaintext_sha256=release.release_sha256,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        triggered_by=triggered_by,
        details={
            "release_id": release.release_id,
            "as_of_month": release.as_of_month,
            "sdc": {"threshold": release.params.threshold, "rounding_base": release.params.rounding_base},
            "tables": {name.replace(".", "_"): digest for name, digest in release.files.items()},
            "cells": release.cells,
            "suppressed": release.suppressed,
        },
        idempotency_key=idempotency_key("aggregate_release", release.release_id),
    )
