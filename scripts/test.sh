#!/usr/bin/env bash
# The test command: installs what the tests need (system packages, the pinned virtual environment),
# then runs the whole suite. The tests start their own sshd, GnuPG keyrings and S3 server on 127.0.0.1;
# PostgreSQL and Redis are expected on 127.0.0.1 as on these machines (started here if stopped).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --install-only
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
# Redis is the Celery broker of tests/integration/celery.
if command -v redis-server >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis || true
fi
mkdir -p var
# A migrated metadata DB for the DAG tests (SQLite, inside var/test-airflow-home).
export AIRFLOW_HOME="$PWD/var/test-airflow-home" AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$PWD/plugins"
export AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
.venv/bin/airflow db migrate >var/test-db-migrate.log 2>&1 || { tail -20 var/test-db-migrate.log; exit 1; }
# The FAB tables and the roles before any DAG is parsed (the DAGs' access_control names them).
.venv/bin/airflow fab-db migrate >>var/test-db-migrate.log 2>&1 || { tail -20 var/test-db-migrate.log; exit 1; }
.venv/bin/python scripts/airflow_access.py roles >>var/test-db-migrate.log 2>&1 || { tail -20 var/test-db-migrate.log; exit 1; }
exec .venv/bin/python -m pytest "$@"
