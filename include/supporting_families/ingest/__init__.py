"""Ingest: read, validate, standardise and quarantine the departments' extracts.

One call per landed file, :func:`ingest_extract` (or :func:`ingest_source` for all of a source's pending
files): a file that cannot be read reliably is quarantined whole and raises :class:`ExtractRejected`; the
rows of any other are validated lazily, the accepted ones written to ``curated/`` under the register's
names and types, the rejected ones quarantined with a report of rules and row numbers (never values).

    from supporting_families.ingest import ExtractRejected, ingest_extract, pending_extracts
"""

from __future__ import annotations

from supporting_families.ingest.pipeline import (
    FILE_RULES,
    ROW_RULES,
    ExtractRejected,
    IngestReport,
    curated_path,
    curated_schema,
    ingest_extract,
    ingest_source,
    landing_dir,
    pending_extracts,
    quarantine_dir,
    read_report,
    report_path,
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
