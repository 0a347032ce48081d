#!/usr/bin/env bash
# The OpenAI-compatible gateway of `llm-router up --sim` (free loopback ports, API keys set):
#  - tests/python/gateway_openai.py with the official `openai` Python SDK: chat, models,
#    request id, errors as the SDK's typed exceptions;
#  - tests/python/gateway_batch.py: files and batches through the same SDK (upload, batch
#    to completed, output file, list, cancel, typed errors);
#  - tests/python/gateway_stream.py: streaming through the same SDK (chunks arrive one by
#    one, the sim streaming a word every 100 ms; a mid-stream failure raises APIError);
#  - the same chat and stream (`curl -N`), a wrong key and an unknown route through curl.
#
# Env: LLM_ROUTER_BIN   binary (default target/debug/llm-router; built if missing)
#      PYTHON           python interpreter for the virtualenv (default python3)
#      INTEROP_DIR      where the virtualenvs live (default target/python-interop; the
#                       openai one is $INTEROP_DIR/openai)
# Prints one PASS/FAIL line per check and ends with `gateway-interop: N passed, M failed`.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${LLM_ROUTER_BIN:-target/debug/llm-router}
PYTHON=${PYTHON:-python3}
INTEROP_DIR=${INTEROP_DIR:-$ROOT/target/python-interop}
VENV=$INTEROP_DIR/openai
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gateway-interop.XXXXXX")
UP_PID=""
PASSED=0
FAILED=0
# Test-only keys for this run's gateway; never real ones.
KEY=sk-interop-$RANDOM$RANDOM
export LLM_ROUTER_GATEWAY_KEYS="sk-interop-other,$KEY"

cleanup() {
  if [[ -n $UP_PID ]]; then
    kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
  fi
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

die() {
  echo "gateway-interop: $*" >&2
  echo "gateway-interop: $PASSED passed, $((FAILED + 1)) failed"
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
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check openai \
    || die "cannot install openai"
}

start_up() {
  local grpc rest metrics
  grpc=$(free_port)
  rest=$(free_port)
  metrics=$(free_port)
  GATEWAY_PORT=$(free_port)
  "$BIN" up --sim --sim-chunk-delay-ms 100 --workers 2 --grpc-port "$grpc" --rest-port "$rest" \
    --metrics-port "$metrics" --gateway-listen "127.0.0.1:$GATEWAY_PORT" \
    --data-dir "$RUN_DIR/data" >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.log" &
  UP_PID=$!
  export GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
  export GATEWAY_KEY=$KEY
  for _ in $(seq 150); do
    if ! kill -0 "$UP_PID" 2>/dev/null; then
      cat "$RUN_DIR/up.log" >&2
      die "llm-router up exited before it was ready"
    fi
    if grep -q "ready in" "$RUN_DIR/up.out" \
      && curl -sf "$GATEWAY_URL/ready" >/dev/null; then
      cat "$RUN_DIR/up.out"
      return 0
    fi
    sleep 0.2
  done
  cat "$RUN_DIR/up.log" >&2
  die "llm-router up not ready after 30 s"
}

# Runs one SDK script (tests/python/$1) and counts its PASS/FAIL lines.
check_python() {
  local script=${1:-gateway_openai.py} limit=${2:-120} out rc failed
  out=$(cd tests/python && timeout "$limit" "$VENV/bin/python" -W ignore::DeprecationWarning \
    "$script" 2>"$RUN_DIR/python.err")
  rc=$?
  echo "$out"
  PASSED=$((PASSED + $(grep -c '^PASS ' <<<"$out")))
  failed=$(grep -c '^FAIL ' <<<"$out")
  if [[ $rc -ne 0 && $failed -eq 0 ]]; then
    echo "FAIL $script: exited with $rc before reporting a failure"
    failed=1
  fi
  [[ $failed -ne 0 ]] && sed 's/^/    /' "$RUN_DIR/python.err" | tail -40
  FAILED=$((FAILED + failed))
}

# POSTs a chat for `model` with `key`; sets STATUS and BODY.
curl_chat() {
  local model=$1 key=$2
  BODY=$(curl -sS -o - -w '\n%{http_code}' "$GATEWAY_URL/v1/chat/completions" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -H 'x-request-id: curl-req-1' -D "$RUN_DIR/headers" \
    -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello from curl\"}]}")
  STATUS=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
}

check_curl_chat() {
  local answer
  curl_chat openai "$KEY"
  answer=$("$PYTHON" -c '
import json, sys
c = json.load(sys.stdin)
assert c["object"] == "chat.completion", c
print(c["choices"][0]["message"]["content"])' <<<"$BODY" 2>&1)
  if [[ $STATUS == 200 && $answer == *"Hello from curl"* ]] \
    && grep -qi '^x-request-id: curl-req-1' "$RUN_DIR/headers"; then
    echo "openai (curl): $answer"
    pass "curl.chat_completion"
  else
    fail "curl.chat_completion" "HTTP $STATUS: $BODY"
  fi
}

# A stream through `curl -N`: every line stamped with its arrival (ms), then checked: 5+
# chunks, `data: [DONE]` last, the first chunk well before the last, the request id back.
check_curl_stream() {
  local verdict
  curl -sS -N "$GATEWAY_URL/v1/chat/completions" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -H 'x-request-id: curl-stream-1' -D "$RUN_DIR/stream-headers" \
    -d '{"model":"openai","stream":true,"messages":[{"role":"user","content":"one two three four five six seven"}]}' \
    | while IFS= read -r line; do
      [[ -n $line ]] && printf '%s %s\n' "$(date +%s%3N)" "$line"
    done >"$RUN_DIR/stream"
  verdict=$("$PYTHON" - "$RUN_DIR/stream" <<'PY' 2>&1
import json, sys
lines = [l.rstrip("\n").split(" ", 1) for l in open(sys.argv[1])]
assert lines and lines[-1][1] == "data: [DONE]", lines[-1:]
chunks = [(int(t), json.loads(d[len("data: "):])) for t, d in lines[:-1]]
text = [(t, c["choices"][0]["delta"].get("content")) for t, c in chunks if c["choices"]]
text = [(t, s) for t, s in text if s]
assert len(text) >= 5, text
assert "".join(s for _, s in text) == "sim: one two three four five six seven", text
spread = text[-1][0] - text[0][0]
assert spread >= 500, f"chunks came together ({spread} ms apart)"
print(f"{len(text)} chunks over {spread} ms")
PY
  )
  if [[ $? -eq 0 ]] && grep -qi '^x-request-id: curl-stream-1' "$RUN_DIR/stream-headers"; then
    echo "openai (curl -N): $verdict"
    pass "curl.chat_stream"
  else
    fail "curl.chat_stream" "$verdict; $(head -c 600 "$RUN_DIR/stream")"
  fi
}

# An error through curl: expected status and OpenAI error code.
check_curl_error() {
  local name=$1 model=$2 key=$3 status=$4 code=$5 got
  curl_chat "$model" "$key"
  got=$("$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["error"]["code"])' \
    <<<"$BODY" 2>&1)
  if [[ $STATUS == "$status" && $got == "$code" ]]; then
    pass "curl.$name"
  else
    fail "curl.$name" "HTTP $STATUS: $BODY"
  fi
}

build
make_venv
start_up
check_python gateway_openai.py
check_python gateway_batch.py 300
check_python gateway_stream.py
check_curl_chat
check_curl_stream
check_curl_error wrong_key_401 openai sk-wrong 401 invalid_api_key
check_curl_error unknown_route_404 no-such-route "$KEY" 404 unknown_route
if ! kill -0 "$UP_PID" 2>/dev/null; then
  fail "up" "exited during the checks"
  tail -20 "$RUN_DIR/up.log"
fi
echo "gateway-interop: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
