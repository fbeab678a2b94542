#!/usr/bin/env bash
# The pinned server benchmark of docs/benchmarks.md (issue 9): the server
# on one core, the load generator on the other, so neither steals the
# other's CPU, and the gRPC health check measured in the same run as the
# floor every call pays for transport, HTTP/2 and tonic.
#
#   bash scripts/bench-pinned.sh [crm-large|small] [warden-load flags...]
#
# It builds release, generates the data set, fills a SQLite store once
# (kept in target/bench-PRESET, delete it to fill again), starts
# `warden serve` on core 0 and runs `warden-load` on core 1: health check,
# Check (64 in flight over 4 connections), CheckBulk (100 checks a call)
# and LookupRecords (the division head's ~100k Leads), each phase
# WARDEN_BENCH_ROUNDS times (3 by default) in turn. warden-load reads the
# server's CPU time (utime + stime of /proc/PID/stat) at the start and the
# end of each measured window and divides it by the calls answered, then
# prints one table of medians. On a machine without `taskset` (or with
# fewer than 2 cores) it says so and runs unpinned.
#
# WARDEN_SERVER_BIN=path runs that build of `warden serve` instead (a copy
# of an earlier release binary, for a before/after comparison in the same
# minutes); the store, the data set and warden-load stay this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-crm-large}
shift || true
work=${WARDEN_BENCH_DIR:-target/bench-$preset}
rounds=${WARDEN_BENCH_ROUNDS:-3}
target=${CARGO_TARGET_DIR:-target}
bin=$target/release
if [ "${WARDEN_BENCH_BUILD:-1}" != 0 ]; then
  cargo build --release --bin warden --bin warden-load
fi
server_bin=${WARDEN_SERVER_BIN:-$bin/warden}
mkdir -p "$work"
if [ ! -f "$work/$preset.json" ]; then
  "$bin/warden" generate --preset "$preset" --out "$work/$preset.json"
fi

server_cpu=()
load_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0)
  load_cpu=(taskset -c 1)
  pinning="server on core 0, warden-load on core 1"
else
  pinning="UNPINNED: no taskset or fewer than 2 cores; server and load share the cores"
fi

pid=
stop_server() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    pid=
  fi
}
trap stop_server EXIT

# start_server LOG [FLAGS...]: starts warden serve on the store (pinned
# when possible) and waits for its listening line; sets pid and addr.
start_server() {
  local log=$1
  shift
  : >"$log"
  "${server_cpu[@]}" "$server_bin" serve --store "sqlite://$work/warden.db" \
    --listen 127.0.0.1:0 --log warn "$@" >"$log" 2>"$log.err" &
  pid=$!
  until grep -q '^warden listening on' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "warden serve exited before listening:" >&2
      cat "$log.err" >&2
      exit 1
    fi
    sleep 0.05
  done
  addr=$(sed -n 's/^warden listening on //p' "$log")
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pinning: $pinning"
echo "server: $server_bin"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
if [ ! -f "$work/warden.db" ]; then
  # The fill is not measured here (scripts/bench.sh times it); unpinned,
  # it is faster.
  "$bin/warden" serve --store "sqlite://$work/warden.db" --listen 127.0.0.1:0 \
    --log warn --bootstrap "$work/$preset.json" >"$work/fill.log" 2>"$work/fill.log.err" &
  pid=$!
  until grep -q '^warden listening on' "$work/fill.log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "warden serve --bootstrap exited before listening:" >&2
      cat "$work/fill.log.err" >&2
      # Not filled: the next run must try again, not serve an empty store.
      rm -f "$work/warden.db" "$work/warden.db-shm" "$work/warden.db-wal"
      exit 1
    fi
    sleep 0.1
  done
  echo "store filled through --bootstrap"
  stop_server
fi
memory() {
  awk '/^(VmRSS|VmHWM)/ { printf "%s %.0f MiB  ", $1, $2 / 1024 }' "/proc/$pid/status"
}
start_server "$work/pinned.log"
echo "server started: $(memory)"
# One client thread: it has one core.
"${load_cpu[@]}" "$bin/warden-load" --addr "$addr" --preset "$preset" --server-pid "$pid" \
  --threads 1 --connections 4 --concurrency 64 --bulk-concurrency 16 --bulk-size 100 \
  --duration-secs 8 --warmup-secs 2 --lookup-runs 5 --page-size 10000 \
  --rounds "$rounds" "$@"
echo "server after the load: $(memory)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
