"""Every place in the store, as code: what it holds, who writes it, whether it holds personal data, and its
retention class.

Rights (subject access, erasure) and retention walk :data:`AREAS` and nothing else, so a folder that is not
listed here is a folder neither of them knows about. ``docs/STORE.md`` is the same table for people; a test
checks the two agree. Paths are relative to the store's root (``$SF_STORE_URI``); each function below
builds one of them, so no module spells a store path inline.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from upath import UPath

#: How an area holds personal data. ``direct``: names, dates of birth, addresses; ``by_id``: council ids
#: that the register resolves to a person; ``encrypted``: personal data under OpenPGP; ``none``: counts,
#: hashes and configuration only (UK GDPR Article 4(1): an id that the council can resolve is personal data).
PersonalData = Literal["direct", "by_id", "encrypted", "none"]

#: The retention classes. Each is bounded by the programme's end plus one year (privacy notice: "retained for
#: up to one year after the end of the programme"); earlier limits are set per class.
RetentionClass = Literal[
    "landing",
    "curated",
    "ingest_quarantine",
    "register",
    "identification",
    "staging",
    "deliveries",
    "references",
    "manifests",
    "returns",
    "return_quarantine",
    "reports",
    "rights",
    "tombstones",
    "demo",
]


@dataclass(frozen=True)
class Area:
    """One kind of path in the store."""

    pattern: str  # relative to the store root; ``<name>`` marks a variable segment
    what: str
    writer: str
    personal_data: PersonalData
    retention: RetentionClass

    @property
    def holds_personal_data(self) -> bool:
        return self.personal_data != "none"


LANDING: Final = "landing"
CURATED: Final = "curated"
QUARANTINE: Final = "quarantine"
INGEST_REPORTS: Final = "ingest_reports"
REGISTER: Final = "register"
IDENTIFICATION: Final = "identification"
STAGING: Final = "staging"
DELIVERIES: Final = "deliveries"
RETURNS: Final = "returns"
RIGHTS: Final = "rights"
NOTICES: Final = "notices"
DEMO: Final = "demo"
PUBLISHED: Final = "published"

#: The register's files (``register/<file>``), by role.
REGISTER_FILES: Final = {
    "persons": "persons.parquet",
    "links": "links.parquet",
    "id_map": "id_map.parquet",
    "retired": "retired_ids.parquet",
    "assessments": "assessments.parquet",
    "restrictions": "restrictions.parquet",
    "requests": "rights_requests.parquet",
    "holds": "legal_holds.parquet",
    "corrections": "corrections.parquet",
    "tombstones": "tombstones.parquet",
}
PARTNER_FLAGS: Final = "partner_flags"
#: A delivery's reference list, sealed (:mod:`supporting_families.store.sealed`).
REFERENCES_FILE: Final = "references.parquet.sealed"
#: The suffix of a sealed archive of a delivered file.
SEALED_SUFFIX: Final = ".sealed"

AREAS: Final[tuple[Area, ...]] = (
    Area(
        "landing/extracts/<source>/<source>_<YYYY-MM-DD>.csv",
        "departments' extracts as received",
        "departments (demo: demo_synthetic_borough)",
        "direct",
        "landing",
    ),
    Area(
        "curated/<source>/<source>_<YYYY-MM-DD>.parquet",
        "accepted rows, standardised to the register's names and types",
        "ingest_<source>",
        "direct",
        "curated",
    ),
    Area(
        "quarantine/<source>/<file name>/",
        "a rejected file kept whole, or the rejected rows, with report.csv (file, row, column, rule; no"
        " values) and reason.json",
        "ingest_<source>",
        "direct",
        "ingest_quarantine",
    ),
    Area(
        "ingest_reports/<source>/<file stem>.json",
        "counts: received, accepted, rejected, file SHA-256",
        "ingest_<source>",
        "none",
        "reports",
    ),
    Area(
        "register/persons.parquet",
        "the person register: one row per person with the identity fields",
        "identify_families",
        "direct",
        "register",
    ),
    Area(
        "register/links.parquet",
        "which source record is which person",
        "identify_families",
        "by_id",
        "register",
    ),
    Area(
        "register/id_map.parquet",
        "stable person, household and family ids across runs",
        "identify_families",
        "by_id",
        "register",
    ),
    Area(
        "register/retired_ids.parquet",
        "ids no longer in use, so they are never reissued",
        "identify_families",
        "by_id",
        "register",
    ),
    Area(
        "register/assessments.parquet",
        "practitioners' decisions per family (meets criteria, does not meet, withdrawn)",
        "confirm_assessment",
        "by_id",
        "register",
    ),
    Area(
        "register/restrictions.parquet",
        "restrictions and objections, with the council's case reference",
        "rights requests (supporting_families.rights)",
        "by_id",
        "register",
    ),
    Area(
        "register/rights_requests.parquet",
        "data subjects' requests: right, case reference, person id, received and due dates, outcome",
        "rights_* DAGs and the rights CLI",
        "by_id",
        "register",
    ),
    Area(
        "register/legal_holds.parquet",
        "legal holds on a person or an agreement, with reason code and case reference",
        "rights_legal_hold and the rights CLI",
        "by_id",
        "register",
    ),
    Area(
        "register/corrections.parquet",
        "rectified values that outrank the sources until the sources agree",
        "rights_rectification and the rights CLI",
        "direct",
        "register",
    ),
    Area(
        "register/tombstones.parquet",
        "keyed hashes of erased persons' identifying keys (no values), so they are not ingested again",
        "rights_erasure",
        "none",
        "tombstones",
    ),
    Area(
        "register/partner_flags/<agreement>__<return file>.parquet",
        "accepted partner flags with their source (partner, file hash, date), and an answer marker (null"
        " sub-criterion) per matched person with answered_at (the delivery's delivered_at)",
        "receive__<agreement>",
        "by_id",
        "returns",
    ),
    Area(
        "identification/<as_of>/",
        "person flags with reasons, family problems, the practitioners' worklist, summary.json (counts and"
        " the criteria file's SHA-256), worklist_notified.parquet (the families the lead practitioner was"
        " told were newly eligible, against the previous worklist)",
        "identify_families",
        "by_id",
        "identification",
    ),
    Area(
        "staging/<agreement>/<delivery_id>/sf-<agreement>-<delivery_id>.csv",
        "the partner's plaintext CSV; deleted as soon as it is encrypted",
        "share__<agreement>",
        "direct",
        "staging",
    ),
    Area(
        "deliveries/<agreement>/<delivery_id>/manifest.json",
        "agreement, version, run id, fields, row count, key version, SHA-256 of plaintext and ciphertext",
        "share__<agreement>",
        "none",
        "manifests",
    ),
    Area(
        "deliveries/<agreement>/<delivery_id>/references.parquet.sealed",
        "person_id, family_id, person_ref, family_ref sent in this delivery (answers subject access and"
        " rectification; reconciles returns), sealed under the data key of its retention period",
        "share__<agreement>",
        "encrypted",
        "references",
    ),
    Area(
        "deliveries/<agreement>/<delivery_id>/sf-<agreement>-<delivery_id>.csv.gpg",
        "the file encrypted to the partner, until it is delivered",
        "share__<agreement>",
        "encrypted",
        "deliveries",
    ),
    Area(
        "deliveries/<agreement>/<delivery_id>/sf-<agreement>-<delivery_id>.csv.gpg.sealed",
        "the archive: the file exactly as delivered, encrypted to the partner and sealed under the data key"
        " of its retention period (shredding the key ends every copy, object versions included)",
        "share__<agreement>",
        "encrypted",
        "deliveries",
    ),
    Area(
        "deliveries/<agreement>/<delivery_id>/sent.parquet.sealed",
        "the controller-side copy of exactly what was sent (the agreed fields and the person id), sealed"
        " with AES-256-GCM under the data key of its retention period; answers subject access",
        "share__<agreement>",
        "encrypted",
        "deliveries",
    ),
    Area(
        "deliveries/<agreement>/<delivery_id>/receipt.json",
        "remote path, bytes, SHA-256, delivered at",
        "share__<agreement>",
        "none",
        "manifests",
    ),
    Area(
        "returns/<agreement>/<return file>/",
        "the partner's encrypted original, received.json, reconciliation.json (counts), classified.parquet"
        " (reference, class)",
        "receive__<agreement>",
        "encrypted",
        "returns",
    ),
    Area(
        "quarantine/returns/<agreement>/<return file>/",
        "a rejected return kept whole, with reason.json and report.csv (file, row, column, rule; no values)",
        "receive__<agreement>",
        "encrypted",
        "return_quarantine",
    ),
    Area(
        "notices/<agreement>/<notice_id>/",
        "a rectification or erasure notice to a partner: the encrypted file as delivered, references.parquet"
        " (person_id, person_ref), manifest.json and receipt.json (counts and hashes)",
        "rights_rectification, rights_erasure",
        "encrypted",
        "deliveries",
    ),
    Area(
        "rights/<request_id>/",
        "a subject access or portability bundle, encrypted to the DPO's or the receiving authority's"
        " OpenPGP key; never sent automatically",
        "rights_subject_access, rights_portability",
        "encrypted",
        "rights",
    ),
    Area(
        "landing/reference/postcode_wards.csv",
        "the council's postcode-to-ward lookup (postcode, ward): public reference data",
        "the council (demo: demo_synthetic_borough)",
        "none",
        "landing",
    ),
    Area(
        "published/statistics/<release_id>/",
        "anonymised programme statistics after disclosure control: tables as CSV and Parquet, an SVG"
        " chart, release.json (SDC parameters, notes, SHA-256 of every file); no person-level row",
        "programme_statistics",
        "none",
        "reports",
    ),
    Area(
        "demo/truth/, demo/partner_truth/",
        "the synthetic ground truth; never read by the platform",
        "demo_synthetic_borough",
        "direct",
        "demo",
    ),
)


# -- paths ------------------------------------------------------------------------------------------------


def landing_dir(root: UPath, file_glob: str) -> UPath:
    """The folder a source's extracts land in: its ``file_glob`` is relative to ``<store>/landing``."""
    return root / LANDING / posixpath.dirname(file_glob)


def curated_dir(root: UPath, source: str) -> UPath:
    return root / CURATED / source


def curated_file(root: UPath, source: str, extract_date: date) -> UPath:
    return curated_dir(root, source) / f"{source}_{extract_date.isoformat()}.parquet"


def ingest_quarantine_dir(root: UPath, source: str, file_name: str) -> UPath:
    return root / QUARANTINE / source / file_name


def ingest_report_file(root: UPath, source: str, file_stem: str) -> UPath:
    return root / INGEST_REPORTS / source / f"{file_stem}.json"


def register_dir(root: UPath) -> UPath:
    return root / REGISTER


def register_file(root: UPath, role: str) -> UPath:
    """``register/<file>`` for one of :data:`REGISTER_FILES`' roles (KeyError for anything else)."""
    return register_dir(root) / REGISTER_FILES[role]


def partner_flags_dir(root: UPath) -> UPath:
    return register_dir(root) / PARTNER_FLAGS


def partner_flags_file(root: UPath, agreement_id: str, return_stem: str) -> UPath:
    return partner_flags_dir(root) / f"{agreement_id}__{return_stem}.parquet"


def identification_root(root: UPath) -> UPath:
    return root / IDENTIFICATION


def identification_dir(root: UPath, as_of: date) -> UPath:
    return identification_root(root) / as_of.isoformat()


def staging_dir(root: UPath, agreement_id: str, delivery_id: str) -> UPath:
    return root / STAGING / agreement_id / delivery_id


def deliveries_dir(root: UPath, agreement_id: str) -> UPath:
    return root / DELIVERIES / agreement_id


def delivery_dir(root: UPath, agreement_id: str, delivery_id: str) -> UPath:
    return deliveries_dir(root, agreement_id) / delivery_id


def delivery_references_file(root: UPath, agreement_id: str, delivery_id: str) -> UPath:
    """The persons a delivery sent, with their references (see the Area above)."""
    return delivery_dir(root, agreement_id, delivery_id) / REFERENCES_FILE


def relative(root: UPath, path: UPath) -> str:
    """``path``'s place in the store, as a sealed file's associated data (``deliveries/a/d/x``)."""
    return path.relative_to(root).as_posix()


def return_dir(root: UPath, agreement_id: str, return_name: str) -> UPath:
    return root / RETURNS / agreement_id / return_name


def return_quarantine_dir(root: UPath, agreement_id: str, return_name: str) -> UPath:
    return root / QUARANTINE / RETURNS / agreement_id / return_name


def rights_dir(root: UPath, request_id: str) -> UPath:
    return root / RIGHTS / request_id


def notice_dir(root: UPath, agreement_id: str, notice_id: str) -> UPath:
    return root / NOTICES / agreement_id / notice_id


def ward_lookup_file(root: UPath) -> UPath:
    """The council's postcode-to-ward lookup (see the Area above)."""
    return root / LANDING / "reference" / "postcode_wards.csv"


def statistics_release_dir(root: UPath, release_id: str) -> UPath:
    """One publication of the programme statistics, written only after disclosure control."""
    return root / PUBLISHED / "statistics" / release_id


def demo_dir(root: UPath) -> UPath:
    return root / DEMO


# -- the table for people (docs/STORE.md) -----------------------------------------------------------------

_PD_LABEL: Final = {
    "direct": "**PD**",
    "by_id": "**PD** by id",
    "encrypted": "**PD** encrypted",
    "none": "no",
}


def markdown_table() -> str:
    """:data:`AREAS` as the Markdown table in docs/STORE.md (a test keeps the two the same)."""
    lines = [
        "| path | what | personal data | retention class | written by |",
        "| --- | --- | --- | --- | --- |",
    ]
    for area in AREAS:
        paths = ", ".join(f"`{p.strip()}`" for p in area.pattern.split(", "))
        lines.append(
            f"| {paths} | {area.what} | {_PD_LABEL[area.personal_data]} | {area.retention} | {area.writer} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m supporting_families.store.layout > the table for docs/STORE.md
    import sys

    sys.stdout.write(markdown_table())
