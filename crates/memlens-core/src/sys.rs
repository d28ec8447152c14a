//! Where kernel files come from: the live system, a capture directory, or a capture archive.
//!
//! Every read of /sys or /proc in memlens goes through a [`Root`], so that the same code runs on
//! the live kernel and on a capture taken on another machine (`--from`), and so that `capture`
//! can record exactly the files a report read. Errors keep the path and the reason, and
//! "the kernel does not have this file" ([`ReadError::Missing`]) is kept apart from every
//! other failure, because memlens shows the first as *unavailable* and the others as problems.

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// Why a file could not be read. Every variant names the absolute (system) path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist: the kernel does not provide it (too old, controller or
    /// config option absent), or the cgroup/process is gone.
    #[error("{path}: not provided by this kernel (or gone)")]
    Missing { path: String },
    /// The file exists but we may not read it. The message says what denied it, as far as
    /// memlens can tell (not root, a dropped capability, a user namespace, hidepid).
    #[error("{path}: permission denied ({})", permission_hint(.path))]
    Permission { path: String },
    /// The process exited between listing and reading (ESRCH), or another I/O failure.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    /// The file was read but its contents are not what the kernel prints.
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    /// Analysing a capture: the capture did not record this file (it was taken of another
    /// target). Not the kernel's doing, so never shown as "not provided by this kernel".
    #[error("{path}: not in this capture (captured: {target})")]
    NotCaptured { path: String, target: String },
}

impl ReadError {
    /// The system path this error is about.
    pub fn path(&self) -> &str {
        match self {
            ReadError::Missing { path }
            | ReadError::Permission { path }
            | ReadError::Io { path, .. }
            | ReadError::Parse { path, .. }
            | ReadError::NotCaptured { path, .. } => path,
        }
    }

    /// Builds a parse error for `path`.
    pub fn parse(path: &Path, reason: impl Into<String>) -> Self {
        ReadError::Parse {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }

    fn from_io(path: &Path, e: &io::Error) -> Self {
        let path = path.display().to_string();
        match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing { path },
            io::ErrorKind::PermissionDenied => ReadError::Permission { path },
            _ => match e.raw_os_error() {
                // ESRCH: the process exited while we read its /proc files; ENODEV: cgroup
                // removed between open and read.
                Some(libc::ESRCH) | Some(libc::ENODEV) => ReadError::Missing { path },
                _ => ReadError::Io {
                    path,
                    reason: e.to_string(),
                },
            },
        }
    }
}

/// Why this process may be denied a file, from its own credentials (read once): the advice
/// "run as root" is wrong for a root that lacks CAP_SYS_PTRACE or is root only in a user
/// namespace.
fn permission_hint(path: &str) -> &'static str {
    static WHO: std::sync::OnceLock<(bool, bool, bool, bool)> = std::sync::OnceLock::new();
    let (root, ptrace, init_userns, hidepid) = *WHO.get_or_init(|| {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        // CapEff bit 19 is CAP_SYS_PTRACE (include/uapi/linux/capability.h).
        let ptrace = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_none_or(|c| c & (1 << 19) != 0);
        // The initial user namespace maps all 2^32 IDs from 0 (user_namespaces(7)).
        let init_userns = std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
            .unwrap_or(true);
        let hidepid = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/proc") && l.contains("hidepid="));
        (root, ptrace, init_userns, hidepid)
    });
    let proc_pid = path
        .strip_prefix("/proc/")
        .and_then(|r| r.split('/').next())
        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !root {
        "run as root, or with CAP_SYS_PTRACE for other users' /proc/PID files"
    } else if !init_userns {
        "memlens is root only inside a user namespace: the host's files are not its to read; run it in the host's user namespace"
    } else if proc_pid && !ptrace {
        "running as root without CAP_SYS_PTRACE (dropped by the container runtime or the service unit): add that capability"
    } else if proc_pid && hidepid {
        "/proc is mounted with hidepid=: other processes' files are hidden; mount it without hidepid (or with gid= a group memlens runs in)"
    } else if proc_pid {
        "root with CAP_SYS_PTRACE, yet the kernel's ptrace access check refused: a Yama, AppArmor or SELinux policy, or a non-dumpable process in another user namespace"
    } else {
        "root, yet denied: a security policy (AppArmor, SELinux) or a read-only bind mount without read permission"
    }
}

/// Reads an open file to its end. Not `std::fs::read`: that asks `statx` for a size hint,
/// which kernfs and procfs answer with 0 or 4096; one syscall in five for nothing when the
/// exporter reads six files in each of thousands of cgroups (benches/serve.rs).
///
/// A cgroup `memory.*` file is one kernfs seq_file record (Documentation/filesystems/seq_file.rst,
/// `kernfs_seq_start` is `single_open`-like): the kernel formats it whole and a read returns
/// all of it that fits, so a read that leaves the buffer unfilled has reached the end and the
/// closing zero-byte read is skipped. Every other file is read until a read returns 0
/// (multi-record seq files such as mountinfo or cgroup.procs return one page at a time).
fn read_all(mut f: File, sys: &Path) -> io::Result<Vec<u8>> {
    let single_record = sys
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("memory."));
    with_scratch(|buf| {
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let Some(spare) = buf.get_mut(len..) else {
                break;
            };
            match f.read(spare) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if single_record && len < buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(buf.get(..len).unwrap_or_default().to_vec())
    })
}

/// The size of the per-thread read buffer, and the size it returns to after reading a
/// larger file (a big mountinfo or cgroup.procs).
const SCRATCH: usize = 8192;

/// Runs `f` with this thread's read buffer (at least [`SCRATCH`] bytes, contents
/// undefined). A read returns an exact-size copy of what it read: the recorder reads about
/// 4,000 files per tick at 1,000 memcgs, and a zeroed 8 KiB allocation for each, kept at
/// that capacity by the result, was the largest allocation cost of its ticks (issue 13).
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH]);
    }
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            let out = f(&mut buf);
            if buf.len() > 8 * SCRATCH {
                buf.truncate(SCRATCH);
                buf.shrink_to_fit();
            }
            out
        }
        // Never nested today; if it were, a fresh buffer keeps it correct.
        Err(_) => f(&mut vec![0; SCRATCH]),
    })
}

/// A directory opened once (`O_PATH`), whose files are then opened by name with `openat`:
/// the kernel resolves one component instead of the whole `/sys/fs/cgroup/...` path for each
/// file (about a tenth of the exporter's read cost with 1,000 cgroups, benches/serve.rs).
/// Reads are recorded for `capture` exactly as [`Root::read_bytes`] records them.
pub struct DirFiles<'a> {
    root: &'a Root,
    dir: PathBuf,
    /// `None` in an archive, or when the directory could not be opened (then each read
    /// fails with the file's own path and reason).
    fd: Option<OwnedFd>,
}

impl DirFiles<'_> {
    /// Reads the file `name` of this directory as bytes.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>, ReadError> {
        let sys = self.dir.join(name);
        let Some(fd) = &self.fd else {
            return self.root.read_bytes(&sys);
        };
        let res = nix::fcntl::openat(fd, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(io::Error::from)
            .and_then(|f| read_all(File::from(f), &sys))
            .map_err(|e| ReadError::from_io(&sys, &e));
        self.root.note(&sys, &res);
        res
    }

    /// Reads the file `name` as text (lossy, as [`Root::read`]).
    pub fn read(&self, name: &str) -> Result<String, ReadError> {
        self.read_bytes(name).map(lossy)
    }

    /// The directory's system path.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// A kernel file kept open and re-read with `pread(2)` at offset 0 (issue 20): a cgroup
/// `memory.*` file is a kernfs seq_file, which formats its record again when a read starts
/// at an offset other than where the last one ended (`seq_read_iter`'s restart), so the same
/// descriptor gives the current value each time. One syscall instead of openat + read +
/// close: 0.3-0.5 µs instead of 2.5-5 µs per read of memory.usage_in_bytes with 1,000 and
/// 10,000 memcgs (benches/scale.rs). Only on the live system (or `--host-root`); a read is
/// recorded for `capture`/`record` like any other.
#[derive(Debug)]
pub struct KeptFile {
    file: File,
    sys: PathBuf,
}

impl KeptFile {
    /// Reads the whole file again (one record of at most 4 KiB, the files kept open are
    /// single numbers), noting it in `root`'s recorder when recording.
    pub fn read(&self, root: &Root) -> Result<Vec<u8>, ReadError> {
        use std::os::unix::fs::FileExt;
        let res = with_scratch(|buf| {
            let page = buf.get_mut(..4096)?;
            Some(loop {
                match self.file.read_at(page, 0) {
                    Ok(n) if n < page.len() => {
                        break Ok(page.get(..n).unwrap_or_default().to_vec());
                    }
                    // Longer than one page: not a file to keep open; read it the usual way.
                    Ok(_) => return None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(ReadError::from_io(&self.sys, &e)),
                }
            })
        });
        let Some(res) = res else {
            return root.read_bytes(&self.sys);
        };
        root.note(&self.sys, &res);
        res
    }

    /// The file's system path.
    pub fn path(&self) -> &Path {
        &self.sys
    }
}

fn lossy(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// What `memlens-capture.json` says about a capture: the banner of a `--from` report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureMeta {
    /// What was captured (the TARGET given, or `--all`).
    pub target: String,
    /// When (seconds since the epoch).
    pub captured_at_unix: Option<u64>,
    /// The captured machine's kernel release.
    pub kernel: Option<String>,
    /// The memlens version that wrote it.
    pub memlens_version: Option<String>,
    /// Files the capture tried to read and could not, with the reason recorded then.
    #[serde(skip)]
    pub unreadable: BTreeMap<PathBuf, String>,
}

impl CaptureMeta {
    fn parse(b: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(b).ok()?;
        let o = v.as_object()?;
        Some(CaptureMeta {
            target: o.get("target")?.as_str()?.to_string(),
            captured_at_unix: o.get("captured_at_unix").and_then(|x| x.as_u64()),
            kernel: o.get("kernel").and_then(|x| x.as_str()).map(String::from),
            memlens_version: o
                .get("memlens_version")
                .and_then(|x| x.as_str())
                .map(String::from),
            unreadable: o
                .get("unreadable")
                .and_then(|x| x.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, r)| (PathBuf::from(k), r.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Whether `sys` is a file of a /proc/PID the capture found gone: the process exited while
    /// it was captured (another of its files read as missing), so its files not read after
    /// that are missing as they would be live, not "not in this capture".
    fn process_gone(&self, sys: &Path) -> bool {
        let mut c = sys.components();
        let (Some(std::path::Component::RootDir), Some(proc_), Some(pid)) =
            (c.next(), c.next(), c.next())
        else {
            return false;
        };
        if proc_.as_os_str() != "proc"
            || !pid
                .as_os_str()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return false;
        }
        let dir = Path::new("/proc").join(pid.as_os_str());
        self.unreadable
            .range(dir.clone()..)
            .take_while(|(k, _)| k.starts_with(&dir))
            .any(|(_, r)| r.contains("not provided by this kernel"))
    }

    /// The error a file absent from the capture stands for: the one recorded when the capture
    /// read it, or "not in this capture".
    fn absent(&self, sys: &Path) -> ReadError {
        let path = sys.display().to_string();
        match self.unreadable.get(sys) {
            Some(r) if r.contains("not provided by this kernel") => ReadError::Missing { path },
            None if self.process_gone(sys) => ReadError::Missing { path },
            Some(r) => ReadError::Io {
                path,
                reason: format!(
                    "unreadable when captured: {}",
                    r.strip_prefix(&format!("{}: ", sys.display())).unwrap_or(r)
                ),
            },
            None => ReadError::NotCaptured {
                path,
                target: self.target.clone(),
            },
        }
    }
}

/// Why `--from` input cannot be analysed; each names the user's mistake.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No such file or directory, or unreadable.
    #[error("{0}")]
    Io(io::Error),
    /// A directory without the metadata file.
    #[error("not a memlens capture (no {CAPTURE_META}; write one with `memlens capture`)")]
    NoMeta,
    /// A file that is not a gzip'ed tar.
    #[error(
        "not a tar archive (a memlens capture is a directory or a .tar.gz from `memlens capture`)"
    )]
    NotTar,
}

/// Where the files are.
#[derive(Debug)]
enum Backing {
    /// The live system or a capture directory: system path `/a/b` is `prefix/a/b`.
    Dir(PathBuf),
    /// A capture archive held in memory, keyed by system path.
    Archive(BTreeMap<PathBuf, Vec<u8>>),
}

/// How much `--from` may load (issue 19 item 3: a 1 MiB `.tar.gz` expanding to 1 GiB got
/// memlens OOM-killed). Captures come from other machines: a member bigger than `per_file`,
/// or an archive expanding to more than `total`, is refused naming the file. A kernel file
/// memlens reads is at most a few MiB (mountinfo, cgroup.procs of a huge cgroup), a capture of
/// a large node a few tens of MiB in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Largest file (uncompressed).
    pub per_file: u64,
    /// Largest archive, uncompressed, all members together (plus 64 bytes per member).
    pub total: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            per_file: 16 << 20,
            total: 512 << 20,
        }
    }
}

fn human_size(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// The file system memlens reads from (see the module docs).
#[derive(Debug)]
pub struct Root {
    backing: Backing,
    /// What a capture may load.
    limits: LoadLimits,
    /// Problems with the capture as a whole (a cut archive, a damaged memlens-capture.json):
    /// every report lists them (`proc::read_host`).
    capture_problems: Vec<String>,
    /// Problems met while reading that belong to no single cgroup or process (garbled
    /// mountinfo lines, a damaged directory listing): every report lists them.
    noted: Mutex<Vec<String>>,
    /// Files the capturing run could not read, with its reason (memlens-capture.json
    /// `unreadable`): reading them from the capture fails the same way, not as "missing".
    unreadable: BTreeMap<PathBuf, String>,
    /// When set, every successful read is recorded here (for `memlens capture`).
    /// A hash map, not a BTreeMap: the flight recorder inserts 25,000 paths a tick, and a
    /// BTreeMap compares paths component by component (a tenth of its CPU in a profile).
    recorder: Option<Mutex<std::collections::HashMap<PathBuf, Vec<u8>>>>,
    /// Failed reads, recorded with their reason (for `memlens capture`).
    failures: Mutex<BTreeMap<PathBuf, String>>,
    /// Whose mountinfo names the cgroup mounts: `/proc/self/mountinfo` normally; the host's
    /// init (`/proc/1/mountinfo`) under `--host-root`, because memlens's own mountinfo there
    /// lists the host's cgroup file system at the container's mount point (`/host/sys/...`),
    /// not at the host path that the prefix maps.
    mountinfo: &'static str,
    /// Set when reading a capture (`--from`): its metadata, for the banner and for telling
    /// "not captured" from "not provided by the kernel".
    capture: Option<CaptureMeta>,
}

/// The file in which a capture records a directory's listing (`KIND<TAB>NAME` per line, kind
/// `d`, `l` or `f`); see [`Root::subdirs`] and [`Root::entries`].
pub const LISTING: &str = ".memlens-entries";

/// A recorded listing, and the lines that are not `KIND<TAB>NAME` (`line N: ...`).
fn parse_listing(t: &str) -> (Vec<(char, String)>, Vec<String>) {
    let mut bad = Vec::new();
    let mut out: Vec<(char, String)> = t
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let ok = l.split_once('\t').and_then(|(k, n)| {
                let mut kc = k.chars();
                let k = kc.next()?;
                (kc.next().is_none()
                    && matches!(k, 'd' | 'l' | 'f')
                    && !n.is_empty()
                    && !n.contains('/')
                    && n != "."
                    && n != "..")
                    .then(|| (k, n.to_string()))
            });
            if ok.is_none() && !l.is_empty() {
                bad.push(format!(
                    "line {}: expected \"d|l|f<TAB>name\", found {:?}",
                    i + 1,
                    l.chars().take(60).collect::<String>()
                ));
            }
            ok
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    (out, bad)
}

/// Name of the metadata file at the top of a capture.
pub const CAPTURE_META: &str = "memlens-capture.json";

impl Root {
    /// The live system.
    pub fn live() -> Self {
        Self::dir("/")
    }

    /// A capture directory (or any directory laid out like `/`).
    pub fn dir(prefix: impl Into<PathBuf>) -> Self {
        Root {
            backing: Backing::Dir(prefix.into()),
            limits: LoadLimits::default(),
            capture_problems: Vec::new(),
            noted: Mutex::new(Vec::new()),
            unreadable: BTreeMap::new(),
            recorder: None,
            failures: Mutex::new(BTreeMap::new()),
            mountinfo: "/proc/self/mountinfo",
            capture: None,
        }
    }

    /// The host's file system mounted at `prefix` (`--host-root /host`: memlens in a container
    /// with the host's / mounted read-only at /host and the host's PID namespace). Reads
    /// `prefix/sys`, `prefix/proc`, `prefix/var/log/pods`, and finds the cgroup mounts in the
    /// mountinfo of the host's PID 1.
    pub fn host(prefix: impl Into<PathBuf>) -> Self {
        let mut r = Self::dir(prefix);
        r.mountinfo = "/proc/1/mountinfo";
        r
    }

    /// A second root reading the same place as this one (the live system, `--host-root` or a
    /// capture directory), for a reader with its own state: the recorder's OOM follower must
    /// read the host's log and cgroups under `--host-root`, not memlens's own. `None` for an
    /// archive (held in memory, nothing to follow).
    pub fn reopen(&self) -> Option<Root> {
        match &self.backing {
            Backing::Dir(p) => {
                let mut r = Self::dir(p.clone());
                r.mountinfo = self.mountinfo;
                Some(r)
            }
            Backing::Archive(_) => None,
        }
    }

    /// The mountinfo file that lists the cgroup mounts (see [`Root::host`]).
    pub fn mountinfo_path(&self) -> &'static Path {
        Path::new(self.mountinfo)
    }

    /// A capture archive (`.tar.gz`) as written by `memlens capture`, with the default
    /// [`LoadLimits`].
    pub fn archive(file: &Path) -> io::Result<Self> {
        Self::archive_with(file, LoadLimits::default())
    }

    /// A capture archive, loaded within `limits`: the archive is decompressed as a stream
    /// and each member read up to the per-file limit, so nothing beyond the limits is ever
    /// held in memory. A member or a total over a limit refuses the archive, naming the
    /// member and the flag that raises the limit. An archive cut short (or damaged) keeps
    /// the members read before the cut, and the problem says where it stopped.
    pub fn archive_with(file: &Path, limits: LoadLimits) -> io::Result<Self> {
        let f = std::fs::File::open(file)?;
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(f)));
        let mut files = BTreeMap::new();
        let mut problems = Vec::new();
        let mut total: u64 = 0;
        let mut last = String::from("(none)");
        let cut = |n: usize, last: &str, e: &dyn std::fmt::Display| {
            format!(
                "{}: archive cut short or damaged after {n} file(s) (last complete: {last}): {e}; the files before the cut are used, the rest are missing",
                file.display()
            )
        };
        let entries = ar.entries().map_err(|e| {
            io::Error::new(e.kind(), format!("{}: not a .tar.gz: {e}", file.display()))
        })?;
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    if files.is_empty() {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("{}: not a readable .tar.gz: {e}", file.display()),
                        ));
                    }
                    problems.push(cut(files.len(), &last, &e));
                    break;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let rel = match entry.path() {
                Ok(p) => p.into_owned(),
                Err(e) => {
                    problems.push(format!(
                        "{}: a member with an unreadable name skipped: {e}",
                        file.display()
                    ));
                    continue;
                }
            };
            let declared = entry.header().size().unwrap_or(0);
            let over = |what: &str, size: u64, limit: u64, flag: &str| {
                io::Error::other(format!(
                    "{}: {} is {what}{}, over the {} limit of {} (raise it with {flag} if this capture is trusted)",
                    file.display(),
                    rel.display(),
                    human_size(size),
                    if flag.ends_with("file") {
                        "per-file"
                    } else {
                        "total"
                    },
                    human_size(limit)
                ))
            };
            if declared > limits.per_file {
                return Err(over("", declared, limits.per_file, "--from-max-file"));
            }
            let entry_cost = declared.saturating_add(64 + rel.as_os_str().len() as u64);
            if total.saturating_add(entry_cost) > limits.total {
                return Err(over(
                    "the member that takes the archive to ",
                    total.saturating_add(entry_cost),
                    limits.total,
                    "--from-max-total",
                ));
            }
            let mut sys = PathBuf::from("/");
            // Archive members are relative; a leading "./" or a top directory named like the
            // archive is tolerated by dropping components until the layout's first name.
            let comps: Vec<_> = rel
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            let start = comps
                .iter()
                .position(|c| {
                    let s = c.as_os_str();
                    s == "proc" || s == "sys" || s == CAPTURE_META
                })
                .unwrap_or(0);
            for c in comps.get(start..).unwrap_or_default() {
                sys.push(c);
            }
            let mut buf = Vec::with_capacity(declared.min(1 << 20) as usize);
            // The header's size bounds what tar reads; `take` bounds it whatever it says.
            match (&mut entry).take(limits.per_file + 1).read_to_end(&mut buf) {
                Ok(_) if buf.len() as u64 > limits.per_file => {
                    return Err(over(
                        "",
                        buf.len() as u64,
                        limits.per_file,
                        "--from-max-file",
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    problems.push(cut(
                        files.len(),
                        &last,
                        &format!("{} cut after {} bytes: {e}", rel.display(), buf.len()),
                    ));
                    break;
                }
            }
            total = total.saturating_add(entry_cost);
            last = rel.display().to_string();
            files.insert(sys, buf);
        }
        let capture = files
            .get(&Path::new("/").join(CAPTURE_META))
            .and_then(|b| CaptureMeta::parse(b));
        let mut r = Root {
            backing: Backing::Archive(files),
            limits,
            capture_problems: problems,
            noted: Mutex::new(Vec::new()),
            unreadable: BTreeMap::new(),
            recorder: None,
            failures: Mutex::new(BTreeMap::new()),
            mountinfo: "/proc/self/mountinfo",
            capture,
        };
        r.load_meta();
        Ok(r)
    }

    /// Files held in memory, keyed by system path, read like a capture archive: a past
    /// moment regenerated from the flight recorder's store (`--at`).
    pub fn from_files(files: BTreeMap<PathBuf, Vec<u8>>) -> Self {
        Root {
            backing: Backing::Archive(files),
            limits: LoadLimits::default(),
            capture_problems: Vec::new(),
            noted: Mutex::new(Vec::new()),
            unreadable: BTreeMap::new(),
            recorder: None,
            failures: Mutex::new(BTreeMap::new()),
            mountinfo: "/proc/self/mountinfo",
            capture: None,
        }
    }

    /// The files of a [`Root::from_files`] root whose read had failed, with the reason (a
    /// moment of the flight recorder's store: `not recorded: permission denied (...)`):
    /// reading one fails with that reason, not as "not provided by this kernel".
    pub fn with_unreadable(mut self, unreadable: BTreeMap<PathBuf, String>) -> Self {
        self.unreadable = unreadable;
        self
    }

    /// Replaces one file of a root made by [`Root::from_files`] (`None` removes it; no
    /// effect on another root): the store's readers step through a day of samples, a file
    /// or two changing at each, without building the map again.
    pub fn set_file(&mut self, path: &Path, bytes: Option<Vec<u8>>) {
        if let Backing::Archive(files) = &mut self.backing {
            match bytes {
                Some(b) => {
                    files.insert(path.to_path_buf(), b);
                }
                None => {
                    files.remove(path);
                }
            }
        }
    }

    /// Opens `--from` input: a capture directory or a `.tar.gz` archive, with its
    /// `memlens-capture.json` (anything else is refused, naming what it is not), within the
    /// default [`LoadLimits`].
    pub fn from_capture(path: &Path) -> Result<Self, CaptureError> {
        Self::from_capture_with(path, LoadLimits::default())
    }

    /// Opens `--from` input within `limits` (in a directory, the per-file limit applies to
    /// each file read). A tree without `memlens-capture.json` is read only when it is laid
    /// out like `/` (fixtures, hand-made trees, an archive cut before its metadata): the
    /// missing metadata is then a problem of every report, not a refusal. A metadata file
    /// that is there but damaged (empty, garbage, cut, not UTF-8, a directory) is no refusal
    /// either (issue 19: a damaged file is a named problem and the rest of the report
    /// prints): the capture's metadata is then unknown and [`Root::load_meta`] says why.
    pub fn from_capture_with(path: &Path, limits: LoadLimits) -> Result<Self, CaptureError> {
        let meta_present;
        let mut r = if path.is_dir() {
            let mut r = Self::dir(path);
            r.limits = limits;
            let meta = path.join(CAPTURE_META);
            meta_present = meta.symlink_metadata().is_ok();
            r.capture = std::fs::read(&meta)
                .ok()
                .and_then(|b| CaptureMeta::parse(&b));
            r.load_meta();
            r
        } else {
            let mut head = [0u8; 2];
            let mut f = std::fs::File::open(path).map_err(CaptureError::Io)?;
            // gzip magic (RFC 1952 2.3.1): anything else is not a capture archive.
            if f.read_exact(&mut head).is_err() || head != [0x1f, 0x8b] {
                return Err(CaptureError::NotTar);
            }
            let r = Self::archive_with(path, limits).map_err(CaptureError::Io)?;
            meta_present = r.holds(&Path::new("/").join(CAPTURE_META));
            r
        };
        if !meta_present && !r.exists(Path::new("/proc/self/mountinfo")) {
            return Err(CaptureError::NoMeta);
        }
        r.limits = limits;
        Ok(r)
    }

    /// Reads memlens-capture.json: its `unreadable` list makes those files fail as they did
    /// when captured; a missing or damaged file is a problem of every report.
    fn load_meta(&mut self) {
        let p = PathBuf::from("/").join(CAPTURE_META);
        let bytes = match self.read_bytes(&p) {
            Ok(b) => b,
            Err(ReadError::Missing { .. }) => {
                self.capture_problems.push(format!(
                    "{CAPTURE_META}: missing from the capture (not written by `memlens capture`, or lost): which files could not be read when it was taken is unknown"
                ));
                return;
            }
            Err(e) => {
                self.capture_problems.push(e.to_string());
                return;
            }
        };
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(m)) => {
                // Files lost from the capture would show as "not provided by this kernel":
                // the count `capture` recorded says whether any are missing.
                let listed: Vec<&str> = m
                    .get("paths")
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
                    .unwrap_or_default();
                let lost: Vec<&str> = listed
                    .iter()
                    .copied()
                    .filter(|p| !self.holds(Path::new(p)))
                    .collect();
                for p in lost.iter().take(10) {
                    self.capture_problems.push(format!(
                        "{p}: recorded when the capture was taken, but missing from it (lost or removed since): its figures show as unavailable"
                    ));
                }
                if lost.len() > 10 {
                    self.capture_problems.push(format!(
                        "{CAPTURE_META}: {} more recorded files are missing from the capture",
                        lost.len() - 10
                    ));
                }
                // Older captures have no `paths`: their file count says whether any were lost.
                if listed.is_empty()
                    && let Some(n) = m.get("files").and_then(|v| v.as_u64())
                {
                    let held = self.held_files();
                    if held < n {
                        self.capture_problems.push(format!(
                            "{CAPTURE_META}: the capture was written with {n} files but holds {held}: {} were lost (the figures read from them show as unavailable)",
                            n - held
                        ));
                    }
                }
                if let Some(u) = m.get("unreadable") {
                    match u.as_object() {
                        Some(u) => {
                            for (k, v) in u {
                                self.unreadable.insert(
                                    PathBuf::from(k),
                                    v.as_str().unwrap_or("unreadable when captured").into(),
                                );
                            }
                        }
                        None => self.capture_problems.push(format!(
                            "{CAPTURE_META}: \"unreadable\" is not an object; ignored"
                        )),
                    }
                }
            }
            Ok(_) => self.capture_problems.push(format!(
                "{CAPTURE_META}: not a JSON object; the capture's metadata is ignored"
            )),
            Err(e) => self.capture_problems.push(format!(
                "{CAPTURE_META}: damaged JSON ({e}); the capture's metadata (files unreadable when captured) is ignored"
            )),
        }
    }

    /// Whether the capture holds the file `sys` (regular file, not a directory).
    fn holds(&self, sys: &Path) -> bool {
        match &self.backing {
            Backing::Archive(files) => files.contains_key(sys),
            Backing::Dir(prefix) => Self::host_path(prefix, sys).is_file(),
        }
    }

    /// How many files the capture holds, its metadata file excepted.
    fn held_files(&self) -> u64 {
        match &self.backing {
            Backing::Archive(files) => files
                .keys()
                .filter(|k| k.as_path() != Path::new("/").join(CAPTURE_META))
                .count() as u64,
            Backing::Dir(prefix) => {
                let mut n = 0u64;
                let mut stack = vec![prefix.clone()];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                        match e.file_type() {
                            Ok(t) if t.is_dir() => stack.push(e.path()),
                            Ok(_) if e.file_name() != CAPTURE_META || d != *prefix => n += 1,
                            _ => {}
                        }
                    }
                }
                n
            }
        }
    }

    /// Problems with the capture as a whole (see [`Root::archive_with`]) and those noted
    /// with [`Root::note_problem`].
    pub fn capture_problems(&self) -> Vec<String> {
        let mut v = self.capture_problems.clone();
        if let Ok(n) = self.noted.lock() {
            v.extend(n.iter().cloned());
        }
        v
    }

    /// Notes a problem that belongs to no single cgroup or process (once).
    pub fn note_problem(&self, p: String) {
        if let Ok(mut n) = self.noted.lock()
            && !n.contains(&p)
        {
            n.push(p);
        }
    }

    /// The capture's metadata when reading one (`--from`).
    pub fn capture(&self) -> Option<&CaptureMeta> {
        self.capture.as_ref()
    }

    /// True when this root is the running system (not a capture).
    pub fn is_live(&self) -> bool {
        matches!(&self.backing, Backing::Dir(p) if p == Path::new("/"))
    }

    /// True when this root is a running system: the live one, or a host's under
    /// `--host-root` (not a capture): its directories can be opened and statfs'd.
    pub fn is_system(&self) -> bool {
        self.is_live() || self.mountinfo == "/proc/1/mountinfo"
    }

    /// True when this root is a capture (`--from`), not a live system (`/` or `--host-root`).
    pub fn is_capture(&self) -> bool {
        match &self.backing {
            Backing::Archive(_) => true,
            Backing::Dir(p) => p != Path::new("/") && self.mountinfo == "/proc/self/mountinfo",
        }
    }

    /// True while recording for `memlens capture`: readers of files that may hold secrets
    /// (/proc/PID/environ) skip them, so a secret never lands in a capture.
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Starts recording every file read, for `memlens capture`.
    pub fn record(mut self) -> Self {
        self.recorder = Some(Mutex::new(std::collections::HashMap::new()));
        self
    }

    /// The files recorded so far (system path → contents) and the failed reads.
    pub fn recorded(&self) -> (BTreeMap<PathBuf, Vec<u8>>, BTreeMap<PathBuf, String>) {
        let files = self
            .recorder
            .as_ref()
            .and_then(|r| {
                r.lock()
                    .ok()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            })
            .unwrap_or_default();
        let failures = self.failures.lock().map(|m| m.clone()).unwrap_or_default();
        (files, failures)
    }

    /// Takes the files recorded so far and the failed reads, and starts recording afresh
    /// (the flight recorder stores each tick's reads on their own).
    pub fn take_recorded(
        &self,
    ) -> (
        std::collections::HashMap<PathBuf, Vec<u8>>,
        BTreeMap<PathBuf, String>,
    ) {
        let files = self
            .recorder
            .as_ref()
            .and_then(|r| {
                r.lock().ok().map(|mut m| {
                    // The next tick reads about as many files: a map of that capacity is
                    // not grown and rehashed again, path by path (issue 13: the rehashing
                    // was 4% of the recorder's CPU at 1,000 idle memcgs).
                    let fresh = std::collections::HashMap::with_capacity(m.len());
                    std::mem::replace(&mut *m, fresh)
                })
            })
            .unwrap_or_default();
        let failures = self
            .failures
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        (files, failures)
    }

    fn host_path(prefix: &Path, sys: &Path) -> PathBuf {
        let rel = sys.strip_prefix("/").unwrap_or(sys);
        if rel.as_os_str().is_empty() {
            prefix.to_path_buf()
        } else {
            prefix.join(rel)
        }
    }

    /// Whether `sys` would leave a capture directory (a `..` component: a hostile capture's
    /// /proc/PID/cgroup or listing must not make memlens read the analyst's own files).
    fn escapes(&self, sys: &Path) -> bool {
        !self.is_system() && sys.components().any(|c| matches!(c, Component::ParentDir))
    }

    /// Reads a whole file as bytes.
    pub fn read_bytes(&self, sys: &Path) -> Result<Vec<u8>, ReadError> {
        if self.escapes(sys) {
            return Err(ReadError::parse(
                sys,
                "a path with `..` is refused in a capture",
            ));
        }
        let res = match &self.backing {
            Backing::Dir(prefix) => std::fs::File::open(Self::host_path(prefix, sys))
                .and_then(|f| {
                    if !self.is_system() {
                        let len = f.metadata()?.len();
                        if len > self.limits.per_file {
                            return Err(io::Error::other(format!(
                                "{} in the capture, over the per-file limit of {} (raise it with --from-max-file if this capture is trusted)",
                                human_size(len),
                                human_size(self.limits.per_file)
                            )));
                        }
                        let mut buf = Vec::new();
                        f.take(self.limits.per_file + 1).read_to_end(&mut buf)?;
                        return Ok(buf);
                    }
                    read_all(f, sys)
                })
                .map_err(|e| ReadError::from_io(sys, &e)),
            Backing::Archive(files) => files.get(sys).cloned().ok_or(ReadError::Missing {
                path: sys.display().to_string(),
            }),
        };
        // A capture's kernel text file that does not end with a newline was cut short (the
        // kernel ends every line): its last line may be partial ("pgfault 82" of "8208"), so
        // it is dropped, and said.
        // Kernel text files only: /proc and /sys (cmdline is NUL-separated by design); the
        // runtime files a capture also holds (config.v2.json...) are not the kernel's.
        let kernel_text = !self.is_system()
            && (sys.starts_with("/proc") || sys.starts_with("/sys"))
            && !sys.ends_with("cmdline");
        if let Ok(b) = &res
            && kernel_text
            && b.contains(&0)
        {
            self.note_problem(format!(
                "{}: contains NUL bytes (the kernel prints none in a text file): the file is damaged; its figures may be wrong",
                sys.display()
            ));
        }
        let res = match res {
            Ok(mut b) if kernel_text && !b.is_empty() && b.last() != Some(&b'\n') => {
                let keep = b.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
                self.note_problem(format!(
                    "{}: ends without a newline: the file was cut short (the kernel ends every line); its last, partial line {:?} is ignored",
                    sys.display(),
                    String::from_utf8_lossy(b.get(keep..).unwrap_or_default())
                        .chars()
                        .take(40)
                        .collect::<String>()
                ));
                b.truncate(keep);
                Ok(b)
            }
            r => r,
        };
        let res = match res {
            Err(ReadError::Missing { path }) => match (self.unreadable.get(sys), &self.capture) {
                // A recorded moment (`--at`): what the recorder's read met, as it was.
                (Some(why), None) if why.starts_with("not recorded: ") => {
                    match why.strip_prefix("not recorded: ") {
                        Some(w) if w.contains("not provided by this kernel") => {
                            Err(ReadError::Missing { path })
                        }
                        _ => Err(ReadError::Io {
                            path,
                            reason: why.clone(),
                        }),
                    }
                }
                (Some(why), _) if why.contains("permission denied") => {
                    Err(ReadError::Permission { path })
                }
                (_, Some(c)) => Err(c.absent(sys)),
                (Some(why), None) if why.contains("not provided by this kernel") => {
                    Err(ReadError::Missing { path })
                }
                (Some(why), None) => Err(ReadError::Io {
                    path,
                    reason: format!("unreadable when captured: {why}"),
                }),
                (None, None) => Err(ReadError::Missing { path }),
            },
            r => r,
        };
        self.note(sys, &res);
        res
    }

    /// Where system path `sys` is on this machine's file system (`None` in an archive).
    pub fn real_path(&self, sys: &Path) -> Option<PathBuf> {
        match &self.backing {
            Backing::Dir(prefix) => Some(Self::host_path(prefix, sys)),
            Backing::Archive(_) => None,
        }
    }

    /// Opens a directory once, to read several of its files by name (see [`DirFiles`]).
    pub fn open_dir(&self, sys: &Path) -> DirFiles<'_> {
        let fd = match &self.backing {
            // A capture directory is read through `read_bytes`, which applies its limits.
            Backing::Dir(_) if !self.is_system() => None,
            Backing::Dir(prefix) => nix::fcntl::open(
                &Self::host_path(prefix, sys),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok(),
            Backing::Archive(_) => None,
        };
        DirFiles {
            root: self,
            dir: sys.to_path_buf(),
            fd,
        }
    }

    /// Opens `sys` to be re-read with [`KeptFile::read`]; `None` when this root is not the
    /// system (a capture is read through [`Root::read_bytes`], which applies its limits) or
    /// the file cannot be opened (the caller reads it the usual way and reports why).
    pub fn keep_open(&self, sys: &Path) -> Option<KeptFile> {
        match &self.backing {
            Backing::Dir(prefix) if self.is_system() => File::open(Self::host_path(prefix, sys))
                .ok()
                .map(|file| KeptFile {
                    file,
                    sys: sys.to_path_buf(),
                }),
            _ => None,
        }
    }

    /// Where `sys` is on this machine, when this root is a running system (the live one or
    /// `--host-root`): for the one file memlens holds open and writes itself
    /// (`cgroup::peak::IntervalPeak`); `None` for a capture.
    pub fn host_file(&self, sys: &Path) -> Option<PathBuf> {
        match &self.backing {
            Backing::Dir(prefix) if self.is_system() && !self.escapes(sys) => {
                Some(Self::host_path(prefix, sys))
            }
            _ => None,
        }
    }

    /// Adds a file that is not a kernel file read (the OOM records of a capture) to the
    /// capture being recorded; nothing when not recording.
    pub fn record_file(&self, sys: &Path, bytes: Vec<u8>) {
        if let Some(rec) = &self.recorder
            && let Ok(mut m) = rec.lock()
        {
            m.insert(sys.to_path_buf(), bytes);
        }
    }

    /// Lists `sys` as unreadable in the capture being recorded, with the reason.
    pub fn record_failure(&self, sys: &Path, reason: String) {
        if self.recorder.is_some()
            && let Ok(mut m) = self.failures.lock()
        {
            m.insert(sys.to_path_buf(), reason);
        }
    }

    /// Records a read for `memlens capture` (when recording).
    fn note(&self, sys: &Path, res: &Result<Vec<u8>, ReadError>) {
        match res {
            Ok(bytes) => {
                if let Some(rec) = &self.recorder
                    && let Ok(mut m) = rec.lock()
                {
                    m.insert(sys.to_path_buf(), bytes.clone());
                }
            }
            Err(e) => {
                if self.recorder.is_some()
                    && let Ok(mut m) = self.failures.lock()
                {
                    m.insert(sys.to_path_buf(), e.to_string());
                }
            }
        }
    }

    /// Reads a whole file as text (lossy: the kernel's files are ASCII; a stray byte must not
    /// make the whole file unreadable).
    pub fn read(&self, sys: &Path) -> Result<String, ReadError> {
        self.read_bytes(sys).map(lossy)
    }

    /// Whether a path exists (file or directory).
    pub fn exists(&self, sys: &Path) -> bool {
        if self.escapes(sys) {
            return false;
        }
        match &self.backing {
            Backing::Dir(prefix) => Self::host_path(prefix, sys).exists(),
            Backing::Archive(files) => {
                files.contains_key(sys)
                    || files
                        .range(sys.to_path_buf()..)
                        .next()
                        .is_some_and(|(k, _)| k.starts_with(sys))
            }
        }
    }

    /// The names of the subdirectories of a directory, sorted. In an archive a directory is
    /// any path prefix of a stored file (or what its recorded listing says).
    pub fn subdirs(&self, sys: &Path) -> Result<Vec<String>, ReadError> {
        Ok(self
            .listing(sys)?
            .into_iter()
            .filter(|(k, _)| *k == 'd')
            .map(|(_, n)| n)
            .collect())
    }

    /// A directory's entries as (kind, name), sorted by name; kind `d` directory, `l`
    /// symlink, `f` anything else. While recording, the listing itself is recorded (as
    /// [`LISTING`] in the directory), so a capture keeps names that have no file content
    /// under them: the symlinks of /var/log/containers, empty pod log directories.
    fn listing(&self, sys: &Path) -> Result<Vec<(char, String)>, ReadError> {
        if self.escapes(sys) {
            return Err(ReadError::parse(
                sys,
                "a path with `..` is refused in a capture",
            ));
        }
        match &self.backing {
            Backing::Dir(prefix) => {
                let dir = Self::host_path(prefix, sys);
                // A capture directory (not the live system, not a --host-root mount).
                let recorded = (prefix != Path::new("/")
                    && self.mountinfo == "/proc/self/mountinfo")
                    .then(|| std::fs::read(dir.join(LISTING)));
                if let Some(Err(e)) = &recorded
                    && e.kind() != io::ErrorKind::NotFound
                {
                    self.note_problem(format!(
                        "{}: unreadable ({e}); the directory is listed as it is in the capture",
                        sys.join(LISTING).display()
                    ));
                }
                if let Some(Ok(b)) = recorded {
                    let real: Vec<String> = std::fs::read_dir(&dir)
                        .map(|rd| {
                            rd.flatten()
                                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    return Ok(self.checked_listing(&sys.join(LISTING), &b, &real));
                }
                let rd = std::fs::read_dir(&dir).map_err(|e| ReadError::from_io(sys, &e))?;
                let mut out = Vec::new();
                for ent in rd.flatten() {
                    let name = ent.file_name().to_string_lossy().into_owned();
                    if name == LISTING {
                        continue;
                    }
                    let kind = match ent.file_type() {
                        Ok(t) if t.is_dir() => 'd',
                        Ok(t) if t.is_symlink() => 'l',
                        _ => 'f',
                    };
                    out.push((kind, name));
                }
                out.sort_by(|a, b| a.1.cmp(&b.1));
                if let Some(rec) = &self.recorder
                    && let Ok(mut m) = rec.lock()
                {
                    let text: String = out.iter().map(|(k, n)| format!("{k}\t{n}\n")).collect();
                    m.insert(sys.join(LISTING), text.into_bytes());
                }
                Ok(out)
            }
            Backing::Archive(files) => {
                if let Some(b) = files.get(&sys.join(LISTING)) {
                    let mut real: Vec<String> = files
                        .keys()
                        .filter_map(|k| {
                            let mut c = k.strip_prefix(sys).ok()?.components();
                            let first = c.next()?;
                            c.next()?;
                            Some(first.as_os_str().to_string_lossy().into_owned())
                        })
                        .collect();
                    real.dedup();
                    return Ok(self.checked_listing(&sys.join(LISTING), b, &real));
                }
                let mut out = std::collections::BTreeMap::new();
                for k in files.keys() {
                    if let Ok(rest) = k.strip_prefix(sys) {
                        let mut comps = rest.components();
                        if let Some(Component::Normal(first)) = comps.next() {
                            let name = first.to_string_lossy().into_owned();
                            if name == LISTING {
                                continue;
                            }
                            let kind = if comps.next().is_some() { 'd' } else { 'f' };
                            out.insert(name, kind);
                        }
                    }
                }
                if out.is_empty() && !self.exists(sys) {
                    return Err(ReadError::Missing {
                        path: sys.display().to_string(),
                    });
                }
                Ok(out.into_iter().map(|(n, k)| (k, n)).collect())
            }
        }
    }

    /// A recorded listing; its damaged lines are noted as problems naming the file, and so
    /// is every directory the capture holds files under that the listing does not name
    /// (`real`): a cut or damaged listing must not hide a cgroup silently.
    fn checked_listing(&self, path: &Path, b: &[u8], real: &[String]) -> Vec<(char, String)> {
        let (mut out, bad) = parse_listing(&String::from_utf8_lossy(b));
        for x in bad.into_iter().take(5) {
            self.note_problem(format!("{}: {x}; the line is ignored", path.display()));
        }
        for r in real {
            if !out.iter().any(|(k, n)| *k == 'd' && n == r) {
                self.note_problem(format!(
                    "{}: does not list the directory {r:?}, which the capture holds: the listing is damaged; {r:?} is used anyway",
                    path.display()
                ));
                out.push(('d', r.clone()));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    /// statfs(2) of `sys` (a directory on the live system), as `(f_blocks, f_bfree, f_bsize)`.
    /// statfs is not a file, so a capture stores the answer as a small text file at
    /// [`statfs_record_path`]`(sys)` and `--from` reads it back: tmpfs usage then works on
    /// captures too.
    pub fn statfs(&self, sys: &Path) -> Result<(u64, u64, u64), ReadError> {
        let rec = statfs_record_path(sys);
        if !self.is_live() {
            let t = self.read(&rec)?;
            let v: Vec<u64> = t
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            return match v.as_slice() {
                [b, f, s]
                    if t.split_whitespace().count() == 3
                        && f <= b
                        && s.is_power_of_two()
                        && (512..=1 << 20).contains(s)
                        && b.checked_mul(*s).is_some() =>
                {
                    Ok((*b, *f, *s))
                }
                [_, _, _] => Err(ReadError::parse(
                    &rec,
                    format!(
                        "implausible statfs answer {:?} (f_bfree above f_blocks, an odd block size, or a size that overflows)",
                        t.trim()
                    ),
                )),
                _ => Err(ReadError::parse(
                    &rec,
                    "expected \"f_blocks f_bfree f_bsize\"",
                )),
            };
        }
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(sys.as_os_str().as_bytes())
            .map_err(|_| ReadError::parse(sys, "path contains a NUL byte"))?;
        // SAFETY: statfs only writes into the zeroed struct we pass.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid NUL-terminated path and out pointer.
        let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
        let res = if r == 0 {
            Ok((st.f_blocks as u64, st.f_bfree as u64, st.f_bsize as u64))
        } else {
            Err(ReadError::from_io(sys, &io::Error::last_os_error()))
        };
        match &res {
            Ok((b, f, s)) => {
                if let Some(recd) = &self.recorder
                    && let Ok(mut m) = recd.lock()
                {
                    m.insert(rec, format!("{b} {f} {s}\n").into_bytes());
                }
            }
            Err(e) => {
                if self.recorder.is_some()
                    && let Ok(mut m) = self.failures.lock()
                {
                    m.insert(rec, e.to_string());
                }
            }
        }
        res
    }

    /// The `n` largest regular files under directory `sys` (live: a bounded walk, 4 levels,
    /// 20,000 entries, not following symlinks or crossing into other file systems), as
    /// (path relative to `sys`, bytes allocated), largest first. A capture stores the answer
    /// at [`largest_record_path`] and `--from` reads it back.
    pub fn largest_files(&self, sys: &Path, n: usize) -> Result<Vec<(String, u64)>, ReadError> {
        let rec = largest_record_path(sys);
        if !self.is_live() {
            let t = self.read(&rec)?;
            return Ok(t
                .lines()
                .filter_map(|l| {
                    let (b, p) = l.split_once('\t')?;
                    Some((p.to_string(), b.parse().ok()?))
                })
                .collect());
        }
        use std::os::unix::fs::MetadataExt;
        let top = std::fs::symlink_metadata(sys).map_err(|e| ReadError::from_io(sys, &e))?;
        let dev = top.dev();
        let mut found: Vec<(String, u64)> = Vec::new();
        let mut stack = vec![(sys.to_path_buf(), 0usize)];
        let mut seen = 0usize;
        while let Some((d, depth)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                seen += 1;
                if seen > 20_000 {
                    break;
                }
                let Ok(md) = e.metadata() else { continue };
                if md.dev() != dev {
                    continue;
                }
                if md.is_dir() && depth < 4 {
                    stack.push((e.path(), depth + 1));
                } else if md.is_file() {
                    let rel = e
                        .path()
                        .strip_prefix(sys)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    // Blocks actually allocated: a sparse file holds no memory.
                    found.push((rel, md.blocks() * 512));
                }
            }
        }
        found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(n);
        let text: String = found.iter().map(|(p, b)| format!("{b}\t{p}\n")).collect();
        self.record_file(&rec, text.into_bytes());
        Ok(found)
    }

    /// The names of every entry of a directory (files, symlinks, subdirectories), sorted.
    /// Used for the node's name files (/var/log/containers holds symlinks whose names carry
    /// pod, namespace, container name and ID).
    pub fn entries(&self, sys: &Path) -> Result<Vec<String>, ReadError> {
        Ok(self.listing(sys)?.into_iter().map(|(_, n)| n).collect())
    }

    /// Lists the numeric entries of /proc (the processes), for PID targets and `--all`.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .subdirs(Path::new("/proc"))
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }
}

/// Where a capture keeps [`Root::largest_files`]'s answer for `sys` (as for statfs).
pub fn largest_record_path(sys: &Path) -> PathBuf {
    let s = sys
        .to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F");
    PathBuf::from("/proc/memlens-largest").join(s)
}

/// Where a capture keeps the statfs(2) answer for `sys`: `/proc/memlens-statfs/<sys with
/// `%` as `%25` and `/` as `%2F`>` (under /proc so capture archives keep it).
pub fn statfs_record_path(sys: &Path) -> PathBuf {
    let s = sys
        .to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F");
    PathBuf::from("/proc/memlens-statfs").join(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared read buffer gives each read exactly its file, whatever was read before:
    /// files larger than the buffer (grown, then shrunk back), a `memory.*` file read in
    /// one record, an empty one, and kept files re-read with pread.
    #[test]
    fn reads_through_the_shared_buffer_are_exact() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let cases: [(&str, Vec<u8>); 5] = [
            ("mountinfo", big.clone()),
            ("memory.stat", b"anon 1\nfile 2\n".to_vec()),
            ("memory.big", big[..10_000].to_vec()),
            ("empty", Vec::new()),
            ("cgroup.procs", big[..8192].to_vec()),
        ];
        for (name, bytes) in &cases {
            std::fs::write(d.path().join(name), bytes).unwrap();
        }
        let r = Root::dir(d.path());
        let read = |name: &str| {
            read_all(
                File::open(d.path().join(name)).unwrap(),
                &Path::new("/").join(name),
            )
            .unwrap()
        };
        for _ in 0..2 {
            for (name, bytes) in &cases {
                assert_eq!(&read(name), bytes, "{name}");
            }
        }
        // The live system reads the same way (read_all), here a file the kernel formats.
        let live = Root::live();
        assert!(
            live.read_bytes(Path::new("/proc/self/mountinfo"))
                .unwrap()
                .ends_with(b"\n")
        );
        std::fs::write(d.path().join("memory.current"), "7\n").unwrap();
        let kept = KeptFile {
            file: File::open(d.path().join("memory.current")).unwrap(),
            sys: PathBuf::from("/memory.current"),
        };
        assert_eq!(kept.read(&r).unwrap(), b"7\n");
        assert_eq!(&read("mountinfo"), &big);
        assert_eq!(kept.read(&r).unwrap(), b"7\n");
    }

    #[test]
    fn dir_root_maps_system_paths_and_classifies_errors() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sys/fs/cgroup/a")).unwrap();
        std::fs::write(d.path().join("sys/fs/cgroup/a/memory.current"), "42\n").unwrap();
        let r = Root::dir(d.path()).record();
        assert_eq!(
            r.read(Path::new("/sys/fs/cgroup/a/memory.current"))
                .unwrap(),
            "42\n"
        );
        assert!(matches!(
            r.read(Path::new("/sys/fs/cgroup/a/memory.peak")),
            Err(ReadError::Missing { .. })
        ));
        assert_eq!(r.subdirs(Path::new("/sys/fs/cgroup")).unwrap(), vec!["a"]);
        let (files, failures) = r.recorded();
        // The file read, and the listing of the directory walked.
        assert_eq!(files.len(), 2);
        assert_eq!(
            files.get(Path::new("/sys/fs/cgroup/.memlens-entries")),
            Some(&b"d\ta\n".to_vec())
        );
        assert_eq!(failures.len(), 1);
        // Read back from a capture directory: the recorded listing is the answer, even for
        // names with nothing stored under them.
        let c = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(c.path().join("var/log/containers")).unwrap();
        std::fs::write(
            c.path().join(CAPTURE_META),
            r#"{"format":1,"target":"--all"}"#,
        )
        .unwrap();
        std::fs::write(
            c.path().join("var/log/containers/.memlens-entries"),
            "l\tpod_ns_c-0123.log\nd\tsub\n",
        )
        .unwrap();
        let cr = Root::from_capture(c.path()).unwrap();
        let dir = Path::new("/var/log/containers");
        assert_eq!(cr.entries(dir).unwrap(), vec!["pod_ns_c-0123.log", "sub"]);
        assert_eq!(cr.subdirs(dir).unwrap(), vec!["sub"]);
        // What the capture did not record is not the kernel's doing.
        assert!(matches!(
            cr.read(Path::new("/proc/meminfo")),
            Err(ReadError::NotCaptured { .. })
        ));
    }
}
