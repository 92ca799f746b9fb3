"""Ingest the internal departments' extracts: strict read, lazy validation, curated Parquet, quarantine.

For one source (``include/sources.yaml``) and the store root (docs/STORE.md; every path comes from
:mod:`supporting_families.store.layout`):

* :func:`pending_extracts` lists the files under ``landing/`` that match the source's ``file_glob`` and have
  not been ingested yet. The ingest report is the marker: a file whose report carries the same SHA-256 is
  done (ingested, or rejected), so a re-run does nothing; a file re-sent with other content is ingested again.
* :func:`ingest_extract` reads one file strictly by its spec. A file that cannot be read (encoding,
  byte-order mark, delimiter, ragged rows, duplicate or missing headers, empty, header only) is copied whole
  to ``quarantine/<source>/<file name>/`` with ``reason.json``, nothing of it reaches ``curated/``, and
  :class:`ExtractRejected` names the file and the rule. Otherwise every row is validated with pandera
  (lazily: every failure); accepted rows are standardised and written as one Parquet file, rejected rows go
  to the quarantine with ``report.csv`` (file, row_number, column, rule: no values).
* Nothing is lost: accepted + rejected == received is checked before anything is written, and recorded in
  ``ingest_reports/<source>/<file stem>.json``, which is written last.

The extracts hold personal data. Logs, exceptions and reports carry file names, counts, rule names, column
headers and row numbers only (the architecture's rule: "Counts, hashes and pseudonyms only").
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import os
import posixpath
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from upath import UPath

from supporting_families.config.sources import SourceSpec
from supporting_families.ingest.read import FILE_RULES, ExtractRejected, RawExtract, read_extract_file
from supporting_families.ingest.standardise import curated_schema, standardise
from supporting_families.ingest.validate import ROW_RULES, RowVerdict, validate_rows
from supporting_families.progress import Progress
from supporting_families.registers.tombstones import drop_tombstoned, read_tombstones
from supporting_families.store import layout
from supporting_families.store.io import (
    delete_file,
    sha256_bytes,
    sha256_of,
    write_bytes_atomic,
    write_parquet,
)

__all__ = [
    "FILE_RULES",
    "ROW_RULES",
    "ExtractRejected",
    "IngestReport",
    "curated_path",
    "curated_schema",
    "ingest_extract",
    "ingest_source",
    "landing_dir",
    "pending_extracts",
    "quarantine_dir",
    "read_report",
    "report_path",
]

log = logging.getLogger(__name__)

REPORT_VERSION: Final = 1
REPORT_COLUMNS: Final = ("file", "row_number", "column", "rule")

Status = Literal["ingested", "rejected"]


# --- where things live (docs/STORE.md) -------------------------------------------------------------------


def landing_dir(root: UPath, spec: SourceSpec) -> UPath:
    """The folder a source's extracts land in: ``file_glob`` is relative to ``<store>/landing``."""
    return layout.landing_dir(root, spec.file_glob)


def _name_glob(spec: SourceSpec) -> str:
    return posixpath.basename(spec.file_glob)


def _stem(file_name: str) -> str:
    return file_name.rsplit(".", 1)[0] if "." in file_name else file_name


def extract_date_of(spec: SourceSpec, file_name: str) -> date:
    """The extract date in a file's name (the ``*`` of ``file_glob``), or :class:`ExtractRejected`."""
    prefix, _, suffix = _name_glob(spec).partition("*")
    if not (file_name.startswith(prefix) and file_name.endswith(suffix)):
        raise ExtractRejected(file_name, "file_name", f"the name does not match {_name_glob(spec)!r}")
    middle = file_name[len(prefix) : len(file_name) - len(suffix)]
    try:
        return datetime.strptime(middle, spec.extract_date_format).date()
    except ValueError:
        raise ExtractRejected(
            file_name, "file_name", f"no extract date in the {spec.extract_date_format!r} format"
        ) from None


def _relative(root: UPath, path: UPath) -> str:
    """``path`` relative to the store's root, as the ingest report records it."""
    return "/".join(path.parts[len(root.parts) :])


def curated_path(root: UPath, spec: SourceSpec, extract_date: date) -> UPath:
    """``curated/<source>/<source>_<YYYY-MM-DD>.parquet``: one file per extract file."""
    return layout.curated_file(root, spec.name, extract_date)


def quarantine_dir(root: UPath, spec: SourceSpec, file_name: str) -> UPath:
    """``quarantine/<source>/<file name>/``: a file rejected whole, or the rejected rows, with reports."""
    return layout.ingest_quarantine_dir(root, spec.name, file_name)


def report_path(root: UPath, spec: SourceSpec, file_name: str) -> UPath:
    """``ingest_reports/<source>/<file stem>.json``: counts only; written last, the file's done-marker."""
    return layout.ingest_report_file(root, spec.name, _stem(file_name))


# --- the ingest report: counts only ----------------------------------------------------------------------


@dataclass(frozen=True)
class IngestReport:
    """What happened to one extract file; its JSON is the marker that the file was dealt with.

    Counts, the file's SHA-256, rule names and relative paths: nothing personal. For a file rejected whole,
    ``received`` is ``None`` (its rows could not be counted reliably) and ``rule`` names the file rule.
    """

    source: str
    file: str
    file_sha256: str
    size_bytes: int
    status: Status
    extract_date: str | None = None
    received: int | None = None
    accepted: int = 0
    rejected: int | None = None
    #: per row rule, the number of (row, column) failures
    rules_broken: dict[str, int] = field(default_factory=dict)
    #: per column header, per row rule, the number of failing rows
    columns_broken: dict[str, dict[str, int]] = field(default_factory=dict)
    rule: str | None = None
    detail: str | None = None
    curated: str | None = None
    quarantine: str | None = None
    report_version: int = REPORT_VERSION
    #: size and modification time of the landed file, taken before it was read (see landed_stamp)
    landed_stamp: str | None = None
    #: accepted rows left out because the person was erased (a tombstone on their keys): counted among
    #: ``accepted`` (they passed every rule) but not curated
    dropped_by_tombstone: int = 0
    #: not stored: True when this call found the file already dealt with and did nothing
    skipped: bool = False

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc.pop("skipped")
        return json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> IngestReport:
        doc = json.loads(data)
        doc.pop("skipped", None)
        return cls(**doc)

    def counts(self) -> dict[str, Any]:
        """A small summary safe for XCom and logs."""
        return {
            "file": self.file,
            "status": self.status,
            "received": self.received,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "dropped_by_tombstone": self.dropped_by_tombstone,
            "skipped": self.skipped,
        }


def read_report(root: UPath, spec: SourceSpec, file_name: str) -> IngestReport | None:
    path = report_path(root, spec, file_name)
    if not path.exists():
        return None
    return IngestReport.from_json(path.read_bytes())


def _write_report(root: UPath, spec: SourceSpec, report: IngestReport) -> None:
    write_bytes_atomic(report_path(root, spec, report.file), report.to_json())


# --- finding work ----------------------------------------------------------------------------------------


def landed_stamp(path: UPath) -> str | None:
    """A cheap fingerprint of a landed file from its metadata, or None where there is none to trust.

    The quick check (as rsync's): an unchanged stamp means unchanged content, so the daily run does not
    re-read every extract ever landed to find the new ones. On S3 it is the object's ETag (derived from
    the content); on a local file system the size and the modification time (sub-microsecond). S3's
    LastModified is not used: it has one-second resolution, and a same-size replacement within that second
    would go unseen. Elsewhere there is no stamp and the content is hashed every time.
    """
    info = path.fs.info(path.path)
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"{info['size']}:etag:{str(etag).strip(chr(34))}"
    if path.protocol in ("", "file", "local"):
        return f"{info['size']}:mtime:{os.stat(path.path).st_mtime_ns}"
    return None


def landed_extracts(root: UPath, spec: SourceSpec) -> list[UPath]:
    """Every file in the source's landing folder whose name matches ``file_glob``, by name."""
    folder = landing_dir(root, spec)
    if not folder.exists():
        return []
    pattern = _name_glob(spec)
    # Names only: the atomic writer's ".<name>.partial" files do not match the source's pattern.
    return sorted(
        (p for p in folder.iterdir() if fnmatch.fnmatchcase(p.name, pattern) and p.is_file()),
        key=lambda p: p.name,
    )


def pending_extracts(root: UPath, spec: SourceSpec) -> list[str]:
    """Names of landed files not yet dealt with: no ingest report, or one for different content.

    A file whose stamp (size and modification time) is the one its report recorded is not read again;
    any other is hashed, so a file re-sent with the same content is still recognised as done.
    """
    landed = landed_extracts(root, spec)
    pending = []
    for path in landed:
        report = read_report(root, spec, path.name)
        if report is None:
            pending.append(path.name)
            continue
        stamp = landed_stamp(path)
        if stamp is not None and stamp == report.landed_stamp:
            continue
        if report.file_sha256 != sha256_of(path):
            pending.append(path.name)
        elif stamp is not None:
            # The same content landed again (re-sent, copied): remember the new stamp so the next run
            # does not read it again either.
            _write_report(root, spec, replace(report, landed_stamp=stamp))
    log.info("%s: %d landed extract(s), %d pending", spec.name, len(landed), len(pending))
    return pending


# --- quarantine ------------------------------------------------------------------------------------------

_QUARANTINE_FILES: Final = ("reason.json", "report.csv", "rejected_rows.csv")


def _clear_quarantine(root: UPath, spec: SourceSpec, file_name: str) -> None:
    # A re-sent file replaces what an earlier version of it left in quarantine.
    folder = quarantine_dir(root, spec, file_name)
    for name in (*_QUARANTINE_FILES, file_name):
        path = folder / name
        if path.exists():
            delete_file(path)


def _csv_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed"))
    return buf.getvalue()


def _report_csv(file_name: str, failures: pa.Table) -> bytes:
    """``report.csv``: one line per (row, column, rule); the columns never hold a value from the file."""
    table = pa.table(
        {
            "file": pa.repeat(pa.scalar(file_name, pa.string()), failures.num_rows),
            "row_number": failures.column("row_number"),
            "column": failures.column("column"),
            "rule": failures.column("rule"),
        }
    )
    return _csv_bytes(table.select(list(REPORT_COLUMNS)))


def _rejected_rows_csv(extract: RawExtract, rejected: np.ndarray) -> bytes:
    """The rejected rows as received (in UTF-8), with their spreadsheet row numbers, for correction."""
    index = np.flatnonzero(rejected)
    rows = extract.raw.take(pa.array(index, pa.int64()))
    return _csv_bytes(rows.add_column(0, "row_number", pa.array(index + 2, pa.int64())))


def _quarantine_whole(
    root: UPath, spec: SourceSpec, file_name: str, data: bytes, error: ExtractRejected, sha: str
) -> str:
    folder = quarantine_dir(root, spec, file_name)
    write_bytes_atomic(folder / file_name, data)
    reason = {
        "source": spec.name,
        "file": file_name,
        "file_sha256": sha,
        "size_bytes": len(data),
        "rule": error.rule,
        "rule_means": FILE_RULES.get(error.rule, ""),
        "detail": error.detail,
    }
    write_bytes_atomic(folder / "reason.json", json.dumps(reason, indent=2, sort_keys=True).encode() + b"\n")
    return _relative(root, folder)


# --- ingesting -------------------------------------------------------------------------------------------


def _broken(failures: pa.Table) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    rules = Counter(failures.column("rule").to_pylist())
    by_column: dict[str, Counter[str]] = {}
    for column, rule in zip(
        failures.column("column").to_pylist(), failures.column("rule").to_pylist(), strict=True
    ):
        by_column.setdefault(column or "(row)", Counter())[rule] += 1
    return dict(sorted(rules.items())), {c: dict(sorted(r.items())) for c, r in sorted(by_column.items())}


def _reject_whole(
    root: UPath,
    spec: SourceSpec,
    file_name: str,
    data: bytes,
    sha: str,
    error: ExtractRejected,
    extract_date: date | None,
    row_failures: RowVerdict | None = None,
    stamp: str | None = None,
) -> ExtractRejected:
    _clear_quarantine(root, spec, file_name)
    folder = _quarantine_whole(root, spec, file_name, data, error, sha)
    report = IngestReport(
        source=spec.name,
        file=file_name,
        file_sha256=sha,
        size_bytes=len(data),
        status="rejected",
        extract_date=extract_date.isoformat() if extract_date else None,
        rule=error.rule,
        detail=error.detail,
        quarantine=folder,
        landed_stamp=stamp,
    )
    if row_failures is not None:
        # Every row failed: keep the row report too, it usually shows the one column that changed format.
        write_bytes_atomic(
            quarantine_dir(root, spec, file_name) / "report.csv",
            _report_csv(file_name, row_failures.failures),
        )
        rules, columns = _broken(row_failures.failures)
        report = replace(
            report,
            received=len(row_failures.accepted),
            rejected=row_failures.n_rejected,
            rules_broken=rules,
            columns_broken=columns,
        )
    _write_report(root, spec, report)
    log.warning("%s: %s rejected whole by rule %s", spec.name, file_name, error.rule)
    return error


def ingest_extract(
    root: UPath, spec: SourceSpec, file_name: str, *, tombstone_key: bytes | None = None
) -> IngestReport:
    """Ingest one landed file of ``spec`` by name; idempotent per file content.

    Returns the ingest report (``skipped`` when the same content was already ingested). Raises
    :class:`ExtractRejected` when the file is rejected whole, after quarantining it and writing its report;
    asked again about the same rejected content, it raises again without touching the store.

    A file re-sent under the same name replaces the earlier version's curated rows and quarantine. If the
    re-sent version is rejected whole, the earlier version's curated rows stay (the last good data for that
    extract date; their ``file_sha256`` column says which version they came from).

    Rows of erased persons (a tombstone on their keys, :mod:`supporting_families.registers.tombstones`) are
    not curated; ``tombstone_key`` is needed once any tombstone exists.
    """
    path = landing_dir(root, spec) / file_name
    # Taken before reading: a file replaced while it is read gets a newer stamp and is looked at again.
    stamp = landed_stamp(path)
    data = path.read_bytes()
    sha = sha256_bytes(data)
    earlier = read_report(root, spec, file_name)
    if earlier is not None and earlier.file_sha256 == sha:
        if earlier.status == "rejected":
            raise ExtractRejected(file_name, earlier.rule or "unknown", earlier.detail or "rejected earlier")
        log.info("%s: %s already ingested with this content; nothing to do", spec.name, file_name)
        return replace(earlier, skipped=True)
    if earlier is not None:
        log.info("%s: %s was re-sent with other content; ingesting it again", spec.name, file_name)

    extract_date: date | None = None
    try:
        extract_date = extract_date_of(spec, file_name)
        extract = read_extract_file(data, spec, file_name)
    except ExtractRejected as error:
        raise _reject_whole(root, spec, file_name, data, sha, error, extract_date, stamp=stamp) from None
    verdict = validate_rows(extract, spec, extract_date)
    received = extract.received
    accepted, rejected = verdict.n_accepted, verdict.n_rejected
    if accepted + rejected != received:
        raise RuntimeError(
            f"{spec.name}: {file_name}: {accepted} accepted + {rejected} rejected != {received} received"
        )
    if accepted == 0:
        all_failed = ExtractRejected(file_name, "no_valid_rows", f"all {received} rows broke a row rule")
        raise _reject_whole(
            root, spec, file_name, data, sha, all_failed, extract_date, verdict, stamp=stamp
        ) from None

    keep = pa.array(verdict.accepted)
    curated = standardise(
        extract.values.filter(keep),
        pa.array(np.flatnonzero(verdict.accepted) + 2, pa.int64()),
        spec,
        extract_date,
        sha,
    )
    if curated.num_rows != accepted:
        raise RuntimeError(f"{spec.name}: {file_name}: curated {curated.num_rows} rows, accepted {accepted}")
    # An erased person is not brought back by the department's next extract (UK GDPR Article 17).
    curated, dropped = drop_tombstoned(tombstone_key, curated, read_tombstones(root))

    _clear_quarantine(root, spec, file_name)
    quarantine: str | None = None
    if rejected:
        folder = quarantine_dir(root, spec, file_name)
        write_bytes_atomic(folder / "rejected_rows.csv", _rejected_rows_csv(extract, ~verdict.accepted))
        write_bytes_atomic(folder / "report.csv", _report_csv(file_name, verdict.failures))
        quarantine = _relative(root, folder)
    target = curated_path(root, spec, extract_date)
    write_parquet(curated, target)
    rules, columns = _broken(verdict.failures)
    report = IngestReport(
        source=spec.name,
        file=file_name,
        file_sha256=sha,
        size_bytes=len(data),
        status="ingested",
        extract_date=extract_date.isoformat(),
        received=received,
        accepted=accepted,
        rejected=rejected,
        rules_broken=rules,
        columns_broken=columns,
        curated=_relative(root, target),
        quarantine=quarantine,
        landed_stamp=stamp,
        dropped_by_tombstone=dropped,
    )
    _write_report(root, spec, report)  # last: the marker that the file is done
    log.info(
        "%s: %s ingested: %d received, %d accepted, %d rejected",
        spec.name,
        file_name,
        received,
        accepted,
        rejected,
    )
    return report


def ingest_source(root: UPath, spec: SourceSpec, *, tombstone_key: bytes | None = None) -> list[IngestReport]:
    """Ingest every pending file of one source; a file rejected whole is reported, not raised."""
    reports = []
    pending = pending_extracts(root, spec)
    progress = Progress(log, "ingest", len(pending), unit="extracts")  # counts only: no file names
    for file_name in pending:
        try:
            reports.append(ingest_extract(root, spec, file_name, tombstone_key=tombstone_key))
        except ExtractRejected:
            report = read_report(root, spec, file_name)
            if report is None:  # pragma: no cover - _reject_whole always writes one
                raise
            reports.append(report)
        progress.advance(1)
    progress.finish()
    return reports
