"""The ledger's command line:
``python -m supporting_families.audit init|verify|head|anchor|show|append-test``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

from sqlalchemy.exc import OperationalError

from supporting_families.audit.canonical import ENTRY_KINDS, TABLE_NAME
from supporting_families.audit.entries import Anchor, NewEntry
from supporting_families.audit.errors import LedgerError
from supporting_families.audit.ledger import Ledger
from supporting_families.audit.settings import ANCHORS_URI_ENV, LEDGER_URL_ENV, LedgerSettingError, ledger_url


def _test_entry(worker: int, i: int) -> NewEntry:
    return NewEntry(
        kind="test",
        occurred_at=datetime.now(UTC),
        dag_id="ledger_append_test",
        run_id=f"append_test__w{worker}",
        task_id="append",
        details={"worker": worker, "i": i},
    )


def _append_test_worker(
    url: str, count: int, batch: int, worker: int, start_at: float
) -> tuple[float, float]:
    """Append ``count`` test entries; returns (start, end) wall-clock times. Top-level so it pickles."""
    ledger = Ledger(url)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        done = 0
        while done < count:
            n = min(batch, count - done)
            ledger.append_many([_test_entry(worker, done + k) for k in range(n)])
            done += n
        return started, time.time()
    finally:
        ledger.close()


def _append_test(args: argparse.Namespace, url: str) -> dict[str, Any]:
    ledger = Ledger(url)
    try:
        others = ledger.count() - ledger.count("test")
        if others and not args.allow_nonempty:
            raise LedgerError(
                f"{ledger.description} holds {others} real entries; append-test writes permanent test "
                "entries: use a scratch ledger, or --allow-nonempty"
            )
    finally:
        ledger.close()
    per_worker = [
        args.count // args.workers + (1 if w < args.count % args.workers else 0) for w in range(args.workers)
    ]
    if args.workers == 1:
        started, ended = _append_test_worker(url, per_worker[0], args.batch, 0, time.time())
    else:
        # Separate processes, each with its own connections: the concurrency an Airflow deployment has.
        start_at = time.time() + 2.0
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            spans = list(
                pool.map(
                    _append_test_worker,
                    [url] * args.workers,
                    per_worker,
                    [args.batch] * args.workers,
                    range(args.workers),
                    [start_at] * args.workers,
                )
            )
        started, ended = min(s for s, _ in spans), max(e for _, e in spans)
    seconds = ended - started
    ledger = Ledger(url, create=False)
    try:
        t0 = time.perf_counter()
        report = ledger.verify()
        verify_seconds = time.perf_counter() - t0
    finally:
        ledger.close()
    return {
        "appended": args.count,
        "workers": args.workers,
        "batch": args.batch,
        "seconds": round(seconds, 3),
        "appends_per_s": round(args.count / seconds, 1) if seconds > 0 else None,
        "verify_ok": report.ok,
        "verify_entries": report.entries,
        "verify_seconds": round(verify_seconds, 3),
        "verify_entries_per_s": round(report.entries / verify_seconds, 1) if verify_seconds > 0 else None,
        "head": str(Anchor(report.last_seq, report.head_hash))
        if report.last_seq and report.head_hash
        else None,
    }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m supporting_families.audit",
        description="Inspect, verify or smoke-test the audit ledger. Prints JSON to stdout.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--url", help=f"sqlite:///path or postgresql://... (default: ${LEDGER_URL_ENV})")
        return p

    init = command("init", "create the table and its append-only triggers")
    init.add_argument("--repair-guards", action="store_true", help="recreate dropped or disabled triggers")
    verify = command("verify", "walk the chain; exit 1 on the first bad entry or missing guards")
    verify.add_argument(
        "--anchor", action="append", type=Anchor.parse, default=[], help="SEQ:HASH kept elsewhere"
    )
    verify.add_argument(
        "--anchors-from",
        default=os.environ.get(ANCHORS_URI_ENV),
        help=f"a folder of anchor files, e.g. s3://bucket/ledger-anchors/ (default: ${ANCHORS_URI_ENV})",
    )
    command("head", "print the last seq and hash, to keep as an anchor")
    keep = command("anchor", "verify against the kept anchors, then keep the head as a new one")
    keep.add_argument(
        "--to",
        default=os.environ.get(ANCHORS_URI_ENV),
        help=f"the anchors' folder (default: ${ANCHORS_URI_ENV})",
    )
    show = command("show", "print entries as JSON lines")
    show.add_argument("--kind", choices=ENTRY_KINDS)
    show.add_argument("--agreement")
    show.add_argument("--since", type=datetime.fromisoformat, help="ISO 8601 with offset, on occurred_at")
    show.add_argument("--after-seq", type=int)
    show.add_argument("--limit", type=int, default=100)
    show.add_argument("--newest-first", action="store_true")
    test = command("append-test", "append test entries and print appends per second")
    test.add_argument("--count", type=int, default=1000)
    test.add_argument("--batch", type=int, default=1, help="entries per transaction (default 1)")
    test.add_argument("--workers", type=int, default=1, help="concurrent processes")
    test.add_argument("--allow-nonempty", action="store_true", help="even if the ledger holds real entries")
    return parser.parse_args(argv)


def _emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 ok, 1 verification failed, 2 usage or connection error."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parse_args(argv)
    try:
        url = args.url or ledger_url()
    except LedgerSettingError:
        sys.stderr.write(f"error: give --url or set {LEDGER_URL_ENV}\n")
        return 2
    try:
        if args.command == "append-test":
            if args.count < 1 or args.batch < 1 or args.workers < 1:
                sys.stderr.write("error: --count, --batch and --workers must be at least 1\n")
                return 2
            _emit(_append_test(args, url))
            return 0
        if args.command == "init":
            with Ledger(url, repair_guards=args.repair_guards) as ledger:
                head = ledger.head()
                _emit(
                    {"ledger": ledger.description, "table": TABLE_NAME, "head": str(head) if head else None}
                )
            return 0
        with Ledger(url, create=False) as ledger:
            if args.command == "verify":
                anchors = list(args.anchor)
                if args.anchors_from:
                    from upath import UPath

                    from supporting_families.audit.anchors import read_anchors

                    anchors += read_anchors(UPath(args.anchors_from))
                report = ledger.verify(anchors)
                _emit(report.to_dict())
                return 0 if report.ok else 1
            if args.command == "anchor":
                if not args.to:
                    sys.stderr.write(f"error: give --to or set {ANCHORS_URI_ENV}\n")
                    return 2
                from upath import UPath

                from supporting_families.audit.anchors import AnchorError, anchor

                try:
                    _emit(anchor(ledger, UPath(args.to)).to_dict())
                except AnchorError as exc:
                    sys.stderr.write(f"error: {exc}\n")
                    return 1
                return 0
            if args.command == "head":
                head = ledger.head()
                _emit({"seq": head.seq, "entry_hash": head.entry_hash, "anchor": str(head)} if head else None)
                return 0
            since = args.since
            if since is not None and since.tzinfo is None:
                sys.stderr.write("error: --since needs an offset, e.g. 2025-04-01T00:00:00+00:00\n")
                return 2
            for entry in ledger.entries(
                args.kind,
                args.agreement,
                since,
                args.limit,
                after_seq=args.after_seq,
                newest_first=args.newest_first,
            ):
                sys.stdout.write(json.dumps(entry.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
            return 0
    except (LedgerError, ValueError, OperationalError) as exc:
        # OperationalError: cannot connect. Its text can hold the host, never the password.
        sys.stderr.write(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
