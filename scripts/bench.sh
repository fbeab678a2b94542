#!/usr/bin/env bash
# Server figures of docs/benchmarks.md: generates a data set (crm-large by
# default), fills a SQLite store with it once through --bootstrap, times
# three start-ups from that store (process start to the "warden listening
# on" line) with their resident memory and prints the medians, then drives
# the last server with warden-load over loopback. Every process it starts,
# it stops.
#
#   bash scripts/bench.sh [crm-large|small|tenants] [warden-load flags...]
#
# Environment:
#   WARDEN_BENCH_SCALE=F    records, shares and nesting depths times F
#                           (warden generate --scale; e.g. 0.1 or 2)
#   WARDEN_BENCH_ORGS=N     organizations of the tenants preset (10000)
#   WARDEN_BENCH_NO_LOAD=1  start-ups only, no warden-load
#   WARDEN_BIN=PATH         this warden binary instead of building one
#                           (e.g. an older build, for a before/after)
#
# The store and the documents stay in target/bench-PRESET[-xF][-N] (delete
# it to fill the store again).
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-crm-large}
shift || true
scale=${WARDEN_BENCH_SCALE:-1}
orgs=${WARDEN_BENCH_ORGS:-10000}
target=${CARGO_TARGET_DIR:-target}
name=$preset
[ "$scale" != 1 ] && name="$name-x$scale"
[ "$preset" = tenants ] && name="$name-$orgs"
work=${WARDEN_BENCH_DIR:-$target/bench-$name}
if [ -n "${WARDEN_BIN:-}" ]; then
  warden=$WARDEN_BIN
  [ -z "${WARDEN_BENCH_NO_LOAD:-}" ] && cargo build --release --bin warden-load
else
  cargo build --release --bin warden --bin warden-load
  warden=$target/release/warden
fi
load=$target/release/warden-load
mkdir -p "$work"
# --scale only when asked, so that an older binary (WARDEN_BIN) without
# the flag still generates the plain presets.
scaling=()
[ "$scale" != 1 ] && scaling=(--scale "$scale")
if [ "$preset" = tenants ]; then
  documents=$work/documents
  if [ ! -d "$documents" ]; then
    "$warden" generate --preset tenants --orgs "$orgs" "${scaling[@]}" --out "$documents"
  fi
else
  documents=$work/$preset.json
  if [ ! -f "$documents" ]; then
    "$warden" generate --preset "$preset" "${scaling[@]}" --out "$documents"
  fi
fi

source scripts/bench-lib.sh
trap stop_server EXIT

bench_header
if [ ! -f "$work/warden.db" ]; then
  start_warden "$warden" "$work/warden.db" "$work/fill.log" --bootstrap "$documents"
  echo "store filled through --bootstrap: listening after $ms ms; $(memory)"
  stop_server
fi
times=() rss=() hwm=()
for run in 1 2 3; do
  stop_server
  start_warden "$warden" "$work/warden.db" "$work/start.log"
  echo "start-up $run from the store: listening after $ms ms; $(memory)"
  times+=("$ms") rss+=("$(kib VmRSS)") hwm+=("$(kib VmHWM)")
done
printf 'median of 3 start-ups: %s ms; VmRSS %s MiB; VmHWM %s MiB\n' \
  "$(printf '%s\n' "${times[@]}" | median)" \
  "$(($(printf '%s\n' "${rss[@]}" | median) / 1024))" \
  "$(($(printf '%s\n' "${hwm[@]}" | median) / 1024))"
if [ -z "${WARDEN_BENCH_NO_LOAD:-}" ]; then
  # tenants: warden-load aims at the first organization, tenant-00000.
  "$load" --addr "$addr" --preset "$preset" --server-pid "$pid" "$@"
  echo "server after the load: $(memory)"
fi
