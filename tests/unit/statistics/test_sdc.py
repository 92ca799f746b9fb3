"""Disclosure control: the threshold rule, rounding, and the attacker's audit over linked tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supporting_families.statistics import (
    FACTS_SCHEMA,
    SdcParameters,
    build_cell_sets,
    feasibility_intervals,
    primary_suppression,
    protect,
    protect_linked,
    round_to_base,
)
from supporting_families.statistics.tables import AGE_BANDS

HEADLINES = (
    "school_attendance",
    "children_needing_help",
    "worklessness",
    "domestic_abuse",
    "health",
    "crime",
)
PARAMS = SdcParameters()


def population(seed: int, n: int, wards: int = 6, months: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    # Skewed: most families in a few wards, so small cells are common (the case that needs protecting).
    ward_p = rng.dirichlet(np.full(wards, 0.6))
    return pa.table(
        {
            "family_id": [f"F{i}" for i in range(n)],
            "headline_mask": rng.integers(1, 2 ** len(HEADLINES), n),
            "assessed": rng.random(n) < 0.15,
            "ward": rng.choice([f"Ward {chr(65 + i)}" for i in range(wards)], n, p=ward_p),
            "month": rng.choice([f"2026-{m:02d}" for m in range(1, months + 1)], n),
            "age_band": rng.choice(list(AGE_BANDS), n),
        },
        schema=FACTS_SCHEMA,
    )


def assert_protected(sets_cells: list, params: SdcParameters) -> int:  # type: ignore[type-arg]
    """Every confidential cell suppressed; every suppressed cell's interval at least threshold wide."""
    checked = 0
    for cells in sets_cells:
        values = cells.values
        assert not (primary_suppression(values, params.threshold) & ~cells.suppressed).any()
        lo, hi = feasibility_intervals(cells)
        for c in np.flatnonzero(cells.suppressed):
            assert lo[c] <= values[c] + 1e-6 <= hi[c] + 2e-6, cells.keys[c]
            assert hi[c] - lo[c] >= params.threshold - 1e-6, (cells.keys[c], lo[c], hi[c])
            checked += 1
    return checked


def test_threshold_rule_suppresses_one_to_nine_not_zero() -> None:
    values = np.array([0, 1, 9, 10, 11])
    assert primary_suppression(values, 10).tolist() == [False, True, True, False, False]


def test_rounding_to_base_five_half_up() -> None:
    assert round_to_base(np.array([0, 2, 3, 7, 8, 12, 13, 1003]), 5).tolist() == [
        0,
        0,
        5,
        5,
        10,
        10,
        15,
        1005,
    ]


def test_totals_are_rounded_from_unrounded_cells() -> None:
    facts = population(1, 300)
    sets = build_cell_sets(facts, HEADLINES, 2)
    cells = sets.places
    values = cells.values
    ward_cells = [i for i, k in enumerate(cells.keys) if k[0] == "ward" and k[2] == "identified"]
    total = next(i for i, k in enumerate(cells.keys) if k == ("totals", "Total", "identified"))
    assert values[ward_cells].sum() == values[total] == facts.num_rows
    assert round_to_base(values[[total]], 5)[0] == round_to_base(np.array([facts.num_rows]), 5)[0]


def test_primary_suppression_alone_is_recoverable_and_the_audit_says_so() -> None:
    """The attack the secondary suppression stops: with only the small cells hidden, totals give them back."""
    facts = population(2, 250)
    cells = build_cell_sets(facts, HEADLINES, 2).places
    primary = primary_suppression(cells.values, PARAMS.threshold)
    assert primary.any()
    lo, hi = feasibility_intervals(cells, primary)
    widths = (hi - lo)[primary]
    assert (widths < PARAMS.threshold).any()  # some cell can be narrowed below the threshold
    exact = [cells.keys[c] for c in np.flatnonzero(primary) if hi[c] - lo[c] < 1e-6]
    assert exact, "differencing recovers at least one cell exactly"


def test_overlapping_ward_and_ward_by_month_tables_are_protected() -> None:
    """The attacker's test: ward, month, age band and ward-by-month published together, plus the status
    tables linked through the grand totals; every suppressed cell's LP interval is >= the threshold."""
    facts = population(3, 400)
    sets = build_cell_sets(facts, HEADLINES, 2)
    linked = protect_linked([sets.status, sets.places], PARAMS)
    keys = {k[0] for k in sets.places.keys}
    assert {"ward", "ward_by_month", "month"} <= keys
    assert sets.places.suppressed.sum() > primary_suppression(sets.places.values, 10).sum()  # complements
    assert assert_protected([linked], PARAMS) > 0
    # A cell both sets publish is suppressed in both or in neither.
    shared = set(sets.status.keys) & set(sets.places.keys)
    assert shared
    for key in shared:
        assert (
            sets.status.suppressed[sets.status.keys.index(key)]
            == sets.places.suppressed[sets.places.keys.index(key)]
        )


@pytest.mark.parametrize("threshold", [3, 10, 20])
def test_threshold_is_a_parameter(threshold: int) -> None:
    params = SdcParameters(threshold=threshold, rounding_base=1)
    cells = build_cell_sets(population(4, 200), HEADLINES, 2).places
    protect(cells, params)
    assert_protected([cells], params)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(20, 150),
    wards=st.integers(2, 5),
    months=st.integers(1, 3),
    threshold=st.sampled_from([5, 10]),
)
def test_property_every_suppressed_cell_is_at_least_threshold_wide(
    seed: int, n: int, wards: int, months: int, threshold: int
) -> None:
    params = SdcParameters(threshold=threshold)
    sets = build_cell_sets(population(seed, n, wards, months), HEADLINES, 2)
    linked = protect_linked([sets.status, sets.places], params)
    assert_protected([linked], params)
