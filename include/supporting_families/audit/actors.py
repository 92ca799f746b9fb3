"""Who acted, as the ledger records it: a pseudonymous staff id for a person, the trigger otherwise.

Staff names are personal data too, and the ledger cannot be edited, so a person is never named in it: the
entry holds a keyed hash of the login's user id (UK GDPR Article 4(5), pseudonymisation). Whoever holds
the key and the user directory can say who acted; the ledger alone cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

#: Prefix of a pseudonymous staff id: ``staff-`` and 128 bits of HMAC-SHA256 in hex.
STAFF_ID_PREFIX: Final = "staff-"
#: The exact shape of a staff id: a keyed hash, so the ledger's guard reads it like any other hash (its hex
#: can hold a run of digits that would otherwise look like a telephone number or a date).
STAFF_ID_PATTERN: Final = re.compile(r"staff-[0-9a-f]{32}")
_DOMAIN: Final = b"supporting-families/staff-id/v1\x00"
_MIN_KEY_BYTES: Final = 16
#: Airflow's run types, as the ledger names a trigger that was not a person.
_RUN_TYPE_ACTORS: Final = {
    "scheduled": "schedule",
    "asset_triggered": "asset_event",
    "asset_materialization": "asset_event",
    "backfill": "backfill",
    "manual": "manual",
}


def staff_id(key: bytes, user_id: str) -> str:
    """The pseudonymous id of the staff member whose login is ``user_id``; the same for every entry."""
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"the staff id key must be at least {_MIN_KEY_BYTES} bytes")
    if not user_id:
        raise ValueError("an empty user id has no staff id")
    digest = hmac.new(key, _DOMAIN + user_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return STAFF_ID_PREFIX + digest[:32]


def actor(key: bytes | None, triggering_user: str | None, run_type: str | None) -> str:
    """``triggered_by`` for a ledger entry: the staff id of the person who triggered the run, else the
    schedule or asset event that did (``manual`` with no known user: an API call without a user)."""
    if triggering_user:
        if key is None:
            raise ValueError("a run triggered by a person needs the staff id key to record who acted")
        return staff_id(key, triggering_user)
    value = (run_type or "").lower()
    return _RUN_TYPE_ACTORS.get(value, value or "unknown")
