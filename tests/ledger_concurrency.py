"""Concurrent ledger writers, shared by the SQLite (unit) and PostgreSQL (integration) ledger tests."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable

from supporting_families.audit import Ledger
from supporting_families.audit.cli import _append_test_worker


def run_together(workers: int, work: Callable[[int], object]) -> None:
    """Run ``work(0)`` … ``work(workers - 1)`` in threads released at once by a barrier; re-raise the first
    error (a thread's exception would otherwise only be printed)."""
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def writer_process_spans(url: str, per_writer: int) -> list[tuple[float, float]]:
    """Two processes append ``per_writer`` test entries each to ``url``, starting together; their
    (start, end) wall-clock spans.

    The processes fork from a fresh single-threaded server, never from pytest itself: forking the test
    process (which has threads: moto, sshd pumps, SQLAlchemy pools) can copy a lock that another thread
    holds, and the child then waits for ever, which hung a CI run. The server imports the ledger module
    once, so the children start at once, unlike spawned ones.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["supporting_families.audit"])
    with context.Pool(2) as pool:
        start_at = time.time() + 0.5
        jobs = [(url, per_writer, 1, w, start_at) for w in range(2)]
        spans: list[tuple[float, float]] = pool.starmap_async(_append_test_worker, jobs).get(timeout=120)
    return spans


def assert_one_chain(ledger: Ledger, expected: int) -> None:
    """The ledger verifies and holds exactly ``expected`` entries, numbered 1 to ``expected``."""
    report = ledger.verify()
    assert report.ok, report.to_dict()
    assert report.entries == expected and report.last_seq == expected
