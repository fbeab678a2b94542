# Shared by scripts/bench*.sh (sourced, not run): pinning, starting and
# stopping `warden serve`, filling a store once, and reading the server's
# memory, written once so every benchmark starts and measures its server
# the same way. The sourcing script sets `set -euo pipefail` itself.

server_cpu=()
load_cpu=()
pid=

# bench_prepare PRESET WORK: builds the release binaries (unless
# WARDEN_BENCH_BUILD=0), generates WORK/PRESET.json once, and sets bin
# (this tree's binaries) and server_bin (WARDEN_SERVER_BIN, or this
# tree's warden: an earlier build for a before/after pair).
bench_prepare() {
  local preset=$1 work=$2
  bin=${CARGO_TARGET_DIR:-target}/release
  if [ "${WARDEN_BENCH_BUILD:-1}" != 0 ]; then
    cargo build --release --bin warden --bin warden-load
  fi
  server_bin=${WARDEN_SERVER_BIN:-$bin/warden}
  mkdir -p "$work"
  if [ ! -f "$work/$preset.json" ]; then
    "$bin/warden" generate --preset "$preset" --out "$work/$preset.json"
  fi
}

# bench_pin DESCRIPTION: the server on core 0 and the load generator on
# core 1 (server_cpu, load_cpu, pinning), or says it cannot.
bench_pin() {
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    load_cpu=(taskset -c 1)
    pinning=$1
  else
    server_cpu=()
    load_cpu=()
    pinning="UNPINNED: no taskset or fewer than 2 cores; server and load share the cores"
  fi
}

# bench_header: the machine and the commit measured.
bench_header() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
}

# start_warden BIN STORE LOG [FLAGS...]: starts BIN serve on the SQLite
# STORE (under server_cpu, empty unless pinned) and waits for its
# listening line; sets pid, addr and ms (process start to that line).
# Returns 1, with the server's errors, if it exits before listening.
start_warden() {
  local bin=$1 store=$2 log=$3
  shift 3
  : >"$log"
  local t0
  t0=$(date +%s%N)
  "${server_cpu[@]}" "$bin" serve --store "sqlite://$store" --listen 127.0.0.1:0 \
    --log warn "$@" >"$log" 2>"$log.err" &
  pid=$!
  until grep -q '^warden listening on' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "warden serve exited before listening:" >&2
      cat "$log.err" >&2
      pid=
      return 1
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

# fill_once BIN STORE DOCUMENT LOG: fills STORE through --bootstrap unless
# it exists (unpinned and untimed: scripts/bench.sh times the fill). A
# failed fill leaves no store, so the next run fills again rather than
# serving an empty one.
fill_once() {
  local bin=$1 store=$2 document=$3 log=$4
  [ -f "$store" ] && return 0
  local pinned=("${server_cpu[@]}")
  server_cpu=()
  if ! start_warden "$bin" "$store" "$log" --bootstrap "$document"; then
    server_cpu=("${pinned[@]}")
    rm -f "$store" "$store-shm" "$store-wal"
    return 1
  fi
  server_cpu=("${pinned[@]}")
  echo "store filled through --bootstrap"
  stop_server
}

# memory: the server's VmRSS and VmHWM, for a log line.
memory() {
  awk '/^(VmRSS|VmHWM)/ { printf "%s %.0f MiB  ", $1, $2 / 1024 }' "/proc/$pid/status"
}

# kib FIELD / mib FIELD: VmRSS or VmHWM of the server.
kib() {
  awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status"
}
mib() {
  awk -v f="$1:" '$1 == f { printf "%.0f\n", $2 / 1024 }' "/proc/$pid/status"
}

# median: of the numbers on stdin, one per line.
median() {
  sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# copy_store FROM TO: a copy of the SQLite store FROM (its -wal and -shm
# files too) at TO, so a server under valgrind writes to its own.
copy_store() {
  local from=$1 to=$2 f
  for f in "$from"*; do cp "$f" "$to${f#"$from"}"; done
}

# answered_calls LOG DEFAULT: the calls warden-load's LOG says were
# answered in its first phase, or DEFAULT when it says none.
answered_calls() {
  local n
  n=$(sed -n 's/.*: \([0-9][0-9]*\) calls, [0-9][0-9]* [a-z]* in .*/\1/p' "$1" | head -1)
  echo "${n:-$2}"
}
