"""benchmarks/readme_table.py: the README's benchmark rows replaced from README-ROW lines, others kept."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "benchmarks" / "readme_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


README = """# x

## Benchmarks

<!-- bench:machine -->old machine<!-- /bench:machine -->

| script | what | seen |
| --- | --- | --- |
| `a.py` | A | 1 s |
| `b.py` | B | 2 s |

## After
"""


def test_rows_replaced_added_and_kept_and_the_machine_line_rewritten(tmp_path: Path) -> None:
    table = _module()
    (tmp_path / "b.txt").write_text("noise\nREADME-ROW: `b.py` | B again | 0.5 s, 1.2× the peer\n")
    (tmp_path / "c.txt").write_text("README-ROW: `c.py` | C | 3 s\n")
    (tmp_path / "uptime-before.txt").write_text(" 10:00:00 up 1:00,  load average: 0.10, 0.20, 0.30\n")
    rows = table.rows_from(tmp_path)
    text = table.rewrite(README, rows, table.machine(tmp_path))
    assert "| `a.py` | A | 1 s |" in text
    assert "| `b.py` | B again | 0.5 s, 1.2× the peer |" in text and "| `b.py` | B | 2 s |" not in text
    assert text.index("| `c.py` | C | 3 s |") < text.index("## After")
    assert "old machine" not in text
    assert "load average (1, 5, 15 min) 0.10, 0.20, 0.30 before the run and unknown after it" in text
