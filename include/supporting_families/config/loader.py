"""The one strict YAML loader for the configuration: the data agreements, ``sources.yaml``, ``criteria.yaml``.

Every file fails the same way: a :class:`ConfigError` with one line per problem, ``file: key.path: message``
(``returns.flags[0].column``; ``(document)`` for the file as a whole, ``line N`` for broken YAML), so a
reviewer reads the same shape of error whichever file they got wrong. What the loader refuses:

* a file that cannot be read, is not UTF-8 or is not valid YAML;
* a repeated key in any mapping. YAML lets a later key silently replace an earlier one, which could hide a
  second ``fields:`` list in an agreement, a second entry for a source or a second ``threshold:`` of a rule
  from a reviewer who reads the first;
* a document that is not a mapping of keys;
* anything the file's strict model refuses (unknown keys, wrong types, cross-field rules), each problem on
  the key it is about.

Configuration holds no personal data (secrets are referred to by connection id, never written here), so a
message may quote the file's own text.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple, Self, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

__all__ = [
    "CONFIG_DIR",
    "ROOT_KEY",
    "ConfigError",
    "Loc",
    "Problem",
    "Rules",
    "Violations",
    "key_path",
    "read_mapping",
    "validate",
]

#: ``include/``: the folder that holds the configuration (``agreements/``, ``sources.yaml``,
#: ``criteria.yaml``) beside the product's package. The three default paths are built from it.
CONFIG_DIR: Final = Path(__file__).resolve().parents[2]

#: The key a problem about the whole file is reported at.
ROOT_KEY: Final = "(document)"

#: Where a problem is: mapping keys and list indexes from the top of the document.
Loc = tuple[str | int, ...]

_M = TypeVar("_M", bound=BaseModel)


class Problem(NamedTuple):
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


class ConfigError(ValueError):
    """Configuration files failed validation. One line per problem: ``file: key.path: message``."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)))

    @classmethod
    def one(cls, file: str, key: str, message: str) -> Self:
        """An error of this class with a single problem."""
        return cls([Problem(file, key, message)])


def key_path(loc: Loc) -> str:
    """``("returns", "flags", 0, "column")`` as ``returns.flags[0].column``; ``()`` as ``(document)``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or ROOT_KEY


class Violations(ValueError):
    """Cross-field rule failures, each with the key path (relative to the model) it is about.

    Pydantic reports a model validator's error at the model's own location; carrying the key lets
    :func:`validate` name the exact key instead (``returns.reference.refers_to``, not ``returns``).
    """

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


class Rules:
    """Collects every cross-field failure of one model, so a file's author sees them all at once."""

    def __init__(self) -> None:
        self.problems: list[tuple[Loc, str]] = []

    def fail(self, key: str | Loc, message: str) -> None:
        loc = tuple(key.split(".")) if isinstance(key, str) else key
        self.problems.append((loc if key else (), message))

    def check(self) -> None:
        if self.problems:
            raise Violations(self.problems)


# -- reading -------------------------------------------------------------------------------------------

try:  # libyaml is several times faster; the pure-Python loader behaves the same.
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader


def _duplicate_keys(node: yaml.Node, loc: Loc) -> Iterable[tuple[Loc, str]]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                yield (
                    (*loc, key),
                    f"duplicate key (lines {seen[key]} and {line}); YAML would keep only the last",
                )
            else:
                seen[key] = line
            yield from _duplicate_keys(value_node, (*loc, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, i))


def _parse(file: str, text: str, error: type[ConfigError]) -> Any:
    loader = _BaseLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = [Problem(file, key_path(loc), msg) for loc, msg in _duplicate_keys(node, ())]
        if duplicates:
            raise error(duplicates)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ROOT_KEY
        problem = getattr(exc, "problem", None) or str(exc)
        raise error.one(file, where, f"not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def read_mapping(path: Path, error: type[ConfigError] = ConfigError) -> tuple[dict[str, Any], bytes]:
    """The top-level mapping of the YAML file at ``path``, and the file's bytes (to hash what governed).

    Raises ``error`` (a :class:`ConfigError`) naming the file by its name.
    """
    file = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error.one(file, ROOT_KEY, f"cannot read the file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error.one(file, ROOT_KEY, "not UTF-8 text") from None
    data = _parse(file, text, error)
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise error.one(file, ROOT_KEY, f"must be a mapping of keys, found {found}")
    return data, raw


# -- validating ----------------------------------------------------------------------------------------


def validate(
    model: type[_M],
    data: dict[str, Any],
    file: str,
    error: type[ConfigError] = ConfigError,
    context: dict[str, Any] | None = None,
) -> _M:
    """``data`` validated by ``model``; every failure reported by key as one ``error``."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise error(_problems(model, file, exc)) from None


def _problems(model: type[BaseModel], file: str, exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, Violations):
            problems.extend(Problem(file, key_path(loc + sub), msg) for sub, msg in cause.problems)
            continue
        if kind == "missing":
            message = "field required"
        elif kind == "extra_forbidden":
            message = _unknown_key_message(model, loc)
        elif kind == "literal_error":
            message = f"{err['input']!r} is not allowed; expected {ctx.get('expected')}"
        elif isinstance(cause, Exception):
            message = str(cause)
        else:
            msg = err["msg"]
            message = msg[:1].lower() + msg[1:]
            # A scalar is quoted back; a whole mapping or list is not (the key already says where it is).
            if kind not in ("model_type", "dict_type") and not isinstance(err["input"], dict | list):
                message = f"{err['input']!r}: {message}"
        problems.append(Problem(file, key_path(loc), message))
    return problems


def _unknown_key_message(model: type[BaseModel], loc: Loc) -> str:
    owner = _model_at(model, loc[:-1])
    if owner is None:
        return "unknown key"
    allowed = list(owner.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}allowed here: {', '.join(allowed)}"


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``loc`` (to list its keys when one is unknown)."""
    annotation: Any = model
    for part in loc:
        annotation = _child(annotation, part)
        if annotation is None:
            return None
    return annotation if _is_model(annotation) else None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _child(annotation: Any, part: str | int) -> Any:
    """The annotation of the value at ``part`` inside a value of ``annotation``, or None if unknown."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _child(args[0], part)
    if origin is Union or origin is types.UnionType:
        for arg in args:
            # A discriminated union's member appears in the location by its tag (``mean_below``).
            if _is_model(arg) and isinstance(part, str) and _has_tag(arg, part):
                return arg
            found = _child(arg, part) if arg is not type(None) else None
            if found is not None:
                return found
        return None
    if _is_model(annotation):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field is not None else None
    if origin is dict and isinstance(part, str):
        return args[1]
    if origin in (tuple, list) and isinstance(part, int) and args:
        return args[0]
    return None


def _has_tag(model: type[BaseModel], tag: str) -> bool:
    return any(
        get_origin(field.annotation) is Literal and get_args(field.annotation) == (tag,)
        for field in model.model_fields.values()
    )
