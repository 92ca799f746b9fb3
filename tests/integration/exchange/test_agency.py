"""A voluntary-sector agency's extract over the real sshd and gpg: sent, collected, ingested, identified.

The synthetic borough writes the money advice agency's extract where the agency keeps it; the simulator
sends it as the agency would (signed with its key, encrypted to the council's, into its SFTP outbox); the
council's collect step fetches, verifies and lands it; ingest and identification take it like any extract.
Its debt-advice flags make families eligible that were not. Each fault ends with nothing half-loaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from upath import UPath

from sf_demo.partner_simulator import Fault
from sf_demo.partner_simulator.agency import remote_name
from sf_demo.partner_simulator.environment import DemoEnvironment
from sf_demo.secrets import GnuPG, SecretsLayout, generate_demo_secrets, stop_gpg_agents
from sf_demo.sftp_server import LocalSftpServer, inbound_folders, inbound_jails
from sf_demo.sftp_server import SftpServerInfo as ServerEndpoint
from sf_demo.synthetic import Borough, generate_borough, write_borough
from supporting_families.audit import Ledger
from supporting_families.config import SourceSpec, load_criteria, load_sources
from supporting_families.identify import identify, refresh_register
from supporting_families.inbound import CollectSummary, collect_extracts
from supporting_families.ingest import ingest_source, read_report
from supporting_families.receive import RunInfo
from supporting_families.store import layout, store_root
from supporting_families.transport import SftpEndpoint
from tests.integration.airflow.test_cycle_no_personal_data import _find, _needles
from tests.integration.conftest import REPO, _sftp_root
from tests.integration.platform_fixtures import PlatformEnv, set_deployment_env

pytestmark = pytest.mark.integration

AS_OF = date(2026, 3, 31)
SOURCES = load_sources()
SPEC = SOURCES.sources["debt_advice"]
DEPARTMENTS = [s for s, spec in SOURCES.sources.items() if spec.inbound is None]
REASON = (
    load_criteria()
    .headline_problems["worklessness_financial_exclusion"]
    .sub_criteria["debt_advice_referral"]
    .reason
)


@pytest.fixture(scope="module")
def borough() -> Borough:
    return generate_borough(3000, seed=11, as_of=AS_OF)


@pytest.fixture
def store(tmp_path: Path, borough: Borough) -> UPath:
    (tmp_path / "store").mkdir()
    root = store_root((tmp_path / "store").as_uri())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    return root


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as book:
        yield book


@pytest.fixture
def agency_env(platform_env: PlatformEnv, store: UPath, tmp_path: Path) -> Iterator[DemoEnvironment]:
    env = DemoEnvironment(
        secrets=platform_env.secrets,
        sftp_root=platform_env.server.root,
        state_dir=tmp_path / "sim",
        store=store,
    )
    yield env
    outbox = platform_env.server.root / SPEC.inbound.sftp.remote_outbox  # type: ignore[union-attr]
    for leftover in outbox.iterdir():  # set-aside entries and anything a failing test left
        leftover.unlink()


def _endpoint(platform_env: PlatformEnv) -> SftpEndpoint:
    return platform_env.connection_endpoint(SPEC.inbound.sftp.conn_id)  # type: ignore[union-attr]


def _collect(
    platform_env: PlatformEnv, store: UPath, ledger: Ledger, spec: SourceSpec = SPEC
) -> CollectSummary:
    env = _fingerprints(platform_env)
    assert spec.inbound is not None
    return collect_extracts(
        store,
        spec,
        _endpoint(platform_env),
        gnupg_home=platform_env.secrets.gnupg_council,
        passphrase=platform_env.council_passphrase,
        signer_fingerprint=spec.inbound.signer(env),
        ledger=ledger,
        run=RunInfo(dag_id="collect_debt_advice", run_id="manual__test", task_id="collect", try_number=1),
    )


def _fingerprints(platform_env: PlatformEnv) -> dict[str, str]:
    lines = platform_env.secrets.fingerprints_env.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _eligible(store: UPath) -> set[str]:
    folder = Path(layout.identification_root(store).path)
    newest = sorted(p for p in folder.iterdir() if p.is_dir())[-1]
    return set(pq.read_table(newest / "worklist.parquet")["family_id"].to_pylist())


def _identify(store: UPath) -> set[str]:
    refresh_register(store, list(SOURCES.sources), tombstone_key=None)
    identify(store, list(SOURCES.sources), today=AS_OF)
    return _eligible(store)


def test_the_agencys_file_is_collected_ingested_and_its_flags_make_families_eligible(
    platform_env: PlatformEnv,
    agency_env: DemoEnvironment,
    store: UPath,
    ledger: Ledger,
    borough: Borough,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for source in DEPARTMENTS:
        ingest_source(store, SOURCES.sources[source])
    before = _identify(store)
    landing = Path(layout.landing_dir(store, SPEC.file_glob).path)
    assert not landing.exists() or not any(landing.iterdir()), "the agency's extract never lands by itself"

    sent = agency_env.send_agency_extract(SPEC, seed=1)
    assert sent.files_sent == 1 and sent.rows > 0
    outbox = platform_env.server.root / SPEC.inbound.sftp.remote_outbox  # type: ignore[union-attr]
    assert [p.name for p in outbox.iterdir()] == [remote_name(SPEC, AS_OF)]

    original = (outbox / remote_name(SPEC, AS_OF)).read_bytes()
    summary = _collect(platform_env, store, ledger)
    assert summary.counts() == {
        "landed": 1,
        "already_landed": 0,
        "quarantined": 0,
        "refused": 0,
        "changing": 0,
    }
    assert not list(outbox.iterdir()), "a collected file leaves the outbox"
    received = ledger.entries(kind="extract_received")
    assert len(received) == 1 and received[0].partner == "money-advice"
    assert received[0].details["source"] == "debt_advice"
    assert received[0].file_name and SPEC.name not in received[0].file_name  # the name's hash, not the name
    # The same file again (a retry after a crash before the outbox was cleared): it is known by its hash,
    # nothing lands twice and the ledger keeps one entry.
    (outbox / remote_name(SPEC, AS_OF)).write_bytes(original)
    again = _collect(platform_env, store, ledger)
    assert again.counts()["already_landed"] == 1 and again.counts()["landed"] == 0
    assert len(ledger.entries(kind="extract_received")) == 1

    (report,) = ingest_source(store, SPEC)
    assert report.status == "ingested" and report.accepted == sent.rows and not report.rejected
    after = _identify(store)
    newly = after - before
    assert before <= after and newly, "the agency's flags make at least one family eligible"
    folder = Path(layout.identification_root(store).path)
    flags = pq.read_table(sorted(p for p in folder.iterdir() if p.is_dir())[-1] / "person_flags.parquet")
    agency_flags = flags.filter(pc.equal(flags["source"], "debt_advice"))
    assert agency_flags.num_rows and all(r.startswith(REASON) for r in agency_flags["reason"].to_pylist())
    assert set(agency_flags["sub_criterion"].to_pylist()) == {"debt_advice_referral"}
    # The truth agrees: those families are eligible with the agency's extract and not without it.
    fam = borough.family_criteria
    truth_households = set(
        fam.filter(pc.and_(fam["eligible_with_partners"], pc.invert(fam["eligible_internal"])))[
            "household_id"
        ].to_pylist()
    )
    assert truth_households, "the borough has families the agency alone makes eligible"

    # No personal data in the logs or the ledger.
    text = caplog.text + "\n".join(
        json.dumps(e.details) + str(e.file_name) for e in ledger.entries(limit=1000)
    )
    assert _find(text, _needles(borough.persons)) == {}


@pytest.mark.parametrize(
    ("fault", "rule"), [(Fault.WRONG_SIGNER, "signature"), (Fault.TAMPERED_CIPHERTEXT, "integrity")], ids=str
)
def test_a_wrongly_signed_or_tampered_file_is_quarantined_whole_and_nothing_lands(
    platform_env: PlatformEnv,
    agency_env: DemoEnvironment,
    store: UPath,
    ledger: Ledger,
    fault: Fault,
    rule: str,
) -> None:
    agency_env.send_agency_extract(SPEC, seed=2, faults=frozenset({fault}))
    summary = _collect(platform_env, store, ledger)
    assert summary.counts()["quarantined"] == 1 and summary.counts()["landed"] == 0
    assert [p.split(":")[0] for p in summary.problems()] == [f"1 file(s) {rule}"]
    landing = Path(layout.landing_dir(store, SPEC.file_glob).path)
    assert not landing.exists() or not any(landing.iterdir()), "nothing of it landed"
    name = remote_name(SPEC, AS_OF)
    folder = Path(layout.ingest_quarantine_dir(store, SPEC.name, name).path)
    reason = json.loads((folder / "reason.json").read_text())
    assert reason["rule"] == rule and reason["source"] == "debt_advice"
    assert (folder / "original.gpg").stat().st_size > 0, "kept whole, encrypted as it came"
    (entry,) = ledger.entries(kind="quarantine")
    assert entry.details == {"source": "debt_advice", "rule": rule}
    assert not ledger.entries(kind="extract_received")
    outbox = platform_env.server.root / SPEC.inbound.sftp.remote_outbox  # type: ignore[union-attr]
    assert not list(outbox.iterdir()), "never picked up again"


def test_a_malformed_file_lands_and_ingest_quarantines_it_whole_with_its_file_row_and_rule(
    platform_env: PlatformEnv, agency_env: DemoEnvironment, store: UPath, ledger: Ledger
) -> None:
    agency_env.send_agency_extract(SPEC, seed=3, faults=frozenset({Fault.MALFORMED_CSV}))
    assert _collect(platform_env, store, ledger).counts()["landed"] == 1  # signed and intact: it lands
    (report,) = ingest_source(store, SPEC)
    assert report.status == "rejected"
    name = remote_name(SPEC, AS_OF).removesuffix(".gpg")
    assert read_report(store, SPEC, name) is not None
    folder = Path(layout.ingest_quarantine_dir(store, SPEC.name, name).path)
    reason = json.loads((folder / "reason.json").read_text())
    assert reason["file"] == name and reason["rule"] == "ragged_rows"
    assert "1 row(s)" in reason["detail"] and "the first on line " in reason["detail"], reason["detail"]
    curated = Path(layout.curated_dir(store, SPEC.name).path)
    assert not curated.exists() or not any(curated.iterdir()), "nothing half-loaded"


SECOND_AGENCY = """
  food_bank:
    department: Voluntary sector (food bank)
    system: the food bank's referral records, shared under its data sharing agreement with the council
    holds: adults referred to the food bank
    row_grain: one row per referral
    file_glob: extracts/food_bank/food_bank_*.csv
    extract_date_format: "%Y-%m-%d"
    encoding: utf-8
    delimiter: ","
    quoting: all
    line_terminator: lf
    date_format: "%d/%m/%Y"
    record_id: Ref
    columns:
      - {name: Ref, standard: record_id, type: string, pattern: "^FB[0-9]{6}$"}
      - {name: FirstName, standard: given_name, type: string}
      - {name: LastName, standard: family_name, type: string}
      - {name: DateOfBirth, standard: date_of_birth, type: date}
      - {name: Postcode, standard: postcode, type: postcode, format: spaced}
      - {name: ReferralType, standard: referral_type, type: code, codes: {DEBT: debt_advice, FOOD: food}}
      - {name: ReferralDate, standard: referral_date, type: date}
    inbound:
      agency: {code: food-bank, name: North Kensington Food Bank (test fixture)}
      sftp: {conn_id: sf_sftp_food_bank, remote_outbox: food-bank/outbox}
      signer_fingerprint: ${SF_FOOD_BANK_PGP_FINGERPRINT}
"""

SECOND_RULE = """          - source: debt_advice
            rule: within_window
            codes: {column: referral_type, values: [debt_advice]}
            date: referral_date
            window_months: 12
          - source: food_bank
            rule: within_window
            codes: {column: referral_type, values: [debt_advice]}
            date: referral_date
            window_months: 12
"""


def test_a_second_agency_is_configuration_only(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, sftp_server: LocalSftpServer
) -> None:
    # A copy of the configuration with one more agency in sources.yaml and its rule in criteria.yaml, and
    # no Python: the schema takes it, the DAG factories build its collect and ingest DAGs, and the demo's
    # set-up gives it a real OpenPGP key, an SFTP connection and an outbox.
    include = REPO / "include"
    sources_text = (include / "sources.yaml").read_text() + SECOND_AGENCY
    criteria_text = (include / "criteria.yaml").read_text()
    rule = SECOND_RULE.split("          - source: food_bank")[0]
    assert criteria_text.count(rule) == 1
    criteria_text = criteria_text.replace(rule, SECOND_RULE)
    (tmp_path / "sources.yaml").write_text(sources_text)
    (tmp_path / "criteria.yaml").write_text(criteria_text)
    sources = load_sources(tmp_path / "sources.yaml")
    criteria = load_criteria(tmp_path / "criteria.yaml", sources)
    rules = criteria.headline_problems["worklessness_financial_exclusion"].sub_criteria[
        "debt_advice_referral"
    ]
    assert [r.source for r in rules.internal] == ["debt_advice", "food_bank"]
    spec = sources.sources["food_bank"]

    collect_dags = _load_dag_module("collect_sources")
    ingest_dags = _load_dag_module("ingest_sources")
    collect = collect_dags.build_collect_dag(spec)
    ingest = ingest_dags.build_ingest_dag(spec)
    assert collect.dag_id == "collect_food_bank" and ingest.dag_id == "ingest_food_bank"
    sensor = collect.get_task("wait_for_extract")
    assert (sensor.sftp_conn_id, sensor.path, sensor.file_pattern) == (
        "sf_sftp_food_bank",
        "food-bank/outbox",
        "food_bank_*.csv.gpg",
    )
    assert "sf_landed_food_bank" in str(ingest.timetable.asset_condition)
    assert {o.name for t in collect.tasks for o in t.outlets} == {"sf_landed_food_bank"}

    assert "food-bank/outbox" in inbound_folders(sources)
    assert inbound_jails(sources)["sfp-food-bank"] == "food-bank"
    # A server started from this configuration: the agency gets its folder (and, as root, its own jail).
    root, cleanup = _sftp_root(tmp_path_factory)
    server = LocalSftpServer(
        root=root,
        state_dir=tmp_path / "sftp-state",
        folders=[*sftp_server.remote_dirs, *inbound_folders(sources)],
        jails={**sftp_server.jails, **inbound_jails(sources)} if sftp_server.uses_chroot else None,
    ).start()
    state = tmp_path / "secrets"
    try:
        generate_demo_secrets(state, ServerEndpoint.from_server_state(server.state_dir), sources=sources)
        layout_ = SecretsLayout(state)
        connections = json.loads(layout_.connections_file.read_text())
        assert connections["sf_sftp_food_bank"]["extra"]["host_key"]
        env = dict(
            line.split("=", 1) for line in layout_.fingerprints_env.read_text().splitlines() if "=" in line
        )
        fingerprint = spec.inbound.signer(env)  # type: ignore[union-attr]
        assert fingerprint != SPEC.inbound.signer(env)  # type: ignore[union-attr]
        council = GnuPG(layout_.gnupg_council)
        assert council.key(fingerprint) is not None, "the agency's public key is in the council's keyring"
    finally:
        stop_gpg_agents(state)
        server.stop()
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)


def _load_dag_module(name: str) -> Any:
    loaded = importlib.util.spec_from_file_location(f"_sf_test_{name}", REPO / "dags" / f"{name}.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def test_the_collect_dag_lands_the_agencys_file_and_the_ingest_dag_takes_it(
    platform_env: PlatformEnv,
    agency_env: DemoEnvironment,
    store: UPath,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Through Airflow (dag.test(), in-process): the pinned deferrable sensor sees the file, collect lands it
    # and emits the landed asset, verdict passes; then ingest_debt_advice curates it. XCom: counts only.
    from airflow.dag_processing.dagbag import DagBag

    ledger_url = f"sqlite:///{tmp_path / 'dag-ledger.sqlite'}"
    set_deployment_env(platform_env, monkeypatch, str(store), ledger_url)
    agency_env.send_agency_extract(SPEC, seed=4)
    bag = DagBag(dag_folder=str(REPO / "dags" / "collect_sources.py"), safe_mode=False)
    assert bag.import_errors == {}
    run = bag.dags["collect_debt_advice"].test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"wait_for_extract": "success", "collect": "success", "verdict": "success"}
    with Ledger(ledger_url) as book:
        (entry,) = book.entries(kind="extract_received")
        assert entry.dag_id == "collect_debt_advice" and entry.run_id == run.run_id
    ingest = DagBag(dag_folder=str(REPO / "dags" / "ingest_sources.py"), safe_mode=False)
    done = ingest.dags["ingest_debt_advice"].test()
    assert str(done.state) == "success"
    curated = Path(layout.curated_dir(store, SPEC.name).path)
    assert [p.name for p in curated.iterdir()] == [f"debt_advice_{AS_OF.isoformat()}.parquet"]
