"""The rights tooling's command line, for the controller side (the DPO's or an officer's shell):

    python -m supporting_families.rights find                 name, date of birth, postcode on stdin
    python -m supporting_families.rights stage-correction --case C --person P --field F   value on stdin
    python -m supporting_families.rights restrict --case C --person P --kind objection --starts-on D
    python -m supporting_families.rights hold --case C --scope person --subject P --reason litigation ...
    python -m supporting_families.rights requests [--due [--warn-days N]]
    python -m supporting_families.rights access|erase|rectify --case C --person P --received-on D
    python -m supporting_families.rights portability --case C --person P --received-on D --recipient FPR

Personal details are read on stdin only: never argv, which every user of the machine can read in the
process list, and never Airflow. The last four do what the ``rights_*`` DAGs do, with the same core
functions, and need the keys the workers hold: they read them from a connections file in the shape of
Airflow's local-filesystem secrets backend (``--connections``, default the demo's
``$SF_SECRETS_DIR/connections.json``). Store: ``$SF_STORE_URI``; data keys: ``$SF_KEYSTORE_DIR``; ledger:
``$SF_LEDGER_URL``. Output is JSON on stdout; exit 2 on a refused request, with the rule on stderr.
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

from upath import UPath

from supporting_families.audit import Ledger, NewEntry, ledger_url
from supporting_families.config import Agreement, load_agreements, load_sources
from supporting_families.registers import (
    HOLD_REASONS,
    HOLD_SCOPES,
    RESTRICTION_KINDS,
    RequestError,
    RestrictionError,
    due_requests,
    read_requests,
)
from supporting_families.rights.actions import (
    OpenPgp,
    Outcome,
    Run,
    compaction,
    erasure,
    legal_hold,
    notices_sent,
    portability,
    rectification,
    restriction,
    subject_access,
)
from supporting_families.rights.dossier import to_json
from supporting_families.rights.erase import drop_plan
from supporting_families.rights.find import Probe, find_candidates
from supporting_families.rights.notices import NoticeKind, send_notices
from supporting_families.rights.rectify import drop_staged, stage_correction, staged_corrections
from supporting_families.store.io import store_root
from supporting_families.store.keystore import FileKeyStore
from supporting_families.transport.sftp import SftpEndpoint


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
    for name, text in (
        ("access", "subject access: the bundle, encrypted to the DPO"),
        ("erase", "erasure: tombstone, every store area, notices, compaction"),
        ("rectify", "apply the staged corrections and notify the partners"),
        ("portability", "the portability export, encrypted to --recipient"),
    ):
        action = sub.add_parser(name, help=text)
        action.add_argument("--case", required=True)
        action.add_argument("--person", required=True)
        action.add_argument("--received-on", type=date.fromisoformat, required=True)
        action.add_argument("--connections", type=Path, default=_default_connections())
        if name == "portability":
            action.add_argument("--recipient", required=True, help="the receiving authority's fingerprint")
    requests = sub.add_parser("requests", help="the request register (ids, rights, dates, outcomes)")
    requests.add_argument("--due", action="store_true", help="only open requests past or near their due date")
    requests.add_argument("--warn-days", type=int, default=7)
    return parser.parse_args(argv)


def _default_connections() -> Path | None:
    folder = os.environ.get("SF_SECRETS_DIR")
    return Path(folder) / "connections.json" if folder else None


Due = list[tuple[Agreement, list[str], dict[str, object]]]


def _with_keys(store: UPath, args: argparse.Namespace) -> dict[str, Any]:
    """The key-holding rights, with the keys from a connections file (see the module's docstring)."""
    if args.connections is None or not args.connections.exists():
        raise RequestError("--connections: the connections file with the council's keys (rule: keys)")
    conns: dict[str, dict[str, Any]] = json.loads(args.connections.read_text())
    council = conns["sf_openpgp_council"]
    pgp = OpenPgp(
        str(council["extra"]["fingerprint"]),
        Path(str(council["extra"]["gnupg_home"])),
        council.get("password") or "",
    )
    keys = FileKeyStore(Path(str(conns["sf_rights"]["extra"]["data_keys_dir"])))
    agreements = {a.id: a for a in load_agreements()}
    run = _run(args.command)

    def endpoint(agreement: Agreement) -> SftpEndpoint:
        conn = conns[agreement.sftp.conn_id]
        extra = conn["extra"]
        return SftpEndpoint(
            str(conn["host"]),
            int(conn["port"]),
            str(conn["login"]),
            host_key=str(extra["host_key"]),
            private_key_path=Path(str(extra["key_file"])) if extra.get("key_file") else None,
            private_key_text=extra.get("private_key"),
            connect_timeout=float(extra.get("conn_timeout") or 10),
        )

    def append(entry: NewEntry) -> int:
        with Ledger(ledger_url()) as book:
            return int(book.append(entry).seq)

    def notify(kind: NoticeKind, request_id: str, due: Due) -> Any:
        return send_notices(
            store,
            kind,
            request_id,
            due,
            args.person,
            openpgp=pgp,
            endpoint_for=endpoint,
            append=append,
            run=run,
        )

    if args.command == "access":
        dpo = str(conns["sf_rights"]["extra"]["dpo_fingerprint"])
        return _record(
            subject_access(
                store,
                args.person,
                args.case,
                args.received_on,
                agreements=agreements,
                keys=keys,
                openpgp=pgp,
                dpo_fingerprint=dpo,
                run=run,
            )
        )
    if args.command == "portability":
        return _record(
            portability(
                store,
                args.person,
                args.case,
                args.received_on,
                args.recipient,
                agreements=agreements,
                keys=keys,
                openpgp=pgp,
                run=run,
            )
        )
    if args.command == "rectify":
        staged = staged_corrections(store, args.case, args.person, keys)
        outcome, due = rectification(
            store, args.person, args.case, args.received_on, staged, agreements=agreements, run=run, keys=keys
        )
        recorded = _record(outcome)
        drop_staged(store, args.case)
        sent = notify("rectification", str(outcome.counts["request_id"]), due)
        notices_sent(store, str(outcome.counts["request_id"]), "rectified_and_notified")
        return {**recorded, "notices": sent}
    tombstone = bytes.fromhex(str(conns["sf_tombstone_key"]["password"]).strip())
    erased, plan = erasure(
        store, args.person, args.case, args.received_on, tombstone_key=tombstone, keys=keys, run=run
    )
    recorded = _record(erased)
    if plan is None:
        return recorded
    request_id = str(erased.counts["request_id"])
    todo: Due = [
        (agreements[a], r, {}) for a, r in sorted(plan.refs_by_agreement().items()) if a in agreements
    ]
    sent = notify("erasure", request_id, todo)
    sources = {name: spec.file_glob for name, spec in load_sources().sources.items()}
    compacted = _record(compaction(store, plan, args.case, request_id, sources, run=run))
    drop_plan(store, request_id)
    notices_sent(store, request_id, "erased_and_notified")
    return {**recorded, "notices": sent, "compaction": compacted}


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
        elif args.command in ("access", "erase", "rectify", "portability"):
            out = _with_keys(store, args)
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
