"""Retention: every day, delete what is past its limit, record the evidence, and check nothing is left."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from sf_airflow.common import DEFAULT_ARGS, START_DATE

TAGS = ["supporting-families", "retention"]


@dag(
    dag_id="retention",
    schedule=CronTriggerTimetable("30 2 * * *", timezone="Europe/London"),
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=TAGS,
    params={
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Only work out what would be deleted (counts per area in the plan task's return value"
            " and log); delete nothing.",
        ),
        "as_of": Param(
            "",
            type="string",
            pattern=r"^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            title="As of",
            description="The day to sweep for (YYYY-MM-DD); empty: the run's own date. A later day shows what"
            " the sweep will delete then.",
        ),
    },
    doc_md="""
### Retention: deletion when no longer needed

The privacy notice promises everything "will be retained for up to one year after the end of the
programme ... deleted when no longer needed under strict information security arrangements". The limits
are `include/retention.yaml` (the programme's end, the ceiling, and a limit per store area) and each
agreement's `retention:`; `docs/STORE.md` lists the areas.

* **plan** works out what is past its limit, what a legal hold keeps (reported by hold id), and which
  register records left every source. With **Dry run** ticked, that is all it does.
* **sweep** deletes it, copies a held person's rows under their hold's own key first, seals a held
  agreement's files under the hold's key, shreds each month's data key once nothing live is sealed under
  it, and writes one `deletion` ledger entry per area: counts, the rule, a hash of the deleted paths.
* **verify** scans the store again: anything still past its limit fails the run.

The same, from a shell: `python -m supporting_families.retention plan|sweep|overdue [--as-of D]`.
""",
)
def retention() -> None:
    @task
    def plan(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from supporting_families.retention import plan_sweep

        root, policy, agreements, sources, as_of = _inputs(params, context)
        swept = plan_sweep(root, policy, agreements, sources, as_of)
        held = sorted({h for item in swept.held for h in item.held_by})
        return {"as_of": as_of.isoformat(), "areas": swept.summary(), "holds_in_force": len(held)}

    @task
    def sweep(
        planned: dict[str, Any], params: dict[str, Any] | None = None, **context: Any
    ) -> dict[str, Any]:
        from sf_airflow.credentials import data_keys
        from supporting_families.retention import apply_sweep, plan_sweep

        if params and params.get("dry_run"):
            return {"dry_run": True, **planned}
        root, policy, agreements, sources, as_of = _inputs(params, context)
        # Planned again inside this task: a retry sees the store as the earlier attempt left it.
        swept = plan_sweep(root, policy, agreements, sources, as_of)
        result = apply_sweep(root, swept, data_keys())
        recorded = _record(swept, result, {}, context)
        return {
            "as_of": as_of.isoformat(),
            "areas": {k: v["files_deleted"] for k, v in recorded["evidence"].items()},
            "keys_shredded": len(result.keys_shredded),
            "ledger_seq": recorded["ledger_seq"],
        }

    @task
    def verify(swept: dict[str, Any], params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from supporting_families.retention import overdue

        if swept.get("dry_run"):
            return {"dry_run": True}
        root, policy, agreements, sources, as_of = _inputs(params, context)
        left = overdue(root, policy, agreements, sources, as_of)
        if left:
            counts: dict[str, int] = {}
            for item in left:
                counts[item.retention_class] = counts.get(item.retention_class, 0) + 1
            raise AirflowFailException(f"still past their limit after the sweep: {counts}")
        return {"overdue": 0}

    @task
    def airflow_metadata(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        """``airflow db clean`` on Airflow's own tables, here on the scheduler's side (default queue)."""
        import os
        import subprocess
        import sys
        from datetime import datetime, time, timedelta

        from airflow.sdk.exceptions import AirflowFailException

        from sf_airflow.credentials import maintenance_env, metadata_connection_url
        from supporting_families.retention import SweepPlan, SweepResult
        from supporting_families.retention.maintenance import db_clean_command, db_clean_counts

        _root, policy, _agreements, _sources, as_of = _inputs(params, context)
        days = policy.airflow.metadata_days
        cutoff = datetime.combine(as_of - timedelta(days=days), time(0), UTC)
        command = db_clean_command(f"{sys.prefix}/bin/airflow", cutoff)
        if params and params.get("dry_run"):
            command.append("--dry-run")
        # This task's process may not reach the metadata database (Airflow blocks a task's ORM); the CLI
        # it starts is given the database explicitly (sf_airflow.credentials.maintenance_env).
        env = maintenance_env(dict(os.environ), metadata_connection_url())
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False, env=env)
        if done.returncode != 0:
            raise AirflowFailException(f"airflow db clean exited {done.returncode}")
        counts = db_clean_counts(done.stdout)
        if params and params.get("dry_run"):
            return {"dry_run": True, "rows": counts}
        result = SweepResult(as_of, rows_removed={"airflow_metadata": sum(counts.values())})
        return _record(SweepPlan(as_of), result, {"airflow_metadata": f"{days}d-after-run"}, context) | {
            "rows": counts
        }

    @task
    def task_logs(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        """Task logs older than their limit, by a rule on the logs folder."""
        from pathlib import Path

        from airflow.configuration import conf

        from supporting_families.retention import SweepPlan, SweepResult
        from supporting_families.retention.maintenance import delete_logs, stale_logs

        _root, policy, _agreements, _sources, as_of = _inputs(params, context)
        days = policy.airflow.task_logs_days
        folder = Path(conf.get("logging", "base_log_folder"))
        now = datetime.combine(as_of, time(0), UTC)
        stale = stale_logs(folder, days, now) if folder.exists() else []
        if params and params.get("dry_run"):
            return {"dry_run": True, "files": len(stale)}
        result = SweepResult(as_of, deleted={"task_logs": delete_logs(folder, stale)})
        return _record(SweepPlan(as_of), result, {"task_logs": f"{days}d-after-written"}, context)

    verify(sweep(plan()))  # type: ignore[arg-type]
    airflow_metadata()
    task_logs()


def _record(plan: Any, result: Any, rules: dict[str, str], context: dict[str, Any]) -> dict[str, Any]:
    from sf_airflow.credentials import ledger
    from sf_airflow.rights import acting_run
    from supporting_families.retention import deletion_entries

    run = acting_run(context)
    entries = deletion_entries(
        plan,
        result,
        dag_id=run.dag_id,
        run_id=run.run_id,
        task_id=run.task_id,
        triggered_by=run.triggered_by,
        rules=rules,
    )
    with ledger() as book:
        seqs = [book.append(entry).seq for entry in entries]
    return {"evidence": result.evidence(), "ledger_seq": seqs}


def _inputs(params: dict[str, Any] | None, context: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
    from datetime import date

    from sf_airflow.common import store
    from supporting_families.config import load_agreements, load_sources
    from supporting_families.config.retention import load_retention

    as_of_text = str((params or {}).get("as_of") or "")
    logical = context.get("logical_date") or context["dag_run"].run_after
    as_of = date.fromisoformat(as_of_text) if as_of_text else logical.date()
    agreements = {a.id: a for a in load_agreements(resolve=False)}
    return store(), load_retention(), agreements, load_sources(), as_of


retention()
