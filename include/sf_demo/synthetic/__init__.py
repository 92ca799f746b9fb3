"""A synthetic borough: persons, households and families with the extracts the council's departments send.

Deterministic from a seed, sized by number of persons, and vectorised (a million persons with every
extract and the truth written in well under a minute). The data is synthetic but is handled as if it were
real personal data: never print or log a row.

    >>> from datetime import date
    >>> borough = generate_borough(10_000, seed=1, as_of=date(2025, 3, 31))
    >>> counts = write_borough(borough, UPath("file:///tmp/borough"))

The rules of the ground truth are in :mod:`sf_demo.synthetic.truth`; the extracts' formats are in
``include/sources.yaml`` (:func:`load_sources`, from the core :mod:`supporting_families.config.sources`).
"""

from __future__ import annotations

from sf_demo.synthetic.borough import Borough, agency_extracts, generate_borough, write_borough
from sf_demo.synthetic.dirt import DirtConfig
from sf_demo.synthetic.sources import read_extract
from sf_demo.synthetic.truth import HEADLINE_PROBLEMS, MIN_PROBLEMS, SUB_CRITERIA, SubCriterion
from supporting_families.config import (
    ColumnSpec,
    SourcesConfig,
    SourcesConfigError,
    SourceSpec,
    load_sources,
)

__all__ = [
    "HEADLINE_PROBLEMS",
    "MIN_PROBLEMS",
    "SUB_CRITERIA",
    "Borough",
    "ColumnSpec",
    "DirtConfig",
    "SourceSpec",
    "SourcesConfig",
    "SourcesConfigError",
    "SubCriterion",
    "agency_extracts",
    "generate_borough",
    "load_sources",
    "read_extract",
    "write_borough",
]
