"""The council's disclosure-control parameters (``include/statistics.yaml``) for the programme statistics.

The privacy notice (docs/supporting-families-privacy-notice.txt): "individuals cannot be identified from the
information sets directly or any published reports". The parameters are configuration, read on every
publication and written into every output, because a council's statistician sets them, not the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from supporting_families.config.loader import CONFIG_DIR, ConfigError, read_mapping, validate

DEFAULT_STATISTICS_PATH: Final = CONFIG_DIR / "statistics.yaml"


class StatisticsConfigError(ConfigError):
    """``statistics.yaml`` failed validation (one line per problem)."""


class DisclosureControl(BaseModel):
    """The threshold rule's threshold and the rounding base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Below 3 a published count of 1 or 2 would be a person or a pair: no UK practice publishes those.
    threshold: int = Field(ge=3, le=1000)
    rounding_base: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _base_within_threshold(self) -> DisclosureControl:
        # A base above the threshold would round published counts that passed the threshold rule to zero.
        if self.rounding_base > self.threshold:
            raise ValueError(f"rounding_base {self.rounding_base} is above the threshold {self.threshold}")
        return self


class StatisticsPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    disclosure_control: DisclosureControl


def load_statistics(path: Path | str | None = None) -> StatisticsPolicy:
    """Load and validate ``statistics.yaml`` (by default ``include/statistics.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_STATISTICS_PATH
    data, _raw = read_mapping(path, StatisticsConfigError)
    return validate(StatisticsPolicy, data, path.name, StatisticsConfigError)


__all__ = [
    "DEFAULT_STATISTICS_PATH",
    "DisclosureControl",
    "StatisticsConfigError",
    "StatisticsPolicy",
    "load_statistics",
]
