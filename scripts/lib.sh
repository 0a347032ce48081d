# Shared by the scripts that run the llm-router binary on loopback and count PASS/FAIL
# checks (scripts/up-interop.sh, gateway-interop.sh, python-interop.sh, observability.sh,
# tests/browser/status_page.sh). Source it from the repository root with the script's name:
#   cd "$(dirname "$0")/.." && source scripts/lib.sh up-interop
# It sets ROOT, BIN, PYTHON, INTEROP_DIR, RUN_DIR (removed on exit unless KEEP_RUN_DIR=1),
# PASSED, FAILED, PIDS (processes stopped on exit) and TALLY (0: `die` prints no count line).
# shellcheck shell=bash

export PYTHONDONTWRITEBYTECODE=1
SCRIPT=$1
# LLM_ROUTER_TEST_BROKER=kubemq: the same checks against the real KubeMQ server v2.4.0
# (KUBEMQ_SERVER_DIR, default ../shared/kubemq-server) instead of the embedded broker.
[[ ${LLM_ROUTER_TEST_BROKER:-} == kubemq ]] && SCRIPT=$SCRIPT-kubemq
ROOT=$PWD
BIN=${LLM_ROUTER_BIN:-target/debug/llm-router}
PYTHON=${PYTHON:-python3}
INTEROP_DIR=${INTEROP_DIR:-$ROOT/target/python-interop}
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/$SCRIPT.XXXXXX")
KEEP_RUN_DIR=0
PIDS=()
UP_PID=""
PASSED=0
FAILED=0
TALLY=1

# Every process first, so none waits on another's shutdown, then the wait.
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  if [[ $KEEP_RUN_DIR == 1 ]]; then
    echo "$SCRIPT: run directory kept at $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
  fi
}
trap cleanup EXIT

# The failure counts as one more, so a run that stops early never reads as passed.
die() {
  echo "$SCRIPT: $*" >&2
  [[ $TALLY == 1 ]] && echo "$SCRIPT: $PASSED passed, $((FAILED + 1)) failed"
  exit 1
}

pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

# Whether this run is against the real KubeMQ server.
on_kubemq() { [[ ${LLM_ROUTER_TEST_BROKER:-} == kubemq ]]; }

# start_kubemq GRPC REST: the real KubeMQ server on those loopback ports (its API and
# Prometheus ports free ones), stopped on exit like every other process here.
start_kubemq() {
  local dir=${KUBEMQ_SERVER_DIR:-$ROOT/../shared/kubemq-server} pid
  pid=$(GRPC_PORT=$1 REST_PORT=$2 API_PORT=$(free_port) KUBEMQ_PROM_PORT=$(free_port) \
    bash "$dir/start.sh" "$RUN_DIR/kubemq") || die "the real KubeMQ server did not start"
  PIDS+=("$pid")
  echo "real KubeMQ server v2.4.0: gRPC 127.0.0.1:$1, REST 127.0.0.1:$2 (pid $pid)"
}

# up_broker_args GRPC REST: sets UP_BROKER to the broker arguments of `up`: its embedded
# broker on those ports, or, on the real server, that server started on them (--broker).
up_broker_args() {
  if on_kubemq; then
    start_kubemq "$1" "$2"
    UP_BROKER=(--broker "127.0.0.1:$1")
  else
    UP_BROKER=(--grpc-port "$1" --rest-port "$2")
  fi
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Builds $BIN (release when its path says so) unless it is there already.
build() {
  [[ -x $BIN ]] && return 0
  local profile=()
  [[ $BIN == *release* ]] && profile=(--release)
  echo "building $BIN"
  cargo build --locked "${profile[@]}" --bin llm-router || die "cannot build llm-router"
}

# make_venv DIR PACKAGE...: a virtualenv in DIR (kept between runs) with PACKAGEs installed.
make_venv() {
  local dir=$1
  shift
  [[ -x $dir/bin/python ]] || "$PYTHON" -m venv "$dir" || die "cannot create venv $dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" \
    || die "cannot install $*"
}

# await_ready PID NAME LOG URL [OUT]: polls for 30 s at most until URL answers 2xx (and, with
# OUT, OUT says "ready in"); shows LOG and dies if PID exits first or time runs out.
await_ready() {
  local pid=$1 name=$2 log=$3 url=$4 out=${5:-}
  for _ in $(seq 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      die "$name exited before it was ready"
    fi
    if [[ -z $out ]] || grep -q "ready in" "$out"; then
      curl -sf "$url" >/dev/null && return 0
    fi
    sleep 0.2
  done
  cat "$log" >&2
  die "$name not ready after 30 s"
}

# start_up READY_URL ARG...: `llm-router up ARG...` with its data in $RUN_DIR, once it says
# it is ready and READY_URL answers; sets UP_PID and prints up's startup block.
start_up() {
  local url=$1
  shift
  local data=(--data-dir "$RUN_DIR/data")
  on_kubemq && data=()
  "$BIN" up "$@" "${data[@]}" >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.log" &
  UP_PID=$!
  PIDS+=("$UP_PID")
  await_ready "$UP_PID" "llm-router up" "$RUN_DIR/up.log" "$url" "$RUN_DIR/up.out"
  cat "$RUN_DIR/up.out"
}

# run_checks DIR LIMIT PY SCRIPT: runs check script SCRIPT in DIR with PY (LIMIT seconds at
# most), prints its output and adds its PASS/FAIL lines to the counts; a script that exits
# non-zero without reporting a failure counts as one.
run_checks() {
  local dir=$1 limit=$2 py=$3 script=$4 out rc failed name
  name=$(basename "$script")
  out=$(cd "$dir" && timeout "$limit" "$py" -W ignore::DeprecationWarning "$script" \
    2>"$RUN_DIR/$name.err")
  rc=$?
  echo "$out"
  PASSED=$((PASSED + $(grep -c '^PASS ' <<<"$out")))
  failed=$(grep -c '^FAIL ' <<<"$out")
  if [[ $rc -ne 0 && $failed -eq 0 ]]; then
    echo "FAIL $name: exited with $rc before reporting a failure"
    failed=1
  fi
  [[ $failed -ne 0 ]] && sed 's/^/    /' "$RUN_DIR/$name.err" | tail -40
  FAILED=$((FAILED + failed))
}

# finish NAME PID LOG: a failure if PID (the system under test) died during the checks;
# then the count line, and the exit status.
finish() {
  local name=$1 pid=$2 log=$3
  if ! kill -0 "$pid" 2>/dev/null; then
    fail "$name" "exited during the checks"
    tail -20 "$log"
  fi
  echo "$SCRIPT: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}
