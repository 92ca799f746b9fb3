"""A practitioner records a decision about a family: the only source of "assessed as meeting the criteria"."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task

from sf_airflow.common import DEFAULT_ARGS, START_DATE, store

# Mirrors supporting_families.identify.assessment (kept literal here so parsing imports nothing heavy); the
# core
# validates again and is the authority.
DECISIONS = ["meets_criteria", "does_not_meet", "withdrawn"]
# Every reason code; the core checks that the code fits the decision (assessment.REASONS).
REASONS = [
    "confirmed_with_lead_professional",
    "confirmed_at_panel",
    "evidence_not_confirmed",
    "already_supported_elsewhere",
    "family_declined_support",
    "family_moved_away",
    "recorded_in_error",
    "family_objected",
]
FAMILY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


@dag(
    dag_id="confirm_assessment",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    # Appends to register/assessments.parquet replace the file whole: one run at a time never loses one.
    max_active_runs=1,
    tags=["supporting-families", "assessment", "practitioners"],
    params={
        "family_id": Param(
            type="string",
            pattern=FAMILY_PATTERN,
            title="Family id",
            description="The family's id as shown on the worklist (an internal id, never a name).",
        ),
        "decision": Param(
            "meets_criteria",
            type="string",
            enum=DECISIONS,
            title="Decision",
            description=(
                "meets_criteria: assessed as meeting the Supporting Families criteria (the family must be on "
                "the current worklist); does_not_meet: reviewed and not included; withdrawn: an earlier "
                "decision is withdrawn (recorded in error, or the family objected)."
            ),
        ),
        "identification_as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Worklist reviewed",
            description="The identification date of the worklist you reviewed; empty for the current one.",
        ),
        "reason": Param(
            type="string",
            enum=REASONS,
            title="Reason",
            description=(
                "meets_criteria: confirmed_with_lead_professional or confirmed_at_panel. does_not_meet: "
                "evidence_not_confirmed, already_supported_elsewhere, family_declined_support or "
                "family_moved_away. withdrawn: recorded_in_error, family_objected or family_moved_away. "
                "A code, not free text: this form is kept in Airflow's metadata database, so the case "
                "narrative stays in the case management system."
            ),
        ),
    },
    doc_md="""
### Confirm a practitioner's assessment

**Not an automated decision about a person.** UK GDPR Article 22 gives everyone the right not to be
subject to a decision based solely on automated processing, and the privacy notice repeats it. The
`identify_families` DAG therefore produces only a *worklist* with reasons; a family becomes **"assessed as
meeting the criteria"** only when a named practitioner records that decision here, after reviewing the
reasons (the notice: the practitioner "will be informed that they meet Supporting Families criteria and the
reasons for this").

Trigger with the form: family id (from the worklist), decision, optionally the worklist date you
reviewed, and a reason code; or press **Confirm assessment** on the worklist page (Browse → Practitioners'
worklist). Who decided is the signed-in user who triggered the run (`dag_run.triggering_user_name`),
recorded as a pseudonymous staff id, never typed and never a name. There is no free-text box on purpose:
the form's values are stored in Airflow's metadata database, where a typed name or date of birth must
never end up. Only the Practitioner role (and Admin) may trigger this DAG.

* `meets_criteria` is accepted only for a family on the **current** worklist (evidence that has since been
  replaced cannot be confirmed); the worklist file's SHA-256 is recorded with the decision.
* `does_not_meet` records a family reviewed and not included: the ONS comparison group ("those who have
  not been included on the programme but may have received other services").
* `withdrawn` withdraws the family's earlier decision; it then has no programme state.

Every decision is appended to `register/assessments.parquet` (the latest per family counts; the history
is the audit trail), and a `practitioner_decision` entry goes into the audit ledger with the staff id. A
retried run records nothing twice (the run id is the request id). The task returns the assessment id and
the decision, never the family id.
""",
)
def confirm_assessment() -> None:
    @task
    def record(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from datetime import date

        from airflow.sdk.exceptions import AirflowFailException

        from sf_airflow.access import staff_id_key
        from sf_airflow.credentials import ledger
        from supporting_families.audit import staff_id
        from supporting_families.identify import AssessmentError, record_decision

        assert params is not None
        ti, dag_run = context["ti"], context["dag_run"]
        user = getattr(dag_run, "triggering_user_name", None)
        if not user:
            # A decision is a person's: a run nobody triggered (an API call without a user) decides nothing.
            raise AirflowFailException("no triggering user: a practitioner must trigger this DAG signed in")
        reviewed = params.get("identification_as_of")
        try:
            with ledger() as audit_ledger:
                recorded = record_decision(
                    store(),
                    audit_ledger,
                    str(params["family_id"]),
                    str(params["decision"]),
                    str(params["reason"]),
                    staff_id(staff_id_key(), str(user)),
                    as_of=date.fromisoformat(reviewed) if reviewed else None,
                    request_id=ti.run_id,
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    task_id=ti.task_id,
                    try_number=ti.try_number,
                )
        except AssessmentError as exc:
            # A refused request (not on the worklist, a reason that does not fit...) fails at once:
            # retrying cannot change the answer. The message names the field and rule, never a value.
            raise AirflowFailException(str(exc)) from None
        return recorded.as_dict()

    record()


confirm_assessment()
