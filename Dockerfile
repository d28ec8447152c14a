# memlens: one static binary in an empty image, built offline (no registry, no base image).
#
# 1. Build a static memlens on the build machine, either
#      cargo build --release --locked --target x86_64-unknown-linux-musl --bin memlens
#    (needs the musl target: `rustup target add x86_64-unknown-linux-musl` and musl-tools), or,
#    where that target cannot be installed (no rustup network, as in this project's CI),
#      RUSTFLAGS="-C target-feature=+crt-static" \
#        cargo build --release --locked --target x86_64-unknown-linux-gnu --bin memlens
#    (glibc linked statically: memlens does no NSS/DNS lookups, the one thing static glibc
#    cannot do). .ci/run builds the second (dev profile, shared with tests/vm/run's build);
#    tests/engine_image.rs builds and runs this image.
# 2. docker build --build-arg BIN=target/x86_64-unknown-linux-gnu/release/memlens -t memlens .
#    (.dockerignore sends only the two binaries as context, not the 1 GB target directory.)
FROM scratch
ARG BIN=target/x86_64-unknown-linux-musl/release/memlens
COPY ${BIN} /memlens
# Root (uid 0), not a non-root user: the cgroup files and other users' /proc/PID files are
# root's, and Kubernetes grants added capabilities (SYS_PTRACE, SYSLOG) only to uid 0 unless
# they are ambient. The DaemonSet drops every other capability, forbids privilege escalation
# and mounts everything read-only; run as non-root (e.g. `docker run --user 65534`) for the
# cgroup metrics alone, which are world-readable (names then come with problems saying which
# files were unreadable).
USER 0:0
EXPOSE 9753
ENTRYPOINT ["/memlens"]
CMD ["serve", "--listen", "0.0.0.0:9753"]
