"""Which return a receive run waits for (receive.expected), without Airflow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from supporting_families.config.agreements import load_agreements
from supporting_families.receive import DeliveryEvent, expected_delivery, expected_return
from supporting_families.share import delivery_id_for

DWP = "dwp-benefits-matching"
T1 = datetime(2026, 4, 1, 6, tzinfo=UTC)
T2 = datetime(2026, 4, 8, 6, tzinfo=UTC)


def test_conf_wins_and_is_checked() -> None:
    given = delivery_id_for(DWP, "manual__x")
    assert expected_delivery(DWP, given, [DeliveryEvent(T1, source_run_id="scheduled__y")]) == given
    with pytest.raises(ValueError, match="conf delivery_id must match"):
        expected_delivery(DWP, "../../etc", [])


def test_the_latest_event_names_the_delivery() -> None:
    events = [
        DeliveryEvent(T2, source_run_id="scheduled__new"),
        DeliveryEvent(T1, source_run_id="scheduled__old"),
    ]
    assert expected_delivery(DWP, None, events) == delivery_id_for(DWP, "scheduled__new")
    named = [DeliveryEvent(T1, source_run_id="a"), DeliveryEvent(T2, delivery_id="dabcdefghijklmnop")]
    assert expected_delivery(DWP, None, named) == "dabcdefghijklmnop"
    assert expected_delivery(DWP, None, []) is None
    assert expected_delivery(DWP, None, [DeliveryEvent(T1)]) is None


def test_the_sensor_pattern_is_the_deliverys_or_the_agreements() -> None:
    agreement = next(a for a in load_agreements(resolve=False) if a.id == DWP)
    delivery_id = delivery_id_for(DWP, "manual__x")
    expected = expected_return(agreement, delivery_id)
    prefix = agreement.returns.file_pattern.partition("*")[0]
    assert expected["pattern"] == f"{prefix}{delivery_id}*"
    assert expected["file"] is not None and delivery_id in expected["file"]
    assert expected_return(agreement, None) == {
        "delivery_id": None,
        "file": None,
        "pattern": agreement.returns.file_pattern,
    }
