"""Statistical disclosure control for tables of counts: primary suppression, secondary (complementary)
suppression as linear programs, rounding, and the attacker's audit.

The privacy notice promises that "individuals cannot be identified from the information sets directly or
any published reports". The rules, as UK official statistics apply them:

* **Threshold rule** (primary suppression): a count of 1 to ``threshold - 1`` is confidential
  (ONS, "Statistical Disclosure Control" policy for tables; the GSS guidance marks such cells ``[c]``).
  Zero is published: a true zero is not a count of anyone.
* **Secondary suppression**: a suppressed cell must not be recoverable from the totals or from any other
  published table (differencing). Each table set is a vector of *atoms* (the finest cross-classification of
  the unit) and every published cell is a sum of atoms, so "recoverable" is a linear program: the
  attacker's feasibility interval of a cell is ``[min, max]`` of its sum over atom counts ``x >= 0`` that
  reproduce every published cell (tau-Argus's "audit" step; Fischetti and Salazar, "Models and algorithms
  for optimizing cell suppression in tabular data with linear constraints", JASA 2000). A cell is protected
  when its interval is at least ``threshold`` wide.
* Complements are chosen by the LP relaxation of Fischetti and Salazar's attacker subproblem: find the
  cheapest deviation ``y`` of the atoms that keeps ``x + y >= 0`` and every constraint the attacker
  knows, and moves the cell by ``threshold``; every published cell that ``y`` moves is suppressed too, so
  ``x + y`` stays consistent with what is published and the interval is at least ``threshold`` wide.
  Solved with HiGHS through ``scipy.optimize.linprog``.
* **Rounding** to base ``rounding_base`` (nearest multiple), every cell, totals included, computed from the
  unrounded atoms and then rounded (ONS practice: totals are not the sums of rounded cells). The audit
  assumes the attacker knows the *unrounded* values of every published cell, which is stronger than what
  is published: an interval that is wide enough for that attacker is wide enough for the real one.

tau-Argus itself (and PyPI's ``pytauargus`` port) was evaluated and not used: see docs/ARCHITECTURE.md,
"Statistics".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import linprog

__all__ = [
    "CellSet",
    "SdcError",
    "SdcParameters",
    "feasibility_intervals",
    "link",
    "primary_suppression",
    "protect",
    "protect_linked",
    "round_to_base",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

#: Tolerance for "the deviation moves this cell" and for the audit's widths (HiGHS's default feasibility
#: tolerance is 1e-7).
_EPS = 1e-6


class SdcError(RuntimeError):
    """Disclosure control could not protect a table set: nothing is published."""


@dataclass(frozen=True)
class SdcParameters:
    """What every output carries, so a reader knows how it was protected.

    The council sets them in ``include/statistics.yaml`` (``publish.sdc_parameters``); the defaults here are
    that file's, for the tests and the property checks that build their own.
    """

    #: Counts from 1 to threshold - 1 are suppressed (primary), and every suppressed cell's feasibility
    #: interval is at least this wide.
    threshold: int = 10
    #: Published counts are rounded to the nearest multiple of this base.
    rounding_base: int = 5
    method: str = "threshold-rule; secondary suppression by LP (HiGHS); audit by LP; rounding"

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.rounding_base < 1:
            raise ValueError("threshold and rounding_base must be positive integers")

    def as_dict(self) -> dict[str, int | str]:
        return {"threshold": self.threshold, "rounding_base": self.rounding_base, "method": self.method}


@dataclass
class CellSet:
    """A set of linked tables over one vector of atom counts.

    ``matrix[c, a]`` is 1 when atom ``a`` is in cell ``c``. ``keys[c]`` names the cell (table, row, column).
    ``known`` are further linear functionals of the atoms the attacker is assumed to know exactly (for
    example totals another table set publishes), included in every audit as equalities.
    ``links`` are functionals whose values another set of the same population must share (:func:`link`).
    ``cost[c]`` is how much suppressing the cell loses (totals cost more, so complements are inner cells).
    """

    atoms: IntArray
    matrix: sparse.csr_matrix
    keys: list[tuple[str, str, str]]
    cost: FloatArray
    known: sparse.csr_matrix | None = None
    suppressed: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: Functionals of the atoms that another table set of the same population shares (see :func:`link`).
    links: sparse.csr_matrix | None = None

    def __post_init__(self) -> None:
        if self.matrix.shape != (len(self.keys), len(self.atoms)):
            raise ValueError("matrix must be cells x atoms")
        if len(self.suppressed) != len(self.keys):
            self.suppressed = np.zeros(len(self.keys), dtype=bool)

    @property
    def values(self) -> IntArray:
        """Every cell's unrounded count."""
        return np.asarray(self.matrix @ self.atoms, dtype=np.int64)


def primary_suppression(values: IntArray, threshold: int) -> BoolArray:
    """The threshold rule: 0 < count < threshold is confidential."""
    return (values > 0) & (values < threshold)


def round_to_base(values: IntArray, base: int) -> IntArray:
    """Round half up to the nearest multiple of ``base`` (a count of 2.5 bases rounds to 3 bases)."""
    return ((values + base // 2) // base) * base if base > 1 else values.copy()


def _constraints(cells: CellSet, suppressed: BoolArray) -> tuple[sparse.csr_matrix, FloatArray]:
    """What the attacker knows: every published cell's value, and the ``known`` functionals."""
    published = ~suppressed
    a_eq = cells.matrix[np.flatnonzero(published)]
    b_eq = cells.values[published].astype(np.float64)
    if cells.known is not None and cells.known.shape[0]:
        a_eq = sparse.vstack([a_eq, cells.known]).tocsr()
        b_eq = np.concatenate([b_eq, (cells.known @ cells.atoms).astype(np.float64)])
    return a_eq, b_eq


def feasibility_intervals(
    cells: CellSet, suppressed: BoolArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """The attacker's interval ``[lo, hi]`` of every suppressed cell (NaN for published cells).

    Two LPs per suppressed cell over the atoms (``x >= 0``, continuous: the LP relaxation is what an
    attacker with a solver gets, and its interval contains the integer one). ``hi`` is ``inf`` when
    nothing published bounds the cell.
    """
    suppressed = cells.suppressed if suppressed is None else suppressed
    lo = np.full(len(cells.keys), np.nan)
    hi = np.full(len(cells.keys), np.nan)
    a_eq, b_eq = _constraints(cells, suppressed)
    n = len(cells.atoms)
    for c in np.flatnonzero(suppressed):
        objective = cells.matrix[c].toarray().ravel().astype(np.float64)
        for sign, out in ((1.0, lo), (-1.0, hi)):
            result = linprog(
                sign * objective,
                A_eq=a_eq if a_eq.shape[0] else None,
                b_eq=b_eq if a_eq.shape[0] else None,
                bounds=[(0, None)] * n,
                method="highs",
            )
            if result.status == 3:  # unbounded: only the maximum can be
                out[c] = np.inf
            elif result.status != 0:
                raise SdcError(f"the audit LP of cell {cells.keys[c]} did not solve: {result.message}")
            else:
                out[c] = sign * result.fun
    return lo, hi


def _deviation(cells: CellSet, target: int, suppressed: BoolArray, threshold: int) -> BoolArray | None:
    """Cells to suppress so ``target`` can move up by ``threshold`` unseen (None if no deviation exists).

    Variables: ``y+``, ``y-`` per atom (``y- <= x``), ``t`` per published cell with ``|M_c y| <= t_c``.
    Minimise ``sum cost_c t_c`` (plus a tiny weight on ``y`` so the solution is small) subject to
    ``M_target y >= threshold`` and ``K y = 0`` for what the attacker knows.
    """
    n = len(cells.atoms)
    published = np.flatnonzero(~suppressed)
    p = len(published)
    m_pub = cells.matrix[published]
    # Columns: y+ (n), y- (n), t (p).
    dev = sparse.hstack([m_pub, -m_pub])
    eye = sparse.identity(p, format="csr")
    rows_ub = [
        sparse.hstack([dev, -eye]),  # M y - t <= 0
        sparse.hstack([-dev, -eye]),  # -M y - t <= 0
        -sparse.hstack([cells.matrix[target], -cells.matrix[target], sparse.csr_matrix((1, p))]),
    ]
    b_ub = np.concatenate([np.zeros(2 * p), [-float(threshold)]])
    a_eq = None
    b_eq = None
    if cells.known is not None and cells.known.shape[0]:
        a_eq = sparse.hstack(
            [cells.known, -cells.known, sparse.csr_matrix((cells.known.shape[0], p))]
        ).tocsr()
        b_eq = np.zeros(cells.known.shape[0])
    objective = np.concatenate([np.full(2 * n, 1e-4), cells.cost[published]])
    bounds = [(0, None)] * n + [(0, float(x)) for x in cells.atoms] + [(0, None)] * p
    result = linprog(
        objective,
        A_ub=sparse.vstack(rows_ub).tocsr(),
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    if result.status != 0:
        return None
    t = result.x[2 * n :]
    moved = np.zeros(len(cells.keys), dtype=bool)
    moved[published[t > _EPS]] = True
    return moved


def protect(cells: CellSet, params: SdcParameters, forced: BoolArray | None = None) -> BoolArray:
    """Suppress the confidential cells and enough complements; return (and keep) the suppression pattern.

    ``forced`` cells are suppressed whatever their value (a cell another table set suppressed). Loops until
    the audit finds every suppressed cell's interval at least ``threshold`` wide; raises :class:`SdcError`
    when a cell cannot be protected, so an unprotected table is never published.
    """
    suppressed = primary_suppression(cells.values, params.threshold)
    if forced is not None:
        suppressed |= forced
    for _ in range(len(cells.keys) + 1):
        lo, hi = feasibility_intervals(cells, suppressed)
        failing = [int(c) for c in np.flatnonzero(suppressed) if hi[c] - lo[c] < params.threshold - _EPS]
        if not failing:
            cells.suppressed = suppressed
            return suppressed
        for c in failing:
            moved = _deviation(cells, c, suppressed, params.threshold)
            if moved is None:
                raise SdcError(f"cell {cells.keys[c]} cannot be protected: nothing is published")
            suppressed = suppressed | moved
    raise SdcError("secondary suppression did not converge: nothing is published")


def link(sets: Sequence[CellSet]) -> CellSet:
    """One table set of linked sets: their atoms side by side, and as ``known`` the equalities that tie
    them (each set's ``links`` functionals, e.g. the count of families in each stage, are equal across the
    sets although no set publishes them). This is the attacker's whole knowledge: a joint population exists
    for any atom counts that agree on the links, so the joint LP is exact, not an approximation.
    A cell two sets both publish appears once per set; the audit pins a copy that is published, so
    protecting the linked set suppresses both copies or neither.
    """
    if any(s.links is None for s in sets) or len({s.links.shape[0] for s in sets if s.links is not None}) > 1:
        raise ValueError("every linked set needs links of the same number of rows")
    first = sets[0].links
    assert first is not None
    ties = []
    offsets = np.cumsum([0] + [len(s.atoms) for s in sets])
    total = int(offsets[-1])
    for i in range(1, len(sets)):
        other = sets[i].links
        assert other is not None
        # links(set 0) - links(set i) = 0, zero over every other set's atoms.
        blocks = [
            first,
            _zeros(first.shape[0], int(offsets[i] - offsets[1])),
            -other,
            _zeros(first.shape[0], total - int(offsets[i + 1])),
        ]
        tie = sparse.hstack([m for m in blocks if m is not None]).tocsr()
        ties.append(tie)
    return CellSet(
        np.concatenate([s.atoms for s in sets]),
        sparse.block_diag([s.matrix for s in sets], format="csr"),
        [k for s in sets for k in s.keys],
        np.concatenate([s.cost for s in sets]),
        known=sparse.vstack(ties).tocsr() if ties else None,
        suppressed=np.concatenate([s.suppressed for s in sets]),
    )


def _zeros(rows: int, cols: int) -> sparse.csr_matrix | None:
    return sparse.csr_matrix((rows, cols)) if cols else None


def protect_linked(sets: Sequence[CellSet], params: SdcParameters) -> CellSet:
    """Protect table sets that share cells and links as one (complementary suppression across the table
    set); each set keeps its part of the pattern. Returns the linked set (what the audit reads)."""
    linked = link(sets)
    protect(linked, params)
    start = 0
    for cells in sets:
        cells.suppressed = linked.suppressed[start : start + len(cells.keys)].copy()
        start += len(cells.keys)
    return linked
