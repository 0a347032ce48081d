#!/usr/bin/env bash
# The whole chat API through the router, with the official `openai` Python SDK
# (tests/python/chat_api.py): tool-calling agent loops (whole and streamed), structured
# output parsed into a pydantic model, vision input, n > 1, unknown fields passed through,
# embeddings (float and base64), and the 400s for what an Anthropic endpoint cannot honour,
# each on an OpenAI-kind route (`gpt`) and an Anthropic-kind route (`claude`).
#
# Not `up --sim`: that points every endpoint at one in-process sim of its own kind, and
# these checks need one OpenAI-kind and one Anthropic-kind endpoint on a sim they can ask
# what it was sent (GET /sim/last-request), so the translation itself is checked, not only
# the answer. So the sim runs as its own process (`llm-router sim-provider`) and `up` gets a
# config directory whose endpoints point at it.
#
# Env: LLM_ROUTER_BIN          binary (default target/debug/llm-router; built if missing)
#      PYTHON                  python interpreter for the virtualenv (default python3)
#      INTEROP_DIR             where the virtualenvs live (default target/python-interop; the
#                              openai one is $INTEROP_DIR/openai)
#      LLM_ROUTER_TEST_BROKER  kubemq: against the real KubeMQ server (see scripts/lib.sh)
# Prints one PASS/FAIL line per check and ends with `chat-api: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh chat-api
VENV=$INTEROP_DIR/openai

# The simulated provider on a free port; SIM_URL is where both endpoints point.
start_sim() {
  local port pid
  port=$(free_port)
  export SIM_URL="http://127.0.0.1:$port"
  "$BIN" sim-provider --listen "127.0.0.1:$port" >"$RUN_DIR/sim.out" 2>"$RUN_DIR/sim.log" &
  pid=$!
  PIDS+=("$pid")
  SIM_PID=$pid
  await_ready "$pid" "llm-router sim-provider" "$RUN_DIR/sim.log" "$SIM_URL/health"
  echo "simulated provider: $SIM_URL (pid $pid)"
}

# The config directory of `up`: layered over the built-in config/default.toml, so the
# built-in routes on real providers are switched off (an enabled route on an endpoint
# without its key would make `up` fall back to its own sim, and these checks would then
# not reach $SIM_URL), and `claude` gets new targets (a list set here replaces the list).
write_config() {
  mkdir -p "$RUN_DIR/config"
  cat >"$RUN_DIR/config/default.toml" <<EOF
[endpoints.sim-openai]
kind = "openai"
base-url = "$SIM_URL"

[endpoints.sim-claude]
kind = "anthropic"
base-url = "$SIM_URL"

[routes.openai]
enabled = false

[routes.summarize]
enabled = false

[routes.sentiment]
enabled = false

[routes.gpt]
channel = "gpt_requests"
targets = [{ endpoint = "sim-openai", model = "gpt-sim" }]

[routes.claude]
channel = "claude_requests"
targets = [{ endpoint = "sim-claude", model = "claude-sim" }]

[routes.embed]
channel = "embed_requests"
targets = [{ endpoint = "sim-openai", model = "embed-sim" }]
EOF
}

start_router() {
  local grpc rest metrics
  grpc=$(free_port)
  rest=$(free_port)
  metrics=$(free_port)
  GATEWAY_PORT=$(free_port)
  export GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
  up_broker_args "$grpc" "$rest"
  start_up "$GATEWAY_URL/ready" --config "$RUN_DIR/config" --workers 2 "${UP_BROKER[@]}" \
    --metrics-port "$metrics" --gateway-listen "127.0.0.1:$GATEWAY_PORT"
  # `up` says so when it started a sim of its own; then the endpoints above are not used.
  if grep -q "built-in simulated provider" "$RUN_DIR/up.out"; then
    die "up started its own simulated provider instead of using $SIM_URL"
  fi
}

build
# pydantic for the structured-output check (the SDK pulls it in; named so it stays there).
make_venv "$VENV" openai pydantic
start_sim
write_config
start_router
run_checks tests/python 300 "$VENV/bin/python" chat_api.py
if ! kill -0 "$SIM_PID" 2>/dev/null; then
  fail sim-provider "exited during the checks"
  tail -20 "$RUN_DIR/sim.log"
fi
finish up "$UP_PID" "$RUN_DIR/up.log"
