# syntax=docker/dockerfile:1.7
# zkfleet image for the leader and the CPU worker pool. Build from the repository root:
#   docker build -t zkfleet:0.1.0 .
# The Rust version must equal the channel in rust-toolchain.toml; scripts/check-deploy checks it.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .cargo/config.toml comes with the sources: it sets RUSTC_BOOTSTRAP=1, which plonky2 needs.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p leader -p worker \
 && install -D -m 0755 target/release/leader /out/leader \
 && install -D -m 0755 target/release/worker /out/worker

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 zkfleet \
 && useradd --system --uid 10001 --gid zkfleet --home-dir /home/zkfleet --create-home zkfleet
COPY --from=build /out/leader /out/worker /usr/local/bin/
USER 10001:10001
WORKDIR /home/zkfleet
# Kubernetes probes the worker over HTTP (/livez, /readyz); see charts/zkfleet.
EXPOSE 9090
CMD ["worker"]
