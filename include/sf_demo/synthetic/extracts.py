"""What each internal source knows, and how it is written down.

Each source function returns :class:`SourceRows`: the clean facts (which true person each row is about,
and the row's measures). :func:`assemble` then turns them into records the way the department's system
holds them (its own record ids, dirt on identity, an old address for records made before a move) and
renders them through ``sources.yaml``. The ground truth (``truth.py``) is computed from the clean
:class:`SourceRows`, never from the dirty records, so dirt can never change what is true.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sf_demo.synthetic.dates import (
    DateArray,
    add_years,
    ages_on,
    last_three_terms,
    minus_years,
    np_day,
    uniform_dates,
    window_start,
)
from sf_demo.synthetic.dirt import DirtConfig
from sf_demo.synthetic.names import CHILDRENS_CENTRES, OFFENCE_CATEGORIES
from sf_demo.synthetic.population import (
    BoolArray,
    IntArray,
    Population,
    families_with,
    flag_families,
    members,
    pick_one,
    stream,
)
from sf_demo.synthetic.sources import SourceSpec, render_extract
from sf_demo.synthetic.vocab import TYPOS_PER_NAME, vocabularies

DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class Coded:
    """A text column held as indices into a small tuple of values."""

    index: IntArray
    values: tuple[str, ...]

    def is_in(self, *names: str) -> BoolArray:
        wanted = [self.values.index(n) for n in names]
        out: BoolArray = np.isin(self.index, wanted)
        return out

    def take(self, rows: IntArray) -> Coded:
        return Coded(self.index[rows], self.values)

    def to_arrow(self) -> Any:
        return pa.array(self.values, pa.string()).take(pa.array(self.index, pa.int64()))


Measure = npt.NDArray[Any] | Coded


@dataclass(frozen=True)
class SourceRows:
    """The clean rows of one source: the true person each row is about, when it was recorded, its measures."""

    source: str
    person: IntArray
    row_date: DateArray
    measures: dict[str, Measure] = field(default_factory=dict)

    def take(self, rows: IntArray) -> SourceRows:
        return SourceRows(
            self.source,
            self.person[rows],
            self.row_date[rows],
            {k: v.take(rows) if isinstance(v, Coded) else v[rows] for k, v in self.measures.items()},
        )


def measure_to_arrow(value: Measure) -> Any:
    if isinstance(value, Coded):
        return value.to_arrow()
    if np.issubdtype(value.dtype, np.datetime64):
        return pa.array(value, mask=np.isnat(value))
    return pa.array(value)


@dataclass(frozen=True)
class Context:
    pop: Population
    seed: int
    as_of: date

    def rng(self, name: str) -> np.random.Generator:
        return stream(self.seed, f"source:{name}")

    @property
    def day(self) -> np.datetime64:
        return np_day(self.as_of)

    @property
    def window(self) -> np.datetime64:
        return np_day(window_start(self.as_of))

    @property
    def three_years_ago(self) -> np.datetime64:
        return np_day(minus_years(self.as_of, 3))

    def boundary_count(self) -> int:
        """Rows per boundary case: enough to be seen at every size, too few to skew prevalence."""
        return max(2, round(self.pop.n / 10_000))


def _choice(rng: np.random.Generator, p: list[float], size: int) -> IntArray:
    out: IntArray = rng.choice(len(p), size=size, p=p).astype(np.int64)
    return out


def _days_back(rng: np.random.Generator, day: np.datetime64, low: int, high: int, size: int) -> DateArray:
    out: DateArray = day - rng.integers(low, high + 1, size).astype("timedelta64[D]")
    return out


# --- the sources ---------------------------------------------------------------------------------------

TERMS = ("autumn", "spring", "summer")


def education_attendance(ctx: Context) -> SourceRows:
    pop, rng = ctx.pop, ctx.rng("education_attendance")
    terms = last_three_terms(ctx.as_of)
    pupils = np.flatnonzero((pop.age >= 5) & (pop.age <= 15) & (rng.random(pop.n) < 0.93))
    n = len(pupils)
    flagged = np.zeros(pop.n_families, dtype=np.bool_)
    flagged[flag_families(pop, rng, (0.05, 0.22, 0.5))] = True
    low = (flagged[pop.family[pupils]] & (rng.random(n) < 0.8)) | (rng.random(n) < 0.03)
    # Attendance in tenths of a percent: most pupils attend 95% or more; persistent absentees 60-89.5%.
    base = np.where(
        low, rng.integers(600, 896, n), 1000 - np.minimum(rng.exponential(35.0, n), 95).astype(np.int64)
    )
    n_terms = np.minimum(np.array([3, 2, 1])[_choice(rng, [0.94, 0.04, 0.02], n)], len(terms))
    row_pupil = np.repeat(np.arange(n), n_terms)
    first_row = np.cumsum(n_terms) - n_terms
    term_idx = len(terms) - n_terms[row_pupil] + (np.arange(len(row_pupil)) - first_row[row_pupil])
    value = np.clip(
        base[row_pupil] + np.round(rng.normal(0.0, 20.0, len(row_pupil))).astype(np.int64), 0, 1000
    )
    # Boundaries: every term at exactly 90.0 (mean 90.0: not below 90) or 89.9 (mean 89.9: below).
    b = min(ctx.boundary_count(), n // 2)
    plant = rng.permutation(n)[: 2 * b]
    fixed = np.full(n, -1, dtype=np.int64)
    fixed[plant[:b]] = 900
    fixed[plant[b:]] = 899
    value = np.where(fixed[row_pupil] >= 0, fixed[row_pupil], value)
    # Elsewhere, no mean lands exactly on 90.0, so a floating-point mean cannot be misread at the threshold.
    total = np.bincount(row_pupil, weights=value, minlength=n)
    exact = (total == 900 * n_terms) & (fixed < 0)
    fr = first_row[exact]
    value[fr] = np.where(value[fr] < 1000, value[fr] + 1, value[fr] - 1)

    rs = ctx.rng("schools")
    primary = rs.choice(np.arange(100_000, 150_000), 30, replace=False)
    secondary = rs.choice(np.arange(150_000, 160_000), 8, replace=False)
    schools = tuple(str(u) for u in np.concatenate([primary, secondary]))
    school = np.where(pop.age[pupils] <= 10, rs.integers(0, 30, n), 30 + rs.integers(0, 8, n))
    term_years = tuple(t.academic_year for t in terms)
    term_names = tuple(t.term for t in terms)
    term_start = np.array([np_day(t.start) for t in terms])
    return SourceRows(
        "education_attendance",
        pupils[row_pupil],
        term_start[term_idx],
        {
            "school_urn": Coded(school[row_pupil].astype(np.int64), schools),
            "academic_year": Coded(term_idx, term_years),
            "term": Coded(np.array([TERMS.index(term_names[i]) for i in range(len(terms))])[term_idx], TERMS),
            "attendance_pct": value.astype(np.int64),
            "term_end": np.array([np_day(t.end) for t in terms])[term_idx],
        },
    )


EPISODES = ("child_in_need", "child_protection_plan", "assessment")


def childrens_social_care(ctx: Context) -> SourceRows:
    pop, rng, day = ctx.pop, ctx.rng("childrens_social_care"), ctx.day
    child = pop.age < 18
    has_child = families_with(pop, child)
    parts: list[tuple[IntArray, IntArray, DateArray, DateArray, int]] = []  # person, type, start, end, kind

    def children_of(by_tier: tuple[float, float, float]) -> IntArray:
        p, _ = members(pop, flag_families(pop, rng, by_tier, has_child), child)
        return p[rng.random(len(p)) < 0.85]

    for code, by_tier, back in ((0, (0.004, 0.03, 0.12), 700), (1, (0.0012, 0.01, 0.05), 500)):
        p = children_of(by_tier)
        start = np.maximum(_days_back(rng, day, 0, back, len(p)), pop.dob[p])
        end = np.where(rng.random(len(p)) < 0.1, day, np.datetime64("NaT"))
        parts.append((p, np.full(len(p), code), start, end.astype("datetime64[D]"), 0))
    p = children_of((0.01, 0.04, 0.08))
    start = np.maximum(_days_back(rng, day, 200, 1500, len(p)), pop.dob[p])
    end = np.minimum(start + rng.integers(60, 601, len(p)).astype("timedelta64[D]"), day - DAY)
    keep = end >= start
    closed_type = np.where(rng.random(len(p)) < 0.7, 0, 1)
    parts.append((p[keep], closed_type[keep], start[keep], end[keep], 1))
    p, _ = pick_one(pop, flag_families(pop, rng, (0.006, 0.02, 0.04), has_child), child, rng)
    start = np.maximum(_days_back(rng, day, 0, 700, len(p)), pop.dob[p])
    end = np.minimum(start + rng.integers(5, 46, len(p)).astype("timedelta64[D]"), day)
    parts.append((p, np.full(len(p), 2), start, end, 2))

    person = np.concatenate([x[0] for x in parts])
    etype = np.concatenate([x[1] for x in parts]).astype(np.int64)
    start = np.concatenate([x[2] for x in parts])
    end = np.concatenate([x[3] for x in parts])
    kind = np.concatenate([np.full(len(x[0]), x[4]) for x in parts])
    # Boundaries: open episodes ending today (still active) or starting today; closed ones ending yesterday.
    b = ctx.boundary_count()
    active = rng.permutation(np.flatnonzero(kind == 0))
    end[active[:b]] = day
    start[active[b : 2 * b]] = day
    closed = rng.permutation(np.flatnonzero(kind == 1))[:b]
    end[closed] = day - DAY
    return SourceRows(
        "childrens_social_care",
        person,
        start,
        {"episode_type": Coded(etype, EPISODES), "start_date": start, "end_date": end},
    )


def housing(ctx: Context) -> SourceRows:
    pop, rng = ctx.pop, ctx.rng("housing")
    hh_tier = pop.fam_tier[pop.family[pop.hh_start]]
    tenancy = np.flatnonzero(rng.random(pop.n_households) < np.array([0.22, 0.45, 0.6])[hh_tier])
    t = len(tenancy)
    tier = hh_tier[tenancy]
    rent = rng.integers(11_000, 24_001, t)  # weekly rent in pence
    u = rng.random(t)
    p8 = np.array([0.02, 0.10, 0.28])[tier]
    weeks = np.where(u < p8, rng.integers(8, 41, t), np.where(u < p8 + 0.12, rng.integers(1, 8, t), 0))
    part_week = (rng.random(t) * rent).astype(np.int64)
    arrears = weeks * rent + np.where((weeks > 0) | (rng.random(t) < 0.1), part_week, 0)
    u2 = rng.random(t)
    pu = np.array([0.01, 0.05, 0.14])[tier]
    debt = np.select(
        [u2 < pu, u2 < pu + 0.05, u2 < pu + 0.09],
        [rng.integers(50_000, 400_001, t), rng.integers(5_000, 300_001, t), rng.integers(1_000, 50_000, t)],
        0,
    )
    arrangement = (u2 >= pu) & (u2 < pu + 0.05)
    # Boundaries: 8 weeks (considerable) and 7; sundry debt of exactly £500.00 and £499.99 without an
    # arrangement, and £500.00 with one.
    b = min(ctx.boundary_count(), t // 5)
    plant = rng.permutation(t)[: 5 * b]
    weeks[plant[:b]] = 8
    weeks[plant[b : 2 * b]] = 7
    arrears[plant[: 2 * b]] = weeks[plant[: 2 * b]] * rent[plant[: 2 * b]]
    debt[plant[2 * b : 3 * b]] = 50_000
    debt[plant[3 * b : 4 * b]] = 49_999
    arrangement[plant[2 * b : 4 * b]] = False
    debt[plant[4 * b :]] = 50_000
    arrangement[plant[4 * b :]] = True

    lead = pop.hh_start[tenancy]
    joint = np.flatnonzero((pop.hh_fam1_adults[tenancy] == 2) & (rng.random(t) < 0.6))
    row_t = np.concatenate([np.arange(t), joint])
    person = np.concatenate([lead, lead[joint] + 1])
    refs = rng.permutation(100_000 + np.cumsum(rng.integers(1, max(2, 800_000 // max(t, 1)) + 1, t)))
    return SourceRows(
        "housing",
        person,
        np.full(len(person), ctx.day),
        {
            "tenancy_ref": _prefixed("T", refs, 6)[row_t],
            "weekly_rent": rent[row_t].astype(np.int64),
            "arrears_balance": arrears[row_t].astype(np.int64),
            "weeks_in_arrears": weeks[row_t].astype(np.int64),
            "sundry_debt": debt[row_t].astype(np.int64),
            "payment_arrangement": arrangement[row_t],
        },
    )


def _prefixed(prefix: str, numbers: IntArray, digits: int) -> npt.NDArray[Any]:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=digits, padding="0")
    out: npt.NDArray[Any] = np.asarray(
        pc.binary_join_element_wise(prefix, text, "").to_numpy(zero_copy_only=False)
    )
    return out


ACTIVITIES = (
    "education",
    "apprenticeship",
    "employment",
    "training",
    "neet_not_available",
    "neet_seeking",
    "not_known",
)


def neet(ctx: Context) -> SourceRows:
    pop, rng = ctx.pop, ctx.rng("neet")
    u = rng.random(pop.n)
    younger = (pop.age >= 16) & (pop.age <= 18)
    older = (pop.age >= 19) & (pop.age <= 24)
    known = (younger & (u < 0.95)) | (older & (u < np.where(pop.tier > 0, 0.3, 0.12)))
    known[pop.neet_boundary] = True
    persons = np.flatnonzero(known)
    n = len(persons)
    is_neet = (rng.random(n) < np.array([0.04, 0.18, 0.40])[pop.tier[persons]]) | np.isin(
        persons, pop.neet_boundary
    )
    neet_code = np.where(rng.random(n) < 0.35, 4, 5)
    young = pop.age[persons] <= 18
    other = np.where(
        young,
        _choice(rng, [0.8, 0.06, 0.04, 0.05, 0.0, 0.0, 0.05], n),
        _choice(rng, [0.3, 0.1, 0.4, 0.1, 0.0, 0.0, 0.1], n),
    )
    code = np.where(is_neet, neet_code, other)
    start = np.maximum(_days_back(rng, ctx.day, 0, 400, n), add_years(pop.dob[persons], 16))
    start = np.minimum(start, ctx.day)
    return SourceRows(
        "neet",
        persons,
        start,
        {"activity_code": Coded(code.astype(np.int64), ACTIVITIES), "activity_start_date": start},
    )


NEEDS = ("mental_health", "substance_misuse", "physical_health", "parenting", "financial", "education")


def early_help(ctx: Context) -> SourceRows:
    pop, rng, day = ctx.pop, ctx.rng("early_help"), ctx.day
    five_plus = pop.age >= 5
    fams = flag_families(pop, rng, (0.015, 0.07, 0.22))
    p1, _ = pick_one(pop, fams, five_plus, rng)
    p2, _ = pick_one(pop, fams[rng.random(len(fams)) < 0.3], five_plus, rng)
    p = np.concatenate([p1, p2])
    identified = np.minimum(np.maximum(_days_back(rng, day, 0, 900, len(p)), add_years(pop.dob[p], 5)), day)
    closed = np.where(rng.random(len(p)) < 0.12, day, np.datetime64("NaT")).astype("datetime64[D]")
    active = (p, np.zeros(len(p), dtype=np.int64), identified, closed)

    h, _ = pick_one(pop, flag_families(pop, rng, (0.01, 0.03, 0.05)), five_plus, rng)
    h_id = np.maximum(_days_back(rng, day, 120, 1500, len(h)), add_years(pop.dob[h], 5))
    h_closed = np.minimum(h_id + rng.integers(30, 401, len(h)).astype("timedelta64[D]"), day - DAY)
    keep = h_closed >= h_id
    historic = (h[keep], np.zeros(int(keep.sum()), dtype=np.int64), h_id[keep], h_closed[keep])

    o, _ = pick_one(pop, flag_families(pop, rng, (0.02, 0.08, 0.2)), pop.age >= 0, rng)
    o_id = np.maximum(_days_back(rng, day, 0, 900, len(o)), pop.dob[o])
    o_closed = np.where(
        rng.random(len(o)) < 0.6,
        np.datetime64("NaT"),
        np.minimum(o_id + rng.integers(14, 301, len(o)).astype("timedelta64[D]"), day),
    )
    others = (o, rng.integers(1, len(NEEDS), len(o)), o_id, o_closed.astype("datetime64[D]"))

    person = np.concatenate([active[0], historic[0], others[0]])
    need = np.concatenate([active[1], historic[1], others[1]])
    ident = np.concatenate([active[2], historic[2], others[2]])
    close = np.concatenate([active[3], historic[3], others[3]])
    # Boundaries: mental health needs closed today (open on as_of) or identified today; closed yesterday.
    b = ctx.boundary_count()
    na, nh = len(active[0]), len(historic[0])
    pa_ = rng.permutation(na)
    close[pa_[:b]] = day
    ident[pa_[b : 2 * b]] = day
    close[na + rng.permutation(nh)[:b]] = day - DAY
    return SourceRows(
        "early_help",
        person,
        ident,
        {"need_code": Coded(need, NEEDS), "identified_date": ident, "closed_date": close},
    )


DA_ROLES = ("victim", "perpetrator", "child_present")


def _participants_join(inc_family: IntArray, part_family: IntArray) -> tuple[IntArray, IntArray]:
    """(incident, participant) pairs for participants of each incident's family."""
    order = np.argsort(part_family, kind="stable")
    fam_sorted = part_family[order]
    lo = np.searchsorted(fam_sorted, inc_family, side="left")
    hi = np.searchsorted(fam_sorted, inc_family, side="right")
    counts = hi - lo
    inc = np.repeat(np.arange(len(inc_family)), counts)
    offsets = np.arange(len(inc)) - np.repeat(np.cumsum(counts) - counts, counts)
    return inc, order[np.repeat(lo, counts) + offsets]


def domestic_abuse(ctx: Context) -> SourceRows:
    pop, rng, day, ws = ctx.pop, ctx.rng("domestic_abuse"), ctx.day, ctx.window
    adult = pop.age >= 18
    has_adult = families_with(pop, adult)
    recent = flag_families(pop, rng, (0.003, 0.025, 0.10), has_adult)
    eligible = has_adult.copy()
    eligible[recent] = False
    older = flag_families(pop, rng, (0.003, 0.02, 0.06), eligible)
    fams = np.concatenate([recent, older])
    is_recent = np.concatenate([np.ones(len(recent), bool), np.zeros(len(older), bool)])
    n_inc = np.array([1, 2, 3])[_choice(rng, [0.7, 0.2, 0.1], len(fams))]
    inc_f = np.repeat(np.arange(len(fams)), n_inc)
    first = (np.arange(len(inc_f)) - (np.cumsum(n_inc) - n_inc)[inc_f]) == 0
    rec = is_recent[inc_f]
    lo = np.where(rec & first, ws, ctx.three_years_ago)
    hi = np.where(rec, day, ws - DAY)
    inc_date = uniform_dates(rng, lo.astype("datetime64[D]"), hi.astype("datetime64[D]"))
    minute = rng.integers(0, 1440, len(inc_f))
    # Boundaries: the first incident of some families exactly at the window's first day (in) and of some
    # families with only older incidents the day before (out), at times that make the date part matter.
    b = ctx.boundary_count()
    in_plant = np.flatnonzero(rec & first)[:b]
    out_plant = np.flatnonzero(~rec & first)[:b]
    inc_date[in_plant], minute[in_plant] = ws, 5
    inc_date[out_plant], minute[out_plant] = ws - DAY, 1435

    female_adult = adult & pop.female
    victims, vf = pick_one(pop, fams, female_adult, rng)
    rest = np.setdiff1d(fams, vf)
    v2, vf2 = pick_one(pop, rest, adult, rng)
    victims, vf = np.concatenate([victims, v2]), np.concatenate([vf, vf2])
    not_victim = adult.copy()
    not_victim[victims] = False
    perps, pf = pick_one(pop, fams[rng.random(len(fams)) < 0.5], not_victim, rng)
    kids, kf = members(pop, fams[rng.random(len(fams)) < 0.8], pop.age < 18)
    part_person = np.concatenate([victims, perps, kids])
    part_family = np.concatenate([vf, pf, kf])
    part_role = np.concatenate([np.zeros(len(victims)), np.ones(len(perps)), np.full(len(kids), 2)]).astype(
        np.int64
    )
    inc_family = fams[inc_f]
    inc_row, part_row = _participants_join(inc_family, part_family)
    born = pop.dob[part_person[part_row]] <= inc_date[inc_row]  # no child is present before birth
    inc_row, part_row = inc_row[born], part_row[born]
    n_incidents = len(inc_f)
    refs = rng.permutation(
        1_000_000 + np.cumsum(rng.integers(1, max(2, 8_000_000 // max(n_incidents, 1)) + 1, n_incidents))
    )
    stamp = inc_date.astype("datetime64[s]") + (minute * 60).astype("timedelta64[s]")
    return SourceRows(
        "domestic_abuse",
        part_person[part_row],
        inc_date[inc_row],
        {
            "incident_ref": _prefixed("INC", refs, 7)[inc_row],
            "role": Coded(part_role[part_row], DA_ROLES),
            "incident_datetime": stamp[inc_row],
        },
    )


OUTCOMES = ("conviction", "youth_caution", "youth_conditional_caution", "community_resolution")


def dated_events(
    ctx: Context,
    rng: np.random.Generator,
    persons: IntArray,
    min_age: int,
    max_age: int | None,
    n_choices: list[float],
) -> tuple[IntArray, DateArray, BoolArray]:
    """Dated events for persons within an age range at the event; the first of 60% lies in the window.

    Returns (row person index into ``persons``, date, is the recent first event).
    """
    pop, day, ws = ctx.pop, ctx.day, ctx.window
    recent = rng.random(len(persons)) < 0.6
    n = np.arange(1, len(n_choices) + 1)[_choice(rng, n_choices, len(persons))]
    row = np.repeat(np.arange(len(persons)), n)
    first = (np.arange(len(row)) - (np.cumsum(n) - n)[row]) == 0
    dob = pop.dob[persons[row]]
    lo = np.maximum(add_years(dob, min_age), ctx.three_years_ago)
    hi = np.full(len(row), day)
    if max_age is not None:
        hi = np.minimum(hi, add_years(dob, max_age + 1) - DAY)
    recent_first = recent[row] & first
    lo = np.where(recent_first, np.maximum(lo, ws), lo)
    keep = lo <= hi
    dates = uniform_dates(rng, lo[keep], hi[keep])
    return row[keep], dates, recent_first[keep]


def boundary_events(
    ctx: Context, rng: np.random.Generator, exclude: IntArray, min_age: int, max_age: int
) -> tuple[IntArray, DateArray]:
    """Extra single events exactly on the window's first day (in) and on the day before (out).

    Each goes to a person not in ``exclude`` (persons who already have events), aged ``min_age`` to
    ``max_age`` on that day, so the boundary alone decides the person's truth, at every borough size.
    """
    pop = ctx.pop
    taken = np.zeros(pop.n, dtype=np.bool_)
    taken[exclude] = True
    persons, dates = [], []
    for target in (ctx.window, ctx.window - DAY):
        age_then = ages_on(pop.dob, np.full(pop.n, target))
        candidates = np.flatnonzero(~taken & (age_then >= min_age) & (age_then <= max_age))
        pick = rng.permutation(candidates)[: ctx.boundary_count()]
        taken[pick] = True
        persons.append(pick)
        dates.append(np.full(len(pick), target))
    return np.concatenate(persons).astype(np.int64), np.concatenate(dates).astype("datetime64[D]")


def youth_offending(ctx: Context) -> SourceRows:
    pop, rng = ctx.pop, ctx.rng("youth_offending")
    young = (pop.age >= 10) & (pop.age <= 19)
    fams = flag_families(pop, rng, (0.002, 0.015, 0.07), families_with(pop, young))
    p1, _ = pick_one(pop, fams, young, rng)
    p2, _ = pick_one(pop, fams[rng.random(len(fams)) < 0.15], young, rng)
    persons = np.unique(np.concatenate([p1, p2]))
    row, dates, recent_first = dated_events(ctx, rng, persons, 10, 17, [0.6, 0.25, 0.15])
    outcome = np.where(
        recent_first,
        _choice(rng, [0.5, 0.3, 0.2, 0.0], len(row)),
        _choice(rng, [0.35, 0.25, 0.15, 0.25], len(row)),
    )
    edge_person, edge_date = boundary_events(ctx, rng, persons, 10, 17)
    person = np.concatenate([persons[row], edge_person])
    dates = np.concatenate([dates, edge_date])
    outcome = np.concatenate(
        [outcome, np.zeros(len(edge_person), dtype=np.int64)]
    )  # convictions: the date decides
    row = np.arange(len(person))
    category = rng.integers(0, len(OFFENCE_CATEGORIES), len(row))
    return SourceRows(
        "youth_offending",
        person,
        dates,
        {
            "outcome_date": dates,
            "outcome_type": Coded(outcome.astype(np.int64), OUTCOMES),
            "offence_category": Coded(category, OFFENCE_CATEGORIES),
        },
    )


INTERVENTIONS = (
    "acceptable_behaviour_contract",
    "community_protection_warning",
    "community_protection_notice",
    "civil_injunction",
    "criminal_behaviour_order",
)


def asb(ctx: Context) -> SourceRows:
    pop, rng = ctx.pop, ctx.rng("asb")
    ten_plus = pop.age >= 10
    persons, _ = pick_one(pop, flag_families(pop, rng, (0.003, 0.02, 0.07)), ten_plus, rng)
    row, dates, _recent = dated_events(ctx, rng, persons, 10, None, [0.75, 0.25])
    edge_person, edge_date = boundary_events(ctx, rng, persons, 10, 200)
    person = np.concatenate([persons[row], edge_person])
    dates = np.concatenate([dates, edge_date])
    row = np.arange(len(person))
    kind = _choice(rng, [0.3, 0.3, 0.2, 0.12, 0.08], len(row))
    return SourceRows(
        "asb", person, dates, {"intervention_type": Coded(kind, INTERVENTIONS), "intervention_date": dates}
    )


CENTRE_ROLES = ("child", "carer")


def childrens_centres(ctx: Context) -> SourceRows:
    pop, rng, day = ctx.pop, ctx.rng("childrens_centres"), ctx.day
    kids = np.flatnonzero((pop.age <= 4) & (rng.random(pop.n) < np.where(pop.tier > 0, 0.55, 0.45)))
    fams = np.unique(pop.family[kids])
    fam_centre = rng.integers(0, len(CHILDRENS_CENTRES), len(fams))
    k_centre = fam_centre[np.searchsorted(fams, pop.family[kids])]
    k_first = uniform_dates(rng, np.maximum(pop.dob[kids], ctx.three_years_ago), np.full(len(kids), day))
    k_last = uniform_dates(rng, k_first, np.full(len(kids), day))
    k_sessions = rng.integers(1, 61, len(kids))
    adult = pop.age >= 18
    carers, cf = pick_one(pop, fams, adult & pop.female, rng)
    c2, cf2 = pick_one(pop, np.setdiff1d(fams, cf), adult, rng)
    carers, cf = np.concatenate([carers, c2]), np.concatenate([cf, cf2])
    # A carer's attendance is that of the family's first registered child.
    first_kid = np.searchsorted(pop.family[kids], cf, side="left")
    person = np.concatenate([kids, carers])
    pick = np.concatenate([np.arange(len(kids)), first_kid])
    first = k_first[pick]
    return SourceRows(
        "childrens_centres",
        person,
        first,
        {
            "role": Coded(
                np.concatenate([np.zeros(len(kids)), np.ones(len(carers))]).astype(np.int64), CENTRE_ROLES
            ),
            "centre_name": Coded(k_centre[pick].astype(np.int64), CHILDRENS_CENTRES),
            "first_attended": first,
            "last_attended": k_last[pick],
            "sessions_attended": k_sessions[pick].astype(np.int64),
        },
    )


REFERRAL_TYPES = ("debt_advice", "budgeting", "benefits_check")


def debt_advice(ctx: Context) -> SourceRows:
    """A voluntary-sector money advice agency's referrals: adults, more often in families at risk."""
    pop, rng = ctx.pop, ctx.rng("debt_advice")
    adult = pop.age >= 18
    persons, _ = pick_one(pop, flag_families(pop, rng, (0.004, 0.04, 0.12)), adult, rng)
    row, dates, _recent = dated_events(ctx, rng, persons, 18, None, [0.8, 0.2])
    edge_person, edge_date = boundary_events(ctx, rng, persons, 18, 300)
    person = np.concatenate([persons[row], edge_person])
    dates = np.concatenate([dates, edge_date])
    kind = _choice(rng, [0.6, 0.25, 0.15], len(person))
    kind[len(row) :] = 0  # the boundary referrals are debt advice, so the window's edge alone decides them
    return SourceRows(
        "debt_advice",
        person,
        dates,
        {"referral_type": Coded(kind, REFERRAL_TYPES), "referral_date": dates},
    )


#: The generator's sources, in the order they are written. Each must have an entry in ``sources.yaml``.
SOURCE_GENERATORS: dict[str, Callable[[Context], SourceRows]] = {
    "education_attendance": education_attendance,
    "childrens_social_care": childrens_social_care,
    "housing": housing,
    "neet": neet,
    "early_help": early_help,
    "domestic_abuse": domestic_abuse,
    "youth_offending": youth_offending,
    "asb": asb,
    "childrens_centres": childrens_centres,
    "debt_advice": debt_advice,
}

#: Measures kept for the ground truth that the source itself does not write (the term's last day).
TRUTH_ONLY_MEASURES = {"term_end"}

#: (prefix, digits) of each source's own record id; ``sources.yaml`` holds the pattern they must match.
RECORD_IDS: dict[str, tuple[str, int]] = {
    "education_attendance": ("207", 9),  # UPN: a check letter is put in front
    "childrens_social_care": ("", 7),
    "housing": ("C", 7),
    "neet": ("", 8),
    "early_help": ("EH", 6),
    "domestic_abuse": ("DA", 7),
    "youth_offending": ("Y", 6),
    "asb": ("ASB", 6),
    "childrens_centres": ("CC", 6),
    "debt_advice": ("MA", 6),
}

_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


def _record_ids(source: str, rng: np.random.Generator, n: int) -> tuple[Any, IntArray]:
    """Unique ids in the source's own format, and their numbers (the order the source lists records in)."""
    prefix, digits = RECORD_IDS[source]
    low = 10 ** (digits - 1)
    space = 10**digits - low
    if n > space // 2:
        raise ValueError(f"{source}: too many records ({n}) for its {digits}-digit ids")
    step = max(1, space // max(n, 1))
    numbers = rng.permutation(low + np.cumsum(rng.integers(1, step + 1, n)) - 1)
    text = pc.cast(pa.array(numbers), pa.string())
    if source == "education_attendance":
        letters = pa.array(list(_UPN_LETTERS), pa.string()).take(
            pa.array(rng.integers(0, len(_UPN_LETTERS), n))
        )
        text = pc.binary_join_element_wise(letters, pa.array([prefix] * n, pa.string()), text, "")
    elif prefix:
        text = pc.binary_join_element_wise(pa.array([prefix] * n, pa.string()), text, "")
    return text, numbers.astype(np.int64)


@dataclass(frozen=True)
class PersonText:
    """Identity columns of the truth, materialised once and shared by every source."""

    person_id: Any
    sex: Any
    dob: Any


def assemble(
    rows: SourceRows, spec: SourceSpec, pop: Population, people: PersonText, dirt: DirtConfig, seed: int
) -> tuple[pa.Table, pa.Table]:
    """Records as the department holds them, rendered through ``spec``, and their links to true persons."""
    vocab = vocabularies()
    n_rows = len(rows.person)
    order = np.argsort(rows.person, kind="stable")
    person_sorted = rows.person[order]
    subjects, first_idx = np.unique(person_sorted, return_index=True)
    s = len(subjects)
    row_subject = np.empty(n_rows, dtype=np.int64)
    row_subject[order] = np.searchsorted(subjects, person_sorted)
    dates_sorted = rows.row_date[order]
    first_date = np.minimum.reduceat(dates_sorted, first_idx) if s else dates_sorted[:0]
    last_date = np.maximum.reduceat(dates_sorted, first_idx) if s else dates_sorted[:0]

    # Dirt: every draw is made for every record whatever the rates, so rates change only what they govern.
    rd = stream(seed, f"dirt:{spec.name}")
    dup = rd.random(s) < dirt.duplicate
    dup_idx = np.flatnonzero(dup)
    rec_subject = np.concatenate([np.arange(s), dup_idx])
    rec_person = subjects[rec_subject]
    rec_dup = np.concatenate([np.zeros(s, bool), np.ones(len(dup_idx), bool)])
    # A duplicate is typically created later (a re-registration), so it carries the latest date.
    rec_date = np.concatenate([first_date, last_date[dup_idx]])
    n_rec = len(rec_person)
    dup_rank = np.full(s, -1, dtype=np.int64)
    dup_rank[dup_idx] = np.arange(len(dup_idx))
    extra = np.flatnonzero(dup[row_subject])
    row_src = np.concatenate([np.arange(n_rows), extra])
    row_rec = np.concatenate([row_subject, s + dup_rank[row_subject[extra]]])

    g = pop.given[rec_person]
    count = vocab.given.variant_count[g]
    use_variant = (count > 0) & (rd.random(n_rec) < dirt.name_variant)
    pick = (rd.random(n_rec) * np.maximum(count, 1)).astype(np.int64)
    g_named = np.where(use_variant, vocab.given.variant_start[g] + pick, g)
    typo = rd.random(n_rec) < dirt.typo
    in_given = rd.random(n_rec) < 0.5
    k = rd.integers(0, TYPOS_PER_NAME, n_rec)
    given_typo, family_typo = typo & in_given, typo & ~in_given
    g_final = np.where(given_typo, vocab.given.typo_index(g_named, k), g_named)
    f = pop.surname[rec_person]
    f_final = np.where(family_typo, vocab.surname.typo_index(f, k), f)
    hh = pop.household[rec_person]
    prev = pop.hh_prev_property[hh]
    old = (prev >= 0) & (rec_date < pop.hh_move_date[hh])
    prop = np.where(old, prev, pop.hh_property[hh])
    uprn_missing = ("uprn" in spec.by_standard) & (rd.random(n_rec) < dirt.missing_uprn)
    ids, id_numbers = _record_ids(spec.name, stream(seed, f"ids:{spec.name}"), n_rec)

    props = pop.properties
    prop_a = pa.array(prop)
    identity: dict[str, Any] = {
        "record_id": lambda: ids,
        "given_name": lambda: vocab.given.take(g_final),
        "family_name": lambda: vocab.surname.take(f_final),
        "date_of_birth": lambda: people.dob.take(pa.array(rec_person)),
        "sex": lambda: people.sex.take(pa.array(rec_person)),
        "address_line_1": lambda: props.address_line_1.take(prop_a),
        "address_line_2": lambda: props.address_line_2.take(prop_a),
        "town": lambda: props.town.take(prop_a),
        "postcode": lambda: props.postcode.take(prop_a),
        "uprn": lambda: pc.if_else(
            pa.array(uprn_missing), pa.nulls(n_rec, pa.string()), props.uprn.take(prop_a)
        ),
    }
    # The source lists its records in its own id order, which hides which record is a duplicate of which.
    final = np.lexsort((row_src, id_numbers[row_rec]))
    rec_take = pa.array(row_rec[final])
    src_take = row_src[final]
    columns: dict[str, Any] = {}
    for name in spec.identity_fields:
        if name not in identity:
            raise ValueError(
                f"sources.yaml: {spec.name} names identity field {name!r} the generator cannot make"
            )
        columns[name] = identity[name]().take(rec_take)
    for name, value in rows.measures.items():
        if name not in TRUTH_ONLY_MEASURES:
            columns[name] = measure_to_arrow(value).take(pa.array(src_take))
    canonical = pa.table(columns)
    rendered = render_extract(canonical, spec, stream(seed, f"render:{spec.name}"))
    links = pa.table(
        {
            "source": pa.array([spec.name] * n_rec, pa.string()),
            "record_id": ids,
            "person_id": people.person_id.take(pa.array(rec_person)),
            "duplicate": pa.array(rec_dup),
            "given_name_variant": pa.array(use_variant),
            "given_name_typo": pa.array(given_typo),
            "family_name_typo": pa.array(family_typo),
            "uprn_missing": pa.array(uprn_missing),
            "old_address": pa.array(old),
            "n_rows": pa.array(np.bincount(row_rec, minlength=n_rec).astype(np.int64)),
        }
    )
    return rendered, links.take(pa.array(np.argsort(id_numbers, kind="stable")))
