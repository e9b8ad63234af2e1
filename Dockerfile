# syntax=docker/dockerfile:1
# The crosskey operator image: build with cargo, run from a distroless image as uid 65532.
#   docker build -t ghcr.io/crosskey/crosskey:0.1.0 .
#
# Final image: gcr.io/distroless/cc-debian12:nonroot (glibc, libgcc, CA certificates,
# no shell, no package manager; user "nonroot" = 65532:65532, the uid the chart's
# podSecurityContext runs as). Not a musl static binary on distroless/static: TLS uses
# rustls with aws-lc-rs (aws-lc-sys, C and assembly), whose musl build needs a musl C
# cross toolchain and cmake in the builder, and musl's allocator is slow for a
# multi-threaded tokio process. The glibc binary links only glibc and libgcc, which the
# cc image carries; the Rust dependencies are linked statically either way.

# At least Cargo.toml's rust-version, itself at least the highest rust-version of the
# locked dependencies (tests/helm_deploy.rs checks both from `cargo metadata`).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them: a stub crate with
# the real manifest and lock file.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs benches/policy_bench.rs benches/convergence.rs \
 && cargo build --release --locked --bin crosskey \
 && rm -rf src benches
COPY src ./src
COPY benches ./benches
# touch: the stub's artefacts are newer than the copied sources' mtimes.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin crosskey \
 && install -D -m 0755 target/release/crosskey /out/crosskey

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/crosskey /usr/local/bin/crosskey
# Numeric, so that the kubelet can check runAsNonRoot without /etc/passwd.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/crosskey"]
CMD ["run"]
