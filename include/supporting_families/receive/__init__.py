"""Receiving partners' returns: fetch, verify, validate, reconcile against what was sent, merge.

A receive DAG senses the partner's outbox, then :func:`fetch_returns`, :func:`record_collections`,
:func:`process_return` per file (a bad file raises :class:`ReturnQuarantined` with the file kept whole)
and :func:`clear_outbox`.
"""

from supporting_families.receive.deadlines import deadline_entry
from supporting_families.receive.expected import DeliveryEvent, expected_delivery, expected_return
from supporting_families.receive.fetch import FetchSummary, fetch_returns
from supporting_families.receive.merge import MergeConflict, MergeResult, merge_flags
from supporting_families.receive.outbox import clear_outbox, record_collections, run_problems
from supporting_families.receive.process import ReturnOutcome, check_receipt, process_return, read_references
from supporting_families.receive.quarantine import ReturnQuarantined, handled_state, quarantine_reason
from supporting_families.receive.records import (
    QUARANTINE_RULES,
    Received,
    ReturnPaths,
    RunInfo,
    delivery_id_of,
    return_file_name,
)

__all__ = [
    "QUARANTINE_RULES",
    "DeliveryEvent",
    "FetchSummary",
    "MergeConflict",
    "MergeResult",
    "Received",
    "ReturnOutcome",
    "ReturnPaths",
    "ReturnQuarantined",
    "RunInfo",
    "check_receipt",
    "clear_outbox",
    "deadline_entry",
    "delivery_id_of",
    "expected_delivery",
    "expected_return",
    "fetch_returns",
    "handled_state",
    "merge_flags",
    "process_return",
    "quarantine_reason",
    "read_references",
    "record_collections",
    "return_file_name",
    "run_problems",
]
