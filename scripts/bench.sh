#!/usr/bin/env bash
# Runs the benchmarks, examples/bench/ (as root: network namespaces).
#   scripts/bench.sh [--quick | --relay | --help]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --release --example bench
exec target/release/examples/bench "$@"
