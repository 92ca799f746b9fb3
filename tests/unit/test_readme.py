"""The README's fault matrix names tests that exist, so it cannot drift from what is tested."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _matrix_ids() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Fault matrix", 1)[1].split("\n## ", 1)[0]
    ids = []
    for cell in re.findall(r"\| `(tests/[^`]+)` \|", section):
        first, *more = cell.split(", ")
        path, _, name = first.partition("::")
        ids += [(path, name)] + [(path, other.removeprefix("::")) for other in more]
    return ids


def test_every_test_the_fault_matrix_names_exists() -> None:
    ids = _matrix_ids()
    assert len(ids) >= 15
    missing = []
    for path, name in ids:
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert missing == []
