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

use crate::metrics::{Family, Kind, Value};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::registry::Registry;
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
