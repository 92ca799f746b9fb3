"""identify_families and confirm_assessment: schedule, outlets, and a real run over a small borough.

Proposed for tests/dags/ (the criteria engineer does not own that folder). Needs a migrated metadata DB.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from upath import UPath

from sf_demo.smtp_sink import SmtpSink
from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.audit import Ledger, LedgerSearch, staff_id
from supporting_families.config import load_sources
from supporting_families.store import read_parquet

pytestmark = pytest.mark.dags

DAGS = Path(__file__).resolve().parents[2] / "dags"
AS_OF = date(2025, 3, 31)


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert bag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in bag.import_errors.items())
    return bag


def test_identify_families_runs_on_all_curated_sources_or_any_flag_return(dagbag: Any) -> None:
    from airflow.sdk import AssetAll, AssetAny

    from sf_airflow.common import IDENTIFICATION, curated_asset, return_asset

    dag = dagbag.dags["identify_families"]
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    all_curated, any_return = condition.objects
    assert isinstance(all_curated, AssetAll)
    sources = load_sources().sources
    departments = {curated_asset(s).name for s, spec in sources.items() if spec.inbound is None}
    assert {a.name for a in all_curated.objects} == departments
    assert {a.name for a in any_return.objects} == {
        return_asset("dwp-benefits-matching").name,
        return_asset("met-police-wider-help").name,
        # The agency's extract comes over SFTP with the answers, and re-runs identification like them.
        curated_asset("debt_advice").name,
    }, "ONS returns a receipt only: it cannot change who meets the criteria"
    assert [o.name for t in dag.tasks for o in t.outlets] == [IDENTIFICATION.name]
    assert dag.max_active_runs == 1


def test_the_assessment_form_offers_reason_codes_and_no_free_text(dagbag: Any) -> None:
    """Form values are stored in the metadata database: only ids and codes, nothing typed freely."""
    from supporting_families.identify import ALL_REASONS, DECISIONS

    params = dagbag.dags["confirm_assessment"].params
    assert params.get_param("reason").schema["enum"] == list(ALL_REASONS)
    assert params.get_param("decision").schema["enum"] == list(DECISIONS)
    for name in params:
        schema = params.get_param(name).schema
        assert "enum" in schema or "pattern" in schema or schema.get("format") == "date", name


def _smtp(port: int) -> dict[str, Any]:
    return {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {
            "disable_tls": True,
            "disable_ssl": True,
            "from_email": "supporting-families@council.invalid",
            "to": ["dpo@council.invalid"],
            "lead_practitioner": ["lead.practitioner@council.invalid"],
            "timeout": 10,
        },
    }


def _check_the_lead_practitioners_mail(messages: list[bytes], worklist: Any, root: UPath) -> None:
    """One mail to the lead practitioner: every family new on the worklist by its reference, each headline
    problem with its reason; no name, address, postcode or person id of anyone in the register."""
    assert len(messages) == 1
    mail = email.message_from_bytes(messages[0], policy=email.policy.default)
    assert mail["X-Sink-Recipients"] == "lead.practitioner@council.invalid"
    assert f"{worklist.num_rows} families newly eligible" in str(mail["Subject"])
    body = "\n".join(str(part.get_content()) for part in mail.walk() if part.get_content_maintype() == "text")
    for family_id in worklist.column("family_id").to_pylist():
        assert family_id in body
    problems = read_parquet(root / "identification" / AS_OF.isoformat() / "family_problems.parquet")
    on_worklist = problems.filter(pc.is_in(problems["family_id"], value_set=worklist["family_id"]))
    for reason in set(on_worklist.column("reason").to_pylist()):
        assert html.escape(reason) in body
    persons = read_parquet(root / "register" / "persons.parquet")
    for column in ("given_name", "family_name", "postcode", "address_line_1", "person_id"):
        values = {str(v) for v in persons.column(column).to_pylist() if v and len(str(v)) > 3}
        leaked = [v for v in values if v in body]
        assert not leaked, f"{column}: {len(leaked)} values in the mail"


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_a_run_identifies_the_truths_eligible_households_and_a_practitioner_confirms_one(
    dagbag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from supporting_families.ingest import ingest_source

    root = UPath(tmp_path.as_uri())
    monkeypatch.setenv("SF_STORE_URI", tmp_path.as_uri())
    monkeypatch.delenv("SF_STORE_CONN_ID", raising=False)
    borough = generate_borough(1500, seed=7, as_of=AS_OF, dirt=DirtConfig.clean())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    for spec in load_sources().sources.values():
        ingest_source(root, spec)

    key = "ab" * 32
    monkeypatch.setenv("AIRFLOW_CONN_SF_STAFF_ID_KEY", json.dumps({"conn_type": "generic", "password": key}))
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("SF_LEDGER_URL", ledger_url)
    with SmtpSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SF_SMTP", json.dumps(_smtp(sink.port)))
        run = dagbag.dags["identify_families"].test()
        assert _states(run) == {
            "build_register": "success",
            "evaluate_criteria": "success",
            "publish_for_shares": "success",  # a manual run publishes for the shares
            "tell_lead_practitioner": "success",
        }
        first_mail = sink.messages()
        # The same evidence again: nothing is new, nothing is sent.
        assert set(_states(dagbag.dags["identify_families"].test()).values()) == {"success"}
        assert sink.messages() == first_mail
    worklist = read_parquet(root / "identification" / AS_OF.isoformat() / "worklist.parquet")
    _check_the_lead_practitioners_mail(first_mail, worklist, root)
    # Each identification is in the ledger with who started it (dag.test() names the user "dag_test").
    with Ledger(ledger_url) as ledger:
        runs = list(ledger.search_all(LedgerSearch(kind="assessment")))
    assert [e.details["newly_eligible"] for e in runs] == [worklist.num_rows, 0]
    assert {e.triggered_by for e in runs} == {staff_id(bytes.fromhex(key), "dag_test")}
    assert runs[0].details["worklist_sha256"] == runs[1].details["worklist_sha256"]
    crit = borough.person_criteria.filter(pc.equal(borough.person_criteria.column("origin"), "internal"))
    per = crit.group_by("household_id").aggregate([("headline_problem", "count_distinct")])
    n_truth = per.filter(pc.greater_equal(per.column("headline_problem_count_distinct"), 2)).num_rows
    n_found = worklist.num_rows
    assert n_found == n_truth, "on clean data the worklist has exactly the truth's eligible households"

    family = worklist.column("family_id")[0].as_py()
    confirm = dagbag.dags["confirm_assessment"]
    conf = {"decision": "meets_criteria", "reason": "confirmed_at_panel"}
    ok = confirm.test(run_conf={"family_id": family, **conf})
    assert _states(ok) == {"record": "success"}
    assessments = read_parquet(root / "register" / "assessments.parquet")
    assert assessments.column("programme_status").to_pylist() == ["assessed_as_meeting_criteria"]
    # Who decided: the user who triggered the run (dag.test() names it "dag_test"), by staff id only.
    staff = staff_id(bytes.fromhex(key), "dag_test")
    assert assessments.column("practitioner").to_pylist() == [staff]
    with Ledger(ledger_url) as ledger:
        (decision,) = ledger.search(LedgerSearch(kind="practitioner_decision"))
    assert decision.triggered_by == staff and decision.dag_id == "confirm_assessment"
    assert decision.details["assessment_id"] == assessments.column("assessment_id")[0].as_py()
    refused = confirm.test(run_conf={"family_id": "HNOSUCHFAMILY000", **conf})
    assert _states(refused) == {"record": "failed"}
    assert [ti.try_number for ti in refused.get_task_instances()] == [1], "a refused request is not retried"
