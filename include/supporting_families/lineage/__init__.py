"""Lineage as plain data: each ingest, share and receive run's datasets, field names, counts and agreement.

``plugins/sf_airflow/lineage.py`` turns a :class:`RunLineage` into OpenLineage; nothing here knows Airflow.
"""

from supporting_families.lineage.facets import (
    FACET_PREFIX,
    LineageDataset,
    LineageError,
    RunLineage,
    agreement_facet,
    ingest_lineage,
    receive_lineage,
    sftp_dataset,
    share_deliver_lineage,
    share_prepare_lineage,
    store_dataset,
)

__all__ = [
    "FACET_PREFIX",
    "LineageDataset",
    "LineageError",
    "RunLineage",
    "agreement_facet",
    "ingest_lineage",
    "receive_lineage",
    "sftp_dataset",
    "share_deliver_lineage",
    "share_prepare_lineage",
    "store_dataset",
]
