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
    entries: HashMap<String, Cached>,
    /// Each per-cgroup family's `# HELP` / `# TYPE` lines, and its samples' name.
    headers: Vec<String>,
    names: Vec<&'static str>,
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
        let names = fams.iter().map(|f| f.name).collect();
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
            headers,
            names,
            counts: (0, 0),
        }
    }

    /// The whole document: the per-cgroup families of `series` (in its order) from the
    /// cache, then `rest` encoded as usual.
    pub fn encode(&mut self, series: &[CgSeries], rest: Vec<Family>) -> String {
        let id = |cs: &CgSeries| cs.labels.first().map(|l| l.1.clone()).unwrap_or_default();
        let changed: Vec<&CgSeries> = series
            .iter()
            .filter(|cs| self.entries.get(&id(cs)).is_none_or(|c| c.series != **cs))
            .collect();
        self.counts = (changed.len(), series.len() - changed.len());
        if !changed.is_empty() {
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
                self.entries.insert(id(&c.series), c);
            }
        }
        if self.entries.len() > series.len() {
            let keep: std::collections::HashSet<String> = series.iter().map(id).collect();
            self.entries.retain(|k, _| keep.contains(k));
        }
        let cached: Vec<&Cached> = series
            .iter()
            .filter_map(|cs| self.entries.get(&id(cs)))
            .collect();
        let size: usize = cached.iter().map(|c| c.text.len()).sum();
        let mut out = String::with_capacity(size + 64 * 1024);
        for (fi, header) in self.headers.iter().enumerate() {
            fn slice(c: &Cached, fi: usize) -> &str {
                c.text
                    .get(c.offs[fi] as usize..c.offs[fi + 1] as usize)
                    .unwrap_or_default()
            }
            if cached.iter().all(|c| slice(c, fi).is_empty()) {
                continue;
            }
            out.push_str(header);
            let name = self.names.get(fi).copied().unwrap_or_default();
            for c in &cached {
                let s = slice(c, fi);
                if c.compact & (1 << fi) != 0 && !s.is_empty() {
                    out.push_str(name);
                    out.push_str(&c.block);
                }
                out.push_str(s);
            }
        }
        let rest = self.format.encode(rest);
        out.push_str(&rest);
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
            assert_eq!(cache.encode(&s, rest()), whole(&s, f), "{f:?}");
            assert_eq!(cache.counts, (5, 0));
            // The cgroup's own lines are kept as their values beside one label block.
            assert!(
                cache
                    .entries
                    .values()
                    .all(|c| c.compact != 0 && !c.block.is_empty())
            );
            assert_eq!(cache.encode(&s, rest()), whole(&s, f), "{f:?}");
            assert_eq!(cache.counts, (0, 5));
            // A value changes, a name appears, one goes, one comes.
            s[1].values[0] = Some(Value::Int(99));
            s[2].labels = series("/c2", "renamed", 2).labels;
            s.remove(3);
            s.push(series("/new", "", 6));
            assert_eq!(cache.encode(&s, rest()), whole(&s, f), "{f:?}");
            assert_eq!(cache.counts, (3, 2));
            assert_eq!(cache.entries.len(), 5);
            // No cgroup at all, and none but the rest.
            assert_eq!(cache.encode(&[], rest()), whole(&[], f), "{f:?}");
            assert!(cache.entries.is_empty());
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
