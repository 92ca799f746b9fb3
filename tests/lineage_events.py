"""Reading back the OpenLineage events the tests' DAG runs emitted (the file transport, tests/conftest.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def lineage_file() -> Path:
    return Path(os.environ["SF_LINEAGE_FILE"])


def lineage_text() -> str:
    """Every event written so far, as the file holds them (one JSON document per line)."""
    path = lineage_file()
    return path.read_text(encoding="utf-8") if path.exists() else ""


def lineage_events(dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """The task events of ``dag_id`` (of one run if given), in the order they were written."""
    events = []
    for line in lineage_text().splitlines():
        event = json.loads(line)
        airflow = event.get("run", {}).get("facets", {}).get("airflow")
        if not airflow or airflow.get("dag", {}).get("dag_id") != dag_id:
            continue
        if run_id is None or airflow.get("dagRun", {}).get("run_id") == run_id:
            events.append(event)
    return events


def completed(events: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    """The COMPLETE and FAIL events of one task (every map index)."""
    return [
        e
        for e in events
        if e["eventType"] in ("COMPLETE", "FAIL") and e["job"]["name"].endswith(f".{task_id}")
    ]


def schema(dataset: dict[str, Any]) -> list[str]:
    """A dataset's field names, in order."""
    return [f["name"] for f in dataset.get("facets", {}).get("schema", {}).get("fields", [])]
