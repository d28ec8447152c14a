//! Reconciling the member processes' RSS/PSS with the cgroup's counters, and saying why they
//! differ. A process's RSS counts every page it maps, once per process; the cgroup counts
//! every page charged to it, once, mapped or not. So: shared pages are counted N times in the
//! RSS sum; page cache nobody maps is in no RSS; mapped file pages are in RssFile but in the
//! cgroup's *cache*; shm is in RssShmem but in the cgroup's cache too; kernel memory is in no
//! process at all; and a page is charged to the cgroup that touched it first, so a process can
//! map pages charged elsewhere.

use super::breakdown::Breakdown;
use crate::model::Process;
use serde::Serialize;

/// Sums over the member processes (`None` when any process lacks the field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessSums {
    /// Number of processes read.
    pub count: usize,
    /// Σ VmRSS.
    pub rss_bytes: Option<u64>,
    /// Σ RssAnon.
    pub rss_anon_bytes: Option<u64>,
    /// Σ RssFile.
    pub rss_file_bytes: Option<u64>,
    /// Σ RssShmem.
    pub rss_shmem_bytes: Option<u64>,
    /// Σ Pss.
    pub pss_bytes: Option<u64>,
    /// Σ USS.
    pub uss_bytes: Option<u64>,
    /// Σ VmSwap.
    pub swap_bytes: Option<u64>,
}

/// One line of the reconciliation: a process-side figure against a cgroup-side one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconcile {
    /// What is compared.
    pub what: String,
    /// Process-side sum.
    pub processes_bytes: Option<u64>,
    /// Cgroup-side counter.
    pub cgroup_bytes: Option<u64>,
    /// Why they differ.
    pub why: String,
}

impl ProcessSums {
    /// Sums the processes.
    pub fn of(procs: &[Process]) -> Self {
        fn s(procs: &[Process], f: impl Fn(&Process) -> Option<u64>) -> Option<u64> {
            if procs.is_empty() {
                return None;
            }
            super::sum_opt(procs.iter().map(f))
        }
        ProcessSums {
            count: procs.len(),
            rss_bytes: s(procs, |p| p.rss_bytes),
            rss_anon_bytes: s(procs, |p| p.rss_anon_bytes),
            rss_file_bytes: s(procs, |p| p.rss_file_bytes),
            rss_shmem_bytes: s(procs, |p| p.rss_shmem_bytes),
            pss_bytes: s(procs, |p| p.pss_bytes),
            uss_bytes: s(procs, |p| p.uss_bytes),
            swap_bytes: s(procs, |p| p.swap_bytes),
        }
    }
}

/// The reconciliation lines.
pub fn reconcile(sums: &ProcessSums, b: &Breakdown) -> Vec<Reconcile> {
    let mut out = Vec::new();
    let diff_word = |p: Option<u64>, c: Option<u64>| match (p, c) {
        (Some(p), Some(c)) if p > c => "processes show more",
        (Some(p), Some(c)) if p < c => "the cgroup shows more",
        (Some(_), Some(_)) => "equal",
        _ => "cannot compare",
    };
    out.push(Reconcile {
        what: "Σ RssAnon vs cgroup anon".into(),
        processes_bytes: sums.rss_anon_bytes,
        cgroup_bytes: b.anon.bytes,
        why: format!(
            "{}: anonymous pages shared after fork() are counted once per process in RSS but charged once; anon of processes that left, or charged before a process moved in, stays with the cgroup that touched it first",
            diff_word(sums.rss_anon_bytes, b.anon.bytes)
        ),
    });
    out.push(Reconcile {
        what: "Σ RssFile vs cgroup file_mapped".into(),
        processes_bytes: sums.rss_file_bytes,
        cgroup_bytes: b.file_mapped.bytes,
        why: format!(
            "{}: mapped file pages (binaries, libraries, mmap'ed files) are in each mapper's RSS but in the cgroup's *cache*, once, and only if this cgroup touched them first (shared libraries are often charged elsewhere)",
            diff_word(sums.rss_file_bytes, b.file_mapped.bytes)
        ),
    });
    out.push(Reconcile {
        what: "Σ RssShmem vs cgroup shmem".into(),
        processes_bytes: sums.rss_shmem_bytes,
        cgroup_bytes: b.shmem.bytes,
        why: format!(
            "{}: shm/tmpfs pages are in RssShmem only while mapped, in the cgroup's cache (shmem) whether mapped or not (files in /dev/shm or an emptyDir medium: Memory)",
            diff_word(sums.rss_shmem_bytes, b.shmem.bytes)
        ),
    });
    let unmapped = match (b.file.bytes, b.file_mapped.bytes, b.shmem.bytes) {
        (Some(f), Some(m), Some(s)) => Some(f.saturating_sub(m).saturating_sub(s)),
        _ => None,
    };
    out.push(Reconcile {
        what: "page cache mapped by nobody (file − file_mapped − shmem)".into(),
        processes_bytes: Some(0),
        cgroup_bytes: unmapped,
        why: "read()/write() page cache is charged to the cgroup but in no process's RSS".into(),
    });
    out.push(Reconcile {
        what: "kernel memory".into(),
        processes_bytes: Some(0),
        cgroup_bytes: b.kernel.bytes,
        why: "slab, page tables, kernel stacks and sockets are charged to the cgroup but in no RSS"
            .into(),
    });
    out.push(Reconcile {
        what: "Σ RSS vs Σ PSS".into(),
        processes_bytes: sums.rss_bytes,
        cgroup_bytes: sums.pss_bytes,
        why: "PSS divides each shared page among its mappers, so Σ PSS counts shared pages once; RSS counts them once per process (right column is Σ PSS here)".into(),
    });
    out
}
