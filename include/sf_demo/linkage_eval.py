"""Linkage quality against the synthetic ground truth, and identities straight from a synthetic borough.

Used by ``benchmarks/bench_linkage.py`` and the unit tests; the platform itself never reads the truth.

:func:`identities_from_borough` reads each generated extract back with nothing but ``include/sources.yaml``
(:func:`sf_demo.synthetic.read_extract`) and standardises the identity columns the way the curated
contract (``docs/STORE.md``) says the ingest does (names trimmed, whitespace collapsed and title-cased;
addresses trimmed and upper-cased; postcodes spaced; UPRNs 12-digit text). It exists so that the linkage can
be measured without depending on the ingest; the platform's own path is ingest -> curated -> register.

Scores are pairwise: a pair of records is *predicted* when both link to one register
person and *true* when both belong to one true person. Only counts leave these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sf_demo.synthetic import Borough, SourcesConfig, read_extract
from sf_demo.synthetic.sources import SourceSpec, encode_extract
from supporting_families.identify import identities_from_curated

_NAME_FIELDS = ("given_name", "family_name")
_ADDRESS_FIELDS = ("address_line_1", "address_line_2", "town")


def _collapse(values: Any) -> Any:
    return pc.replace_substring_regex(pc.utf8_trim_whitespace(values), pattern=r"\s+", replacement=" ")


def standardise_identity(table: pa.Table) -> pa.Table:
    """The curated contract's form of the identity columns of a table with standard names."""
    columns: dict[str, Any] = {}
    for name in table.column_names:
        values = table.column(name)
        if name in _NAME_FIELDS:
            values = pc.utf8_title(_collapse(values))
        elif name in _ADDRESS_FIELDS:
            values = pc.utf8_upper(_collapse(values))
        elif name == "postcode":
            compact = pc.utf8_upper(pc.replace_substring_regex(values, pattern=r"\s+", replacement=""))
            values = pc.binary_join_element_wise(
                pc.utf8_slice_codeunits(compact, 0, -3), pc.utf8_slice_codeunits(compact, -3), " "
            )
        elif name == "uprn":
            values = pc.utf8_lpad(pc.utf8_trim_whitespace(values), width=12, padding="0")
        columns[name] = values
    return pa.table(columns)


def curated_like(extract: pa.Table, spec: SourceSpec, extract_date: date) -> pa.Table:
    """An extract (as read by ``read_extract``) in the curated contract's shape, identity columns only."""
    parsed = standardise_identity(extract)
    n = parsed.num_rows
    columns: dict[str, Any] = {
        "source": pa.array([spec.name] * n, pa.string()),
        "extract_date": pa.array([extract_date] * n, pa.date32()),
        "row_number": pa.array(np.arange(2, n + 2, dtype=np.int64)),
    }
    for name in spec.identity_fields:
        columns[name] = parsed.column(name)
    return pa.table(columns)


def identities_from_extracts(
    extracts: Mapping[str, pa.Table], sources: SourcesConfig, extract_date: date
) -> pa.Table:
    """Identities (``IDENTITY_COLUMNS``) from extracts as written (source headers, text values)."""
    curated = []
    for name, rendered in extracts.items():
        spec = sources.sources[name]
        parsed = read_extract(encode_extract(rendered, spec), spec)
        curated.append(curated_like(parsed, spec, extract_date))
    return identities_from_curated(curated)


def identities_from_borough(borough: Borough) -> pa.Table:
    return identities_from_extracts(borough.extracts, borough.sources, borough.as_of)


@dataclass(frozen=True)
class PairwiseQuality:
    """Pairwise counts and rates: nothing here identifies a person."""

    records: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def _pairs(group_sizes: Any) -> int:
    sizes = np.asarray(group_sizes, dtype=np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def _codes(values: Any) -> Any:
    return np.asarray(pc.dictionary_encode(values).combine_chunks().indices.to_numpy(), dtype=np.int64)


def pairwise_quality(links: pa.Table, truth_links: pa.Table) -> PairwiseQuality:
    """Score ``links`` (source, record_id, person_id) against the truth's links of the same records."""
    key = ["source", "record_id"]
    joined = links.select([*key, "person_id"]).join(
        truth_links.select([*key, "person_id"]).rename_columns([*key, "true_person_id"]),
        keys=key,
        join_type="inner",
    )
    if joined.num_rows != links.num_rows:
        raise ValueError("some linked records are missing from the truth's links")
    pred = _codes(joined.column("person_id"))
    true = _codes(joined.column("true_person_id"))
    both = pred * (int(true.max(initial=0)) + 1) + true
    return PairwiseQuality(
        records=joined.num_rows,
        true_pairs=_pairs(np.unique(true, return_counts=True)[1]),
        predicted_pairs=_pairs(np.unique(pred, return_counts=True)[1]),
        correct_pairs=_pairs(np.unique(both, return_counts=True)[1]),
    )


def same_group_agreement(left: Any, right: Any) -> PairwiseQuality:
    """Pairwise agreement of two groupings of the same items (e.g. register households vs true ones)."""
    a = _codes(left)
    b = _codes(right)
    both = a * (int(b.max(initial=0)) + 1) + b
    return PairwiseQuality(
        records=len(a),
        true_pairs=_pairs(np.unique(b, return_counts=True)[1]),
        predicted_pairs=_pairs(np.unique(a, return_counts=True)[1]),
        correct_pairs=_pairs(np.unique(both, return_counts=True)[1]),
    )
