"""Where the ledger lives: one home for the connection setting, read by the CLI, plugins and DAGs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

#: The ledger URL when none is given (keeps a password out of the process list).
LEDGER_URL_ENV: Final = "SF_LEDGER_URL"
#: Where the ledger's anchors are kept (see supporting_families.audit.anchors).
ANCHORS_URI_ENV: Final = "SF_LEDGER_ANCHORS_URI"


class LedgerSettingError(RuntimeError):
    """The ledger's location is not configured."""


def ledger_url(environ: Mapping[str, str] | None = None) -> str:
    """The ledger's URL from ``$SF_LEDGER_URL``; a clear error naming the setting when it is not set."""
    url = (os.environ if environ is None else environ).get(LEDGER_URL_ENV)
    if not url:
        raise LedgerSettingError(
            f"{LEDGER_URL_ENV} is not set: source scripts/env.sh, or set it in the deployment (an Airflow"
            " connection or the secrets backend in production)"
        )
    return url
