//! Page-cache residency of one file, and the memcg each resident page is charged to, without
//! bringing any page into the cache.
//!
//! Counts come from cachestat(2) (6.5+; Documentation/ABI man page cachestat(2): cached,
//! dirty, writeback, evicted and recently evicted pages of a range), else from mincore(2) on
//! a read-only shared mapping (resident pages only). Neither reads the file.
//!
//! Ownership needs each resident page's frame: the file is mapped read-only and shared with
//! MADV_RANDOM (no read-ahead, and no "accessed" mark on unmap: `vma_has_recency`), mincore
//! says which pages are resident, and only runs of resident pages are mapped in with
//! MADV_POPULATE_READ (5.14+; before it, a one-byte process_vm_readv of each page from
//! memlens itself, see [`populate`]), a minor fault each that maps the cached page (and its
//! resident neighbours, fault-around) and changes neither residency nor the page's memcg.
//! A page evicted between mincore and the populate would be read back (one page, MADV_RANDOM)
//! and charged to memlens, so each run of at most 64 pages is asked about again just before
//! it is populated (reclaim such as kdamond's keeps evicting during a long scan), and the
//! thread's major-fault count is read around every populate and reported: "nothing was
//! faulted in" is measured, not assumed.
//!
//! Hand-written over libc: no crate wraps cachestat, MADV_POPULATE_READ or this fallback.

pub mod candidates;

use crate::proc::kpage::{Kpage, page_size};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// cachestat(2) syscall number (the same on every architecture but alpha; libc lacks it on
/// x86_64 gnu).
const SYS_CACHESTAT: libc::c_long = 451;
/// Resident runs are populated at most this many pages at a time, each after a fresh
/// mincore (see [`scan`]).
const RECHECK_PAGES: usize = 64;

/// madvise advice MADV_POPULATE_READ (include/uapi/asm-generic/mman-common.h).
const MADV_POPULATE_READ: libc::c_int = 22;
/// Pages mapped at once (256 MiB of 4 KiB pages): bounds memlens's page tables and buffers.
const WINDOW_PAGES: usize = 65536;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Residency of a file, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Residency {
    /// Pages in the page cache.
    pub cached: u64,
    /// Dirty pages (cachestat only).
    pub dirty: Option<u64>,
    /// Pages under writeback (cachestat only).
    pub writeback: Option<u64>,
    /// Pages evicted from the cache whose shadow entries remain (cachestat only).
    pub evicted: Option<u64>,
    /// Evicted pages that were part of the working set when evicted: refaults waiting to
    /// happen, the sign of thrashing (cachestat only).
    pub recently_evicted: Option<u64>,
}

/// cachestat(2) of the whole file; `Ok(None)` when the kernel has no cachestat (ENOSYS,
/// before 6.5) or refuses it for this file system (EOPNOTSUPP: hugetlbfs).
pub fn cachestat(f: &File) -> io::Result<Option<Residency>> {
    let range = CachestatRange { off: 0, len: 0 };
    let mut cs = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `cs`, both valid for the call; flags 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            f.as_raw_fd(),
            &range as *const CachestatRange,
            &mut cs as *mut Cachestat,
            0u32,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(Residency {
        cached: cs.nr_cache,
        dirty: Some(cs.nr_dirty),
        writeback: Some(cs.nr_writeback),
        evicted: Some(cs.nr_evicted),
        recently_evicted: Some(cs.nr_recently_evicted),
    }))
}

/// What a page-by-page scan of a file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageScan {
    /// Resident pages (mincore).
    pub resident: u64,
    /// Resident pages by the inode of the memcg they are charged to (0: none), when
    /// ownership was asked for.
    pub by_memcg: BTreeMap<u64, u64>,
    /// Resident pages whose frame could not be found (evicted during the scan).
    pub unresolved: u64,
    /// Major faults during the scan (pages read in: should be 0).
    pub major_faults: u64,
    /// Minor faults during the scan (resident pages mapped).
    pub minor_faults: u64,
}

/// Faults of the calling thread (minor, major).
fn thread_faults() -> (u64, u64) {
    // SAFETY: getrusage writes the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if r == 0 {
        (ru.ru_minflt as u64, ru.ru_majflt as u64)
    } else {
        (0, 0)
    }
}

/// A read-only shared mapping, unmapped on drop.
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(f: &File, off: u64, len: usize) -> io::Result<Self> {
        // SAFETY: a new mapping at no fixed address of a file we hold open; checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                off as libc::off_t,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let m = Mapping { addr, len };
        // SAFETY: advice on our own mapping; MADV_RANDOM only changes read-ahead/recency.
        unsafe { libc::madvise(m.addr, m.len, libc::MADV_RANDOM) };
        Ok(m)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we created; nothing refers to it any more.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// Whether MADV_POPULATE_READ was refused as unknown advice (EINVAL: a kernel before 5.14).
static NO_POPULATE: AtomicBool = AtomicBool::new(false);
/// Pages touched per process_vm_readv call (the kernel's UIO_MAXIOV).
const IOV_MAX: usize = 1024;

/// Maps in `n` pages of our own read-only mapping at `addr` (page aligned) without SIGBUS:
/// MADV_POPULATE_READ, else (before 5.14) process_vm_readv of one byte per page from memlens
/// itself, which faults each page in through the same get_user_pages path and returns a
/// short count (EFAULT beyond EOF) instead of raising SIGBUS. Errors leave pages unmapped:
/// the caller counts them unresolved.
///
/// # Safety
/// `addr .. addr + n * ps` must lie within a live mapping of ours.
unsafe fn populate(addr: *mut u8, n: usize, ps: usize) {
    if !NO_POPULATE.load(Ordering::Relaxed) {
        // SAFETY: the caller's range; populate only maps pages, and the kernel reports
        // failure (EFAULT beyond EOF) instead of raising SIGBUS.
        let r = unsafe { libc::madvise(addr.cast(), n * ps, MADV_POPULATE_READ) };
        if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return;
        }
        NO_POPULATE.store(true, Ordering::Relaxed);
    }
    let mut buf = [0u8; IOV_MAX];
    let mut k = 0;
    while k < n {
        let c = (n - k).min(IOV_MAX);
        let remote: Vec<libc::iovec> = (k..k + c)
            .map(|p| libc::iovec {
                // SAFETY: within the caller's range.
                iov_base: unsafe { addr.add(p * ps) }.cast(),
                iov_len: 1,
            })
            .collect();
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: c,
        };
        // SAFETY: `local` is our buffer of `c` bytes; `remote` names `c` bytes of our own
        // mapping, read by the kernel (a bad page ends the call with a short count).
        let r = unsafe {
            libc::process_vm_readv(libc::getpid(), &local, 1, remote.as_ptr(), c as _, 0)
        };
        if r < 0 {
            return;
        }
        // One byte a page: `r` pages read; a short read stopped at one that could not be
        // read (skip past it).
        let r = r as usize;
        k += if r < c { r + 1 } else { c };
    }
}

/// Scans a file's resident pages: counts them (mincore) and, with `kpage`, finds the memcg
/// of each (see the module docs). Never touches a page's contents.
pub fn scan(f: &File, size: u64, kpage: Option<&Kpage>) -> io::Result<PageScan> {
    let ps = page_size();
    let pages = size.div_ceil(ps) as usize;
    let mut out = PageScan::default();
    let mut first = 0usize;
    while first < pages {
        let n = (pages - first).min(WINDOW_PAGES);
        let m = Mapping::new(f, first as u64 * ps, n * ps as usize)?;
        let mut vec = vec![0u8; n];
        // SAFETY: `vec` has one byte per page of the mapping.
        if unsafe { libc::mincore(m.addr, m.len, vec.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let resident: Vec<bool> = vec.iter().map(|b| b & 1 == 1).collect();
        out.resident += resident.iter().filter(|r| **r).count() as u64;
        if let Some(kp) = kpage {
            // Map the runs of resident pages.
            let mut i = 0;
            while i < n {
                if !resident[i] {
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j < n && resident[j] && j - i < RECHECK_PAGES {
                    j += 1;
                }
                // Asked again just before the populate: reclaim (kdamond, kswapd) keeps
                // evicting while a large window is worked through, and a page evicted since
                // the window's mincore would be read back from disk. Only what is still
                // resident is populated; the window left is microseconds, not the scan's.
                let run = j - i;
                let mut again = vec![0u8; run];
                // SAFETY: a sub-range of our own mapping, one byte per page.
                let ok = unsafe {
                    libc::mincore(
                        m.addr.cast::<u8>().add(i * ps as usize).cast(),
                        run * ps as usize,
                        again.as_mut_ptr(),
                    )
                } == 0;
                let mut k = 0;
                while k < run {
                    if !ok || again[k] & 1 == 0 {
                        k += 1;
                        continue;
                    }
                    let mut e = k;
                    while e < run && again[e] & 1 == 1 {
                        e += 1;
                    }
                    // SAFETY: within our own mapping (i + k < n pages).
                    let addr = unsafe { m.addr.cast::<u8>().add((i + k) * ps as usize) };
                    // The code between the two fault counts (memlens's and libc's text) may
                    // itself have been evicted (kdamond does): run it once with nothing to
                    // populate first, so a major fault counted is the scanned file's.
                    // SAFETY: an empty range of our own mapping.
                    unsafe { populate(addr, 0, ps as usize) };
                    let _ = thread_faults();
                    let (mn0, mj0) = thread_faults();
                    // SAFETY: a sub-range of our own mapping.
                    unsafe { populate(addr, e - k, ps as usize) };
                    let (mn1, mj1) = thread_faults();
                    out.minor_faults += mn1.saturating_sub(mn0);
                    out.major_faults += mj1.saturating_sub(mj0);
                    k = e;
                }
                i = j;
            }
            let frames = kp.pfns(m.addr as usize, n)?;
            let mut pfns = Vec::new();
            for (k, fr) in frames.iter().enumerate() {
                match (resident[k], fr) {
                    (true, Some(p)) => pfns.push(*p),
                    (true, None) => out.unresolved += 1,
                    _ => {}
                }
            }
            for ino in kp.memcgs(&pfns)? {
                *out.by_memcg.entry(ino).or_insert(0) += 1;
            }
        }
        first += n;
    }
    Ok(out)
}

/// POSIX_FADV_DONTNEED on the whole file: the kernel drops its clean, unmapped pages (dirty
/// pages get their write-back started and stay; mapped ones stay).
pub fn drop_clean(f: &File) -> io::Result<()> {
    // SAFETY: fadvise on an fd we hold; no memory is passed.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Whether the open file is on tmpfs (its pages are shmem: the file's only copy).
pub fn is_tmpfs(f: &File) -> bool {
    // SAFETY: fstatfs writes the zeroed struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    let r = unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) };
    r == 0 && st.f_type == libc::TMPFS_MAGIC
}

/// Opens a file for scanning: read-only, without updating its access time (root may use
/// O_NOATIME on any file; others fall back to a plain open), non-blocking (a FIFO that slipped
/// through must not hang the scan).
pub fn open(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let base = libc::O_CLOEXEC | libc::O_NONBLOCK;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(base | libc::O_NOATIME)
        .open(path)
        .or_else(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(base)
                    .open(path)
            } else {
                Err(e)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-5.14 fallback (process_vm_readv) maps the same resident pages as
    /// MADV_POPULATE_READ: every resident page gets its frame and memcg, none is faulted in.
    /// Root only (pagemap PFNs, kpagecgroup); on a disk, not tmpfs, in the current directory.
    #[test]
    fn fallback_without_populate_read_resolves_every_resident_page() {
        let Ok(kp) = Kpage::open(&crate::sys::Root::live()) else {
            eprintln!("skipped: no /proc/kpagecgroup access");
            return;
        };
        let dir = tempfile::tempdir_in(".").unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let f = File::open(&path).unwrap();
        if is_tmpfs(&f) {
            eprintln!("skipped: tmpfs");
            return;
        }
        let with = scan(&f, 1 << 20, Some(&kp)).unwrap();
        NO_POPULATE.store(true, Ordering::Relaxed);
        let without = scan(&f, 1 << 20, Some(&kp));
        NO_POPULATE.store(false, Ordering::Relaxed);
        let without = without.unwrap();
        // kdamond may evict pages between the scans: compare each against its own residency.
        for s in [&with, &without] {
            assert!(s.resident > 0, "{s:?}");
            assert_eq!(s.unresolved, 0, "{s:?}");
            assert_eq!(s.by_memcg.values().sum::<u64>(), s.resident, "{s:?}");
            assert!(!s.by_memcg.contains_key(&0), "{s:?}");
            assert_eq!(s.major_faults, 0, "{s:?}");
        }
    }
}
