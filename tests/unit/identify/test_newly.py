"""Families newly on the worklist: against the previous identification, once per run, and what the lead
practitioner's e-mail may say (the family reference and the criteria's reasons, nothing else)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.audit import Ledger
from supporting_families.identify import (
    FAMILY_PROBLEMS_SCHEMA,
    WORKLIST_SCHEMA,
    identification_entry,
    newly_eligible,
    notification_rows,
    record_compared,
)
from supporting_families.store import identification_dir
from supporting_families.store.io import write_parquet

D1, D2, D3 = date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)


def _identification(store: UPath, as_of: date, families: list[str]) -> None:
    folder = identification_dir(store, as_of)
    problems = [
        {
            "family_id": fid,
            "headline": headline,
            "title": title,
            "sub_criteria": [code],
            "sources": [code],
            "persons": 1,
            "latest_evidence_date": as_of,
            "from_partner": False,
            "reason": f"{title}: a reason from {code}",
        }
        for fid in families
        for headline, title, code in (("crime", "Crime", "asb"), ("education", "Education", "attendance"))
    ]
    write_parquet(
        pa.Table.from_pylist(problems, schema=FAMILY_PROBLEMS_SCHEMA), folder / "family_problems.parquet"
    )
    rows = [
        {
            "as_of": as_of,
            "family_id": fid,
            "problems": 2,
            "headline_problems": ["crime", "education"],
            "reasons": ["asb", "attendance"],
            "persons_flagged": 1,
            "members": 3,
            "latest_evidence_date": as_of,
            "from_partner": False,
        }
        for fid in families
    ]
    table = pa.Table.from_pylist(
        [{**r, **{f.name: None for f in WORKLIST_SCHEMA if f.name not in r}} for r in rows],
        schema=WORKLIST_SCHEMA,
    )
    write_parquet(table, folder / "worklist.parquet")


@pytest.fixture
def store(tmp_path: Path) -> UPath:
    return UPath((tmp_path / "store").as_uri())


def test_the_first_worklist_is_all_new_and_a_retry_finds_the_same_families(store: UPath) -> None:
    _identification(store, D1, ["F1", "F2"])
    found = newly_eligible(store, D1, "run-1")
    assert [f.family_id for f in found.families] == ["F1", "F2"] and found.first
    assert not found.already_compared
    record_compared(store, found)
    retry = newly_eligible(store, D1, "run-1")
    assert retry.already_compared and [f.family_id for f in retry.families] == ["F1", "F2"]
    # Another run over the same evidence: nothing is new.
    again = newly_eligible(store, D1, "run-2")
    assert not again.already_compared and again.families == ()


def test_a_family_is_new_against_the_previous_identification_and_again_after_it_left(store: UPath) -> None:
    _identification(store, D1, ["F1", "F2"])
    record_compared(store, newly_eligible(store, D1, "run-1"))
    _identification(store, D2, ["F2", "F3"])
    second = newly_eligible(store, D2, "run-2")
    assert [f.family_id for f in second.families] == ["F3"] and not second.first
    record_compared(store, second)
    _identification(store, D3, ["F1", "F2", "F3"])
    third = newly_eligible(store, D3, "run-3")
    assert [f.family_id for f in third.families] == ["F1"]
    # The same day identified again after a partner's return: compared against that day's record.
    record_compared(store, third)
    _identification(store, D3, ["F1", "F2", "F3", "F4"])
    assert [f.family_id for f in newly_eligible(store, D3, "run-4").families] == ["F4"]


def test_the_mail_holds_the_family_reference_and_the_reasons_only(store: UPath) -> None:
    _identification(store, D1, ["F1"])
    found = newly_eligible(store, D1, "run-1")
    rows = notification_rows(found)
    assert rows == [
        {"family reference": "F1", "headline problem": "Crime", "reason": "Crime: a reason from asb"},
        {
            "family reference": "F1",
            "headline problem": "Education",
            "reason": "Education: a reason from attendance",
        },
    ]


def test_the_identification_entry_holds_counts_and_the_worklists_hash(store: UPath, tmp_path: Path) -> None:
    _identification(store, D1, ["F1", "F2"])
    found = newly_eligible(store, D1, "run-1")
    entry = identification_entry(
        found,
        {"persons": 6, "families": 3},
        occurred_at=datetime(2026, 4, 1, tzinfo=UTC),
        notified=True,
        dag_id="identify_families",
        run_id="run-1",
        task_id="tell_lead_practitioner",
        try_number=1,
        triggered_by="asset_event",
    )
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        recorded = ledger.append(entry)
        assert ledger.append(entry).seq == recorded.seq, "a retry records the identification once"
    assert recorded.kind == "assessment" and recorded.triggered_by == "asset_event"
    assert recorded.details["newly_eligible"] == 2 and recorded.details["eligible_families"] == 2
    assert recorded.details["worklist_sha256"] == found.worklist_sha256
    assert "F1" not in str(recorded.to_dict())
