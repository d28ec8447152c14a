# memlens: static binary (musl) in an empty image.
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin memlens \
 && strip target/x86_64-unknown-linux-musl/release/memlens

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/memlens /memlens
# Root (uid 0), not a non-root user: the cgroup files and other users' /proc/PID files are
# root's, and Kubernetes grants added capabilities (SYS_PTRACE, SYSLOG) only to uid 0 unless
# they are ambient. The DaemonSet drops every other capability, forbids privilege escalation
# and mounts everything read-only; run as non-root (e.g. `docker run --user 65534`) for the
# cgroup metrics alone, which are world-readable.
USER 0:0
EXPOSE 9753
ENTRYPOINT ["/memlens"]
CMD ["serve", "--listen", "0.0.0.0:9753"]
