#!/usr/bin/env bash
# Start, stop or report the local Airflow components: api-server (UI + execution API), scheduler,
# dag-processor and triggerer. Each runs in the background with a pid file under $AIRFLOW_HOME/run and a
# log under $AIRFLOW_HOME/logs/services. Only 127.0.0.1 is listened on.
#
# SF_EXECUTOR=local (the default): the scheduler runs the tasks (LocalExecutor).
# SF_EXECUTOR=celery: CeleryExecutor, Redis on 127.0.0.1:6379 the broker, the metadata database the result
# backend, and Celery workers started here: a central one for the default queue and one per partner queue,
# each partner worker with only its partner's connections (sf_demo/celery_workers.py); SF_WORKERS=N spreads
# the partners' queues over N workers instead. The central components then read connections-central.json,
# which holds no partner secret ("Credentials per partner" in docs/ARCHITECTURE.md).
# start restarts the components when the running ones use another executor.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

RUN="$AIRFLOW_HOME/run"
LOGS="$AIRFLOW_HOME/logs/services"
SF_EXECUTOR="${SF_EXECUTOR:-local}"
case "$SF_EXECUTOR" in local | celery) ;; *) echo "SF_EXECUTOR must be local or celery, not $SF_EXECUTOR" >&2; exit 2 ;; esac
COMPONENTS=(api-server scheduler dag-processor triggerer smtp-sink)
# Workers of an earlier celery start (their names are in their pid files).
workers() { for f in "$RUN"/worker-*.pid; do [ -e "$f" ] && basename "$f" .pid; done; return 0; }

# Every component signs or checks the execution API's tokens and the UI's sessions: one JWT secret and one
# API secret key for all, generated once (0600) and read through Airflow's _CMD settings, so they are in no
# environment variable and no airflow.cfg.
shared_secret() {
  local file="$SF_SECRETS_DIR/$1"
  [ -s "$file" ] || (umask 077; python -c 'from sf_demo.secrets import new_secret_text; print(new_secret_text(32), end="")' >"$file")
  echo "cat $file"
}
export AIRFLOW__API_AUTH__JWT_SECRET_CMD; AIRFLOW__API_AUTH__JWT_SECRET_CMD=$(shared_secret airflow-jwt-secret)
export AIRFLOW__API__SECRET_KEY_CMD; AIRFLOW__API__SECRET_KEY_CMD=$(shared_secret airflow-api-secret-key)

if [ "$SF_EXECUTOR" = celery ]; then
  export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
  export AIRFLOW__CELERY__BROKER_URL="${SF_CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}"
  # The deployment's own key prefix in Redis (the test suite's Celery sessions and bench_scale use their own),
  # so no other deployment's workers on this Redis take its tasks, even from the default queue.
  export AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX="${SF_CELERY_KEY_PREFIX:-sf-demo-}"
  export AIRFLOW__CELERY__RESULT_BACKEND_CMD="sed s/^/db+/ $SF_SECRETS_DIR/airflow-db-url"
  # The central components' backend holds no partner's connection; each worker adds its own below.
  export AIRFLOW__SECRETS__BACKEND_KWARGS="{\"connections_file_path\": \"$SF_SECRETS_DIR/connections-central.json\"}"
  # The return sensors wait on the partner's queue (reschedule) instead of deferring to the triggerer,
  # which would need every partner's SFTP connection.
  export SF_RETURN_SENSOR=reschedule
  export AIRFLOW__CORE__HOSTNAME_CALLABLE=sf_demo.celery_workers.hostname
fi

pid_of() { [ -f "$RUN/$1.pid" ] && cat "$RUN/$1.pid" || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

start_one() {
  local name=$1; shift
  if alive "$name"; then return 0; fi
  # setsid: own process group, so stop can end the component and the workers it forks.
  setsid airflow "$name" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

health() { curl -fsS "http://127.0.0.1:$SF_AIRFLOW_PORT/api/v2/monitor/health" 2>/dev/null; }

start_workers() {
  local name queues host conn
  while IFS=$'\t' read -r name queues host conn; do
    alive "worker-$name" && continue
    # A partner worker: its own backend first, then (execution API) the central components' connections.
    # No worker reads the central components' backend file: what it lacks it asks the API server for.
    local -a own=(env -u AIRFLOW__SECRETS__BACKEND -u AIRFLOW__SECRETS__BACKEND_KWARGS)
    if [ "$conn" != - ]; then
      own+=(AIRFLOW__WORKERS__SECRETS_BACKEND=airflow.secrets.local_filesystem.LocalFilesystemBackend
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS={\"connections_file_path\": \"$conn\"}")
    fi
    # The central worker runs every source's ingest and the identification: as many slots as the
    # scheduler's parallelism; a partner's worker runs its partner's share and receive, two at a time.
    local slots="${SF_WORKER_CONCURRENCY:-2}"
    [ "$name" = central ] && slots="$AIRFLOW__CORE__PARALLELISM"
    SF_WORKER_HOSTNAME="$host" setsid "${own[@]}" airflow celery worker --queues "$queues" \
      --concurrency "$slots" --skip-serve-logs --celery-hostname "$host@%h" \
      >"$LOGS/worker-$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/worker-$name.pid"
  done < <(python -m sf_demo.celery_workers plan --secrets-dir "$SF_SECRETS_DIR" ${SF_WORKERS:+--workers "$SF_WORKERS"})
  for name in $(workers); do
    for _ in $(seq 1 120); do grep -q "ready\." "$LOGS/$name.log" 2>/dev/null && break; alive "$name" || break; sleep 1; done
    alive "$name" && grep -q "ready\." "$LOGS/$name.log" || { echo "airflow celery $name did not start; last lines of $LOGS/$name.log:" >&2; tail -20 "$LOGS/$name.log" >&2; exit 1; }
  done
}

# True when components are running with another executor (or another worker count) than asked for.
running_other() {
  [ -f "$RUN/executor" ] || return 1
  [ "$(cat "$RUN/executor")" != "$SF_EXECUTOR" ] && return 0
  [ "$SF_EXECUTOR" = celery ] && [ "$(cat "$RUN/workers" 2>/dev/null)" != "${SF_WORKERS:-}" ]
}

start() {
  mkdir -p "$RUN" "$LOGS"
  if running_other; then
    echo "restarting Airflow: SF_EXECUTOR=$SF_EXECUTOR${SF_WORKERS:+, SF_WORKERS=$SF_WORKERS}"
    stop
  fi
  echo "$SF_EXECUTOR" >"$RUN/executor"
  if [ "$SF_EXECUTOR" = celery ]; then
    echo "${SF_WORKERS:-}" >"$RUN/workers"
    python -c 'import redis, sys; redis.Redis.from_url(sys.argv[1], socket_timeout=5).ping()' "$AIRFLOW__CELERY__BROKER_URL" 2>/dev/null \
      || { echo "Redis does not answer at $AIRFLOW__CELERY__BROKER_URL (the Celery broker): start it, e.g. redis-server --daemonize yes --bind 127.0.0.1 --port 6379" >&2; exit 1; }
  fi
  # The demo's mail relay: the rights deadlines' e-mails land as files in var/mail (sf_demo.smtp_sink).
  if ! alive smtp-sink; then
    setsid python -m sf_demo.smtp_sink --port "${SF_SMTP_SINK_PORT:-8025}" --folder "$SF_VAR/mail" \
      >"$LOGS/smtp-sink.log" 2>&1 </dev/null &
    echo $! >"$RUN/smtp-sink.pid"
  fi
  start_one api-server --host 127.0.0.1 --port "$SF_AIRFLOW_PORT"
  # --skip-serve-logs: the API server reads task logs from the shared local folder, so no log server
  # needs to listen on a port at all.
  start_one scheduler --skip-serve-logs
  start_one dag-processor
  start_one triggerer --skip-serve-logs
  if [ "$SF_EXECUTOR" = celery ]; then start_workers; fi
  for _ in $(seq 1 120); do
    if health | grep -q '"scheduler":{"status":"healthy"'; then
      echo "Airflow is up ($SF_EXECUTOR executor$([ "$SF_EXECUTOR" = celery ] && echo ", workers: $(workers | sed 's/^worker-//' | paste -sd ' ')")): http://127.0.0.1:$SF_AIRFLOW_PORT (logs in $LOGS)"
      return 0
    fi
    for name in "${COMPONENTS[@]}"; do
      alive "$name" || { echo "airflow $name exited; last lines of $LOGS/$name.log:" >&2; tail -20 "$LOGS/$name.log" >&2; exit 1; }
    done
    sleep 1
  done
  echo "Airflow did not become healthy in 120 s; see $LOGS" >&2
  exit 1
}

stop() {
  local -a all
  mapfile -t all < <(workers)
  all+=("${COMPONENTS[@]}")
  for name in "${all[@]}"; do
    local pid; pid=$(pid_of "$name")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for name in "${all[@]}"; do
    local pid; pid=$(pid_of "$name")
    for _ in $(seq 1 30); do
      { [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; } && break
      sleep 1
    done
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$RUN/$name.pid"
  done
  rm -f "$RUN/executor" "$RUN/workers"
}

status() {
  echo "executor: $(cat "$RUN/executor" 2>/dev/null || echo none)"
  for name in "${COMPONENTS[@]}" $(workers); do
    if alive "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
