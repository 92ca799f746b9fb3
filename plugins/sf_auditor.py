"""The auditor's console in the Airflow UI: what left, when, why and to whom — read from the audit ledger.

A FastAPI app mounted by the api-server at ``/auditor`` ("Disclosure ledger" under Browse). Plugin routes
are not protected by Airflow by default, so every route depends on :func:`sf_airflow.access.require_view`:
401 without a login, 403 unless the auth manager grants the page to the user's role (Auditor and Admin
for the console; DPO and Admin for the per-person lookup).

* the console filters by date range, kind, agreement and partner, pages over the whole ledger (keyset on
  seq), and shows for each disclosure its purpose, legal gateways, fields sent, rows, hashes, delivery id
  and run (the link opens at the top level, not inside the UI's iframe);
* the chain status is verified incrementally: from the head this process last verified, with the anchors
  kept outside the database (see :meth:`supporting_families.audit.Ledger.verify_from`);
* ``entries.csv`` exports what the same filters select; ``charts/<name>.svg`` are drawn on the server;
* ``person`` lists, for one person id, which partners got which fields, when and why.

No personal data is ever in the ledger; the lookup's person id is posted in the request body to this page
only (never to a DAG run, so never to the metadata database, and never in a URL or an access log).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic as time_monotonic
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, Form, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

import sf_airflow.access as access
from sf_airflow.access import DISCLOSURE_LOOKUP, LEDGER_CONSOLE, STAFF_NAMES, require_view
from sf_airflow.pages import bar_chart, esc, page
from supporting_families.audit import (
    ENTRY_KINDS,
    STAFF_ID_PREFIX,
    Anchor,
    Ledger,
    LedgerEntry,
    LedgerSearch,
    VerifyReport,
    exchange_history,
    read_anchors,
)

PAGE_SIZE = 50
PAGE_SIZE_MAX = 500

app = FastAPI(title="Supporting Families audit ledger", docs_url=None, redoc_url=None)
_console = require_view(LEDGER_CONSOLE)
_lookup = require_view(DISCLOSURE_LOOKUP)

STAFF_NAMES_TTL_SECONDS = 60.0
_names_cache: dict[str, tuple[float, dict[str, str]]] = {}
_names_lock = threading.Lock()

# The head each ledger was last verified at in this process: the next request walks only what came after.
_verified: dict[str, Anchor] = {}
_verified_lock = threading.Lock()


@functools.cache
def _choices() -> tuple[list[str], list[str]]:
    """The filters' choices from the agreements (a scan of a large ledger for them would cost more than
    the page itself)."""
    from supporting_families.config import load_agreements

    agreements = load_agreements(resolve=False)
    return sorted(a.id for a in agreements), sorted({a.partner.code for a in agreements})


def _ledger() -> Ledger:
    from sf_airflow.credentials import ledger

    return ledger(create=False)


def _anchors() -> list[Anchor] | None:
    if not os.environ.get("SF_LEDGER_ANCHORS_URI"):
        return None
    from sf_airflow.credentials import ledger_anchors

    return read_anchors(ledger_anchors())


def chain_status(ledger: Ledger) -> tuple[VerifyReport, int | None]:
    """The chain verified from the last verified head; the number of anchors kept (None: none configured)."""
    anchors = _anchors()
    from sf_airflow.credentials import ledger_location

    key = hashlib.sha256(ledger_location().encode()).hexdigest()  # a password may be in the URL
    with _verified_lock:
        start = _verified.get(key)
    report = ledger.verify_from(start, anchors or ())
    if report.ok and report.last_seq is not None and report.head_hash is not None:
        with _verified_lock:
            _verified[key] = Anchor(report.last_seq, report.head_hash)
    elif not report.ok:
        with _verified_lock:
            _verified.pop(key, None)  # walk it all again next time
    return report, None if anchors is None else len(anchors)


def _day(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError:
        raise HTTPException(status_code=400, detail=f"{name}: a date as YYYY-MM-DD") from None


def _search(
    since: str | None, until: str | None, kind: str | None, agreement: str | None, partner: str | None
) -> LedgerSearch:
    if kind and kind not in ENTRY_KINDS:
        raise HTTPException(status_code=400, detail="kind: one of the ledger's kinds")
    end = _day(until, "until")
    return LedgerSearch(
        kind=kind or None,
        agreement_id=agreement or None,
        partner=partner or None,
        since=_day(since, "since"),
        # The form's "to" date is inclusive: everything before the next midnight.
        until=end + timedelta(days=1) if end else None,
    )


def _run_link(e: LedgerEntry) -> str:
    if not e.dag_id or not e.run_id:
        return ""
    href = f"/dags/{quote(e.dag_id)}/runs/{quote(e.run_id, safe='')}"
    return f'<a href="{esc(href)}" target="_top">{esc(e.dag_id)}</a><div class="muted">{esc(e.run_id)}</div>'


def _hash(label: str, value: str | None) -> str:
    return (
        f'<div><span class="muted">{label}</span> '
        f'<span class="hash" title="{esc(value)}">{esc(value[:16])}…</span></div>'
        if value
        else ""
    )


def _who(e: LedgerEntry, names: dict[str, str] | None) -> str:
    """The staff id, with the login it stands for if the reader may see it; the trigger otherwise."""
    value = e.triggered_by
    name = names.get(value) if names and value else None
    if name is None:
        return f"<code>{esc(value)}</code>"
    return f'<span class="staff-name">{esc(name)}</span><div class="muted"><code>{esc(value)}</code></div>'


def _names_for(user: Any, rows: list[LedgerEntry]) -> dict[str, str] | None:
    """Staff ids on this page resolved to logins, for a role the auth manager lets see them (None else)."""
    if not any(e.triggered_by and e.triggered_by.startswith(STAFF_ID_PREFIX) for e in rows):
        return None
    # Looked up on the module at call time, so the plugin's tests can stand in for FAB's answer.
    if not access.is_authorized_view(user, STAFF_NAMES):
        return None
    # One HMAC per login in the user directory (about 20 ms for 1,000 logins here): kept for a minute, so
    # paging does not pay it on every request; a login added since shows as its id until then.
    now = time_monotonic()
    with _names_lock:
        cached = _names_cache.get("names")
        if cached is not None and now - cached[0] < STAFF_NAMES_TTL_SECONDS:
            return cached[1]
    names = access.staff_names()
    with _names_lock:
        _names_cache["names"] = (now, names)
    return names


def _entry_row(e: LedgerEntry, names: dict[str, str] | None = None) -> str:
    detail = []
    if e.purpose:
        detail.append(f"<div><span class='muted'>purpose</span> {esc(e.purpose)}</div>")
    if e.legal_gateways:
        gateways = "".join(f"<span class='tag'>{esc(g)}</span>" for g in e.legal_gateways)
        detail.append(f"<div><span class='muted'>legal gateway</span> {gateways}</div>")
    if e.fields:
        detail.append(
            f"<div><span class='muted'>fields sent</span> <code>{esc(', '.join(e.fields))}</code></div>"
        )
    delivery_id = e.details.get("delivery_id")
    if delivery_id:
        detail.append(f"<div><span class='muted'>delivery</span> <code>{esc(delivery_id)}</code></div>")
    if e.file_name:
        detail.append(f"<div><span class='muted'>file</span> <code>{esc(e.file_name)}</code></div>")
    outcome = e.details.get("outcome") or e.details.get("rule")
    if outcome:
        detail.append(f"<div><span class='muted'>outcome</span> {esc(outcome)}</div>")
    detail.append(_hash("plaintext sha256", e.plaintext_sha256))
    detail.append(_hash("ciphertext sha256", e.ciphertext_sha256))
    detail.append(_hash("entry hash", e.entry_hash))
    rows = "" if e.row_count is None else f"{e.row_count:,}"
    return (
        f'<tr data-seq="{e.seq}"><td class="num">{e.seq}</td>'
        f"<td>{esc(e.occurred_at.strftime('%Y-%m-%d %H:%M:%S'))}</td><td>{esc(e.kind)}</td>"
        f"<td>{esc(e.agreement_id)}</td><td>{esc(e.partner)}</td><td class='num'>{rows}</td>"
        f"<td>{''.join(detail)}</td><td>{_run_link(e)}</td><td>{_who(e, names)}</td></tr>"
    )


def _select(name: str, label: str, options: list[str], current: str | None) -> str:
    opts = ['<option value="">all</option>'] + [
        f'<option value="{esc(o)}"{" selected" if o == current else ""}>{esc(o)}</option>' for o in options
    ]
    return f'<label>{label}<select name="{name}">{"".join(opts)}</select></label>'


def _status_html(report: VerifyReport, anchors: int | None) -> str:
    head = esc(str(report.head_hash or "")[:16])
    if not report.ok:
        what = (
            f"CHAIN BROKEN at entry {report.first_bad_seq}: {esc(report.message or report.reason)}"
            if not report.chain_ok
            else f"APPEND-ONLY GUARDS CHANGED: {esc(report.guard_message)}"
        )
        return f'<div class="status bad" id="chain-status">{what}</div>'
    against = (
        f", checked against {anchors} anchors kept outside the database"
        if anchors is not None
        else " (no anchors configured: a dropped tail would not show)"
    )
    return (
        f'<div class="status ok" id="chain-status">Chain verified: {report.entries:,} entries, head seq '
        f"{report.last_seq or 0} ({head}…){against}.</div>"
    )


@app.get("/", response_class=HTMLResponse)
def console(
    user: Any = _console,
    since: str | None = None,
    until: str | None = None,
    kind: str | None = None,
    agreement: str | None = None,
    partner: str | None = None,
    before: int | None = Query(None, ge=1),
    after: int | None = Query(None, ge=0),
    size: int = Query(PAGE_SIZE, ge=1, le=PAGE_SIZE_MAX),
) -> HTMLResponse:
    search = _search(since, until, kind, agreement, partner)
    with _ledger() as ledger:
        report, anchors = chain_status(ledger)
        rows = ledger.search(search, size, before_seq=before, after_seq=after)
        total = ledger.search_count(search)
    names = _names_for(user, rows)
    agreements, partners = _choices()
    filters = {
        k: v
        for k, v in {
            "since": since,
            "until": until,
            "kind": kind,
            "agreement": agreement,
            "partner": partner,
        }.items()
        if v
    }
    query = urlencode(filters)
    pager = [f"<span class='muted'>{total:,} matching entries</span>"]
    if rows:
        newer = urlencode({**filters, "after": rows[0].seq, "size": size})
        older = urlencode({**filters, "before": rows[-1].seq, "size": size})
        if before is not None or after is not None:
            pager.append(f'<a class="button secondary" id="newer" href="?{esc(newer)}">← newer</a>')
        if len(rows) == size:
            pager.append(f'<a class="button secondary" id="older" href="?{esc(older)}">older →</a>')
    charts = "".join(
        f'<div class="card"><img alt="{esc(title)}" src="charts/{name}.svg?{esc(query)}"></div>'
        for name, title in _CHARTS.items()
    )
    body = f"""
<h1>Disclosure ledger</h1>
{_status_html(report, anchors)}
<form class="filters" method="get" id="filters">
  <label>from<input type="date" name="since" value="{esc(since)}"></label>
  <label>to<input type="date" name="until" value="{esc(until)}"></label>
  {_select("kind", "kind", list(ENTRY_KINDS), kind)}
  {_select("agreement", "agreement", agreements, agreement)}
  {_select("partner", "partner", partners, partner)}
  <button type="submit">Filter</button>
  <a class="button secondary" href="./">Clear</a>
  <a class="button secondary" id="csv" href="entries.csv?{esc(query)}" download>Download CSV</a>
</form>
<div class="pager">{"".join(pager)}</div>
<table id="entries"><thead><tr><th>#</th><th>when (UTC)</th><th>kind</th><th>agreement</th><th>partner</th>
<th>rows</th><th>what</th><th>run</th><th>who</th></tr></thead><tbody>
{"".join(_entry_row(e, names) for e in rows)}
</tbody></table>
<h2>Exchange history</h2>
<div class="charts" id="charts">{charts}</div>
<p class="muted">"who" is a pseudonymous staff id (a keyed hash of the login), or the schedule or asset event
that started the run: the ledger never holds a name. {
        "Staff ids are shown with the login they stand for, resolved now from the user directory."
        if names is not None
        else ""
    }</p>
"""
    return HTMLResponse(page("Disclosure ledger", body))


_CSV_COLUMNS = (
    "seq",
    "occurred_at",
    "kind",
    "agreement_id",
    "partner",
    "purpose",
    "legal_gateways",
    "fields",
    "row_count",
    "delivery_id",
    "file_name",
    "plaintext_sha256",
    "ciphertext_sha256",
    "dag_id",
    "run_id",
    "triggered_by",
    "entry_hash",
)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts like a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _csv_lines(ledger: Ledger, search: LedgerSearch) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    try:
        for e in ledger.search_all(search):
            writer.writerow(
                [
                    _cell(v)
                    for v in (
                        e.seq,
                        e.occurred_at.isoformat(),
                        e.kind,
                        e.agreement_id,
                        e.partner,
                        e.purpose,
                        ";".join(e.legal_gateways),
                        ";".join(e.fields),
                        e.row_count,
                        e.details.get("delivery_id"),
                        e.file_name,
                        e.plaintext_sha256,
                        e.ciphertext_sha256,
                        e.dag_id,
                        e.run_id,
                        e.triggered_by,
                        e.entry_hash,
                    )
                ]
            )
            if buffer.tell() > 65536:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        ledger.close()


@app.get("/entries.csv")
def entries_csv(
    user: Any = _console,
    since: str | None = None,
    until: str | None = None,
    kind: str | None = None,
    agreement: str | None = None,
    partner: str | None = None,
) -> StreamingResponse:
    search = _search(since, until, kind, agreement, partner)
    return StreamingResponse(
        _csv_lines(_ledger(), search),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="disclosure-ledger.csv"'},
    )


@app.get("/entries.json")
def entries_json(
    user: Any = _console,
    since: str | None = None,
    until: str | None = None,
    kind: str | None = None,
    agreement: str | None = None,
    partner: str | None = None,
    before: int | None = Query(None, ge=1),
    size: int = Query(100, ge=1, le=PAGE_SIZE_MAX),
) -> JSONResponse:
    search = _search(since, until, kind, agreement, partner)
    with _ledger() as ledger:
        rows = ledger.search(search, size, before_seq=before)
        return JSONResponse([row.to_dict() for row in rows])


_CHARTS = {
    "deliveries": "Deliveries per partner per week",
    "rows": "Rows sent per partner per week",
    "match-rate": "Return match rate per partner per week (%)",
    "late-missing": "Late or missing returns per partner per week",
    "quarantines": "Quarantines per partner per week",
}


@app.get("/charts/{name}.svg")
def chart(
    name: str,
    user: Any = _console,
    since: str | None = None,
    until: str | None = None,
    agreement: str | None = None,
    partner: str | None = None,
) -> Response:
    if name not in _CHARTS:
        raise HTTPException(status_code=404, detail="no such chart")
    search = _search(since, until, None, agreement, partner)
    with _ledger() as ledger:
        history = exchange_history(ledger, search)
    if name == "late-missing":
        late, missing = history.series("late_returns"), history.series("missing_returns")
        series = {f"{p} late": v for p, v in late.items()} | {f"{p} missing": v for p, v in missing.items()}
    else:
        field = {
            "deliveries": "deliveries",
            "rows": "rows_sent",
            "match-rate": "match_rate",
            "quarantines": "quarantines",
        }
        series = history.series(field[name])
    svg = bar_chart(_CHARTS[name], history.weeks, series, unit="%" if name == "match-rate" else "")
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


def _lookup_page(person_id: str | None, result: str) -> HTMLResponse:
    body = f"""
<h1>Disclosures about one person</h1>
<p class="muted">Which partners were sent which fields about a person, when and why (UK GDPR Article 15:
the recipients of their personal data). Found in each delivery's reference list, kept controller-side.
The id is sent in the request body, so it stays out of URLs and access logs.</p>
<form class="filters" method="post" id="lookup">
  <label>person id
    <input name="person_id" value="{esc(person_id)}" autocomplete="off" required maxlength="64"></label>
  <button type="submit">Look up</button>
</form>
{result}
"""
    return HTMLResponse(page("Disclosures about one person", body))


@app.get("/person", response_class=HTMLResponse)
def person_form(user: Any = _lookup) -> HTMLResponse:
    return _lookup_page(None, "")


@functools.cache
def _agreements() -> dict[str, Any]:
    from supporting_families.config import load_agreements

    return {a.id: a for a in load_agreements(resolve=False)}


_DISCLOSURE_KINDS = {
    "delivery": "delivery",
    "rectification": "rectification notice",
    "erasure": "erasure notice",
}


@app.post("/person", response_class=HTMLResponse)
def person_lookup(user: Any = _lookup, person_id: str = Form(..., max_length=64)) -> HTMLResponse:
    from sf_airflow.common import store
    from sf_airflow.credentials import data_keys
    from supporting_families.rights import disclosure_history

    # The same function as the subject access bundle's disclosure history, without the values: the page
    # names fields, partners, dates and reasons; the values sent stay in the encrypted bundle. The data keys
    # open the sealed reference lists that say who was in each delivery.
    rows = disclosure_history(store(), person_id.strip(), _agreements(), data_keys(), with_values=False)
    lines = "".join(
        f"<tr><td>{esc((r.delivered_at or '')[:16].replace('T', ' '))}</td>"
        f"<td>{esc(_DISCLOSURE_KINDS.get(r.kind, r.kind))}</td><td>{esc(r.partner)}</td>"
        f"<td>{esc(r.agreement_id)}</td><td>{esc(r.purpose)}</td>"
        f"<td>{''.join(f'<span class=tag>{esc(g)}</span>' for g in r.legal_gateways)}</td>"
        f"<td><code>{esc(', '.join(r.fields))}</code></td><td><code>{esc(r.delivery_id)}</code></td></tr>"
        for r in rows
    )
    result = (
        f"<p id='lookup-count'>{len(rows)} disclosures about this person.</p>"
        "<table id='disclosures'><thead><tr><th>sent (UTC)</th><th>what</th><th>partner</th>"
        "<th>agreement</th><th>purpose</th><th>legal gateway</th><th>fields sent</th><th>delivery</th>"
        "</tr></thead>"
        f"<tbody>{lines}</tbody></table>"
    )
    return _lookup_page(person_id, result)


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
        },
        {
            "name": "Disclosures about a person",
            "href": "/auditor/person",
            "url_route": "disclosure-lookup",
            "destination": "nav",
            "category": "browse",
        },
    ]
