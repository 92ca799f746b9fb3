"""CLI: play a partner once in the demo environment (source ``scripts/env.sh`` first).

    python -m sf_demo.partner_simulator run --agreement dwp-benefits-matching [--agreement ...] \
        [--fault missing_rows --fault late_file] [--seed 2026] [--as-of 2026-03-31] [--agreements-dir DIR]
    python -m sf_demo.partner_simulator run --all
    python -m sf_demo.partner_simulator faults

Writes one JSON report (counts only) per agreement to stdout; logs (counts, file names) go to stderr.
Exit status 1 when a delivery was refused or the simulator could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from sf_demo.partner_simulator.faults import Fault, FaultError, parse_faults


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sf_demo.partner_simulator", description=(__doc__ or "").split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="collect and answer new deliveries as the agreements' partners")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--agreement", action="append", default=[], help="agreement id (repeatable)")
    which.add_argument("--all", action="store_true", help="every agreement")
    run.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=[f.value for f in Fault],
        help="inject this fault into every return of the run (repeatable)",
    )
    run.add_argument("--seed", type=int, default=0, help="same seed, same answers and faults (default 0)")
    run.add_argument(
        "--as-of", type=date.fromisoformat, help="answer as at this date (default: the synthetic borough's)"
    )
    run.add_argument("--agreements-dir", type=Path, help="default: $SF_AGREEMENTS_DIR or include/agreements")
    commands.add_parser("faults", help="list the faults that can be injected")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    if args.command == "faults":
        sys.stdout.write("".join(f"{f.value}\n" for f in Fault))
        return 0
    # Imported here so `faults` and `--help` answer without loading pyarrow and the agreements.
    from sf_demo.partner_simulator.answers import SimulatorError
    from sf_demo.partner_simulator.environment import DemoEnvironment
    from supporting_families.config import AgreementError
    from supporting_families.transport.openpgp import OpenPgpError

    try:
        faults = parse_faults(args.fault)
        env = DemoEnvironment.from_environ()
        agreements = env.agreements(args.agreements_dir)
        if not args.all:
            known = {a.id for a in agreements}
            unknown = [a for a in args.agreement if a not in known]
            if unknown:
                raise SimulatorError(f"no agreement(s) {unknown}; agreements: {', '.join(sorted(known))}")
            agreements = [a for a in agreements if a.id in args.agreement]
        refused = 0
        for agreement in agreements:
            report = env.run(agreement, faults=faults, seed=args.seed, as_of=args.as_of)
            refused += report.deliveries_refused
            sys.stdout.write(json.dumps(report.as_dict(), sort_keys=True) + "\n")
    except (SimulatorError, FaultError, AgreementError, OpenPgpError, OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
