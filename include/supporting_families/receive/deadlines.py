"""Return deadlines: a late return is still taken in, marked late and alerted; a missed one is recorded."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Literal

from upath import UPath

from supporting_families.audit import NewEntry, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.receive.records import _DAY, Received, RunInfo, _entry, return_file_name
from supporting_families.share.delivery import Delivery

log = logging.getLogger(__name__)


def _lateness(
    store: UPath, agreement: Agreement, delivery_id: str | None, arrived_at: datetime
) -> tuple[bool | None, int | None]:
    """Whether a return arriving at ``arrived_at`` missed ``returns.deadline_days`` after its delivery."""
    if delivery_id is None:
        return None, None
    receipt = Delivery(store, agreement.id, delivery_id).receipt()
    if receipt is None or "delivered_at" not in receipt:
        return None, None
    delivered_at = datetime.fromisoformat(str(receipt["delivered_at"]))
    late = arrived_at > delivered_at + timedelta(days=agreement.returns.deadline_days)
    return late, max(0, (arrived_at - delivered_at) // _DAY)


def _alert_if_late(agreement: Agreement, received: Received) -> None:
    if received.late:
        # a late return raises a visible alert rather than passing silently.
        log.error(
            "DEADLINE ALERT: %s arrived %s days after its delivery; %s's deadline is %s days",
            received.name,
            received.days_after_delivery,
            agreement.id,
            agreement.returns.deadline_days,
        )


def deadline_entry(
    agreement: Agreement,
    *,
    outcome: Literal["deadline_missed", "no_return"],
    occurred_at: datetime,
    run: RunInfo,
    delivery_id: str | None = None,
) -> NewEntry:
    """The ledger entry for a return that had not arrived by the deadline (or by the end of waiting).

    Recorded as a ``reconciliation`` whose outcome says nothing came back: at that moment every reference
    of the delivery is ``no_trace``.
    """
    details: dict[str, Any] = {"outcome": outcome, "deadline_days": agreement.returns.deadline_days}
    if delivery_id is not None:
        details["expected_file"] = return_file_name(agreement, delivery_id)
    return _entry(
        agreement,
        "reconciliation",
        run,
        occurred_at=occurred_at,
        details=details,
        idempotency_key=idempotency_key(
            "reconciliation", outcome, agreement.id, run.run_id or "", delivery_id or ""
        ),
    )
