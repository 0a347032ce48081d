#!/usr/bin/env bash
# Proves the Grafana dashboards and the alert rules against a real Prometheus scraping a real
# deployment on loopback:
#  - a sim provider with some failures (503s, 429s, jitter);
#  - the embedded broker, 3 worker processes and the gateway, every endpoint pointed at the
#    sim with fake keys (the same roles and job names as deploy/prometheus/prometheus.yml);
#  - interactive traffic (`llm-router ask`, curl to the gateway) and a batch job;
#  - Prometheus (Debian's package; this script installs nothing) with a 1 s scrape interval
#    and deploy/prometheus/alerts.yml loaded;
#  - `promtool check rules` on the alert rules, then tests/python/observability_check.py:
#    every panel query of every dashboard must parse and return data, every alert expression
#    must parse.
#
# Env: LLM_ROUTER_BIN   binary (default target/debug/llm-router; built if missing)
#      PROMETHEUS       prometheus binary (default: prometheus on PATH)
#      PROMTOOL         promtool binary (default: promtool on PATH)
#      PYTHON           python interpreter (default python3)
#      OBS_KEEP=1       keep the run directory (logs, Prometheus data) for a look afterwards
# Ends with `observability: N panels with data, M empty, K alert rules ok`.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh observability
TALLY=0
[[ ${OBS_KEEP:-0} == 1 ]] && KEEP_RUN_DIR=1
PROMETHEUS=${PROMETHEUS:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
STARTED=$(date +%s)

# start NAME CMD...: runs CMD in the background, logs in $RUN_DIR/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.log" &
  PIDS+=($!)
}

# wait_http NAME URL: until URL answers 2xx (30 s at most).
wait_http() {
  local name=$1 url=$2
  for _ in $(seq 150); do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.2
  done
  tail -20 "$RUN_DIR/$name.log" >&2
  die "$name not ready at $url after 30 s"
}

SIM_PORT=$(free_port)
GRPC_PORT=$(free_port)
REST_PORT=$(free_port)
GATEWAY_PORT=$(free_port)
PROM_PORT=$(free_port)
WORKER_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
BROKER=127.0.0.1:$GRPC_PORT
SIM_URL=http://127.0.0.1:$SIM_PORT

# Every endpoint goes to the sim with fake keys. The anthropic endpoint has a rate budget
# (shared by the 3 replicas, drained at start) so requests wait for it; the openai endpoint
# limits its concurrency so bursts wait too.
export OPENAI_API_KEY=sk-observability-fake-openai
export ANTHROPIC_API_KEY=sk-ant-observability-fake
export LLM_ROUTER__ENDPOINTS__OPENAI__BASE_URL=$SIM_URL
export LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__BASE_URL=$SIM_URL
export LLM_ROUTER__ENDPOINTS__ANTHROPIC__BASE_URL=$SIM_URL
export LLM_ROUTER__ENDPOINTS__ANTHROPIC__LIMITS__REQUESTS_PER_MINUTE=300
export LLM_ROUTER__ENDPOINTS__OPENAI__LIMITS__MAX_CONCURRENCY=4
export LLM_ROUTER_CONFIG_DIR=$RUN_DIR/no-config
export RUST_LOG=${RUST_LOG:-info}

start_system() {
  start sim "$BIN" sim-provider --listen "127.0.0.1:$SIM_PORT" --latency-ms 20 --jitter-ms 60 \
    --error-rate 503=0.2 --error-rate 500=0.05 --rate-429 0.05 --retry-after-secs 1 --seed 7
  start broker "$BIN" broker --grpc-port "$GRPC_PORT" --rest-port "$REST_PORT" \
    --data-dir "$RUN_DIR/broker" --fsync interval:50
  wait_http broker "http://127.0.0.1:$REST_PORT/ready"
  local i
  for i in 0 1 2; do
    start "worker$((i + 1))" "$BIN" worker --broker "$BROKER" --metrics-port "${WORKER_PORTS[$i]}" \
      --id "obs-worker-$((i + 1))"
  done
  start gateway "$BIN" gateway --broker "$BROKER" --listen "127.0.0.1:$GATEWAY_PORT"
  for i in 0 1 2; do
    wait_http "worker$((i + 1))" "http://127.0.0.1:${WORKER_PORTS[$i]}/ready"
  done
  wait_http gateway "http://127.0.0.1:$GATEWAY_PORT/ready"
}

# deploy/prometheus/up.yml (the config shipped for one machine), with this run's ports and
# a 1 s scrape: the same job names as deploy/prometheus/prometheus.yml, so the dashboards'
# and alerts' selectors are the ones checked here.
start_prometheus() {
  local workers
  workers=$(printf '"127.0.0.1:%s", ' "${WORKER_PORTS[@]}")
  sed -e "s|scrape_interval: 5s|scrape_interval: 1s|; s|evaluation_interval: 5s|evaluation_interval: 1s|" \
      -e "s|  - alerts.yml|  - $PWD/deploy/prometheus/alerts.yml|" \
      -e "s|\"127.0.0.1:9090\"|\"127.0.0.1:$REST_PORT\"|" \
      -e "s|\"127.0.0.1:9091\"|${workers%, }|" \
      -e "s|\"127.0.0.1:8000\"|\"127.0.0.1:$GATEWAY_PORT\"|" \
      deploy/prometheus/up.yml >"$RUN_DIR/prometheus.yml"
  grep -q "127.0.0.1:$GATEWAY_PORT" "$RUN_DIR/prometheus.yml" || die "deploy/prometheus/up.yml no longer has the targets this script rewrites"
  start prometheus "$PROMETHEUS" --config.file="$RUN_DIR/prometheus.yml" \
    --storage.tsdb.path="$RUN_DIR/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-lifecycle
  wait_http prometheus "http://127.0.0.1:$PROM_PORT/-/ready"
}

# Interactive traffic: asks on both routes, gateway chat requests (one to an unknown model,
# for a 404), a few at once so limits and concurrency show.
interactive_traffic() {
  local i ok=0 total=0
  for i in $(seq 8); do
    total=$((total + 2))
    "$BIN" ask openai "observability ask $i" --broker "$BROKER" --timeout 20 >/dev/null 2>>"$RUN_DIR/ask.log" && ok=$((ok + 1))
    "$BIN" ask claude "observability ask $i" --broker "$BROKER" --timeout 20 >/dev/null 2>>"$RUN_DIR/ask.log" && ok=$((ok + 1))
  done
  for i in $(seq 24); do
    curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" \
      -H 'content-type: application/json' \
      -d "{\"model\":\"openai\",\"messages\":[{\"role\":\"user\",\"content\":\"observability chat $i\"}]}" &
    TRAFFIC+=($!)
  done >"$RUN_DIR/curl.codes"
  # Streamed chat completions (server-sent events).
  for i in $(seq 6); do
    curl -s -N -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" \
      -H 'content-type: application/json' \
      -d "{\"model\":\"openai\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"observability stream $i\"}]}" &
    TRAFFIC+=($!)
  done >"$RUN_DIR/stream.codes"
  wait_children
  curl -s -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" \
    -H 'content-type: application/json' \
    -d '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}'
  # A JSON-tagged query whose body is not JSON: the worker answers bad_request.
  curl -s -o /dev/null -X POST "http://127.0.0.1:$REST_PORT/send/request" -H 'content-type: application/json' \
    -d '{"RequestTypeData":2,"ClientID":"obs","Channel":"openai_requests","BodyString":"not json","Timeout":10000,"Tags":{"content-type":"application/json"}}'
  echo "interactive: $ok/$total asks answered, gateway statuses: $(sort "$RUN_DIR/curl.codes" | uniq -c | tr -s ' \n' ' '), streamed: $(sort "$RUN_DIR/stream.codes" | uniq -c | tr -s ' \n' ' ')"
  ((ok > 0)) || die "no ask was answered; see $RUN_DIR/ask.log"
}

# Waits for the traffic started in the background (not the long-running services).
TRAFFIC=()
wait_children() {
  local pid
  for pid in "${TRAFFIC[@]}"; do
    wait "$pid"
  done
  TRAFFIC=()
}

batch_traffic() {
  local i
  for i in $(seq 60); do
    printf '{"custom_id":"obs-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"batch line %d"}]}}\n' "$i" "$i"
  done >"$RUN_DIR/batch.jsonl"
  timeout 120 "$BIN" batch --broker "$BROKER" submit "$RUN_DIR/batch.jsonl" --route openai \
    --max-attempts 2 --wait --output "$RUN_DIR/batch.out.jsonl" >"$RUN_DIR/batch.stdout" 2>"$RUN_DIR/batch.log" \
    || { tail -20 "$RUN_DIR/batch.log" >&2; die "batch job did not finish"; }
  echo "batch: $(wc -l <"$RUN_DIR/batch.out.jsonl") results, $(cat "$RUN_DIR"/batch.out.errors.jsonl 2>/dev/null | wc -l) errors"
}

command -v "$PROMETHEUS" >/dev/null || die "prometheus not found (apt-get install prometheus)"
command -v "$PROMTOOL" >/dev/null || die "promtool not found (apt-get install prometheus)"
"$PROMTOOL" check rules deploy/prometheus/alerts.yml || die "promtool check rules failed"
build
start_system
start_prometheus
interactive_traffic
batch_traffic
interactive_traffic
# A few scrapes after the last traffic, so every series has samples in the window.
sleep 4
"$PYTHON" tests/python/observability_check.py \
  --prometheus "http://127.0.0.1:$PROM_PORT" --since "$STARTED" \
  --dashboards dashboards --rules deploy/prometheus/alerts.yml
rc=$?
echo "observability: run took $(($(date +%s) - STARTED)) s"
exit $rc
