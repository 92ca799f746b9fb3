"""Where the ledger lives: the ``sf_ledger`` connection's fields, or a password-free ``$SF_LEDGER_URL``."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from supporting_families.audit import LedgerSettingError, ledger_url, ledger_url_from_connection


def test_a_postgres_connection_gives_its_url_with_the_password() -> None:
    url = ledger_url_from_connection(
        "sf_ledger",
        conn_type="postgres",
        host="db.internal",
        port=5433,
        schema="ledger",
        login="platform",
        password="p@ss/word",
    )
    parsed = make_url(url)
    assert (parsed.drivername, parsed.host, parsed.port, parsed.database) == (
        "postgresql",
        "db.internal",
        5433,
        "ledger",
    )
    assert (parsed.username, parsed.password) == ("platform", "p@ss/word")


def test_a_sqlite_connection_names_the_file() -> None:
    url = ledger_url_from_connection(
        "sf_ledger",
        conn_type="sqlite",
        host="/var/sf/ledger.sqlite",
        port=None,
        schema=None,
        login=None,
        password=None,
    )
    assert url == "sqlite:////var/sf/ledger.sqlite"


@pytest.mark.parametrize(
    ("conn_type", "host", "schema", "rule"),
    [("postgres", None, "ledger", "host and schema"), ("http", "x", None, "not postgres or sqlite")],
)
def test_an_unusable_connection_is_refused_naming_it(
    conn_type: str, host: str | None, schema: str | None, rule: str
) -> None:
    with pytest.raises(LedgerSettingError, match=rf"'sf_ledger'.*{rule}"):
        ledger_url_from_connection(
            "sf_ledger",
            conn_type=conn_type,
            host=host,
            port=None,
            schema=schema,
            login="u",
            password="secret",
        )


def test_the_environment_variable_may_not_carry_a_password() -> None:
    with pytest.raises(LedgerSettingError, match="sf_ledger") as caught:
        ledger_url({"SF_LEDGER_URL": "postgresql://platform:hunter2@db/ledger"})
    assert "hunter2" not in str(caught.value)
    assert ledger_url({"SF_LEDGER_URL": "postgresql://postgres@127.0.0.1/test"}).endswith("/test")
    assert ledger_url({"SF_LEDGER_URL": "sqlite:////tmp/l.sqlite"}) == "sqlite:////tmp/l.sqlite"
