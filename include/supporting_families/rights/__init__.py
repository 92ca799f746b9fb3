"""Data subjects' rights (privacy notice, "Your Rights and Access to your information").

The registers here sit low in the house (they depend on the store only), because every share reads them:
a person with an active restriction or objection is left out of every share.
"""

from supporting_families.rights.restrictions import (
    RestrictionKind,
    exclude_restricted,
    read_restrictions,
    record_restriction,
    restricted_persons,
)

__all__ = [
    "RestrictionKind",
    "exclude_restricted",
    "read_restrictions",
    "record_restriction",
    "restricted_persons",
]
