#!/usr/bin/env bash
# Print the latest runs of each DAG (state and run id): a quick look at the run history without the UI.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PW=$(python -c "import json,os;print(json.load(open(os.environ['SF_SECRETS_DIR']+'/airflow-users.json'))['admin'])")
TOKEN=$(curl -fsS -XPOST "http://127.0.0.1:$SF_AIRFLOW_PORT/auth/token" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PW\"}" | python -c "import sys,json;print(json.load(sys.stdin)['access_token'])")
api() { curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$SF_AIRFLOW_PORT/api/v2/$1"; }
for dag in $(api "dags?limit=100" | python -c "import sys,json;print(' '.join(d['dag_id'] for d in json.load(sys.stdin)['dags']))"); do
  api "dags/$dag/dagRuns?order_by=-run_after&limit=${1:-2}" | python -c "
import sys, json
for r in json.load(sys.stdin)['dag_runs']:
    print(f\"{r['dag_id']:<34} {r['state']:<8} {r['dag_run_id']}\")"
done
