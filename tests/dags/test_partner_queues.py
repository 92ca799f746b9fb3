"""Each agreement's share and receive tasks go to its partner's Celery queue, and nothing else does.

Only that partner's worker serves the queue (docker-compose.yml), so a partner's tasks run where its
connections are, and no other partner's task runs there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supporting_families.config import Agreement, load_agreements

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"
AGREEMENTS = load_agreements(resolve=False)


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert bag.import_errors == {}
    return bag


@pytest.mark.parametrize("agreement", AGREEMENTS, ids=lambda a: a.id)
@pytest.mark.parametrize("kind", ["share", "receive"])
def test_every_task_of_an_agreement_runs_on_its_partners_queue(
    dagbag: Any, agreement: Agreement, kind: str
) -> None:
    dag = dagbag.dags[f"{kind}__{agreement.dag_id_suffix}"]
    expected = f"sf_{agreement.partner.code.replace('-', '_')}"
    assert {t.task_id: t.queue for t in dag.tasks} == {t.task_id: expected for t in dag.tasks}


def test_queues_are_one_per_partner() -> None:
    queues = {f"sf_{a.partner.code.replace('-', '_')}" for a in AGREEMENTS}
    assert len(queues) == len({a.partner.code for a in AGREEMENTS})
