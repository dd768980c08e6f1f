# Images for udp-headless: three tiny FROM-scratch images, one binary each.
#
#   docker build --target receiver -t udp-headless/receiver:0.1.0 .
#   docker build --target sender   -t udp-headless/sender:0.1.0 .
#   docker build --target relay    -t udp-headless/relay:0.1.0 .
#
# (podman build / buildah bud take the same arguments.)
#
# Where do the binaries come from? The build argument BINARIES picks:
#
#   BINARIES=build (default)  compiled in the `build` stage below, in the
#                             Rust image RUST_IMAGE (a registry must serve
#                             it: pass your mirror's); the build itself is
#                             offline (std only: no crate is fetched).
#   BINARIES=host             copied from the build context, compiled on the
#                             host beforehand with
#                               cargo build --release --locked --bins \
#                                   --target x86_64-unknown-linux-musl
#                             (aarch64-unknown-linux-musl for arm64).
#                             No base image is pulled at all (scratch is not
#                             an image): for machines without registry access.
#                             tests/it/containers.rs builds this way.
#
# Architectures: amd64 and arm64, picked by TARGETARCH, which the builder
# sets from --platform (default: the build machine's). The `build` stage
# runs on the build machine itself and cross-compiles with rust-lld, so no
# emulation is needed. A multi-arch image (one name, both architectures):
#   podman build --platform linux/amd64,linux/arm64 --target receiver \
#       --manifest udp-headless/receiver:0.1.0 .
#   podman manifest push udp-headless/receiver:0.1.0 docker://REGISTRY/...
# (docker buildx build --platform linux/amd64,linux/arm64 --push ... alike.)
#
# Docker (BuildKit), podman and buildah only build the stages the target
# needs, and `FROM ${BINARIES:-build} AS binaries` makes exactly one of
# `build` and `host` needed, so with BINARIES=host the Rust image is never
# pulled. OpenShift's docker builder builds every stage: there the `host`
# stages must not fail on a clone without target/, hence their COPYs list
# Cargo.toml and glob the binaries (a glob may match nothing); shown by
# `podman build --skip-unused-stages=false` in tests/containers.rs.
# .dockerignore lets in only the sources and those three host binaries.
#
# The binaries are static (musl, std only, no C dependencies) and small: the
# release profile in Cargo.toml has lto, codegen-units=1, panic=abort,
# strip and opt-level "s", and .cargo/config.toml links with rust-lld and
# RELR-packed relocations. Each image is one binary, about 500-600 KB.

# No HEALTHCHECK: Kubernetes ignores it (the receiver's readinessProbe asks
# its /readyz), the OCI image format that podman and buildah write
# has no field for it (they drop it with a warning), and the sender has
# nothing to check. `docker run` users can add --health-cmd.
# checkov:skip=CKV_DOCKER_2:HEALTHCHECK is not in the OCI image format, and Kubernetes has the receiver's readinessProbe (see above)

# The image the `build` stage compiles in. The tag is pinned; add a digest
# (rust:1.95.0-slim@sha256:...) for fully reproducible builds, or name a
# mirror (--build-arg RUST_IMAGE=mirror.example/rust:1.95.0-slim; the
# OpenShift BuildConfigs pass it as a build argument).
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim
# Where the binaries come from: `build` or `host` (see above).
ARG BINARIES=build
# The image's architecture (amd64 or arm64) and the build machine's
# platform: builders set both from --platform and the machine. Declared
# here for buildah 1.28 (podman 4.3), which expands only ARGs declared
# before the first FROM in FROM lines, and does not set BUILDPLATFORM: pass
# --build-arg BUILDPLATFORM=linux/amd64 there (else the `build` stage runs
# the target platform's rust image, under emulation).
ARG TARGETARCH
ARG BUILDPLATFORM
# The image a build without --target gives: receiver, sender or relay (for
# builders that take no --target, like OpenShift's docker strategy).
ARG IMAGE=receiver
# Image metadata (OCI labels). VERSION follows Cargo.toml; pass SOURCE_URL
# and REVISION (git rev-parse HEAD) from CI.
ARG VERSION=0.1.0
ARG SOURCE_URL="unknown: build with --build-arg SOURCE_URL=<repository URL>"
ARG REVISION=unknown

# ---------------------------------------------------------------------------
# host: the same three binaries, built on the host (BINARIES=host), for the
# TARGETARCH being built. Globs and Cargo.toml: see the top (a builder that
# builds every stage); a missing binary fails later, at COPY --from=binaries.
FROM scratch AS host-amd64
COPY Cargo.toml target/x86_64-unknown-linux-musl/release/sende[r] \
     target/x86_64-unknown-linux-musl/release/receive[r] \
     target/x86_64-unknown-linux-musl/release/rela[y] /out/
FROM scratch AS host-arm64
COPY Cargo.toml target/aarch64-unknown-linux-musl/release/sende[r] \
     target/aarch64-unknown-linux-musl/release/receive[r] \
     target/aarch64-unknown-linux-musl/release/rela[y] /out/
# `:-amd64`: buildah 1.28 leaves TARGETARCH empty here without --platform
# (see `binaries` below for the same workaround).
# checkov:skip=CKV_DOCKER_7:FROM host-${TARGETARCH} names a stage of this file, not an image, so it has no tag
# hadolint ignore=DL3006
FROM host-${TARGETARCH:-amd64} AS host
WORKDIR /out

# ---------------------------------------------------------------------------
# build: compile the three binaries for TARGETARCH's musl target, on the build
# machine's own platform (BUILDPLATFORM: native speed, no emulation).
# The musl targets bring their own libc and C runtime objects (rustup's
# "self-contained" musl) and rust-lld (shipped with rustc) links them for
# either architecture: no cross gcc, no musl-tools.
# No `cargo fetch`: the crate is std only. Its one dev-dependency (tests
# only) is dropped from Cargo.toml first, so cargo never asks the crates.io
# index (--offline; not --locked, as the lock file then shrinks).
# checkov:skip=CKV_DOCKER_7:RUST_IMAGE is an ARG whose default is tagged (rust:1.95.0-slim)
# hadolint ignore=DL3006,DL3029
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The linker and its flags (rust-lld, RELR): the same binaries as a host build.
COPY .cargo/config.toml ./.cargo/config.toml
COPY src ./src
# An empty TARGETARCH: a builder without platform arguments (amd64).
RUN case "$TARGETARCH" in \
        amd64 | "") target=x86_64-unknown-linux-musl ;; \
        arm64) target=aarch64-unknown-linux-musl ;; \
        *) echo "TARGETARCH $TARGETARCH: only amd64 and arm64 are supported" >&2; exit 1 ;; \
    esac \
    && rustup target add "$target" \
    && sed -i '/^\[dev-dependencies\]/,/^\[/{/^\[dev-dependencies\]/d;/^[a-z_-]* *=/d}' Cargo.toml \
    && cargo build --release --offline --bins --target "$target" \
    && mkdir /out \
    && cp "target/$target/release/sender" "target/$target/release/receiver" \
          "target/$target/release/relay" /out/

# ---------------------------------------------------------------------------
# binaries: whichever of the two stages BINARIES names; /out holds the
# binaries either way.
# Two workarounds for buildah 1.28 (podman 4.3, Debian 12), harmless
# elsewhere:
#   - `:-build` repeats the ARG's default: buildah 1.28 decides which
#     stages a target needs by expanding FROM with the --build-arg values
#     only, not the ARG defaults, so a plain `${BINARIES}` skipped the
#     `build` stage and then failed with "build: image not known";
#   - WORKDIR is not just documentation: a stage with no instruction makes
#     `podman build --layers=false` fail at the end with "identifier is not
#     an image" (it removes the shared intermediate image twice).
# checkov:skip=CKV_DOCKER_7:FROM ${BINARIES:-build} names a stage of this file (build or host), not an image, so it has no tag
FROM ${BINARIES:-build} AS binaries
WORKDIR /out

# ---------------------------------------------------------------------------
# sender: resolves a name and sends one UDP datagram to every address.
#
# ENTRYPOINT is the binary, so arguments go straight to it:
#   podman run --rm udp-headless/sender:0.1.0 -s headless-udp -m test
# The default CMD is --idle (wait for SIGTERM, send nothing), the sender's
# role in a deployment: a long-running pod or compose service that users
# `kubectl exec` / `docker compose exec` into to run `/sender -s ... -m ...`
# (there is no shell in the image). --help as default would make a pod or
# service that forgets its args exit at once and restart forever; --idle
# just waits, and stops within a second on SIGTERM (it runs as PID 1).
FROM scratch AS sender
ARG VERSION
ARG SOURCE_URL
ARG REVISION
LABEL org.opencontainers.image.title="udp-headless sender" \
      org.opencontainers.image.description="Sends one UDP datagram to every address a name resolves to, e.g. every pod behind a Kubernetes headless Service" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=binaries /out/sender /sender
# So `kubectl exec sender-app -- sender -s headless-udp -m test` finds it
# by name, as in the original walkthrough (scratch has no PATH of its own).
ENV PATH=/
# Numeric user and group: no /etc/passwd in scratch, and Kubernetes'
# runAsNonRoot can only verify a numeric USER. OpenShift overrides it with
# a random UID (group 0); the binary needs no particular UID or any file.
USER 65532:65532
ENTRYPOINT ["/sender"]
CMD ["--idle"]

# ---------------------------------------------------------------------------
# relay: every datagram in on UDP 12001, a copy out to every pod of the
# Service (deployments/relay/). Its readiness probe is HTTP GET /readyz on
# the metrics port (`/relay --check` tests the same without metrics).
FROM scratch AS relay
ARG VERSION
ARG SOURCE_URL
ARG REVISION
LABEL org.opencontainers.image.title="udp-headless relay" \
      org.opencontainers.image.description="Sends every UDP datagram it receives to every pod behind a Kubernetes headless Service, following the Service as it scales" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=binaries /out/relay /relay
ENV PATH=/
# See the sender stage: numeric non-root user, any UID works.
USER 65532:65532
EXPOSE 12001/udp
ENTRYPOINT ["/relay"]

# ---------------------------------------------------------------------------
# receiver: listens on UDP 12000 (all addresses, IPv4 and IPv6) and logs
# every datagram to stdout. Its readiness probe is HTTP GET /readyz on the
# metrics port (`/receiver --check` tests the same without metrics).
FROM scratch AS receiver
ARG VERSION
ARG SOURCE_URL
ARG REVISION
LABEL org.opencontainers.image.title="udp-headless receiver" \
      org.opencontainers.image.description="Logs every UDP datagram received on port 12000, e.g. as a pod behind a Kubernetes headless Service" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=binaries /out/receiver /receiver
ENV PATH=/
# See the sender stage: numeric non-root user, any UID works.
USER 65532:65532
EXPOSE 12000/udp
ENTRYPOINT ["/receiver"]

# ---------------------------------------------------------------------------
# image: the stage IMAGE names, the receiver by default. Last, so it is what
# a build without --target gives; deployments/openshift-build/ uses it.
# (WORKDIR: a stage needs an instruction with buildah 1.28, see `binaries`.)
# checkov:skip=CKV_DOCKER_7:FROM ${IMAGE:-receiver} names a stage of this file (receiver, sender or relay), not an image
FROM ${IMAGE:-receiver} AS image
WORKDIR /
