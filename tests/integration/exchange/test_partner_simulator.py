"""The partner simulator against the real sshd folders and real gpg: it collects, verifies, answers, faults.

The council's side is the platform's own share (package, encrypt, deliver over SFTP) of a small synthetic
borough's persons; the partner's answers are read back with the council's key and checked against the
generator's partner truth. Assertion messages carry counts and pseudonymous references only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from upath import UPath

from sf_demo.partner_simulator import Fault, SimulationReport, simulate
from sf_demo.partner_simulator.__main__ import main as cli_main
from sf_demo.partner_simulator.answers import NOT_CONFIRMED_RATE, dwp_answer, read_delivery, render_csv
from sf_demo.partner_simulator.keys import outsider_signer
from sf_demo.partner_simulator.simulator import (
    ANSWERED_SUFFIX,
    REFUSED_SUFFIX,
    hostile_names,
    return_file_name,
)
from sf_demo.synthetic import Borough, generate_borough
from sf_demo.synthetic.dates import window_start
from supporting_families.config.agreements import Agreement
from supporting_families.share.delivery import (
    Delivery,
    deliver_delivery,
    delivery_id_for,
    encrypt_delivery,
    package_delivery,
    share_view,
)
from supporting_families.store.io import read_parquet, store_root, write_bytes_atomic, write_parquet
from supporting_families.store.schemas import REGISTER_SCHEMA
from supporting_families.transport.openpgp import (
    IntegrityCheckFailed,
    UnknownSigner,
    WrongSigner,
    decrypt_and_verify,
    encrypt_and_sign,
)
from supporting_families.transport.sftp import fetch
from tests.integration.platform_fixtures import PlatformEnv

pytestmark = pytest.mark.integration

AS_OF = date(2026, 3, 31)
SEED = 11
DWP, POLICE, ONS = "dwp-benefits-matching", "met-police-wider-help", "ons-evaluation"

Rows = list[tuple[str, ...]]


# -- the synthetic borough and the partner truth -----------------------------------------------------------


@pytest.fixture(scope="module")
def borough() -> Borough:
    return generate_borough(2000, seed=SEED, as_of=AS_OF)


@pytest.fixture(scope="module")
def register(borough: Borough) -> pa.Table:
    """The borough's true persons as the council's register (clean data: every partner can match)."""
    return borough.persons.select(REGISTER_SCHEMA.names).cast(REGISTER_SCHEMA)


@pytest.fixture(scope="module")
def demo_store(borough: Borough, tmp_path_factory: pytest.TempPathFactory) -> UPath:
    """A store with what demo_synthetic_borough writes for the simulator: partner truth and its date."""
    store = store_root(tmp_path_factory.mktemp("demo-store").as_uri())
    write_parquet(borough.dwp_benefits, store / "demo" / "partner_truth" / "dwp_benefits.parquet")
    write_parquet(borough.police_events, store / "demo" / "partner_truth" / "met_police_events.parquet")
    manifest = {"as_of": AS_OF.isoformat(), "seed": SEED}
    write_bytes_atomic(store / "demo" / "truth" / "manifest.json", json.dumps(manifest).encode())
    return store


@pytest.fixture(scope="module")
def partner_truth(demo_store: UPath) -> UPath:
    return demo_store / "demo" / "partner_truth"


# -- keeping the session server's folders to this test -----------------------------------------------------


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


@pytest.fixture(autouse=True)
def own_folders(platform_env: PlatformEnv, tmp_path: Path) -> Iterator[None]:
    """Each test starts with empty partner folders and leaves them as it found them: anything another test
    left is held aside and put back; whatever this test made (returns, symlinks, deliveries) is removed."""
    held = tmp_path / "held-aside"
    moved: list[tuple[Path, Path]] = []
    folders = [
        f for a in platform_env.agreements.values() for f in (platform_env.inbox(a), platform_env.outbox(a))
    ]
    for i, folder in enumerate(folders):
        for j, entry in enumerate(_entries(folder)):
            target = held / f"{i}-{j}"
            held.mkdir(exist_ok=True)
            os.rename(entry, target)
            moved.append((entry, target))
    try:
        yield
    finally:
        for folder in folders:
            for entry in _entries(folder):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        for original, target in moved:
            os.rename(target, original)


# -- the council's side: a real share ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    agreement: Agreement
    delivery: Delivery
    #: person_id -> person_ref sent in this delivery
    refs: dict[str, str]
    ciphertext_name: str
    plaintext_sha256: str
    row_count: int

    @property
    def delivery_id(self) -> str:
        return self.delivery.delivery_id

    @property
    def return_name(self) -> str:
        return return_file_name(self.agreement, self.delivery_id)


Share = Callable[..., Sent]
Partner = Callable[..., SimulationReport]


@pytest.fixture
def share(platform_env: PlatformEnv, register: pa.Table, tmp_path: Path) -> Share:
    """``share(agreement_id, person_ids, run)``: package, encrypt and deliver to the partner's inbox."""
    store = store_root((tmp_path / "council-store").as_uri())

    def run(agreement_id: str, person_ids: list[str], run: str = "first") -> Sent:
        agreement = platform_env.agreements[agreement_id]
        cohort: dict[str, list[str]] = {"person_id": person_ids}
        if agreement.sends("programme_status"):
            cohort["programme_status"] = [
                "assessed_as_meeting_criteria" if i % 3 else "comparison_group"
                for i in range(len(person_ids))
            ]
        run_id = f"manual__{agreement_id}__{run}"
        delivery = Delivery(store, agreement.id, delivery_id_for(agreement.id, run_id))
        view, refs = share_view(pa.table(cohort), register, platform_env.key(agreement), agreement)
        package_delivery(delivery, agreement, view, refs, run_id, keys=platform_env.data_keys)
        manifest = encrypt_delivery(
            delivery,
            agreement,
            council_fingerprint=platform_env.council_fingerprint,
            passphrase=platform_env.council_passphrase,
            gnupg_home=platform_env.secrets.gnupg_council,
        )
        assert (
            deliver_delivery(
                delivery, agreement, platform_env.endpoint(agreement), keys=platform_env.data_keys
            )["status"]
            == "delivered"
        )
        mapping = dict(zip(refs["person_id"].to_pylist(), refs["person_ref"].to_pylist(), strict=True))
        return Sent(
            agreement,
            delivery,
            mapping,
            str(manifest.ciphertext_name),
            manifest.plaintext_sha256,
            manifest.row_count,
        )

    return run


@pytest.fixture
def partner(platform_env: PlatformEnv, partner_truth: UPath, tmp_path: Path) -> Partner:
    """``partner(agreement_id, faults=..., seed=...)``: one simulator run with the generated partner keys."""

    def run(agreement_id: str, faults: frozenset[Fault] = frozenset(), seed: int = SEED) -> SimulationReport:
        agreement = platform_env.agreements[agreement_id]
        return simulate(
            agreement,
            inbox=platform_env.inbox(agreement),
            outbox=platform_env.outbox(agreement),
            collected_dir=tmp_path / "collected" / agreement_id,
            partner_gnupg_home=platform_env.secrets.gnupg_partners,
            partner_fingerprint=agreement.openpgp.partner_fingerprint,
            council_fingerprint=platform_env.council_fingerprint,
            partner_truth=partner_truth,
            as_of=AS_OF,
            faults=faults,
            seed=seed,
        )

    return run


def council_decrypts(platform_env: PlatformEnv, agreement: Agreement, ciphertext: Path, plain: Path) -> None:
    """The council's view: decrypt with the COUNCIL key, verify the agreement's pinned partner fingerprint."""
    decrypt_and_verify(
        ciphertext,
        plain,
        expected_signer_fingerprint=agreement.openpgp.partner_fingerprint,
        passphrase=platform_env.council_passphrase,
        gnupg_home=platform_env.secrets.gnupg_council,
    )


def open_return(platform_env: PlatformEnv, sent: Sent, tmp_path: Path) -> tuple[tuple[str, ...], Rows]:
    """The return to ``sent`` as the council reads it (``council_decrypts``): its header and its rows."""
    path = platform_env.outbox(sent.agreement) / sent.return_name
    assert path.is_file() and not path.is_symlink(), "the return is not a regular file under its name"
    plain = tmp_path / f"{sent.return_name}.csv"
    council_decrypts(platform_env, sent.agreement, path, plain)
    rows = list(csv.reader(io.StringIO(plain.read_text(encoding="utf-8")), strict=True))
    return tuple(rows[0]), [tuple(r) for r in rows[1:]]


def return_columns(agreement: Agreement) -> tuple[str, ...]:
    return tuple(c.name for c in agreement.returns.columns)


def collected_dir(tmp_path: Path, sent: Sent) -> Path:
    return tmp_path / "collected" / sent.agreement.id


def personal_values(register: pa.Table, person_ids: list[str]) -> set[str]:
    """Every personal value of these persons that could leak into a log line (three characters or more)."""
    chosen = register.filter(pc.is_in(register["person_id"], pa.array(person_ids)))
    values: set[str] = set()
    for name in ("given_name", "family_name", "address_line_1", "address_line_2", "postcode", "uprn"):
        values.update(str(v) for v in chosen[name].to_pylist() if v and len(str(v)) >= 3)
    values.update(d.isoformat() for d in chosen["date_of_birth"].to_pylist() if d)
    return values


def assert_no_personal_values(text: str, values: set[str]) -> None:
    leaked = sum(1 for v in values if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text))
    assert leaked == 0, f"{leaked} personal values appear in the simulator's log"


# -- DWP ---------------------------------------------------------------------------------------------------


def _dwp_households(borough: Borough) -> tuple[dict[str, tuple[bool, bool]], set[str]]:
    """Independently of the simulator: per UPRN, (out-of-work, disability) benefit in payment on AS_OF."""
    truth = borough.dwp_benefits.to_pylist()
    flags: dict[str, tuple[bool, bool]] = {}
    for row in truth:
        paid = row["award_start_date"] <= AS_OF
        oow, dis = flags.get(row["uprn"], (False, False))
        flags[row["uprn"]] = (
            oow or (paid and row["out_of_work"]),
            dis or (paid and row["disability_related"]),
        )
    return flags, set(flags)


def test_dwp_answers_households_from_the_truth_and_collects_once(
    platform_env: PlatformEnv,
    borough: Borough,
    register: pa.Table,
    share: Share,
    partner: Partner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    person_ids = register["person_id"].to_pylist()
    sent = share(DWP, person_ids)
    inbox = platform_env.inbox(sent.agreement)
    assert (inbox / sent.ciphertext_name).is_file()

    with caplog.at_level("DEBUG"):
        report = partner(DWP)

    # Collection: the delivery left the inbox for the partner's private folder, byte for byte.
    assert not (inbox / sent.ciphertext_name).exists(), "the delivery was not collected"
    collected = collected_dir(tmp_path, sent) / sent.ciphertext_name
    same_file = collected.is_file() and collected.read_bytes() == sent.delivery.archived_ciphertext(
        platform_env.data_keys
    )
    assert same_file, "the collected file is not the delivery"
    assert (report.deliveries_collected, report.deliveries_answered, report.deliveries_refused) == (1, 1, 0)

    columns, rows = open_return(platform_env, sent, tmp_path)
    assert columns == return_columns(sent.agreement)
    returned = [r[0] for r in rows]
    assert len(returned) == len(set(returned)), "a reference is returned twice"
    assert set(returned) <= set(sent.refs.values()), "the return refers to references that were not sent"

    # Agreement with the partner truth: household semantics by UPRN.
    households, known = _dwp_households(borough)
    uprn_of = dict(zip(person_ids, register["uprn"].to_pylist(), strict=True))
    person_of = {ref: pid for pid, ref in sent.refs.items()}
    by_ref = {r[0]: r for r in rows}
    wrong_flags = [
        ref
        for ref, (_, status, oow, dis) in by_ref.items()
        if status == "matched"
        and (oow, dis) != tuple("true" if f else "false" for f in households[uprn_of[person_of[ref]]])
    ]
    assert not wrong_flags, f"{len(wrong_flags)} matched references disagree with DWP's truth"
    unknown_matched = [
        r for r, row in by_ref.items() if row[1] == "matched" and uprn_of[person_of[r]] not in known
    ]
    assert not unknown_matched, "matched at an address DWP holds nobody at"
    not_confirmed = [r for r, row in by_ref.items() if row[1] == "address_not_confirmed"]
    assert all(by_ref[r][2:] == ("", "") for r in not_confirmed), "flags given for an unconfirmed address"
    absent = set(sent.refs.values()) - set(returned)
    assert all(uprn_of[person_of[r]] not in known for r in absent), "a reference at a known address is absent"
    # Everyone the truth says is paid such a benefit is flagged, unless their address was not confirmed.
    truth = borough.person_criteria
    for sub, column in (("out_of_work_benefits", 2), ("disability_benefits", 3)):
        claimants = truth.filter(
            pc.and_(pc.equal(truth["sub_criterion"], sub), pc.equal(truth["source"], "dwp"))
        )
        refs = {sent.refs[p] for p in claimants["person_id"].to_pylist()} - set(not_confirmed)
        missed = [r for r in refs if r not in by_ref or by_ref[r][column] != "true"]
        assert refs and not missed, f"{sub}: {len(missed)} of {len(refs)} claimants not flagged"
    # Realistic shares: a few percent unconfirmed, confirmed "no benefit" rows, and absent references.
    assert 0.5 * NOT_CONFIRMED_RATE < len(not_confirmed) / len(person_ids) < 2 * NOT_CONFIRMED_RATE
    assert any(row[1:] == ("matched", "false", "false") for row in rows)
    assert absent
    assert (report.references_matched, report.references_rejected, report.references_absent) == (
        len(rows) - len(not_confirmed),
        len(not_confirmed),
        len(absent),
    )
    assert report.rows_received == len(person_ids) and report.rows_returned == len(rows)
    assert_no_personal_values(caplog.text, personal_values(register, person_ids))

    # A second run answers nothing again: the outbox is exactly as it was.
    outbox = platform_env.outbox(sent.agreement)
    before = {p.name: p.stat().st_mtime_ns for p in _entries(outbox)}
    again = partner(DWP)
    assert (again.deliveries_collected, again.deliveries_answered, again.deliveries_already_answered) == (
        0,
        0,
        0,
    )
    assert {p.name: p.stat().st_mtime_ns for p in _entries(outbox)} == before
    # A run that died after publishing but before its marker finds the return and publishes nothing.
    marker = collected.with_name(collected.name + ANSWERED_SUFFIX)
    assert json.loads(marker.read_text())["rows_returned"] == len(rows)
    marker.unlink()
    recovered = partner(DWP)
    assert (recovered.deliveries_answered, recovered.deliveries_already_answered) == (0, 1)
    assert {p.name: p.stat().st_mtime_ns for p in _entries(outbox)} == before


# -- police ------------------------------------------------------------------------------------------------


def test_police_answers_offences_cautions_and_asb_in_the_window_from_the_truth(
    platform_env: PlatformEnv,
    borough: Borough,
    register: pa.Table,
    share: Share,
    partner: Partner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    person_ids = register["person_id"].to_pylist()
    sent = share(POLICE, person_ids)
    with caplog.at_level("DEBUG"):
        report = partner(POLICE)
    assert not (platform_env.inbox(sent.agreement) / sent.ciphertext_name).exists()
    columns, rows = open_return(platform_env, sent, tmp_path)
    assert columns == return_columns(sent.agreement)

    # Independently: each sent person's latest event of each kind within the 12 months to AS_OF.
    kinds = {"proven_offence": 1, "caution": 2, "asb_intervention": 3}
    expected: dict[str, list[str]] = {}
    for event in borough.police_events.to_pylist():
        when = event["event_date"]
        if event["event_type"] not in kinds or not window_start(AS_OF) <= when <= AS_OF:
            continue
        row = expected.setdefault(sent.refs[event["person_id"]], ["", "", ""])
        at = kinds[event["event_type"]] - 1
        row[at] = max(row[at], when.isoformat())
    got = {r[0]: list(r[1:]) for r in rows}
    assert len(got) == len(rows), "a reference is returned twice"
    assert set(got) <= set(sent.refs.values()), "the return refers to references that were not sent"
    differ = sorted(ref for ref in set(got) | set(expected) if got.get(ref) != expected.get(ref))
    assert expected and not differ, f"{len(differ)} references disagree with the police truth"
    # The truth's partner criteria (offence or caution, ASB) are all among the returned references.
    truth = borough.person_criteria.filter(pc.equal(borough.person_criteria["source"], "met_police"))
    assert {sent.refs[p] for p in truth["person_id"].to_pylist()} <= set(got)
    assert (report.references_matched, report.references_absent) == (len(rows), len(person_ids) - len(rows))
    assert_no_personal_values(caplog.text, personal_values(register, person_ids))


# -- ONS ---------------------------------------------------------------------------------------------------


def test_ons_receipt_names_the_file_its_rows_and_the_plaintext_hash(
    platform_env: PlatformEnv,
    register: pa.Table,
    share: Share,
    partner: Partner,
    tmp_path: Path,
) -> None:
    sent = share(ONS, register["person_id"].to_pylist()[:300])
    report = partner(ONS)
    columns, rows = open_return(platform_env, sent, tmp_path)
    assert columns == return_columns(sent.agreement) == ("delivery_file", "rows_received", "sha256")
    assert rows == [(sent.ciphertext_name, str(sent.row_count), sent.plaintext_sha256)]
    assert sent.row_count == 300
    assert (report.deliveries_answered, report.rows_received, report.rows_returned) == (1, 300, 1)


# -- refusal -----------------------------------------------------------------------------------------------


def test_a_delivery_not_encrypted_to_the_partner_is_refused_not_answered(
    platform_env: PlatformEnv,
    register: pa.Table,
    share: Share,
    partner: Partner,
    tmp_path: Path,
) -> None:
    police = share(POLICE, register["person_id"].to_pylist()[:50])
    dwp = platform_env.agreements[DWP]
    # The police's file, misdirected to DWP under a DWP delivery name: DWP must not read it.
    name = f"sf-{DWP}-d{'a' * 15}b.csv.gpg"
    (platform_env.inbox(dwp) / name).write_bytes(police.delivery.archived_ciphertext(platform_env.data_keys))
    report = partner(DWP)
    assert (report.deliveries_collected, report.deliveries_refused, report.deliveries_answered) == (1, 1, 0)
    assert _entries(platform_env.outbox(dwp)) == [] and report.outbox_entries_written == 0
    marker = tmp_path / "collected" / DWP / (name + REFUSED_SUFFIX)
    assert json.loads(marker.read_text())["error"] == "DeliveryRefused"
    # Refused once: the next run leaves it alone.
    assert partner(DWP).deliveries_refused == 0


# -- faults ------------------------------------------------------------------------------------------------


FAULT_COHORT = 600
Faulted = Callable[[Fault], tuple[Sent, SimulationReport, Rows]]


def _rows(text: str) -> Rows:
    return [tuple(r) for r in list(csv.reader(io.StringIO(text)))[1:]]


def _baseline(platform_env: PlatformEnv, sent: Sent, partner_truth: UPath, tmp_path: Path) -> Rows:
    """What DWP answers without faults, from the very file in its inbox (decrypted with the partner key);
    the answer itself is checked against the truth by the DWP test above."""
    plain = tmp_path / "baseline.csv"
    decrypt_and_verify(
        platform_env.inbox(sent.agreement) / sent.ciphertext_name,
        plain,
        expected_signer_fingerprint=platform_env.council_fingerprint,
        passphrase=None,
        gnupg_home=platform_env.secrets.gnupg_partners,
    )
    answer = dwp_answer(
        read_delivery(plain, sent.agreement),
        read_parquet(partner_truth / "dwp_benefits.parquet"),
        sent.agreement,
        as_of=AS_OF,
        seed=SEED,
    )
    plain.unlink()
    return _rows(render_csv(answer.columns, answer.rows).decode())


@pytest.fixture
def faulted(
    platform_env: PlatformEnv,
    register: pa.Table,
    share: Share,
    partner: Partner,
    partner_truth: UPath,
    tmp_path: Path,
) -> Faulted:
    """``faulted(fault)``: a DWP delivery answered with ``fault``: the delivery, report, fault-free rows."""

    def run(fault: Fault) -> tuple[Sent, SimulationReport, Rows]:
        sent = share(DWP, register["person_id"].to_pylist()[:FAULT_COHORT], run=fault.value)
        baseline = _baseline(platform_env, sent, partner_truth, tmp_path)
        report = partner(DWP, faults=frozenset({fault}))
        assert report.deliveries_answered == 1 and report.faults == (fault.value,)
        return sent, report, baseline

    return run


def test_fault_missing_rows_drops_references_that_should_be_there(
    platform_env: PlatformEnv, faulted: Faulted, tmp_path: Path
) -> None:
    sent, report, baseline = faulted(Fault.MISSING_ROWS)
    _, rows = open_return(platform_env, sent, tmp_path)
    subset = set(rows) < set(baseline)
    assert subset, "missing_rows must leave a strict subset of the fault-free answer"
    assert len(baseline) - len(rows) == report.rows_dropped >= 1


def test_fault_duplicates_repeats_rows(platform_env: PlatformEnv, faulted: Faulted, tmp_path: Path) -> None:
    sent, report, baseline = faulted(Fault.DUPLICATES)
    _, rows = open_return(platform_env, sent, tmp_path)
    extra = Counter(rows) - Counter(baseline)
    same_rows = set(rows) == set(baseline)
    assert same_rows, "duplicates must repeat rows of the fault-free answer, nothing else"
    assert sum(extra.values()) == report.rows_duplicated >= 1
    assert all(Counter(rows)[row] == 2 for row in extra), "a row is repeated more than once"


def test_fault_unexpected_references_were_never_sent(
    platform_env: PlatformEnv, faulted: Faulted, tmp_path: Path
) -> None:
    sent, report, baseline = faulted(Fault.UNEXPECTED_REFERENCES)
    _, rows = open_return(platform_env, sent, tmp_path)
    unexpected = [r for r in rows if r[0] not in set(sent.refs.values())]
    assert len(unexpected) == report.rows_unexpected >= 1
    rest_intact = sorted(set(rows) - set(unexpected)) == sorted(baseline)
    assert rest_intact, "the rows that were sent changed"
    version = next(iter(sent.refs.values())).split("-")[0]
    assert all(re.fullmatch(rf"{version}-[0-9a-f]{{32}}", r[0]) for r in unexpected), "not reference-shaped"


def test_fault_malformed_csv_has_a_ragged_row_and_broken_quoting(
    platform_env: PlatformEnv, faulted: Faulted, tmp_path: Path
) -> None:
    sent, _, _ = faulted(Fault.MALFORMED_CSV)
    with pytest.raises(csv.Error):  # broken quoting: the quoted field never closes
        open_return(platform_env, sent, tmp_path)
    text = (tmp_path / f"{sent.return_name}.csv").read_text(encoding="utf-8")
    width = len(return_columns(sent.agreement))
    lines = list(csv.reader(io.StringIO(text)))
    assert any(len(line) == width + 1 for line in lines[1:]), "no ragged row"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        # The return is signed with another partner's key: a valid signature, but not the pinned signer's.
        pytest.param(Fault.WRONG_SIGNER, WrongSigner, id="wrong-signer"),
        # One byte of the return's encrypted MDC is flipped after encryption: the integrity check fails.
        pytest.param(Fault.TAMPERED_CIPHERTEXT, IntegrityCheckFailed, id="tampered-ciphertext"),
    ],
)
def test_fault_return_is_refused_by_the_council_and_no_plaintext_is_kept(
    platform_env: PlatformEnv, faulted: Faulted, tmp_path: Path, fault: Fault, error: type[Exception]
) -> None:
    sent, _, _ = faulted(fault)
    with pytest.raises(error):
        open_return(platform_env, sent, tmp_path)
    assert not (tmp_path / f"{sent.return_name}.csv").exists(), f"plaintext kept from a {fault.value} return"


def test_fault_late_file_is_dated_after_the_deadline(
    platform_env: PlatformEnv, faulted: Faulted, tmp_path: Path
) -> None:
    sent, _, baseline = faulted(Fault.LATE_FILE)
    delivered = (collected_dir(tmp_path, sent) / sent.ciphertext_name).stat().st_mtime
    written = (platform_env.outbox(sent.agreement) / sent.return_name).stat().st_mtime
    deadline = timedelta(days=sent.agreement.returns.deadline_days).total_seconds()
    assert written > delivered + deadline
    _, rows = open_return(platform_env, sent, tmp_path)
    intact = rows == baseline
    assert intact, "a late file is otherwise a good return"


def test_fault_hostile_file_name_leaves_nothing_a_safe_fetch_takes(
    platform_env: PlatformEnv, faulted: Faulted, tmp_path: Path
) -> None:
    sent, report, _ = faulted(Fault.HOSTILE_FILE_NAME)
    outbox = platform_env.outbox(sent.agreement)
    link = outbox / sent.return_name
    assert link.is_symlink() and os.readlink(link) == "/etc/passwd"
    dotdot, control, hidden = hostile_names(sent.agreement, sent.delivery_id)
    assert ".." in dotdot and "\x1b" in control and hidden.startswith(".")
    assert all((outbox / name).is_file() for name in (dotdot, control, hidden))
    assert report.outbox_entries_written == 4
    # The council's own fetch takes none of it, and says why for each.
    local = tmp_path / "fetched"
    local.mkdir()
    result = fetch(
        platform_env.endpoint(sent.agreement),
        sent.agreement.sftp.remote_outbox,
        sent.agreement.returns.file_pattern,
        local,
        max_bytes=1 << 20,
    )
    assert result.fetched == () and list(local.iterdir()) == []
    assert sorted(r.reason for r in result.rejected) == ["not_regular_file", "unsafe_name", "unsafe_name"]


def test_faults_on_the_ons_receipt(
    platform_env: PlatformEnv,
    register: pa.Table,
    share: Share,
    partner: Partner,
    tmp_path: Path,
) -> None:
    sent = share(ONS, register["person_id"].to_pylist()[:200])
    faults = frozenset({Fault.MISSING_ROWS, Fault.DUPLICATES, Fault.UNEXPECTED_REFERENCES})
    report = partner(ONS, faults=faults)
    _, rows = open_return(platform_env, sent, tmp_path)
    understated = (sent.ciphertext_name, str(200 - report.rows_dropped), sent.plaintext_sha256)
    assert report.rows_dropped >= 1 and rows[:2] == [understated, understated]
    assert len(rows) == 3 and rows[2][0] != sent.ciphertext_name and rows[2][0].startswith(f"sf-{ONS}-d")


def test_faults_are_deterministic_from_the_seed_and_the_delivery(
    platform_env: PlatformEnv,
    register: pa.Table,
    share: Share,
    partner: Partner,
    tmp_path: Path,
) -> None:
    faults = frozenset({Fault.MISSING_ROWS, Fault.DUPLICATES, Fault.UNEXPECTED_REFERENCES})
    sent = share(DWP, register["person_id"].to_pylist()[:FAULT_COHORT])
    inbox, outbox = platform_env.inbox(sent.agreement), platform_env.outbox(sent.agreement)
    collected = collected_dir(tmp_path, sent) / sent.ciphertext_name
    answers = []
    for _ in range(2):
        partner(DWP, faults=faults)
        answers.append(open_return(platform_env, sent, tmp_path)[1])
        # Replay: the same file back in the inbox, as if never answered.
        (outbox / sent.return_name).unlink()
        collected.with_name(collected.name + ANSWERED_SUFFIX).unlink()
        os.rename(collected, inbox / sent.ciphertext_name)
    replayed = answers[0] == answers[1]
    assert replayed, "the same delivery and seed gave different returns"
    # Another seed hits other rows.
    partner(DWP, faults=faults, seed=SEED + 1)
    other = open_return(platform_env, sent, tmp_path)[1] != answers[0]
    assert other, "another seed gave the same return"


# -- CLI ---------------------------------------------------------------------------------------------------


def test_cli_runs_in_the_demo_environment(
    platform_env: PlatformEnv,
    register: pa.Table,
    share: Share,
    demo_store: UPath,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sent = share(ONS, register["person_id"].to_pylist()[:40])
    monkeypatch.setenv("SF_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("SF_SECRETS_DIR", str(platform_env.secrets.state_dir))
    monkeypatch.setenv("SF_SFTP_ROOT", str(platform_env.server.root))
    monkeypatch.setenv("SF_STORE_URI", str(demo_store))
    assert cli_main(["run", "--agreement", ONS, "--fault", "late_file", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["deliveries_answered"] == 1 and report["faults"] == ["late_file"]
    assert (tmp_path / "var" / "partner_simulator" / ONS / "collected" / sent.ciphertext_name).is_file()
    assert open_return(platform_env, sent, tmp_path)[1][0][1] == "40"


def test_wrong_signer_without_another_partner_uses_a_fresh_outsider_key(
    platform_env: PlatformEnv, tmp_path: Path
) -> None:
    # With a single partner in the keyring there is no other partner's key: an outsider signs instead.
    plain = tmp_path / "receipt.csv"
    plain.write_text("delivery_file,rows_received,sha256\n")
    ciphertext = tmp_path / "receipt.csv.gpg"
    with outsider_signer(platform_env.secrets.gnupg_partners, platform_env.council_fingerprint) as signer:
        encrypt_and_sign(
            plain,
            ciphertext,
            recipient_fingerprint=platform_env.council_fingerprint,
            signer_fingerprint=signer.fingerprint,
            passphrase="",
            gnupg_home=signer.gnupg_home,
        )
    assert not signer.gnupg_home.exists(), "the outsider keyring outlived its use"
    with pytest.raises(UnknownSigner):
        council_decrypts(platform_env, platform_env.agreements[ONS], ciphertext, tmp_path / "out.csv")


def test_the_platform_never_imports_the_simulator() -> None:
    core = Path(__file__).resolve().parents[3] / "include" / "supporting_families"
    importers = [
        p.name for p in core.rglob("*.py") if re.search(r"^\s*(from|import)\s+sf_demo\b", p.read_text(), re.M)
    ]
    assert importers == [], "the platform must not depend on the partner simulator"
