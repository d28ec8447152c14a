//! The flight recorder's store: one directory holding one SQLite database (`memlens.db`,
//! WAL mode), written by `memlens record` and read by `history`, `--at`, `oom show`, `plot`
//! and `export` while it is being written.
//!
//! What is stored is the kernel files themselves, as [`codec`] templates and numbers, so a
//! past moment is read back as the same files ([`Reader::files_at`]) and rendered by the
//! same code as the live system. The format (DEVELOPERS.md, "The store"):
//!
//! - `series`: one row per file path (grouped by its directory: a cgroup, `/proc/PID`, `/proc`);
//! - `templates`: the interned templates;
//! - `frames`: one row per recorder tick since the last compaction, each sample of that tick
//!   as a delta from the series' previous row (one committed transaction per tick, so a
//!   kill -9 or power loss loses at most the tick being written);
//! - `chunks`: per group and time span (default 10 min), every series' rows, zstd-compressed
//!   with a checksum; a chunk that fails to decode is named (group, time range) and skipped;
//! - `events`: OOM kills (the parsed report), cgroups created and removed, identities;
//! - `keep`: windows (cgroup, time range) kept past retention (around each OOM kill).
//!
//! Why SQLite and not files of our own: crash safety (WAL, checksummed frames), concurrent
//! readers, indexed time ranges and deletion by time come from a library with decades of
//! testing; the store's own format is only the chunk payload.

pub mod codec;

use codec::{Sample, Samples, SeriesBuf};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The format this memlens writes; it reads this and every older one. 2 added the
/// `refusals` table (format 1 is format 2 without it: a writer adds the table to a format-1
/// store and marks it 2; a reader of a format-1 store finds no refusals).
pub const FORMAT: i64 = 2;
/// The database file in the store directory.
pub const DB_FILE: &str = "memlens.db";

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (the file is not a store, or is damaged beyond a chunk).
    #[error("store {path}: {reason}")]
    Db { path: String, reason: String },
    /// Written by a newer memlens.
    #[error(
        "store {path} has format {found}; this memlens reads formats up to {FORMAT}: use a newer memlens"
    )]
    Newer { path: String, found: i64 },
    /// No store there.
    #[error("no store at {path} (record one with `memlens record --store {path}`)")]
    Absent { path: String },
}

fn db_err(dir: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Db {
        path: dir.display().to_string(),
        reason: e.to_string(),
    }
}

/// The default store directory: /var/lib/memlens as root, else `$XDG_STATE_HOME/memlens`
/// (`~/.local/state/memlens`).
pub fn default_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/memlens");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("memlens");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/state/memlens"))
        .unwrap_or_else(|| PathBuf::from("memlens-store"))
}

/// Wall time now, ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, path TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS templates(id INTEGER PRIMARY KEY, text BLOB UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS frames(t INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, t0 INTEGER NOT NULL,
  t1 INTEGER NOT NULL, data BLOB NOT NULL, keep INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunks_grp_t ON chunks(grp, t1);
CREATE INDEX IF NOT EXISTS chunks_t ON chunks(t1);
CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, t INTEGER NOT NULL, kind TEXT NOT NULL,
  cgroup TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_t ON events(t);
CREATE INDEX IF NOT EXISTS events_kind_cgroup ON events(kind, cgroup, id);
CREATE TABLE IF NOT EXISTS keep(grp TEXT NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refusals(t INTEGER NOT NULL, series INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS refusals_series_t ON refusals(series, t);
";

/// How the recorder bounds the store.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Chunks older than this (ms) are removed (except kept windows).
    pub retention_ms: i64,
    /// The database is kept under this many bytes, oldest chunks first.
    pub max_bytes: u64,
    /// Span of one chunk (ms).
    pub chunk_ms: i64,
}

/// One stored event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// Wall time, ms since the epoch.
    pub t: i64,
    /// `oom-kill`, `cgroup-created`, `cgroup-removed`, `identity`.
    pub kind: String,
    /// The cgroup (path within the hierarchy), when about one.
    pub cgroup: Option<String>,
    /// Details (the OOM post-mortem, the identity).
    pub data: serde_json::Value,
}

/// The open chunk of one group: its series' rows since the span began.
#[derive(Default)]
struct Open {
    t0: i64,
    series: BTreeMap<i64, SeriesBuf>,
}

/// Each template's value count, by template id (ids are SQLite rowids: dense from 1). A
/// vector, not a map: a reader looks one up for every row it decodes or skips (millions
/// for a day of a store being written at 1,000 cgroups), and hashing was a fifth of that.
/// Ids beyond [`Counts::DENSE`] (a damaged or very old store) go to a map.
#[derive(Debug, Default)]
struct Counts(Vec<Option<u32>>, HashMap<u64, usize>);

impl Counts {
    const DENSE: usize = 1 << 22;

    fn insert(&mut self, id: i64, n: usize) {
        let Ok(id) = u64::try_from(id) else { return };
        match (usize::try_from(id), u32::try_from(n)) {
            (Ok(i), Ok(n32)) if i < Self::DENSE => {
                if self.0.len() <= i {
                    self.0.resize(i + 1, None);
                }
                self.0[i] = Some(n32);
            }
            _ => {
                self.1.insert(id, n);
            }
        }
    }

    fn get(&self, id: u64) -> Option<usize> {
        match usize::try_from(id) {
            Ok(i) if i < Self::DENSE => self.0.get(i).copied().flatten().map(|n| n as usize),
            _ => self.1.get(&id).copied(),
        }
    }
}

/// The writer (one per store: `memlens record`).
pub struct Writer {
    dir: PathBuf,
    conn: Connection,
    groups: HashMap<String, i64>,
    /// path → (series id, group id).
    series: HashMap<String, (i64, i64)>,
    templates: HashMap<Vec<u8>, i64>,
    counts: Counts,
    open: HashMap<i64, Open>,
    /// Each series' last file bytes, template and values (see `write_tx`).
    last: HashMap<i64, (Vec<u8>, i64, Vec<u64>)>,
    /// The reason last stored in `refusals` of each series whose file is refused now (a
    /// row is written when a file's read starts failing or fails differently, not each tick).
    refused: HashMap<i64, String>,
    span_start: i64,
    limits: Limits,
    zc: Zc,
    /// Chunks were deleted since the last [`Writer::prune_gone`] (or none has run yet).
    prune_due: bool,
}

/// The writer's compression context: one zstd frame (level 3) per call, with its content
/// checksum and its content size (a one-shot compression writes it), so a reader allocates
/// the output once. Frames written by the streaming encoder before lack the size and are
/// decoded as a stream: the same format. One context for the writer's life, not one per
/// frame and chunk: creating and sizing a context per call was most of a compaction's zstd
/// time (1,000 chunks every 10 min at 1,000 cgroups); zstd's output does not depend on the
/// context being reused, so the bytes are the same.
struct Zc(zstd::bulk::Compressor<'static>);

impl Zc {
    fn new() -> std::io::Result<Self> {
        let mut c = zstd::bulk::Compressor::new(3)?;
        c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        Ok(Zc(c))
    }

    fn compress(&mut self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        self.0.compress(raw)
    }
}

/// Largest content size a frame may claim for a one-shot decompression; a larger (damaged)
/// claim is decoded as a stream, which fails where the data ends.
const MAX_CLAIMED: u64 = 256 << 20;

thread_local! {
    /// One decompression context per thread, reused: a fresh one per call (what
    /// `zstd::decode_all` and `zstd::bulk::decompress` create and zero) was the largest single
    /// cost of reading a day's chunks of 1,000 cgroups (ZSTD_createDCtx, 9% of `recommend`).
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn decompress(z: &[u8]) -> std::io::Result<Vec<u8>> {
    match zstd::zstd_safe::get_frame_content_size(z) {
        Ok(Some(n)) if n <= MAX_CLAIMED => DCTX.with(|c| {
            let Ok(mut slot) = c.try_borrow_mut() else {
                return zstd::bulk::decompress(z, n as usize);
            };
            let d = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            d.decompress(z, n as usize)
        }),
        // Format 1 frames (streamed, no content size).
        _ => zstd::decode_all(z),
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Readers wait for the writer's short transactions instead of failing.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

impl Writer {
    /// Opens (or creates) the store in `dir`; samples left in frames by a recorder that was
    /// killed are compacted into chunks first.
    pub fn open(dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db {
            path: dir.display().to_string(),
            reason: format!("cannot create the directory: {e}"),
        })?;
        let e = db_err(dir);
        let conn = Connection::open(dir.join(DB_FILE)).map_err(&e)?;
        configure(&conn).map_err(&e)?;
        // auto_vacuum must be chosen before the first table: deleted chunks then give their
        // pages back to the file system (incremental_vacuum), so the size cap bounds the disk.
        conn.execute_batch(
            "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        )
        .map_err(&e)?;
        conn.execute_batch(SCHEMA).map_err(&e)?;
        let found: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='format'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&e)?;
        match found.and_then(|f| f.parse::<i64>().ok()) {
            Some(f) if f > FORMAT => {
                return Err(StoreError::Newer {
                    path: dir.display().to_string(),
                    found: f,
                });
            }
            // Format 1: the refusals table was added by SCHEMA above; nothing else differs.
            Some(f) if f < FORMAT => {
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('format', ?1)",
                    params![FORMAT.to_string()],
                )
                .map_err(&e)?;
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('format', ?1), ('created_ms', ?2)",
                    params![FORMAT.to_string(), now_ms().to_string()],
                )
                .map_err(&e)?;
            }
        }
        let mut w = Writer {
            dir: dir.to_path_buf(),
            conn,
            groups: HashMap::new(),
            series: HashMap::new(),
            templates: HashMap::new(),
            counts: Counts::default(),
            open: HashMap::new(),
            last: HashMap::new(),
            refused: HashMap::new(),
            span_start: 0,
            limits,
            prune_due: true,
            zc: Zc::new().map_err(|x| StoreError::Db {
                path: dir.display().to_string(),
                reason: x.to_string(),
            })?,
        };
        w.load_names()?;
        w.recover()?;
        Ok(w)
    }

    fn load_names(&mut self) -> Result<(), StoreError> {
        let e = db_err(&self.dir);
        let mut st = self
            .conn
            .prepare("SELECT id, name FROM groups")
            .map_err(&e)?;
        for r in st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(&e)?
            .flatten()
        {
            self.groups.insert(r.1, r.0);
        }
        let mut st = self
            .conn
            .prepare("SELECT id, grp, path FROM series")
            .map_err(&e)?;
        for r in st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(&e)?
            .flatten()
        {
            self.series.insert(r.2, (r.0, r.1));
        }
        let mut st = self
            .conn
            .prepare("SELECT id, text FROM templates")
            .map_err(&e)?;
        for r in st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(&e)?
            .flatten()
        {
            if let Some(n) = codec::value_count(&r.1) {
                self.counts.insert(r.0, n);
            }
            self.templates.insert(r.1, r.0);
        }
        Ok(())
    }

    /// Frames left by a killed recorder: decoded and written as chunks.
    fn recover(&mut self) -> Result<(), StoreError> {
        let frames =
            read_frames(&self.conn, &self.counts, i64::MAX, None).map_err(db_err(&self.dir))?;
        let Some(first) = frames.first() else {
            return Ok(());
        };
        self.span_start = first.0;
        let by_id: HashMap<i64, i64> = self.series.values().copied().collect();
        for (t, rows) in &frames {
            for (sid, s) in rows {
                if let Some(&g) = by_id.get(sid) {
                    let o = self.open.entry(g).or_insert_with(|| Open {
                        t0: *t,
                        ..Open::default()
                    });
                    o.series.entry(*sid).or_default().push(*t, s.tpl, &s.vals);
                }
            }
        }
        self.compact(i64::MAX)?;
        self.span_start = 0;
        Ok(())
    }

    fn intern_template(&mut self, tpl: Vec<u8>) -> Result<i64, StoreError> {
        if let Some(id) = self.templates.get(&tpl) {
            return Ok(*id);
        }
        let e = db_err(&self.dir);
        self.conn
            .execute("INSERT INTO templates(text) VALUES (?1)", params![tpl])
            .map_err(&e)?;
        let id = self.conn.last_insert_rowid();
        self.counts
            .insert(id, codec::value_count(&tpl).unwrap_or(0));
        self.templates.insert(tpl, id);
        Ok(id)
    }

    fn intern_series(&mut self, path: &str) -> Result<(i64, i64), StoreError> {
        if let Some(s) = self.series.get(path) {
            return Ok(*s);
        }
        let e = db_err(&self.dir);
        // Not cached (pruned at a compaction, or new): the table may know it already.
        let known: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT id, grp FROM series WHERE path=?1",
                params![path],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&e)?;
        if let Some(s) = known {
            self.series.insert(path.to_string(), s);
            return Ok(s);
        }
        let group = group_of(path);
        let gid = match self.groups.get(group) {
            Some(g) => *g,
            None => {
                self.conn
                    .execute(
                        "INSERT INTO groups(name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
                        params![group],
                    )
                    .map_err(&e)?;
                let g: i64 = self
                    .conn
                    .query_row("SELECT id FROM groups WHERE name=?1", params![group], |r| {
                        r.get(0)
                    })
                    .map_err(&e)?;
                self.groups.insert(group.to_string(), g);
                g
            }
        };
        self.conn
            .execute(
                "INSERT INTO series(grp, path) VALUES (?1, ?2)",
                params![gid, path],
            )
            .map_err(&e)?;
        let sid = self.conn.last_insert_rowid();
        self.series.insert(path.to_string(), (sid, gid));
        Ok((sid, gid))
    }

    /// Writes one tick: the files read at `t` (ms) and the files found absent, in one
    /// transaction (with the events of the tick). Compacts the previous span when `t` starts
    /// a new one.
    pub fn write(
        &mut self,
        t: i64,
        present: &[(String, Vec<u8>)],
        absent: &[(String, String)],
        events: &[Event],
    ) -> Result<(), StoreError> {
        if self.span_start == 0 {
            self.span_start = t - t.rem_euclid(self.limits.chunk_ms);
        }
        if t >= self.span_start + self.limits.chunk_ms {
            self.compact(t)?;
            self.span_start = t - t.rem_euclid(self.limits.chunk_ms);
        }
        let dir = self.dir.clone();
        let e = db_err(&dir);
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&e)?;
        let res = self.write_tx(t, present, absent, events);
        match res {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(&e),
            Err(err) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(err)
            }
        }
    }

    fn write_tx(
        &mut self,
        t: i64,
        present: &[(String, Vec<u8>)],
        absent: &[(String, String)],
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut frame = Vec::new();
        let mut n = 0u64;
        let mut body = Vec::new();
        let items = present
            .iter()
            .map(|(p, b)| (p, Some(b), None))
            .chain(absent.iter().map(|(p, why)| (p, None, Some(why))));
        for (path, bytes, why) in items {
            let (sid, gid) = self.intern_series(path)?;
            match why {
                Some(why) if self.refused.get(&sid) != Some(why) => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO refusals(t, series, reason) VALUES (?1, ?2, ?3)",
                        )
                        .and_then(|mut st| st.execute(params![t, sid, why]))
                        .map_err(db_err(&self.dir))?;
                    self.refused.insert(sid, why.clone());
                }
                Some(_) => {}
                None if !self.refused.is_empty() => {
                    self.refused.remove(&sid);
                }
                None => {}
            }
            // Most files are unchanged from the series' last sample (idle cgroups): a
            // byte comparison spares the tokenizing and the template lookup.
            let same = match (bytes, self.last.get(&sid)) {
                (Some(b), Some((lb, _, _))) => lb == b,
                _ => false,
            };
            let tpl = match bytes {
                Some(_) if same => self.last.get(&sid).map_or(0, |(_, t, _)| *t),
                Some(b) => {
                    let (tt, v) = codec::tokenize(b);
                    let id = self.intern_template(tt)?;
                    self.last.insert(sid, (b.clone(), id, v));
                    id
                }
                None => {
                    self.last.remove(&sid);
                    0
                }
            };
            // Borrowed, not cloned: most rows are unchanged, and a copy of each series'
            // values per tick was a tenth of the writer's time (issue 13).
            let vals: &[u64] = match (bytes, self.last.get(&sid)) {
                (Some(_), Some((_, _, v))) => v,
                _ => &[],
            };
            let open = self.open.entry(gid).or_insert_with(|| Open {
                t0: t,
                ..Open::default()
            });
            let buf = open.series.entry(sid).or_default();
            // The frame's delta base is the series' previous row in this span, exactly as
            // in the chunk, so a reader decodes both the same way.
            codec::put_varint(&mut body, sid as u64);
            codec::put_varint(&mut body, tpl as u64);
            let base = buf.last_row(tpl as u64);
            codec::put_row(&mut body, vals, base);
            buf.push(t, tpl as u64, vals);
            n += 1;
        }
        codec::put_varint(&mut frame, n);
        frame.extend_from_slice(&body);
        let z = self.zc.compress(&frame).map_err(|x| StoreError::Db {
            path: self.dir.display().to_string(),
            reason: x.to_string(),
        })?;
        let e = db_err(&self.dir);
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO frames(t, data) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![t, z]))
            .map_err(&e)?;
        for ev in events {
            self.insert_event(ev)?;
        }
        Ok(())
    }

    fn insert_event(&self, ev: &Event) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO events(t, kind, cgroup, data) VALUES (?1, ?2, ?3, ?4)",
                params![ev.t, ev.kind, ev.cgroup, ev.data.to_string()],
            )
            .map_err(db_err(&self.dir))?;
        Ok(())
    }

    /// Records an event on its own (outside a tick).
    pub fn event(&self, ev: &Event) -> Result<(), StoreError> {
        self.insert_event(ev)
    }

    /// Keeps `group`'s chunks overlapping `[t0, t1]` past retention (an OOM kill's window).
    pub fn keep(&self, group: &str, t0: i64, t1: i64) -> Result<(), StoreError> {
        let e = db_err(&self.dir);
        self.conn
            .execute(
                "INSERT INTO keep(grp, t0, t1) VALUES (?1, ?2, ?3)",
                params![group, t0, t1],
            )
            .map_err(&e)?;
        self.apply_keep().map_err(&e)
    }

    fn apply_keep(&self) -> rusqlite::Result<()> {
        self.apply_keep_from(0)
    }

    /// [`Self::apply_keep`] for the chunks with an id above `after` (a compaction's new
    /// ones: the older were marked when their window was added). Every chunk was a scan of
    /// the whole table each compaction: a week at 1,000 cgroups is a million chunks.
    fn apply_keep_from(&self, after: i64) -> rusqlite::Result<()> {
        let any: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM keep)")?
            .query_row([], |r| r.get(0))?;
        if !any {
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "UPDATE chunks SET keep=1 WHERE id > ?1 AND keep=0 AND EXISTS (SELECT 1 FROM keep k
                   JOIN groups g ON g.name=k.grp WHERE g.id=chunks.grp AND chunks.t0<=k.t1 AND chunks.t1>=k.t0)",
            )?
            .execute(params![after])?;
        Ok(())
    }

    /// Writes every open chunk (and drops the frames they replace) in one transaction, then
    /// applies retention and the size cap.
    fn compact(&mut self, now: i64) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        let e = db_err(&dir);
        let open = std::mem::take(&mut self.open);
        // What the recorder keeps in memory is what the last span wrote: series of removed
        // cgroups and exited processes are forgotten (and found in the table if they come
        // back), so its memory does not grow with the node's churn.
        let live: std::collections::HashSet<i64> = open
            .values()
            .flat_map(|o| o.series.keys().copied())
            .collect();
        self.last.retain(|k, _| live.contains(k));
        self.series.retain(|_, (sid, _)| live.contains(sid));
        let live_groups: std::collections::HashSet<i64> = open.keys().copied().collect();
        self.groups.retain(|_, g| live_groups.contains(g));
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&e)?;
        let mut res = Ok(());
        let before: i64 = self
            .conn
            .query_row("SELECT coalesce(max(id), 0) FROM chunks", [], |r| r.get(0))
            .map_err(&e)?;
        for (gid, o) in &open {
            let mut raw = Vec::new();
            codec::put_varint(&mut raw, o.series.len() as u64);
            let mut t1 = o.t0;
            for (sid, s) in &o.series {
                codec::put_varint(&mut raw, *sid as u64);
                codec::put_varint(&mut raw, u64::from(s.rows));
                codec::put_varint(&mut raw, s.bytes.len() as u64);
                raw.extend_from_slice(&s.bytes);
                t1 = t1.max(s.last_time().unwrap_or(o.t0));
            }
            let z = match self.zc.compress(&raw) {
                Ok(z) => z,
                Err(x) => {
                    res = Err(StoreError::Db {
                        path: self.dir.display().to_string(),
                        reason: x.to_string(),
                    });
                    break;
                }
            };
            if let Err(x) = self
                .conn
                .prepare_cached("INSERT INTO chunks(grp, t0, t1, data) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut st| st.execute(params![gid, o.t0, t1, z]))
            {
                res = Err(e(x));
                break;
            }
        }
        if res.is_ok() {
            res = self
                .conn
                .execute("DELETE FROM frames", [])
                .and_then(|_| self.apply_keep_from(before))
                .map_err(&e);
        }
        match res {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(&e)?,
            Err(x) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(x);
            }
        }
        if now != i64::MAX {
            self.bound(now)?;
        }
        Ok(())
    }

    /// Retention, then the size cap (oldest chunks first; kept windows last of all).
    fn bound(&mut self, now: i64) -> Result<(), StoreError> {
        let e = db_err(&self.dir);
        let cut = now - self.limits.retention_ms;
        let gone = self
            .conn
            .execute("DELETE FROM chunks WHERE t1 < ?1 AND keep=0", params![cut])
            .map_err(&e)?;
        self.prune_due |= gone > 0;
        // Events go with retention, except OOM kills and, while any sample of its cgroup
        // remains (a kept window), the cgroup's last identity: `history` still finds a gone
        // container by name.
        self.conn
            .execute(
                "DELETE FROM events WHERE t < ?1 AND kind <> 'oom-kill' AND NOT (kind = 'identity'
                   AND id = (SELECT max(e.id) FROM events e WHERE e.kind = 'identity' AND e.cgroup = events.cgroup)
                   AND EXISTS (SELECT 1 FROM chunks c JOIN groups g ON g.id = c.grp
                     WHERE g.name = (SELECT value FROM meta WHERE key = 'mount_point')
                       || CASE WHEN events.cgroup = '/' THEN '' ELSE events.cgroup END))",
                params![cut],
            )
            .map_err(&e)?;
        // A refusal is stored once, when it starts: the latest of each series stays (it is
        // still the reason while the file stays unreadable), older ones go with retention.
        self.conn
            .execute(
                "DELETE FROM refusals WHERE t < ?1 AND EXISTS (SELECT 1 FROM refusals r
                   WHERE r.series = refusals.series AND r.t > refusals.t)",
                params![cut],
            )
            .map_err(&e)?;
        // Only chunks going can leave a group without samples (the index rows of the series
        // not written since the last compaction stay while their chunks do): without a
        // deletion there is nothing to prune, and the query probes every series (25,000 at
        // 1,000 cgroups). Due at the first compaction of each writer (another process, e.g.
        // the writer before it, may have deleted).
        if self.prune_due {
            self.prune_gone().map_err(&e)?;
            self.prune_due = false;
        }
        for _ in 0..1000 {
            let used = self.used_bytes().map_err(&e)?;
            if used <= self.limits.max_bytes {
                break;
            }
            // Drop a tenth of what is over (at least one chunk), oldest first.
            let n: i64 = self
                .conn
                .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
                .map_err(&e)?;
            if n == 0 {
                break;
            }
            let over = used - self.limits.max_bytes;
            let frac = (over as f64 / used as f64).clamp(0.0, 1.0);
            let k = ((n as f64 * frac * 1.1).ceil() as i64).max(1);
            self.conn
                .execute(
                    "DELETE FROM chunks WHERE id IN (SELECT id FROM chunks ORDER BY keep, t1 LIMIT ?1)",
                    params![k],
                )
                .map_err(&e)?;
            // Pruned at the next compaction.
            self.prune_due = true;
            self.conn
                .execute_batch("PRAGMA incremental_vacuum")
                .map_err(&e)?;
        }
        self.conn
            .execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(&e)?;
        Ok(())
    }

    /// The index rows of groups with no sample left (a cgroup or process gone for longer
    /// than retention): their series and group rows, so a node's churn does not grow the
    /// store (or each reader's start-up, which loads the index) without bound. Series the
    /// writer still writes are kept, and so is the row with the largest id of each table
    /// (SQLite gives a new row the largest id + 1: ids are never reused, so a reader's older
    /// index cannot name a new series with an old id). Templates are shared between series
    /// and stay.
    fn prune_gone(&self) -> rusqlite::Result<()> {
        let live: std::collections::HashSet<i64> =
            self.series.values().map(|(sid, _)| *sid).collect();
        let gone: Vec<i64> = {
            let mut st = self.conn.prepare(
                "SELECT s.id FROM series s WHERE s.id < (SELECT max(id) FROM series)
                   AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.grp = s.grp)",
            )?;
            st.query_map([], |r| r.get::<_, i64>(0))?
                .flatten()
                .filter(|id| !live.contains(id))
                .collect()
        };
        if gone.is_empty() {
            return Ok(());
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let res = (|| {
            let mut del = self
                .conn
                .prepare_cached("DELETE FROM series WHERE id = ?1")?;
            for id in &gone {
                del.execute(params![id])?;
            }
            self.conn.execute(
                "DELETE FROM refusals WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.id = refusals.series)",
                [],
            )?;
            self.conn.execute(
                "DELETE FROM groups WHERE id < (SELECT max(id) FROM groups)
                   AND NOT EXISTS (SELECT 1 FROM series s WHERE s.grp = groups.id)",
                [],
            )?;
            Ok(())
        })();
        match res {
            Ok(()) => self.conn.execute_batch("COMMIT"),
            Err(x) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(x)
            }
        }
    }

    /// Bytes in use: the database's pages less its free ones, plus the WAL.
    pub fn used_bytes(&self) -> rusqlite::Result<u64> {
        used_bytes(&self.conn, &self.dir)
    }

    /// Writes the open chunks now (on a clean stop).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let now = now_ms();
        self.compact(now)
    }

    /// Records a setting for readers (interval, PSS interval).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(db_err(&self.dir))?;
        Ok(())
    }
}

fn used_bytes(conn: &Connection, dir: &Path) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let wal = std::fs::metadata(dir.join(format!("{DB_FILE}-wal"))).map_or(0, |m| m.len());
    Ok(((pages - free).max(0) * size) as u64 + wal)
}

/// The group (directory) a file belongs to: a cgroup directory, `/proc/PID`, `/proc`.
pub fn group_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// A frame's decoded rows: (series id, sample).
type FrameRows = Vec<(i64, Sample)>;

/// Decodes the frames up to `until` (ms), in order, each row against the series' previous
/// row (as the writer encoded them). With `want` (indexed by series id), only those series'
/// rows are decoded and returned; the others are skipped without decoding their values (a
/// reader of one cgroup does not pay for the 1,000 others of the open span).
fn read_frames(
    conn: &Connection,
    counts: &Counts,
    until: i64,
    want: Option<&[bool]>,
) -> rusqlite::Result<Vec<(i64, FrameRows)>> {
    let mut st = conn.prepare("SELECT t, data FROM frames WHERE t <= ?1 ORDER BY t")?;
    let rows = st.query_map(params![until], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut last: HashMap<i64, (u64, Vec<u64>)> = HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        let (t, z) = r?;
        // A frame that does not decode ends the sequence: later ones are deltas from it.
        let Ok(raw) = decompress(&z) else { break };
        let Some(rows) = decode_frame(&raw, t, counts, &mut last, want) else {
            break;
        };
        out.push((t, rows));
    }
    Ok(out)
}

fn decode_frame(
    raw: &[u8],
    t: i64,
    counts: &Counts,
    last: &mut HashMap<i64, (u64, Vec<u64>)>,
    want: Option<&[bool]>,
) -> Option<FrameRows> {
    let mut pos = 0;
    let n = codec::get_varint(raw, &mut pos)?;
    let mut out = Vec::with_capacity(if want.is_some() { 0 } else { n as usize });
    for _ in 0..n {
        let sid = i64::try_from(codec::get_varint(raw, &mut pos)?).ok()?;
        let tpl = codec::get_varint(raw, &mut pos)?;
        let cnt = if tpl == 0 { 0 } else { counts.get(tpl)? };
        if let Some(w) = want
            && !usize::try_from(sid)
                .ok()
                .and_then(|i| w.get(i))
                .copied()
                .unwrap_or(false)
        {
            codec::skip_row(raw, &mut pos, cnt)?;
            continue;
        }
        let prev = match last.get(&sid) {
            Some((pt, pv)) if *pt == tpl => pv.as_slice(),
            _ => &[],
        };
        let vals = codec::get_row(raw, &mut pos, cnt, prev)?;
        last.insert(sid, (tpl, vals.clone()));
        out.push((sid, Sample { t, tpl, vals }));
    }
    Some(out)
}

/// A window kept past retention (around an OOM kill): its number (the `keep` row), the
/// group (cgroup directory) and its time range (ms).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeptWindow {
    /// The number `memlens oom forget N` takes.
    pub n: i64,
    /// The cgroup directory.
    pub group: String,
    /// From (ms).
    pub t0: i64,
    /// To (ms).
    pub t1: i64,
}

/// Releases kept window `n` (see [`Reader::kept_windows`]): its `keep` row is deleted and
/// the chunks it held get `keep=0` unless another window still holds them, so retention
/// removes them at the recorder's next compaction. Only the store's own rows are touched,
/// in one short transaction beside a running recorder (SQLite WAL); nothing else in the
/// store changes. `Ok(None)` when there is no window `n`.
pub fn forget_kept(dir: &Path, n: i64) -> Result<Option<KeptWindow>, StoreError> {
    let db = dir.join(DB_FILE);
    if !db.exists() {
        return Err(StoreError::Absent {
            path: dir.display().to_string(),
        });
    }
    let e = db_err(dir);
    let mut conn =
        Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(&e)?;
    configure(&conn).map_err(&e)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&e)?;
    let w: Option<KeptWindow> = tx
        .query_row(
            "SELECT rowid, grp, t0, t1 FROM keep WHERE rowid=?1",
            params![n],
            |r| {
                Ok(KeptWindow {
                    n: r.get(0)?,
                    group: r.get(1)?,
                    t0: r.get(2)?,
                    t1: r.get(3)?,
                })
            },
        )
        .optional()
        .map_err(&e)?;
    if w.is_some() {
        tx.execute("DELETE FROM keep WHERE rowid=?1", params![n])
            .map_err(&e)?;
        tx.execute(
            "UPDATE chunks SET keep=0 WHERE keep=1 AND NOT EXISTS (SELECT 1 FROM keep k JOIN groups g
               ON g.name=k.grp WHERE g.id=chunks.grp AND chunks.t0<=k.t1 AND chunks.t1>=k.t0)",
            [],
        )
        .map_err(&e)?;
    }
    tx.commit().map_err(&e)?;
    Ok(w)
}

/// A reader of a store (any number, also while the recorder writes).
pub struct Reader {
    dir: PathBuf,
    conn: Connection,
    templates: HashMap<i64, Vec<u8>>,
    counts: Counts,
    /// series id → (path, group id).
    series: HashMap<i64, (String, i64)>,
    groups: HashMap<i64, String>,
    meta: HashMap<String, String>,
}

/// Samples of one group's series, by path, in time order; and the chunks that were damaged.
pub type GroupSamples = (BTreeMap<String, Vec<Sample>>, Vec<String>);

/// [`GroupSamples`] as columns ([`Reader::each_group`]).
pub type GroupColumns = (BTreeMap<String, Samples>, Vec<String>);

/// Emptied columns by file name, for [`Reader::each_group`]'s next group.
type Pool = HashMap<String, Vec<Samples>>;

impl Reader {
    /// Opens the store in `dir` read-only.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = dir.join(DB_FILE);
        if !db.exists() {
            return Err(StoreError::Absent {
                path: dir.display().to_string(),
            });
        }
        let e = db_err(dir);
        let conn = Connection::open_with_flags(
            &db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&e)?;
        configure(&conn).map_err(&e)?;
        let mut r = Reader {
            dir: dir.to_path_buf(),
            conn,
            templates: HashMap::new(),
            counts: Counts::default(),
            series: HashMap::new(),
            groups: HashMap::new(),
            meta: HashMap::new(),
        };
        r.reload()?;
        if let Some(f) = r.meta.get("format").and_then(|f| f.parse::<i64>().ok())
            && f > FORMAT
        {
            return Err(StoreError::Newer {
                path: dir.display().to_string(),
                found: f,
            });
        }
        Ok(r)
    }

    /// Reads the names again (series and templates the recorder added since).
    pub fn reload(&mut self) -> Result<(), StoreError> {
        let e = db_err(&self.dir);
        let c = &self.conn;
        let mut st = c.prepare("SELECT key, value FROM meta").map_err(&e)?;
        self.meta = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&e)?
            .flatten()
            .collect();
        let mut st = c.prepare("SELECT id, text FROM templates").map_err(&e)?;
        for (id, t) in st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(&e)?
            .flatten()
        {
            if let Some(n) = codec::value_count(&t) {
                self.counts.insert(id, n);
            }
            self.templates.insert(id, t);
        }
        let mut st = c.prepare("SELECT id, name FROM groups").map_err(&e)?;
        self.groups = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&e)?
            .flatten()
            .collect();
        let mut st = c.prepare("SELECT id, path, grp FROM series").map_err(&e)?;
        self.series = st
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .map_err(&e)?
            .flatten()
            .collect();
        Ok(())
    }

    /// A setting the recorder wrote.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    /// The text of a sample (its template filled), `None` when absent or damaged.
    pub fn text(&self, s: &Sample) -> Option<Vec<u8>> {
        self.text_of(s.tpl, &s.vals)
    }

    /// The text of template `tpl` filled with `vals` (a [`Samples`] entry), `None` when
    /// absent or damaged.
    pub fn text_of(&self, tpl: u64, vals: &[u64]) -> Option<Vec<u8>> {
        if tpl == 0 {
            return None;
        }
        codec::render(self.templates.get(&i64::try_from(tpl).ok()?)?, vals)
    }

    /// The template `id` (see [`codec`]), when the store has it.
    pub fn template(&self, id: u64) -> Option<&[u8]> {
        self.templates
            .get(&i64::try_from(id).ok()?)
            .map(Vec::as_slice)
    }

    /// The first and last recorded times (ms), when anything is recorded.
    pub fn range(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let e = db_err(&self.dir);
        let q = |sql: &str| -> Result<Option<i64>, StoreError> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                .map_err(&e)
        };
        let lo = [
            q("SELECT min(t0) FROM chunks")?,
            q("SELECT min(t) FROM frames")?,
        ]
        .into_iter()
        .flatten()
        .min();
        let hi = [
            q("SELECT max(t1) FROM chunks")?,
            q("SELECT max(t) FROM frames")?,
        ]
        .into_iter()
        .flatten()
        .max();
        Ok(lo.zip(hi))
    }

    fn decode_chunk(
        &self,
        id: i64,
        grp: i64,
        t0: i64,
        t1: i64,
        z: &[u8],
        want: Option<&[bool]>,
    ) -> Result<Vec<(i64, Vec<Sample>)>, String> {
        let name = |reason: &str| {
            format!(
                "store chunk {id} of {} from {} to {} is damaged ({reason}); skipped",
                self.groups.get(&grp).map_or("?", String::as_str),
                memlens_core::units::format_time(t0),
                memlens_core::units::format_time(t1)
            )
        };
        let raw = decompress(z).map_err(|e| name(&e.to_string()))?;
        let mut pos = 0;
        let mut out = Vec::new();
        let bad = || name("bad row encoding");
        let n = codec::get_varint(&raw, &mut pos).ok_or_else(bad)?;
        for _ in 0..n {
            let sid = codec::get_varint(&raw, &mut pos).ok_or_else(bad)? as i64;
            let rows = codec::get_varint(&raw, &mut pos).ok_or_else(bad)?;
            let len = codec::get_varint(&raw, &mut pos).ok_or_else(bad)? as usize;
            let end = pos
                .checked_add(len)
                .filter(|e| *e <= raw.len())
                .ok_or_else(bad)?;
            if let Some(w) = want
                && !usize::try_from(sid)
                    .ok()
                    .and_then(|i| w.get(i))
                    .copied()
                    .unwrap_or(false)
            {
                pos = end;
                continue;
            }
            let samples = codec::decode_series(&raw[pos..end], rows as u32, |t| self.counts.get(t))
                .ok_or_else(bad)?;
            pos = end;
            out.push((sid, samples));
        }
        Ok(out)
    }

    /// [`Self::decode_chunk`] into columns: the series in `mask`, their samples in
    /// `[since, until]`, appended to `out` (by series id). A damaged chunk leaves `out` as
    /// it was and is named in the error.
    #[allow(clippy::too_many_arguments)]
    fn chunk_into(
        &self,
        (id, grp, t0, t1): (i64, i64, i64, i64),
        z: &[u8],
        mask: &[bool],
        (since, until): (i64, i64),
        row: &mut Vec<u64>,
        out: &mut Vec<(i64, Samples)>,
        pool: &mut Pool,
    ) -> Result<(), String> {
        let name = |reason: &str| {
            format!(
                "store chunk {id} of {} from {} to {} is damaged ({reason}); skipped",
                self.groups.get(&grp).map_or("?", String::as_str),
                memlens_core::units::format_time(t0),
                memlens_core::units::format_time(t1)
            )
        };
        let raw = decompress(z).map_err(|e| name(&e.to_string()))?;
        let before: Vec<usize> = out.iter().map(|(_, s)| s.len()).collect();
        let res = (|| -> Option<()> {
            let mut pos = 0;
            let n = codec::get_varint(&raw, &mut pos)?;
            for _ in 0..n {
                let sid = codec::get_varint(&raw, &mut pos)? as i64;
                let rows = u32::try_from(codec::get_varint(&raw, &mut pos)?).ok()?;
                let len = codec::get_varint(&raw, &mut pos)? as usize;
                let end = pos.checked_add(len).filter(|e| *e <= raw.len())?;
                let wanted = usize::try_from(sid)
                    .ok()
                    .and_then(|i| mask.get(i))
                    .copied()
                    .unwrap_or(false);
                if wanted {
                    let k = match out.iter().position(|(s, _)| *s == sid) {
                        Some(k) => k,
                        None => {
                            let reused = self
                                .series
                                .get(&sid)
                                .and_then(|(p, _)| pool.get_mut(p.rsplit('/').next()?))
                                .and_then(Vec::pop);
                            out.push((sid, reused.unwrap_or_default()));
                            out.len() - 1
                        }
                    };
                    codec::decode_series_into(
                        &raw[pos..end],
                        rows,
                        |t| self.counts.get(t),
                        since,
                        until,
                        row,
                        &mut out[k].1,
                    )?;
                }
                pos = end;
            }
            Some(())
        })();
        if res.is_none() {
            out.truncate(before.len());
            for ((_, s), n) in out.iter_mut().zip(before) {
                s.truncate(n);
            }
            return Err(name("bad row encoding"));
        }
        Ok(())
    }

    /// Every sample of the groups `names` in `[since, until]` (ms): chunks, then frames.
    pub fn group_samples(
        &self,
        names: &[&str],
        since: i64,
        until: i64,
    ) -> Result<GroupSamples, StoreError> {
        self.group_samples_where(names, since, until, |_| true)
    }

    /// The series of the groups `in_group` takes whose path `want` takes, as a mask by
    /// series id (ids are dense from 1): the others are skipped undecoded.
    fn series_mask(
        &self,
        in_group: impl Fn(i64) -> bool,
        want: impl Fn(&str) -> bool,
    ) -> Vec<bool> {
        let mut mask = Vec::new();
        for (sid, (p, g)) in &self.series {
            if in_group(*g)
                && want(p)
                && let Ok(i) = usize::try_from(*sid)
            {
                if mask.len() <= i {
                    mask.resize(i + 1, false);
                }
                mask[i] = true;
            }
        }
        mask
    }

    /// The compacted chunks of group `g` overlapping `[since, until]`, decoded (the series in
    /// `mask` only) into `out`; a damaged chunk is named in `problems` and skipped. `st` is
    /// the prepared chunk query (one per read transaction).
    #[allow(clippy::too_many_arguments)]
    fn group_chunks(
        &self,
        st: &mut rusqlite::Statement<'_>,
        g: i64,
        since: i64,
        until: i64,
        mask: &[bool],
        out: &mut BTreeMap<String, Vec<Sample>>,
        problems: &mut Vec<String>,
    ) -> rusqlite::Result<()> {
        let rows = st.query_map(params![g, since, until], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        for r in rows {
            let (id, grp, t0, t1, z) = r?;
            match self.decode_chunk(id, grp, t0, t1, &z, Some(mask)) {
                Ok(ss) => {
                    for (sid, samples) in ss {
                        if let Some((p, _)) = self.series.get(&sid) {
                            let v = match out.get_mut(p) {
                                Some(v) => v,
                                None => out.entry(p.clone()).or_default(),
                            };
                            v.extend(samples.into_iter().filter(|s| s.t >= since && s.t <= until));
                        }
                    }
                }
                Err(p) => problems.push(p),
            }
        }
        Ok(())
    }

    /// [`Reader::group_samples`] of the series whose path passes `want` only: the others
    /// are skipped in the chunks (by their length) and in the frames (without decoding
    /// their values), so a reader pays for what it reads (`history` of one cgroup over a
    /// day: issue 13).
    pub fn group_samples_where(
        &self,
        names: &[&str],
        since: i64,
        until: i64,
        want: impl Fn(&str) -> bool,
    ) -> Result<GroupSamples, StoreError> {
        let e = db_err(&self.dir);
        let gids: Vec<i64> = self
            .groups
            .iter()
            .filter(|(_, n)| names.contains(&n.as_str()))
            .map(|(id, _)| *id)
            .collect();
        let wanted = self.series_mask(|g| gids.contains(&g), want);
        let mut out: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        let mut problems = Vec::new();
        self.conn.execute_batch("BEGIN").map_err(&e)?;
        let res = (|| -> rusqlite::Result<()> {
            let mut st = self.conn.prepare(
                "SELECT id, grp, t0, t1, data FROM chunks WHERE grp=?1 AND t1>=?2 AND t0<=?3 ORDER BY t0",
            )?;
            for g in &gids {
                self.group_chunks(&mut st, *g, since, until, &wanted, &mut out, &mut problems)?;
            }
            for (_, rows) in read_frames(&self.conn, &self.counts, until, Some(&wanted))? {
                for (sid, s) in rows {
                    if s.t >= since
                        && let Some((p, _)) = self.series.get(&sid)
                    {
                        out.entry(p.clone()).or_default().push(s);
                    }
                }
            }
            Ok(())
        })();
        let _ = self.conn.execute_batch("COMMIT");
        res.map_err(&e)?;
        for v in out.values_mut() {
            v.sort_by_key(|s| s.t);
        }
        Ok((out, problems))
    }

    /// [`Self::group_samples`] of each group in `names` in turn, `f(name, samples)`, keeping
    /// only the series whose path `keep` takes, as columns ([`Samples`]: no allocation per
    /// sample): the frames not yet compacted are decoded once for all the groups, not once
    /// per group (they hold every group's rows: over 1,000 cgroups that was 1,000 decodes of
    /// the same frames). One read transaction, as `group_samples`. `f` may take what it
    /// keeps out of the columns; what it leaves is emptied and its memory reused for the
    /// next group ([`Samples::clear`]).
    pub fn each_group(
        &self,
        names: &[&str],
        since: i64,
        until: i64,
        keep: &dyn Fn(&str) -> bool,
        mut f: impl FnMut(&str, &mut GroupColumns),
    ) -> Result<(), StoreError> {
        let mut given = false;
        let all = || (!std::mem::replace(&mut given, true)).then_some(0..names.len());
        self.each_group_claimed(names, all, since, until, keep, |_, name, g| f(name, g))
    }

    /// [`Self::each_group`] of the groups `claim` hands out, a range of indices into
    /// `names` at a time, until it gives `None`; `f(index, name, samples)`. Readers on
    /// several threads (a connection each) share the groups through one claim (an atomic
    /// next index): a group with moving counters costs a hundred times an idle one, so
    /// fixed shares leave one thread working alone at the end. Each reader decodes the
    /// frames not yet compacted for every group of `names` (it cannot know which it will
    /// be handed); they are the open span only, minutes against the chunks' day.
    pub fn each_group_claimed(
        &self,
        names: &[&str],
        mut claim: impl FnMut() -> Option<std::ops::Range<usize>>,
        since: i64,
        until: i64,
        keep: &dyn Fn(&str) -> bool,
        mut f: impl FnMut(usize, &str, &mut GroupColumns),
    ) -> Result<(), StoreError> {
        let e = db_err(&self.dir);
        let by_name: HashMap<&str, i64> = self
            .groups
            .iter()
            .map(|(id, n)| (n.as_str(), *id))
            .collect();
        self.conn.execute_batch("BEGIN").map_err(&e)?;
        let res = (|| -> rusqlite::Result<()> {
            let wanted: std::collections::HashSet<i64> = names
                .iter()
                .filter_map(|n| by_name.get(n).copied())
                .collect();
            let want_v = self.series_mask(|g| wanted.contains(&g), keep);
            // Per group, per series id: the frames' samples.
            let mut framed: HashMap<i64, Vec<(i64, Samples)>> = HashMap::new();
            for (_, rows) in read_frames(&self.conn, &self.counts, until, Some(&want_v))? {
                for (sid, s) in rows {
                    // Only the masked series come back: no group or path test per row.
                    if let Some((_, g)) = self.series.get(&sid)
                        && s.t >= since
                    {
                        let cols = framed.entry(*g).or_default();
                        let k = match cols.iter().position(|(x, _)| *x == sid) {
                            Some(k) => k,
                            None => {
                                cols.push((sid, Samples::default()));
                                cols.len() - 1
                            }
                        };
                        cols[k].1.push(s.t, s.tpl, &s.vals);
                    }
                }
            }
            let mut st = self.conn.prepare(
                "SELECT id, grp, t0, t1, data FROM chunks WHERE grp=?1 AND t1>=?2 AND t0<=?3 ORDER BY t0",
            )?;
            let mut row = Vec::new();
            // Emptied columns of the groups before, by file name, reused for the same file
            // (memory.stat's columns for memory.stat: no column holds memory it does not use).
            let mut pool: Pool = HashMap::new();
            while let Some(range) = claim() {
                for (name, ix) in names.get(range.clone()).into_iter().flatten().zip(range) {
                    let mut cols: Vec<(i64, Samples)> = Vec::new();
                    let mut problems = Vec::new();
                    let Some(g) = by_name.get(name).copied() else {
                        f(ix, name, &mut (BTreeMap::new(), problems));
                        continue;
                    };
                    let rows = st.query_map(params![g, since, until], |r| {
                        Ok((
                            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                            r.get::<_, Vec<u8>>(4)?,
                        ))
                    })?;
                    for r in rows {
                        let (key, z) = r?;
                        if let Err(p) = self.chunk_into(
                            key,
                            &z,
                            &want_v,
                            (since, until),
                            &mut row,
                            &mut cols,
                            &mut pool,
                        ) {
                            problems.push(p);
                        }
                    }
                    for (sid, fs) in framed.remove(&g).unwrap_or_default() {
                        match cols.iter_mut().find(|(x, _)| *x == sid) {
                            Some((_, c)) => {
                                for s in fs.iter() {
                                    c.push(s.t, s.tpl, s.vals);
                                }
                            }
                            None => cols.push((sid, fs)),
                        }
                    }
                    let mut out = BTreeMap::new();
                    for (sid, mut c) in cols {
                        if let Some((p, _)) = self.series.get(&sid) {
                            c.sort_by_time();
                            out.insert(p.clone(), c);
                        }
                    }
                    let mut group = (out, problems);
                    f(ix, name, &mut group);
                    for (p, mut c) in group.0 {
                        c.clear();
                        let file = p.rsplit('/').next().unwrap_or("");
                        match pool.get_mut(file) {
                            Some(v) => v.push(c),
                            None => {
                                pool.insert(file.to_string(), vec![c]);
                            }
                        }
                    }
                }
            }
            Ok(())
        })();
        let _ = self.conn.execute_batch("COMMIT");
        res.map_err(&e)
    }

    /// The latest sample at or before `t` of every series sampled in `[t - lookback, t]`:
    /// (path → sample), and the damaged chunks skipped.
    pub fn latest_at(
        &self,
        t: i64,
        lookback: i64,
    ) -> Result<(BTreeMap<String, Sample>, Vec<String>), StoreError> {
        let e = db_err(&self.dir);
        let since = t - lookback;
        let mut out: BTreeMap<String, Sample> = BTreeMap::new();
        let mut problems = Vec::new();
        let mut keep = |path: &str, s: Sample| {
            if s.t < since || s.t > t {
                return;
            }
            match out.get(path) {
                Some(old) if old.t > s.t => {}
                _ => {
                    out.insert(path.to_string(), s);
                }
            }
        };
        self.conn.execute_batch("BEGIN").map_err(&e)?;
        let res = (|| -> rusqlite::Result<()> {
            let mut st = self
                .conn
                .prepare("SELECT id, grp, t0, t1, data FROM chunks WHERE t1>=?1 AND t0<=?2")?;
            let rows = st.query_map(params![since, t], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            })?;
            for r in rows {
                let (id, grp, t0, t1, z) = r?;
                match self.decode_chunk(id, grp, t0, t1, &z, None) {
                    Ok(ss) => {
                        for (sid, samples) in ss {
                            if let Some((p, _)) = self.series.get(&sid)
                                && let Some(s) = samples.into_iter().rev().find(|s| s.t <= t)
                            {
                                keep(p, s);
                            }
                        }
                    }
                    Err(p) => problems.push(p),
                }
            }
            for (_, rows) in read_frames(&self.conn, &self.counts, t, None)? {
                for (sid, s) in rows {
                    if let Some((p, _)) = self.series.get(&sid) {
                        keep(p, s);
                    }
                }
            }
            Ok(())
        })();
        let _ = self.conn.execute_batch("COMMIT");
        res.map_err(&e)?;
        Ok((out, problems))
    }

    /// Events in `[since, until]` (ms), oldest first.
    pub fn events(&self, since: i64, until: i64) -> Result<Vec<Event>, StoreError> {
        let e = db_err(&self.dir);
        let mut st = self
            .conn
            .prepare(
                "SELECT t, kind, cgroup, data FROM events WHERE t>=?1 AND t<=?2 ORDER BY t, id",
            )
            .map_err(&e)?;
        let rows = st
            .query_map(params![since, until], |r| {
                Ok(Event {
                    t: r.get(0)?,
                    kind: r.get(1)?,
                    cgroup: r.get(2)?,
                    data: serde_json::from_str(&r.get::<_, String>(3)?)
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .map_err(&e)?;
        Ok(rows.flatten().collect())
    }

    /// The windows kept past retention, oldest first.
    pub fn kept_windows(&self) -> Result<Vec<KeptWindow>, StoreError> {
        let e = db_err(&self.dir);
        let mut st = self
            .conn
            .prepare("SELECT rowid, grp, t0, t1 FROM keep ORDER BY t0, rowid")
            .map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                Ok(KeptWindow {
                    n: r.get(0)?,
                    group: r.get(1)?,
                    t0: r.get(2)?,
                    t1: r.get(3)?,
                })
            })
            .map_err(&e)?;
        Ok(rows.flatten().collect())
    }

    /// Whether a file was ever recorded.
    pub fn has_series(&self, path: &str) -> bool {
        // The table's unique index, not a set of every path in memory: a reader of one
        // cgroup asks this for each cgroup, not for each of its 25 files.
        self.conn
            .prepare_cached("SELECT 1 FROM series WHERE path=?1")
            .and_then(|mut st| st.exists(params![path]))
            .unwrap_or(false)
    }

    /// Why the file at `path` was not recorded at `t` (ms), when its sample then is absent:
    /// the error of the read that failed (`permission denied (...)`, `not provided by this
    /// kernel (or gone)`), as of the latest refusal stored at or before `t`, and since when.
    /// `None` in a format-1 store (no refusals kept) or when none was stored.
    pub fn refusal(&self, path: &str, t: i64) -> Option<(i64, String)> {
        self.conn
            .prepare_cached(
                "SELECT r.t, r.reason FROM refusals r JOIN series s ON s.id = r.series
                   WHERE s.path = ?1 AND r.t <= ?2 ORDER BY r.t DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![path, t], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .ok()
            .flatten()
    }

    /// The refusals stored for the files of `group` (a cgroup directory) in `[since,
    /// until]`, and the latest before `since`: (t, path, reason), oldest first.
    pub fn refusals_of(&self, group: &str, since: i64, until: i64) -> Vec<(i64, String, String)> {
        let like = format!("{}/%", group.replace('%', "\\%").replace('_', "\\_"));
        let q = self.conn.prepare_cached(
            "SELECT r.t, s.path, r.reason FROM refusals r JOIN series s ON s.id = r.series
               WHERE s.path LIKE ?1 ESCAPE '\\' AND r.t <= ?3 AND (r.t >= ?2 OR r.t = (SELECT max(r2.t)
                 FROM refusals r2 WHERE r2.series = r.series AND r2.t < ?2))
               ORDER BY r.t",
        );
        let Ok(mut st) = q else { return Vec::new() };
        st.query_map(params![like, since, until], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map(|rows| {
            rows.flatten()
                .filter(|(_, p, _): &(i64, String, String)| group_of(p) == group)
                .collect()
        })
        .unwrap_or_default()
    }

    /// Every group name recorded (cgroup directories, /proc/PID, /proc).
    pub fn group_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.groups.values().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Bytes the store uses.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        used_bytes(&self.conn, &self.dir).map_err(db_err(&self.dir))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's one compression context gives the bytes a fresh context gives, frame
    /// after frame of any size (what `compress` made before it was kept), and they decode.
    #[test]
    fn a_reused_context_compresses_as_a_fresh_one() {
        let mut zc = Zc::new().unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in [0usize, 1, 100, 5_000, 300_000, 40, 70_000] {
            let raw: Vec<u8> = (0..n)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if i % 3 == 0 {
                        (x & 0xff) as u8
                    } else {
                        (i % 7) as u8
                    }
                })
                .collect();
            let mut fresh = zstd::bulk::Compressor::new(3).unwrap();
            fresh
                .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                .unwrap();
            let z = zc.compress(&raw).unwrap();
            assert_eq!(z, fresh.compress(&raw).unwrap(), "{n} bytes");
            assert_eq!(decompress(&z).unwrap(), raw);
        }
    }
}
