"""Minimisation fails closed, and nothing the agreement does not list ever reaches the partner's file."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supporting_families.config.agreements import Agreement, load_agreements
from supporting_families.share.package import (
    Manifest,
    MinimisationError,
    check_minimised,
    minimise,
    new_manifest,
    write_partner_csv,
)
from supporting_families.store.schemas import SHAREABLE_FIELDS

AGREEMENTS = {a.id: a for a in load_agreements(resolve=False)}


def _share_view(n: int = 3) -> pa.Table:
    """A share view with every shareable field and the internal ids a cohort query carries along."""
    cols: dict[str, pa.Array] = {}
    for name in SHAREABLE_FIELDS:
        if name == "date_of_birth":
            cols[name] = pa.array([date(2010, 1, 2)] * n)
        else:
            cols[name] = pa.array([f"{name}-{i}" for i in range(n)])
    cols["person_id"] = pa.array([f"P{i}" for i in range(n)])
    cols["family_id"] = pa.array([f"F{i}" for i in range(n)])
    return pa.table(cols)


@pytest.mark.parametrize("agreement", AGREEMENTS.values(), ids=lambda a: a.label)
def test_minimise_keeps_exactly_the_agreed_fields_in_order(agreement: Agreement) -> None:
    out = minimise(_share_view(), agreement)
    assert tuple(out.column_names) == agreement.fields


def test_police_get_name_dob_postcode_only() -> None:
    # Police agreement: "Personal data restricted to name, date of birth and postcode".
    police = AGREEMENTS["met-police-wider-help"]
    out = minimise(_share_view(), police)
    assert set(out.column_names) == {"person_ref", "given_name", "family_name", "date_of_birth", "postcode"}


def test_missing_field_stops_the_run() -> None:
    dwp = AGREEMENTS["dwp-benefits-matching"]
    with pytest.raises(MinimisationError, match="lacks agreed fields"):
        minimise(_share_view().drop_columns(["uprn"]), dwp)


def test_packager_refuses_extra_columns(tmp_path: Path) -> None:
    dwp = AGREEMENTS["dwp-benefits-matching"]
    wide = _share_view()
    with pytest.raises(MinimisationError, match="extra"):
        write_partner_csv(wide, dwp, tmp_path / "x.csv")
    assert not list(tmp_path.iterdir()), "nothing may be written when minimisation fails"


def test_packager_refuses_reordered_columns() -> None:
    dwp = AGREEMENTS["dwp-benefits-matching"]
    out = minimise(_share_view(), dwp)
    with pytest.raises(MinimisationError, match="order"):
        check_minimised(out.select(list(reversed(out.column_names))), dwp)


_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.lists(_name, min_size=1, max_size=6, unique=True),
    agreement_id=st.sampled_from(sorted(AGREEMENTS)),
)
def test_no_added_column_ever_leaves(tmp_path: Path, extra: list[str], agreement_id: str) -> None:
    agreement = AGREEMENTS[agreement_id]
    view = _share_view()
    for name in extra:
        if name not in view.column_names:
            view = view.append_column(name, pa.array([f"SECRET-{name}"] * view.num_rows))
    target = tmp_path / f"{agreement_id}.csv"
    write_partner_csv(minimise(view, agreement), agreement, target)
    with target.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
        body = fh.read()
    assert tuple(header) == agreement.fields
    assert "SECRET-" not in body


def test_formula_cells_are_neutralised(tmp_path: Path) -> None:
    police = AGREEMENTS["met-police-wider-help"]
    view = _share_view(4)
    view = view.set_column(
        view.column_names.index("family_name"),
        "family_name",
        pa.array(["=HYPERLINK(1)", "+1", "@SUM(A1)", "O'Neil"]),
    )
    target = tmp_path / "p.csv"
    write_partner_csv(minimise(view, police), police, target)
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["family_name"][0] for r in rows[:3]] == ["'", "'", "'"]
    assert rows[3]["family_name"] == "O'Neil"
    assert rows[0]["date_of_birth"] == "2010-01-02"


def test_manifest_round_trip() -> None:
    dwp = AGREEMENTS["dwp-benefits-matching"]
    m = new_manifest(dwp, "manual__1", 3, "f.csv", "ab" * 32)
    assert Manifest.from_json(m.to_json()) == m
    assert m.fields == dwp.fields and m.key_version == dwp.pseudonymisation.key_version
