"""The criteria engine: each sub-criterion at its boundary, family rules, partner flags, the ground truth.

Small hand-made worlds test each rule at its edge; the synthetic borough's ground truth tests the whole
engine, independently of linkage (the truth's own links are the links, its households the families).
Persons in the hand-made worlds have descriptive ids ("ends_on_as_of"), so a failure names a case, and the
borough tests compare counts and id sets' sizes, never a name, date of birth or address.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from upath import UPath

from sf_demo.synthetic import MIN_PROBLEMS, Borough, DirtConfig, generate_borough
from sf_demo.synthetic.dates import ages_on, window_start
from sf_demo.synthetic.sources import encode_extract, read_extract
from supporting_families.config import (
    CriteriaConfig,
    SourceSpec,
    load_criteria,
    load_sources,
)
from supporting_families.identify import (
    Identification,
    evaluate,
    identify,
    read_latest_curated,
    read_partner_flags,
)
from supporting_families.identify.criteria import PARTNER_FLAGS_COLUMNS, completed_years, months_before
from supporting_families.store import PARTNER_FLAGS_SCHEMA, write_parquet

REPO = Path(__file__).resolve().parents[3]
CRITERIA = REPO / "include" / "criteria.yaml"
NOTICE = REPO / "docs" / "supporting-families-privacy-notice.txt"
SOURCES = load_sources()
CONFIG = load_criteria()
AS_OF = date(2025, 3, 31)
DAY = timedelta(days=1)

_ARROW_TYPES = {
    "string": pa.string(),
    "code": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("s"),
    "decimal": pa.float64(),
    "integer": pa.int64(),
    "postcode": pa.string(),
    "uprn": pa.string(),
}


def curated_schema(spec: SourceSpec) -> pa.Schema:
    """The curated contract's schema for one source (docs/STORE.md; the ingest writes it)."""
    head = [
        ("source", pa.string()),
        ("extract_date", pa.date32()),
        ("file_sha256", pa.string()),
        ("row_number", pa.int64()),
    ]
    return pa.schema(head + [(c.standard, _ARROW_TYPES[c.type]) for c in spec.columns])


# --- a hand-made world -----------------------------------------------------------------------------------


class World:
    """Persons, families and curated rows written by hand; each person's record id is ``<source>:<id>``."""

    def __init__(self) -> None:
        self.people: dict[str, tuple[str, date | None]] = {}
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def person(self, pid: str, family: str | None = None, dob: date | None = date(2012, 6, 15)) -> str:
        self.people[pid] = (family or f"F-{pid}", dob)
        return pid

    def row(self, source: str, pid: str, record: str | None = None, **values: Any) -> None:
        if pid not in self.people:
            self.person(pid)
        dob = self.people[pid][1]
        self.rows[source].append(
            {"record_id": record or f"{source}:{pid}", "date_of_birth": dob, "_pid": pid, **values}
        )

    def curated(self, extract_date: date = AS_OF) -> dict[str, pa.Table]:
        out = {}
        for source, rows in self.rows.items():
            schema = curated_schema(SOURCES.sources[source])
            full = [
                {
                    "source": source,
                    "extract_date": extract_date,
                    "file_sha256": "0" * 64,
                    "row_number": i + 2,
                    **{k: v for k, v in r.items() if k != "_pid"},
                }
                for i, r in enumerate(rows)
            ]
            out[source] = pa.Table.from_pylist(full, schema=schema)
        return out

    def links(self) -> pa.Table:
        rows = {(s, r["record_id"]): r["_pid"] for s, source_rows in self.rows.items() for r in source_rows}
        return pa.table(
            {
                "source": [k[0] for k in rows],
                "record_id": [k[1] for k in rows],
                "person_id": list(rows.values()),
            }
        )

    def persons(self) -> pa.Table:
        return pa.table(
            {
                "person_id": list(self.people),
                "family_id": [v[0] for v in self.people.values()],
                "date_of_birth": pa.array([v[1] for v in self.people.values()], pa.date32()),
            }
        )

    def evaluate(
        self,
        as_of: date = AS_OF,
        config: CriteriaConfig = CONFIG,
        partner_flags: pa.Table | None = None,
    ) -> Identification:
        return evaluate(self.curated(as_of), self.links(), self.persons(), as_of, config, partner_flags)


def flagged(ident: Identification, sub: str) -> set[str]:
    f = ident.person_flags
    return set(f.filter(pc.equal(f.column("sub_criterion"), sub)).column("person_id").to_pylist())


def partner_flags(
    rows: list[tuple[str, str | None, date | None, str]], answered_at: datetime | None = None
) -> pa.Table:
    """(person_id, sub_criterion, evidence_date, partner) rows in the partner_flags contract.

    A None sub_criterion is an answer marker (the partner matched the person). With ``answered_at`` the
    table is in PARTNER_FLAGS_SCHEMA, as the receive side writes it; without, it has no answered_at, as
    files merged before answers were recorded.
    """
    agreement = {"dwp": "dwp-benefits-matching", "met-police": "met-police-wider-help"}
    table = pa.table(
        {
            "person_id": [r[0] for r in rows],
            "sub_criterion": pa.array([r[1] for r in rows], pa.string()),
            "evidence_date": pa.array([r[2] for r in rows], pa.date32()),
            "partner": [r[3] for r in rows],
            "agreement_id": [agreement.get(r[3], r[3]) for r in rows],
            "file_sha256": ["f" * 64] * len(rows),
        }
    )
    if answered_at is None:
        return table
    answered = pa.repeat(pa.scalar(answered_at, PARTNER_FLAGS_SCHEMA.field("answered_at").type), len(rows))
    return table.append_column("answered_at", answered).cast(PARTNER_FLAGS_SCHEMA)


# --- each sub-criterion at its boundary ------------------------------------------------------------------


def _terms(w: World, pid: str, values: list[float], record: str | None = None) -> None:
    terms = [("2024/25", "autumn"), ("2024/25", "spring"), ("2023/24", "summer")]
    for (year, term), value in zip(terms, values, strict=False):
        w.row("education_attendance", pid, record, academic_year=year, term=term, attendance_pct=value)


def test_attendance_below_90_is_strictly_below_and_each_term_counts_once() -> None:
    w = World()
    _terms(w, "every_term_89_9", [89.9, 89.9, 89.9])
    _terms(w, "every_term_90_0", [90.0, 90.0, 90.0])
    _terms(w, "mean_exactly_90_in_floats", [89.9, 90.1, 90.0])  # sums to 269.99999... in binary
    _terms(w, "mean_89_97", [89.9, 90.0, 90.0])
    _terms(w, "one_term_at_85", [85.0])
    # A duplicate record repeats a term: counted twice the mean would be 89.5, counted once it is 92.7.
    _terms(w, "term_listed_twice", [80.0, 99.0, 99.0])
    _terms(w, "term_listed_twice", [80.0], record="education_attendance:second_record")
    ident = w.evaluate()
    assert flagged(ident, "attendance_below_90") == {"every_term_89_9", "mean_89_97", "one_term_at_85"}
    evidence = set(ident.person_flags.column("evidence_date").to_pylist())
    assert evidence == {AS_OF}, "attendance evidence is the return's extract date"


def _episode(w: World, pid: str, kind: str, start: date, end: date | None) -> None:
    """A children's social care episode of ``kind`` from ``start`` to ``end`` (None: still open)."""
    w.row("childrens_social_care", pid, episode_type=kind, start_date=start, end_date=end)


def test_episodes_are_active_on_as_of_including_one_ending_that_day() -> None:
    w = World()
    _episode(w, "ends_on_as_of", "child_in_need", date(2024, 1, 1), AS_OF)
    _episode(w, "ended_day_before", "child_in_need", date(2024, 1, 1), AS_OF - DAY)
    _episode(w, "open", "child_in_need", date(2023, 5, 1), None)
    _episode(w, "starts_on_as_of", "child_in_need", AS_OF, None)
    _episode(w, "starts_tomorrow", "child_in_need", AS_OF + DAY, None)
    _episode(w, "open_assessment", "assessment", date(2025, 3, 1), None)  # an assessment is not a rule
    _episode(w, "plan_ends_on_as_of", "child_protection_plan", date(2024, 9, 1), AS_OF)
    _episode(w, "plan_ended_day_before", "child_protection_plan", date(2024, 9, 1), AS_OF - DAY)
    ident = w.evaluate()
    assert flagged(ident, "child_in_need") == {"ends_on_as_of", "open", "starts_on_as_of"}
    assert flagged(ident, "child_protection_plan") == {"plan_ends_on_as_of"}


def _need(w: World, pid: str, code: str, identified: date, closed: date | None) -> None:
    """An early help need ``code`` identified on ``identified``, closed on ``closed`` (None: still open)."""
    w.row("early_help", pid, need_code=code, identified_date=identified, closed_date=closed)


def test_mental_health_need_is_active_on_as_of_and_other_needs_do_not_count() -> None:
    w = World()
    _need(w, "closes_on_as_of", "mental_health", date(2024, 2, 1), AS_OF)
    _need(w, "closed_day_before", "mental_health", date(2024, 2, 1), AS_OF - DAY)
    _need(w, "open", "mental_health", date(2022, 2, 1), None)
    _need(w, "identified_on_as_of", "mental_health", AS_OF, None)
    _need(w, "substance_misuse", "substance_misuse", date(2024, 2, 1), None)
    ident = w.evaluate()
    assert flagged(ident, "mental_health") == {"closes_on_as_of", "open", "identified_on_as_of"}


def _tenancy(w: World, pid: str, weeks: int = 0, debt: float = 0.0, arrangement: bool | None = False) -> None:
    w.row(
        "housing",
        pid,
        tenancy_ref="T100001",
        weekly_rent=150.0,
        arrears_balance=weeks * 150.0,
        weeks_in_arrears=weeks,
        sundry_debt=debt,
        payment_arrangement=arrangement,
    )


def test_rent_arrears_of_8_weeks_count_and_7_do_not() -> None:
    w = World()
    _tenancy(w, "weeks_8", weeks=8)
    _tenancy(w, "weeks_7", weeks=7)
    _tenancy(w, "weeks_40", weeks=40)
    assert flagged(w.evaluate(), "rent_arrears") == {"weeks_8", "weeks_40"}


def test_unmanaged_debt_from_500_00_without_an_arrangement() -> None:
    w = World()
    _tenancy(w, "debt_500_00", debt=500.00)
    _tenancy(w, "debt_499_99", debt=499.99)
    _tenancy(w, "debt_500_00_arranged", debt=500.00, arrangement=True)
    _tenancy(w, "debt_2000_arrangement_unknown", debt=2000.00, arrangement=None)
    assert flagged(w.evaluate(), "unmanaged_debt") == {"debt_500_00", "debt_2000_arrangement_unknown"}


def _neet(w: World, pid: str, dob: date, code: str = "neet_seeking") -> None:
    w.person(pid, dob=dob)
    w.row("neet", pid, activity_code=code, activity_start_date=date(2024, 9, 1))


def test_neet_is_16_to_24_on_as_of() -> None:
    w = World()
    _neet(w, "turns_16_on_as_of", date(2009, 3, 31))
    _neet(w, "turns_16_tomorrow", date(2009, 4, 1))
    _neet(w, "turns_25_on_as_of", date(2000, 3, 31))
    _neet(w, "turns_25_tomorrow", date(2000, 4, 1))
    _neet(w, "not_available_aged_20", date(2004, 7, 1), code="neet_not_available")
    _neet(w, "activity_not_known", date(2006, 7, 1), code="not_known")
    _neet(w, "in_education", date(2006, 7, 1), code="education")
    ident = w.evaluate()
    assert flagged(ident, "neet") == {"turns_16_on_as_of", "turns_25_tomorrow", "not_available_aged_20"}


@pytest.mark.parametrize(
    ("as_of", "is_neet"),
    [(date(2029, 2, 28), True), (date(2029, 3, 1), False)],
    ids=["28-feb-still-24", "1-mar-turns-25"],
)
def test_a_29_february_birthday_counts_from_1_march_in_a_common_year(as_of: date, is_neet: bool) -> None:
    w = World()
    _neet(w, "born_29_feb", date(2004, 2, 29))
    assert (flagged(w.evaluate(as_of), "neet") == {"born_29_feb"}) is is_neet


def _incident(w: World, pid: str, at: datetime, role: str, ref: str) -> None:
    """A domestic abuse incident ``ref`` at ``at``, in which ``pid`` had ``role``."""
    w.row("domestic_abuse", pid, incident_ref=ref, role=role, incident_datetime=at)


def _dated_events(w: World, day: date, pid: str) -> None:
    w.person(pid, dob=date(2008, 1, 1))
    at = datetime(day.year, day.month, day.day, 0, 5) if day != AS_OF else datetime(day.year, 3, 31, 23, 55)
    _incident(w, pid, at, role="child_present", ref="INC1000001")
    w.row("youth_offending", pid, outcome_date=day, outcome_type="conviction", offence_category="theft")
    w.row("asb", pid, intervention_type="community_protection_warning", intervention_date=day)


def test_12_months_counts_the_window_first_day_and_not_the_day_before() -> None:
    w = World()
    first = date(2024, 3, 31)  # as_of 31 March 2025 minus one calendar year
    _dated_events(w, first, "exactly_12_months")
    _dated_events(w, first - DAY, "12_months_and_a_day")
    _dated_events(w, AS_OF, "on_as_of")
    _dated_events(w, AS_OF + DAY, "after_as_of")
    ident = w.evaluate()
    expected = {"exactly_12_months", "on_as_of"}
    assert flagged(ident, "domestic_abuse_incident") == expected
    assert flagged(ident, "asb_intervention") == expected
    assert flagged(ident, "proven_offence_or_caution") == expected


def test_a_datetime_counts_by_its_date() -> None:
    w = World()
    # The window's first day is 31 March 2024: five minutes either side of its first midnight.
    w.person("late_evening_day_before", dob=date(1990, 1, 1))
    _incident(w, "late_evening_day_before", datetime(2024, 3, 30, 23, 55), role="victim", ref="INC1000002")
    w.person("just_after_midnight", dob=date(1990, 1, 1))
    _incident(w, "just_after_midnight", datetime(2024, 3, 31, 0, 5), role="perpetrator", ref="INC1000003")
    assert flagged(w.evaluate(), "domestic_abuse_incident") == {"just_after_midnight"}


@pytest.mark.parametrize(
    ("as_of", "inside", "outside"),
    [
        (date(2024, 2, 29), date(2023, 2, 28), date(2023, 2, 27)),
        (date(2025, 2, 28), date(2024, 2, 28), date(2024, 2, 27)),
        (date(2025, 3, 1), date(2024, 3, 1), date(2024, 2, 29)),
    ],
    ids=["as_of-29-feb", "as_of-28-feb-after-leap-year", "as_of-1-mar-after-29-feb"],
)
def test_the_window_around_29_february(as_of: date, inside: date, outside: date) -> None:
    w = World()
    for pid, day in (("inside", inside), ("outside", outside)):
        w.person(pid, dob=date(1980, 5, 5))
        w.row("asb", pid, intervention_type="civil_injunction", intervention_date=day)
    assert flagged(w.evaluate(as_of), "asb_intervention") == {"inside"}


def test_offence_or_caution_only_for_a_young_person_under_25_at_the_time() -> None:
    w = World()
    day = date(2024, 10, 1)

    def outcome(pid: str, dob: date, kind: str) -> None:
        w.person(pid, dob=dob)
        w.row("youth_offending", pid, outcome_date=day, outcome_type=kind, offence_category="theft")

    outcome("aged_24_at_offence", date(2000, 10, 2), "conviction")
    outcome("turned_25_on_offence_day", date(1999, 10, 1), "conviction")
    outcome("youth_caution", date(2008, 1, 1), "youth_caution")
    outcome("conditional_caution", date(2008, 1, 1), "youth_conditional_caution")
    outcome("community_resolution", date(2008, 1, 1), "community_resolution")
    ident = w.evaluate()
    assert flagged(ident, "proven_offence_or_caution") == {
        "aged_24_at_offence",
        "youth_caution",
        "conditional_caution",
    }


def test_only_the_latest_extract_on_or_before_as_of_is_used() -> None:
    w = World()
    _tenancy(w, "in_arrears_now", weeks=9)
    older = World()
    _tenancy(older, "in_arrears_last_month", weeks=12)
    now, before = w.curated(AS_OF), older.curated(date(2025, 2, 28))
    curated = {"housing": pa.concat_tables([now["housing"], before["housing"]])}
    links = pa.concat_tables([w.links(), older.links()])
    persons = pa.concat_tables([w.persons(), older.persons()])
    assert flagged(evaluate(curated, links, persons, AS_OF, CONFIG), "rent_arrears") == {"in_arrears_now"}
    earlier = evaluate(curated, links, persons, date(2025, 3, 1), CONFIG)
    assert flagged(earlier, "rent_arrears") == {"in_arrears_last_month"}


# --- families ----------------------------------------------------------------------------------------------


def _family(w: World, family: str, *problems: str) -> None:
    """One member per problem: attendance, domestic abuse, arrears, neet, mental health."""
    for problem in problems:
        pid = f"{family}_{problem}"
        if problem == "attendance":
            w.person(pid, family, date(2014, 1, 1))
            _terms(w, pid, [70.0, 75.0, 80.0])
        elif problem == "domestic_abuse":
            w.person(pid, family, date(1985, 1, 1))
            _incident(w, pid, datetime(2024, 12, 1, 10, 0), role="victim", ref="INC1000009")
        elif problem == "arrears":
            w.person(pid, family, date(1985, 1, 1))
            _tenancy(w, pid, weeks=10)
        elif problem == "neet":
            w.person(pid, family, date(2006, 1, 1))
            w.row("neet", pid, activity_code="neet_seeking", activity_start_date=date(2024, 9, 1))
        elif problem == "mental_health":
            w.person(pid, family, date(1985, 1, 1))
            _need(w, pid, "mental_health", date(2024, 1, 1), None)


def _worklist(ident: Identification) -> dict[str, int]:
    wl = ident.worklist
    return dict(zip(wl.column("family_id").to_pylist(), wl.column("problems").to_pylist(), strict=True))


def test_a_family_needs_at_least_min_problems_headline_problems() -> None:
    w = World()
    _family(w, "two", "attendance", "domestic_abuse")
    _family(w, "one", "domestic_abuse")
    _family(w, "three", "attendance", "mental_health", "arrears")
    assert _worklist(w.evaluate()) == {"two": 2, "three": 3}
    assert _worklist(w.evaluate(config=CONFIG.model_copy(update={"min_problems": 3}))) == {"three": 3}
    assert set(_worklist(w.evaluate(config=CONFIG.model_copy(update={"min_problems": 1})))) == {
        "one",
        "two",
        "three",
    }


def test_two_sub_criteria_of_one_headline_problem_count_once() -> None:
    w = World()
    _family(w, "workless", "arrears", "neet")  # both under worklessness_financial_exclusion
    _family(w, "eligible", "arrears", "neet", "mental_health")
    ident = w.evaluate()
    assert _worklist(ident) == {"eligible": 2}
    fp = ident.family_problems.filter(pc.equal(ident.family_problems.column("family_id"), "workless"))
    assert fp.num_rows == 1
    row = fp.to_pylist()[0]
    assert row["headline"] == "worklessness_financial_exclusion"
    assert sorted(row["sub_criteria"]) == ["neet", "rent_arrears"]
    assert row["persons"] == 2


def test_outputs_carry_reasons_and_one_flag_per_person_sub_criterion_and_source() -> None:
    w = World()
    _family(w, "fam", "attendance", "mental_health")
    _need(w, "fam_mental_health", "mental_health", date(2024, 6, 1), None)  # a second open need, later
    ident = w.evaluate()
    flags = ident.person_flags
    mh = flags.filter(pc.equal(flags.column("sub_criterion"), "mental_health")).to_pylist()
    assert len(mh) == 1, "two open needs of one person give one flag"
    assert mh[0]["evidence_date"] == date(2024, 6, 1), "the latest evidence date is kept"
    assert mh[0]["headline"] == "health" and mh[0]["source"] == "early_help" and mh[0]["partner"] is None
    assert "mental health" in mh[0]["reason"] and "early_help" in mh[0]["reason"]
    wl = ident.worklist.to_pylist()[0]
    assert wl["headline_problems"] == ["school_attendance", "health"], "in the configuration's order"
    assert len(wl["reasons"]) == 2 and wl["reasons"][0].startswith("Children who have not been attending")
    assert wl["members"] == 2 and wl["persons_flagged"] == 2 and wl["as_of"] == AS_OF


def test_partner_flags_add_problems_and_cite_the_partner() -> None:
    w = World()
    _family(w, "fam", "attendance")
    w.person("parent", "fam", date(1985, 1, 1))
    w.person("older_brother", "fam", date(1999, 10, 1))
    _family(w, "other", "domestic_abuse")
    assert _worklist(w.evaluate()) == {}
    flags = partner_flags(
        [
            ("parent", "out_of_work_benefits", None, "dwp"),
            ("older_brother", "proven_offence_or_caution", date(2024, 10, 1), "met-police"),  # 25 that day
            (
                "other_domestic_abuse",
                "asb_intervention",
                date(2024, 3, 30),
                "met-police",
            ),  # 12 months + 1 day
            ("other_domestic_abuse", "attendance_below_90", date(2025, 1, 1), "dwp"),  # not a DWP criterion
            ("other_domestic_abuse", "out_of_work_benefits", None, "met-police"),  # not a police criterion
        ]
    )
    ident = w.evaluate(partner_flags=flags)
    assert _worklist(ident) == {"fam": 2}
    assert ident.counts["partner_flags_ignored"] == 2
    cited = ident.person_flags.filter(pc.is_valid(ident.person_flags.column("partner"))).to_pylist()
    assert len(cited) == 1
    assert cited[0]["person_id"] == "parent" and cited[0]["partner"] == "dwp"
    assert cited[0]["source"] == "dwp-benefits-matching" and cited[0]["evidence_date"] is None
    assert "dwp" in cited[0]["reason"]
    assert ident.worklist.to_pylist()[0]["from_partner"] is True
    in_window = partner_flags([("other_domestic_abuse", "asb_intervention", date(2024, 3, 31), "met-police")])
    assert _worklist(w.evaluate(partner_flags=in_window)) == {"other": 2}


def test_flags_for_unlinked_rows_or_unknown_persons_are_counted_not_kept() -> None:
    w = World()
    _family(w, "fam", "attendance", "mental_health")
    links = w.links()
    links = links.filter(pc.not_equal(links.column("source"), "early_help"))  # the need has no link
    ident = evaluate(
        w.curated(),
        links,
        w.persons(),
        AS_OF,
        CONFIG,
        partner_flags([("ghost", "out_of_work_benefits", None, "dwp")]),
    )
    assert ident.counts["unlinked_rows"]["early_help"] == 1
    assert ident.counts["flags_without_register_person"] == 1
    assert _worklist(ident) == {}


# --- a partner's later answer ---------------------------------------------------------------------------

#: When the deliveries that two returns answer were delivered: the March question is the later one.
JANUARY = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
MARCH = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _answers(*tables: pa.Table) -> pa.Table:
    """Several merged returns read together, as read_partner_flags concatenates the files."""
    return pa.concat_tables(tables, promote_options="permissive")


def _benefits_world() -> World:
    w = World()
    _family(w, "fam", "attendance")
    w.person("parent", "fam", date(1985, 1, 1))
    _family(w, "other", "attendance")
    w.person("other_parent", "other", date(1985, 1, 1))
    return w


def test_a_status_is_superseded_by_the_partners_later_answer_without_it() -> None:
    w = _benefits_world()
    january = partner_flags(
        [("parent", "out_of_work_benefits", None, "dwp"), ("parent", None, None, "dwp")], JANUARY
    )
    assert _worklist(w.evaluate(partner_flags=january)) == {"fam": 2}
    # March: DWP matched the parent and says nothing about benefits. The later answer is listed first, as
    # file order (a name) says nothing about which question came first.
    march = partner_flags([("parent", None, None, "dwp")], MARCH)
    ident = w.evaluate(partner_flags=_answers(march, january))
    assert flagged(ident, "out_of_work_benefits") == set()
    assert _worklist(ident) == {}
    assert ident.counts["partner_flags_ignored"] == 0
    # A later answer with another status replaces the earlier status by its own.
    march = partner_flags(
        [("parent", "disability_benefits", None, "dwp"), ("parent", None, None, "dwp")], MARCH
    )
    ident = w.evaluate(partner_flags=_answers(january, march))
    assert flagged(ident, "out_of_work_benefits") == set()
    assert flagged(ident, "disability_benefits") == {"parent"}
    assert _worklist(ident) == {"fam": 2}


def test_an_identification_of_an_earlier_day_uses_only_the_answers_given_by_then() -> None:
    w = _benefits_world()
    january = partner_flags(
        [("parent", "out_of_work_benefits", None, "dwp"), ("parent", None, None, "dwp")], JANUARY
    )
    march = partner_flags([("parent", None, None, "dwp")], MARCH)
    end_of_january = w.evaluate(as_of=date(2025, 1, 31), partner_flags=_answers(january, march))
    assert flagged(end_of_january, "out_of_work_benefits") == {"parent"}, "March's answer was not given yet"
    before_any = w.evaluate(as_of=date(2025, 1, 5), partner_flags=_answers(january, march))
    assert flagged(before_any, "out_of_work_benefits") == set()
    on_the_day = w.evaluate(as_of=JANUARY.date(), partner_flags=_answers(january, march))
    assert flagged(on_the_day, "out_of_work_benefits") == {"parent"}


def test_a_status_stands_when_repeated_or_when_the_later_answer_is_not_about_the_person() -> None:
    w = _benefits_world()
    january = partner_flags(
        [("parent", "out_of_work_benefits", None, "dwp"), ("parent", None, None, "dwp")], JANUARY
    )
    repeated = partner_flags(
        [("parent", "out_of_work_benefits", None, "dwp"), ("parent", None, None, "dwp")], MARCH
    )
    ident = w.evaluate(partner_flags=_answers(january, repeated))
    assert flagged(ident, "out_of_work_benefits") == {"parent"}
    assert ident.person_flags.filter(pc.is_valid(ident.person_flags.column("partner"))).num_rows == 1
    assert _worklist(ident) == {"fam": 2}
    # The March return matched someone else only (the parent was no trace or rejected there): no answer
    # about the parent, so January's stands. Another partner's later answer supersedes nothing either.
    others = partner_flags([("other_parent", None, None, "dwp"), ("parent", None, None, "met-police")], MARCH)
    ident = w.evaluate(partner_flags=_answers(january, others))
    assert flagged(ident, "out_of_work_benefits") == {"parent"}
    assert _worklist(ident) == {"fam": 2}


def test_a_windowed_event_is_not_superseded_by_a_later_answer_without_it() -> None:
    w = _benefits_world()
    january = partner_flags(
        [
            ("parent", "asb_intervention", date(2024, 12, 1), "met-police"),
            ("parent", None, None, "met-police"),
        ],
        JANUARY,
    )
    march = partner_flags([("parent", None, None, "met-police")], MARCH)
    ident = w.evaluate(partner_flags=_answers(march, january))
    # An intervention stays true after it happened: it counts until its 12-month window passes.
    assert flagged(ident, "asb_intervention") == {"parent"}
    assert _worklist(ident) == {"fam": 2}
    assert _worklist(w.evaluate(as_of=date(2025, 12, 2), partner_flags=_answers(march, january))) == {}


def test_answer_markers_never_count_and_flags_without_answered_at_stand(tmp_path: Path) -> None:
    w = _benefits_world()
    markers = partner_flags(
        [("parent", None, None, "dwp"), ("other_parent", None, None, "met-police"), ("x", None, None, "ons")],
        MARCH,
    )
    ident = w.evaluate(partner_flags=markers)
    assert ident.person_flags.filter(pc.is_valid(ident.person_flags.column("partner"))).num_rows == 0
    assert ident.counts["partner_flags_ignored"] == 0, "a marker is not a flag, so it is never ignored"
    # A file merged before answers were recorded (no answered_at) beside a newer one: its flag is not
    # superseded by the newer answer, and supersedes nothing itself.
    store = UPath(tmp_path.as_uri())
    folder = store / "register" / "partner_flags"
    legacy = partner_flags([("parent", "out_of_work_benefits", None, "dwp")])
    write_parquet(legacy, folder / "dwp-benefits-matching__dwp-return-dold.parquet")
    newer = partner_flags(
        [
            ("parent", None, None, "dwp"),
            ("other_parent", "out_of_work_benefits", None, "dwp"),
            ("other_parent", None, None, "dwp"),
        ],
        MARCH,
    )
    write_parquet(newer, folder / "dwp-benefits-matching__dwp-return-dnew.parquet")
    read = read_partner_flags(store)
    assert read is not None and set(read.column_names) == set(PARTNER_FLAGS_COLUMNS)
    assert read.num_rows == 4 and read.column("answered_at").null_count == 1
    ident = w.evaluate(partner_flags=read)
    assert flagged(ident, "out_of_work_benefits") == {"parent", "other_parent"}
    assert _worklist(ident) == {"fam": 2, "other": 2}
    # Only legacy files: no answered_at column at all.
    write_parquet(legacy, folder / "dwp-benefits-matching__dwp-return-dnew.parquet")
    only_legacy = read_partner_flags(store)
    assert only_legacy is not None and "answered_at" not in only_legacy.column_names
    assert flagged(w.evaluate(partner_flags=only_legacy), "out_of_work_benefits") == {"parent"}


# --- the ground truth ------------------------------------------------------------------------------------

N_PERSONS = 3000
SEED = 7
TRUTH_SOURCE = {"dwp-benefits-matching": "dwp", "met-police-wider-help": "met_police"}


def curated_from_borough(borough: Borough, *, agencies: bool = True) -> dict[str, pa.Table]:
    """Each extract as the files say (read back with sources.yaml alone), in the curated contract's types;
    without the voluntary-sector agencies' (sent over SFTP with the partners' answers) unless ``agencies``."""
    out = {}
    for name, spec in SOURCES.sources.items():
        if spec.inbound is not None and not agencies:
            continue
        table = read_extract(encode_extract(borough.extracts[name], spec), spec)
        n = table.num_rows
        head = {
            "source": pa.repeat(pa.scalar(name), n),
            "extract_date": pa.repeat(pa.scalar(borough.as_of, pa.date32()), n),
            "file_sha256": pa.repeat(pa.scalar("0" * 64), n),
            "row_number": pa.array(np.arange(2, n + 2), pa.int64()),
        }
        out[name] = pa.table({**head, **{c: table.column(c) for c in table.column_names}}).cast(
            curated_schema(spec)
        )
    return out


def truth_partner_flags(borough: Borough) -> pa.Table:
    """What DWP and the police would return, from the partners' truth, as partner_flags rows."""
    dwp, police = borough.dwp_benefits, borough.police_events
    parts = []
    for column, sub in (
        ("out_of_work", "out_of_work_benefits"),
        ("disability_related", "disability_benefits"),
    ):
        t = dwp.filter(dwp.column(column))
        parts.append(("dwp", sub, t.column("person_id"), t.column("award_start_date")))
    for kinds, sub in (
        (["proven_offence", "caution"], "proven_offence_or_caution"),
        (["asb_intervention"], "asb_intervention"),
    ):
        t = police.filter(pc.is_in(police.column("event_type"), pa.array(kinds)))
        parts.append(("met-police", sub, t.column("person_id"), t.column("event_date")))
    agreement = {"dwp": "dwp-benefits-matching", "met-police": "met-police-wider-help"}
    return pa.concat_tables(
        pa.table(
            {
                "person_id": ids,
                "sub_criterion": pa.repeat(pa.scalar(sub), len(ids)),
                "evidence_date": pc.cast(days, pa.date32()),
                "partner": pa.repeat(pa.scalar(partner), len(ids)),
                "agreement_id": pa.repeat(pa.scalar(agreement[partner]), len(ids)),
                "file_sha256": pa.repeat(pa.scalar("f" * 64), len(ids)),
            }
        )
        for partner, sub, ids, days in parts
    )


def households_as_families(borough: Borough) -> pa.Table:
    persons = borough.persons
    return pa.table(
        {
            "person_id": persons.column("person_id"),
            "family_id": persons.column("household_id"),
            "date_of_birth": persons.column("date_of_birth"),
        }
    )


def truth_eligible_households(borough: Borough, with_partners: bool) -> set[str]:
    crit = borough.person_criteria
    if not with_partners:
        crit = crit.filter(pc.equal(crit.column("origin"), "internal"))
    per = crit.group_by("household_id").aggregate([("headline_problem", "count_distinct")])
    eligible = per.filter(pc.greater_equal(per.column("headline_problem_count_distinct"), MIN_PROBLEMS))
    return set(eligible.column("household_id").to_pylist())


@dataclass(frozen=True)
class Scenario:
    """A generated borough whose repr names only the scenario: pytest prints a failing test's arguments,
    and a borough's repr would show extract rows."""

    name: str
    borough: Borough

    def __repr__(self) -> str:
        return f"Scenario({self.name})"


@pytest.fixture(scope="module", params=["clean", "dirty"])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    dirt = DirtConfig.clean() if request.param == "clean" else DirtConfig()
    return Scenario(request.param, generate_borough(N_PERSONS, seed=SEED, as_of=AS_OF, dirt=dirt))


def _flag_set(table: pa.Table, source_map: dict[str, str] | None = None) -> set[tuple[str, str, str]]:
    source = table.column("source").to_pylist()
    if source_map:
        source = [source_map.get(s, s) for s in source]
    return set(
        zip(
            table.column("person_id").to_pylist(),
            table.column("sub_criterion").to_pylist(),
            source,
            strict=True,
        )
    )


@pytest.mark.parametrize("with_partners", [False, True], ids=["internal", "with-partners"])
def test_identification_matches_the_ground_truth(scenario: Scenario, with_partners: bool) -> None:
    # The truth's links (source, record_id -> true person) are the links, its households the families: the
    # engine is scored on its own, independently of linkage. Dirt never changes who is who in the truth's
    # links, so the dirty borough must give exactly the same answer. Assertions compare counts only.
    borough = scenario.borough
    flags = truth_partner_flags(borough) if with_partners else None
    ident = evaluate(
        curated_from_borough(borough, agencies=with_partners),
        borough.links,
        households_as_families(borough),
        AS_OF,
        CONFIG,
        flags,
    )
    expected = truth_eligible_households(borough, with_partners)
    got = set(ident.worklist.column("family_id").to_pylist())
    n_expected, only_engine, only_truth = len(expected), len(got - expected), len(expected - got)
    assert n_expected >= 10, "the borough is big enough to have eligible families"
    assert only_engine == 0 and only_truth == 0, "eligible households differ from the truth"

    crit = borough.person_criteria
    if not with_partners:
        crit = crit.filter(pc.equal(crit.column("origin"), "internal"))
    truth_flags = _flag_set(crit)
    engine_flags = _flag_set(ident.person_flags, TRUTH_SOURCE)
    n_engine, n_rows = len(engine_flags), ident.person_flags.num_rows
    assert n_engine == n_rows, "one flag per person, sub-criterion and source"
    flags_only_engine, flags_only_truth = len(engine_flags - truth_flags), len(truth_flags - engine_flags)
    assert flags_only_engine == 0 and flags_only_truth == 0, "person flags differ from the truth"


def test_reasons_are_templates_without_personal_values(scenario: Scenario) -> None:
    borough = scenario.borough
    ident = evaluate(
        curated_from_borough(borough),
        borough.links,
        households_as_families(borough),
        AS_OF,
        CONFIG,
        truth_partner_flags(borough),
    )
    f = ident.person_flags
    n_reasons = len(set(f.column("reason").to_pylist()))
    combos = set(zip(f.column("sub_criterion").to_pylist(), f.column("source").to_pylist(), strict=True))
    n_combos = len(combos)
    assert n_reasons == n_combos, "one reason per sub-criterion and source, whoever the person"
    postcode = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}")
    iso_date = re.compile(r"\d{4}-\d{2}-\d{2}")
    texts = set(f.column("reason").to_pylist()) | {
        r for rs in ident.worklist.column("reasons").to_pylist() for r in rs
    }
    leaks = sum(1 for r in texts if postcode.search(r) or iso_date.search(r))
    assert leaks == 0, "a reason holds a postcode or a date"


# --- calendar rules: the same as the generator's ----------------------------------------------------------


def test_months_before_and_completed_years_agree_with_the_truths_calendar() -> None:
    days = [date(2023, 1, 1) + timedelta(days=i) for i in range(0, 3 * 366)]
    assert all(months_before(d, 12) == window_start(d) for d in days)
    assert months_before(date(2025, 3, 31), 1) == date(2025, 2, 28)
    dobs = np.array([np.datetime64("2004-02-29"), np.datetime64("2008-02-29"), np.datetime64("2010-03-01")])
    for on in (date(2025, 2, 28), date(2025, 3, 1), date(2028, 2, 28), date(2028, 2, 29)):
        ours = completed_years(pa.array(dobs), on).to_pylist()
        assert ours == ages_on(dobs, on).tolist(), on.isoformat()


# --- the store -------------------------------------------------------------------------------------------


def test_identify_reads_the_latest_curated_files_writes_outputs_and_returns_counts(tmp_path: Path) -> None:
    store = UPath(tmp_path.as_uri())
    w = World()
    _family(w, "fam", "attendance", "arrears")
    _family(w, "solo", "mental_health")
    for source, table in w.curated(AS_OF).items():
        write_parquet(table, store / "curated" / source / f"{source}_{AS_OF.isoformat()}.parquet")
    older = World()
    _family(older, "solo", "arrears")  # last month's housing extract: superseded
    for source, table in older.curated(date(2025, 2, 28)).items():
        write_parquet(table, store / "curated" / source / f"{source}_2025-02-28.parquet")
    persons = pa.concat_tables([w.persons(), older.persons()])
    write_parquet(persons, store / "register" / "persons.parquet")
    links = pa.concat_tables([w.links(), older.links()])
    write_parquet(links, store / "register" / "links.parquet")
    write_parquet(
        partner_flags([("solo_mental_health", "out_of_work_benefits", None, "dwp")]),
        store / "register" / "partner_flags" / "dwp-benefits-matching_2025-04-02.parquet",
    )
    curated, as_of = read_latest_curated(store, list(SOURCES.sources))
    assert as_of == AS_OF and set(curated) == {"education_attendance", "housing", "early_help"}

    counts = identify(store, list(SOURCES.sources))
    assert counts["eligible_families"] == 2
    assert counts["flags_by_source"] == {
        "dwp-benefits-matching": 1,
        "early_help": 1,
        "education_attendance": 1,
        "housing": 1,
    }
    folder = tmp_path / "identification" / AS_OF.isoformat()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["family_problems.parquet", "person_flags.parquet", "summary.json", "worklist.parquet"]
    summary_text = (folder / "summary.json").read_text()
    assert "fam_" not in summary_text and "solo_" not in summary_text, "the summary holds counts, not ids"
    assert json.loads(summary_text)["criteria_sha256"]
    earlier = identify(store, list(SOURCES.sources), as_of=date(2025, 2, 28))
    assert earlier["as_of"] == "2025-02-28" and earlier["eligible_families"] == 0
    assert earlier["flags_by_source"] == {"dwp-benefits-matching": 1, "housing": 1}, "last month's files"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    identify(store, list(SOURCES.sources))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "re-running gives the same files"
