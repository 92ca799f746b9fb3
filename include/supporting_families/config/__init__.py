"""Configuration: the data agreements, the sources and the criteria, each loaded by one strict YAML loader.

Three kinds of file under ``include/`` (:data:`CONFIG_DIR`), one per unit of governance: a data agreement
per share (``agreements/<id>.yaml``), the departments' extracts (``sources.yaml``) and the Supporting
Families criteria (``criteria.yaml``). Each is read by :mod:`supporting_families.config.loader` (a repeated
key is refused, as is an unknown one) and fails the same way: a :class:`ConfigError` (its subclass
:class:`AgreementError`, :class:`SourcesConfigError` or :class:`CriteriaConfigError`) with one line per
problem, ``file: key.path: message``.

    from supporting_families.config import load_agreements, load_criteria, load_sources
"""

from __future__ import annotations

from supporting_families.config.agreements import (
    AGREEMENTS_DIR_ENV,
    Agreement,
    AgreementError,
    Column,
    agreement_paths,
    default_agreements_dir,
    load_agreement,
    load_agreements,
    partner_queue,
)
from supporting_families.config.criteria import (
    DEFAULT_CRITERIA_PATH,
    CriteriaConfig,
    CriteriaConfigError,
    config_sha256,
    load_criteria,
)
from supporting_families.config.loader import CONFIG_DIR, ConfigError, Problem
from supporting_families.config.sources import (
    DEFAULT_SOURCES_PATH,
    IDENTITY_FIELDS,
    ColumnSpec,
    SourcesConfig,
    SourcesConfigError,
    SourceSpec,
    load_sources,
)

__all__ = [
    "AGREEMENTS_DIR_ENV",
    "CONFIG_DIR",
    "DEFAULT_CRITERIA_PATH",
    "DEFAULT_SOURCES_PATH",
    "IDENTITY_FIELDS",
    "Agreement",
    "AgreementError",
    "Column",
    "ColumnSpec",
    "ConfigError",
    "CriteriaConfig",
    "CriteriaConfigError",
    "Problem",
    "SourceSpec",
    "SourcesConfig",
    "SourcesConfigError",
    "agreement_paths",
    "config_sha256",
    "default_agreements_dir",
    "load_agreement",
    "load_agreements",
    "load_criteria",
    "load_sources",
    "partner_queue",
]
