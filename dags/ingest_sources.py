"""One ingest DAG per internal source, generated from ``include/sources.yaml`` (``ingest_<source>``).

Adding a department's extract means adding an entry to ``sources.yaml``, not a Python file. Each task reads
its context, calls one core function of ``supporting_families.ingest.pipeline`` and passes file names and
counts
through XCom, never a row.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, TriggerRule, dag, task

from sf_airflow.common import DEFAULT_ARGS, INTERNAL_EXTRACTS, START_DATE, curated_asset, landed_asset, store
from supporting_families.config import SourceSpec, load_sources

#: Production: departments drop their extracts overnight; a morning run picks up whatever has landed even
#: when no upstream DAG announces it. The demo (and later an SFTP intake) announces INTERNAL_EXTRACTS.
DAILY_CRON = "0 7 * * *"
TIMEZONE = "Europe/London"

DOC = """
### Ingest `{source}` ({department})

{system}. Holds: {holds}. One row is {row_grain}.

Reads `landing/{file_glob}` strictly by its entry in `include/sources.yaml`
(`{encoding}`, delimiter `{delimiter!r}`, {n_columns} columns) and, per file:

1. **find**: lists landed files not ingested yet (the ingest report, with the file's SHA-256, is the
   marker: re-running does nothing, a re-sent file with other content is ingested again);
2. **ingest** (one mapped task per file, named by the file): a file that cannot be read (wrong encoding,
   unexpected byte-order mark, wrong delimiter, ragged rows, duplicate, missing or unknown headers, empty,
   header only, every row invalid) is copied whole to `quarantine/{source}/<file>/` with `reason.json`,
   nothing of it is curated, and the task **fails without retrying**, its error naming the file and the
   rule. Otherwise every row is validated with pandera (lazily: all failures); accepted rows are
   standardised and written to `curated/{source}/`, rejected rows go to the quarantine with `report.csv`
   (file, row number, column, rule: no values), and accepted + rejected = received is checked and recorded
   in `ingest_reports/{source}/`;
3. **announce** emits the `{asset}` asset when at least one file was curated in this run, even if another
   file was rejected: a rejected file never reaches `curated/`, so what was curated is sound, and
   identification should not wait for a department to re-send an unrelated file;
4. **verdict** then fails the run if any file was rejected, so the run shows red until someone looks at
   the quarantine. A rejected file is not picked up again until the department sends a corrected one.

**Schedule.** On the `{landed}` asset (the demo's departments drop their files) **or** daily at
{cron} {tz}, whichever comes first: in production departments' systems export overnight on their own
timetable and nothing may announce the drop, so the morning run collects whatever has landed, and runs
with nothing new do nothing. One run at a time, so two triggers never ingest the same file together.

Logs, XCom and errors carry file names, counts, rule names, headers and row numbers only.
"""


def _doc(spec: SourceSpec) -> str:
    return DOC.format(
        source=spec.name,
        department=spec.department,
        system=spec.system[0].upper() + spec.system[1:],
        holds=spec.holds,
        row_grain=spec.row_grain,
        file_glob=spec.file_glob,
        encoding=spec.encoding,
        delimiter=spec.delimiter,
        n_columns=len(spec.columns),
        asset=curated_asset(spec.name).name,
        landed=(landed_asset(spec.name) if spec.inbound else INTERNAL_EXTRACTS).name,
        cron=DAILY_CRON,
        tz=TIMEZONE,
    )


def build_ingest_dag(spec: SourceSpec) -> Any:
    """The ``ingest_<source>`` DAG for one source."""
    curated = curated_asset(spec.name)

    @dag(
        dag_id=f"ingest_{spec.name}",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(DAILY_CRON, timezone=TIMEZONE),
            # An agency's extract lands when collect_<source> has verified it (dags/collect_sources.py).
            assets=[landed_asset(spec.name) if spec.inbound else INTERNAL_EXTRACTS],
        ),
        start_date=START_DATE,
        catchup=False,
        default_args=DEFAULT_ARGS,
        max_active_runs=1,
        tags=["supporting-families", "ingest", spec.name],
        doc_md=_doc(spec),
    )
    def ingest_source() -> None:
        @task
        def find() -> list[dict[str, str]]:
            from supporting_families.ingest import pending_extracts

            return [{"file_name": name} for name in pending_extracts(store(), spec)]

        @task(map_index_template="{{ task.op_kwargs['file_name'] }}")
        def ingest(file_name: str) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

            from sf_airflow.credentials import tombstone_key
            from sf_airflow.lineage import declare_ingest
            from supporting_families.ingest import ExtractRejected, ingest_extract

            try:
                key: bytes | None = tombstone_key()
            except AirflowNotFoundException:
                key = None  # no erasure yet on this installation; with tombstones present the core refuses
            try:
                report = ingest_extract(store(), spec, file_name, tombstone_key=key)
            except ExtractRejected as exc:
                declare_ingest(spec, file_name)  # quarantined whole: lineage says so, with the counts
                # Retrying cannot fix a malformed file: fail now, visibly; the message has no values.
                raise AirflowFailException(str(exc)) from None
            declare_ingest(spec, report)
            return report.counts()

        @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[curated])
        def announce(found: list[dict[str, str]], outlet_events: Any = None) -> dict[str, int]:
            from airflow.sdk.exceptions import AirflowSkipException

            from supporting_families.ingest import read_report

            root = store()
            reports = [read_report(root, spec, f["file_name"]) for f in found]
            done = [r for r in reports if r is not None and r.status == "ingested"]
            if not done:
                raise AirflowSkipException("no file curated in this run: nothing to announce")
            summary = {
                "files curated": len(done),
                "rows received": sum(r.received or 0 for r in done),
                "rows accepted": sum(r.accepted for r in done),
                "rows rejected": sum(r.rejected or 0 for r in done),
            }
            if outlet_events is not None:
                outlet_events[curated].extra = {"files": [r.file for r in done], **summary}
            return summary

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def verdict(found: list[dict[str, str]]) -> dict[str, int]:
            from airflow.sdk.exceptions import AirflowFailException

            from supporting_families.ingest import read_report

            root = store()
            reports = {f["file_name"]: read_report(root, spec, f["file_name"]) for f in found}
            missing = sorted(name for name, r in reports.items() if r is None)
            rejected = sorted(name for name, r in reports.items() if r is not None and r.status == "rejected")
            if missing or rejected:
                # The files' own tasks already failed and retrying this check cannot change the answer.
                raise AirflowFailException(
                    f"{spec.name}: {len(rejected)} file(s) rejected {rejected}, see quarantine/{spec.name}/; "
                    f"{len(missing)} file(s) not ingested {missing}"
                )
            return {"files found": len(found), "files rejected": 0}

        found = find()
        ingested = ingest.expand_kwargs(found)
        # An XComArg stands in for the upstream's value: Airflow's stubs type a task call with
        # the function's own parameters, so they cannot accept it.
        ingested >> [announce(found), verdict(found)]  # type: ignore[arg-type]

    return ingest_source()


for _spec in load_sources().sources.values():
    build_ingest_dag(_spec)
