"""No test may skip: tests/conftest.py turns a skip into a failure, so a real-component test that cannot
reach its sshd, gpg, jq, PostgreSQL or root fails in CI instead of passing silently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_skipping_test_fails_and_an_expected_failure_stays_expected(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_needs_sshd():\n"
        "    pytest.skip('no sshd here')\n"
        "@pytest.mark.xfail(strict=True)\n"
        "def test_known_gap():\n"
        "    assert False\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert "1 failed, 1 xfailed" in run.stdout
    assert "no test may skip" in run.stdout and "no sshd here" in run.stdout
