"""The data subjects' rights end to end through Airflow, with the real sshd and gpg.

A synthetic borough is ingested and identified; DWP and the police each receive a share that includes one
person. Then, each through its ``rights_*`` DAG: subject access (the bundle, decrypted with the DPO's key,
lists both deliveries with the exact fields and values the partners decrypt), rectification of the postcode
(both partners get a notice that decrypts to the new value), a restriction recorded today (today's share
leaves that person out), erasure (a scan of every file of the store, the logs and the metadata database
finds none of the person's values, others are intact, re-ingest does not bring them back, both partners get
notices), a request 31 days old raising the deadline alert by e-mail, and the ledger chain verifying.
"""

from __future__ import annotations

import csv
import email
import io
import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from upath import UPath

from sf_demo.smtp_sink import SmtpSink
from sf_demo.synthetic import DirtConfig, generate_borough, write_borough
from supporting_families.audit import Ledger
from supporting_families.config import load_sources
from supporting_families.ingest import ingest_source
from supporting_families.registers import open_request
from supporting_families.rights import stage_correction
from supporting_families.share import Delivery
from supporting_families.store import FileKeyStore, open_bytes, read_parquet
from supporting_families.store.layout import register_file
from supporting_families.transport.openpgp import decrypt_and_verify
from tests.integration.airflow.test_cycle_no_personal_data import _find, _metadata_text, _states
from tests.integration.platform_fixtures import PlatformEnv, set_deployment_env

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[3] / "dags"
AS_OF = date(2026, 3, 31)
DWP, POLICE = "dwp-benefits-matching", "met-police-wider-help"
NEW_POSTCODE = "SW1A 2AA"


@pytest.fixture
def deployment(platform_env: PlatformEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[UPath]:
    root = UPath(tmp_path.joinpath("store").as_uri())
    set_deployment_env(platform_env, monkeypatch, str(root), f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    monkeypatch.setenv("SF_KEYSTORE_DIR", str(platform_env.secrets.data_keys_dir))
    before = {a.id: set(platform_env.inbox(a).iterdir()) for a in platform_env.agreements.values()}
    yield root
    for a in platform_env.agreements.values():
        for path in set(platform_env.inbox(a).iterdir()) - before[a.id]:
            path.unlink()


def _decrypt(path: Path, home: Path, signer: str, tmp: Path) -> bytes:
    out = tmp / (path.name + ".plain")
    decrypt_and_verify(path, out, expected_signer_fingerprint=signer, passphrase=None, gnupg_home=home)
    data = out.read_bytes()
    out.unlink()
    return data


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _refs(root: UPath, agreement_id: str) -> dict[str, pa.Table]:
    out = {}
    for folder in sorted((root / "deliveries" / agreement_id).iterdir(), key=lambda p: p.name):
        out[folder.name] = Delivery(root, agreement_id, folder.name).references(FileKeyStore.from_env())
    return out


IDENTITY = ("given_name", "family_name", "date_of_birth", "postcode", "address_line_1", "uprn")


def _person_to_erase(root: UPath, candidates: set[str]) -> dict[str, Any]:
    """A person alone in their household (so no one else shares their address and UPRN) with a date of
    birth no one else has: then every value below is theirs alone, and a scan can tell their data from
    others'. Values they share with neighbours (a postcode, a common surname) are checked row by row."""
    persons = read_parquet(register_file(root, "persons")).to_pylist()
    households: dict[str, int] = {}
    dobs: dict[object, int] = {}
    for row in persons:
        households[str(row["household_id"])] = households.get(str(row["household_id"]), 0) + 1
        dobs[row["date_of_birth"]] = dobs.get(row["date_of_birth"], 0) + 1
    for row in sorted(persons, key=lambda r: str(r["person_id"])):
        if (
            row["person_id"] in candidates
            and households[str(row["household_id"])] == 1
            and dobs[row["date_of_birth"]] == 1
            and row["date_of_birth"] not in (AS_OF, date.today())
            and row["address_line_1"]
        ):
            return dict(row)
    raise AssertionError(
        "no person alone in a household with a date of birth of their own in both deliveries"
    )


def _needles(person: dict[str, Any], others: list[dict[str, Any]], ids: set[str]) -> dict[str, set[str]]:
    """The person's values that no one else in the register has, in the forms the platform writes them, and
    their person id and references."""
    taken: dict[str, set[str]] = {
        f: {str(o[f]).lower() for o in others if o[f] is not None} for f in IDENTITY
    }
    values: dict[str, set[str]] = {
        k: set() for k in ("name", "date of birth", "postcode", "address", "uprn", "id")
    }
    for field, kind in (
        ("given_name", "name"),
        ("family_name", "name"),
        ("address_line_1", "address"),
        ("uprn", "uprn"),
    ):
        if person[field] and str(person[field]).lower() not in taken[field]:
            values[kind].add(str(person[field]).lower())
    dob: date = person["date_of_birth"]
    values["date of birth"].update({dob.isoformat(), dob.strftime("%d/%m/%Y")})
    for pcode in (person["postcode"], NEW_POSTCODE):
        if pcode and pcode.lower() not in taken["postcode"]:
            values["postcode"].update({pcode.lower(), pcode.replace(" ", "").lower()})
    values["id"] = {i.lower() for i in ids}
    return values


def _rows_of(table: pa.Table, person: dict[str, Any]) -> int:
    """Rows holding the person's date of birth with their given or family name: theirs, not a neighbour's."""
    if "date_of_birth" not in table.column_names:
        return 0
    n = 0
    for row in table.to_pylist():
        if row.get("date_of_birth") == person["date_of_birth"] and (
            row.get("given_name") == person["given_name"] or row.get("family_name") == person["family_name"]
        ):
            n += 1
    return n


def _store_text(root: UPath, env: PlatformEnv, tmp: Path, tables: dict[str, pa.Table]) -> dict[str, str]:
    """Every file under the store, decoded: parquet as its values, sealed files opened, OpenPGP files
    decrypted with every keyring the test has, zips unpacked. The demo's ground truth is left out: it stands
    for the departments' and partners' own systems, not the council's store."""
    texts: dict[str, str] = {}
    base = Path(root.path)
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        if rel.startswith("demo/"):
            continue
        data = path.read_bytes()
        if path.name.endswith(".sealed"):
            data = open_bytes(data, env.data_keys, rel)
        if path.suffix == ".gpg":
            for home in (env.secrets.gnupg_partners, env.secrets.gnupg_council, env.secrets.gnupg_dpo):
                result = subprocess.run(
                    [
                        "gpg",
                        "--homedir",
                        str(home),
                        "--batch",
                        "--quiet",
                        "--pinentry-mode",
                        "loopback",
                        "--passphrase",
                        env.council_passphrase,
                        "--decrypt",
                    ],
                    input=data,
                    capture_output=True,
                    check=False,
                )
                if result.returncode == 0:
                    data = result.stdout
                    break
            else:
                raise AssertionError(f"{rel}: no keyring of the test decrypts it")
        if data[:4] == b"PAR1":
            table = pq.read_table(io.BytesIO(data))
            texts[rel] = json.dumps(table.to_pylist(), default=str)
            tables[rel] = table
        elif data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                texts[rel] = "\n".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
        else:
            texts[rel] = data.decode("utf-8", "replace")
    return texts


def test_the_rights_end_to_end(
    platform_env: PlatformEnv,
    deployment: UPath,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: Any,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.settings import SQL_ALCHEMY_CONN

    root = deployment
    sink = SmtpSink(tmp_path / "mail")
    smtp = dict(platform_env.connections["sf_smtp"])
    smtp["port"] = 0
    with sink:
        smtp["port"] = sink.port
        monkeypatch.setenv("AIRFLOW_CONN_SF_SMTP", json.dumps(smtp))
        _scenario(platform_env, root, tmp_path, sink, capfd, caplog, DagBag, SQL_ALCHEMY_CONN)


def _scenario(
    env: PlatformEnv, root: UPath, tmp: Path, sink: SmtpSink, capfd: Any, caplog: Any, DagBag: Any, sql: str
) -> None:
    borough = generate_borough(900, seed=23, as_of=AS_OF, dirt=DirtConfig.clean())
    write_borough(borough, root / "landing", truth_root=root / "demo")
    tombstone_key = bytes.fromhex(str(env.connections["sf_tombstone_key"]["password"]))
    for spec in load_sources().sources.values():
        ingest_source(root, spec, tombstone_key=tombstone_key)
    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert bag.import_errors == {}
    assert set(_states(bag.dags["identify_families"].test()).values()) == {"success"}
    for agreement_id in (DWP, POLICE):
        run = bag.dags[f"share__{env.agreements[agreement_id].dag_id_suffix}"].test()
        assert set(_states(run).values()) == {"success"}, _states(run)

    dwp_refs, police_refs = _refs(root, DWP), _refs(root, POLICE)
    in_both = set(next(iter(dwp_refs.values()))["person_id"].to_pylist()) & set(
        next(iter(police_refs.values()))["person_id"].to_pylist()
    )
    person = _person_to_erase(root, in_both)
    pid = str(person["person_id"])
    register_rows = read_parquet(register_file(root, "persons")).to_pylist()
    n_persons = len(register_rows)
    others = [r for r in register_rows if r["person_id"] != pid]
    links = read_parquet(register_file(root, "links"))
    record_ids = set(links.filter(pc.equal(links["person_id"], pid))["record_id"].to_pylist())
    records = []
    for path in (Path(root.path) / "curated").rglob("*.parquet"):
        table = pq.read_table(path)
        records += table.filter(
            pc.is_in(table["record_id"], value_set=pa.array(sorted(record_ids)))
        ).to_pylist()
    ids = {pid} | {
        t.filter(pc.equal(t["person_id"], pid))["person_ref"][0].as_py()
        for t in (*dwp_refs.values(), *police_refs.values())
    }
    needles = _needles(person, others, ids)
    assert needles["date of birth"] and needles["id"]

    # What the partners decrypt, row for row.
    sent: dict[str, dict[str, str]] = {}
    for agreement_id, refs in ((DWP, dwp_refs), (POLICE, police_refs)):
        [(delivery_id, table)] = list(refs.items())
        ref = table.filter(pc.equal(table["person_id"], pid))["person_ref"][0].as_py()
        agreement = env.agreements[agreement_id]
        cipher = env.inbox(agreement) / f"sf-{agreement_id}-{delivery_id}.csv.gpg"
        rows = _csv_rows(_decrypt(cipher, env.secrets.gnupg_partners, env.council_fingerprint, tmp))
        [row] = [r for r in rows if r["person_ref"] == ref]
        sent[agreement_id] = row

    # 1. Subject access: the bundle, decrypted by the DPO, lists both deliveries with the values sent.
    run = bag.dags["rights_subject_access"].test(
        run_conf={
            "person_id": pid,
            "case_reference": "DSR-2026-00101",
            "received_on": date.today().isoformat(),
        }
    )
    assert set(_states(run).values()) == {"success"}, _states(run)
    [bundle] = list((Path(root.path) / "rights").rglob("subject_access.zip.gpg"))
    with zipfile.ZipFile(
        io.BytesIO(_decrypt(bundle, env.secrets.gnupg_dpo, env.council_fingerprint, tmp))
    ) as z:
        dossier = json.loads(z.read("subject_access.json"))
        assert {"subject_access.html", "disclosures.csv"} <= set(z.namelist())
    disclosures = {d["agreement_id"]: d for d in dossier["disclosures"]}
    assert set(disclosures) == {DWP, POLICE}
    for agreement_id, row in sent.items():
        d = disclosures[agreement_id]
        assert d["fields"] == list(env.agreements[agreement_id].fields)
        assert d["purpose"] == env.agreements[agreement_id].purpose and d["legal_gateways"]
        [values] = d["values"]
        assert {k: ("" if v is None else str(v)) for k, v in values.items()} == row
    assert dossier["register_record"]["person_id"] == pid and dossier["source_records"]

    # 2. Rectification of the postcode: both partners received it, both get a notice with the new value.
    stage_correction(root, "DSR-2026-00102", pid, "postcode", NEW_POSTCODE.lower(), env.data_keys)
    run = bag.dags["rights_rectification"].test(
        run_conf={
            "person_id": pid,
            "case_reference": "DSR-2026-00102",
            "received_on": date.today().isoformat(),
        }
    )
    assert set(_states(run).values()) == {"success"}, _states(run)
    for agreement_id in (DWP, POLICE):
        agreement = env.agreements[agreement_id]
        [notice] = list(env.inbox(agreement).glob(f"sf-{agreement_id}-n*-rectification.csv.gpg"))
        [row] = _csv_rows(_decrypt(notice, env.secrets.gnupg_partners, env.council_fingerprint, tmp))
        assert row["notice"] == "rectification" and row["postcode"] == NEW_POSTCODE
        assert row["person_ref"] == sent[agreement_id]["person_ref"]

    # 3. A restriction recorded today keeps another person out of today's share.
    other = sorted(in_both - {pid})[0]
    run = bag.dags["rights_restriction"].test(
        run_conf={
            "person_id": other,
            "case_reference": "DSR-2026-00103",
            "kind": "objection",
            "starts_on": date.today().isoformat(),
            "ends_on": None,
            "lift": False,
        }
    )
    assert set(_states(run).values()) == {"success"}, _states(run)
    run = bag.dags[f"share__{env.agreements[POLICE].dag_id_suffix}"].test()
    assert set(_states(run).values()) == {"success"}, _states(run)
    newest = _refs(root, POLICE)
    [fresh] = [t for d, t in newest.items() if d not in police_refs]
    assert other not in fresh["person_id"].to_pylist()
    assert pid in fresh["person_id"].to_pylist()  # (erased below, with this delivery too)

    # The controller-side CLI, with the keys from the connections file: portability to another authority
    # (the DPO's key stands for the receiving authority's here), checked against its documented schema.
    import jsonschema

    from supporting_families.rights.cli import main as rights_cli

    dpo = str(env.connections["sf_rights"]["extra"]["dpo_fingerprint"])  # type: ignore[index]
    argv = [
        "portability",
        "--case",
        "DSR-2026-00106",
        "--person",
        pid,
        "--received-on",
        date.today().isoformat(),
    ]
    assert rights_cli([*argv, "--connections", str(env.secrets.connections_file), "--recipient", dpo]) == 0
    [export] = list((Path(root.path) / "rights").rglob("portability.json.gpg"))
    document = json.loads(_decrypt(export, env.secrets.gnupg_dpo, env.council_fingerprint, tmp))
    schema = json.loads(
        (Path(__file__).resolve().parents[3] / "docs" / "portability.schema.json").read_text()
    )
    jsonschema.validate(document, schema)
    assert document["person"]["person_id"] == pid and document["person"]["postcode"] == NEW_POSTCODE

    # 4. Erasure, then the scan.
    run = bag.dags["rights_erasure"].test(
        run_conf={
            "person_id": pid,
            "case_reference": "DSR-2026-00104",
            "received_on": date.today().isoformat(),
        }
    )
    assert set(_states(run).values()) == {"success"}, _states(run)
    for agreement_id in (DWP, POLICE):
        agreement = env.agreements[agreement_id]
        [notice] = list(env.inbox(agreement).glob(f"sf-{agreement_id}-n*-erasure.csv.gpg"))
        rows = _csv_rows(_decrypt(notice, env.secrets.gnupg_partners, env.council_fingerprint, tmp))
        assert {r["notice"] for r in rows} == {"erasure"}
        assert sent[agreement_id]["person_ref"] in {r["person_ref"] for r in rows}
    tables: dict[str, pa.Table] = {}
    texts = _store_text(root, env, tmp, tables)
    found = {rel: hits for rel, text in texts.items() if (hits := _find(text, needles))}
    assert found == {}, f"the erased person's values are still in: {sorted(found)}"  # paths and counts only
    rows_left = {rel: n for rel, t in tables.items() if (n := _rows_of(t, person))}
    assert rows_left == {}, f"rows of the erased person are still in: {sorted(rows_left)}"
    assert any("curated/" in rel for rel in tables)  # the scan did read the tables
    ids_left = read_parquet(register_file(root, "persons"))["person_id"].to_pylist()
    assert pid not in ids_left and other in ids_left
    assert len(ids_left) == n_persons - 1  # everyone else is intact

    # Re-ingesting the same extracts (the department sends them again) does not bring the person back.
    for spec in load_sources().sources.values():
        for report in (Path(root.path) / "ingest_reports" / spec.name).glob("*.json"):
            report.unlink()
    write_borough(borough, root / "landing", truth_root=root / "demo")
    for spec in load_sources().sources.values():
        reports = ingest_source(root, spec, tombstone_key=tombstone_key)
        assert all(r.status == "ingested" for r in reports)
    assert set(_states(bag.dags["identify_families"].test()).values()) == {"success"}
    persons = read_parquet(register_file(root, "persons"))
    assert int(persons.num_rows) == n_persons - 1
    curated_text = json.dumps(
        [pq.read_table(p).to_pylist() for p in (Path(root.path) / "curated").rglob("*.parquet")], default=str
    )
    assert _find(curated_text, needles) == {}
    assert _find(json.dumps(persons.to_pylist(), default=str), needles) == {}

    # 5. A request received 31 days ago and still open raises the deadline alert, by e-mail.
    open_request(root, "access", "DSR-2026-00105", other, datetime.now(UTC).date() - timedelta(days=31))
    run = bag.dags["rights_deadlines"].test()
    assert set(_states(run).values()) == {"success"}, _states(run)
    [raw] = sink.messages()
    mail = email.message_from_bytes(raw)
    body = "".join(
        part.get_payload(decode=True).decode("utf-8", "replace")  # type: ignore[union-attr]
        for part in mail.walk()
        if not part.is_multipart()
    )
    assert "overdue" in str(mail["Subject"]) and "DSR-2026-00105" in body
    assert _find(body, needles) == {}

    # 6. The ledger: one entry per action, the chain verifies, nothing personal in it.
    with Ledger(os.environ["SF_LEDGER_URL"]) as ledger:
        entries = [e.to_dict() for e in ledger.entries(limit=1000)]
        assert ledger.verify().ok
    actions = [e["details"].get("action") for e in entries if e["kind"] == "rights_action"]
    assert sorted(actions) == ["access", "erase", "portability", "rectify", "restriction"]
    notices = sorted(
        e["details"].get("notice") for e in entries if e["kind"] == "disclosure" and "notice" in e["details"]
    )
    assert notices == ["erasure", "erasure", "rectification", "rectification"]
    assert {e["details"]["part"] for e in entries if e["kind"] == "deletion"} == {
        "request_time",
        "compaction",
    }
    assert _find(json.dumps(entries, default=str), needles) == {}

    # No personal data in Airflow: logs, XCom and form values (the metadata database).
    captured = capfd.readouterr()
    logs = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    assert "rights_erasure" in logs
    assert _find(logs, needles) == {}, "personal data found in task logs (counts by kind)"
    metadata = _metadata_text(Path(sql.removeprefix("sqlite:///")))
    assert "DSR-2026-00104" in metadata  # the forms are there, with ids and codes only
    # The forms carry the internal person id by design (the issue's "council's internal person id"): after
    # erasure it resolves to no one. Its references to partners and every value must be absent.
    without_id = {**needles, "id": needles["id"] - {pid.lower()}}
    assert _find(metadata, without_id) == {}, "personal data found in the metadata database (incl. XCom)"
