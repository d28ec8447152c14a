#!/bin/bash
# rec3: the CPU cost of reading memory.stat every interval for "warm" cgroups.
# N memcgs of ours with 6 MiB page cache each; run A: limit 8 MiB (75%: warm), run B: 64 MiB
# (9%: tiered). Same binary, same content. Cleans up its memcgs and files.
set -u
BIN=$1; N=${2:-100}; SECS=${3:-30}
M=/sys/fs/cgroup/memory
D=/var/tmp/rec3-warm.$$
mkdir -p $D
cleanup() {
  for i in $(seq 1 $N); do rmdir $M/memlens-test-warm-$i 2>/dev/null; done
  rm -rf $D
}
trap cleanup EXIT
for i in $(seq 1 $N); do
  mkdir -p $M/memlens-test-warm-$i
  echo $((64<<20)) > $M/memlens-test-warm-$i/memory.limit_in_bytes
  sh -c "echo \$\$ > $M/memlens-test-warm-$i/cgroup.procs; exec dd if=/dev/zero of=$D/f$i bs=1M count=6 status=none"
done
run() {
  local lim=$1
  for i in $(seq 1 $N); do echo $lim > $M/memlens-test-warm-$i/memory.limit_in_bytes; done
  local S=$D/store-$lim; rm -rf $S
  /usr/bin/time -f "%U %S" -o $D/time $BIN --store $S record --interval 1s --no-oom --for ${SECS}s >/dev/null 2>$D/err
  local u s; read u s < $D/time
  local st=$(awk '{print $1}' $M/memlens-test-warm-1/memory.usage_in_bytes)
  echo "limit $((lim>>20)) MiB: cpu user $u s sys $s s over ${SECS}s; store $(du -sk $S | cut -f1) KiB; usage of #1 $st"
}
run $((8<<20))
run $((64<<20))
run $((8<<20))
run $((64<<20))
