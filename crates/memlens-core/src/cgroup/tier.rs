//! Tiered reads for the always-on front ends (`serve`, `top`, `record`) at thousands of
//! cgroups (issue 20).
//!
//! Measured on this v1 host (benches/scale.rs, 10,000 memcgs): memory.stat costs 7-13 µs a
//! read, most of it the kernel formatting 80 counters, whatever the syscall; the one-number
//! files cost 3-5 µs with openat + read + close but 0.3-2 µs with `pread` on a descriptor
//! kept open. So every interval each cgroup's usage (v1 memory.usage_in_bytes, v2
//! memory.current) is read through a kept-open descriptor (within a cap), and the full read
//! of its files happens only when that usage moved by more than a threshold, when the last
//! full read is `full_every` rounds old (staggered over the rounds, so the slow tier is no
//! burst), or when its effective limit may have changed. A cgroup that is not re-read keeps
//! the values of its last full read, unchanged and consistent with each other (never a fresh
//! usage beside an old memory.stat), with the time they were read: exact for what was read,
//! and carrying their age.
//!
//! An OOM kill, a limit hit or reclaim in a cgroup changes its usage, so its counters are
//! re-read in the same round; a counter that moves while usage stays put to the byte (a
//! page fault on memory already charged, a write to memory.limit_in_bytes above usage) is
//! at most `full_every` rounds old.

use crate::model::{Hierarchy, Version};
use crate::sys::{KeptFile, Root};
use std::collections::{HashMap, HashSet};

/// Settings of the tiers (the front ends' flags).
#[derive(Debug, Clone, Copy)]
pub struct TierOptions {
    /// Every file of a cgroup is read at least every this many rounds (1: every round, no
    /// tiers).
    pub full_every: u32,
    /// A usage change of more than this many bytes since the last full read re-reads the
    /// cgroup at once (0: any change).
    pub threshold: u64,
    /// At most this many descriptors kept open (one per cgroup); beyond it the usage file
    /// is opened for each read.
    pub fd_cap: usize,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            full_every: 6,
            threshold: 0,
            fd_cap: DEFAULT_FD_CAP,
        }
    }
}

/// One kept-open descriptor per cgroup, up to this many (10,000 cgroups; the process's own
/// RLIMIT_NOFILE lowers it, see [`Tiers::new`]).
pub const DEFAULT_FD_CAP: usize = 10_000;

/// What the last round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierCounts {
    /// Cgroups read in full.
    pub full: usize,
    /// Cgroups whose usage had not moved: only the usage file was read.
    pub unchanged: usize,
    /// Descriptors kept open.
    pub fds: usize,
}

struct Entry<T> {
    fd: Option<KeptFile>,
    /// Usage at the last full read.
    usage: Option<u64>,
    /// Reads of the usage alone left before the next full read.
    left: u32,
    /// What the front end computed from the last full read, and when (ms since the epoch).
    kept: Option<(T, i64)>,
}

/// The tiers' state: per cgroup path, the kept descriptor and the last full read's value.
pub struct Tiers<T> {
    opts: TierOptions,
    entries: HashMap<String, Entry<T>>,
    fds: usize,
    /// The last round's counts.
    pub counts: TierCounts,
}

/// The usage file of a cgroup directory.
pub fn usage_file(v: Version) -> &'static str {
    match v {
        Version::V1 => "memory.usage_in_bytes",
        Version::V2 => "memory.current",
    }
}

impl<T: Clone> Tiers<T> {
    /// Empty tiers. The descriptor cap is at most half the process's open-file limit (the
    /// rest is for the server's connections and the reads themselves).
    pub fn new(mut opts: TierOptions) -> Self {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid out pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            opts.fd_cap = opts.fd_cap.min((lim.rlim_cur / 2) as usize);
        }
        opts.full_every = opts.full_every.max(1);
        Tiers {
            opts,
            entries: HashMap::new(),
            fds: 0,
            counts: TierCounts::default(),
        }
    }

    /// The settings in force (the cap lowered to the open-file limit).
    pub fn options(&self) -> TierOptions {
        self.opts
    }

    /// Starts a round (one collection).
    pub fn begin(&mut self) {
        self.counts = TierCounts {
            fds: self.fds,
            ..Default::default()
        };
    }

    /// The kept value of `path` and when it was read, when the cgroup need not be read in
    /// full this round: its usage (read now, through the kept descriptor) is within the
    /// threshold of the last full read's, and fewer than `full_every - 1` rounds have
    /// reused it since. `None`: read it
    /// in full, then [`Tiers::store`].
    pub fn unchanged(&mut self, root: &Root, h: &Hierarchy, path: &str) -> Option<(T, i64)> {
        let e = self.entries.get_mut(path)?;
        if e.kept.is_none() || e.left == 0 {
            return None;
        }
        let sys = super::read::fs_path(h, path).join(usage_file(h.version));
        let bytes = match &e.fd {
            Some(f) => f.read(root).ok()?,
            None => root.read_bytes(&sys).ok()?,
        };
        let now = std::str::from_utf8(&bytes)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        let before = e.usage?;
        if now.abs_diff(before) > self.opts.threshold {
            return None;
        }
        e.left -= 1;
        self.counts.unchanged += 1;
        e.kept.clone()
    }

    /// Keeps what was computed from a full read of `path` (its usage `usage`) at `read_ms`.
    /// The first time, opens the usage file to keep (within the cap) and staggers the next
    /// full read over the coming rounds.
    pub fn store(
        &mut self,
        root: &Root,
        h: &Hierarchy,
        path: &str,
        usage: Option<u64>,
        value: T,
        read_ms: i64,
    ) {
        self.counts.full += 1;
        let every = self.opts.full_every;
        let n = self.entries.len() as u32;
        let e = self
            .entries
            .entry(path.to_string())
            .or_insert_with(|| Entry {
                fd: None,
                usage: None,
                left: 0,
                kept: None,
            });
        if e.kept.is_none() {
            // Spread the cgroups' slow tier evenly over the rounds.
            e.left = n % every;
            if e.fd.is_none() && self.fds < self.opts.fd_cap {
                let sys = super::read::fs_path(h, path).join(usage_file(h.version));
                e.fd = root.keep_open(&sys);
                self.fds += usize::from(e.fd.is_some());
            }
        } else {
            e.left = every - 1;
        }
        e.usage = usage;
        e.kept = Some((value, read_ms));
        self.counts.fds = self.fds;
    }

    /// Forgets (and closes the descriptors of) the cgroups not in `paths` (removed ones): call
    /// after the cgroup list changed.
    pub fn retain(&mut self, paths: &[String]) {
        let keep: HashSet<&str> = paths.iter().map(String::as_str).collect();
        self.entries.retain(|p, _| keep.contains(p.as_str()));
        self.fds = self.entries.values().filter(|e| e.fd.is_some()).count();
        self.counts.fds = self.fds;
    }
}
