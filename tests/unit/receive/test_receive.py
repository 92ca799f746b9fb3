"""Receive, without servers: strict reading and validation of returns, reconciliation, flags, receipts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from upath import UPath

from supporting_families.config.agreements import Agreement, load_agreements
from supporting_families.receive import reconcile as receive_reconcile
from supporting_families.receive.merge import MergeConflict, merge_flags
from supporting_families.receive.process import check_receipt
from supporting_families.receive.reconcile import (
    CLASSES,
    ReconciliationError,
    partner_flags,
    reconcile,
)
from supporting_families.receive.records import delivery_id_of, return_file_name
from supporting_families.receive.validate import ReturnRejected, validate_return
from supporting_families.share.package import Manifest

FINGERPRINTS = {
    "SF_DWP_PGP_FINGERPRINT": "1" * 40,
    "SF_MET_POLICE_PGP_FINGERPRINT": "2" * 40,
    "SF_ONS_PGP_FINGERPRINT": "3" * 40,
}
AGREEMENTS = {a.id: a for a in load_agreements(env=FINGERPRINTS)}
DWP = AGREEMENTS["dwp-benefits-matching"]
POLICE = AGREEMENTS["met-police-wider-help"]
ONS = AGREEMENTS["ons-evaluation"]
DWP_HEADER = "person_ref,match_status,out_of_work_benefit,disability_benefit"
#: When the delivery a return answers was delivered (its receipt's delivered_at).
ANSWERED = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


def ref(i: int, version: int = 1) -> str:
    return f"v{version}-{hashlib.sha256(str(i).encode()).hexdigest()[:32]}"


def write(tmp_path: Path, text: str | bytes, name: str = "dwp-return-dabcdefghijklmnop.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def rejected(path: Path, agreement: Agreement = DWP) -> ReturnRejected:
    with pytest.raises(ReturnRejected) as caught:
        validate_return(path, agreement)
    return caught.value


# --- strict reading ------------------------------------------------------------------------------------


def test_a_valid_return_is_typed_by_the_agreement(tmp_path: Path) -> None:
    text = f"{DWP_HEADER}\n{ref(1)},matched,true,false\n{ref(2)},address_not_confirmed,,\n"
    result = validate_return(write(tmp_path, text), DWP)
    assert result.rows == 2
    assert result.table.schema.types == [pa.string(), pa.string(), pa.bool_(), pa.bool_()]
    assert result.table.column("out_of_work_benefit").to_pylist() == [True, None]
    police = "person_ref,proven_offence_date,caution_date,asb_intervention_date\n"
    police += f"{ref(3)},2025-02-28,,2024-12-01\n"
    typed = validate_return(write(tmp_path, police, "p.csv"), POLICE).table
    assert typed.column("proven_offence_date").to_pylist() == [date(2025, 2, 28)]
    assert typed.column("caution_date").type == pa.date32()
    # A return with no rows is a valid answer (nothing matched): every reference is then no trace.
    assert validate_return(write(tmp_path, DWP_HEADER + "\n", "e.csv"), DWP).rows == 0


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "empty_file"),
        (b"\xef\xbb\xbf" + DWP_HEADER.encode() + b"\n", "unexpected_bom"),
        (DWP_HEADER.encode() + b"\nv1-\xff,matched,true,true\n", "encoding"),
        (DWP_HEADER.encode() + b"\n\x00\n", "encoding"),
        (b"person_ref,person_ref,out_of_work_benefit,disability_benefit\n", "duplicate_headers"),
        (b"person_ref,out_of_work_benefit,match_status,disability_benefit\n", "header"),
        (b"person_ref;match_status;out_of_work_benefit;disability_benefit\n", "header"),
        (b"person_ref,match_status,out_of_work_benefit\n", "header"),
        (DWP_HEADER.encode() + b"\n" + ref(1).encode() + b',"matched,true,true\n', "unparseable"),
    ],
    ids=["empty", "bom", "bad-utf8", "nul", "dup-header", "order", "delimiter", "missing-column", "quote"],
)
def test_file_rules_reject_the_whole_file(tmp_path: Path, content: bytes, rule: str) -> None:
    error = rejected(write(tmp_path, content))
    assert error.rule == rule
    assert str(error).startswith(f"dwp-return-dabcdefghijklmnop.csv: rejected by rule {rule!r}")


def test_ragged_rows_are_named_by_their_spreadsheet_row(tmp_path: Path) -> None:
    # Row 3 holds a quoted line break, so rows and lines differ from there on.
    text = (
        f'{DWP_HEADER}\n{ref(1)},matched,true,true\n{ref(2)},"matched\nx",true,true\n'
        f"{ref(3)},matched,true\n{ref(4)},matched,true,true,extra\n"
    )
    error = rejected(write(tmp_path, text))
    assert error.rule == "ragged_rows" and error.row_numbers == [4, 5]
    assert "rows 4, 5" in str(error)


def test_a_receipt_has_exactly_one_row(tmp_path: Path) -> None:
    text = "delivery_file,rows_received,sha256\n" + ("sf-x.csv.gpg,3," + "a" * 64 + "\n") * 2
    assert rejected(write(tmp_path, text, "r.csv"), ONS).rule == "receipt_rows"


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    small = DWP.returns.model_copy(update={"max_size_mib": 1})
    agreement = DWP.model_copy(update={"returns": small})
    error = rejected(write(tmp_path, DWP_HEADER + "\n" + "x" * (1 << 20)), agreement)
    assert error.rule == "too_large"


def test_every_row_rule_is_reported_lazily_with_rows_and_no_values(tmp_path: Path) -> None:
    rows = [
        f"{ref(1)},matched,true,false",  # 2: fine
        f"{ref(2)},matched,TRUE,false",  # 3: boolean
        f"{ref(3)},perhaps,true,",  # 4: allowed
        ",matched,true,false",  # 5: required (reference)
        f"{ref(5).upper()},matched,true,false",  # 6: reference (upper case hex)
        ",,,",  # 7: blank row
        "P000123,,yes,",  # 8: reference, required (status), boolean
    ]
    error = rejected(write(tmp_path, DWP_HEADER + "\n" + "\n".join(rows) + "\n"))
    assert error.rule == "row_rules"
    problems = sorted(zip(*error.problems.to_pydict().values(), strict=True))
    assert problems == [
        (3, "out_of_work_benefit", "boolean"),
        (4, "match_status", "allowed"),
        (5, "person_ref", "required"),
        (6, "person_ref", "reference"),
        (7, "", "blank_row"),
        (8, "match_status", "required"),
        (8, "out_of_work_benefit", "boolean"),
        (8, "person_ref", "reference"),
    ]
    message = str(error)
    assert "rows 3, 4, 5, 6, 7, 8" in message
    for value in ("TRUE", "perhaps", "P000123", "yes", ref(5).upper()):
        assert value not in message


def test_dates_integers_and_hashes_are_checked(tmp_path: Path) -> None:
    police = "person_ref,proven_offence_date,caution_date,asb_intervention_date\n"
    police += f"{ref(1)},2025-02-30,31/01/2025,2025-1-5\n"
    error = rejected(write(tmp_path, police, "p.csv"), POLICE)
    assert sorted(error.problems.column("column").to_pylist()) == [
        "asb_intervention_date",
        "caution_date",
        "proven_offence_date",
    ]
    assert set(error.problems.column("rule").to_pylist()) == {"date"}
    receipt = "delivery_file,rows_received,sha256\nsf-x.csv.gpg,3.0,abc\n"
    error = rejected(write(tmp_path, receipt, "r.csv"), ONS)
    assert sorted(error.problems.column("rule").to_pylist()) == ["integer", "sha256"]


# --- names ---------------------------------------------------------------------------------------------


def test_a_return_is_named_after_the_delivery_it_answers() -> None:
    name = return_file_name(DWP, "dabcdefghijklmnop")
    assert name == "dwp-return-dabcdefghijklmnop.csv.gpg"
    assert delivery_id_of(DWP, name) == "dabcdefghijklmnop"
    assert delivery_id_of(ONS, "ons-receipt-dabcdefghijklmnop.csv.gpg") == "dabcdefghijklmnop"
    for other in (
        "dwp-return-latest.csv.gpg",
        "dwp-return-d0123.csv.gpg",
        "ons-receipt-dabcdefghijklmnop.csv",
    ):
        assert delivery_id_of(DWP, other) is None
    with pytest.raises(ValueError):
        return_file_name(DWP, "../etc")


# --- reconciliation ------------------------------------------------------------------------------------


def sent(n: int) -> pa.Table:
    return pa.table(
        {
            "person_id": [f"P{i:06d}" for i in range(n)],
            "family_id": [f"F{i // 2:06d}" for i in range(n)],
            "person_ref": [ref(i) for i in range(n)],
            "family_ref": [ref(1000 + i // 2) for i in range(n)],
        }
    )


def dwp_return(rows: Sequence[tuple[str, str, bool | None, bool | None]]) -> pa.Table:
    names = ["person_ref", "match_status", "out_of_work_benefit", "disability_benefit"]
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    types = [pa.string(), pa.string(), pa.bool_(), pa.bool_()]
    return pa.table([pa.array(list(c), t) for c, t in zip(columns, types, strict=True)], names=names)


def reference_classes(
    returned: Sequence[tuple[str, str]], sent_refs: Sequence[str], rejected_values: set[str]
) -> dict[str, int]:
    """The classes as the module docstring defines them, row by row in plain Python."""
    counts = dict.fromkeys(CLASSES, 0)
    seen: set[str] = set()
    known = set(sent_refs)
    for reference, status in returned:
        if reference in seen:
            counts["duplicate"] += 1
        elif reference not in known:
            counts["unexpected"] += 1
        elif status in rejected_values:
            counts["rejected_by_partner"] += 1
        else:
            counts["matched"] += 1
        seen.add(reference)
    counts["no_trace"] = len(known - seen)
    return counts


def test_each_class_and_the_invariant() -> None:
    rows = [
        (ref(0), "matched", True, False),
        (ref(1), "address_not_confirmed", None, None),
        (ref(0), "address_not_confirmed", None, None),  # a duplicate that contradicts its first row
        (ref(99), "matched", True, True),  # never sent
        (ref(2), "matched", False, True),
        (ref(2), "matched", False, True),  # an identical duplicate
    ]
    result = reconcile(dwp_return(rows), sent(5), DWP)
    assert result.report() == {
        "matched": 2,
        "rejected_by_partner": 1,
        "no_trace": 2,
        "unexpected": 1,
        "duplicate": 2,
        "sent": 5,
        "returned_rows": 6,
        "conflicting_duplicates": 1,
        "match_rate_ppm": 400_000,
    }
    classified = result.classified.to_pylist()
    assert len(classified) == 5 + 1 + 2
    assert [r["class"] for r in classified if r["reference"] == ref(0)] == ["matched", "duplicate"]
    assert [r["row_number"] for r in classified if r["reference"] == ref(0)] == [2, 4]
    assert {r["reference"] for r in classified if r["class"] == "no_trace"} == {ref(3), ref(4)}
    assert next(r for r in classified if r["class"] == "unexpected")["person_id"] is None
    # Only the first row of a matched reference is accepted, with its person.
    assert result.accepted.column("person_id").to_pylist() == ["P000000", "P000002"]
    assert result.accepted.column("out_of_work_benefit").to_pylist() == [True, False]


def test_an_empty_return_leaves_everything_no_trace() -> None:
    result = reconcile(dwp_return([]), sent(3), DWP)
    assert result.counts["no_trace"] == 3 and result.match_rate_ppm == 0
    assert result.classified.num_rows == 3


def test_a_reference_list_naming_someone_twice_is_refused() -> None:
    refs = sent(3)
    broken = pa.concat_tables([refs, refs.slice(0, 1)])
    with pytest.raises(ReconciliationError, match="twice"):
        reconcile(dwp_return([(ref(0), "matched", True, True)]), broken, DWP)


@pytest.mark.parametrize(
    ("path", "generic"),
    [("words", False), ("collision", True), ("cross_collision", True), ("mixed_versions", True)],
)
def test_the_fast_path_and_the_generic_path_agree(
    path: str, generic: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(ref(i % 7), "matched" if i % 3 else "address_not_confirmed", True, None) for i in range(20)]
    rows += [
        (ref(40), "matched", True, True),
        (ref(41), "matched", None, None),
        (ref(40), "matched", None, None),
    ]
    if path == "mixed_versions":
        rows.append((ref(3, version=12), "matched", True, True))  # another key version: another length
    if path == "collision":
        # Every 64-bit word equal: the sent words are not unique, and the fast path must step aside.
        monkeypatch.setattr(receive_reconcile, "_word_key", lambda chars: np.zeros(len(chars), np.uint64))
    if path == "cross_collision":
        # Sent words unique, but returned rows whose words name the wrong sent reference (or one never
        # sent): only the byte comparison can tell, and it must send the work to the generic path.
        monkeypatch.setattr(
            receive_reconcile, "_word_key", lambda chars: np.arange(len(chars), dtype=np.uint64)
        )
    calls: list[int] = []
    generic_match = receive_reconcile._match_arrow
    monkeypatch.setattr(receive_reconcile, "_match_arrow", lambda *a: calls.append(1) or generic_match(*a))
    result = reconcile(dwp_return(rows), sent(10), DWP)
    assert bool(calls) is generic
    returned = [(r[0], r[1]) for r in rows]
    expected = reference_classes(returned, [ref(i) for i in range(10)], {"address_not_confirmed"})
    assert {k: result.counts[k] for k in CLASSES} == expected
    firsts = {r[0]: r for r in reversed(rows)}
    assert result.conflicting_duplicates == len({r[0] for r in rows if r != firsts[r[0]]})


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(
        st.tuples(st.integers(0, 14), st.sampled_from(["matched", "address_not_confirmed"])), max_size=40
    ),
    n_sent=st.integers(0, 10),
)
def test_classes_always_add_up(picks: list[tuple[int, str]], n_sent: int) -> None:
    # References 0..n_sent-1 were sent; the return draws from 0..14, so some were never sent.
    rows = [(ref(i), status, True, None) for i, status in picks]
    result = reconcile(dwp_return(rows), sent(n_sent), DWP)
    counts = result.counts
    assert counts["matched"] + counts["rejected_by_partner"] + counts["no_trace"] == n_sent
    assert counts["matched"] + counts["rejected_by_partner"] + counts["unexpected"] + counts[
        "duplicate"
    ] == len(rows)
    assert result.classified.num_rows == sum(counts[c] for c in CLASSES)
    expected = reference_classes(
        [(r[0], r[1]) for r in rows], [ref(i) for i in range(n_sent)], {"address_not_confirmed"}
    )
    assert {k: counts[k] for k in CLASSES} == expected


def test_the_police_return_has_no_status_so_every_sent_reference_returned_is_matched() -> None:
    returned = pa.table(
        {
            "person_ref": [ref(0), ref(2)],
            "proven_offence_date": pa.array([date(2025, 1, 3), None], pa.date32()),
            "caution_date": pa.array([None, date(2025, 2, 1)], pa.date32()),
            "asb_intervention_date": pa.array([date(2024, 11, 30), None], pa.date32()),
        }
    )
    result = reconcile(returned, sent(4), POLICE)
    assert result.counts["matched"] == 2 and result.counts["no_trace"] == 2
    rows = partner_flags(result.accepted, POLICE, "f" * 64, answered_at=ANSWERED)
    flags = rows.filter(pc.is_valid(rows.column("sub_criterion")))
    assert sorted(
        zip(
            flags["person_id"].to_pylist(),
            flags["sub_criterion"].to_pylist(),
            flags["evidence_date"].to_pylist(),
            strict=True,
        )
    ) == [
        ("P000000", "asb_intervention", date(2024, 11, 30)),
        ("P000000", "proven_offence_or_caution", date(2025, 1, 3)),
        ("P000002", "proven_offence_or_caution", date(2025, 2, 1)),
    ]
    assert set(rows["partner"].to_pylist()) == {"met-police"}
    assert set(rows["file_sha256"].to_pylist()) == {"f" * 64}
    assert set(rows["answered_at"].to_pylist()) == {ANSWERED}


def test_dwp_flags_are_the_true_booleans_of_matched_rows_only() -> None:
    rows = [
        (ref(0), "matched", True, True),
        (ref(1), "matched", False, None),
        (ref(2), "address_not_confirmed", True, True),  # flags on a rejected row are never taken in
    ]
    result = reconcile(dwp_return(rows), sent(3), DWP)
    written = partner_flags(result.accepted, DWP, "0" * 64, answered_at=ANSWERED)
    flags = written.filter(pc.is_valid(written.column("sub_criterion")))
    assert sorted(zip(flags["person_id"].to_pylist(), flags["sub_criterion"].to_pylist(), strict=True)) == [
        ("P000000", "disability_benefits"),
        ("P000000", "out_of_work_benefits"),
    ]
    assert flags["evidence_date"].null_count == 2


def test_every_matched_person_is_recorded_as_an_answer_flagged_or_not() -> None:
    rows = [
        (ref(0), "matched", True, False),
        (ref(1), "matched", False, None),  # matched, nothing to flag: still an answer
        (ref(2), "address_not_confirmed", True, True),  # not matched: no answer about the person
    ]
    result = reconcile(dwp_return(rows), sent(4), DWP)  # P000003 was sent and is no trace: no answer
    written = partner_flags(result.accepted, DWP, "0" * 64, answered_at=ANSWERED)
    assert written.schema == receive_reconcile.PARTNER_FLAGS_SCHEMA
    markers = written.filter(pc.is_null(written.column("sub_criterion")))
    assert sorted(markers["person_id"].to_pylist()) == ["P000000", "P000001"]
    assert markers["evidence_date"].null_count == 2
    assert set(markers["agreement_id"].to_pylist()) == {DWP.id}
    assert set(written["answered_at"].to_pylist()) == {ANSWERED}
    # A naive time (an old receipt) is read as UTC; no time at all leaves answered_at null.
    naive = partner_flags(result.accepted, DWP, "0" * 64, answered_at=ANSWERED.replace(tzinfo=None))
    assert set(naive["answered_at"].to_pylist()) == {ANSWERED}
    unknown = partner_flags(result.accepted, DWP, "0" * 64, answered_at=None)
    assert unknown["answered_at"].null_count == unknown.num_rows == written.num_rows


def test_merging_is_atomic_and_idempotent_per_file_hash(tmp_path: Path) -> None:
    store = UPath(tmp_path.as_uri())
    accepted = reconcile(
        dwp_return([(ref(0), "matched", True, False), (ref(1), "matched", False, False)]), sent(2), DWP
    ).accepted
    name = "dwp-return-dabcdefghijklmnop.csv.gpg"
    first = merge_flags(store, DWP, accepted, return_file=name, file_sha256="a" * 64, answered_at=ANSWERED)
    # Two answer markers and one flag are written, but only the flag is counted.
    assert first.status == "merged" and first.flags == 1
    assert first.path.name == "dwp-benefits-matching__dwp-return-dabcdefghijklmnop.parquet"
    written = pq.read_table(first.path.path)
    assert written.num_rows == 3 and written.column("sub_criterion").null_count == 2
    again = merge_flags(store, DWP, accepted, return_file=name, file_sha256="a" * 64, answered_at=ANSWERED)
    assert again.status == "already_merged" and again.flags == 1, "flags only, not the markers"
    with pytest.raises(MergeConflict):
        merge_flags(store, DWP, accepted, return_file=name, file_sha256="b" * 64, answered_at=ANSWERED)
    assert [p.name for p in (tmp_path / "register" / "partner_flags").iterdir()] == [first.path.name]


def test_a_flags_file_merged_before_markers_counts_its_rows_as_flags(tmp_path: Path) -> None:
    store = UPath(tmp_path.as_uri())
    name = "dwp-return-dabcdefghijklmnop.csv.gpg"
    legacy = pa.table(
        {
            "person_id": ["P000000", "P000001"],
            "sub_criterion": ["out_of_work_benefits", "disability_benefits"],
            "evidence_date": pa.array([None, None], pa.date32()),
            "partner": ["dwp", "dwp"],
            "agreement_id": [DWP.id, DWP.id],
            "file_sha256": ["a" * 64] * 2,
        }
    ).replace_schema_metadata({"file_sha256": "a" * 64, "return_file": name, "agreement_id": DWP.id})
    path = (
        tmp_path
        / "register"
        / "partner_flags"
        / "dwp-benefits-matching__dwp-return-dabcdefghijklmnop.parquet"
    )
    path.parent.mkdir(parents=True)
    pq.write_table(legacy, path)
    accepted = reconcile(dwp_return([(ref(0), "matched", True, False)]), sent(2), DWP).accepted
    again = merge_flags(store, DWP, accepted, return_file=name, file_sha256="a" * 64, answered_at=ANSWERED)
    assert again.status == "already_merged" and again.flags == 2


# --- receipts ------------------------------------------------------------------------------------------


def _manifest(rows: int, plaintext: str) -> Manifest:
    return Manifest(
        schema_version=1,
        agreement_id=ONS.id,
        agreement_version=1,
        agreement_sha256=None,
        partner="ons",
        run_id="r",
        fields=ONS.fields,
        row_count=rows,
        key_version=1,
        plaintext_name="sf-ons.csv",
        plaintext_sha256=plaintext,
        ciphertext_name="sf-ons.csv.gpg",
        ciphertext_sha256="c" * 64,
        created_at="2026-01-01T00:00:00+00:00",
    )


def test_a_receipt_is_checked_against_the_manifest(tmp_path: Path) -> None:
    receipt = validate_return(
        write(tmp_path, "delivery_file,rows_received,sha256\nsf-ons.csv.gpg,12," + "A" * 64 + "\n", "r.csv"),
        ONS,
    )
    assert check_receipt(receipt, _manifest(12, "a" * 64), ONS)["rows_received"] == 12
    with pytest.raises(ReturnRejected) as caught:
        check_receipt(receipt, _manifest(13, "b" * 64), ONS)
    assert caught.value.rule == "receipt_mismatch"
    assert "rows_received 12 differs from the manifest's 13" in str(caught.value)
    assert "sha256 differs" in str(caught.value)
