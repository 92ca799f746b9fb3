"""One collect DAG per source an outside organisation sends over SFTP (``collect_<source>``).

Built from ``include/sources.yaml``: every source with ``inbound:`` (a voluntary-sector agency) gets one, so
adding an agency is an entry there, and its rule in ``criteria.yaml``, with no Python change. Each task
reads its context and calls one core function (``supporting_families.inbound``); XCom carries counts and
rule names, never a row or a file name the sender chose.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronTriggerTimetable, TriggerRule, dag, task

from sf_airflow.common import DEFAULT_ARGS, START_DATE, landed_asset, store
from sf_airflow.receive_sensor import PinnedSFTPSensor
from supporting_families.config import SourceSpec, load_sources

#: The agency sends when its system exports; the council looks every hour and waits a while each time.
HOURLY_CRON = "15 * * * *"
TIMEZONE = "Europe/London"
#: How often the deferred sensor lists the agency's outbox while it waits.
POKE_SECONDS = 5 * 60


def _doc(spec: SourceSpec) -> str:
    assert spec.inbound is not None
    inbound = spec.inbound
    return f"""
### Collect `{spec.name}` from {inbound.agency.name}

{spec.department}: {spec.system}. Holds: {spec.holds}.

An outside organisation sends identified records, so its file is an extract, collected over the same
transport as partners' returns and then ingested by `ingest_{spec.name}` like any department's.

1. **wait_for_extract**: deferrable `SFTPSensor` on `{spec.remote_pattern}` in `{inbound.sftp.remote_outbox}`
   through `{inbound.sftp.conn_id}`, whose host key must be pinned (`PinnedSFTPSensor`); it waits up to
   {inbound.wait_minutes} minutes, then the run is skipped until the next hour.
2. **collect**: the core SFTP client fetches every file of that shape (names checked, links never
   followed, {inbound.max_size_mib} MiB at most), requires the signature of the agency's pinned key and the
   integrity check, lands the plaintext in `landing/{spec.file_glob}` whole or not at all, records
   `extract_received` in the ledger (the file by its hash), removes the file from the outbox and emits
   `{landed_asset(spec.name).name}`, which starts `ingest_{spec.name}`. A file with a bad signature or
   failing integrity is kept whole in `quarantine/{spec.name}/<file>/` with `reason.json` and recorded as
   `quarantine`; nothing of it lands. A malformed CSV lands (it is signed and intact) and ingest
   quarantines it with its row-level report.
3. **verdict**: fails the run, naming each rule and how many files it refused, when anything was refused.

**Schedule.** Hourly at :15 ({TIMEZONE}). Logs and XCom: counts, rules and hashes only.
"""


def build_collect_dag(spec: SourceSpec) -> Any:
    """The ``collect_<source>`` DAG for one inbound source."""
    assert spec.inbound is not None
    inbound = spec.inbound
    landed = landed_asset(spec.name)

    @dag(
        dag_id=f"collect_{spec.name}",
        schedule=CronTriggerTimetable(HOURLY_CRON, timezone=TIMEZONE),
        start_date=START_DATE,
        catchup=False,
        default_args=DEFAULT_ARGS,
        max_active_runs=1,
        tags=["supporting-families", "inbound", inbound.agency.code],
        doc_md=_doc(spec),
    )
    def collect_source() -> None:
        wait = PinnedSFTPSensor(
            task_id="wait_for_extract",
            sftp_conn_id=inbound.sftp.conn_id,
            path=inbound.sftp.remote_outbox,
            file_pattern=spec.remote_pattern,
            deferrable=True,
            poke_interval=POKE_SECONDS,
            timeout=inbound.wait_minutes * 60,
            # Nothing sent this hour is not a fault: the run is skipped, not failed.
            soft_fail=True,
        )

        @task(outlets=[landed])
        def collect(**context: Any) -> dict[str, int]:
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            from sf_airflow.access import run_actor
            from sf_airflow.credentials import council_openpgp, ledger
            from sf_airflow.sftp import sftp_endpoint
            from supporting_families.inbound import collect_extracts
            from supporting_families.receive import RunInfo
            from supporting_families.transport import KeyProblem, PermanentTransferError

            ti, dag_run = context["ti"], context["dag_run"]
            run = RunInfo(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                try_number=ti.try_number,
                triggered_by=run_actor(dag_run),
            )
            key = council_openpgp()
            try:
                with ledger() as book:
                    summary = collect_extracts(
                        store(),
                        spec,
                        sftp_endpoint(inbound.sftp.conn_id),
                        gnupg_home=key.gnupg_home,
                        passphrase=key.passphrase,
                        signer_fingerprint=inbound.signer(),
                        ledger=book,
                        run=run,
                    )
            except (PermanentTransferError, KeyProblem) as exc:
                raise AirflowFailException(str(exc)) from None
            ti.xcom_push(key="problems", value=summary.problems())
            if not summary.landed:
                raise AirflowSkipException(f"nothing new landed ({summary.counts()})")
            return summary.counts()

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def verdict(**context: Any) -> dict[str, int]:
            from airflow.sdk.exceptions import AirflowFailException

            problems = context["ti"].xcom_pull(task_ids="collect", key="problems")
            if problems:
                raise AirflowFailException(f"{spec.name}: " + " | ".join(problems))
            return {"problems": 0}

        collected = collect()
        wait >> collected >> verdict()

    return collect_source()


for _spec in load_sources().sources.values():
    if _spec.inbound is not None:
        build_collect_dag(_spec)
