"""include/criteria.yaml: the committed rules are the notice's, and every invalid file fails naming its key.

The rules themselves are tested where they are applied (tests/unit/identify/test_criteria.py); this is the
file's model and its loading, the same strict loader as the agreements' and sources.yaml's. Each fixture in
``tests/fixtures/criteria/invalid/`` is an otherwise valid file with one thing wrong; its header lists the
expected problems as ``# expect: key.path: message fragment``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sf_demo.synthetic import MIN_PROBLEMS, SUB_CRITERIA
from supporting_families.config import CriteriaConfigError, load_criteria

REPO = Path(__file__).resolve().parents[3]
CRITERIA = REPO / "include" / "criteria.yaml"
NOTICE = REPO / "docs" / "supporting-families-privacy-notice.txt"
INVALID_DIR = REPO / "tests" / "fixtures" / "criteria" / "invalid"
INVALID_FILES = sorted(INVALID_DIR.glob("*.yaml"))
CONFIG = load_criteria()


def test_the_committed_criteria_are_the_notice_and_the_truths_rules() -> None:
    assert CONFIG.min_problems == MIN_PROBLEMS == 2
    partner_code = {"dwp": "dwp", "met_police": "met-police"}
    ours = {
        code: (headline, tuple(r.source for r in sub.internal), tuple(p.partner for p in sub.partners))
        for headline, code, sub in CONFIG.sub_criteria()
    }
    truth = {
        s.code: (s.headline, s.internal_sources, tuple(partner_code[p] for p in s.partner_sources))
        for s in SUB_CRITERIA
    }
    assert ours == truth
    notice = " ".join(NOTICE.read_text(encoding="utf-8").split())
    for headline, code, sub in CONFIG.sub_criteria():
        assert " ".join(sub.notice.split()) in notice, f"{headline}.{code}: notice quote not verbatim"
        assert " ".join(CONFIG.headline_problems[headline].notice.split()) in notice, headline


def _yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CRITERIA.read_text(encoding="utf-8"))
    return data


def _sub(data: dict[str, Any], headline: str, code: str) -> dict[str, Any]:
    sub: dict[str, Any] = data["headline_problems"][headline]["sub_criteria"][code]
    return sub


def _attendance_rule(data: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = _sub(data, "school_attendance", "attendance_below_90")["internal"][0]
    return rule


def _move_neet_under_health(d: dict[str, Any]) -> None:
    d["headline_problems"]["health"]["sub_criteria"]["neet"] = _sub(
        d, "worklessness_financial_exclusion", "neet"
    )


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "misspelt-key",
        lambda d: _attendance_rule(d).update(threshhold=90.0),
        "headline_problems.school_attendance.sub_criteria.attendance_below_90.internal[0].mean_below.threshhold",
        "unknown key",
    ),
    (
        "unknown-rule-kind",
        lambda d: _attendance_rule(d).update(rule="mean_above"),
        "internal[0]",
        "does not match",
    ),
    ("comparison-missing", lambda d: _attendance_rule(d).pop("comparison"), "comparison", "field required"),
    (
        "unknown-source",
        lambda d: _attendance_rule(d).update(source="schools"),
        "internal[0].source",
        "unknown source 'schools'",
    ),
    (
        "unknown-column",
        lambda d: _attendance_rule(d).update(measure="attendance"),
        "internal[0].measure",
        "has no column 'attendance'",
    ),
    (
        "wrong-column-type",
        lambda d: _attendance_rule(d).update(measure="term"),
        "internal[0].measure",
        "is of type code",
    ),
    (
        "unknown-code",
        lambda d: _sub(d, "worklessness_financial_exclusion", "neet")["internal"][0]["codes"].update(
            values=["neet_seeking", "neet_resting"]
        ),
        "neet.internal[0].codes.values",
        "['neet_resting'] are not standard values",
    ),
    (
        "min-problems-above-headlines",
        lambda d: d.update(min_problems=7),
        "(document)",
        "more than the 6 headline problems",
    ),
    ("min-problems-zero", lambda d: d.update(min_problems=0), "min_problems", "greater than or equal to 1"),
    (
        "sub-criterion-under-two-headlines",
        _move_neet_under_health,
        "(document)",
        "each sub-criterion belongs to one headline problem",
    ),
    (
        "no-evidence",
        lambda d: _sub(d, "worklessness_financial_exclusion", "rent_arrears").pop("internal"),
        "rent_arrears",
        "at least one internal rule or partner",
    ),
    (
        "min-age-above-max-age",
        lambda d: _sub(d, "worklessness_financial_exclusion", "neet")["internal"][0].update(min_age=25),
        "neet.internal[0].aged_on_as_of",
        "min_age 25 is above max_age 24",
    ),
    (
        "window-zero",
        lambda d: _sub(d, "crime_asb", "asb_intervention")["internal"][0].update(window_months=0),
        "window_months",
        "greater than or equal to 1",
    ),
    (
        "partner-not-a-code",
        lambda d: _sub(d, "crime_asb", "asb_intervention")["partners"][0].update(partner="Met Police"),
        "partners[0].partner",
        "should match pattern",
    ),
    (
        "headline-not-snake-case",
        lambda d: d["headline_problems"].update({"Crime ASB": d["headline_problems"].pop("crime_asb")}),
        "headline_problems.Crime ASB",
        "should match pattern",
    ),
]


@pytest.mark.parametrize(("mutate", "key", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_configuration_fails_naming_file_key_and_rule(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], key: str, fragment: str
) -> None:
    data = _yaml()
    mutate(data)
    path = tmp_path / "criteria.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(CriteriaConfigError) as caught:
        load_criteria(path)
    message = str(caught.value)
    assert message.startswith("criteria.yaml: ")
    assert all(line.startswith("criteria.yaml: ") for line in message.splitlines()), message
    assert any(key in p.key and fragment in p.message for p in caught.value.problems), message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("version: [1\n", "line 2: not valid YAML"),
        ("- a list\n", "must be a mapping of keys"),
        ("", "must be a mapping"),
    ],
    ids=["invalid-yaml", "a-list", "empty"],
)
def test_unreadable_configuration_fails_clearly(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "criteria.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CriteriaConfigError, match=re.escape(fragment)):
        load_criteria(path)


def _expectations(path: Path) -> list[tuple[str, str]]:
    expected = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# expect: "):
            key, _, fragment = line.removeprefix("# expect: ").partition(": ")
            expected.append((key, fragment))
    return expected


def test_there_is_a_fixture_for_each_repeated_key_the_loader_refuses() -> None:
    assert {"duplicate-threshold", "duplicate-sub-criterion"} <= {p.stem for p in INVALID_FILES}


@pytest.mark.parametrize("path", INVALID_FILES, ids=[f"invalid/{p.stem}" for p in INVALID_FILES])
def test_invalid_fixture_fails_naming_file_and_key(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect: key: fragment' line"

    with pytest.raises(CriteriaConfigError) as caught:
        load_criteria(path)

    problems = caught.value.problems
    assert all(line.startswith(f"{path.name}: ") for line in str(caught.value).splitlines())
    assert sorted(p.key for p in problems) == sorted(key for key, _ in expected), str(caught.value)
    for key, fragment in expected:
        messages = [p.message for p in problems if p.key == key]
        assert any(fragment in m for m in messages), f"{key}: expected {fragment!r} in {messages}"


@pytest.mark.parametrize("path", INVALID_FILES, ids=[f"invalid/{p.stem}" for p in INVALID_FILES])
def test_each_invalid_fixture_is_valid_but_for_its_repeated_key(path: Path, tmp_path: Path) -> None:
    # What YAML alone makes of the file (the last of two equal keys wins) is valid criteria, so the fixture
    # fails for its repeated key and for nothing else.
    last_wins = tmp_path / path.name
    last_wins.write_text(yaml.safe_dump(yaml.safe_load(path.read_text(encoding="utf-8"))), encoding="utf-8")
    assert load_criteria(last_wins).min_problems == 1
