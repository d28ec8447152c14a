#!/bin/bash
# One hour of `memlens record --interval 10s` over 1,000 idle memcgs of ours (v1 host):
# RSS (VmRSS) and CPU (utime+stime from /proc/PID/stat) every 5 min. Removes what it made.
set -u
BIN=$1; MIN=${2:-60}
P=/sys/fs/cgroup/memory/memlens-test-hour-$$
mkdir "$P" || exit 1
for i in $(seq 0 999); do mkdir "$P/memlens-c$i"; done
ST=$(mktemp -d /var/tmp/memlens-hour.XXXX)
"$BIN" --store "$ST" record --interval 10s >/dev/null 2>"$ST.log" &
PID=$!
sleep 12
t0=$(date +%s); read -r u0 s0 <<<"$(awk '{print $14, $15}' /proc/$PID/stat)"
echo "start $(date +%T) pid $PID rss_kb $(awk '/VmRSS/{print $2}' /proc/$PID/status)"
for k in $(seq 5 5 "$MIN"); do
  sleep 300
  read -r u s <<<"$(awk '{print $14, $15}' /proc/$PID/stat)"
  now=$(date +%s)
  echo "$(date +%T) min $k rss_kb $(awk '/VmRSS/{print $2}' /proc/$PID/status) cpu_pct $(echo "scale=3; ($u+$s-$u0-$s0)/($now-$t0)" | bc) user $((u-u0)) sys $((s-s0)) store_kb $(du -sk "$ST" | cut -f1) fds $(ls /proc/$PID/fd | wc -l)"
done
kill $PID; wait $PID
for i in $(seq 0 999); do rmdir "$P/memlens-c$i"; done; rmdir "$P"; rm -rf "$ST" "$ST.log"
echo done
