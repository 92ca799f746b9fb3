"""What the auditor's console asks of the ledger: filtered keyset pages, counts, exports, the chain
verified incrementally from a head verified before, the exchange history, one person's disclosures, and
who acted (a pseudonymous staff id)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from upath import UPath

from supporting_families.audit import (
    STAFF_ID_PREFIX,
    TABLE_NAME,
    Anchor,
    Ledger,
    LedgerSearch,
    NewEntry,
    actor,
    disclosure_history,
    exchange_history,
    staff_id,
)
from supporting_families.store import FileKeyStore, delivery_references_file, write_sealed_table
from supporting_families.store.layout import relative

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def disclosure(i: int, agreement: str, partner: str, days: int, rows: int = 10) -> NewEntry:
    return NewEntry(
        kind="disclosure",
        occurred_at=T0 + timedelta(days=days),
        agreement_id=agreement,
        partner=partner,
        purpose="To find families who may benefit from support.",
        legal_gateways=("Children Act 2004 s10",),
        fields=("person_ref", "postcode"),
        row_count=rows,
        agreement_sha256="a" * 64,
        plaintext_sha256="b" * 64,
        ciphertext_sha256=f"{i:064x}",
        file_name=f"sf-{agreement}-d{i:03d}.csv.gpg",
        dag_id=f"share__{agreement.replace('-', '_')}",
        run_id=f"manual__d{i:03d}",
        task_id="deliver",
        details={"delivery_id": f"d{i:03d}"},
        idempotency_key=f"disclosure/{agreement}/d{i:03d}",
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(f"sqlite:///{tmp_path / 'audit.db'}") as opened:
        for i in range(30):
            agreement, partner = ("dwp-x", "dwp") if i % 3 else ("police-y", "police")
            opened.append(disclosure(i, agreement, partner, days=i))
        yield opened


def test_search_filters_and_pages_over_the_whole_ledger(ledger: Ledger) -> None:
    search = LedgerSearch(agreement_id="dwp-x", since=T0 + timedelta(days=3), until=T0 + timedelta(days=20))
    seen: list[int] = []
    before = None
    while True:
        page = ledger.search(search, 4, before_seq=before)
        if not page:
            break
        seen += [e.seq for e in page]
        before = page[-1].seq
    expected = [e.seq for e in ledger.search_all(search)]
    assert seen == sorted(expected, reverse=True) and len(seen) == ledger.search_count(search) == 11
    newer = ledger.search(search, 4, after_seq=seen[5])
    assert [e.seq for e in newer] == seen[1:5]
    assert ledger.search_count(LedgerSearch(partner="police")) == 10
    assert ledger.distinct_values("partner") == ["dwp", "police"]


def test_incremental_verification_walks_only_new_entries_and_sees_a_rewritten_head(
    ledger: Ledger, tmp_path: Path
) -> None:
    full = ledger.verify()
    head = Anchor(full.last_seq or 0, full.head_hash or "")
    ledger.append(disclosure(99, "dwp-x", "dwp", 40))
    report = ledger.verify_from(head)
    assert report.ok and report.entries == 31 and report.by_kind == {"disclosure": 1}
    # Rewrite the verified head behind the triggers' back: the next incremental check fails.
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        conn.execute(f"DROP TRIGGER {TABLE_NAME}_no_update")
        conn.execute(f"UPDATE {TABLE_NAME} SET entry_hash = ? WHERE seq = ?", ("f" * 64, head.seq))  # noqa: S608
    bad = ledger.verify_from(head)
    assert not bad.ok and bad.first_bad_seq == head.seq


def test_incremental_verification_checks_the_anchors_before_the_head(ledger: Ledger) -> None:
    early = ledger.get(5)
    assert early is not None
    wrong = Anchor(5, "e" * 64)
    head = ledger.head()
    assert head is not None
    report = ledger.verify_from(head, [wrong])
    assert not report.ok and report.reason == "anchor_mismatch" and report.first_bad_seq == 5
    assert ledger.verify_from(head, [Anchor(5, early.entry_hash)]).ok


def test_exchange_history_counts_per_partner_per_week(ledger: Ledger) -> None:
    history = exchange_history(ledger)
    assert sum(sum(v) for v in history.series("deliveries").values()) == 30
    assert sum(sum(v) for v in history.series("rows_sent").values()) == 300
    assert history.weeks[0] == "2026-W10"


def test_disclosure_history_finds_the_person_in_each_deliverys_reference_list(
    ledger: Ledger, tmp_path: Path
) -> None:
    store = UPath((tmp_path / "store").as_uri())
    keys = FileKeyStore(tmp_path / "keys")
    for i in (0, 1, 2):
        agreement = "police-y" if i == 0 else "dwp-x"
        ids = ["P1", "P2"] if i != 1 else ["P2"]
        path = delivery_references_file(store, agreement, f"d{i:03d}")
        write_sealed_table(
            pa.table({"person_id": ids, "family_id": ids, "person_ref": ids, "family_ref": ids}),
            path,
            keys,
            "2026-03",
            relative(store, path),
        )
    rows = disclosure_history(store, ledger, "P1", keys)
    assert [(r.delivery_id, r.partner) for r in rows] == [("d000", "police"), ("d002", "dwp")]
    assert rows[0].fields == ("person_ref", "postcode") and rows[0].legal_gateway == (
        "Children Act 2004 s10",
    )
    assert disclosure_history(store, ledger, "P9", keys) == []


def test_a_person_is_recorded_by_a_keyed_staff_id_and_a_run_by_its_trigger() -> None:
    key = bytes(range(32))
    a = staff_id(key, "practitioner")
    assert a.startswith(STAFF_ID_PREFIX) and len(a) == len(STAFF_ID_PREFIX) + 32
    assert a == staff_id(key, "practitioner") != staff_id(bytes(32), "practitioner")
    assert "practitioner" not in a
    assert actor(key, "practitioner", "manual") == a
    assert actor(None, None, "scheduled") == "schedule"
    assert actor(None, None, "asset_triggered") == "asset_event"
    with pytest.raises(ValueError):
        actor(None, "someone", "manual")
