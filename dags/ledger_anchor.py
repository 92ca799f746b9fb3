"""Keep the audit ledger's head outside its database, after every delivery and return and once a day."""

from __future__ import annotations

from typing import Any

from airflow.sdk import AssetAny, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from sf_airflow.common import DEFAULT_ARGS, START_DATE, delivery_asset, return_asset
from supporting_families.config import load_agreements

AGREEMENTS = load_agreements(resolve=False)
# Every delivery and every return appends to the ledger; the daily run also covers entries that come
# without either (a deadline alert, a refused share).
AFTER_LEDGER_WRITES = AssetAny(
    *[delivery_asset(a.id) for a in AGREEMENTS], *[return_asset(a.id) for a in AGREEMENTS]
)


@dag(
    dag_id="ledger_anchor",
    # The scheduler's own timetable (it has a summary; the SDK's of the same name has not). Its parameter
    # is typed for serialized assets only, yet it converts a DAG file's own assets itself.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("15 6 * * *", timezone="Europe/London"),
        assets=AFTER_LEDGER_WRITES,  # type: ignore[arg-type]
    ),
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    tags=["supporting-families", "audit", "ledger"],
    doc_md="""
### Anchor the disclosure ledger

The ledger's hash chain shows an edited, deleted or reordered entry. It cannot show, on its own, that
someone with database superuser access dropped the newest entries or re-hashed the whole chain. This DAG
keeps a copy of the chain's head (`SEQ:SHA256`) as a write-once file in `$SF_LEDGER_ANCHORS_URI`, outside
the database: in production a bucket of another account with S3 Object Lock, here `var/ledger-anchors/`.

Each run first **verifies the chain against every anchor kept so far**, and only then keeps the new head.
A red run here means the ledger no longer matches what was anchored: treat it as a security incident and
compare with `make ledger-verify` (which checks the same anchors). The run returns the anchor, the number of
entries and of anchors checked: hashes and counts, never personal data (the ledger holds none).
""",
)
def ledger_anchor() -> None:
    @task
    def anchor() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from sf_airflow.credentials import ledger, ledger_anchors
        from supporting_families.audit import AnchorError, LedgerSchemaError
        from supporting_families.audit import anchor as keep_head

        try:
            with ledger() as book:
                return keep_head(book, ledger_anchors()).to_dict()
        except (AnchorError, LedgerSchemaError) as exc:
            # Not transient: retrying cannot make a rewritten chain match its anchors, nor bring back
            # append-only triggers someone dropped.
            raise AirflowFailException(str(exc)) from None

    anchor()


ledger_anchor()
