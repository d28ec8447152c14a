//! `memlens serve`: a read-only Prometheus exporter and JSON API.
//!
//! A front end like `cli`: it never reads /sys or /proc itself, but calls `metrics::collect`
//! (the overview walk plus the exporter's extra figures) and `report::build`, and renders with
//! `render`. Design:
//!
//! - Collection runs on its own OS thread every `interval` (the reads are blocking file I/O,
//!   which must not stall the async runtime). Each collection is rendered once, in both
//!   exposition formats, into immutable bytes behind an `Arc`; a scrape only clones the `Arc`,
//!   so N concurrent scrapes cost one collection and no re-encoding. The previous snapshot is
//!   dropped when the next is stored: memory is bounded by two snapshots, and a cgroup that
//!   disappeared has no series in the next one (Prometheus marks it stale).
//! - The HTTP server is hyper on a single-threaded tokio runtime (the work per request is a
//!   buffer copy). Every connection has a deadline for its request headers, a total lifetime,
//!   and a size limit for its buffer; at most `MAX_CONNECTIONS` are open, beyond that new
//!   ones are closed at once. So slow, malformed or abandoned requests cost a bounded amount.
//! - Only GET/HEAD are served; nothing writes.

use crate::cgroup::walk::Tree;
use crate::metrics::{self, Snapshot};
use crate::model::Hierarchy;
use crate::oom::KillLog;
use crate::render::{json, prometheus};
use crate::report::{self, Options};
use crate::sys::Root;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Open connections beyond this are closed on accept.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send its request headers (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection may live (keep-alive included); then it is closed gracefully.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Grace period to finish a response after the lifetime ended (client not reading).
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Concurrent `/api/v1/cgroup` reports (each reads one cgroup's files and processes).
const REPORT_PERMITS: usize = 2;

/// Options of `memlens serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Collection interval.
    pub interval: Duration,
}

/// One collection, rendered.
#[derive(Debug)]
pub struct Rendered {
    /// Prometheus text 0.0.4.
    pub text: Bytes,
    /// OpenMetrics 1.0 text.
    pub openmetrics: Bytes,
    /// The snapshot's overview, rendered to JSON on first request (at most once each).
    snapshot: Snapshot,
    overview_all: OnceLock<Bytes>,
    overview_containers: OnceLock<Bytes>,
    /// When the collection finished.
    pub at: Instant,
}

impl Rendered {
    /// Renders a snapshot in both exposition formats.
    pub fn new(mut snapshot: Snapshot) -> Self {
        // The families are encoded here and dropped; only the overview is kept (for the API).
        let fams = Arc::new(std::mem::take(&mut snapshot.families));
        let text = Bytes::from(prometheus::text_004(&fams));
        let openmetrics = Bytes::from(prometheus::openmetrics(fams));
        Rendered {
            text,
            openmetrics,
            snapshot,
            overview_all: OnceLock::new(),
            overview_containers: OnceLock::new(),
            at: Instant::now(),
        }
    }

    fn overview(&self, all: bool) -> Bytes {
        let (cell, o) = if all {
            (&self.overview_all, None)
        } else {
            (
                &self.overview_containers,
                Some(self.snapshot.overview.containers_only()),
            )
        };
        cell.get_or_init(|| {
            let o = o.as_ref().unwrap_or(&self.snapshot.overview);
            Bytes::from(serde_json::to_vec(&json::overview(o)).unwrap_or_default())
        })
        .clone()
    }
}

struct State {
    root: Arc<Root>,
    hierarchy: Hierarchy,
    latest: RwLock<Arc<Rendered>>,
    reports: Arc<Semaphore>,
}

impl State {
    fn latest(&self) -> Arc<Rendered> {
        match self.latest.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

fn collect(root: &Root, h: &Hierarchy, tree: &mut Tree, kills: &mut KillLog) -> Rendered {
    let mut snap = metrics::collect_tree(root, h, tree);
    snap.families
        .push(metrics::oom_kills_family(kills.refresh(root)));
    tracing::debug!(
        cgroups = snap.overview.rows.len(),
        duration_ms = snap.duration.as_secs_f64() * 1e3,
        "collected"
    );
    Rendered::new(snap)
}

/// Runs the exporter until the process is killed. Collects once before listening, so
/// `/metrics` never answers without data.
pub fn run(root: Root, h: Hierarchy, opts: ServeOptions) -> std::io::Result<()> {
    let root = Arc::new(root);
    let mut tree = Tree::new();
    // The kernel log's OOM reports (HOST/dev/kmsg under --host-root, else syslog(2)).
    let mut kills = KillLog::open(&root);
    if let Some(p) = &kills.problem {
        tracing::warn!(problem = %p, "OOM kill reports unavailable; the counters still count kills");
    }
    let first = collect(&root, &h, &mut tree, &mut kills);
    tracing::info!(
        cgroups = first.snapshot.overview.rows.len(),
        version = h.version.number(),
        mount = %h.mount_point.display(),
        "first collection done"
    );
    let state = Arc::new(State {
        root: root.clone(),
        hierarchy: h.clone(),
        latest: RwLock::new(Arc::new(first)),
        reports: Arc::new(Semaphore::new(REPORT_PERMITS)),
    });
    let st = state.clone();
    let interval = opts.interval;
    std::thread::Builder::new()
        .name("memlens-collect".into())
        .spawn(move || {
            let mut next = Instant::now() + interval;
            loop {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                let r = collect(&st.root, &st.hierarchy, &mut tree, &mut kills);
                let took = r.snapshot.duration;
                if took > interval {
                    tracing::warn!(
                        duration_ms = took.as_secs_f64() * 1e3,
                        interval_ms = interval.as_secs_f64() * 1e3,
                        "collection took longer than the interval"
                    );
                }
                match st.latest.write() {
                    Ok(mut g) => *g = Arc::new(r),
                    Err(p) => *p.into_inner() = Arc::new(r),
                }
                next += interval;
                // After a stall (suspend, overload) do not try to catch up.
                if next < Instant::now() {
                    next = Instant::now() + interval;
                }
            }
        })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(serve(state, opts.listen))
}

async fn serve(state: Arc<State>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(listen = %listener.local_addr()?, "serving /metrics, /healthz, /api/v1/overview, /api/v1/cgroup");
    let conns = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(handle(&st, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let res = tokio::select! {
                r = conn.as_mut() => r,
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
                        Ok(r) => r,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

fn respond(status: StatusCode, ctype: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": msg });
    respond(
        status,
        "application/json",
        Bytes::from(body.to_string().into_bytes()),
    )
}

/// Decodes `%XX` and `+` in a query value.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v)).flatten()
    })
}

async fn handle(st: &Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET only");
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    let query = req.uri().query();
    match path {
        "/metrics" => {
            let latest = st.latest();
            let accept = req
                .headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if prometheus::wants_openmetrics(accept) {
                respond(
                    StatusCode::OK,
                    prometheus::CONTENT_TYPE_OPENMETRICS,
                    latest.openmetrics.clone(),
                )
            } else {
                respond(
                    StatusCode::OK,
                    prometheus::CONTENT_TYPE_004,
                    latest.text.clone(),
                )
            }
        }
        "/healthz" => {
            let age = st.latest().at.elapsed();
            // Unhealthy when the collector thread has stopped producing (stuck on a hung
            // file system, or dead).
            if age > Duration::from_secs(300) {
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("last collection {}s ago", age.as_secs()),
                )
            } else {
                respond(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    Bytes::from_static(b"ok\n"),
                )
            }
        }
        "/api/v1/overview" => {
            let all = matches!(
                query_param(query, "all").as_deref(),
                Some("" | "1" | "true")
            );
            respond(
                StatusCode::OK,
                "application/json",
                st.latest().overview(all),
            )
        }
        "/api/v1/cgroup" => {
            let Some(p) = query_param(query, "path") else {
                return error(StatusCode::BAD_REQUEST, "missing ?path=/cgroup/path");
            };
            if !p.starts_with('/') || p.split('/').any(|c| c == ".." || c == ".") {
                return error(
                    StatusCode::BAD_REQUEST,
                    "path must be an absolute cgroup path within the memory hierarchy",
                );
            }
            let Ok(permit) = st.reports.clone().try_acquire_owned() else {
                return error(StatusCode::SERVICE_UNAVAILABLE, "busy: retry");
            };
            let st2 = st.clone();
            let res = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                report::build(&st2.root, &st2.hierarchy, &p, Options::default()).map(|mut r| {
                    // Command lines can carry secrets (tokens in arguments); an HTTP endpoint
                    // must not hand them out. Everything else is `memlens show --json`.
                    for pr in &mut r.processes {
                        pr.cmdline = None;
                    }
                    serde_json::to_vec(&json::show(&r)).unwrap_or_default()
                })
            })
            .await;
            match res {
                Ok(Ok(body)) => respond(StatusCode::OK, "application/json", Bytes::from(body)),
                Ok(Err(e)) => error(StatusCode::NOT_FOUND, &e.to_string()),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "endpoints: /metrics /healthz /api/v1/overview[?all=1] /api/v1/cgroup?path=/x/y",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_param(Some("a=1&path=%2Fdocker%2Fab+c"), "path").as_deref(),
            Some("/docker/ab c")
        );
        assert_eq!(query_param(Some("path=%zz"), "path"), None);
        assert_eq!(query_param(Some("all"), "all").as_deref(), Some(""));
        assert_eq!(query_param(None, "path"), None);
    }
}
