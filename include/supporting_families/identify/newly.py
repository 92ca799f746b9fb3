"""Families newly on the worklist: who the lead practitioner is told about, and the identification's entry.

The notice: a practitioner "will be informed that they meet Supporting Families criteria and the reasons
for this". The worklist page shows every family; this module says which ones are new since the previous
identification, so the lead practitioner can be told by e-mail (``dags/identify_families.py``).

What the e-mail may carry is decided here (:func:`notification_rows`): the family's reference on the
worklist (the council's internal family id, which only the worklist page resolves to people, for the roles
allowed to see it) and each headline problem with its reason, as the criteria word it. Never a name, an
address, a date of birth, a person id or an evidence date: e-mail leaves the platform's store, is copied
to mailboxes and forwarded, and cannot be erased with the rest (UK GDPR Article 5(1)(c), minimisation;
docs/ARCHITECTURE.md, "Who may see what").

The comparison is kept beside the worklist in ``identification/<as_of>/worklist_notified.parquet``: every
family on the worklist that was compared, whether it was new, the worklist file's SHA-256 and the run. A
retry of the same run finds its own record and sends nothing again (the record is written after the mail:
a crash between the two sends it once more, never loses it); the next identification compares against
it (erasure rewrites it like every other file under ``identification/``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.audit import NewEntry, idempotency_key
from supporting_families.identify.store import worklist_file
from supporting_families.store import identification_dir, identification_root
from supporting_families.store.io import sha256_of, write_parquet

NOTIFIED_FILE: Final = "worklist_notified.parquet"
NOTIFIED_SCHEMA: Final = pa.schema(
    [
        pa.field("family_id", pa.string(), nullable=False),
        #: new on this worklist since the previous identification's
        pa.field("newly_eligible", pa.bool_(), nullable=False),
        #: the worklist file compared (which identification this record belongs to)
        pa.field("worklist_sha256", pa.string(), nullable=False),
        #: the identification run that compared it: its retry finds its own record and sends nothing again
        pa.field("run_id", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class NewFamily:
    family_id: str
    #: (headline problem title, reason), in the order of the headline problems' codes
    reasons: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NewlyEligible:
    """The worklist of ``as_of`` against the previous identification's."""

    as_of: date
    run_id: str
    worklist_sha256: str
    on_worklist: tuple[str, ...]
    families: tuple[NewFamily, ...]
    #: no previous identification was compared: every family on this first worklist is new
    first: bool
    #: this run compared the worklist before (a retry): its families were already told about
    already_compared: bool

    def counts(self) -> dict[str, Any]:
        """Numbers only (safe for XCom, logs and the ledger)."""
        return {
            "eligible_families": len(self.on_worklist),
            "newly_eligible": len(self.families),
            "first_identification": self.first,
        }


def _read(path: UPath, columns: list[str] | None = None) -> pa.Table:
    with path.open("rb") as fh:
        return pq.read_table(fh, columns=columns)


def _previous_record(store: UPath, as_of: date) -> UPath | None:
    """The comparison record of the newest identification on or before ``as_of``."""
    root = identification_root(store)
    if not root.exists():
        return None
    days = sorted(
        (date.fromisoformat(p.name) for p in root.iterdir() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.name)),
        reverse=True,
    )
    for day in days:
        path = identification_dir(store, day) / NOTIFIED_FILE
        if day <= as_of and path.exists():
            return path
    return None


def newly_eligible(store: UPath, as_of: date, run_id: str) -> NewlyEligible:
    """The families on the worklist of ``as_of`` that were not on the previous identification's, as the
    identification run ``run_id`` finds them (its retry finds the same families, already told about)."""
    path = worklist_file(store, as_of)
    digest = sha256_of(path)
    ids = _read(path, ["family_id"])["family_id"].to_pylist()
    on_worklist = tuple(str(i) for i in ids)
    previous = _previous_record(store, as_of)
    record = _read(previous).cast(NOTIFIED_SCHEMA) if previous is not None else None
    already = (
        record is not None
        and record.num_rows > 0
        and record["run_id"][0].as_py() == run_id
        and record["worklist_sha256"][0].as_py() == digest
    )
    if already and record is not None:
        new = [str(i) for i in record.filter(record["newly_eligible"])["family_id"].to_pylist()]
    else:
        before = set() if record is None else {str(i) for i in record["family_id"].to_pylist()}
        new = [i for i in on_worklist if i not in before]
    reasons: dict[str, list[tuple[str, str, str]]] = {}
    if new:
        problems = _read(
            identification_dir(store, as_of) / "family_problems.parquet",
            ["family_id", "headline", "title", "reason"],
        )
        wanted = problems.filter(pc.is_in(problems["family_id"], value_set=pa.array(new, pa.string())))
        for row in wanted.to_pylist():
            reasons.setdefault(str(row["family_id"]), []).append(
                (str(row["headline"]), str(row["title"]), str(row["reason"]))
            )
    families = tuple(
        NewFamily(fid, tuple((title, reason) for _h, title, reason in sorted(reasons.get(fid, []))))
        for fid in sorted(new)
    )
    return NewlyEligible(as_of, run_id, digest, on_worklist, families, record is None, already)


def record_compared(store: UPath, found: NewlyEligible) -> None:
    """Keep the comparison beside the worklist, once the lead practitioner has been told."""
    new = {f.family_id for f in found.families}
    table = pa.table(
        {
            "family_id": list(found.on_worklist),
            "newly_eligible": [i in new for i in found.on_worklist],
            "worklist_sha256": [found.worklist_sha256] * len(found.on_worklist),
            "run_id": [found.run_id] * len(found.on_worklist),
        },
        schema=NOTIFIED_SCHEMA,
    )
    write_parquet(table, identification_dir(store, found.as_of) / NOTIFIED_FILE)


def notification_rows(found: NewlyEligible) -> list[dict[str, str]]:
    """What the e-mail lists: one row per newly eligible family and headline problem, with its reason.
    The family reference and the criteria's own words only (module docstring)."""
    return [
        {"family reference": f.family_id, "headline problem": title, "reason": reason}
        for f in found.families
        for title, reason in f.reasons
    ]


def identification_entry(
    found: NewlyEligible,
    counts: dict[str, Any],
    *,
    occurred_at: datetime,
    notified: bool,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None,
    triggered_by: str,
) -> NewEntry:
    """The ``assessment`` entry of one identification run: counts and the worklist's hash, never a family.

    ``counts`` are the run's totals (persons, families); who acted is the staff id of the person who
    triggered the run, or the schedule or asset event (``triggered_by``)."""
    return NewEntry(
        kind="assessment",
        occurred_at=occurred_at,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        triggered_by=triggered_by,
        details={
            **{k: int(v) for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)},
            **found.counts(),
            "worklist_sha256": found.worklist_sha256,
            "lead_practitioner_notified": notified,
        },
        idempotency_key=idempotency_key("assessment", dag_id, run_id),
    )
