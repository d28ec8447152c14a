//! Kernel source: the node-wide memory files the waterfall needs besides /proc/meminfo:
//! zram's pool size (`/sys/block/zram*/mm_stat`) and the pages parked on the per-CPU free
//! lists (`/proc/zoneinfo` `pagesets` … `count:`), which /proc/meminfo counts neither as free
//! nor as used.

use crate::sys::{ReadError, Root};
use std::path::Path;

/// One zram device's pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Zram {
    /// Device name (`zram0`).
    pub device: String,
    /// `mm_stat` field 3, `mem_used_total`: RAM the compressed pool occupies
    /// (Documentation/admin-guide/blockdev/zram.rst, "mm_stat").
    pub mem_used_bytes: u64,
}

/// The zram devices (none when the module is not loaded), and problems with their files.
pub fn zram(root: &Root) -> (Vec<Zram>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let Ok(devs) = root.entries(Path::new("/sys/block")) else {
        return (out, problems);
    };
    for d in devs.into_iter().filter(|d| d.starts_with("zram")) {
        let p = format!("/sys/block/{d}/mm_stat");
        match root.read(Path::new(&p)) {
            Ok(t) => match t.split_whitespace().nth(2).map(str::parse::<u64>) {
                Some(Ok(v)) => out.push(Zram {
                    device: d,
                    mem_used_bytes: v,
                }),
                _ => problems.push(
                    ReadError::parse(Path::new(&p), "no mem_used_total (field 3)").to_string(),
                ),
            },
            Err(ReadError::Missing { .. }) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    (out, problems)
}

/// Pages on the per-CPU free lists: the sum of every `count:` line of /proc/zoneinfo (one per
/// CPU and zone, under `pagesets`). The page allocator takes them out of NR_FREE_PAGES
/// (MemFree) in batches, so on a many-CPU node tens of MiB are neither free nor used in
/// /proc/meminfo. `None` when zoneinfo is unreadable.
pub fn pcp_pages(root: &Root) -> Result<u64, ReadError> {
    let p = Path::new("/proc/zoneinfo");
    let t = root.read(p)?;
    Ok(parse_pcp(&t))
}

/// Sums the `count:` lines of a zoneinfo text.
pub fn parse_pcp(t: &str) -> u64 {
    t.lines()
        .filter_map(|l| l.trim().strip_prefix("count:"))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// The system's page size (zoneinfo counts pages).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcp_counts_are_summed() {
        let z = "Node 0, zone   Normal\n  pagesets\n    cpu: 0\n              count: 120\n              high:  378\n    cpu: 1\n              count: 7\n";
        assert_eq!(parse_pcp(z), 127);
    }
}
