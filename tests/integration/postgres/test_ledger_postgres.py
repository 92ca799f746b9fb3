"""The audit ledger on the real PostgreSQL on 127.0.0.1:5432 ("tested against the local
server").

A fresh database is created for the session and dropped at its end; each test gets its own schema (through
``search_path`` in the URL), and its sessions run in a non-UTC time zone so timestamps must come back as
UTC. Tampering is done as an attacker with superuser access would do it: triggers disabled, rows changed,
triggers enabled again to cover the tracks.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from supporting_families.audit import (
    TABLE_NAME,
    Anchor,
    Ledger,
    LedgerSchemaError,
    NewEntry,
    PersonalDataError,
    idempotency_key,
)
from supporting_families.audit.cli import main
from tests.ledger_concurrency import assert_one_chain, run_together, writer_process_spans

pytestmark = pytest.mark.integration

ADMIN_URL_ENV = "SF_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Far from UTC and with a half-hour offset: a timestamp that is not normalised shows at once.
SESSION_TIME_ZONE = "Asia/Kolkata"
T0 = datetime(2025, 4, 2, 6, 0, tzinfo=UTC)
RUN_ID = "scheduled__2025-04-02T06:00:00+00:00"
SHA = hashlib.sha256(b"x").hexdigest()

Raw = Callable[..., None]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[URL]:
    """A database of its own for this session on the local server, dropped afterwards."""
    admin_url = make_url(os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL))
    assert admin_url.host in ("127.0.0.1", "localhost", None), "tests use the loopback server only"
    name = f"sf_ledger_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(exc.orig).__name__}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: URL) -> Iterator[str]:
    """A URL whose sessions see only a fresh schema of this test, in a non-UTC time zone."""
    schema = f"t_{secrets.token_hex(6)}"
    engine = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = pg_database.update_query_dict(
        {"options": f"-c search_path={schema} -c timezone={SESSION_TIME_ZONE}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def ledger(pg_url: str) -> Iterator[Ledger]:
    with Ledger(pg_url) as opened:
        yield opened


@pytest.fixture
def raw(pg_url: str) -> Iterator[Raw]:
    """``raw(sql, ..., keep_disabled=False)``: run SQL as a superuser with the ledger's triggers disabled,
    then enable them again exactly as they were (ENABLE ALWAYS), as someone covering their tracks would."""
    engine = create_engine(pg_url)

    def run(*statements: str, keep_disabled: bool = False) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {TABLE_NAME} DISABLE TRIGGER USER"))
            for sql in statements:
                conn.execute(text(sql))
            if not keep_disabled:
                for name in (f"{TABLE_NAME}_no_update_delete", f"{TABLE_NAME}_no_truncate"):
                    conn.execute(text(f"ALTER TABLE {TABLE_NAME} ENABLE ALWAYS TRIGGER {name}"))

    yield run
    engine.dispose()


def disclosure(**overrides: Any) -> NewEntry:
    values: dict[str, Any] = {
        "kind": "disclosure",
        "occurred_at": T0,
        "agreement_id": "met-police-wider-help",
        "agreement_sha256": SHA,
        "partner": "met-police",
        "purpose": "To identify which individuals may need help to avoid future involvement in crime.",
        "legal_gateways": ("Data Protection Act 2018", "Crime and Disorder Act 1998 s.115"),
        "fields": ("person_ref", "given_name", "family_name", "date_of_birth", "postcode"),
        "row_count": 812,
        "plaintext_sha256": SHA,
        "ciphertext_sha256": SHA,
        "file_name": "sf-met-police-wider-help-dabcdefghijklmnop.csv.gpg",
        "dag_id": "share__met_police_wider_help",
        "run_id": RUN_ID,
        "task_id": "deliver",
        "try_number": 1,
        "triggered_by": "timetable",
        "details": {"excluded_restricted": 4},
    }
    values.update(overrides)
    return NewEntry(**values)


def event(kind: str = "assessment", **overrides: Any) -> NewEntry:
    values: dict[str, Any] = {"kind": kind, "occurred_at": T0, "details": {"families": 7}}
    values.update(overrides)
    return NewEntry(**values)


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    ledger.append(disclosure())
    ledger.append(
        event("collection", agreement_id="met-police-wider-help", partner="met-police", file_name="f.gpg")
    )
    ledger.append(event("assessment"))
    ledger.append(event("deletion", details={"files": 2}))
    ledger.append(event("key_rotation", details={"key_version": 2}))
    return ledger


def test_append_and_verify_in_a_non_utc_session(filled: Ledger) -> None:
    report = filled.verify()
    assert report.ok and report.entries == 5 and report.last_seq == 5
    assert report.by_kind == {
        "disclosure": 1,
        "collection": 1,
        "assessment": 1,
        "deletion": 1,
        "key_rotation": 1,
    }
    first = filled.get(1)
    assert first is not None
    assert first.occurred_at == T0 and first.occurred_at.tzinfo is UTC
    assert first.hashed_record()["occurred_at"] == "2025-04-02T06:00:00.000000Z"
    assert first.computed_hash() == first.entry_hash
    assert [e.seq for e in filled.entries(since=T0 - timedelta(minutes=1), kind="disclosure")] == [1]
    assert [e.seq for e in filled.disclosures_for_run("share__met_police_wider_help", RUN_ID)] == [1]


@pytest.mark.parametrize("replica", [False, True], ids=["plain", "replica-role"])
def test_triggers_reject_change_even_in_replica_mode(filled: Ledger, pg_url: str, replica: bool) -> None:
    # session_replication_role = replica is how bulk loads skip triggers; ENABLE ALWAYS ones still fire.
    engine = create_engine(pg_url)
    try:
        for sql in (
            "UPDATE audit_ledger SET row_count = 1 WHERE seq = 1",
            "DELETE FROM audit_ledger WHERE seq = 1",
            "TRUNCATE audit_ledger",
        ):
            with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
                if replica:
                    conn.execute(text("SET session_replication_role = replica"))
                conn.execute(text(sql))
    finally:
        engine.dispose()
    assert filled.verify().ok and filled.count() == 5


def test_an_edit_behind_disabled_triggers_fails_verification(filled: Ledger, raw: Raw) -> None:
    raw("UPDATE audit_ledger SET row_count = 811 WHERE seq = 1")
    report = filled.verify()
    assert report.guards_ok  # the tracks were covered...
    assert (report.first_bad_seq, report.reason, report.problems) == (1, "edited", 1)  # ...the chain tells


def test_an_edit_of_details_fails_verification(filled: Ledger, raw: Raw) -> None:
    raw("""UPDATE audit_ledger SET details = '{"files": 3}'::jsonb WHERE seq = 4""")
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (4, "edited")


def test_a_deleted_entry_fails_verification(filled: Ledger, raw: Raw) -> None:
    raw("DELETE FROM audit_ledger WHERE seq = 3")
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (4, "deleted")


def test_a_truncated_tail_fails_against_an_anchor(filled: Ledger, raw: Raw) -> None:
    head = filled.head()
    assert head is not None
    raw("DELETE FROM audit_ledger WHERE seq = 5")
    report = filled.verify([head])
    assert (report.first_bad_seq, report.reason) == (5, "truncated")


def test_reordered_entries_fail_verification(filled: Ledger, raw: Raw) -> None:
    raw(
        "UPDATE audit_ledger SET seq = 1000 WHERE seq = 2",
        "UPDATE audit_ledger SET seq = 2 WHERE seq = 3",
        "UPDATE audit_ledger SET seq = 3 WHERE seq = 1000",
    )
    report = filled.verify()
    assert (report.first_bad_seq, report.reason) == (2, "reordered")


def test_disabled_triggers_fail_closed_until_repaired(filled: Ledger, pg_url: str, raw: Raw) -> None:
    raw(keep_disabled=True)
    report = filled.verify()
    assert report.chain_ok and not report.guards_ok and "disabled" in (report.guard_message or "")
    with pytest.raises(LedgerSchemaError, match="repair-guards"):
        Ledger(pg_url)
    Ledger(pg_url, repair_guards=True).close()
    assert filled.verify().ok


def test_concurrent_threads_on_two_engines_keep_one_chain(pg_url: str, ledger: Ledger) -> None:
    ledgers = [ledger, Ledger(pg_url)]

    def worker(n: int) -> None:
        for i in range(25):
            ledgers[n % 2].append(event(details={"worker": n, "i": i}))

    try:
        run_together(4, worker)
    finally:
        ledgers[1].close()
    assert_one_chain(ledger, 100)
    workers = [e.details["worker"] for e in ledger.entries(limit=100)]
    assert sum(a != b for a, b in itertools.pairwise(workers)) > 3  # they really interleaved


def test_concurrent_processes_keep_one_chain(pg_url: str, ledger: Ledger) -> None:
    spans = writer_process_spans(pg_url, 60)
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # they ran at the same time
    assert_one_chain(ledger, 120)


def test_concurrent_retries_record_a_disclosure_once(pg_url: str, ledger: Ledger) -> None:
    key = idempotency_key("disclosure", "met-police-wider-help", "share__met_police_wider_help", RUN_ID)
    ledgers = [ledger, *(Ledger(pg_url) for _ in range(3))]
    seqs: list[int] = []
    try:
        run_together(
            4, lambda n: seqs.append(ledgers[n].append(disclosure(idempotency_key=key, try_number=n + 1)).seq)
        )
    finally:
        for other in ledgers[1:]:
            other.close()
    assert seqs == [1, 1, 1, 1] and ledger.count() == 1 and ledger.find(key) is not None


@pytest.mark.parametrize(
    "details", [{"reason": "W8 7NX"}, {"dob": "12/03/1985"}, {"nested": {"note": "1985-03-12"}}], ids=str
)
def test_the_guard_keeps_personal_data_out(ledger: Ledger, details: dict[str, Any]) -> None:
    with pytest.raises(PersonalDataError):
        ledger.append(event(details=details))
    assert ledger.count() == 0


def test_cli_verifies_with_the_url_from_the_environment(
    filled: Ledger, pg_url: str, raw: Raw, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SF_LEDGER_URL", pg_url)
    head = filled.head()
    assert main(["verify", "--anchor", str(head)]) == 0
    raw("UPDATE audit_ledger SET file_name = 'other.csv.gpg' WHERE seq = 2")
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert '"first_bad_seq": 2' in out and '"reason": "edited"' in out
    assert isinstance(Anchor.parse(str(head)), Anchor)
