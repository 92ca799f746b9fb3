"""The council's retention rules (``include/retention.yaml``): the programme's end, the notice's ceiling, and
a limit per retention class of the store (:data:`supporting_families.store.layout.AREAS`).

The privacy notice (docs/supporting-families-privacy-notice.txt): everything "will be retained for up to one
year after the end of the programme". The ceiling is therefore ``programme_end`` plus at most 366 days, and
every limit here, and every agreement's own (``retention:`` in its YAML), ends there however many days it
names. UK GDPR Article 5(1)(e), storage limitation, asks for earlier deletion where data is no longer needed:
each class says how many days after which event.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from supporting_families.config.loader import CONFIG_DIR, ConfigError, read_mapping, validate
from supporting_families.store.layout import AREAS, RetentionClass

DEFAULT_RETENTION_PATH: Final = CONFIG_DIR / "retention.yaml"

#: The classes an agreement governs (its ``retention:``): what went to, or came from, one partner.
AgreementClass = Literal["deliveries", "references", "manifests", "returns"]
AGREEMENT_CLASSES: Final[tuple[str, ...]] = get_args(AgreementClass)

#: The notice's "one year", with room for a leap day.
MAX_CEILING_DAYS: Final = 366

#: The event each class's clock starts from (documented in include/retention.yaml).
ClockStart = Literal["ingested", "superseded", "quarantined", "absent_from_sources", "written"]


class RetentionConfigError(ConfigError):
    """``retention.yaml`` failed validation (one line per problem)."""


class ClassRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int = Field(ge=0, le=3660)
    #: What starts the clock; ``superseded``: when a newer file of the same kind arrived (the newest is kept).
    from_: ClockStart = Field(alias="from")


class AirflowRetention(BaseModel):
    """Airflow's run history and task logs: no personal data, kept for the auditor's look back, then gone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metadata_days: int = Field(ge=1, le=3660)
    task_logs_days: int = Field(ge=1, le=3660)


class RetentionPolicy(BaseModel):
    """The council-wide rules. Build limits with :meth:`last_day`; never compare dates by hand."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    version: Literal[1]
    programme_end: date
    ceiling_days: int = Field(ge=0, le=MAX_CEILING_DAYS)
    classes: dict[str, ClassRule]
    airflow: AirflowRetention

    @model_validator(mode="after")
    def _every_council_class(self) -> RetentionPolicy:
        council = sorted({a.retention for a in AREAS} - set(AGREEMENT_CLASSES))
        missing = [c for c in council if c not in self.classes]
        unknown = [c for c in self.classes if c not in council]
        problems = []
        if missing:
            problems.append(f"classes: missing {', '.join(missing)} (every store area has a class)")
        if unknown:
            problems.append(
                f"classes: {', '.join(unknown)} not a council class (one of {', '.join(council)}; "
                f"{', '.join(AGREEMENT_CLASSES)} are set per agreement)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def ceiling(self) -> date:
        """The last day anything may be kept: the notice's "one year after the end of the programme"."""
        return self.programme_end + timedelta(days=self.ceiling_days)

    def cap(self, day: date) -> date:
        return min(day, self.ceiling)

    def rule(self, retention_class: RetentionClass) -> ClassRule:
        return self.classes[retention_class]

    def last_day(self, retention_class: RetentionClass, event: date) -> date:
        """The last day data of ``retention_class`` whose clock started on ``event`` may be kept."""
        return self.cap(event + timedelta(days=self.classes[retention_class].days))


def load_retention(path: Path | str | None = None) -> RetentionPolicy:
    """Load and validate ``retention.yaml`` (by default ``include/retention.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_RETENTION_PATH
    data, _raw = read_mapping(path, RetentionConfigError)
    return validate(RetentionPolicy, data, path.name, RetentionConfigError)


__all__ = [
    "AGREEMENT_CLASSES",
    "DEFAULT_RETENTION_PATH",
    "MAX_CEILING_DAYS",
    "AgreementClass",
    "AirflowRetention",
    "ClassRule",
    "RetentionConfigError",
    "RetentionPolicy",
    "load_retention",
]
