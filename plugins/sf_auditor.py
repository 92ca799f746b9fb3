"""The auditor's page in the Airflow UI: what left, when, why and to whom — read from the audit ledger.

A FastAPI app mounted by the api-server at ``/auditor`` (with a "Disclosure ledger" link under Browse).
Every route depends on Airflow's own authentication (``GetUserDep``: the UI's token cookie or a Bearer
token), because plugin routes are not protected by default. It shows the ledger's entries (no personal
data is ever in them), whether the hash chain verifies, and links each entry to the DAG run that made it.
"""

from __future__ import annotations

import html
import os
from typing import Any, ClassVar
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse

PAGE_LIMIT = 500

app = FastAPI(title="Supporting Families audit ledger", docs_url=None, redoc_url=None)


def _ledger() -> Any:
    from supporting_families.audit import Ledger, ledger_url

    return Ledger(ledger_url(), create=False)


def _verify(ledger: Any) -> Any:
    """The chain, walked against the anchors the ledger_anchor DAG keeps, where they are configured."""
    if not os.environ.get("SF_LEDGER_ANCHORS_URI"):
        return ledger.verify()
    from sf_airflow.credentials import ledger_anchors
    from supporting_families.audit import verify_with_anchors

    return verify_with_anchors(ledger, ledger_anchors())


def _run_link(dag_id: str | None, run_id: str | None) -> str:
    if not dag_id or not run_id:
        return ""
    href = f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
    return f'<a href="{html.escape(href)}">{html.escape(dag_id)}</a>'


def _short(value: str | None) -> str:
    return html.escape(value[:12] + "…") if value else ""


@app.get("/entries.json")
def entries_json(
    user: GetUserDep,
    kind: str | None = None,
    agreement: str | None = None,
    limit: int = Query(100, ge=1, le=PAGE_LIMIT),
) -> JSONResponse:
    with _ledger() as ledger:
        rows = ledger.entries(kind=kind, agreement_id=agreement, limit=limit, newest_first=True)
        return JSONResponse([row.to_dict() for row in rows])


@app.get("/", response_class=HTMLResponse)
def page(
    user: GetUserDep,
    kind: str | None = None,
    agreement: str | None = None,
    limit: int = Query(200, ge=1, le=PAGE_LIMIT),
) -> HTMLResponse:
    with _ledger() as ledger:
        report = _verify(ledger)
        rows = ledger.entries(kind=kind, agreement_id=agreement, limit=limit, newest_first=True)
    head = html.escape(str(report.head_hash or "")[:16])
    anchors = (
        f", against {report.anchors_checked} anchors kept outside the database"
        if os.environ.get("SF_LEDGER_ANCHORS_URI")
        else " (no anchors configured: a dropped tail would not show)"
    )
    state = (
        f"chain verified: {report.entries} entries, head {head}…{anchors}"
        if report.ok
        else f"CHAIN BROKEN at entry {report.first_bad_seq}: {html.escape(str(report.reason))}"
    )
    body = [
        "<h1>Disclosure ledger</h1>",
        f"<p><strong>{state}</strong></p>",
        "<table border=1 cellpadding=4><tr><th>#</th><th>when (UTC)</th><th>what</th><th>agreement</th>"
        "<th>partner</th><th>rows</th><th>file</th><th>plaintext sha256</th><th>ciphertext sha256</th>"
        "<th>run</th><th>triggered by</th></tr>",
    ]
    for e in rows:
        body.append(
            "<tr>"
            f"<td>{e.seq}</td><td>{html.escape(e.occurred_at.isoformat())}</td><td>{html.escape(e.kind)}</td>"
            f"<td>{html.escape(e.agreement_id or '')}</td><td>{html.escape(e.partner or '')}</td>"
            f"<td>{'' if e.row_count is None else e.row_count}</td><td>{html.escape(e.file_name or '')}</td>"
            f"<td>{_short(e.plaintext_sha256)}</td><td>{_short(e.ciphertext_sha256)}</td>"
            f"<td>{_run_link(e.dag_id, e.run_id)}</td><td>{html.escape(e.triggered_by or '')}</td>"
            "</tr>"
        )
    body.append("</table>")
    return HTMLResponse("<!doctype html><title>Disclosure ledger</title>" + "".join(body))


class SupportingFamiliesAuditor(AirflowPlugin):
    name = "supporting_families_auditor"
    # ClassVar: Airflow reads these off the class, though AirflowPlugin declares them as instance
    # attributes.
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [  # type: ignore[misc]
        {"app": app, "url_prefix": "/auditor", "name": "Disclosure ledger"}
    ]
    external_views: ClassVar[list[dict[str, str]]] = [  # type: ignore[misc]
        {
            "name": "Disclosure ledger",
            "href": "/auditor/",
            "url_route": "disclosure-ledger",
            "destination": "nav",
            "category": "browse",
        }
    ]
