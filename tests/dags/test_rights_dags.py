"""The rights DAGs' forms can hold no personal data: ids with patterns, case references, enums and dates."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
RIGHTS = (
    "rights_subject_access",
    "rights_rectification",
    "rights_erasure",
    "rights_restriction",
    "rights_portability",
    "rights_legal_hold",
    "rights_deadlines",
)


@pytest.fixture(scope="module")
def bag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=str(DAGS / "rights.py"), safe_mode=False)
    assert dagbag.import_errors == {}
    return dagbag


@pytest.mark.parametrize("dag_id", RIGHTS)
def test_every_form_field_is_an_id_a_code_a_date_or_a_number(bag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    dag = bag.dags[dag_id]
    for name, param in dag.params.items():
        schema = param.schema
        kinds = schema.get("type")
        kinds = set(kinds) if isinstance(kinds, list) else {kinds}
        if kinds <= {"boolean", "integer", "null"}:
            continue
        assert "pattern" in schema or "enum" in schema or schema.get("format") == "date", (dag_id, name)


@pytest.mark.parametrize("dag_id", RIGHTS)
def test_rights_dags_run_one_at_a_time(bag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    assert bag.dags[dag_id].max_active_runs == 1
    assert "rights" in bag.dags[dag_id].tags


def test_a_case_reference_that_is_a_name_is_refused_by_the_form(bag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(bag.dags["rights_erasure"].params)
    with pytest.raises(ParamValidationError, match="does not match"):
        params["case_reference"] = "Somebody Named"
    with pytest.raises(ParamValidationError, match="does not match"):
        params["person_id"] = "A person's name"


@pytest.mark.parametrize(
    ("dag_id", "last"), [("rights_rectification", "close"), ("rights_erasure", "compact")]
)
def test_each_partner_s_notice_is_delivered_on_its_own_queue_before_the_request_closes(  # type: ignore[no-untyped-def]
    bag, dag_id: str, last: str
) -> None:
    """Only a partner's worker holds its SFTP connection (docs/ARCHITECTURE.md, "Credentials per partner"),
    so each notice goes out from a task on that partner's queue; the controller-side tasks stay on the
    default queue, and the request closes after every notice."""
    from sf_airflow.common import partner_queue
    from supporting_families.config import load_agreements

    dag = bag.dags[dag_id]
    first = dag.get_task("rectify" if dag_id == "rights_rectification" else "erase")
    agreements = load_agreements(resolve=False)
    notify = {f"notify_{a.dag_id_suffix}": partner_queue(a.partner.code) for a in agreements}
    assert {t: dag.get_task(t).queue for t in notify} == notify
    assert first.downstream_task_ids >= set(notify) | {last}
    assert dag.get_task(last).upstream_task_ids == set(notify) | {first.task_id}
    assert first.queue == dag.get_task(last).queue == "default"
