//! Memory workloads written in Rust, run as `memlens __workload STEP...` inside a memcg by the
//! real-kernel tests and `memlens lab`: each step does one thing the seed articles describe
//! (touch anon memory, reserve without touching, fill page cache, tmpfs, shared mmap, SysV
//! shm), then the process prints `READY` and holds everything until stdin closes or it is
//! killed, so the counters can be read while the memory is held.

use std::fs::OpenOptions;
use std::io::{BufRead, Read, Write};

/// Parses sizes like `64M`, `1G`, `4096`, `512K` (the command line's grammar,
/// [`crate::units::parse_size`]).
pub fn parse_size(s: &str) -> Result<u64, String> {
    crate::units::parse_size(s)
}

/// The steps a workload can take.
pub const STEPS: &str = "anon=SIZE (malloc and touch) | reserve=SIZE (mmap, never touched) | write=PATH:SIZE (page cache via write) | read=PATH:N (read a file N times) | open=PATH (hold the file open read-only) | unlink=PATH (remove the name, keep it open) | files=DIR:N:SIZE (N files of SIZE in DIR) | lookup=DIR:N (look up N names that do not exist: negative dentries) | drop=PATH (fsync and drop its page cache) | mmap=PATH:SIZE (MAP_SHARED file, memset) | shm=SIZE (SysV shmget+shmat, memset) | hugetlb=SIZE (MAP_HUGETLB anonymous, touched; needs reserved huge pages) | grow=SIZE (touch SIZE of anon, 1 MiB at a time, never stop: for OOM tests) | pshm=NAME:SIZE (POSIX shm_open in /dev/shm, mmap, memset; unlinked at exit) | rate=SIZE:RATE (touch SIZE of anon at RATE bytes/s) | saw=SIZE:MS:N (N times, 0 forever: grow to SIZE over MS, free it) | writerate=PATH:SIZE:RATE (write a file at RATE bytes/s) | sleep=MS (hold what is touched so far) | cpu=MS (busy loop over the anon touched so far) | touch=MS (write every page of the last anon= in turn, for MS ms: a hot set) | work=N (a fixed N million rounds of that loop, for benchmarks) | exit (end now instead of waiting for stdin to close)";

/// Calls `step` with 1 MiB pieces of `total`, paced so `rate` bytes a second are done
/// (by the wall clock, so a slow step does not lower the average).
fn paced(
    total: usize,
    rate: u64,
    mut step: impl FnMut(usize) -> Result<(), String>,
) -> Result<(), String> {
    let chunk = 1usize << 20;
    let start = std::time::Instant::now();
    let mut done = 0usize;
    while done < total {
        let c = chunk.min(total - done);
        step(c)?;
        done += c;
        let due = std::time::Duration::from_secs_f64(done as f64 / rate.max(1) as f64);
        if let Some(w) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(w);
        }
    }
    Ok(())
}

fn page_touch(ptr: *mut u8, len: usize) {
    let mut off = 0;
    while off < len {
        // SAFETY: ptr..ptr+len is a live writable mapping owned by the caller.
        unsafe { ptr.add(off).write_volatile(0x5a) };
        off += 4096;
    }
}

fn mmap_anon(len: usize) -> Result<*mut u8, String> {
    // SAFETY: anonymous private mapping with no address hint; checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap {len}: {}", std::io::Error::last_os_error()));
    }
    Ok(p.cast())
}

fn split2(arg: &str) -> Result<(&str, &str), String> {
    arg.rsplit_once(':')
        .ok_or_else(|| format!("expected PATH:VALUE, found {arg:?}"))
}

/// Runs the steps, prints `READY`, and holds until stdin closes.
pub fn run(steps: &[String]) -> Result<(), String> {
    let mut keep_files = Vec::new();
    let mut unlink_shm: Vec<std::ffi::CString> = Vec::new();
    // The last anon region, for `cpu=` to walk (so the CPU loop also touches memory).
    let mut last_anon: Option<(*mut u8, usize)> = None;
    let mut wait_stdin = true;
    for step in steps {
        if step == "exit" {
            wait_stdin = false;
            continue;
        }
        let (kind, arg) = step
            .split_once('=')
            .ok_or_else(|| format!("bad step {step:?}; steps: {STEPS}"))?;
        match kind {
            "anon" => {
                let n = parse_size(arg)? as usize;
                let p = mmap_anon(n)?;
                page_touch(p, n);
                last_anon = Some((p, n));
            }
            "sleep" => {
                let ms: u64 = arg.parse().map_err(|_| format!("bad sleep {arg:?} (ms)"))?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            "touch" => {
                // A hot set: every page of the last `anon=` written in turn, for MS ms.
                let ms: u64 = arg.parse().map_err(|_| format!("bad touch {arg:?} (ms)"))?;
                let (p, n) = last_anon.ok_or("touch= needs an anon= step before it")?;
                let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
                while std::time::Instant::now() < end {
                    page_touch(p, n);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
            "cpu" => {
                let ms: u64 = arg.parse().map_err(|_| format!("bad cpu {arg:?} (ms)"))?;
                let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
                let mut x: u64 = 1;
                while std::time::Instant::now() < end {
                    for _ in 0..10_000 {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                    }
                    if let Some((p, n)) = last_anon {
                        // SAFETY: p..p+n is the live anonymous mapping created by `anon=`.
                        unsafe { p.add((x as usize) % n).write_volatile(x as u8) };
                    }
                }
                std::hint::black_box(x);
            }
            "work" => {
                let n: u64 = arg
                    .parse()
                    .map_err(|_| format!("bad work {arg:?} (millions)"))?;
                let mut x: u64 = 1;
                for i in 0..n * 1_000_000 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if i % 64 == 0
                        && let Some((p, len)) = last_anon
                    {
                        // SAFETY: p..p+len is the live anonymous mapping created by `anon=`.
                        unsafe { p.add((x as usize >> 7) % len).write_volatile(x as u8) };
                    }
                }
                std::hint::black_box(x);
            }
            "pshm" => {
                let (name, size) = split2(arg)?;
                let n = parse_size(size)? as usize;
                let cname = std::ffi::CString::new(format!("/{}", name.trim_start_matches('/')))
                    .map_err(|_| format!("bad shm name {name:?}"))?;
                // SAFETY: plain POSIX calls on a NUL-terminated name; every result is checked.
                unsafe {
                    let fd = libc::shm_open(cname.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600);
                    if fd < 0 {
                        return Err(format!(
                            "shm_open {name}: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
                    if libc::ftruncate(fd, n as libc::off_t) < 0 {
                        return Err(format!(
                            "ftruncate {name}: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        n,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd,
                        0,
                    );
                    libc::close(fd);
                    if p == libc::MAP_FAILED {
                        return Err(format!("mmap {name}: {}", std::io::Error::last_os_error()));
                    }
                    page_touch(p.cast(), n);
                }
                unlink_shm.push(cname);
            }
            "reserve" => {
                mmap_anon(parse_size(arg)? as usize)?;
            }
            // Paced growth for the flight recorder's tests: a known slope.
            "rate" => {
                let (size, rate) = split2(arg)?;
                let (total, rate) = (parse_size(size)? as usize, parse_size(rate)?);
                paced(total, rate, |chunk| {
                    let p = mmap_anon(chunk)?;
                    page_touch(p, chunk);
                    Ok(())
                })?;
            }
            "saw" => {
                // SIZE:MS:N: N times (0: forever) grow to SIZE over MS, then free it all.
                let mut it = arg.splitn(3, ':');
                let bad = || format!("expected SIZE:MS:N, found {arg:?}");
                let size = parse_size(it.next().ok_or_else(bad)?)? as usize;
                let ms: u64 = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
                let n: u64 = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
                let rate = (size as u64).saturating_mul(1000) / ms.max(1);
                let mut i = 0;
                while n == 0 || i < n {
                    let mut maps = Vec::new();
                    paced(size, rate, |chunk| {
                        let p = mmap_anon(chunk)?;
                        page_touch(p, chunk);
                        maps.push((p, chunk));
                        Ok(())
                    })?;
                    for (p, c) in maps {
                        // SAFETY: p..p+c is a mapping created above and no longer used.
                        unsafe { libc::munmap(p.cast(), c) };
                    }
                    i += 1;
                }
            }
            "writerate" => {
                // PATH:SIZE:RATE: write a file at RATE bytes/s (page cache; tmpfs: shmem).
                let mut it = arg.splitn(3, ':');
                let bad = || format!("expected PATH:SIZE:RATE, found {arg:?}");
                let path = it.next().ok_or_else(bad)?;
                let total = parse_size(it.next().ok_or_else(bad)?)? as usize;
                let rate = parse_size(it.next().ok_or_else(bad)?)?;
                let mut f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{path}: {e}"))?;
                let buf = vec![0x41u8; 1 << 20];
                paced(total, rate, |chunk| {
                    f.write_all(&buf[..chunk])
                        .map_err(|e| format!("{path}: {e}"))
                })?;
                keep_files.push(f);
            }
            "grow" => {
                let total = parse_size(arg)? as usize;
                let chunk = 1 << 20;
                let mut done = 0;
                while done < total {
                    let p = mmap_anon(chunk)?;
                    page_touch(p, chunk);
                    done += chunk;
                }
            }
            "write" => {
                let (path, size) = split2(arg)?;
                let n = parse_size(size)?;
                let mut f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{path}: {e}"))?;
                let buf = vec![0x41u8; 1 << 20];
                let mut left = n;
                while left > 0 {
                    let k = left.min(buf.len() as u64) as usize;
                    f.write_all(&buf[..k]).map_err(|e| format!("{path}: {e}"))?;
                    left -= k as u64;
                }
                f.flush().map_err(|e| e.to_string())?;
            }
            "read" => {
                let (path, times) = split2(arg)?;
                let times: u32 = times.parse().map_err(|_| format!("bad count {times:?}"))?;
                let mut buf = vec![0u8; 1 << 20];
                for _ in 0..times {
                    let mut f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
                    while f.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
                }
            }
            "open" => {
                // Hold the file open (read-only) until the end: a candidate `memlens cache`
                // finds through /proc/PID/fd.
                let f = std::fs::File::open(arg).map_err(|e| format!("{arg}: {e}"))?;
                keep_files.push(f);
            }
            "files" => {
                // N files of SIZE each in DIR (page cache for the cache benchmark).
                let mut it = arg.rsplitn(3, ':');
                let (size, n, dir) = match (it.next(), it.next(), it.next()) {
                    (Some(s), Some(n), Some(d)) => (s, n, d),
                    _ => return Err(format!("expected DIR:N:SIZE, found {arg:?}")),
                };
                let n: u64 = n.parse().map_err(|_| format!("bad count {n:?}"))?;
                let size = parse_size(size)? as usize;
                let buf = vec![0x42u8; size];
                for i in 0..n {
                    let p = format!("{dir}/f{i:05}");
                    std::fs::write(&p, &buf).map_err(|e| format!("{p}: {e}"))?;
                }
            }
            "lookup" => {
                // Look up N names that do not exist: N negative dentries (reclaimable slab,
                // charged to this memcg).
                let (dir, n) = split2(arg)?;
                let n: u64 = n.parse().map_err(|_| format!("bad count {n:?}"))?;
                let pid = std::process::id();
                for i in 0..n {
                    let _ = std::fs::symlink_metadata(format!("{dir}/memlens-neg-{pid}-{i}"));
                }
            }
            "unlink" => {
                // Remove the name; what is open stays (a deleted-but-open file).
                std::fs::remove_file(arg).map_err(|e| format!("{arg}: {e}"))?;
            }
            "drop" => {
                // Write back and drop a file's page cache, so the next read charges it anew
                // (first touch) and lands on the inactive list.
                let f = std::fs::File::open(arg).map_err(|e| format!("{arg}: {e}"))?;
                f.sync_all().map_err(|e| e.to_string())?;
                use std::os::fd::AsRawFd;
                // SAFETY: advisory call on an open fd.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
            "mmap" => {
                let (path, size) = split2(arg)?;
                let n = parse_size(size)? as usize;
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{path}: {e}"))?;
                f.set_len(n as u64).map_err(|e| e.to_string())?;
                use std::os::fd::AsRawFd;
                // SAFETY: shared mapping of a file we hold open, length equal to its size.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        n,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        f.as_raw_fd(),
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    return Err(format!("mmap {path}: {}", std::io::Error::last_os_error()));
                }
                page_touch(p.cast(), n);
                keep_files.push(f);
            }
            "shm" => {
                let n = parse_size(arg)? as usize;
                // SAFETY: plain SysV calls; the segment is marked for removal right after
                // attaching so it disappears when this process exits, even if killed.
                unsafe {
                    let id = libc::shmget(libc::IPC_PRIVATE, n, libc::IPC_CREAT | 0o600);
                    if id < 0 {
                        return Err(format!("shmget: {}", std::io::Error::last_os_error()));
                    }
                    let p = libc::shmat(id, std::ptr::null(), 0);
                    if p as isize == -1 {
                        return Err(format!("shmat: {}", std::io::Error::last_os_error()));
                    }
                    libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                    page_touch(p.cast(), n);
                }
            }
            "hugetlb" => {
                let n = parse_size(arg)? as usize;
                // SAFETY: anonymous private MAP_HUGETLB mapping (default huge page size) with
                // no address hint; checked for MAP_FAILED; touched within its length.
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        n,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                        -1,
                        0,
                    );
                    if p == libc::MAP_FAILED {
                        return Err(format!(
                            "mmap MAP_HUGETLB {n}: {} (reserve huge pages: vm.nr_hugepages)",
                            std::io::Error::last_os_error()
                        ));
                    }
                    page_touch(p.cast(), n);
                }
            }
            _ => return Err(format!("unknown step {kind:?}; steps: {STEPS}")),
        }
    }
    println!("READY {}", std::process::id());
    let _ = std::io::stdout().flush();
    if wait_stdin {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if line.is_err() {
                break;
            }
        }
    }
    drop(keep_files);
    for n in unlink_shm {
        // SAFETY: NUL-terminated name; failure (already removed) is harmless.
        unsafe { libc::shm_unlink(n.as_ptr()) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("x").is_err());
    }
}
