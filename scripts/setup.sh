#!/usr/bin/env bash
# Set up the platform on a Debian 12 machine and (with --run) run the exchange cycle.
#
#   bash scripts/setup.sh --run          everything, then the exchange cycle and its summary
#   bash scripts/setup.sh                everything, services left running, nothing run
#   bash scripts/setup.sh --install-only system packages and the virtual environment only (used by tests)
#
# Idempotent: each step checks what is already there. Run as root (or with the system packages below
# already installed). Everything generated lives under var/, which git ignores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE="${1:-}"
# gcc, python3-dev and libssl-dev build the optional compiled HMAC on OpenSSL's libcrypto (setup.py); without
# them pseudonymisation falls back to a slower SQL path.
APT_PACKAGES=(openssh-server gnupg curl python3-venv gcc python3-dev libssl-dev make jq)
PG_PACKAGES=(postgresql)
# The browser tests drive Debian's chromium through Playwright (no browser can be downloaded here);
# installed on the test path (--install-only, which scripts/test.sh and CI run).
TEST_APT_PACKAGES=(chromium)
UV_VERSION=0.13.8

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# --- system packages --------------------------------------------------------------------------------
have_system_packages() {
  [ -x /usr/sbin/sshd ] && command -v gpg >/dev/null && command -v curl >/dev/null \
    && command -v ssh-keygen >/dev/null && command -v gcc >/dev/null && command -v make >/dev/null && command -v jq >/dev/null \
    && [ -f /usr/include/openssl/evp.h ] && python_for_venv >/dev/null
}
python_for_venv() {
  local py
  for py in python3.11 /usr/bin/python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] >= (3, 11)' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  return 1
}
if ! have_system_packages; then
  if [ "$(id -u)" != 0 ]; then
    die "missing system packages; as root run: apt-get update && apt-get install -y ${APT_PACKAGES[*]}"
  fi
  command -v apt-get >/dev/null || die "no apt-get: install ${APT_PACKAGES[*]} (Python >= 3.11 with venv) by hand"
  say "installing system packages: ${APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
  have_system_packages || die "system packages still missing after apt-get (need sshd, gpg, curl, ssh-keygen, OpenSSL headers, python3.11 venv)"
fi

if [ "$MODE" = "--install-only" ] && [ ! -x /usr/bin/chromium ]; then
  [ "$(id -u)" = 0 ] || die "the browser tests need chromium; as root run: apt-get install -y ${TEST_APT_PACKAGES[*]}"
  say "installing the test packages: ${TEST_APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${TEST_APT_PACKAGES[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${TEST_APT_PACKAGES[@]}" >/dev/null; }
  [ -x /usr/bin/chromium ] || die "chromium is still missing after apt-get"
fi

# --- virtual environment ----------------------------------------------------------------------------
STAMP=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt pyproject.toml setup.py include/supporting_families/share/_hmac.c | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  PY=$(python_for_venv) || die "need Python >= 3.11 with venv"
  # The development lock: production (requirements.txt, what the image installs) plus the test and check tools.
  say "creating .venv with $("$PY" --version) and the pinned development requirements"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip >/dev/null
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
  .venv/bin/uv pip install -q -p .venv/bin/python -r requirements-dev.txt
  .venv/bin/uv pip install -q -p .venv/bin/python --no-deps -e .
  echo "$want" >"$STAMP"
fi
# The compiled HMAC is optional (a failed build falls back to SQL without a word), so say which is active.
say "pseudonymisation: $(.venv/bin/python -c 'from supporting_families.share.pseudonymise import active_path; print(active_path())')"
[ "$MODE" = "--install-only" ] && exit 0

source scripts/env.sh
mkdir -p "$SF_VAR"

# --- local partner SFTP server and demo secrets -----------------------------------------------------
say "starting the local partner SFTP server (OpenSSH sshd on 127.0.0.1)"
python -m sf_demo.sftp_server start --state-dir "$SF_VAR/sftp" --root "$SF_VAR/sftp/root" \
  >"$SF_VAR/sftp-server.json" 2>"$SF_VAR/sftp-server.log" || { cat "$SF_VAR/sftp-server.log" >&2; die "the SFTP server did not start"; }
say "generating demo secrets (kept in $SF_SECRETS_DIR, never committed)"
python -m sf_demo.secrets --state-dir "$SF_SECRETS_DIR" --sftp-state-dir "$SF_VAR/sftp" \
  >"$SF_VAR/demo-secrets.json" 2>"$SF_VAR/demo-secrets.log" || { cat "$SF_VAR/demo-secrets.log" >&2; die "generating the demo secrets failed"; }
source scripts/env.sh  # picks up the partner fingerprints just written

# --- PostgreSQL for Airflow's metadata ---------------------------------------------------------------
# Production runs Airflow on PostgreSQL, and so does the demo: with several components and task
# processes writing at once, SQLite's single writer lock turns into "database is locked" errors.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not running on 127.0.0.1:5432; as root: apt-get install -y ${PG_PACKAGES[*]}"
    say "installing PostgreSQL"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PG_PACKAGES[@]}" >/dev/null
  fi
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not start on 127.0.0.1:5432"
fi
DB_URL_FILE="$SF_SECRETS_DIR/airflow-db-url"
# The database and its role (SF_AIRFLOW_DB: the scale benchmark sets up a second deployment beside the demo).
DB="${SF_AIRFLOW_DB:-sf_airflow}"
[[ "$DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "SF_AIRFLOW_DB must be a lower-case SQL name, not $DB"
# Made idempotently on every run, with the password on file if there is one: a URL file does not mean the
# role and database still exist (or that the role has that password).
if [ -s "$DB_URL_FILE" ]; then
  pw=$(sed -E 's|^[^:]+://[^:]+:([^@]+)@.*$|\1|' "$DB_URL_FILE")
else
  say "creating the Airflow metadata database $DB (role $DB, generated password)"
  pw=$(python -c 'from sf_demo.secrets import new_secret_hex; print(new_secret_hex(24))')
fi
# The postgres OS account administers the cluster over the local socket (peer authentication).
runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt -v pw="$pw" -v db="$DB" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'db', :'pw') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db')
\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'db', :'pw')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
(umask 077; printf %s "postgresql+psycopg2://$DB:$pw@127.0.0.1:5432/$DB" >"$DB_URL_FILE")
# env.sh points Airflow at the URL file only if it existed when sourced: on a fresh machine it did not.
source scripts/env.sh
[ -n "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD:-}" ] || die "the Airflow database URL is not configured"

# --- Airflow ----------------------------------------------------------------------------------------
say "migrating the Airflow metadata database (PostgreSQL $DB)"
airflow db migrate >"$SF_VAR/db-migrate.log" 2>&1 || { tail -20 "$SF_VAR/db-migrate.log"; die "airflow db migrate failed"; }
# The FAB auth manager's tables, then the roles, before any DAG is parsed: Airflow syncs a DAG's
# access_control only to roles that exist. One demo user per role; passwords only in a 0600 file.
airflow fab-db migrate >>"$SF_VAR/db-migrate.log" 2>&1 || { tail -20 "$SF_VAR/db-migrate.log"; die "airflow fab-db migrate failed"; }
say "creating the roles (Admin, Op, Auditor, Practitioner, DPO, Viewer) and one demo user per role"
python scripts/airflow_access.py roles >"$SF_VAR/airflow-roles.log" 2>&1 || { tail -20 "$SF_VAR/airflow-roles.log"; die "creating the roles failed"; }
python scripts/airflow_access.py demo-users --secrets-dir "$SF_SECRETS_DIR" >>"$SF_VAR/airflow-roles.log" 2>&1 \
  || { tail -20 "$SF_VAR/airflow-roles.log"; die "creating the demo users failed"; }
# SimpleAuthManager's password file from an earlier set-up (world-readable): not used any more.
rm -f "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
errors=$(airflow dags list-import-errors --local -o json 2>/dev/null | tail -1)
[ "$errors" = "[]" ] || { airflow dags list-import-errors --local; die "the DAG folder has import errors"; }
say "starting Airflow (api-server, scheduler, dag-processor, triggerer)"
bash scripts/airflow-services.sh start

if [ "$MODE" = "--run" ]; then
  say "running the exchange cycle"
  python scripts/run_cycle.py
fi
