"""Benchmark the auditor's console over a ledger of 1,000,000 entries.

    .venv/bin/python benchmarks/bench_console.py [--entries 1000000] [--repeat 5] [--keep PATH]

The ledger is filled by a bulk loader written for this benchmark only: one transaction per 20,000
entries, with the same canonical hashing and chain as ``Ledger.append`` (a real append is one fsynced
transaction each, about 1,000 times slower per entry). The entries are disclosures, collections,
reconciliations and quarantines over three agreements and about two years, in the proportions a cycle
makes. The whole chain is then verified once (the first request of an api-server process does that), and
each console request is timed through the plugin's FastAPI app in process (authentication stood in for):

* ``filtered``: one agreement, one kind and a 30-day range, first page, with its chain status;
* ``filtered, deep page``: the same filter, a page in the middle (keyset on seq);
* ``partner``: one partner, no date range;
* ``unfiltered``: the newest 50 entries;
* ``after 10 appends``: the filtered page when ten entries have come in since the last request (the chain
  status walks only those);
* ``csv``: the filtered export.

Prints one JSON object per figure (median and best of ``--repeat``, milliseconds); asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "include"), str(REPO / "plugins")]

from sqlalchemy import insert  # noqa: E402

from supporting_families.audit import GENESIS_HASH, Ledger, NewEntry, hash_record  # noqa: E402
from supporting_families.audit.ledger import _canonical_values, _new_record  # noqa: E402
from supporting_families.audit.schema import _table  # noqa: E402

AGREEMENTS = (
    ("dwp-benefits-matching", "dwp"),
    ("met-police-wider-help", "met-police"),
    ("ons-evaluation", "ons"),
)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 20_000


def _template(kind: str, agreement: str, partner: str) -> tuple[NewEntry, dict[str, Any]]:
    common: dict[str, Any] = {
        "agreement_id": agreement,
        "partner": partner,
        "dag_id": f"share__{agreement.replace('-', '_')}",
        "run_id": "scheduled__2025-01-01T06:00:00+00:00",
        "task_id": "deliver",
        "triggered_by": "schedule",
    }
    if kind == "disclosure":
        entry = NewEntry(
            kind="disclosure",
            occurred_at=T0,
            agreement_sha256="a" * 64,
            purpose="To identify families who may be eligible for support under the programme.",
            legal_gateways=("Children Act 2004 s10", "Digital Economy Act 2017 s35"),
            fields=("person_ref", "family_ref", "postcode_district"),
            row_count=1000,
            plaintext_sha256="b" * 64,
            ciphertext_sha256="c" * 64,
            file_name=f"sf-{agreement}-dabcdefabcdefabcd.csv.gpg",
            details={"delivery_id": "dabcdefabcdefabcd", "key_version": 1, "bytes": 123456},
            **common,
        )
    elif kind == "reconciliation":
        entry = NewEntry(
            kind="reconciliation",
            occurred_at=T0,
            row_count=1000,
            details={"outcome": "reconciled", "matched": 970, "rejected_by_partner": 20, "no_trace": 10},
            **common,
        )
    else:
        entry = NewEntry(
            kind=kind,  # type: ignore[arg-type]
            occurred_at=T0,
            file_name=f"sf-{agreement}-dabcdefabcdefabcd.csv.gpg",
            details={"rule": "bad_signature"} if kind == "quarantine" else {"bytes": 123456},
            **common,
        )
    return entry, entry.validate()


def bulk_load(url: str, n: int) -> None:
    """``n`` entries, chained and hashed like ``Ledger.append``, in transactions of ``CHUNK`` (benchmark
    only: no per-entry fsync, no idempotency lookups)."""
    kinds = ("disclosure",) * 4 + ("collection",) * 3 + ("reconciliation",) * 2 + ("quarantine",)
    templates = {(k, a): _template(k, a, p) for k in set(kinds) for a, p in AGREEMENTS}
    with Ledger(url) as ledger:
        engine = ledger._engine
        prev, seq = GENESIS_HASH, 0
        step = timedelta(days=730) / n
        recorded = datetime.now(UTC)
        while seq < n:
            rows = []
            for _ in range(min(CHUNK, n - seq)):
                seq += 1
                kind = kinds[seq % len(kinds)]
                agreement = AGREEMENTS[(seq // len(kinds)) % len(AGREEMENTS)][0]
                entry, details = templates[(kind, agreement)]
                record = _new_record(entry, details, seq=seq, prev_hash=prev, recorded_at=recorded)
                record["occurred_at"] = T0 + step * seq
                record["idempotency_key"] = None
                record["entry_hash"] = prev = hash_record(_canonical_values(record))
                rows.append(record)
            with engine.begin() as conn:
                conn.execute(insert(_table), rows)


def _time(fn: Any, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "best_ms": round(min(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="a ledger file to reuse (built there if missing)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="sf-bench-console-"))
    path = args.keep or folder / "ledger.sqlite"
    url = f"sqlite:///{path}"
    if not path.exists():
        started = time.perf_counter()
        bulk_load(url, args.entries)
        print(
            json.dumps(
                {"figure": "bulk load", "entries": args.entries, "s": round(time.perf_counter() - started, 1)}
            )
        )
    os.environ["SF_LEDGER_URL"] = url
    os.environ.pop("SF_LEDGER_ANCHORS_URI", None)
    os.environ.setdefault("AIRFLOW_HOME", str(folder / "airflow"))

    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    import sf_airflow.access

    sf_airflow.access.is_authorized_view = lambda user, resource, method="GET": True  # type: ignore[assignment]
    import sf_auditor

    sf_auditor.app.dependency_overrides[get_user] = lambda: object()
    client = TestClient(sf_auditor.app)

    started = time.perf_counter()
    first = client.get("/")
    assert first.status_code == 200 and "Chain verified" in first.text, first.text[:500]
    print(
        json.dumps(
            {
                "figure": "first request (whole chain walked once)",
                "s": round(time.perf_counter() - started, 2),
            }
        )
    )

    mid = args.entries // 2
    filt = {
        "agreement": "dwp-benefits-matching",
        "kind": "disclosure",
        "since": "2026-01-01",
        "until": "2026-01-30",
    }
    cases = {
        "filtered": ("/", filt),
        "filtered, deep page": ("/", {**filt, "before": str(mid + args.entries // 40)}),
        "partner": ("/", {"partner": "met-police"}),
        "unfiltered": ("/", {}),
    }
    for name, (url_path, params) in cases.items():

        def request(url_path: str = url_path, params: dict[str, str] = params) -> None:
            r = client.get(url_path, params=params)
            assert r.status_code == 200 and "Chain verified" in r.text

        print(json.dumps({"figure": name, "entries": args.entries, **_time(request, args.repeat)}))

    with Ledger(url) as ledger:
        template, _ = _template("collection", "ons-evaluation", "ons")

        def appended() -> None:
            for _ in range(10):
                ledger.append(template)
            r = client.get("/", params=filt)
            assert r.status_code == 200 and "Chain verified" in r.text

        print(json.dumps({"figure": "after 10 appends (appends included)", **_time(appended, args.repeat)}))

    def export() -> None:
        r = client.get("/entries.csv", params=filt)
        assert r.status_code == 200

    print(json.dumps({"figure": "csv (filtered)", **_time(export, args.repeat)}))


if __name__ == "__main__":
    main()
