"""The person register's schema: the one list of personal fields a data agreement may name.

The register is the controller-side record of who is who (issue 3 builds it from the internal sources).
Agreements are checked against this schema when they are loaded, so a share can never name a field the
council does not hold.
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
