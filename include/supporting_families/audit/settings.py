"""Where the ledger lives: one home for the connection setting, read by the CLI, plugins and DAGs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

#: The ledger URL when none is given (keeps a password out of the process list).
LEDGER_URL_ENV: Final = "SF_LEDGER_URL"
#: The Airflow connection (served by the secrets backend) that holds the ledger's database and its
#: credentials; the DAGs and the auditor's console read it before ``$SF_LEDGER_URL``.
LEDGER_CONN_ID: Final = "sf_ledger"
#: Where the ledger's anchors are kept (see supporting_families.audit.anchors).
ANCHORS_URI_ENV: Final = "SF_LEDGER_ANCHORS_URI"


class LedgerSettingError(RuntimeError):
    """The ledger's location is not configured."""


def ledger_url(environ: Mapping[str, str] | None = None) -> str:
    """The ledger's URL from ``$SF_LEDGER_URL``; a clear error naming the setting when it is not set.

    The variable is for a database that needs no secret (the demo's SQLite file, a trust-authenticated
    local server, the command line's default): a URL with a password in it is refused, because an
    environment is readable by every process of the user and ends up in crash reports. A password
    belongs in the ``sf_ledger`` connection (docs/ARCHITECTURE.md, "Rules of the house": secrets live in
    Airflow connections or a secrets backend).
    """
    url = (os.environ if environ is None else environ).get(LEDGER_URL_ENV)
    if not url:
        raise LedgerSettingError(
            f"{LEDGER_URL_ENV} is not set: source scripts/env.sh, or define the Airflow connection"
            f" {LEDGER_CONN_ID!r} in the secrets backend"
        )
    try:
        password = make_url(url).password
    except ArgumentError:
        raise LedgerSettingError(f"{LEDGER_URL_ENV} is not a database URL") from None
    if password:
        raise LedgerSettingError(
            f"{LEDGER_URL_ENV} carries a password: put the ledger's credentials in the Airflow connection"
            f" {LEDGER_CONN_ID!r} (secrets backend) instead"
        )
    return url


def ledger_url_from_connection(
    conn_id: str,
    *,
    conn_type: str | None,
    host: str | None,
    port: int | None,
    schema: str | None,
    login: str | None,
    password: str | None,
) -> str:
    """The ledger's URL from an Airflow connection's fields (``postgres``: host, port, schema = database,
    login, password; ``sqlite``: host = the file's path). The password stays in the returned URL only,
    never in a message."""
    kind = (conn_type or "").lower()
    if kind in ("postgres", "postgresql"):
        if not host or not schema:
            raise LedgerSettingError(f"connection {conn_id!r}: a postgres ledger needs host and schema")
        return URL.create(
            "postgresql",
            username=login or None,
            password=password or None,
            host=host,
            port=port or None,
            database=schema,
        ).render_as_string(hide_password=False)
    if kind == "sqlite":
        if not host:
            raise LedgerSettingError(f"connection {conn_id!r}: a sqlite ledger needs the file's path as host")
        return f"sqlite:///{host}"
    raise LedgerSettingError(f"connection {conn_id!r}: conn_type {conn_type!r} is not postgres or sqlite")
