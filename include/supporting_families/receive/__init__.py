"""Receiving partners' returns: fetch, verify, validate, reconcile against what was sent, merge.

A receive DAG senses the partner's outbox, then :func:`fetch_returns`, :func:`record_collections`,
:func:`process_return` per file (a bad file raises :class:`ReturnQuarantined` with the file kept whole)
and :func:`clear_outbox`.
"""

from supporting_families.receive.expected import DeliveryEvent, expected_delivery, expected_return
from supporting_families.receive.pipeline import (
    ReturnOutcome,
    ReturnQuarantined,
    RunInfo,
    clear_outbox,
    deadline_entry,
    fetch_returns,
    handled_state,
    process_return,
    record_collections,
    return_file_name,
    run_problems,
)

__all__ = [
    "DeliveryEvent",
    "ReturnOutcome",
    "ReturnQuarantined",
    "RunInfo",
    "clear_outbox",
    "deadline_entry",
    "expected_delivery",
    "expected_return",
    "fetch_returns",
    "handled_state",
    "process_return",
    "record_collections",
    "return_file_name",
    "run_problems",
]
