# syntax=docker/dockerfile:1
# Stowage operator image: `docker build -t stowage .` (needs BuildKit, the default since Docker 23).

# ---- build ------------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# protoc: the etcd-client crate generates its gRPC code at build time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The cargo registry and target/ live in BuildKit cache mounts, so a rebuild after a source change
# recompiles only the workspace crates. The binary is copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin stowage \
    && install -D -m 0755 target/release/stowage /out/stowage

# ---- run --------------------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 stowage \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/stowage --create-home \
        --shell /usr/sbin/nologin stowage

COPY --from=builder /out/stowage /usr/local/bin/stowage

USER 65532:65532
WORKDIR /var/lib/stowage

# Health (/healthz, /readyz), metrics (/metrics) and the REST API.
EXPOSE 8080

ENTRYPOINT ["/usr/local/bin/stowage"]
CMD ["run"]
