"""The ground truth: who meets which criterion of the notice on ``as_of``, per person and per family.

The truth is computed from the generator's clean rows (before any dirt), with the rules below. A criteria
engine that links each record to the right person and applies these rules to the extracts reproduces it
exactly on clean data (``DirtConfig.clean()``); the tests do so with a small reference engine.

Conventions used by every rule
    * ``as_of`` is the extract date (the date in each file's name).
    * Age is completed years on a day: the birthday counts from its own date (29 February birthdays from
      1 March in common years). ``sf_demo.synthetic.dates.ages_on``.
    * "Within the last 12 months" is the closed window ``[as_of minus one calendar year, as_of]``; 29 February
      minus a year is 28 February. For as_of 31 March 2025 an event on 31 March 2024 counts and one on
      30 March 2024 does not. ``sf_demo.synthetic.dates.window_start``.
    * "Active on as_of" means ``start <= as_of`` and (``end`` empty or ``end >= as_of``): an episode that
      ended on as_of was still open that day; one that ended the day before was not.
    * A person has a sub-criterion if any of their rows meets the rule; a duplicate record repeats the same
      rows, so duplicates never change the answer.

Sub-criteria (code: rule) — the standard names are those of ``include/sources.yaml``
    school_attendance
        ``attendance_below_90`` (education_attendance): the pupil's mean ``attendance_pct`` over the terms in
        the extract, each term once, is below 90.0. 89.9 in every term meets it; 90.0 in every term does not.
        No other pupil's mean equals 90.0 exactly, so a floating-point mean cannot be misread.
    children_needing_help
        ``child_in_need`` (childrens_social_care): an ``episode_type`` child_in_need episode active on as_of.
        ``child_protection_plan`` (childrens_social_care): a child_protection_plan episode active on as_of.
        Assessments are not a criterion.
    worklessness_financial_exclusion
        ``out_of_work_benefits`` (partner: DWP): an out-of-work benefit in payment on as_of (``out_of_work``).
        ``rent_arrears`` (housing): ``weeks_in_arrears >= 8`` ("considerable": two months' rent, the level at
        which a landlord can ask for Universal Credit housing costs to be paid direct).
        ``unmanaged_debt`` (housing): ``sundry_debt >= 500.00`` and no ``payment_arrangement``.
        ``neet`` (neet): ``activity_code`` is neet_not_available or neet_seeking, and the person is aged 16
        to 24 inclusive on as_of. Young people turning 16 or 25 on as_of, and the day after, are in the data.
    domestic_abuse
        ``domestic_abuse_incident`` (domestic_abuse): the person is in an incident (any role: victim,
        perpetrator, child present) whose date (the date part of ``incident_datetime``) is in the window.
    health
        ``mental_health`` (early_help): a ``need_code`` mental_health need active on as_of
        (``identified_date`` to ``closed_date``).
        ``disability_benefits`` (partner: DWP): an out-of-work benefit paid for a disability or health
        condition in payment on as_of (``disability_related``).
    crime_asb
        ``proven_offence_or_caution``: a proven offence or a caution dated in the window, for a person aged
        under 25 on its date (the notice's "child/young person"; the same 16-24 notion as NEET). Internal
        source youth_offending: ``outcome_type`` conviction, youth_caution or youth_conditional_caution
        (a community_resolution is neither). Partner source Metropolitan Police: ``event_type``
        proven_offence or caution.
        ``asb_intervention``: an ASB intervention dated in the window, at any age (the notice's
        "parent/child/young person"). Internal source asb (every intervention type); partner source
        Metropolitan Police: ``event_type`` asb_intervention.
    worklessness_financial_exclusion (voluntary-sector agency)
        ``debt_advice_referral`` (debt_advice, a money advice agency's extract sent over SFTP): a
        ``referral_type`` debt_advice referral dated in the window ("at risk of financial exclusion").

Families
    A family has a headline problem when any member has any of its sub-criteria (two sub-criteria of one
    headline problem count once). It is eligible when it has at least ``MIN_PROBLEMS`` (2) headline problems.
    Two truths are given: ``*_internal`` from the departments' extracts only, and ``*_with_partners`` adding
    the DWP and police truth and the voluntary-sector agency's extract (origin ``agency``, which arrives over
    SFTP with the partners' answers): what identification can reach once all of them have been taken in.
    ``received_other_services``: a member is registered at a children's centre (a service, not a criterion;
    it marks candidates for the ONS comparison group).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from sf_demo.synthetic.dates import DateArray, ages_on, np_day, window_start
from sf_demo.synthetic.extracts import Coded, SourceRows
from sf_demo.synthetic.partners import DwpRows, PoliceRows
from sf_demo.synthetic.population import BoolArray, IntArray, Population

MIN_PROBLEMS = 2

HEADLINE_PROBLEMS: dict[str, str] = {
    "school_attendance": "Children who have not been attending school regularly",
    "children_needing_help": "Children of all ages who need help, identified as in need or subject to a "
    "Child Protection Plan",
    "worklessness_financial_exclusion": "Adults out of work or at risk of financial exclusion and young "
    "people at risk of worklessness",
    "domestic_abuse": "Families affected by domestic violence and abuse",
    "health": "Parents and children with a range of health problems",
    "crime_asb": "Parents and/or children involved in crime or antisocial behaviour",
}


@dataclass(frozen=True)
class SubCriterion:
    code: str
    headline: str
    internal_sources: tuple[str, ...]
    partner_sources: tuple[str, ...]
    rule: str


SUB_CRITERIA: tuple[SubCriterion, ...] = (
    SubCriterion(
        "attendance_below_90",
        "school_attendance",
        ("education_attendance",),
        (),
        "mean attendance_pct of the pupil's terms in the extract < 90.0",
    ),
    SubCriterion(
        "child_in_need",
        "children_needing_help",
        ("childrens_social_care",),
        (),
        "child_in_need episode active on as_of",
    ),
    SubCriterion(
        "child_protection_plan",
        "children_needing_help",
        ("childrens_social_care",),
        (),
        "child_protection_plan episode active on as_of",
    ),
    SubCriterion(
        "out_of_work_benefits",
        "worklessness_financial_exclusion",
        (),
        ("dwp",),
        "out-of-work benefit in payment on as_of",
    ),
    SubCriterion(
        "rent_arrears", "worklessness_financial_exclusion", ("housing",), (), "weeks_in_arrears >= 8"
    ),
    SubCriterion(
        "unmanaged_debt",
        "worklessness_financial_exclusion",
        ("housing",),
        (),
        "sundry_debt >= 500.00 and no payment_arrangement",
    ),
    SubCriterion(
        "debt_advice_referral",
        "worklessness_financial_exclusion",
        ("debt_advice",),
        (),
        "a debt_advice referral dated within the 12 months to as_of (voluntary-sector agency)",
    ),
    SubCriterion(
        "neet",
        "worklessness_financial_exclusion",
        ("neet",),
        (),
        "activity_code neet_not_available or neet_seeking, aged 16-24 on as_of",
    ),
    SubCriterion(
        "domestic_abuse_incident",
        "domestic_abuse",
        ("domestic_abuse",),
        (),
        "in an incident dated within the 12 months to as_of",
    ),
    SubCriterion("mental_health", "health", ("early_help",), (), "mental_health need active on as_of"),
    SubCriterion(
        "disability_benefits",
        "health",
        (),
        ("dwp",),
        "disability-related out-of-work benefit in payment on as_of",
    ),
    SubCriterion(
        "proven_offence_or_caution",
        "crime_asb",
        ("youth_offending",),
        ("met_police",),
        "proven offence or caution within the 12 months to as_of, aged under 25 on its date",
    ),
    SubCriterion(
        "asb_intervention",
        "crime_asb",
        ("asb",),
        ("met_police",),
        "ASB intervention within the 12 months to as_of",
    ),
)

_SUB_INDEX = {s.code: i for i, s in enumerate(SUB_CRITERIA)}
_HEADLINES = tuple(HEADLINE_PROBLEMS)
_ORIGIN_SOURCES = (
    "education_attendance",
    "childrens_social_care",
    "housing",
    "neet",
    "early_help",
    "domestic_abuse",
    "youth_offending",
    "asb",
    "dwp",
    "met_police",
    "debt_advice",
)
_PARTNERS = ("dwp", "met_police")
#: Voluntary-sector agencies: their extracts arrive over SFTP with the partners' answers, not with the
#: departments' extracts, so they count in ``*_with_partners`` only (origin ``agency``).
_AGENCIES = ("debt_advice",)


@dataclass
class _Hits:
    person: list[IntArray]
    sub: list[IntArray]
    source: list[IntArray]
    evidence: list[DateArray]

    def add(self, person: IntArray, sub: str, source: str, evidence: DateArray) -> None:
        self.person.append(person.astype(np.int64))
        self.sub.append(np.full(len(person), _SUB_INDEX[sub], dtype=np.int64))
        self.source.append(np.full(len(person), _ORIGIN_SOURCES.index(source), dtype=np.int64))
        self.evidence.append(evidence.astype("datetime64[D]"))


def _active(start: DateArray, end: DateArray, day: np.datetime64) -> BoolArray:
    out: BoolArray = (start <= day) & (np.isnat(end) | (end >= day))
    return out


def _in_window(when: DateArray, as_of: date) -> BoolArray:
    out: BoolArray = (when >= np_day(window_start(as_of))) & (when <= np_day(as_of))
    return out


def _code(rows: SourceRows, name: str) -> Coded:
    value = rows.measures[name]
    assert isinstance(value, Coded)
    return value


def _array(rows: SourceRows, name: str) -> Any:
    value = rows.measures[name]
    assert not isinstance(value, Coded)
    return value


def _internal(hits: _Hits, rows: dict[str, SourceRows], pop: Population, as_of: date) -> None:
    day = np_day(as_of)

    edu = rows["education_attendance"]
    pupils, inv = np.unique(edu.person, return_inverse=True)
    total = np.bincount(inv, weights=_array(edu, "attendance_pct"), minlength=len(pupils))
    count = np.bincount(inv, minlength=len(pupils))
    below = total < 900 * count  # mean < 90.0, in exact tenths
    hits.add(
        pupils[below],
        "attendance_below_90",
        "education_attendance",
        np.full(int(below.sum()), np.max(_array(edu, "term_end")) if len(edu.person) else day),
    )

    csc = rows["childrens_social_care"]
    active = _active(_array(csc, "start_date"), _array(csc, "end_date"), day)
    for sub in ("child_in_need", "child_protection_plan"):
        m = active & _code(csc, "episode_type").is_in(sub)
        hits.add(csc.person[m], sub, "childrens_social_care", _array(csc, "start_date")[m])

    hou = rows["housing"]
    m = _array(hou, "weeks_in_arrears") >= 8
    hits.add(hou.person[m], "rent_arrears", "housing", np.full(int(m.sum()), day))
    m = (_array(hou, "sundry_debt") >= 50_000) & ~_array(hou, "payment_arrangement")
    hits.add(hou.person[m], "unmanaged_debt", "housing", np.full(int(m.sum()), day))

    nt = rows["neet"]
    age = ages_on(pop.dob[nt.person], as_of)
    m = _code(nt, "activity_code").is_in("neet_not_available", "neet_seeking") & (age >= 16) & (age <= 24)
    hits.add(nt.person[m], "neet", "neet", _array(nt, "activity_start_date")[m])

    da = rows["domestic_abuse"]
    when = _array(da, "incident_datetime").astype("datetime64[D]")
    m = _in_window(when, as_of)
    hits.add(da.person[m], "domestic_abuse_incident", "domestic_abuse", when[m])

    eh = rows["early_help"]
    m = _code(eh, "need_code").is_in("mental_health") & _active(
        _array(eh, "identified_date"), _array(eh, "closed_date"), day
    )
    hits.add(eh.person[m], "mental_health", "early_help", _array(eh, "identified_date")[m])

    yo = rows["youth_offending"]
    when = _array(yo, "outcome_date")
    m = (
        _code(yo, "outcome_type").is_in("conviction", "youth_caution", "youth_conditional_caution")
        & _in_window(when, as_of)
        & (ages_on(pop.dob[yo.person], when) < 25)
    )
    hits.add(yo.person[m], "proven_offence_or_caution", "youth_offending", when[m])

    ab = rows["asb"]
    when = _array(ab, "intervention_date")
    m = _in_window(when, as_of)
    hits.add(ab.person[m], "asb_intervention", "asb", when[m])

    ma = rows["debt_advice"]
    when = _array(ma, "referral_date")
    m = _code(ma, "referral_type").is_in("debt_advice") & _in_window(when, as_of)
    hits.add(ma.person[m], "debt_advice_referral", "debt_advice", when[m])


def _partners(hits: _Hits, dwp: DwpRows, police: PoliceRows, pop: Population, as_of: date) -> None:
    m = dwp.out_of_work
    hits.add(dwp.person[m], "out_of_work_benefits", "dwp", dwp.award_start[m])
    m = dwp.disability_related
    hits.add(dwp.person[m], "disability_benefits", "dwp", dwp.award_start[m])
    in_window = _in_window(police.event_date, as_of)
    young_then = ages_on(pop.dob[police.person], police.event_date) < 25
    m = police.event_type.is_in("proven_offence", "caution") & in_window & young_then
    hits.add(police.person[m], "proven_offence_or_caution", "met_police", police.event_date[m])
    m = police.event_type.is_in("asb_intervention") & in_window
    hits.add(police.person[m], "asb_intervention", "met_police", police.event_date[m])


@dataclass(frozen=True)
class Truth:
    person_criteria: pa.Table
    family_criteria: pa.Table


def build_truth(
    pop: Population,
    rows: dict[str, SourceRows],
    dwp: DwpRows,
    police: PoliceRows,
    ids: dict[str, Any],
    as_of: date,
) -> Truth:
    """Per-person sub-criteria (long: one row per person, sub-criterion and source) and per-family results."""
    hits = _Hits([], [], [], [])
    _internal(hits, rows, pop, as_of)
    _partners(hits, dwp, police, pop, as_of)
    person = np.concatenate(hits.person)
    sub = np.concatenate(hits.sub)
    source = np.concatenate(hits.source)
    evidence = np.concatenate(hits.evidence)
    # One row per (person, sub-criterion, source), keeping the latest evidence date.
    order = np.lexsort((evidence, source, sub, person))
    person, sub, source, evidence = person[order], sub[order], source[order], evidence[order]
    last = np.ones(len(person), dtype=np.bool_)
    if len(person) > 1:
        same_next = (person[1:] == person[:-1]) & (sub[1:] == sub[:-1]) & (source[1:] == source[:-1])
        last[:-1] = ~same_next
    person, sub, source, evidence = person[last], sub[last], source[last], evidence[last]

    headline_of_sub = np.array([_HEADLINES.index(s.headline) for s in SUB_CRITERIA], dtype=np.int64)
    is_agency = np.isin(source, [_ORIGIN_SOURCES.index(a) for a in _AGENCIES])
    is_partner = np.isin(source, [_ORIGIN_SOURCES.index(p) for p in _PARTNERS]) | is_agency
    origin = np.where(is_agency, 2, is_partner.astype(np.int64))
    p_take = pa.array(person)
    person_criteria = pa.table(
        {
            "person_id": ids["person"].take(p_take),
            "household_id": ids["household"].take(pa.array(pop.household[person])),
            "family_id": ids["family"].take(pa.array(pop.family[person])),
            "sub_criterion": pa.array([s.code for s in SUB_CRITERIA], pa.string()).take(pa.array(sub)),
            "headline_problem": pa.array(list(_HEADLINES), pa.string()).take(pa.array(headline_of_sub[sub])),
            "origin": pa.array(["internal", "partner", "agency"], pa.string()).take(pa.array(origin)),
            "source": pa.array(list(_ORIGIN_SOURCES), pa.string()).take(pa.array(source)),
            "evidence_date": pa.array(evidence),
        }
    )

    n_fam = pop.n_families
    fam = pop.family[person]
    internal = np.zeros((n_fam, len(_HEADLINES)), dtype=np.bool_)
    everything = np.zeros((n_fam, len(_HEADLINES)), dtype=np.bool_)
    internal[fam[~is_partner], headline_of_sub[sub[~is_partner]]] = True
    everything[fam, headline_of_sub[sub]] = True
    centre = np.zeros(n_fam, dtype=np.bool_)
    centre[pop.family[rows["childrens_centres"].person]] = True
    columns: dict[str, Any] = {
        "family_id": ids["family"],
        "household_id": ids["household"].take(pa.array(pop.fam_household)),
        "n_persons": pa.array(pop.fam_size),
        "n_children": pa.array(pop.fam_n_children),
    }
    for i, h in enumerate(_HEADLINES):
        columns[f"{h}_internal"] = pa.array(internal[:, i])
        columns[f"{h}_with_partners"] = pa.array(everything[:, i])
    n_internal = internal.sum(axis=1).astype(np.int64)
    n_all = everything.sum(axis=1).astype(np.int64)
    columns["problems_internal"] = pa.array(n_internal)
    columns["problems_with_partners"] = pa.array(n_all)
    columns["eligible_internal"] = pa.array(n_internal >= MIN_PROBLEMS)
    columns["eligible_with_partners"] = pa.array(n_all >= MIN_PROBLEMS)
    columns["received_other_services"] = pa.array(centre)
    return Truth(person_criteria, pa.table(columns))
