"""Progress lines for long steps: how many done, of how many, how fast, how long still to go.

A step that streams rows or bytes (ingest, linkage, packaging, encryption, upload, fetch, retention) calls
:meth:`Progress.advance` as it goes; about every ten seconds one line is logged, so an operator watching a
task's log can tell a slow run from a stuck one. A line holds the step's fixed name and counts only, never
a value, a name or a path from the data (docs/ARCHITECTURE.md: nothing personal in logs, which is how the
privacy notice's "cannot be used to identify an individual" is kept), so callers pass a literal step name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two progress lines of one step.
INTERVAL_SECONDS = 10.0


class Progress:
    """Counts for one step, logged at most every ``interval`` seconds (the first after ``interval``).

    ``total`` is what the step expects to reach (rows, bytes); ``None`` when it is not known in advance,
    and then the line has no percentage or ETA. Steps that finish within one interval log nothing.
    """

    def __init__(
        self,
        log: logging.Logger,
        step: str,
        total: int | None,
        *,
        unit: str = "rows",
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.step = step
        self.total = total
        self.unit = unit
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.lines = 0
        self.started = clock()
        self._next = self.started + interval

    def advance(self, count: int) -> None:
        """``count`` more done; logs a line when the interval has passed since the last one."""
        self.done += count
        now = self.clock()
        if now >= self._next:
            self._line(now)
            self._next = now + self.interval

    def finish(self) -> None:
        """A last line with the final count, if the step was long enough to log any line before."""
        if self.lines:
            self._line(self.clock())

    def message(self, now: float) -> str:
        """The line as it would be logged at ``now`` (counts, rate and ETA only)."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total is None:
            return f"{self.step}: {self.done:,} {self.unit} done, {rate:,.0f} {self.unit}/s"
        share = self.done / self.total if self.total else 1.0
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:,.0f} s" if rate > 0 else "unknown"
        return (
            f"{self.step}: {self.done:,} of {self.total:,} {self.unit} ({share:.0%}), "
            f"{rate:,.0f} {self.unit}/s, ETA {eta}"
        )

    def _line(self, now: float) -> None:
        self.lines += 1
        self.log.info("%s", self.message(now))
