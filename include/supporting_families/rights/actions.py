"""Each right as one action: register the request, do it, return counts and the ledger entries to append.

The ``rights_*`` DAGs and the CLI call these; both append the returned entries to the audit ledger. Every
entry holds counts, codes and hashes only: the request id, the SHA-256 of the council's case reference
(which leads to the case file) and what was done, never a person id or a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from upath import UPath

from supporting_families.audit import NewEntry, idempotency_key
from supporting_families.config.agreements import Agreement
from supporting_families.registers import (
    RestrictionKind,
    close_request,
    lift_hold,
    lift_restriction,
    open_request,
    place_hold,
    record_restriction,
    reference_hash,
)
from supporting_families.registers.holds import HoldReason, HoldScope
from supporting_families.registers.requests import Right
from supporting_families.rights.bundle import write_portability, write_subject_access
from supporting_families.rights.dossier import person_dossier
from supporting_families.rights.erase import (
    Changes,
    ErasurePlan,
    ErasureRefused,
    compact,
    erase_now,
    erasure_blockers,
    load_plan,
    plan_erasure,
    save_plan,
)
from supporting_families.rights.rectify import notices_due, rectify
from supporting_families.store.keystore import KeyStore


@dataclass(frozen=True)
class Run:
    """Who and what is acting: the DAG run (or ``cli``), for the ledger's columns."""

    dag_id: str
    run_id: str
    task_id: str
    triggered_by: str | None = None


@dataclass(frozen=True)
class OpenPgp:
    council_fingerprint: str
    gnupg_home: Path
    passphrase: str = field(repr=False)


@dataclass
class Outcome:
    """What an action did (counts for XCom and logs) and the ledger entries it leaves to append."""

    counts: dict[str, Any]
    entries: list[NewEntry] = field(default_factory=list)


def _entry(
    run: Run, kind: str, request_id: str, case_reference: str, details: dict[str, Any], *key: str
) -> NewEntry:
    return NewEntry(
        kind=kind,  # type: ignore[arg-type]
        occurred_at=datetime.now(UTC),
        dag_id=run.dag_id,
        run_id=run.run_id,
        task_id=run.task_id,
        triggered_by=run.triggered_by,
        details={
            "request_id": request_id,
            "case_reference_sha256": reference_hash(case_reference),
            **details,
        },
        idempotency_key=idempotency_key(kind, request_id, *key),  # type: ignore[arg-type]
    )


def _open(store: UPath, right: Right, case_reference: str, person_id: str | None, received_on: date) -> str:
    return str(open_request(store, right, case_reference, person_id, received_on)["request_id"])


def subject_access(
    store: UPath,
    person_id: str,
    case_reference: str,
    received_on: date,
    *,
    agreements: dict[str, Agreement],
    keys: KeyStore,
    openpgp: OpenPgp,
    dpo_fingerprint: str,
    run: Run,
) -> Outcome:
    request_id = _open(store, "access", case_reference, person_id, received_on)
    dossier = person_dossier(store, person_id, agreements, keys)
    counts = write_subject_access(
        store,
        request_id,
        dossier,
        dpo_fingerprint=dpo_fingerprint,
        council_fingerprint=openpgp.council_fingerprint,
        passphrase=openpgp.passphrase,
        gnupg_home=openpgp.gnupg_home,
    )
    close_request(store, request_id, "completed", "bundle_to_dpo", datetime.now(UTC).date())
    details = {"action": "access", **{k: v for k, v in counts.items() if k != "bundle"}}
    return Outcome(
        {"request_id": request_id, **counts},
        [_entry(run, "rights_action", request_id, case_reference, details, "access")],
    )


def portability(
    store: UPath,
    person_id: str,
    case_reference: str,
    received_on: date,
    recipient_fingerprint: str,
    *,
    agreements: dict[str, Agreement],
    keys: KeyStore,
    openpgp: OpenPgp,
    run: Run,
) -> Outcome:
    request_id = _open(store, "portability", case_reference, person_id, received_on)
    dossier = person_dossier(store, person_id, agreements, keys)
    counts = write_portability(
        store,
        request_id,
        dossier,
        recipient_fingerprint=recipient_fingerprint,
        council_fingerprint=openpgp.council_fingerprint,
        passphrase=openpgp.passphrase,
        gnupg_home=openpgp.gnupg_home,
    )
    close_request(store, request_id, "completed", "export_encrypted", datetime.now(UTC).date())
    details = {
        "action": "portability",
        "recipient_fingerprint": recipient_fingerprint.replace(" ", "").lower(),
    }
    details.update({k: v for k, v in counts.items() if k != "export"})
    return Outcome(
        {"request_id": request_id, **counts},
        [_entry(run, "rights_action", request_id, case_reference, details, "portability")],
    )


def restriction(
    store: UPath,
    person_id: str,
    case_reference: str,
    kind: RestrictionKind,
    starts_on: date,
    ends_on: date | None,
    *,
    run: Run,
    lift: bool = False,
) -> Outcome:
    """Record (or, with ``lift``, end on ``ends_on``) a restriction, objection or consent withdrawal."""
    request_id = _open(store, "restriction", case_reference, person_id, starts_on)
    counts: dict[str, Any]
    if lift:
        if ends_on is None:
            raise ValueError("ends_on: the last day the restriction is in force (rule: lifting needs a date)")
        changed = lift_restriction(store, person_id, case_reference, ends_on)
        action, counts = "restriction_lifted", {"lifted": changed}
    else:
        held = record_restriction(store, person_id, kind, case_reference, starts_on, ends_on)
        action, counts = "restriction", {"kind": kind, "decisions_held": held}
    close_request(store, request_id, "completed", action, datetime.now(UTC).date())
    return Outcome(
        {"request_id": request_id, **counts},
        [_entry(run, "rights_action", request_id, case_reference, {"action": action, **counts}, action)],
    )


def legal_hold(
    store: UPath,
    scope: HoldScope,
    subject_id: str,
    reason: HoldReason,
    case_reference: str,
    starts_on: date,
    *,
    run: Run,
    lift_on: date | None = None,
) -> Outcome:
    request_id = _open(
        store, "legal_hold", case_reference, subject_id if scope == "person" else None, starts_on
    )
    hold_id = place_hold(store, scope, subject_id, reason, case_reference, starts_on)
    action = "legal_hold"
    counts: dict[str, Any] = {"hold_id": hold_id, "scope": scope, "reason": reason}
    if lift_on is not None:
        counts["lifted"] = lift_hold(store, hold_id, lift_on)
        action = "legal_hold_lifted"
    close_request(store, request_id, "completed", action, datetime.now(UTC).date())
    return Outcome(
        {"request_id": request_id, **counts},
        [_entry(run, "rights_action", request_id, case_reference, {"action": action, **counts}, action)],
    )


def rectification(
    store: UPath,
    person_id: str,
    case_reference: str,
    received_on: date,
    corrections: dict[str, str | None],
    *,
    agreements: dict[str, Agreement],
    run: Run,
    keys: KeyStore,
) -> tuple[Outcome, list[tuple[Agreement, list[str], dict[str, object]]]]:
    """Record and apply the corrections; returns the outcome and the notices due to partners.

    The request stays open until the notices are sent (:func:`notices_sent`).
    """
    request_id = _open(store, "rectification", case_reference, person_id, received_on)
    applied = 0
    for name, value in sorted(corrections.items()):
        applied += rectify(store, person_id, name, value, request_id)["applied"]
    due = notices_due(store, person_id, sorted(corrections), agreements, keys)
    counts = {"fields": sorted(corrections), "applied": applied, "notices_due": len(due)}
    return (
        Outcome(
            {"request_id": request_id, **counts},
            [
                _entry(
                    run,
                    "rights_action",
                    request_id,
                    case_reference,
                    {"action": "rectify", **counts},
                    "rectify",
                )
            ],
        ),
        due,
    )


def notices_sent(store: UPath, request_id: str, outcome: str) -> None:
    close_request(store, request_id, "completed", outcome, datetime.now(UTC).date())


def erasure(
    store: UPath,
    person_id: str,
    case_reference: str,
    received_on: date,
    *,
    tombstone_key: bytes,
    keys: KeyStore,
    run: Run,
) -> tuple[Outcome, ErasurePlan | None]:
    """The request-time part of erasure. A legal hold refuses it whole (and the request is closed refused,
    with the hold's reason codes in the ledger); otherwise returns the plan the notices and compaction use."""
    request_id = _open(store, "erasure", case_reference, person_id, received_on)
    # A retry finds the plan made before anything was erased (the person is gone from the register then).
    plan = load_plan(store, request_id, keys) or plan_erasure(store, person_id, keys)
    save_plan(store, request_id, plan, keys)
    today = datetime.now(UTC).date()
    try:
        changes = erase_now(
            store, plan, tombstone_key=tombstone_key, keys=keys, request_id=request_id, on=today
        )
    except ErasureRefused:
        reasons = erasure_blockers(store, plan, today)
        close_request(store, request_id, "refused", "refused_legal_hold", today)
        details = {"action": "erase", "refused": True, "hold_reasons": reasons}
        return (
            Outcome(
                {"request_id": request_id, "refused": 1, "hold_reasons": reasons},
                [_entry(run, "rights_action", request_id, case_reference, details, "erase")],
            ),
            None,
        )
    counts = changes.counts()
    entries = [
        _entry(
            run,
            "rights_action",
            request_id,
            case_reference,
            {"action": "erase", "partners": len(plan.agreements)},
            "erase",
        ),
        _deletion(run, request_id, case_reference, "request_time", changes),
    ]
    return Outcome(
        {"request_id": request_id, "partners_to_notify": len(plan.agreements), **counts}, entries
    ), plan


def _deletion(run: Run, request_id: str, case_reference: str, part: str, changes: Changes) -> NewEntry:
    counts = changes.counts()
    details = {
        "part": part,
        "rule": "erasure_request",
        "rows_removed": counts["rows_removed"],
        "files_rewritten": counts["files_rewritten"],
        "files_deleted": counts["files_deleted"],
        "paths_sha256": counts["paths_sha256"],
    }
    return _entry(run, "deletion", request_id, case_reference, details, part)


def compaction(
    store: UPath,
    plan: ErasurePlan,
    case_reference: str,
    request_id: str,
    sources: dict[str, str],
    *,
    run: Run,
) -> Outcome:
    changes = compact(store, plan, sources)
    return Outcome(changes.counts(), [_deletion(run, request_id, case_reference, "compaction", changes)])
