"""Walking a local store: which area of ``store/layout.py`` each file belongs to, and its permissions."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from supporting_families.store.layout import AREAS, Area


def _regex(pattern: str) -> re.Pattern[str]:
    body = re.sub(r"<[^>]+>", "\x00", pattern)
    body = re.escape(body).replace("\x00", "[^/]+")
    # A pattern ending in "/" is a folder: everything under it belongs to the area.
    return re.compile(body + (".+" if pattern.endswith("/") else ""))


AREA_PATTERNS: list[tuple[re.Pattern[str], Area]] = [
    (_regex(p.strip()), area) for area in AREAS for p in area.pattern.split(", ")
]


def area_of(relative: str) -> Area | None:
    """The area whose pattern matches ``relative``; the most specific (most literal text) where two do, as
    ``quarantine/returns/...`` and ``quarantine/<source>/...``."""
    matches = [
        (len(re.sub(r"<[^>]+>", "", area.pattern)), area)
        for regex, area in AREA_PATTERNS
        if regex.fullmatch(relative)
    ]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def permission_problems(root: Path) -> list[str]:
    """Every file under ``root`` not 0600, every folder not 0700, and every file no area claims."""
    problems = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            if mode != 0o700:
                problems.append(f"{relative}/ is {mode:o}, not 700")
            continue
        area = area_of(relative)
        if area is None:
            problems.append(f"{relative}: no area of store/layout.py holds it")
        elif area.holds_personal_data and mode != 0o600:
            problems.append(f"{relative} ({area.personal_data} personal data) is {mode:o}, not 600")
    return problems
