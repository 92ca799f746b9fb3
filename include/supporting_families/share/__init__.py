"""Sharing under a data agreement: cohort, restrictions, pseudonyms, minimisation, packaging, delivery.

A share DAG calls these in order: :func:`prepare_delivery` (cohort per the agreement, restrictions left
out, references, fail-closed minimisation, CSV and manifest), :func:`encrypt_delivery` (OpenPGP to the
pinned partner key; the plaintext is deleted), :func:`deliver_delivery` (SFTP, exactly once) and
:func:`disclosure_entry` (the ledger's record of what left), or :func:`conflict_entry` when an earlier
file the partner has not collected holds the delivery's name.
"""

from supporting_families.share.cohort import Cohort, CohortInputs, select_cohort
from supporting_families.share.delivery import (
    DELIVERY_ID_PATTERN,
    Delivery,
    ShareError,
    conflict_entry,
    deliver_delivery,
    delivery_id_for,
    disclosure_entry,
    encrypt_delivery,
    prepare_delivery,
)
from supporting_families.share.package import Manifest, MinimisationError, minimise
from supporting_families.share.pseudonymise import PseudonymKey, references

__all__ = [
    "DELIVERY_ID_PATTERN",
    "Cohort",
    "CohortInputs",
    "Delivery",
    "Manifest",
    "MinimisationError",
    "PseudonymKey",
    "ShareError",
    "conflict_entry",
    "deliver_delivery",
    "delivery_id_for",
    "disclosure_entry",
    "encrypt_delivery",
    "minimise",
    "prepare_delivery",
    "references",
    "select_cohort",
]
