"""Retention for Airflow's own records: its metadata database and its task logs.

Neither holds personal data by design (docs/ARCHITECTURE.md: counts, hashes and ids only in XCom and logs),
yet both are kept no longer than ``include/retention.yaml``'s ``airflow:`` says. The metadata is cleaned
with Airflow's own ``airflow db clean`` (the retention DAG runs it on the scheduler's side); the logs by a
rule on the logs folder. Both leave the same evidence as the store's sweep: a ``deletion`` entry with counts
and a hash of what went.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

_CHECKING: Final = re.compile(r"^Checking table (?P<table>[A-Za-z0-9_]+)\s*$")
_FOUND: Final = re.compile(r"^Found (?P<rows>[0-9]+) rows meeting deletion criteria\.\s*$")


def db_clean_counts(output: str) -> dict[str, int]:
    """Rows ``airflow db clean`` found per table, from its own output ("Checking table X" then "Found N
    rows meeting deletion criteria.")."""
    counts: dict[str, int] = {}
    table: str | None = None
    for line in output.splitlines():
        if match := _CHECKING.match(line.strip()):
            table = match["table"]
        elif (match := _FOUND.match(line.strip())) and table is not None:
            counts[table] = int(match["rows"])
            table = None
    return counts


def db_clean_command(airflow: str, cutoff: datetime) -> list[str]:
    """The ``airflow db clean`` call: everything older than ``cutoff``, no archive tables (an archive would
    keep what retention deletes), no prompt."""
    return [
        airflow,
        "db",
        "clean",
        "--clean-before-timestamp",
        cutoff.astimezone(UTC).isoformat(),
        "--skip-archive",
        "--yes",
    ]


def stale_logs(folder: Path, days: int, now: datetime | None = None) -> list[Path]:
    """Task log files under ``folder`` last written more than ``days`` ago (symlinks are never followed)."""
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=days)).timestamp()
    found = []
    for dirpath, _dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink() and path.stat().st_mtime < cutoff:
                found.append(path)
    return sorted(found)


def delete_logs(folder: Path, paths: list[Path]) -> list[str]:
    """Delete ``paths`` (each inside ``folder``) and the folders they leave empty; returns relative paths."""
    root = folder.resolve()
    deleted = []
    for path in paths:
        resolved = path.resolve()
        if root not in resolved.parents:
            continue  # never outside the logs folder
        resolved.unlink(missing_ok=True)
        deleted.append(resolved.relative_to(root).as_posix())
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda d: -len(d[0])):
        here = Path(dirpath)
        if here != root and not any(here.iterdir()):
            here.rmdir()
    return deleted


__all__ = ["db_clean_command", "db_clean_counts", "delete_logs", "stale_logs"]
