"""Retention: deletion one year after the programme ends at the latest, earlier where no longer needed.

The privacy notice: "retained for up to one year after the end of the programme ... deleted when no longer
needed under strict information security arrangements". Rules: ``include/retention.yaml`` and each
agreement's ``retention:``; the sweep: :mod:`supporting_families.retention.sweep`; its ledger evidence:
:mod:`supporting_families.retention.evidence`.
"""

from supporting_families.retention.evidence import deletion_entries
from supporting_families.retention.sweep import (
    HOLDS,
    Item,
    SweepPlan,
    SweepResult,
    apply_sweep,
    hold_key_id,
    overdue,
    plan_sweep,
    shred_unused_keys,
)

__all__ = [
    "HOLDS",
    "Item",
    "SweepPlan",
    "SweepResult",
    "apply_sweep",
    "deletion_entries",
    "hold_key_id",
    "overdue",
    "plan_sweep",
    "shred_unused_keys",
]
