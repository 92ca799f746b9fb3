"""Notifications through Airflow's SMTP notifier: the DPO's rights deadlines, and other alerts.

The connection ``sf_smtp`` is an SMTP connection (host, port, login) with the recipients in its extra
``to`` (a list) and the sender in ``from_email``. The mail holds ids, codes, counts and dates only, never a
person: e-mail is outside the platform's store.
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


def email_dpo(context: dict[str, Any], *, subject: str, rows: list[dict[str, Any]]) -> None:
    """Send ``subject`` and a table of ``rows`` to the addresses of ``sf_smtp``'s extra ``to``."""
    extra = BaseHook.get_connection(SMTP_CONN_ID).extra_dejson
    # The notifier renders its fields as Jinja templates: braces in the content are escaped first.
    content = _table(rows).replace("{", "&#123;").replace("}", "&#125;")
    notifier = SmtpNotifier(
        to=extra["to"],
        from_email=extra.get("from_email", "supporting-families@council.invalid"),
        subject=subject,
        html_content=f"<p>{html.escape(subject)}</p>{content}",
        smtp_conn_id=SMTP_CONN_ID,
    )
    # The task context is Airflow's Context at run time; tasks receive it as a plain mapping.
    notifier.notify(context)  # type: ignore[arg-type]
