"""The retention sweep: what each store area may still keep on a day, and deleting the rest.

The privacy notice (docs/supporting-families-privacy-notice.txt) promises data "will be retained for up to one
year after the end of the programme ... It will therefore be deleted when no longer needed". The limits are
``include/retention.yaml`` (council-wide classes) and each agreement's ``retention:`` (what went to or came
from that partner); every limit ends at the council's ceiling. :func:`plan_sweep` works out, for ``as_of``,
which files are past their limit, which are held, and which data keys can be shredded; :func:`apply_sweep`
deletes them (a dry run is :func:`plan_sweep` alone); :func:`overdue` scans the store afterwards and finds
anything still past its limit, which must be nothing.

Legal holds (``register/legal_holds.parquet``, UK GDPR Article 17(3)(e)) stop deletion and are reported:

* a hold on an agreement keeps everything of that agreement; its sealed files are sealed again under the
  hold's own key, so the period key they were under can still be shredded for everybody else;
* a hold on a person keeps that person's rows: before a delivery (or a curated extract) holding them is
  deleted, their rows are copied under ``holds/<hold id>/`` sealed under the hold's key. A hold on one
  person never keeps a whole period alive.

Crypto-shredding: a period's data key (:mod:`supporting_families.store.keystore`) is destroyed once its month
is over and no live file is sealed under it, which ends every copy that deletion could not reach (object
versions, object-lock archives, backups). A hold's key goes once the hold has ended and its copies are gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.config.agreements import Agreement
from supporting_families.config.retention import RetentionPolicy
from supporting_families.config.sources import SourcesConfig
from supporting_families.ingest.pipeline import report_path
from supporting_families.progress import Progress
from supporting_families.registers.holds import active_holds, read_holds
from supporting_families.registers.requests import HEX_AS_LETTERS
from supporting_families.store.io import (
    delete_file,
    is_local,
    read_parquet,
    subfolders,
    write_bytes_atomic,
    write_parquet,
)
from supporting_families.store.keystore import KeyShredded, KeyStore, period_of
from supporting_families.store.layout import (
    CURATED,
    DELIVERIES,
    IDENTIFICATION,
    INGEST_REPORTS,
    LANDING,
    NOTICES,
    PUBLISHED,
    QUARANTINE,
    REFERENCES_FILE,
    RETURNS,
    RIGHTS,
    SEALED_SUFFIX,
    STAGING,
    register_file,
    relative,
)
from supporting_families.store.sealed import open_bytes, seal_bytes, sealed_period

log = logging.getLogger(__name__)

#: Where a held person's rows are kept once the file they were in is deleted (sealed under the hold's key).
HOLDS: Final = "holds"
#: The erasure plan of a request in progress: the erasure itself removes it when complete.
_PLAN_FILE: Final = "erasure_plan.json.sealed"


def hold_key_id(hold_id: str) -> str:
    """The data key of one hold: ``h`` and six letters, the same length as a period (``YYYY-MM``)."""
    return "h" + hashlib.sha256(hold_id.encode()).hexdigest()[:6].translate(HEX_AS_LETTERS)


@dataclass(frozen=True)
class Item:
    """One file (or one folder's files) of one retention class, with the last day it may be kept."""

    retention_class: str
    paths: tuple[str, ...]  # relative to the store root
    last_day: date
    rule: str  # e.g. "7d-after-ingested"; a code, never a value
    agreement_id: str | None = None
    delivery_id: str | None = None
    held_by: tuple[str, ...] = ()

    def due(self, as_of: date) -> bool:
        return as_of > self.last_day


@dataclass
class SweepPlan:
    """What :func:`apply_sweep` will do for ``as_of``; printed as the dry run."""

    as_of: date
    due: list[Item] = field(default_factory=list)
    held: list[Item] = field(default_factory=list)
    #: (source, record_id) rows of ``register/id_map.parquet`` whose record no curated extract still holds.
    register_records: pa.Table | None = None
    #: Persons held by a person hold (their rows are copied out or kept).
    held_persons: frozenset[str] = frozenset()
    person_holds: dict[str, list[str]] = field(default_factory=dict)  # person_id -> hold ids

    def by_class(self) -> dict[str, dict[str, Any]]:
        """Counts per class (files due, held), the dry run's table and the ledger's evidence."""
        out: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"files": 0, "held_files": 0, "rule": "", "paths": []}
        )
        for item in self.due:
            row = out[item.retention_class]
            row["files"] += len(item.paths)
            row["rule"] = item.rule
            row["paths"].extend(item.paths)
        for item in self.held:
            out[item.retention_class]["held_files"] += len(item.paths)
            out[item.retention_class]["rule"] = out[item.retention_class]["rule"] or item.rule
        if self.register_records is not None and self.register_records.num_rows:
            out["register"]["records"] = self.register_records.num_rows
            out["register"]["rule"] = out["register"]["rule"] or "absent-from-sources"
        return dict(out)

    def summary(self) -> dict[str, Any]:
        """Counts only (no path: a path holds a source's record-free file names, still best kept out)."""
        return {
            cls: {k: v for k, v in row.items() if k != "paths"}
            for cls, row in sorted(self.by_class().items())
        }


@dataclass
class SweepResult:
    as_of: date
    deleted: dict[str, list[str]] = field(default_factory=dict)  # class -> relative paths
    rows_removed: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    copied_for_holds: int = 0
    resealed_for_holds: int = 0
    keys_shredded: list[str] = field(default_factory=list)

    def evidence(self) -> dict[str, dict[str, Any]]:
        """Per class: counts and a SHA-256 of the sorted list of deleted paths (never the paths)."""
        out: dict[str, dict[str, Any]] = {}
        for cls in sorted(set(self.deleted) | set(self.rows_removed) | set(self.held)):
            paths = sorted(self.deleted.get(cls, []))
            out[cls] = {
                "files_deleted": len(paths),
                "rows_removed": self.rows_removed.get(cls, 0),
                "held": self.held.get(cls, 0),
                "paths_sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest(),
            }
        if self.keys_shredded:
            out["data_keys"] = {
                "files_deleted": 0,
                "keys_shredded": len(self.keys_shredded),
                "paths_sha256": hashlib.sha256("\n".join(sorted(self.keys_shredded)).encode()).hexdigest(),
            }
        return out


# -- reading the store -------------------------------------------------------------------------------------


def _day(path: UPath) -> date:
    """The day a file was last written (the store's own clock: local mtime, or the object's LastModified)."""
    info = path.fs.info(path.path)
    stamp = info.get("mtime") or info.get("LastModified") or info.get("created")
    if isinstance(stamp, datetime):
        return stamp.astimezone(UTC).date()
    return datetime.fromtimestamp(float(stamp), UTC).date()


def _files(folder: UPath) -> list[UPath]:
    if not folder.exists():
        return []
    return sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: str(p))


def _rel(root: UPath, paths: Iterable[UPath]) -> tuple[str, ...]:
    return tuple(relative(root, p) for p in paths)


def _json(path: UPath) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# -- the classes --------------------------------------------------------------------------------------------


def _council(root: UPath, policy: RetentionPolicy, sources: SourcesConfig) -> Iterator[Item]:
    """Landing, curated, ingest quarantine, reports, identification, staging, rights, return quarantine."""
    landing = policy.rule("landing")
    for spec in sources.sources.values():
        folder = root / LANDING / posixpath.dirname(spec.file_glob)
        pattern = posixpath.basename(spec.file_glob)
        for path in sorted(folder.glob(pattern), key=lambda p: p.name) if folder.exists() else []:
            report = report_path(root, spec, path.name)
            # Not yet ingested: kept for the ingest (the ceiling still ends it).
            done = report.exists() and _json(report).get("status") in ("ingested", "quarantined")
            last = policy.last_day("landing", _day(report)) if done else policy.ceiling
            rule = f"{landing.days}d-after-ingested" if done else "ceiling"
            yield Item("landing", _rel(root, [path]), last, rule)
        # Curated: the newest extract of each source is the current one; an older one is superseded on the
        # day the next one was extracted.
        curated = sorted(
            (p for p in (root / CURATED / spec.name).glob(f"{spec.name}_*.parquet")), key=lambda p: p.name
        )
        days = [date.fromisoformat(p.stem.rsplit("_", 1)[1]) for p in curated]
        for i, path in enumerate(curated):
            if i + 1 < len(days):
                last = policy.last_day("curated", days[i + 1])
                rule = f"{policy.rule('curated').days}d-after-superseded"
            else:
                last, rule = policy.ceiling, "ceiling-current-extract"
            yield Item("curated", _rel(root, [path]), last, rule)
        for folder in subfolders(root / QUARANTINE / spec.name):
            files = _files(folder)
            if files:
                reason = folder / "reason.json"
                start = _day(reason if reason.exists() else files[0])
                rule = f"{policy.rule('ingest_quarantine').days}d-after-quarantined"
                yield Item(
                    "ingest_quarantine", _rel(root, files), policy.last_day("ingest_quarantine", start), rule
                )
        for path in _files(root / INGEST_REPORTS / spec.name):
            rule = f"{policy.rule('reports').days}d-after-written"
            yield Item("reports", _rel(root, [path]), policy.last_day("reports", _day(path)), rule)
    snapshots = [p for p in subfolders(root / IDENTIFICATION) if _is_iso(p.name)]
    for i, folder in enumerate(snapshots):
        if i + 1 < len(snapshots):
            last = policy.last_day("identification", date.fromisoformat(snapshots[i + 1].name))
            rule = f"{policy.rule('identification').days}d-after-superseded"
        else:
            last, rule = policy.ceiling, "ceiling-current-snapshot"
        yield Item("identification", _rel(root, _files(folder)), last, rule)
    for path in _files(root / STAGING):
        # The share deletes its plaintext itself, on success and on failure; this catches what a killed
        # worker left behind, after the time a delivery in progress may need.
        rule = f"{policy.rule('staging').days}d-after-written"
        yield Item("staging", _rel(root, [path]), policy.last_day("staging", _day(path)), rule)
    for folder in subfolders(root / RIGHTS):
        files = [p for p in _files(folder) if p.name != _PLAN_FILE]
        if files:
            start = max(_day(p) for p in files)
            rule = f"{policy.rule('rights').days}d-after-written"
            yield Item("rights", _rel(root, files), policy.last_day("rights", start), rule)
    for folder in subfolders(root / PUBLISHED / "statistics"):
        # Published tables hold no personal data (statistical disclosure control); kept as reports.
        files = _files(folder)
        if files:
            rule = f"{policy.rule('reports').days}d-after-written"
            yield Item(
                "reports", _rel(root, files), policy.last_day("reports", max(_day(p) for p in files)), rule
            )
    for agreement_dir in subfolders(root / QUARANTINE / RETURNS):
        for folder in subfolders(agreement_dir):
            files = _files(folder)
            if files:
                rule = f"{policy.rule('return_quarantine').days}d-after-quarantined"
                last = policy.last_day("return_quarantine", min(_day(p) for p in files))
                yield Item(
                    "return_quarantine", _rel(root, files), last, rule, agreement_id=agreement_dir.name
                )


def _is_iso(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


def _delivered_on(folder: UPath) -> date:
    receipt = folder / "receipt.json"
    if receipt.exists():
        return datetime.fromisoformat(str(_json(receipt)["delivered_at"])).astimezone(UTC).date()
    manifest = folder / "manifest.json"
    return _day(manifest) if manifest.exists() else min(_day(p) for p in _files(folder))


def _agreements(root: UPath, policy: RetentionPolicy, agreements: dict[str, Agreement]) -> Iterator[Item]:
    """Deliveries (archive and sent copy), reference lists, manifests and receipts, notices, returns."""
    for agreement_dir in subfolders(root / DELIVERIES):
        agreement = agreements.get(agreement_dir.name)
        for folder in subfolders(agreement_dir):
            files = _files(folder)
            if not files:
                continue
            on = _delivered_on(folder)
            groups: dict[str, list[UPath]] = defaultdict(list)
            for path in files:
                if path.name == REFERENCES_FILE:
                    groups["references"].append(path)
                elif path.name in ("manifest.json", "receipt.json"):
                    groups["manifests"].append(path)
                else:
                    groups["deliveries"].append(path)
            for cls, paths in groups.items():
                days = agreement.retention.days_for(cls) if agreement is not None else 0  # type: ignore[arg-type]
                last = policy.cap(on + timedelta(days=days))
                yield Item(
                    cls, _rel(root, paths), last, f"{days}d-after-delivery", agreement_dir.name, folder.name
                )
    for agreement_dir in subfolders(root / NOTICES):
        agreement = agreements.get(agreement_dir.name)
        for folder in subfolders(agreement_dir):
            files = _files(folder)
            if files:
                days = agreement.retention.days_for("deliveries") if agreement is not None else 0
                last = policy.cap(_delivered_on(folder) + timedelta(days=days))
                yield Item("deliveries", _rel(root, files), last, f"{days}d-after-notice", agreement_dir.name)
    flags_dir = register_file(root, "persons").parent / "partner_flags"
    for agreement_dir in subfolders(root / RETURNS):
        agreement = agreements.get(agreement_dir.name)
        days = agreement.retention.days_for("returns") if agreement is not None else 0
        for folder in subfolders(agreement_dir):
            files = _files(folder)
            if not files:
                continue
            received = folder / "received.json"
            last = policy.cap(_day(received if received.exists() else files[0]) + timedelta(days=days))
            stem = folder.name.removesuffix(".gpg").removesuffix(".pgp").rsplit(".", 1)[0]
            flags = flags_dir / f"{agreement_dir.name}__{stem}.parquet"
            paths = [*files, *([flags] if flags.exists() else [])]
            yield Item("returns", _rel(root, paths), last, f"{days}d-after-receipt", agreement_dir.name)


def _register_due(root: UPath, surviving_curated: list[UPath], held: frozenset[str]) -> pa.Table | None:
    """The id map's records that no curated extract still holds (after this sweep's deletions): their
    person left every source; keeping the link would keep them in the register with nothing current."""
    id_map_path = register_file(root, "id_map")
    if not id_map_path.exists():
        return None
    id_map = read_parquet(id_map_path)
    current = []
    for path in surviving_curated:
        source = path.parent.name
        with path.open("rb") as fh:
            ids = pq.read_table(fh, columns=["record_id"])["record_id"]
        current.append(pa.table({"source": pa.repeat(pa.scalar(source), len(ids)), "record_id": ids}))
    key = pc.binary_join_element_wise(id_map["source"], id_map["record_id"], "\x1f")
    if current:
        now = pa.concat_tables(current)
        present = pc.is_in(
            key, value_set=pc.binary_join_element_wise(now["source"], now["record_id"], "\x1f")
        )
    else:
        present = pa.repeat(pa.scalar(False), id_map.num_rows)
    keep_held = pc.is_in(id_map["person_id"], value_set=pa.array(sorted(held), pa.string()))
    gone = pc.and_(pc.invert(present), pc.invert(keep_held))
    return id_map.filter(gone)


# -- planning ----------------------------------------------------------------------------------------------


def plan_sweep(
    root: UPath,
    policy: RetentionPolicy,
    agreements: dict[str, Agreement],
    sources: SourcesConfig,
    as_of: date,
) -> SweepPlan:
    """What is past its limit on ``as_of``, what is held, and what the register no longer needs."""
    holds = active_holds(read_holds(root), as_of)
    held_agreements: dict[str, list[str]] = defaultdict(list)
    person_holds: dict[str, list[str]] = defaultdict(list)
    for row in holds.to_pylist():
        (held_agreements if row["scope"] == "agreement" else person_holds)[row["subject_id"]].append(
            row["hold_id"]
        )
    plan = SweepPlan(as_of, held_persons=frozenset(person_holds), person_holds=dict(person_holds))
    for item in (*_council(root, policy, sources), *_agreements(root, policy, agreements)):
        if not item.due(as_of):
            continue
        if item.agreement_id in held_agreements:
            plan.held.append(replace(item, held_by=tuple(sorted(held_agreements[item.agreement_id]))))
        else:
            plan.due.append(item)
    deleted = {p for item in plan.due for p in item.paths}
    surviving = [
        root / CURATED / spec_dir.name / path.name
        for spec_dir in subfolders(root / CURATED)
        for path in sorted(spec_dir.glob("*.parquet"), key=lambda p: p.name)
        if relative(root, path) not in deleted
    ]
    plan.register_records = _register_due(root, surviving, plan.held_persons)
    return plan


# -- applying ----------------------------------------------------------------------------------------------


def apply_sweep(root: UPath, plan: SweepPlan, keys: KeyStore) -> SweepResult:
    """Delete what ``plan`` found due, keep what is held (copied or sealed under the hold's key), drop the
    register's records that left every source, and shred the keys nothing live is sealed under."""
    result = SweepResult(plan.as_of)
    # A year of deliveries is thousands of files on an object store: counts only, never a path (paths
    # carry agreement and delivery ids; docs/ARCHITECTURE.md keeps logs free of anything but counts).
    progress = Progress(
        log, "retention sweep", sum(len(i.paths) for i in (*plan.held, *plan.due)), unit="files"
    )
    for item in plan.held:
        result.held[item.retention_class] = result.held.get(item.retention_class, 0) + len(item.paths)
        result.resealed_for_holds += _reseal_for_hold(root, item, keys)
        progress.advance(len(item.paths))
    for item in plan.due:
        if plan.held_persons:
            result.copied_for_holds += _copy_held_persons(root, item, plan, keys)
        for rel in item.paths:
            path = root / rel
            if path.exists():
                delete_file(path)
                result.deleted.setdefault(item.retention_class, []).append(rel)
            progress.advance(1)
    progress.finish()
    _drop_register_records(root, plan, result)
    _remove_empty_folders(root)
    result.keys_shredded = shred_unused_keys(root, keys, plan.as_of)
    return result


def _reseal_for_hold(root: UPath, item: Item, keys: KeyStore) -> int:
    """A held agreement's sealed files, sealed again under the hold's key (so their period can go)."""
    key_id = hold_key_id(item.held_by[0])
    n = 0
    for rel in item.paths:
        if not rel.endswith(SEALED_SUFFIX):
            continue
        path = root / rel
        blob = path.read_bytes()
        if sealed_period(blob) == key_id:
            continue
        write_bytes_atomic(path, seal_bytes(open_bytes(blob, keys, rel), keys, key_id, rel))
        n += 1
    return n


def _copy_held_persons(root: UPath, item: Item, plan: SweepPlan, keys: KeyStore) -> int:
    """Before a delivery's sealed copy or reference list (or a curated extract) is deleted, the rows of held
    persons in it are copied under ``holds/<hold id>/``, sealed under the hold's own key."""
    held = pa.array(sorted(plan.held_persons), pa.string())
    copied = 0
    for rel in item.paths:
        path = root / rel
        name = posixpath.basename(rel)
        if name.endswith(".parquet.sealed"):
            try:
                table = pq.read_table(pa.BufferReader(open_bytes(path.read_bytes(), keys, rel)))
            except KeyShredded:
                continue
        elif item.retention_class == "curated" and name.endswith(".parquet"):
            table = _curated_with_person(root, path)
        else:
            continue
        if "person_id" not in table.column_names:
            continue
        mine = table.filter(pc.is_in(table["person_id"], value_set=held))
        for person_id in pc.unique(mine["person_id"]).to_pylist():
            rows = mine.filter(pc.equal(mine["person_id"], person_id))
            for hold_id in plan.person_holds[person_id]:
                target = (
                    root / HOLDS / hold_id / f"{rel}{'' if rel.endswith(SEALED_SUFFIX) else SEALED_SUFFIX}"
                )
                sink = pa.BufferOutputStream()
                pq.write_table(rows, sink, compression="zstd")
                context = relative(root, target)
                write_bytes_atomic(
                    target, seal_bytes(sink.getvalue().to_pybytes(), keys, hold_key_id(hold_id), context)
                )
                copied += 1
    return copied


def _curated_with_person(root: UPath, path: UPath) -> pa.Table:
    """A curated extract with each row's person id (from the register's id map)."""
    table = read_parquet(path)
    id_map_path = register_file(root, "id_map")
    if not id_map_path.exists():
        return table
    id_map = read_parquet(id_map_path)
    id_map = id_map.filter(pc.equal(id_map["source"], path.parent.name))
    return table.join(id_map.select(["record_id", "person_id"]), "record_id", join_type="left outer")


def _drop_register_records(root: UPath, plan: SweepPlan, result: SweepResult) -> None:
    records = plan.register_records
    if records is None or records.num_rows == 0:
        return
    id_map_path = register_file(root, "id_map")
    id_map = read_parquet(id_map_path)
    key = pc.binary_join_element_wise(id_map["source"], id_map["record_id"], "\x1f")
    gone_keys = pc.binary_join_element_wise(records["source"], records["record_id"], "\x1f")
    keep = pc.invert(pc.is_in(key, value_set=gone_keys))
    remaining = id_map.filter(keep)
    write_parquet(remaining, id_map_path)
    removed = records.num_rows
    # A person none of whose records is left is no longer in any source: out of the register too.
    orphans = pc.invert(pc.is_in(records["person_id"], value_set=remaining["person_id"]))
    gone_persons = pc.unique(records.filter(orphans)["person_id"])
    for role in ("persons", "links"):
        path = register_file(root, role)
        if path.exists() and len(gone_persons):
            table = read_parquet(path)
            hit = pc.is_in(table["person_id"], value_set=gone_persons)
            n = int(pc.sum(hit.cast(pa.int64())).as_py() or 0)
            if n:
                write_parquet(table.filter(pc.invert(hit)), path)
                removed += n
    result.rows_removed["register"] = result.rows_removed.get("register", 0) + removed


def _remove_empty_folders(root: UPath) -> None:
    for top in (LANDING, CURATED, QUARANTINE, IDENTIFICATION, STAGING, DELIVERIES, NOTICES, RETURNS, RIGHTS):
        base = root / top
        if not is_local(base) or not base.exists():
            continue  # an object store has no folders to leave behind
        for folder in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(str(p))):
            if not any(folder.iterdir()):
                folder.rmdir()


def live_key_ids(root: UPath) -> set[str]:
    """The data keys that some file in the store is still sealed under."""
    used = set()
    for path in root.rglob(f"*{SEALED_SUFFIX}") if root.exists() else []:
        with path.open("rb") as fh:
            head = fh.read(64)
        try:
            used.add(sealed_period(head))
        except ValueError:
            continue
    return used


def shred_unused_keys(root: UPath, keys: KeyStore, as_of: date) -> list[str]:
    """Destroy each period key whose month is over and under which nothing live is sealed, and each hold
    key nothing is sealed under any more."""
    live = live_key_ids(root)
    current = period_of(as_of)
    shredded = []
    for key_id in keys.periods():
        if key_id in live:
            continue
        if key_id[0].isdigit() and key_id >= current:
            continue  # this month's key: deliveries may still be sealed under it today
        if keys.destroy(key_id):
            shredded.append(key_id)
    return shredded


# -- verification ------------------------------------------------------------------------------------------


def overdue(
    root: UPath,
    policy: RetentionPolicy,
    agreements: dict[str, Agreement],
    sources: SourcesConfig,
    as_of: date,
) -> list[Item]:
    """Everything still past its limit and not held: empty after a sweep, or the sweep failed."""
    plan = plan_sweep(root, policy, agreements, sources, as_of)
    left = [item for item in plan.due if any((root / p).exists() for p in item.paths)]
    if plan.register_records is not None and plan.register_records.num_rows:
        left.append(Item("register", (), as_of, "absent-from-sources"))
    return left


__all__ = [
    "HOLDS",
    "Item",
    "SweepPlan",
    "SweepResult",
    "apply_sweep",
    "hold_key_id",
    "live_key_ids",
    "overdue",
    "plan_sweep",
    "shred_unused_keys",
]
