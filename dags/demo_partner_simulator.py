"""Demo only: the partners answer. DWP, the police and ONS collect their deliveries and write returns."""

from __future__ import annotations

import functools
import operator
from typing import Any

from airflow.sdk import Param, dag, task

from sf_airflow.common import DEFAULT_ARGS, START_DATE, delivery_asset, store
from sf_demo.partner_simulator.faults import Fault
from supporting_families.config import load_agreements, load_sources

AGREEMENTS = load_agreements(resolve=False)
FAULTS = [f.value for f in Fault]
#: Voluntary-sector agencies (``inbound:`` in include/sources.yaml): each sends its extract in the same run.
AGENCIES = [name for name, spec in load_sources().sources.items() if spec.inbound is not None]
#: What an agency's file can carry (sf_demo.partner_simulator.agency).
AGENCY_FAULTS = ["malformed_csv", "wrong_signer", "tampered_ciphertext"]


def faults_param(agreement_id: str) -> str:
    """The Params key holding the faults chosen for one agreement's partner."""
    return "faults__" + agreement_id.replace("-", "_")


FAULT_LABELS = {
    "missing_rows": "missing rows (references that should be there)",
    "duplicates": "duplicate rows",
    "unexpected_references": "references never sent",
    "malformed_csv": "malformed CSV (ragged row, broken quoting)",
    "wrong_signer": "signed by the wrong key",
    "tampered_ciphertext": "tampered ciphertext",
    "late_file": "late file (dated after the deadline)",
    "hostile_file_name": "hostile file names and a symlink",
}


@dag(
    dag_id="demo_partner_simulator",
    # Any partner's inbox received a delivery: every partner looks at its own inbox.
    schedule=functools.reduce(operator.or_, [delivery_asset(a.id) for a in AGREEMENTS]),
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["supporting-families", "demo", "partner-simulator"],
    params={
        "seed": Param(2026, type="integer", title="Seed", description="same seed, same answers and faults"),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Answer as at",
            description="empty: the synthetic borough's date (demo/truth/manifest.json)",
        ),
        **{
            faults_param(a.id): Param(
                [],
                type="array",
                items={"type": "string", "enum": FAULTS},
                examples=FAULTS,
                values_display=FAULT_LABELS,
                title=f"Faults in the {a.partner.name} return",
                description=f"injected into every {a.label} return written by this run",
            )
            for a in AGREEMENTS
        },
        **{
            faults_param(source): Param(
                [],
                type="array",
                items={"type": "string", "enum": AGENCY_FAULTS},
                examples=AGENCY_FAULTS,
                values_display={k: FAULT_LABELS[k] for k in AGENCY_FAULTS},
                title=f"Faults in the {source} agency's extract",
                description="a ragged row (lands; ingest quarantines it), a wrong signer, tampering",
            )
            for source in AGENCIES
        },
    },
    doc_md="""
### Partner simulator (demo)

Stands in for the partners: for each data agreement, its partner collects every new delivery from its
SFTP inbox (the file leaves the inbox, which is how the council sees it was collected), decrypts it with
the partner's key, verifies the council's signature, and writes its return into its outbox, signed with
the partner's key and encrypted to the council's:

* **DWP**: out-of-work and disability benefit flags per reference, matched by address (DWP answers for
  the household); about 2.5% "address not confirmed"; addresses DWP holds nobody at are left out.
* **Metropolitan Police**: the latest proven offence, caution and ASB intervention dates within the last
  12 months, per reference matched on name, date of birth and postcode.
* **ONS**: a receipt with the delivery's file name, rows received and SHA-256.
* **Voluntary-sector agencies** (`inbound:` in `include/sources.yaml`, the money advice agency): send their
  extract (`demo/agencies/`), signed with the agency's key and encrypted to the council's, into their
  outbox, once per extract date; faults: a ragged row, a wrong signer, tampering.

Runs when any share delivers (the delivery Assets), or by hand with **faults** chosen per partner in the
form: missing rows, duplicates, references never sent, malformed CSV, wrong signer, tampered ciphertext,
a late file, hostile file names. Each fault is deterministic from the seed. The answers come from the
synthetic borough's partner truth (`demo/partner_truth/`), which the platform itself never reads.

Folders: `$SF_SFTP_ROOT` (default `$SF_VAR/sftp/root`) plus each agreement's inbox and outbox; what a
partner collected is kept in `$SF_VAR/partner_simulator/<agreement>/collected`. A delivery is answered once;
a delivery the partner refuses is counted (`deliveries_refused`) and marked `.refused.json` there. Only counts
reach the logs and XCom.
""",
)
def demo_partner_simulator() -> None:
    @task(map_index_template="{{ task.op_kwargs['agreement_id'] }}")
    def answer(agreement_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from datetime import date

        from sf_demo.partner_simulator import parse_faults
        from sf_demo.partner_simulator.environment import DemoEnvironment

        assert params is not None
        env = DemoEnvironment.from_environ(store=store())
        agreement = env.agreement(agreement_id)
        as_of = date.fromisoformat(params["as_of"]) if params.get("as_of") else None
        faults = parse_faults(params.get(faults_param(agreement_id)) or [])
        report = env.run(agreement, faults=faults, seed=int(params["seed"]), as_of=as_of)
        # A refused delivery (not decryptable, wrong signer, wrong columns) is counted and logged, not
        # raised: a retry would find it refused already and turn the run green, hiding it. The council
        # learns of it as a missing return by the deadline, as it would from a real partner.
        return report.as_dict()

    @task(map_index_template="{{ task.op_kwargs['source'] }}")
    def agency_sends(source: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from datetime import date

        from sf_demo.partner_simulator import parse_faults
        from sf_demo.partner_simulator.environment import DemoEnvironment

        assert params is not None
        env = DemoEnvironment.from_environ(store=store())
        as_of = date.fromisoformat(params["as_of"]) if params.get("as_of") else None
        faults = parse_faults(params.get(faults_param(source)) or [])
        spec = load_sources().sources[source]
        return env.send_agency_extract(spec, faults=faults, seed=int(params["seed"]), as_of=as_of).as_dict()

    @task
    def summarise(reports: list[dict[str, Any]], sent: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One line per partner for the run summary: counts only."""
        keys = ("deliveries_collected", "deliveries_answered", "rows_returned", "deliveries_refused")
        summary = {
            str(report.get("agreement_id", i)): {k: report[k] for k in keys if k in report}
            for i, report in enumerate(reports)
        }
        for report in sent or []:
            summary[str(report["source"])] = {k: report[k] for k in ("files_sent", "rows_sent", "faults")}
        return summary

    # An XComArg stands in for the upstream's value: Airflow's stubs type a task call with
    # the function's own parameters, so they cannot accept it.
    summarise(
        answer.expand(agreement_id=[a.id for a in AGREEMENTS]),  # type: ignore[arg-type]
        agency_sends.expand(source=AGENCIES),  # type: ignore[arg-type]
    )


demo_partner_simulator()
