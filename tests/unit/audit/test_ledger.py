"""The audit ledger on SQLite: append, verify, tamper detection, guards, concurrency,
idempotency and the personal-data guard. The PostgreSQL twin is tests/integration/test_ledger_postgres.py.

Tampering is done as an attacker with the database file would do it: a raw ``sqlite3`` connection that
drops the append-only triggers first.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from supporting_families.audit import (
    ENTRY_KINDS,
    GENESIS_HASH,
    HASHED_COLUMNS,
    TABLE_NAME,
    Anchor,
    EntryValidationError,
    IdempotencyConflictError,
    Ledger,
    LedgerSchemaError,
    NewEntry,
    PersonalDataError,
    check_details,
    idempotency_key,
    staff_id,
)
from supporting_families.audit.cli import main
from supporting_families.config.agreements import load_agreements
from tests.ledger_concurrency import assert_one_chain, run_together, writer_process_spans

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2025, 4, 2, 6, 0, tzinfo=UTC)
RUN_ID = "scheduled__2025-04-02T06:00:00+00:00"
SHA_A = hashlib.sha256(b"plaintext").hexdigest()
SHA_B = hashlib.sha256(b"ciphertext").hexdigest()


def disclosure(**overrides: Any) -> NewEntry:
    """A complete disclosure, as the share DAG would record it."""
    values: dict[str, Any] = {
        "kind": "disclosure",
        "occurred_at": T0,
        "agreement_id": "dwp-benefits-matching",
        "agreement_sha256": hashlib.sha256(b"agreement").hexdigest(),
        "partner": "dwp",
        "purpose": "To confirm which families include adults receiving out of work benefits.",
        "legal_gateways": ("Data Protection Act 2018", "UK GDPR Article 6(1)(e)"),
        "fields": ("person_ref", "address_line_1", "postcode", "uprn"),
        "row_count": 1234,
        "plaintext_sha256": SHA_A,
        "ciphertext_sha256": SHA_B,
        "file_name": "sf-dwp-benefits-matching-dabcdefghijklmnop.csv.gpg",
        "dag_id": "share__dwp_benefits_matching",
        "run_id": RUN_ID,
        "task_id": "deliver",
        "try_number": 1,
        "triggered_by": "timetable",
        "details": {"excluded_restricted": 3, "bytes": 52_000, "schema_version": 1},
    }
    values.update(overrides)
    return NewEntry(**values)


def simple(kind: str = "assessment", **overrides: Any) -> NewEntry:
    values: dict[str, Any] = {"kind": kind, "occurred_at": T0, "details": {"families": 10}}
    if kind == "rights_action":
        values["details"] = {"action": "erase"}
    if kind == "aggregate_release":
        values.update(
            file_name="release.json", plaintext_sha256=SHA_B, dag_id="programme_statistics", run_id="r1"
        )
        values["details"] = {
            "release_id": "r0123",
            "sdc": {"threshold": 10, "rounding_base": 5},
            "tables": {},
        }
    if kind == "extract_received":
        values.update(
            partner="money-advice", file_name=SHA_A, ciphertext_sha256=SHA_B, plaintext_sha256=SHA_A
        )
        values["details"] = {"source": "debt_advice", "bytes": 1000}
    if kind in ("collection", "return_received", "reconciliation", "quarantine"):
        values.update(agreement_id="dwp-benefits-matching", partner="dwp", file_name="dwp-return-1.csv.gpg")
        values["ciphertext_sha256"] = SHA_B
    if kind == "delivery_conflict":
        values.update(
            agreement_id="dwp-benefits-matching",
            partner="dwp",
            file_name="sf-dwp-benefits-matching-dabcdefghijklmnop.csv.gpg",
            ciphertext_sha256=SHA_B,
            dag_id="share__dwp_benefits_matching",
            run_id="r1",
        )
    values.update(overrides)
    return NewEntry(**values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger" / "audit.db"


@pytest.fixture
def url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger(url) as opened:
        yield opened


@pytest.fixture(scope="session")
def filled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger file with five entries (seq 1..5), made once: each append is an fsync, so tests copy it."""
    path = tmp_path_factory.mktemp("ledger-template") / "audit.db"
    with Ledger(f"sqlite:///{path}") as ledger:
        ledger.append(disclosure())
        for kind in ("collection", "return_received", "reconciliation", "deletion"):
            ledger.append(simple(kind))
    assert not path.with_name("audit.db-wal").exists()  # checkpointed on close: one file holds it all
    return path


@pytest.fixture
def filled(filled_template: Path, db_path: Path, url: str) -> Iterator[Ledger]:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(filled_template, db_path)
    with Ledger(url) as opened:
        yield opened


@pytest.fixture(scope="module")
def untouched_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """One empty ledger for tests that show nothing gets written."""
    with Ledger(f"sqlite:///{tmp_path_factory.mktemp('untouched') / 'audit.db'}") as opened:
        yield opened


@pytest.fixture
def raw(db_path: Path) -> Callable[..., None]:
    """``raw(sql, ...)``: run SQL as an attacker with the file: triggers dropped first, kept dropped."""

    def run(*statements: str) -> None:
        with sqlite3.connect(db_path) as conn:
            conn.execute(f"DROP TRIGGER IF EXISTS {TABLE_NAME}_no_update")
            conn.execute(f"DROP TRIGGER IF EXISTS {TABLE_NAME}_no_delete")
            for sql in statements:
                conn.execute(sql)

    return run


# -- append and verify ------------------------------------------------------------------------------------


def test_append_chains_entries_and_verify_counts_them(filled: Ledger) -> None:
    entries = filled.entries(limit=10)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.entry_hash
    assert all(e.computed_hash() == e.entry_hash for e in entries)
    assert all(e.occurred_at.tzinfo is UTC and e.recorded_at.tzinfo is UTC for e in entries)

    report = filled.verify()
    assert report.ok and report.chain_ok and report.guards_ok
    assert report.entries == 5 and report.last_seq == 5 and report.head_hash == entries[-1].entry_hash
    assert report.by_kind == {
        "disclosure": 1,
        "collection": 1,
        "return_received": 1,
        "reconciliation": 1,
        "deletion": 1,
    }
    assert report.first_bad_seq is None and report.problems == 0


def test_empty_ledger_verifies(ledger: Ledger) -> None:
    report = ledger.verify()
    assert report.ok and report.entries == 0 and report.last_seq is None and ledger.head() is None


@pytest.mark.parametrize("kind", [k for k in ENTRY_KINDS if k != "disclosure"])
def test_every_kind_can_be_recorded(ledger: Ledger, kind: str) -> None:
    entry = ledger.append(simple(kind))
    assert entry.kind == kind and ledger.verify().ok


def test_occurred_at_in_another_zone_is_stored_as_utc(ledger: Ledger) -> None:
    london_summer = datetime(2025, 7, 1, 7, 0, tzinfo=timezone(timedelta(hours=1)))
    entry = ledger.append(simple(occurred_at=london_summer))
    assert entry.occurred_at == datetime(2025, 7, 1, 6, 0, tzinfo=UTC)
    assert ledger.entries(limit=1)[0].hashed_record()["occurred_at"] == "2025-07-01T06:00:00.000000Z"
    assert ledger.verify().ok


def test_append_many_is_one_chain_in_order(ledger: Ledger) -> None:
    ledger.append(simple())
    stored = ledger.append_many([simple(details={"n": i}) for i in range(5)])
    assert [e.seq for e in stored] == [2, 3, 4, 5, 6]
    assert ledger.verify().ok and ledger.count() == 6


def test_for_agreement_cites_the_agreement_that_governed() -> None:
    agreement = next(a for a in load_agreements(resolve=False) if a.id == "met-police-wider-help")
    entry = NewEntry.for_agreement(
        agreement,
        kind="disclosure",
        occurred_at=T0,
        row_count=10,
        plaintext_sha256=SHA_A,
        ciphertext_sha256=SHA_B,
        file_name="sf-met-police-wider-help-dabcdefghijklmnop.csv.gpg",
        dag_id="share__met_police_wider_help",
        run_id=RUN_ID,
        task_id="deliver",
        details={"excluded_restricted": 2},
    )
    assert entry.agreement_sha256 == agreement.source_sha256
    assert entry.partner == "met-police" and entry.fields == agreement.fields
    assert entry.legal_gateways == agreement.legal_gateways and entry.purpose == agreement.purpose
    assert entry.details == {"agreement_version": agreement.version, "excluded_restricted": 2}
    entry.validate()


# -- the canonical form, re-verified as an auditor would --------------------------------------------------


def test_an_auditor_recomputes_every_hash_with_the_stdlib(filled: Ledger, url: str) -> None:
    """The module docstring's recipe, applied to `show` output (JSON lines), needs only json and hashlib."""
    filled.append(simple(purpose="families\u2019 privacy", details={"nested": {"b": [2, 1], "a": None}}))
    lines = _cli(["show", "--url", url, "--limit", "100"]).splitlines()
    previous = GENESIS_HASH
    for line in lines:
        row = json.loads(line)
        body = {k: v for k, v in row.items() if k != "entry_hash"}
        assert sorted(body) == sorted(HASHED_COLUMNS)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode()).hexdigest() == row["entry_hash"]
        assert row["prev_hash"] == previous
        previous = row["entry_hash"]
    assert len(lines) == 6


def test_the_jq_recipe_reproduces_the_hash(ledger: Ledger, url: str) -> None:
    agreement = next(a for a in load_agreements(resolve=False) if a.id == "ons-evaluation")
    ledger.append(  # ONS's purpose has typographic quotes: non-ASCII must hash as UTF-8, unescaped
        NewEntry.for_agreement(agreement, kind="assessment", occurred_at=T0, details={"families": 3})
    )
    line = _cli(["show", "--url", url, "--limit", "1"])
    canonical = subprocess.run(
        ["jq", "-cjS", "del(.entry_hash)"], input=line.encode(), capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(canonical).hexdigest() == json.loads(line)["entry_hash"]


# -- the database refuses change --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_ledger SET row_count = 1 WHERE seq = 1", "DELETE FROM audit_ledger WHERE seq = 1"],
    ids=["update", "delete"],
)
def test_triggers_reject_update_and_delete(filled: Ledger, db_path: Path, sql: str) -> None:
    with sqlite3.connect(db_path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(sql)
    assert filled.verify().ok


def test_opening_a_ledger_whose_triggers_were_dropped_fails_closed(
    filled: Ledger, url: str, raw: Callable[..., None]
) -> None:
    raw()  # drop the triggers, change nothing else
    report = filled.verify()
    assert report.chain_ok and not report.guards_ok and not report.ok
    assert "no_update" in (report.guard_message or "")
    with pytest.raises(LedgerSchemaError, match="repair-guards"):
        Ledger(url)
    Ledger(url, repair_guards=True).close()
    assert filled.verify().ok


def test_opening_without_create_needs_the_table(tmp_path: Path) -> None:
    with pytest.raises(LedgerSchemaError, match="init"):
        Ledger(f"sqlite:///{tmp_path / 'none.db'}", create=False)


# -- tampering is detected --------------------------------------------------------------------------------

# A changed value for each hashed column, as raw SQL (SQLite stores timestamps and JSON as text).
EDITS: dict[str, str] = {
    "entry_id": "'00000000-0000-4000-8000-000000000000'",
    "kind": "'assessment'",
    "occurred_at": "'2025-04-02 07:00:00.000000'",
    "recorded_at": "'2020-01-01 00:00:00.000000'",
    "agreement_id": "'met-police-wider-help'",
    "agreement_sha256": f"'{SHA_A}'",
    "partner": "'ons'",
    "purpose": "'another purpose'",
    "legal_gateways": """'["Data Protection Act 2018"]'""",
    "fields": """'["person_ref"]'""",
    "row_count": "COALESCE(row_count, 0) + 1",
    "plaintext_sha256": f"'{SHA_B}'",
    "ciphertext_sha256": f"'{SHA_A}'",
    "file_name": "'other.csv.gpg'",
    "dag_id": "'share__other'",
    "run_id": "'manual__2025-04-03T00:00:00+00:00'",
    "task_id": "'other'",
    "try_number": "2",
    "triggered_by": "'ui:someone'",
    "details": """'{"excluded_restricted": 0}'""",
    "idempotency_key": "'forged'",
}


def test_the_table_name_is_the_one_these_tests_tamper_with() -> None:
    assert TABLE_NAME == "audit_ledger"


def test_every_hashed_column_is_covered_by_an_edit_case() -> None:
    assert set(EDITS) == set(HASHED_COLUMNS) - {"seq", "prev_hash"}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_an_edited_column_fails_verification_at_its_seq(
    filled: Ledger, raw: Callable[..., None], column: str
) -> None:
    raw(f"UPDATE audit_ledger SET {column} = {EDITS[column]} WHERE seq = 3")  # noqa: S608
    report = filled.verify()
    assert not report.chain_ok
    assert (report.first_bad_seq, report.reason) == (3, "edited"), report.first_problems
    assert report.problems == 1  # the next entry still links to the stored hash


def test_an_edited_prev_hash_breaks_the_chain_there(filled: Ledger, raw: Callable[..., None]) -> None:
    raw("UPDATE audit_ledger SET prev_hash = '" + "1" * 64 + "' WHERE seq = 3")
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (3, "edited")


def test_an_edit_that_is_rehashed_is_caught_by_the_next_link_or_an_anchor(
    filled: Ledger, raw: Callable[..., None]
) -> None:
    anchor_3 = Anchor(3, filled.get(3).entry_hash)  # type: ignore[union-attr]
    raw("UPDATE audit_ledger SET row_count = 99 WHERE seq = 3")
    forged = filled.get(3)
    assert forged is not None
    raw(f"UPDATE audit_ledger SET entry_hash = '{forged.computed_hash()}' WHERE seq = 3")  # noqa: S608

    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (4, "chain_broken")
    anchored = filled.verify([anchor_3])
    assert (anchored.first_bad_seq, anchored.reason) == (3, "anchor_mismatch")
    assert anchored.anchors_checked == 1


@pytest.mark.parametrize(
    ("deleted", "first_bad"), [(1, 2), (3, 4), ((2, 3), 4)], ids=["first", "middle", "two"]
)
def test_a_deleted_entry_fails_verification(
    filled: Ledger, raw: Callable[..., None], deleted: int | tuple[int, int], first_bad: int
) -> None:
    seqs = deleted if isinstance(deleted, tuple) else (deleted,)
    raw(*(f"DELETE FROM audit_ledger WHERE seq = {s}" for s in seqs))  # noqa: S608
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (first_bad, "deleted")
    assert str(seqs[0]) in (report.message or "")


def test_deleting_the_last_entries_needs_an_anchor_to_show(filled: Ledger, raw: Callable[..., None]) -> None:
    head = filled.head()
    assert head == Anchor(5, filled.get(5).entry_hash)  # type: ignore[union-attr]
    raw("DELETE FROM audit_ledger WHERE seq >= 4")
    assert filled.verify().chain_ok  # a truncated chain is still a valid chain...
    report = filled.verify([head])  # ...but not against a head kept elsewhere
    assert (report.first_bad_seq, report.reason) == (5, "truncated")


def test_reordered_entries_fail_verification(filled: Ledger, raw: Callable[..., None]) -> None:
    # Swap entries 2 and 3: every column but seq moves, which is what swapping two rows' contents means.
    raw(
        "UPDATE audit_ledger SET seq = 1000 WHERE seq = 2",
        "UPDATE audit_ledger SET seq = 2 WHERE seq = 3",
        "UPDATE audit_ledger SET seq = 3 WHERE seq = 1000",
    )
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (2, "reordered"), report.first_problems
    # 2 and 3 are out of place, and 4 now follows the entry it was not recorded after.
    assert [(p.seq, p.reason) for p in report.first_problems] == [
        (2, "reordered"),
        (3, "reordered"),
        (4, "reordered"),
    ]


def test_an_entry_moved_to_the_end_fails_verification(filled: Ledger, raw: Callable[..., None]) -> None:
    raw("UPDATE audit_ledger SET seq = 6 WHERE seq = 2")
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (3, "deleted")
    assert [p.reason for p in report.first_problems] == ["deleted", "reordered"]


def test_an_unreadable_entry_is_reported_not_raised(filled: Ledger, raw: Callable[..., None]) -> None:
    raw("UPDATE audit_ledger SET fields = '42' WHERE seq = 2")
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (2, "malformed")


# -- concurrency ------------------------------------------------------------------------------------------


def test_concurrent_threads_and_ledgers_keep_one_chain(url: str) -> None:
    ledgers = [Ledger(url), Ledger(url)]  # two engines: two independent writers on one file

    def worker(n: int) -> None:
        for i in range(25):
            ledgers[n % 2].append(simple(details={"worker": n, "i": i}))

    run_together(4, worker)
    assert_one_chain(ledgers[0], 100)
    for one in ledgers:
        one.close()


def test_concurrent_processes_keep_one_chain(url: str, ledger: Ledger) -> None:
    spans = writer_process_spans(url, 60)
    # The writers' time spans overlap: they contended for the lock. (SQLite's busy handler sleeps, so one
    # writer may do most of its appends first; the chain must be whole either way.)
    assert max(s for s, _ in spans) < min(e for _, e in spans)
    assert_one_chain(ledger, 120)
    assert sorted(e.details["worker"] for e in ledger.entries(limit=200)) == [0] * 60 + [1] * 60


# -- idempotency ------------------------------------------------------------------------------------------


def test_a_retried_disclosure_is_recorded_once(ledger: Ledger) -> None:
    key = idempotency_key("disclosure", "dwp-benefits-matching", "share__dwp_benefits_matching", RUN_ID)
    first = ledger.append(disclosure(idempotency_key=key, try_number=1))
    ledger.append(simple())
    retry = ledger.append(disclosure(idempotency_key=key, try_number=2))
    assert retry == first and retry.try_number == 1
    assert ledger.count("disclosure") == 1 and ledger.count() == 2
    assert ledger.find(key) == first


def test_an_idempotency_key_is_not_reused_for_another_event(ledger: Ledger) -> None:
    ledger.append(disclosure(idempotency_key="k1"))
    with pytest.raises(IdempotencyConflictError, match="reused"):
        ledger.append(simple("collection", idempotency_key="k1"))


def test_idempotency_within_one_batch(ledger: Ledger) -> None:
    stored = ledger.append_many([simple(idempotency_key="k"), simple(idempotency_key="k")])
    assert stored[0] == stored[1] and ledger.count() == 1


def test_concurrent_retries_with_one_key_record_once(url: str) -> None:
    ledgers = [Ledger(url) for _ in range(4)]
    results: list[int] = []
    run_together(4, lambda n: results.append(ledgers[n].append(disclosure(idempotency_key="same-run")).seq))
    assert results == [1, 1, 1, 1] and ledgers[0].count() == 1
    for one in ledgers:
        one.close()


# -- the personal-data guard ------------------------------------------------------------------------------

PERSONAL = {
    "postcode": "W8 7NX",
    "postcode-no-space": "SW1A1AA",
    "postcode-lower-in-code": "delivery_w8_7nx",
    "postcode-girobank": "GIR 0AA",
    "dob-iso": "1985-03-12",
    "dob-uk": "12/03/1985",
    "dob-uk-short-year": "12/03/85",
    "dob-dotted": "12.03.1985",
    "dob-compact": "19850312",
    "dob-month-name": "12-Mar-1985",
    "dob-in-a-code": "dob_1985-03-12",
    "free-text-long": "x" * 129,
    "free-text-spaces": "lives with grandmother",
    "name": "Smith",
    "double-barrelled-name": "Smith-Jones",
    "email": "jo.bloggs@example.org",
    "ni-number": "QQ123456C",
    "ni-number-spaced": "ab_12_34_56_c",
    "nhs-number": "9434765919",
    "uprn": "100021234567",
    "numbers-run-together": "1000212345671000212345671000212345",
    "phone": "+447700900123",
    "csv-row": "ref1,Jo,Bloggs",
}


@pytest.mark.parametrize("value", PERSONAL.values(), ids=PERSONAL.keys())
def test_details_refuse_what_looks_like_personal_data(value: str) -> None:
    with pytest.raises(PersonalDataError) as caught:
        check_details({"reason": value})
    message = str(caught.value)
    assert "details.reason" in message and "no personal data" in message
    assert value not in message  # the refused value is never echoed


@pytest.mark.parametrize("value", PERSONAL.values(), ids=PERSONAL.keys())
def test_append_refuses_personal_data_and_writes_nothing(untouched_ledger: Ledger, value: str) -> None:
    with pytest.raises(PersonalDataError):
        untouched_ledger.append(simple(details={"nested": {"reason": value}}))
    assert untouched_ledger.count() == 0


ACCEPTED = {
    "count": 1_000_000,
    "zero": 0,
    "flag": True,
    "missing": None,
    "sha256": SHA_A,
    "fingerprint": "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678",
    "uuid": "0b1c6a4e-5a4b-4e59-9d5e-2f0f7a3b6c1d",
    "field_names": ["person_ref", "postcode", "date_of_birth"],
    "code": "address_not_confirmed",
    "run_id": RUN_ID,
    "manual_run_id": "manual__2025-04-02T06:00:00.123456+00:00",
    "file": "sf-dwp-benefits-matching-dabcdefghijklmnop.csv.gpg",
    "remote_dir": "dwp/inbox",
    "key_version": "v2",
    "match_rate_ppm": 973_100,
    "classes": {"matched": 900, "no_trace": 50, "rejected": 40, "duplicate": 5, "unexpected": 5},
    "rows": [3, 17, 42],
}


def test_details_accept_counts_hashes_ids_names_and_codes() -> None:
    assert check_details(ACCEPTED) == ACCEPTED


@pytest.mark.parametrize(
    ("details", "rule"),
    [
        ({"rate": 0.97}, "floats"),
        ({"refs": [f"r{i}" for i in range(65)]}, "per-row data"),
        ({"a": {"b": {"c": {"d": 1}}}}, "nested deeper"),
        ({"Jo Bloggs": 1}, "snake_case"),
        ({"n": 2**60}, "integer beyond"),
        ({"blob": b"bytes"}, "bytes is not allowed"),
        ({"tab": "a\tb"}, "control characters"),
    ],
    ids=["float", "long-list", "deep", "bad-key", "huge-int", "bytes", "control"],
)
def test_details_refuse_other_shapes(details: dict[str, Any], rule: str) -> None:
    with pytest.raises(EntryValidationError, match=rule):
        check_details(details)


def test_a_bad_key_is_not_echoed() -> None:
    with pytest.raises(PersonalDataError) as caught:
        check_details({"Jo Bloggs": 1})
    assert "Jo Bloggs" not in str(caught.value)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("file_name", "jo-bloggs-W8-7NX.csv"),
        ("file_name", "../escape.csv"),
        ("run_id", "manual__for 12/03/1985"),
        ("fields", ("person_ref", "Jo Bloggs")),
        ("task_id", "deliver_1985-03-12"),
        ("idempotency_key", "disclosure/SW1A 1AA"),
        ("triggered_by", "a user with spaces"),
    ],
    ids=[
        "postcode-file",
        "path-file",
        "dob-run",
        "value-as-field",
        "dob-task",
        "postcode-key",
        "free-trigger",
    ],
)
def test_columns_are_guarded_too(column: str, value: Any) -> None:
    with pytest.raises(EntryValidationError, match=column):
        disclosure(**{column: value}).validate()


def test_staff_identity_may_trigger_a_run() -> None:
    # Staff accountability (UK GDPR Article 5(2)): who acted is recorded by a pseudonymous staff id, never
    # a login or an e-mail address (supporting_families.audit.actors).
    disclosure(triggered_by=staff_id(b"k" * 32, "jane.officer")).validate()
    with pytest.raises(PersonalDataError):
        disclosure(triggered_by="ui:jane.officer@council.example").validate()


# -- entry rules ------------------------------------------------------------------------------------------


def test_a_disclosure_must_be_complete() -> None:
    with pytest.raises(EntryValidationError) as caught:
        NewEntry(kind="disclosure", occurred_at=T0).validate()
    message = str(caught.value)
    for column in ("agreement_sha256", "legal_gateways", "fields", "ciphertext_sha256", "run_id"):
        assert f"{column}: required for a disclosure" in message
    assert not isinstance(caught.value, PersonalDataError)


def test_naive_timestamps_are_refused(ledger: Ledger) -> None:
    with pytest.raises(EntryValidationError, match="timezone-aware"):
        ledger.append(simple(occurred_at=datetime(2025, 4, 2, 6, 0)))
    with pytest.raises(EntryValidationError, match="timezone-aware"):
        ledger.entries(since=datetime(2025, 4, 2))


def test_bad_hashes_and_unknown_kinds_are_refused() -> None:
    with pytest.raises(EntryValidationError, match="ciphertext_sha256: not a lower-case hex SHA-256"):
        disclosure(ciphertext_sha256="ABC").validate()
    with pytest.raises(EntryValidationError, match="kind: not one of"):
        NewEntry(kind="party", occurred_at=T0).validate()  # type: ignore[arg-type]
    with pytest.raises(EntryValidationError, match=r"details\.action"):
        NewEntry(kind="rights_action", occurred_at=T0).validate()


# -- queries for the auditor page -------------------------------------------------------------------------


def test_entries_filter_and_page(ledger: Ledger) -> None:
    ledger.append(disclosure(occurred_at=T0))
    ledger.append(disclosure(occurred_at=T0 + timedelta(days=31), agreement_id="met-police-wider-help"))
    ledger.append(simple("collection", occurred_at=T0 + timedelta(days=32)))
    ledger.append(simple("assessment", occurred_at=T0 + timedelta(days=40)))

    assert [e.seq for e in ledger.entries(kind="disclosure")] == [1, 2]
    assert [e.seq for e in ledger.entries(agreement_id="dwp-benefits-matching")] == [1, 3]
    assert [e.seq for e in ledger.entries(since=T0 + timedelta(days=31))] == [2, 3, 4]
    assert [e.seq for e in ledger.entries(limit=2)] == [1, 2]
    assert [e.seq for e in ledger.entries(limit=2, after_seq=2)] == [3, 4]
    assert [e.seq for e in ledger.entries(limit=2, newest_first=True)] == [4, 3]
    with pytest.raises(ValueError, match="limit"):
        ledger.entries(limit=0)


def test_disclosures_for_run(ledger: Ledger) -> None:
    ledger.append(disclosure())
    ledger.append(simple("collection", dag_id="share__dwp_benefits_matching", run_id=RUN_ID))
    ledger.append(disclosure(run_id="scheduled__2025-05-02T06:00:00+00:00"))
    found = ledger.disclosures_for_run("share__dwp_benefits_matching", RUN_ID)
    assert [e.seq for e in found] == [1]
    assert ledger.disclosures_for_run("share__dwp_benefits_matching", "manual__x") == []


# -- CLI --------------------------------------------------------------------------------------------------


def _cli(args: list[str], *, subprocess_: bool = False, expect: int = 0) -> str:
    if subprocess_:
        done = subprocess.run(
            [sys.executable, "-m", "supporting_families.audit", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert done.returncode == expect, done.stderr
        return done.stdout
    from contextlib import redirect_stdout
    from io import StringIO

    buffer = StringIO()
    with redirect_stdout(buffer):
        code = main(args)
    assert code == expect
    return buffer.getvalue()


def test_cli_verify_exit_codes(filled: Ledger, url: str, raw: Callable[..., None]) -> None:
    ok = json.loads(_cli(["verify", "--url", url]))
    assert ok["ok"] and ok["entries"] == 5
    head = json.loads(_cli(["head", "--url", url]))
    assert head["seq"] == 5
    raw("UPDATE audit_ledger SET row_count = 7 WHERE seq = 1")
    bad = json.loads(_cli(["verify", "--url", url, "--anchor", head["anchor"]], expect=1))
    assert (bad["first_bad_seq"], bad["reason"], bad["guards_ok"]) == (1, "edited", False)


def test_cli_show_filters(filled: Ledger, url: str) -> None:
    lines = _cli(["show", "--url", url, "--kind", "disclosure"]).splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["disclosure"]


def test_cli_append_test_refuses_a_real_ledger(filled: Ledger, url: str) -> None:
    _cli(["append-test", "--url", url, "--count", "3"], expect=2)
    assert filled.count() == 5


def test_cli_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SF_LEDGER_URL", raising=False)
    _cli(["verify"], expect=2)


def test_cli_init_creates_and_repairs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert json.loads(_cli(["init", "--url", url]))["head"] is None
    with sqlite3.connect(tmp_path / "new.db") as conn:
        conn.execute(f"DROP TRIGGER {TABLE_NAME}_no_delete")
    _cli(["init", "--url", url], expect=2)
    _cli(["init", "--url", url, "--repair-guards"])
    assert json.loads(_cli(["verify", "--url", url]))["ok"]
