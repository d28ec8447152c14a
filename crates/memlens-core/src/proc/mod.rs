//! Kernel source: /proc. Per-process memory (`status`, `smaps_rollup`) and the host's
//! (`meminfo`, `pressure/memory`). Parsing is procfs-core's; this module decides which file
//! each figure comes from and keeps "unavailable" apart from 0.

pub mod fields;
pub mod kpage;
pub mod node;
pub mod runtime;
pub mod shm;

use crate::model::{Host, KeyValues, Process};
use crate::sys::{ReadError, Root};
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
        Ok(t) => {
            let (s, probs) = fields::status(&status_path, &t);
            p.comm = s.name;
            p.uid = s.uid;
            p.vm_size_bytes = s.vm_size;
            p.rss_bytes = s.vm_rss;
            p.rss_anon_bytes = s.rss_anon;
            p.rss_file_bytes = s.rss_file;
            p.rss_shmem_bytes = s.rss_shmem;
            p.swap_bytes = s.vm_swap;
            // No VmSize line: no address space (a kernel thread, or a zombie whose mm is
            // gone). Its memory is 0, not unknown (fs/proc/task_mmu.c task_mem() is only
            // called with an mm).
            if s.vm_size.is_none() && s.vm_rss.is_none() && probs.is_empty() {
                p.no_mm = true;
            }
            p.problems.extend(probs);
        }
        Err(ReadError::Missing { .. }) => return None,
        Err(e) => p.problems.push(e.to_string()),
    }
    let rollup_path = base.join("smaps_rollup");
    match root.read(&rollup_path) {
        Ok(t) => {
            let (m, probs) = fields::smaps_rollup(&rollup_path, &t);
            p.problems.extend(probs);
            // Kernel threads and zombies have an empty rollup, and no VmRSS in status; a
            // process with VmRSS and an empty rollup is damage (a cut capture).
            if m.0.is_empty() && p.rss_bytes.is_some_and(|r| r > 0) {
                p.problems.push(format!(
                    "{}: empty, though status shows VmRSS for this process (a kernel thread's would be empty): the PSS/USS figures are unavailable",
                    rollup_path.display()
                ));
            }
            let g = |k: &str| m.get(k);
            p.pss_bytes = g("Pss");
            p.pss_anon_bytes = g("Pss_Anon");
            p.pss_file_bytes = g("Pss_File");
            p.pss_shmem_bytes = g("Pss_Shmem");
            p.swap_pss_bytes = g("SwapPss");
            p.uss_bytes = match (g("Private_Clean"), g("Private_Dirty")) {
                (Some(c), Some(d)) => match c.checked_add(d) {
                    Some(u) => Some(u),
                    None => {
                        p.problems.push(format!(
                            "{}: Private_Clean + Private_Dirty overflows (implausible values); USS unavailable",
                            rollup_path.display()
                        ));
                        None
                    }
                },
                _ => None,
            };
        }
        // Kernel threads and zombies have an empty rollup; kernels before 4.14 have none.
        Err(ReadError::Missing { .. }) => {}
        Err(e) => p.problems.push(e.to_string()),
    }
    if p.no_mm && p.problems.is_empty() {
        let z = Some(0);
        p.vm_size_bytes = z;
        p.rss_bytes = z;
        p.rss_anon_bytes = z;
        p.rss_file_bytes = z;
        p.rss_shmem_bytes = z;
        p.swap_bytes = z;
        p.pss_bytes = z;
        p.uss_bytes = z;
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

/// The memory fields of an smaps_rollup (bytes), or the first problem. Empty for kernel
/// threads.
#[cfg(test)]
fn smaps_rollup(text: &str) -> Result<KeyValues, String> {
    let (kv, probs) = fields::smaps_rollup(Path::new("/proc/PID/smaps_rollup"), text);
    match probs.into_iter().next() {
        Some(p) => Err(p),
        None => Ok(kv),
    }
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
        Ok(t) => {
            let (kv, bad) = meminfo_checked(&t);
            let path = "/proc/meminfo";
            problems.extend(bad.into_iter().map(|b| format!("{path}: {b}")));
            if kv.0.is_empty() {
                problems.push(format!(
                    "{path}: {} (host RAM figures unavailable)",
                    if t.trim().is_empty() {
                        "empty file"
                    } else {
                        "no \"Key: N kB\" line"
                    }
                ));
            } else {
                h.meminfo = Some(kv);
            }
        }
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
    // Problems with the capture as a whole (cut archive, damaged metadata) belong in every
    // report, and every report reads the host.
    problems.extend(root.capture_problems());
    h.foreign_pid_namespace = foreign_pid_namespace(root);
    if let Some(why) = &h.foreign_pid_namespace {
        problems.push(why.clone());
    }
    h.problems = problems;
    h
}

/// Under `--host-root`: whether memlens runs outside the host's PID namespace. Its own PID
/// as the host's procfs numbers it (HOST/proc/self) differs from its PID in its own /proc
/// when the two procfs belong to different PID namespaces; no privilege is needed to read
/// either link (the namespace links of the host's init would need CAP_SYS_PTRACE).
/// cgroup.procs lists only the PIDs of the reader's namespace, so every host cgroup would
/// look empty. `None` on the live system, in a capture, or when a link cannot be read.
pub fn foreign_pid_namespace(root: &Root) -> Option<String> {
    if root.is_live() || root.is_capture() {
        return None;
    }
    let host = root.real_path(Path::new("/proc/self"))?;
    let theirs = std::fs::read_link(&host).ok()?;
    let ours = std::fs::read_link("/proc/self").ok()?;
    (theirs != ours).then(|| {
        format!(
            "memlens is not in the host's PID namespace (it is PID {} in {} but PID {} in its own /proc): cgroup.procs lists no host process here, so process lists are empty and no conclusion is drawn from them (run with the host's PID namespace: hostPID: true, docker run --pid host)",
            theirs.display(),
            host.display(),
            ours.display()
        )
    })
}

/// Parses /proc/meminfo into bytes, keeping every key (hand-written rather than procfs-core's
/// typed `Meminfo` because that drops keys it does not know, and newer kernels add some).
pub fn meminfo(text: &str) -> KeyValues {
    meminfo_checked(text).0
}

/// [`meminfo`] with the lines that do not parse (`line N: ...`): garbled, a value that
/// overflows or is implausible, a key printed twice (the first value is kept).
pub fn meminfo_checked(text: &str) -> (KeyValues, Vec<String>) {
    let mut kv: Vec<(String, u64)> = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(k, rest)| {
            let mut it = rest.split_whitespace();
            let n = it.next()?.parse::<u64>().ok()?;
            let n = match it.next() {
                Some("kB") => n.checked_mul(1024)?,
                None => n,
                Some(_) => return None,
            };
            Some((k.trim().to_string(), n))
        });
        match parsed {
            Some((k, _)) if kv.iter().any(|(x, _)| *x == k) => bad.push(format!(
                "line {}: {k} appears twice; the first value is used",
                i + 1
            )),
            Some((k, n)) if n >= crate::cgroup::parse::IMPLAUSIBLE => bad.push(format!(
                "line {}: {k} {n} is implausible (2^63 or more); unavailable",
                i + 1
            )),
            Some(x) => kv.push(x),
            None => bad.push(format!(
                "line {}: expected \"Key: N kB\", found {:?}",
                i + 1,
                line.chars().take(60).collect::<String>()
            )),
        }
    }
    (KeyValues(kv), bad)
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
    fn names_keep_their_colons_and_spaces() {
        let name = |t: &str| fields::status(Path::new("/proc/1/status"), t).0.name;
        let st = "Name:\tkworker/0:0H-events_highpri\nUmask:\t0000\n";
        assert_eq!(name(st).as_deref(), Some("kworker/0:0H-events_highpri"));
        assert_eq!(name("Name:\tmy:app x \n").as_deref(), Some("my:app x "));
        assert_eq!(name("Umask:\t0\n"), None);
    }

    #[test]
    fn rollup_empty_for_kernel_threads() {
        assert_eq!(smaps_rollup("").unwrap().0.len(), 0);
        assert!(smaps_rollup("garbage\n").is_err());
    }
}
