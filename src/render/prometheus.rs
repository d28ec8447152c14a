//! The two encoders of the one metric model (`metrics::Family`): Prometheus text format 0.0.4
//! (the default, what every Prometheus and agent understands) and OpenMetrics 1.0 text (when
//! the scraper's Accept header asks for `application/openmetrics-text`).
//!
//! OpenMetrics goes through the `prometheus-client` crate (a `Collector` over the model), so
//! its stricter grammar (`_total` counters, `# EOF`, escaping) is the crate's. The 0.0.4 text
//! is written here by hand: `prometheus-client` only writes OpenMetrics, and 0.0.4 differs in
//! ways a converter would have to undo (no `# EOF`, counters' TYPE line names the sample with
//! `_total`, cAdvisor's `container_memory_failcnt` counter keeps its name). The format is three
//! line kinds (Prometheus docs, "Exposition formats"), so the encoder is small and is checked
//! against Prometheus itself by tests/kernel_serve.rs.

use crate::metrics::{CGROUP_FAMILIES, CgSeries, Family, Kind, Value, cgroup_families, samples_in};
use bytes::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// Content type of [`text_004`].
pub const CONTENT_TYPE_004: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of [`openmetrics`].
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// True when an HTTP Accept header asks for OpenMetrics (Prometheus ≥ 2.5 sends it with a
/// higher q than text/plain unless told otherwise).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept
        .split(',')
        .any(|m| m.trim().starts_with("application/openmetrics-text"))
}

fn escape_into(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn value_into(out: &mut String, v: Value) {
    let _ = match v {
        Value::Int(i) => write!(out, "{i}"),
        // Rust's f64 Display is the shortest string that parses back to the same value.
        Value::Float(f) => write!(out, "{f}"),
    };
}

/// Prometheus text format 0.0.4. Families without samples are left out; empty label values
/// are left out (Prometheus treats `l=""` as no label).
pub fn text_004(families: &[Family]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        out.push_str("# HELP ");
        out.push_str(f.name);
        out.push(' ');
        escape_into(&mut out, f.help, false);
        out.push_str("\n# TYPE ");
        out.push_str(f.name);
        out.push_str(match f.kind {
            Kind::Gauge => " gauge\n",
            Kind::Counter => " counter\n",
            Kind::Histogram => " histogram\n",
        });
        for s in &f.samples {
            out.push_str(f.name);
            if f.kind == Kind::Histogram {
                // The model's layout (metrics::Kind::Histogram): buckets carry `le`.
                out.push_str(if s.labels.iter().any(|(k, _)| *k == "le") {
                    "_bucket"
                } else if matches!(s.value, Value::Float(_)) {
                    "_sum"
                } else {
                    "_count"
                });
            }
            let mut first = true;
            for (k, v) in s.labels.iter().filter(|(_, v)| !v.is_empty()) {
                out.push(if first { '{' } else { ',' });
                first = false;
                out.push_str(k);
                out.push_str("=\"");
                escape_into(&mut out, v, true);
                out.push('"');
            }
            if !first {
                out.push('}');
            }
            out.push(' ');
            value_into(&mut out, s.value);
            out.push('\n');
        }
    }
    out
}

#[derive(Debug)]
struct Model(Arc<Vec<Family>>);

impl Collector for Model {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in self.0.iter().filter(|f| !f.samples.is_empty()) {
            // OpenMetrics names a counter family without `_total` and the crate appends it to
            // the sample; a counter whose name lacks `_total` (cAdvisor's failcnt) is `unknown`
            // so that it keeps its name.
            let (name, ty) = match f.kind {
                Kind::Gauge => (f.name, MetricType::Gauge),
                Kind::Counter => match f.name.strip_suffix("_total") {
                    Some(n) => (n, MetricType::Counter),
                    None => (f.name, MetricType::Unknown),
                },
                Kind::Histogram => (f.name, MetricType::Histogram),
            };
            let mut me = encoder.encode_descriptor(name, f.help, None, ty)?;
            if f.kind == Kind::Histogram {
                // Cumulative buckets in the model, per bucket for the crate (it adds them up).
                let (mut buckets, mut sum, mut count, mut prev) = (Vec::new(), 0.0, 0, 0);
                for s in &f.samples {
                    let le = s.labels.iter().find(|(k, _)| *k == "le").map(|(_, v)| v);
                    match (le, s.value) {
                        (Some(le), Value::Int(c)) => {
                            // "+Inf" parses as infinity, which the crate writes as `+Inf`.
                            let bound = le.parse().unwrap_or(f64::INFINITY);
                            buckets.push((bound, c.saturating_sub(prev)));
                            prev = c;
                        }
                        (None, Value::Float(x)) => sum = x,
                        (None, Value::Int(c)) => count = c,
                        _ => {}
                    }
                }
                me.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                continue;
            }
            for s in &f.samples {
                let labels: Vec<(&str, &str)> = s
                    .labels
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect();
                let mut fe = me.encode_family(&labels)?;
                match (ty, s.value) {
                    (MetricType::Counter, Value::Int(i)) => {
                        fe.encode_counter::<NoLabelSet, _, u64>(&i, None::<&Exemplar<_, _>>)?
                    }
                    (MetricType::Counter, Value::Float(x)) => {
                        fe.encode_counter::<NoLabelSet, _, f64>(&x, None::<&Exemplar<_, _>>)?
                    }
                    (_, Value::Int(i)) => fe.encode_gauge(&i)?,
                    (_, Value::Float(x)) => fe.encode_gauge(&x)?,
                }
            }
        }
        Ok(())
    }
}

/// OpenMetrics 1.0 text (ends with `# EOF`).
pub fn openmetrics(families: Arc<Vec<Family>>) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Model(families)));
    let mut out = String::with_capacity(64 * 1024);
    // Writing to a String cannot fail; an encoder error would be a bug in the model (an
    // invalid name), which the unit tests cover.
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// [`text_004`].
    Text004,
    /// [`openmetrics`].
    OpenMetrics,
}

impl Format {
    fn encode(self, families: Vec<Family>) -> String {
        match self {
            Format::Text004 => text_004(&families),
            Format::OpenMetrics => openmetrics(Arc::new(families)),
        }
    }
}

/// Cgroups encoded at once when the line cache re-encodes the changed ones.
const ENCODE_BATCH: usize = 256;

/// One cgroup's encoded sample lines, per per-cgroup family. A line of one of the cgroup's
/// own families is `NAME LABELS VALUE`, with the same labels in each: it is kept as its
/// value alone (` VALUE\n`, bit set in `compact`) beside the labels once, a fifth of the
/// memory of the whole lines at 10,000 cgroups.
struct Cached {
    series: CgSeries,
    /// The label block (`{id="..."}`, or empty) of the compact lines.
    block: String,
    text: String,
    /// Where family `i`'s lines start in `text` (and the end, last).
    offs: [u32; CGROUP_FAMILIES + 1],
    /// Families whose text is ` VALUE\n` only.
    compact: u64,
}

/// The exporter's per-cgroup line cache (issue 20): the exposition of 10,000 cgroups is
/// ~400,000 lines, and at every collection most cgroups are what the tiers kept from an
/// earlier read, so their lines are the same bytes. Each cgroup's lines are encoded again
/// only when its series (labels, values, page faults) differ from the cached one, by the
/// same encoders ([`text_004`], [`openmetrics`] through prometheus-client) over just the
/// changed cgroups; an unchanged cgroup costs a comparison and a copy of its lines. The
/// document is byte for byte what the encoder writes for the whole model.
pub struct LineCache {
    format: Format,
    /// Shared with the [`Document`]s still being served: an entry replaced here stays alive
    /// until the last response that writes it is done.
    entries: HashMap<String, Arc<Cached>>,
    /// Each per-cgroup family's `# HELP` / `# TYPE` lines, and its samples' name.
    headers: Arc<[String]>,
    names: Arc<[&'static str]>,
    /// Cgroups encoded and reused by the last [`LineCache::encode`].
    pub counts: (usize, usize),
}

/// The encoder's output split into lines with their terminators.
fn lines_of(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
}

impl LineCache {
    /// An empty cache for `format`.
    pub fn new(format: Format) -> Self {
        // The headers: one placeholder sample per family, encoded once.
        let dummy = CgSeries {
            labels: Arc::from(Vec::new()),
            values: [Some(Value::Int(0)); crate::metrics::N_CGROUP_VALUES],
            faults: vec![("pgfault", "container", 0)],
        };
        let fams = cgroup_families(std::slice::from_ref(&dummy));
        let names: Vec<&str> = fams.iter().map(|f| f.name).collect();
        let text = format.encode(fams);
        let mut headers = vec![String::new(); CGROUP_FAMILIES];
        let mut i = 0;
        for l in lines_of(&text) {
            if l.starts_with('#') {
                if let Some(h) = headers.get_mut(i) {
                    h.push_str(l);
                }
            } else {
                i += 1;
            }
        }
        LineCache {
            format,
            entries: HashMap::new(),
            headers: headers.into(),
            names: names.into(),
            counts: (0, 0),
        }
    }

    /// The whole document: the per-cgroup families of `series` (in its order) from the
    /// cache, then `rest` encoded as usual. It refers to the cache's lines rather than
    /// copying them (at 10,000 cgroups the text is ~25 MB, and a String of it was built at
    /// each collection and held twice during the swap): [`Document::chunks`] writes it out.
    pub fn encode(&mut self, series: &[CgSeries], rest: Vec<Family>) -> Document {
        let id = |cs: &CgSeries| cs.labels.first().map(|l| l.1.clone()).unwrap_or_default();
        let changed: Vec<&CgSeries> = series
            .iter()
            .filter(|cs| self.entries.get(&id(cs)).is_none_or(|c| c.series != **cs))
            .collect();
        self.counts = (changed.len(), series.len() - changed.len());
        // In batches: the first collection (or a scrape after a quiet spell) changes every
        // cgroup, and one encoding of 10,000 cgroups' families is a ~20 MB text plus 360,000
        // samples held at once (serve's peak RSS); a batch's are a few hundred kB.
        for changed in changed.chunks(ENCODE_BATCH) {
            let owned: Vec<CgSeries> = changed.iter().map(|cs| (*cs).clone()).collect();
            let fams = cgroup_families(&owned);
            let text = self.format.encode(fams);
            let mut lines = lines_of(&text).filter(|l| !l.starts_with('#'));
            let mut new: Vec<Cached> = owned
                .into_iter()
                .map(|series| Cached {
                    series,
                    block: String::new(),
                    text: String::new(),
                    offs: [0; CGROUP_FAMILIES + 1],
                    compact: 0,
                })
                .collect();
            for fi in 0..CGROUP_FAMILIES {
                let name = self.names.get(fi).copied().unwrap_or_default();
                for c in &mut new {
                    c.offs[fi] = c.text.len() as u32;
                    let n = samples_in(&c.series, fi);
                    for _ in 0..n {
                        let line = lines.next().unwrap_or_default();
                        // The labels of the cgroup's own families, once (the page faults'
                        // lines carry two more labels: kept whole).
                        let split = line
                            .strip_prefix(name)
                            .and_then(|rest| Some((rest, rest.rfind(' ')?)))
                            .filter(|_| n == 1 && fi < CGROUP_FAMILIES - 1);
                        if let Some((rest, sp)) = split
                            && let (Some(block), Some(value)) = (rest.get(..sp), rest.get(sp..))
                            && (c.compact == 0 || block == c.block)
                        {
                            if c.compact == 0 {
                                c.block = block.to_string();
                            }
                            c.compact |= 1 << fi;
                            c.text.push_str(value);
                        } else {
                            c.text.push_str(line);
                        }
                    }
                }
            }
            for mut c in new {
                c.offs[CGROUP_FAMILIES] = c.text.len() as u32;
                c.text.shrink_to_fit();
                self.entries.insert(id(&c.series), Arc::new(c));
            }
        }
        if self.entries.len() > series.len() {
            let keep: std::collections::HashSet<String> = series.iter().map(id).collect();
            self.entries.retain(|k, _| keep.contains(k));
        }
        let cached: Vec<Arc<Cached>> = series
            .iter()
            .filter_map(|cs| self.entries.get(&id(cs)).cloned())
            .collect();
        let shown = (0..CGROUP_FAMILIES)
            .filter(|&fi| cached.iter().any(|c| !slice(c, fi).is_empty()))
            .fold(0u64, |m, fi| m | 1 << fi);
        let mut d = Document {
            headers: self.headers.clone(),
            names: self.names.clone(),
            cached,
            shown,
            rest: Bytes::from(self.format.encode(rest)),
            len: 0,
        };
        d.len = d.rest.len()
            + (0..CGROUP_FAMILIES)
                .filter(|&fi| d.shown & (1 << fi) != 0)
                .map(|fi| {
                    let name = d.names.get(fi).map_or(0, |n| n.len());
                    d.headers.get(fi).map_or(0, |h| h.len())
                        + d.cached
                            .iter()
                            .map(|c| {
                                let s = slice(c, fi).len();
                                let compact = c.compact & (1 << fi) != 0 && s > 0;
                                s + if compact { name + c.block.len() } else { 0 }
                            })
                            .sum::<usize>()
                })
                .sum::<usize>();
        d
    }
}

fn slice(c: &Cached, fi: usize) -> &str {
    c.text
        .get(c.offs[fi] as usize..c.offs[fi + 1] as usize)
        .unwrap_or_default()
}

/// One exposition of the [`LineCache`]: its per-cgroup families' lines are the cache entries'
/// own (shared), the rest (host, collection, own cost) one short text. Byte for byte what the
/// encoder writes for the whole model, written out in chunks ([`Document::chunks`]) so that
/// serving 10,000 cgroups never holds the whole ~25 MB text.
pub struct Document {
    headers: Arc<[String]>,
    names: Arc<[&'static str]>,
    cached: Vec<Arc<Cached>>,
    /// Per-cgroup families with at least one sample (the encoders leave empty ones out).
    shown: u64,
    rest: Bytes,
    len: usize,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("cgroups", &self.cached.len())
            .field("len", &self.len)
            .finish()
    }
}

/// Where a [`Document`]'s writing is: family, cgroup (the header first), then the rest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    family: usize,
    cgroup: usize,
    header_done: bool,
    rest: usize,
}

impl Document {
    /// A document of an already encoded text (a format the collector did not render).
    pub fn whole(text: String) -> Self {
        let len = text.len();
        Document {
            headers: Arc::from(Vec::new()),
            names: Arc::from(Vec::new()),
            cached: Vec::new(),
            shown: 0,
            rest: Bytes::from(text),
            len,
        }
    }

    /// Its size in bytes (the response's Content-Length).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it has no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends to `out` from `cur` until `out` holds at least `max` bytes (a cgroup's lines
    /// are not split) or the document ends; false once nothing is left.
    pub fn fill(&self, cur: &mut Cursor, out: &mut Vec<u8>, max: usize) -> bool {
        while out.len() < max {
            if let Some(header) = self.headers.get(cur.family) {
                let fi = cur.family;
                if self.shown & (1 << fi) == 0 || cur.cgroup >= self.cached.len() {
                    cur.family += 1;
                    cur.cgroup = 0;
                    cur.header_done = false;
                    continue;
                }
                if !cur.header_done {
                    out.extend_from_slice(header.as_bytes());
                    cur.header_done = true;
                }
                let c = &self.cached[cur.cgroup];
                let s = slice(c, fi);
                if c.compact & (1 << fi) != 0 && !s.is_empty() {
                    out.extend_from_slice(
                        self.names.get(fi).copied().unwrap_or_default().as_bytes(),
                    );
                    out.extend_from_slice(c.block.as_bytes());
                }
                out.extend_from_slice(s.as_bytes());
                cur.cgroup += 1;
            } else if cur.rest < self.rest.len() {
                let end = self
                    .rest
                    .len()
                    .min(cur.rest.saturating_add(max - out.len()));
                out.extend_from_slice(&self.rest[cur.rest..end]);
                cur.rest = end;
            } else {
                return !out.is_empty();
            }
        }
        true
    }

    /// The next chunk of about `size` bytes (it may pass `size` by one cgroup's lines; the
    /// rest's bytes are handed out as slices of it, not copied), `None` at the end.
    pub fn next_chunk(&self, cur: &mut Cursor, size: usize) -> Option<Bytes> {
        let size = size.max(1);
        if cur.family >= self.headers.len() {
            if cur.rest >= self.rest.len() {
                return None;
            }
            let end = self.rest.len().min(cur.rest.saturating_add(size));
            let b = self.rest.slice(cur.rest..end);
            cur.rest = end;
            return Some(b);
        }
        let mut out = Vec::with_capacity(size.min(self.len).saturating_add(4096));
        self.fill(cur, &mut out, size).then(|| Bytes::from(out))
    }

    /// The document in chunks of about `size` bytes ([`Document::next_chunk`]).
    pub fn chunks(&self, size: usize) -> impl Iterator<Item = Bytes> + '_ {
        let mut cur = Cursor::default();
        std::iter::from_fn(move || self.next_chunk(&mut cur, size))
    }

    /// The whole document in one buffer (tests, and a caller that wants the text).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        self.fill(&mut Cursor::default(), &mut out, usize::MAX);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Sample;

    fn model() -> Vec<Family> {
        let l: crate::metrics::Labels = Arc::from(vec![
            ("id", "/docker/a\"b".to_string()),
            ("namespace", String::new()),
        ]);
        vec![
            Family {
                name: "container_memory_usage_bytes",
                help: "usage\nline",
                kind: Kind::Gauge,
                samples: vec![Sample {
                    labels: l.clone(),
                    value: Value::Int(42),
                }],
            },
            Family {
                name: "container_oom_events_total",
                help: "kills",
                kind: Kind::Counter,
                samples: vec![Sample {
                    labels: l.clone(),
                    value: Value::Int(3),
                }],
            },
            Family {
                name: "container_memory_failcnt",
                help: "failcnt",
                kind: Kind::Counter,
                samples: vec![Sample {
                    labels: l,
                    value: Value::Int(7),
                }],
            },
            Family {
                name: "memlens_empty",
                help: "none",
                kind: Kind::Gauge,
                samples: vec![],
            },
        ]
    }

    fn series(id: &str, name: &str, v: u64) -> CgSeries {
        let mut values = [None; crate::metrics::N_CGROUP_VALUES];
        values[0] = Some(Value::Int(v));
        values[3] = Some(Value::Float(v as f64 / 3.0));
        values[6] = Some(Value::Int(7));
        values[9] = v.is_multiple_of(2).then_some(Value::Int(v * 2));
        values[34] = Some(Value::Float(1_700_000_000.5 + v as f64));
        CgSeries {
            labels: Arc::from(vec![
                ("id", id.to_string()),
                ("namespace", String::new()),
                ("name", name.to_string()),
            ]),
            values,
            faults: if v.is_multiple_of(3) {
                vec![]
            } else {
                vec![("pgfault", "container", v), ("pgfault", "hierarchy", v + 1)]
            },
        }
    }

    /// `doc`, whole and in chunks of every size, is `want` (the String the encoder writes
    /// for the whole model, what `/metrics` served before the streamed body).
    fn same(doc: &Document, want: &str, f: Format) {
        assert_eq!(doc.len(), want.len(), "{f:?}");
        assert_eq!(String::from_utf8(doc.to_vec()).unwrap(), want, "{f:?}");
        for size in [1, 7, 100, 333, 4096, 64 * 1024, usize::MAX] {
            let chunks: Vec<Bytes> = doc.chunks(size).collect();
            assert!(chunks.iter().all(|c| !c.is_empty()), "{f:?} {size}");
            assert_eq!(chunks.concat(), want.as_bytes(), "{f:?} chunks of {size}");
        }
    }

    /// The cached document is byte for byte the encoders' over the whole model, as cgroups
    /// change, are renamed, come and go; only the changed cgroups are encoded again.
    #[test]
    fn the_line_cache_writes_what_the_encoders_write_and_reencodes_only_changes() {
        let rest = || model();
        let whole = |s: &[CgSeries], f: Format| {
            let mut fams = cgroup_families(s);
            fams.extend(rest());
            f.encode(fams)
        };
        for f in [Format::Text004, Format::OpenMetrics] {
            let mut cache = LineCache::new(f);
            let mut s: Vec<CgSeries> = (0..5)
                .map(|i| series(&format!("/c{i}"), "n\"x", i))
                .collect();
            same(&cache.encode(&s, rest()), &whole(&s, f), f);
            assert_eq!(cache.counts, (5, 0));
            // The cgroup's own lines are kept as their values beside one label block.
            assert!(
                cache
                    .entries
                    .values()
                    .all(|c| c.compact != 0 && !c.block.is_empty())
            );
            same(&cache.encode(&s, rest()), &whole(&s, f), f);
            assert_eq!(cache.counts, (0, 5));
            // A value changes, a name appears, one goes, one comes.
            s[1].values[0] = Some(Value::Int(99));
            s[2].labels = series("/c2", "renamed", 2).labels;
            s.remove(3);
            s.push(series("/new", "", 6));
            same(&cache.encode(&s, rest()), &whole(&s, f), f);
            assert_eq!(cache.counts, (3, 2));
            assert_eq!(cache.entries.len(), 5);
            // No cgroup at all, and none but the rest.
            same(&cache.encode(&[], rest()), &whole(&[], f), f);
            assert!(cache.entries.is_empty());
            // More cgroups than one encoding batch, then every third changed.
            let mut s: Vec<CgSeries> = (0..2 * ENCODE_BATCH as u64 + 7)
                .map(|i| series(&format!("/b{i}"), "", i))
                .collect();
            same(&cache.encode(&s, rest()), &whole(&s, f), f);
            assert_eq!(cache.counts, (s.len(), 0));
            for c in s.iter_mut().step_by(3) {
                c.values[0] = Some(Value::Int(1));
            }
            same(&cache.encode(&s, rest()), &whole(&s, f), f);
            assert_eq!(cache.counts.0, s.len().div_ceil(3));
        }
    }

    #[test]
    fn text_004_format() {
        let t = text_004(&model());
        assert_eq!(
            t,
            "# HELP container_memory_usage_bytes usage\\nline\n# TYPE container_memory_usage_bytes gauge\ncontainer_memory_usage_bytes{id=\"/docker/a\\\"b\"} 42\n\
             # HELP container_oom_events_total kills\n# TYPE container_oom_events_total counter\ncontainer_oom_events_total{id=\"/docker/a\\\"b\"} 3\n\
             # HELP container_memory_failcnt failcnt\n# TYPE container_memory_failcnt counter\ncontainer_memory_failcnt{id=\"/docker/a\\\"b\"} 7\n"
        );
    }

    #[test]
    fn openmetrics_format() {
        let t = openmetrics(Arc::new(model()));
        assert!(t.ends_with("# EOF\n"), "{t}");
        assert!(t.contains("# TYPE container_oom_events counter\n"), "{t}");
        assert!(
            t.contains("container_oom_events_total{id=\"/docker/a\\\"b\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE container_memory_failcnt unknown\n"),
            "{t}"
        );
        assert!(
            t.contains("container_memory_failcnt{id=\"/docker/a\\\"b\"} 7\n"),
            "{t}"
        );
        assert!(!t.contains("memlens_empty"));
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"
        ));
        assert!(!wants_openmetrics("text/plain"));
    }
}
