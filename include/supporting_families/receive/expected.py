"""Which return a receive run waits for: the delivery it answers, and the names the sensor may wake on.

A delivery's id is derived from the agreement and the share's run id (``share.delivery_id_for``,
docs/STORE.md), so the run that emitted a delivery event names the delivery. A partner's return names the
delivery it answers (the agreement's ``returns.file_pattern``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from supporting_families.config.agreements import Agreement
from supporting_families.receive.records import return_file_name
from supporting_families.share.delivery import DELIVERY_ID_PATTERN, delivery_id_for


@dataclass(frozen=True)
class DeliveryEvent:
    """What a receive run is told of one delivery: when, and the delivery or the share run behind it."""

    timestamp: datetime
    delivery_id: str | None = None
    source_run_id: str | None = None


def expected_delivery(agreement_id: str, given: object, events: Iterable[DeliveryEvent]) -> str | None:
    """The delivery a run answers: ``given`` (a run's ``conf["delivery_id"]``), else the latest event's.

    An event that names its delivery is taken at its word; otherwise the id is derived from the share run
    that emitted it. None when the run was told of no delivery.
    """
    if given:
        if not re.fullmatch(DELIVERY_ID_PATTERN, str(given)):
            raise ValueError(f"conf delivery_id must match {DELIVERY_ID_PATTERN} (share.delivery_id_for)")
        return str(given)
    latest = max(events, key=lambda e: e.timestamp, default=None)
    if latest is None:
        return None
    if latest.delivery_id:
        return latest.delivery_id
    return delivery_id_for(agreement_id, latest.source_run_id) if latest.source_run_id else None


def expected_return(agreement: Agreement, delivery_id: str | None) -> dict[str, str | None]:
    """The return file a run waits for, and the pattern its sensor wakes on.

    The sensor wakes for this delivery's return in any spelling the partner's server lists
    (``<prefix><delivery id>*``), hostile ones included, so a refused name fails the run at once instead of
    leaving it to wait for a name that never comes. Hidden names never match. A run without a delivery
    waits on the agreement's pattern.
    """
    if not delivery_id:
        return {"delivery_id": None, "file": None, "pattern": agreement.returns.file_pattern}
    prefix = agreement.returns.file_pattern.partition("*")[0]
    return {
        "delivery_id": delivery_id,
        "file": return_file_name(agreement, delivery_id),
        "pattern": f"{prefix}{delivery_id}*",
    }
