"""``include/criteria.yaml``: the strict model of the Supporting Families criteria, and its loading.

The privacy notice: "To be eligible for the programme a family must be experiencing at least two of the
following", then six headline problems with their sub-criteria. ``include/criteria.yaml`` holds them as rules
(thresholds, windows, codes, the minimum number of problems) because national guidance changes them. This
module is the file's model: every key strict (unknown keys refused), every rule's source, column and code
checked against ``include/sources.yaml`` when it is loaded, so a rule can never silently read a column the
extract does not have. Applying the rules is :mod:`supporting_families.identify.criteria`'s job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from supporting_families.config.loader import (
    CONFIG_DIR,
    ConfigError,
    Loc,
    Problem,
    key_path,
    read_mapping,
    validate,
)
from supporting_families.config.sources import SourcesConfig, SourcesConfigError, load_sources

__all__ = [
    "DEFAULT_CRITERIA_PATH",
    "ActiveOnAsOf",
    "AgedOnAsOf",
    "AtLeast",
    "CodeFilter",
    "CriteriaConfig",
    "CriteriaConfigError",
    "HeadlineProblem",
    "InternalRule",
    "MeanBelow",
    "PartnerEvidence",
    "SubCriterion",
    "WithinWindow",
    "config_sha256",
    "load_criteria",
]

#: ``include/criteria.yaml``.
DEFAULT_CRITERIA_PATH: Final = CONFIG_DIR / "criteria.yaml"


class CriteriaConfigError(ConfigError):
    """``criteria.yaml`` is invalid: ``file: key.path: message`` per problem, the message naming the rule."""


_SNAKE = r"^[a-z][a-z0-9_]*$"
Snake = Annotated[str, Field(pattern=_SNAKE)]
PartnerCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
Text = Annotated[str, Field(min_length=3)]
Age = Annotated[int, Field(ge=0, le=130)]
Months = Annotated[int, Field(ge=1, le=120)]


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

    def column_needs(self) -> dict[Loc, tuple[str, tuple[str, ...]]]:
        """Key (within the rule) -> (column, allowed sources.yaml types), checked against sources.yaml."""
        needs: dict[Loc, tuple[str, tuple[str, ...]]] = {}
        if self.codes is not None:
            needs[("codes", "column")] = (self.codes.column, ("code",))
        if self.evidence_date is not None:
            needs[("evidence_date",)] = (self.evidence_date, ("date", "datetime"))
        return needs


class MeanBelow(_InternalRule):
    """The person's mean of ``measure`` over periods (each period once) below ``threshold``."""

    rule: Literal["mean_below"]
    measure: Snake
    per: tuple[Snake, ...] = Field(min_length=1)
    threshold: float = Field(ge=0)
    comparison: Literal["below", "at_or_below"]

    def column_needs(self) -> dict[Loc, tuple[str, tuple[str, ...]]]:
        needs = super().column_needs()
        needs[("measure",)] = (self.measure, ("decimal", "integer"))
        any_type = ("string", "code", "boolean", "date", "datetime", "integer", "decimal")
        needs.update({("per", i): (c, any_type) for i, c in enumerate(self.per)})
        return needs


class ActiveOnAsOf(_InternalRule):
    """A row whose ``start``..``end`` (end empty = open) contains as_of."""

    rule: Literal["active_on_as_of"]
    start: Snake
    end: Snake

    def column_needs(self) -> dict[Loc, tuple[str, tuple[str, ...]]]:
        return {
            **super().column_needs(),
            ("start",): (self.start, ("date",)),
            ("end",): (self.end, ("date",)),
        }


class AtLeast(_InternalRule):
    """``column >= minimum``, unless the boolean column ``unless`` is true."""

    rule: Literal["at_least"]
    column: Snake
    minimum: float
    unless: Snake | None = None

    def column_needs(self) -> dict[Loc, tuple[str, tuple[str, ...]]]:
        needs = super().column_needs()
        needs[("column",)] = (self.column, ("decimal", "integer"))
        if self.unless is not None:
            needs[("unless",)] = (self.unless, ("boolean",))
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

    def column_needs(self) -> dict[Loc, tuple[str, tuple[str, ...]]]:
        return {**super().column_needs(), ("date",): (self.date, ("date", "datetime"))}


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


def _check_against_sources(config: CriteriaConfig, sources: SourcesConfig) -> list[tuple[Loc, str]]:
    """Every source, column and code a rule names exists in sources.yaml with a type the rule can use."""
    problems: list[tuple[Loc, str]] = []
    for headline, code, sub in config.sub_criteria():
        for i, rule in enumerate(sub.internal):
            loc: Loc = ("headline_problems", headline, "sub_criteria", code, "internal", i)
            spec = sources.sources.get(rule.source)
            if spec is None:
                problems.append(
                    (
                        (*loc, "source"),
                        f"unknown source {rule.source!r}; sources.yaml has "
                        f"{', '.join(sorted(sources.sources))}",
                    )
                )
                continue
            for key, (column, types) in rule.column_needs().items():
                col = spec.by_standard.get(column)
                if col is None:
                    problems.append(((*loc, *key), f"source {rule.source!r} has no column {column!r}"))
                elif col.type not in types:
                    problems.append(
                        (
                            (*loc, *key),
                            f"column {column!r} of {rule.source!r} is of type {col.type}, "
                            f"the rule needs {' or '.join(types)}",
                        )
                    )
            if rule.codes is not None:
                col = spec.by_standard.get(rule.codes.column)
                if col is not None and col.codes:
                    known = {str(v) for v in col.codes.values()}
                    unknown = [v for v in rule.codes.values if v not in known]
                    if unknown:
                        problems.append(
                            (
                                (*loc, "codes", "values"),
                                f"{unknown} are not standard values of {rule.source}.{rule.codes.column} "
                                f"({', '.join(sorted(known))})",
                            )
                        )
            needs_age = isinstance(rule, AgedOnAsOf) or (
                isinstance(rule, WithinWindow) and rule.max_age_at_event is not None
            )
            if needs_age and "date_of_birth" not in spec.by_standard:
                problems.append((loc, f"an age rule needs date_of_birth, which {rule.source!r} lacks"))
    return problems


def load_criteria(path: Path | str | None = None, sources: SourcesConfig | None = None) -> CriteriaConfig:
    """Load and validate ``criteria.yaml`` (default ``include/criteria.yaml``) against ``sources.yaml``.

    Raises :class:`CriteriaConfigError` naming the file and every failing key (a broken ``sources.yaml``
    is reported by its own name and keys).
    """
    path = Path(path) if path is not None else DEFAULT_CRITERIA_PATH
    data, _raw = read_mapping(path, CriteriaConfigError)
    config = validate(CriteriaConfig, data, path.name, CriteriaConfigError)
    try:
        sources = sources if sources is not None else load_sources()
    except SourcesConfigError as exc:
        raise CriteriaConfigError(exc.problems) from None
    problems = _check_against_sources(config, sources)
    if problems:
        raise CriteriaConfigError(Problem(path.name, key_path(loc), message) for loc, message in problems)
    return config


def config_sha256(path: Path | str | None = None) -> str:
    """SHA-256 of the criteria file, recorded with each identification (which rules produced it)."""
    path = Path(path) if path is not None else DEFAULT_CRITERIA_PATH
    return hashlib.sha256(path.read_bytes()).hexdigest()
