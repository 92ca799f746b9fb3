#!/usr/bin/env bash
# Start, stop or report the local Airflow components: api-server (UI + execution API), scheduler
# (LocalExecutor), dag-processor and triggerer. Each runs in the background with a pid file under
# $AIRFLOW_HOME/run and a log under $AIRFLOW_HOME/logs/services. Only 127.0.0.1 is listened on.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

RUN="$AIRFLOW_HOME/run"
LOGS="$AIRFLOW_HOME/logs/services"
COMPONENTS=(api-server scheduler dag-processor triggerer smtp-sink)

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

start() {
  mkdir -p "$RUN" "$LOGS"
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
  for _ in $(seq 1 120); do
    if health | grep -q '"scheduler":{"status":"healthy"'; then
      echo "Airflow is up: http://127.0.0.1:$SF_AIRFLOW_PORT (logs in $LOGS)"
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
  for name in "${COMPONENTS[@]}"; do
    local pid; pid=$(pid_of "$name")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for name in "${COMPONENTS[@]}"; do
    local pid; pid=$(pid_of "$name")
    for _ in $(seq 1 30); do
      { [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; } && break
      sleep 1
    done
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$RUN/$name.pid"
  done
}

status() {
  for name in "${COMPONENTS[@]}"; do
    if alive "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
