"""A real CeleryExecutor deployment on 127.0.0.1, started once per session (it costs about a minute).

PostgreSQL (a database of its own, dropped afterwards) is the metadata database, Celery's result backend
and the audit ledger (the ``sf_ledger`` connection); Redis on 127.0.0.1:6379 is the broker, under a key
prefix of this session's own so that no other run's workers can take its tasks. The components are the
ones a deployment runs: api-server (UI and execution API), scheduler, dag-processor, triggerer, and one
Celery worker per partner queue (``sf_airflow.common.partner_queue``), each with its own
``hostname_callable`` (``hostnames.py``). All share one JWT secret and one API secret key, as they must.

Credentials per partner (docs/ARCHITECTURE.md): the central components' secrets backend is the
generator's ``connections-central.json`` (no partner's SFTP connection or pseudonym key); each worker's
own ``[workers] secrets_backend`` is its partner's ``partners/<code>/connections.json`` and it has no
central backend of its own (central connections reach it through the execution API). The return sensors
run in reschedule mode on the partners' queues, so the triggerer needs no partner connection. A second
DAG bundle holds the isolation test's probe (``probe_dags/``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url

from sf_demo.secrets import new_secret_hex, new_secret_text
from tests.integration.platform_fixtures import PlatformEnv, _env_file, secret_canary

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = REPO / ".venv" / "bin"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
#: The scheduler declares a task lost when its heartbeat is older than this. Airflow's default (300 s)
#: equals pytest's timeout here, so the worker-kill test lowers it.
HEARTBEAT_TIMEOUT_S = 20
LOCAL_SECRETS = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
PROBE_DAGS = Path(__file__).resolve().parent / "probe_dags"

#: partner code -> (queue, hostname_callable, the hostname it reports)
WORKERS: dict[str, tuple[str, str, str]] = {
    "dwp": ("sf_dwp", "tests.integration.celery.hostnames.dwp", "sf-worker-dwp"),
    "met-police": ("sf_met_police", "tests.integration.celery.hostnames.met_police", "sf-worker-met-police"),
    "ons": ("sf_ons", "tests.integration.celery.hostnames.ons", "sf-worker-ons"),
}


def _end_with_parent() -> None:
    """SIGTERM this component when pytest ends without its teardown (pytest-timeout's hard exit)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _drop_orphaned_databases(admin: Engine) -> None:
    """Databases and roles of earlier sessions that ended without their teardown (their pid is gone)."""
    with admin.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'sf_celery_test_%'")
            )
        ]
        for name in names:
            pid = int(name.split("_")[3])
            if not Path(f"/proc/{pid}").exists():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        roles = [
            r[0]
            for r in conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname LIKE 'sf_celery_test_%'"))
        ]
        for role in roles:
            if not Path(f"/proc/{int(role.split('_')[3])}").exists():
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class CeleryDb:
    """The deployment's database: the metadata role's URL and the ledger role's login, each with a
    password of its own (generated under the session's secret canary; PostgreSQL here trusts loopback,
    so the passwords are carried everywhere a deployment carries them, and checked nowhere)."""

    url: URL
    ledger_login: str
    ledger_password: str


@dataclass
class CeleryCluster:
    env: dict[str, str]
    home: Path
    store: Path
    db_url: URL
    api_port: int
    logs: Path
    #: partner code -> its worker's own connections file (the only place its secrets are)
    partner_files: dict[str, Path] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    engine: Engine | None = None
    admin_password: str = ""

    def worker_env(self, code: str) -> dict[str, str]:
        """A partner worker's environment: its own backend first, no central backend of its own."""
        env = {k: v for k, v in self.env.items() if not k.startswith("AIRFLOW__SECRETS__BACKEND")}
        env["AIRFLOW__WORKERS__SECRETS_BACKEND"] = LOCAL_SECRETS
        env["AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS"] = json.dumps(
            {"connections_file_path": str(self.partner_files[code])}
        )
        return env

    # -- processes ------------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None = None,
        base: dict[str, str] | None = None,
    ) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args],
            env={**(self.env if base is None else base), **(extra_env or {})},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill reaches its forked children too
            preexec_fn=_end_with_parent,
        )

    def start_worker(self, code: str) -> None:
        queue, callable_path, hostname = WORKERS[code]
        self.start(
            f"worker-{code}",
            [
                "celery",
                "worker",
                "--queues",
                queue,
                "--concurrency",
                "2",
                "--skip-serve-logs",
                "--celery-hostname",
                f"{hostname}@%h",
            ],
            {"AIRFLOW__CORE__HOSTNAME_CALLABLE": callable_path},
            base=self.worker_env(code),
        )
        self.wait_for_log(f"worker-{code}", "ready.", 120)

    def scheduler_healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
            health = requests.get(url, timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        return all(health.get(c, {}).get("status") == "healthy" for c in ("scheduler", "triggerer"))

    def restart_scheduler(self, extra_env: dict[str, str] | None = None) -> None:
        """The scheduler again, with ``extra_env`` over the deployment's environment; once it is healthy."""
        # Health would still answer for the old scheduler's heartbeat: wait for the new one's job row.
        last = self.query("SELECT coalesce(max(id), 0) FROM job WHERE job_type = 'SchedulerJob'")[0][0]
        self.kill("scheduler", signal.SIGTERM)
        self.start("scheduler", ["scheduler", "--skip-serve-logs"], extra_env)
        self.wait_for(
            "the new scheduler's heartbeat",
            lambda: self.query(
                "SELECT count(*) FROM job WHERE job_type = 'SchedulerJob'"
                " AND id > :last AND state = 'running'",
                last=last,
            )[0][0],
            180,
        )

    @contextlib.contextmanager
    def local_executor(self, store: Path) -> Iterator[None]:
        """The same deployment on LocalExecutor, over ``store``: the single-machine set-up to compare with.

        The scheduler runs the tasks itself there, so it is the one worker of every partner: its task
        processes get a worker-side backend with every partner's file merged (mode 0600, removed after).
        The Celery scheduler is back when the block ends, with no partner's secret anywhere central.
        """
        merged: dict[str, Any] = {}
        for path in self.partner_files.values():
            merged.update(json.loads(path.read_text()))
        conn_file = self.home / "local-executor-connections.json"
        conn_file.touch(mode=0o600)
        conn_file.write_text(json.dumps(merged))
        try:
            self.restart_scheduler(
                {
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "SF_STORE_URI": store.as_uri(),
                    "AIRFLOW__WORKERS__SECRETS_BACKEND": LOCAL_SECRETS,
                    "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": json.dumps(
                        {"connections_file_path": str(conn_file)}
                    ),
                }
            )
            yield
        finally:
            self.restart_scheduler()
            conn_file.unlink(missing_ok=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def stop_all(self) -> None:
        for name in list(self.processes):
            proc = self.processes[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, proc in list(self.processes.items()):
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            del self.processes[name]

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def wait_for_log(self, name: str, needle: str, timeout: float) -> None:
        path = self.logs / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and needle in path.read_text(errors="replace"):
                return
            if self.processes[name].poll() is not None:
                pytest.fail(f"{name} exited:\n{self.log_tail(name)}")
            time.sleep(0.5)
        pytest.fail(f"{name}: no {needle!r} in {timeout} s:\n{self.log_tail(name)}")

    def airflow(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "airflow"), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (
            f"airflow {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done.stdout

    # -- the metadata database -------------------------------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[Any]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def trigger(self, dag_ids: list[str], conf: dict[str, Any] | None = None) -> dict[str, str]:
        """One manual run of each DAG (one process for all: the CLI takes seconds per call)."""
        script = (
            "import json,sys\n"
            "from airflow.api.common.trigger_dag import trigger_dag\n"
            "from airflow.utils.types import DagRunTriggeredByType\n"
            "out={}\n"
            "conf=json.loads(sys.argv[1])\n"
            "for d in sys.argv[2:]:\n"
            "    by=DagRunTriggeredByType.CLI\n"
            "    r=trigger_dag(d, conf=conf, triggered_by=by, triggering_user_name='celery-test')\n"
            "    out[d]=r.run_id\n"
            "print('RUNS='+json.dumps(out))\n"
        )
        runs: dict[str, str] = self.python(script, [json.dumps(conf), *dag_ids], "RUNS")[0]
        return runs

    def python(
        self, script: str, args: list[str], tag: str, env: dict[str, str] | None = None
    ) -> tuple[Any, str]:
        """Run ``script`` as this deployment's components would (its environment unless ``env``): the JSON
        it printed after ``<tag>=`` (Airflow may print other lines around it), and all it printed."""
        done = subprocess.run(
            [str(VENV_BIN / "python"), "-c", script, *args],
            env=self.env if env is None else env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith(f"{tag}="))
        return json.loads(line.removeprefix(f"{tag}=")), done.stdout + done.stderr

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited while waiting for {what}:\n{self.log_tail(name)}")
            time.sleep(1)
        states = self.query("SELECT dag_id, task_id, state, queue, hostname, try_number FROM task_instance")
        pytest.fail(f"{what}: not within {timeout} s; task instances: {states}")

    def task_instances(self, dag_id: str, run_id: str) -> list[Any]:
        return self.query(
            "SELECT task_id, map_index, state, queue, hostname, try_number FROM task_instance"
            " WHERE dag_id = :d AND run_id = :r ORDER BY task_id, map_index",
            d=dag_id,
            r=run_id,
        )

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id)
        return str(rows[0][0]) if rows else None

    def runs_triggered_by(self, dag_id: str, source_run_id: str) -> list[str]:
        """The runs of ``dag_id`` that an asset event of run ``source_run_id`` started."""
        rows = self.query(
            "SELECT DISTINCT r.run_id FROM dag_run r JOIN dagrun_asset_event l ON l.dag_run_id = r.id"
            " JOIN asset_event e ON e.id = l.event_id WHERE r.dag_id = :d AND e.source_run_id = :s",
            d=dag_id,
            s=source_run_id,
        )
        return [str(r[0]) for r in rows]

    def runs(self, dag_id: str) -> list[Any]:
        return self.query("SELECT run_id, state FROM dag_run WHERE dag_id = :d ORDER BY id", d=dag_id)


def _base_env() -> dict[str, str]:
    """This process's environment without the unit tests' Airflow settings (tests/conftest.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SF_"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)  # the workers import hostnames.py from here
    return env


@pytest.fixture(scope="session")
def celery_db() -> Iterator[CeleryDb]:
    name = f"sf_celery_test_{os.getpid()}_{secrets.token_hex(3)}"
    ledger_role = f"{name}_ledger"
    with secret_canary():
        password, ledger_password = new_secret_hex(24), new_secret_hex(24)
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    _drop_orphaned_databases(admin)
    with admin.connect() as conn:
        # The metadata role is a member of the ledger role, so the tests read the ledger through it.
        # Utility statements take no bind parameters; the passwords are hex, so safe as literals.
        assert (password + ledger_password).isalnum()
        conn.execute(text(f"CREATE ROLE \"{ledger_role}\" LOGIN PASSWORD '{ledger_password}'"))
        conn.execute(text(f'CREATE ROLE "{name}" LOGIN PASSWORD \'{password}\' IN ROLE "{ledger_role}"'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    on_db = create_engine(make_url(ADMIN_URL).set(database=name), isolation_level="AUTOCOMMIT")
    with on_db.connect() as conn:
        conn.execute(text(f'GRANT ALL ON SCHEMA public TO "{ledger_role}"'))
    on_db.dispose()
    try:
        yield CeleryDb(
            url=make_url(ADMIN_URL).set(database=name, username=name, password=password),
            ledger_login=ledger_role,
            ledger_password=ledger_password,
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{ledger_role}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def celery_cluster(
    platform_env: PlatformEnv, celery_db: CeleryDb, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryCluster]:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=5).close()
    except OSError as exc:
        pytest.fail(
            f"Redis is not listening on 127.0.0.1:6379 ({exc}): scripts/test.sh starts it, or: redis-server"
            ' --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
        )
    home = tmp_path_factory.mktemp("celery-airflow-home")
    store = tmp_path_factory.mktemp("celery-store")
    logs = home / "services"
    logs.mkdir()
    api_port = _free_port()
    db = celery_db.url.render_as_string(hide_password=False)
    # The ledger is an Airflow connection served by the secrets backend; no component has a ledger DSN in
    # its environment.
    layout = platform_env.secrets
    partner_files = {code: layout.partner_connections_file(code) for code in WORKERS}
    partner_ids = {k for f in partner_files.values() for k in json.loads(f.read_text())}
    connections = {
        **{k: v for k, v in platform_env.connections.items() if k not in partner_ids},
        "sf_ledger": {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": 5432,
            "schema": celery_db.url.database,
            "login": celery_db.ledger_login,
            "password": celery_db.ledger_password,
        },
    }
    with secret_canary():
        jwt_secret, api_secret = new_secret_text(32), new_secret_text(32)
    conn_file = home / "connections.json"
    conn_file.write_text(json.dumps(connections))
    conn_file.chmod(0o600)
    env = {
        **_base_env(),
        **_env_file(platform_env.secrets.fingerprints_env),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db,
        # This session's own key prefix in Redis: another run's workers on the same queues never see it.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"sf-test-{secrets.token_hex(4)}-",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__API__SECRET_KEY": api_secret,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SECRETS__BACKEND": LOCAL_SECRETS,
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(conn_file)}),
        "SF_STORE_URI": store.as_uri(),
        "SF_RETURN_POKE_SECONDS": "3",
        "SF_RETURN_SENSOR": "reschedule",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                {"name": "isolation-probe", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(PROBE_DAGS)}},
            ]
        ),
    }
    cluster = CeleryCluster(
        env=env,
        home=home,
        store=store,
        db_url=celery_db.url,
        api_port=api_port,
        logs=logs,
        partner_files=partner_files,
    )
    cluster.airflow("db", "migrate", timeout=300)
    cluster.airflow("fab-db", "migrate", timeout=300)
    subprocess.run(
        [str(VENV_BIN / "python"), "scripts/airflow_access.py", "roles"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=180,
    )
    # The demo users (scripts/airflow_access.py), their passwords generated under the secret canary; the
    # admin signs in below, so the password passes through the api-server as a real login's does.
    users_dir = home / "users"
    users_dir.mkdir(mode=0o700)
    with secret_canary() as canary:
        subprocess.run(
            [
                str(VENV_BIN / "python"),
                "scripts/airflow_access.py",
                "demo-users",
                "--secrets-dir",
                str(users_dir),
            ],
            env={**env, **canary},
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=240,
        )
    cluster.admin_password = json.loads((users_dir / "airflow-users.json").read_text())["admin"]
    cluster.engine = create_engine(celery_db.url)
    try:
        cluster.start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port)])
        cluster.start("scheduler", ["scheduler", "--skip-serve-logs"])
        cluster.start("dag-processor", ["dag-processor"])
        cluster.start("triggerer", ["triggerer", "--skip-serve-logs"])
        for code in WORKERS:
            cluster.start_worker(code)

        cluster.wait_for("a healthy scheduler and triggerer", cluster.scheduler_healthy, 180)
        wanted = {
            f"{kind}__{a.dag_id_suffix}"
            for a in platform_env.agreements.values()
            for kind in ("share", "receive")
        }
        cluster.wait_for(
            "the share and receive DAGs parsed",
            lambda: (
                wanted | {"isolation_probe"}
                <= {r[0] for r in cluster.query("SELECT dag_id FROM serialized_dag")}
            ),
            240,
        )
        assert cluster.engine is not None
        with cluster.engine.begin() as conn:
            conn.execute(
                text("UPDATE dag SET is_paused = false WHERE dag_id = ANY(:ids)"),
                {"ids": [*sorted(wanted), "isolation_probe"]},
            )
        # Unpaused, each share DAG gets its cron's latest run at once (catchup is off). Those runs find no
        # identification and skip; wait for them before the tests seed the store, so they cannot race it.
        shares = sorted(d for d in wanted if d.startswith("share__"))

        def settled() -> bool:
            due = cluster.query(
                "SELECT count(*) FROM dag WHERE dag_id = ANY(:ids)"
                " AND (next_dagrun_create_after IS NULL OR next_dagrun_create_after > now())",
                ids=shares,
            )[0][0]
            active = cluster.query(
                "SELECT count(*) FROM dag_run WHERE dag_id = ANY(:ids) AND state IN ('queued', 'running')",
                ids=shares,
            )[0][0]
            return bool(due == len(shares) and active == 0)

        cluster.wait_for("the shares' scheduled runs at unpause finished", settled, 300)
        yield cluster
    finally:
        cluster.stop_all()
        cluster.engine.dispose()
