"""include/sources.yaml: valid, strict, and unable to drift from the generator."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from sf_demo.synthetic import generate_borough
from supporting_families.config import (
    DEFAULT_SOURCES_PATH,
    IDENTITY_FIELDS,
    SourcesConfig,
    SourcesConfigError,
    load_sources,
)
from supporting_families.store import REGISTER_FIELDS

RAW = yaml.safe_load(DEFAULT_SOURCES_PATH.read_text(encoding="utf-8"))
CONFIG = load_sources()
#: One otherwise valid file per key YAML would silently repeat; each header says ``# expect: key: fragment``.
INVALID_DIR = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "sources" / "invalid"
INVALID_FILES = sorted(INVALID_DIR.glob("*.yaml"))


@pytest.mark.parametrize("source", list(CONFIG.sources), ids=str)
def test_each_source_names_what_the_ingest_needs(source: str) -> None:
    spec = CONFIG.sources[source]
    assert spec.file_glob == f"extracts/{source}/{source}_*.csv"
    assert spec.by_standard["record_id"].name == spec.record_id
    assert {"given_name", "family_name", "date_of_birth", "sex", "address_line_1", "postcode"} <= set(
        spec.identity_fields
    )
    assert set(spec.identity_fields) <= set(IDENTITY_FIELDS)
    assert set(IDENTITY_FIELDS) - {"record_id"} <= set(REGISTER_FIELDS)
    assert spec.measure_fields, "every source carries something beyond identity"
    assert spec.department and spec.holds and spec.row_grain


def test_sources_differ_in_their_quirks() -> None:
    specs = CONFIG.sources.values()
    assert len({s.date_format for s in specs}) >= 4
    assert len({s.delimiter for s in specs}) >= 3
    assert len({s.encoding for s in specs}) == 3
    assert {c.format for s in specs for c in s.columns if c.type == "uprn"} == {"text", "integer"}
    assert {c.format for s in specs for c in s.columns if c.type == "postcode"} == {"spaced", "compact"}
    assert any("uprn" not in s.by_standard for s in specs), "some sources hold no UPRN"


def _columns(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    columns: list[dict[str, Any]] = data["sources"][source]["columns"]
    return columns


def _sex_column(data: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in _columns(data, "neet") if c["standard"] == "sex")


INVALID: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown-source-key": (lambda d: d["sources"]["housing"].update(owner="x"), "sources.housing.owner"),
    "unknown-column-key": (
        lambda d: _columns(d, "asb")[0].update(colour="red"),
        "sources.asb.columns[0].colour",
    ),
    "unknown-type": (
        lambda d: _columns(d, "neet")[9].update(type="timestamp"),
        "sources.neet.columns[9].type",
    ),
    "record-id-not-a-column": (
        lambda d: d["sources"]["early_help"].update(record_id="Ref"),
        "sources.early_help",
    ),
    "code-without-codes": (lambda d: _sex_column(d).pop("codes"), "sources.neet.columns[4]"),
    "sex-code-not-f-or-m": (lambda d: _sex_column(d)["codes"].update({"9": "X"}), "sources.neet.columns[4]"),
    "glob-with-two-stars": (
        lambda d: d["sources"]["asb"].update(file_glob="extracts/asb/*_*.csv"),
        "sources.asb",
    ),
    "dob-as-string": (lambda d: _columns(d, "neet")[3].update(type="string"), "sources.neet.columns[3]"),
    "duplicate-column": (lambda d: _columns(d, "asb").append(dict(_columns(d, "asb")[1])), "sources.asb"),
    "bad-encoding": (
        lambda d: d["sources"]["housing"].update(encoding="latin-9"),
        "sources.housing.encoding",
    ),
    "unknown-top-level-key": (lambda d: d.update(owner="x"), "owner"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=str)
def test_invalid_sources_file_fails_naming_the_file_and_key(case: str, tmp_path: Path) -> None:
    mutate, key = INVALID[case]
    data = copy.deepcopy(RAW)
    mutate(data)
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(SourcesConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert all(line.startswith(f"{path.name}: ") for line in message.splitlines()), message
    assert any(problem.key.startswith(key) for problem in info.value.problems), message


def _expectations(path: Path) -> list[tuple[str, str]]:
    expected = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# expect: "):
            key, _, fragment = line.removeprefix("# expect: ").partition(": ")
            expected.append((key, fragment))
    return expected


def test_there_is_a_fixture_for_each_repeated_key_the_loader_refuses() -> None:
    assert {"duplicate-source", "duplicate-column-key"} <= {p.stem for p in INVALID_FILES}


@pytest.mark.parametrize("path", INVALID_FILES, ids=[f"invalid/{p.stem}" for p in INVALID_FILES])
def test_invalid_fixture_fails_naming_file_and_key(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect: key: fragment' line"

    with pytest.raises(SourcesConfigError) as caught:
        load_sources(path)

    problems = caught.value.problems
    assert all(line.startswith(f"{path.name}: ") for line in str(caught.value).splitlines())
    assert sorted(p.key for p in problems) == sorted(key for key, _ in expected), str(caught.value)
    for key, fragment in expected:
        messages = [p.message for p in problems if p.key == key]
        assert any(fragment in m for m in messages), f"{key}: expected {fragment!r} in {messages}"


@pytest.mark.parametrize("path", INVALID_FILES, ids=[f"invalid/{p.stem}" for p in INVALID_FILES])
def test_each_invalid_fixture_is_valid_but_for_its_repeated_key(path: Path, tmp_path: Path) -> None:
    # What YAML alone makes of the file (the last of two equal keys wins) is a valid sources file, so the
    # fixture fails for its repeated key and for nothing else.
    last_wins = tmp_path / path.name
    last_wins.write_text(yaml.safe_dump(yaml.safe_load(path.read_text(encoding="utf-8"))), encoding="utf-8")
    assert list(load_sources(last_wins).sources) == ["asb"]


def _config_with(mutate: Callable[[dict[str, Any]], None]) -> SourcesConfig:
    data = copy.deepcopy(RAW)
    mutate(data)
    return SourcesConfig.model_validate(data)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: _columns(d, "housing").pop(),  # a measure the generator makes is missing from the file
        lambda d: _columns(d, "asb").append(
            {"name": "risk", "standard": "risk_score", "type": "integer"}
        ),  # the file names a measure the generator does not make
        lambda d: d["sources"].pop("neet"),  # a source the generator makes is missing
    ],
    ids=["measure-missing-from-file", "measure-unknown-to-generator", "source-missing-from-file"],
)
def test_generator_refuses_a_sources_file_that_drifted(mutate: Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(SourcesConfigError, match=r"sources\.yaml"):
        generate_borough(300, seed=1, as_of=date(2025, 3, 31), sources=_config_with(mutate))
