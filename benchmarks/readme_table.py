"""Rewrite the README's performance table from the output of ``make bench``.

    .venv/bin/python benchmarks/readme_table.py OUT_DIR [README.md]

Every benchmark that has figures for the table prints one line ``README-ROW: <script> | <what> | <seen>``
(its own figures and its peers' ratios from the same run). This script reads those lines from
``OUT_DIR/*.txt`` (``make bench`` tees each benchmark's output there), replaces the table row whose first
cell is the same script (adding it if there is none) and leaves every other row as it is. The line between
``<!-- bench:machine -->`` and ``<!-- /bench:machine -->`` is rewritten with the machine and its load
(``OUT_DIR/uptime-before.txt`` and ``uptime-after.txt``, written by ``make bench``), because on a shared
machine the seconds move with the load and the ratios much less.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

ROW = re.compile(r"^README-ROW: (.+?) \| (.+?) \| (.+)$")
MACHINE = re.compile(r"<!-- bench:machine -->.*?<!-- /bench:machine -->", re.S)


def rows_from(out_dir: Path) -> dict[str, str]:
    """``{script cell: table row}`` from every README-ROW line under ``out_dir``, the last one winning."""
    rows: dict[str, str] = {}
    for path in sorted(out_dir.glob("*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if m := ROW.match(line.strip()):
                script, what, seen = (part.strip() for part in m.groups())
                rows[script] = f"| {script} | {what} | {seen} |"
    return rows


def _load(path: Path) -> str:
    if not path.exists():
        return "unknown"
    text = path.read_text(encoding="utf-8").strip()
    return text.rsplit("load average:", 1)[-1].strip() if "load average:" in text else text


def machine(out_dir: Path) -> str:
    """One sentence: date, CPU, cores, memory, load averages before and after the run."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB memory"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return (
        f"<!-- bench:machine -->Figures from the benchmarks on {day}: {model}, {os.cpu_count()} cores"
        f"{memory}; "
        f"load average (1, 5, 15 min) {_load(out_dir / 'uptime-before.txt')} before the run and "
        f"{_load(out_dir / 'uptime-after.txt')} after it. The machine is shared, so seconds move with the "
        "load; the ratios, ours against a peer measured in the same run, move much less."
        "<!-- /bench:machine -->"
    )


def rewrite(readme: str, rows: dict[str, str], machine_line: str) -> str:
    """The README with the benchmark table's rows for ``rows`` replaced (or appended) and the machine line."""
    lines = readme.split("\n")
    start = lines.index("## Benchmarks")
    header = next(i for i in range(start, len(lines)) if lines[i].startswith("| script |"))
    end = header + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    table = lines[header + 2 : end]
    seen: set[str] = set()
    for i, row in enumerate(table):
        script = row.split("|")[1].strip()
        if script in rows:
            table[i] = rows[script]
            seen.add(script)
    table += [row for script, row in rows.items() if script not in seen]
    text = "\n".join([*lines[: header + 2], *table, *lines[end:]])
    if MACHINE.search(text):
        return MACHINE.sub(lambda _: machine_line, text, count=1)
    return text.replace("## Benchmarks\n", f"## Benchmarks\n\n{machine_line}\n", 1)


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    readme_path = Path(argv[1] if len(argv) > 1 else "README.md")
    rows = rows_from(out_dir)
    readme_path.write_text(rewrite(readme_path.read_text(encoding="utf-8"), rows, machine(out_dir)))
    print(f"README.md: {len(rows)} benchmark rows rewritten from {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
