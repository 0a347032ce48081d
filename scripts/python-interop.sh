#!/usr/bin/env bash
# Python SDK interop: runs tests/python against the embedded broker binary with the
# kubemq 3.x SDK (the article's API: kubemq.cq Client/QueryMessage/...) and the 4.x SDK.
#
# Env: LLM_ROUTER_BIN   broker binary (default target/debug/llm-router; built if missing)
#      PYTHON           python interpreter for the virtualenvs (default python3)
#      INTEROP_DIR      where the virtualenvs live (default target/python-interop)
# Prints one PASS/FAIL line per check and ends with `python-interop: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh python-interop

# kubemq_venv DIR SPEC: a virtualenv with the kubemq SDK version SPEC.
kubemq_venv() {
  make_venv "$1" "$2"
  echo "$("$1/bin/python" -m pip show kubemq | grep '^Version') in $1"
}

start_broker() {
  GRPC_PORT=$(free_port)
  REST_PORT=$(free_port)
  export KUBEMQ_ADDRESS="127.0.0.1:$GRPC_PORT" KUBEMQ_REST="127.0.0.1:$REST_PORT"
  if on_kubemq; then
    start_kubemq "$GRPC_PORT" "$REST_PORT"
    BROKER_PID=${PIDS[-1]}
    return
  fi
  "$BIN" broker --grpc-port "$GRPC_PORT" --rest-port "$REST_PORT" \
    --data-dir "$RUN_DIR/data" >"$RUN_DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  export KUBEMQ_ADDRESS="127.0.0.1:$GRPC_PORT" KUBEMQ_REST="127.0.0.1:$REST_PORT"
  await_ready "$BROKER_PID" broker "$RUN_DIR/broker.log" "http://127.0.0.1:$REST_PORT/ready"
  echo "broker ready: gRPC $KUBEMQ_ADDRESS, REST $KUBEMQ_REST"
}

build
kubemq_venv "$INTEROP_DIR/kubemq3" "kubemq>=3.4.1,<4"
kubemq_venv "$INTEROP_DIR/kubemq4" "kubemq>=4,<5"
start_broker

(cd tests/python && exec "$INTEROP_DIR/kubemq3/bin/python" v3_responder.py) \
  >"$RUN_DIR/responder.log" 2>&1 &
RESPONDER_PID=$!
PIDS+=("$RESPONDER_PID")
run_checks tests/python 300 "$INTEROP_DIR/kubemq3/bin/python" v3_sender.py
kill "$RESPONDER_PID" 2>/dev/null && wait "$RESPONDER_PID" 2>/dev/null
run_checks tests/python 300 "$INTEROP_DIR/kubemq3/bin/python" v3_pubsub_queues.py
run_checks tests/python 300 "$INTEROP_DIR/kubemq4/bin/python" v4_checks.py

finish broker "$BROKER_PID" "$RUN_DIR/broker.log"
