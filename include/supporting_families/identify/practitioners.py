"""The practitioners' side: the worklist as they read it, and a decision recorded with who made it.

* :func:`worklist_families`: the families on the current worklist, each headline problem with its reason,
  and the members' names and address resolved from the register at the moment of reading (the notice: a
  practitioner "will be informed that they meet Supporting Families criteria and the reasons for this").
  Nothing resolved here is written anywhere; the caller shows it and forgets it.
* :func:`record_decision`: the one way a decision is recorded, from the form DAG and from the worklist
  page alike: the assessment is appended, and a ``practitioner_decision`` entry names the practitioner
  by a pseudonymous staff id only (never a name, never the family: the entry carries the assessment id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.audit import Ledger, NewEntry, idempotency_key
from supporting_families.identify.assessment import Recorded, record_assessment
from supporting_families.identify.store import latest_identification, worklist_file
from supporting_families.store import identification_dir, register_file

_MEMBER_COLUMNS = [
    "person_id",
    "family_id",
    "given_name",
    "family_name",
    "address_line_1",
    "town",
    "postcode",
]


@dataclass(frozen=True)
class Problem:
    headline: str
    title: str
    reason: str


@dataclass(frozen=True)
class WorklistFamily:
    family_id: str
    problems: tuple[Problem, ...]
    members: tuple[str, ...]
    address: str


def _read(path: UPath, columns: list[str] | None = None) -> list[dict[str, object]]:
    with path.open("rb") as fh:
        rows: list[dict[str, object]] = pq.read_table(fh, columns=columns).to_pylist()
    return rows


def worklist_families(
    store: UPath, *, offset: int = 0, limit: int = 50
) -> tuple[date | None, int, list[WorklistFamily]]:
    """(the worklist's date, how many families it has, one page of them) for the current identification."""
    as_of = latest_identification(store)
    if as_of is None:
        return None, 0, []
    with worklist_file(store, as_of).open("rb") as fh:
        worklist = pq.read_table(fh, columns=["family_id", "problems"])
    worklist = worklist.sort_by([("problems", "descending"), ("family_id", "ascending")])
    total = worklist.num_rows
    page_ids = worklist.slice(offset, limit)["family_id"]
    problems: dict[str, list[Problem]] = {}
    with (identification_dir(store, as_of) / "family_problems.parquet").open("rb") as fh:
        table = pq.read_table(fh, columns=["family_id", "headline", "title", "reason"])
    for row in table.filter(pc.is_in(table["family_id"], page_ids)).to_pylist():
        problems.setdefault(str(row["family_id"]), []).append(
            Problem(str(row["headline"]), str(row["title"]), str(row["reason"]))
        )
    with register_file(store, "persons").open("rb") as fh:
        persons = pq.read_table(fh, columns=_MEMBER_COLUMNS)
    members: dict[str, list[dict[str, object]]] = {}
    for row in persons.filter(pc.is_in(persons["family_id"], page_ids)).to_pylist():
        members.setdefault(str(row["family_id"]), []).append(row)
    families = []
    for family_id in page_ids.to_pylist():
        people = members.get(family_id, [])
        first = people[0] if people else {}
        address = ", ".join(str(first[k]) for k in ("address_line_1", "town", "postcode") if first.get(k))
        families.append(
            WorklistFamily(
                family_id=family_id,
                problems=tuple(sorted(problems.get(family_id, []), key=lambda p: p.headline)),
                members=tuple(f"{p['given_name']} {p['family_name']}" for p in people),
                address=address,
            )
        )
    return as_of, total, families


def decision_entry(
    recorded: Recorded,
    reason: str,
    staff_id: str,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    try_number: int | None = None,
) -> NewEntry:
    """The ``practitioner_decision`` entry for a recorded assessment (who: ``staff_id``)."""
    return NewEntry(
        kind="practitioner_decision",
        occurred_at=recorded.recorded_at,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        triggered_by=staff_id,
        details={
            "assessment_id": recorded.assessment_id,
            "decision": recorded.decision,
            "reason": reason,
        },
        idempotency_key=idempotency_key("practitioner_decision", recorded.assessment_id),
    )


def record_decision(
    store: UPath,
    ledger: Ledger,
    family_id: str,
    decision: str,
    reason: str,
    staff_id: str,
    *,
    as_of: date | None = None,
    request_id: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    try_number: int | None = None,
) -> Recorded:
    """Record the decision (see :func:`record_assessment`) and its ledger entry; a retry records neither
    twice. The entry is checked before the assessment is written: what cannot be recorded is not decided."""
    probe = NewEntry(
        kind="practitioner_decision",
        occurred_at=datetime.now(UTC),
        triggered_by=staff_id,
        details={"assessment_id": "a" * 32, "decision": decision, "reason": reason},
    )
    probe.validate()
    recorded = record_assessment(
        store, family_id, decision, staff_id, as_of, reason=reason, request_id=request_id
    )
    ledger.append(
        decision_entry(
            recorded, reason, staff_id, dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number
        )
    )
    return recorded
