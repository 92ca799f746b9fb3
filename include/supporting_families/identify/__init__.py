"""Identification: the person register by record linkage, households, the six headline problems,
assessments.

* the register (:mod:`~supporting_families.identify.linkage`): :func:`build_register` links the curated
  records to stable persons and households, :func:`save_register` keeps it under ``register/``;
* the criteria (:mod:`~supporting_families.identify.criteria`, tables in and out, and
  :mod:`~supporting_families.identify.store`, their store side): :func:`identify` evaluates
  ``include/criteria.yaml`` and writes ``identification/<as_of>/`` with the practitioners' worklist;
* the families newly eligible (:mod:`~supporting_families.identify.newly`): what the lead practitioner is
  told, and the identification's ledger entry;
* assessments (:mod:`~supporting_families.identify.assessment`): :func:`record_assessment` is the only way
  a family becomes "assessed as meeting the criteria" (UK GDPR Article 22); :class:`AssessmentError`
  refuses a decision without naming a person.

    from supporting_families.identify import build_register, identify, record_assessment
"""

from __future__ import annotations

from supporting_families.identify.assessment import (
    ALL_REASONS,
    ASSESSMENT_SCHEMA,
    DECISIONS,
    PROGRAMME_STATUS,
    REASONS,
    AssessmentError,
    Decision,
    Recorded,
    assessment_status,
    record_assessment,
)
from supporting_families.identify.criteria import (
    FAMILY_PROBLEMS_SCHEMA,
    PERSON_FLAGS_SCHEMA,
    WORKLIST_SCHEMA,
    Identification,
    evaluate,
)
from supporting_families.identify.linkage import (
    IDENTITY_SCHEMA,
    LINKS_SCHEMA,
    LinkageSettings,
    LinkageStats,
    RegisterResult,
    RegisterState,
    build_register,
    identities_from_curated,
    load_register,
    load_register_state,
    save_register,
)
from supporting_families.identify.newly import (
    NewFamily,
    NewlyEligible,
    identification_entry,
    newly_eligible,
    notification_rows,
    record_compared,
)
from supporting_families.identify.practitioners import (
    Problem,
    WorklistFamily,
    decision_entry,
    record_decision,
    worklist_families,
)
from supporting_families.identify.refresh import refresh_register
from supporting_families.identify.store import (
    identify,
    latest_identification,
    read_latest_curated,
    read_partner_flags,
    read_register,
    restricted_for_identification,
    worklist_file,
    write_identification,
)

__all__ = [
    "ALL_REASONS",
    "ASSESSMENT_SCHEMA",
    "DECISIONS",
    "FAMILY_PROBLEMS_SCHEMA",
    "IDENTITY_SCHEMA",
    "LINKS_SCHEMA",
    "PERSON_FLAGS_SCHEMA",
    "PROGRAMME_STATUS",
    "REASONS",
    "WORKLIST_SCHEMA",
    "AssessmentError",
    "Decision",
    "Identification",
    "LinkageSettings",
    "LinkageStats",
    "NewFamily",
    "NewlyEligible",
    "Problem",
    "Recorded",
    "RegisterResult",
    "RegisterState",
    "WorklistFamily",
    "assessment_status",
    "build_register",
    "decision_entry",
    "evaluate",
    "identification_entry",
    "identify",
    "identities_from_curated",
    "latest_identification",
    "load_register",
    "load_register_state",
    "newly_eligible",
    "notification_rows",
    "read_latest_curated",
    "read_partner_flags",
    "read_register",
    "record_assessment",
    "record_compared",
    "record_decision",
    "refresh_register",
    "restricted_for_identification",
    "save_register",
    "worklist_families",
    "worklist_file",
    "write_identification",
]
