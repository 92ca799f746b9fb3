"""The ledger's personal-data guard: what a free-form column or ``details`` may hold.

The ledger is kept longer than the data it describes and cannot be edited, so a right to erasure (UK GDPR
Article 17) could never reach personal data written into it. Strings must be hashes, uuids or short codes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

from supporting_families.audit.actors import STAFF_ID_PREFIX
from supporting_families.audit.canonical import canonical_json
from supporting_families.audit.errors import EntryValidationError, PersonalDataError
from supporting_families.audit.personal_names import GIVEN_NAMES, SURNAMES

# ones as floats and would re-serialise them differently.
_MAX_SAFE_INT: Final = 2**53 - 1
_MAX_DETAIL_STRING: Final = 128
_MAX_LIST: Final = 64
_MAX_KEYS: Final = 64
#: Levels of objects or lists below ``details`` itself, e.g. ``{"classes": {"matched": 9}}`` is one.
_MAX_DEPTH: Final = 2
_MAX_DETAILS_BYTES: Final = 8192

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{32,128}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: A pseudonymous staff id (supporting_families.audit.actors), alone or after a trigger such as ``ui:``. Its
#: 128 bits of hex can hold nine digits in a row or a date-like run by chance, like any digest.
_STAFF_ID = re.compile(rf"(?:[a-z_]{{1,32}}:)?{STAFF_ID_PREFIX}[0-9a-f]{{32}}")
#: A short code: letters, digits and the punctuation of file names, Airflow ids and run ids. No spaces
#: (free text), no '@' (e-mail), no quotes or commas (a row pasted in).
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/~-]*")
_DETAIL_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
#: A run type, a trigger or a staff id (``staff-`` + hex, supporting_families.audit.actors): never an e-mail.
_TRIGGERED_BY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")
# UK postcode (Royal Mail's letter rules, so 'v1 2ab' and the like are not taken for one), with a space,
# '_', '-' or nothing between the outward and inward codes, anywhere in a value; and GIR 0AA.
_POSTCODE = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-PR-UWYZ][A-HK-Y]?[0-9][A-HJKMNPR-Y0-9]?[ _-]?[0-9][ABD-HJLNP-UW-Z]{2}"
    r"|GIR[ _-]?0AA)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:1[89][0-9]{2}|20[0-9]{2})"
# A date of birth in the forms source systems write: 1985-03-12, 12/03/1985, 12/03/85, 12.03.1985,
# 19850312, 12031985, 12-Mar-1985, 12march1985.
_DATE = re.compile(
    rf"(?<![0-9])(?:{_YEAR}[-/.]{_MON}[-/.]{_DAY}"
    rf"|{_DAY}[-/.]{_MON}[-/.]{_YEAR}"
    rf"|{_DAY}/{_MON}/[0-9]{{2}}"
    rf"|{_YEAR}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    rf"|(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2]){_YEAR}"
    rf"|{_DAY}[-/. ]?{_MONTH}[-/. ]?(?:{_YEAR}|[0-9]{{2}}))(?![0-9])",
    re.IGNORECASE,
)
# An Airflow run id's logical date, e.g. scheduled__2025-04-02T06:00:00+00:00: a timestamp with a time of
# day that Airflow wrote, not a date of birth, so it is taken out before the date rule looks.
_RUN_ID_TIMESTAMP = re.compile(r"__[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:[+-][0-9]{2}:?[0-9]{2}|Z)?")
# Loose on the prefix letters on purpose: source data holds invalid and example (QQ) numbers too.
_NI_NUMBER = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}[ _-]?[0-9]{2}[ _-]?[0-9]{2}[ _-]?[0-9]{2}[ _-]?[A-D](?![A-Za-z0-9])",
    re.IGNORECASE,
)
_LONG_NUMBER = re.compile(r"[0-9]{9,}")
_NAME = re.compile(r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)*")
_WORD = re.compile(r"[a-z]+")


def _looks_like_a_person(value: str) -> bool:
    """A given name anywhere in a code (``john_smith``, ``jane.officer``, ``sarah_k``), or a surname beside
    an initial or another surname (``j_smith``, ``smith-jones``); in any case, accents folded."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower().replace("'", "")
    words = _WORD.findall(folded)
    if any(word in GIVEN_NAMES for word in words):
        return True
    for i, word in enumerate(words):
        if word in SURNAMES:
            beside = words[max(i - 1, 0) : i] + words[i + 1 : i + 2]
            if any(len(other) == 1 or other in SURNAMES for other in beside):
                return True
    return False


def _string_problem(
    value: str,
    *,
    max_length: int = _MAX_DETAIL_STRING,
    pattern: re.Pattern[str] = _TOKEN,
) -> tuple[str, bool] | None:
    """Why ``value`` may not go into the ledger, and whether the reason is personal data; None if it may.

    The message never quotes the value: it is exactly what must not be written anywhere.
    """
    if _CONTROL.search(value):
        return "contains control characters", False
    if (
        (_HEX_DIGEST.fullmatch(value) and not value.isdigit())
        or _UUID.fullmatch(value)
        or _STAFF_ID.fullmatch(value)
    ):
        return None  # all digits is not a digest: it could be numbers run together
    if "@" in value:
        return "looks like an e-mail address", True
    if _POSTCODE.search(value):
        return "looks like a UK postcode", True
    if _NI_NUMBER.search(value):
        return "looks like a National Insurance number", True
    # Run ids carry their logical date; anywhere else, a file name included (the platform names its files by
    # delivery id, never by date, and a partner's name is its own choice), a date may be a date of birth.
    if _DATE.search(_RUN_ID_TIMESTAMP.sub("__", value)):
        return "holds a date (a date of birth is personal data; dates belong in occurred_at)", True
    if _LONG_NUMBER.search(value):
        return "holds a number of 9 or more digits (an NHS number, UPRN or telephone number?)", True
    if len(value) > max_length:
        return f"is free text over {max_length} characters", True
    if any(c.isspace() for c in value):
        return "is free text (it has spaces): use a short code such as 'address_not_confirmed'", True
    if not pattern.fullmatch(value):
        return "is not a hash, id or short code (letters, digits and . _ : + / ~ - only)", True
    if _NAME.fullmatch(value):
        return "looks like a name (codes are lower case)", True
    # Staff are recorded by a pseudonymous id (supporting_families.audit.actors), so no value the platform
    # writes holds a personal name, whatever its case.
    if _looks_like_a_person(value):
        return "holds a personal name (staff are recorded by their staff id)", True
    return None


class _Problems:
    """Collects every problem with one entry, so its author sees them all at once."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.personal = False

    def add(self, path: str, message: str, *, personal: bool = False) -> None:
        self.messages.append(f"{path}: {message}")
        self.personal = self.personal or personal

    def string(self, path: str, value: str, **rules: Any) -> None:
        problem = _string_problem(value, **rules)
        if problem is not None:
            self.add(path, problem[0], personal=problem[1])

    def raise_if_any(self) -> None:
        if self.messages:
            raise (PersonalDataError if self.personal else EntryValidationError)(self.messages)


def _check_detail(value: object, path: str, depth: int, problems: _Problems) -> Any:
    """``value`` as plain JSON (lists, dicts), with every problem found added to ``problems``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            problems.add(path, f"integer beyond +/-{_MAX_SAFE_INT} (not portable JSON)")
        return value
    if isinstance(value, float):
        # Floats print differently across languages, which would break the canonical form.
        problems.add(path, "floats are not allowed: give a count, or a rate in parts per million")
        return None
    if isinstance(value, str):
        problems.string(path, value)
        return value
    if isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            problems.add(path, f"nested deeper than {_MAX_DEPTH} levels")
            return None
        return _check_mapping(value, path, depth + 1, problems)
    if isinstance(value, list | tuple):
        if depth >= _MAX_DEPTH:
            problems.add(path, f"nested deeper than {_MAX_DEPTH} levels")
            return None
        if len(value) > _MAX_LIST:
            # Summaries are short; a long list is per-row data (references, values) by another name.
            problems.add(
                path, f"a list of more than {_MAX_LIST} items is per-row data: record a count", personal=True
            )
            return None
        return [_check_detail(item, f"{path}[{i}]", depth + 1, problems) for i, item in enumerate(value)]
    problems.add(path, f"a {type(value).__name__} is not allowed (numbers, strings, lists and objects only)")
    return None


def _check_mapping(value: Mapping[Any, Any], path: str, depth: int, problems: _Problems) -> dict[str, Any]:
    if len(value) > _MAX_KEYS:
        problems.add(path, f"more than {_MAX_KEYS} keys")
    out: dict[str, Any] = {}
    for i, (key, item) in enumerate(value.items()):
        if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
            # The key is not echoed either: it could be the value someone meant to put in.
            problems.add(
                f"{path}[key {i}]", "keys are snake_case names of at most 64 characters", personal=True
            )
            continue
        out[key] = _check_detail(item, f"{path}.{key}", depth, problems)
    return out


def check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` as plain JSON, or :class:`PersonalDataError` / :class:`EntryValidationError`.

    Use it before an irreversible step (an upload) so a bad entry stops the run before data leaves, not after.
    """
    problems = _Problems()
    plain = _check_details_into(details, problems)
    problems.raise_if_any()
    return plain


def _check_details_into(details: Mapping[str, Any], problems: _Problems) -> dict[str, Any]:
    if not isinstance(details, Mapping):
        problems.add("details", "must be an object (a mapping of names to values)")
        return {}
    plain = _check_mapping(details, "details", 0, problems)
    # Refused values are None in ``plain``, so it always serialises.
    if len(canonical_json(plain)) > _MAX_DETAILS_BYTES:
        problems.add("details", f"over {_MAX_DETAILS_BYTES} bytes: details are a summary, not a report")
    return plain
