"""Progress lines: about every interval, counts, rate and ETA only."""

from __future__ import annotations

import logging

import pytest

from supporting_families.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_counts_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = logging.getLogger("sf.test.progress")
    progress = Progress(log, "upload", 1000, unit="bytes", interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger=log.name):
        clock.now += 4
        progress.advance(100)  # before the first interval: quiet
        clock.now += 6
        progress.advance(150)  # 250 in 10 s
        clock.now += 5
        progress.advance(250)  # within the next interval: quiet
        clock.now += 5
        progress.advance(250)  # 750 in 20 s
        progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "upload: 250 of 1,000 bytes (25%), 25 bytes/s, ETA 30 s",
        "upload: 750 of 1,000 bytes (75%), 38 bytes/s, ETA 7 s",
        "upload: 750 of 1,000 bytes (75%), 38 bytes/s, ETA 7 s",
    ]


def test_a_short_step_logs_nothing_and_an_unknown_total_has_no_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = logging.getLogger("sf.test.progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        quick = Progress(log, "fetch", 10, clock=clock)
        quick.advance(10)
        quick.finish()
        assert caplog.records == []
        open_ended = Progress(log, "ingest", None, clock=clock)
        clock.now += 20
        open_ended.advance(4000)
    assert [r.getMessage() for r in caplog.records] == ["ingest: 4,000 rows done, 200 rows/s"]
