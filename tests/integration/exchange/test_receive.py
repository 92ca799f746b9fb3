"""Receive against the real sshd and gpg: a share goes out, the partner answers, the council takes it in.

Each test shares a small register through the real pipeline (package, encrypt, deliver), plays the partner
by hand (decrypts with the partner key, writes a return signed by the partner key and encrypted to the
council key into the partner's outbox), then runs the receive steps. Every fault ends in the expected
class or in quarantine with nothing lost: the encrypted original is kept whole and the register is
untouched.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from upath import UPath

from supporting_families.audit import Ledger
from supporting_families.config.agreements import Agreement
from supporting_families.receive.deadlines import deadline_entry
from supporting_families.receive.fetch import fetch_returns
from supporting_families.receive.outbox import clear_outbox, record_collections, run_problems
from supporting_families.receive.process import process_return
from supporting_families.receive.quarantine import ReturnQuarantined, handled_state, quarantine_reason
from supporting_families.receive.records import ReturnPaths, RunInfo, return_file_name
from supporting_families.share.delivery import (
    Delivery,
    deliver_delivery,
    delivery_id_for,
    encrypt_delivery,
    package_delivery,
    share_view,
)
from supporting_families.store.io import read_parquet, sha256_of, store_root
from supporting_families.transport.openpgp import decrypt_and_verify, encrypt_and_sign
from tests.integration.platform_fixtures import PlatformEnv, set_deployment_env, small_register
from tests.store_walk import permission_problems

pytestmark = pytest.mark.integration

DWP, POLICE, ONS = "dwp-benefits-matching", "met-police-wider-help", "ons-evaluation"
TODAY = datetime.now(UTC).date()


def _register(n: int) -> pa.Table:
    return small_register(n, first_birth_year=2005)


@dataclass(frozen=True)
class Shared:
    agreement: Agreement
    store: UPath
    delivery: Delivery
    #: person_ref -> person_id, in the delivery's order
    refs: dict[str, str]
    plaintext_sha256: str
    rows: int

    @property
    def return_name(self) -> str:
        return return_file_name(self.agreement, self.delivery.delivery_id)

    def person(self, ref: str) -> str:
        return self.refs[ref]


@pytest.fixture
def store(tmp_path: Path) -> UPath:
    (tmp_path / "store").mkdir()
    return store_root((tmp_path / "store").as_uri())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as book:
        yield book


@pytest.fixture
def clean_boxes(platform_env: PlatformEnv) -> Iterator[None]:
    """Whatever a test leaves in the partners' folders (returns, set-aside entries) is removed after it."""
    folders = [platform_env.inbox(a) for a in platform_env.agreements.values()]
    folders += [platform_env.outbox(a) for a in platform_env.agreements.values()]
    before = {f: set(os.listdir(f)) for f in folders}
    yield
    for folder in folders:
        for name in set(os.listdir(folder)) - before[folder]:
            (folder / name).unlink()


def share(platform_env: PlatformEnv, store: UPath, agreement_id: str, n: int = 12) -> Shared:
    """A real delivery of ``n`` persons to the partner's inbox."""
    agreement = platform_env.agreements[agreement_id]
    persons = _register(n)
    cohort = pa.table({"person_id": persons["person_id"]})
    if agreement.cohort == "assessed_and_comparison":
        status = ["assessed_as_meeting_criteria" if i % 2 else "comparison" for i in range(n)]
        cohort = cohort.append_column("programme_status", pa.array(status))
    run_id = f"manual__receive-test-{uuid.uuid4().hex[:12]}"
    delivery = Delivery(store, agreement.id, delivery_id_for(agreement.id, run_id))
    view, refs = share_view(cohort, persons, platform_env.key(agreement), agreement)
    manifest = package_delivery(delivery, agreement, view, refs, run_id, keys=platform_env.data_keys)
    encrypt_delivery(
        delivery,
        agreement,
        council_fingerprint=platform_env.council_fingerprint,
        passphrase=platform_env.council_passphrase,
        gnupg_home=platform_env.secrets.gnupg_council,
    )
    deliver_delivery(delivery, agreement, platform_env.endpoint(agreement), keys=platform_env.data_keys)
    mapping = dict(zip(refs["person_ref"].to_pylist(), refs["person_id"].to_pylist(), strict=True))
    return Shared(agreement, store, delivery, mapping, manifest.plaintext_sha256, manifest.row_count)


def partner_collects(platform_env: PlatformEnv, shared: Shared, tmp_path: Path) -> str:
    """The partner takes the delivery from its inbox and decrypts it; the plaintext's SHA-256."""
    delivered = platform_env.inbox(shared.agreement) / shared.delivery.ciphertext.name
    plain = tmp_path / f"partner-{uuid.uuid4().hex[:6]}.csv"
    result = decrypt_and_verify(
        delivered,
        plain,
        expected_signer_fingerprint=platform_env.council_fingerprint,
        passphrase=None,
        gnupg_home=platform_env.secrets.gnupg_partners,
    )
    delivered.unlink()
    return result.plaintext_sha256


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """The partners' CSV: UTF-8, booleans true/false, ISO dates, empty cells for nulls."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            ["" if v is None else ("true" if v else "false") if isinstance(v, bool) else str(v) for v in row]
        )
    return out.getvalue().encode()


def send_return(
    platform_env: PlatformEnv,
    agreement: Agreement,
    name: str,
    content: bytes,
    tmp_path: Path,
    *,
    signer: str | None = None,
    tamper: bool = False,
    mtime: datetime | None = None,
) -> Path:
    """Sign with the partner's key (or ``signer``), encrypt to the council, drop into the outbox."""
    work = tmp_path / f"return-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    plain, cipher = work / "return.csv", work / "return.csv.gpg"
    plain.write_bytes(content)
    encrypt_and_sign(
        plain,
        cipher,
        recipient_fingerprint=platform_env.council_fingerprint,
        signer_fingerprint=signer or agreement.openpgp.partner_fingerprint,
        passphrase="",
        gnupg_home=platform_env.secrets.gnupg_partners,
    )
    data = bytearray(cipher.read_bytes())
    if tamper:
        data[len(data) // 2] ^= 0x01
    outbox = platform_env.outbox(agreement)
    partial = outbox / f".{name}.uploading"
    partial.write_bytes(bytes(data))
    if mtime is not None:
        os.utime(partial, (mtime.timestamp(), mtime.timestamp()))
    partial.rename(outbox / name)  # a partner publishes atomically, as the council does
    return outbox / name


def dwp_rows(shared: Shared) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for i, ref in enumerate(shared.refs):
        if i % 5 == 4:
            rows.append([ref, "address_not_confirmed", None, None])
        else:
            rows.append([ref, "matched", i % 2 == 0, i % 3 == 0])
    return rows


def police_rows(shared: Shared) -> list[list[Any]]:
    recent = TODAY - timedelta(days=40)
    rows = []
    for i, ref in enumerate(shared.refs):
        if i % 3 == 0:
            rows.append([ref, recent.isoformat(), None, (recent - timedelta(days=i)).isoformat()])
        elif i % 3 == 1:
            rows.append([ref, None, recent.isoformat(), None])
    return rows


def columns(agreement: Agreement) -> list[str]:
    return [c.name for c in agreement.returns.columns]


def receive(
    platform_env: PlatformEnv, shared: Shared, ledger: Ledger, *, delivery_id: str | None = "auto"
) -> list[Any]:
    """fetch + process every fetched file; the outcomes or the ReturnQuarantined raised."""
    key = delivery_id if delivery_id != "auto" else shared.delivery.delivery_id
    summary = fetch_returns(
        shared.store,
        shared.agreement,
        platform_env.endpoint(shared.agreement),
        ledger=ledger,
        delivery_id=key,
        backoff=0.1,
    )
    results: list[Any] = []
    for name in summary.fetched:
        try:
            results.append(
                process_return(
                    shared.store,
                    shared.agreement,
                    name,
                    gnupg_home=platform_env.secrets.gnupg_council,
                    passphrase=platform_env.council_passphrase,
                    ledger=ledger,
                    keys=platform_env.data_keys,
                )
            )
        except ReturnQuarantined as exc:
            results.append(exc)
    names = [*summary.fetched, *summary.quarantined]
    clear_outbox(shared.store, shared.agreement, platform_env.endpoint(shared.agreement), names)
    return results


def flags_dir(store: UPath) -> UPath:
    return store / "register" / "partner_flags"


# --- happy paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("agreement_id", [DWP, POLICE, ONS], ids=["dwp", "met-police", "ons"])
def test_a_partner_answer_is_taken_in_reconciled_and_merged(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
    agreement_id: str,
) -> None:
    shared = share(platform_env, store, agreement_id)
    agreement = shared.agreement
    endpoint = platform_env.endpoint(agreement)
    assert record_collections(store, agreement, endpoint, ledger=ledger)["awaiting_collection"] == 1
    received_sha = partner_collects(platform_env, shared, tmp_path)
    if agreement_id == DWP:
        content = render(columns(agreement), dwp_rows(shared))
    elif agreement_id == POLICE:
        content = render(columns(agreement), police_rows(shared))
    else:
        content = render(columns(agreement), [[shared.delivery.ciphertext.name, shared.rows, received_sha]])
    sent = send_return(platform_env, agreement, shared.return_name, content, tmp_path)
    original_sha = sha256_of(UPath(sent.as_uri()))

    [outcome] = receive(platform_env, shared, ledger)

    assert outcome.status == "accepted" and outcome.late is False
    paths = ReturnPaths(store, agreement.id, shared.return_name)
    assert sha256_of(paths.original) == original_sha, "the encrypted original is archived whole"
    assert not sent.exists(), "a return taken in is removed from the partner's outbox"
    assert json.loads(paths.reconciliation_path.read_text())["status"] == "accepted"
    assert record_collections(store, agreement, endpoint, ledger=ledger)["collected"] == 1
    assert record_collections(store, agreement, endpoint, ledger=ledger)["recorded_before"] == 1
    kinds = [e.kind for e in ledger.entries()]
    assert kinds.count("return_received") == kinds.count("reconciliation") == kinds.count("collection") == 1
    assert ledger.verify().ok

    if agreement_id == ONS:
        assert outcome.counts == {"rows_received": shared.rows, "manifest_rows": shared.rows}
        assert not flags_dir(store).exists(), "a receipt adds no flags"
        return
    refs = list(shared.refs)
    classified = read_parquet(paths.classified_path)
    assert classified.num_rows == shared.rows
    written = read_parquet(paths.flags_path)
    assert set(pc.unique(written["file_sha256"]).to_pylist()) == {original_sha}
    assert set(pc.unique(written["agreement_id"]).to_pylist()) == {agreement.id}
    # Every row is dated by the delivery the return answers, and every matched person has one answer
    # marker (null sub-criterion) beside any flags; the outcome counts the flags only.
    delivered_at = datetime.fromisoformat(str((shared.delivery.receipt() or {})["delivered_at"]))
    assert set(written["answered_at"].to_pylist()) == {delivered_at}
    markers = written.filter(pc.is_null(written["sub_criterion"]))
    matched = classified.filter(pc.equal(classified["class"].cast(pa.string()), "matched"))
    assert sorted(markers["person_id"].to_pylist()) == sorted(matched["person_id"].to_pylist())
    flags = written.filter(pc.is_valid(written["sub_criterion"]))
    assert outcome.flags_merged == flags.num_rows
    got = sorted(zip(flags["person_id"].to_pylist(), flags["sub_criterion"].to_pylist(), strict=True))
    if agreement_id == DWP:
        assert outcome.counts["matched"] + outcome.counts["rejected_by_partner"] == shared.rows
        expected = []
        for i, ref in enumerate(refs):
            if i % 5 != 4:
                expected += [(shared.person(ref), "out_of_work_benefits")] * (i % 2 == 0)
                expected += [(shared.person(ref), "disability_benefits")] * (i % 3 == 0)
        assert got == sorted(expected)
        assert flags["evidence_date"].null_count == flags.num_rows
    else:
        # The police list only people they hold something for: the rest are no trace, by design.
        assert outcome.counts["no_trace"] == sum(1 for i in range(shared.rows) if i % 3 == 2)
        expected = []
        for i, ref in enumerate(refs):
            if i % 3 == 0:
                expected += [
                    (shared.person(ref), "proven_offence_or_caution"),
                    (shared.person(ref), "asb_intervention"),
                ]
            elif i % 3 == 1:
                expected += [(shared.person(ref), "proven_offence_or_caution")]
        assert got == sorted(expected)
        assert flags["evidence_date"].null_count == 0

    # Taking the same file in again changes nothing.
    again = process_return(
        store,
        agreement,
        shared.return_name,
        gnupg_home=platform_env.secrets.gnupg_council,
        passphrase=platform_env.council_passphrase,
        ledger=ledger,
        keys=platform_env.data_keys,
    )
    assert again.status == "already_accepted" and again.counts == outcome.counts
    assert [e.kind for e in ledger.entries()].count("reconciliation") == 1


def test_every_reference_lands_in_exactly_one_class(
    platform_env: PlatformEnv, store: UPath, ledger: Ledger, tmp_path: Path, clean_boxes: None
) -> None:
    shared = share(platform_env, store, DWP, n=12)
    partner_collects(platform_env, shared, tmp_path)
    refs = list(shared.refs)
    never_sent = ["v1-" + "e" * 32, "v1-" + "f" * 32]
    rows: list[list[Any]] = [
        *[[r, "matched", True, False] for r in refs[:5]],  # 5 matched
        *[[r, "address_not_confirmed", None, None] for r in refs[5:7]],  # 2 rejected by DWP
        [refs[0], "matched", True, False],  # a duplicate agreeing with its first row
        [refs[1], "address_not_confirmed", None, None],  # a duplicate contradicting it
        *[[r, "matched", True, True] for r in never_sent],  # 2 never sent
    ]  # refs[7:] (5) are missing: no trace
    send_return(
        platform_env, shared.agreement, shared.return_name, render(columns(shared.agreement), rows), tmp_path
    )

    [outcome] = receive(platform_env, shared, ledger)

    counts = outcome.counts
    assert {
        k: counts[k] for k in ("matched", "rejected_by_partner", "no_trace", "unexpected", "duplicate")
    } == {
        "matched": 5,
        "rejected_by_partner": 2,
        "no_trace": 5,
        "unexpected": 2,
        "duplicate": 2,
    }
    assert counts["conflicting_duplicates"] == 1
    # The invariant: sent references once each, returned rows once each.
    assert counts["matched"] + counts["rejected_by_partner"] + counts["no_trace"] == counts["sent"] == 12
    assert (
        counts["matched"] + counts["rejected_by_partner"] + counts["unexpected"] + counts["duplicate"] == 11
    )
    classified = read_parquet(ReturnPaths(store, DWP, shared.return_name).classified_path)
    assert classified.num_rows == 12 + 2 + 2
    by_class = {c: set() for c in ("matched", "rejected_by_partner", "no_trace", "unexpected", "duplicate")}
    for row in classified.to_pylist():
        by_class[row["class"]].add(row["reference"])
    assert by_class["no_trace"] == set(refs[7:]) and by_class["unexpected"] == set(never_sent)
    # Only the first row of each matched reference is merged; unexpected references never are.
    flags = read_parquet(ReturnPaths(store, DWP, shared.return_name).flags_path)
    answered = flags.filter(pc.is_null(flags["sub_criterion"]))  # one answer marker per matched person
    assert sorted(answered["person_id"].to_pylist()) == sorted(shared.person(r) for r in refs[:5])
    flagged = flags.filter(pc.is_valid(flags["sub_criterion"]))
    assert sorted(flagged["person_id"].to_pylist()) == sorted(shared.person(r) for r in refs[:5])
    assert outcome.flags_merged == 5
    assert counts["match_rate_ppm"] == 5 * 1_000_000 // 12

    # A second, different answer under the same name cannot replace the one taken in: it is quarantined as
    # it is fetched, taken out of the outbox (no loop), and the register keeps the first answer.
    second = render(columns(shared.agreement), [[r, "matched", False, False] for r in refs])
    sent = send_return(platform_env, shared.agreement, shared.return_name, second, tmp_path)
    assert receive(platform_env, shared, ledger) == []
    assert not sent.exists()
    reason = quarantine_reason(store, shared.agreement, shared.return_name)
    assert reason is not None and reason["rule"] == "already_received"
    assert read_parquet(ReturnPaths(store, DWP, shared.return_name).flags_path).equals(flags)
    problems = run_problems(store, shared.agreement, [], quarantined=[shared.return_name])
    assert problems and "already_received" in problems[0]


# --- bad files -----------------------------------------------------------------------------------------


def _bad_rows(shared: Shared) -> bytes:
    refs = list(shared.refs)
    rows = [[r, "matched", True, False] for r in refs]
    rows[2][2] = "yes"  # row 4: not a boolean
    rows[5][1] = "maybe"  # row 7: not an allowed status
    rows[8][0] = "P000008"  # row 10: an internal id instead of a reference
    return render(columns(shared.agreement), rows)


@pytest.mark.parametrize(
    ("fault", "rule", "rows"),
    [
        ("ragged", "ragged_rows", [4]),
        ("row_rules", "row_rules", [4, 7, 10]),
        ("wrong_signer", "signature", []),
        ("tampered", None, []),
        ("unknown_delivery", "unknown_delivery", []),
    ],
)
def test_a_bad_return_is_quarantined_whole_and_a_corrected_one_is_taken_in(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
    fault: str,
    rule: str | None,
    rows: list[int],
) -> None:
    shared = share(platform_env, store, DWP)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    good = render(columns(agreement), dwp_rows(shared))
    name, delivery_id = shared.return_name, shared.delivery.delivery_id
    kwargs: dict[str, Any] = {}
    content = good
    if fault == "ragged":
        lines = good.decode().splitlines()
        lines[3] += ",surplus"
        content = ("\n".join(lines) + "\n").encode()
    elif fault == "row_rules":
        content = _bad_rows(shared)
    elif fault == "wrong_signer":
        kwargs["signer"] = platform_env.agreements[POLICE].openpgp.partner_fingerprint
    elif fault == "tampered":
        kwargs["tamper"] = True
    elif fault == "unknown_delivery":
        delivery_id = "d" + "a" * 16
        name = return_file_name(agreement, delivery_id)
    sent = send_return(platform_env, agreement, name, content, tmp_path, **kwargs)
    original_sha = sha256_of(UPath(sent.as_uri()))

    [result] = receive(platform_env, shared, ledger, delivery_id=delivery_id)

    assert isinstance(result, ReturnQuarantined)
    if rule is None:
        assert result.rule in ("integrity", "signature", "decryption")
    else:
        assert result.rule == rule
    message = str(result)
    assert name in message and repr(result.rule) in message
    for row in rows:
        assert str(row) in message
    assert "P000008" not in message and "maybe" not in message, "no value from the file in the error"
    # Nothing lost, the register untouched, the archive of accepted returns empty.
    folder = store / "quarantine" / "returns" / agreement.id / name
    assert sha256_of(folder / name) == original_sha
    reason = json.loads((folder / "reason.json").read_text())
    assert reason["rule"] == result.rule and reason["row_numbers"] == rows
    report = list(csv.DictReader(io.StringIO((folder / "report.csv").read_text())))
    assert sorted({int(r["row_number"]) for r in report if r["row_number"]}) == rows
    assert set(report[0]) == {"file", "row_number", "column", "rule"}
    assert not flags_dir(store).exists()
    assert not ReturnPaths(store, agreement.id, name).original.exists()
    assert not sent.exists(), "a quarantined file is moved out of the partner's outbox: no loop"
    assert [e.kind for e in ledger.entries()].count("quarantine") == 1
    assert handled_state(store, agreement, name)[0] == "quarantined"
    assert run_problems(store, agreement, [name]), "the run fails visibly"
    # Processing it again raises the same quarantine (a retried task stays failed).
    with pytest.raises(ReturnQuarantined, match=result.rule):
        process_return(
            store,
            agreement,
            name,
            gnupg_home=platform_env.secrets.gnupg_council,
            passphrase=platform_env.council_passphrase,
            ledger=ledger,
            keys=platform_env.data_keys,
        )
    if fault == "unknown_delivery":
        return

    # The partner sends a corrected file under the same name: taken in normally.
    send_return(platform_env, agreement, name, good, tmp_path)
    [outcome] = receive(platform_env, shared, ledger)
    assert outcome.status == "accepted"
    assert handled_state(store, agreement, name)[0] == "accepted"
    assert run_problems(store, agreement, [name]) == []
    assert sha256_of(folder / name) == original_sha, "the bad file stays in quarantine"
    assert ledger.verify().ok
    # Deliveries, returns, quarantine and partner flags are personal data: owner only, and every file
    # belongs to an area of store/layout.py.
    assert permission_problems(Path(store.path)) == []


def test_an_ons_receipt_that_does_not_match_the_manifest_is_quarantined(
    platform_env: PlatformEnv, store: UPath, ledger: Ledger, tmp_path: Path, clean_boxes: None
) -> None:
    shared = share(platform_env, store, ONS)
    partner_collects(platform_env, shared, tmp_path)
    receipt = [[shared.delivery.ciphertext.name, shared.rows - 1, "a" * 64]]
    send_return(
        platform_env,
        shared.agreement,
        shared.return_name,
        render(columns(shared.agreement), receipt),
        tmp_path,
    )
    [result] = receive(platform_env, shared, ledger)
    assert isinstance(result, ReturnQuarantined) and result.rule == "receipt_mismatch"
    assert "rows_received" in str(result) and "sha256" in str(result)


def test_hostile_names_are_refused_set_aside_and_recorded(
    platform_env: PlatformEnv, store: UPath, ledger: Ledger, tmp_path: Path, clean_boxes: None
) -> None:
    shared = share(platform_env, store, DWP)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    outbox = platform_env.outbox(agreement)
    content = render(columns(agreement), dwp_rows(shared))
    send_return(platform_env, agreement, "dwp-return-..dabcdefghijklmnop.csv.gpg", content, tmp_path)
    send_return(platform_env, agreement, "dwp-return-\x1b[31md0.csv.gpg", content, tmp_path)
    (outbox / shared.return_name).symlink_to(outbox.parent / "inbox")  # a link where the return should be
    # A fetch of every return (a manual run) and a fetch of this delivery's return both see them.
    summary = fetch_returns(store, agreement, platform_env.endpoint(agreement), ledger=ledger, backoff=0.1)
    assert summary.fetched == () and summary.refused == {"unsafe_name": 2, "not_regular_file": 1}
    remaining = os.listdir(outbox)
    assert not [n for n in remaining if n.startswith("dwp-return-")], "set aside: the sensor will not loop"
    assert len([n for n in remaining if n.startswith(".sf-refused-")]) == 3, "nothing lost"
    entries = [e for e in ledger.entries() if e.kind == "quarantine"]
    assert len(entries) == 3
    assert sorted(e.file_name for e in entries) == sorted(["unsafe-name", "unsafe-name", shared.return_name])
    reasons = list((store / "quarantine" / "returns" / agreement.id).iterdir())
    assert len(reasons) == 3 and all((r / "reason.json").exists() for r in reasons)
    assert run_problems(store, agreement, [], refused=3)
    assert ledger.verify().ok


# --- deadlines -----------------------------------------------------------------------------------------


def test_a_late_return_is_taken_in_with_a_deadline_alert(
    platform_env: PlatformEnv,
    store: UPath,
    ledger: Ledger,
    tmp_path: Path,
    clean_boxes: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = share(platform_env, store, POLICE)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    # The delivery went out 13 and a half days ago; the police's deadline is 10 days.
    receipt = json.loads(shared.delivery.receipt_path.read_text())
    receipt["delivered_at"] = (datetime.now(UTC) - timedelta(days=13, hours=12)).isoformat()
    shared.delivery.receipt_path.write_text(json.dumps(receipt))
    send_return(
        platform_env, agreement, shared.return_name, render(columns(agreement), police_rows(shared)), tmp_path
    )

    with caplog.at_level(logging.ERROR, logger="supporting_families.receive"):
        [outcome] = receive(platform_env, shared, ledger)

    assert outcome.status == "accepted" and outcome.late is True and outcome.days_after_delivery == 13
    assert any(
        "DEADLINE ALERT" in r.getMessage() and shared.return_name in r.getMessage() for r in caplog.records
    )
    received = next(e for e in ledger.entries() if e.kind == "return_received")
    assert received.details["late"] is True and received.details["days_after_delivery"] == 13
    assert received.details["deadline_days"] == 10
    reconciliation = next(e for e in ledger.entries() if e.kind == "reconciliation")
    assert reconciliation.details["late"] is True

    # A run that stops waiting records that no return came (the sensor's timeout callback does this).
    run = RunInfo(dag_id="receive__met_police_wider_help", run_id="manual__late", task_id="wait_for_return")
    for _ in range(2):
        ledger.append(
            deadline_entry(
                agreement,
                outcome="no_return",
                occurred_at=datetime.now(UTC),
                run=run,
                delivery_id=shared.delivery.delivery_id,
            )
        )
    missed = [e for e in ledger.entries() if e.details.get("outcome") == "no_return"]
    assert len(missed) == 1 and missed[0].details["expected_file"] == shared.return_name
    assert ledger.verify().ok


# --- the sensor's trigger pins the host key -----------------------------------------------------------


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


@pytest.mark.parametrize("pin", ["server", "other", "none"])
def test_the_deferrable_sensors_trigger_accepts_only_the_pinned_host_key(
    platform_env: PlatformEnv,
    sftp_conn_fields: Any,
    airflow_connection: Any,
    isolated_home: Path,
    tmp_path: Path,
    clean_boxes: None,
    pin: str,
) -> None:
    # What receive_sensor.PinnedSFTPSensor relies on: the provider's SFTPTrigger (asyncssh) trusts the
    # connection's host_key extra and nothing else (no ~/.ssh/known_hosts here: an empty $HOME).
    import asyncio

    from airflow.providers.sftp.triggers.sftp import SFTPTrigger

    from sf_demo.sftp_server import ensure_ssh_keypair

    agreement = platform_env.agreements[DWP]
    name = return_file_name(agreement, "d" + "h" * 16)
    (platform_env.outbox(agreement) / name).write_bytes(b"x")
    host_key = {
        "server": platform_env.server.host_public_key,
        "other": ensure_ssh_keypair(tmp_path / "other_host_key", "not the server"),
        "none": None,
    }[pin]
    conn_id = airflow_connection("sf_test_trigger", **sftp_conn_fields(host_key))
    trigger = SFTPTrigger(
        path=agreement.sftp.remote_outbox, file_pattern=agreement.returns.file_pattern, sftp_conn_id=conn_id
    )
    event = asyncio.run(asyncio.wait_for(_first_event(trigger), timeout=30))
    if pin == "server":
        assert event["status"] == "success" and name in event["message"]
    else:
        assert event["status"] == "error" and "not trusted" in event["message"]


# --- the receive DAG, run by dag.test() against the real sshd and gpg ------------------------------------


DAGS = Path(__file__).resolve().parents[3] / "dags"


@pytest.fixture
def airflow_env(
    platform_env: PlatformEnv, store: UPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """What a deployment provides: store and ledger URLs, fingerprints, every connection (as env vars)."""
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    set_deployment_env(platform_env, monkeypatch, str(store), ledger_url)
    return ledger_url


def _states(run: Any) -> dict[str, str]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
        for ti in run.get_task_instances()
    }


def test_the_receive_dag_takes_in_a_return_and_fails_visibly_on_a_bad_one(
    platform_env: PlatformEnv,
    store: UPath,
    tmp_path: Path,
    clean_boxes: None,
    airflow_env: str,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "receive_agreements.py"), safe_mode=False)
    assert bag.import_errors == {}
    dag = bag.dags["receive__dwp_benefits_matching"]
    # Airflow 3.3.2's dag.test() cannot finish a run of a DAG with a DeadlineAlert (DagRun.update_state
    # looks the alert up by the serialized dict instead of its id). Deadlines are the scheduler's business
    # and are tested in tests/dags/test_receive_dags.py; here the alert is left out.
    dag.deadline = None

    shared = share(platform_env, store, DWP)
    partner_collects(platform_env, shared, tmp_path)
    agreement = shared.agreement
    send_return(
        platform_env, agreement, shared.return_name, render(columns(agreement), dwp_rows(shared)), tmp_path
    )

    run = dag.test(run_conf={"delivery_id": shared.delivery.delivery_id})

    assert _states(run) == {
        "expect_return": "success",
        "wait_for_return": "success",
        "record_collection": "success",
        "fetch": "success",
        "process[0]": "success",
        "finish": "success",
        "verdict": "success",
    }
    assert str(run.state) == "success"
    assert ReturnPaths(store, agreement.id, shared.return_name).flags_path.exists()
    assert not (platform_env.outbox(agreement) / shared.return_name).exists()
    with Ledger(airflow_env) as book:
        kinds = sorted(e.kind for e in book.entries())
        assert kinds == ["collection", "reconciliation", "return_received"]
        assert all(e.dag_id == dag.dag_id and e.run_id == run.run_id for e in book.entries())
    flags_before = sorted(p.name for p in flags_dir(store).iterdir())

    # Lineage: the return came from the partner's outbox (its columns) into the register's partner flags,
    # under the agreement and partner; the return's file name, the partner's choice, is in no event.
    from tests.lineage_events import completed, lineage_events, schema

    run_events = lineage_events(dag.dag_id, run.run_id)
    [processed] = completed(run_events, "process")
    [outbox] = processed["inputs"]
    assert outbox["name"] == agreement.sftp.remote_outbox
    assert schema(outbox) == [c.name for c in agreement.returns.columns]
    [flags] = processed["outputs"]
    assert flags["name"].endswith("register/partner_flags")
    facets = processed["run"]["facets"]
    assert facets["supportingFamilies_agreement"]["agreementId"] == agreement.id
    assert facets["supportingFamilies_return"]["deliveryId"] == shared.delivery.delivery_id
    assert shared.return_name not in json.dumps(run_events)

    # A bad file for the next delivery: quarantined, the run fails visibly, the register is untouched.
    bad = share(platform_env, store, DWP)
    partner_collects(platform_env, bad, tmp_path)
    send_return(platform_env, agreement, bad.return_name, _bad_rows(bad), tmp_path)

    failed = dag.test(run_conf={"delivery_id": bad.delivery.delivery_id})

    states = _states(failed)
    assert states["process[0]"] == "failed" and states["verdict"] == "failed"
    assert states["finish"] == "skipped", "nothing taken in: no asset event for identification"
    assert str(failed.state) == "failed"
    assert sorted(p.name for p in flags_dir(store).iterdir()) == flags_before
    assert handled_state(store, agreement, bad.return_name)[0] == "quarantined"
    assert not (platform_env.outbox(agreement) / bad.return_name).exists(), "moved out of the way"

    # A return under a hostile name wakes the run, is refused and set aside, and the run fails at once.
    hostile = share(platform_env, store, DWP)
    partner_collects(platform_env, hostile, tmp_path)
    hostile_name = hostile.return_name.replace(".csv.gpg", "..csv.gpg")
    send_return(
        platform_env, agreement, hostile_name, render(columns(agreement), dwp_rows(hostile)), tmp_path
    )

    refused = dag.test(run_conf={"delivery_id": hostile.delivery.delivery_id})

    states = _states(refused)
    assert states["wait_for_return"] == "success" and states["fetch"] == "success"
    assert states["verdict"] == "failed" and str(refused.state) == "failed"
    assert not [n for n in os.listdir(platform_env.outbox(agreement)) if n.startswith("dwp-return-")]
    with Ledger(airflow_env) as book:
        assert [e.file_name for e in book.entries() if e.kind == "quarantine"][-1] == "unsafe-name"
