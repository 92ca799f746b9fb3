"""Each test Celery worker's ``[core] hostname_callable``: the workers share one host, so the name a task
instance records must come from the worker that ran it, not from the machine."""

from __future__ import annotations


def dwp() -> str:
    return "sf-worker-dwp"


def met_police() -> str:
    return "sf-worker-met-police"


def ons() -> str:
    return "sf-worker-ons"
