"""The schemas of the register's tables, each written once and imported by its writer and its readers.

``REGISTER_SCHEMA`` is the person register: the controller-side record of who is who, built from the
internal sources by :mod:`supporting_families.identify.linkage`, and the one list of personal fields a data
agreement may name. Agreements are checked against it when they are loaded, so a share can never name a
field the council does not hold. ``PARTNER_FLAGS_SCHEMA`` is what the partners' returns add to the register:
written by the receive side, read by the criteria engine.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

#: Internal identifiers. They link records inside the council and never leave it: partners get
#: per-agreement pseudonymous references instead (see ``DERIVED_FIELDS``).
INTERNAL_ID_FIELDS: Final = ("person_id", "household_id", "family_id")

REGISTER_SCHEMA: Final = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("household_id", pa.string(), nullable=False),
        pa.field("family_id", pa.string(), nullable=False),
        pa.field("given_name", pa.string()),
        pa.field("family_name", pa.string()),
        pa.field("date_of_birth", pa.date32()),
        pa.field("sex", pa.string()),  # "F" or "M", as recorded by the source system
        pa.field("address_line_1", pa.string()),
        pa.field("address_line_2", pa.string()),
        pa.field("town", pa.string()),
        pa.field("postcode", pa.string()),
        pa.field("uprn", pa.string()),  # 12-digit Unique Property Reference Number, kept as text
    ]
)

#: Fields computed at share time rather than held in the register.
DERIVED_FIELDS: Final = {
    "person_ref": "per-agreement keyed pseudonymous reference for the person",
    "family_ref": "per-agreement keyed pseudonymous reference for the family",
    "programme_status": "assessed as meeting the criteria, or in the comparison group (ONS agreement)",
}

REGISTER_FIELDS: Final = tuple(REGISTER_SCHEMA.names)

#: What an agreement may list among the fields that leave: register fields except internal ids, plus the
#: derived fields. Internal ids are excluded because a stable internal id would let partners link shares
#: across agreements, which the per-agreement references exist to prevent.
SHAREABLE_FIELDS: Final = tuple(
    [name for name in REGISTER_FIELDS if name not in INTERNAL_ID_FIELDS] + list(DERIVED_FIELDS)
)

#: ``register/partner_flags/<agreement>__<return file>.parquet``: the accepted flags of one partner return,
#: each with its source (the partner, the agreement and the SHA-256 of the return file as received).
#: Written by :func:`supporting_families.receive.reconcile.partner_flags`, read by the criteria engine
#: (:mod:`supporting_families.identify.criteria`).
#:
#: Besides its flags, a file records the return's *answers*: one row with a null ``sub_criterion`` (a
#: marker) for every matched person, flagged or not, because "matched, nothing to flag" is also an answer.
#: ``answered_at`` is when the delivery the return answers was delivered (its receipt's ``delivered_at``),
#: so a later question gets a later answer whatever order the returns arrive in. The criteria engine lets a
#: status without a window (DWP's benefits) count only from the partner's latest answer about the person,
#: so a later "not on benefits" supersedes an earlier flag. Files merged before this have no
#: ``answered_at`` and no markers; the engine reads their flags as before (never superseded).
PARTNER_FLAGS_SCHEMA: Final = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        #: null on a marker row: the person was answered about (matched), with or without flags
        pa.field("sub_criterion", pa.string()),
        pa.field("evidence_date", pa.date32()),
        pa.field("partner", pa.string(), nullable=False),
        pa.field("agreement_id", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        #: null only when the delivery's receipt has no delivered_at (such answers supersede nothing)
        pa.field("answered_at", pa.timestamp("us", tz="UTC")),
    ]
)
