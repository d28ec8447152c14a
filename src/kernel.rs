//! What the running kernel's memory cgroup code does, where that cannot be probed from a file.
//!
//! Everything that *can* be probed is probed where it is read (a missing `memory.peak` is
//! "unavailable", a `memory.reclaim` that refuses `swappiness=` falls back): this module only
//! holds behaviour that shows in no file, with the commit that set it. Matrix-tested on
//! Debian's 5.10, 6.1 and 6.12 (tests/vm/run matrix).

/// A kernel release's `major.minor`, from `/proc/sys/kernel/osrelease` (`6.12.117+deb13-amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
}

impl Release {
    pub fn parse(s: &str) -> Option<Release> {
        let mut it = s.trim().split(|c: char| !c.is_ascii_digit());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(Release { major, minor })
    }

    /// This machine's release (read straight from /proc: the kernel memlens runs on, which is
    /// what lab and run measure).
    pub fn running() -> Option<Release> {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|s| Release::parse(&s))
    }

    pub fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// How far any `memory.stat` counter may lag the truth, in bytes.
///
/// Memcg statistics are per-CPU deltas folded into the shared counters in batches:
/// - before 5.13, each CPU folds a counter's delta only once it passes MEMCG_CHARGE_BATCH
///   (64 pages), and memory.stat reads the shared counter alone, so every counter can be off
///   by up to 64 pages per possible CPU. Measured on Debian's 5.10 in the VM: a 32 MiB tmpfs
///   file showed as 32 MiB − 8 pages.
/// - since 5.13 ("mm: memcontrol: switch to rstat", 2d146aa3aa84) memory.stat flushes the
///   per-CPU deltas first, but (5.15+) skips the flush while fewer than about 64 pages of
///   updates per CPU are pending machine-wide: the same bound.
///
/// memory.current (a page_counter) is exact on every kernel.
pub fn memcg_stat_error_bytes(possible_cpus: u64) -> u64 {
    const MEMCG_CHARGE_BATCH: u64 = 64;
    const PAGE: u64 = 4096;
    MEMCG_CHARGE_BATCH * PAGE * possible_cpus.max(1)
}

/// The CPUs the kernel keeps per-CPU counters for (configured, not only online).
pub fn possible_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    u64::try_from(n).unwrap_or(1).max(1)
}

/// [`memcg_stat_error_bytes`] on this machine.
pub fn running_stat_error_bytes() -> u64 {
    memcg_stat_error_bytes(possible_cpus())
}

/// Whether the multi-generational LRU runs (`/sys/kernel/mm/lru_gen/enabled`, bit 0x0001;
/// Documentation/admin-guide/mm/multigen_lru.rst). Under MGLRU memory.stat's active_file and
/// inactive_file are generations (the two youngest count as active), and a page read again
/// with read(2) only climbs a tier within its generation, so re-read page cache stays
/// "inactive": the working set (usage − inactive_file) of kubelet and cAdvisor leaves it out.
/// Debian enables it from 6.12 (CONFIG_LRU_GEN_ENABLED=y); 6.1 builds it in but off.
pub fn mglru_enabled(root: &crate::sys::Root) -> bool {
    root.read(std::path::Path::new("/sys/kernel/mm/lru_gen/enabled"))
        .ok()
        .and_then(|t| u64::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|v| v & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        let r = |s| Release::parse(s).map(|r| (r.major, r.minor));
        assert_eq!(r("6.12.117+deb13-amd64"), Some((6, 12)));
        assert_eq!(r("5.10.0-32-amd64\n"), Some((5, 10)));
        assert_eq!(r("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(r("7"), None);
        assert_eq!(r("garbage"), None);
        assert!(Release::parse("5.19.0").is_some_and(|r| r.at_least(5, 19)));
        assert!(!Release::parse("5.18.9").is_some_and(|r| r.at_least(5, 19)));
    }

    #[test]
    fn stat_error_is_a_batch_per_cpu() {
        assert_eq!(memcg_stat_error_bytes(2), 2 * 64 * 4096);
        assert_eq!(memcg_stat_error_bytes(0), 64 * 4096);
    }
}
