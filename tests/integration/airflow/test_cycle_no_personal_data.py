"""The whole share side through Airflow, then a search of its traces for every synthetic person.

Identification and the three share DAGs run with ``dag.test()`` against the real sshd and gpg. Then task
logs (everything the tasks printed or logged, and any log files), XCom and every table of the Airflow
metadata database are searched for each synthetic name, date of birth, postcode, address and UPRN. The
platform's own traces must hold counts, hashes and pseudonyms only.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from upath import UPath

from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.audit import Ledger
from supporting_families.config import load_sources
from supporting_families.identify import record_assessment
from supporting_families.ingest import ingest_source
from supporting_families.store import read_parquet
from supporting_families.transport.openpgp import decrypt_and_verify
from tests.integration.platform_fixtures import PlatformEnv, set_deployment_env
from tests.lineage_events import completed, lineage_events, lineage_text, schema

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[3] / "dags"
AS_OF = date(2026, 3, 31)


@pytest.fixture
def deployment(platform_env: PlatformEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[UPath]:
    """Store, ledger, fingerprints and every connection, as a deployment provides them (env vars)."""
    root = UPath(tmp_path.joinpath("store").as_uri())
    set_deployment_env(platform_env, monkeypatch, str(root), f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    before = {a.id: set(platform_env.inbox(a).iterdir()) for a in platform_env.agreements.values()}
    yield root
    # Leave the shared server's inboxes as this test found them.
    for a in platform_env.agreements.values():
        for path in set(platform_env.inbox(a).iterdir()) - before[a.id]:
            path.unlink()


def _needles(persons: Any) -> dict[str, set[str]]:
    """Every identifying value of every synthetic person, in the forms the platform could write them."""
    rows = persons.to_pylist()
    names, dobs, postcodes, addresses, uprns = set(), set(), set(), set(), set()
    for p in rows:
        names.add(f"{p['given_name']} {p['family_name']}".lower())
        names.add(f"{p['family_name']}, {p['given_name']}".lower())
        dob: date = p["date_of_birth"]
        if dob not in (AS_OF, date.today()):  # dates the platform itself writes
            dobs.update({dob.isoformat(), dob.strftime("%d/%m/%Y")})
        if p["postcode"]:
            postcodes.update({p["postcode"].lower(), p["postcode"].replace(" ", "").lower()})
        if p["address_line_1"]:
            addresses.add(p["address_line_1"].lower())
        if p["uprn"]:
            uprns.add(p["uprn"])
    return {"name": names, "date of birth": dobs, "postcode": postcodes, "address": addresses, "uprn": uprns}


def _find(text: str, needles: dict[str, set[str]]) -> dict[str, int]:
    """How many values of each kind occur in ``text`` (as whole words); never the values themselves."""
    haystack = text.lower()
    found: dict[str, int] = {}
    for kind, values in needles.items():
        hits = sum(
            1 for v in values if v in haystack and re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", haystack)
        )
        if hits:
            found[kind] = hits
    return found


def _metadata_text(db: Path) -> str:
    """Every text and blob value of every table in the SQLite metadata database."""
    parts: list[str] = []
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 (names from the catalogue)
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("utf-8", "replace"))
                    elif isinstance(value, str):
                        parts.append(value)
    return "\n".join(parts)


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_shares_leave_no_personal_data_in_logs_xcom_or_metadata(
    platform_env: PlatformEnv, deployment: UPath, capfd: pytest.CaptureFixture[str], caplog: Any
) -> None:
    import os

    from airflow.dag_processing.dagbag import DagBag
    from airflow.settings import SQL_ALCHEMY_CONN

    root = deployment
    borough = generate_borough(1500, seed=11, as_of=AS_OF, dirt=DirtConfig.clean())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    for spec in load_sources().sources.values():
        ingest_source(root, spec)

    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert bag.import_errors == {}
    run = bag.dags["identify_families"].test()
    assert set(_states(run).values()) == {"success"}

    # A practitioner confirms one family from the worklist, so the ONS cohort has an assessed family.
    worklist = read_parquet(root / "identification" / AS_OF.isoformat() / "worklist.parquet")
    assert worklist.num_rows > 0
    record_assessment(
        root,
        worklist["family_id"][0].as_py(),
        "meets_criteria",
        "PRAC001",
        AS_OF,
        reason="confirmed_at_panel",
    )

    delivered: dict[str, int] = {}
    for agreement in platform_env.agreements.values():
        run = bag.dags[f"share__{agreement.dag_id_suffix}"].test()
        assert set(_states(run).values()) == {"success"}, (agreement.id, _states(run))
        inbox = platform_env.inbox(agreement)
        delivered[agreement.id] = len(list(inbox.glob(f"sf-{agreement.id}-*.csv.gpg")))
    assert all(n >= 1 for n in delivered.values()), delivered

    # The partner finds exactly the agreed fields (and only references, never internal ids).
    dwp = platform_env.agreements["dwp-benefits-matching"]
    cipher = sorted(platform_env.inbox(dwp).glob("sf-dwp-benefits-matching-*.csv.gpg"))[-1]
    plain = cipher.with_suffix(".plain")
    decrypt_and_verify(
        cipher,
        plain,
        expected_signer_fingerprint=platform_env.council_fingerprint,
        passphrase=None,
        gnupg_home=platform_env.secrets.gnupg_partners,
    )
    header = next(csv.reader(io.StringIO(plain.read_text(encoding="utf-8"))))
    plain.unlink()
    assert tuple(header) == dwp.fields

    # One disclosure per share in the ledger, and the chain verifies.
    with Ledger(os.environ["SF_LEDGER_URL"]) as ledger:
        assert ledger.count("disclosure") == len(platform_env.agreements)
        assert ledger.verify().ok

    # Now the search. Persons who were actually shared are the sharpest test, but search for everyone.
    needles = _needles(borough.persons)
    captured = capfd.readouterr()
    logs = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    home = Path(os.environ["AIRFLOW_HOME"])
    for log_file in (home / "logs").rglob("*.log") if (home / "logs").exists() else []:
        logs += log_file.read_text(errors="replace")
    assert "share__dwp_benefits_matching" in logs, "the task logs were not captured"
    assert _find(logs, needles) == {}, "personal data found in task logs (counts by kind)"

    assert SQL_ALCHEMY_CONN.startswith("sqlite:///")
    metadata = _metadata_text(Path(SQL_ALCHEMY_CONN.removeprefix("sqlite:///")))
    assert "sf-dwp-benefits-matching" in metadata or "share__dwp_benefits_matching" in metadata
    assert _find(metadata, needles) == {}, "personal data found in the metadata database (incl. XCom)"

    # The ledger too: it outlives the data, so nothing personal may ever enter it.
    with Ledger(os.environ["SF_LEDGER_URL"]) as ledger:
        ledger_text = json.dumps([e.to_dict() for e in ledger.entries(limit=1000)], default=str)
    assert _find(ledger_text, needles) == {}

    # Lineage: the events the share runs emitted (the file transport, tests/conftest.py). The DWP share's
    # output dataset, the partner's inbox, lists exactly the agreement's fields, in order; no event holds
    # personal data, nor a name the partner chose.
    dwp_events = lineage_events(f"share__{dwp.dag_id_suffix}")
    [deliver_event] = [e for e in completed(dwp_events, "deliver") if e["eventType"] == "COMPLETE"][-1:]
    [inbox] = deliver_event["outputs"]
    assert inbox["namespace"] == f"sftp://{platform_env.server.host}:{platform_env.server.port}"
    assert inbox["name"] == dwp.sftp.remote_inbox
    assert tuple(schema(inbox)) == dwp.fields
    assert inbox["outputFacets"]["outputStatistics"]["rowCount"] > 0
    assert deliver_event["run"]["facets"]["supportingFamilies_agreement"]["partnerCode"] == dwp.partner.code
    for agreement in platform_env.agreements.values():
        assert completed(lineage_events(f"share__{agreement.dag_id_suffix}"), "deliver"), agreement.id
    events = lineage_text()
    assert _find(events, needles) == {}, "personal data found in the lineage events (counts by kind)"

    # Sanity: the needles are real — the curated store (controller side) does hold them.
    curated = read_parquet(next((root / "curated" / "education_attendance").iterdir()))
    sample = "\n".join(str(v) for v in pc.unique(curated["postcode"]).to_pylist()[:50])
    assert _find(sample, needles).get("postcode", 0) > 0
