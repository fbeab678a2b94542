#!/usr/bin/env bash
# Server figures of docs/benchmarks.md: generates a data set (crm-large by
# default), fills a SQLite store with it once through --bootstrap, times
# three start-ups from that store (process start to the "warden listening
# on" line) with their resident memory, then drives the last server with
# warden-load over loopback. Every process it starts, it stops.
#
#   bash scripts/bench.sh [crm-large|small] [warden-load flags...]
#
# The store and the document stay in target/bench-PRESET (delete it to
# fill the store again).
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-crm-large}
shift || true
work=${WARDEN_BENCH_DIR:-target/bench-$preset}
bin=target/release
cargo build --release --bin warden --bin warden-load
mkdir -p "$work"
if [ ! -f "$work/$preset.json" ]; then
  "$bin/warden" generate --preset "$preset" --out "$work/$preset.json"
fi

pid=
# start_server LOG [FLAGS...]: starts warden serve on the store and waits
# for its listening line; sets pid, addr and ms (start-up time).
start_server() {
  local log=$1
  shift
  : >"$log"
  local t0
  t0=$(date +%s%N)
  "$bin/warden" serve --store "sqlite://$work/warden.db" --listen 127.0.0.1:0 \
    --log warn "$@" >"$log" 2>"$log.err" &
  pid=$!
  until grep -q '^warden listening on' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "warden serve exited before listening:" >&2
      cat "$log.err" >&2
      exit 1
    fi
    sleep 0.01
  done
  ms=$((($(date +%s%N) - t0) / 1000000))
  addr=$(sed -n 's/^warden listening on //p' "$log")
}
stop_server() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    pid=
  fi
}
memory() {
  awk '/^(VmRSS|VmHWM)/ { printf "%s %.0f MiB  ", $1, $2 / 1024 }' "/proc/$pid/status"
}
trap stop_server EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [ ! -f "$work/warden.db" ]; then
  start_server "$work/fill.log" --bootstrap "$work/$preset.json"
  echo "store filled through --bootstrap: listening after $ms ms; $(memory)"
  stop_server
fi
for run in 1 2 3; do
  stop_server
  start_server "$work/start.log"
  echo "start-up $run from the store: listening after $ms ms; $(memory)"
done
"$bin/warden-load" --addr "$addr" --preset "$preset" --server-pid "$pid" "$@"
echo "server after the load: $(memory)"
