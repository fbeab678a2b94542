#!/usr/bin/env bash
# A profile-guided (PGO) release build of `warden`: optional, for an
# operator who wants the server's last ~15 % of CPU per call back
# (docs/benchmarks.md, "Part Z (twelfth round)"; docs/decisions.md,
# "A profile-guided build, offered and not the default").
#
#   bash scripts/build-pgo.sh          # -> target/pgo/warden
#
# 1. Builds `warden` and `warden-load` instrumented (rustc
#    -Cprofile-generate), for the host target only, so build scripts and
#    proc macros are not instrumented.
# 2. Trains: generates the crm-large data set, fills a SQLite store with
#    it and serves it with the instrumented server while warden-load
#    drives every read phase (health, Check, CheckBulk, LookupRecords).
#    Only the server's profile is kept.
# 3. Merges the profile with the toolchain's llvm-profdata (the rustup
#    component llvm-tools, added here if missing) and builds `warden`
#    again with -Cprofile-use.
#
# Decisions do not depend on the build: the profile changes code layout,
# inlining and branch order only. Takes two fat-LTO release builds and
# a training run (generating and filling crm-large, then 8 s a phase):
# 32 minutes in all on this project's 2-core machine.
# WARDEN_PGO_DIR (default target/pgo) holds everything it makes.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ] && command -v rustup >/dev/null; then
  echo "build-pgo: llvm-profdata not found, adding the rustup component llvm-tools"
  rustup component add llvm-tools || true
fi
if [ ! -x "$profdata" ]; then
  echo "build-pgo: no llvm-profdata at $profdata; install the toolchain's llvm-tools component (rustup component add llvm-tools)" >&2
  exit 1
fi

out=${WARDEN_PGO_DIR:-target/pgo}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/profiles" "$out/discard" "$out/train"
mkdir -p "$out/profiles" "$out/discard" "$out/train"

echo "build-pgo: instrumented build ($(date -u +%T))"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$out/discard" \
  cargo build --release --locked --bin warden --bin warden-load \
  --target "$host" --target-dir "$out/gen"
gen="$out/gen/$host/release"

# Every instrumented process but the training server writes its profile
# where it is thrown away.
export LLVM_PROFILE_FILE="$out/discard/%p.profraw"
source scripts/bench-lib.sh
trap stop_server EXIT
echo "build-pgo: training on crm-large ($(date -u +%T))"
"$gen/warden" generate --preset crm-large --out "$out/train/crm-large.json"
fill_once "$gen/warden" "$out/train/warden.db" "$out/train/crm-large.json" "$out/train/fill.log"
LLVM_PROFILE_FILE="$out/profiles/warden-%p.profraw" \
  start_warden "$gen/warden" "$out/train/warden.db" "$out/train/serve.log"
"$gen/warden-load" --addr "$addr" --preset crm-large --mode all \
  --threads 1 --connections 4 --concurrency 64 --bulk-concurrency 4 --bulk-size 100 \
  --duration-secs 8 --warmup-secs 1 --lookup-runs 3 --page-size 10000 \
  >"$out/train/load.log"
stop_server
if ! compgen -G "$out/profiles/*.profraw" >/dev/null; then
  echo "build-pgo: the training server wrote no profile" >&2
  exit 1
fi
"$profdata" merge -o "$out/warden.profdata" "$out/profiles"

echo "build-pgo: optimized build ($(date -u +%T))"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$out/warden.profdata" \
  cargo build --release --locked --bin warden --target "$host" --target-dir "$out/use"
cp "$out/use/$host/release/warden" "$out/warden"
echo "build-pgo: $out/warden ($(date -u +%T))"
