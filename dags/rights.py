"""The data subjects' rights, one DAG each (privacy notice, "Your Rights and Access to your information").

Every form holds no personal data: the council's internal person id (found controller-side with
``python -m supporting_families.rights find``), the case reference in the council's format, codes and
dates. Airflow keeps a run's form values in its metadata database, where no name, date of birth or address
may go. Every run registers the request with its due date (UK GDPR Article 12(3): one month), writes one
ledger entry per action (counts and hashes), and returns counts only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, Literal

from airflow.sdk import DAG, Param, dag, task

from sf_airflow.common import DEFAULT_ARGS, START_DATE, partner_queue, store
from supporting_families.config import load_agreements

PERSON_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CASE_PATTERN = r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{3,6}$"
FINGERPRINT_PATTERN = r"^[0-9A-Fa-f]{40}([0-9A-Fa-f]{24})?$"
# Mirrors supporting_families.registers (kept literal: parsing imports nothing heavy); the core is the
# authority and validates again.
RESTRICTION_KINDS = ["restriction", "objection", "consent_withdrawal"]
HOLD_REASONS = ["child_protection_plan", "litigation", "police_investigation", "statutory_inquiry"]
CORRECTABLE = [
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "address_line_1",
    "address_line_2",
    "town",
    "postcode",
    "uprn",
]
TAGS = ["supporting-families", "rights"]
AGREEMENTS = load_agreements(resolve=False)


def _person() -> Param:
    return Param(
        type="string",
        pattern=PERSON_PATTERN,
        title="Person id",
        description="The council's internal person id, from `python -m supporting_families.rights find` "
        "(never a name).",
    )


def _case() -> Param:
    return Param(
        type="string",
        pattern=CASE_PATTERN,
        title="Case reference",
        description="The request's case reference in the council's format, e.g. DSR-2026-00042.",
    )


def _received() -> Param:
    return Param(
        type="string",
        format="date",
        title="Received on",
        description="The day the request was received: it is due one month later (UK GDPR Article 12(3)).",
    )


def _request() -> dict[str, Param]:
    """The form every request-shaped right starts with: who, which case, and when it arrived."""
    return {"person_id": _person(), "case_reference": _case(), "received_on": _received()}


def _day(params: dict[str, Any], key: str) -> date:
    """A date the form requires (its schema refuses a run without it)."""
    return date.fromisoformat(str(params[key]))


def _optional_day(params: dict[str, Any], key: str) -> date | None:
    value = params.get(key)
    return date.fromisoformat(str(value)) if value else None


@contextmanager
def _refusals() -> Iterator[None]:
    """A refused request (unknown person, held, a rule broken) cannot succeed on retry: fail, do not retry.

    The core's message names the field and the rule, never a value, so it is safe in the task log.
    """
    try:
        yield
    except (ValueError, LookupError) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from None


def _rights_dag(
    dag_id: str, params: dict[str, Param], doc_md: str, schedule: str | None = None
) -> Callable[[Callable[[], None]], Callable[[], DAG]]:
    """What every rights DAG shares: run on request (the deadline check daily), one run at a time."""
    return dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        default_args=DEFAULT_ARGS,
        max_active_runs=1,
        tags=TAGS,
        params=params,
        doc_md=doc_md,
    )


def _notify(kind: Literal["rectification", "erasure"], request: Any) -> list[Any]:
    """One task per agreement that delivers the notice the request prepared for it, on the partner's queue:
    only that partner's worker holds its SFTP connection (docs/ARCHITECTURE.md, "Credentials per
    partner"). A partner the request owes no notice (it never received the person) succeeds, ``due: false``.
    """

    @task
    def notify(request: dict[str, Any], agreement_id: str, **context: Any) -> dict[str, Any]:
        from sf_airflow.rights import acting_run, deliver_notice

        return deliver_notice(kind, str(request["request_id"]), agreement_id, acting_run(context))

    return [
        notify.override(task_id=f"notify_{a.dag_id_suffix}", queue=partner_queue(a.partner.code))(
            request, a.id
        )
        for a in AGREEMENTS
    ]


@_rights_dag(
    "rights_subject_access",
    params=_request(),
    doc_md="""
### Subject access (UK GDPR Article 15)

"You have the right to request a copy of the information that we hold about you." Builds the bundle of
everything held: the register record and the source records that linked to it, the flags with their
reasons, the practitioners' decisions, the partners' answers, the person's requests and restrictions, and
every delivery and notice that included them with partner, agreement, purpose, legal gateways, date,
delivery id and the fields and values as sent (from the sealed controller-side copies).

HTML and CSV for people, JSON for machines, zipped and encrypted to the data protection officer's OpenPGP
key under `rights/<request id>/subject_access.zip.gpg`. Never sent automatically: the DPO checks it and
sends it to the person.
""",
)
def rights_subject_access() -> None:
    @task
    def build_bundle(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from sf_airflow.credentials import data_keys, dpo_fingerprint
        from sf_airflow.rights import acting_run, agreements, openpgp, record
        from supporting_families.rights import subject_access

        assert params is not None
        with _refusals():
            outcome = subject_access(
                store(),
                str(params["person_id"]),
                str(params["case_reference"]),
                _day(params, "received_on"),
                agreements=agreements(),
                keys=data_keys(),
                openpgp=openpgp(),
                dpo_fingerprint=dpo_fingerprint(),
                run=acting_run(context),
            )
        return {**outcome.counts, "ledger_seq": record(outcome)}

    build_bundle()


@_rights_dag(
    "rights_rectification",
    params=_request(),
    doc_md=f"""
### Rectification (UK GDPR Articles 16 and 19)

"You have a right to request your data to be rectified if it is inaccurate or incomplete." The corrected
value cannot go in this form (Airflow would keep it), so the officer stages it controller-side first:

    python -m supporting_families.rights stage-correction --case DSR-2026-00042 --person P... --field postcode
    (the value is read from stdin)

This run then applies every correction staged for the case: the register is corrected at once and the
correction outranks the departments' extracts until they agree. Every partner that received one of the
corrected fields gets a rectification notice (the pseudonymous reference and the corrected fields its
agreement allows), encrypted to the partner, delivered over SFTP exactly once by `notify_<agreement>`
on the partner's queue and recorded as a `disclosure` with `notice: rectification`.
Correctable fields: {", ".join(CORRECTABLE)}.
""",
)
def rights_rectification() -> None:
    @task
    def rectify(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from sf_airflow.credentials import data_keys
        from sf_airflow.rights import acting_run, agreements, prepare_notices, record
        from supporting_families.rights import drop_staged, rectification, staged_corrections

        assert params is not None
        root, person_id, case = store(), str(params["person_id"]), str(params["case_reference"])
        run = acting_run(context)
        with _refusals():
            staged = staged_corrections(root, case, person_id, data_keys())
            outcome, due = rectification(
                root,
                person_id,
                case,
                _day(params, "received_on"),
                staged,
                agreements=agreements(),
                run=run,
                keys=data_keys(),
            )
        seqs = record(outcome)
        drop_staged(root, case)  # the value now lives in the register's corrections
        prepared = prepare_notices("rectification", str(outcome.counts["request_id"]), due, person_id)
        return {**outcome.counts, "ledger_seq": seqs, "notices_due": prepared}

    @task
    def close(rectified: dict[str, Any]) -> dict[str, Any]:
        from supporting_families.rights import notices_sent

        notices_sent(store(), str(rectified["request_id"]), "rectified_and_notified")
        return {"request_id": rectified["request_id"], "notices_due": rectified["notices_due"]}

    rectified = rectify()
    # Article 19: the request is complete once every partner that received the field has been told.
    _notify("rectification", rectified) >> close(rectified)  # type: ignore[arg-type]


@_rights_dag(
    "rights_erasure",
    params=_request(),
    doc_md="""
### Erasure (UK GDPR Articles 17 and 19)

"You have a right to request to have your data deleted where there is no compelling reason for its continued
processing and provided that there are no legitimate grounds for retaining it." A legal hold on the person,
or on an agreement that disclosed them, refuses the request whole, with the hold's reason in the ledger.

Otherwise (each step idempotent, so a retry finishes the job): `erase` makes a tombstone of the person's
identifying keys (keyed hashes, never values) so re-ingest and re-linkage do not bring them back, takes the
person out of the register, curated tables, identification snapshots, partners' flags, controller-side
copies and reference lists, and encrypts an erasure notice for every partner that received them; each
`notify_<agreement>` delivers its partner's notice on that partner's queue; then `compact` rewrites the
bulk files (landing extracts, partner-encrypted archives, returns and quarantines; docs/ARCHITECTURE.md
says which file gets which treatment). The ledger keeps `deletion` entries with counts and a hash of the
list of paths, never a name.
""",
)
def rights_erasure() -> None:
    @task
    def erase(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from sf_airflow.credentials import data_keys, tombstone_key
        from sf_airflow.rights import acting_run, prepare_notices, record
        from sf_airflow.rights import agreements as load
        from supporting_families.rights import erasure

        assert params is not None
        root, person_id, case = store(), str(params["person_id"]), str(params["case_reference"])
        with _refusals():
            outcome, plan = erasure(
                root,
                person_id,
                case,
                _day(params, "received_on"),
                tombstone_key=tombstone_key(),
                keys=data_keys(),
                run=acting_run(context),
            )
        seqs = record(outcome)
        if plan is None:  # refused under a legal hold: nothing to tell, nothing to compact
            return {**outcome.counts, "ledger_seq": seqs, "notices_due": []}
        request_id = str(outcome.counts["request_id"])
        agreements = load()
        due: list[tuple[Any, list[str], dict[str, object]]] = [
            (agreements[a], refs, {})
            for a, refs in sorted(plan.refs_by_agreement().items())
            if a in agreements
        ]
        prepared = prepare_notices("erasure", request_id, due, person_id)
        return {**outcome.counts, "ledger_seq": seqs, "notices_due": prepared}

    @task
    def compact(
        erased: dict[str, Any], params: dict[str, Any] | None = None, **context: Any
    ) -> dict[str, Any]:
        from sf_airflow.credentials import data_keys
        from sf_airflow.rights import acting_run, record
        from supporting_families.config import load_sources
        from supporting_families.rights import compaction, drop_plan, load_plan, notices_sent

        assert params is not None
        if erased.get("refused"):
            return {"request_id": erased["request_id"], "refused": 1}
        root, request_id = store(), str(erased["request_id"])
        plan = load_plan(root, request_id, data_keys())
        counts: dict[str, Any] = {}
        seqs: list[int] = []
        if plan is not None:  # None: an earlier try compacted and dropped it
            sources = {name: spec.file_glob for name, spec in load_sources().sources.items()}
            compacted = compaction(
                root, plan, str(params["case_reference"]), request_id, sources, run=acting_run(context)
            )
            counts, seqs = compacted.counts, record(compacted)
            drop_plan(root, request_id)
        notices_sent(root, request_id, "erased_and_notified")
        return {"request_id": request_id, "compaction": counts, "ledger_seq": seqs}

    erased = erase()
    # The notices go out before the bulk files are compacted, as Article 19 asks of every recipient.
    _notify("erasure", erased) >> compact(erased)  # type: ignore[arg-type]


@_rights_dag(
    "rights_restriction",
    params={
        "person_id": _person(),
        "case_reference": _case(),
        "kind": Param("restriction", type="string", enum=RESTRICTION_KINDS, title="Kind"),
        "starts_on": Param(type="string", format="date", title="Starts on"),
        "ends_on": Param(None, type=["null", "string"], format="date", title="Ends on (empty: until lifted)"),
        "lift": Param(
            False, type="boolean", title="Lift", description="End the case's restriction on ends_on."
        ),
    },
    doc_md="""
### Restriction, objection, consent withdrawal (UK GDPR Articles 7(3), 18 and 21)

"You have a right to withdraw consent and the right to object and restrict further processing of your data;
however, this may affect service delivery to you." From `starts_on`, the person is left out of every share
(the ONS comparison group included), of identification and of the merging of partners' answers; their
register entry is kept (storage). With `lift`, the case's restriction ends on `ends_on`.
""",
)
def rights_restriction() -> None:
    @task
    def record_decision(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from sf_airflow.rights import acting_run, record
        from supporting_families.rights import restriction

        assert params is not None
        with _refusals():
            outcome = restriction(
                store(),
                str(params["person_id"]),
                str(params["case_reference"]),
                str(params["kind"]),  # type: ignore[arg-type]
                _day(params, "starts_on"),
                _optional_day(params, "ends_on"),
                run=acting_run(context),
                lift=bool(params.get("lift")),
            )
        return {**outcome.counts, "ledger_seq": record(outcome)}

    record_decision()


@_rights_dag(
    "rights_portability",
    params={
        **_request(),
        "recipient_fingerprint": Param(
            type="string",
            pattern=FINGERPRINT_PATTERN,
            title="Receiving authority's OpenPGP fingerprint",
            description="Its public key must be in the council's keyring, certified after checking the "
            "fingerprint with the authority.",
        ),
    },
    doc_md="""
### Portability (UK GDPR Article 20)

"You have a right to have your data transferred or copied should you move to another authority." Exports
the person's data as JSON in the format of `docs/portability.schema.json`, encrypted to the receiving
authority's key (by fingerprint) and signed by the council, under `rights/<request id>/portability.json.gpg`.
""",
)
def rights_portability() -> None:
    @task
    def export(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from sf_airflow.credentials import data_keys
        from sf_airflow.rights import acting_run, agreements, openpgp, record
        from supporting_families.rights import portability

        assert params is not None
        with _refusals():
            outcome = portability(
                store(),
                str(params["person_id"]),
                str(params["case_reference"]),
                _day(params, "received_on"),
                str(params["recipient_fingerprint"]),
                agreements=agreements(),
                keys=data_keys(),
                openpgp=openpgp(),
                run=acting_run(context),
            )
        return {**outcome.counts, "ledger_seq": record(outcome)}

    export()


@_rights_dag(
    "rights_legal_hold",
    params={
        "scope": Param("person", type="string", enum=["person", "agreement"], title="Scope"),
        "subject_id": Param(type="string", pattern=PERSON_PATTERN, title="Person id or agreement id"),
        "reason": Param(type="string", enum=HOLD_REASONS, title="Reason"),
        "case_reference": _case(),
        "starts_on": Param(type="string", format="date", title="Starts on"),
        "lift_on": Param(None, type=["null", "string"], format="date", title="Lift on (empty: keep)"),
    },
    doc_md="""
### Legal hold (UK GDPR Article 17(3)(b) and (e))

A child protection plan, litigation, a police investigation or a statutory inquiry: data that must be kept.
Erasure refuses a held person (nothing is half-erased) and the retention sweep skips what is held.
""",
)
def rights_legal_hold() -> None:
    @task
    def hold(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from sf_airflow.rights import acting_run, record
        from supporting_families.rights import legal_hold

        assert params is not None
        with _refusals():
            outcome = legal_hold(
                store(),
                str(params["scope"]),  # type: ignore[arg-type]
                str(params["subject_id"]),
                str(params["reason"]),  # type: ignore[arg-type]
                str(params["case_reference"]),
                _day(params, "starts_on"),
                run=acting_run(context),
                lift_on=_optional_day(params, "lift_on"),
            )
        return {**outcome.counts, "ledger_seq": record(outcome)}

    hold()


@_rights_dag(
    "rights_deadlines",
    schedule="0 7 * * *",
    params={"warn_days": Param(7, type="integer", minimum=0, maximum=28, title="Warn this many days ahead")},
    doc_md="""
### Rights deadlines (UK GDPR Article 12(3))

Daily: every open request past its due date, or due within `warn_days`, is e-mailed to the data protection
officer through Airflow's SMTP notifier (connection `sf_smtp`; the address is its extra `to`). A DAG run's
own deadline alert is dropped when the run succeeds, so it cannot watch a request that stays open for
weeks: this check reads the request register instead. The mail holds request ids, rights, case references
and dates, never a person.
""",
)
def rights_deadlines() -> None:
    @task
    def check(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from datetime import UTC, datetime

        from sf_airflow.notify import email_dpo
        from supporting_families.registers import due_requests, read_requests

        warn = int((params or {}).get("warn_days", 7))
        due = due_requests(read_requests(store()), datetime.now(UTC).date(), warn)
        if due.any:
            email_dpo(
                context,
                subject=(
                    f"Rights requests: {len(due.overdue)} overdue, {len(due.due_soon)} due within {warn} days"
                ),
                rows=[{**r, "state": "overdue"} for r in due.overdue]
                + [{**r, "state": "due soon"} for r in due.due_soon],
            )
        return {"overdue": len(due.overdue), "due_soon": len(due.due_soon), "notified": int(due.any)}

    check()


rights_subject_access()
rights_rectification()
rights_erasure()
rights_restriction()
rights_portability()
rights_legal_hold()
rights_deadlines()
