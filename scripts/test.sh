#!/usr/bin/env bash
# Runs every test: the Rust suite (unit, conformance with the official kubemq crate,
# restart, REST, fuzz) and the Python SDK interop checks against the embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/python-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/up-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/gateway-interop.sh
LLM_ROUTER_BIN=target/debug/llm-router bash tests/browser/status_page.sh
LLM_ROUTER_BIN=target/debug/llm-router bash scripts/observability.sh; bash scripts/deploy-check.sh
