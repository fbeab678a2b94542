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
# Flags after the preset go to warden-load and override the ones below:
# `--mode unary --rounds 15 --duration-secs 3 --warmup-secs 1` alternates
# short health and Check phases, so each round's Check/health ratio is
# taken within seconds; with 10 rounds or more warden-load also prints
# the ratio's quartiles, the ratio of the means and a 95 % bootstrap
# interval of the median, which is what holds on a host whose speed
# drifts between phases.
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
source scripts/bench-lib.sh
bench_prepare "$preset" "$work"
bench_pin "server on core 0, warden-load on core 1"
trap stop_server EXIT

bench_header
echo "pinning: $pinning"
echo "server: $server_bin"
fill_once "$bin/warden" "$work/warden.db" "$work/$preset.json" "$work/fill.log"
start_warden "$server_bin" "$work/warden.db" "$work/pinned.log"
echo "server started: $(memory)"
# One client thread: it has one core.
"${load_cpu[@]}" "$bin/warden-load" --addr "$addr" --preset "$preset" --server-pid "$pid" \
  --threads 1 --connections 4 --concurrency 64 --bulk-concurrency 16 --bulk-size 100 \
  --duration-secs 8 --warmup-secs 2 --lookup-runs 5 --page-size 10000 \
  --rounds "$rounds" "$@"
echo "server after the load: $(memory)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
