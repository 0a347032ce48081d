#!/usr/bin/env bash
# Queue throughput of an old build against this tree's release build: the queue figure of
# benches/broker.rs ("queue msgs/s end to end (batch 100)"), one bench run per invocation,
# old and new interleaved so that machine noise hits both alike; prints every run and the
# medians. Everything runs on 127.0.0.1 with free ports.
#
# Usage: scripts/queue-ab.sh <old llm-router binary> [pairs, default 3]
set -euo pipefail
old=${1:?usage: scripts/queue-ab.sh <old llm-router binary> [pairs]}
pairs=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo bench --bench broker --no-run --quiet
new=target/release/llm-router
figure() {
  BENCH_RUNS=1 BENCH_BIN=$1 cargo bench --quiet --bench broker 2>/dev/null |
    awk -F'|' '/queue msgs\/s end to end/ { gsub(/ /, "", $3); print $3 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
olds=() news=()
for i in $(seq 1 "$pairs"); do
  o=$(figure "$old"); n=$(figure "$new")
  echo "pair $i ($(date -u +%H:%M:%S) UTC): old $o msgs/s, new $n msgs/s"
  olds+=("$o") news+=("$n")
done
mo=$(printf '%s\n' "${olds[@]}" | median)
mn=$(printf '%s\n' "${news[@]}" | median)
echo "median old $mo, new $mn msgs/s ($(awk -v o="$mo" -v n="$mn" 'BEGIN { printf "%+.1f%%", (n - o) / o * 100 }'))"
