#!/usr/bin/env bash
# Every test of the project, in one command (CI runs exactly this, from
# .ci/run). Run it as root on a Debian/Ubuntu machine: it installs what it
# needs first (scripts/install-deps.sh), and the tests create network
# namespaces, run dnsmasq and podman.
#
# Each stage runs even if an earlier one failed, so one run shows everything
# that is wrong; the last line counts the stages, and the exit code is
# non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run as root (sudo scripts/test.sh): the tests create network namespaces and containers" >&2
    exit 2
fi

scripts/install-deps.sh
tools=${UDP_HEADLESS_TOOLS:-$HOME/.cache/udp-headless/tools}

passed=0
failed=()
stage() {
    local name=$1
    shift
    echo
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "=== FAILED: $name"
        failed+=("$name")
    fi
}

stage "format" cargo fmt --check
stage "clippy" cargo clippy --all-targets -- -D warnings
stage "unit and integration tests" cargo test --all-targets
# The #[ignore]d tests: 1000 and 4000 pods (musl, glibc), demo.sh local
# (root), the aarch64 build under qemu, the images under podman and
# podman-compose (tests/it/containers.rs), demo.sh's cluster mode on the podman
# stand-in tests/standin/kubectl (tests/it/demo_cluster.rs).
stage "slow and root-only tests" cargo test -- --ignored
stage "shellcheck" shellcheck .ci/run scripts/*.sh scripts/lib/*.sh
stage "hadolint" "$tools/bin/hadolint" Dockerfile
stage "checkov (Dockerfile)" "$tools/bin/checkov" --file Dockerfile --framework dockerfile \
    --skip-download --quiet --compact
stage "manifests" scripts/check-manifests.sh
stage "local demo" scripts/demo.sh local

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed stages: ${failed[*]}"
fi
echo "stages: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
