"""Lineage as plain data: datasets named by area and folder, the configuration's field names, counts only."""

from __future__ import annotations

import pytest

from supporting_families.config import load_agreements, load_sources
from supporting_families.ingest import curated_schema
from supporting_families.lineage import (
    FACET_PREFIX,
    LineageDataset,
    LineageError,
    RunLineage,
    ingest_lineage,
    receive_lineage,
    share_deliver_lineage,
    share_prepare_lineage,
    store_dataset,
)
from supporting_families.store import PARTNER_FLAGS_SCHEMA

AGREEMENTS = {a.id: a for a in load_agreements(resolve=False)}
SOURCES = load_sources().sources


@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("file:///srv/sf/var/store", "file://", "srv/sf/var/store/curated/neet"),
        ("s3://council-sf/prod", "s3://council-sf", "prod/curated/neet"),
        ("s3://council-sf", "s3://council-sf", "curated/neet"),
    ],
)
def test_store_areas_are_named_as_openlineage_names_object_storage(
    uri: str, namespace: str, name: str
) -> None:
    dataset = store_dataset(uri, "curated/neet")
    assert (dataset.namespace, dataset.name) == (namespace, name)


@pytest.mark.parametrize("agreement_id", sorted(AGREEMENTS), ids=str)
def test_a_delivery_lists_exactly_the_agreements_fields_in_order(agreement_id: str) -> None:
    agreement = AGREEMENTS[agreement_id]
    lineage = share_deliver_lineage(
        agreement,
        "file:///store",
        host="127.0.0.1",
        port=2222,
        rows=12,
        delivery_id="d0123456789abcdef",
        status="delivered",
        counts={"selected": 12, "excluded_by_restriction": 1, "note": "a stray string stays out"},
    )
    [inbox] = lineage.outputs
    assert (inbox.namespace, inbox.name) == ("sftp://127.0.0.1:2222", agreement.sftp.remote_inbox)
    assert inbox.fields == agreement.fields and inbox.rows == 12
    assert lineage.facets[f"{FACET_PREFIX}agreement"]["partnerCode"] == agreement.partner.code
    assert lineage.facets[f"{FACET_PREFIX}counts"] == {"selected": 12, "excluded_by_restriction": 1}
    prepared = share_prepare_lineage(agreement, "file:///store", {"rows": 12, "selected": 12})
    assert prepared.outputs[0].fields == agreement.fields


def test_a_return_names_the_outbox_folder_and_the_partner_flags_never_the_file() -> None:
    agreement = AGREEMENTS["dwp-benefits-matching"]
    lineage = receive_lineage(
        agreement,
        "file:///store",
        host="127.0.0.1",
        port=2222,
        delivery_id="d0123456789abcdef",
        rows=10,
        flags_merged=4,
        late=None,
        counts={"matched": 8, "no_trace": 2},
    )
    [outbox] = lineage.inputs
    assert outbox.name == agreement.sftp.remote_outbox
    assert outbox.fields == tuple(c.name for c in agreement.returns.columns)
    [flags] = lineage.outputs
    assert flags.name == "store/register/partner_flags" and flags.fields == tuple(PARTNER_FLAGS_SCHEMA.names)
    assert lineage.facets[f"{FACET_PREFIX}return"] == {
        "deliveryId": "d0123456789abcdef",
        "kind": agreement.returns.kind,
        "late": False,
    }


def test_an_ingest_names_the_departments_columns_and_the_standard_ones() -> None:
    spec = SOURCES["neet"]
    ok = ingest_lineage(
        spec, "file:///store", received=5, accepted=4, rejected=1, status="ingested", file_sha256="ab" * 32
    )
    assert ok.inputs[0].fields == tuple(c.name for c in spec.columns) and ok.inputs[0].rows == 5
    curated, quarantine = ok.outputs
    assert curated.fields == tuple(curated_schema(spec).names) and curated.rows == 4
    assert quarantine.name.endswith("quarantine/neet") and quarantine.rows == 1
    rejected = ingest_lineage(
        spec,
        "file:///store",
        received=None,
        accepted=0,
        rejected=None,
        status="rejected",
        file_sha256="cd" * 32,
    )
    assert [d.rows for d in rejected.outputs] == [0, None]


@pytest.mark.parametrize(
    "lineage",
    [
        RunLineage((LineageDataset("file://", "x", ("given name",)),), ()),
        RunLineage((), (LineageDataset("file://", "x", rows=-1),)),
        RunLineage((), (), {f"{FACET_PREFIX}counts": {"n": -2}}),
        RunLineage((), (), {f"{FACET_PREFIX}agreement": {"partner": "Jane Smith, 1 High St"}}),
        RunLineage((), (), {"unprefixed": {"n": 1}}),
    ],
    ids=["a field that is not a name", "negative rows", "negative count", "free text", "no prefix"],
)
def test_anything_but_names_codes_and_counts_is_refused(lineage: RunLineage) -> None:
    with pytest.raises(LineageError):
        lineage.check()
