#!/usr/bin/env bash
# Instructions and allocations per call of the server, counted by
# callgrind: the health check (the transport floor), Check and CheckBulk
# (100 a call) on the "small" data set. Unlike CPU time, these counts
# repeat within about half a percent on a busy or shared machine, so they
# show a service-path change that a wall-clock run cannot (docs/benchmarks.md,
# "Part E (fourth round)" and "Part I (fifth round)"). They do not see cache
# misses: a Check's CPU exceeds the floor by about twice its instruction
# excess, so scripts/bench-pinned.sh stays the measure of the goals.
#
#   bash scripts/bench-instructions.sh
#
# Needs valgrind (`apt-get install valgrind`); it says so and stops
# without it. It builds release, fills target/bench-instructions/warden.db
# once from `warden generate --preset small`, serves a copy of it under
# `valgrind --tool=callgrind` (no polling, logs at warn), warms it
# (500 unary calls, 20 bulk calls), then for each phase zeroes the
# counters, runs `warden-load --max-calls N` and dumps them. Per call is
# the dump's total over the calls answered (each phase includes its four
# connection set-ups); allocations are calls of mimalloc's
# `mi_malloc_aligned`/`mi_zalloc_aligned`.
#
# WARDEN_SERVER_BIN=path counts that build of `warden serve` instead (an
# earlier release binary, for a before/after pair); run both at the same
# time (two shells, WARDEN_BENCH_DIR apart) to cancel what timing changes
# (responses coalesced per write, idle polls).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "bench-instructions: valgrind is not installed (apt-get install valgrind); nothing measured" >&2
  exit 1
fi
work=${WARDEN_BENCH_DIR:-target/bench-instructions}
source scripts/bench-lib.sh
bench_prepare small "$work"
trap stop_server EXIT
bench_header
echo "server: $server_bin"
fill_once "$bin/warden" "$work/warden.db" "$work/small.json" "$work/fill.log"

# The served copy: the fill stays untouched for the next run.
rm -f "$work"/serve.db* "$work"/cg.*
copy_store "$work/warden.db" "$work/serve.db"
server_cpu=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p")
start_warden "$server_bin" "$work/serve.db" "$work/serve.log" --poll-interval-ms 3600000
echo "server started under callgrind after $ms ms"

load() {
  "$bin/warden-load" --addr "$addr" --preset small --threads 1 --connections 4 \
    --concurrency 64 --bulk-concurrency 4 --bulk-size 100 --warmup-secs 0 \
    --duration-secs 600 "$@"
}
load --mode unary --max-calls 500 >"$work/warm-unary.log" 2>&1
load --mode bulk --max-calls 20 >"$work/warm-bulk.log" 2>&1

# count DUMP: the dump's total instructions and allocation calls.
count() {
  awk '
    /^(summary|totals):/ { total = $2 }
    /^cfn=/ {
      id = $1; sub(/^cfn=/, "", id)
      if (NF > 1) { name[id] = $2 }
      callee = name[id]; next
    }
    /^calls=/ {
      if (callee == "mi_malloc_aligned" || callee == "mi_zalloc_aligned") {
        n = $1; sub(/^calls=/, "", n); allocs += n
      }
      callee = ""
    }
    END { printf "%d %d\n", total, allocs }' "$1"
}

echo
echo "| phase | calls | instructions per call | per decision | × health per call | allocations per call |"
echo "| --- | --- | --- | --- | --- | --- |"
health=
for phase in health:2000 check:2000 bulk:40; do
  mode=${phase%%:*}
  calls=${phase##*:}
  callgrind_control -z "$pid" >/dev/null 2>&1
  load --mode "$mode" --max-calls "$calls" >"$work/$mode.log" 2>&1
  callgrind_control -d "$mode" "$pid" >/dev/null 2>&1
  dump=$(ls -t "$work"/cg.* | head -1)
  answered=$(answered_calls "$work/$mode.log" "$calls")
  read -r total allocs < <(count "$dump")
  per=$((total / answered))
  [ -z "$health" ] && health=$per
  decisions=$([ "$mode" = bulk ] && echo 100 || echo 1)
  awk -v m="$mode" -v c="$answered" -v p="$per" -v d="$decisions" -v h="$health" -v a="$allocs" \
    'BEGIN { printf "| %s | %d | %d | %d | %.3f | %.1f |\n", m, c, p, p / d, p / h, a / c }'
done
