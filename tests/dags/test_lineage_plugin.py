"""The OpenLineage glue: declared lineage reaches the extractor, and the transformer scrubs every event."""

from __future__ import annotations

import json
from types import SimpleNamespace

import airflow  # noqa: F401  (importing Airflow puts the plugins folder on sys.path)
import pytest

pytestmark = pytest.mark.dags


def test_the_extractor_returns_what_this_task_instance_declared_and_only_once() -> None:
    from sf_airflow.lineage import TaskFlowExtractor, declare
    from supporting_families.config import load_agreements
    from supporting_families.lineage import share_prepare_lineage

    [dwp] = [a for a in load_agreements(resolve=False) if a.id == "dwp-benefits-matching"]
    ti = SimpleNamespace(dag_id="share__x", task_id="prepare", run_id="manual__1", map_index=-1, try_number=1)
    other = SimpleNamespace(**{**vars(ti), "try_number": 2})
    declare(share_prepare_lineage(dwp, "file:///store", {"rows": 3, "selected": 3}), ti)
    extractor = TaskFlowExtractor(SimpleNamespace(task_id="prepare"))

    assert extractor.extract_on_complete(other) is None, "another try declared nothing"
    lineage = extractor.extract_on_complete(ti)
    assert lineage is not None
    [package] = lineage.outputs
    assert [f.name for f in package.facets["schema"].fields] == list(dwp.fields)
    assert package.outputFacets["outputStatistics"].rowCount == 3
    assert lineage.run_facets["supportingFamilies_agreement"].agreementId == dwp.id
    assert extractor.extract_on_complete(ti) is None


def test_the_transformer_takes_out_form_values_file_names_and_failure_texts() -> None:
    from airflow.providers.openlineage.plugins.facets import AirflowRunFacet
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run
    from openlineage.client.serde import Serde

    from sf_airflow.lineage import PrivacyTransformer

    partner_name = "dwp-return-d0123456789abcdef-Smith.csv.gpg"
    facets = {
        "airflow": AirflowRunFacet(
            dag={"dag_id": "receive__x"},
            dagRun={"run_id": "manual__1", "conf": {"person_id": "P000001"}},
            task={"outlets": "[{'uri': 'sf_curated_neet', 'extra': {'files': ['neet_2025-03-31.csv']}}]"},
            taskInstance={"map_index": 0, "rendered_map_index": partner_name},
            taskUuid="0",
        ),
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message=f"{partner_name}: quarantined", programmingLanguage="python", stackTrace="Traceback ..."
        ),
    }
    event = RunEvent(
        eventType=RunState.FAIL,
        eventTime="2026-12-07T00:00:00+00:00",
        run=Run(runId="01a25038-17f2-7899-bb65-725095c319bd", facets=facets),
        job=Job(namespace="supporting-families", name="receive__x.process"),
    )

    text = Serde.to_json(PrivacyTransformer({}).transform(event))

    for leaked in (partner_name, "P000001", "neet_2025-03-31.csv", "Traceback"):
        assert leaked not in text
    facet = json.loads(text)["run"]["facets"]["airflow"]
    assert facet["task"]["outlets"] == ["sf_curated_neet"]
    assert facet["taskInstance"]["rendered_map_index"].startswith("sha256:")
