"""The council's housekeeping in a partner's outbox: take collected returns away, set refused entries aside.

Why the council touches the partner's outbox at all ("a corrected file delivered later is
taken in normally", and a bad one must never be picked up again in a loop): the receive DAG senses the
agreement's file pattern, so anything left matching it would wake the sensor at once, on every run, for
ever. So, the mirror of the partner collecting a delivery from its inbox:

* a return the council has taken in, or quarantined with its encrypted original kept whole in the store,
  is **removed** from the outbox, but only while it still has the size and modification time the council
  fetched (a partner replacing it meanwhile has sent something new, which the next run takes in);
* an entry the council refused to download (a hostile name, a symbolic link, a file over the size limit)
  is **renamed in place** to a hidden name (``.sf-refused-<hash of the name>-<random>``), which no
  agreement's pattern matches (patterns start with a fixed prefix): nothing is lost, the partner can still
  see it, and the sensor stops seeing it.

Names come from the server, so they are handled as bytes and never become local paths; a name holding a
path separator is left where it is (no honest server lists one, and it could address another folder).
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from paramiko.sftp import CMD_RENAME

from supporting_families.transport.paths import check_remote_dir
from supporting_families.transport.sftp import SftpEndpoint, open_session

log = logging.getLogger(__name__)

__all__ = ["Collected", "name_sha256", "remove_collected", "set_aside"]

#: Prefix of a refused entry's new name: hidden (leading dot), so no return pattern matches it.
REFUSED_PREFIX = ".sf-refused-"


def name_sha256(name: str) -> str:
    """SHA-256 of a remote name's bytes: how a hostile name is recorded without repeating it."""
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Collected:
    """A return the council has archived: remove it from the outbox if it is still this file."""

    name: str
    size: int
    mtime: datetime


def set_aside(endpoint: SftpEndpoint, remote_dir: str, name: str) -> str | None:
    """Rename a refused entry of ``remote_dir`` to a hidden name; the new name, or None if left in place."""
    check_remote_dir(remote_dir)
    raw = name.encode("utf-8", "surrogateescape")
    if b"/" in raw or raw in (b".", b".."):
        log.warning("a refused entry in %s has a path separator: left in place", remote_dir)
        return None
    new_name = f"{REFUSED_PREFIX}{name_sha256(name)[:16]}-{secrets.token_hex(4)}"
    with open_session(endpoint) as session:
        # SFTP v3 RENAME never replaces an existing file, and the random suffix keeps two refusals of the
        # same name apart. The raw bytes are sent as they were listed: no decoding can change the target.
        session.sftp._request(
            CMD_RENAME, remote_dir.encode() + b"/" + raw, f"{remote_dir}/{new_name}".encode()
        )
    log.info("set a refused entry of %s aside as %s", remote_dir, new_name)
    return new_name


def remove_collected(endpoint: SftpEndpoint, remote_dir: str, files: Sequence[Collected]) -> dict[str, int]:
    """Remove each archived return from ``remote_dir`` if it is one of the archived versions of its name
    (same size and modification time); counts of removed, kept (changed) and already gone."""
    check_remote_dir(remote_dir)
    counts = {"removed": 0, "kept_changed": 0, "already_gone": 0}
    versions: dict[str, set[tuple[int, int]]] = {}
    for file in files:
        versions.setdefault(file.name, set()).add((file.size, int(file.mtime.timestamp())))
    if not versions:
        return counts
    with open_session(endpoint) as session:
        for name, known in versions.items():
            path = posixpath.join(remote_dir, name)
            try:
                attrs = session.sftp.lstat(path)
            except FileNotFoundError:
                counts["already_gone"] += 1
                continue
            if (int(attrs.st_size or 0), int(attrs.st_mtime or 0)) not in known:
                # The partner put a new file under this name: it is a new return, taken in next time.
                counts["kept_changed"] += 1
                log.warning("%s changed since it was fetched: left in %s", name, remote_dir)
                continue
            try:
                session.sftp.remove(path)
            except FileNotFoundError:
                counts["already_gone"] += 1
                continue
            counts["removed"] += 1
    log.info("outbox %s: %s", remote_dir, counts)
    return counts
