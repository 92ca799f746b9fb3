"""Identify families: build the person register, apply the criteria, write the practitioners' worklist.

Scheduled on Airflow Assets, so it runs again whenever the evidence changes: when every internal source has
been ingested anew, or when any partner's per-reference return (DWP benefits, police offences and ASB) has
been merged. Emits ``IDENTIFICATION``, which the share DAGs consume.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

from airflow.sdk import dag, task

from sf_airflow.common import DEFAULT_ARGS, IDENTIFICATION, START_DATE, curated_asset, return_asset, store
from supporting_families.config import load_agreements, load_sources

#: Every source in include/sources.yaml, in file order.
SOURCES = list(load_sources().sources)
#: The departments' extracts, which land together; a voluntary-sector agency's (``inbound:``) arrives over
#: SFTP on its own timetable, so like a partner's return it re-runs identification on its own.
DEPARTMENTS = [name for name, spec in load_sources().sources.items() if spec.inbound is None]
AGENCIES = [name for name in SOURCES if name not in DEPARTMENTS]
#: Agreements whose return is a flag per reference (DWP, the police): their answers can add problems.
#: (The ONS return is a receipt: it changes nothing about who meets the criteria.)
FLAG_RETURNS = [a.id for a in load_agreements(resolve=False) if a.returns.kind == "per_reference"]

_curated_all = functools.reduce(operator.and_, [curated_asset(s) for s in DEPARTMENTS])
_on_their_own = [return_asset(a) for a in FLAG_RETURNS] + [curated_asset(s) for s in AGENCIES]
SCHEDULE: Any = (
    _curated_all | functools.reduce(operator.or_, _on_their_own) if _on_their_own else _curated_all
)

DOC = f"""
### Identify families

The notice: "To be eligible for the programme a family must be experiencing at least two of the
following", six headline problems with their sub-criteria. This DAG finds those families and says why.

1. **build_register**: links every internal source's latest curated extract to stable persons
   (`supporting_families.identify.linkage`: exact rules, then a probabilistic linker) and groups persons into
   households by property (same UPRN, else same address line 1 and postcode). The sources record no
   relationships, so the register's family is the household (`family_id = household_id`). Writes
   `register/` (persons, links, id map).
2. **evaluate_criteria**: applies `include/criteria.yaml` (thresholds, 12-month windows, the minimum of
   `min_problems` headline problems, two in the notice: configuration, because national guidance
   changes) to the latest
   curated extract of each source and to the partners' flags in `register/partner_flags/`, and writes
   `identification/<as_of>/`: `person_flags` (every flag with its reason: headline problem,
   sub-criterion, source, evidence date, the partner that supplied it), `family_problems`, and the
   `worklist` of eligible families with their problems and reasons. **`as_of` is the latest extract date
   among the curated files**: the newest day the council has facts for.

**Not an automated decision** (UK GDPR Article 22): the worklist is for practitioners. A family is
"assessed as meeting the criteria" only when a practitioner records it with the `confirm_assessment` DAG.

**Schedule.** On assets: *all* of the {len(DEPARTMENTS)} departments' curated sources updated
(`{" & ".join(curated_asset(s).name for s in DEPARTMENTS)}`) **or** *any* partner return merged or
voluntary-sector agency's extract curated (`{" | ".join(a.name for a in _on_their_own) or "none"}`): a
DWP or police answer adds worklessness, disability, crime and ASB flags, an agency's extract its own
(debt advice), so eligibility is evaluated again as soon as one arrives.
One run at a time (the register's id map is written by one run only). Emits `{IDENTIFICATION.name}`
(task `publish_for_shares`), which starts the share DAGs, except when only partner returns (or agencies'
extracts) triggered the run: then the worklist is refreshed and the shares wait for their schedule, so an
answer never causes another delivery by itself.

3. **tell_lead_practitioner**: the families new on the worklist since the previous identification are
   e-mailed to the lead practitioner through Airflow's SMTP notifier (connection `sf_smtp`, extra
   `lead_practitioner`) with each headline problem and its reason; the family reference only, never a
   name or an address (`supporting_families.identify.newly`). A retry sends nothing twice once the
   comparison is kept. The run's `assessment` ledger entry records counts, the worklist's SHA-256 and who
   started it (a staff id, the schedule or the asset event).

Logs and XCom carry counts only: persons, families with each headline problem, eligible families, flags
by source. Never a name, date of birth, address or id.
"""


@dag(
    dag_id="identify_families",
    schedule=SCHEDULE,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["supporting-families", "identification", "criteria"],
    doc_md=DOC,
)
def identify_families() -> None:
    @task
    def build_register() -> dict[str, int]:
        from airflow.sdk.exceptions import AirflowNotFoundException

        from sf_airflow.credentials import tombstone_key
        from supporting_families.identify import refresh_register

        try:
            key: bytes | None = tombstone_key()
        except AirflowNotFoundException:
            key = None  # no erasure yet on this installation; with tombstones present the core refuses
        return refresh_register(store(), SOURCES, tombstone_key=key)

    @task
    def evaluate_criteria() -> dict[str, Any]:
        from supporting_families.identify import identify

        counts = identify(store(), SOURCES)
        return {
            "as_of": counts["as_of"],
            "persons": counts["persons"],
            "families": counts["families"],
            "families with each headline problem": counts["families_by_headline"],
            "eligible families": counts["eligible_families"],
            "flags by source": counts["flags_by_source"],
            "sources missing": counts["sources_missing"],
            "written": counts["written"],
        }

    @task
    def tell_lead_practitioner(identified: Any, **context: Any) -> dict[str, Any]:
        """E-mail the lead practitioner the families new on the worklist, with their reasons, and record
        the identification in the ledger (kind ``assessment``) with who or what started it."""
        from datetime import UTC, date, datetime

        from sf_airflow.access import run_actor
        from sf_airflow.credentials import ledger
        from sf_airflow.notify import send_email
        from supporting_families.identify import (
            identification_entry,
            newly_eligible,
            notification_rows,
            record_compared,
        )

        ti, dag_run = context["ti"], context["dag_run"]
        root = store()
        found = newly_eligible(root, date.fromisoformat(str(identified["as_of"])), ti.run_id)
        entry = identification_entry(
            found,
            {"persons": identified["persons"], "families": identified["families"]},
            occurred_at=datetime.now(UTC),
            notified=bool(found.families),
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=ti.try_number,
            triggered_by=run_actor(dag_run),
        )
        entry.validate()  # what cannot be recorded is not sent
        if found.families and not found.already_compared:
            send_email(
                context,
                audience="lead_practitioner",
                subject=f"Supporting Families: {len(found.families)} families newly eligible",
                note=(
                    f"Identification of {found.as_of.isoformat()}: these families are new on the "
                    "practitioners' worklist, each with the headline problems it meets and why. Open "
                    "Browse > Practitioners' worklist to see who they are and to record an assessment; "
                    "this e-mail names no one on purpose."
                ),
                rows=notification_rows(found),
            )
        record_compared(root, found)
        with ledger() as audit_ledger:
            seq = audit_ledger.append(entry).seq
        return {**found.counts(), "lead_practitioner_notified": int(bool(found.families)), "ledger_seq": seq}

    @task(outlets=[IDENTIFICATION])
    def publish_for_shares(triggering_asset_events: Any = None) -> dict[str, Any]:
        """Emit the identification asset, unless partner returns alone triggered this run.

        The share DAGs run on their agreement's schedule or on this asset. If a return's re-identification
        also triggered the shares, every answer would send a new delivery, which would bring a new answer:
        a loop. So a run triggered only by returns refreshes the worklist and leaves the shares to their
        schedule; a run after fresh internal extracts (or by hand) lets them go at once.
        """
        from airflow.sdk.exceptions import AirflowSkipException

        names = {getattr(key, "name", str(key)) for key in (triggering_asset_events or {})}
        # An agency's extract arrives with the partners' answers, after the shares: the same rule holds.
        return_names = {return_asset(a).name for a in FLAG_RETURNS} | {
            curated_asset(s).name for s in AGENCIES
        }
        if names and names <= return_names:
            raise AirflowSkipException(
                "triggered by partner returns or agency extracts only: the shares keep to their schedule"
            )
        return {"published": 1}

    identified = evaluate_criteria()
    build_register() >> identified >> publish_for_shares()
    tell_lead_practitioner(identified)


identify_families()
