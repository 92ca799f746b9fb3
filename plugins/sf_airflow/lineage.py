"""OpenLineage for the platform's TaskFlow tasks: the glue between the core's lineage and the provider.

TaskFlow tasks emit no datasets by themselves (the provider's listener finds no extractor for
``_PythonDecoratedOperator``, and name-only assets such as ``sf_curated_<source>`` translate to no
dataset). So a task that moves data declares its inlets and outlets when it runs, with :func:`declare`
and a :class:`~supporting_families.lineage.RunLineage` built by the core (``supporting_families.lineage``):
the store's URI and the partner's server are deployment settings, known at run time, not at parse time.
:class:`TaskFlowExtractor` (``[openlineage] extractors``) puts them, with their schema, row-count and
agreement facets, on the listener's COMPLETE event for that task instance.

:class:`PrivacyTransformer` wraps the real transport (``[openlineage] transport`` of type ``transform``,
``scripts/env.sh``) and takes out of every event, the provider's own facets included, what could carry
personal data or a partner's choice of name: a run's form values (``conf``), a mapped task's rendered map
index (a return's file name, which the partner chose), asset event extras (landed file names), and a
failure's message and stack trace (they may name a file; the task log keeps them). Hook-level lineage,
which would name every store file a task opened, is off (``[openlineage] emission_policy``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec

from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    RunFacet,
    input_statistics_input_dataset,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.transport.transform import EventTransformer

if TYPE_CHECKING:
    # Only for the hints: the scheduler and the API server load this module for the transformer alone.
    from supporting_families.lineage import LineageDataset, RunLineage

log = logging.getLogger(__name__)
_P = ParamSpec("_P")

#: The lineage each task instance declared, until the listener takes it (same process: the task runner,
#: or the test's own under ``dag.test()``). Keyed by the task instance, so mapped tasks never mix.
_DECLARED: dict[tuple[str, str, str, int, int], RunLineage] = {}
_LOCK = threading.Lock()

#: The Airflow facets' keys that may hold a form's values, a partner's file name or a landed file name.
_DROPPED_KEYS = frozenset({"conf", "extra"})
_ASSET_URI = re.compile(r"'uri': '([^']*)'")


def _key(ti: Any) -> tuple[str, str, str, int, int]:
    map_index = getattr(ti, "map_index", -1)
    return (ti.dag_id, ti.task_id, ti.run_id, -1 if map_index is None else int(map_index), int(ti.try_number))


def store_uri() -> str:
    """The store's base URI, as the tasks reach it (``$SF_STORE_URI``)."""
    uri = os.environ.get("SF_STORE_URI")
    if not uri:
        raise RuntimeError("SF_STORE_URI is not set: source scripts/env.sh or set it in the deployment")
    return uri


def partner_server(conn_id: str) -> tuple[str, int]:
    """The host and port of a partner's SFTP connection, which name its folders' datasets."""
    from sf_airflow.sftp import sftp_endpoint

    endpoint = sftp_endpoint(conn_id)
    return endpoint.host, endpoint.port


def declare(lineage: RunLineage, ti: Any = None) -> None:
    """This task instance's inlets and outlets, for the listener's COMPLETE (or FAIL) event."""
    if ti is None:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
    with _LOCK:
        _DECLARED[_key(ti)] = lineage.check()


def _schema(fields: tuple[str, ...]) -> dict[str, Any]:
    if not fields:
        return {}
    return {
        "schema": schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=f) for f in fields]
        )
    }


def _input(dataset: LineageDataset) -> InputDataset:
    stats: dict[str, Any] = {}
    if dataset.rows is not None:
        stats["inputStatistics"] = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
            rowCount=dataset.rows
        )
    return InputDataset(
        namespace=dataset.namespace, name=dataset.name, facets=_schema(dataset.fields), inputFacets=stats
    )


def _output(dataset: LineageDataset) -> OutputDataset:
    stats: dict[str, Any] = {}
    if dataset.rows is not None:
        stats["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=dataset.rows
        )
    return OutputDataset(
        namespace=dataset.namespace, name=dataset.name, facets=_schema(dataset.fields), outputFacets=stats
    )


def operator_lineage(lineage: RunLineage) -> OperatorLineage:  # type: ignore[type-arg]
    """The core's :class:`RunLineage` as the provider's ``OperatorLineage``: datasets with their schema and
    statistics facets, and the platform's facets as run facets."""
    return OperatorLineage(
        inputs=[_input(d) for d in lineage.inputs],
        outputs=[_output(d) for d in lineage.outputs],
        run_facets={
            name: RunFacet().with_additional_properties(**dict(v)) for name, v in lineage.facets.items()
        },
    )


class TaskFlowExtractor(BaseExtractor):  # type: ignore[misc]
    """The extractor of every TaskFlow task: the inlets and outlets the task declared, or none."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator"]

    def _execute_extraction(self) -> OperatorLineage | None:  # type: ignore[type-arg]
        return None  # START: a task declares its datasets as it runs

    def extract_on_complete(self, task_instance: Any) -> OperatorLineage | None:  # type: ignore[type-arg]
        with _LOCK:
            lineage = _DECLARED.pop(_key(task_instance), None)
        return operator_lineage(lineage) if lineage is not None else None

    def extract_on_failure(self, task_instance: Any) -> OperatorLineage | None:  # type: ignore[type-arg]
        return self.extract_on_complete(task_instance)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        clean = {k: _scrub(v) for k, v in value.items() if k not in _DROPPED_KEYS}
        if value.get("rendered_map_index") is not None:
            clean["rendered_map_index"] = _digest(value["rendered_map_index"])
        for key in ("inlets", "outlets"):
            if isinstance(value.get(key), str):
                # The provider writes a task's assets as the text of a list, extras included: keep the uris.
                clean[key] = _ASSET_URI.findall(value[key])
        return clean
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _digest(value: object) -> str:
    """A partner's (or department's) file name as its SHA-256, as the fetch logs it."""
    return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()


class PrivacyTransformer(EventTransformer):
    """Takes form values, file names and failure texts out of every event before the real transport."""

    def transform(self, event: Any) -> Any:
        run = getattr(event, "run", None)
        facets = getattr(run, "facets", None) or {}
        for name, facet in list(facets.items()):
            if name == "errorMessage":
                facet.message = "the task failed: its log in Airflow says why"
                facet.stackTrace = None
                continue
            for attribute in ("dag", "dagRun", "task", "taskInstance"):
                if isinstance(getattr(facet, attribute, None), dict):
                    setattr(facet, attribute, _scrub(getattr(facet, attribute)))
        return event


# --- one call per task that moves data (dags/ingest_sources.py, share_agreements.py, receive_agreements.py)


def _never_fails(declare_fn: Callable[_P, None]) -> Callable[_P, None]:
    """Lineage describes a run; it must never fail one (a delivery already made would be retried)."""

    @functools.wraps(declare_fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            declare_fn(*args, **kwargs)
        except Exception as exc:
            # The type only: a message could name a file.
            log.warning("lineage not declared for this task: %s", type(exc).__name__)

    return wrapper


@_never_fails
def declare_ingest(spec: Any, report: Any) -> None:
    """An ingest task's lineage, from its :class:`~supporting_families.ingest.IngestReport` (or the report
    kept for the landed file ``report``, when the file was rejected)."""
    from sf_airflow.common import store
    from supporting_families.ingest import read_report
    from supporting_families.lineage import ingest_lineage

    if isinstance(report, str):
        report = read_report(store(), spec, report)
        if report is None:
            return

    declare(
        ingest_lineage(
            spec,
            store_uri(),
            received=report.received,
            accepted=report.accepted,
            rejected=report.rejected,
            dropped_by_tombstone=report.dropped_by_tombstone,
            status=report.status,
            file_sha256=report.file_sha256,
        )
    )


@_never_fails
def declare_share_prepare(agreement: Any, prepared: dict[str, Any]) -> None:
    """A share's ``prepare``: the register and identification into the delivery's package."""
    from supporting_families.lineage import share_prepare_lineage

    declare(share_prepare_lineage(agreement, store_uri(), prepared))


@_never_fails
def declare_share_deliver(agreement: Any, delivered: dict[str, Any], counts: dict[str, Any]) -> None:
    """A share's ``deliver``: the package into the partner's inbox, with the agreement's fields."""
    from supporting_families.lineage import share_deliver_lineage

    host, port = partner_server(agreement.sftp.conn_id)
    declare(
        share_deliver_lineage(
            agreement,
            store_uri(),
            host=host,
            port=port,
            rows=int(delivered["rows"]),
            delivery_id=str(delivered["delivery_id"]),
            status=str(delivered["status"]),
            counts=counts,
        )
    )


@_never_fails
def declare_receive(agreement: Any, outcome: Any) -> None:
    """A receive's ``process``: one return from the partner's outbox into the register's partner flags."""
    from supporting_families.lineage import receive_lineage

    host, port = partner_server(agreement.sftp.conn_id)
    declare(
        receive_lineage(
            agreement,
            store_uri(),
            host=host,
            port=port,
            delivery_id=outcome.delivery_id,
            rows=outcome.rows,
            flags_merged=outcome.flags_merged,
            late=outcome.late,
            counts=dict(outcome.counts),
        )
    )
