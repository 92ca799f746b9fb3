"""The ledger's table, its append-only triggers (SQLite and PostgreSQL) and engines."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

from supporting_families.audit.canonical import HASHED_COLUMNS, TABLE_NAME, _aware_utc


class _UtcDateTime(TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; on SQLite, naive UTC text that sorts in time order. Always aware UTC out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _aware_utc(value, "timestamp")
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = JSON().with_variant(JSONB(), "postgresql")
_metadata = MetaData()
_table = Table(
    TABLE_NAME,
    _metadata,
    # Assigned by the appender under its lock, not by a sequence: a PostgreSQL sequence skips numbers on
    # rollback, and a gap must mean a deleted entry.
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("entry_id", String(36), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("occurred_at", _UtcDateTime(), nullable=False),
    Column("recorded_at", _UtcDateTime(), nullable=False),
    Column("agreement_id", String(64)),
    Column("agreement_sha256", String(64)),
    Column("partner", String(64)),
    Column("purpose", Text()),
    Column("legal_gateways", _JSON, nullable=False),
    Column("fields", _JSON, nullable=False),
    Column("row_count", BigInteger()),
    Column("plaintext_sha256", String(64)),
    Column("ciphertext_sha256", String(64)),
    Column("file_name", String(255)),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("task_id", String(250)),
    Column("try_number", Integer()),
    Column("triggered_by", String(128)),
    Column("details", _JSON, nullable=False),
    Column("idempotency_key", String(250), unique=True),
    # UNIQUE: two entries claiming the same predecessor would be a fork.
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("entry_hash", String(64), nullable=False, unique=True),
    CheckConstraint("seq >= 1", name=f"{TABLE_NAME}_seq_positive"),
    Index(f"{TABLE_NAME}_kind_occurred", "kind", "occurred_at"),
    Index(f"{TABLE_NAME}_agreement_occurred", "agreement_id", "occurred_at"),
    Index(f"{TABLE_NAME}_run", "dag_id", "run_id"),
)
assert tuple(c.name for c in _table.columns if c.name != "entry_hash") == HASHED_COLUMNS

_SQLITE_GUARDS: Final = {
    f"{TABLE_NAME}_no_update": f"""
        CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_update BEFORE UPDATE ON {TABLE_NAME}
        BEGIN SELECT RAISE(ABORT, '{TABLE_NAME} is append-only: UPDATE rejected'); END""",
    f"{TABLE_NAME}_no_delete": f"""
        CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_delete BEFORE DELETE ON {TABLE_NAME}
        BEGIN SELECT RAISE(ABORT, '{TABLE_NAME} is append-only: DELETE rejected'); END""",
}
_PG_FUNCTION: Final = f"""
    CREATE OR REPLACE FUNCTION {TABLE_NAME}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{TABLE_NAME} is append-only: % rejected', TG_OP USING ERRCODE = 'restrict_violation';
    END $$"""
# ENABLE ALWAYS: a trigger in the default mode does not fire under session_replication_role = replica,
# the usual way to bypass triggers for a bulk load.
_PG_GUARDS: Final = {
    f"{TABLE_NAME}_no_update_delete": (
        f"CREATE TRIGGER {TABLE_NAME}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE_NAME} "
        f"FOR EACH ROW EXECUTE FUNCTION {TABLE_NAME}_append_only()"
    ),
    # Row triggers do not see TRUNCATE.
    f"{TABLE_NAME}_no_truncate": (
        f"CREATE TRIGGER {TABLE_NAME}_no_truncate BEFORE TRUNCATE ON {TABLE_NAME} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE_NAME}_append_only()"
    ),
}
_PG_TRIGGERS: Final = text(
    "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(:table) AND NOT tgisinternal"
)
# Appenders on PostgreSQL take this transaction-level advisory lock; it is released at commit or rollback.
_PG_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(f"supporting_families.audit.ledger/{TABLE_NAME}".encode()).digest()[:8], "big", signed=True
)
_SQLITE_BEGIN: Final = "sf_ledger_sqlite_begin"
_APPEND_ATTEMPTS: Final = 5


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:")
    if not memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout_s, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own empty database
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, so appends can say BEGIN IMMEDIATE (the
        # SQLAlchemy recipe for pysqlite; otherwise the driver begins lazily and two writers could both
        # read the same head before either takes the write lock).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            # WAL: readers (verify, the auditor page) do not block the appender, nor it them.
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a recorded disclosure survives a power cut; it is evidence, one fsync per append is cheap.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _describe(url: URL) -> str:
    """The backend and database name for logs, never host credentials."""
    return f"{url.get_backend_name()}:{Path(url.database or ':memory:').name}"
