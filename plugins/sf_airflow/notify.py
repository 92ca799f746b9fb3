"""Notifications through Airflow's SMTP notifier: the DPO's rights and return deadlines, the lead
practitioner's families newly eligible, and the data engineers' delivery conflicts.

The connection ``sf_smtp`` is an SMTP connection (host, port, login) with the sender in its extra
``from_email`` and a list of addresses per audience: ``to`` (the data protection officer),
``lead_practitioner`` and ``operations`` (the data engineers). The mail holds ids, codes, counts, dates
and the criteria's reasons only, never a name or an address: e-mail is outside the platform's store.
"""

from __future__ import annotations

import html
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseHook

SMTP_CONN_ID = "sf_smtp"


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>"


def send_email(
    context: dict[str, Any], *, audience: str, subject: str, rows: list[dict[str, Any]], note: str = ""
) -> list[str]:
    """Send ``subject``, ``note`` and a table of ``rows`` to the addresses in ``sf_smtp``'s extra
    ``audience``; returns them. A missing audience is a configuration fault, named."""
    extra = BaseHook.get_connection(SMTP_CONN_ID).extra_dejson
    to = extra.get(audience)
    if not to:
        raise ValueError(f"connection {SMTP_CONN_ID}: extra {audience!r} (a list of addresses) is not set")
    # The notifier renders its fields as Jinja templates: braces in the content are escaped first.
    content = f"<p>{html.escape(note)}</p>" if note else ""
    content += _table(rows)
    content = content.replace("{", "&#123;").replace("}", "&#125;")
    notifier = SmtpNotifier(
        to=to,
        from_email=extra.get("from_email", "supporting-families@council.invalid"),
        subject=subject.replace("{", "(").replace("}", ")"),
        html_content=f"<p>{html.escape(subject)}</p>".replace("{", "&#123;").replace("}", "&#125;") + content,
        smtp_conn_id=SMTP_CONN_ID,
    )
    # The task context is Airflow's Context at run time; tasks receive it as a plain mapping.
    notifier.notify(context)  # type: ignore[arg-type]
    return list(to) if isinstance(to, list) else [str(to)]


def email_operations(context: dict[str, Any], *, subject: str, rows: list[dict[str, Any]], note: str) -> None:
    """Send ``subject``, ``note`` and ``rows`` to the data engineers who run the exchanges (extra
    ``operations``)."""
    send_email(context, audience="operations", subject=subject, rows=rows, note=note)


def email_dpo(context: dict[str, Any], *, subject: str, rows: list[dict[str, Any]]) -> None:
    """Send ``subject`` and a table of ``rows`` to the data protection officer (extra ``to``)."""
    send_email(context, audience="to", subject=subject, rows=rows)
