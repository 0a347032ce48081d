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
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh up-interop
VENV=$INTEROP_DIR/kubemq3

start_router() {
  GRPC_PORT=$(free_port)
  REST_PORT=$(free_port)
  METRICS_PORT=$(free_port)
  export KUBEMQ_ADDRESS="127.0.0.1:$GRPC_PORT"
  up_broker_args "$GRPC_PORT" "$REST_PORT"
  start_up "http://127.0.0.1:$METRICS_PORT/ready" --sim --workers 2 "${UP_BROKER[@]}" \
    --metrics-port "$METRICS_PORT"
}

# The article's REST call: a query with the prompt as BodyString (an extension of the
# embedded broker) or as base64 Body (KubeMQ's own field, which the real server needs);
# the answer's Body is base64 of {"response": ...}.
check_rest() {
  local channel=$1 field=$2 out answer prompt
  prompt='"What is KubeMQ?"'
  [[ $field == Body ]] && prompt="\"$(printf 'What is KubeMQ?' | base64)\""
  out=$(curl -sS -X POST "http://127.0.0.1:$REST_PORT/send/request" \
    -H 'Content-Type: application/json' \
    -d "{\"RequestTypeData\":2,\"ClientID\":\"curl-client\",\"Channel\":\"$channel\",\"$field\":$prompt,\"Timeout\":30000}")
  answer=$("$PYTHON" -c '
import base64, json, sys
reply = json.load(sys.stdin)
assert not reply["is_error"], reply["message"]
assert reply["data"].get("Executed"), reply["data"].get("Error")
print(json.loads(base64.b64decode(reply["data"]["Body"]))["response"])' <<<"$out" 2>&1)
  if [[ $? -eq 0 && -n $answer ]]; then
    echo "$channel (REST $field): $answer"
    pass "rest.send_request_$field.$channel"
  else
    fail "rest.send_request_$field.$channel" "$answer (reply: $out)"
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
make_venv "$VENV" "kubemq>=3.4.1,<4"
start_router
run_checks tests/python 120 "$VENV/bin/python" article_client.py
check_rest openai_requests Body
check_rest claude_requests Body
if ! on_kubemq; then
  check_rest openai_requests BodyString
  check_rest claude_requests BodyString
fi
check_ask seed openai "Hello from the shell"
check_ask json openai --json "Hello in JSON"
if out=$("$BIN" ask --broker "$KUBEMQ_ADDRESS" no-such-route "x" 2>&1); then
  fail "ask.unknown_route" "exited 0: $out"
else
  pass "ask.unknown_route"
fi
finish up "$UP_PID" "$RUN_DIR/up.log"
