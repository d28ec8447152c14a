//! The slabinfo format (man 5 slabinfo, version 2.1): node-wide /proc/slabinfo and, on cgroup
//! v1 before 5.9, a memcg's `memory.kmem.slabinfo` (the same printer, per-memcg caches;
//! Documentation/admin-guide/cgroup-v1/memory.rst 2.7.1). Since 5.9 every memcg shares one set
//! of caches (objects are charged through obj_cgroup) and memory.kmem.slabinfo is empty.
//! Also /proc/sys/fs/dentry-state (Documentation/admin-guide/sysctl/fs.rst "dentry-state").
//!
//! Hand-written: procfs-core has no slabinfo parser.

use serde::Serialize;

/// One slab cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlabCache {
    /// Cache name (`dentry`, `ext4_inode_cache`, `kmalloc-64`...).
    pub name: String,
    /// Objects in use.
    pub active_objs: u64,
    /// Objects allocated (in use or free in its slabs).
    pub num_objs: u64,
    /// Object size in bytes.
    #[serde(rename = "objsize_bytes")]
    pub objsize: u64,
    /// Pages per slab.
    pub pagesperslab: u64,
    /// Slabs.
    pub num_slabs: u64,
    /// Memory the cache holds: num_slabs × pagesperslab × page size.
    #[serde(rename = "total_bytes")]
    pub bytes: u64,
    /// Memory its objects in use occupy: active_objs × objsize.
    pub active_bytes: u64,
}

/// Parses slabinfo text; header lines (`slabinfo - version`, `# name`) are optional, so
/// filtered output (`sort`, `grep`) parses too. Returns the caches and the lines that did
/// not parse.
pub fn parse(text: &str, page_size: u64) -> (Vec<SlabCache>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with("slabinfo -") || l.starts_with('#') {
            continue;
        }
        match cache(l, page_size) {
            Some(c) => out.push(c),
            None => bad.push(format!("unrecognised line {l:?}")),
        }
    }
    (out, bad)
}

fn cache(l: &str, page_size: u64) -> Option<SlabCache> {
    let (head, rest) = l.split_once(" : tunables")?;
    let (_, slabdata) = rest.split_once(" : slabdata")?;
    let h: Vec<&str> = head.split_whitespace().collect();
    // name active_objs num_objs objsize objperslab pagesperslab (the name has no spaces).
    if h.len() != 6 {
        return None;
    }
    let n = |s: &str| s.parse::<u64>().ok();
    let sd: Vec<u64> = slabdata
        .split_whitespace()
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    let (active_objs, num_objs, objsize, pagesperslab) = (n(h[1])?, n(h[2])?, n(h[3])?, n(h[5])?);
    let num_slabs = *sd.get(1)?;
    Some(SlabCache {
        name: h[0].to_string(),
        active_objs,
        num_objs,
        objsize,
        pagesperslab,
        num_slabs,
        bytes: num_slabs
            .checked_mul(pagesperslab)?
            .checked_mul(page_size)?,
        active_bytes: active_objs.checked_mul(objsize)?,
    })
}

/// /proc/sys/fs/dentry-state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DentryState {
    /// Dentries allocated.
    pub nr_dentry: u64,
    /// Unused dentries (cached, on the LRU: freed by reclaim).
    pub nr_unused: u64,
    /// Negative dentries (names looked up that do not exist; part of the unused ones when
    /// unreferenced); `None` on kernels that print a placeholder there.
    pub nr_negative: Option<u64>,
}

/// Parses dentry-state: `nr_dentry nr_unused age_limit want_pages nr_negative dummy`.
pub fn dentry_state(text: &str) -> Result<DentryState, String> {
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse::<u64>().map_err(|_| format!("not a number: {w:?}")))
        .collect::<Result<_, _>>()?;
    if v.len() < 4 {
        return Err(format!("expected 6 numbers, found {}", v.len()));
    }
    Ok(DentryState {
        nr_dentry: v[0],
        nr_unused: v[1],
        nr_negative: v.get(4).copied(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str =
        include_str!("../../../../tests/fixtures/kernel/slabinfo/proc-slabinfo-6.18");
    const XSOS: &str =
        include_str!("../../../../tests/fixtures/kernel/slabinfo/proc-slabinfo-xsos-194");

    #[test]
    fn host_6_18() {
        let (c, bad) = parse(HOST, 4096);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(c.len(), HOST.lines().count() - 2);
        let d = c.iter().find(|c| c.name == "dentry").unwrap();
        assert_eq!(d.objsize, 192);
        assert_eq!(d.bytes, d.num_slabs * d.pagesperslab * 4096);
    }

    #[test]
    fn filtered_output_without_header() {
        let (c, bad) = parse(XSOS, 4096);
        assert!(bad.is_empty());
        assert_eq!(c.len(), 10);
        // ext4_inode_cache 11402 17984 1024 32 8 : ... slabdata 562 562 0
        let e = &c[7];
        assert_eq!(e.name, "ext4_inode_cache");
        assert_eq!(e.bytes, 562 * 8 * 4096);
        assert_eq!(e.active_bytes, 11402 * 1024);
        // dentry 47807 50589 192 21 1 : ... slabdata 2409 2409 0
        assert_eq!(c[0].bytes, 2409 * 4096);
    }

    /// A cgroup's v1 memory.kmem.slabinfo from before 5.9 (a 2017 kernel, SLAB allocator:
    /// non-zero tunables), from the linux-mm list (SOURCE).
    #[test]
    fn v1_memcg_slabinfo_before_5_9() {
        let t = include_str!(
            "../../../../tests/fixtures/kernel/slabinfo/memory.kmem.slabinfo-2017-slab-linux-mm"
        );
        let (c, bad) = parse(t, 4096);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(c.len(), 24);
        // dentry 52 90 272 15 1 : tunables 120 60 8 : slabdata 6 6 0
        let d = c.iter().find(|c| c.name == "dentry").unwrap();
        assert_eq!((d.active_objs, d.num_objs, d.objsize), (52, 90, 272));
        assert_eq!(d.bytes, 6 * 4096);
        assert_eq!(d.active_bytes, 52 * 272);
        // vm_area_struct 510 780 272 15 1 : ... slabdata 52 52 0: the largest.
        let big = c.iter().max_by_key(|c| c.bytes).unwrap();
        assert_eq!(
            (big.name.as_str(), big.bytes),
            ("vm_area_struct", 52 * 4096)
        );
        // The mail's wrapped lines, rejoined with the kernel's field widths, are the fixture.
        let mail = include_str!(
            "../../../../tests/fixtures/kernel/slabinfo/memory.kmem.slabinfo-2017-slab-linux-mm.mail-verbatim"
        );
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(squash(mail), squash(t));
        // 3.10 SLUB (tunables 0): a docker container's, cut by its poster after 5 caches.
        let t = include_str!(
            "../../../../tests/fixtures/kernel/slabinfo/memory.kmem.slabinfo-3.10-slub-docker"
        );
        let (c, bad) = parse(t, 4096);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(c.len(), 5);
        // ovl_inode 432 432 680 48 8 : tunables 0 0 0 : slabdata 9 9 0
        assert_eq!(c[3].name, "ovl_inode");
        assert_eq!(c[3].bytes, 9 * 8 * 4096);
        // The header alone (3.10 kubepods: no cache of its own yet).
        let t = include_str!(
            "../../../../tests/fixtures/kernel/slabinfo/memory.kmem.slabinfo-kubepods-header-only"
        );
        let (c, bad) = parse(t, 4096);
        assert!(c.is_empty() && bad.is_empty());
    }

    #[test]
    fn empty_v1_file_since_5_9_and_garbage() {
        let (c, bad) = parse("", 4096);
        assert!(c.is_empty() && bad.is_empty());
        let (c, bad) = parse("dentry 1 2 x : tunables 0 0 0 : slabdata 1 1 0\n", 4096);
        assert!(c.is_empty());
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn dentry_state_6_18() {
        let t = include_str!("../../../../tests/fixtures/kernel/slabinfo/dentry-state-6.18");
        let d = dentry_state(t).unwrap();
        assert_eq!(d.nr_negative, Some(132124));
        assert!(d.nr_unused <= d.nr_dentry);
        assert!(dentry_state("1 2").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s, 4096);
            let _ = dentry_state(&s);
        }
    }
}
