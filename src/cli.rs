//! The command line: clap definitions and dispatch. Reads nothing itself: it opens a
//! [`Root`], asks `report`/`overview` for results and hands them to `render`.

use crate::cgroup::read::{self, Level};
use crate::cgroup::walk;
use crate::model::Hierarchy;
use crate::overview;
use crate::render::{self, Style};
use crate::report::{self, Options};
use crate::sys::Root;
use crate::target::{self, TargetError};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Exit codes (stable; scripts may rely on them).
pub mod exit {
    /// Success (a report may still list problems with single files).
    pub const OK: i32 = 0;
    /// Could not produce a report at all (no memory controller, unreadable capture, I/O).
    pub const FAILURE: i32 = 1;
    /// Bad usage or a target that does not resolve (unknown, ambiguous).
    pub const BAD_TARGET: i32 = 2;
}

const AFTER_HELP: &str = "\
TARGETS can be named as:
  /sys/fs/cgroup/memory/docker/ID   a cgroup directory (absolute)
  /kubepods/burstable/podUID/ID     a cgroup path within the memory hierarchy
  1234                              a PID: its memory cgroup
  3f2a9c                            a container ID or a unique prefix (docker, containerd, CRI-O, podman)
  0f2a4c6e-1b3d-...                 a pod UID (or prefix)
  kube-system/coredns-5d78c-abcde   a pod name, NAMESPACE/POD or POD (from /var/log/pods)
  nginx.service                     the name of a cgroup directory

READING THE NUMBERS
  usage        v1 memory.usage_in_bytes / v2 memory.current: everything charged, page cache included
  working set  usage − inactive_file: what kubectl top and the kubelet show
  file         page cache INCLUDING shmem (tmpfs, /dev/shm, SysV shm), which cannot be dropped
  reclaimable  clean page cache (+ reclaimable slab): dropped at the limit before any OOM kill
Every figure names its kernel file and formula; `n/a` means the kernel does not provide it.

EXIT CODES
  0 report printed (problems with single files are listed in it)
  1 no report possible (no memory controller, unreadable capture)
  2 bad usage, or a target that is unknown or ambiguous

EXAMPLES
  memlens                      containers on this node, largest first
  memlens --all --sort working-set
  memlens show 3f2a9c          one container, explained
  memlens ps 1234 --sort pss   the processes in PID 1234's cgroup
  memlens explain 3f2a9c       findings: OOM risk, limit hits, shmem, pressure... with evidence
  memlens explain 3f2a9c --sample 5s   also rates (thrashing) from two samples
  memlens zombies              dying memory cgroups and the empty cgroups still holding cache
  memlens capture 3f2a9c -o bundle.tar.gz && memlens show 3f2a9c --from bundle.tar.gz";

/// memlens: how much memory does a container really use, why, and what happens next.
#[derive(Debug, Parser)]
#[command(name = "memlens", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    overview: OverviewArgs,
    #[command(flatten)]
    global: Global,
}

#[derive(Debug, Args, Clone)]
struct Global {
    /// Print JSON instead of tables (every size in bytes, null when unavailable).
    #[arg(long, global = true)]
    json: bool,
    /// Analyse a capture (directory or .tar.gz from `memlens capture`) instead of this system.
    #[arg(long, global = true, value_name = "CAPTURE")]
    from: Option<PathBuf>,
    /// Read the host's files under DIR (memlens in a container with the host's / mounted at
    /// DIR and the host PID namespace): DIR/sys, DIR/proc, DIR/var/log/pods, ...
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "from")]
    host_root: Option<PathBuf>,
    /// Show a past moment from the flight recorder's store (`memlens record`): "3m ago",
    /// 03:12 (local time), 2026-12-01T03:12:00Z. Works with the overview, show, ps, explain.
    #[arg(long, global = true, value_name = "TIME", conflicts_with_all = ["from", "host_root"])]
    at: Option<String>,
    /// The flight recorder's store (default /var/lib/memlens as root, else
    /// $XDG_STATE_HOME/memlens).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorMode::Auto)]
    color: ColorMode,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorMode {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Parses a collection interval: a [`parse_duration`] between 50 ms and 1 h.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d < std::time::Duration::from_millis(50) {
        return Err(format!("{s:?}: the interval must be between 50ms and 1h"));
    }
    Ok(d)
}

fn init_logging(f: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match f {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

#[derive(Debug, Args, Clone)]
struct OverviewArgs {
    /// Show every memory cgroup, not only container-like ones.
    #[arg(long)]
    all: bool,
    /// Sort column: usage, limit, working-set, anon, file, shmem, kernel, swap, percent, oom, name.
    #[arg(long, default_value = "usage", value_parser = clap::builder::PossibleValuesParser::new(overview::SORT_KEYS))]
    sort: String,
}

#[derive(Debug, Subcommand)]
enum OomAction {
    /// The post-mortem of one OOM kill.
    Show {
        /// Its number in `memlens oom`.
        n: usize,
        /// Write the recorded moment of the kill (from the store) as a capture bundle that
        /// `--from` reads, with the window's samples in memlens-history.json.
        #[arg(long, value_name = "FILE.tar.gz")]
        capture: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The full breakdown of one cgroup: limits, every counter with its source, what it means
    /// (reclaimable, headroom to OOM), what other tools would show, and its processes.
    Show {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name.
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
    },
    /// Findings: what the figures mean for this cgroup (OOM risk, limit hits, shmem and where
    /// it lives, pressure...), each with its evidence and advice.
    Explain {
        /// cgroup path, PID, container ID (prefix), pod UID, or cgroup name.
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Take two samples this far apart (e.g. 5s, 500ms) for rates (thrashing).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        sample: Option<std::time::Duration>,
    },
    /// OOM kills the kernel still has in its log, as post-mortems: when, victim, trigger,
    /// memcg and container, usage and limit, and what filled the memory.
    Oom {
        /// `show N`: the full post-mortem of kill N of the list.
        #[command(subcommand)]
        action: Option<OomAction>,
        /// Read this log instead of /dev/kmsg: dmesg, dmesg -T, journalctl -k or syslog text
        /// (`-` for stdin).
        #[arg(long, global = true, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Wait for new OOM kills and print each as it happens, with its post-mortem (until
        /// Ctrl-C). Detects them from the kernel log and from every cgroup's oom_kill counter
        /// (v2 memory.events through inotify, v1 memory.oom_control read every 250 ms), so a
        /// kill is reported within a second even when its report cannot be read. With --json,
        /// one JSON object per line.
        #[arg(short = 'f', long)]
        follow: bool,
        /// With --follow: stop after this many kills.
        #[arg(long, value_name = "N", requires = "follow")]
        count: Option<usize>,
    },
    /// Dying (zombie) memory cgroups: how many, and the live cgroups with no processes that
    /// still hold page cache and will become dying ones when removed.
    Zombies {
        /// Count twice this far apart (e.g. 5s) to show the trend.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        sample: Option<std::time::Duration>,
        /// Empty the named cgroup's charges now (v1 memory.force_empty, v2 memory.reclaim)
        /// and report what was freed. Writes only to that cgroup.
        #[arg(long, value_name = "PATH")]
        reclaim: Option<String>,
    },
    /// The processes in a cgroup with RSS (anon/file/shmem), PSS, USS and swap.
    Ps {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name.
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Sort column.
        #[arg(long, default_value = "rss", value_parser = ["rss", "anon", "file", "shmem", "pss", "uss", "swap", "pid", "name"])]
        sort: String,
    },
    /// Save every file a report reads into a .tar.gz support bundle (analyse it with --from).
    Capture {
        /// What to capture (as for `show`); omit with --all.
        target: Option<String>,
        /// Capture every memory cgroup and its processes.
        #[arg(long, conflicts_with = "target")]
        all: bool,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Output file.
        #[arg(short, long, value_name = "FILE.tar.gz")]
        output: PathBuf,
    },
    /// Run a command in a fresh memcg (like `time -v` for containers): how it ended, peaks,
    /// limit events, pressure, and a limit recommendation. The report goes to stderr (or
    /// --output) so the command's own stdout stays clean; memlens exits with the command's
    /// status (128+N when killed by signal N; 125 setup failed, 126/127 cannot run).
    Run {
        /// Memory limit (v1 memory.limit_in_bytes, v2 memory.max), e.g. 512M.
        #[arg(long, value_name = "SIZE", value_parser = size)]
        limit: Option<u64>,
        /// Throttling limit (v2 memory.high only).
        #[arg(long, value_name = "SIZE", value_parser = size)]
        high: Option<u64>,
        /// Swap allowed (v1: memsw = limit + SWAP; v2 memory.swap.max); 0 forbids swap.
        #[arg(long, value_name = "SIZE", value_parser = size)]
        swap: Option<u64>,
        /// Sampling interval (e.g. 50ms, 1s; a bare number is milliseconds).
        #[arg(long, default_value = "50ms", value_parser = duration)]
        interval: std::time::Duration,
        /// Write every sample to this CSV file.
        #[arg(long, value_name = "FILE.csv")]
        timeline: Option<PathBuf>,
        /// Reclaim the memcg's memory before removing it (v1 memory.force_empty, v2
        /// memory.reclaim) so it does not linger as a dying cgroup.
        #[arg(long)]
        reclaim_before_exit: bool,
        /// Parent cgroup of the new memcg (default: the root as root; on v2 otherwise the
        /// parent of memlens's own cgroup).
        #[arg(long, value_name = "CGROUP")]
        parent: Option<String>,
        /// Write the report here instead of stderr.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The command and its arguments (after --).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Run the seed articles' experiments on this kernel, each in its own memcg, and compare
    /// the counters that moved with what the kernel documentation says.
    Lab {
        /// Scenarios to run (default: all; see --list).
        scenarios: Vec<String>,
        /// List the scenarios.
        #[arg(long)]
        list: bool,
        /// Directory for the page-cache files (a disk file system, not tmpfs).
        #[arg(long, default_value = "/var/tmp")]
        dir: PathBuf,
    },
    /// Run a read-only Prometheus exporter and JSON API: /metrics (Prometheus text 0.0.4, or
    /// OpenMetrics when the Accept header asks), /healthz, /api/v1/overview[?all=1],
    /// /api/v1/cgroup?path=/x/y.
    Serve {
        /// Address to listen on (loopback by default; use 0.0.0.0:9753 in a DaemonSet).
        #[arg(long, default_value = "127.0.0.1:9753")]
        listen: std::net::SocketAddr,
        /// Collection interval (e.g. 10s, 500ms, 1m).
        #[arg(long, default_value = "10s", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Log format on stderr (RUST_LOG sets the level; default info).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Also run the flight recorder (`memlens record` with its defaults, into --store),
        /// and export memlens_oom_forecast_seconds from it.
        #[arg(long)]
        record: bool,
        /// With --record: how often an idle cgroup is recorded.
        #[arg(long, default_value = "5s", value_parser = parse_interval, requires = "record")]
        record_interval: std::time::Duration,
        /// With --record: the store's retention.
        #[arg(long, default_value = "7d", value_parser = span_ms, requires = "record")]
        retention: i64,
        /// With --record: the store's size cap.
        #[arg(long, default_value = "2G", value_parser = size, requires = "record")]
        max_size: u64,
    },
    /// Record every memory cgroup into a bounded on-disk store (the flight recorder): every
    /// memory file, the host's meminfo/PSI, the top processes, OOM kills. Hot cgroups (near
    /// their limit, recent limit or memory.high events) are read every --fast-interval.
    /// Until SIGINT/SIGTERM. Read it with `history`, `--at`, `oom show`, `plot`, `export`.
    Record(RecordArgs),
    /// The breakdown of one cgroup over time from the store: min/max/last per step, events
    /// (OOM kills, limit hits, memory.high events, limit changes, processes started/gone),
    /// and the growth rate of what cannot be reclaimed. Works for cgroups that are gone.
    History {
        /// cgroup path, container name or ID prefix, pod name (as recorded).
        target: String,
        /// Start: a span back from now (2h) or a TIME (as --at).
        #[arg(long, default_value = "1h", value_name = "SPAN|TIME")]
        since: String,
        /// End: a TIME (default now).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Step (default: about 60 steps over the range).
        #[arg(long, value_name = "SPAN")]
        step: Option<String>,
        /// CSV instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Plot one cgroup's recorded breakdown: a stacked area (anon, shmem, kernel, active
    /// and inactive file, swap) with usage, the limit and memory.high as lines and OOM kills
    /// marked.
    Plot {
        /// cgroup path, container name or ID prefix, pod name (as recorded).
        target: String,
        /// Start: a span back from now (2h) or a TIME.
        #[arg(long, default_value = "1h", value_name = "SPAN|TIME")]
        since: String,
        /// End: a TIME (default now).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Output file: .png or .svg.
        #[arg(short, long, value_name = "FILE.png|FILE.svg")]
        output: PathBuf,
    },
    /// Write recorded history for Prometheus: OpenMetrics text on stdout, for
    /// `promtool tsdb create-blocks-from openmetrics FILE DIR` (the same metric names as
    /// `serve`, one sample per recorded moment).
    Export {
        /// Cgroups to export (as for `history`); default every recorded cgroup.
        targets: Vec<String>,
        /// Start: a span back from now (2h) or a TIME.
        #[arg(long, default_value = "1h", value_name = "SPAN|TIME")]
        since: String,
        /// End: a TIME (default now).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Output format.
        #[arg(long, default_value = "openmetrics", value_parser = ["openmetrics"])]
        format: String,
    },
    /// Internal: run a memory workload (used by the tests and `memlens lab`).
    #[command(name = "__workload", hide = true)]
    Workload {
        /// Steps.
        steps: Vec<String>,
    },
}

/// The flags of `memlens record` (also taken by `serve --record`).
#[derive(Debug, Args, Clone)]
struct RecordArgs {
    /// How often an idle cgroup is read.
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    interval: std::time::Duration,
    /// How often a hot cgroup is read (near its limit, or recent limit/memory.high events).
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    fast_interval: std::time::Duration,
    /// Samples older than this are removed (except the windows around OOM kills).
    #[arg(long, default_value = "7d", value_parser = span_ms)]
    retention: i64,
    /// The store is kept under this size (oldest samples removed first).
    #[arg(long, default_value = "2G", value_parser = size)]
    max_size: u64,
    /// Hot when what cannot be reclaimed is within this percentage of the effective limit.
    #[arg(long, default_value_t = 20.0)]
    hot_headroom: f64,
    /// Hot for this long after a limit hit or a memory.high event.
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    hot_for: std::time::Duration,
    /// How often every memory file of an idle cgroup is read; the files that move (usage,
    /// limit, memory.stat, events, PSI) are read each interval.
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    full_interval: std::time::Duration,
    /// How often the top processes' PSS is read (smaps_rollup walks page tables).
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    pss_interval: std::time::Duration,
    /// Processes kept per cgroup, largest RSS first.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Time span of one compressed chunk.
    #[arg(long, default_value = "10m", value_parser = span_ms, hide = true)]
    chunk: i64,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    #[arg(long = "for", value_name = "SPAN", value_parser = span_ms)]
    run_for: Option<i64>,
    /// Do not follow OOM kills (the benchmark).
    #[arg(long, hide = true)]
    no_oom: bool,
}

impl RecordArgs {
    /// The defaults of `memlens record` (for `serve --record`).
    fn parse_defaults() -> Self {
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: RecordArgs,
        }
        P::parse_from(["memlens"]).a
    }
}

fn span_ms(s: &str) -> Result<i64, String> {
    crate::history::parse_span(s)
}

fn record_options(a: &RecordArgs, g: &Global) -> crate::record::Options {
    crate::record::Options {
        store: g.store.clone().unwrap_or_else(crate::store::default_dir),
        interval: a.interval,
        fast_interval: a.fast_interval,
        hot_headroom: (a.hot_headroom / 100.0).clamp(0.0, 1.0),
        hot_for: a.hot_for,
        pss_interval: a.pss_interval,
        full_interval: a.full_interval,
        top: a.top,
        limits: crate::store::Limits {
            retention_ms: a.retention,
            max_bytes: a.max_size,
            chunk_ms: a.chunk.max(1000),
        },
        duration: a
            .run_for
            .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
        oom: !a.no_oom,
        signals: true,
    }
}

/// Parses `5s`, `500ms`, `2m` or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (t, 1000.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v * mult_ms <= 3_600_000.0 => {
            Ok(std::time::Duration::from_millis((v * mult_ms) as u64))
        }
        _ => Err(format!(
            "bad duration {s:?} (use e.g. 5s, 500ms, 1m; at most 1h)"
        )),
    }
}

fn build(
    root: &Root,
    h: &Hierarchy,
    path: &str,
    descendants: bool,
) -> Result<report::Report, Failure> {
    report::build(root, h, path, Options { descendants }).map_err(|e| {
        Failure::new(
            exit::BAD_TARGET,
            format!("cgroup {path} vanished while being read: {e}"),
        )
    })
}

/// An error with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: i32,
    /// Message for stderr.
    pub message: String,
}

impl Failure {
    fn new(code: i32, message: impl std::fmt::Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

impl From<TargetError> for Failure {
    fn from(e: TargetError) -> Self {
        Failure::new(exit::BAD_TARGET, e)
    }
}

fn style(g: &Global) -> Style {
    Style {
        color: match g.color {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        },
    }
}

fn open_root(g: &Global) -> Result<Root, Failure> {
    if let Some(at) = &g.at {
        let (root, problems) = crate::history::root_at(g.store.as_deref(), at)
            .map_err(|e| Failure::new(exit::FAILURE, e))?;
        for p in problems {
            eprintln!("memlens: {p}");
        }
        return Ok(root);
    }
    if let Some(d) = &g.host_root {
        if !d.is_dir() {
            return Err(Failure::new(
                exit::FAILURE,
                format!("--host-root {}: not a directory", d.display()),
            ));
        }
        return Ok(Root::host(d));
    }
    match &g.from {
        None => Ok(Root::live()),
        Some(p) => Root::from_capture(p).map_err(|e| {
            Failure::new(
                exit::FAILURE,
                format!("cannot open capture {}: {e}", p.display()),
            )
        }),
    }
}

/// `memlens oom --follow`: prints kills as the follower detects them, until `count` kills
/// (or forever). A banner on stderr says what is watched (scripts read stdout only).
fn follow_ooms(
    root: Root,
    from_capture: bool,
    count: Option<usize>,
    json: bool,
    st: Style,
) -> Result<i32, Failure> {
    if from_capture {
        return Err(Failure::new(
            exit::BAD_TARGET,
            "--follow watches the live kernel; it cannot follow a capture (--from)",
        ));
    }
    let mut f =
        crate::oom::follow::Follower::start(root).map_err(|e| Failure::new(exit::FAILURE, e))?;
    eprintln!(
        "memlens: following OOM kills from {}. Ctrl-C to stop.",
        f.describe()
    );
    let mut seen = 0usize;
    loop {
        for d in f.next(std::time::Duration::from_secs(3600)) {
            if json {
                emit(&format!(
                    "{}\n",
                    serde_json::to_string(&d).unwrap_or_default()
                ));
            } else {
                emit(&render::human::oom_detected(&d, st));
            }
            // Each kill must reach a pipe at once, not when a buffer fills.
            let _ = std::io::stdout().flush();
            seen += 1;
            if count.is_some_and(|c| seen >= c) {
                return Ok(exit::OK);
            }
        }
    }
}

/// The forecast rule, when a store holds this cgroup's recent samples (at `--at`, or now).
fn forecast_finding(g: &Global, r: &report::Report) -> Option<crate::rules::Finding> {
    if g.from.is_some() {
        return None;
    }
    let reader = crate::history::open_store(g.store.as_deref()).ok()?;
    let h = crate::history::recorded_hierarchy(&reader).ok()?;
    let now = crate::store::now_ms();
    let at = match &g.at {
        Some(a) => crate::history::parse_time(a, now).ok()?,
        None => now,
    };
    let f = crate::trend::forecast(&reader, &h, &r.cgroup.path, at);
    crate::rules::forecast::oom_forecast(r, f.as_ref())
}

fn hierarchy(root: &Root) -> Result<Hierarchy, Failure> {
    report::hierarchy(root).map_err(|e| Failure::new(exit::FAILURE, e))
}

fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (memlens | head) is not an error worth a panic.
    let _ = out.write_all(s.as_bytes());
}

/// Prints the JSON (`--json`) or the human form of a result; only the one printed is built.
fn output(json: bool, j: impl FnOnce() -> serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        emit_json(&j());
    } else {
        emit(&human());
    }
}

fn emit_json(v: &serde_json::Value) {
    emit(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

fn size(s: &str) -> Result<u64, String> {
    crate::workload::parse_size(s)
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1e-3)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(std::time::Duration::from_secs_f64(v * mult)),
        _ => Err(format!("bad duration {s:?} (use e.g. 50ms, 0.5s)")),
    }
}

/// Runs the command line; returns memlens's exit code (`run` passes the command's through).
pub fn run(cli: Cli) -> Result<i32, Failure> {
    let g = cli.global.clone();
    let st = style(&g);
    match cli.command {
        None => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let mut o = overview::collect(&root, &h, cli.overview.all);
            overview::sort(&mut o.rows, &cli.overview.sort);
            output(
                g.json,
                || render::json::overview(&o),
                || render::human::overview(&o, st),
            );
        }
        Some(Command::Show {
            target,
            descendants,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = target::resolve(&root, &h, &target)?;
            let r = build(&root, &h, &path, descendants)?;
            let mut findings = crate::rules::evaluate(&r, None);
            findings.extend(forecast_finding(&g, &r));
            if g.json {
                let mut v = render::json::show(&r);
                v["findings"] = serde_json::json!(findings);
                emit_json(&v);
            } else {
                let mut out = render::human::show(&r, st);
                out.push_str(&render::human::findings(&findings, st));
                emit(&out);
            }
        }
        Some(Command::Explain {
            target,
            descendants,
            sample,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = target::resolve(&root, &h, &target)?;
            let (r, earlier) = match sample {
                Some(d) => {
                    if !root.is_live() {
                        return Err(Failure::new(
                            exit::BAD_TARGET,
                            "--sample needs the live system, not --from",
                        ));
                    }
                    let first = build(&root, &h, &path, descendants)?;
                    let t0 = std::time::Instant::now();
                    std::thread::sleep(d);
                    let second = build(&root, &h, &path, descendants)?;
                    (second, Some((first, t0.elapsed().as_secs_f64())))
                }
                None => (build(&root, &h, &path, descendants)?, None),
            };
            let mut findings = crate::rules::evaluate(
                &r,
                earlier.as_ref().map(|(e, secs)| crate::rules::Sample {
                    earlier: e,
                    seconds: *secs,
                }),
            );
            findings.extend(forecast_finding(&g, &r));
            if g.json {
                emit_json(
                    &serde_json::json!({"target": {"given": target, "path": r.cgroup.path, "version": r.cgroup.version.number()}, "findings": findings}),
                );
            } else {
                emit(&render::human::explain(&r, &findings, st));
            }
        }
        Some(Command::Oom {
            action,
            file,
            follow,
            count,
        }) => {
            let root = open_root(&g)?;
            if follow {
                if file.is_some() {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "--follow watches the live kernel; it cannot follow a --file",
                    ));
                }
                if action.is_some() {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "--follow prints every new kill; it does not take `show N`",
                    ));
                }
                return follow_ooms(
                    root,
                    g.from.is_some() && g.host_root.is_none(),
                    count,
                    g.json,
                    st,
                );
            }
            let text;
            let src = match &file {
                None if root.is_live() => crate::oom::Source::Kmsg,
                None => {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "with --from, give the kernel log with --file (a capture holds no /dev/kmsg)",
                    ));
                }
                Some(f) => {
                    text = if f.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())
                    } else {
                        std::fs::read_to_string(f)
                    }
                    .map_err(|e| {
                        Failure::new(exit::FAILURE, format!("cannot read {}: {e}", f.display()))
                    })?;
                    crate::oom::Source::Text(&text)
                }
            };
            let all = crate::oom::collect(&root, src).map_err(|e| {
                Failure::new(exit::FAILURE, format!("cannot read the kernel log /dev/kmsg: {e} (root or CAP_SYSLOG is needed; or pass --file)"))
            })?;
            match action {
                None => {
                    output(
                        g.json,
                        || serde_json::json!(all),
                        || render::human::oom_list(&all, st),
                    );
                }
                Some(OomAction::Show { n, capture }) => {
                    let Some(pm) = all.iter().find(|p| p.number == n) else {
                        return Err(Failure::new(
                            exit::BAD_TARGET,
                            format!("no OOM kill number {n} (the log holds {})", all.len()),
                        ));
                    };
                    // With a store: the killed cgroup's last minutes and their verdict.
                    let trend = crate::trend::for_kill(g.store.as_deref(), pm);
                    if let Some(out) = &capture {
                        let msg = crate::trend::capture_kill(g.store.as_deref(), pm, out)
                            .map_err(|e| Failure::new(exit::FAILURE, e))?;
                        eprintln!("memlens: {msg}");
                    }
                    output(
                        g.json,
                        || {
                            let mut v = serde_json::json!(pm);
                            v["history"] = match &trend {
                                Ok(t) => serde_json::json!(t),
                                Err(e) => serde_json::json!({"unavailable": e}),
                            };
                            v
                        },
                        || {
                            let mut s = render::human::oom_show(pm, st);
                            s.push_str(&render::history::oom_trend(&trend, st));
                            s
                        },
                    );
                }
            }
        }
        Some(Command::Zombies { sample, reclaim }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            if let Some(t) = reclaim {
                if !root.is_live() {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "--reclaim acts on the live system, not on --from",
                    ));
                }
                let path = target::resolve(&root, &h, &t)?;
                let done = crate::zombies::reclaim(&root, &h, &path)
                    .map_err(|e| Failure::new(exit::FAILURE, e))?;
                output(
                    g.json,
                    || serde_json::json!({"reclaimed": done}),
                    || render::human::reclaimed(&done, st),
                );
                return Ok(exit::OK);
            }
            let first = crate::zombies::collect(&root, &h);
            let trend = match sample {
                Some(d) => {
                    if !root.is_live() {
                        return Err(Failure::new(
                            exit::BAD_TARGET,
                            "--sample needs the live system, not --from",
                        ));
                    }
                    std::thread::sleep(d);
                    let (n, _, _, _) = crate::zombies::count(&root, &h);
                    Some((d.as_secs_f64(), n))
                }
                None => None,
            };
            if g.json {
                let mut v = serde_json::json!(first);
                if let Some((secs, n)) = trend
                    && let Some(hz) = v["hierarchies"].get_mut(0)
                {
                    hz["sample"] = serde_json::json!({"seconds": secs, "dying_before": first.hierarchies.first().and_then(|x| x.dying), "dying_after": n});
                }
                emit_json(&v);
            } else {
                emit(&render::human::zombies(&first, trend, st));
            }
        }
        Some(Command::Ps {
            target,
            descendants,
            sort,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = target::resolve(&root, &h, &target)?;
            let mut r = build(&root, &h, &path, descendants)?;
            sort_procs(&mut r.processes, &sort);
            output(
                g.json,
                || render::json::ps(&r),
                || render::human::ps(&r, st),
            );
        }
        Some(Command::Capture {
            target,
            all,
            descendants,
            output,
        }) => {
            let root = open_root(&g)?.record();
            let h = hierarchy(&root)?;
            let label;
            if all {
                label = "--all".to_string();
                let _ = overview::collect(&root, &h, true);
                for p in walk::all_paths(&root, &h, "/") {
                    let _ = report::build(&root, &h, &p, Options { descendants: false });
                }
            } else {
                let Some(t) = target else {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "capture needs a TARGET or --all",
                    ));
                };
                let path = target::resolve(&root, &h, &t)?;
                label = t;
                let _ = overview::collect(&root, &h, true);
                report::build(&root, &h, &path, Options { descendants }).map_err(|e| {
                    Failure::new(exit::BAD_TARGET, format!("cgroup {path} vanished: {e}"))
                })?;
                // The children at full detail too, so `show` works on them from the capture.
                for p in walk::all_paths(&root, &h, &path).into_iter().skip(1) {
                    let _ = read::read_cgroup(&root, &h, &p, Level::Full);
                }
            }
            let (n, bad) = crate::capture::write(&root, &output, &label).map_err(|e| {
                Failure::new(
                    exit::FAILURE,
                    format!("cannot write {}: {e}", output.display()),
                )
            })?;
            if g.json {
                emit_json(&serde_json::json!({"output": output, "files": n, "unreadable": bad}));
            } else {
                emit(&format!(
                    "wrote {} ({n} files, {bad} unreadable and listed in {}); analyse with: memlens --from {} ...\n",
                    output.display(),
                    crate::sys::CAPTURE_META,
                    output.display()
                ));
            }
        }
        Some(Command::Serve {
            listen,
            interval,
            log_format,
            record,
            record_interval,
            retention,
            max_size,
        }) => {
            init_logging(log_format);
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            if record {
                // One node agent does both: the recorder on its own thread, its own Root.
                let mut a = RecordArgs::parse_defaults();
                a.interval = record_interval;
                a.retention = retention;
                a.max_size = max_size;
                let mut opts = record_options(&a, &g);
                opts.signals = false;
                crate::trend::set_serve_store(opts.store.clone());
                let rroot = open_root(&g)?;
                let mut rec = crate::record::Recorder::new(rroot, h.clone(), opts)
                    .map_err(|e| Failure::new(exit::FAILURE, e))?;
                std::thread::Builder::new()
                    .name("memlens-record".into())
                    .spawn(move || {
                        if let Err(e) = rec.run() {
                            tracing::error!("recorder stopped: {e}");
                        }
                    })
                    .map_err(|e| Failure::new(exit::FAILURE, e))?;
            }
            crate::serve::run(root, h, crate::serve::ServeOptions { listen, interval })
                .map_err(|e| Failure::new(exit::FAILURE, format!("serve on {listen}: {e}")))?;
        }
        Some(Command::Record(a)) => {
            init_logging(LogFormat::Text);
            if g.at.is_some() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "record reads the live system (or a capture with --from); it takes no --at",
                ));
            }
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let opts = record_options(&a, &g);
            eprintln!(
                "memlens: recording every memory cgroup into {} every {:?} ({:?} when hot). Ctrl-C to stop.",
                opts.store.display(),
                opts.interval,
                opts.fast_interval
            );
            crate::record::run(root, h, opts).map_err(|e| Failure::new(exit::FAILURE, e))?;
        }
        Some(Command::History {
            target,
            since,
            until,
            step,
            csv,
        }) => {
            let q = crate::history::Query {
                target,
                since,
                until,
                step,
            };
            let h = crate::history::history(g.store.as_deref(), &q)
                .map_err(|e| Failure::new(e.0, e.1))?;
            if csv {
                emit(&render::history::csv(&h));
            } else {
                output(
                    g.json,
                    || serde_json::json!(h),
                    || render::history::human(&h, st),
                );
            }
        }
        Some(Command::Plot {
            target,
            since,
            until,
            output,
        }) => {
            let q = crate::history::Query {
                target,
                since,
                until,
                step: None,
            };
            let (path, pts, kills) = crate::history::plot_data(g.store.as_deref(), &q)
                .map_err(|e| Failure::new(e.0, e.1))?;
            render::plot::plot(&output, &format!("memlens: {path}"), &pts, &kills)
                .map_err(|e| Failure::new(exit::FAILURE, e))?;
            emit(&format!(
                "wrote {} ({} samples of {path})\n",
                output.display(),
                pts.len()
            ));
        }
        Some(Command::Export {
            targets,
            since,
            until,
            format: _,
        }) => {
            let e = crate::history::export(g.store.as_deref(), &since, until.as_deref(), &targets)
                .map_err(|e| Failure::new(e.0, e.1))?;
            for p in &e.problems {
                eprintln!("memlens: {p}");
            }
            emit(&render::history::openmetrics(&e));
        }
        Some(Command::Workload { steps }) => {
            crate::workload::run(&steps).map_err(|e| Failure::new(exit::FAILURE, e))?;
        }
        Some(Command::Run {
            limit,
            high,
            swap,
            interval,
            timeline,
            reclaim_before_exit,
            parent,
            output,
            command,
        }) => {
            if g.from.is_some() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "run works on the live system only, not with --from",
                ));
            }
            let opts = crate::run::RunOptions {
                command,
                limit,
                high,
                swap,
                interval,
                timeline,
                reclaim_before_exit,
                parent,
            };
            let r = crate::run::run(&opts).map_err(|e| Failure::new(e.code, e.message))?;
            let text = if g.json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&crate::run::json(&r)).unwrap_or_default()
                )
            } else {
                // Colour only when the report goes to a terminal.
                let s = Style {
                    color: st.color
                        || (output.is_none()
                            && std::io::stderr().is_terminal()
                            && std::env::var_os("NO_COLOR").is_none()
                            && !matches!(g.color, ColorMode::Never)),
                };
                crate::run::human(&r, s)
            };
            match &output {
                Some(p) => {
                    if let Err(e) = std::fs::write(p, &text) {
                        eprintln!("memlens: cannot write {}: {e}", p.display());
                        eprint!("{text}");
                    }
                }
                None => eprint!("{text}"),
            }
            return Ok(r.exit_status());
        }
        Some(Command::Lab {
            scenarios,
            list,
            dir,
        }) => {
            if list {
                emit(&crate::lab::list());
                return Ok(exit::OK);
            }
            if g.from.is_some() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "lab works on the live system only, not with --from",
                ));
            }
            let bin = std::env::current_exe().map_err(|e| {
                Failure::new(
                    exit::FAILURE,
                    format!("cannot find the memlens binary: {e}"),
                )
            })?;
            let lab = crate::lab::Lab::new(dir, bin).map_err(|e| Failure::new(exit::FAILURE, e))?;
            let results =
                crate::lab::run(&lab, &scenarios).map_err(|e| Failure::new(exit::BAD_TARGET, e))?;
            output(
                g.json,
                || crate::lab::json(&results),
                || crate::lab::human(&results, st),
            );
        }
    }
    Ok(exit::OK)
}

fn sort_procs(p: &mut [crate::model::Process], key: &str) {
    let k = |x: &crate::model::Process| match key {
        "anon" => x.rss_anon_bytes,
        "file" => x.rss_file_bytes,
        "shmem" => x.rss_shmem_bytes,
        "pss" => x.pss_bytes,
        "uss" => x.uss_bytes,
        "swap" => x.swap_bytes,
        _ => x.rss_bytes,
    };
    match key {
        "pid" => p.sort_by_key(|x| x.pid),
        "name" => p.sort_by(|a, b| a.comm.cmp(&b.comm)),
        _ => p.sort_by(|a, b| k(b).cmp(&k(a)).then(a.pid.cmp(&b.pid))),
    }
}

#[cfg(test)]
mod tests {
    /// clap checks its definitions only in debug builds when parsing; this runs the same
    /// checks in every build (a release-only run once missed a bad `conflicts_with`).
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        fn check(c: &clap::Command) {
            c.clone().debug_assert();
            c.get_subcommands().for_each(check);
        }
        let mut c = super::Cli::command();
        // build() propagates global arguments into the subcommands, where a bad reference
        // shows.
        c.build();
        check(&c);
    }
}
