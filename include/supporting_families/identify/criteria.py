"""The criteria engine: which families meet the Supporting Families criteria on a day, and why.

The privacy notice: "To be eligible for the programme a family must be experiencing at least two of the
following", then six headline problems with their sub-criteria. ``include/criteria.yaml`` holds them as rules
(thresholds, windows, codes, the minimum number of problems) because national guidance changes them; this
module loads that file strictly and applies it, vectorised, to the curated extracts, the person register and
the partners' returned flags.

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

The rules reproduce ``supporting_families/synthetic/truth.py`` exactly (its docstring is the specification):
the 12-month window is ``[as_of minus 12 calendar months, as_of]`` closed (29 February minus a year is
28 February), "active on as_of" includes an episode ending on as_of, ages are completed years (a 29 February
birthday counts from 1 March in a common year), attendance is the mean over the pupil's terms, each once.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from upath import UPath

from supporting_families.config.sources import SourcesConfig, SourcesConfigError, load_sources
from supporting_families.store.io import write_bytes_atomic, write_parquet

log = logging.getLogger(__name__)

#: ``include/criteria.yaml``, next to this package.
DEFAULT_CRITERIA_PATH = Path(__file__).resolve().parents[2] / "criteria.yaml"

# --- configuration ---------------------------------------------------------------------------------------

_SNAKE = r"^[a-z][a-z0-9_]*$"
Snake = Annotated[str, Field(pattern=_SNAKE)]
PartnerCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
Text = Annotated[str, Field(min_length=3)]
Age = Annotated[int, Field(ge=0, le=130)]
Months = Annotated[int, Field(ge=1, le=120)]


class CriteriaConfigError(ValueError):
    """``criteria.yaml`` is invalid: the message names the file and, per problem, the key and the rule."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(f"{file}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeFilter(_Strict):
    """Only rows whose code ``column`` holds one of ``values`` (standard values from sources.yaml)."""

    column: Snake
    values: tuple[Snake, ...] = Field(min_length=1)


class _InternalRule(_Strict):
    source: Snake
    codes: CodeFilter | None = None
    #: The date column shown to the practitioner as the evidence date (default: see each rule).
    evidence_date: Snake | None = None

    def column_needs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Config key -> (column, allowed sources.yaml types), checked against sources.yaml at load."""
        needs: dict[str, tuple[str, tuple[str, ...]]] = {}
        if self.codes is not None:
            needs["codes.column"] = (self.codes.column, ("code",))
        if self.evidence_date is not None:
            needs["evidence_date"] = (self.evidence_date, ("date", "datetime"))
        return needs


class MeanBelow(_InternalRule):
    """The person's mean of ``measure`` over periods (each period once) below ``threshold``."""

    rule: Literal["mean_below"]
    measure: Snake
    per: tuple[Snake, ...] = Field(min_length=1)
    threshold: float = Field(ge=0)
    comparison: Literal["below", "at_or_below"]

    def column_needs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        needs = super().column_needs()
        needs["measure"] = (self.measure, ("decimal", "integer"))
        any_type = ("string", "code", "boolean", "date", "datetime", "integer", "decimal")
        needs.update({f"per.{i}": (c, any_type) for i, c in enumerate(self.per)})
        return needs


class ActiveOnAsOf(_InternalRule):
    """A row whose ``start``..``end`` (end empty = open) contains as_of."""

    rule: Literal["active_on_as_of"]
    start: Snake
    end: Snake

    def column_needs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        return {**super().column_needs(), "start": (self.start, ("date",)), "end": (self.end, ("date",))}


class AtLeast(_InternalRule):
    """``column >= minimum``, unless the boolean column ``unless`` is true."""

    rule: Literal["at_least"]
    column: Snake
    minimum: float
    unless: Snake | None = None

    def column_needs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        needs = super().column_needs()
        needs["column"] = (self.column, ("decimal", "integer"))
        if self.unless is not None:
            needs["unless"] = (self.unless, ("boolean",))
        return needs


class AgedOnAsOf(_InternalRule):
    """The person aged ``min_age`` to ``max_age`` (inclusive, completed years) on as_of."""

    rule: Literal["aged_on_as_of"]
    min_age: Age
    max_age: Age

    @model_validator(mode="after")
    def _ordered(self) -> AgedOnAsOf:
        if self.min_age > self.max_age:
            raise ValueError(f"min_age {self.min_age} is above max_age {self.max_age}")
        return self


class WithinWindow(_InternalRule):
    """``date`` (a datetime by its date) in ``[as_of - window_months, as_of]``, optionally by age then."""

    rule: Literal["within_window"]
    date: Snake
    window_months: Months
    max_age_at_event: Age | None = None

    def column_needs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        return {**super().column_needs(), "date": (self.date, ("date", "datetime"))}


InternalRule = Annotated[
    MeanBelow | ActiveOnAsOf | AtLeast | AgedOnAsOf | WithinWindow, Field(discriminator="rule")
]


class PartnerEvidence(_Strict):
    """Flags a partner returns for this sub-criterion count, with an optional window and age limit."""

    #: The partner's code in its data agreement (``partner.code``), as written in ``partner_flags``.
    partner: PartnerCode
    window_months: Months | None = None
    max_age_at_event: Age | None = None


class SubCriterion(_Strict):
    #: The notice's own words for this sub-criterion.
    notice: Text
    #: What the practitioner reads: the rule in plain words, never a personal value.
    reason: Text
    internal: tuple[InternalRule, ...] = ()
    partners: tuple[PartnerEvidence, ...] = ()

    @model_validator(mode="after")
    def _has_evidence(self) -> SubCriterion:
        if not self.internal and not self.partners:
            raise ValueError("a sub-criterion needs at least one internal rule or partner")
        codes = [p.partner for p in self.partners]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"partner {dupes[0]!r} is listed twice")
        return self


class HeadlineProblem(_Strict):
    title: Text
    notice: Text
    sub_criteria: dict[Snake, SubCriterion] = Field(min_length=1)


class CriteriaConfig(_Strict):
    """``include/criteria.yaml``, validated. Frozen: build a new one to change a rule."""

    version: Literal[1]
    framework: Text
    #: Notice: "a family must be experiencing at least two of the following".
    min_problems: int = Field(ge=1)
    headline_problems: dict[Snake, HeadlineProblem] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CriteriaConfig:
        if self.min_problems > len(self.headline_problems):
            raise ValueError(
                f"min_problems {self.min_problems} is more than the {len(self.headline_problems)} "
                "headline problems: no family could ever be eligible"
            )
        seen: dict[str, str] = {}
        for headline, problem in self.headline_problems.items():
            for code in problem.sub_criteria:
                if code in seen:
                    raise ValueError(
                        f"sub-criterion {code!r} is under both {seen[code]!r} and {headline!r}; "
                        "each sub-criterion belongs to one headline problem"
                    )
                seen[code] = headline
        return self

    def sub_criteria(self) -> Iterator[tuple[str, str, SubCriterion]]:
        """(headline, code, sub-criterion) in file order."""
        for headline, problem in self.headline_problems.items():
            for code, sub in problem.sub_criteria.items():
                yield headline, code, sub


def _check_against_sources(config: CriteriaConfig, sources: SourcesConfig) -> list[str]:
    """Every source, column and code a rule names exists in sources.yaml with a type the rule can use."""
    problems: list[str] = []
    for headline, code, sub in config.sub_criteria():
        for i, rule in enumerate(sub.internal):
            loc = f"headline_problems.{headline}.sub_criteria.{code}.internal.{i}"
            spec = sources.sources.get(rule.source)
            if spec is None:
                problems.append(
                    f"{loc}.source: unknown source {rule.source!r}; sources.yaml has "
                    f"{', '.join(sorted(sources.sources))}"
                )
                continue
            for key, (column, types) in rule.column_needs().items():
                col = spec.by_standard.get(column)
                if col is None:
                    problems.append(f"{loc}.{key}: source {rule.source!r} has no column {column!r}")
                elif col.type not in types:
                    problems.append(
                        f"{loc}.{key}: column {column!r} of {rule.source!r} is of type {col.type}, "
                        f"the rule needs {' or '.join(types)}"
                    )
            if rule.codes is not None:
                col = spec.by_standard.get(rule.codes.column)
                if col is not None and col.codes:
                    known = {str(v) for v in col.codes.values()}
                    unknown = [v for v in rule.codes.values if v not in known]
                    if unknown:
                        problems.append(
                            f"{loc}.codes.values: {unknown} are not standard values of "
                            f"{rule.source}.{rule.codes.column} ({', '.join(sorted(known))})"
                        )
            needs_age = isinstance(rule, AgedOnAsOf) or (
                isinstance(rule, WithinWindow) and rule.max_age_at_event is not None
            )
            if needs_age and "date_of_birth" not in spec.by_standard:
                problems.append(f"{loc}: an age rule needs date_of_birth, which {rule.source!r} lacks")
    return problems


def _pydantic_problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(f"{loc}: {msg}")
    return out


def load_criteria(path: Path | str | None = None, sources: SourcesConfig | None = None) -> CriteriaConfig:
    """Load and validate ``criteria.yaml`` (default ``include/criteria.yaml``) against ``sources.yaml``.

    Raises :class:`CriteriaConfigError` naming the file and every failing key.
    """
    path = Path(path) if path is not None else DEFAULT_CRITERIA_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CriteriaConfigError(path.name, [f"cannot read the file ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CriteriaConfigError(path.name, [f"not valid YAML{where}"]) from None
    if not isinstance(data, dict):
        raise CriteriaConfigError(path.name, ["must be a mapping of keys"])
    try:
        config = CriteriaConfig.model_validate(data)
    except ValidationError as exc:
        raise CriteriaConfigError(path.name, _pydantic_problems(exc)) from None
    try:
        sources = sources if sources is not None else load_sources()
    except SourcesConfigError as exc:
        raise CriteriaConfigError(path.name, [f"cannot check against sources.yaml: {exc}"]) from None
    problems = _check_against_sources(config, sources)
    if problems:
        raise CriteriaConfigError(path.name, problems)
    return config


def config_sha256(path: Path | str | None = None) -> str:
    """SHA-256 of the criteria file, recorded with each identification (which rules produced it)."""
    path = Path(path) if path is not None else DEFAULT_CRITERIA_PATH
    return hashlib.sha256(path.read_bytes()).hexdigest()


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

#: What the partner_flags files hold (issue 5 writes them under ``register/partner_flags/``; the schema is
#: receive_reconcile.PARTNER_FLAGS_SCHEMA). A row with a null ``sub_criterion`` is an answer marker: the
#: partner matched the person, and it never counts as a flag. ``answered_at`` dates the answer.
PARTNER_FLAGS_COLUMNS = (
    "person_id",
    "sub_criterion",
    "evidence_date",
    "partner",
    "agreement_id",
    "answered_at",
)
#: Columns a partner_flags table may lack: files merged before answers were recorded have no answered_at.
_OPTIONAL_PARTNER_FLAGS_COLUMNS = frozenset({"answered_at"})
_ANSWERED_AT_TYPE = pa.timestamp("us", tz="UTC")

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


# --- the store -------------------------------------------------------------------------------------------

IDENTIFICATION_DIR = "identification"
#: Register columns the engine reads: ids and date of birth only (UK GDPR Article 5(1)(c), minimisation).
_REGISTER_COLUMNS = ["person_id", "family_id", "date_of_birth"]
_LINK_COLUMNS = ["source", "record_id", "person_id"]


def _read(path: UPath, columns: list[str] | None = None) -> pa.Table:
    with path.open("rb") as fh:
        return pq.read_table(fh, columns=columns)


def curated_files(store: UPath, source: str) -> dict[date, UPath]:
    """The curated files of ``source`` by extract date: ``curated/<source>/<source>_<YYYY-MM-DD>.parquet``."""
    folder = store / "curated" / source
    if not folder.exists():
        return {}
    found: dict[date, UPath] = {}
    for path in folder.glob(f"{source}_*.parquet"):
        stem = path.name.removesuffix(".parquet").removeprefix(f"{source}_")
        try:
            found[date.fromisoformat(stem)] = path
        except ValueError:
            log.warning("curated/%s: a file name without an extract date is ignored", source)
    return found


def read_latest_curated(
    store: UPath, sources: list[str], as_of: date | None = None
) -> tuple[dict[str, pa.Table], date | None]:
    """Each source's latest curated extract (on or before ``as_of`` if given), and the latest extract date.

    Without ``as_of``, identification runs on the latest extract date among the sources, because that is
    the newest day the council has facts for; a source whose latest extract is older still contributes its
    latest snapshot (the rules are applied on that date), and the counts name sources with no extract.
    """
    tables: dict[str, pa.Table] = {}
    for source in sources:
        files = {d: p for d, p in curated_files(store, source).items() if as_of is None or d <= as_of}
        if files:
            tables[source] = _read(files[max(files)])
    dates = [pc.max(t.column("extract_date")).as_py() for t in tables.values() if t.num_rows]
    return tables, (max(dates) if dates else None)


def read_register(store: UPath) -> tuple[pa.Table, pa.Table]:
    """(persons, links) from ``register/``, with only the columns the criteria need."""
    persons = _read(store / "register" / "persons.parquet", _REGISTER_COLUMNS)
    links = _read(store / "register" / "links.parquet", _LINK_COLUMNS)
    return persons, links


def read_partner_flags(store: UPath) -> pa.Table | None:
    """Every merged partner return under ``register/partner_flags/``, or None before the first."""
    folder = store / "register" / "partner_flags"
    if not folder.exists():
        return None
    paths = sorted(folder.glob("*.parquet"), key=lambda p: p.name)
    if not paths:
        return None
    tables = []
    for path in paths:
        with path.open("rb") as fh:
            parquet = pq.ParquetFile(fh)
            # Files merged before answers were recorded lack answered_at: read what they have, and the
            # permissive concatenation (or _partner_hits) fills it with nulls, which supersede nothing.
            have = set(parquet.schema_arrow.names)
            tables.append(parquet.read(columns=[c for c in PARTNER_FLAGS_COLUMNS if c in have]))
    return pa.concat_tables(tables, promote_options="permissive")


def identification_dir(store: UPath, as_of: date) -> UPath:
    return store / IDENTIFICATION_DIR / as_of.isoformat()


def write_identification(
    identification: Identification, store: UPath, criteria_sha256: str | None = None
) -> dict[str, str]:
    """Write the three tables and a summary (counts only) under ``identification/<as_of>/``.

    Each file is replaced whole (readers see the old or the new file), so re-running a day's identification
    gives the same files. Returns the written paths, relative to the store.
    """
    folder = identification_dir(store, identification.as_of)
    written: dict[str, str] = {}
    for name, table in (
        ("person_flags", identification.person_flags),
        ("family_problems", identification.family_problems),
        ("worklist", identification.worklist),
    ):
        write_parquet(table, folder / f"{name}.parquet")
        written[name] = f"{IDENTIFICATION_DIR}/{identification.as_of.isoformat()}/{name}.parquet"
    summary = {**identification.counts, "criteria_sha256": criteria_sha256}
    write_bytes_atomic(
        folder / "summary.json", json.dumps(summary, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    )
    written["summary"] = f"{IDENTIFICATION_DIR}/{identification.as_of.isoformat()}/summary.json"
    return written


def latest_identification(store: UPath) -> date | None:
    """The as_of of the newest identification written under the store, or None."""
    folder = store / IDENTIFICATION_DIR
    if not folder.exists():
        return None
    days = []
    for path in folder.iterdir():
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.name) and (path / "worklist.parquet").exists():
            days.append(date.fromisoformat(path.name))
    return max(days) if days else None


def identify(
    store: UPath,
    sources: list[str],
    as_of: date | None = None,
    config_path: Path | str | None = None,
) -> dict[str, Any]:
    """Read the curated extracts, the register and any partner flags; evaluate; write; return counts.

    ``as_of`` defaults to the latest extract date among the curated files. The one call the
    ``identify_families`` DAG makes; what it returns is numbers only, safe for XCom and logs.
    """
    config = load_criteria(config_path)
    curated, latest = read_latest_curated(store, sources, as_of)
    as_of = as_of or latest
    if as_of is None:
        raise ValueError("no curated extracts under curated/: ingest before identifying families")
    persons, links = read_register(store)
    result = evaluate(curated, links, persons, as_of, config, read_partner_flags(store))
    written = write_identification(result, store, config_sha256(config_path))
    return {**result.counts, "written": written}
