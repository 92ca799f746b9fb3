"""Anchors: copies of the ledger's head kept outside the database, so a truncated or rewritten tail shows.

The hash chain (:mod:`supporting_families.audit.ledger`) shows an edited, deleted or reordered entry, but
someone
with superuser access to the database can drop the newest entries, or re-hash the chain after an edit, and
leave a chain that is whole. Only a head recorded before that, kept where the database's administrators
cannot rewrite it, reveals it ("A verify command detects any edited, deleted or reordered entry").

An anchor is one small write-once file, ``<seq>.anchor`` holding ``SEQ:SHA256``, in a folder of the object
store (``$SF_LEDGER_ANCHORS_URI``). In production that folder belongs in a bucket of another account with S3
Object Lock in compliance mode, so neither the database's nor the platform's administrators can delete or
replace an anchor; on file:// it is a folder of the demo.

:func:`anchor` verifies the chain against every anchor kept so far *before* it keeps a new one: an anchor is
never laid on a chain that is already wrong, and a tampered tail fails the next anchoring run visibly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from upath import UPath

from supporting_families.audit.chain import VerifyReport
from supporting_families.audit.entries import Anchor
from supporting_families.audit.ledger import Ledger
from supporting_families.store.io import write_bytes_atomic

log = logging.getLogger(__name__)

ANCHOR_SUFFIX = ".anchor"
_ANCHOR_NAME = re.compile(r"^(\d{12})\.anchor$")


class AnchorError(RuntimeError):
    """The chain disagrees with its anchors, or an anchor file is unreadable: the message says which."""


def anchor_path(folder: UPath, seq: int) -> UPath:
    # Zero-padded so a listing sorts in chain order.
    return folder / f"{seq:012d}{ANCHOR_SUFFIX}"


def read_anchors(folder: UPath) -> list[Anchor]:
    """Every anchor kept in ``folder``, in chain order; an empty list if there is none yet.

    A file under an anchor's name that does not hold that anchor is an error, not something to skip: a
    skipped anchor is one less check, which is what someone covering a deletion would want.
    """
    if not folder.exists():
        return []
    anchors: list[Anchor] = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        match = _ANCHOR_NAME.match(path.name)
        if match is None:
            continue
        try:
            anchor = Anchor.parse(path.read_text(encoding="ascii").strip())
        except (ValueError, UnicodeDecodeError) as exc:
            raise AnchorError(f"{path.name}: not an anchor ({exc}) (rule: anchor file)") from None
        if anchor.seq != int(match.group(1)):
            raise AnchorError(f"{path.name}: holds the anchor of seq {anchor.seq} (rule: anchor file name)")
        anchors.append(anchor)
    return anchors


def keep_anchor(folder: UPath, anchor: Anchor) -> Literal["kept", "already_kept"]:
    """Write ``anchor`` once. The same anchor again is a no-op (a retried task); a different one for the
    same seq means the chain was rewritten since, and is an :class:`AnchorError`, never an overwrite."""
    path = anchor_path(folder, anchor.seq)
    if path.exists():
        existing = Anchor.parse(path.read_text(encoding="ascii").strip())
        if existing != anchor:
            raise AnchorError(
                f"seq {anchor.seq}: the ledger's entry differs from the anchor kept for it: the chain was "
                "rewritten (rule: anchors are write-once)"
            )
        return "already_kept"
    write_bytes_atomic(path, f"{anchor}\n".encode("ascii"))
    return "kept"


@dataclass(frozen=True)
class AnchorResult:
    """What an anchoring run did: hashes and counts only (safe for XCom and logs)."""

    report: VerifyReport
    anchor: Anchor | None
    outcome: Literal["kept", "already_kept", "empty_ledger"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "anchor": str(self.anchor) if self.anchor else None,
            "outcome": self.outcome,
            "entries": self.report.entries,
            "anchors_checked": self.report.anchors_checked,
        }


def verify_with_anchors(ledger: Ledger, folder: UPath) -> VerifyReport:
    """The chain walked against every anchor in ``folder``."""
    return ledger.verify(read_anchors(folder))


def anchor(ledger: Ledger, folder: UPath) -> AnchorResult:
    """Verify the chain against the kept anchors, then keep its current head as a new anchor."""
    report = verify_with_anchors(ledger, folder)
    if not report.ok:
        problem = (
            f"at seq {report.first_bad_seq} ({report.reason}: {report.message})"
            if not report.chain_ok
            else f"its append-only guards ({report.guard_message})"
        )
        raise AnchorError(
            f"the ledger fails verification {problem}; no anchor is kept on a chain that is wrong "
            "(rule: verify before anchoring)"
        )
    if report.last_seq is None or report.head_hash is None:
        return AnchorResult(report, None, "empty_ledger")
    # The head the walk verified, not a fresh read: an entry appended meanwhile is verified next time.
    head = Anchor(report.last_seq, report.head_hash)
    outcome = keep_anchor(folder, head)
    log.info(
        "ledger head seq %d anchored (%s); %d anchors checked", head.seq, outcome, report.anchors_checked
    )
    return AnchorResult(report, head, outcome)
