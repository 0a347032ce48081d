#!/usr/bin/env bash
# The article's flows against `llm-router up --sim` on free loopback ports:
#  - tests/python/article_client.py with the kubemq 3.x SDK (the article's client.py:
#    send_query_request on openai_requests and claude_requests, json.loads(body)["response"]);
#  - the article's REST call, POST /send/request with BodyString, via curl;
#  - `llm-router ask` in seed and JSON mode.
#
# Env: LLM_ROUTER_BIN   binary (default target/debug/llm-router; built if missing)
#      PYTHON           python interpreter for the virtualenv (default python3)
#      INTEROP_DIR      where the virtualenvs live (default target/python-interop, shared
#                       with scripts/python-interop.sh; the 3.x one is $INTEROP_DIR/kubemq3)
# Prints one PASS/FAIL line per check and ends with `up-interop: N passed, M failed`.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${LLM_ROUTER_BIN:-target/debug/llm-router}
PYTHON=${PYTHON:-python3}
INTEROP_DIR=${INTEROP_DIR:-$ROOT/target/python-interop}
VENV=$INTEROP_DIR/kubemq3
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/up-interop.XXXXXX")
UP_PID=""
PASSED=0
FAILED=0

cleanup() {
  if [[ -n $UP_PID ]]; then
    kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
  fi
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

die() {
  echo "up-interop: $*" >&2
  echo "up-interop: $PASSED passed, $((FAILED + 1)) failed"
  exit 1
}

pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

build() {
  [[ -x $BIN ]] && return 0
  local profile=()
  [[ $BIN == *release* ]] && profile=(--release)
  echo "building $BIN"
  cargo build --locked "${profile[@]}" --bin llm-router || die "cannot build llm-router"
}

make_venv() {
  [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV" || die "cannot create venv $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "kubemq>=3.4.1,<4" \
    || die "cannot install kubemq>=3.4.1,<4"
}

start_up() {
  GRPC_PORT=$(free_port)
  REST_PORT=$(free_port)
  METRICS_PORT=$(free_port)
  "$BIN" up --sim --workers 2 --grpc-port "$GRPC_PORT" --rest-port "$REST_PORT" \
    --metrics-port "$METRICS_PORT" --data-dir "$RUN_DIR/data" \
    >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.log" &
  UP_PID=$!
  export KUBEMQ_ADDRESS="127.0.0.1:$GRPC_PORT"
  for _ in $(seq 150); do
    if ! kill -0 "$UP_PID" 2>/dev/null; then
      cat "$RUN_DIR/up.log" >&2
      die "llm-router up exited before it was ready"
    fi
    if grep -q "ready in" "$RUN_DIR/up.out" \
      && curl -sf "http://127.0.0.1:$METRICS_PORT/ready" >/dev/null; then
      cat "$RUN_DIR/up.out"
      return 0
    fi
    sleep 0.2
  done
  cat "$RUN_DIR/up.log" >&2
  die "llm-router up not ready after 30 s"
}

check_python() {
  local out rc
  out=$(cd tests/python && timeout 120 "$VENV/bin/python" -W ignore::DeprecationWarning \
    article_client.py 2>"$RUN_DIR/article.err")
  rc=$?
  echo "$out"
  PASSED=$((PASSED + $(grep -c '^PASS ' <<<"$out")))
  local failed
  failed=$(grep -c '^FAIL ' <<<"$out")
  if [[ $rc -ne 0 && $failed -eq 0 ]]; then
    echo "FAIL article_client.py: exited with $rc before reporting a failure"
    failed=1
  fi
  [[ $failed -ne 0 ]] && sed 's/^/    /' "$RUN_DIR/article.err" | tail -40
  FAILED=$((FAILED + failed))
}

# The article's REST call: a query with the prompt as BodyString; the answer's Body is
# base64 of {"response": ...}.
check_rest() {
  local channel=$1 out answer
  out=$(curl -sS -X POST "http://127.0.0.1:$REST_PORT/send/request" \
    -H 'Content-Type: application/json' \
    -d "{\"RequestTypeData\":2,\"ClientID\":\"curl-client\",\"Channel\":\"$channel\",\"BodyString\":\"What is KubeMQ?\",\"Timeout\":30000}")
  answer=$("$PYTHON" -c '
import base64, json, sys
reply = json.load(sys.stdin)
assert not reply["is_error"], reply["message"]
assert reply["data"].get("Executed"), reply["data"].get("Error")
print(json.loads(base64.b64decode(reply["data"]["Body"]))["response"])' <<<"$out" 2>&1)
  if [[ $? -eq 0 && -n $answer ]]; then
    echo "$channel (REST): $answer"
    pass "rest.send_request_body_string.$channel"
  else
    fail "rest.send_request_body_string.$channel" "$answer (reply: $out)"
  fi
}

check_ask() {
  local name=$1 out
  shift
  if out=$("$BIN" ask --broker "$KUBEMQ_ADDRESS" "$@" 2>&1) && [[ -n $out ]]; then
    pass "ask.$name"
  else
    fail "ask.$name" "$out"
  fi
}

build
make_venv
start_up
check_python
check_rest openai_requests
check_rest claude_requests
check_ask seed openai "Hello from the shell"
check_ask json openai --json "Hello in JSON"
if out=$("$BIN" ask --broker "$KUBEMQ_ADDRESS" no-such-route "x" 2>&1); then
  fail "ask.unknown_route" "exited 0: $out"
else
  pass "ask.unknown_route"
fi
if ! kill -0 "$UP_PID" 2>/dev/null; then
  fail "up" "exited during the checks"
  tail -20 "$RUN_DIR/up.log"
fi
echo "up-interop: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
