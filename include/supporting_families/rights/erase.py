"""Erasure: the person leaves every area of the store that holds personal data, and does not come back.

The notice: "You have a right to request to have your data deleted where there is no compelling reason
for its continued processing and provided that there are no legitimate grounds for retaining it" (UK GDPR
Article 17). A legal hold on the person, or on an agreement that disclosed them, is such a ground: the
request is refused with the hold's reason, and nothing is erased (:func:`erasure_blockers`).

Two parts (docs/ARCHITECTURE.md, "Erasure", says which file gets which treatment):

* :func:`erase_now`, at the request: a tombstone of the person's identifying keys; the person out of the
  register (persons, links, id map, retired ids, restrictions, corrections, the request register's person
  id), the curated tables, the identification snapshots, the partners' flags, the controller-side copies
  (re-sealed without them) and the reference lists of deliveries and notices. The partners that received
  them are worked out first, for the erasure notices.
* :func:`compact`, the bulk files that hold many people and cannot be rewritten in place, run straight after
  by the ``rights_erasure`` DAG (and again by every later erasure, so a failed run is caught up): landing
  extracts already ingested are purged (their rows are curated; a pending one is filtered by the tombstone
  at ingest); quarantined ingest files of the person's sources that hold their record ids are deleted;
  partner-encrypted archives of deliveries that included them are deleted (the sealed copy keeps what was
  sent to the others); returns answering those deliveries lose the person's references from
  ``classified.parquet`` and their encrypted originals; quarantined returns of those deliveries are
  deleted.

Every function returns counts and a SHA-256 of the sorted list of paths it changed, for one ``deletion``
ledger entry: never a name or a path holding one.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.identify.store import curated_files
from supporting_families.registers import add_tombstones, holds_on_person, read_holds, read_requests
from supporting_families.registers.requests import requests_path
from supporting_families.rights.history import person_deliveries
from supporting_families.share.delivery import SENT_COPY, Delivery
from supporting_families.store.io import (
    delete_file,
    read_parquet,
    subfolders,
    write_bytes_atomic,
    write_parquet,
)
from supporting_families.store.keystore import KeyShredded, KeyStore, period_of
from supporting_families.store.layout import (
    IDENTIFICATION,
    INGEST_REPORTS,
    NOTICES,
    QUARANTINE,
    RETURNS,
    register_dir,
    register_file,
    rights_dir,
)
from supporting_families.store.sealed import (
    open_bytes,
    read_sealed_table,
    seal_bytes,
    sealed_period,
    write_sealed_table,
)

PLAN_FILE = "erasure_plan.sealed"


class ErasureRefused(RuntimeError):
    """A legal hold applies: nothing was erased. The message names the hold's reason code only."""


@dataclass
class Changes:
    """What one part of an erasure changed, by store area: counts and the paths (hashed for the ledger)."""

    rows_removed: dict[str, int] = field(default_factory=dict)
    files_rewritten: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)

    def removed(self, area: str, n: int) -> None:
        if n:
            key = area.replace("/", "__")  # the ledger's detail keys are snake_case
            self.rows_removed[key] = self.rows_removed.get(key, 0) + n

    def merge(self, other: Changes) -> None:
        for area, n in other.rows_removed.items():
            self.rows_removed[area] = self.rows_removed.get(area, 0) + n
        self.files_rewritten += other.files_rewritten
        self.files_deleted += other.files_deleted

    def paths_sha256(self) -> str:
        listing = "\n".join(sorted(self.files_rewritten) + sorted(f"deleted {p}" for p in self.files_deleted))
        return hashlib.sha256(listing.encode()).hexdigest()

    def counts(self) -> dict[str, Any]:
        return {
            "rows_removed": dict(sorted(self.rows_removed.items())),
            "files_rewritten": len(self.files_rewritten),
            "files_deleted": len(self.files_deleted),
            "paths_sha256": self.paths_sha256(),
        }


@dataclass(frozen=True)
class ErasurePlan:
    """Who received the person, worked out before anything is erased (the notices need it)."""

    person_id: str
    family_id: str | None
    records: pa.Table  # the person's source records: source, record_id and identity columns
    deliveries: list[tuple[str, str, list[str]]]  # (agreement_id, delivery_id, person_refs)

    @property
    def agreements(self) -> list[str]:
        return sorted({a for a, _, _ in self.deliveries})

    def refs_by_agreement(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for agreement_id, _, refs in self.deliveries:
            out.setdefault(agreement_id, [])
            out[agreement_id] += [r for r in refs if r not in out[agreement_id]]
        return out

    def all_refs(self) -> set[str]:
        return {r for _, _, refs in self.deliveries for r in refs}


def _rel(store: UPath, path: UPath) -> str:
    return "/".join(path.parts[len(store.parts) :])


def _read(path: UPath, filters: list[tuple[str, str, Any]] | None = None) -> pa.Table:
    with path.open("rb") as fh:
        return pq.read_table(fh, filters=filters)


def plan_erasure(store: UPath, person_id: str, keys: KeyStore) -> ErasurePlan:
    persons = register_file(store, "persons")
    record = _read(persons, [("person_id", "==", person_id)]) if persons.exists() else pa.table({})
    family_id = str(record["family_id"][0]) if record.num_rows else None
    links_path = register_file(store, "links")
    links = _read(links_path, [("person_id", "==", person_id)]) if links_path.exists() else pa.table({})
    parts = []
    by_source: dict[str, list[str]] = {}
    for row in links.to_pylist() if links.num_rows else []:
        by_source.setdefault(str(row["source"]), []).append(str(row["record_id"]))
    for source, ids in by_source.items():
        for path in curated_files(store, source).values():
            table = _read(path, [("record_id", "in", ids)])
            keep = [
                c
                for c in ("source", "record_id", "given_name", "family_name", "date_of_birth")
                if c in table.column_names
            ]
            parts.append(table.select(keep))
    if record.num_rows:
        # The register's own identity too: the person may have been linked from a record since rewritten.
        parts.append(
            pa.table(
                {
                    "source": ["register"],
                    "record_id": [person_id],
                    "given_name": record["given_name"],
                    "family_name": record["family_name"],
                    "date_of_birth": record["date_of_birth"],
                }
            )
        )
    records = (
        pa.concat_tables(parts, promote_options="permissive")
        if parts
        else pa.table({"source": pa.array([], pa.string()), "record_id": pa.array([], pa.string())})
    )
    return ErasurePlan(person_id, family_id, records, person_deliveries(store, person_id, keys))


def erasure_blockers(store: UPath, plan: ErasurePlan, on: date) -> list[str]:
    """The reason codes of the legal holds that stop this erasure (empty: it may go ahead)."""
    holds = holds_on_person(read_holds(store), plan.person_id, plan.agreements, on)
    return sorted(set(holds["reason"].to_pylist()))


def _without(store: UPath, path: UPath, column: str, values: pa.Array, area: str, changes: Changes) -> int:
    """Rewrite ``path`` (a parquet table) without the rows whose ``column`` is in ``values``; returns how
    many rows went."""
    if not path.exists():
        return 0
    table = read_parquet(path)
    if column not in table.column_names or table.num_rows == 0:
        return 0
    hit = pc.fill_null(pc.is_in(table[column], value_set=values), False)
    n = int(pc.sum(hit.cast(pa.int64())).as_py() or 0)
    if n == 0:
        return 0
    write_parquet(table.filter(pc.invert(hit)), path)
    changes.removed(area, n)
    changes.files_rewritten.append(_rel(store, path))
    return n


def _parquet_files(folder: UPath) -> list[UPath]:
    if not folder.exists():
        return []
    return sorted((p for p in folder.rglob("*.parquet")), key=lambda p: str(p))


def erase_now(
    store: UPath, plan: ErasurePlan, *, tombstone_key: bytes, keys: KeyStore, request_id: str, on: date
) -> Changes:
    """The request-time part. Refuses (nothing changed) if a legal hold applies."""
    blockers = erasure_blockers(store, plan, on)
    if blockers:
        raise ErasureRefused(f"a legal hold applies ({', '.join(blockers)}): nothing was erased")
    changes = Changes()
    person = pa.array([plan.person_id], pa.string())
    changes.removed("tombstones_added", add_tombstones(store, tombstone_key, plan.records, request_id))

    # The register.
    for role in ("persons", "links", "id_map", "restrictions", "corrections"):
        _without(store, register_file(store, role), "person_id", person, f"register/{role}", changes)
    retired = register_file(store, "retired")
    for column in ("person_id", "merged_into"):
        _without(store, retired, column, person, "register/retired", changes)
    _drop_request_files(store, plan.person_id, changes)
    _null_request_person(store, plan.person_id, changes)

    # Curated tables: every kept extract of the sources the person was linked from.
    sources = sorted({s for s in plan.records["source"].to_pylist() if s != "register"})
    for source in sources:
        ids = pa.array(
            [
                r
                for s, r in zip(
                    plan.records["source"].to_pylist(), plan.records["record_id"].to_pylist(), strict=True
                )
                if s == source
            ],
            pa.string(),
        )
        for path in curated_files(store, source).values():
            _without(store, path, "record_id", ids, f"curated/{source}", changes)

    # Identification snapshots, partners' flags.
    for path in _parquet_files(store / IDENTIFICATION):
        _without(store, path, "person_id", person, "identification", changes)
    for path in _parquet_files(register_dir(store) / "partner_flags"):
        _without(store, path, "person_id", person, "register/partner_flags", changes)
    if plan.family_id is not None and not _family_has_members(store, plan.family_id):
        family = pa.array([plan.family_id], pa.string())
        for path in _parquet_files(store / IDENTIFICATION):
            _without(store, path, "family_id", family, "identification", changes)
        _without(
            store, register_file(store, "assessments"), "family_id", family, "register/assessments", changes
        )

    # Controller-side copies, re-sealed under their own period's key; then the reference lists. A year of
    # weekly deliveries is hundreds of files: they are independent, and the cipher, the parquet codec and
    # the file writes release the GIL, so a few threads share the work.
    def one(delivery_id: tuple[str, str]) -> Changes:
        return _erase_from_delivery(store, Delivery(store, *delivery_id), plan.person_id, keys)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        for part in pool.map(one, [(a, d) for a, d, _ in plan.deliveries]):
            changes.merge(part)
    _notices_of_person(store, plan.person_id, changes)
    return changes


def _erase_from_delivery(store: UPath, delivery: Delivery, person_id: str, keys: KeyStore) -> Changes:
    changes = Changes()
    copy = delivery.folder / SENT_COPY
    if copy.exists():
        try:
            sent = read_sealed_table(copy, keys, delivery.sent_copy_context)
        except KeyShredded:
            sent = None  # already unreadable for everyone: nothing of the person can be read from it
        if sent is not None:
            hit = pc.equal(sent["person_id"], person_id)
            period = sealed_period(copy.read_bytes())
            write_sealed_table(sent.filter(pc.invert(hit)), copy, keys, period, delivery.sent_copy_context)
            changes.removed("deliveries/sent_copy", int(pc.sum(hit.cast(pa.int64())).as_py() or 0))
            changes.files_rewritten.append(_rel(store, copy))
    refs = delivery.references_path
    if refs.exists():
        try:
            table = delivery.references(keys)
        except KeyShredded:
            table = None  # its references already resolve to nobody
        if table is not None:
            hit = pc.equal(table["person_id"], person_id)
            n = int(pc.sum(hit.cast(pa.int64())).as_py() or 0)
            if n:
                period = sealed_period(refs.read_bytes())
                write_sealed_table(
                    table.filter(pc.invert(hit)), refs, keys, period, delivery.references_context
                )
                changes.removed("deliveries/references", n)
                changes.files_rewritten.append(_rel(store, refs))
    return changes


def _notices_of_person(store: UPath, person_id: str, changes: Changes) -> None:
    """The council's copies of notices about the person. A notice (encrypted to the partner) carries the
    person's reference and, for a rectification, the corrected value: the partner has its own; the
    council's goes, and so does the person's row in its reference list. The manifest and receipt (counts
    and hashes) stay. Run at the request and again in the compaction, after the erasure notices are sent."""
    person = pa.array([person_id], pa.string())
    for path in _parquet_files(store / NOTICES):
        if path.name == "references.parquet" and _has_person(path, person_id):
            for kept in sorted(path.parent.glob("*.gpg"), key=lambda p: str(p)):
                delete_file(kept)
                changes.files_deleted.append(_rel(store, kept))
        _without(store, path, "person_id", person, "notices/references", changes)


def _has_person(path: UPath, person_id: str) -> bool:
    return bool(_read(path, [("person_id", "==", person_id)]).num_rows > 0)


def _drop_request_files(store: UPath, person_id: str, changes: Changes) -> None:
    """The person's own earlier bundles (subject access, portability) and staged corrections go too; the
    plan of the erasure in progress stays until the erasure is complete."""
    table = read_requests(store)
    mine = table.filter(pc.fill_null(pc.equal(table["person_id"], person_id), False))
    for request_id in mine["request_id"].to_pylist():
        folder = rights_dir(store, str(request_id))
        if not folder.exists():
            continue
        for path in sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name):
            if path.name != PLAN_FILE:
                delete_file(path)
                changes.files_deleted.append(_rel(store, path))


def _family_has_members(store: UPath, family_id: str) -> bool:
    path = register_file(store, "persons")
    return path.exists() and _read(path, [("family_id", "==", family_id)]).num_rows > 0


def _null_request_person(store: UPath, person_id: str, changes: Changes) -> None:
    """The request register keeps the requests (their dates and outcomes are the controller's evidence of
    having answered) but no longer says whose they were: the case reference leads to the case file."""
    table = read_requests(store)
    if table.num_rows == 0:
        return
    mine = pc.fill_null(pc.equal(table["person_id"], person_id), False)
    n = int(pc.sum(mine.cast(pa.int64())).as_py() or 0)
    if n:
        blank = pc.if_else(mine, pa.scalar(None, pa.string()), table["person_id"])
        write_parquet(table.set_column(3, "person_id", blank), requests_path(store))
        changes.removed("register/rights_requests", n)
        changes.files_rewritten.append(_rel(store, requests_path(store)))


def compact(store: UPath, plan: ErasurePlan, sources: dict[str, str]) -> Changes:
    """The bulk files (see the module's docstring). ``sources`` maps a source name to its landing glob
    (relative to ``landing/``) and is what ``sources.yaml`` says."""
    changes = Changes()
    record_sources = plan.records["source"].to_pylist()
    record_ids = plan.records["record_id"].to_pylist()
    by_source: dict[str, set[str]] = {}
    for s, r in zip(record_sources, record_ids, strict=True):
        if s != "register":
            by_source.setdefault(str(s), set()).add(str(r))

    # Landing extracts that have been ingested: their rows are curated, so the file is no longer needed.
    for source in sorted(by_source):
        pattern = sources.get(source)
        if pattern is None:
            continue
        landing = store / "landing"
        for path in sorted(landing.glob(pattern), key=lambda p: str(p)):
            report = store / INGEST_REPORTS / source / f"{_stem(path.name)}.json"
            if report.exists() and json.loads(report.read_text()).get("status") == "ingested":
                delete_file(path)
                changes.files_deleted.append(_rel(store, path))
    # Quarantined ingest files of those sources holding one of the person's record ids.
    for source, ids in sorted(by_source.items()):
        folder = store / QUARANTINE / source
        if not folder.exists():
            continue
        for path in sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: str(p)):
            if path.name in ("report.csv", "reason.json"):
                continue  # rule reports: file, row, column, rule; no values
            data = path.read_bytes()
            if any(rid.encode() in data for rid in ids):
                delete_file(path)
                changes.files_deleted.append(_rel(store, path))

    _notices_of_person(store, plan.person_id, changes)
    deliveries = {d for _, d, _ in plan.deliveries}
    refs = pa.array(sorted(plan.all_refs()), pa.string())
    # Partner-encrypted archives of deliveries that included the person.
    for agreement_id, delivery_id, _ in plan.deliveries:
        delivery = Delivery(store, agreement_id, delivery_id)
        for archived in (delivery.ciphertext, delivery.archive_path):
            if archived.exists():
                delete_file(archived)
                changes.files_deleted.append(_rel(store, archived))
    # Returns answering them: the person's references out of the classification, the original deleted.
    for agreement_id in plan.agreements:
        for folder in subfolders(store / RETURNS / agreement_id):
            classified = folder / "classified.parquet"
            answered = any(d in folder.name for d in deliveries)
            column = _first_string_column(classified)
            removed = (
                0
                if column is None
                else _without(store, classified, column, refs, "returns/classified", changes)
            )
            # A return holding the person's references is theirs too, whichever delivery it answers.
            if answered or removed:
                for original in sorted(folder.glob("*.gpg"), key=lambda p: str(p)):
                    delete_file(original)
                    changes.files_deleted.append(_rel(store, original))
        for folder in subfolders(store / QUARANTINE / RETURNS / agreement_id):
            if any(d in folder.name for d in deliveries):
                for original in sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: str(p)):
                    if original.name in ("report.csv", "reason.json"):
                        continue
                    delete_file(original)
                    changes.files_deleted.append(_rel(store, original))
    return changes


def _first_string_column(path: UPath) -> str | None:
    if not path.exists():
        return None
    with path.open("rb") as fh:
        names = pq.read_schema(fh).names
    return "reference" if "reference" in names else ("person_ref" if "person_ref" in names else None)


def _stem(name: str) -> str:
    """The ingest report's stem of a landed file's name (as ``ingest.pipeline`` names reports)."""
    return name.rsplit(".", 1)[0] if "." in name else name


__all__ = [
    "Changes",
    "ErasurePlan",
    "ErasureRefused",
    "compact",
    "drop_plan",
    "erase_now",
    "erasure_blockers",
    "load_plan",
    "plan_erasure",
    "save_plan",
]


# -- the plan, kept sealed while an erasure is in progress -------------------------------------------------
#
# The notices and the compaction need to know who received the person after the person is gone from the
# register and the reference lists. A retried task must find that again, and it may not travel through
# XCom, so the plan is kept sealed (AES-256-GCM under the period's data key) in the request's folder and
# deleted once the erasure is complete.


def _plan_path(store: UPath, request_id: str) -> UPath:
    return rights_dir(store, request_id) / PLAN_FILE


def save_plan(store: UPath, request_id: str, plan: ErasurePlan, keys: KeyStore) -> None:
    doc = {
        "person_id": plan.person_id,
        "family_id": plan.family_id,
        "records": [
            {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}
            for row in plan.records.to_pylist()
        ],
        "deliveries": [[a, d, refs] for a, d, refs in plan.deliveries],
    }
    path = _plan_path(store, request_id)
    context = "/".join(path.parts[len(store.parts) :])
    write_bytes_atomic(path, seal_bytes(json.dumps(doc).encode(), keys, period_of(date.today()), context))


def load_plan(store: UPath, request_id: str, keys: KeyStore) -> ErasurePlan | None:
    path = _plan_path(store, request_id)
    if not path.exists():
        return None
    context = "/".join(path.parts[len(store.parts) :])
    doc = json.loads(open_bytes(path.read_bytes(), keys, context))
    records = (
        pa.Table.from_pylist(
            [
                {
                    **r,
                    "date_of_birth": date.fromisoformat(r["date_of_birth"])
                    if r.get("date_of_birth")
                    else None,
                }
                for r in doc["records"]
            ]
        )
        if doc["records"]
        else pa.table({"source": pa.array([], pa.string()), "record_id": pa.array([], pa.string())})
    )
    return ErasurePlan(
        doc["person_id"], doc["family_id"], records, [(a, d, list(refs)) for a, d, refs in doc["deliveries"]]
    )


def drop_plan(store: UPath, request_id: str) -> None:
    path = _plan_path(store, request_id)
    if path.exists():
        delete_file(path)
