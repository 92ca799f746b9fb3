"""The criteria engine: which families meet the Supporting Families criteria on a day, and why.

The privacy notice: "To be eligible for the programme a family must be experiencing at least two of the
following", then six headline problems with their sub-criteria. ``include/criteria.yaml`` holds them as rules
(thresholds, windows, codes, the minimum number of problems) because national guidance changes them;
:mod:`supporting_families.config.criteria` loads that file strictly, and this module applies it, vectorised,
to tables: the curated extracts, the person register and the partners' returned flags in, the tables below
out. Reading them from the store and writing the answer back is :mod:`supporting_families.identify.store`.

What comes out is evidence for practitioners, never a decision about a person (UK GDPR Article 22; the
notice: "You have a right not to be subject to automated decision-making including profiling"):

* ``person_flags``: one row per person, sub-criterion and source, each with its reason (headline problem,
  sub-criterion, source, evidence date, the partner whose return supplied it or null, and a sentence that
  names the rule, never a personal value);
* ``family_problems``: one row per family and headline problem present (two sub-criteria of one headline
  problem count once);
* ``worklist``: the families with at least ``min_problems`` headline problems, with their problems and
  reasons. The notice: a practitioner "will be informed that they meet Supporting Families criteria and the
  reasons for this". A family is "assessed as meeting the criteria" only once a practitioner records it
  (:mod:`supporting_families.identify.assessment`).

Families: the sources record no relationships, so the register's family is the household (persons at one
property: the same UPRN, else the same normalised first address line and postcode) and ``family_id`` equals
``household_id``. The engine itself only reads ``persons.family_id``, so a finer family definition later
changes no code here. The synthetic generator's truth has finer families; tests score at household level.

The rules reproduce ``include/sf_demo/synthetic/truth.py`` exactly (its docstring is the specification):
the 12-month window is ``[as_of minus 12 calendar months, as_of]`` closed (29 February minus a year is
28 February), "active on as_of" includes an episode ending on as_of, ages are completed years (a 29 February
birthday counts from 1 March in a common year), attendance is the mean over the pupil's terms, each once.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from supporting_families.config.criteria import (
    ActiveOnAsOf,
    AgedOnAsOf,
    AtLeast,
    CriteriaConfig,
    InternalRule,
    MeanBelow,
    WithinWindow,
)
from supporting_families.store.schemas import PARTNER_FLAGS_SCHEMA

__all__ = [
    "FAMILY_PROBLEMS_SCHEMA",
    "PARTNER_FLAGS_COLUMNS",
    "PERSON_FLAGS_SCHEMA",
    "WORKLIST_SCHEMA",
    "Identification",
    "completed_years",
    "evaluate",
    "months_before",
]

log = logging.getLogger(__name__)


# --- calendar --------------------------------------------------------------------------------------------


def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier, clamped to the month's end (29 Feb - 12 -> 28 Feb)."""
    index = day.year * 12 + (day.month - 1) - months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def completed_years(dob: Any, on: date | Any) -> Any:
    """Completed years of age on ``on`` (a date or an array of dates): the birthday counts from its own
    date, so a 29 February birthday counts from 1 March in a common year (truth.py, ``ages_on``)."""
    y, m, d = pc.year(dob), pc.month(dob), pc.day(dob)
    if isinstance(on, date):
        oy, om, od = on.year, on.month, on.day
    else:
        oy, om, od = pc.year(on), pc.month(on), pc.day(on)
    before = pc.or_(pc.less(om, m), pc.and_(pc.equal(om, m), pc.less(od, d)))
    return pc.subtract(pc.subtract(oy, y), pc.cast(before, pa.int64()))


# --- evaluation ------------------------------------------------------------------------------------------

#: One row per person, sub-criterion and source.
PERSON_FLAGS_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("family_id", pa.string(), nullable=False),
        pa.field("headline", pa.string(), nullable=False),
        pa.field("sub_criterion", pa.string(), nullable=False),
        #: the internal source, or for a partner's flag the agreement whose return supplied it
        pa.field("source", pa.string(), nullable=False),
        #: the latest evidence date among the rows that met the rule (null: a partner gave none)
        pa.field("evidence_date", pa.date32()),
        #: the partner's code for flags from a return; null for the council's own sources
        pa.field("partner", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

FAMILY_PROBLEMS_SCHEMA = pa.schema(
    [
        pa.field("family_id", pa.string(), nullable=False),
        pa.field("headline", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("sub_criteria", pa.list_(pa.string())),
        pa.field("sources", pa.list_(pa.string())),
        pa.field("persons", pa.int64(), nullable=False),
        pa.field("latest_evidence_date", pa.date32()),
        pa.field("from_partner", pa.bool_(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

WORKLIST_SCHEMA = pa.schema(
    [
        pa.field("as_of", pa.date32(), nullable=False),
        pa.field("family_id", pa.string(), nullable=False),
        pa.field("problems", pa.int64(), nullable=False),
        pa.field("headline_problems", pa.list_(pa.string())),
        pa.field("reasons", pa.list_(pa.string())),
        pa.field("persons_flagged", pa.int64(), nullable=False),
        pa.field("members", pa.int64(), nullable=False),
        pa.field("latest_evidence_date", pa.date32()),
        pa.field("from_partner", pa.bool_(), nullable=False),
    ]
)

#: The columns of ``PARTNER_FLAGS_SCHEMA`` the engine reads: all but the return file's SHA-256, which is
#: there for the auditor. A row with a null ``sub_criterion`` is an answer marker: the partner matched the
#: person, and it never counts as a flag. ``answered_at`` dates the answer.
PARTNER_FLAGS_COLUMNS: Final = tuple(name for name in PARTNER_FLAGS_SCHEMA.names if name != "file_sha256")
#: Columns a partner_flags table may lack: files merged before answers were recorded have no answered_at.
_OPTIONAL_PARTNER_FLAGS_COLUMNS = frozenset({"answered_at"})
_ANSWERED_AT_TYPE = PARTNER_FLAGS_SCHEMA.field("answered_at").type

_HITS_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.string()),
        pa.field("sub_criterion", pa.string()),
        pa.field("source", pa.string()),
        pa.field("partner", pa.string()),
        pa.field("evidence_date", pa.date32()),
    ]
)


@dataclass(frozen=True)
class Identification:
    """The engine's answer on ``as_of``: flags with reasons, problems per family, the worklist, counts."""

    as_of: date
    person_flags: pa.Table
    family_problems: pa.Table
    worklist: pa.Table
    #: numbers only (never a person): persons, families, flags by source, families per headline problem...
    counts: dict[str, Any] = field(default_factory=dict)


def _as_date32(values: Any) -> Any:
    return values if values.type == pa.date32() else pc.cast(values, pa.date32())


def _latest_extract(table: pa.Table, as_of: date) -> tuple[pa.Table, date] | None:
    """The rows of the source's latest extract dated on or before as_of (each extract is a full snapshot)."""
    dates = table.column("extract_date")
    usable = pc.filter(dates, pc.less_equal(dates, pa.scalar(as_of, pa.date32())))
    latest = pc.max(usable).as_py() if len(usable) else None
    if latest is None:
        return None
    mask = pc.equal(dates, pa.scalar(latest, pa.date32()))
    return table.filter(mask), latest


def _link(rows: pa.Table, source: str, links: pa.Table) -> pa.Table:
    """The rows with the register's ``person_id`` of their (source, record_id); unlinked rows drop out."""
    mine = links.filter(pc.equal(links.column("source"), source)).select(["record_id", "person_id"])
    return rows.join(mine, keys="record_id", join_type="inner", use_threads=True)


def _attach_dob(rows: pa.Table, persons: pa.Table) -> pa.Table:
    """The rows with ``_dob``: the record's own date of birth, else the register's (for age rules)."""
    own = rows.column("date_of_birth") if "date_of_birth" in rows.column_names else None
    if own is not None and own.null_count == 0:
        # The usual case: every curated row carries its date of birth, so no join with the register.
        return rows.append_column("_dob", own)
    register = persons.select(["person_id", "date_of_birth"]).rename_columns(["person_id", "_register_dob"])
    joined = register.join(rows, keys="person_id", join_type="right outer")
    dob = joined.column("_register_dob")
    if own is not None:
        dob = pc.coalesce(joined.column("date_of_birth"), dob)
    return joined.append_column("_dob", dob)


def _hits(met: pa.Table, evidence_column: str | None, default: Any) -> pa.Table:
    """(person_id, evidence_date) of the rows that met a rule: the configured evidence column, else
    ``default`` (a column of the rows, or one date for all of them)."""
    if evidence_column is not None:
        evidence = met.column(evidence_column)
    elif isinstance(default, str):
        evidence = met.column(default)
    else:
        evidence = pa.repeat(pa.scalar(default, pa.date32()), met.num_rows)
    return pa.table({"person_id": met.column("person_id"), "evidence_date": _as_date32(evidence)})


def _mean_below(rule: MeanBelow, rows: pa.Table, extract_date: date) -> pa.Table:
    measure = rule.measure
    keys = ["person_id", *rule.per]
    extra = [rule.evidence_date] if rule.evidence_date and rule.evidence_date not in keys else []
    t = rows.select([*keys, measure, *extra]).filter(pc.is_valid(rows.column(measure)))
    t = t.set_column(len(keys), measure, pc.cast(t.column(measure), pa.float64()))
    # "each term once": a term listed twice (a duplicate record, two schools) weighs once.
    per_period = t.group_by(keys).aggregate([(measure, "mean"), *[(c, "max") for c in extra]])
    per_person = per_period.group_by("person_id").aggregate(
        [(f"{measure}_mean", "sum"), (f"{measure}_mean", "count"), *[(f"{c}_max", "max") for c in extra]]
    )
    total = per_person.column(f"{measure}_mean_sum")
    count = pc.cast(per_person.column(f"{measure}_mean_count"), pa.float64())
    # Rounding to 9 places removes floating-point noise (89.9 + 90.1 + 90.0 sums to 269.99999...) without
    # moving any real mean: means of one-decimal percentages over a few terms differ from 90.0 by far more.
    mean = pc.round(pc.divide(total, count), 9)
    compare = pc.less if rule.comparison == "below" else pc.less_equal
    met = per_person.filter(compare(mean, rule.threshold))
    return _hits(met, f"{extra[0]}_max_max" if extra else None, extract_date)


def _active_on(rule: ActiveOnAsOf, rows: pa.Table, as_of: date) -> pa.Table:
    day = pa.scalar(as_of, pa.date32())
    start, end = rows.column(rule.start), rows.column(rule.end)
    # Active on as_of: started on or before it and not ended before it (an end on as_of was still open).
    mask = pc.and_(
        pc.fill_null(pc.less_equal(start, day), False),
        pc.or_(pc.is_null(end), pc.fill_null(pc.greater_equal(end, day), False)),
    )
    return _hits(rows.filter(mask), rule.evidence_date, rule.start)


def _at_least(rule: AtLeast, rows: pa.Table, extract_date: date) -> pa.Table:
    mask = pc.fill_null(pc.greater_equal(rows.column(rule.column), rule.minimum), False)
    if rule.unless is not None:
        # An empty arrangement flag is not evidence that the debt is managed.
        mask = pc.and_(mask, pc.invert(pc.fill_null(rows.column(rule.unless), False)))
    return _hits(rows.filter(mask), rule.evidence_date, extract_date)


def _aged_on(
    rule: AgedOnAsOf, rows: pa.Table, as_of: date, extract_date: date, persons: pa.Table
) -> pa.Table:
    rows = _attach_dob(rows, persons)
    age = completed_years(rows.column("_dob"), as_of)
    mask = pc.and_(pc.greater_equal(age, rule.min_age), pc.less_equal(age, rule.max_age))
    return _hits(rows.filter(pc.fill_null(mask, False)), rule.evidence_date, extract_date)


def _within_window(rule: WithinWindow, rows: pa.Table, as_of: date, persons: pa.Table) -> pa.Table:
    # The event's date (a datetime by its date part) in the closed window [as_of - months, as_of].
    if rule.max_age_at_event is not None:
        rows = _attach_dob(rows, persons)
    when = _as_date32(rows.column(rule.date))
    rows = rows.append_column("_event_date", when)
    start = pa.scalar(months_before(as_of, rule.window_months), pa.date32())
    mask = pc.and_(pc.greater_equal(when, start), pc.less_equal(when, pa.scalar(as_of, pa.date32())))
    if rule.max_age_at_event is not None:
        # The notice's "child/young person": the age on the event's date, not today's.
        mask = pc.and_(mask, pc.less_equal(completed_years(rows.column("_dob"), when), rule.max_age_at_event))
    return _hits(rows.filter(pc.fill_null(mask, False)), rule.evidence_date, "_event_date")


def _apply_rule(
    rule: InternalRule, rows: pa.Table, extract_date: date, as_of: date, persons: pa.Table
) -> pa.Table:
    """(person_id, evidence_date) of the rows meeting one internal rule."""
    if rule.codes is not None:
        values = pa.array(rule.codes.values, pa.string())
        rows = rows.filter(pc.fill_null(pc.is_in(rows.column(rule.codes.column), value_set=values), False))
    if isinstance(rule, MeanBelow):
        return _mean_below(rule, rows, extract_date)
    if isinstance(rule, ActiveOnAsOf):
        return _active_on(rule, rows, as_of)
    if isinstance(rule, AtLeast):
        return _at_least(rule, rows, extract_date)
    if isinstance(rule, AgedOnAsOf):
        return _aged_on(rule, rows, as_of, extract_date, persons)
    return _within_window(rule, rows, as_of, persons)


def _internal_hits(
    curated: Mapping[str, pa.Table],
    links: pa.Table,
    persons: pa.Table,
    as_of: date,
    config: CriteriaConfig,
    counts: dict[str, Any],
) -> list[pa.Table]:
    out: list[pa.Table] = []
    linked: dict[str, tuple[pa.Table, date] | None] = {}
    unlinked: dict[str, int] = {}
    for _headline, code, sub in config.sub_criteria():
        for rule in sub.internal:
            if rule.source not in linked:
                table = curated.get(rule.source)
                latest = _latest_extract(table, as_of) if table is not None else None
                if latest is None:
                    log.warning(
                        "no curated extract of %s on or before as_of: its rules find nothing", rule.source
                    )
                    linked[rule.source] = None
                else:
                    rows = _link(latest[0], rule.source, links)
                    unlinked[rule.source] = latest[0].num_rows - rows.num_rows
                    linked[rule.source] = (rows, latest[1])
            entry = linked[rule.source]
            if entry is None:
                continue
            hits = _apply_rule(rule, entry[0], entry[1], as_of, persons)
            n = hits.num_rows
            out.append(
                pa.table(
                    {
                        "person_id": hits.column("person_id"),
                        "sub_criterion": pa.repeat(pa.scalar(code, pa.string()), n),
                        "source": pa.repeat(pa.scalar(rule.source, pa.string()), n),
                        "partner": pa.nulls(n, pa.string()),
                        "evidence_date": hits.column("evidence_date"),
                    },
                    schema=_HITS_SCHEMA,
                )
            )
    counts["sources_missing"] = sorted(s for s, v in linked.items() if v is None)
    counts["unlinked_rows"] = dict(sorted(unlinked.items()))
    if any(unlinked.values()):
        log.warning(
            "%d curated rows have no link to the register and were not evaluated", sum(unlinked.values())
        )
    return out


def _partner_rules(config: CriteriaConfig, as_of: date) -> pa.Table:
    rows: dict[str, list[Any]] = {"sub_criterion": [], "partner": [], "window_start": [], "max_age": []}
    for _headline, code, sub in config.sub_criteria():
        for p in sub.partners:
            rows["sub_criterion"].append(code)
            rows["partner"].append(p.partner)
            rows["window_start"].append(
                months_before(as_of, p.window_months) if p.window_months is not None else None
            )
            rows["max_age"].append(p.max_age_at_event)
    return pa.table(
        rows,
        schema=pa.schema(
            [
                ("sub_criterion", pa.string()),
                ("partner", pa.string()),
                ("window_start", pa.date32()),
                ("max_age", pa.int64()),
            ]
        ),
    )


def _partner_flags_table(flags: pa.Table) -> pa.Table:
    """``flags`` with exactly PARTNER_FLAGS_COLUMNS, typed; a missing ``answered_at`` is all null."""
    required = [c for c in PARTNER_FLAGS_COLUMNS if c not in _OPTIONAL_PARTNER_FLAGS_COLUMNS]
    missing = [c for c in required if c not in flags.column_names]
    if missing:
        raise ValueError(f"partner flags: columns {missing} are missing (rule: partner_flags schema)")
    if "answered_at" not in flags.column_names:
        flags = flags.append_column("answered_at", pa.nulls(flags.num_rows, _ANSWERED_AT_TYPE))
    flags = flags.select(list(PARTNER_FLAGS_COLUMNS))
    flags = flags.set_column(2, "evidence_date", _as_date32(flags.column("evidence_date")))
    return flags.set_column(5, "answered_at", pc.cast(flags.column("answered_at"), _ANSWERED_AT_TYPE))


def _latest_answers(flags: pa.Table, partners: pa.Array) -> pa.Table:
    """(partner, person_id, _latest_answer): each partner's latest ``answered_at`` about each person, over
    all its rows (flags and markers), for ``partners`` only (the others have no status to supersede).

    Null ``answered_at`` (files merged before answers were recorded) is skipped by ``max``: such a row
    supersedes nothing, and a person with only such rows has a null latest answer.
    """
    mine = flags.filter(pc.is_in(flags.column("partner"), value_set=partners))
    latest = mine.group_by(["partner", "person_id"]).aggregate([("answered_at", "max")])
    return latest.rename_columns(["partner", "person_id", "_latest_answer"])


def _partner_hits(
    flags: pa.Table, persons: pa.Table, as_of: date, config: CriteriaConfig, counts: dict[str, Any]
) -> pa.Table:
    """Returned flags that count under the configuration, with its window and age limits applied again,
    and a status without a window counted only from the partner's latest answer about the person."""
    answers = _partner_flags_table(flags)
    # An identification as of a past date uses the answers the council had then: an answer to a question
    # asked after as_of (UTC days) neither counts nor supersedes, so re-running a past day gives its result.
    asked_by = pa.scalar(datetime.combine(as_of + timedelta(days=1), time(), UTC), _ANSWERED_AT_TYPE)
    answers = answers.filter(pc.fill_null(pc.less(answers.column("answered_at"), asked_by), True))
    # Marker rows (null sub-criterion) are answers, not flags: they never count and are never "ignored".
    flags = answers.filter(pc.is_valid(answers.column("sub_criterion")))
    rules = _partner_rules(config, as_of)
    joined = flags.join(rules, keys=["sub_criterion", "partner"], join_type="inner")
    ignored = flags.num_rows - joined.num_rows
    if ignored:
        # A partner flag for a sub-criterion the configuration does not take from that partner.
        log.warning("%d partner flags are for sub-criteria not taken from that partner; ignored", ignored)
    counts["partner_flags_ignored"] = ignored
    if joined.column("max_age").null_count < joined.num_rows:
        dob = persons.select(["person_id", "date_of_birth"]).rename_columns(["person_id", "_dob"])
        joined = joined.join(dob, keys="person_id", join_type="left outer")
    unwindowed = pc.is_null(joined.column("window_start"))
    if pc.any(unwindowed).as_py():
        status_partners = pc.unique(joined.filter(unwindowed).column("partner"))
        joined = joined.join(
            _latest_answers(answers, status_partners), keys=["partner", "person_id"], join_type="left outer"
        )
    evidence, ws, max_age = (joined.column(c) for c in ("evidence_date", "window_start", "max_age"))
    # The window is applied again on every run, so a returned event ages out after 12 months. A flag
    # without a date cannot be shown to be within the window, so where a window applies it does not count.
    in_window = pc.fill_null(
        pc.and_(pc.greater_equal(evidence, ws), pc.less_equal(evidence, pa.scalar(as_of, pa.date32()))), False
    )
    mask = pc.or_(pc.is_null(ws), in_window)
    if "_latest_answer" in joined.column_names:
        # Without a window the flag is a status as at the return (DWP's benefits), not an event: it counts
        # only from the partner's latest answer about the person, so a later return that matched the person
        # without the flag supersedes it. A person the later return did not match was not answered about,
        # so an earlier flag stands. Null answered_at (files merged before answers were recorded) neither
        # supersedes nor is superseded: those flags count as they always did.
        answered_at, latest = joined.column("answered_at"), joined.column("_latest_answer")
        current = pc.fill_null(pc.or_kleene(pc.is_null(answered_at), pc.equal(answered_at, latest)), False)
        mask = pc.if_else(pc.is_null(ws), current, in_window)
    if "_dob" in joined.column_names:
        # "child/young person": aged at most max_age on the event's date (no date or no DOB: not shown).
        young = pc.fill_null(pc.less_equal(completed_years(joined.column("_dob"), evidence), max_age), False)
        mask = pc.and_(mask, pc.or_(pc.is_null(max_age), young))
    met = joined.filter(mask)
    source = pc.coalesce(met.column("agreement_id"), met.column("partner"))
    return pa.table(
        {
            "person_id": met.column("person_id"),
            "sub_criterion": met.column("sub_criterion"),
            "source": source,
            "partner": met.column("partner"),
            "evidence_date": met.column("evidence_date"),
        },
        schema=_HITS_SCHEMA,
    )


def _lookup(config: CriteriaConfig, combos: pa.Table) -> pa.Table:
    """Headline, its order, title and the flag's reason per (sub_criterion, source, partner) present."""
    sub_info = {code: (headline, sub) for headline, code, sub in config.sub_criteria()}
    order = {h: i for i, h in enumerate(config.headline_problems)}
    out: dict[str, list[Any]] = {
        "sub_criterion": [],
        "source": [],
        "headline": [],
        "_order": [],
        "title": [],
        "reason": [],
    }
    for sub_code, source, partner in zip(
        combos.column("sub_criterion").to_pylist(),
        combos.column("source").to_pylist(),
        combos.column("partner").to_pylist(),
        strict=True,
    ):
        headline, sub = sub_info[sub_code]
        where = f"{partner} return under agreement {source}" if partner else f"{source} extract"
        out["sub_criterion"].append(sub_code)
        out["source"].append(source)
        out["headline"].append(headline)
        out["_order"].append(order[headline])
        out["title"].append(config.headline_problems[headline].title)
        out["reason"].append(f"{sub.reason} (source: {where})")
    return pa.table(
        out,
        schema=pa.schema(
            [
                ("sub_criterion", pa.string()),
                ("source", pa.string()),
                ("headline", pa.string()),
                ("_order", pa.int64()),
                ("title", pa.string()),
                ("reason", pa.string()),
            ]
        ),
    )


def _person_flags(
    hits: pa.Table, persons: pa.Table, config: CriteriaConfig, counts: dict[str, Any]
) -> pa.Table:
    # One row per (person, sub-criterion, source), with the latest evidence date, as the truth keeps it.
    grouped = hits.group_by(["person_id", "sub_criterion", "source", "partner"]).aggregate(
        [("evidence_date", "max")]
    )
    grouped = grouped.rename_columns(["person_id", "sub_criterion", "source", "partner", "evidence_date"])
    # The register is the probe side: Arrow builds its hash table on the right, the smaller flags.
    in_register = persons.select(["person_id", "family_id"]).join(
        grouped, keys="person_id", join_type="inner"
    )
    dropped = grouped.num_rows - in_register.num_rows
    counts["flags_without_register_person"] = dropped
    if dropped:
        log.warning("%d flags name persons not in the register; dropped", dropped)
    combos = in_register.group_by(["sub_criterion", "source", "partner"]).aggregate([])
    info = _lookup(config, combos)
    flags = in_register.join(info, keys=["sub_criterion", "source"], join_type="inner")
    return flags.sort_by(
        [
            ("family_id", "ascending"),
            ("person_id", "ascending"),
            ("_order", "ascending"),
            ("sub_criterion", "ascending"),
            ("source", "ascending"),
        ]
    )


def _family_problems(flags: pa.Table) -> pa.Table:
    ordered = flags.sort_by(
        [
            ("family_id", "ascending"),
            ("_order", "ascending"),
            ("sub_criterion", "ascending"),
            ("source", "ascending"),
            ("reason", "ascending"),
        ]
    )
    grouped = ordered.group_by(["family_id", "headline", "_order", "title"], use_threads=False).aggregate(
        [
            ("sub_criterion", "distinct"),
            ("source", "distinct"),
            ("person_id", "count_distinct"),
            ("evidence_date", "max"),
            ("partner", "count"),
            ("reason", "distinct"),
        ]
    )
    reason = pc.binary_join_element_wise(
        grouped.column("title"), pc.binary_join(grouped.column("reason_distinct"), "; "), ": "
    )
    table = pa.table(
        {
            "family_id": grouped.column("family_id"),
            "headline": grouped.column("headline"),
            "title": grouped.column("title"),
            "sub_criteria": grouped.column("sub_criterion_distinct"),
            "sources": grouped.column("source_distinct"),
            "persons": grouped.column("person_id_count_distinct"),
            "latest_evidence_date": grouped.column("evidence_date_max"),
            "from_partner": pc.greater(grouped.column("partner_count"), 0),
            "reason": reason,
            "_order": grouped.column("_order"),
        }
    )
    return table.sort_by([("family_id", "ascending"), ("_order", "ascending")])


def _value_of(keys: Any, table: pa.Table, column: str) -> Any:
    """``table[column]`` for each of ``keys`` (by ``family_id``), 0 where absent: a hash lookup, because
    Arrow joins cannot carry the worklist's list columns."""
    index = pc.index_in(keys, value_set=table.column("family_id"))
    return pc.fill_null(table.column(column).take(index), 0)


def _worklist(
    problems: pa.Table, flags: pa.Table, persons: pa.Table, as_of: date, min_problems: int
) -> pa.Table:
    per_family = problems.group_by("family_id", use_threads=False).aggregate(
        [
            ("headline", "count"),
            ("headline", "list"),
            ("reason", "list"),
            ("latest_evidence_date", "max"),
            ("from_partner", "any"),
        ]
    )
    eligible = per_family.filter(pc.greater_equal(per_family.column("headline_count"), min_problems))
    flagged = flags.group_by("family_id").aggregate([("person_id", "count_distinct")])
    family = eligible.column("family_id")
    in_eligible = persons.filter(pc.is_in(persons.column("family_id"), value_set=family))
    members = in_eligible.group_by("family_id").aggregate([("person_id", "count")])
    n = eligible.num_rows
    table = pa.table(
        {
            "as_of": pa.repeat(pa.scalar(as_of, pa.date32()), n),
            "family_id": eligible.column("family_id"),
            "problems": eligible.column("headline_count"),
            "headline_problems": eligible.column("headline_list"),
            "reasons": eligible.column("reason_list"),
            "persons_flagged": _value_of(family, flagged, "person_id_count_distinct"),
            "members": _value_of(family, members, "person_id_count"),
            "latest_evidence_date": eligible.column("latest_evidence_date_max"),
            "from_partner": eligible.column("from_partner_any"),
        },
        schema=WORKLIST_SCHEMA,
    )
    return table.sort_by([("problems", "descending"), ("family_id", "ascending")])


def evaluate(
    curated: Mapping[str, pa.Table],
    links: pa.Table,
    persons: pa.Table,
    as_of: date,
    config: CriteriaConfig,
    partner_flags: pa.Table | None = None,
) -> Identification:
    """Apply the criteria on ``as_of``.

    ``curated``: per source, its curated rows (the contract of ``curated/<source>/``: ``extract_date``,
    ``record_id`` and the standard measure columns); only each source's latest extract on or before as_of
    is used, because every extract is a full snapshot of its system. ``links``: (source, record_id,
    person_id). ``persons``: the register (person_id, family_id, date_of_birth). ``partner_flags``: merged
    returns (person_id, sub_criterion, evidence_date, partner, agreement_id and, from files merged since
    answers were recorded, answered_at; a null sub_criterion marks an answer), or None before any return.
    """
    counts: dict[str, Any] = {"as_of": as_of.isoformat(), "persons": persons.num_rows}
    parts = _internal_hits(curated, links, persons, as_of, config, counts)
    if partner_flags is not None and partner_flags.num_rows:
        parts.append(_partner_hits(partner_flags, persons, as_of, config, counts))
    hits = pa.concat_tables(parts) if parts else _HITS_SCHEMA.empty_table()
    flags = _person_flags(hits, persons, config, counts)
    problems = _family_problems(flags)
    worklist = _worklist(problems, flags, persons, as_of, config.min_problems)

    counts["families"] = int(pc.count_distinct(persons.column("family_id")).as_py())
    by_source = flags.group_by("source").aggregate([("person_id", "count")])
    counts["flags_by_source"] = dict(
        sorted(
            zip(
                by_source.column("source").to_pylist(),
                by_source.column("person_id_count").to_pylist(),
                strict=True,
            )
        )
    )
    by_headline = problems.group_by("headline").aggregate([("family_id", "count")])
    have = dict(
        zip(
            by_headline.column("headline").to_pylist(),
            by_headline.column("family_id_count").to_pylist(),
            strict=True,
        )
    )
    counts["families_by_headline"] = {h: int(have.get(h, 0)) for h in config.headline_problems}
    counts["eligible_families"] = worklist.num_rows
    counts["min_problems"] = config.min_problems
    log.info(
        "criteria on %s: %d flags, %d families with a problem, %d eligible (at least %d problems)",
        as_of,
        flags.num_rows,
        int(pc.count_distinct(problems.column("family_id")).as_py()) if problems.num_rows else 0,
        worklist.num_rows,
        config.min_problems,
    )
    person_flags = flags.select(PERSON_FLAGS_SCHEMA.names).cast(PERSON_FLAGS_SCHEMA)
    family_problems = problems.select(FAMILY_PROBLEMS_SCHEMA.names).cast(FAMILY_PROBLEMS_SCHEMA)
    return Identification(as_of, person_flags, family_problems, worklist, counts)
