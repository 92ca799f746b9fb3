"""The practitioners' worklist in the Airflow UI: families that meet the criteria, and why.

A FastAPI app mounted by the api-server at ``/worklist`` ("Practitioners' worklist" under Browse), for
the Practitioner role (and Admin): every route depends on :func:`sf_airflow.access.require_view`.

Names and the address are read from the register in the store when the page is drawn and go only into
the page: never into Airflow's metadata database, a log or XCom. Confirming a decision records it with
the signed-in user's pseudonymous staff id (``supporting_families.identify.record_decision``), and the
ledger's ``practitioner_decision`` entry then names that staff id, never the person.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar
from urllib.parse import urlencode

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, Form, HTTPException, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from sf_airflow.access import WORKLIST, require_view, staff_id_of
from sf_airflow.common import store
from sf_airflow.credentials import ledger
from sf_airflow.pages import esc, page
from supporting_families.identify import (
    REASONS,
    AssessmentError,
    WorklistFamily,
    record_decision,
    worklist_families,
)

PAGE_SIZE = 25

app = FastAPI(title="Supporting Families worklist", docs_url=None, redoc_url=None)
_read = require_view(WORKLIST)
_confirm = require_view(WORKLIST, "POST")


def _family(f: WorklistFamily) -> str:
    problems = "".join(
        f"<li><strong>{esc(p.title)}</strong> <span class='muted'>({esc(p.headline)})</span>"
        f"<br>{esc(p.reason)}</li>"
        for p in f.problems
    )
    reasons = "".join(f'<option value="{esc(r)}">{esc(r)}</option>' for r in REASONS["meets_criteria"])
    return f"""
<tr data-family="{esc(f.family_id)}"><td><code>{esc(f.family_id)}</code></td>
<td>{"<br>".join(esc(m) for m in f.members)}<div class="muted">{esc(f.address)}</div></td>
<td><ul class="problems">{problems}</ul></td>
<td><form method="post" action="confirm" class="confirm">
  <input type="hidden" name="family_id" value="{esc(f.family_id)}">
  <input type="hidden" name="request_id" value="{uuid.uuid4().hex}">
  <input type="hidden" name="decision" value="meets_criteria">
  <label>reason<select name="reason">{reasons}</select></label>
  <button type="submit">Confirm assessment</button>
</form></td></tr>"""


@app.get("/", response_class=HTMLResponse)
def worklist(
    user: Any = _read,
    page_no: int = Query(1, ge=1, alias="page"),
    confirmed: str | None = Query(None, pattern=r"^[0-9a-f]{32}$"),
) -> HTMLResponse:
    as_of, total, families = worklist_families(store(), offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    notice = (
        f'<div class="status ok" id="confirmed">Assessment {esc(confirmed)} recorded as meeting the '
        "criteria, with your staff id in the audit ledger.</div>"
        if confirmed
        else ""
    )
    pages = []
    if page_no > 1:
        pages.append(f'<a class="button secondary" href="?{urlencode({"page": page_no - 1})}">← previous</a>')
    if page_no * PAGE_SIZE < total:
        pages.append(f'<a class="button secondary" href="?{urlencode({"page": page_no + 1})}">next →</a>')
    body = f"""
<h1>Practitioners' worklist</h1>
{notice}
<p>Families meeting at least two of the six headline problems in the identification of
<strong>{esc(as_of.isoformat() if as_of else "(none yet)")}</strong>: {total:,} families. Each problem
shows the reason the rules found it. This is a worklist, not a decision (UK GDPR Article 22): a family is
assessed as meeting the criteria only when you confirm it, after reviewing the reasons.</p>
<div class="pager">{"".join(pages)}</div>
<table id="worklist"><thead><tr><th>family</th><th>members and address</th>
<th>headline problems and reasons</th>
<th>decision</th></tr></thead><tbody>{"".join(_family(f) for f in families)}</tbody></table>
<p class="muted">Names and addresses are read from the register for this page only and are not kept by
Airflow.</p>
"""
    return HTMLResponse(page("Practitioners' worklist", body))


@app.post("/confirm")
def confirm(
    user: Any = _confirm,
    family_id: str = Form(..., max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    decision: str = Form("meets_criteria"),
    reason: str = Form(..., max_length=64),
    request_id: str = Form(..., pattern=r"^[0-9a-f]{32}$"),
) -> RedirectResponse:
    try:
        with ledger() as audit_ledger:
            recorded = record_decision(
                store(),
                audit_ledger,
                family_id,
                decision,
                reason,
                staff_id_of(str(user.get_name())),
                request_id=f"worklist__{request_id}",
            )
    except AssessmentError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return RedirectResponse(f"./?{urlencode({'confirmed': recorded.assessment_id})}", status_code=303)


class SupportingFamiliesWorklist(AirflowPlugin):
    name = "supporting_families_worklist"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [  # type: ignore[misc]
        {"app": app, "url_prefix": "/worklist", "name": "Practitioners' worklist"}
    ]
    external_views: ClassVar[list[dict[str, str]]] = [  # type: ignore[misc]
        {
            "name": "Practitioners' worklist",
            "href": "/worklist/",
            "url_route": "practitioners-worklist",
            "destination": "nav",
            "category": "browse",
        }
    ]
