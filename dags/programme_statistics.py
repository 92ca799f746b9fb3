"""Publish the programme's anonymised statistics after every identification, and weekly."""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, get_current_context, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from sf_airflow.common import DEFAULT_ARGS, IDENTIFICATION, START_DATE, store
from supporting_families.config.statistics import load_statistics

#: Read at parse time for the documentation only; the publish task reads the file again when it runs.
SDC = load_statistics().disclosure_control

DOC = f"""
### Programme statistics

The privacy notice: results are shared "in an 'anonymised' form", and "individuals cannot be identified
from the information sets directly or any published reports". This DAG makes the figures councils report
to government and committees, so none is made by hand from identified data.

1. **publish**: families identified, eligible and assessed by headline problem, by number of problems, by
   ward (the council's postcode-to-ward lookup, `landing/reference/postcode_wards.csv`), by age band of the
   youngest child, by month first identified, and eligible families by ward and month; partner exchanges
   (deliveries, rows and match rates by month) from the ledger. Before anything is written, statistical
   disclosure control (`supporting_families.statistics.sdc`): counts below the threshold
   ({SDC.threshold}) suppressed, complementary cells suppressed so that no suppressed cell can be worked
   out from any published table (checked by linear programming), every count rounded to base
   {SDC.rounding_base}. Restricted, objecting and erased
   persons are not counted. Writes `published/statistics/<release_id>/`: CSV, Parquet, an SVG chart and
   `release.json` (SDC parameters, notes, every file's SHA-256). The parameters are set in
   `include/statistics.yaml` and carried by every row, file and ledger entry.
2. **record**: one `aggregate_release` ledger entry per release (tables, SDC parameters, hashes); a retry
   records it once.

**Schedule.** After every identification (`sf_identification`), and Mondays 07:30 (new ledger figures).
XCom and logs: the release id, counts and parameters only.
"""


@dag(
    dag_id="programme_statistics",
    # The scheduler's AssetOrTimeSchedule is typed for serialized assets, yet converts a DAG file's own.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 7 * * 1", timezone="Europe/London"),
        assets=IDENTIFICATION,  # type: ignore[arg-type]
    ),
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["supporting-families", "statistics", "disclosure-control"],
    doc_md=DOC,
)
def programme_statistics() -> None:
    @task
    def publish() -> dict[str, Any]:
        from sf_airflow.credentials import ledger
        from supporting_families.audit import LedgerSearch
        from supporting_families.statistics import publish_statistics, sdc_parameters

        with ledger() as book:
            entries = [
                e
                for kind in ("disclosure", "reconciliation")
                for e in book.search_all(LedgerSearch(kind=kind))
            ]
        release = publish_statistics(store(), entries, sdc_parameters())
        return {**release.summary(), "files_sha256": release.files, "release_sha256": release.release_sha256}

    @task
    def record(summary: dict[str, Any]) -> dict[str, Any]:
        from sf_airflow.access import run_actor
        from sf_airflow.credentials import ledger
        from supporting_families.statistics import Release, SdcParameters, aggregate_release_entry

        context = get_current_context()
        dag_run = context["dag_run"]
        sdc = summary["sdc"]
        release = Release(
            release_id=summary["release_id"],
            as_of_month=summary["as_of_month"],
            params=SdcParameters(threshold=sdc["threshold"], rounding_base=sdc["rounding_base"]),
            files=summary["files_sha256"],
            release_sha256=summary["release_sha256"],
            cells=summary["cells"],
            suppressed=summary["suppressed"],
        )
        entry = aggregate_release_entry(
            release,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            task_id="record",
            triggered_by=run_actor(dag_run),
        )
        with ledger() as book:
            recorded = book.append(entry)
        return {"release_id": release.release_id, "ledger_seq": recorded.seq}

    # An XComArg stands in for the upstream's value (Airflow's stubs type a task call as its result).
    record(publish())  # type: ignore[arg-type]


programme_statistics()
