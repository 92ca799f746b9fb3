"""Practitioners' assessments: the only way a family becomes "assessed as meeting the criteria".

The criteria engine (:mod:`supporting_families.identify.criteria`) produces a worklist with reasons; it
decides nothing. UK GDPR Article 22 gives a person the right not to be subject to a decision based solely on
automated processing, and the notice repeats it ("You have a right not to be subject to automated
decision-making including profiling"). So a family's programme state comes only from a decision a named
practitioner records here, after reviewing the worklist's reasons with the family's lead professional (the
notice: the practitioner "will be informed that they meet Supporting Families criteria and the reasons for
this").

Decisions (the latest per family wins):

* ``meets_criteria``: assessed as meeting the criteria. Only for a family on the current worklist, so a
  practitioner confirms what the evidence shows rather than creating eligibility the rules did not find.
* ``does_not_meet``: reviewed and not included. These families are the candidates for the ONS comparison
  group (the notice: "those who have not been included on the programme but may have received other
  services").
* ``withdrawn``: an earlier decision is withdrawn (recorded in error, or the family objected: the notice's
  "right to object and restrict further processing"); the family then has no programme state.

Each decision carries a reason from a fixed list (:data:`REASONS`), never free text. The form's values are
kept in the run's configuration in Airflow's metadata database, and a free-text rationale is where a name or
a child's date of birth would end up; the case narrative belongs in the council's case management system,
which this platform does not replace (UK GDPR Article 5(1)(c), data minimisation).

Everything is appended to ``register/assessments.parquet`` (personal data by id, kept with the register).
The file is replaced whole on each append, so readers see the old or the new file, never a part; the
``confirm_assessment`` DAG runs one at a time, so appends never race.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from supporting_families.identify.decisions import ASSESSMENT_SCHEMA, _read_assessments, assessment_status
from supporting_families.identify.store import latest_identification, worklist_file
from supporting_families.store.io import sha256_of, write_parquet
from supporting_families.store.layout import register_file

__all__ = [
    "ALL_REASONS",
    "ASSESSMENT_SCHEMA",
    "DECISIONS",
    "PROGRAMME_STATUS",
    "REASONS",
    "AssessmentError",
    "Decision",
    "Recorded",
    "assessment_status",
    "record_assessment",
]

log = logging.getLogger(__name__)

Decision = Literal["meets_criteria", "does_not_meet", "withdrawn"]
DECISIONS: Final = get_args(Decision)

#: The state a decision gives a family, in the words the ONS agreement's ``programme_status`` uses.
PROGRAMME_STATUS: Final[dict[str, str | None]] = {
    "meets_criteria": "assessed_as_meeting_criteria",
    "does_not_meet": "not_included",
    "withdrawn": None,
}

#: Why a practitioner made a decision: the reasons each decision accepts. Codes, not prose (see above).
REASONS: Final[dict[str, tuple[str, ...]]] = {
    "meets_criteria": ("confirmed_with_lead_professional", "confirmed_at_panel"),
    "does_not_meet": (
        "evidence_not_confirmed",
        "already_supported_elsewhere",
        "family_declined_support",
        "family_moved_away",
    ),
    "withdrawn": ("recorded_in_error", "family_objected", "family_moved_away"),
}
ALL_REASONS: Final = tuple(dict.fromkeys(r for rs in REASONS.values() for r in rs))

#: Practitioner ids as the council's directory issues them: letters, digits and . _ - @, no spaces.
_PRACTITIONER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")


class AssessmentError(ValueError):
    """A decision cannot be recorded: the message names the field and the rule, never a personal value."""


@dataclass(frozen=True)
class Recorded:
    """What was recorded, without the family: safe to return through XCom and to log."""

    assessment_id: str
    decision: str
    programme_status: str | None
    identification_as_of: date | None
    recorded_at: datetime
    already_recorded: bool

    def as_dict(self) -> dict[str, str | bool | None]:
        return {
            "assessment_id": self.assessment_id,
            "decision": self.decision,
            "programme_status": self.programme_status,
            "identification_as_of": self.identification_as_of.isoformat()
            if self.identification_as_of
            else None,
            "recorded_at": self.recorded_at.isoformat(),
            "already_recorded": self.already_recorded,
        }


def _family_ids(path: UPath) -> pa.Array:
    with path.open("rb") as fh:
        column = pq.read_table(fh, columns=["family_id"]).column("family_id")
    return column.combine_chunks()


def _check_reason(decision: str, reason: str) -> None:
    if reason not in REASONS[decision]:
        # The message lists the codes only: a value that is not a code might be someone's details.
        raise AssessmentError(
            f"reason: for {decision}, one of {', '.join(REASONS[decision])} (rule: known reason)"
        )


def _contains(ids: pa.Array, family_id: str) -> bool:
    return bool(pc.any(pc.equal(ids, family_id)).as_py())


def record_assessment(
    store: UPath,
    family_id: str,
    decision: str,
    practitioner: str,
    as_of: date | None = None,
    *,
    reason: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Record a practitioner's decision about a family, appending to ``register/assessments.parquet``.

    ``as_of`` names the identification whose worklist the practitioner reviewed (default: the latest).
    ``meets_criteria`` needs the family on that worklist, and that worklist must be the current one: a
    family that has dropped off a newer identification cannot be confirmed on older evidence. Every decision
    needs the family in the register. With ``request_id`` (the DAG run id) a retried call records nothing
    new and returns the earlier record. ``reason`` is one of ``REASONS[decision]``.
    """
    if decision not in DECISIONS:
        raise AssessmentError(f"decision: must be one of {', '.join(DECISIONS)} (rule: known decision)")
    if not _PRACTITIONER.match(practitioner):
        raise AssessmentError(
            "practitioner: a directory id of 2 to 64 letters, digits or . _ - @, without spaces "
            "(rule: practitioner id)"
        )
    family_id = family_id.strip()
    if not family_id:
        raise AssessmentError("family_id: required (rule: family id)")
    _check_reason(decision, reason)

    existing = _read_assessments(store)
    if request_id is not None:
        earlier = existing.filter(pc.equal(existing.column("request_id"), request_id))
        if earlier.num_rows:
            row = earlier.slice(earlier.num_rows - 1).to_pylist()[0]
            log.info("assessment request already recorded; nothing appended")
            return Recorded(
                row["assessment_id"],
                row["decision"],
                row["programme_status"],
                row["identification_as_of"],
                row["recorded_at"],
                already_recorded=True,
            )

    persons = register_file(store, "persons")
    if not persons.exists():
        raise AssessmentError("family_id: there is no register yet (rule: family in the register)")
    if not _contains(_family_ids(persons), family_id):
        raise AssessmentError("family_id: not a family in the register (rule: family in the register)")

    current = latest_identification(store)
    reviewed = as_of or current
    worklist_sha: str | None = None
    if decision == "meets_criteria":
        # Article 22: the practitioner confirms the engine's evidence, on the current worklist only.
        if reviewed is None:
            raise AssessmentError(
                "as_of: no identification has been run (rule: family on the current worklist)"
            )
        if reviewed != current:
            raise AssessmentError(
                f"as_of: the worklist of {reviewed.isoformat()} is not the current one "
                f"({current.isoformat() if current else 'none'}); review the current worklist "
                "(rule: family on the current worklist)"
            )
        worklist = worklist_file(store, reviewed)
        if not worklist.exists():
            raise AssessmentError(
                f"as_of: no worklist for {reviewed.isoformat()} (rule: family on the current worklist)"
            )
        if not _contains(_family_ids(worklist), family_id):
            raise AssessmentError(
                f"family_id: not on the worklist of {reviewed.isoformat()} "
                "(rule: family on the current worklist)"
            )
        worklist_sha = sha256_of(worklist)

    recorded_at = (now or datetime.now(UTC)).astimezone(UTC)
    digest = hashlib.sha256(
        "\x1f".join([family_id, decision, practitioner, recorded_at.isoformat(), request_id or ""]).encode()
    ).hexdigest()
    status = PROGRAMME_STATUS[decision]
    row_table = pa.table(
        {
            "assessment_id": [digest[:32]],
            "family_id": [family_id],
            "decision": [decision],
            "programme_status": [status],
            "practitioner": [practitioner],
            "identification_as_of": pa.array([reviewed], pa.date32()),
            "worklist_sha256": [worklist_sha],
            "recorded_at": pa.array([recorded_at], pa.timestamp("us", tz="UTC")),
            "reason": [reason],
            "request_id": [request_id],
        },
        schema=ASSESSMENT_SCHEMA,
    )
    write_parquet(pa.concat_tables([existing, row_table]), register_file(store, "assessments"))
    log.info("recorded a %s decision; %d assessments in total", decision, existing.num_rows + 1)
    return Recorded(digest[:32], decision, status, reviewed, recorded_at, already_recorded=False)
