"""include/statistics.yaml: the committed disclosure-control parameters, and each invalid file's message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from supporting_families.config.statistics import (
    DEFAULT_STATISTICS_PATH,
    StatisticsConfigError,
    load_statistics,
)


def test_the_committed_parameters_are_threshold_10_and_base_5() -> None:
    control = load_statistics().disclosure_control
    assert (control.threshold, control.rounding_base) == (10, 5)


def _control(d: dict[str, Any]) -> dict[str, Any]:
    control: dict[str, Any] = d["disclosure_control"]
    return control


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("misspelt-key", lambda d: _control(d).update(treshold=10), "disclosure_control.treshold", "unknown key"),
    ("threshold-too-low", lambda d: _control(d).update(threshold=2), "disclosure_control.threshold", "3"),
    (
        "base-above-threshold",
        lambda d: _control(d).update(threshold=5, rounding_base=10),
        "disclosure_control",
        "above the threshold",
    ),
    (
        "missing-base",
        lambda d: _control(d).pop("rounding_base"),
        "disclosure_control.rounding_base",
        "missing",
    ),
    ("wrong-version", lambda d: d.update(version=2), "version", ""),
]


@pytest.mark.parametrize(("name", "mutate", "key", "fragment"), INVALID, ids=[i[0] for i in INVALID])
def test_each_invalid_file_fails_naming_its_key(
    tmp_path: Path, name: str, mutate: Callable[[dict[str, Any]], None], key: str, fragment: str
) -> None:
    data = yaml.safe_load(DEFAULT_STATISTICS_PATH.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(StatisticsConfigError) as caught:
        load_statistics(path)
    message = str(caught.value)
    assert f"{name}.yaml: {key}" in message and fragment in message, message


def test_a_repeated_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "repeated.yaml"
    path.write_text("version: 1\ndisclosure_control:\n  threshold: 10\n  threshold: 3\n  rounding_base: 5\n")
    with pytest.raises(StatisticsConfigError, match=r"repeated\.yaml"):
        load_statistics(path)
