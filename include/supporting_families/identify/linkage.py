"""The person register: link the internal sources' records to stable persons, and persons to households.

What it does
    Records about the same person in different departments' systems link to one internal ``person_id``
    that stays the same from run to run; persons group into households by the property they live at.
    ``build_register(identities, previous)`` does it all; ``identities_from_curated`` builds its input from
    curated tables; ``load_register_state`` / ``save_register`` / ``load_register`` keep it under
    ``<store>/register/`` (persons, links, id map, retired ids).

Method
    1. **Records.** Rows repeating within a source (same ``source`` + ``record_id``: terms, episodes,
       incidents) are one record; its identity is taken from its latest extract.
    2. **Keys.** Names are case-folded to letters only, accents removed, with the nickname lines a given
       name is on (Bill and William share one) and a Soundex key (``names.py``); postcodes lose
       their space; address line 1 keeps letters and digits only.
    3. **Exact rules**, which need no model: (a) same family name, given name, date of birth and postcode;
       (b) same UPRN, date of birth and family name, and the same or nickname-equivalent given name.
    4. **Probabilistic linker** (Fellegi-Sunter; ``model.py``) for the rest. Candidate pairs come
       from three blocking rules: same date of birth; same family-name Soundex, given-name initial and birth
       year; same postcode and given-name initial (the last two find pairs whose dates of birth disagree).
       Each pair is compared on five fields, each with levels: given name (exact, nickname or prefix,
       Jaro-Winkler >= 0.92, >= 0.80, other), family name (exact, Jaro-Winkler >= 0.92, >= 0.80, other),
       date of birth (exact, day and month transposed, day or month different, other), sex, and address
       (same UPRN, same address line 1 and postcode, same postcode, same postcode sector, other). Postcode,
       UPRN and address are one comparison because they are not independent evidence. Missing is neutral.

       * ``u`` (how often two *different* persons agree at a level) comes from random pairs of records.
       * ``m`` (how often records of the *same* person agree) is estimated by expectation maximisation on
         the pairs blocked on date of birth, the way splink trains, except for date of birth itself, whose
         ``m`` is fixed from published error rates of administrative data (``model.DOB_M``).
       * Exact agreement on a name or a date of birth is weighted by how common the value is (term
         frequency; the full name has its own frequency): two records of a common name born on one day are
         far weaker evidence than two of a rare name, which is what keeps precision when a family has moved
         and the address disagrees.
       * The prior is the expected number of matches (from the EM posteriors) over all pairs of records.

       A pair links when its match probability is at least ``LinkageSettings.threshold`` (0.9), unless its
       dates of birth or its given names are plainly different ("other"): those never link, because the
       people of one household share family name, address and, for twins, birthday, so the model's
       independence assumption would otherwise let that shared evidence outweigh an unrelated given name.
    5. **Clustering** joins links into persons, strongest first (exact, then by probability), and refuses a
       merge that would chain different people together: two clusters whose dates of birth conflict, or
       two records of one source that are neither identical nor (same date of birth and postcode) linked
       to each other directly at ``same_source_threshold``: a source's own record id is meant to be one per
       person, so two of its records in one person are a duplicate registration or a mistake.
    6. **Stable ids** (``ids.py``): ``register/id_map.parquet`` keeps (source, record_id) ->
       person_id. A cluster holding known records keeps the oldest id among them; when clusters merge, the
       other ids are retired (``register/retired_ids.parquet``, with the id they were merged into); new
       clusters get ids from a counter persisted through the map, handed out in order of each cluster's
       smallest (source, record_id), so ids never depend on the order of input rows.
    7. **Households and families.** A person's identity is the most frequent among their records; their
       current address is that of their most recent record (by extract date, then by ``SOURCE_PRIORITY``).
       The household is the property: same UPRN, else the same normalised address line 1 and postcode, where
       a UPRN missing on the chosen record is looked up from other records at that address. The sources
       record no relationships between people, so the register's family is the household: ``family_id =
       household_id``. (The synthetic generator's truth has finer families, e.g. house sharers or an adult
       child's own family; the benchmark scores the register's households against the true households.)

Why not splink
    splink 5.0.0 (with duckdb 2.0.1) was evaluated on the 1,000,000-person synthetic borough (472,771
    records) on these 2 cores, with a comparable model (name, date of birth, postcode and UPRN comparisons,
    the same three blocking rules, u by random sampling, two EM sessions) and no term-frequency adjustment:
    87 s (68 s training, 17 s predicting, 1 s clustering), 2.4 GiB peak, pairwise precision 0.73 and recall
    0.986 at a 0.9 clustering threshold before any tuning. Its training alone would leave too little of
    the 120 s that linkage and criteria have together (``benchmarks/bench_identification.py``) for the
    criteria engine, and its connected-components clustering has no guard against
    chaining (same-source or date-of-birth conflicts). The same Fellegi-Sunter model here scores the few
    hundred distinct comparison patterns with numpy and does the pairwise work in DuckDB (already a
    dependency): about 15 s at 1,000,000 persons, and no new package.

Nothing here logs, raises or returns a personal value outside the register tables: logs carry counts only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from supporting_families.identify.ids import (
    ID_MAP_SCHEMA,
    RETIRED_SCHEMA,
    RegisterState,
    assign_person_ids,
)
from supporting_families.identify.model import (
    FittedModel,
    LinkageSettings,
    blocked_pairs,
    compare,
    fit,
    near_dates,
    score,
    term_frequencies,
    u_probabilities,
)
from supporting_families.identify.names import nickname_lines, normalise_name, soundex
from supporting_families.progress import Progress
from supporting_families.store.io import read_parquet, write_parquet
from supporting_families.store.layout import register_file
from supporting_families.store.schemas import REGISTER_SCHEMA

__all__ = [
    "IDENTITY_COLUMNS",
    "IDENTITY_SCHEMA",
    "ID_MAP_SCHEMA",
    "LINKS_SCHEMA",
    "RETIRED_SCHEMA",
    "RULE_EXACT",
    "RULE_PROBABILISTIC",
    "RULE_SINGLE",
    "SOURCE_PRIORITY",
    "FittedModel",
    "LinkageSettings",
    "LinkageStats",
    "RegisterResult",
    "RegisterState",
    "build_register",
    "household_id",
    "household_key",
    "identities_from_curated",
    "load_register",
    "load_register_state",
    "save_register",
]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: What the linkage reads: the identity columns of the curated tables (a source may lack some: null).
IDENTITY_SCHEMA: Final = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("extract_date", pa.date32()),
        pa.field("given_name", pa.string()),
        pa.field("family_name", pa.string()),
        pa.field("date_of_birth", pa.date32()),
        pa.field("sex", pa.string()),
        pa.field("address_line_1", pa.string()),
        pa.field("address_line_2", pa.string()),
        pa.field("town", pa.string()),
        pa.field("postcode", pa.string()),
        pa.field("uprn", pa.string()),
    ]
)
IDENTITY_COLUMNS: Final = tuple(IDENTITY_SCHEMA.names)

RULE_EXACT: Final = "exact"
RULE_PROBABILISTIC: Final = "probabilistic"
RULE_SINGLE: Final = "single"

LINKS_SCHEMA: Final = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),  # exact | probabilistic | single
        # The strongest link that attached the record to its person: 1.0 for an exact rule, the model's
        # probability for a probabilistic link, null for a person with one record.
        pa.field("match_probability", pa.float64()),
    ]
)
#: Which record's address is a person's current one when extracts are equally recent. First the sources
#: whose service depends on a current address: the housing system bills the tenancy's rent account at
#: the property; youth participation tracking confirms where a young person lives at least yearly; the
#: school census is refreshed termly. Case systems (social care, early help, domestic abuse, youth
#: justice, ASB) keep the address recorded when the case was opened, so they come last. Sources not listed
#: follow, alphabetically.
SOURCE_PRIORITY: Final = (
    "housing",
    "neet",
    "education_attendance",
    "childrens_centres",
    "childrens_social_care",
    "early_help",
    "domestic_abuse",
    "youth_offending",
    "asb",
)


@dataclass(frozen=True)
class LinkageStats:
    """Counts only: safe to log and to pass through XCom."""

    records: int = 0
    persons: int = 0
    households: int = 0
    candidate_pairs: int = 0
    exact_groups_merged: int = 0
    probabilistic_links: int = 0
    refused_merges: int = 0
    kept_ids: int = 0
    new_ids: int = 0
    retired_ids: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class RegisterResult:
    persons: pa.Table  # REGISTER_SCHEMA
    links: pa.Table  # LINKS_SCHEMA
    state: RegisterState
    stats: LinkageStats
    model: FittedModel | None = field(default=None)


# --- input -------------------------------------------------------------------------------------------


def identities_from_curated(tables: Iterable[pa.Table]) -> pa.Table:
    """The identity columns of curated tables, one table; columns a source lacks are null."""
    parts = []
    for table in tables:
        columns = []
        for f in IDENTITY_SCHEMA:
            if f.name in table.column_names:
                columns.append(table.column(f.name).cast(f.type))
            else:
                columns.append(pa.nulls(table.num_rows, f.type))
        parts.append(pa.Table.from_arrays(columns, schema=IDENTITY_SCHEMA))
    if not parts:
        return IDENTITY_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def _records(con: duckdb.DuckDBPyConnection, identities: pa.Table) -> pa.Table:
    """One row per (source, record_id): the latest extract's identity, in (source, record_id) order."""
    con.register("identities_in", identities_from_curated([identities]))
    # Ties within one extract are broken on the values themselves, so the choice is order-independent.
    return _arrow(
        con.sql(
            """
            SELECT * FROM identities_in
            QUALIFY row_number() OVER (
                PARTITION BY source, record_id
                ORDER BY extract_date DESC NULLS LAST, given_name, family_name, date_of_birth, sex,
                         address_line_1, address_line_2, town, postcode, uprn
            ) = 1
            ORDER BY source, record_id
            """
        )
    )


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    result: Any = relation.arrow()
    table: pa.Table = result.read_all() if hasattr(result, "read_all") else result
    return table


def _map_distinct(values: Any, fn: Callable[[str], str | None]) -> pa.Array:
    """Apply ``fn`` to each distinct non-null value (names repeat: thousands of values, not millions)."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    uniques = pc.unique(values.drop_null())
    mapped = pa.array([fn(v) for v in uniques.to_pylist()], pa.string())
    result: pa.Array = mapped.take(pc.index_in(values, value_set=uniques))
    return result


def _nickname_lines(gn: pa.Array) -> pa.Array:
    """Per record, the nickname lines its given name is on (null when on none)."""
    lines = nickname_lines()
    uniques = pc.unique(gn.drop_null())
    mapped = pa.array([lines.get(v) for v in uniques.to_pylist()], pa.list_(pa.int32()))
    result: pa.Array = mapped.take(pc.index_in(gn, value_set=uniques))
    return result


def _non_empty(value: str) -> str | None:
    return value or None


def _keys(records: pa.Table) -> pa.Table:
    """The comparison keys of each record (``rid`` is its row in ``records``)."""
    gn = _map_distinct(records.column("given_name"), lambda v: _non_empty(normalise_name(v)))
    fn = _map_distinct(records.column("family_name"), lambda v: _non_empty(normalise_name(v)))
    postcode = pc.utf8_upper(
        pc.replace_substring_regex(records.column("postcode"), pattern=r"[^0-9A-Za-z]", replacement="")
    )
    address = pc.utf8_trim_whitespace(
        pc.replace_substring_regex(
            pc.utf8_upper(records.column("address_line_1")), pattern=r"[^0-9A-Z]+", replacement=" "
        )
    )
    dob = records.column("date_of_birth")
    return pa.table(
        {
            "rid": pa.array(np.arange(records.num_rows, dtype=np.int64)),
            "source": records.column("source"),
            "gn": gn,
            "gl": _nickname_lines(gn),
            "gi": pc.utf8_slice_codeunits(gn, 0, 1),
            "fn": fn,
            "fs": _map_distinct(fn, soundex),
            "dob": dob,
            "y": pc.year(dob),
            "m": pc.month(dob),
            "d": pc.day(dob),
            "sex": records.column("sex"),
            "pc": pc.if_else(pc.equal(postcode, ""), pa.nulls(records.num_rows, pa.string()), postcode),
            "sector": pc.utf8_slice_codeunits(postcode, 0, -2),
            "addr": pc.if_else(pc.equal(address, ""), pa.nulls(records.num_rows, pa.string()), address),
            "uprn": records.column("uprn"),
        }
    )


# --- clustering ------------------------------------------------------------------------------------------


def _exact_groups(keys: pa.Table) -> IntArray:
    """Group of each record under exact rule (a): same family name, given name, date of birth and postcode."""
    cols = [keys.column(c) for c in ("fn", "gn", "dob", "pc")]
    valid = np.ones(keys.num_rows, dtype=np.bool_)
    for col in cols:
        valid &= np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=np.bool_)
    joined = pc.binary_join_element_wise(
        *[pc.cast(c, pa.string()) for c in cols], "\x1f", null_handling="replace", null_replacement=""
    )
    codes = np.asarray(
        pc.dictionary_encode(joined).combine_chunks().indices.to_numpy(zero_copy_only=False), dtype=np.int64
    )
    singles = np.arange(keys.num_rows, dtype=np.int64) + int(codes.max(initial=0)) + 1
    raw = np.where(valid, codes, singles)
    # Number groups by their first record, so group numbers do not depend on dictionary order.
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    out: IntArray = rank[inverse]
    return out


@dataclass
class _Cluster:
    """What the merge guards need to know about a cluster of exact groups."""

    dobs: set[tuple[int, int, int]]
    #: per source, the cluster's exact groups from that source
    by_source: dict[str, list[int]]


@dataclass(frozen=True)
class _Guard:
    """Refuses merges that would chain different people together (see the module docstring, step 5)."""

    #: per exact group: (date of birth, family name, nickname group, postcode)
    identity: dict[int, tuple[Any, ...]]
    direct: set[tuple[int, int]]  # exact-group pairs linked directly, strongly enough to share a source

    def compatible(self, x: _Cluster, y: _Cluster) -> bool:
        for a in x.dobs:
            for b in y.dobs:
                if not near_dates(a, b):
                    return False
        small, large = (x, y) if len(x.by_source) <= len(y.by_source) else (y, x)
        for source, groups in small.by_source.items():
            for g in groups:
                for h in large.by_source.get(source, ()):
                    if not self._same_source_ok(g, h):
                        return False
        return True

    def _same_source_ok(self, g: int, h: int) -> bool:
        # One source's two records are one person only if they are identical (a duplicate registration), or
        # share date of birth and postcode and are linked directly and strongly (a duplicate with a slip in
        # a name). Anything else is two people the source itself keeps apart.
        a, b = self.identity[g], self.identity[h]
        if a == b:
            return True
        return a[0] == b[0] and a[3] == b[3] and (min(g, h), max(g, h)) in self.direct


@dataclass(frozen=True)
class _Clustering:
    cluster: IntArray  # per record: index of its cluster's first record
    best_probability: FloatArray  # per record: strongest accepted link touching its exact group (nan: none)
    best_exact: npt.NDArray[np.bool_]  # per record: attached by an exact rule
    refused: int
    probabilistic_links: int
    exact_groups_merged: int


def _cluster(keys: pa.Table, scored: pa.Table, settings: LinkageSettings) -> _Clustering:
    """Join exact groups along accepted links, strongest first, under the merge guards."""
    n = keys.num_rows
    group = _exact_groups(keys)
    n_groups = int(group.max(initial=-1)) + 1
    group_size = np.bincount(group, minlength=n_groups)

    a = np.asarray(scored.column("a").to_numpy(), dtype=np.int64)
    b = np.asarray(scored.column("b").to_numpy(), dtype=np.int64)
    p = np.asarray(scored.column("p").to_numpy(zero_copy_only=False), dtype=np.float64)
    exact = np.asarray(scored.column("exact_uprn").to_numpy(zero_copy_only=False), dtype=np.bool_)
    ga, gb = group[a], group[b]
    take = ga != gb  # score() returned only pairs that may link
    ga, gb, p_take, exact_take = ga[take], gb[take], p[take], exact[take]

    # Only the exact groups that some link touches need the guards' facts (a few percent of them).
    involved = np.unique(np.concatenate([ga, gb]))
    rows = np.flatnonzero(np.isin(group, involved))
    src = keys.column("source").take(pa.array(rows)).to_pylist()
    fn = keys.column("fn").take(pa.array(rows)).to_pylist()
    gn = keys.column("gn").take(pa.array(rows)).to_pylist()
    pcs = keys.column("pc").take(pa.array(rows)).to_pylist()
    ys, ms, ds = (keys.column(c).take(pa.array(rows)).to_pylist() for c in ("y", "m", "d"))
    identity: dict[int, tuple[Any, ...]] = {}
    clusters: dict[int, _Cluster] = {}
    for i, r in enumerate(rows.tolist()):
        g = int(group[r])
        if g not in clusters:
            dob = (ys[i], ms[i], ds[i])
            identity[g] = (dob, fn[i], gn[i], pcs[i])
            clusters[g] = _Cluster({dob} if dob[0] is not None else set(), {})
        members = clusters[g].by_source.setdefault(src[i], [])
        if g not in members:
            members.append(g)
    strong = exact_take | (p_take >= settings.same_source_threshold)
    guard = _Guard(
        identity,
        set(zip(np.minimum(ga, gb)[strong].tolist(), np.maximum(ga, gb)[strong].tolist(), strict=True)),
    )

    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    best_p = np.full(n_groups, np.nan)
    best_exact = group_size > 1
    refused = prob_links = exact_merged = 0
    order = np.lexsort((gb, ga, -np.where(exact_take, 2.0, p_take))).tolist()
    progress = Progress(log, "linkage: candidate pairs", len(order), unit="pairs")
    for k, i in enumerate(order):
        if not k & 0xFFFF:  # the clock is read once per 65,536 pairs: this loop is the hot one
            progress.advance(k - progress.done)
        x, y = int(ga[i]), int(gb[i])
        rx, ry = find(x), find(y)
        if rx != ry:
            cx, cy = clusters[rx], clusters[ry]
            if not guard.compatible(cx, cy):
                refused += 1
                continue
            if len(cx.by_source) < len(cy.by_source):
                rx, ry, cx, cy = ry, rx, cy, cx
            parent[ry] = rx
            cx.dobs |= cy.dobs
            for source, groups in cy.by_source.items():
                cx.by_source.setdefault(source, []).extend(groups)
            del clusters[ry]
            if exact_take[i]:
                exact_merged += 1
            else:
                prob_links += 1
        for g in (x, y):
            if exact_take[i]:
                best_exact[g] = True
            elif not best_exact[g]:
                best_p[g] = p_take[i] if np.isnan(best_p[g]) else max(best_p[g], p_take[i])
    progress.advance(len(order) - progress.done)
    progress.finish()

    roots = np.arange(n_groups, dtype=np.int64)
    for g in involved.tolist():
        roots[g] = find(g)
    root_of_record = roots[group]
    # Name each cluster by its first record, so that numbering follows (source, record_id) order.
    first_record = np.full(n_groups, n, dtype=np.int64)
    np.minimum.at(first_record, root_of_record, np.arange(n, dtype=np.int64))
    return _Clustering(
        cluster=first_record[root_of_record],
        best_probability=best_p[group],
        best_exact=best_exact[group],
        refused=refused,
        probabilistic_links=prob_links,
        exact_groups_merged=exact_merged,
    )


# --- persons and households -------------------------------------------------------------------------------


def _priority(sources: pa.Array | pa.ChunkedArray) -> pa.Array:
    index = pc.index_in(sources, value_set=pa.array(list(SOURCE_PRIORITY), pa.string()))
    result: pa.Array = pc.fill_null(index, len(SOURCE_PRIORITY))
    return result


def household_key(uprn: str | None, address_key: str | None) -> str | None:
    """The property a person lives at: their UPRN, else their normalised address line 1 and postcode."""
    if uprn:
        return f"uprn:{uprn}"
    if address_key:
        return f"address:{address_key}"
    return None


def household_id(key: str) -> str:
    """A stable household id: the same property gives the same id in every run.

    A digest of the property key. It is an internal id (``register.INTERNAL_ID_FIELDS``): it never leaves
    the council, whose partners receive per-agreement keyed references instead.
    """
    return "H" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _persons(
    con: duckdb.DuckDBPyConnection, records: pa.Table, keys: pa.Table, person_id: list[str]
) -> pa.Table:
    """One row per person (REGISTER_SCHEMA): identity by majority of records, address of the latest."""
    con.register(
        "linked",
        records.append_column("person_id", pa.array(person_id, pa.string()))
        .append_column("priority", _priority(records.column("source")))
        .append_column("addr_key", pc.binary_join_element_wise(keys.column("addr"), keys.column("pc"), "|")),
    )
    table = _arrow(
        con.sql(
            """
            WITH
            -- A UPRN missing on a record is looked up from other records at the same address.
            address_uprn AS (
                SELECT addr_key, arg_max(uprn, n) AS uprn FROM (
                    SELECT addr_key, uprn, count(*) AS n FROM linked
                    WHERE addr_key IS NOT NULL AND uprn IS NOT NULL GROUP BY ALL)
                GROUP BY addr_key
            ),
            address_extra AS (
                SELECT addr_key, arg_max(address_line_2, n) AS address_line_2, arg_max(town, n) AS town FROM (
                    SELECT addr_key, address_line_2, town, count(*) AS n FROM linked
                    WHERE addr_key IS NOT NULL AND (address_line_2 IS NOT NULL OR town IS NOT NULL)
                    GROUP BY ALL)
                GROUP BY addr_key
            ),
            current_address AS (
                SELECT person_id, address_line_1, address_line_2, town, postcode, uprn, addr_key FROM linked
                QUALIFY row_number() OVER (
                    PARTITION BY person_id
                    ORDER BY extract_date DESC NULLS LAST,
                             (address_line_1 IS NULL AND postcode IS NULL AND uprn IS NULL),
                             priority, source, record_id) = 1
            ),
            names AS (
                SELECT person_id, given_name, family_name FROM (
                    SELECT person_id, given_name, family_name, count(*) AS n,
                           max(extract_date) AS latest, min(priority) AS best
                    FROM linked WHERE given_name IS NOT NULL OR family_name IS NOT NULL GROUP BY ALL)
                QUALIFY row_number() OVER (
                    PARTITION BY person_id
                    ORDER BY n DESC, latest DESC NULLS LAST, best, given_name, family_name) = 1
            ),
            births AS (
                SELECT person_id, date_of_birth FROM (
                    SELECT person_id, date_of_birth, count(*) AS n FROM linked
                    WHERE date_of_birth IS NOT NULL GROUP BY ALL)
                QUALIFY row_number() OVER (PARTITION BY person_id ORDER BY n DESC, date_of_birth) = 1
            ),
            sexes AS (
                SELECT person_id, sex FROM (
                    SELECT person_id, sex, count(*) AS n FROM linked WHERE sex IS NOT NULL GROUP BY ALL)
                QUALIFY row_number() OVER (PARTITION BY person_id ORDER BY n DESC, sex) = 1
            )
            SELECT c.person_id, n.given_name, n.family_name, b.date_of_birth, s.sex,
                   c.address_line_1,
                   coalesce(c.address_line_2, e.address_line_2) AS address_line_2,
                   coalesce(c.town, e.town) AS town,
                   c.postcode,
                   coalesce(c.uprn, u.uprn) AS uprn,
                   c.addr_key
            FROM current_address c
            LEFT JOIN names n USING (person_id)
            LEFT JOIN births b USING (person_id)
            LEFT JOIN sexes s USING (person_id)
            LEFT JOIN address_uprn u ON u.addr_key = c.addr_key
            LEFT JOIN address_extra e ON e.addr_key = c.addr_key
            ORDER BY c.person_id
            """
        )
    )
    keys_hh = [
        household_key(u, a) or f"person:{p}"
        for u, a, p in zip(
            table.column("uprn").to_pylist(),
            table.column("addr_key").to_pylist(),
            table.column("person_id").to_pylist(),
            strict=True,
        )
    ]
    hh_ids = {k: household_id(k) for k in set(keys_hh)}
    hh = pa.array([hh_ids[k] for k in keys_hh], pa.string())
    columns = {
        "person_id": table.column("person_id"),
        "household_id": hh,
        "family_id": hh,  # the sources record no relationships: the family is the household
    }
    for f in REGISTER_SCHEMA:
        if f.name not in columns:
            columns[f.name] = table.column(f.name).cast(f.type)
    return pa.Table.from_pydict(columns, schema=REGISTER_SCHEMA)


# --- the register ----------------------------------------------------------------------------------------


def _links(records: pa.Table, person_id: list[str], clustering: _Clustering) -> pa.Table:
    cluster = clustering.cluster
    size = np.bincount(cluster, minlength=len(cluster))[cluster]
    single = size == 1
    exact = clustering.best_exact & ~single
    rule = np.where(single, RULE_SINGLE, np.where(exact, RULE_EXACT, RULE_PROBABILISTIC))
    prob = np.where(exact, 1.0, clustering.best_probability)
    prob_mask = single | np.isnan(prob)
    return pa.Table.from_pydict(
        {
            "source": records.column("source"),
            "record_id": records.column("record_id"),
            "person_id": pa.array(person_id, pa.string()),
            "rule": pa.array(rule.tolist(), pa.string()),
            "match_probability": pa.array(np.where(prob_mask, 0.0, prob), mask=prob_mask),
        },
        schema=LINKS_SCHEMA,
    )


def build_register(
    identities: pa.Table,
    previous: RegisterState | None = None,
    settings: LinkageSettings | None = None,
) -> RegisterResult:
    """Link records to persons, keep ids stable against ``previous``, and group persons into households.

    ``identities`` has ``IDENTITY_COLUMNS`` (:func:`identities_from_curated` builds it from curated tables).
    """
    settings = settings or LinkageSettings()
    con = duckdb.connect()
    try:
        records = _records(con, identities)
        n = records.num_rows
        if n == 0:
            state = previous or RegisterState.empty()
            return RegisterResult(
                REGISTER_SCHEMA.empty_table(), LINKS_SCHEMA.empty_table(), state, LinkageStats()
            )
        keys = _keys(records)
        con.register("keys_in", keys)
        con.execute("CREATE OR REPLACE TEMP TABLE keys AS SELECT * FROM keys_in")
        con.unregister("keys_in")
        term_frequencies(con)
        n_pairs = blocked_pairs(con, settings)
        u = u_probabilities(con, settings, n)
        compare(con, u, settings)
        model = fit(con, u, settings, n)
        scored = score(con, model, settings.threshold)
        clustering = _cluster(keys, scored, settings)
        ids = assign_person_ids(
            records.column("source").to_pylist(),
            records.column("record_id").to_pylist(),
            clustering.cluster.tolist(),
            previous,
        )
        persons = _persons(con, records, keys, ids.person_id)
        links = _links(records, ids.person_id, clustering)
    finally:
        con.close()
    stats = LinkageStats(
        records=n,
        persons=persons.num_rows,
        households=len(pc.unique(persons.column("household_id"))),
        candidate_pairs=n_pairs,
        exact_groups_merged=clustering.exact_groups_merged,
        probabilistic_links=clustering.probabilistic_links,
        refused_merges=clustering.refused,
        kept_ids=ids.kept,
        new_ids=ids.new,
        retired_ids=ids.retired,
    )
    log.info(
        "register: %d records -> %d persons in %d households; %d candidate pairs, %d probabilistic links, "
        "%d merges refused; ids kept %d, new %d, retired %d",
        stats.records,
        stats.persons,
        stats.households,
        stats.candidate_pairs,
        stats.probabilistic_links,
        stats.refused_merges,
        stats.kept_ids,
        stats.new_ids,
        stats.retired_ids,
    )
    return RegisterResult(persons, links, ids.state, stats, model)


# --- the store -------------------------------------------------------------------------------------------


def load_register_state(root: UPath) -> RegisterState | None:
    """The id map and retired ids under ``<root>/register/``, or None on the first run."""
    id_map_path = register_file(root, "id_map")
    if not id_map_path.exists():
        return None
    retired_path = register_file(root, "retired")
    retired = read_parquet(retired_path) if retired_path.exists() else RETIRED_SCHEMA.empty_table()
    return RegisterState(read_parquet(id_map_path).cast(ID_MAP_SCHEMA), retired.cast(RETIRED_SCHEMA))


def load_register(root: UPath) -> tuple[pa.Table, pa.Table]:
    """(persons, links) as last saved."""
    return (
        read_parquet(register_file(root, "persons")).cast(REGISTER_SCHEMA),
        read_parquet(register_file(root, "links")).cast(LINKS_SCHEMA),
    )


def save_register(result: RegisterResult, root: UPath) -> dict[str, str]:
    """Write persons, links, id map and retired ids under ``<root>/register/``; returns their paths.

    Each file is replaced whole (``store.io.write_parquet``). The id map is written last, so that a run that
    fails half-way leaves the previous map, and the next run reproduces the same ids.
    """
    tables = {
        "persons": result.persons,
        "links": result.links,
        "retired": result.state.retired,
        "id_map": result.state.id_map,
    }
    paths = {}
    for name, table in tables.items():
        path = register_file(root, name)
        write_parquet(table, path)
        paths[name] = str(path)
    log.info("saved the register: %d persons, %d links", result.persons.num_rows, result.links.num_rows)
    return paths
