"""Identification in the store: read what the criteria engine needs, write what it found.

The engine (:mod:`supporting_families.identify.criteria`) works on tables; this module is its side of the
store (docs/STORE.md, every path from :mod:`supporting_families.store.layout`): the curated extracts in,
the register's persons and links (ids and dates of birth only) in, the partners' flags in, and
``identification/<as_of>/`` out. :func:`identify` is the one call the ``identify_families`` DAG makes.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.config.criteria import config_sha256, load_criteria
from supporting_families.identify.criteria import PARTNER_FLAGS_COLUMNS, Identification, evaluate
from supporting_families.identify.decisions import assessment_status
from supporting_families.registers.restrictions import (
    objecting_families,
    read_restrictions,
    restricted_persons,
)
from supporting_families.store import layout
from supporting_families.store.io import write_bytes_atomic, write_parquet

__all__ = [
    "curated_files",
    "identify",
    "latest_identification",
    "read_latest_curated",
    "read_partner_flags",
    "read_register",
    "worklist_file",
    "write_identification",
]

log = logging.getLogger(__name__)

#: Register columns the engine reads: ids and date of birth only (UK GDPR Article 5(1)(c), minimisation).
_REGISTER_COLUMNS: Final = ["person_id", "family_id", "date_of_birth"]
_LINK_COLUMNS: Final = ["source", "record_id", "person_id"]
_SUMMARY_FILE: Final = "summary.json"
_WORKLIST_FILE: Final = "worklist.parquet"


def _read(path: UPath, columns: list[str] | None = None) -> pa.Table:
    with path.open("rb") as fh:
        return pq.read_table(fh, columns=columns)


def _relative(root: UPath, path: UPath) -> str:
    """``path`` relative to the store's root, as the counts report it (``identification/<as_of>/...``)."""
    return "/".join(path.parts[len(root.parts) :])


def curated_files(store: UPath, source: str) -> dict[date, UPath]:
    """The curated files of ``source`` by extract date: ``curated/<source>/<source>_<YYYY-MM-DD>.parquet``."""
    folder = layout.curated_dir(store, source)
    if not folder.exists():
        return {}
    found: dict[date, UPath] = {}
    for path in folder.glob(f"{source}_*.parquet"):
        stem = path.name.removesuffix(".parquet").removeprefix(f"{source}_")
        try:
            found[date.fromisoformat(stem)] = path
        except ValueError:
            log.warning("curated/%s: a file name without an extract date is ignored", source)
    return found


def read_latest_curated(
    store: UPath, sources: list[str], as_of: date | None = None
) -> tuple[dict[str, pa.Table], date | None]:
    """Each source's latest curated extract (on or before ``as_of`` if given), and the latest extract date.

    Without ``as_of``, identification runs on the latest extract date among the sources, because that is
    the newest day the council has facts for; a source whose latest extract is older still contributes its
    latest snapshot (the rules are applied on that date), and the counts name sources with no extract.
    """
    tables: dict[str, pa.Table] = {}
    for source in sources:
        files = {d: p for d, p in curated_files(store, source).items() if as_of is None or d <= as_of}
        if files:
            tables[source] = _read(files[max(files)])
    dates = [pc.max(t.column("extract_date")).as_py() for t in tables.values() if t.num_rows]
    return tables, (max(dates) if dates else None)


def read_register(store: UPath) -> tuple[pa.Table, pa.Table]:
    """(persons, links) from ``register/``, with only the columns the criteria need."""
    persons = _read(layout.register_file(store, "persons"), _REGISTER_COLUMNS)
    links = _read(layout.register_file(store, "links"), _LINK_COLUMNS)
    return persons, links


def read_partner_flags(store: UPath) -> pa.Table | None:
    """Every merged partner return under ``register/partner_flags/``, or None before the first."""
    folder = layout.partner_flags_dir(store)
    if not folder.exists():
        return None
    paths = sorted(folder.glob("*.parquet"), key=lambda p: p.name)
    if not paths:
        return None
    tables = []
    for path in paths:
        with path.open("rb") as fh:
            parquet = pq.ParquetFile(fh)
            # Files merged before answers were recorded lack answered_at: read what they have, and the
            # permissive concatenation (or the engine) fills it with nulls, which supersede nothing.
            have = set(parquet.schema_arrow.names)
            tables.append(parquet.read(columns=[c for c in PARTNER_FLAGS_COLUMNS if c in have]))
    return pa.concat_tables(tables, promote_options="permissive")


def write_identification(
    identification: Identification, store: UPath, criteria_sha256: str | None = None
) -> dict[str, str]:
    """Write the three tables and a summary (counts only) under ``identification/<as_of>/``.

    Each file is replaced whole (readers see the old or the new file), so re-running a day's identification
    gives the same files. Returns the written paths, relative to the store.
    """
    folder = layout.identification_dir(store, identification.as_of)
    written: dict[str, str] = {}
    for name, table, path in (
        ("person_flags", identification.person_flags, folder / "person_flags.parquet"),
        ("family_problems", identification.family_problems, folder / "family_problems.parquet"),
        ("worklist", identification.worklist, worklist_file(store, identification.as_of)),
    ):
        write_parquet(table, path)
        written[name] = _relative(store, path)
    summary = {**identification.counts, "criteria_sha256": criteria_sha256}
    path = folder / _SUMMARY_FILE
    write_bytes_atomic(path, json.dumps(summary, indent=2, sort_keys=True).encode("utf-8") + b"\n")
    written["summary"] = _relative(store, path)
    return written


def worklist_file(store: UPath, as_of: date) -> UPath:
    """The practitioners' worklist of the identification of ``as_of``; written last of the three tables."""
    return layout.identification_dir(store, as_of) / _WORKLIST_FILE


def latest_identification(store: UPath) -> date | None:
    """The as_of of the newest identification written under the store, or None."""
    folder = layout.identification_root(store)
    if not folder.exists():
        return None
    days = []
    for path in folder.iterdir():
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.name) and (path / _WORKLIST_FILE).exists():
            days.append(date.fromisoformat(path.name))
    return max(days) if days else None


def restricted_for_identification(store: UPath, persons: pa.Table, today: date) -> pa.Array:
    """Persons identification leaves out: a restriction, objection or consent withdrawal in force today, or
    a member of a family whose practitioner recorded that it objected.

    The notice: the right "to object and restrict further processing of your data; however, this may affect
    service delivery to you". Identification is further processing, so these persons are not flagged and
    their family is worked out without them (docs/ARCHITECTURE.md, "Rights"). Their register entry stays:
    keeping the data is storage, which a restriction allows (UK GDPR Article 18(2)).
    """
    blocked = restricted_persons(read_restrictions(store), today)
    families = objecting_families(assessment_status(store))
    if len(families):
        members = persons.filter(pc.is_in(persons["family_id"], value_set=families))["person_id"]
        blocked = pc.unique(pa.concat_arrays([blocked, members.combine_chunks().cast(pa.string())]))
    return blocked


def identify(
    store: UPath,
    sources: list[str],
    as_of: date | None = None,
    config_path: Path | str | None = None,
    *,
    today: date | None = None,
) -> dict[str, Any]:
    """Read the curated extracts, the register and any partner flags; evaluate; write; return counts.

    ``as_of`` defaults to the latest extract date among the curated files. The one call the
    ``identify_families`` DAG makes; what it returns is numbers only, safe for XCom and logs.
    """
    config = load_criteria(config_path)
    curated, latest = read_latest_curated(store, sources, as_of)
    as_of = as_of or latest
    if as_of is None:
        raise ValueError("no curated extracts under curated/: ingest before identifying families")
    persons, links = read_register(store)
    partner_flags = read_partner_flags(store)
    blocked = restricted_for_identification(store, persons, today or datetime.now(UTC).date())
    left_out = 0
    if len(blocked):
        keep = pc.invert(pc.is_in(persons["person_id"], value_set=blocked))
        left_out = persons.num_rows - int(pc.sum(keep.cast(pa.int64())).as_py() or 0)
        persons = persons.filter(keep)
        links = links.filter(pc.invert(pc.is_in(links["person_id"], value_set=blocked)))
        if partner_flags is not None:
            partner_flags = partner_flags.filter(
                pc.invert(pc.is_in(partner_flags["person_id"], value_set=blocked))
            )
    result = evaluate(curated, links, persons, as_of, config, partner_flags)
    written = write_identification(result, store, config_sha256(config_path))
    return {**result.counts, "left_out_by_restriction": left_out, "written": written}
