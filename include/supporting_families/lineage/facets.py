"""What an ingest, share or receive run tells a lineage server, as plain data.

Each run names its input and output datasets, their field names and row counts, and the source or the
agreement and partner it ran under. Never a value, and never a name a partner chose: datasets are the
store's areas and the partner's SFTP folders (``store/layout.py``), not the files in them, because a
lineage server keeps what it is told for longer than the store keeps the data (the privacy notice: data
"retained for up to one year after the end of the programme"). ``plugins/sf_airflow/lineage.py`` turns
these into OpenLineage datasets and facets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from supporting_families.config import Agreement, SourceSpec
from supporting_families.ingest import curated_schema
from supporting_families.store import PARTNER_FLAGS_SCHEMA, REGISTER_SCHEMA

#: The prefix of the platform's own facets (OpenLineage: custom facets carry a prefix of their producer).
FACET_PREFIX: Final = "supportingFamilies_"

#: Field names: the agreements', the sources' standard names, the store's schemas. Nothing else is a name.
_FIELD: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
#: A code in a facet: an id, a version, a hash, a status. No spaces (free text), no '@' (e-mail).
_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/-]{0,127}")


class LineageError(ValueError):
    """A lineage record that could carry more than names, codes and counts."""


@dataclass(frozen=True)
class LineageDataset:
    """One dataset of a run: where (``namespace``), which (``name``), its field names and its rows."""

    namespace: str
    name: str
    fields: tuple[str, ...] = ()
    rows: int | None = None


@dataclass(frozen=True)
class RunLineage:
    """A run's datasets and facets. ``facets`` maps a facet's name to its codes and counts."""

    inputs: tuple[LineageDataset, ...]
    outputs: tuple[LineageDataset, ...]
    facets: Mapping[str, Mapping[str, str | int | bool | None]] = field(default_factory=dict)

    def check(self) -> RunLineage:
        """Itself, or :class:`LineageError` if a field is not a name, a count is negative or a facet value
        is free text: lineage is built from configuration and counts only, and this says so."""
        for dataset in (*self.inputs, *self.outputs):
            bad = [f for f in dataset.fields if not _FIELD.fullmatch(f)]
            if bad:
                raise LineageError(f"{dataset.name}: {len(bad)} field name(s) are not names")
            if dataset.rows is not None and (isinstance(dataset.rows, bool) or dataset.rows < 0):
                raise LineageError(f"{dataset.name}: rows must be a count")
        for facet, values in self.facets.items():
            if not facet.startswith(FACET_PREFIX):
                raise LineageError(f"facet {facet}: the platform's facets start with {FACET_PREFIX}")
            for key, value in values.items():
                if isinstance(value, str) and not _CODE.fullmatch(value):
                    raise LineageError(f"facet {facet}.{key}: a code, not free text")
                if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                    raise LineageError(f"facet {facet}.{key}: a count cannot be negative")
        return self


def store_dataset(
    store_uri: str, area: str, fields: Iterable[str] = (), rows: int | None = None
) -> LineageDataset:
    """An area of the store (``curated/<source>``, ``deliveries/<agreement>``), named as OpenLineage names
    object storage: the scheme and bucket (or host) as namespace, the path as name."""
    parts = urlsplit(store_uri)
    prefix = parts.path.strip("/")
    name = f"{prefix}/{area}" if prefix else area
    return LineageDataset(f"{parts.scheme}://{parts.netloc}", name, tuple(fields), rows)


def sftp_dataset(
    host: str, port: int, folder: str, fields: Iterable[str] = (), rows: int | None = None
) -> LineageDataset:
    """A partner's SFTP folder (the agreement's inbox or outbox), never a file in it."""
    return LineageDataset(f"sftp://{host}:{port}", folder.strip("/"), tuple(fields), rows)


def agreement_facet(agreement: Agreement) -> dict[str, dict[str, str | int | bool | None]]:
    """The agreement and partner a share or receive ran under, from the agreement file."""
    return {
        f"{FACET_PREFIX}agreement": {
            "agreementId": agreement.id,
            "agreementVersion": agreement.version,
            "partnerCode": agreement.partner.code,
            "cohort": agreement.cohort,
            "pseudonymKeyVersion": agreement.pseudonymisation.key_version,
        }
    }


def _counts(name: str, counts: Mapping[str, object]) -> dict[str, dict[str, str | int | bool | None]]:
    """Only integers and booleans of ``counts`` (the tasks' XCom summaries): a stray string stays out."""
    return {f"{FACET_PREFIX}{name}": {k: v for k, v in counts.items() if isinstance(v, int)}}


def ingest_lineage(
    spec: SourceSpec,
    store_uri: str,
    *,
    received: int | None,
    accepted: int,
    rejected: int | None,
    dropped_by_tombstone: int = 0,
    status: str,
    file_sha256: str,
) -> RunLineage:
    """One extract's ingest: the source's landing folder (its columns as the department names them) into
    ``curated/<source>`` (the standard names, ``include/sources.yaml``) and, for rejected rows, its
    quarantine (row-level reports: file, row, column, rule)."""
    outputs = [
        store_dataset(
            store_uri,
            f"curated/{spec.name}",
            curated_schema(spec).names,
            accepted - dropped_by_tombstone if status == "ingested" else 0,
        )
    ]
    if status != "ingested" or rejected:
        outputs.append(store_dataset(store_uri, f"quarantine/{spec.name}", rows=rejected))
    return RunLineage(
        inputs=(
            store_dataset(
                store_uri, f"landing/extracts/{spec.name}", (c.name for c in spec.columns), received
            ),
        ),
        outputs=tuple(outputs),
        facets={
            f"{FACET_PREFIX}source": {"source": spec.name, "status": status, "fileSha256": file_sha256},
            **_counts(
                "counts",
                {
                    "received": received,
                    "accepted": accepted,
                    "rejected": rejected,
                    "dropped_by_tombstone": dropped_by_tombstone,
                },
            ),
        },
    ).check()


def share_prepare_lineage(agreement: Agreement, store_uri: str, counts: Mapping[str, object]) -> RunLineage:
    """A share's preparation: the register and the newest identification into the delivery's package,
    which holds exactly the agreement's fields (minimisation fails closed, ``share/package.py``)."""
    rows = counts.get("rows")
    return RunLineage(
        inputs=(
            store_dataset(store_uri, "register/persons", REGISTER_SCHEMA.names),
            store_dataset(store_uri, "identification"),
        ),
        outputs=(
            store_dataset(
                store_uri,
                f"deliveries/{agreement.id}",
                agreement.fields,
                rows if isinstance(rows, int) else None,
            ),
        ),
        facets={**agreement_facet(agreement), **_counts("counts", counts)},
    ).check()


def share_deliver_lineage(
    agreement: Agreement,
    store_uri: str,
    *,
    host: str,
    port: int,
    rows: int,
    delivery_id: str,
    status: str,
    counts: Mapping[str, object],
) -> RunLineage:
    """A delivery: the package, encrypted, into the partner's inbox. The inbox's schema is the agreement's
    ``fields`` in order: what the partner finds in the CSV's header."""
    return RunLineage(
        inputs=(store_dataset(store_uri, f"deliveries/{agreement.id}", agreement.fields, rows),),
        outputs=(sftp_dataset(host, port, agreement.sftp.remote_inbox, agreement.fields, rows),),
        facets={
            **agreement_facet(agreement),
            f"{FACET_PREFIX}delivery": {"deliveryId": delivery_id, "status": status},
            **_counts("counts", counts),
        },
    ).check()


def receive_lineage(
    agreement: Agreement,
    store_uri: str,
    *,
    host: str,
    port: int,
    delivery_id: str,
    rows: int,
    flags_merged: int,
    late: bool | None,
    counts: Mapping[str, object],
) -> RunLineage:
    """A return taken in: from the partner's outbox (the return's columns, the agreement's ``returns``)
    into ``register/partner_flags`` (``store/schemas.py``). The return's file name is the partner's
    choice and stays out; the delivery it answers identifies it."""
    return RunLineage(
        inputs=(
            sftp_dataset(
                host, port, agreement.sftp.remote_outbox, (c.name for c in agreement.returns.columns), rows
            ),
        ),
        outputs=(
            store_dataset(store_uri, "register/partner_flags", PARTNER_FLAGS_SCHEMA.names, flags_merged),
        ),
        facets={
            **agreement_facet(agreement),
            f"{FACET_PREFIX}return": {
                "deliveryId": delivery_id,
                "kind": agreement.returns.kind,
                "late": bool(late),
            },
            **_counts("counts", counts),
        },
    ).check()
