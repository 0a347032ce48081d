#!/usr/bin/env bash
# Python SDK interop: runs tests/python against the embedded broker binary with the
# kubemq 3.x SDK (the article's API: kubemq.cq Client/QueryMessage/...) and the 4.x SDK.
#
# Env: LLM_ROUTER_BIN   broker binary (default target/debug/llm-router; built if missing)
#      PYTHON           python interpreter for the virtualenvs (default python3)
#      INTEROP_DIR      where the virtualenvs live (default target/python-interop)
# Prints one PASS/FAIL line per check and ends with `python-interop: N passed, M failed`.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${LLM_ROUTER_BIN:-target/debug/llm-router}
PYTHON=${PYTHON:-python3}
INTEROP_DIR=${INTEROP_DIR:-$ROOT/target/python-interop}
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/python-interop.XXXXXX")
BROKER_PID=""
RESPONDER_PID=""

cleanup() {
  for pid in $RESPONDER_PID $BROKER_PID; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

die() {
  echo "python-interop: $*" >&2
  echo "python-interop: 0 passed, 1 failed"
  exit 1
}

build_broker() {
  [[ -x $BIN ]] && return 0
  local profile=()
  [[ $BIN == *release* ]] && profile=(--release)
  echo "building $BIN"
  cargo build --locked "${profile[@]}" --bin llm-router || die "cannot build the broker"
}

# make_venv DIR SPEC: a virtualenv with the kubemq SDK version SPEC.
make_venv() {
  local dir=$1 spec=$2
  [[ -x $dir/bin/python ]] || "$PYTHON" -m venv "$dir" || die "cannot create venv $dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$spec" \
    || die "cannot install $spec"
  echo "$("$dir/bin/python" -m pip show kubemq | grep '^Version') in $dir"
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_broker() {
  GRPC_PORT=$(free_port)
  REST_PORT=$(free_port)
  "$BIN" broker --grpc-port "$GRPC_PORT" --rest-port "$REST_PORT" \
    --data-dir "$RUN_DIR/data" >"$RUN_DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  export KUBEMQ_ADDRESS="127.0.0.1:$GRPC_PORT" KUBEMQ_REST="127.0.0.1:$REST_PORT"
  local probe="import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$REST_PORT/ready', timeout=1).status == 200 else 1)
except OSError:
    sys.exit(1)"
  for _ in $(seq 150); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      cat "$RUN_DIR/broker.log" >&2
      die "broker exited before it was ready"
    fi
    if "$PYTHON" -c "$probe"; then
      echo "broker ready: gRPC $KUBEMQ_ADDRESS, REST $KUBEMQ_REST"
      return 0
    fi
    sleep 0.2
  done
  cat "$RUN_DIR/broker.log" >&2
  die "broker not ready after 30 s"
}

PASSED=0
FAILED=0

# run_checks PYTHON SCRIPT: runs one check script and tallies its PASS/FAIL lines.
run_checks() {
  local py=$1 script=$2 out rc
  out=$(cd tests/python && timeout 300 "$py" -W ignore::DeprecationWarning "$script" 2>"$RUN_DIR/$script.err")
  rc=$?
  echo "$out"
  local passed failed
  passed=$(grep -c '^PASS ' <<<"$out")
  failed=$(grep -c '^FAIL ' <<<"$out")
  if [[ $rc -ne 0 && $failed -eq 0 ]]; then
    echo "FAIL $script: exited with $rc before reporting a failure"
    failed=1
  fi
  if [[ $failed -ne 0 ]]; then
    sed 's/^/    /' "$RUN_DIR/$script.err" | tail -40
  fi
  PASSED=$((PASSED + passed))
  FAILED=$((FAILED + failed))
}

build_broker
make_venv "$INTEROP_DIR/kubemq3" "kubemq>=3.4.1,<4"
make_venv "$INTEROP_DIR/kubemq4" "kubemq>=4,<5"
start_broker

(cd tests/python && exec "$INTEROP_DIR/kubemq3/bin/python" v3_responder.py) \
  >"$RUN_DIR/responder.log" 2>&1 &
RESPONDER_PID=$!
run_checks "$INTEROP_DIR/kubemq3/bin/python" v3_sender.py
kill "$RESPONDER_PID" 2>/dev/null && wait "$RESPONDER_PID" 2>/dev/null
RESPONDER_PID=""
run_checks "$INTEROP_DIR/kubemq3/bin/python" v3_pubsub_queues.py
run_checks "$INTEROP_DIR/kubemq4/bin/python" v4_checks.py

if ! kill -0 "$BROKER_PID" 2>/dev/null; then
  echo "FAIL broker: exited during the checks"
  tail -20 "$RUN_DIR/broker.log"
  FAILED=$((FAILED + 1))
fi
echo "python-interop: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
