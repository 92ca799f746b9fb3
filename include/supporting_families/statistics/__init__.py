"""Anonymised programme statistics with statistical disclosure control (privacy notice: "individuals cannot
be identified from the information sets directly or any published reports").

* :mod:`~supporting_families.statistics.tables`: one row per counted family, and the published cells as
  sums of atoms (two linked table sets);
* :mod:`~supporting_families.statistics.sdc`: the threshold rule, secondary suppression and the attacker's
  audit as linear programs (HiGHS), rounding;
* :mod:`~supporting_families.statistics.publish`: :func:`publish_statistics` writes one release under
  ``published/statistics/<release_id>/``; :func:`aggregate_release_entry` is its ledger entry.

    from supporting_families.statistics import publish_statistics, aggregate_release_entry
"""

from __future__ import annotations

from supporting_families.statistics.publish import (
    NOTES,
    Release,
    aggregate_release_entry,
    bar_chart_svg,
    exchange_table,
    protected_tables,
    publish_statistics,
    read_family_facts,
    sdc_parameters,
)
from supporting_families.statistics.sdc import (
    CellSet,
    SdcError,
    SdcParameters,
    feasibility_intervals,
    primary_suppression,
    protect,
    protect_linked,
    round_to_base,
)
from supporting_families.statistics.tables import (
    AGE_BANDS,
    FACTS_SCHEMA,
    TableSets,
    build_cell_sets,
    family_facts,
)

__all__ = [
    "AGE_BANDS",
    "FACTS_SCHEMA",
    "NOTES",
    "CellSet",
    "Release",
    "SdcError",
    "SdcParameters",
    "TableSets",
    "aggregate_release_entry",
    "bar_chart_svg",
    "build_cell_sets",
    "exchange_table",
    "family_facts",
    "feasibility_intervals",
    "primary_suppression",
    "protect",
    "protect_linked",
    "protected_tables",
    "publish_statistics",
    "read_family_facts",
    "round_to_base",
    "sdc_parameters",
]
