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
    /// The file exists but we may not read it.
    #[error(
        "{path}: permission denied (run as root, or with CAP_SYS_PTRACE for other users' /proc/PID files)"
    )]
    Permission { path: String },
    /// The process exited between listing and reading (ESRCH), or another I/O failure.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    /// The file was read but its contents are not what the kernel prints.
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
}

impl ReadError {
    /// The system path this error is about.
    pub fn path(&self) -> &str {
        match self {
            ReadError::Missing { path }
            | ReadError::Permission { path }
            | ReadError::Io { path, .. }
            | ReadError::Parse { path, .. } => path,
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
    let mut buf = vec![0u8; 8192];
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
    buf.truncate(len);
    Ok(buf)
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

fn lossy(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Where the files are.
#[derive(Debug)]
enum Backing {
    /// The live system or a capture directory: system path `/a/b` is `prefix/a/b`.
    Dir(PathBuf),
    /// A capture archive held in memory, keyed by system path.
    Archive(BTreeMap<PathBuf, Vec<u8>>),
}

/// The file system memlens reads from (see the module docs).
#[derive(Debug)]
pub struct Root {
    backing: Backing,
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
}

/// The file in which a capture records a directory's listing (`KIND<TAB>NAME` per line, kind
/// `d`, `l` or `f`); see [`Root::subdirs`] and [`Root::entries`].
pub const LISTING: &str = ".memlens-entries";

fn parse_listing(t: &str) -> Vec<(char, String)> {
    let mut out: Vec<(char, String)> = t
        .lines()
        .filter_map(|l| {
            let (k, n) = l.split_once('\t')?;
            let k = k.chars().next()?;
            (!n.is_empty()).then(|| (k, n.to_string()))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
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
            recorder: None,
            failures: Mutex::new(BTreeMap::new()),
            mountinfo: "/proc/self/mountinfo",
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

    /// The mountinfo file that lists the cgroup mounts (see [`Root::host`]).
    pub fn mountinfo_path(&self) -> &'static Path {
        Path::new(self.mountinfo)
    }

    /// A capture archive (`.tar.gz`) as written by `memlens capture`.
    pub fn archive(file: &Path) -> io::Result<Self> {
        let f = std::fs::File::open(file)?;
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        let mut files = BTreeMap::new();
        for entry in ar.entries()? {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let rel = entry.path()?.into_owned();
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
            for c in &comps[start..] {
                sys.push(c);
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            files.insert(sys, buf);
        }
        Ok(Root {
            backing: Backing::Archive(files),
            recorder: None,
            failures: Mutex::new(BTreeMap::new()),
            mountinfo: "/proc/self/mountinfo",
        })
    }

    /// Files held in memory, keyed by system path, read like a capture archive: a past
    /// moment regenerated from the flight recorder's store (`--at`).
    pub fn from_files(files: BTreeMap<PathBuf, Vec<u8>>) -> Self {
        Root {
            backing: Backing::Archive(files),
            recorder: None,
            failures: Mutex::new(BTreeMap::new()),
            mountinfo: "/proc/self/mountinfo",
        }
    }

    /// Opens `--from` input: a directory or a `.tar.gz` archive.
    pub fn from_capture(path: &Path) -> io::Result<Self> {
        if path.is_dir() {
            Ok(Self::dir(path))
        } else {
            Self::archive(path)
        }
    }

    /// True when this root is the running system (not a capture).
    pub fn is_live(&self) -> bool {
        matches!(&self.backing, Backing::Dir(p) if p == Path::new("/"))
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
            .and_then(|r| r.lock().ok().map(|mut m| std::mem::take(&mut *m)))
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

    /// Reads a whole file as bytes.
    pub fn read_bytes(&self, sys: &Path) -> Result<Vec<u8>, ReadError> {
        let res = match &self.backing {
            Backing::Dir(prefix) => std::fs::File::open(Self::host_path(prefix, sys))
                .and_then(|f| read_all(f, sys))
                .map_err(|e| ReadError::from_io(sys, &e)),
            Backing::Archive(files) => files.get(sys).cloned().ok_or(ReadError::Missing {
                path: sys.display().to_string(),
            }),
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
        match &self.backing {
            Backing::Dir(prefix) => {
                let dir = Self::host_path(prefix, sys);
                // A capture directory (not the live system, not a --host-root mount).
                if prefix != Path::new("/")
                    && self.mountinfo == "/proc/self/mountinfo"
                    && let Ok(t) = std::fs::read_to_string(dir.join(LISTING))
                {
                    return Ok(parse_listing(&t));
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
                    return Ok(parse_listing(&String::from_utf8_lossy(b)));
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
                [b, f, s] => Ok((*b, *f, *s)),
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
            c.path().join("var/log/containers/.memlens-entries"),
            "l\tpod_ns_c-0123.log\nd\tsub\n",
        )
        .unwrap();
        let cr = Root::from_capture(c.path()).unwrap();
        let dir = Path::new("/var/log/containers");
        assert_eq!(cr.entries(dir).unwrap(), vec!["pod_ns_c-0123.log", "sub"]);
        assert_eq!(cr.subdirs(dir).unwrap(), vec!["sub"]);
    }
}
