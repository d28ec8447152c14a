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
//!   and a size limit for its buffer. The connection table (`conns`) limits connections per
//!   client address and in total; at a limit the longest-idle connection is closed to make
//!   room, and when all are busy the newcomer gets a 503 (never a silent close). So slow,
//!   malformed, abandoned or hoarded connections cost a bounded amount and cannot lock a
//!   scraper out.
//! - Only GET/HEAD are served; nothing writes.

use crate::cgroup::tier::TierOptions;
use crate::cgroup::walk::Tree;
use crate::metrics::{self, DurationHistogram, MetricTiers, Snapshot};
use crate::model::Hierarchy;
use crate::oom::KillLog;
use crate::render::{json, prometheus};
use crate::report::{self, Options};
use crate::sys::Root;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

mod conns;

pub use conns::{MAX_CONNECTIONS, MAX_PER_ADDR};
/// The listen backlog: connections the kernel completes and queues before `accept`. std's
/// `bind` listens with 128, and a burst of 500 scrapes on top of 600 reconnecting hoarders
/// overflows that (TcpExt ListenOverflows): on 5.10 and 6.1 the kernel then resets the
/// connections it never queued (the 6.1 guest: 58 of 500 read `ECONNRESET` with no byte, and
/// the legitimate scrape on 5.10-v1), where the server would have answered each one. Linux
/// caps it at net.core.somaxconn (4096 since 5.4).
pub const LISTEN_BACKLOG: i32 = 4096;
/// Refused connections being answered 503 at once; beyond this they are closed unanswered.
/// As deep as the listen queue plus the table: a full queue of refused newcomers (the deep
/// backlog hands them over as fast as they connect) all get their 503 (with 1,024 the host
/// closed 9 of a flood silently).
const MAX_REFUSING: usize = LISTEN_BACKLOG as usize + MAX_CONNECTIONS;
/// Longest a refused connection is kept to read the client's request (the same time an
/// admitted one has for its headers, [`HEADER_TIMEOUT`]), so that its close is a FIN after
/// the 503, not a reset over an unread or late request.
const REFUSE_LINGER: Duration = HEADER_TIMEOUT;
/// What `/` answers: the endpoints.
const INDEX: &str = "memlens exporter\n\n\
/metrics                     Prometheus text 0.0.4 (OpenMetrics 1.0 when Accept asks for it)\n\
/healthz                     ok while collections are fresh\n\
/api/v1/overview[?all=1]     the `memlens --json` object (containers; all=1: every memory cgroup)\n\
/api/v1/cgroup?path=/x/y     the `memlens show --json` object of one cgroup (command lines left out)\n\
/api/v1/cgroup?target=T      the same for any TARGET form: container ID or prefix, PID, pod, cgroup name\n";

/// Refusals logged one by one per [`REFUSAL_LOG_WINDOW`]; the rest are counted and summed up
/// in one line when the window ends.
const REFUSALS_LOGGED: u32 = 5;
const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);
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
    /// Write the bound port here once listening (`--listen 127.0.0.1:0` picks a free one).
    pub port_file: Option<std::path::PathBuf>,
    /// Tiered reads (`--full-every`, `--reread-above`, `--max-fds`).
    pub tiers: TierOptions,
}

/// What the collector keeps between collections: the cgroup list, the tiers, the OOM log,
/// the duration histogram.
struct Collector {
    tree: Tree,
    tiers: MetricTiers,
    kills: KillLog,
    hist: DurationHistogram,
    /// Each format's per-cgroup lines, re-encoded only for cgroups whose series changed.
    lines: [prometheus::LineCache; 2],
}

/// One collection, rendered.
#[derive(Debug)]
pub struct Rendered {
    /// The families after the per-cgroup ones (host, collection, own cost), and the
    /// cgroups' series, for a format first asked for after the collection.
    families: Arc<Vec<metrics::Family>>,
    series: Arc<Vec<metrics::CgSeries>>,
    /// Prometheus text 0.0.4, rendered on first request (or by the collector, when the
    /// previous snapshot was asked for it: then it is the line cache's lines, not a copy).
    text: OnceLock<Arc<prometheus::Document>>,
    /// OpenMetrics 1.0 text, likewise. With 10,000 cgroups each text is ~25 MB: a scraper
    /// asks for one of them (Prometheus: OpenMetrics), so only that one is rendered, and the
    /// line cache's document is written out in chunks ([`MetricsBody`]), never whole.
    openmetrics: OnceLock<Arc<prometheus::Document>>,
    /// The snapshot's overview, rendered to JSON on first request (at most once each).
    snapshot: Snapshot,
    overview_all: OnceLock<Bytes>,
    overview_containers: OnceLock<Bytes>,
    /// When the collection finished.
    pub at: Instant,
}

impl Rendered {
    /// A collection: `snapshot`'s families follow the per-cgroup ones of `series`; `done`
    /// holds the formats the collector rendered already (0.0.4, OpenMetrics).
    pub fn new(
        mut snapshot: Snapshot,
        series: Vec<metrics::CgSeries>,
        done: [Option<prometheus::Document>; 2],
    ) -> Self {
        let r = Rendered {
            families: Arc::new(std::mem::take(&mut snapshot.families)),
            series: Arc::new(series),
            text: OnceLock::new(),
            openmetrics: OnceLock::new(),
            snapshot,
            overview_all: OnceLock::new(),
            overview_containers: OnceLock::new(),
            at: Instant::now(),
        };
        let [text, om] = done;
        if let Some(t) = text {
            let _ = r.text.set(Arc::new(t));
        }
        if let Some(t) = om {
            let _ = r.openmetrics.set(Arc::new(t));
        }
        r
    }

    /// Every family, the per-cgroup ones first (a format the collector did not render).
    fn all_families(&self) -> Vec<metrics::Family> {
        let mut f = metrics::cgroup_families(&self.series);
        f.extend(self.families.iter().cloned());
        f
    }

    /// The Prometheus text 0.0.4.
    pub fn text(&self) -> Arc<prometheus::Document> {
        self.text
            .get_or_init(|| {
                Arc::new(prometheus::Document::whole(prometheus::text_004(
                    &self.all_families(),
                )))
            })
            .clone()
    }

    /// The OpenMetrics 1.0 text.
    pub fn openmetrics(&self) -> Arc<prometheus::Document> {
        self.openmetrics
            .get_or_init(|| {
                Arc::new(prometheus::Document::whole(prometheus::openmetrics(
                    Arc::new(self.all_families()),
                )))
            })
            .clone()
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
            Bytes::from(
                serde_json::to_vec(&json::envelope("overview", json::overview(o), None))
                    .unwrap_or_default(),
            )
        })
        .clone()
    }
}

struct State {
    root: Arc<Root>,
    hierarchy: Hierarchy,
    latest: RwLock<Arc<Rendered>>,
    reports: Arc<Semaphore>,
    /// The collection interval: `/healthz` freshness follows it.
    interval: Duration,
    /// Formats asked for since the last collection (0.0.4, OpenMetrics): the collector
    /// renders those at once, the other only when asked.
    wanted: [std::sync::atomic::AtomicBool; 2],
}

impl State {
    fn latest(&self) -> Arc<Rendered> {
        match self.latest.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

fn collect(root: &Root, h: &Hierarchy, c: &mut Collector, wanted: [bool; 2]) -> Rendered {
    let (mut snap, series) = metrics::collect_series(root, h, &mut c.tree, Some(&mut c.tiers));
    snap.families
        .push(metrics::oom_kills_family(c.kills.refresh(root)));
    crate::trend::add_forecast_family(&mut snap, h);
    c.hist.observe(snap.duration);
    snap.families.extend(metrics::own_families(
        &crate::proc::own_cost(),
        &c.hist,
        Some(c.tiers.counts),
    ));
    tracing::debug!(
        cgroups = snap.overview.rows.len(),
        duration_ms = snap.duration.as_secs_f64() * 1e3,
        "collected"
    );
    // The formats scraped since the last collection, through the line caches: a cgroup the
    // tiers kept costs a copy of its lines.
    let mut done: [Option<prometheus::Document>; 2] = [None, None];
    for (i, cache) in c.lines.iter_mut().enumerate() {
        if wanted[i] {
            done[i] = Some(cache.encode(&series, snap.families.clone()));
        }
    }
    Rendered::new(snap, series, done)
}

/// Runs the exporter until SIGTERM or SIGINT (then it logs a line and returns `Ok`). Binds
/// first, so a port conflict fails at once, before the first collection; then collects once
/// before accepting, so `/metrics` never answers without data.
pub fn run(root: Root, h: Hierarchy, opts: ServeOptions) -> std::io::Result<()> {
    let std_listener = std::net::TcpListener::bind(opts.listen)?;
    deepen_backlog(&std_listener)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    tracing::info!(listen = %bound, port = bound.port(), "listening");
    if let Some(pf) = &opts.port_file {
        // Written whole under a temporary name, then renamed: a reader polling for the file
        // never sees it half-written.
        let tmp = pf.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", bound.port()))
            .and_then(|_| std::fs::rename(&tmp, pf))
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("--port-file {}: {e}", pf.display()))
            })?;
    }
    let root = Arc::new(root);
    // The kernel log's OOM reports (HOST/dev/kmsg under --host-root, else syslog(2)).
    let kills = KillLog::open(&root);
    if let Some(p) = &kills.problem {
        tracing::warn!(problem = %p, "OOM kill reports unavailable; the counters still count kills");
    }
    let mut c = Collector {
        tree: Tree::new(),
        tiers: MetricTiers::new(opts.tiers),
        kills,
        hist: DurationHistogram::default(),
        lines: [
            prometheus::LineCache::new(prometheus::Format::Text004),
            prometheus::LineCache::new(prometheus::Format::OpenMetrics),
        ],
    };
    let first = collect(&root, &h, &mut c, [false, false]);
    trim();
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
        interval: opts.interval,
        wanted: Default::default(),
    });
    let st = state.clone();
    let interval = opts.interval;
    std::thread::Builder::new()
        .name("memlens-collect".into())
        .spawn(move || {
            let mut next = Instant::now() + interval;
            loop {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                let wanted = st
                    .wanted
                    .each_ref()
                    .map(|w| w.swap(false, Ordering::Relaxed));
                let r = collect(&st.root, &st.hierarchy, &mut c, wanted);
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
                trim();
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
    rt.block_on(serve(state, std_listener))
}

/// Raises the listen backlog of a listening socket to [`LISTEN_BACKLOG`]: std offers no way
/// to choose it, and listen(2) again on a listening socket updates it (net/ipv4/af_inet.c
/// inet_listen: "allow the backlog to be adjusted").
fn deepen_backlog(l: &std::net::TcpListener) -> std::io::Result<()> {
    // SAFETY: listen(2) on a socket this listener owns; no memory is passed.
    let r = unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(l), LISTEN_BACKLOG) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Gives the heap memory freed with the previous snapshot back to the kernel: glibc keeps
/// freed memory of each thread's arena for reuse, and the snapshot of 10,000 cgroups is tens of
/// megabytes built on one thread and freed on another (benches/scale.rs: RSS 97 -> MB).
fn trim() {
    // SAFETY: malloc_trim has no preconditions; it only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn serve(state: Arc<State>, std_listener: std::net::TcpListener) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = TcpListener::from_std(std_listener)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tracing::info!(listen = %listener.local_addr()?, "serving / (index), /metrics, /healthz, /api/v1/overview, /api/v1/cgroup");
    raise_fd_limit();
    let conns = conns::Conns::new(MAX_CONNECTIONS, MAX_PER_ADDR);
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut refusals = RefusalLog::new();
    let mut log_tick = tokio::time::interval(REFUSAL_LOG_WINDOW);
    log_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = log_tick.tick() => {
                refusals.roll();
                continue;
            }
            _ = term.recv() => {
                refusals.flush();
                Unanswered::log();
                tracing::info!("SIGTERM received: exiting");
                return Ok(());
            }
            _ = int.recv() => {
                refusals.flush();
                Unanswered::log();
                tracing::info!("SIGINT received: exiting");
                return Ok(());
            }
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match conns.admit(peer.ip(), std::os::fd::AsRawFd::as_raw_fd(&stream)) {
            Ok(s) => s,
            Err(why) => {
                refusals.refused(peer, &why);
                // Every refusal slot lingering: wait for one (each ends within REFUSE_LINGER)
                // instead of closing this one unanswered; meanwhile the listen queue holds
                // the newcomers.
                let permit = match refusing.clone().try_acquire_owned() {
                    Ok(p) => Ok(p),
                    Err(_) => {
                        Unanswered::count(&UNANSWERED.waited_for_refusal_slot);
                        refusing.clone().acquire_owned().await
                    }
                };
                match permit {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            refuse(stream, &why).await;
                            drop(permit);
                        });
                    }
                    // The semaphore is never closed.
                    Err(_) => {
                        Unanswered::count(&UNANSWERED.no_refusal_slot);
                        drop(stream)
                    }
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        let refusing = refusing.clone();
        tokio::spawn(async move {
            let slot = Arc::new(slot);
            let closed = slot.closed.clone();
            let s2 = slot.clone();
            // Whether a request ever began on this connection (see the eviction below).
            let began = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let b2 = began.clone();
            let svc = service_fn(move |req| {
                let st = st.clone();
                let slot = s2.clone();
                b2.store(true, std::sync::atomic::Ordering::Relaxed);
                async move {
                    slot.busy(true);
                    let r = handle(&st, req).await;
                    slot.busy(false);
                    Ok::<_, Infallible>(r)
                }
            });
            let mut conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            let res = tokio::select! {
                r = &mut conn => r,
                _ = closed.notified() => {
                    // Evicted while idle to make room: no request is in progress. One that
                    // never began a request is a client that connected moments ago and whose
                    // request has not arrived yet (a burst on a slow machine): it gets the
                    // 503 a refused newcomer gets, not a silent close.
                    let began = began.load(std::sync::atomic::Ordering::Relaxed);
                    if !began && let Ok(permit) = refusing.try_acquire_owned() {
                        tracing::debug!(%peer, "connection without a request yet closed to make room: 503");
                        let stream = conn.into_parts().io.into_inner();
                        refuse(stream, "evicted to make room for a lighter client").await;
                        drop(permit);
                    } else {
                        if !began {
                            Unanswered::count(&UNANSWERED.evicted_no_refusal_slot);
                        }
                        tracing::debug!(%peer, "idle connection closed to make room");
                    }
                    Ok(())
                }
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                    match tokio::time::timeout(CLOSE_GRACE, &mut conn).await {
                        Ok(r) => r,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = res {
                if !began.load(std::sync::atomic::Ordering::Relaxed) {
                    Unanswered::count(&UNANSWERED.error_before_request);
                }
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// Connections the server closed without an HTTP answer, by cause, logged in one line at
/// SIGTERM/SIGINT when there were any: a burst that saw silent closes (the 5.10 TCG guest: 3 of
/// 500) says which path closed them. A keep-alive connection closed idle after its requests
/// is not counted (it was answered).
struct Unanswered {
    /// Refused and no refusal slot could be had (cannot happen: the semaphore is never
    /// closed; counted so that it would show).
    no_refusal_slot: std::sync::atomic::AtomicU64,
    /// Not unanswered: refused while [`MAX_REFUSING`] refusals were lingering, so the accept
    /// loop waited for one to end (the listen queue held the newcomers meanwhile).
    waited_for_refusal_slot: std::sync::atomic::AtomicU64,
    /// Closed to make room before its request began, likewise without a refusal slot.
    evicted_no_refusal_slot: std::sync::atomic::AtomicU64,
    /// Ended by an error before a request began (the header timeout, a reset, bad input).
    error_before_request: std::sync::atomic::AtomicU64,
}

static UNANSWERED: Unanswered = Unanswered {
    no_refusal_slot: std::sync::atomic::AtomicU64::new(0),
    waited_for_refusal_slot: std::sync::atomic::AtomicU64::new(0),
    evicted_no_refusal_slot: std::sync::atomic::AtomicU64::new(0),
    error_before_request: std::sync::atomic::AtomicU64::new(0),
};

impl Unanswered {
    fn count(c: &std::sync::atomic::AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn log() {
        let [a, b, c] = [
            &UNANSWERED.no_refusal_slot,
            &UNANSWERED.evicted_no_refusal_slot,
            &UNANSWERED.error_before_request,
        ]
        .map(|x| x.load(Ordering::Relaxed));
        if a + b + c > 0 {
            tracing::warn!(
                refused_without_slot = a,
                evicted_without_slot = b,
                error_before_request = c,
                "connections closed without an answer"
            );
        }
        let w = UNANSWERED.waited_for_refusal_slot.load(Ordering::Relaxed);
        if w > 0 {
            tracing::info!(
                refusals = w,
                max_refusing = MAX_REFUSING,
                "refusals that waited for a refusal slot (answered 503 later)"
            );
        }
    }
}

/// The log of refused connections, bounded: a client reconnecting as fast as it is refused
/// makes thousands of refusals a second, and one WARN line each made the log the denial of
/// service: the accepting thread blocked in write(2) whenever the log sink was slower (a
/// serial console, a rate-limited journald), and nothing was served. So the first
/// [`REFUSALS_LOGGED`] of a window are logged one by one, the rest in one line at its end.
struct RefusalLog {
    since: Instant,
    logged: u32,
    unlogged: u64,
    last: Option<(SocketAddr, String)>,
    /// Refusals of the window per client address (at most [`REFUSAL_ADDRS`] kept, the rest
    /// counted in `other_addrs`): the summary line says whom the server refused, so a light
    /// client's refusal (the legitimate scraper's) is not lost among a hoarder's.
    by_addr: std::collections::HashMap<std::net::IpAddr, u64>,
    other_addrs: u64,
}

/// Client addresses counted one by one in a window of refusals; the summary line names the
/// [`REFUSAL_ADDRS_SHOWN`] most refused.
const REFUSAL_ADDRS: usize = 1024;
const REFUSAL_ADDRS_SHOWN: usize = 16;

impl RefusalLog {
    fn new() -> Self {
        RefusalLog {
            since: Instant::now(),
            logged: 0,
            unlogged: 0,
            last: None,
            by_addr: Default::default(),
            other_addrs: 0,
        }
    }

    /// The window's refusals per address, most refused first: `127.0.0.2=540 127.0.0.1=1`.
    fn by_address(&self) -> String {
        let mut v: Vec<_> = self.by_addr.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut out: Vec<String> = v
            .iter()
            .take(REFUSAL_ADDRS_SHOWN)
            .map(|(a, n)| format!("{a}={n}"))
            .collect();
        let more = v.len().saturating_sub(REFUSAL_ADDRS_SHOWN);
        if more > 0 || self.other_addrs > 0 {
            out.push(format!(
                "+{} more addresses",
                more as u64 + self.other_addrs
            ));
        }
        out.join(" ")
    }

    fn refused(&mut self, peer: SocketAddr, why: &str) {
        self.roll();
        let n = self.by_addr.len();
        match self.by_addr.get_mut(&peer.ip()) {
            Some(c) => *c += 1,
            None if n < REFUSAL_ADDRS => {
                self.by_addr.insert(peer.ip(), 1);
            }
            None => self.other_addrs += 1,
        }
        if self.logged < REFUSALS_LOGGED {
            self.logged += 1;
            tracing::warn!(%peer, reason = %why, "connection refused with 503");
        } else {
            self.unlogged += 1;
            self.last = Some((peer, why.to_string()));
        }
    }

    /// Ends the window when it is over: the count of refusals not logged, in one line.
    fn roll(&mut self) {
        if self.since.elapsed() >= REFUSAL_LOG_WINDOW {
            self.flush();
        }
    }

    /// Logs the count of refusals not logged yet and starts a new window.
    fn flush(&mut self) {
        if let Some((peer, why)) = self.last.take() {
            tracing::warn!(
                count = self.unlogged,
                window_s = self.since.elapsed().as_secs(),
                last_peer = %peer,
                last_reason = %why,
                by_address = %self.by_address(),
                "more connections refused with 503 (counted, not logged one by one)"
            );
        }
        self.since = Instant::now();
        self.logged = 0;
        self.unlogged = 0;
        self.by_addr.clear();
        self.other_addrs = 0;
    }
}

/// Answers a connection that cannot be admitted: `503` with `Retry-After` and a FIN, then
/// reads what the client sends until the end of its request headers, its close, or
/// [`REFUSE_LINGER`]. Closing while a request is unread, or before a late one arrives, makes
/// the kernel reset the connection, and a client that had not read the 503 yet then reads
/// `ECONNRESET` instead (the 1 s linger of before was shorter than a TCG guest's client took
/// under attack).
async fn refuse(mut stream: tokio::net::TcpStream, why: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({ "error": format!("busy: {why}; retry") }).to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSE_LINGER, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 2048];
        let mut seen = HeadEnd::default();
        let mut total = 0usize;
        while total < 64 * 1024 {
            match stream.read(&mut buf).await? {
                0 => break,
                n => {
                    total += n;
                    if seen.feed(&buf[..n]) {
                        break;
                    }
                }
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    // What arrived meanwhile is read too (a body, a pipelined request): the close stays a FIN.
    let mut buf = [0u8; 2048];
    while let Ok(n) = stream.try_read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Finds the end of a request's headers (`\r\n\r\n`, or `\n\n` as hyper also takes it)
/// across reads.
#[derive(Default)]
struct HeadEnd {
    /// The last 3 bytes fed.
    tail: Vec<u8>,
}

impl HeadEnd {
    /// Feeds the next bytes; true once the headers have ended.
    fn feed(&mut self, b: &[u8]) -> bool {
        let mut w = std::mem::take(&mut self.tail);
        w.extend_from_slice(b);
        let done = w.windows(4).any(|x| x == b"\r\n\r\n") || w.windows(2).any(|x| x == b"\n\n");
        let keep = w.len().saturating_sub(3);
        self.tail = w.split_off(keep);
        done
    }
}

/// Raises the soft limit of open files to the hard one (at most 65536): the connection
/// limits, not EMFILE, must be what bounds the server (the default soft limit is 1024).
fn raise_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// Bytes of a `/metrics` response body chunk: the socket takes it in one or two writes.
const METRICS_CHUNK: usize = 64 * 1024;

/// A response body: a small one whole, or a `/metrics` document written out chunk by chunk
/// as the connection takes it (a 25 MB exposition at 10,000 cgroups is not copied into one
/// buffer per response). Its size is exact, so the response carries a Content-Length, as
/// when the body was one buffer.
pub enum MetricsBody {
    /// A body in one buffer.
    Full(Full<Bytes>),
    /// A document and where its writing is.
    Doc(Arc<prometheus::Document>, prometheus::Cursor, u64),
}

impl MetricsBody {
    fn doc(d: Arc<prometheus::Document>) -> Self {
        let n = d.len() as u64;
        MetricsBody::Doc(d, prometheus::Cursor::default(), n)
    }
}

impl Body for MetricsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MetricsBody::Full(f) => std::pin::Pin::new(f).poll_frame(cx),
            MetricsBody::Doc(d, cur, left) => {
                let c = d.next_chunk(cur, METRICS_CHUNK);
                *left = left.saturating_sub(c.as_ref().map_or(0, |c| c.len() as u64));
                std::task::Poll::Ready(c.map(|c| Ok(Frame::data(c))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MetricsBody::Full(f) => f.is_end_stream(),
            MetricsBody::Doc(_, _, left) => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MetricsBody::Full(f) => f.size_hint(),
            MetricsBody::Doc(_, _, left) => SizeHint::with_exact(*left),
        }
    }
}

fn respond_doc(ctype: &'static str, doc: Arc<prometheus::Document>) -> Response<MetricsBody> {
    let mut r = Response::new(MetricsBody::doc(doc));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn respond(status: StatusCode, ctype: &'static str, body: Bytes) -> Response<MetricsBody> {
    let mut r = Response::new(MetricsBody::Full(Full::new(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn error(status: StatusCode, msg: &str) -> Response<MetricsBody> {
    let body = serde_json::json!({ "error": msg });
    respond(
        status,
        "application/json",
        Bytes::from(body.to_string().into_bytes()),
    )
}

/// Decodes `%XX` and `+` in a query value; `None` when it is not valid percent-encoded UTF-8.
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

/// The value of `key` in a query string: `None` when absent, `Some(Err(raw))` when present but
/// not valid percent-encoded UTF-8 (so the answer can say which, issue 19 item 18).
fn query_value(query: Option<&str>, key: &str) -> Option<Result<String, String>> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v).ok_or_else(|| v.to_string()))
    })
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query_value(query, key).and_then(Result::ok)
}

async fn handle(st: &Arc<State>, req: Request<Incoming>) -> Response<MetricsBody> {
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
                st.wanted[1].store(true, Ordering::Relaxed);
                respond_doc(prometheus::CONTENT_TYPE_OPENMETRICS, latest.openmetrics())
            } else {
                st.wanted[0].store(true, Ordering::Relaxed);
                respond_doc(prometheus::CONTENT_TYPE_004, latest.text())
            }
        }
        "/healthz" => {
            let age = st.latest().at.elapsed();
            // Unhealthy when the collector thread has stopped producing (stuck on a hung
            // file system, or dead): a snapshot is due every interval, so it is stale after
            // two intervals plus a minute for a slow collection.
            if age > stale_after(st.interval) {
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
        "/" => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from_static(INDEX.as_bytes()),
        ),
        "/api/v1/cgroup" => {
            let p = match (query_value(query, "path"), query_value(query, "target")) {
                (Some(Err(raw)), _) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "?path={raw} is not valid percent-encoded UTF-8 (a cgroup path is text; encode it with %XX of its UTF-8 bytes)"
                        ),
                    );
                }
                (None, Some(Err(raw))) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("?target={raw} is not valid percent-encoded UTF-8"),
                    );
                }
                (Some(Ok(p)), _) => {
                    if !p.starts_with('/') || p.split('/').any(|c| c == ".." || c == ".") {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "path must be an absolute cgroup path within the memory hierarchy",
                        );
                    }
                    if !st
                        .root
                        .exists(&crate::cgroup::read::fs_path(&st.hierarchy, &p))
                    {
                        return error(StatusCode::NOT_FOUND, &format!("no such cgroup: {p}"));
                    }
                    p
                }
                // Every TARGET form of the command line (container ID, PID, pod, name...).
                (None, Some(Ok(t))) => {
                    let st2 = st.clone();
                    match tokio::task::spawn_blocking(move || {
                        crate::target::resolve(&st2.root, &st2.hierarchy, &t)
                    })
                    .await
                    {
                        Ok(Ok(p)) => p,
                        Ok(Err(e)) => return error(StatusCode::NOT_FOUND, &e.to_string()),
                        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                    }
                }
                (None, None) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "missing ?path=/cgroup/path or ?target=TARGET",
                    );
                }
            };
            let Ok(permit) = st.reports.clone().try_acquire_owned() else {
                return error(StatusCode::SERVICE_UNAVAILABLE, "busy: retry");
            };
            let st2 = st.clone();
            let res = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                // Only a directory of the mounted memory hierarchy (cgroup/handle.rs).
                if let Err(e) = crate::cgroup::handle::verify(&st2.root, &st2.hierarchy, &p) {
                    return Err(crate::sys::ReadError::Parse {
                        path: p.clone(),
                        reason: e.to_string(),
                    });
                }
                report::build(&st2.root, &st2.hierarchy, &p, Options::default()).map(|mut r| {
                    // Command lines can carry secrets (tokens in arguments); an HTTP endpoint
                    // must not hand them out. Everything else is `memlens show --json`.
                    for pr in &mut r.processes {
                        pr.cmdline = None;
                    }
                    let mut v = json::show(&r);
                    v["findings"] = serde_json::json!(crate::rules::evaluate(&r, None));
                    serde_json::to_vec(&json::envelope("show", v, None)).unwrap_or_default()
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
            "endpoints: / /metrics /healthz /api/v1/overview[?all=1] /api/v1/cgroup?path=/x/y|?target=TARGET",
        ),
    }
}

/// When `/healthz` calls the last snapshot stale: two intervals and a minute.
fn stale_after(interval: Duration) -> Duration {
    interval.saturating_mul(2) + Duration::from_secs(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection reads up to the end of the request's headers, wherever the reads
    /// split it, and no further: then its close is a FIN (nothing unread).
    #[test]
    fn a_refusal_reads_up_to_the_end_of_the_headers_across_reads() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        for cut in 1..req.len() {
            let mut h = HeadEnd::default();
            let (a, b) = req.split_at(cut);
            assert!(!h.feed(a), "ended early at {cut}");
            assert!(h.feed(b), "not ended, cut at {cut}");
        }
        // One byte at a time.
        let mut h = HeadEnd::default();
        let ends: Vec<bool> = req.iter().map(|b| h.feed(&[*b])).collect();
        assert_eq!(ends.iter().position(|e| *e), Some(req.len() - 1));
        assert!(HeadEnd::default().feed(b"GET / HTTP/1.0\n\n"));
        assert!(!HeadEnd::default().feed(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }

    /// The refusal summary names whom it refused, a light client's one refusal among a
    /// hoarder's thousands (the 5.10-v1 guest's legitimate scrape was reset and the log could
    /// not say whether the server had refused it).
    #[test]
    fn the_refusal_summary_counts_per_address() {
        let mut l = RefusalLog::new();
        let p = |a: [u8; 4], port| SocketAddr::from((a, port));
        for i in 0..500 {
            l.refused(p([127, 0, 0, 2], 1000 + i), "full");
        }
        l.refused(p([127, 0, 0, 1], 40000), "full");
        for i in 0..3 {
            l.refused(p([127, 0, 0, 3], 2000 + i), "full");
        }
        assert_eq!(l.by_address(), "127.0.0.2=500 127.0.0.3=3 127.0.0.1=1");
        for a in 0..40u8 {
            l.refused(p([10, 0, 0, a], 1), "full");
        }
        let s = l.by_address();
        assert!(s.ends_with("+27 more addresses"), "{s}");
        l.flush();
        assert_eq!(l.by_address(), "");
    }

    #[test]
    fn freshness_follows_the_interval() {
        // A 5-minute interval must not be stale 5 minutes after a collection.
        assert!(stale_after(Duration::from_secs(300)) > Duration::from_secs(600));
        assert!(stale_after(Duration::from_secs(3600)) > Duration::from_secs(7200));
        assert_eq!(stale_after(Duration::from_secs(1)), Duration::from_secs(62));
    }

    #[test]
    fn badly_encoded_values_are_not_missing() {
        assert_eq!(
            query_value(Some("path=/%ff"), "path"),
            Some(Err("/%ff".into()))
        );
        assert_eq!(query_value(Some("path=%2"), "path"), Some(Err("%2".into())));
        assert_eq!(query_value(Some("x=1"), "path"), None);
    }

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

    /// The `/metrics` body written out chunk by chunk from the line cache is byte for byte
    /// the String the encoders write for the whole model (what the response was before it
    /// was streamed), with its exact size announced (a Content-Length, not chunked).
    #[test]
    fn the_streamed_metrics_body_is_the_encoders_text() {
        use http_body_util::BodyExt;
        let series: Vec<metrics::CgSeries> = (0..300u64)
            .map(|i| metrics::CgSeries {
                labels: Arc::from(vec![
                    ("id", format!("/memlens-c{i}")),
                    ("namespace", String::new()),
                    ("name", format!("n\"{i}")),
                ]),
                values: [Some(metrics::Value::Int(i * 4096)); metrics::N_CGROUP_VALUES],
                faults: vec![("pgfault", "container", i), ("pgmajfault", "hierarchy", 1)],
            })
            .collect();
        let rest0 = metrics::own_families(
            &crate::proc::own_cost(),
            &DurationHistogram::default(),
            None,
        );
        let rest = || rest0.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for f in [prometheus::Format::Text004, prometheus::Format::OpenMetrics] {
            let mut fams = metrics::cgroup_families(&series);
            fams.extend(rest());
            let want = match f {
                prometheus::Format::Text004 => prometheus::text_004(&fams),
                prometheus::Format::OpenMetrics => prometheus::openmetrics(Arc::new(fams)),
            };
            let mut cache = prometheus::LineCache::new(f);
            for round in 0..2 {
                let body = MetricsBody::doc(Arc::new(cache.encode(&series, rest())));
                assert_eq!(body.size_hint().exact(), Some(want.len() as u64));
                let got = rt.block_on(body.collect()).unwrap().to_bytes();
                assert!(got.len() > 4 * METRICS_CHUNK, "{}", got.len());
                assert_eq!(
                    std::str::from_utf8(&got).unwrap(),
                    want,
                    "{f:?} round {round}"
                );
            }
            // A format the collector did not render: the whole text, as it was.
            let body = MetricsBody::doc(Arc::new(prometheus::Document::whole(want.clone())));
            let got = rt.block_on(body.collect()).unwrap().to_bytes();
            assert_eq!(got, want.as_bytes());
        }
    }
}
