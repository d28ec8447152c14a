//! Kernel source: /proc. Per-process memory (`status`, `smaps_rollup`) and the host's
//! (`meminfo`, `pressure/memory`). Parsing is procfs-core's; this module decides which file
//! each figure comes from and keeps "unavailable" apart from 0.

pub mod kpage;
pub mod shm;

use crate::model::{Host, KeyValues, Process};
use crate::sys::{ReadError, Root};
use procfs_core::FromBufRead;
use std::path::{Path, PathBuf};

/// Reads one process. `None` when the process is gone (exited before we got to it).
pub fn read_process(root: &Root, pid: i32) -> Option<Process> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let mut p = Process {
        pid,
        ..Default::default()
    };
    let status_path = base.join("status");
    match root.read(&status_path) {
        Ok(t) => match procfs_core::process::Status::from_buf_read(t.as_bytes()) {
            Ok(s) => {
                let kb = |v: Option<u64>| v.map(|k| k * 1024);
                p.comm = Some(s.name);
                p.vm_size_bytes = kb(s.vmsize);
                p.rss_bytes = kb(s.vmrss);
                p.rss_anon_bytes = kb(s.rssanon);
                p.rss_file_bytes = kb(s.rssfile);
                p.rss_shmem_bytes = kb(s.rssshmem);
                p.swap_bytes = kb(s.vmswap);
            }
            Err(e) => p
                .problems
                .push(ReadError::parse(&status_path, e.to_string()).to_string()),
        },
        Err(ReadError::Missing { .. }) => return None,
        Err(e) => p.problems.push(e.to_string()),
    }
    let rollup_path = base.join("smaps_rollup");
    match root.read(&rollup_path) {
        Ok(t) => match smaps_rollup(&t) {
            Ok(m) => {
                let g = |k: &str| m.get(k);
                p.pss_bytes = g("Pss");
                p.pss_anon_bytes = g("Pss_Anon");
                p.pss_file_bytes = g("Pss_File");
                p.pss_shmem_bytes = g("Pss_Shmem");
                p.swap_pss_bytes = g("SwapPss");
                p.uss_bytes = match (g("Private_Clean"), g("Private_Dirty")) {
                    (Some(c), Some(d)) => Some(c + d),
                    _ => None,
                };
            }
            Err(e) => p
                .problems
                .push(ReadError::parse(&rollup_path, e).to_string()),
        },
        // Kernel threads and zombies have an empty rollup; kernels before 4.14 have none.
        Err(ReadError::Missing { .. }) => {}
        Err(e) => p.problems.push(e.to_string()),
    }
    if let Ok(c) = root.read_bytes(&base.join("cmdline")) {
        let s: Vec<String> = c
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !s.is_empty() {
            p.cmdline = Some(s.join(" "));
        }
    }
    Some(p)
}

/// The memory fields of an smaps_rollup (bytes). Empty for kernel threads.
fn smaps_rollup(text: &str) -> Result<KeyValues, String> {
    if text.trim().is_empty() {
        return Ok(KeyValues::default());
    }
    let maps = procfs_core::process::SmapsRollup::from_buf_read(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let m = maps
        .memory_map_rollup
        .0
        .into_iter()
        .next()
        .ok_or_else(|| "no [rollup] line".to_string())?;
    let mut kv: Vec<(String, u64)> = m.extension.map.into_iter().collect();
    kv.sort();
    Ok(KeyValues(kv))
}

/// Reads the host's memory: /proc/meminfo (every key kept, in bytes), pressure, kernel
/// release, and whether lxcfs serves /proc/meminfo.
pub fn read_host(root: &Root) -> Host {
    let mut h = Host::default();
    let note = |e: ReadError, probs: &mut Vec<String>| {
        if !matches!(e, ReadError::Missing { .. }) {
            probs.push(e.to_string());
        }
    };
    let mut problems = Vec::new();
    match root.read(Path::new("/proc/meminfo")) {
        Ok(t) => h.meminfo = Some(meminfo(&t)),
        Err(e) => note(e, &mut problems),
    }
    let pp = Path::new("/proc/pressure/memory");
    match root.read(pp) {
        Ok(t) => match crate::cgroup::parse::pressure(&t) {
            Ok(p) => h.pressure = Some(p),
            Err(r) => problems.push(ReadError::parse(pp, r).to_string()),
        },
        Err(e) => note(e, &mut problems),
    }
    match root.read(Path::new("/proc/sys/kernel/osrelease")) {
        Ok(t) => h.kernel = Some(t.trim().to_string()),
        Err(e) => note(e, &mut problems),
    }
    if let Ok(mi) = root.read(Path::new("/proc/self/mountinfo")) {
        h.lxcfs_meminfo = mi.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(4) == Some(&"/proc/meminfo") && l.contains("lxcfs")
        });
    }
    h.problems = problems;
    h
}

/// Parses /proc/meminfo into bytes, keeping every key (hand-written rather than procfs-core's
/// typed `Meminfo` because that drops keys it does not know, and newer kernels add some).
pub fn meminfo(text: &str) -> KeyValues {
    let mut kv = Vec::new();
    for line in text.lines() {
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let Some(Ok(n)) = it.next().map(str::parse::<u64>) else {
            continue;
        };
        let n = if it.next() == Some("kB") { n * 1024 } else { n };
        kv.push((k.trim().to_string(), n));
    }
    KeyValues(kv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_in_bytes_and_counts() {
        let kv = meminfo("MemTotal:       16384 kB\nHugePages_Total:       2\nbad line\n");
        assert_eq!(kv.get("MemTotal"), Some(16384 * 1024));
        assert_eq!(kv.get("HugePages_Total"), Some(2));
        assert_eq!(kv.0.len(), 2);
    }

    proptest::proptest! {
        /// No input makes the /proc parsers panic: a truncated or garbled status or
        /// smaps_rollup becomes a problem on that process, never a crash.
        #[test]
        fn proc_parsers_never_panic(s in "\\PC*", cut in 0usize..2000) {
            let _ = meminfo(&s);
            let _ = smaps_rollup(&s);
            let real = format!("{ROLLUP}{s}");
            let _ = smaps_rollup(&String::from_utf8_lossy(&real.as_bytes()[..cut.min(real.len())]));
            let d = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(d.path().join("proc/7")).unwrap();
            let status = format!("{STATUS}{s}");
            std::fs::write(d.path().join("proc/7/status"), &status.as_bytes()[..cut.min(status.len())]).unwrap();
            std::fs::write(d.path().join("proc/7/smaps_rollup"), &s).unwrap();
            let p = read_process(&Root::dir(d.path()), 7);
            proptest::prop_assert!(p.is_some());
        }
    }

    // From this project's CI host (6.18), /proc/self/{smaps_rollup,status} of `cat`.
    const ROLLUP: &str = "55c4bc634000-7fff603e2000 ---p 00000000 00:00 0                          [rollup]\nRss:                1620 kB\nPss:                 729 kB\nPss_Dirty:           112 kB\nPss_Anon:            112 kB\nPss_File:            617 kB\nPss_Shmem:             0 kB\nShared_Clean:       1400 kB\nShared_Dirty:          0 kB\nPrivate_Clean:       108 kB\nPrivate_Dirty:       112 kB\nReferenced:         1620 kB\nAnonymous:           112 kB\nSwap:                  0 kB\nSwapPss:               0 kB\n";
    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t1828\nNgid:\t0\nPid:\t1828\nPPid:\t1821\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t256\nGroups:\t \nVmPeak:\t    3060 kB\nVmSize:\t    3060 kB\nVmRSS:\t    1576 kB\nRssAnon:\t     116 kB\nRssFile:\t    1460 kB\nRssShmem:\t       0 kB\nThreads:\t1\n";

    #[test]
    fn rollup_fields_from_a_real_kernel() {
        let kv = smaps_rollup(ROLLUP).unwrap();
        assert_eq!(kv.get("Pss"), Some(729 * 1024));
        assert_eq!(kv.get("Pss_Anon"), Some(112 * 1024));
        assert_eq!(
            kv.get("Private_Clean").unwrap() + kv.get("Private_Dirty").unwrap(),
            220 * 1024
        );
    }

    #[test]
    fn rollup_empty_for_kernel_threads() {
        assert_eq!(smaps_rollup("").unwrap().0.len(), 0);
        assert!(smaps_rollup("garbage\n").is_err());
    }
}
