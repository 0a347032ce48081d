#!/usr/bin/env bash
# The status page in headless Chromium: starts `llm-router up --sim` (free loopback ports,
# the OpenAI endpoints slowed to 60 requests/min each so a batch job keeps running),
# submits a batch job, then tests/browser/status_page.py loads /status and checks that it
# shows the routes, workers, endpoints and the running job's progress bar, refreshes live,
# and logs no console errors; the screenshot goes to target/status.png (copy it to
# docs/status.png by hand to refresh the README picture).
#
# Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver).
# Env: LLM_ROUTER_BIN   binary (default target/debug/llm-router; built if missing)
#      PYTHON           python interpreter for the virtualenv (default python3)
#      INTEROP_DIR      where the virtualenvs live (default target/python-interop)
#      SCREENSHOT       where to save the page (default target/status.png)
# Prints one PASS/FAIL line per check and ends with `status-page: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh status-page
VENV=$INTEROP_DIR/browser
export SCREENSHOT=${SCREENSHOT:-$ROOT/target/status.png}
LINES=150

start_router() {
  local rest metrics gateway
  GRPC_PORT=$(free_port)
  rest=$(free_port)
  metrics=$(free_port)
  gateway=$(free_port)
  export GATEWAY_URL="http://127.0.0.1:$gateway"
  LLM_ROUTER__ENDPOINTS__OPENAI__LIMITS__REQUESTS_PER_MINUTE=60 \
  LLM_ROUTER__ENDPOINTS__OPENAI_BACKUP__LIMITS__REQUESTS_PER_MINUTE=60 \
    start_up "$GATEWAY_URL/ready" --sim --workers 2 --grpc-port "$GRPC_PORT" --rest-port "$rest" \
    --metrics-port "$metrics" --gateway-listen "127.0.0.1:$gateway"
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

build
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] \
  || die "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
make_venv "$VENV" selenium
start_router
submit_job
run_checks . 120 "$VENV/bin/python" tests/browser/status_page.py
finish up "$UP_PID" "$RUN_DIR/up.log"
