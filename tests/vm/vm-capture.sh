#!/bin/sh
# Runs inside the VM after the tests (tests/vm/run packs it): read-only memlens invocations on
# a real kernel (cgroup v2, or v1 in a -v1 guest), with a known workload, kept as a fresh capture
# for the parser tests (tests/fixtures/captures/v2-debian-6.1, refreshed with
# MEMLENS_VM_UPDATE_FIXTURES=1).
set -eu
OUT=${MEMLENS_VM_OUT:-/tmp}/capture
mkdir -p "$OUT"
CG=${CGROOT:-/sys/fs/cgroup}/memlens-test-capture
KIND=${MEMLENS_VM_CGROUP:-v2}
mkdir "$CG"
cleanup() {
    # (no errexit in here: a kill of a process that just exited must not end the cleanup)
    set +e
    exec 3>&-
    i=0
    while [ $i -lt 40 ]; do
        i=$((i + 1))
        kill -9 $(cat $CG/cgroup.procs 2>/dev/null) 2>/dev/null
        sleep 0.5
        rmdir $CG 2>/dev/null && break
    done
    rm -f /mnt/disk/capture-file
    [ ! -d $CG ]
}
trap cleanup EXIT
mkfifo /tmp/hold
sh -c "echo \$\$ > $CG/cgroup.procs; exec memlens __workload anon=24M shm=8M write=/mnt/disk/capture-file:16M" </tmp/hold >/tmp/ready &
exec 3>/tmp/hold
i=0
until grep -q READY /tmp/ready 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "workload never got ready"; exit 1; }
    sleep 0.1
done
uname -r >"$OUT/uname"
memlens --all --json >"$OUT/overview.json"
memlens --all --color never >"$OUT/overview.txt"
memlens show /memlens-test-capture --json >"$OUT/show.json"
memlens show /memlens-test-capture --color never >"$OUT/show.txt"
memlens ps /memlens-test-capture --json >"$OUT/ps.json"
memlens capture /memlens-test-capture -o "$OUT/$KIND-capture.tar.gz"
echo "capture written to $OUT"
# The lab's scenarios on this guest's hierarchy: the 5.10 and 5.10-v1 guests give the same
# kernel's figures on v2 and on v1 (tests/vm/run prints `memlens lab --compare` of their
# lab.json at the end).
memlens lab --dir /mnt/disk --json >"$OUT/lab.json" 2>"$OUT/lab.stderr" || true

# A global OOM kill (no memcg limit anywhere) for the OOM parser's fixtures, now that the tests
# are over: swap off so it comes quickly, and oom_score_adj 1000 so the workload is the victim.
swapoff -a 2>/dev/null || true
sh -c 'echo 1000 > /proc/self/oom_score_adj; exec memlens __workload grow=8G' </dev/null >/dev/null 2>&1 || true
dmesg >"$OUT/global-oom.dmesg"
grep -q 'Out of memory: Killed process' "$OUT/global-oom.dmesg" && echo "global OOM kill logged"
