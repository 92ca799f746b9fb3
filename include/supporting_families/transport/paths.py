"""The rules for names on a partner's SFTP server: one copy, used by the agreements' schema, delivery, fetch
and the demo server.

A partner's server resolves folders relative to the SFTP login directory, and a hostile or broken server can
list any name at all. So a folder is a relative POSIX path of safe segments, and a listed file name must be
safe as one local path component before anything is fetched under it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

#: One segment of a remote folder. An absolute path or '..' could point a delivery outside the partner's
#: area: the privacy notice's data goes "to exactly that partner" (docs/ARCHITECTURE.md, transport).
SEGMENT: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

#: NAME_MAX on Linux file systems: a longer name cannot be stored locally.
MAX_NAME_BYTES: Final = 255

#: Reasons that make a listed name dangerous even when it does not match the expected pattern.
SEVERE_NAME_REASONS: Final = (
    "path separator",
    "control or invisible character",
    "not UTF-8",
    "glob character",
)


def check_remote_dir(value: str) -> str:
    """``value`` if it is a relative POSIX path of safe segments (no ``..``, no ``//``), else ValueError."""
    if not value:
        raise ValueError("remote folder must not be empty")
    if value.startswith("/"):
        raise ValueError(
            f"remote folder {value!r} is absolute: use a path relative to the SFTP login directory"
        )
    if "\\" in value:
        raise ValueError(
            f"remote folder {value!r} contains a backslash: remote paths are POSIX, separated by '/'"
        )
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(
                f"remote folder {value!r} has an empty, '.' or '..' segment: no traversal, no '//'"
            )
        if not SEGMENT.fullmatch(segment):
            raise ValueError(
                f"remote folder {value!r}: segment {segment!r} may only use letters, digits, '.', '_', '-'"
            )
    return value


def unsafe_name_reason(name: str) -> str | None:
    """Why a listed remote ``name`` must not become a local path component (None when it is safe).

    No path separators or ``..`` (traversal), no control or invisible characters (log and terminal
    injection, look-alike names), no glob characters (a store could expand them), no leading dot
    (hidden, and our own in-progress uploads), no leading dash (read as an option by command-line tools
    such as gpg), at most MAX_NAME_BYTES bytes.
    """
    if not name:
        return "empty"
    if "/" in name or "\\" in name:
        return "path separator"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        # Cc: NUL, newline, escape, C1; Cf: bidi overrides and zero-width marks; Cs: undecodable bytes
        # kept as surrogate escapes; Zl/Zp: Unicode line and paragraph separators.
        return "control or invisible character"
    if any(c in name for c in "*?[]"):
        # A glob character is never part of a name the agreements expect, and a store that expands
        # patterns (fsspec's rm on S3) would read such a name as many files.
        return "glob character"
    if ".." in name:
        return "parent reference '..'"
    if name.startswith("."):
        return "hidden (leading dot)"
    if name.startswith("-"):
        return "leading dash"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def printable_name(name: str) -> str:
    """A hostile name made safe for a message: escaped and truncated."""
    shown = ascii(name)
    return shown if len(shown) <= 120 else shown[:117] + "..."
