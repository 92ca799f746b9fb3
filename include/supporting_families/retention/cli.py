"""The retention sweep from a shell: what the ``retention`` DAG does, and its dry run for the DPO.

    python -m supporting_families.retention plan  [--as-of YYYY-MM-DD]     what would go (counts per area)
    python -m supporting_families.retention plan --paths                   ... and the paths themselves
    python -m supporting_families.retention sweep [--as-of YYYY-MM-DD]     delete, record, verify
    python -m supporting_families.retention overdue [--as-of ...]          anything still past its limit
    python -m supporting_families.retention keys [--connections F]         agreements and key versions agree
    python -m supporting_families.retention retire --agreement A --version N   end a retired key's references

Store: ``$SF_STORE_URI``; data keys: ``$SF_KEYSTORE_DIR``; ledger: ``$SF_LEDGER_URL``. Output is JSON on
stdout; ``sweep`` and ``overdue`` exit 1 when something past its limit is still there afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from supporting_families.audit import Ledger, ledger_url
from supporting_families.config import load_agreements, load_sources
from supporting_families.config.retention import load_retention
from supporting_families.retention.evidence import deletion_entries
from supporting_families.retention.rotation import (
    RotationError,
    available_versions,
    check_key_versions,
    retire_version,
    retirement_entry,
)
from supporting_families.retention.sweep import apply_sweep, overdue, plan_sweep
from supporting_families.store import FileKeyStore, store_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supporting_families.retention")
    parser.add_argument("command", choices=("plan", "sweep", "overdue", "keys", "retire"))
    parser.add_argument("--connections", type=Path, help="keys: a connections file (default: the demo's)")
    parser.add_argument("--agreement", help="retire: the agreement id")
    parser.add_argument("--version", type=int, help="retire: the key version")
    parser.add_argument("--as-of", type=date.fromisoformat, default=datetime.now(UTC).date())
    parser.add_argument("--paths", action="store_true", help="plan: list the paths that would be deleted")
    args = parser.parse_args(argv)
    if args.command in ("keys", "retire"):
        try:
            return _keys(args)
        except RotationError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
    root = store_root()
    policy, sources = load_retention(), load_sources()
    agreements = {a.id: a for a in load_agreements(resolve=False)}
    plan = plan_sweep(root, policy, agreements, sources, args.as_of)
    out: dict[str, Any] = {"as_of": args.as_of.isoformat(), "ceiling": policy.ceiling.isoformat()}
    if args.command == "plan":
        out["areas"] = plan.summary()
        if args.paths:
            out["paths"] = sorted(p for item in plan.due for p in item.paths)
        out["held"] = sorted({h for item in plan.held for h in item.held_by})
        json.dump(out, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if args.command == "sweep":
        result = apply_sweep(root, plan, FileKeyStore.from_env())
        with Ledger(ledger_url()) as ledger:
            for entry in deletion_entries(
                plan, result, dag_id="cli", run_id="cli", task_id="sweep", triggered_by="cli"
            ):
                ledger.append(entry)
        out["evidence"] = result.evidence()
    left = overdue(root, policy, agreements, sources, args.as_of)
    out["overdue"] = len(left)
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 1 if left else 0


def _keys(args: argparse.Namespace) -> int:
    agreements = {a.id: a for a in load_agreements(resolve=False)}
    if args.command == "keys":
        path = args.connections or Path(os.environ.get("SF_SECRETS_DIR", "var/secrets")) / "connections.json"
        connections = json.loads(path.read_text())
        out = {}
        for agreement in agreements.values():
            found = available_versions(agreement, connections)
            check_key_versions(agreement, found)
            pseudo = agreement.pseudonymisation
            named = {pseudo.key_version, *pseudo.previous_key_versions}
            out[agreement.id] = {
                "key_version": pseudo.key_version,
                "previous_key_versions": sorted(pseudo.previous_key_versions),
                # A newer key waits for its reviewed change to the YAML; an older one no longer named
                # is due for retirement.
                "waiting_for_review": sorted(v for v in found if v > pseudo.key_version),
                "to_retire": sorted(v for v in found if v < pseudo.key_version and v not in named),
            }
        json.dump(out, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if args.agreement not in agreements or args.version is None:
        raise RotationError("retire: give --agreement (a known agreement id) and --version")
    agreement = agreements[args.agreement]
    retired = retire_version(store_root(), agreement, args.version)
    with Ledger(ledger_url()) as ledger:
        ledger.append(retirement_entry(agreement, retired, run_id="cli", triggered_by="cli"))
    json.dump(
        {"deliveries": retired.deliveries, "reference_lists_deleted": retired.reference_lists_deleted},
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
