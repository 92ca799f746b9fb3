"""The audit ledger: an append-only, hash-chained record of every disclosure, receipt, rights action and
deletion, so the council can prove to an auditor what left the building, when, why and to whom.

docs/ARCHITECTURE.md: "Every disclosure, receipt, rights action and deletion writes one entry to
the audit ledger". SQLite (a file, ``sqlite:///path``) by default, PostgreSQL (``postgresql://...``) in
production, through SQLAlchemy Core. Nothing here imports Airflow: the Airflow side reads the URL from a
connection and passes it in, with the DAG, run and task ids as plain strings.

Tamper evidence
---------------
Each entry carries ``prev_hash`` (the previous entry's ``entry_hash``; 64 zeros for seq 1) and
``entry_hash``, the SHA-256 of its canonical form. Editing an entry breaks its own hash; deleting or
reordering entries breaks ``seq`` continuity or a ``prev_hash`` link; :meth:`Ledger.verify` names the
first bad ``seq`` and why. Someone who can write the database can also re-hash the tail of the chain, or
drop its last entries: only a copy of a recent head kept out of the database's reach (an :class:`Anchor`,
from :meth:`Ledger.head`) reveals that, so anchor the head regularly and pass the anchors to ``verify``.

The database refuses change as well: triggers reject UPDATE and DELETE (and TRUNCATE on PostgreSQL, where
they are ``ENABLE ALWAYS`` so ``session_replication_role = replica`` does not switch them off). They stop
mistakes and ordinary users, not the owner of the table, who can drop them; that is what the chain is for.
In production grant the platform's role only SELECT and INSERT on the table.

Canonical form (format 1), so an auditor can re-verify with a few lines of any language
--------------------------------------------------------------------------------------
``entry_hash`` = lower-case hex SHA-256 of the UTF-8 bytes of one JSON object holding every column except
``entry_hash`` (:data:`HASHED_COLUMNS`, ``prev_hash`` included), where

* keys are sorted, at every level (``details`` too), with no whitespace: ``{"a":1,"b":[2,3]}``;
* an empty column is ``null``; ``seq``, ``row_count``, ``try_number`` and numbers in ``details`` are JSON
  integers (floats are refused, so no language's float printing can differ);
* ``occurred_at`` and ``recorded_at`` are UTC strings with microseconds: ``2025-04-02T06:00:00.000000Z``;
* ``legal_gateways`` and ``fields`` are JSON arrays of strings, in the order recorded;
* non-ASCII characters are written as themselves (UTF-8), not ``\\u`` escapes.

For these values (ASCII keys, integers, strings) this is exactly RFC 8785 (JSON Canonicalization
Scheme). In Python, for a row ``r`` as a dict: ``sha256(json.dumps({k: v for k, v in r.items() if k !=
"entry_hash"}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()``; with
``jq`` on a line of ``show`` output: ``jq -cjS 'del(.entry_hash)' | sha256sum``. Then check that each
``prev_hash`` equals the ``entry_hash`` of the entry with the previous ``seq``.

No personal data
----------------
The ledger is kept longer than the data it describes and cannot be edited, so a right to erasure (UK GDPR
Article 17) could never reach personal data written into it; and auditors read it who need not see any.
So an entry holds the agreement, hashes, counts, field *names*, file names and run ids, never a value from
a row. :meth:`NewEntry.validate` (called by :meth:`Ledger.append`) enforces that for every free-form
column and for ``details``: strings there must be hashes, uuids, or short codes without spaces (at most 128
characters), and are refused when they look like a UK postcode, a date (a date of birth), an e-mail address,
a National Insurance number, a long number (NHS number, UPRN, telephone) or a capitalised name; floats,
long lists (per-row data) and deep nesting are refused too. It is a net for mistakes (a row or a message
with a value in it), not proof against someone determined: callers put counts and hashes in by design.
Errors name the key and the rule, never the value.

Concurrency and retries
-----------------------
Appends are serialised so two writers never fork the chain: SQLite with ``BEGIN IMMEDIATE`` (one writer
at a time, others wait up to ``busy_timeout_s``), PostgreSQL with a transaction-level advisory lock. The
UNIQUE constraints on ``seq`` and ``prev_hash`` refuse a fork even from a writer that skipped the lock.
An ``idempotency_key`` (unique) makes a retried task's append return the entry its first try recorded;
build it per logical run with :func:`idempotency_key`, never per try.

CLI (prints JSON; the URL from ``--url`` or ``$SF_LEDGER_URL``, which keeps a password out of ``ps``)::

    python -m supporting_families.audit init    [--repair-guards]
    python -m supporting_families.audit verify  [--anchor SEQ:HASH ...] [--anchors-from URI]
                                                                           # exit 1 if anything is wrong
    python -m supporting_families.audit head                              # an anchor to keep elsewhere
    python -m supporting_families.audit anchor --to URI                   # verify, then keep the head
    python -m supporting_families.audit show    [--kind K] [--agreement ID] [--since ISO] [--limit N]
    python -m supporting_families.audit append-test [--count N] [--batch B] [--workers W]

``append-test`` writes entries of kind ``test`` (a scratch ledger only) and prints appends per second.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    Connection,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from supporting_families.audit.canonical import (
    GENESIS_HASH,
    TABLE_NAME,
    EntryKind,
    _aware_utc,
    _utc_text,
    hash_record,
)
from supporting_families.audit.chain import VerifyReport, _ChainWalk
from supporting_families.audit.entries import Anchor, LedgerEntry, LedgerSearch, NewEntry
from supporting_families.audit.errors import (
    AppendConflictError,
    IdempotencyConflictError,
    LedgerError,
    LedgerSchemaError,
)
from supporting_families.audit.schema import (
    _APPEND_ATTEMPTS,
    _PG_FUNCTION,
    _PG_GUARDS,
    _PG_LOCK_KEY,
    _PG_TRIGGERS,
    _SQLITE_BEGIN,
    _SQLITE_GUARDS,
    _describe,
    _metadata,
    _sqlite_engine,
    _table,
)

log = logging.getLogger(__name__)

_ENTRIES_LIMIT_MAX: Final = 10_000


class Ledger:
    """The audit ledger at ``url`` (``sqlite:///path`` or ``postgresql://...``). Safe to share across threads.

    ``create=True`` creates the table and its guards if they are missing; on an existing table whose guards
    were dropped or disabled it raises :class:`LedgerSchemaError` (fail closed: someone changed the ledger's
    protection; run ``verify`` and investigate, then ``init --repair-guards``).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        create: bool = True,
        repair_guards: bool = False,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self._url = make_url(url)
        backend = self._url.get_backend_name()
        if backend == "sqlite":
            self._engine = _sqlite_engine(self._url, busy_timeout_s)
        elif backend == "postgresql":
            self._engine = create_engine(self._url, pool_pre_ping=True)
        else:
            raise LedgerError(f"unsupported ledger backend {backend!r}: use sqlite:/// or postgresql://")
        self._dialect = backend
        self.description = _describe(self._url)
        if create:
            self.ensure_schema(repair_guards=repair_guards)
        else:
            with self._read() as conn:
                self._require_table(conn)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that holds the ledger's write lock until it ends."""
        with self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                if self._dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction with one snapshot throughout (WAL on SQLite, REPEATABLE READ on PostgreSQL)."""
        with self._engine.connect() as conn:
            if self._dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # -- schema ---------------------------------------------------------------------------------------

    def ensure_schema(self, *, repair_guards: bool = False) -> None:
        """Create the table, indexes and append-only triggers if missing; idempotent, safe to race."""
        with self._write() as conn:
            existed = conn.dialect.has_table(conn, TABLE_NAME)
            _metadata.create_all(conn)
            problem = None if not existed else self._guard_problem(conn)
            if problem is not None and not repair_guards:
                raise LedgerSchemaError(
                    f"{problem}: the ledger's protection was changed. Run `python -m "
                    "supporting_families.audit verify`, investigate, then `init --repair-guards`"
                )
            if problem is not None:
                log.warning("ledger %s: restoring append-only guards (%s)", self.description, problem)
            if not existed or problem is not None:
                self._create_guards(conn)
                log.info(
                    "ledger %s: table %s and its append-only guards are in place",
                    self.description,
                    TABLE_NAME,
                )

    def _create_guards(self, conn: Connection) -> None:
        if self._dialect == "sqlite":
            for ddl in _SQLITE_GUARDS.values():
                conn.execute(text(ddl))
            return
        conn.execute(text(_PG_FUNCTION))
        present = {row[0] for row in conn.execute(_PG_TRIGGERS, {"table": TABLE_NAME})}
        for name, ddl in _PG_GUARDS.items():
            if name not in present:
                conn.execute(text(ddl))
            conn.execute(text(f"ALTER TABLE {TABLE_NAME} ENABLE ALWAYS TRIGGER {name}"))

    def _guard_problem(self, conn: Connection) -> str | None:
        """None when every append-only trigger is present and enabled; otherwise what is wrong."""
        if self._dialect == "sqlite":
            rows = conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
                {"table": TABLE_NAME},
            )
            missing = sorted(set(_SQLITE_GUARDS) - {row[0] for row in rows})
            return f"append-only triggers missing: {', '.join(missing)}" if missing else None
        states = {row[0]: row[1] for row in conn.execute(_PG_TRIGGERS, {"table": TABLE_NAME})}
        missing = sorted(set(_PG_GUARDS) - set(states))
        if missing:
            return f"append-only triggers missing: {', '.join(missing)}"
        # 'A' = ENABLE ALWAYS; 'O' fires except under replica mode; 'D' disabled.
        weak = sorted(name for name in _PG_GUARDS if states[name] != "A")
        return f"append-only triggers disabled or not ENABLE ALWAYS: {', '.join(weak)}" if weak else None

    def _require_table(self, conn: Connection) -> None:
        if not conn.dialect.has_table(conn, TABLE_NAME):
            raise LedgerSchemaError(f"no table {TABLE_NAME} in {self.description}: run `init` first")

    # -- appending ------------------------------------------------------------------------------------

    def append(self, entry: NewEntry) -> LedgerEntry:
        """Record ``entry``; with an ``idempotency_key`` already recorded, return that entry instead."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[NewEntry]) -> list[LedgerEntry]:
        """Record several entries in one transaction (all or none), in order."""
        validated = [(entry, entry.validate()) for entry in entries]
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            try:
                with self._write() as conn:
                    return self._append_locked(conn, validated)
            except IntegrityError as exc:
                # Reached only if a writer skipped the lock (a manual INSERT, another program): the UNIQUE
                # constraints on seq and prev_hash refused the fork. Read the new head and try again.
                if attempt == _APPEND_ATTEMPTS:
                    raise AppendConflictError(
                        f"could not append to {self.description} after {attempt} attempts"
                    ) from exc
                log.warning("ledger %s: append conflict, attempt %d; retrying", self.description, attempt)
                time.sleep(0.01 * attempt)
            except OperationalError as exc:
                if "locked" in str(exc.orig).lower():
                    raise AppendConflictError(
                        f"{self.description} stayed locked by another writer beyond the busy timeout"
                    ) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _append_locked(
        self, conn: Connection, entries: Sequence[tuple[NewEntry, dict[str, Any]]]
    ) -> list[LedgerEntry]:
        head = conn.execute(
            select(_table.c.seq, _table.c.entry_hash).order_by(_table.c.seq.desc()).limit(1)
        ).first()
        seq, prev_hash = (int(head[0]), str(head[1])) if head is not None else (0, GENESIS_HASH)
        recorded_at = datetime.now(UTC)
        out: list[LedgerEntry] = []
        rows: list[dict[str, Any]] = []
        by_key: dict[str, LedgerEntry] = {}
        for entry, details in entries:
            key = entry.idempotency_key
            if key is not None:
                existing = by_key.get(key) or self._find_by_key(conn, key)
                if existing is not None:
                    _check_same_event(existing, entry)
                    log.info(
                        "ledger: %s seq=%d already recorded for this idempotency key",
                        existing.kind,
                        existing.seq,
                    )
                    out.append(existing)
                    continue
            seq += 1
            record = _new_record(entry, details, seq=seq, prev_hash=prev_hash, recorded_at=recorded_at)
            stored = LedgerEntry._from_row({**record, "entry_hash": hash_record(_canonical_values(record))})
            rows.append({**record, "entry_hash": stored.entry_hash})
            prev_hash = stored.entry_hash
            out.append(stored)
            if key is not None:
                by_key[key] = stored
        if rows:
            conn.execute(insert(_table), rows)
            for row in rows:
                log.info(
                    "ledger: appended %s seq=%d hash=%s", row["kind"], row["seq"], row["entry_hash"][:16]
                )
        return out

    def _find_by_key(self, conn: Connection, key: str) -> LedgerEntry | None:
        row = conn.execute(select(_table).where(_table.c.idempotency_key == key)).mappings().first()
        return LedgerEntry._from_row(row) if row is not None else None

    # -- reading --------------------------------------------------------------------------------------

    def head(self) -> Anchor | None:
        """The last entry's (seq, entry_hash): keep it outside the database as an anchor."""
        with self._read() as conn:
            row = conn.execute(
                select(_table.c.seq, _table.c.entry_hash).order_by(_table.c.seq.desc()).limit(1)
            ).first()
        return Anchor(int(row[0]), str(row[1])) if row is not None else None

    def get(self, seq: int) -> LedgerEntry | None:
        with self._read() as conn:
            row = conn.execute(select(_table).where(_table.c.seq == seq)).mappings().first()
        return LedgerEntry._from_row(row) if row is not None else None

    def find(self, idempotency_key: str) -> LedgerEntry | None:
        """The entry recorded under ``idempotency_key``, if any (e.g. to show a retry what it recorded)."""
        with self._read() as conn:
            return self._find_by_key(conn, idempotency_key)

    def count(self, kind: EntryKind | None = None) -> int:
        query = select(func.count()).select_from(_table)
        if kind is not None:
            query = query.where(_table.c.kind == kind)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def entries(
        self,
        kind: EntryKind | None = None,
        agreement_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        *,
        after_seq: int | None = None,
        newest_first: bool = False,
    ) -> list[LedgerEntry]:
        """Entries in seq order (or newest first), filtered; ``since`` is on ``occurred_at`` (inclusive).
        Page with ``after_seq`` (oldest first) or a ``since``; at most 10,000 per call."""
        if not 1 <= limit <= _ENTRIES_LIMIT_MAX:
            raise ValueError(f"limit must be between 1 and {_ENTRIES_LIMIT_MAX}")
        query = select(_table)
        if kind is not None:
            query = query.where(_table.c.kind == kind)
        if agreement_id is not None:
            query = query.where(_table.c.agreement_id == agreement_id)
        if since is not None:
            query = query.where(_table.c.occurred_at >= _aware_utc(since, "since"))
        if after_seq is not None:
            query = query.where(_table.c.seq > after_seq)
        query = query.order_by(_table.c.seq.desc() if newest_first else _table.c.seq).limit(limit)
        with self._read() as conn:
            return [LedgerEntry._from_row(row) for row in conn.execute(query).mappings()]

    def disclosures_for_run(self, dag_id: str, run_id: str) -> list[LedgerEntry]:
        """The disclosures a DAG run recorded (the auditor page links an entry to its run, and back)."""
        query = (
            select(_table)
            .where(_table.c.kind == "disclosure", _table.c.dag_id == dag_id, _table.c.run_id == run_id)
            .order_by(_table.c.seq)
        )
        with self._read() as conn:
            return [LedgerEntry._from_row(row) for row in conn.execute(query).mappings()]

    def _filtered(self, query: Any, search: LedgerSearch) -> Any:
        if search.kind is not None:
            query = query.where(_table.c.kind == search.kind)
        if search.agreement_id is not None:
            query = query.where(_table.c.agreement_id == search.agreement_id)
        if search.partner is not None:
            query = query.where(_table.c.partner == search.partner)
        if search.since is not None:
            query = query.where(_table.c.occurred_at >= _aware_utc(search.since, "since"))
        if search.until is not None:
            query = query.where(_table.c.occurred_at < _aware_utc(search.until, "until"))
        return query

    def search(
        self,
        search: LedgerSearch,
        limit: int = 50,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[LedgerEntry]:
        """One page of the entries ``search`` matches, newest first. Keyset paging over the whole ledger:
        ``before_seq`` for the next (older) page, ``after_seq`` for the previous (newer) one."""
        if not 1 <= limit <= _ENTRIES_LIMIT_MAX:
            raise ValueError(f"limit must be between 1 and {_ENTRIES_LIMIT_MAX}")
        query = self._filtered(select(_table), search)
        if before_seq is not None:
            query = query.where(_table.c.seq < before_seq)
        if after_seq is not None:
            query = query.where(_table.c.seq > after_seq).order_by(_table.c.seq).limit(limit)
        else:
            query = query.order_by(_table.c.seq.desc()).limit(limit)
        with self._read() as conn:
            rows = [LedgerEntry._from_row(row) for row in conn.execute(query).mappings()]
        return sorted(rows, key=lambda e: e.seq, reverse=True)

    def search_count(self, search: LedgerSearch) -> int:
        """How many entries ``search`` matches."""
        query = self._filtered(select(func.count()).select_from(_table), search)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def search_all(self, search: LedgerSearch) -> Iterator[LedgerEntry]:
        """Every entry ``search`` matches, oldest first, streamed in one snapshot (for an export)."""
        query = self._filtered(select(_table), search).order_by(_table.c.seq)
        with self._read() as conn:
            result = conn.execution_options(yield_per=2000).execute(query)
            for row in result.mappings():
                yield LedgerEntry._from_row(row)
            result.close()

    def distinct_values(self, column: str) -> list[str]:
        """The distinct non-null values of ``kind``, ``agreement_id`` or ``partner`` (a filter's choices)."""
        if column not in ("kind", "agreement_id", "partner"):
            raise ValueError(f"no choices for column {column!r}")
        col = _table.c[column]
        with self._read() as conn:
            return sorted(str(v) for (v,) in conn.execute(select(col).where(col.is_not(None)).distinct()))

    # -- verifying ------------------------------------------------------------------------------------

    def verify(self, anchors: Iterable[Anchor] = (), *, max_problems: int = 20) -> VerifyReport:
        """Walk the whole chain in one snapshot; report the first bad seq and why, with counts."""
        walk = _ChainWalk({a.seq: a for a in anchors}, max_problems)
        with self._read() as conn:
            self._require_table(conn)
            guard_problem = self._guard_problem(conn)
            result = conn.execution_options(yield_per=2000).execute(select(_table).order_by(_table.c.seq))
            for row in result.mappings():
                walk.feed(row)
            result.close()
            walk.finish(lambda digest: self._seq_of_hash(conn, digest))
        report = walk.report(guard_problem)
        if report.ok:
            log.info(
                "ledger %s verified: %d entries, head seq=%s",
                self.description,
                report.entries,
                report.last_seq,
            )
        else:
            log.warning(
                "ledger %s FAILED verification: first bad seq=%s (%s), %d problems, guards_ok=%s",
                self.description,
                report.first_bad_seq,
                report.reason,
                report.problems,
                report.guards_ok,
            )
        return report

    def verify_from(
        self, verified: Anchor | None, anchors: Iterable[Anchor] = (), *, max_problems: int = 20
    ) -> VerifyReport:
        """Verify incrementally: only the entries after ``verified`` (a head this ledger verified before)
        are walked; the entry at ``verified`` and every anchor at or before it are looked up by seq and must
        still hold their hashes. ``verified=None`` walks the whole chain. The guards are checked each time.

        ``entries`` in the report counts the whole chain up to its head; ``by_kind`` only the new entries.
        """
        if verified is None:
            return self.verify(anchors, max_problems=max_problems)
        anchor_list = list(anchors)
        walk = _ChainWalk({a.seq: a for a in anchor_list if a.seq > verified.seq}, max_problems)
        walk.prev_seq, walk.prev_hash, walk.entries = verified.seq, verified.entry_hash, verified.seq
        old = {a.seq: a for a in anchor_list if a.seq <= verified.seq}
        old[verified.seq] = verified
        with self._read() as conn:
            self._require_table(conn)
            guard_problem = self._guard_problem(conn)
            stored = {
                int(seq): str(digest)
                for seq, digest in conn.execute(
                    select(_table.c.seq, _table.c.entry_hash).where(_table.c.seq.in_(sorted(old)))
                )
            }
            for seq in sorted(old):
                if stored.get(seq) != old[seq].entry_hash:
                    walk.anchors_checked += 1
                    walk._problem(
                        seq,
                        "anchor_mismatch",
                        f"seq {seq} no longer holds the hash verified or anchored for it: "
                        "the chain was rewritten",
                    )
                elif seq != verified.seq or seq in {a.seq for a in anchor_list}:
                    walk.anchors_checked += 1
            result = conn.execution_options(yield_per=2000).execute(
                select(_table).where(_table.c.seq > verified.seq).order_by(_table.c.seq)
            )
            for row in result.mappings():
                walk.feed(row)
            result.close()
            walk.finish(lambda digest: self._seq_of_hash(conn, digest))
        return walk.report(guard_problem)

    @staticmethod
    def _seq_of_hash(conn: Connection, digest: str) -> int | None:
        row = conn.execute(select(_table.c.seq).where(_table.c.entry_hash == digest)).first()
        return int(row[0]) if row is not None else None


def _new_record(
    entry: NewEntry, details: dict[str, Any], *, seq: int, prev_hash: str, recorded_at: datetime
) -> dict[str, Any]:
    """The row for ``entry`` (Python values, timestamps as aware datetimes), without ``entry_hash``."""
    return {
        "seq": seq,
        "entry_id": str(uuid.uuid4()),
        "kind": entry.kind,
        "occurred_at": _aware_utc(entry.occurred_at, "occurred_at"),
        "recorded_at": recorded_at,
        "agreement_id": entry.agreement_id,
        "agreement_sha256": entry.agreement_sha256,
        "partner": entry.partner,
        "purpose": entry.purpose,
        "legal_gateways": list(entry.legal_gateways),
        "fields": list(entry.fields),
        "row_count": entry.row_count,
        "plaintext_sha256": entry.plaintext_sha256,
        "ciphertext_sha256": entry.ciphertext_sha256,
        "file_name": entry.file_name,
        "dag_id": entry.dag_id,
        "run_id": entry.run_id,
        "task_id": entry.task_id,
        "try_number": entry.try_number,
        "triggered_by": entry.triggered_by,
        "details": details,
        "idempotency_key": entry.idempotency_key,
        "prev_hash": prev_hash,
    }


def _canonical_values(record: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(record)
    values["occurred_at"] = _utc_text(record["occurred_at"])
    values["recorded_at"] = _utc_text(record["recorded_at"])
    return values


def _check_same_event(existing: LedgerEntry, entry: NewEntry) -> None:
    if existing.kind != entry.kind or existing.agreement_id != entry.agreement_id:
        raise IdempotencyConflictError(
            f"idempotency key of seq {existing.seq} ({existing.kind}, {existing.agreement_id}) reused for "
            f"a {entry.kind} under {entry.agreement_id}: build keys with idempotency_key(kind, ...)"
        )
    differing = [
        name
        for name in ("row_count", "plaintext_sha256", "ciphertext_sha256", "file_name")
        if getattr(existing, name) != getattr(entry, name)
    ]
    if differing:
        # The first record stands (what it describes is what left); a retry that made different bytes is
        # worth a look, so say which columns differ, never their values.
        log.warning(
            "ledger: retry of seq %d differs in %s; keeping the first record",
            existing.seq,
            ", ".join(differing),
        )
