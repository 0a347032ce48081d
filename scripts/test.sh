#!/usr/bin/env bash
# Runs every test twice over: once on the embedded broker, once on the real KubeMQ server
# v2.4.0 (../shared/kubemq-server, or KUBEMQ_SERVER_DIR). The first pass is the whole Rust
# suite (unit, conformance with the official kubemq crate, restart, REST, fuzz) and every
# script; the second reruns, with LLM_ROUTER_TEST_BROKER=kubemq, the tests that drive the
# broker only from outside (README: "Two brokers").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked
python3 scripts/readme-commands.py target/debug/llm-router README.md
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/python-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/up-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/gateway-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/chat-api.sh
LLM_ROUTER_BIN=target/debug/llm-router bash tests/browser/status_page.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/observability.sh; bash scripts/deploy-check.sh

# The same flows on the real server.
export LLM_ROUTER_TEST_BROKER=kubemq
flows=(worker members worker_cli logs streaming gateway gateway_batch status_page batch batch_crash idle)
cargo test --locked $(printf -- '--test %s ' "${flows[@]}")
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/python-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/up-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/chat-api.sh
