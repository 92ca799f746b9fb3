"""The programme's tables: one row per family (facts), then the published cells as sums of atoms.

Who is counted. A family is counted when identification found at least one headline problem for it, or a
practitioner assessed it as meeting the criteria. Persons with a restriction, objection or consent
withdrawal in force, and members of a family that objected, are not counted: the whole family is left out
when any member is, so no restricted person is in any figure (privacy notice: the right "to object and
restrict further processing"; docs/ARCHITECTURE.md, "Rights"). Erased persons are out of the register and
of every identification already (``rights_erasure``), and the tables read nothing else.

* identified: at least one headline problem in the latest identification;
* eligible: at least ``min_problems`` (``include/criteria.yaml``; the notice: "at least two");
* assessed: the latest practitioner decision is ``meets_criteria`` (only a practitioner assesses a family).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy import sparse

from supporting_families.statistics.sdc import CellSet

__all__ = [
    "AGE_BANDS",
    "COLUMNS",
    "FACTS_SCHEMA",
    "NOT_KNOWN",
    "TOTAL",
    "TableSets",
    "build_cell_sets",
    "family_facts",
]

#: The columns of every status table.
COLUMNS: Final = ("identified", "eligible", "assessed")
#: Age band of a family's youngest child on the day of the identification (under 18: Children Act 1989).
AGE_BANDS: Final = ("0-4", "5-10", "11-15", "16-17", "no child under 18")
NOT_KNOWN: Final = "Not known"
TOTAL: Final = "Total"

FACTS_SCHEMA: Final = pa.schema(
    [
        pa.field("family_id", pa.string(), nullable=False),
        pa.field("headline_mask", pa.int64(), nullable=False),  # bit i: headline problem i (config order)
        pa.field("assessed", pa.bool_(), nullable=False),
        pa.field("ward", pa.string(), nullable=False),
        pa.field("month", pa.string(), nullable=False),  # YYYY-MM first identified (or assessed)
        pa.field("age_band", pa.string(), nullable=False),
    ]
)


def family_facts(
    persons: pa.Table,
    problems: pa.Table,
    first_seen: pa.Table,
    assessed: pa.Table,
    wards: pa.Table,
    blocked: pa.Array,
    headlines: Sequence[str],
    as_of: date,
) -> pa.Table:
    """One row per counted family (:data:`FACTS_SCHEMA`); held controller-side, never published.

    ``persons``: person_id, family_id, date_of_birth, postcode (the register); ``problems``: family_id,
    headline (the latest identification); ``first_seen``: family_id, first_as_of; ``assessed``: family_id
    (latest decision meets_criteria), identification_as_of; ``wards``: postcode, ward (the council's
    lookup); ``blocked``: person ids not to count.
    """
    con = duckdb.connect()
    try:
        con.register("persons", persons.select(["person_id", "family_id", "date_of_birth", "postcode"]))
        con.register("problems", problems.select(["family_id", "headline"]))
        con.register("first_seen", first_seen.select(["family_id", "first_as_of"]))
        con.register("assessed", assessed.select(["family_id", "identification_as_of"]))
        con.register("wards", wards.select(["postcode", "ward"]))
        con.register("blocked", pa.table({"person_id": blocked.cast(pa.string())}))
        con.register("headlines", pa.table({"headline": list(headlines), "bit": list(range(len(headlines)))}))
        # Postcodes compared as the lookup files write them: upper case, no spaces.
        table = con.sql(
            """
            WITH left_out AS (
                SELECT DISTINCT p.family_id FROM persons p JOIN blocked b USING (person_id)
            ),
            members AS (
                SELECT * FROM persons WHERE family_id NOT IN (SELECT family_id FROM left_out)
            ),
            masks AS (
                SELECT family_id, CAST(SUM(DISTINCT CAST(1 AS BIGINT) << bit) AS BIGINT) AS headline_mask
                FROM (SELECT DISTINCT family_id, bit FROM problems JOIN headlines USING (headline))
                GROUP BY family_id
            ),
            universe AS (
                SELECT family_id FROM masks UNION SELECT family_id FROM assessed
            ),
            home AS (
                SELECT family_id,
                       min(upper(replace(postcode, ' ', ''))) AS postcode,
                       max(date_of_birth) FILTER (WHERE date_of_birth > $as_of::DATE - INTERVAL 18 YEAR)
                           AS youngest_child
                FROM members GROUP BY family_id
            )
            SELECT u.family_id,
                   coalesce(m.headline_mask, 0) AS headline_mask,
                   a.family_id IS NOT NULL AS assessed,
                   coalesce(w.ward, $not_known) AS ward,
                   strftime(coalesce(f.first_as_of, a.identification_as_of, $as_of::DATE), '%Y-%m') AS month,
                   CASE
                       WHEN h.youngest_child IS NULL THEN $no_child
                       WHEN date_sub('year', h.youngest_child, $as_of::DATE) < 5 THEN '0-4'
                       WHEN date_sub('year', h.youngest_child, $as_of::DATE) < 11 THEN '5-10'
                       WHEN date_sub('year', h.youngest_child, $as_of::DATE) < 16 THEN '11-15'
                       ELSE '16-17'
                   END AS age_band
            FROM universe u
            JOIN home h USING (family_id)
            LEFT JOIN masks m USING (family_id)
            LEFT JOIN assessed a USING (family_id)
            LEFT JOIN first_seen f USING (family_id)
            LEFT JOIN (SELECT upper(replace(postcode, ' ', '')) AS postcode, min(ward) AS ward
                       FROM wards GROUP BY 1) w ON w.postcode = h.postcode
            ORDER BY u.family_id
            """,
            params={"as_of": as_of, "not_known": NOT_KNOWN, "no_child": AGE_BANDS[-1]},
        ).to_arrow_table()
    finally:
        con.close()
    return table.cast(FACTS_SCHEMA)


@dataclass(frozen=True)
class TableSets:
    """The two linked table sets and the labels the published tables use."""

    status: CellSet  # by headline problem and by number of problems
    places: CellSet  # by ward, age band, month, and ward by month
    headlines: tuple[str, ...]
    wards: tuple[str, ...]
    months: tuple[str, ...]


# The five stages a family can be in; every status column is a union of stages, and the stage counts are
# what links the two table sets: both describe the same families, so their stage counts are equal, which
# the audit gives the attacker (sdc.link).
_STAGES: Final = 5  # 0: identified, not eligible; 1: eligible; 2: eligible, assessed;
# 3: identified, not eligible, assessed; 4: assessed, no problem now
_COLUMN_STAGES: Final = {"identified": (0, 1, 2, 3), "eligible": (1, 2), "assessed": (2, 3, 4)}

IntArray = npt.NDArray[np.int64]


def _stage(problems: IntArray, assessed: npt.NDArray[np.bool_], min_problems: int) -> IntArray:
    eligible = problems >= min_problems
    return np.select(
        [~assessed & ~eligible, ~assessed & eligible, assessed & eligible, assessed & (problems > 0)],
        [0, 1, 2, 3],
        default=4,
    ).astype(np.int64)


def _popcount(masks: IntArray) -> IntArray:
    return np.array([bin(int(m)).count("1") for m in masks], dtype=np.int64)


class _Builder:
    """Cells as boolean masks over atoms; keys unique (a cell two tables show is one cell)."""

    def __init__(self, n_atoms: int) -> None:
        self.n_atoms = n_atoms
        self.keys: list[tuple[str, str, str]] = []
        self.masks: list[npt.NDArray[np.bool_]] = []
        self.costs: list[float] = []

    def add(self, key: tuple[str, str, str], mask: npt.NDArray[np.bool_], cost: float = 1.0) -> None:
        if key in self.keys:
            return
        self.keys.append(key)
        self.masks.append(mask)
        self.costs.append(cost)

    def build(self, atoms: IntArray, links: list[npt.NDArray[np.bool_]]) -> CellSet:
        matrix = sparse.csr_matrix(np.vstack(self.masks).astype(np.float64))
        link_matrix = sparse.csr_matrix(np.vstack(links).astype(np.float64))
        return CellSet(atoms, matrix, list(self.keys), np.array(self.costs), links=link_matrix)


def _totals(builder: _Builder, stage: IntArray) -> None:
    # The grand totals: every table's Total row, shared by both sets; dear to suppress.
    for column, stages in _COLUMN_STAGES.items():
        builder.add(("totals", TOTAL, column), np.isin(stage, stages), cost=100.0)


def build_cell_sets(facts: pa.Table, headlines: Sequence[str], min_problems: int) -> TableSets:
    """The published cells of both table sets, as sums over their atoms, with the atoms' counts."""
    k = len(headlines)
    masks = np.asarray(facts.column("headline_mask").to_numpy(), dtype=np.int64)
    assessed = np.asarray(facts.column("assessed").to_numpy(zero_copy_only=False), dtype=bool)
    stage = _stage(_popcount(masks), assessed, min_problems)

    # Set 1: atoms are (headline mask, assessed).
    atom_mask = np.repeat(np.arange(2**k, dtype=np.int64), 2)
    atom_assessed = np.tile(np.array([False, True]), 2**k)
    atom_problems = _popcount(atom_mask)
    atom_stage = _stage(atom_problems, atom_assessed, min_problems)
    counts = np.bincount(masks * 2 + assessed.astype(np.int64), minlength=2 ** (k + 1)).astype(np.int64)
    b = _Builder(len(counts))
    _totals(b, atom_stage)
    for i, headline in enumerate(headlines):
        has = (atom_mask >> i) & 1 == 1
        for column, stages in _COLUMN_STAGES.items():
            b.add(("headline_problem", headline, column), has & np.isin(atom_stage, stages))
    for n in range(1, k + 1):
        for column, stages in _COLUMN_STAGES.items():
            b.add(("number_of_problems", str(n), column), (atom_problems == n) & np.isin(atom_stage, stages))
    status = b.build(counts, [atom_stage == s for s in range(_STAGES)])

    # Set 2: atoms are (ward, month, age band, stage).
    wards = (*sorted(set(facts.column("ward").to_pylist()) - {NOT_KNOWN}), NOT_KNOWN)
    months = tuple(sorted(set(facts.column("month").to_pylist())))
    dims: list[tuple[str, ...]] = [wards, months, AGE_BANDS, tuple(str(s) for s in range(_STAGES))]
    index = {
        name: {label: i for i, label in enumerate(labels)}
        for name, labels in zip(("ward", "month", "age_band"), dims[:3], strict=True)
    }
    codes = [
        np.array([index[name][v] for v in facts.column(name).to_pylist()], dtype=np.int64)
        for name in ("ward", "month", "age_band")
    ] + [stage]
    shape = tuple(len(d) for d in dims)
    flat = np.ravel_multi_index(tuple(codes), shape) if facts.num_rows else np.zeros(0, dtype=np.int64)
    atom_counts = np.bincount(flat, minlength=int(np.prod(shape))).astype(np.int64)
    coords = [c.ravel() for c in np.indices(shape)]
    b2 = _Builder(len(atom_counts))
    _totals(b2, coords[3])
    for dim, (table, labels) in enumerate((("ward", wards), ("month", months), ("age_band", AGE_BANDS))):
        for i, label in enumerate(labels):
            for column, stages in _COLUMN_STAGES.items():
                b2.add((table, label, column), (coords[dim] == i) & np.isin(coords[3], stages))
    eligible = np.isin(coords[3], _COLUMN_STAGES["eligible"])
    for (wi, ward), (mi, month) in itertools.product(enumerate(wards), enumerate(months)):
        b2.add(("ward_by_month", ward, month), (coords[0] == wi) & (coords[1] == mi) & eligible)
    places = b2.build(atom_counts, [coords[3] == s for s in range(_STAGES)])
    return TableSets(status, places, tuple(headlines), wards, months)
