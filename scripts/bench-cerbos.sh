#!/usr/bin/env bash
# Warden's Check against Cerbos on the same core and the same client
# (issue 9: "stay >= 10x its throughput"). In one run, one after the other:
#
# 1. Cerbos (npm @cerbos/cerbos-linux-x64, CERBOS_VERSION, 0.55.0 by default,
#    installed under $CARGO_TARGET_DIR/cerbos; nothing of it is committed)
#    serving a trivial resource policy from a disk store in a temporary
#    directory: a `lead`'s view and edit are allowed when
#    request.resource.attr.owner == request.principal.id, the question
#    Warden's Check answers from ownership. gRPC on 127.0.0.1, no audit,
#    no telemetry, log level error. `warden-load --target cerbos` drives its
#    gRPC health check (the floor) and CheckResources, one resource and one
#    action a call, half of them on the principal's own lead; each answer
#    is checked against the policy (a wrong one fails the run).
# 2. Warden on the data set PRESET (the store of scripts/bench-pinned.sh,
#    filled once through --bootstrap): the health check and Check.
#
# Each server runs on core 0 (`taskset -c 0`), warden-load on core 1 with
# one client thread, 64 calls in flight over 4 connections, as Warden's
# Check phase of bench-pinned.sh; server CPU per call is utime + stime of
# /proc/PID/stat over each measured window. The script ends with one table
# of both servers and their ratios.
#
#   bash scripts/bench-cerbos.sh [crm-large|small] [warden-load flags...]
#
# Environment:
#   WARDEN_BENCH_ROUNDS=N   rounds of each phase, medians shown (3)
#   WARDEN_BENCH_SECS=S     measured seconds of each phase (8)
#   WARDEN_BENCH_WARMUP=S   unmeasured seconds before each (2)
#   WARDEN_BENCH_DIR=DIR    the data set and store (target/bench-PRESET)
#   WARDEN_BENCH_BUILD=0    use the release binaries already built
#   CERBOS_VERSION=V        the Cerbos release to install (0.55.0)
#   CERBOS_BIN=PATH         this Cerbos binary instead of installing one
#
# Without npm or network access (or on a platform Cerbos's npm packages do
# not cover) it says so, runs Warden's half and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-crm-large}
shift || true
work=${WARDEN_BENCH_DIR:-target/bench-$preset}
rounds=${WARDEN_BENCH_ROUNDS:-3}
secs=${WARDEN_BENCH_SECS:-8}
warmup=${WARDEN_BENCH_WARMUP:-2}
target=${CARGO_TARGET_DIR:-target}
bin=$target/release
cerbos_version=${CERBOS_VERSION:-0.55.0}
if [ "${WARDEN_BENCH_BUILD:-1}" != 0 ]; then
  cargo build --release --bin warden --bin warden-load
fi
mkdir -p "$work"
if [ ! -f "$work/$preset.json" ]; then
  "$bin/warden" generate --preset "$preset" --out "$work/$preset.json"
fi

source scripts/bench-lib.sh
bench_pin "each server on core 0, warden-load on core 1"

tmp=$(mktemp -d)
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT

# The same client settings for both servers.
load_flags=(--threads 1 --connections 4 --concurrency 64 --duration-secs "$secs"
  --warmup-secs "$warmup" --rounds "$rounds" --mode unary)

# install_cerbos: sets cerbos_bin, or cerbos_missing to the reason.
cerbos_bin=
cerbos_missing=
install_cerbos() {
  if [ -n "${CERBOS_BIN:-}" ]; then
    cerbos_bin=$CERBOS_BIN
    return
  fi
  local arch
  case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) arch=linux-x64 ;;
  Linux-aarch64) arch=linux-arm64 ;;
  *)
    cerbos_missing="no Cerbos npm package for $(uname -s) $(uname -m)"
    return
    ;;
  esac
  local dir=$target/cerbos
  local candidate=$dir/node_modules/@cerbos/cerbos-$arch/cerbos-$arch
  if [ -x "$candidate" ] && "$candidate" --version 2>/dev/null | head -1 | grep -qx "$cerbos_version"; then
    cerbos_bin=$candidate
    return
  fi
  if ! command -v npm >/dev/null; then
    cerbos_missing="npm is not installed"
    return
  fi
  mkdir -p "$dir"
  echo "installing @cerbos/cerbos-$arch@$cerbos_version with npm into $dir"
  if ! timeout 600 npm install --prefix "$dir" --no-audit --no-fund --no-save \
    "@cerbos/cerbos-$arch@$cerbos_version" >"$tmp/npm.log" 2>&1; then
    cerbos_missing="npm install @cerbos/cerbos-$arch@$cerbos_version failed (no network access?): $(tail -3 "$tmp/npm.log" | tr '\n' ' ')"
    return
  fi
  if ! "$candidate" --version 2>/dev/null | head -1 | grep -qx "$cerbos_version"; then
    cerbos_missing="the installed $candidate does not print version $cerbos_version"
    return
  fi
  cerbos_bin=$candidate
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now (Cerbos
# takes fixed ports from its configuration).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((40000 + RANDOM % 20000))
}

# start_cerbos: writes the policy and the configuration into $tmp, starts
# Cerbos (pinned when possible) and waits until its gRPC port accepts
# connections; sets pid and cerbos_addr.
start_cerbos() {
  mkdir -p "$tmp/policies"
  cat >"$tmp/policies/lead.yaml" <<'EOF'
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: lead
  rules:
    - actions: ["view", "edit"]
      effect: EFFECT_ALLOW
      roles: ["*"]
      condition:
        match:
          expr: request.resource.attr.owner == request.principal.id
EOF
  local grpc_port http_port
  grpc_port=$(free_port)
  http_port=$(free_port)
  while [ "$http_port" = "$grpc_port" ]; do http_port=$(free_port); done
  cat >"$tmp/cerbos.yaml" <<EOF
server:
  httpListenAddr: "127.0.0.1:$http_port"
  grpcListenAddr: "127.0.0.1:$grpc_port"
storage:
  driver: disk
  disk:
    directory: "$tmp/policies"
    watchForChanges: false
audit:
  enabled: false
telemetry:
  disabled: true
EOF
  # taskset and env exec Cerbos: $! is Cerbos's own pid.
  "${server_cpu[@]}" env CERBOS_NO_TELEMETRY=1 "$cerbos_bin" server \
    --config="$tmp/cerbos.yaml" --log-level=error >"$tmp/cerbos.log" 2>&1 &
  pid=$!
  cerbos_addr=127.0.0.1:$grpc_port
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$tries" -ge 600 ]; then
      echo "Cerbos did not start listening on $cerbos_addr:" >&2
      cat "$tmp/cerbos.log" >&2
      exit 1
    fi
    tries=$((tries + 1))
    sleep 0.05
  done
}

bench_header
echo "pinning: $pinning"

install_cerbos
if [ -n "$cerbos_bin" ]; then
  echo
  echo "== Cerbos $("$cerbos_bin" --version 2>/dev/null | head -1) ($cerbos_bin)"
  start_cerbos
  echo "Cerbos started at $cerbos_addr: $(memory)"
  "${load_cpu[@]}" "$bin/warden-load" --target cerbos --addr "$cerbos_addr" \
    --server-pid "$pid" "${load_flags[@]}" "$@" | tee "$tmp/cerbos.out"
  echo "Cerbos after the load: $(memory)"
  stop_server
else
  echo
  echo "== Cerbos NOT MEASURED: $cerbos_missing"
fi

echo
echo "== Warden, data set $preset"
fill_once "$bin/warden" "$work/warden.db" "$work/$preset.json" "$work/fill.log"
start_warden "$bin/warden" "$work/warden.db" "$work/cerbos-compare.log"
echo "Warden started: $(memory)"
"${load_cpu[@]}" "$bin/warden-load" --addr "$addr" --preset "$preset" \
  --server-pid "$pid" "${load_flags[@]}" "$@" | tee "$tmp/warden.out"
echo "Warden after the load: $(memory)"
stop_server

# cell FILE PHASE COLUMN: a cell of warden-load's closing table (columns:
# 3 calls/s, 5 server CPU µs/call, 7 × health CPU per call), "-" if absent.
cell() {
  [ -f "$1" ] || {
    echo -
    return
  }
  awk -F'|' -v p="$2" -v c="$3" '
    { name = $2; gsub(/^ +| +$/, "", name) }
    index(name, p) == 1 { v = $c; gsub(/ /, "", v); print v; found = 1; exit }
    END { if (!found) print "-" }' "$1"
}
# ratio A B DIGITS: "A / B×", or "-" when either is missing.
ratio() {
  awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN {
    if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-";
    else printf "%.*f×\n", d, a / b }'
}

c_hc=$(cell "$tmp/cerbos.out" Health 3)
c_hu=$(cell "$tmp/cerbos.out" Health 5)
c_cc=$(cell "$tmp/cerbos.out" "Cerbos CheckResources" 3)
c_cu=$(cell "$tmp/cerbos.out" "Cerbos CheckResources" 5)
c_cx=$(cell "$tmp/cerbos.out" "Cerbos CheckResources" 7)
w_hc=$(cell "$tmp/warden.out" Health 3)
w_hu=$(cell "$tmp/warden.out" Health 5)
w_cc=$(cell "$tmp/warden.out" "Check x" 3)
w_cu=$(cell "$tmp/warden.out" "Check x" 5)
w_cx=$(cell "$tmp/warden.out" "Check x" 7)
cerbos_name="Cerbos $cerbos_version"
[ -n "$cerbos_missing" ] && cerbos_name="Cerbos (not measured)"
echo
echo "Warden and Cerbos on one server core, the same client (medians of $rounds round(s) of ${secs} s)"
echo
echo "| figure | $cerbos_name | Warden ($preset) | Warden ÷ Cerbos |"
echo "| --- | --- | --- | --- |"
echo "| gRPC health check, calls/s | $c_hc | $w_hc | $(ratio "$w_hc" "$c_hc" 2) |"
echo "| gRPC health check, server CPU µs/call | $c_hu | $w_hu | $(ratio "$w_hu" "$c_hu" 2) |"
echo "| decision (Cerbos CheckResources, Warden Check), calls/s | $c_cc | $w_cc | **$(ratio "$w_cc" "$c_cc" 1)** |"
echo "| decision, server CPU µs/call | $c_cu | $w_cu | $(ratio "$w_cu" "$c_cu" 3) (Cerbos: $(ratio "$c_cu" "$w_cu" 1)) |"
echo "| decision CPU ÷ its own health check CPU | $c_cx | $w_cx | |"
if [ -n "$cerbos_missing" ]; then
  echo
  echo "Cerbos was not measured: $cerbos_missing"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
