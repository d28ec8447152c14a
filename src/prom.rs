//! `memlens recommend --prometheus URL`: the same recommendation as from the store, from
//! Prometheus's HTTP API (`/api/v1/query`) over the series `memlens serve` publishes
//! (memlens_memory_not_reclaimable_bytes, the memlens_memory_events_* and pressure counters)
//! and cAdvisor's names it publishes alongside (container_memory_working_set_bytes,
//! container_memory_usage_bytes, container_memory_swap, container_spec_memory_limit_bytes,
//! container_memory_max_usage_bytes). A real cAdvisor's series fill in the cAdvisor figures
//! where memlens serve is not scraped; what only memlens exports (not_reclaimable) is then
//! unavailable, never guessed.
//!
//! Each figure is one instant query of a range selector, `NAME[RANGE]`, which returns every
//! raw sample Prometheus holds in the range (no step, no interpolation). The samples of one
//! scrape share its timestamp, so they are joined per (instance, id) and timestamp into the
//! store's [`Point`]s and go through the same [`crate::recommend::from_points`]: the same
//! nearest-rank percentiles, formula and margin. Peaks are those of the scrapes (a spike
//! between two scrapes is missed, and the note says so).

use crate::history::{COLUMNS, Point};
use crate::recommend::{Query, Recommendation, Report};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The figures read, and the store column (or counter) each fills.
const SERIES: &[(&str, &str)] = &[
    ("memlens_memory_not_reclaimable_bytes", "not_reclaimable"),
    ("container_memory_usage_bytes", "usage"),
    ("container_memory_working_set_bytes", "working_set"),
    ("container_memory_swap", "swap"),
    ("container_spec_memory_limit_bytes", "limit"),
    ("memlens_memory_anon_bytes", "anon"),
    ("memlens_memory_shmem_bytes", "shmem"),
    ("memlens_memory_kernel_bytes", "kernel"),
    ("memlens_memory_inactive_file_bytes", "inactive_file"),
    ("memlens_memory_active_file_bytes", "active_file"),
    ("memlens_memory_events_max_total", "#limit_hits"),
    ("container_memory_failcnt", "#limit_hits_v1"),
    ("memlens_memory_events_high_total", "#high_events"),
    ("memlens_memory_oom_kills_total", "#oom_kills"),
    ("memlens_memory_pressure_some_seconds_total", "#psi_some"),
    ("memlens_memory_pressure_full_seconds_total", "#psi_full"),
    ("container_memory_max_usage_bytes", "#kernel_peak"),
];

/// The response body cap: a day of 15 s scrapes of 1,000 containers is ~170 MB per figure.
const MAX_BODY: usize = 1 << 30;
const TIMEOUT: Duration = Duration::from_secs(120);

/// GET `base` + `path_query` over plain HTTP with hyper (the client half of the crate the
/// exporter already uses). Returns the body of a 200, else the status and body as the error.
fn get(base: &str, path_query: &str) -> Result<String, String> {
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        if base.starts_with("https://") {
            format!(
                "--prometheus {base}: https is not supported; give the plain-HTTP address (in a cluster the service's http://HOST:9090, or `kubectl port-forward`)"
            )
        } else {
            format!("--prometheus {base}: give a URL such as http://127.0.0.1:9090")
        }
    })?;
    let (hostport, prefix) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{}", p.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let host = hostport.clone();
    let uri = format!("{}{path_query}", prefix.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    rt.block_on(async move {
        use http_body_util::BodyExt;
        let fut = async {
            let stream = tokio::net::TcpStream::connect(&hostport)
                .await
                .map_err(|e| format!("cannot connect to Prometheus at {hostport}: {e}"))?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("Prometheus at {hostport}: {e}"))?;
            tokio::spawn(conn);
            let req = hyper::Request::get(uri.as_str())
                .header("host", host.as_str())
                .header("accept", "application/json")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| format!("bad request {uri}: {e}"))?;
            let res = send
                .send_request(req)
                .await
                .map_err(|e| format!("Prometheus at {hostport}: {e}"))?;
            let status = res.status();
            let body = http_body_util::Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("Prometheus at {hostport}: reading the answer: {e}"))?
                .to_bytes();
            let text = String::from_utf8_lossy(&body).into_owned();
            if status != hyper::StatusCode::OK {
                return Err(format!(
                    "Prometheus answered {status} to {uri}: {}",
                    text.chars().take(400).collect::<String>()
                ));
            }
            Ok(text)
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| format!("Prometheus at {base}: no answer within {TIMEOUT:?}"))?
    })
}

/// One series of a matrix answer: its labels and (ms, value) samples.
struct Series {
    labels: HashMap<String, String>,
    samples: Vec<(i64, f64)>,
}

/// Instant query of `expr` at `at` (seconds); the matrix's series.
fn query_matrix(base: &str, expr: &str, at: f64) -> Result<Vec<Series>, String> {
    let q = percent_encoding::utf8_percent_encode(expr, percent_encoding::NON_ALPHANUMERIC);
    let body = get(base, &format!("/api/v1/query?query={q}&time={at:.3}"))?;
    let v: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("Prometheus's answer to {expr} is not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "Prometheus refused {expr}: {}",
            v["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let mut out = Vec::new();
    for r in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = r["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let samples = r["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let t = p.get(0)?.as_f64()?;
                let v = p.get(1)?.as_str()?.parse::<f64>().ok()?;
                v.is_finite().then_some(((t * 1000.0).round() as i64, v))
            })
            .collect();
        out.push(Series { labels, samples });
    }
    Ok(out)
}

/// The series of one cgroup on one node, by figure, each by timestamp.
#[derive(Default)]
struct Group {
    id: String,
    instance: Option<String>,
    name: Option<String>,
    labels: HashMap<String, String>,
    figures: HashMap<&'static str, BTreeMap<i64, f64>>,
}

/// The Prometheus range `--since` asks for, in seconds (default 24 h).
fn range_seconds(since: Option<&str>, now_ms: i64) -> Result<i64, String> {
    match since {
        None => Ok(86_400),
        Some(s) => {
            let t = crate::history::parse_since(s, now_ms)?;
            Ok(((now_ms - t) / 1000).max(1))
        }
    }
}

/// `memlens recommend --prometheus URL`. Errors: (exit code, message).
pub fn recommend(base: &str, q: &Query) -> Result<Report, (i32, String)> {
    let fail = |e: String| (crate::cli::exit::FAILURE, e);
    let now_ms = crate::store::now_ms();
    let range = range_seconds(q.since.as_deref(), now_ms).map_err(|e| (2, e))?;
    let at = now_ms as f64 / 1000.0;
    let base = base.trim_end_matches('/');
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, fig) in SERIES {
        let sel = format!("{name}{{id!=\"\"}}[{range}s]");
        let series = query_matrix(base, &sel, at).map_err(fail)?;
        for s in series {
            let Some(id) = s.labels.get("id").cloned() else {
                continue;
            };
            let inst = s.labels.get("instance").cloned();
            let g = groups
                .entry((inst.clone().unwrap_or_default(), id.clone()))
                .or_default();
            g.id = id;
            g.instance = inst;
            if g.name.is_none() {
                g.name = ["container", "name", "pod"]
                    .iter()
                    .filter_map(|k| s.labels.get(*k))
                    .find(|v| !v.is_empty())
                    .cloned();
            }
            for (k, v) in &s.labels {
                g.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let m = g.figures.entry(fig).or_default();
            for (t, v) in s.samples {
                m.insert(t, v);
            }
        }
    }
    if groups.is_empty() {
        return Err(fail(format!(
            "Prometheus at {base} holds no memlens or cAdvisor memory series (container_memory_*, memlens_memory_*) in the last {range} s: is it scraping `memlens serve`?"
        )));
    }
    if !groups
        .values()
        .any(|g| g.figures.contains_key("not_reclaimable"))
    {
        problems.push(format!(
            "Prometheus at {base} has cAdvisor's series but no memlens_memory_not_reclaimable_bytes: what cannot be reclaimed is unavailable (scrape `memlens serve`), only the working set is shown"
        ));
    }
    // Without a TARGET, leaves only (a parent's figures include its children's), as the
    // store's recommend keeps the cgroups that held processes.
    let ids: Vec<(String, String)> = groups.keys().cloned().collect();
    let is_parent = |inst: &str, id: &str| {
        let pre = format!("{}/", id.trim_end_matches('/'));
        ids.iter()
            .any(|(i, other)| i == inst && other != id && other.starts_with(&pre))
    };
    let mut out: Vec<Recommendation> = Vec::new();
    let mut since_ms = i64::MAX;
    let mut until_ms = i64::MIN;
    for ((inst, id), g) in &groups {
        let wanted = match &q.target {
            Some(t) => {
                id == t
                    || ["container", "name", "pod"]
                        .iter()
                        .any(|k| g.labels.get(*k) == Some(t))
            }
            None => id != "/" && !is_parent(inst, id),
        };
        if !wanted {
            continue;
        }
        let (pts, interval, kpeak, psi) = points(g);
        if let Some(mut r) = crate::recommend::from_points(
            id,
            g.name.clone(),
            &pts,
            interval,
            q.margin,
            kpeak,
            psi,
            q.check_limit,
        ) {
            since_ms = since_ms.min(r.first_ms);
            until_ms = until_ms.max(r.last_ms);
            r.peak_note = format!(
                "from Prometheus at {base}{}: every figure is sampled at each scrape ({}); a spike between two scrapes is missed; percentiles are nearest-rank over the raw samples; the kernel usage peak (container_memory_max_usage_bytes) is exact but includes page cache",
                g.instance
                    .as_ref()
                    .map_or(String::new(), |i| format!(", instance {i}")),
                interval.map_or("interval unknown".into(), |i| format!("every {i} ms")),
            );
            r.instance = g.instance.clone();
            out.push(r);
        }
    }
    if out.is_empty()
        && let Some(t) = &q.target
    {
        return Err((
            crate::cli::exit::BAD_TARGET,
            format!(
                "{t}: Prometheus at {base} has no series with that id, container, name or pod label in the last {range} s"
            ),
        ));
    }
    Ok(Report {
        since_ms: if since_ms == i64::MAX {
            now_ms - range * 1000
        } else {
            since_ms
        },
        until_ms: if until_ms == i64::MIN {
            now_ms
        } else {
            until_ms
        },
        // The series do not name the hierarchy: v1 is the one with container_memory_failcnt
        // and no memory.events (0: neither seen).
        cgroup_version: if groups
            .values()
            .any(|g| g.figures.contains_key("#limit_hits"))
        {
            2
        } else if groups
            .values()
            .any(|g| g.figures.contains_key("#limit_hits_v1"))
        {
            1
        } else {
            0
        },
        recommendations: out,
        problems,
    })
}

type Psi = (Option<u64>, Option<u64>, Option<f32>);

/// The group's samples as store points (one per scrape of not_reclaimable, else of the
/// working set), the scrape interval, the last kernel peak and the pressure gained.
fn points(g: &Group) -> (Vec<Point>, Option<i64>, Option<u64>, Psi) {
    let primary = g
        .figures
        .get("not_reclaimable")
        .or_else(|| g.figures.get("working_set"))
        .or_else(|| g.figures.get("usage"));
    let Some(primary) = primary else {
        return (Vec::new(), None, None, (None, None, None));
    };
    let at = |fig: &str, t: i64| -> Option<u64> {
        g.figures
            .get(fig)
            .and_then(|m| m.get(&t))
            .map(|v| v.max(0.0) as u64)
    };
    let pts: Vec<Point> = primary
        .keys()
        .map(|&t| Point {
            t,
            values: COLUMNS.map(|c| at(c, t)),
            limit_hits: at("#limit_hits", t).or_else(|| at("#limit_hits_v1", t)),
            high_events: at("#high_events", t),
            oom_kills: at("#oom_kills", t),
            pids: None,
            interval_peak_why: Some(
                "not in Prometheus (the recorder's interval peaks are in its store)".into(),
            ),
        })
        .collect();
    let mut gaps: Vec<i64> = primary
        .keys()
        .zip(primary.keys().skip(1))
        .map(|(a, b)| b - a)
        .collect();
    gaps.sort_unstable();
    let interval = gaps.get(gaps.len() / 2).copied();
    let kpeak = g
        .figures
        .get("#kernel_peak")
        .and_then(|m| m.values().last())
        .map(|v| *v as u64);
    let gained = |fig: &str| -> Option<u64> {
        let m = g.figures.get(fig)?;
        let mut total = 0.0;
        let mut prev: Option<f64> = None;
        for v in m.values() {
            if let Some(p) = prev {
                total += if *v >= p { v - p } else { *v };
            }
            prev = Some(*v);
        }
        Some((total * 1e6).round() as u64)
    };
    (
        pts,
        interval,
        kpeak,
        (gained("#psi_some"), gained("#psi_full"), None),
    )
}
