#!/usr/bin/env bash
# Where a Check's cost beyond the health check goes, in counts that repeat
# on a noisy machine: the server runs under callgrind with its cache
# simulation (L1 instruction and data caches, and a last level the size of
# one core's L2, 2 MiB, so that "LL misses" are the lines a call fetches
# from beyond its core), on crm-large, and the script prints per call, for
# the health check and for Check, the instructions, L1 instruction misses,
# L1 data read and write misses and LL data read misses, then the functions
# that account for Check's excess over the health check, largest first
# (docs/benchmarks.md, "Part X (tenth round)"). The cache model is
# valgrind's, not the CPU's: a change is judged by these counts first and
# by scripts/bench-pinned.sh second.
#
#   bash scripts/bench-cachesim.sh [PRESET]
#
# PRESET defaults to crm-large. WARDEN_SERVER_BIN measures another server
# build with this tree's load generator; WARDEN_CACHESIM_CALLS (3000) sets
# the calls counted per phase, WARDEN_CACHESIM_WARM (20000) the Checks run
# first, uncounted, so the membership caches are filled as in a long run;
# WARDEN_CACHESIM_SORT (2: L1 instruction misses) the column the function
# list is sorted by (1 instructions, 3 L1 data read misses, 5 LL misses).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "bench-cachesim: valgrind is not installed (apt-get install valgrind); nothing measured" >&2
  exit 1
fi
preset=${1:-crm-large}
calls=${WARDEN_CACHESIM_CALLS:-3000}
warm=${WARDEN_CACHESIM_WARM:-20000}
sort_by=${WARDEN_CACHESIM_SORT:-2}
work=${WARDEN_BENCH_DIR:-target/bench-$preset}
source scripts/bench-lib.sh
bench_prepare "$preset" "$work"
bench_pin "server on core 0 under callgrind, warden-load on core 1"
trap stop_server EXIT
bench_header
echo "server: $server_bin"
fill_once "$bin/warden" "$work/warden.db" "$work/$preset.json" "$work/fill.log"

sim=$work/cachesim
rm -rf "$sim"
mkdir -p "$sim"
copy_store "$work/warden.db" "$sim/serve.db"
# Counting starts once the state is loaded (start-up runs uninstrumented).
server_cpu=("${server_cpu[@]}" valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes
  --I1=32768,8,64 --D1=49152,12,64 --LL=2097152,16,64 --callgrind-out-file="$sim/cg.%p")
start_warden "$server_bin" "$sim/serve.db" "$sim/serve.log" --poll-interval-ms 3600000
echo "server started under callgrind after $ms ms"
callgrind_control -i on "$pid" >/dev/null

load() {
  "${load_cpu[@]}" "$bin/warden-load" --addr "$addr" --preset "$preset" --threads 1 \
    --connections 4 --concurrency 64 --warmup-secs 0 --duration-secs 1800 "$@"
}
load --mode check --max-calls "$warm" >"$sim/warm.log" 2>&1

# per_function DUMP CALLS: "function<TAB>Ir I1mr D1mr D1mw DLmr" per call,
# each function's inlined pieces summed.
per_function() {
  callgrind_annotate --inclusive=no --auto=no --threshold=100 \
    --show=Ir,I1mr,D1mr,D1mw,DLmr --sort=Ir "$1" 2>/dev/null | awk -v n="$2" '
    /file:function/ { table = 1; next }
    !table || /^-/ || NF == 0 { next }
    {
      line = $0
      gsub(/\([^)]*%\)/, "", line)
      k = split(line, f, " ")
      if (k < 6) next
      fn = ""
      for (i = 6; i <= k; i++) fn = fn (i > 6 ? " " : "") f[i]
      sub(/^[^:]*:/, "", fn)
      sub(/ \[[^]]*\]$/, "", fn)
      for (i = 1; i <= 5; i++) { v = f[i]; gsub(/,/, "", v); if (v == ".") v = 0; sum[fn, i] += v }
      seen[fn] = 1
    }
    END {
      for (fn in seen)
        printf "%s\t%.2f %.2f %.2f %.2f %.3f\n", fn, sum[fn,1]/n, sum[fn,2]/n, sum[fn,3]/n, sum[fn,4]/n, sum[fn,5]/n
    }'
}

echo
echo "| phase | calls | instructions | L1 instruction misses | L1 data read misses | L1 data write misses | LL data read misses |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for mode in health check; do
  callgrind_control -z "$pid" >/dev/null
  load --mode "$mode" --max-calls "$calls" >"$sim/$mode.log" 2>&1
  callgrind_control -d "$mode" "$pid" >/dev/null
  dump=$(ls -t "$sim"/cg.* | head -1)
  answered=$(answered_calls "$sim/$mode.log" "$calls")
  echo "$answered" >"$sim/$mode.calls"
  cp "$dump" "$sim/$mode.out"
  # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
  awk -v m="$mode" -v c="$answered" '/^summary:/ {
    printf "| %s | %d | %.0f | %.1f | %.1f | %.1f | %.2f |\n", m, c, $2/c, $5/c, $6/c, $7/c, $9/c }' "$dump"
  per_function "$dump" "$answered" >"$sim/$mode.functions"
done

echo
echo "Check minus health per call, by function (sorted by column $sort_by), largest 30:"
echo "instructions  I1 misses  D1 read misses  D1 write misses  LL read misses  function"
awk -F'\t' -v col="$sort_by" '
  FNR == NR { split($2, v, " "); for (i = 1; i <= 5; i++) h[$1, i] = v[i]; seen[$1] = 1; next }
  { split($2, v, " "); for (i = 1; i <= 5; i++) c[$1, i] = v[i]; seen[$1] = 1 }
  END {
    for (fn in seen) {
      printf "%.2f", c[fn, col] - h[fn, col]
      for (i = 1; i <= 5; i++) printf "\t%.2f", c[fn, i] - h[fn, i]
      printf "\t%s\n", fn
    }
  }' "$sim/health.functions" "$sim/check.functions" |
  sort -t$'\t' -k1,1 -g -r | head -30 |
  awk -F'\t' '{ printf "%12.0f %10.1f %15.1f %16.1f %15.2f  %s\n", $2, $3, $4, $5, $6, substr($7, 1, 140) }'
