//! Page frames: which memcg each resident page is charged to.
//!
//! `/proc/self/pagemap` turns a virtual page of memlens's own mapping into a page frame number
//! (PFN), and `/proc/kpagecgroup` turns a PFN into the inode number of the memory cgroup the
//! page is charged to (Documentation/admin-guide/mm/pagemap.rst). Both are root-only: pagemap
//! shows PFNs only with CAP_SYS_ADMIN (zero otherwise), kpagecgroup is mode 0400.
//!
//! A charge is never moved by this: a page-cache page is charged when it enters the cache
//! (`filemap_add_folio`), not when it is mapped, so mapping an already resident page into
//! memlens leaves its memcg alone. For a page charged to a *dying* memcg, kpagecgroup names
//! the nearest online ancestor (`page_cgroup_ino` walks up past offline memcgs).
//!
//! Hand-written: procfs-core parses pagemap entries but reads them one `Read` at a time; here
//! a whole window is read with one `pread`, and kpagecgroup runs of nearby PFNs likewise.

use crate::sys::Root;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// pagemap entry bit 63: the page is present in RAM.
const PRESENT: u64 = 1 << 63;
/// pagemap entry bits 0-54: the PFN.
const PFN_MASK: u64 = (1 << 55) - 1;

/// Open handles on pagemap (memlens's own) and kpagecgroup.
#[derive(Debug)]
pub struct Kpage {
    pagemap: File,
    kpagecgroup: File,
}

impl Kpage {
    /// Opens both files; the error says which one and why (not root, no CONFIG_MEMCG).
    pub fn open(root: &Root) -> Result<Self, String> {
        let kp = Path::new("/proc/kpagecgroup");
        let kp_real = root
            .real_path(kp)
            .ok_or_else(|| "no live system (a capture has no page frames)".to_string())?;
        let kpagecgroup = File::open(&kp_real).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                "/proc/kpagecgroup: not provided by this kernel (CONFIG_MEMCG off)".to_string()
            }
            io::ErrorKind::PermissionDenied => {
                "/proc/kpagecgroup: permission denied (root is needed)".to_string()
            }
            _ => format!("/proc/kpagecgroup: {e}"),
        })?;
        // memlens's own page tables, not the host's view under --host-root (same process).
        let pagemap =
            File::open("/proc/self/pagemap").map_err(|e| format!("/proc/self/pagemap: {e}"))?;
        Ok(Kpage {
            pagemap,
            kpagecgroup,
        })
    }

    /// The PFNs of `n` pages of memlens's own mapping at `addr` (page aligned): `None` where
    /// the page is not mapped. An error when PFNs are hidden (present pages with PFN 0:
    /// pagemap without CAP_SYS_ADMIN).
    pub fn pfns(&self, addr: usize, n: usize) -> io::Result<Vec<Option<u64>>> {
        let mut buf = vec![0u8; n * 8];
        let off = (addr as u64 / page_size()) * 8;
        self.pagemap.read_exact_at(&mut buf, off)?;
        let mut out = Vec::with_capacity(n);
        for c in buf.chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            let e = u64::from_ne_bytes(a);
            if e & PRESENT == 0 {
                out.push(None);
            } else {
                let pfn = e & PFN_MASK;
                if pfn == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "/proc/self/pagemap hides page frame numbers (CAP_SYS_ADMIN is needed)",
                    ));
                }
                out.push(Some(pfn));
            }
        }
        Ok(out)
    }

    /// The memcg inode of each PFN (0: charged to no memcg). PFNs close to each other are
    /// read in one `pread` (a file's pages are mostly physically contiguous folios).
    pub fn memcgs(&self, pfns: &[u64]) -> io::Result<Vec<u64>> {
        let mut out = vec![0u64; pfns.len()];
        let mut i = 0;
        while i < pfns.len() {
            let start = pfns[i];
            let mut j = i + 1;
            let mut hi = start;
            // Extend the run while the next PFN is just above the current top.
            while j < pfns.len() && pfns[j] > hi && pfns[j] - hi <= 64 && pfns[j] - start < 65536 {
                hi = pfns[j];
                j += 1;
            }
            let len = (hi - start + 1) as usize;
            let mut buf = vec![0u8; len * 8];
            self.kpagecgroup.read_exact_at(&mut buf, start * 8)?;
            for k in i..j {
                let o = ((pfns[k] - start) * 8) as usize;
                let mut a = [0u8; 8];
                a.copy_from_slice(&buf[o..o + 8]);
                out[k] = u64::from_ne_bytes(a);
            }
            i = j;
        }
        Ok(out)
    }
}

/// The base page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}
