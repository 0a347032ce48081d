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
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh gateway-interop
VENV=$INTEROP_DIR/openai
# Test-only keys for this run's gateway; never real ones.
KEY=sk-interop-$RANDOM$RANDOM
export LLM_ROUTER_GATEWAY_KEYS="sk-interop-other,$KEY"

start_router() {
  local grpc rest metrics
  grpc=$(free_port)
  rest=$(free_port)
  metrics=$(free_port)
  GATEWAY_PORT=$(free_port)
  export GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
  export GATEWAY_KEY=$KEY
  up_broker_args "$grpc" "$rest"
  start_up "$GATEWAY_URL/ready" --sim --sim-chunk-delay-ms 100 --workers 2 "${UP_BROKER[@]}" \
    --metrics-port "$metrics" --gateway-listen "127.0.0.1:$GATEWAY_PORT"
}

# Runs one SDK script (tests/python/$1, $2 seconds at most) and counts its PASS/FAIL lines.
check_python() {
  run_checks tests/python "${2:-120}" "$VENV/bin/python" "$1"
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
make_venv "$VENV" openai
start_router
check_python gateway_openai.py
check_python gateway_batch.py 300
check_python gateway_stream.py
check_curl_chat
check_curl_stream
check_curl_error wrong_key_401 openai sk-wrong 401 invalid_api_key
check_curl_error unknown_route_404 no-such-route "$KEY" 404 unknown_route
finish up "$UP_PID" "$RUN_DIR/up.log"
