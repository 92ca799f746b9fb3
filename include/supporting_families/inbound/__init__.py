"""Extracts that outside organisations send over SFTP (``inbound:`` in ``include/sources.yaml``).

A voluntary-sector agency's file is collected, verified and landed by :func:`collect_extracts`; from
``landing/`` on, ``supporting_families.ingest`` takes it like any department's extract.
"""

from supporting_families.inbound.collect import (
    INBOUND_RULES,
    CollectSummary,
    collect_extracts,
    receipt_file,
)

__all__ = ["INBOUND_RULES", "CollectSummary", "collect_extracts", "receipt_file"]
