"""The ledger's evidence of a retention sweep: one ``deletion`` entry per area (retention class) and day.

Each entry holds counts, the rule that applied and a SHA-256 of the sorted list of deleted paths; never a
path or a name (a path can carry a source's file name, and the ledger is immutable). An auditor who is shown
the list (``python -m supporting_families.retention sweep --dry-run`` prints it before the run) can hash it
and compare. The idempotency key is the class and the day, so a retried sweep records each once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from supporting_families.audit import NewEntry, idempotency_key
from supporting_families.retention.sweep import SweepPlan, SweepResult


def deletion_entries(
    plan: SweepPlan,
    result: SweepResult,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    triggered_by: str | None,
    rules: dict[str, str] | None = None,
) -> list[NewEntry]:
    """One entry per class that had anything due, held or shredded on the sweep's day (``rules``: the rule
    codes of classes the plan does not know, e.g. Airflow's metadata and logs)."""
    rules = {**{cls: row["rule"] for cls, row in plan.by_class().items()}, **(rules or {})}
    # The sweep happens now; the day it swept for is in the idempotency key (a date in details would be
    # refused by the ledger's personal-data guard).
    occurred = datetime.now(UTC)
    entries = []
    for cls, evidence in sorted(result.evidence().items()):
        details: dict[str, Any] = {"area": cls, "rule": rules.get(cls, "key-unused"), **evidence}
        entries.append(
            NewEntry(
                kind="deletion",
                occurred_at=occurred,
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                triggered_by=triggered_by,
                row_count=int(evidence.get("files_deleted", 0)) + int(evidence.get("rows_removed", 0)),
                details=details,
                idempotency_key=idempotency_key("deletion", "retention", cls, result.as_of.isoformat()),
            )
        )
    return entries


__all__ = ["deletion_entries"]
