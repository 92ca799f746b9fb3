"""Who lives in the borough: households at addresses, families within households, persons within families.

Everything is built as whole-population numpy arrays (one element per person, household, family or property);
there is no Python loop over persons. Persons are stored household by household and, within a household,
family by family, so each family is a contiguous slice ``[fam_start, fam_start + fam_size)``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sf_demo.synthetic.dates import DateArray, add_years, ages_on, minus_years, np_day
from sf_demo.synthetic.dirt import MAX_MOVED, DirtConfig
from sf_demo.synthetic.names import POSTCODE_DISTRICTS, STREETS
from sf_demo.synthetic.vocab import vocabularies

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ROLE_NAMES = ("parent", "adult", "child")
ROLE_PARENT, ROLE_ADULT, ROLE_CHILD = 0, 1, 2

#: Postcode unit letters: the inward code's last two characters never use C, I, K, M, O or V.
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

# Household types and their shares. Inner London has many one-person households and house shares; families
# with children are about a quarter of households. Types 4, 5 and 7 hold two families (an adult child living
# with parents, three generations), type 6 holds unrelated sharers who are each a family of one.
_TYPE_SHARES = np.array([0.36, 0.22, 0.17, 0.08, 0.05, 0.03, 0.07, 0.02])
(
    SINGLE,
    COUPLE,
    COUPLE_KIDS,
    LONE_PARENT,
    COUPLE_ADULT_CHILD,
    THREE_GENERATIONS,
    HOUSE_SHARE,
    LONE_PARENT_ADULT_CHILD,
) = range(8)

# Share of families in each risk tier (low, some needs, complex needs): the latent variable that makes
# problems cluster in the same families, as they do in the programme's own evaluation.
_TIERS_WITH_CHILDREN = np.array([0.77, 0.15, 0.08])
_TIERS_WITHOUT_CHILDREN = np.array([0.88, 0.09, 0.03])


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per component: changing one part leaves the others alone."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("ascii"))])


@dataclass(frozen=True)
class Properties:
    """Addressable properties (houses and flats), each with a unique 12-digit UPRN."""

    address_line_1: Any
    address_line_2: Any
    town: Any
    postcode: Any
    uprn: Any

    def __len__(self) -> int:
        return len(self.uprn)


@dataclass(frozen=True)
class Population:
    as_of: date
    # per person
    household: IntArray
    family: IntArray
    role: npt.NDArray[np.int8]
    female: BoolArray
    dob: DateArray
    age: IntArray
    given: IntArray
    surname: IntArray
    # per family
    fam_start: IntArray
    fam_size: IntArray
    fam_household: IntArray
    fam_tier: npt.NDArray[np.int8]
    fam_n_children: IntArray
    # per household
    hh_start: IntArray
    hh_fam1_adults: IntArray
    hh_property: IntArray
    hh_prev_property: IntArray
    hh_move_date: DateArray
    properties: Properties
    #: persons whose date of birth was set to a NEET age boundary (turning 16 or 25 on or just after as_of)
    neet_boundary: IntArray

    @property
    def n(self) -> int:
        return len(self.household)

    @property
    def n_families(self) -> int:
        return len(self.fam_start)

    @property
    def n_households(self) -> int:
        return len(self.hh_start)

    @property
    def tier(self) -> npt.NDArray[np.int8]:
        out: npt.NDArray[np.int8] = self.fam_tier[self.family]
        return out

    def person_property(self) -> IntArray:
        out: IntArray = self.hh_property[self.household]
        return out


def _choice(rng: np.random.Generator, values: list[int], p: list[float], size: int) -> IntArray:
    return np.asarray(values, dtype=np.int64)[rng.choice(len(values), size=size, p=p)]


def _compositions(rng: np.random.Generator, n_persons: int) -> dict[str, IntArray]:
    """Household types and member counts, drawn until they hold at least ``n_persons``."""
    est = max(16, int(n_persons / 2.0) + 64)
    while True:
        htype = rng.choice(8, size=est, p=_TYPE_SHARES).astype(np.int64)
        u = rng.random((3, est))
        a1 = np.where(np.isin(htype, [COUPLE, COUPLE_KIDS, COUPLE_ADULT_CHILD]), 2, 1)
        a1 = np.where(htype == THREE_GENERATIONS, 1 + (u[0] < 0.6), a1)
        c1 = np.zeros(est, dtype=np.int64)
        c1 = np.where(
            htype == COUPLE_KIDS, _choice(rng, [1, 2, 3, 4, 5], [0.4, 0.38, 0.15, 0.05, 0.02], est), c1
        )
        c1 = np.where(htype == LONE_PARENT, _choice(rng, [1, 2, 3, 4], [0.5, 0.33, 0.12, 0.05], est), c1)
        c1 = np.where(htype == COUPLE_ADULT_CHILD, _choice(rng, [0, 1, 2], [0.5, 0.3, 0.2], est), c1)
        c1 = np.where(htype == LONE_PARENT_ADULT_CHILD, _choice(rng, [0, 1], [0.5, 0.5], est), c1)
        a2 = np.where(np.isin(htype, [COUPLE_ADULT_CHILD, LONE_PARENT_ADULT_CHILD]), 1, 0)
        a2 = np.where(htype == THREE_GENERATIONS, 1 + (u[1] < 0.45), a2)
        c2 = np.where(htype == THREE_GENERATIONS, _choice(rng, [1, 2, 3], [0.5, 0.35, 0.15], est), 0)
        s = np.where(htype == HOUSE_SHARE, _choice(rng, [1, 2, 3], [0.5, 0.35, 0.15], est), 0)
        size = a1 + c1 + a2 + c2 + s
        cum = np.cumsum(size)
        if cum[-1] >= n_persons:
            break
        est *= 2
    k = int(np.searchsorted(cum, n_persons, side="left")) + 1
    return {
        "htype": htype[:k],
        "a1": a1[:k],
        "c1": c1[:k],
        "a2": a2[:k],
        "c2": c2[:k],
        "s": s[:k],
        "size": size[:k],
    }


def _adult_ages(rng: np.random.Generator, size: int, low: int) -> IntArray:
    # Adults in inner London skew young: many in their twenties and thirties, a long tail to the nineties.
    band = rng.random(size)
    young = rng.integers(low, 40, size)
    middle = rng.integers(40, 65, size)
    old = rng.integers(65, 96, size)
    return np.where(band < 0.45, young, np.where(band < 0.8, middle, old)).astype(np.int64)


def _dates_of_birth(rng: np.random.Generator, age: IntArray, as_of: date) -> DateArray:
    """A birth date giving exactly ``age`` completed years on ``as_of``."""
    # The birthday before as_of is at most 364 days back, so any of these days gives the same completed age.
    last_birthday = add_years(np.full(len(age), np_day(as_of)), -age)
    out: DateArray = last_birthday - rng.integers(0, 365, len(age)).astype("timedelta64[D]")
    return out


def _properties(rng: np.random.Generator, n_props: int) -> Properties:
    """Buildings on streets, flats in buildings, postcodes along streets, UPRNs in street order."""
    kinds_p = [0.35, 0.45, 0.20]  # house, converted house, purpose-built block
    nb = max(8, int(n_props / 6.0) + 16)
    while True:
        kind = rng.choice(3, size=nb, p=kinds_p)
        units = np.where(kind == 0, 1, np.where(kind == 1, rng.integers(2, 7, nb), rng.integers(8, 41, nb)))
        cum = np.cumsum(units)
        if cum[-1] >= n_props:
            break
        nb *= 2
    nb = int(np.searchsorted(cum, n_props, side="left")) + 1
    kind, units = kind[:nb], units[:nb]
    lettered = (kind == 1) & (rng.random(nb) < 0.4)  # "Flat A" in converted houses

    n_streets = int(np.clip(nb // 25, 30, len(STREETS)))
    weights = rng.lognormal(0.0, 0.6, n_streets)
    street = rng.choice(n_streets, size=nb, p=weights / weights.sum())
    order = np.lexsort((np.arange(nb), street))
    first_of_street = np.searchsorted(street[order], street[order], side="left")
    number = np.empty(nb, dtype=np.int64)
    number[order] = np.arange(nb) - first_of_street + 1

    building = np.repeat(np.arange(nb), units)[:n_props]
    unit_no = np.arange(len(building)) - (np.cumsum(units) - units)[building] + 1
    is_house = kind[building] == 0
    label = np.where(is_house, 0, np.where(lettered[building], 40 + unit_no, unit_no))
    labels = pa.array(
        [""] + [f"Flat {i}" for i in range(1, 41)] + [f"Flat {c}" for c in "ABCDEF"], pa.string()
    )

    p_street = street[building]
    p_order = np.lexsort((unit_no, number[building], p_street))
    # UPRNs are allocated roughly in street order, with gaps (demolitions, non-residential units).
    uprn_int = np.empty(len(building), dtype=np.int64)
    uprn_int[p_order] = 217_000_000 + np.cumsum(rng.integers(1, 12, len(building)))
    rank_in_street = np.empty(len(building), dtype=np.int64)
    first = np.searchsorted(p_street[p_order], p_street[p_order], side="left")
    rank_in_street[p_order] = np.arange(len(building)) - first

    districts = list(POSTCODE_DISTRICTS)
    street_names = pa.array([name for name, _ in STREETS[:n_streets]], pa.string())
    street_district = np.array([districts.index(d) for _, d in STREETS[:n_streets]], dtype=np.int64)
    street_sector = np.array(
        [
            POSTCODE_DISTRICTS[districts[d]][1][rng.integers(len(POSTCODE_DISTRICTS[districts[d]][1]))]
            for d in street_district
        ],
        dtype=np.int64,
    )
    # About fifteen addresses share a postcode unit; a stride coprime to 400 keeps a street's units distinct.
    unit_k = rank_in_street // 15
    code = (p_street * 7919 + unit_k * 131 + street_sector[p_street] * 17) % 400
    pairs = pa.array([a + b for a in UNIT_LETTERS for b in UNIT_LETTERS], pa.string())

    num_text = pc.cast(pa.array(number[building]), pa.string())
    house_line = pc.binary_join_element_wise(num_text, street_names.take(pa.array(p_street)), " ")
    flat_line = pc.binary_join_element_wise(labels.take(pa.array(label)), house_line, ", ")
    line1 = pc.if_else(pa.array(is_house), house_line, flat_line)
    localities = pa.array([POSTCODE_DISTRICTS[d][0] for d in districts], pa.string())
    district_names = pa.array(districts, pa.string())
    pd = street_district[p_street]
    inward = pc.binary_join_element_wise(
        pc.cast(pa.array(street_sector[p_street]), pa.string()), pairs.take(pa.array(code)), ""
    )
    postcode = pc.binary_join_element_wise(district_names.take(pa.array(pd)), inward, " ")
    uprn = pc.utf8_lpad(pc.cast(pa.array(uprn_int), pa.string()), width=12, padding="0")
    return Properties(
        line1,
        localities.take(pa.array(pd)),
        pa.array(["London"] * len(building), pa.string()),
        postcode,
        uprn,
    )


def build_population(n_persons: int, seed: int, as_of: date, dirt: DirtConfig) -> Population:
    if n_persons < 1:
        raise ValueError("n_persons must be at least 1")
    rng = stream(seed, "households")
    comp = _compositions(rng, n_persons)
    htype, a1, c1, a2, c2, s = (comp[k] for k in ("htype", "a1", "c1", "a2", "c2", "s"))
    n_hh = len(htype)
    starts = np.cumsum(comp["size"]) - comp["size"]
    h = np.repeat(np.arange(n_hh), comp["size"])[:n_persons]
    pos = np.arange(n_persons) - starts[h]
    b1, b2 = a1[h], a1[h] + c1[h]
    b3, b4 = b2 + a2[h], b2 + a2[h] + c2[h]
    seg = np.select([pos < b1, pos < b2, pos < b3, pos < b4], [0, 1, 2, 3], 4)
    seg_start = np.select([seg == 0, seg == 1, seg == 2, seg == 3], [0, b1, b2, b3], b4)
    rank = pos - seg_start

    # Families: the first family, the second family (adult child or middle generation), then each sharer.
    n_fam_hh = 1 + (a2 > 0) + s
    fam_local = np.select([seg <= 1, seg <= 3], [0, 1], (a2[h] > 0) + 1 + rank)
    fam_raw = (np.cumsum(n_fam_hh) - n_fam_hh)[h] + fam_local
    family = np.concatenate([[0], np.cumsum(np.diff(fam_raw) != 0)]).astype(np.int64)
    n_fam = int(family[-1]) + 1

    # Ages, per household first so that parents are old enough for their children.
    ra = stream(seed, "ages")
    e1 = ra.integers(0, 18, n_hh)
    gap1 = ra.integers(1, 4, n_hh)
    ac = ra.integers(18, 33, n_hh)
    e2 = ra.integers(0, 15, n_hh)
    gap2 = ra.integers(1, 4, n_hh)
    p2 = e2 + ra.integers(18, 37, n_hh)
    with_adult_child = np.isin(htype, [COUPLE_ADULT_CHILD, LONE_PARENT_ADULT_CHILD])
    e1 = np.where(with_adult_child, np.clip(ac - ra.integers(2, 12, n_hh), 0, 17), e1)
    age_a = np.select(
        [
            htype == SINGLE,
            htype == COUPLE,
            np.isin(htype, [COUPLE_KIDS, LONE_PARENT]),
            with_adult_child,
            htype == THREE_GENERATIONS,
        ],
        [
            _adult_ages(ra, n_hh, 18),
            _adult_ages(ra, n_hh, 20),
            np.minimum(e1 + ra.integers(19, 43, n_hh), 62),
            ac + ra.integers(20, 39, n_hh),
            p2 + ra.integers(19, 35, n_hh),
        ],
        ra.integers(19, 46, n_hh),
    )
    floor_b = np.select(
        [c1 > 0, with_adult_child, htype == THREE_GENERATIONS], [e1 + 17, ac + 17, p2 + 17], 18
    )
    age_b = np.maximum(np.maximum(age_a + ra.integers(-5, 8, n_hh), floor_b), 18)
    f2_b = np.maximum(p2 + ra.integers(-4, 7, n_hh), np.maximum(e2 + 17, 18))
    f2_a = np.where(with_adult_child, ac, p2)
    sharer = ra.integers(19, 46, n_persons)
    age = np.select(
        [seg == 0, seg == 1, seg == 2, seg == 3],
        [
            np.where(rank == 0, age_a[h], age_b[h]),
            np.maximum(e1[h] - rank * gap1[h], 0),
            np.where(rank == 0, f2_a[h], f2_b[h]),
            np.maximum(e2[h] - rank * gap2[h], 0),
        ],
        sharer,
    ).astype(np.int64)
    dob = _dates_of_birth(ra, age, as_of)

    # Sex: lone parents are mostly mothers; most couples are of opposite sex.
    rs = stream(seed, "sex")
    lone = np.isin(htype, [LONE_PARENT, LONE_PARENT_ADULT_CHILD]) | ((htype == THREE_GENERATIONS) & (a2 == 1))
    first_female = rs.random(n_persons) < np.where(
        (seg == 0) & lone[h] & (c1[h] + a2[h] > 0),
        0.88,
        np.where((seg == 2) & (htype[h] == THREE_GENERATIONS) & (a2[h] == 1), 0.88, 0.5),
    )
    first_female = np.where(seg == 1, rs.random(n_persons) < 0.49, first_female)
    first_female = np.where(seg == 3, rs.random(n_persons) < 0.49, first_female)
    partner = ((seg == 0) | (seg == 2)) & (rank == 1)
    # The partner's sex follows the first adult of the same family (the person just before them).
    prev = np.maximum(np.arange(n_persons) - 1, 0)
    female = np.where(
        partner, np.where(rs.random(n_persons) < 0.96, ~first_female[prev], first_female[prev]), first_female
    ).astype(np.bool_)

    # Names follow the family's naming tradition; partners sometimes keep their own surname.
    vocab = vocabularies()
    rn = stream(seed, "names")
    n_trad = len(vocab.tradition_cumulative)

    def draw_tradition(size: int) -> IntArray:
        return np.minimum(
            np.searchsorted(vocab.tradition_cumulative, rn.random(size), side="right"), n_trad - 1
        )

    hh_trad = draw_tradition(n_hh)
    trad = hh_trad[h]
    trad = np.where(partner & (rn.random(n_persons) >= 0.85), draw_tradition(n_persons), trad)
    trad = np.where(seg == 4, draw_tradition(n_persons), trad)
    hh_surname = np.empty(n_hh, dtype=np.int64)
    own_surname = np.empty(n_persons, dtype=np.int64)
    given = np.empty(n_persons, dtype=np.int64)
    for t in range(n_trad):
        m = hh_trad == t
        hh_surname[m] = vocab.surname_samplers[t].draw(rn, int(m.sum()))
        m = trad == t
        own_surname[m] = vocab.surname_samplers[t].draw(rn, int(m.sum()))
        for sex_i, sex_mask in ((0, female), (1, ~female)):
            mm = m & sex_mask
            given[mm] = vocab.given_samplers[t][sex_i].draw(rn, int(mm.sum()))
    surname = np.where((partner & (rn.random(n_persons) < 0.25)) | (seg == 4), own_surname, hh_surname[h])

    # Roles and family facts.
    is_child = (seg == 1) | (seg == 3)
    fam_start = np.searchsorted(family, np.arange(n_fam), side="left").astype(np.int64)
    fam_size = np.bincount(family, minlength=n_fam).astype(np.int64)
    fam_household = h[fam_start]
    fam_children = np.bincount(family, weights=is_child, minlength=n_fam).astype(np.int64)
    role = np.where(is_child, ROLE_CHILD, np.where(fam_children[family] > 0, ROLE_PARENT, ROLE_ADULT))

    rt = stream(seed, "tiers")
    u = rt.random(n_fam)
    cum_with = np.cumsum(_TIERS_WITH_CHILDREN)
    cum_without = np.cumsum(_TIERS_WITHOUT_CHILDREN)
    fam_tier = np.where(
        fam_children > 0,
        np.searchsorted(cum_with, u, side="right"),
        np.searchsorted(cum_without, u, side="right"),
    )
    fam_tier = np.minimum(fam_tier, 2).astype(np.int8)

    # NEET age boundaries: a few young people turn 16 or 25 exactly on as_of, or the day after.
    rb = stream(seed, "boundaries")
    n_plant = max(2, round(n_persons * 0.0002))
    planted = []
    for years, current_age in ((16, 15), (25, 24)):
        candidates = np.flatnonzero(age == current_age)
        pick = rb.permutation(candidates)[: 2 * n_plant]
        birthday = np_day(minus_years(as_of, years))
        half = len(pick) // 2
        dob[pick[:half]] = birthday  # reaches `years` on as_of
        dob[pick[half:]] = birthday + np.timedelta64(1, "D")  # one day short of it
        planted.append(pick)
    neet_boundary = np.concatenate(planted).astype(np.int64)
    age = ages_on(dob, as_of)

    # Properties: one per household, plus a vacant pool that movers' old homes come from.
    n_props = int(np.ceil(n_hh * (1.0 + MAX_MOVED + 0.05))) + 10
    props = _properties(stream(seed, "properties"), n_props)
    perm = stream(seed, "occupancy").permutation(n_props)
    hh_property = perm[:n_hh].astype(np.int64)
    vacant = perm[n_hh:]
    rm = stream(seed, "moves")
    moved = rm.random(n_hh) < dirt.moved
    hh_prev = np.full(n_hh, -1, dtype=np.int64)
    hh_prev[moved] = rm.permutation(vacant)[: int(moved.sum())]
    hh_move = np.full(n_hh, np.datetime64("NaT"), dtype="datetime64[D]")
    hh_move[moved] = np_day(as_of) - rm.integers(1, 731, int(moved.sum())).astype("timedelta64[D]")

    return Population(
        as_of=as_of,
        household=h.astype(np.int64),
        family=family,
        role=role.astype(np.int8),
        female=female,
        dob=dob,
        age=age,
        given=given,
        surname=surname.astype(np.int64),
        fam_start=fam_start,
        fam_size=fam_size,
        fam_household=fam_household.astype(np.int64),
        fam_tier=fam_tier,
        fam_n_children=np.bincount(family, weights=age < 18, minlength=n_fam).astype(np.int64),
        hh_start=starts.astype(np.int64),
        hh_fam1_adults=np.bincount(h, weights=seg == 0, minlength=n_hh).astype(np.int64),
        hh_property=hh_property,
        hh_prev_property=hh_prev,
        hh_move_date=hh_move,
        properties=props,
        neet_boundary=neet_boundary,
    )


# --- selecting members of families ---------------------------------------------------------------------


def members(pop: Population, families: IntArray, mask: BoolArray | None = None) -> tuple[IntArray, IntArray]:
    """All (person, family) pairs for ``families``, optionally only persons where ``mask`` holds."""
    sizes = pop.fam_size[families]
    rep = np.repeat(families, sizes)
    offsets = np.arange(len(rep)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    person = pop.fam_start[rep] + offsets
    if mask is not None:
        keep = mask[person]
        return person[keep], rep[keep]
    return person, rep


def pick_one(
    pop: Population, families: IntArray, mask: BoolArray, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """One random member per family among those where ``mask`` holds; families with none are dropped."""
    person, fam = members(pop, np.unique(families), mask)
    if len(person) == 0:
        return person, fam
    key = rng.random(len(person))
    order = np.lexsort((key, fam))
    fam_sorted = fam[order]
    first = np.concatenate([[True], fam_sorted[1:] != fam_sorted[:-1]])
    return person[order][first], fam_sorted[first]


def flag_families(
    pop: Population,
    rng: np.random.Generator,
    by_tier: tuple[float, float, float],
    eligible: BoolArray | None = None,
) -> IntArray:
    """Families drawn with a probability that depends on their risk tier."""
    p = np.asarray(by_tier)[pop.fam_tier]
    hit = rng.random(pop.n_families) < p
    if eligible is not None:
        hit &= eligible
    out: IntArray = np.flatnonzero(hit).astype(np.int64)
    return out


def families_with(pop: Population, mask: BoolArray) -> BoolArray:
    """Per family: does any member satisfy ``mask``?"""
    out: BoolArray = np.bincount(pop.family, weights=mask, minlength=pop.n_families) > 0
    return out
