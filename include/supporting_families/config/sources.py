"""``include/sources.yaml``: the strict model of the internal source extracts.

One description read by two sides that must never disagree: the ingest reads each department's file with
it (:mod:`supporting_families.ingest.pipeline`), and the synthetic borough generator renders each file from it
(:mod:`sf_demo.synthetic.sources`). The model is strict (unknown keys rejected, cross-field
rules checked), so a misspelt key fails loudly when the file is loaded instead of silently mis-reading data.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from supporting_families.config.agreements import ConnId, RemoteDir, Slug, _resolve_fingerprint
from supporting_families.config.loader import CONFIG_DIR, ConfigError, read_mapping, validate
from supporting_families.store.schemas import INTERNAL_ID_FIELDS, REGISTER_FIELDS

__all__ = [
    "DEFAULT_SOURCES_PATH",
    "IDENTITY_FIELDS",
    "ColumnSpec",
    "InboundSpec",
    "SourceSpec",
    "SourcesConfig",
    "SourcesConfigError",
    "load_sources",
]

#: Identity fields a source column may carry: the register's personal fields plus the source's own record id.
IDENTITY_FIELDS: Final = ("record_id", *[f for f in REGISTER_FIELDS if f not in INTERNAL_ID_FIELDS])

#: ``include/sources.yaml``.
DEFAULT_SOURCES_PATH: Final = CONFIG_DIR / "sources.yaml"

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


class SourcesConfigError(ConfigError):
    """``sources.yaml`` is invalid (or disagrees with the generator): ``file: key.path: message`` each."""


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    standard: str
    type: Literal["string", "code", "boolean", "date", "datetime", "integer", "decimal", "postcode", "uprn"]
    nullable: bool = False
    format: str | None = None
    case: Literal["as_recorded", "upper", "lower"] = "as_recorded"
    scale: int | None = Field(default=None, ge=0, le=6)
    codes: dict[str, str | bool] | None = None
    pattern: str | None = None
    description: str | None = None

    @property
    def is_identity(self) -> bool:
        return self.standard in IDENTITY_FIELDS

    @field_validator("standard")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _SNAKE.match(value):
            raise ValueError(f"standard name {value!r} must be snake_case")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _type_rules(self) -> ColumnSpec:
        if self.type in ("code", "boolean") and not self.codes:
            raise ValueError(f"column {self.name!r}: type {self.type} needs codes")
        if self.type not in ("code", "boolean") and self.codes:
            raise ValueError(f"column {self.name!r}: codes are only for code and boolean columns")
        if self.type == "boolean" and not all(isinstance(v, bool) for v in (self.codes or {}).values()):
            raise ValueError(f"column {self.name!r}: boolean codes map to true or false")
        if self.type == "code" and not all(isinstance(v, str) for v in (self.codes or {}).values()):
            raise ValueError(f"column {self.name!r}: code values map to text")
        if self.type == "decimal" and self.scale is None:
            raise ValueError(f"column {self.name!r}: decimal needs scale")
        if self.type == "postcode" and self.format not in ("spaced", "compact"):
            raise ValueError(f"column {self.name!r}: postcode format is spaced or compact")
        if self.type == "uprn" and self.format not in ("text", "integer"):
            raise ValueError(f"column {self.name!r}: uprn format is text or integer")
        if self.type in ("string", "code", "boolean", "integer", "decimal") and self.format is not None:
            raise ValueError(f"column {self.name!r}: format is not used by type {self.type}")
        if self.standard == "sex" and self.type != "code":
            raise ValueError(f"column {self.name!r}: sex is a code column")
        if self.standard == "sex" and set((self.codes or {}).values()) - {"F", "M"}:
            raise ValueError(f"column {self.name!r}: sex codes map to F or M")
        expected = {"date_of_birth": "date", "postcode": "postcode", "uprn": "uprn"}.get(self.standard)
        if expected and self.type != expected:
            raise ValueError(f"column {self.name!r}: {self.standard} has type {expected}")
        return self


class InboundAgency(BaseModel):
    """Who sends the extract (the notice: "some partner agencies in the voluntary sector")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Slug
    name: str = Field(min_length=1)


class InboundSftp(BaseModel):
    """Where the council collects the agency's files: its connection (host key pinned) and outbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conn_id: ConnId
    remote_outbox: RemoteDir


class InboundSpec(BaseModel):
    """An extract that arrives over SFTP, encrypted to the council and signed by the sender, instead of
    being dropped into ``landing/`` by a council system. The same transport as partners' returns: a pinned
    sensor, the safe fetch, the signature and integrity required (``supporting_families.inbound``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agency: InboundAgency
    sftp: InboundSftp
    #: The sender's pinned OpenPGP fingerprint, or a ``${NAME_FINGERPRINT}`` placeholder resolved when a
    #: file is verified (the demo generates the agency's key at set-up, as it does partners').
    signer_fingerprint: str
    max_size_mib: int = Field(default=64, ge=1, le=4096)
    #: How long the collect DAG's sensor waits for a file each run before it gives up until the next.
    wait_minutes: int = Field(default=50, ge=1, le=24 * 60)

    @field_validator("signer_fingerprint")
    @classmethod
    def _fingerprint_shape(cls, value: str) -> str:
        return _resolve_fingerprint(value, {}, resolve=False)

    def signer(self, env: Mapping[str, str] | None = None) -> str:
        """The pinned fingerprint, its placeholder resolved from ``env`` (default: the process's)."""
        return _resolve_fingerprint(self.signer_fingerprint, os.environ if env is None else env)


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    department: str
    system: str
    holds: str
    row_grain: str
    file_glob: str
    extract_date_format: str = "%Y-%m-%d"
    encoding: Literal["utf-8", "utf-8-sig", "cp1252"]
    delimiter: str = Field(min_length=1, max_length=1)
    quoting: Literal["all", "none"]
    line_terminator: Literal["lf", "crlf"]
    date_format: str
    datetime_format: str | None = None
    record_id: str
    columns: tuple[ColumnSpec, ...]
    #: Set for an extract an outside organisation sends over SFTP (a voluntary-sector agency).
    inbound: InboundSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names {dupes}")
        standards = [c.standard for c in self.columns]
        dupes = sorted({s for s in standards if standards.count(s) > 1})
        if dupes:
            raise ValueError(f"duplicate standard names {dupes}")
        by_name = {c.name: c for c in self.columns}
        if self.record_id not in by_name or by_name[self.record_id].standard != "record_id":
            raise ValueError(f"record_id {self.record_id!r} must name the column whose standard is record_id")
        if by_name[self.record_id].nullable:
            raise ValueError("the record id column cannot be nullable")
        if self.file_glob.count("*") != 1 or f"/{self.name}/" not in f"/{self.file_glob}":
            raise ValueError(
                "file_glob has one '*' (the extract date) and sits in a folder named after the source"
            )
        if any(c.type == "datetime" for c in self.columns) and not self.datetime_format:
            raise ValueError("a datetime column needs datetime_format")
        if self.delimiter in ('"', "\n", "\r"):
            raise ValueError("delimiter cannot be a quote or a line break")
        return self

    @property
    def remote_pattern(self) -> str:
        """An inbound source's file name in the sender's outbox: the landing name plus ``.gpg``."""
        return posixpath.basename(self.file_glob) + ".gpg"

    def landing_name(self, remote_name: str) -> str | None:
        """The landing file name for a remote name of the source's exact shape (a real extract date), else
        None: only such a name is taken in, so the sender's choice of name never reaches the store."""
        base = posixpath.basename(self.file_glob)
        prefix, suffix = base.split("*")
        if not remote_name.endswith(".gpg"):
            return None
        name = remote_name.removesuffix(".gpg")
        if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) <= len(prefix) + len(suffix):
            return None
        stamp = name[len(prefix) : len(name) - len(suffix)]
        try:
            parsed = datetime.strptime(stamp, self.extract_date_format)
        except ValueError:
            return None
        return name if parsed.strftime(self.extract_date_format) == stamp else None

    @cached_property
    def by_standard(self) -> dict[str, ColumnSpec]:
        return {c.standard: c for c in self.columns}

    @property
    def identity_fields(self) -> tuple[str, ...]:
        return tuple(c.standard for c in self.columns if c.is_identity)

    @property
    def measure_fields(self) -> tuple[str, ...]:
        return tuple(c.standard for c in self.columns if not c.is_identity)

    def path_for(self, extract_date: Any) -> str:
        """The file's path under the store root for one extract date."""
        return self.file_glob.replace("*", extract_date.strftime(self.extract_date_format))

    def date_format_of(self, column: ColumnSpec) -> str:
        if column.format:
            return column.format
        if column.type == "datetime":
            assert self.datetime_format is not None  # guaranteed by _consistent
            return self.datetime_format
        return self.date_format


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    sources: dict[str, SourceSpec]

    @model_validator(mode="before")
    @classmethod
    def _name_sources(cls, data: Any) -> Any:
        # The mapping key is the source's name; copy it in so each spec knows itself.
        if isinstance(data, dict) and isinstance(data.get("sources"), dict):
            data = dict(data)
            data["sources"] = {
                key: ({**value, "name": key} if isinstance(value, dict) and "name" not in value else value)
                for key, value in data["sources"].items()
            }
        return data

    @model_validator(mode="after")
    def _keys_are_names(self) -> SourcesConfig:
        for key, spec in self.sources.items():
            if not _SNAKE.match(key):
                raise ValueError(f"source name {key!r} must be snake_case")
            if spec.name != key:
                raise ValueError(f"source {key!r} carries a different name {spec.name!r}")
        return self


def load_sources(path: Path | str | None = None) -> SourcesConfig:
    """Load and validate ``sources.yaml`` (by default ``include/sources.yaml``).

    Raises :class:`SourcesConfigError` naming the file and every failing key.
    """
    path = Path(path) if path is not None else DEFAULT_SOURCES_PATH
    data, _raw = read_mapping(path, SourcesConfigError)
    return validate(SourcesConfig, data, path.name, SourcesConfigError)
