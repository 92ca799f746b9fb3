# Environment for every project command: sourced by the Makefile and the set-up script.
# Everything the project writes at run time lives under var/ (ignored by git).
SF_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SF_REPO
export SF_VAR="${SF_VAR:-$SF_REPO/var}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$SF_VAR/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$SF_REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$SF_REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
# Role-based access: the FAB auth manager (roles and DAG-level rights, plugins/sf_airflow/access.py), not
# SimpleAuthManager, which is for development only and writes its generated password into a log.
export AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
# Nothing listens beyond loopback: the API server (UI) and the execution API it hosts.
export SF_AIRFLOW_PORT="${SF_AIRFLOW_PORT:-8080}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$SF_AIRFLOW_PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$SF_AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$SF_AIRFLOW_PORT/execution/"
# Secrets (connections: SFTP, pseudonym keys, OpenPGP passphrase) come from the local-filesystem
# secrets backend in the demo; production points this at Vault or AWS Secrets Manager instead.
export SF_SECRETS_DIR="${SF_SECRETS_DIR:-$SF_VAR/secrets}"
export AIRFLOW__SECRETS__BACKEND=airflow.secrets.local_filesystem.LocalFilesystemBackend
export AIRFLOW__SECRETS__BACKEND_KWARGS="{\"connections_file_path\": \"$SF_SECRETS_DIR/connections.json\"}"
# Airflow's metadata database: PostgreSQL, its URL (with a generated password) kept in a 0600 file that
# Airflow reads through the _CMD form of the setting, so the password is in no environment variable.
if [ -s "$SF_SECRETS_DIR/airflow-db-url" ]; then
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD="cat $SF_SECRETS_DIR/airflow-db-url"
fi
# The audit ledger: a SQLite file in the demo; PostgreSQL in production (postgresql://...).
export SF_LEDGER_URL="${SF_LEDGER_URL:-sqlite:///$SF_VAR/ledger.sqlite}"
# Copies of the ledger's head, kept outside its database (write-once files; in production a bucket of
# another account with S3 Object Lock). make ledger-verify checks the chain against them.
export SF_LEDGER_ANCHORS_URI="${SF_LEDGER_ANCHORS_URI:-file://$SF_VAR/ledger-anchors}"
# Data keys per retention period (the sealed controller-side copies); the rights CLI reads them here.
export SF_KEYSTORE_DIR="${SF_KEYSTORE_DIR:-$SF_SECRETS_DIR/data_keys}"
# One base URI for all storage: file:// here, s3://bucket/prefix in production.
export SF_STORE_URI="${SF_STORE_URI:-file://$SF_VAR/store}"
# Lineage (OpenLineage provider): every event passes plugins/sf_airflow/lineage.py's PrivacyTransformer,
# then the file transport writes it as one JSON line to $SF_LINEAGE_FILE. For Marquez, replace the inner
# transport with {"type": "http", "url": "http://<marquez>:5000"} (README.md, "Lineage"). Hook lineage is
# off and locked: it would name every store file a task opened.
export SF_LINEAGE_FILE="${SF_LINEAGE_FILE:-$SF_VAR/lineage/events.jsonl}"
mkdir -p -m 0700 "$(dirname "$SF_LINEAGE_FILE")"
export AIRFLOW__OPENLINEAGE__NAMESPACE="${AIRFLOW__OPENLINEAGE__NAMESPACE:-supporting-families}"
_sf_lineage_file_transport="{\"type\": \"file\", \"log_file_path\": \"$SF_LINEAGE_FILE\", \"append\": true}"
if [ -z "${AIRFLOW__OPENLINEAGE__TRANSPORT:-}" ]; then
  export AIRFLOW__OPENLINEAGE__TRANSPORT="{\"type\": \"transform\", \"transformer_class\": \"sf_airflow.lineage.PrivacyTransformer\", \"transport\": $_sf_lineage_file_transport}"
fi
export AIRFLOW__OPENLINEAGE__EXTRACTORS=sf_airflow.lineage.TaskFlowExtractor
export AIRFLOW__OPENLINEAGE__EMISSION_POLICY='[{"scope": {}, "controls": {"hook_lineage": false}, "locked": true}]'
export AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD=True
# Partner OpenPGP fingerprints generated at set-up; the agreements pin them through ${SF_*_PGP_FINGERPRINT}.
if [ -f "$SF_SECRETS_DIR/fingerprints.env" ]; then
  set -a
  # shellcheck disable=SC1091
  . "$SF_SECRETS_DIR/fingerprints.env"
  set +a
fi
export PATH="$SF_REPO/.venv/bin:$PATH"
