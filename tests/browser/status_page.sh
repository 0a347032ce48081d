#!/usr/bin/env bash
# The status page in headless Chromium: starts `llm-router up --sim` (free loopback ports,
# the OpenAI endpoints slowed to 60 requests/min each so a batch job keeps running),
# submits a batch job, then tests/browser/status_page.py loads /status and checks that it
# shows the routes, workers, endpoints and the running job's progress bar, refreshes live,
# and logs no console errors; the screenshot goes to docs/status.png.
#
# Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver).
# Env: LLM_ROUTER_BIN   binary (default target/debug/llm-router; built if missing)
#      PYTHON           python interpreter for the virtualenv (default python3)
#      INTEROP_DIR      where the virtualenvs live (default target/python-interop)
#      SCREENSHOT       where to save the page (default docs/status.png)
# Prints one PASS/FAIL line per check and ends with `status-page: N passed, M failed`.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${LLM_ROUTER_BIN:-target/debug/llm-router}
PYTHON=${PYTHON:-python3}
INTEROP_DIR=${INTEROP_DIR:-$ROOT/target/python-interop}
VENV=$INTEROP_DIR/browser
export SCREENSHOT=${SCREENSHOT:-$ROOT/docs/status.png}
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/status-page.XXXXXX")
UP_PID=""
PASSED=0
FAILED=0
LINES=150

cleanup() {
  if [[ -n $UP_PID ]]; then
    kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
  fi
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

die() {
  echo "status-page: $*" >&2
  echo "status-page: $PASSED passed, $((FAILED + 1)) failed"
  exit 1
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

build() {
  [[ -x $BIN ]] && return 0
  echo "building $BIN"
  cargo build --locked --bin llm-router || die "cannot build llm-router"
}

make_venv() {
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] \
    || die "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
  [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV" || die "cannot create venv $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check selenium \
    || die "cannot install selenium"
}

start_up() {
  local rest metrics gateway
  GRPC_PORT=$(free_port)
  rest=$(free_port)
  metrics=$(free_port)
  gateway=$(free_port)
  LLM_ROUTER__ENDPOINTS__OPENAI__LIMITS__REQUESTS_PER_MINUTE=60 \
  LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__LIMITS__REQUESTS_PER_MINUTE=60 \
    "$BIN" up --sim --workers 2 --grpc-port "$GRPC_PORT" --rest-port "$rest" \
    --metrics-port "$metrics" --gateway-listen "127.0.0.1:$gateway" \
    --data-dir "$RUN_DIR/data" >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.log" &
  UP_PID=$!
  export GATEWAY_URL="http://127.0.0.1:$gateway"
  for _ in $(seq 150); do
    if ! kill -0 "$UP_PID" 2>/dev/null; then
      cat "$RUN_DIR/up.log" >&2
      die "llm-router up exited before it was ready"
    fi
    if grep -q "ready in" "$RUN_DIR/up.out" && curl -sf "$GATEWAY_URL/ready" >/dev/null; then
      cat "$RUN_DIR/up.out"
      return 0
    fi
    sleep 0.2
  done
  cat "$RUN_DIR/up.log" >&2
  die "llm-router up not ready after 30 s"
}

submit_job() {
  "$PYTHON" - "$LINES" >"$RUN_DIR/job.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"model": "gpt-4o-mini",
                               "messages": [{"role": "user", "content": f"say {i}"}]}}))
PY
  JOB_ID=$("$BIN" batch submit "$RUN_DIR/job.jsonl" --route openai \
    --broker "127.0.0.1:$GRPC_PORT" 2>"$RUN_DIR/submit.err") \
    || { cat "$RUN_DIR/submit.err" >&2; die "batch submit failed"; }
  export JOB_ID JOB_LINES=$LINES
  echo "submitted $JOB_ID ($LINES lines)"
}

check_page() {
  local out rc failed
  out=$(timeout 120 "$VENV/bin/python" tests/browser/status_page.py 2>"$RUN_DIR/browser.err")
  rc=$?
  echo "$out"
  PASSED=$((PASSED + $(grep -c '^PASS ' <<<"$out")))
  failed=$(grep -c '^FAIL ' <<<"$out")
  if [[ $rc -ne 0 && $failed -eq 0 ]]; then
    echo "FAIL status_page.py: exited with $rc before reporting a failure"
    failed=1
  fi
  [[ $failed -ne 0 ]] && sed 's/^/    /' "$RUN_DIR/browser.err" | tail -40
  FAILED=$((FAILED + failed))
}

build
make_venv
start_up
submit_job
check_page
if ! kill -0 "$UP_PID" 2>/dev/null; then
  echo "FAIL up: exited during the checks"
  FAILED=$((FAILED + 1))
  tail -20 "$RUN_DIR/up.log"
fi
echo "status-page: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
