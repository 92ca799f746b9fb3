"""The rights tooling's command line, for the controller side (the DPO's or an officer's shell):

    python -m supporting_families.rights find                 name, date of birth, postcode on stdin
    python -m supporting_families.rights stage-correction --case C --person P --field F   value on stdin
    python -m supporting_families.rights restrict --case C --person P --kind objection --starts-on D
    python -m supporting_families.rights hold --case C --scope person --subject P --reason litigation ...
    python -m supporting_families.rights requests [--due [--warn-days N]]

Personal details are read on stdin only: never argv, which every user of the machine can read in the
process list, and never Airflow. Subject access, rectification, erasure and portability decrypt, seal or
deliver with keys the Airflow workers hold, so they run as the ``rights_*`` DAGs, whose forms carry only
the ids this CLI prints. Store: ``$SF_STORE_URI``; data keys: ``$SF_KEYSTORE_DIR``; ledger:
``$SF_LEDGER_URL``. Output is JSON on stdout; exit 2 on a refused request, with the rule on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from supporting_families.audit import Ledger, ledger_url
from supporting_families.registers import (
    HOLD_REASONS,
    HOLD_SCOPES,
    RESTRICTION_KINDS,
    RequestError,
    RestrictionError,
    due_requests,
    read_requests,
)
from supporting_families.rights.actions import Outcome, Run, legal_hold, restriction
from supporting_families.rights.dossier import to_json
from supporting_families.rights.find import Probe, find_candidates
from supporting_families.rights.rectify import stage_correction
from supporting_families.store.io import store_root
from supporting_families.store.keystore import FileKeyStore


def _run(command: str) -> Run:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return Run("rights_cli", f"cli__{now}", command, "cli")


def _record(outcome: Outcome) -> dict[str, Any]:
    with Ledger(ledger_url()) as book:
        seqs = [book.append(e).seq for e in outcome.entries]
    return {**outcome.counts, "ledger_seq": seqs}


def _probe_from_stdin() -> Probe:
    """One JSON object, or four lines: given name, family name, date of birth (YYYY-MM-DD), postcode."""
    text = sys.stdin.read()
    try:
        doc = json.loads(text)
    except ValueError:
        lines = [line.strip() for line in text.splitlines()]
        lines += [""] * (4 - len(lines))
        doc = dict(zip(("given_name", "family_name", "date_of_birth", "postcode"), lines[:4], strict=True))
    dob = str(doc.get("date_of_birth") or "")
    try:
        parsed = date.fromisoformat(dob) if dob else None
    except ValueError:
        raise RequestError("date_of_birth: YYYY-MM-DD (rule: ISO date)") from None
    return Probe(
        str(doc.get("given_name") or ""), str(doc.get("family_name") or ""), parsed, doc.get("postcode")
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m supporting_families.rights", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    find = sub.add_parser("find", help="candidate person ids for the details on stdin")
    find.add_argument("--limit", type=int, default=10)
    stage = sub.add_parser(
        "stage-correction", help="stage a corrected value (stdin) for rights_rectification"
    )
    for p in (stage,):
        p.add_argument("--case", required=True)
        p.add_argument("--person", required=True)
    stage.add_argument("--field", required=True)
    restrict = sub.add_parser(
        "restrict", help="record or lift a restriction, objection or consent withdrawal"
    )
    restrict.add_argument("--case", required=True)
    restrict.add_argument("--person", required=True)
    restrict.add_argument("--kind", choices=RESTRICTION_KINDS, default="restriction")
    restrict.add_argument("--starts-on", type=date.fromisoformat, required=True)
    restrict.add_argument("--ends-on", type=date.fromisoformat)
    restrict.add_argument("--lift", action="store_true")
    hold = sub.add_parser("hold", help="place (or lift) a legal hold on a person or an agreement")
    hold.add_argument("--case", required=True)
    hold.add_argument("--scope", choices=HOLD_SCOPES, required=True)
    hold.add_argument("--subject", required=True)
    hold.add_argument("--reason", choices=HOLD_REASONS, required=True)
    hold.add_argument("--starts-on", type=date.fromisoformat, required=True)
    hold.add_argument("--lift-on", type=date.fromisoformat)
    requests = sub.add_parser("requests", help="the request register (ids, rights, dates, outcomes)")
    requests.add_argument("--due", action="store_true", help="only open requests past or near their due date")
    requests.add_argument("--warn-days", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    store = store_root()
    try:
        if args.command == "find":
            out: Any = find_candidates(store, _probe_from_stdin(), args.limit)
        elif args.command == "stage-correction":
            value = sys.stdin.read().strip() or None
            keys = FileKeyStore.from_env()
            out = {"staged_fields": stage_correction(store, args.case, args.person, args.field, value, keys)}
        elif args.command == "restrict":
            out = _record(
                restriction(
                    store,
                    args.person,
                    args.case,
                    args.kind,
                    args.starts_on,
                    args.ends_on,
                    run=_run("restrict"),
                    lift=args.lift,
                )
            )
        elif args.command == "hold":
            out = _record(
                legal_hold(
                    store,
                    args.scope,
                    args.subject,
                    args.reason,
                    args.case,
                    args.starts_on,
                    run=_run("hold"),
                    lift_on=args.lift_on,
                )
            )
        else:
            table = read_requests(store)
            if args.due:
                due = due_requests(table, datetime.now(UTC).date(), args.warn_days)
                out = {"overdue": due.overdue, "due_soon": due.due_soon}
            else:
                out = table.drop_columns(["person_id"]).to_pylist()
    except (RequestError, RestrictionError, LookupError, ValueError) as exc:
        sys.stderr.write(f"refused: {exc}\n")
        return 2
    sys.stdout.write(to_json(out))
    return 0
