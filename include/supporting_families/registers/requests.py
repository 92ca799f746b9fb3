"""The request register: every data subject's request, with the date it is due.

UK GDPR Article 12(3): a request is answered "without undue delay and in any event within one month of
receipt". One month is the same day of the next month, or that month's last day when it has no such day
(31 January is due on 28 or 29 February), which is how the ICO counts it. The daily ``rights_deadlines``
check reads :func:`due_requests`: a run's own deadline alert disappears once the run succeeds, so it cannot
watch a request that stays open for weeks.

Kept in ``register/rights_requests.parquet``: one row per request, keyed by ``request_id`` (the right and
the council's case reference), replaced whole when a request closes.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.registers._table import append_rows, read_table, replace_table
from supporting_families.store.layout import register_file

Right = Literal["access", "rectification", "erasure", "restriction", "portability", "legal_hold"]
RIGHTS: Final = get_args(Right)
Status = Literal["open", "completed", "refused"]

#: The council's case reference for a request, e.g. ``DSR-2026-00042``: letters, the year, a number.
#: Only this shape is accepted, so a name or a date of birth can never be typed in its place.
CASE_REFERENCE: Final = re.compile(r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{3,6}$")
#: The council's internal person and family ids, as the register issues them.
INTERNAL_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

REQUESTS_SCHEMA: Final = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("right", pa.string(), nullable=False),
        pa.field("case_reference", pa.string(), nullable=False),
        pa.field("person_id", pa.string()),  # null for a hold on an agreement
        pa.field("received_on", pa.date32(), nullable=False),
        pa.field("due_on", pa.date32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("closed_on", pa.date32()),
        pa.field("outcome", pa.string()),  # a code: completed, refused_legal_hold, ...
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class RequestError(ValueError):
    """A request cannot be recorded: names the field and the rule, never a value."""


HEX_AS_LETTERS: Final = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def check_case_reference(reference: str) -> str:
    if not CASE_REFERENCE.fullmatch(reference):
        raise RequestError("case_reference: the council's format, e.g. DSR-2026-00042 (rule: case reference)")
    return reference


def check_internal_id(value: str, name: str = "person_id") -> str:
    if not INTERNAL_ID.fullmatch(value):
        raise RequestError(f"{name}: an internal id of letters, digits, _ or - (rule: internal id)")
    return value


def one_month_after(received: date) -> date:
    """Article 12(3)'s "one month": the same day next month, or that month's last day."""
    year, month = (received.year + 1, 1) if received.month == 12 else (received.year, received.month + 1)
    return date(year, month, min(received.day, calendar.monthrange(year, month)[1]))


def request_id_for(right: str, case_reference: str) -> str:
    """A stable id: the same case reference for the same right is the same request (a retry)."""
    digest = hashlib.sha256(f"{right}\n{case_reference}".encode()).hexdigest()[:16]
    # Letters only (hex digits spelled a-p), as delivery ids: the id goes into the ledger, whose guard reads
    # a run of nine digits as personal data.
    return "rq" + digest.translate(HEX_AS_LETTERS)


def reference_hash(case_reference: str) -> str:
    """What the ledger keeps of a case reference: its SHA-256, so the entry links to the case file without
    naming it."""
    return hashlib.sha256(case_reference.encode()).hexdigest()


def requests_path(store: UPath) -> UPath:
    return register_file(store, "requests")


def read_requests(store: UPath) -> pa.Table:
    return read_table(requests_path(store), REQUESTS_SCHEMA)


def open_request(
    store: UPath,
    right: Right,
    case_reference: str,
    person_id: str | None,
    received_on: date,
    *,
    now: datetime | None = None,
) -> dict[str, object]:
    """Record a request (once: a retry finds it); returns its row (ids and dates only)."""
    if right not in RIGHTS:
        raise RequestError(f"right: one of {', '.join(RIGHTS)} (rule: known right)")
    check_case_reference(case_reference)
    if person_id is not None:
        check_internal_id(person_id)
    request_id = request_id_for(right, case_reference)
    existing = read_requests(store)
    found = existing.filter(pc.equal(existing["request_id"], request_id))
    if found.num_rows:
        row: dict[str, object] = found.to_pylist()[0]
        if row["person_id"] != person_id:
            raise RequestError("case_reference: already used for another person (rule: one case, one person)")
        return row
    row = {
        "request_id": request_id,
        "right": right,
        "case_reference": case_reference,
        "person_id": person_id,
        "received_on": received_on,
        "due_on": one_month_after(received_on),
        "status": "open",
        "closed_on": None,
        "outcome": None,
        "recorded_at": (now or datetime.now(UTC)).astimezone(UTC),
    }
    append_rows(requests_path(store), REQUESTS_SCHEMA, [row])
    return row


def close_request(store: UPath, request_id: str, status: Status, outcome: str, on: date) -> None:
    """Mark a request completed or refused (with an outcome code). Closing twice keeps the first close."""
    table = read_requests(store)
    mine = pc.equal(table["request_id"], request_id)
    if not pc.any(mine).as_py():
        raise RequestError("request_id: not in the request register (rule: known request)")
    still_open = pc.and_(mine, pc.equal(table["status"], "open"))
    if not pc.any(still_open).as_py():
        return
    table = table.set_column(6, "status", pc.if_else(still_open, pa.scalar(status), table["status"]))
    table = table.set_column(
        7, "closed_on", pc.if_else(still_open, pa.scalar(on, pa.date32()), table["closed_on"])
    )
    table = table.set_column(8, "outcome", pc.if_else(still_open, pa.scalar(outcome), table["outcome"]))
    replace_table(requests_path(store), table)


@dataclass(frozen=True)
class DueRequests:
    """Open requests past or near their due date: ids and dates only (safe for a notification)."""

    overdue: list[dict[str, object]]
    due_soon: list[dict[str, object]]

    @property
    def any(self) -> bool:
        return bool(self.overdue or self.due_soon)


def due_requests(requests: pa.Table, today: date, warn_days: int = 7) -> DueRequests:
    """Open requests whose due date has passed, and those due within ``warn_days``."""
    open_ = requests.filter(pc.equal(requests["status"], "open"))
    columns = ["request_id", "right", "case_reference", "received_on", "due_on"]
    overdue = open_.filter(pc.less(open_["due_on"], pa.scalar(today, pa.date32())))
    soon_limit = pa.scalar(today + timedelta(days=warn_days), pa.date32())
    soon = open_.filter(
        pc.and_(
            pc.greater_equal(open_["due_on"], pa.scalar(today, pa.date32())),
            pc.less_equal(open_["due_on"], soon_limit),
        )
    )
    return DueRequests(
        overdue.select(columns).sort_by("due_on").to_pylist(),
        soon.select(columns).sort_by("due_on").to_pylist(),
    )
