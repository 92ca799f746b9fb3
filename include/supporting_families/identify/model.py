"""The probabilistic half of the linkage: blocking, comparison levels, u, EM for m, and scoring.

A Fellegi-Sunter model (the one splink implements), done as DuckDB queries over a ``keys`` table and numpy
over the few hundred distinct comparison patterns. See :mod:`supporting_families.identify.linkage` for the
method as
a whole; this module documents the choices inside the model.

Every query runs on one DuckDB connection holding the temporary table ``keys`` (one row per record, made by
``linkage._keys``). Nothing here logs or returns a personal value: the fitted model is m, u and a prior.
"""

# ruff: noqa: S608 - queries are built from this module's own table and column names and numbers; no input
# value is ever put into SQL text (records reach DuckDB as registered Arrow tables).
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LinkageSettings:
    """The linker's tunable settings; the defaults are what the benchmark measures."""

    #: a candidate pair links at or above this match probability
    threshold: float = 0.9
    #: two records of one source join one person only when identical (date of birth, family name, given-name
    #: group) or linked to each other directly at or above this probability: a duplicate registration, not
    #: two people chained together through a third record
    same_source_threshold: float = 0.99
    #: records sampled for estimating u (every pair among them is compared)
    u_sample_records: int = 2_500
    em_iterations: int = 40
    em_tolerance: float = 1e-5
    #: blocks larger than this are skipped (a placeholder date of birth such as 1900-01-01 would otherwise
    #: compare every such record with every other)
    max_block_size: int = 5_000
    #: lowest term frequency used for an exact agreement, so that one rare typo shared by two records
    #: cannot outweigh everything else
    min_term_frequency: float = 1e-5
    seed: int = 0


# Comparison levels; 0 is always "missing", which is neutral (m = u = 1).
COMPARISONS: Final = ("given_name", "family_name", "date_of_birth", "sex", "address")
LEVELS: Final = {
    "given_name": ("missing", "other", "jw>=0.80", "jw>=0.92", "nickname_or_prefix", "exact"),
    "family_name": ("missing", "other", "jw>=0.80", "jw>=0.92", "exact"),
    "date_of_birth": ("missing", "other", "one_part_different", "day_month_transposed", "exact"),
    "sex": ("missing", "different", "same"),
    "address": ("missing", "other", "same_sector", "same_postcode", "same_address_and_postcode", "same_uprn"),
}
N_LEVELS: Final = tuple(len(LEVELS[c]) for c in COMPARISONS)
G, F, D, S, A = range(5)
GIVEN_EXACT, FAMILY_EXACT, DOB_EXACT = 5, 4, 4
#: Dates of birth plainly different: never linked, whatever else agrees.
DOB_OTHER: Final = 1
#: Given names unrelated (not equal, not nicknames, Jaro-Winkler below 0.80): never linked either. A name may
#: be shortened, varied or mistyped, but two unrelated names at one address on one date of birth are twins:
#: their shared family name, address and birthday are evidence the model would otherwise count as
#: independent, which for members of one household they are not.
GIVEN_OTHER: Final = 1

#: m for date of birth, fixed rather than estimated. The synthetic extracts (like many council systems fed
#: from one another) carry too few date-of-birth errors for EM to learn their rate, and a learned zero would
#: make any single mistyped date unlinkable. UK studies of administrative data (e.g. ONS linkage of the 2011
#: Census to NHS patient registers) find 1-3% of one person's dates of birth disagree between systems, most
#: often by a transposition or one wrong part, so: 97% exact, 1% day and month transposed, 1.5% day or
#: month wrong, 0.5% otherwise different (which never links: see ``DOB_OTHER``).
DOB_M: Final = (1.0, 0.005, 0.015, 0.01, 0.97)

# Levels as SQL over a pair of ``keys`` rows ``l`` and ``r``. Address is one comparison (UPRN, then address
# line and postcode, then postcode, then sector) because those fields are not independent evidence.
# "One part different" keeps the year: a different year with the same day and month is how a parent and
# child who share a name look (John Smith senior and junior), not a typing slip.
LEVEL_SQL: Final = """
    CASE WHEN l.gn = r.gn THEN 1.0 ELSE jaro_winkler_similarity(l.gn, r.gn) END AS jg,
    CASE WHEN l.fn = r.fn THEN 1.0 ELSE jaro_winkler_similarity(l.fn, r.fn) END AS jf,
    CASE WHEN l.gn IS NULL OR r.gn IS NULL THEN 0
         WHEN l.gn = r.gn THEN 5
         WHEN list_has_any(l.gl, r.gl) OR (length(l.gn) >= 4 AND length(r.gn) >= 4
              AND (starts_with(l.gn, r.gn) OR starts_with(r.gn, l.gn))) THEN 4
         WHEN jg >= 0.92 THEN 3
         WHEN jg >= 0.80 THEN 2
         ELSE 1 END AS lg,
    CASE WHEN l.fn IS NULL OR r.fn IS NULL THEN 0
         WHEN l.fn = r.fn THEN 4
         WHEN jf >= 0.92 THEN 3
         WHEN jf >= 0.80 THEN 2
         ELSE 1 END AS lf,
    CASE WHEN l.dob IS NULL OR r.dob IS NULL THEN 0
         WHEN l.dob = r.dob THEN 4
         WHEN l.y = r.y AND l.m = r.d AND l.d = r.m THEN 3
         WHEN l.y = r.y AND (l.m = r.m) <> (l.d = r.d) THEN 2
         ELSE 1 END AS ld,
    CASE WHEN l.sex IS NULL OR r.sex IS NULL THEN 0 WHEN l.sex = r.sex THEN 2 ELSE 1 END AS ls,
    CASE WHEN l.uprn IS NOT NULL AND l.uprn = r.uprn THEN 5
         WHEN l.pc IS NULL OR r.pc IS NULL THEN
              CASE WHEN l.uprn IS NOT NULL AND r.uprn IS NOT NULL THEN 1 ELSE 0 END
         WHEN l.addr = r.addr AND l.pc = r.pc THEN 4
         WHEN l.pc = r.pc THEN 3
         WHEN l.sector = r.sector THEN 2
         ELSE 1 END AS la
"""

#: Blocking rules: a pair is compared when it agrees on all the columns of at least one rule. Date of birth
#: finds nearly every pair; the other two find pairs whose dates of birth disagree (same family-name sound,
#: initial and birth year; same postcode and initial).
BLOCKING_RULES: Final = {"dob": ("dob",), "name": ("fs", "gi", "y"), "postcode": ("pc", "gi")}


def near_dates(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Dates of birth one person could have been given (the levels above "other"), as (y, m, d)."""
    if a == b:
        return True
    if a[0] != b[0]:
        return False
    return (a[1] == b[2] and a[2] == b[1]) or ((a[1] == b[1]) != (a[2] == b[2]))


@dataclass(frozen=True)
class FittedModel:
    """The Fellegi-Sunter parameters of one run (no personal data): logged as counts, kept for review."""

    m: dict[str, list[float]]
    u: dict[str, list[float]]
    prior: float
    em_iterations: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def arrays(self) -> tuple[list[FloatArray], list[FloatArray]]:
        return (
            [np.asarray(self.m[c], dtype=np.float64) for c in COMPARISONS],
            [np.asarray(self.u[c], dtype=np.float64) for c in COMPARISONS],
        )


def blocked_pairs(con: duckdb.DuckDBPyConnection, settings: LinkageSettings) -> int:
    """Candidate pairs (a < b) from ``BLOCKING_RULES`` into table ``pairs``; returns how many."""
    selects = []
    for name, columns in BLOCKING_RULES.items():
        cols = ", ".join(columns)
        not_null = " AND ".join(f"{c} IS NOT NULL" for c in columns)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE block_{name} AS
            SELECT k.rid, {", ".join(f"k.{c}" for c in columns)} FROM keys k
            JOIN (SELECT {cols} FROM keys WHERE {not_null} GROUP BY ALL
                  HAVING count(*) BETWEEN 2 AND {int(settings.max_block_size)}) USING ({cols})
            """
        )
        on = " AND ".join(f"l.{c} = r.{c}" for c in columns)
        selects.append(
            f"SELECT l.rid AS a, r.rid AS b FROM block_{name} l JOIN block_{name} r ON {on} AND l.rid < r.rid"
        )
    # Pairs whose dates of birth are plainly different can never link (DOB_OTHER): drop them here.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE pairs AS
        SELECT q.a, q.b FROM ({" UNION ".join(selects)}) q
        JOIN keys l ON l.rid = q.a JOIN keys r ON r.rid = q.b
        WHERE l.dob IS NULL OR r.dob IS NULL OR l.dob = r.dob
           OR (l.y = r.y AND ((l.m = r.d AND l.d = r.m) OR ((l.m = r.m) <> (l.d = r.d))))
        """
    )
    for name in BLOCKING_RULES:
        con.execute(f"DROP TABLE block_{name}")
    row = con.execute("SELECT count(*) FROM pairs").fetchall()
    return int(row[0][0])


def u_probabilities(con: duckdb.DuckDBPyConnection, settings: LinkageSettings, n: int) -> list[FloatArray]:
    """u per level from every pair among a random sample of records: nearly all pairs of different people."""
    k = min(n, settings.u_sample_records)
    sample = np.sort(np.random.default_rng(settings.seed).choice(n, size=k, replace=False)).astype(np.int64)
    con.register("u_sample_rids", pa.table({"rid": pa.array(sample)}))
    rows = con.execute(
        f"""
        WITH s AS (SELECT keys.* FROM keys JOIN u_sample_rids USING (rid))
        SELECT lg, lf, ld, ls, la, count(*) FROM (SELECT {LEVEL_SQL} FROM s l JOIN s r ON l.rid < r.rid)
        GROUP BY ALL
        """
    ).fetchall()
    con.unregister("u_sample_rids")
    counts = [np.zeros(n_levels, dtype=np.float64) for n_levels in N_LEVELS]
    for row in rows:
        for c in range(5):
            counts[c][int(row[c])] += float(row[5])
    out = []
    for arr in counts:
        observed = arr[1:].sum()
        # A level never seen among random pairs gets one pair's worth, so that weights stay finite.
        arr[1:] = np.maximum(arr[1:], 1.0) / max(observed, 1.0)
        arr[0] = 1.0
        out.append(arr)
    return out


def term_frequencies(con: duckdb.DuckDBPyConnection) -> None:
    """Add to ``keys`` how common each record's names, full name and date of birth are.

    Frequencies are among distinct (given name, family name, date of birth) profiles, so that a person known
    to five services does not look five times as common. The full name has its own frequency because given
    and family names are not independent (both follow a family's naming tradition): two people called
    "Abdi Farah" are far more likely than the product of the two names' frequencies says.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE keys AS
        WITH profiles AS (SELECT DISTINCT gn, fn, dob FROM keys),
        tg AS (SELECT gn, count(*) / sum(count(*)) OVER () AS tf_g FROM profiles
               WHERE gn IS NOT NULL GROUP BY gn),
        tf AS (SELECT fn, count(*) / sum(count(*)) OVER () AS tf_f FROM profiles
               WHERE fn IS NOT NULL GROUP BY fn),
        tgf AS (SELECT gn, fn, count(*) / sum(count(*)) OVER () AS tf_gf FROM profiles
                WHERE gn IS NOT NULL AND fn IS NOT NULL GROUP BY gn, fn),
        td AS (SELECT dob, count(*) / sum(count(*)) OVER () AS tf_d FROM profiles
               WHERE dob IS NOT NULL GROUP BY dob)
        SELECT k.*, tg.tf_g, tf.tf_f, tgf.tf_gf, td.tf_d FROM keys k
        LEFT JOIN tg USING (gn) LEFT JOIN tf USING (fn) LEFT JOIN tgf USING (gn, fn) LEFT JOIN td USING (dob)
        ORDER BY k.rid
        """
    )


def compare(con: duckdb.DuckDBPyConnection, u: list[FloatArray], settings: LinkageSettings) -> None:
    """Levels of every candidate pair, with term-frequency adjustments (log2), into table ``compared``.

    The adjustment replaces u at an exact level by the value's own frequency (splink's term-frequency
    adjustment): an exact match on a common name is weaker evidence than one on a rare name.
    """
    floor = float(settings.min_term_frequency)
    ug, uf, ud = float(u[G][GIVEN_EXACT]), float(u[F][FAMILY_EXACT]), float(u[D][DOB_EXACT])
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE compared AS
        SELECT a, b, exact_uprn, lg, lf, ld, ls, la,
               CASE WHEN lg = 5 AND lf = 4 THEN log2({ug * uf} / greatest(tf_gf, {floor}))
                    WHEN lg = 5 THEN log2({ug} / greatest(tf_g, {floor}))
                    WHEN lf = 4 THEN log2({uf} / greatest(tf_f, {floor}))
                    ELSE 0 END AS tf_names,
               CASE WHEN ld = 4 THEN log2({ud} / greatest(tf_d, {floor})) ELSE 0 END AS tf_dob
        FROM (
            SELECT p.a, p.b,
                   (l.uprn = r.uprn AND l.dob = r.dob AND l.fn = r.fn
                    AND (l.gn = r.gn OR list_has_any(l.gl, r.gl))) AS exact_uprn,
                   l.tf_g, l.tf_f, l.tf_gf, l.tf_d,
                   {LEVEL_SQL}
            FROM pairs p JOIN keys l ON l.rid = p.a JOIN keys r ON r.rid = p.b
        )
        """
    )


def _log_bf(
    patterns: IntArray, m: list[FloatArray], u: list[FloatArray], active: Sequence[int]
) -> FloatArray:
    """Sum over the active comparisons of ln(m/u) at each pattern's level (a missing level adds 0)."""
    out = np.zeros(len(patterns), dtype=np.float64)
    for c in active:
        ratio = np.log(m[c]) - np.log(u[c])
        ratio[0] = 0.0
        out += ratio[patterns[:, c]]
    return out


def _em(
    patterns: IntArray,
    tf_ln: FloatArray,
    counts: FloatArray,
    m: list[FloatArray],
    u: list[FloatArray],
    estimate: Sequence[int],
    settings: LinkageSettings,
) -> tuple[list[FloatArray], FloatArray, int]:
    """Expectation maximisation of m (u fixed) over pattern counts; returns m, posteriors, iterations.

    ``estimate`` lists the comparisons whose m is estimated; the others are left out of the posterior
    (the blocking field agrees on every blocked pair, match or not). The term-frequency adjustment takes
    part, as it does in scoring, so that pairs of common names do not pass for matches while m is learned.
    """
    m = [arr.copy() for arr in m]
    lam = 0.01
    posterior = np.zeros(len(counts), dtype=np.float64)
    iterations = 0
    for iterations in range(1, settings.em_iterations + 1):  # noqa: B007 - reported after the loop
        log_odds = np.log(lam / (1.0 - lam)) + _log_bf(patterns, m, u, estimate) + tf_ln
        posterior = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700)))
        weighted = posterior * counts
        change = 0.0
        for c in estimate:
            new = np.bincount(patterns[:, c], weights=weighted, minlength=N_LEVELS[c]).astype(np.float64)
            new[1:] = np.clip(new[1:] / max(new[1:].sum(), 1e-12), 1e-6, 1.0)
            new[0] = 1.0
            change = max(change, float(np.abs(new - m[c]).max()))
            m[c] = new
        new_lam = float(np.clip(weighted.sum() / counts.sum(), 1e-9, 1 - 1e-9))
        change = max(change, abs(new_lam - lam))
        lam = new_lam
        if change < settings.em_tolerance:
            break
    return m, posterior, iterations


def _initial_m() -> list[FloatArray]:
    # Starting values only (EM replaces them), except date of birth, which stays fixed: see DOB_M.
    starts = {
        "given_name": (1.0, 0.01, 0.01, 0.02, 0.05, 0.91),
        "family_name": (1.0, 0.01, 0.01, 0.03, 0.95),
        "date_of_birth": DOB_M,
        "sex": (1.0, 0.01, 0.99),
        "address": (1.0, 0.05, 0.02, 0.05, 0.28, 0.6),
    }
    return [np.asarray(starts[c], dtype=np.float64) for c in COMPARISONS]


def fit(
    con: duckdb.DuckDBPyConnection, u: list[FloatArray], settings: LinkageSettings, n: int
) -> FittedModel:
    """m by EM on the pairs blocked on date of birth; the prior from the EM's expected matches."""
    rows = con.execute(
        """
        SELECT lg, lf, ld, ls, la, round(tf_names, 1), count(*) FROM compared
        WHERE ld = 4 GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    m = _initial_m()
    iterations = 0
    expected_matches = 0.0
    if rows:
        arr = np.asarray(rows, dtype=np.float64)
        patterns = arr[:, :5].astype(np.int64)
        counts = arr[:, 6]
        m, posterior, iterations = _em(
            patterns, arr[:, 5] * np.log(2.0), counts, m, u, (G, F, S, A), settings
        )
        expected_matches = float((posterior * counts).sum())
    total_pairs = n * (n - 1) / 2
    # Two records drawn at random are the same person with this probability (splink's
    # probability_two_random_records_match): matches outside every block are too few to matter.
    prior = float(np.clip(expected_matches / max(total_pairs, 1.0), 1e-12, 0.5))
    return FittedModel(
        m={c: [float(x) for x in m[i]] for i, c in enumerate(COMPARISONS)},
        u={c: [float(x) for x in u[i]] for i, c in enumerate(COMPARISONS)},
        prior=prior,
        em_iterations=iterations,
    )


def score(con: duckdb.DuckDBPyConnection, model: FittedModel, threshold: float) -> pa.Table:
    """Pairs that may link, ordered by (a, b): (a, b, exact_uprn, lg, ld, p).

    A pair may link when an exact rule holds (``exact_uprn``), or when its probability is at least
    ``threshold`` and neither its dates of birth nor its given names are plainly different.
    """
    m, u = model.arrays()
    rows = con.execute("SELECT DISTINCT lg, lf, ld, ls, la FROM compared ORDER BY ALL").fetchall()
    patterns = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
    weights = _log_bf(patterns, m, u, range(5)) / np.log(2.0)
    con.register(
        "pattern_weights",
        pa.table(
            {
                **{k: pa.array(patterns[:, i]) for i, k in enumerate(("lg", "lf", "ld", "ls", "la"))},
                "w": pa.array(weights),
            }
        ),
    )
    prior_log2 = float(np.log2(model.prior / (1.0 - model.prior)))
    result: Any = con.sql(
        f"""
        SELECT * FROM (
            SELECT c.a, c.b, c.exact_uprn, c.lg, c.ld,
                   1.0 / (1.0 + pow(2.0, -({prior_log2} + w.w + c.tf_names + c.tf_dob))) AS p
            FROM compared c JOIN pattern_weights w USING (lg, lf, ld, ls, la))
        WHERE exact_uprn OR (p >= {float(threshold)} AND ld <> {DOB_OTHER} AND lg <> {GIVEN_OTHER})
        ORDER BY a, b
        """
    ).arrow()
    table: pa.Table = result.read_all() if hasattr(result, "read_all") else result
    con.unregister("pattern_weights")
    return table
