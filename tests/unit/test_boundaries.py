"""The core in include/ never imports Airflow: every rule must be testable without a scheduler."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "include" / "supporting_families"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_airflow_import_in_core_source() -> None:
    offenders = [
        str(path.relative_to(CORE))
        for path in sorted(CORE.rglob("*.py"))
        if any(m == "airflow" or m.startswith("airflow.") for m in _imported_modules(path))
    ]
    assert offenders == []


def test_core_imports_without_airflow_loaded() -> None:
    # Import every core module in a fresh interpreter and check Airflow was not pulled in indirectly.
    modules = sorted(
        "supporting_families." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py" and not p.name.startswith("__main__")
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
