"""What every DAG of the platform shares. Cheap to import: it runs at DAG parse time."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, cast

import pendulum
from airflow.sdk import Asset, ObjectStoragePath
from upath import UPath

# Re-exported: the DAGs take the queue rule from here with the rest of what they share.
from supporting_families.config import partner_queue as partner_queue

OWNER = "supporting-families-data"

#: Retries with backoff for transient faults (network, partner servers). A task that must not repeat
#: side effects (a delivery) checks for its own earlier success first, so a retry never acts twice.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

START_DATE = pendulum.datetime(2026, 1, 1, tz="Europe/London")

#: The internal departments' extracts have landed in the store.
INTERNAL_EXTRACTS = Asset("sf_internal_extracts")


def storage_path(uri_env: str, conn_id_env: str) -> UPath:
    """The location named by ``$<uri_env>``, reached through the connection ``$<conn_id_env>`` if set (S3).

    An Airflow ``ObjectStoragePath``, typed as the ``UPath`` the core takes. Called inside tasks only: URIs
    and connections are deployment settings, not parse-time facts.
    """
    uri = os.environ.get(uri_env)
    if not uri:
        raise RuntimeError(f"{uri_env} is not set: source scripts/env.sh or set it in the deployment")
    conn_id = os.environ.get(conn_id_env)
    path = ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)
    # A UPath at run time (upath registers ObjectStoragePath's base, ProxyUPath, as a virtual subclass
    # of UPath), which a type checker cannot follow.
    return cast(UPath, path)


def store() -> UPath:
    """The store's root: ``$SF_STORE_URI`` (file:// by default), with ``$SF_STORE_CONN_ID`` for S3."""
    return storage_path("SF_STORE_URI", "SF_STORE_CONN_ID")


def curated_asset(source: str) -> Asset:
    """An internal source's extract was ingested: accepted rows are in ``curated/<source>/``."""
    return Asset(f"sf_curated_{source}")


def landed_asset(source: str) -> Asset:
    """An outside organisation's extract (``inbound:`` in sources.yaml) was collected, verified and landed."""
    return Asset(f"sf_landed_{source}")


def return_asset(agreement_id: str) -> Asset:
    """A partner's return for an agreement was received, reconciled and merged."""
    return Asset(f"sf_return_{agreement_id.replace('-', '_')}")


def delivery_asset(agreement_id: str) -> Asset:
    """A share under an agreement was delivered to the partner's inbox."""
    return Asset(f"sf_delivery_{agreement_id.replace('-', '_')}")


#: Identification ran: the person register, the criteria flags and the practitioners' worklist are new.
IDENTIFICATION = Asset("sf_identification")
