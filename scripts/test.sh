#!/usr/bin/env bash
# Runs every test of Warden: installs and starts what the tests need, then
# the unit, scenario, property and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
