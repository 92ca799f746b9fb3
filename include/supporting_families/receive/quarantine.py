"""A return's state, and quarantine: a rejected file kept whole with a row-level report and no values."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from upath import UPath

from supporting_families.audit import Ledger, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.receive.records import (
    _REASON_ROWS,
    QUARANTINE_RULES,
    Received,
    ReturnPaths,
    ReturnState,
    RunInfo,
    _entry,
    _read_json,
    ledger_file_name,
)
from supporting_families.receive.validate import (
    PROBLEMS_SCHEMA,
    RETURN_ROW_RULES,
    ReturnRejected,
    shown_name,
)
from supporting_families.share.delivery import local_file, upload
from supporting_families.store.io import (
    delete_file,
    sha256_of,
    write_bytes_atomic,
)

log = logging.getLogger(__name__)


def _quarantine_records(paths: ReturnPaths) -> Iterator[tuple[UPath, dict[str, Any]]]:
    for folder in paths.quarantine_folders():
        reason = _read_json(folder / "reason.json")
        if reason is not None:
            yield folder, reason


def handled_state(store: UPath, agreement: Agreement, name: str) -> tuple[ReturnState, Received | None]:
    """Whether ``name`` was taken in, quarantined (the latest), is archived but unprocessed, or absent."""
    paths = ReturnPaths(store, agreement.id, name)
    if paths.reconciliation_path.exists():
        return "accepted", Received.from_json(paths.received_path.read_text())
    if paths.received_path.exists():
        return "pending", Received.from_json(paths.received_path.read_text())
    records = sorted(_quarantine_records(paths), key=lambda r: str(r[1].get("quarantined_at", "")))
    if records:
        folder, _ = records[-1]
        received = folder / "received.json"
        return "quarantined", Received.from_json(received.read_text()) if received.exists() else None
    return "absent", None


def _quarantined_before(store: UPath, agreement: Agreement, name: str) -> ReturnQuarantined:
    """The quarantine of an earlier try, raised again so a retried task stays failed."""
    paths = ReturnPaths(store, agreement.id, name)
    folder, reason = sorted(_quarantine_records(paths), key=lambda r: str(r[1].get("quarantined_at", "")))[-1]
    problems = PROBLEMS_SCHEMA.empty_table()
    report = folder / "report.csv"
    if report.exists():
        rows = [r for r in csv.DictReader(io.StringIO(report.read_text())) if r["row_number"]]
        problems = pa.table(
            {
                "row_number": pa.array([int(r["row_number"]) for r in rows], pa.int64()),
                "column": pa.array([r["column"] for r in rows], pa.string()),
                "rule": pa.array([r["rule"] for r in rows], pa.string()),
            },
            schema=PROBLEMS_SCHEMA,
        )
    relative = str(folder.path).removeprefix(str(store.path)).lstrip("/")
    return ReturnQuarantined(name, str(reason.get("rule")), str(reason.get("detail")), problems, relative)


def quarantine_reason(store: UPath, agreement: Agreement, name: str) -> dict[str, Any] | None:
    """The most recent ``reason.json`` of a quarantined return (no values: rule, rows, counts, hashes)."""
    paths = ReturnPaths(store, agreement.id, name)
    records = sorted(_quarantine_records(paths), key=lambda r: str(r[1].get("quarantined_at", "")))
    return records[-1][1] if records else None


# -- quarantine ---------------------------------------------------------------------------------------


class ReturnQuarantined(ReturnRejected):
    """A return was rejected and moved to quarantine; ``folder`` is its place in the store."""

    def __init__(
        self, file: str, rule: str, detail: str, problems: pa.Table | None = None, folder: str = ""
    ) -> None:
        self.folder = folder
        super().__init__(file, rule, detail, problems)

    def _message(self) -> str:
        # The folder is named after the file: shown the same way.
        folder = self.folder.replace(self.file, shown_name(self.file).replace(" ", "-"))
        return super()._message() + (f"; quarantined in {folder}" if folder else "")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.rule, self.detail, self.problems, self.folder))


def _report_csv(file: str, problems: pa.Table, rule: str) -> bytes:
    """``report.csv``: file, row_number, column, rule; never a value from the file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "row_number", "column", "rule"])
    if problems.num_rows == 0:
        writer.writerow([file, "", "", rule])
    for row in problems.to_pylist():
        writer.writerow([file, row["row_number"], row["column"], row["rule"]])
    return out.getvalue().encode("utf-8")


def _quarantine_target(paths: ReturnPaths, sha256: str) -> UPath:
    base = paths.quarantine_base
    reason = _read_json(base / "reason.json")
    if reason is None or reason.get("ciphertext_sha256") == sha256:
        return base
    # An earlier, different bad file under the same name keeps its folder: nothing is lost.
    return base.with_name(f"{paths.name}~{sha256[:16]}")


def _write_quarantine(
    store: UPath,
    agreement: Agreement,
    original: Path,
    received: Received,
    exc: ReturnRejected,
    *,
    ledger: Ledger,
    run: RunInfo | None,
) -> ReturnQuarantined:
    paths = ReturnPaths(store, agreement.id, received.name)
    target = _quarantine_target(paths, received.ciphertext_sha256)
    upload(original, target / received.name)
    if sha256_of(target / received.name) != received.ciphertext_sha256:
        raise RuntimeError(f"{agreement.id}: the quarantined copy of {received.name} does not match")
    write_bytes_atomic(target / "received.json", received.to_json())
    write_bytes_atomic(target / "report.csv", _report_csv(received.name, exc.problems, exc.rule))
    rows = exc.row_numbers
    reason = {
        "file": received.name,
        "agreement_id": agreement.id,
        "rule": exc.rule,
        "rule_description": QUARANTINE_RULES.get(exc.rule, ""),
        "detail": exc.detail,
        "row_rules": sorted(set(exc.problems.column("rule").to_pylist())) if exc.problems.num_rows else [],
        "row_rule_descriptions": {
            r: RETURN_ROW_RULES.get(r, "") for r in set(exc.problems.column("rule").to_pylist())
        },
        "problems": exc.problems.num_rows,
        "row_numbers": rows[:_REASON_ROWS],
        "rows_with_problems": len(rows),
        "ciphertext_sha256": received.ciphertext_sha256,
        "bytes": received.size,
        "delivery_id": received.delivery_id,
        "late": received.late,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    # reason.json last: its presence marks the quarantine as complete.
    write_bytes_atomic(target / "reason.json", json.dumps(reason, indent=2, sort_keys=True).encode() + b"\n")
    relative = str(target.path).removeprefix(str(store.path)).lstrip("/")
    ledger.append(
        _entry(
            agreement,
            "quarantine",
            run,
            occurred_at=datetime.now(UTC),
            file_name=ledger_file_name(agreement, received.name),
            ciphertext_sha256=received.ciphertext_sha256,
            details={"rule": exc.rule, "problems": exc.problems.num_rows, "rows_with_problems": len(rows)},
            idempotency_key=idempotency_key(
                "quarantine", agreement.id, received.name, received.ciphertext_sha256
            ),
        )
    )
    quarantined = ReturnQuarantined(exc.file, exc.rule, exc.detail, exc.problems, relative)
    log.error("%s: %s", agreement.id, quarantined)
    return quarantined


def _quarantine_archived(
    store: UPath,
    agreement: Agreement,
    paths: ReturnPaths,
    received: Received,
    exc: ReturnRejected,
    *,
    ledger: Ledger,
    run: RunInfo | None,
) -> ReturnQuarantined:
    """Move an archived return from returns/ to quarantine/ (copy, check, then remove the archive)."""
    with local_file(paths.original) as original:
        quarantined = _write_quarantine(store, agreement, original, received, exc, ledger=ledger, run=run)
    for leftover in (paths.original, paths.received_path, paths.classified_path):
        if leftover.exists():
            delete_file(leftover)
    with contextlib.suppress(OSError, NotImplementedError):
        paths.folder.rmdir()  # an object store has no folders to remove
    return quarantined
