"""What the partners hold: DWP benefit awards; Metropolitan Police offences, cautions, ASB interventions.

This is the partners' side of the truth, for the partner simulator: it is never an extract the council
receives. The police hold every youth justice outcome (the same events as the council's youth justice
service) plus adults' offences and police-issued ASB interventions; they hold about half of the council's own
ASB interventions too, because many are issued jointly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sf_demo.synthetic.dates import DateArray, add_years
from sf_demo.synthetic.extracts import (
    INTERVENTIONS,
    Coded,
    Context,
    SourceRows,
    boundary_events,
    dated_events,
)
from sf_demo.synthetic.names import OFFENCE_CATEGORIES
from sf_demo.synthetic.population import (
    BoolArray,
    IntArray,
    families_with,
    flag_families,
    members,
    pick_one,
)

BENEFITS = ("uc_not_earning", "uc_lcwra", "esa", "jsa", "income_support", "pip")
#: Out-of-work benefits: Universal Credit with no earnings or with limited capability for work-related
#: activity, Employment and Support Allowance, Jobseeker's Allowance, Income Support. PIP is paid in or
#: out of work, so it is neither.
OUT_OF_WORK_BENEFITS = ("uc_not_earning", "uc_lcwra", "esa", "jsa", "income_support")
#: Out-of-work benefits paid because of a disability or health condition (the notice's health criterion).
DISABILITY_BENEFITS = ("uc_lcwra", "esa")

POLICE_EVENTS = ("proven_offence", "caution", "community_resolution", "asb_intervention")
POLICE_DETAILS = (*OFFENCE_CATEGORIES, *INTERVENTIONS, "dispersal_direction")
#: How the police record each youth justice outcome.
POLICE_EVENT_OF_OUTCOME = {
    "conviction": "proven_offence",
    "youth_caution": "caution",
    "youth_conditional_caution": "caution",
    "community_resolution": "community_resolution",
}


@dataclass(frozen=True)
class DwpRows:
    person: IntArray
    benefit: Coded
    award_start: DateArray

    @property
    def out_of_work(self) -> BoolArray:
        return self.benefit.is_in(*OUT_OF_WORK_BENEFITS)

    @property
    def disability_related(self) -> BoolArray:
        return self.benefit.is_in(*DISABILITY_BENEFITS)


@dataclass(frozen=True)
class PoliceRows:
    person: IntArray
    event_type: Coded
    event_date: DateArray
    detail: Coded


def dwp(ctx: Context) -> DwpRows:
    pop, rng, day = ctx.pop, ctx.rng("dwp"), ctx.day
    # Working age: 18 to 65 (state pension age is 66); pensioners' benefits are not out-of-work benefits.
    working_age = (pop.age >= 18) & (pop.age <= 65)
    fams = flag_families(pop, rng, (0.06, 0.30, 0.55), families_with(pop, working_age))
    claimants, _ = members(pop, fams, working_age)  # couples claim Universal Credit jointly
    benefit = rng.choice(5, size=len(claimants), p=[0.55, 0.15, 0.15, 0.08, 0.07]).astype(np.int64)
    with_pip = claimants[np.isin(benefit, [1, 2]) & (rng.random(len(claimants)) < 0.3)]
    others = working_age.copy()
    others[claimants] = False
    pip_only = np.flatnonzero(others & (rng.random(pop.n) < 0.025))
    person = np.concatenate([claimants, with_pip, pip_only])
    code = np.concatenate([benefit, np.full(len(with_pip) + len(pip_only), 5)]).astype(np.int64)
    start = np.maximum(
        day - rng.integers(30, 2501, len(person)).astype("timedelta64[D]"), add_years(pop.dob[person], 18)
    )
    order = np.lexsort((code, person))
    return DwpRows(person[order], Coded(code[order], BENEFITS), np.minimum(start, day)[order])


def police(ctx: Context, youth: SourceRows, council_asb: SourceRows) -> PoliceRows:
    pop, rng = ctx.pop, ctx.rng("met_police")
    outcome = youth.measures["outcome_type"]
    assert isinstance(outcome, Coded)
    # Youth justice outcomes as the police record them.
    youth_type = np.array([POLICE_EVENTS.index(POLICE_EVENT_OF_OUTCOME[o]) for o in outcome.values])[
        outcome.index
    ]
    category = youth.measures["offence_category"]
    assert isinstance(category, Coded)
    parts = [(youth.person, youth_type, youth.row_date, category.index)]

    # Adults' offences: the "child/young person" rule means only those under 25 at the offence count.
    adult = pop.age >= 18
    adults, _ = pick_one(
        pop, flag_families(pop, rng, (0.004, 0.03, 0.10), families_with(pop, adult)), adult, rng
    )
    row, dates, recent_first = dated_events(ctx, rng, adults, 18, None, [0.6, 0.25, 0.15])
    kind = np.where(
        recent_first,
        rng.choice(3, len(row), p=[0.65, 0.35, 0.0]),
        rng.choice(3, len(row), p=[0.5, 0.25, 0.25]),
    )
    # Boundaries of the window for young adults (counted) and for adults of 25 or more (never counted).
    young_p, young_d = boundary_events(ctx, rng, np.concatenate([adults, youth.person]), 18, 24)
    older_p, older_d = boundary_events(ctx, rng, np.concatenate([adults, youth.person, young_p]), 25, 200)
    person = np.concatenate([adults[row], young_p, older_p])
    kind = np.concatenate([kind, np.zeros(len(young_p) + len(older_p), dtype=np.int64)])
    dates = np.concatenate([dates, young_d, older_d])
    parts.append((person, kind, dates, rng.integers(0, len(OFFENCE_CATEGORIES), len(person))))

    # ASB interventions: half of the council's (issued jointly) and the police's own.
    itype = council_asb.measures["intervention_type"]
    assert isinstance(itype, Coded)
    shared = np.flatnonzero(rng.random(len(council_asb.person)) < 0.5)
    parts.append(
        (
            council_asb.person[shared],
            np.full(len(shared), 3),
            council_asb.row_date[shared],
            len(OFFENCE_CATEGORIES) + itype.index[shared],
        )
    )
    ten_plus = pop.age >= 10
    own, _ = pick_one(pop, flag_families(pop, rng, (0.002, 0.01, 0.04)), ten_plus, rng)
    row, dates, _recent = dated_events(ctx, rng, own, 10, None, [0.8, 0.2])
    edge_p, edge_d = boundary_events(ctx, rng, np.concatenate([own, council_asb.person]), 10, 200)
    person = np.concatenate([own[row], edge_p])
    dates = np.concatenate([dates, edge_d])
    detail = np.array([len(OFFENCE_CATEGORIES) + 1, len(POLICE_DETAILS) - 1, len(OFFENCE_CATEGORIES)])
    parts.append((person, np.full(len(person), 3), dates, detail[rng.integers(0, 3, len(person))]))

    person = np.concatenate([p[0] for p in parts])
    etype = np.concatenate([p[1] for p in parts]).astype(np.int64)
    edate = np.concatenate([p[2] for p in parts])
    edetail = np.concatenate([p[3] for p in parts]).astype(np.int64)
    order = np.lexsort((edate, person))
    return PoliceRows(
        person[order], Coded(etype[order], POLICE_EVENTS), edate[order], Coded(edetail[order], POLICE_DETAILS)
    )
