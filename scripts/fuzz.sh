#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a bounded time (default 60 s
# each), growing fuzz/corpus/<target>/, then minimizes each corpus. Needs a
# nightly toolchain and cargo-fuzz; installs cargo-fuzz when only it is
# missing, and says plainly what is missing otherwise. The corpus found is
# replayed on stable by `cargo test --test fuzz_corpus`.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
# FUZZ_TARGET_DIR sets where the nightly fuzz build goes (default
# fuzz/target), apart from the stable build of CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(document requests engine)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); nothing fuzzed." >&2
  echo "fuzz.sh: the committed corpus still runs on stable: cargo test --test fuzz_corpus" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz missing; installing it (cargo install cargo-fuzz)"
  cargo install cargo-fuzz --locked
fi

# Hand-written seeds (one message per RPC, every scenario as a document).
cargo test --test fuzz_corpus write_seeds -- --ignored --quiet

cd fuzz
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${seconds}s"
  mkdir -p "corpus/$t"
  # -s none: the code under test forbids unsafe, so address sanitizing adds
  # build time and little else; panics and invariant failures are what count.
  cargo +nightly fuzz run -s none "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1
  echo "== minimizing corpus/$t"
  cargo +nightly fuzz cmin -s none "$t" "corpus/$t"
done
echo "fuzz.sh: done; no target failed. Replay: cargo test --test fuzz_corpus"
