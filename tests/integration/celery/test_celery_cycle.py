"""The share and receive of every agreement on a real CeleryExecutor, one worker per partner queue.

The store is seeded as the demo's cycle leaves it before the shares (a synthetic borough ingested and
identified, one family assessed). The shares are triggered on Celery; each delivery's asset event starts
its receive run; the partners (the demo's simulator) answer; the receive runs take the returns in. Every
task instance must have run on its agreement's queue, on the worker serving that queue (told apart by
each worker's ``hostname_callable``). A copy of the same seeded store, run through the same deployment
switched to LocalExecutor (the single-machine set-up), must give the same deliveries (row counts and
plaintext hashes) and the same reconciliations.

Then a worker is SIGKILLed while its delivery is in flight (delivered to the partner's inbox, its
disclosure not yet recorded: the test holds the ledger's append lock) and restarted: the task is found
lost after ``task_instance_heartbeat_timeout`` (lowered, conftest.py), retried, and the partner has one
file and the ledger one disclosure.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from sf_demo.partner_simulator.environment import DemoEnvironment
from supporting_families.audit import Ledger
from supporting_families.audit.schema import _PG_LOCK_KEY
from supporting_families.config import Agreement
from supporting_families.identify import record_assessment
from supporting_families.share import Delivery, delivery_id_for
from supporting_families.store import read_parquet, store_root
from tests.integration.celery.conftest import HEARTBEAT_TIMEOUT_S, WORKERS, CeleryCluster
from tests.integration.platform_fixtures import PlatformEnv, seed_identified

# The first test pays for the deployment and the cycle (several minutes on a loaded machine).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

AS_OF = date(2026, 3, 31)
DAGS = Path(__file__).resolve().parents[3] / "dags"


def _seed(store: Path) -> None:
    """The store as the cycle leaves it before the shares: a small borough ingested and identified."""
    root = store_root(store.as_uri())
    seed_identified(root, 1500, seed=11, as_of=AS_OF)
    worklist = read_parquet(root / "identification" / AS_OF.isoformat() / "worklist.parquet")
    record_assessment(
        root,
        worklist["family_id"][0].as_py(),
        "meets_criteria",
        "PRAC001",
        AS_OF,
        reason="confirmed_at_panel",
    )


def _partners_answer(env: PlatformEnv, store: Path, state: Path, agreements: list[Agreement]) -> None:
    demo = DemoEnvironment(
        secrets=env.secrets, sftp_root=env.server.root, state_dir=state, store=store_root(store.as_uri())
    )
    for agreement in agreements:
        report = demo.run(agreement, seed=2026)
        assert report.deliveries_refused == 0, report


def _results(store: Path, agreement: Agreement, share_run_id: str) -> dict[str, Any]:
    """What a share and its receive produced, without anything that depends on the run's name."""
    root = store_root(store.as_uri())
    manifest = Delivery(root, agreement.id, delivery_id_for(agreement.id, share_run_id)).manifest()
    delivery_id = delivery_id_for(agreement.id, share_run_id)
    reconciliations = [
        json.loads(p.read_text())
        for p in sorted(Path(store, "returns", agreement.id).rglob("reconciliation.json"))
        if delivery_id in p.parent.name
    ]
    assert len(reconciliations) == 1, (agreement.id, len(reconciliations))
    outcome = reconciliations[0]
    return {
        "rows": manifest.row_count,
        "plaintext_sha256": manifest.plaintext_sha256,
        "return": {k: outcome[k] for k in ("kind", "status", "rows", "counts", "flags_merged")},
    }


def _disclosures(db_url: Any, agreement_id: str, run_id: str | None = None) -> list[Any]:
    with Ledger(db_url.render_as_string(hide_password=False), create=False) as book:
        return [
            e
            for e in book.entries(limit=10_000)
            if e.kind == "disclosure" and e.agreement_id == agreement_id and run_id in (None, e.run_id)
        ]


@pytest.fixture(scope="module")
def celery_cycle(
    celery_cluster: CeleryCluster, platform_env: PlatformEnv, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The share and receive of every agreement on Celery; the seeded store's copy kept for comparison."""
    cluster = celery_cluster
    agreements = list(platform_env.agreements.values())
    _seed(cluster.store)
    pristine = tmp_path_factory.mktemp("seeded") / "store"
    shutil.copytree(cluster.store, pristine, symlinks=True)

    runs = cluster.trigger([f"share__{a.dag_id_suffix}" for a in agreements])
    for dag_id, run_id in runs.items():
        cluster.wait_for(
            f"{dag_id} done", lambda d=dag_id, r=run_id: cluster.run_state(d, r) in ("success", "failed"), 420
        )
        assert cluster.run_state(dag_id, run_id) == "success", cluster.task_instances(dag_id, run_id)
    receive_runs: dict[str, str] = {}
    for a in agreements:
        dag_id = f"receive__{a.dag_id_suffix}"
        share_run = runs[f"share__{a.dag_id_suffix}"]
        found = cluster.wait_for(
            f"{dag_id} started by the delivery",
            lambda d=dag_id, s=share_run: cluster.runs_triggered_by(d, s),
            180,
        )
        assert len(found) == 1, found
        receive_runs[dag_id] = found[0]
    (cluster.logs / "runs.json").write_text(
        json.dumps(
            {
                d: [
                    list(map(str, r))
                    for r in cluster.query("SELECT dag_id, run_id, run_type, state FROM dag_run")
                ]
                for d in ["all"]
            }
        )
    )
    _partners_answer(platform_env, cluster.store, tmp_path_factory.mktemp("partners-celery"), agreements)
    for dag_id, run_id in receive_runs.items():
        cluster.wait_for(
            f"{dag_id} done", lambda d=dag_id, r=run_id: cluster.run_state(d, r) in ("success", "failed"), 420
        )
        assert cluster.run_state(dag_id, run_id) == "success", cluster.task_instances(dag_id, run_id)
    return {"shares": runs, "receives": receive_runs, "pristine": pristine}


def test_every_task_ran_on_its_partners_queue_and_worker(
    celery_cluster: CeleryCluster, celery_cycle: dict[str, Any], platform_env: PlatformEnv
) -> None:
    seen_hosts: set[str] = set()
    for a in platform_env.agreements.values():
        queue, _, hostname = WORKERS[a.partner.code]
        for kind, runs in (("share", celery_cycle["shares"]), ("receive", celery_cycle["receives"])):
            dag_id = f"{kind}__{a.dag_id_suffix}"
            tis = celery_cluster.task_instances(dag_id, runs[dag_id])
            ran = [ti for ti in tis if ti.state == "success"]
            assert ran, (dag_id, tis)
            for ti in ran:
                assert ti.queue == queue, (dag_id, ti.task_id, ti.queue)
                assert ti.hostname == hostname, (dag_id, ti.task_id, ti.hostname)
                seen_hosts.add(ti.hostname)
    assert seen_hosts == {h for _, _, h in WORKERS.values()}


def test_one_disclosure_per_share_in_the_ledger_from_the_sf_ledger_connection(
    celery_cluster: CeleryCluster, celery_cycle: dict[str, Any], platform_env: PlatformEnv
) -> None:
    assert "SF_LEDGER_URL" not in celery_cluster.env  # the connection alone says where the ledger is
    for a in platform_env.agreements.values():
        run_id = celery_cycle["shares"][f"share__{a.dag_id_suffix}"]
        assert len(_disclosures(celery_cluster.db_url, a.id, run_id)) == 1, a.id
    with Ledger(celery_cluster.db_url.render_as_string(hide_password=False), create=False) as book:
        assert book.verify().ok


def test_results_are_the_same_as_on_local_executor(
    celery_cluster: CeleryCluster,
    celery_cycle: dict[str, Any],
    platform_env: PlatformEnv,
    tmp_path: Path,
) -> None:
    """The seeded store's copy through the same deployment on LocalExecutor: the same deliveries and
    returns, and every task instance run by the scheduler's own processes, not by a Celery worker."""
    cluster = celery_cluster
    agreements = list(platform_env.agreements.values())
    store = celery_cycle["pristine"]
    with cluster.local_executor(store):
        shares = cluster.trigger([f"share__{a.dag_id_suffix}" for a in agreements])
        for dag_id, run_id in shares.items():
            cluster.wait_for(
                f"{dag_id} on LocalExecutor",
                lambda d=dag_id, r=run_id: cluster.run_state(d, r) in ("success", "failed"),
                420,
            )
            assert cluster.run_state(dag_id, run_id) == "success", cluster.task_instances(dag_id, run_id)
        receives: dict[str, str] = {}
        for a in agreements:
            dag_id, share_run = f"receive__{a.dag_id_suffix}", shares[f"share__{a.dag_id_suffix}"]
            found = cluster.wait_for(
                f"{dag_id} started by the delivery",
                lambda d=dag_id, s=share_run: cluster.runs_triggered_by(d, s),
                180,
            )
            receives[dag_id] = found[0]
        _partners_answer(platform_env, store, tmp_path / "partners", agreements)
        for dag_id, run_id in receives.items():
            cluster.wait_for(
                f"{dag_id} on LocalExecutor",
                lambda d=dag_id, r=run_id: cluster.run_state(d, r) in ("success", "failed"),
                420,
            )
            assert cluster.run_state(dag_id, run_id) == "success", cluster.task_instances(dag_id, run_id)

    workers = {hostname for _, _, hostname in WORKERS.values()}
    for dag_id, run_id in [*shares.items(), *receives.items()]:
        hosts = {ti.hostname for ti in cluster.task_instances(dag_id, run_id) if ti.state == "success"}
        assert hosts and not hosts & workers, (dag_id, hosts)
    for a in agreements:
        on_celery = _results(cluster.store, a, celery_cycle["shares"][f"share__{a.dag_id_suffix}"])
        on_local = _results(store, a, shares[f"share__{a.dag_id_suffix}"])
        assert on_celery == on_local, a.id
        assert on_celery["rows"] > 0 and on_celery["return"]["rows"] > 0


def test_a_worker_killed_mid_delivery_and_restarted_leaves_one_delivery_and_one_disclosure(
    celery_cluster: CeleryCluster, celery_cycle: dict[str, Any], platform_env: PlatformEnv
) -> None:
    cluster = celery_cluster
    agreement = platform_env.agreements["dwp-benefits-matching"]
    dag_id = f"share__{agreement.dag_id_suffix}"
    inbox = platform_env.inbox(agreement)
    before_files = set(inbox.iterdir())

    # Hold the ledger's append lock: the deliver task sends the file, then waits to record it. That is the
    # worst moment to die: the partner has the data, the ledger does not yet say so.
    locker = create_engine(cluster.db_url)
    with locker.connect() as conn:
        tx = conn.begin()
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        run_id = cluster.trigger([dag_id])[dag_id]
        delivery = f"sf-{agreement.id}-{delivery_id_for(agreement.id, run_id)}.csv.gpg"

        def in_flight() -> bool:
            ti = [t for t in cluster.task_instances(dag_id, run_id) if t.task_id == "deliver"]
            waiting = cluster.query(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%pg_advisory_xact_lock%' AND datname = :db",
                db=cluster.db_url.database,
            )[0][0]
            return bool(ti and ti[0].state == "running" and (inbox / delivery).exists() and waiting)

        cluster.wait_for("the delivery sent and waiting for the ledger", in_flight, 300)
        cluster.kill("worker-dwp")
        tx.rollback()
    locker.dispose()
    cluster.start_worker("dwp")

    cluster.wait_for(
        f"{dag_id} done after the restart",
        lambda: cluster.run_state(dag_id, run_id) in ("success", "failed"),
        HEARTBEAT_TIMEOUT_S + 300,
    )
    tis = {t.task_id: t for t in cluster.task_instances(dag_id, run_id)}
    assert cluster.run_state(dag_id, run_id) == "success", tis
    assert tis["deliver"].try_number >= 2, "the kill did not interrupt the delivery"
    assert tis["deliver"].hostname == WORKERS["dwp"][2]
    new_files = set(inbox.iterdir()) - before_files
    assert [p.name for p in new_files] == [delivery]  # one file, nothing left under a temporary name
    assert len(_disclosures(cluster.db_url, agreement.id, run_id)) == 1
    for path in new_files:
        path.unlink()


def _metadata_dump(cluster: CeleryCluster) -> dict[str, bytes]:
    """Every row of every table in the deployment's database (Airflow's, Celery's results, the ledger), as
    PostgreSQL prints a row: JSON as text, bytea as hex."""
    tables = [
        r[0]
        for r in cluster.query(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    ]
    dump: dict[str, bytes] = {}
    for table in tables:
        rows = cluster.query(f'SELECT t::text FROM "{table}" t')  # noqa: S608 (names from the catalogue)
        dump[f"table {table}"] = "\n".join(str(r[0]) for r in rows).encode("utf-8", "replace")
    return dump


def _files(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and not any(p.is_relative_to(s) for s in skip)
    }


def _exception_texts(env: PlatformEnv, cluster: CeleryCluster) -> dict[str, bytes]:
    """What the platform's own code says when a secret-bearing step fails: the ledger's connection to a
    port where nothing listens, and an SFTP login with the council's client key to a closed port."""
    import traceback

    from supporting_families.audit import Ledger
    from supporting_families.audit.settings import ledger_url_from_connection
    from supporting_families.transport.sftp import SftpEndpoint, open_session

    ledger_conn = json.loads((cluster.home / "connections.json").read_text())["sf_ledger"]
    texts: dict[str, bytes] = {}
    try:
        url = ledger_url_from_connection(
            "sf_ledger",
            conn_type="postgres",
            host="127.0.0.1",
            port=1,
            schema=ledger_conn["schema"],
            login=ledger_conn["login"],
            password=ledger_conn["password"],
        )
        with Ledger(url, create=False) as book:
            book.count("disclosure")
        pytest.fail("a ledger on a closed port answered")
    except Exception as exc:
        texts["ledger exception"] = "".join(traceback.format_exception(exc)).encode()
    agreement = env.agreements["dwp-benefits-matching"]
    real = env.endpoint(agreement)
    closed = SftpEndpoint(
        real.host, 1, real.username, host_key=real.host_key, private_key_path=real.private_key_path
    )
    try:
        with open_session(closed):
            pass
        pytest.fail("an SFTP server on a closed port answered")
    except Exception as exc:
        texts["sftp exception"] = "".join(traceback.format_exception(exc)).encode()
    return texts


def test_no_secret_leaks_into_logs_metadata_xcom_ledger_store_or_exceptions(
    celery_cluster: CeleryCluster, celery_cycle: dict[str, Any], platform_env: PlatformEnv
) -> None:
    """Every secret of the deployment was generated under the session's canary (platform_fixtures.py):
    HMAC keys, the council's OpenPGP passphrase, the tombstone and staff id keys, the metadata database's
    and the ledger's passwords, the demo users' (admin's) passwords, the JWT and API secrets. The SFTP
    client key (ssh-keygen's) and the month data keys (the store's) are searched by their own bytes. After
    the whole cycle on Celery, none is in any trace the platform leaves outside its secret stores."""
    import requests
    from cryptography.hazmat.primitives import serialization

    from tests.integration.platform_fixtures import SECRET_CANARY
    from tests.secret_canaries import canary_secrets, needles, search

    cluster = celery_cluster
    # Every secret does carry the canary (else the search below proves nothing).
    hex_c, text_c = SECRET_CANARY.hex(), canary_secrets(SECRET_CANARY)["canary as base64 text"].decode()
    conns = json.loads((cluster.home / "connections.json").read_text())
    for partner_file in cluster.partner_files.values():  # the partners' secrets are in their workers' files
        conns |= json.loads(partner_file.read_text())
    generated = {
        **{c: str(v["password"]) for c, v in conns.items() if c.startswith("sf_pseudonym_")},
        "sf_openpgp_council": str(conns["sf_openpgp_council"]["password"]),
        "sf_tombstone_key": str(conns["sf_tombstone_key"]["password"]),
        "sf_staff_id_key": str(conns["sf_staff_id_key"]["password"]),
        "sf_ledger": str(conns["sf_ledger"]["password"]),
        "metadata database": str(cluster.db_url.password),
        "admin": cluster.admin_password,
        "jwt secret": cluster.env["AIRFLOW__API_AUTH__JWT_SECRET"],
        "api secret key": cluster.env["AIRFLOW__API__SECRET_KEY"],
    }
    assert len([c for c in generated if c.startswith("sf_pseudonym_")]) >= len(platform_env.agreements)
    for name, value in generated.items():
        assert value.startswith((hex_c, text_c)), f"{name} was not generated under the canary"

    # The admin signs in through the api-server, as a person would, and reads the runs with the token.
    api = f"http://127.0.0.1:{cluster.api_port}"
    login = requests.post(
        f"{api}/auth/token", json={"username": "admin", "password": cluster.admin_password}, timeout=30
    )
    assert login.status_code == 201, login.status_code
    runs = requests.get(
        f"{api}/api/v2/dags/~/dagRuns",
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )
    assert runs.status_code == 200 and runs.json()["total_entries"] > 0

    # One SFTP client key per partner login when the demo sshd jails partners (as root, as in CI).
    layout = platform_env.secrets
    key_files = [
        layout.sftp_client_key,
        *(layout.partner_sftp_client_key(code) for code in cluster.partner_files),
    ]
    own_bytes: dict[str, bytes] = {}
    for key_file in (f for f in key_files if f.exists()):
        key = serialization.load_ssh_private_key(key_file.read_bytes(), None)
        own_bytes[f"sftp client key {key_file.name}"] = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    assert len(own_bytes) >= len(cluster.partner_files), "a partner's SFTP client key is not searched for"
    for path in sorted(platform_env.secrets.data_keys_dir.rglob("*")):
        if path.is_file():
            own_bytes[f"data key {path.name}"] = path.read_bytes()
    assert len(own_bytes) > len(cluster.partner_files), "the cycle sealed nothing under a data key"
    wanted = needles({**canary_secrets(SECRET_CANARY), **own_bytes})

    # The needles are right: the secret stores themselves hold every secret.
    assert search({"connections.json": (cluster.home / "connections.json").read_bytes()}, wanted)
    for data_key in own_bytes:
        assert search({"its own bytes": own_bytes[data_key]}, needles({data_key: own_bytes[data_key]}))

    metadata = _metadata_dump(cluster)
    for table in ("xcom", "rendered_task_instance_fields", "audit_ledger", "log", "dag_run"):
        assert metadata.get(f"table {table}"), f"nothing in {table}: the search would prove nothing"
    haystacks = {
        **metadata,
        # Services' and tasks' logs, the generated config; not the secret stores (users/, connections).
        **{
            f"airflow home {k}": v
            for k, v in _files(
                cluster.home, skip=(cluster.home / "users", cluster.home / "connections.json")
            ).items()
        },
        **{f"store {k}": v for k, v in _files(cluster.store).items()},
        **{f"sshd {k}": v for k, v in _files(platform_env.server.state_dir).items() if k.endswith(".log")},
        **_exception_texts(platform_env, cluster),
    }
    assert any(k.startswith("airflow home logs/") for k in haystacks), "no task log was found"
    hits = search(haystacks, wanted)
    assert hits == [], "secrets found (where, which secret, which encoding):\n" + "\n".join(hits[:40])
