"""Data agreements: one YAML file per share, validated by a strict schema when it is loaded.

A data agreement is the single source of truth for a share (docs/ARCHITECTURE.md): who the partner is, why and
under which law the council shares, which people and which fields leave in which order, how the fields are
pseudonymised, when and where the file goes, which key it is encrypted to, what comes back and how long it
is all kept. The share and receive DAG factories build one DAG of each kind per file, so adding a partner
means adding a file, not Python.

The schema is strict on purpose: an unknown key is rejected rather than ignored (a misspelt ``remote_inbx``
must not silently fall back to a default), and every rule that spans keys is checked here, at DAG parse
time, before anything can leave the building. Every failure is reported as ``file: key.path: message``
(:mod:`supporting_families.config.loader`, the loader all three configuration files share).

Loading is cheap (no network, no Airflow): the DAG processor loads every agreement on each parse.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from supporting_families.config.loader import (
    CONFIG_DIR,
    ROOT_KEY,
    ConfigError,
    Problem,
    Rules,
    read_mapping,
    validate,
)
from supporting_families.store.schemas import DERIVED_FIELDS, INTERNAL_ID_FIELDS, SHAREABLE_FIELDS
from supporting_families.transport.openpgp import InvalidFingerprint, normalise_fingerprint
from supporting_families.transport.paths import check_remote_dir

__all__ = [
    "AGREEMENTS_DIR_ENV",
    "Agreement",
    "AgreementError",
    "CohortRule",
    "Column",
    "LegalGateway",
    "OpenPgp",
    "Partner",
    "Problem",
    "Pseudonymisation",
    "Receipt",
    "Retention",
    "ReturnFlag",
    "ReturnReference",
    "ReturnSpec",
    "ReturnStatus",
    "Schedule",
    "Sftp",
    "agreement_paths",
    "default_agreements_dir",
    "load_agreement",
    "load_agreements",
    "partner_queue",
]


def partner_queue(partner_code: str) -> str:
    """The Celery queue of a partner's tasks (share, receive, connectivity check, rights notices): only
    that partner's worker, which alone holds the partner's connections in its worker-side secrets backend,
    serves it (docs/ARCHITECTURE.md, "Credentials per partner")."""
    return f"sf_{partner_code.replace('-', '_')}"


#: Overrides where :func:`load_agreements` looks when no directory is given (e.g. an installed package).
AGREEMENTS_DIR_ENV: Final = "SF_AGREEMENTS_DIR"

# ---------------------------------------------------------------------------------------------------------
# Enumerations. Literal types, so a typo is a load error and mypy knows the closed set.
# ---------------------------------------------------------------------------------------------------------

#: Who is selected for a share. Each value is the notice's own description of that partner's cohort:
#: DWP - "individuals who meet any of the eligibility criteria";
#: Metropolitan Police - "individuals (who may benefit from a wider service from the local authority)";
#: ONS - "individuals and families ... assessed as meeting criteria for the programme and those who have
#: not been included on the programme but may have received other services".
CohortRule = Literal["meets_any_criterion", "may_benefit_from_wider_service", "assessed_and_comparison"]

#: The legal gateways an agreement may cite. Closed on purpose: the privacy notice tells people under which
#: law their data is used ("Data Protection Act 2018 ... Crime and Disorder Act 1998, Children Act 1989 and
#: 2004, Welfare Reform Act 2012, Localism Act 2011, Local Government Act 1972"), and UK GDPR Articles
#: 13/14 require that to be true. Sharing under a gateway the notice does not name means changing the
#: notice first, and then this list.
LegalGateway = Literal[
    "Data Protection Act 2018",
    "UK GDPR Article 6(1)(e)",  # public task: the lawful basis for every share
    "UK GDPR Article 9(2)(g)",  # substantial public interest, for special category data (health, disability)
    "UK GDPR Article 10",  # criminal offence data (the police return)
    "Crime and Disorder Act 1998 s.115",
    "Children Act 1989 s.17",
    "Children Act 2004 s.10",
    "Welfare Reform Act 2012 s.131",
    "Localism Act 2011 s.1",
    "Local Government Act 1972 s.111",
]

#: Gateways every agreement must cite: the notice says all information is used in accordance with the
#: Data Protection Act 2018, and a share needs a UK GDPR Article 6 lawful basis (public task).
REQUIRED_GATEWAYS: Final[tuple[LegalGateway, ...]] = ("Data Protection Act 2018", "UK GDPR Article 6(1)(e)")

ColumnType = Literal["string", "boolean", "date", "integer"]

#: Sent fields a return may be keyed on: the per-agreement pseudonymous references, because the council
#: reconciles a return against the delivery's manifest of references and re-identifies controller-side.
ReferenceField = Literal["person_ref", "family_ref"]

RetentionClass = Literal["deliveries", "references", "manifests", "returns"]

#: Airflow's cron presets (airflow.utils.dates.cron_presets). ``@once`` and ``@continuous`` are not
#: accepted: a disclosure of personal data happens on a known timetable, not once or in a loop.
CRON_PRESETS: Final = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}

# ---------------------------------------------------------------------------------------------------------
# Scalar checks, as AfterValidators so errors land on the exact key (and list index).
# ---------------------------------------------------------------------------------------------------------

_SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_IDENT = re.compile(r"[a-z][a-z0-9_]*")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_GLOB = re.compile(r"[A-Za-z0-9._*?\[\]-]+")
_HEX_SECRET = re.compile(r"[0-9a-fA-F]{32,}")
_PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDER_NAME = re.compile(r"[A-Z][A-Z0-9_]*_FINGERPRINT")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value) or len(value) > 64:
        raise ValueError(
            f"{value!r} is not a slug: lower-case letters and digits joined by single hyphens, "
            "at most 64 characters (e.g. 'dwp-benefits-matching')"
        )
    return value


def _column_name(value: str) -> str:
    if not _IDENT.fullmatch(value) or len(value) > 63:
        raise ValueError(f"{value!r} is not a column name: lower-case snake_case, at most 63 characters")
    return value


def _conn_id(value: str) -> str:
    if not _CONN_ID.fullmatch(value) or len(value) > 250:
        raise ValueError(f"{value!r} is not an Airflow connection id: letters, digits, '_', '.', '-'")
    return value


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _shareable(value: str) -> str:
    # Internal ids never leave: a stable id shared with two partners would let them link their files,
    # which the per-agreement pseudonymous references exist to prevent (store/schemas.py, INTERNAL_ID_FIELDS).
    if value in INTERNAL_ID_FIELDS:
        ref = "family_ref" if value in ("family_id", "household_id") else "person_ref"
        raise ValueError(
            f"{value!r} is an internal id and never leaves the council; send the per-agreement "
            f"pseudonymous reference {ref!r} instead"
        )
    if value not in SHAREABLE_FIELDS:
        raise ValueError(
            f"{value!r} is not a register field that may be shared; shareable fields are: "
            + ", ".join(SHAREABLE_FIELDS)
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
ColumnName = Annotated[str, AfterValidator(_column_name)]
ConnId = Annotated[str, AfterValidator(_conn_id)]
RemoteDir = Annotated[str, AfterValidator(check_remote_dir)]
ShareableField = Annotated[str, AfterValidator(_shareable)]
Text = Annotated[str, Field(min_length=1)]


def _duplicates(values: tuple[Any, ...]) -> list[Any]:
    """Values that occur more than once, each reported once, in order of their second occurrence."""
    seen: set[Any] = set()
    repeated: list[Any] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


class _Strict(BaseModel):
    # extra="forbid": an unknown key is an error, never ignored (blueprint-style strict config).
    # frozen: a DAG factory cannot change an agreement after it was validated.
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------------------
# Models, in the order the keys appear in an agreement file.
# ---------------------------------------------------------------------------------------------------------


class Contact(_Strict):
    team: Text
    email: Annotated[str, AfterValidator(_email)]


class Partner(_Strict):
    name: Text
    #: Short code used in labels and folder names, e.g. ``dwp``, ``met-police``, ``ons``.
    code: Slug
    contact: Contact


class Pseudonymisation(_Strict):
    """How internal ids become the per-agreement references ``person_ref`` / ``family_ref``."""

    # Keyed HMAC, never a plain hash: ids, dates of birth and postcodes can be enumerated in seconds, so a
    # plain hash is undone by hashing every candidate; without the key nobody can.
    algorithm: Literal["hmac-sha256"] = "hmac-sha256"
    #: Id of the Airflow connection (or secrets-backend entry) holding the 256-bit key. Never the key.
    key_conn_id: ConnId
    #: Version used for new shares; it is carried inside every reference.
    key_version: int = Field(ge=1)
    #: Retired-for-new-shares versions whose references must still resolve (returns still in flight).
    previous_key_versions: tuple[Annotated[int, Field(ge=1)], ...] = ()

    @field_validator("key_conn_id")
    @classmethod
    def _not_a_secret(cls, value: str) -> str:
        # Secrets live in connections or a secrets backend, never in YAML (docs/ARCHITECTURE.md).
        if _HEX_SECRET.fullmatch(value):
            raise ValueError(
                "looks like a key, not the id of the connection holding it: secrets never go in an "
                "agreement file"
            )
        return value

    @model_validator(mode="after")
    def _versions(self) -> Pseudonymisation:
        rules = Rules()
        for i, version in enumerate(self.previous_key_versions):
            if version >= self.key_version:
                rules.fail(
                    ("previous_key_versions", i),
                    f"version {version} is not older than key_version {self.key_version}",
                )
        for version in _duplicates(self.previous_key_versions):
            rules.fail("previous_key_versions", f"version {version} is listed twice")
        rules.check()
        return self


class Schedule(_Strict):
    #: A five-field cron expression or an Airflow preset such as ``@monthly``.
    cron: Text
    #: The council's wall clock: "first working day 07:00" means London time, across BST changes.
    timezone: Text = "Europe/London"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _validate_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/London')") from None
        return value

    @property
    def expression(self) -> str:
        """The five-field cron expression, with a preset expanded."""
        return CRON_PRESETS.get(self.cron, self.cron)


def _validate_cron(value: str) -> str:
    value = value.strip()
    if value.startswith("@"):
        if value not in CRON_PRESETS:
            raise ValueError(f"{value!r} is not an accepted preset; use one of {', '.join(CRON_PRESETS)}")
        return value
    if len(value.split()) != 5:
        # Airflow's cron timetables take five fields; croniter would also accept a seconds field.
        raise ValueError(f"{value!r} must have exactly five fields: minute hour day-of-month month weekday")
    # croniter is the parser Airflow's cron timetables use, so what passes here schedules there. It is
    # imported lazily: at DAG parse the Task SDK has usually imported it already (cron timetables).
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    try:
        croniter(value, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{value!r} never fires (no such date)") from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValueError(f"{value!r} is not a valid cron expression ({exc})") from None
    return value


class Sftp(_Strict):
    #: Airflow connection to the partner's SFTP server (host key pinned in the connection).
    conn_id: ConnId
    #: Where the council delivers (the partner collects from here).
    remote_inbox: RemoteDir
    #: Where the partner leaves its return for the council to collect.
    remote_outbox: RemoteDir

    @model_validator(mode="after")
    def _separate(self) -> Sftp:
        inbox, outbox = self.remote_inbox + "/", self.remote_outbox + "/"
        # One folder inside the other would let the return sensor pick up the council's own deliveries.
        if inbox.startswith(outbox) or outbox.startswith(inbox):
            rules = Rules()
            rules.fail("remote_outbox", f"{self.remote_outbox!r} overlaps remote_inbox {self.remote_inbox!r}")
            rules.check()
        return self


class OpenPgp(_Strict):
    #: The partner's public key, pinned by its v4 fingerprint (40 hex digits, normalised to upper case).
    #: May be ``${NAME_FINGERPRINT}``: the demo generates partner keys at set-up, so no committed literal
    #: could match; set-up exports the fingerprint and production writes the literal here instead.
    partner_fingerprint: str

    @field_validator("partner_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str, info: ValidationInfo) -> str:
        env: Mapping[str, str] = os.environ
        resolve = True
        if isinstance(info.context, dict):
            env = info.context.get("env", env)
            resolve = info.context.get("resolve", True)
        return _resolve_fingerprint(value, env, resolve=resolve)

    @property
    def partner_fingerprint_spaced(self) -> str:
        """The fingerprint as GnuPG prints it, in groups of four, for humans comparing by eye."""
        fp = self.partner_fingerprint
        return " ".join(fp[i : i + 4] for i in range(0, 40, 4))


def _resolve_fingerprint(value: str, env: Mapping[str, str], *, resolve: bool = True) -> str:
    raw = value.strip()
    match = _PLACEHOLDER.fullmatch(raw)
    if match:
        name = match["name"]
        # Only *_FINGERPRINT variables may be read, so a placeholder can never pull a secret into config.
        if not _PLACEHOLDER_NAME.fullmatch(name):
            raise ValueError(
                f"placeholder ${{{name}}}: the variable name must be upper case and end in _FINGERPRINT"
            )
        if not resolve:
            # DAG parsing: the deployment's environment is a run-time fact, so the placeholder stays and
            # the tasks that encrypt load the agreement again with resolve=True.
            return raw
        if name not in env:
            raise ValueError(
                f"placeholder ${{{name}}} is unresolved: environment variable {name} is not set "
                "(the set-up command exports the generated partner fingerprint there)"
            )
        try:
            return normalise_fingerprint(env[name])
        except InvalidFingerprint as exc:
            # The environment value is not echoed: only the committed file's own text is.
            raise ValueError(
                f"environment variable {name} does not hold a 40-hex-digit OpenPGP fingerprint "
                f"({exc.characters} characters after removing spaces)"
            ) from None
    if "$" in raw:
        raise ValueError(f"{value!r} is not a fingerprint or a whole ${{NAME_FINGERPRINT}} placeholder")
    try:
        return normalise_fingerprint(raw)
    except InvalidFingerprint:
        raise ValueError(
            f"{value!r} is not an OpenPGP v4 fingerprint: 40 hexadecimal digits (spaces allowed), "
            "not a short key id or a user id"
        ) from None


class Column(_Strict):
    name: ColumnName
    type: ColumnType
    #: Whether a cell may be empty (e.g. no benefit flags when the address was not confirmed).
    nullable: bool = False
    #: The closed set of values a ``string`` column may hold.
    allowed: tuple[Text, ...] | None = None

    @model_validator(mode="after")
    def _allowed(self) -> Column:
        rules = Rules()
        if self.allowed is not None:
            if self.type != "string":
                rules.fail("allowed", f"only a string column can list allowed values, not {self.type}")
            elif not self.allowed:
                rules.fail("allowed", "must list at least one value (or be left out)")
            for value in _duplicates(self.allowed):
                rules.fail("allowed", f"{value!r} is listed twice")
        rules.check()
        return self


class ReturnReference(_Strict):
    """Which return column carries the reference, and which sent field it echoes."""

    column: ColumnName
    refers_to: ReferenceField


class ReturnFlag(_Strict):
    """One return column that becomes a partner flag for one of the criteria's sub-criteria.

    What a flag means follows from the column's type, so the file cannot say two things at once:

    * a ``boolean`` column flags the person when it is ``true``, with no evidence date (DWP agreement: DWP
      says whether an out-of-work benefit is in payment, not since when);
    * a ``date`` column flags the person when it holds a date, and that date is the evidence date (Police
      agreement: the date of the offence, caution or ASB intervention, which the criteria's 12-month
      windows are applied to).

    Only rows the partner matched are merged; a flag on a row it rejected (e.g. ``address_not_confirmed``)
    is never taken in. ``sub_criterion`` is a code from ``include/criteria.yaml`` whose ``partners`` list
    this agreement's partner; the criteria engine ignores a flag that its configuration does not take.
    """

    column: ColumnName
    sub_criterion: ColumnName


class ReturnStatus(_Strict):
    """A per-row outcome column, so reconciliation can tell matched rows from those the partner rejected."""

    column: ColumnName
    matched: tuple[Text, ...] = Field(min_length=1)
    rejected: tuple[Text, ...] = ()


class Receipt(_Strict):
    """An acknowledgement instead of data: what the partner says it received, checked against the manifest."""

    row_count_column: ColumnName
    sha256_column: ColumnName
    #: Which of the manifest's two hashes the partner reports.
    hash_of: Literal["plaintext", "ciphertext"]


class ReturnSpec(_Strict):
    """The file the partner sends back: where to find it, its shape, and how long the council waits."""

    #: Glob matched in the partner's outbox, e.g. ``dwp-return-*.csv.gpg`` (the file is OpenPGP encrypted).
    file_pattern: Text
    #: Format of the decrypted content.
    format: Literal["csv"]
    #: Refuse anything larger before downloading it: a size limit on what the partner's server offers.
    max_size_mib: int = Field(gt=0, le=4096)
    #: Days after delivery by which the return is due; later than that raises an alert.
    deadline_days: int = Field(gt=0, le=365)
    columns: tuple[Column, ...] = Field(min_length=1)
    #: Per-reference returns (DWP, police) say which column is the reference...
    reference: ReturnReference | None = None
    status: ReturnStatus | None = None
    #: ...receipts (ONS) say which columns carry the row count and hash instead.
    receipt: Receipt | None = None
    #: Which columns of a per-reference return become partner flags in the register.
    #: Empty: the return is reconciled but adds no flags.
    flags: tuple[ReturnFlag, ...] = ()

    @field_validator("file_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if not _GLOB.fullmatch(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a safe file-name glob: letters, digits, '.', '_', '-', '*', '?', '[]'; "
                "no '/' or '..'"
            )
        if value[0] in "*?[":
            raise ValueError(
                f"{value!r} must start with a fixed prefix so it matches only this agreement's files"
            )
        if not value.endswith((".gpg", ".pgp")):
            raise ValueError(
                f"{value!r} must end in .gpg or .pgp: returns arrive OpenPGP encrypted and signed"
            )
        # docs/STORE.md: a return names the delivery it answers, `<return prefix>-<delivery id>.csv.gpg`.
        # The one '*' stands for the delivery id, so the receive DAG can tell which delivery a file
        # answers and wait for exactly that file; other wildcards would make the id ambiguous.
        if value.count("*") != 1 or "?" in value or "[" in value:
            raise ValueError(
                f"{value!r} must have exactly one '*' (standing for the delivery id) and no '?' or '[]'"
            )
        return value

    @model_validator(mode="after")
    def _shape(self) -> ReturnSpec:
        rules = Rules()
        names = tuple(c.name for c in self.columns)
        for name in _duplicates(names):
            rules.fail("columns", f"column {name!r} is listed twice")
        by_name = {c.name: c for c in self.columns}

        if (self.reference is None) == (self.receipt is None):
            rules.fail((), "give exactly one of 'reference' (a per-reference return) or 'receipt'")

        def need(loc: str, name: str, kind: ColumnType) -> Column | None:
            column = by_name.get(name)
            if column is None:
                rules.fail(loc, f"{name!r} is not one of the columns ({', '.join(names)})")
            elif column.type != kind:
                rules.fail(loc, f"column {name!r} must be of type {kind}, not {column.type}")
            return column

        if self.reference is not None:
            column = need("reference.column", self.reference.column, "string")
            if column is not None and column.nullable:
                rules.fail("reference.column", f"reference column {column.name!r} cannot be nullable")
        if self.status is not None:
            loc = "status.column"
            if self.reference is None:
                rules.fail("status", "a status column only makes sense with a per-reference return")
            column = need(loc, self.status.column, "string")
            declared = set(self.status.matched) | set(self.status.rejected)
            if set(self.status.matched) & set(self.status.rejected):
                rules.fail("status.rejected", "a value cannot be both matched and rejected")
            if column is not None and column.allowed is not None and set(column.allowed) != declared:
                rules.fail(loc, f"matched + rejected must equal the allowed values of column {column.name!r}")
            elif column is not None and column.allowed is None:
                rules.fail(loc, f"column {column.name!r} must list its allowed values")
        if self.receipt is not None:
            need("receipt.row_count_column", self.receipt.row_count_column, "integer")
            need("receipt.sha256_column", self.receipt.sha256_column, "string")
        self._flag_rules(rules, by_name, names)
        rules.check()
        return self

    def _flag_rules(self, rules: Rules, by_name: dict[str, Column], names: tuple[str, ...]) -> None:
        if not self.flags:
            return
        if self.reference is None:
            rules.fail("flags", "flags come from a per-reference return, not a receipt")
        elif self.reference.refers_to != "person_ref":
            # The criteria flag persons; a family reference would have to flag every member alike.
            rules.fail("flags", "flags need a return keyed on person_ref (reference.refers_to)")
        for name in _duplicates(tuple(f.column for f in self.flags)):
            rules.fail("flags", f"column {name!r} is mapped twice")
        for i, flag in enumerate(self.flags):
            column = by_name.get(flag.column)
            if column is None:
                rules.fail(
                    ("flags", i, "column"), f"{flag.column!r} is not one of the columns ({', '.join(names)})"
                )
            elif column.type not in ("boolean", "date"):
                rules.fail(
                    ("flags", i, "column"),
                    f"column {flag.column!r} is {column.type}: a flag is a boolean (true flags) or a date "
                    "(a date flags, and is the evidence date)",
                )

    @property
    def kind(self) -> Literal["per_reference", "receipt"]:
        return "per_reference" if self.reference is not None else "receipt"

    def column(self, name: str) -> Column:
        """The column called ``name`` (KeyError if the return has none)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


class RetentionDays(_Strict):
    # Days after the delivery (a return: after its receipt). At most a year after the event, and the council's
    # ceiling (include/retention.yaml: the notice's "up to one year after the end of the programme") ends
    # each one earlier whatever it says here. 366 allows a leap day.
    deliveries: int = Field(ge=0, le=366)
    references: int = Field(ge=0, le=366)
    returns: int = Field(ge=0, le=366)
    manifests: int = Field(ge=0, le=366)


class Retention(_Strict):
    """How long this agreement's classes (:data:`supporting_families.config.retention.AGREEMENT_CLASSES`)
    are kept; the programme's end is council-wide, in ``include/retention.yaml``."""

    days: RetentionDays

    @model_validator(mode="after")
    def _manifests_outlive_data(self) -> Retention:
        days = self.days
        # A delivery's manifest (which references went where) answers subject access and rectification
        # for as long as the data it describes exists, so it must not be deleted first.
        if days.manifests < max(days.deliveries, days.references, days.returns):
            rules = Rules()
            rules.fail(
                "days.manifests",
                "manifests must be kept at least as long as the deliveries, references and returns they"
                " describe",
            )
            rules.check()
        return self

    def days_for(self, kind: RetentionClass) -> int:
        days: int = getattr(self.days, kind)
        return days


class Agreement(_Strict):
    """One data agreement, validated. Build DAGs from it; never mutate it (the model is frozen)."""

    #: Stable slug, equal to the file name without ``.yaml``; used in DAG ids, file names and the ledger.
    id: Slug
    title: Text
    #: Incremented whenever the agreement changes; recorded with every disclosure.
    version: int = Field(ge=1)
    partner: Partner
    #: The notice's own words for why this partner receives data.
    purpose: str = Field(min_length=20)
    legal_gateways: tuple[LegalGateway, ...] = Field(min_length=1)
    cohort: CohortRule
    #: The fields that may leave, in the order of the delivered file's columns.
    fields: tuple[ShareableField, ...] = Field(min_length=1)
    pseudonymisation: Pseudonymisation
    schedule: Schedule
    sftp: Sftp
    openpgp: OpenPgp
    returns: ReturnSpec
    retention: Retention

    _source_path: Path | None = PrivateAttr(default=None)
    _source_sha256: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Agreement:
        rules = Rules()
        for name in _duplicates(self.fields):
            rules.fail("fields", f"{name!r} is listed twice; each field leaves once")
        if "person_ref" not in self.fields:
            # The council reconciles every return and records every disclosure by person_ref.
            rules.fail("fields", "'person_ref' must be sent: returns and disclosures are keyed on it")
        # ONS agreement: the evaluation compares families "assessed as meeting criteria" with "those who
        # have not been included", so each row must say which; for other cohorts the status is not needed
        # and minimisation (UK GDPR Article 5(1)(c)) keeps it in.
        if self.cohort == "assessed_and_comparison" and "programme_status" not in self.fields:
            rules.fail("fields", "cohort 'assessed_and_comparison' needs 'programme_status' among the fields")
        if self.cohort != "assessed_and_comparison" and "programme_status" in self.fields:
            rules.fail(
                ("fields", self.fields.index("programme_status")),
                f"'programme_status' is only for cohort 'assessed_and_comparison', not {self.cohort!r}",
            )
        for name in _duplicates(self.legal_gateways):
            rules.fail("legal_gateways", f"{name!r} is listed twice")
        for gateway in REQUIRED_GATEWAYS:
            if gateway not in self.legal_gateways:
                rules.fail("legal_gateways", f"must cite {gateway!r}")
        reference = self.returns.reference
        if reference is not None and reference.refers_to not in self.fields:
            rules.fail(
                "returns.reference.refers_to",
                f"{reference.refers_to!r} is not among the fields sent to {self.partner.code} "
                f"({', '.join(self.fields)}): a return can only refer to what was sent",
            )
        rules.check()
        return self

    # Helpers for the DAG factories -------------------------------------------------------------------

    @property
    def slug(self) -> str:
        """The agreement id, e.g. ``dwp-benefits-matching``."""
        return self.id

    @property
    def dag_id_suffix(self) -> str:
        """The id in DAG-id style, e.g. ``dwp_benefits_matching`` for ``share__dwp_benefits_matching``."""
        return self.id.replace("-", "_")

    @property
    def label(self) -> str:
        """Partner and agreement, e.g. ``dwp/benefits-matching``: for test ids, tags and summaries."""
        rest = self.id.removeprefix(f"{self.partner.code}-")
        return f"{self.partner.code}/{rest}"

    def sends(self, field: str) -> bool:
        """Whether ``field`` is among the fields that leave under this agreement."""
        return field in self.fields

    @property
    def derived_fields(self) -> tuple[str, ...]:
        """The sent fields computed at share time (references, programme status), in file order."""
        return tuple(f for f in self.fields if f in DERIVED_FIELDS)

    @property
    def register_fields(self) -> tuple[str, ...]:
        """The sent fields read from the register, in file order."""
        return tuple(f for f in self.fields if f not in DERIVED_FIELDS)

    @property
    def source_path(self) -> Path | None:
        """The file this agreement was loaded from."""
        return self._source_path

    @property
    def source_sha256(self) -> str | None:
        """SHA-256 of the file as committed (placeholders unresolved), for the ledger: which text governed."""
        return self._source_sha256


# ---------------------------------------------------------------------------------------------------------
# Loading and error reporting.
# ---------------------------------------------------------------------------------------------------------


class AgreementError(ConfigError):
    """Agreement files failed validation. One line per problem: ``file: key.path: message``."""


def load_agreement(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *, resolve: bool = True
) -> Agreement:
    """Read and validate one agreement file.

    ``env`` resolves ``${NAME_FINGERPRINT}`` placeholders (default: ``os.environ``); with ``resolve=False``
    (DAG parse time) a well-formed placeholder is kept as written. Raises
    :class:`AgreementError` naming the file and every failing key.
    """
    path = Path(path)
    name = path.name
    data, raw = read_mapping(path, AgreementError)
    agreement = validate(
        Agreement,
        data,
        name,
        AgreementError,
        context={"env": os.environ if env is None else env, "resolve": resolve},
    )
    # The id names DAGs, keys and ledger entries; tying it to the file name means renaming a file without
    # changing its id (or the reverse) is caught here, not discovered as a "new" agreement in the ledger.
    if agreement.id != path.stem:
        raise AgreementError.one(
            name, "id", f"{agreement.id!r} does not match the file name; expected {path.stem!r}"
        )
    agreement._source_path = path
    agreement._source_sha256 = hashlib.sha256(raw).hexdigest()
    return agreement


def default_agreements_dir() -> Path:
    """``$SF_AGREEMENTS_DIR`` if set, else ``include/agreements`` beside this package."""
    override = os.environ.get(AGREEMENTS_DIR_ENV)
    if override:
        return Path(override)
    return CONFIG_DIR / "agreements"


def agreement_paths(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """The agreement files in ``directory``, sorted by name (so DAGs come out in a stable order)."""
    folder = Path(directory) if directory is not None else default_agreements_dir()
    if not folder.is_dir():
        raise AgreementError.one(str(folder), ROOT_KEY, "agreements directory does not exist")
    strays = sorted(p.name for p in folder.glob("*.yml"))
    if strays:
        # A .yml file would otherwise be skipped silently, and with it a whole share.
        raise AgreementError([Problem(s, ROOT_KEY, "agreement files must end in .yaml") for s in strays])
    return sorted(folder.glob("*.yaml"))


def load_agreements(
    directory: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    resolve: bool = True,
) -> list[Agreement]:
    """Load and validate every ``*.yaml`` agreement in ``directory`` (default :func:`default_agreements_dir`).

    All files are checked before failing, so one :class:`AgreementError` lists every problem in the set.
    """
    agreements: list[Agreement] = []
    problems: list[Problem] = []
    for path in agreement_paths(directory):
        try:
            agreements.append(load_agreement(path, env=env, resolve=resolve))
        except AgreementError as exc:
            problems.extend(exc.problems)
    # One key per agreement: the same key in two agreements would give a person the same reference at
    # two partners, letting them link their files; unrelated references per agreement exist to prevent that.
    owner: dict[str, str] = {}
    for agreement in agreements:
        key = agreement.pseudonymisation.key_conn_id
        file = f"{agreement.id}.yaml"
        if key in owner:
            problems.append(
                Problem(
                    file,
                    "pseudonymisation.key_conn_id",
                    f"{key!r} is already the key of {owner[key]}; each agreement needs its own key",
                )
            )
        else:
            owner[key] = file
    if problems:
        raise AgreementError(problems)
    return agreements
