"""Walking the hash chain: what verification reports, and the walk itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from supporting_families.audit.canonical import GENESIS_HASH
from supporting_families.audit.entries import Anchor, LedgerEntry

# ---------------------------------------------------------------------------------------------------------

Reason = Literal[
    "edited", "deleted", "reordered", "chain_broken", "truncated", "anchor_mismatch", "malformed"
]


class Problem(NamedTuple):
    seq: int
    reason: Reason
    message: str


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    """What :meth:`Ledger.verify` found. ``ok`` needs both an intact chain and the append-only guards."""

    chain_ok: bool
    guards_ok: bool
    entries: int
    last_seq: int | None
    head_hash: str | None
    first_bad_seq: int | None
    reason: Reason | None
    message: str | None
    problems: int
    first_problems: tuple[Problem, ...]
    by_kind: Mapping[str, int] = field(hash=False)
    anchors_checked: int
    guard_message: str | None

    @property
    def ok(self) -> bool:
        return self.chain_ok and self.guards_ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain_ok": self.chain_ok,
            "guards_ok": self.guards_ok,
            "guard_message": self.guard_message,
            "entries": self.entries,
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "message": self.message,
            "problems": self.problems,
            "first_problems": [p._asdict() for p in self.first_problems],
            "by_kind": dict(sorted(self.by_kind.items())),
            "anchors_checked": self.anchors_checked,
        }


class _ChainWalk:
    """Checks entries one by one in seq order, remembering only the previous one (constant memory)."""

    def __init__(self, anchors: Mapping[int, Anchor], max_problems: int) -> None:
        self.anchors = anchors
        self.max_problems = max_problems
        self.entries = 0
        self.by_kind: Counter[str] = Counter()
        self.prev_seq = 0
        self.prev_hash = GENESIS_HASH
        self.problems = 0
        self.first: list[Problem] = []
        # (seq, prev_hash, own hash ok): link failures to explain once the walk is over.
        self.unexplained: list[tuple[int, str, bool]] = []
        self.anchors_checked = 0

    def _problem(self, seq: int, reason: Reason, message: str) -> None:
        self.problems += 1
        if len(self.first) < self.max_problems:
            self.first.append(Problem(seq, reason, message))

    def feed(self, row: Mapping[Any, Any]) -> None:
        seq = int(row["seq"])
        stored_hash = str(row["entry_hash"])
        self.entries += 1
        self.by_kind[str(row["kind"])] += 1
        try:
            hash_ok = LedgerEntry._from_row(row).computed_hash() == stored_hash
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self._problem(
                seq, "malformed", f"entry cannot be read ({type(exc).__name__}): edited outside the ledger"
            )
            self._advance(seq, stored_hash)
            return
        link_ok = row["prev_hash"] == self.prev_hash
        if seq != self.prev_seq + 1:
            missing = (
                f"{self.prev_seq + 1}" if seq == self.prev_seq + 2 else f"{self.prev_seq + 1}..{seq - 1}"
            )
            self._problem(seq, "deleted", f"seq {missing} missing before seq {seq}: entries deleted")
        elif not link_ok:
            self._problem(seq, "chain_broken", "")  # explained in finish(), with one lookup
            if len(self.unexplained) < self.max_problems:
                self.unexplained.append((seq, str(row["prev_hash"]), hash_ok))
        elif not hash_ok:
            self._problem(seq, "edited", f"content of seq {seq} does not match its entry_hash: entry edited")
        anchor = self.anchors.get(seq)
        if anchor is not None:
            self.anchors_checked += 1
            if anchor.entry_hash != stored_hash or not hash_ok:
                self._problem(
                    seq, "anchor_mismatch", f"seq {seq} differs from its anchor: the chain was rewritten"
                )
        self._advance(seq, stored_hash)

    def _advance(self, seq: int, stored_hash: str) -> None:
        self.prev_seq = seq
        self.prev_hash = stored_hash

    def finish(self, seq_of_hash: Any) -> None:
        for anchor in sorted(self.anchors.values()):
            if anchor.seq > self.prev_seq:
                self.anchors_checked += 1
                self._problem(
                    anchor.seq,
                    "truncated",
                    f"anchor seq {anchor.seq} is beyond the last entry (seq {self.prev_seq}): "
                    "entries removed",
                )
        explained: dict[int, Problem] = {}
        for seq, prev_hash, hash_ok in self.unexplained:
            points_at = seq_of_hash(prev_hash)
            if points_at is not None:
                problem = Problem(
                    seq,
                    "reordered",
                    f"seq {seq} was recorded after the entry now at seq {points_at}, "
                    f"not after seq {seq - 1}: entries reordered",
                )
            elif not hash_ok:
                problem = Problem(seq, "edited", f"seq {seq} edited, prev_hash included")
            else:
                problem = Problem(
                    seq,
                    "chain_broken",
                    f"prev_hash of seq {seq} does not match seq {seq - 1}: an entry before it was replaced "
                    "(edited and re-hashed) or inserted",
                )
            explained[seq] = problem
        self.first = sorted(
            (explained.get(p.seq, p) if p.reason == "chain_broken" else p for p in self.first),
            key=lambda p: p.seq,
        )

    def report(self, guard_problem: str | None) -> VerifyReport:
        first = self.first[0] if self.first else None
        return VerifyReport(
            chain_ok=self.problems == 0,
            guards_ok=guard_problem is None,
            guard_message=guard_problem,
            entries=self.entries,
            last_seq=self.prev_seq or None,
            head_hash=self.prev_hash if self.entries else None,
            first_bad_seq=first.seq if first else None,
            reason=first.reason if first else None,
            message=first.message if first else None,
            problems=self.problems,
            first_problems=tuple(self.first),
            by_kind=dict(self.by_kind),
            anchors_checked=self.anchors_checked,
        )
