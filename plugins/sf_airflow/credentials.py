"""Secrets and shared services for tasks, read from Airflow connections (never YAML, code or XCom).

Called inside tasks only: connections are run-time facts, and DAG parsing must touch none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from airflow.sdk import BaseHook
from upath import UPath

from sf_airflow.common import storage_path
from supporting_families.audit import (
    ANCHORS_URI_ENV,
    LEDGER_CONN_ID,
    Ledger,
    ledger_url,
    ledger_url_from_connection,
)
from supporting_families.config import Agreement, load_agreement
from supporting_families.share import PseudonymKey
from supporting_families.store import FileKeyStore

COUNCIL_OPENPGP_CONN_ID = "sf_openpgp_council"


@dataclass(frozen=True)
class CouncilOpenPgp:
    fingerprint: str
    gnupg_home: Path
    passphrase: str = field(repr=False)


def council_openpgp() -> CouncilOpenPgp:
    """The council's signing/decryption key: fingerprint and keyring in the extra, passphrase as password."""
    conn = BaseHook.get_connection(COUNCIL_OPENPGP_CONN_ID)
    extra = conn.extra_dejson
    return CouncilOpenPgp(
        fingerprint=str(extra["fingerprint"]),
        gnupg_home=Path(str(extra["gnupg_home"])),
        passphrase=conn.password or "",
    )


def pseudonym_key(agreement: Agreement, version: int | None = None) -> PseudonymKey:
    """The agreement's HMAC key at ``version`` (default: the agreement's current ``key_version``)."""
    version = version or agreement.pseudonymisation.key_version
    conn_id = agreement.pseudonymisation.key_conn_id
    if version != agreement.pseudonymisation.key_version:
        conn_id = f"{conn_id}_v{version}"
    conn = BaseHook.get_connection(conn_id)
    return PseudonymKey.from_hex(agreement.id, version, conn.password or "")


def pseudonym_keys(agreement: Agreement) -> list[PseudonymKey]:
    """Every version that may still resolve references: the current one and the listed previous ones."""
    versions = (agreement.pseudonymisation.key_version, *agreement.pseudonymisation.previous_key_versions)
    return [pseudonym_key(agreement, v) for v in versions]


def resolved_agreement(agreement: Agreement) -> Agreement:
    """The agreement loaded again with its fingerprint placeholders resolved (DAGs parse them unresolved)."""
    if agreement.source_path is None:
        raise RuntimeError(f"{agreement.id}: no source file to reload")
    return load_agreement(agreement.source_path)


def ledger_location() -> str:
    """The ledger's database URL: the connection ``sf_ledger`` from the secrets backend (PostgreSQL in
    production, with its password there only), else ``$SF_LEDGER_URL`` for a database that needs no
    secret (the demo's SQLite file; ``ledger_url`` refuses one with a password)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(LEDGER_CONN_ID)
    except AirflowNotFoundException:
        return ledger_url()
    return ledger_url_from_connection(
        LEDGER_CONN_ID,
        conn_type=conn.conn_type,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        login=conn.login,
        password=conn.password,
    )


def ledger(*, create: bool = True) -> Ledger:
    """The audit ledger at :func:`ledger_location`."""
    return Ledger(ledger_location(), create=create)


def ledger_anchors() -> UPath:
    """Where the ledger's anchors are kept: ``$SF_LEDGER_ANCHORS_URI``, with ``$SF_LEDGER_ANCHORS_CONN_ID``
    for an S3 bucket of its own (kept apart from the store: see supporting_families.audit.anchors)."""
    return storage_path(ANCHORS_URI_ENV, "SF_LEDGER_ANCHORS_CONN_ID")


RIGHTS_CONN_ID = "sf_rights"
TOMBSTONE_CONN_ID = "sf_tombstone_key"


def dpo_fingerprint() -> str:
    """The data protection officer's OpenPGP fingerprint: subject access bundles are encrypted to it."""
    return str(BaseHook.get_connection(RIGHTS_CONN_ID).extra_dejson["dpo_fingerprint"])


def data_keys() -> FileKeyStore:
    """The data keys per retention period (the controller-side copies are sealed under them)."""
    return FileKeyStore(Path(str(BaseHook.get_connection(RIGHTS_CONN_ID).extra_dejson["data_keys_dir"])))


def tombstone_key() -> bytes:
    """The council's tombstone key (32 bytes, hex in the connection's password)."""
    return bytes.fromhex((BaseHook.get_connection(TOMBSTONE_CONN_ID).password or "").strip())


#: Airflow's own metadata database for its maintenance CLI (``airflow db clean``, the retention DAG): a
#: ``postgres`` connection for the central worker (default queue) only; never a partner's.
METADATA_CONN_ID = "sf_airflow_metadata"
#: What Airflow's task supervisor puts in a task's environment to block its ORM (task processes may not
#: reach the metadata database directly; airflow/sdk/execution_time/supervisor.py, block_orm_access).
_BLOCKED_DB = "airflow-db-not-allowed:///"
_DB_SETTINGS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__SQL_ALCHEMY_CONN")


def maintenance_env(environ: dict[str, str], connection_url: str | None) -> dict[str, str]:
    """The environment for Airflow's maintenance CLI run from a task: the metadata database from the
    ``sf_airflow_metadata`` connection when there is one, else the worker's own launch settings (the
    ``_CMD`` or ``_SECRET`` forms the demo's services use, or airflow.cfg), with the supervisor's ORM
    block taken out.

    A task's own process stays blocked; only the ``airflow db clean`` child it starts, Airflow's
    documented way to purge its tables, reaches the database.
    """
    env = {k: v for k, v in environ.items() if not (k in _DB_SETTINGS and v == _BLOCKED_DB)}
    if connection_url is not None:
        env = {k: v for k, v in env.items() if not k.startswith(_DB_SETTINGS)}
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = connection_url
    return env


def metadata_connection_url() -> str | None:
    """The ``sf_airflow_metadata`` connection as a SQLAlchemy URL, or None when there is none."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(METADATA_CONN_ID)
    except AirflowNotFoundException:
        return None
    return ledger_url_from_connection(
        METADATA_CONN_ID,
        conn_type=conn.conn_type,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        login=conn.login,
        password=conn.password,
    )
