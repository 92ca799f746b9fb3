"""docs/STORE.md and store/layout.py say the same thing, and every path function lands inside an area."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from upath import UPath

from supporting_families.store import layout
from tests.store_walk import area_of

REPO = Path(__file__).resolve().parents[3]


def test_store_md_is_the_layout() -> None:
    text = (REPO / "docs" / "STORE.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert "\n".join(rows) + "\n" == "\n".join(layout.markdown_table().splitlines()[2:]) + "\n", (
        "docs/STORE.md's table differs from store/layout.py: regenerate it with "
        "`python -m supporting_families.store.layout`"
    )


def test_every_area_has_a_retention_class_and_a_personal_data_marking() -> None:
    for area in layout.AREAS:
        assert area.retention and area.personal_data in ("direct", "by_id", "encrypted", "none"), area


def test_the_path_functions_land_in_their_areas(tmp_path: Path) -> None:
    root = UPath(tmp_path.as_uri())
    d = date(2026, 3, 31)
    built = {
        layout.curated_file(root, "housing", d): "curated",
        layout.ingest_quarantine_dir(root, "housing", "housing_2026-03-31.csv")
        / "report.csv": "ingest_quarantine",
        layout.ingest_report_file(root, "housing", "housing_2026-03-31"): "reports",
        layout.register_file(root, "persons"): "register",
        layout.register_file(root, "restrictions"): "register",
        layout.partner_flags_file(root, "dwp-benefits-matching", "dwp-return-dabc"): "returns",
        layout.identification_dir(root, d) / "worklist.parquet": "identification",
        layout.staging_dir(root, "dwp-benefits-matching", "dabc")
        / "sf-dwp-benefits-matching-dabc.csv": "staging",
        layout.delivery_dir(root, "dwp-benefits-matching", "dabc") / layout.REFERENCES_FILE: "references",
        layout.return_dir(root, "dwp-benefits-matching", "dwp-return-dabc.csv.gpg")
        / "received.json": "returns",
        layout.return_quarantine_dir(root, "dwp-benefits-matching", "x.csv.gpg") / "reason.json": (
            "return_quarantine"
        ),
        layout.landing_dir(root, "extracts/housing/housing_*.csv") / "housing_2026-03-31.csv": "landing",
    }
    for path, retention in built.items():
        relative = Path(path.path).relative_to(tmp_path).as_posix()
        area = area_of(relative)
        assert area is not None and area.retention == retention, relative
