//! `memlens capture`: write every file a report read into a `.tar.gz` support bundle, in the
//! layout of DEVELOPERS.md, so `--from` can analyse it on another machine.

use crate::sys::{CAPTURE_META, Root};
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes the files `root` recorded to `out` (a .tar.gz), with a metadata file naming the
/// kernel, the time, the target and the files that could not be read.
pub fn write(root: &Root, out: &Path, target: &str) -> io::Result<(usize, usize)> {
    let (files, failures) = root.recorded();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let kernel = files
        .get(Path::new("/proc/sys/kernel/osrelease"))
        .map(|b| String::from_utf8_lossy(b).trim().to_string());
    let meta = serde_json::json!({
        "format": 1,
        "memlens_version": env!("CARGO_PKG_VERSION"),
        "kernel": kernel,
        "captured_at_unix": now,
        "target": target,
        "files": files.len(),
        // Every file's path: a capture read back names each one that was lost since.
        "paths": files.keys().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "unreadable": failures.iter().map(|(p, r)| (p.display().to_string(), serde_json::json!(r))).collect::<serde_json::Map<_, _>>(),
    });
    let f = std::fs::File::create(out)?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(now);
        h.set_cksum();
        tar.append_data(&mut h, name, data)
    };
    let meta_bytes = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
    add(CAPTURE_META, &meta_bytes)?;
    for (p, data) in &files {
        let rel = p.strip_prefix("/").unwrap_or(p);
        add(&rel.to_string_lossy(), data)?;
    }
    tar.into_inner()?.finish()?;
    Ok((files.len(), failures.len()))
}
