"""Data subjects' rights (privacy notice, "Your Rights and Access to your information").

Every right has the same machinery: a ``rights_*`` DAG whose form holds no personal data (the council's
person id, a case reference, codes and dates), this package's CLI (``python -m supporting_families.rights``),
a request in the register with its Article 12(3) due date, and one ledger entry per action with counts and
hashes only. The registers the actions write are :mod:`supporting_families.registers`.

* :func:`find_candidates`: who a request is about, from name, date of birth and postcode on stdin;
* :func:`subject_access`: the whole dossier (:func:`person_dossier`), encrypted to the DPO;
* :func:`rectification`: the correction, applied now and kept against the sources, and the partners' notices;
* :func:`erasure` and :func:`compaction`: the person out of every area of the store, a tombstone, notices;
* :func:`restriction`: restrictions, objections, consent withdrawals, recorded and lifted;
* :func:`portability`: the documented JSON export, encrypted to the receiving authority;
* :func:`legal_hold`: holds that erasure and retention honour;
* :func:`disclosure_history`: every delivery and notice about a person, with the values sent.
"""

from __future__ import annotations

from supporting_families.rights.actions import (
    OpenPgp,
    Outcome,
    Run,
    compaction,
    erasure,
    legal_hold,
    notices_sent,
    portability,
    rectification,
    restriction,
    subject_access,
)
from supporting_families.rights.bundle import PORTABILITY_FORMAT, portability_document
from supporting_families.rights.dossier import PersonNotFound, person_dossier, to_json
from supporting_families.rights.erase import ErasurePlan, ErasureRefused, drop_plan, load_plan
from supporting_families.rights.find import Probe, find_candidates
from supporting_families.rights.history import Disclosure, disclosure_history, person_deliveries
from supporting_families.rights.notices import (
    Notice,
    NoticeKind,
    deliver_notice,
    deliver_prepared_notice,
    notice_entry,
    notice_id_for,
    notice_table,
    prepare_notice,
    prepare_notices,
    send_notices,
)
from supporting_families.rights.rectify import drop_staged, stage_correction, staged_corrections

__all__ = [
    "PORTABILITY_FORMAT",
    "Disclosure",
    "ErasurePlan",
    "ErasureRefused",
    "Notice",
    "NoticeKind",
    "OpenPgp",
    "Outcome",
    "PersonNotFound",
    "Probe",
    "Run",
    "compaction",
    "deliver_notice",
    "deliver_prepared_notice",
    "disclosure_history",
    "drop_plan",
    "drop_staged",
    "erasure",
    "find_candidates",
    "legal_hold",
    "load_plan",
    "notice_entry",
    "notice_id_for",
    "notice_table",
    "notices_sent",
    "person_deliveries",
    "person_dossier",
    "portability",
    "portability_document",
    "prepare_notice",
    "prepare_notices",
    "rectification",
    "restriction",
    "send_notices",
    "stage_correction",
    "staged_corrections",
    "subject_access",
    "to_json",
]
