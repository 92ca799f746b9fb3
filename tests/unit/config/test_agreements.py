"""Data agreements: the committed files load, and every invalid fixture fails naming its file and key.

Each fixture in ``tests/fixtures/agreements/invalid/`` is a valid agreement with one thing wrong; its
header lists the expected problems as ``# expect: key.path: message fragment``, i.e. the error line
without the file name. The test requires exactly those keys, so a fixture cannot pass by failing for
some other reason.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from supporting_families.config import (
    Agreement,
    AgreementError,
    default_agreements_dir,
    load_agreement,
    load_agreements,
)
from supporting_families.store import INTERNAL_ID_FIELDS, SHAREABLE_FIELDS

REPO = Path(__file__).resolve().parents[3]
AGREEMENTS_DIR = REPO / "include" / "agreements"
INVALID_DIR = REPO / "tests" / "fixtures" / "agreements" / "invalid"
NOTICE = REPO / "docs" / "supporting-families-privacy-notice.txt"

#: What the set-up command exports after generating the demo partner keys (any 40 hex digits will do).
FINGERPRINTS = {
    "SF_DWP_PGP_FINGERPRINT": "1111 2222 3333 4444 5555  6666 7777 8888 9999 AAAA",
    "SF_MET_POLICE_PGP_FINGERPRINT": "bbbbccccddddeeeeffff0000111122223333aaaa",
    "SF_ONS_PGP_FINGERPRINT": "CCCCDDDDEEEEFFFF000011112222333344445555",
}


def _label(path: Path) -> str:
    """``dwp/benefits-matching`` for ``dwp-benefits-matching.yaml``: the test id reads like the config."""
    try:
        code = str(yaml.safe_load(path.read_text())["partner"]["code"])
    except Exception:  # the test itself reports a broken file; the id just falls back to the name
        return path.stem
    return f"{code}/{path.stem.removeprefix(code + '-')}"


AGREEMENT_FILES = sorted(AGREEMENTS_DIR.glob("*.yaml"))
INVALID_FILES = sorted(INVALID_DIR.glob("*.yaml"))


def _expectations(path: Path) -> list[tuple[str, str]]:
    expected = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            key, _, fragment = line.removeprefix("# expect: ").partition(": ")
            expected.append((key, fragment))
    return expected


@pytest.fixture
def agreements() -> list[Agreement]:
    return load_agreements(env=FINGERPRINTS)


def by_id(agreements: list[Agreement]) -> dict[str, Agreement]:
    return {a.id: a for a in agreements}


# --- the committed agreements --------------------------------------------------------------------------


def test_the_three_agreements_of_the_notice_are_committed() -> None:
    # A fourth partner is a fourth file; these three are the ones the privacy notice names.
    assert {"dwp-benefits-matching", "met-police-wider-help", "ons-evaluation"} <= {
        p.stem for p in AGREEMENT_FILES
    }


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=[_label(p) for p in AGREEMENT_FILES])
def test_agreement_loads(path: Path) -> None:
    agreement = load_agreement(path, env=FINGERPRINTS)

    assert agreement.id == path.stem
    assert agreement.label == _label(path)
    assert set(agreement.fields) <= set(SHAREABLE_FIELDS)
    assert not set(agreement.fields) & set(INTERNAL_ID_FIELDS)
    assert "person_ref" in agreement.fields
    assert len(agreement.openpgp.partner_fingerprint) == 40
    assert agreement.openpgp.partner_fingerprint == agreement.openpgp.partner_fingerprint.upper()
    assert agreement.source_path == path
    assert agreement.source_sha256 is not None and len(agreement.source_sha256) == 64
    # Notice: "retained for up to one year after the end of the programme".
    # (the council's ceiling, include/retention.yaml, ends each limit earlier still).
    for kind in ("deliveries", "references", "returns", "manifests"):
        assert 0 <= agreement.retention.days_for(kind) <= 366


def test_dwp_gets_addresses_and_uprns_only(agreements: list[Agreement]) -> None:
    # Notice: "Full addresses and unique property reference numbers will be shared for individuals who
    # meet any of the eligibility criteria".
    dwp = by_id(agreements)["dwp-benefits-matching"]
    assert dwp.cohort == "meets_any_criterion"
    assert dwp.fields == ("person_ref", "address_line_1", "address_line_2", "town", "postcode", "uprn")
    assert dwp.returns.kind == "per_reference"
    assert dwp.returns.status is not None and dwp.returns.status.rejected == ("address_not_confirmed",)
    assert dwp.returns.column("out_of_work_benefit").type == "boolean"
    assert dwp.returns.column("disability_benefit").type == "boolean"


def test_police_get_name_date_of_birth_and_postcode_only(agreements: list[Agreement]) -> None:
    # Notice: "Personal data restricted to name, date of birth and postcode will be shared."
    police = by_id(agreements)["met-police-wider-help"]
    assert police.cohort == "may_benefit_from_wider_service"
    assert police.fields == ("person_ref", "given_name", "family_name", "date_of_birth", "postcode")
    assert "Crime and Disorder Act 1998 s.115" in police.legal_gateways
    assert [c.name for c in police.returns.columns if c.type == "date"] == [
        "proven_offence_date",
        "caution_date",
        "asb_intervention_date",
    ]


def test_ons_gets_identified_records_of_both_groups_and_sends_a_receipt(agreements: list[Agreement]) -> None:
    # Notice: those "assessed as meeting criteria for the programme and those who have not been included".
    ons = by_id(agreements)["ons-evaluation"]
    assert ons.cohort == "assessed_and_comparison"
    assert {"person_ref", "family_ref", "given_name", "family_name", "date_of_birth", "sex"} <= set(
        ons.fields
    )
    assert ons.fields[-1] == "programme_status"
    assert "uprn" not in ons.fields
    assert ons.returns.kind == "receipt"
    assert ons.returns.receipt is not None
    assert ons.returns.column(ons.returns.receipt.row_count_column).type == "integer"


def test_each_agreement_has_its_own_pseudonym_key(agreements: list[Agreement]) -> None:
    keys = [a.pseudonymisation.key_conn_id for a in agreements]
    assert len(set(keys)) == len(keys)


def test_helpers_for_dag_factories(agreements: list[Agreement]) -> None:
    dwp = by_id(agreements)["dwp-benefits-matching"]
    assert dwp.slug == "dwp-benefits-matching"
    assert dwp.dag_id_suffix == "dwp_benefits_matching"
    assert dwp.label == "dwp/benefits-matching"
    assert dwp.sends("uprn") and not dwp.sends("date_of_birth")
    assert dwp.derived_fields == ("person_ref",)
    assert dwp.register_fields == ("address_line_1", "address_line_2", "town", "postcode", "uprn")
    assert dwp.openpgp.partner_fingerprint == "11112222333344445555666677778888" + "9999AAAA"
    assert dwp.openpgp.partner_fingerprint_spaced.startswith("1111 2222 ")
    ons = by_id(agreements)["ons-evaluation"]
    assert ons.schedule.cron == "@quarterly"
    assert ons.schedule.expression == "0 0 1 */3 *"
    with pytest.raises(KeyError):
        ons.returns.column("no_such_column")


def test_agreements_are_frozen(agreements: list[Agreement]) -> None:
    with pytest.raises(ValueError, match="frozen"):
        agreements[0].cohort = "assessed_and_comparison"


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=[_label(p) for p in AGREEMENT_FILES])
def test_purpose_quotes_the_privacy_notice(path: Path) -> None:
    notice = " ".join(NOTICE.read_text().split())
    purpose = " ".join(load_agreement(path, env=FINGERPRINTS).purpose.split())
    assert purpose in notice


# --- loading ---------------------------------------------------------------------------------------


def test_default_directory_is_include_agreements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SF_AGREEMENTS_DIR", raising=False)
    assert default_agreements_dir() == AGREEMENTS_DIR
    monkeypatch.setenv("SF_AGREEMENTS_DIR", "/somewhere/else")
    assert default_agreements_dir() == Path("/somewhere/else")


def test_environment_is_the_default_for_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FINGERPRINTS.items():
        monkeypatch.setenv(name, value)
    assert len(load_agreements()) == 3


def test_unresolved_placeholders_fail_naming_each_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FINGERPRINTS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AgreementError) as caught:
        load_agreements()
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == [p.name for p in AGREEMENT_FILES]
    assert all(": openpgp.partner_fingerprint: placeholder ${SF_" in line for line in lines)


def test_a_malformed_fingerprint_in_the_environment_is_not_echoed() -> None:
    env = {**FINGERPRINTS, "SF_DWP_PGP_FINGERPRINT": "s3cret-not-a-fingerprint"}
    with pytest.raises(AgreementError) as caught:
        load_agreement(AGREEMENTS_DIR / "dwp-benefits-matching.yaml", env=env)
    message = str(caught.value)
    assert message.startswith("dwp-benefits-matching.yaml: openpgp.partner_fingerprint: ")
    assert "SF_DWP_PGP_FINGERPRINT does not hold a 40-hex-digit" in message
    assert "s3cret" not in message


def test_a_key_shared_by_two_agreements_is_refused(tmp_path: Path) -> None:
    # The same key in two agreements would give a person the same reference at two partners.
    for stem in ("dwp-benefits-matching", "met-police-wider-help"):
        shutil.copy(AGREEMENTS_DIR / f"{stem}.yaml", tmp_path)
    police = tmp_path / "met-police-wider-help.yaml"
    police.write_text(
        police.read_text().replace("sf_pseudonym_met_police_wider_help", "sf_pseudonym_dwp_benefits_matching")
    )
    with pytest.raises(AgreementError) as caught:
        load_agreements(tmp_path, env=FINGERPRINTS)
    assert str(caught.value) == (
        "met-police-wider-help.yaml: pseudonymisation.key_conn_id: 'sf_pseudonym_dwp_benefits_matching' "
        "is already the key of dwp-benefits-matching.yaml; each agreement needs its own key"
    )


def test_a_yml_file_is_refused_rather_than_skipped(tmp_path: Path) -> None:
    shutil.copy(AGREEMENTS_DIR / "ons-evaluation.yaml", tmp_path / "ons-evaluation.yml")
    with pytest.raises(AgreementError, match=r"ons-evaluation\.yml: \(document\): .*must end in \.yaml"):
        load_agreements(tmp_path, env=FINGERPRINTS)


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgreementError, match="agreements directory does not exist"):
        load_agreements(tmp_path / "nowhere")


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgreementError, match=r"^absent\.yaml: \(document\): cannot read the file"):
        load_agreement(tmp_path / "absent.yaml")


def test_an_empty_directory_has_no_agreements(tmp_path: Path) -> None:
    assert load_agreements(tmp_path) == []


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("loading agreements must not touch the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def test_loading_is_cheap_and_offline(no_network: None) -> None:
    # It runs at every DAG parse: all files in well under 50 ms, no network.
    load_agreements(env=FINGERPRINTS)  # first call pays the lazy croniter import, as Airflow already has
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        load_agreements(env=FINGERPRINTS)
        timings.append(time.perf_counter() - start)
    assert statistics.median(timings) < 0.050


# --- one invalid fixture per failure ------------------------------------------------------------------


def test_there_is_a_fixture_for_each_failure_the_brief_names() -> None:
    names = {p.stem for p in INVALID_FILES}
    assert {
        "unknown-key",
        "unknown-field",
        "internal-id-field",
        "missing-fingerprint",
        "malformed-fingerprint",
        "unresolved-fingerprint-placeholder",
        "duplicate-field",
        "return-refers-to-unsent-reference",
        "bad-schedule",
        "missing-purpose",
        "bad-retention",
        "person-ref-not-sent",
        "programme-status-missing",
        "deadline-not-positive",
        # the return side's configuration
        "return-flag-not-a-column",
        "return-flag-not-boolean-or-date",
        "return-flag-mapped-twice",
        "return-flag-bad-sub-criterion",
        "return-flags-keyed-on-family",
        "return-flags-on-receipt",
        "return-pattern-without-delivery-id",
    } <= names


@pytest.mark.parametrize("path", INVALID_FILES, ids=[f"invalid/{p.stem}" for p in INVALID_FILES])
def test_invalid_fixture_fails_naming_file_and_key(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect: key: fragment' line"

    with pytest.raises(AgreementError) as caught:
        load_agreement(path, env=FINGERPRINTS)

    problems = caught.value.problems
    assert all(p.file == path.name for p in problems)
    assert all(line.startswith(f"{path.name}: ") for line in str(caught.value).splitlines())
    assert sorted(p.key for p in problems) == sorted(key for key, _ in expected), str(caught.value)
    for key, fragment in expected:
        messages = [p.message for p in problems if p.key == key]
        assert any(fragment in m for m in messages), f"{key}: expected {fragment!r} in {messages}"


# --- what the return side takes into the register -----------------------------------------------------


def test_return_flags_map_columns_to_the_criteria_partner_sub_criteria(agreements: list[Agreement]) -> None:
    found = by_id(agreements)
    dwp, police, ons = (
        found[i] for i in ("dwp-benefits-matching", "met-police-wider-help", "ons-evaluation")
    )
    assert [(f.column, f.sub_criterion) for f in dwp.returns.flags] == [
        ("out_of_work_benefit", "out_of_work_benefits"),
        ("disability_benefit", "disability_benefits"),
    ]
    assert [(f.column, f.sub_criterion) for f in police.returns.flags] == [
        ("proven_offence_date", "proven_offence_or_caution"),
        ("caution_date", "proven_offence_or_caution"),
        ("asb_intervention_date", "asb_intervention"),
    ]
    assert ons.returns.flags == (), "a receipt carries no flags"


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=[_label(p) for p in AGREEMENT_FILES])
def test_every_flag_is_one_the_criteria_take_from_that_partner(path: Path) -> None:
    # A flag the criteria do not take from this partner would be merged and then silently ignored.
    from supporting_families.config import load_criteria

    agreement = load_agreement(path, env=FINGERPRINTS)
    taken = {
        code: {p.partner for p in sub.partners} for _headline, code, sub in load_criteria().sub_criteria()
    }
    for flag in agreement.returns.flags:
        assert agreement.partner.code in taken.get(flag.sub_criterion, set()), flag
        assert agreement.returns.column(flag.column).type in ("boolean", "date")


def test_each_return_pattern_has_one_slot_for_the_delivery_id(agreements: list[Agreement]) -> None:
    for agreement in agreements:
        pattern = agreement.returns.file_pattern
        assert pattern.count("*") == 1 and "?" not in pattern and "[" not in pattern
