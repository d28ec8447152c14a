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

/// `memlens -V`: the version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MEMLENS_COMMIT"),
    ")"
);

/// The command line as clap sees it (for main, completions and the man page).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
}

/// memlens: how much memory does a container really use, why, and what happens next.
#[derive(Debug, Parser)]
#[command(name = "memlens", version = VERSION, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    overview: OverviewArgs,
    #[command(flatten)]
    global: Global,
}

/// For commands with no JSON report: shadows the global --json with a hidden local one, so
/// their --help does not offer it (still refused at run time by [`refuse_json`]).
#[derive(Debug, Args, Clone)]
struct NoJson {
    #[arg(id = "json", long = "json", hide = true)]
    _json: bool,
}

#[derive(Debug, Args, Clone)]
struct Global {
    /// Print JSON instead of tables (every size in bytes, null when unavailable).
    #[arg(long, global = true)]
    json: bool,
    /// Analyse a capture (directory or .tar.gz from `memlens capture`) instead of this system.
    #[arg(long, global = true, value_name = "CAPTURE")]
    from: Option<PathBuf>,
    /// Largest file a capture (--from) may hold, uncompressed [default: 16M]. Captures come
    /// from other machines: raise it only for one you trust.
    #[arg(long, global = true, value_name = "SIZE", value_parser = crate::units::parse_size)]
    from_max_file: Option<u64>,
    /// Largest size a capture archive (--from FILE.tar.gz) may expand to [default: 512M].
    #[arg(long, global = true, value_name = "SIZE", value_parser = crate::units::parse_size)]
    from_max_total: Option<u64>,
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

/// Parses a collection interval: a duration (units required) between 50 ms and 1 h.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    crate::units::duration_between(
        s,
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(3600),
    )
}

/// Parses `--listen`: `HOST:PORT`, `[V6]:PORT`, or `:PORT` (every IPv4 interface, as Go
/// servers and Prometheus's own flags spell it).
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    let t = s.trim();
    let full = if t.starts_with(':') {
        format!("0.0.0.0{t}")
    } else {
        t.to_string()
    };
    full.parse().map_err(|_| {
        format!("{s:?}: expected HOST:PORT (127.0.0.1:9753, 0.0.0.0:9753, [::1]:9753) or :PORT")
    })
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
    /// Sort column: usage, limit, working-set, anon, file, shmem, kernel, swap, percent, oom,
    /// name (default: usage; with --all and no --sort, a tree in hierarchy order).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(overview::SORT_KEYS))]
    sort: Option<String>,
    /// Rows only: no header line, no footer (for scripts).
    #[arg(long)]
    no_headers: bool,
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
    /// The windows the recorder keeps past retention around each OOM kill (10 min before,
    /// 1 min after), numbered; with N, releases window N: the store's own rows only (its
    /// samples then go with retention at the recorder's next compaction).
    Forget {
        /// The window's number (as listed without N).
        n: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The full breakdown of one cgroup: limits, every counter with its source, what it means
    /// (reclaimable, headroom to OOM), what other tools would show, and its processes.
    #[command(
        after_help = "EXAMPLES\n  memlens show 3f2a9c                 a container by ID prefix\n  memlens show kube-system/coredns-5d78c-abcde\n  memlens show 1234 --brief           the cgroup of PID 1234: verdict and findings only\n  memlens show /docker/ID --json | jq .oom_headroom_bytes"
    )]
    Show {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name.
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::completions::targets))]
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Only the verdict line, what the cgroup is, and one line per finding.
        #[arg(long)]
        brief: bool,
    },
    /// Findings: what the figures mean for this cgroup (OOM risk, limit hits, shmem and where
    /// it lives, pressure...), each with its evidence and advice.
    #[command(
        after_help = "EXAMPLES\n  memlens explain 3f2a9c\n  memlens explain 3f2a9c --sample 5s   also rates (thrashing)\n  memlens explain nginx.service --json | jq '.findings[].id'"
    )]
    Explain {
        /// cgroup path, PID, container ID (prefix), pod UID, or cgroup name.
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::completions::targets))]
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Take two samples this far apart (e.g. 5s, 500ms; a unit is required) for rates
        /// (thrashing).
        #[arg(long, value_name = "DURATION", value_parser = sample_duration)]
        sample: Option<std::time::Duration>,
    },
    /// OOM kills the kernel still has in its log, as post-mortems: when, victim, trigger,
    /// memcg and container, usage and limit, and what filled the memory.
    #[command(
        after_help = "EXAMPLES\n  memlens oom                          the kills still in the kernel log\n  memlens oom show 3                   one kill in full\n  memlens oom forget                   the windows kept past retention; `forget N` releases one\n  memlens oom --follow --json          each new kill as one JSON line\n  journalctl -k | memlens oom --file -"
    )]
    Oom {
        /// `show N`: the full post-mortem of kill N of the list.
        #[command(subcommand)]
        action: Option<OomAction>,
        /// Only the kills of this cgroup or container: a cgroup path or name, a container ID
        /// (prefix), a pod UID, or the victim's command name.
        #[arg(value_name = "TARGET", add = clap_complete::ArgValueCandidates::new(crate::completions::targets))]
        target: Option<String>,
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
    #[command(
        after_help = "EXAMPLES\n  memlens zombies\n  memlens zombies --sample 10s         the trend\n  memlens zombies --reclaim /docker/ID empty one stopped container's cgroup"
    )]
    Zombies {
        /// Count twice this far apart (e.g. 5s, 1m; a unit is required) to show the trend.
        #[arg(long, value_name = "DURATION", value_parser = sample_duration)]
        sample: Option<std::time::Duration>,
        /// Empty the named cgroup's charges now (v1 memory.force_empty, v2 memory.reclaim)
        /// and report what was freed. Writes only to that cgroup. Refuses the root, and a
        /// cgroup with processes in it or below (their page cache would be dropped under
        /// them) unless --force.
        #[arg(long, value_name = "PATH")]
        reclaim: Option<String>,
        /// With --reclaim: reclaim even though processes are in the cgroup.
        #[arg(long, requires = "reclaim")]
        force: bool,
        /// Which files pin the dying memcgs: their pages' owners from /proc/kpagecgroup,
        /// checked over every process's open and mapped files, the writable layers and
        /// volumes of stopped containers (docker, podman), /var/log, /tmp, /var/tmp, /run,
        /// container logs and kubelet volumes, and --path.
        #[arg(long, conflicts_with = "reclaim")]
        why: bool,
        /// With --why: also check the files under DIR (repeatable).
        #[arg(long, value_name = "DIR", requires = "why")]
        path: Vec<PathBuf>,
        /// With --why: stop walking after this many files.
        #[arg(long, default_value_t = 50_000, value_name = "N")]
        max_files: usize,
        /// With --why: stop walking after this long.
        #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = crate::units::parse_duration)]
        max_time: std::time::Duration,
    },
    /// Which files fill a cgroup's page cache: per file cached, dirty and recently evicted
    /// (thrash) bytes (cachestat, else mincore; nothing is read in), and who is charged for
    /// them (/proc/kpagecgroup; the first cgroup to touch a page pays). Candidates: files
    /// the processes have open or mapped (deleted ones too), files under their tmpfs mounts
    /// (and a container's volumes and writable layer), and --path.
    #[command(
        after_help = "EXAMPLES\n  memlens cache 3f2a9c                 which files fill a container's page cache\n  memlens cache nginx.service --path /srv/www\n  memlens cache --drop /var/log/big.log  drop one file's clean pages"
    )]
    Cache {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name.
        #[arg(required_unless_present = "drop")]
        target: Option<String>,
        /// Also check the files under DIR (repeatable).
        #[arg(long, value_name = "DIR")]
        path: Vec<PathBuf>,
        /// Stop walking directories after this many files.
        #[arg(long, default_value_t = 20_000, value_name = "N")]
        max_files: usize,
        /// Stop walking directories after this long (e.g. 5s).
        #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = crate::units::parse_duration)]
        max_time: std::time::Duration,
        /// Files to list.
        #[arg(long, default_value_t = 20, value_name = "N")]
        top: usize,
        /// Drop these files' clean pages from the cache (POSIX_FADV_DONTNEED) and report what
        /// was freed from which cgroup. Touches only the named files.
        #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "target")]
        drop: Vec<PathBuf>,
    },
    /// Kernel memory by part, for a cgroup and the node: reclaimable slab (dentries,
    /// inodes) versus what reclaim cannot free (other slab, sockets, page tables, stacks,
    /// per-CPU, vmalloc), the largest slab caches, negative dentries, and a verdict.
    #[command(
        after_help = "EXAMPLES\n  memlens kernel                       the node: slab, sockets, page tables, stacks...\n  memlens kernel 3f2a9c --sample 10s   is a container's unreclaimable part growing?"
    )]
    Kernel {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name (omit:
        /// the node only).
        target: Option<String>,
        /// Take two samples this far apart (e.g. 10s) to see whether the unreclaimable part
        /// grows.
        #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
        sample: Option<std::time::Duration>,
    },
    /// The processes in a cgroup with RSS (anon/file/shmem), PSS, USS and swap.
    #[command(
        after_help = "EXAMPLES\n  memlens ps 3f2a9c --sort pss\n  memlens ps / -r --sort rss           every process on the node, with its cgroup"
    )]
    Ps {
        /// cgroup path, PID, container ID (prefix), pod UID, pod name, or cgroup name.
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::completions::targets))]
        target: String,
        /// Include the processes of descendant cgroups.
        #[arg(short = 'r', long)]
        descendants: bool,
        /// Sort column.
        #[arg(long, default_value = "rss", value_parser = ["rss", "anon", "file", "shmem", "pss", "uss", "swap", "pid", "name"])]
        sort: String,
    },
    /// Save every file a report reads into a .tar.gz support bundle (analyse it with --from).
    #[command(
        after_help = "EXAMPLES\n  memlens capture 3f2a9c -o bundle.tar.gz\n  memlens capture --all -o node.tar.gz\n  memlens show 3f2a9c --from bundle.tar.gz"
    )]
    Capture {
        /// What to capture (as for `show`); omit with --all.
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::completions::targets))]
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
        /// Keep the processes' command lines (/proc/PID/cmdline); left out by default because
        /// they often hold secrets.
        #[arg(long)]
        include_cmdline: bool,
    },
    /// Run a command in a fresh memcg (like `time -v` for containers): how it ended, peaks,
    /// limit events, pressure, and a limit recommendation. The report goes to stderr (or
    /// --output) so the command's own stdout stays clean; memlens exits with the command's
    /// status (128+N when killed by signal N; 125 setup failed, 126/127 cannot run).
    #[command(
        after_help = "EXAMPLES\n  memlens run -- python3 train.py\n  memlens run --limit 512Mi --timeline t.csv -- ./build.sh\n  memlens run --limit 1.5G --json -o report.json -- make -j4"
    )]
    Run {
        /// Memory limit (v1 memory.limit_in_bytes, v2 memory.max), at least 6 MiB: 512M,
        /// 1.5G, 512Mi, 1Gi (K/M/G and Ki/Mi/Gi are ×1024, KB/MB/GB ×1000).
        #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_limit)]
        limit: Option<u64>,
        /// Throttling limit (v2 memory.high only).
        #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
        high: Option<u64>,
        /// Swap allowed (v1: memsw = limit + SWAP; v2 memory.swap.max); 0 forbids swap.
        #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
        swap: Option<u64>,
        /// Sampling interval, 1ms to 1m (e.g. 50ms, 1s; a unit is required).
        #[arg(long, default_value = "50ms", value_parser = run_interval)]
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
        /// Run the command repeatedly under decreasing limits (bisection between its
        /// non-reclaimable and usage peaks) and report the smallest limit at which it exits
        /// the same way within --slowdown of the unlimited wall time. Only for repeatable
        /// commands (builds, tests, batch jobs): it runs several times.
        #[arg(long, conflicts_with = "limit")]
        find_limit: bool,
        /// With --find-limit: the wall-time slowdown allowed.
        #[arg(
            long,
            default_value = "10%",
            value_name = "PERCENT",
            requires = "find_limit"
        )]
        slowdown: String,
        /// While the command runs, probe its true working set (as `memlens probe`): v2
        /// memory.reclaim steps; v1 memory.limit_in_bytes lowered step by step and put back
        /// (v1 has no per-cgroup PSI: the cgroup's refaults and the host's PSI are the budget).
        #[arg(long, conflicts_with = "find_limit")]
        probe: bool,
        #[command(flatten)]
        probe_args: Box<ProbeArgs>,
        // `run` works on the live system only: the global --from/--host-root are shadowed
        // by hidden local ones, so its --help does not offer them (still refused at run time).
        #[arg(id = "from", long = "from", hide = true)]
        _from: Option<PathBuf>,
        #[arg(id = "host_root", long = "host-root", hide = true)]
        _host_root: Option<PathBuf>,
        #[arg(id = "from_max_file", long = "from-max-file", hide = true)]
        _from_max_file: Option<String>,
        #[arg(id = "from_max_total", long = "from-max-total", hide = true)]
        _from_max_total: Option<String>,
        #[arg(id = "at", long = "at", hide = true)]
        _at: Option<String>,
        /// The command and its arguments (after --).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Run memory experiments on this kernel, each in its own memcg, and compare the counters
    /// that moved with what the kernel documentation says. Needs root. `oom-kill` causes a
    /// real OOM kill (seen by the kernel log and any OOM alerting) and `dying-cgroup` leaves a
    /// dying cgroup until its cache is reclaimed; --skip-oom leaves both out. Exits 0 when
    /// every scenario ran as documented (skipped ones aside), 1 when any differs or could not
    /// run (not_run), so it can be used as a check.
    #[command(
        after_help = "EXAMPLES\n  memlens lab --list\n  memlens lab --skip-oom\n  memlens lab page-cache-write oom-kill --dir /var/tmp --json"
    )]
    Lab {
        /// Scenarios to run (default: all; see --list).
        scenarios: Vec<String>,
        /// List the scenarios.
        #[arg(long)]
        list: bool,
        /// Leave out the scenarios that cause a real OOM kill or leave a dying cgroup.
        #[arg(long)]
        skip_oom: bool,
        /// Directory for the page-cache files (a disk file system, not tmpfs).
        #[arg(long, default_value = "/var/tmp")]
        dir: PathBuf,
        /// Compare two saved `lab --json` reports side by side (the same kernel on cgroup v1
        /// and v2, say): each counter's delta in A and B and B − A; runs nothing.
        #[arg(long, num_args = 2, value_names = ["A.json", "B.json"], conflicts_with_all = ["scenarios", "list", "skip_oom"])]
        compare: Option<Vec<PathBuf>>,
        // Live system only: see `Run`.
        #[arg(id = "from", long = "from", hide = true)]
        _from: Option<PathBuf>,
        #[arg(id = "host_root", long = "host-root", hide = true)]
        _host_root: Option<PathBuf>,
        #[arg(id = "from_max_file", long = "from-max-file", hide = true)]
        _from_max_file: Option<String>,
        #[arg(id = "from_max_total", long = "from-max-total", hide = true)]
        _from_max_total: Option<String>,
        #[arg(id = "at", long = "at", hide = true)]
        _at: Option<String>,
    },
    /// Run a read-only Prometheus exporter and JSON API: /metrics (Prometheus text 0.0.4, or
    /// OpenMetrics when the Accept header asks), /healthz, /api/v1/overview[?all=1],
    /// /api/v1/cgroup?path=/x/y.
    #[command(
        after_help = "EXAMPLES\n  memlens serve                        127.0.0.1:9753\n  memlens serve --listen :9753 --interval 15s --log-format json\n  memlens serve --listen 127.0.0.1:0 --port-file /run/memlens.port"
    )]
    Serve {
        /// Address to listen on: HOST:PORT, or :PORT for every interface (loopback by default;
        /// :9753 in a DaemonSet). Port 0 picks a free port: see the `listening` log line or
        /// --port-file.
        #[arg(long, default_value = "127.0.0.1:9753", value_parser = parse_listen)]
        listen: std::net::SocketAddr,
        /// Write the port actually bound to this file (with --listen HOST:0).
        #[arg(long, value_name = "FILE")]
        port_file: Option<PathBuf>,
        /// Collection interval (e.g. 10s, 500ms, 1m).
        #[arg(long, default_value = "10s", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Log format on stderr (RUST_LOG sets the level; default info).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Tiered reads: a cgroup whose usage has not moved is read in full (memory.stat and
        /// the rest) only every N collections; its series keep the last full read's values
        /// and memlens_memory_read_timestamp_seconds (1: read everything every collection).
        #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        full_every: u32,
        /// Tiered reads: a usage change of more than SIZE since a cgroup's last full read
        /// reads it in full at once (0: any change).
        #[arg(long, default_value = "0", value_name = "SIZE", value_parser = crate::units::parse_size)]
        reread_above: u64,
        /// At most N usage files kept open and re-read with pread (one per cgroup; beyond it
        /// they are opened per read). Also at most half the open-file limit.
        #[arg(long, default_value_t = crate::cgroup::tier::DEFAULT_FD_CAP, value_name = "N")]
        max_fds: usize,
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
        #[arg(long, default_value = "2G", value_parser = crate::units::parse_size, requires = "record")]
        max_size: u64,
        // serve prints no report: the global --json and --color are shadowed by hidden local
        // ones.
        #[arg(id = "json", long = "json", hide = true)]
        _json: bool,
        #[arg(id = "color", long = "color", hide = true, value_enum)]
        _color: Option<ColorMode>,
    },
    /// Record every memory cgroup into a bounded on-disk store (the flight recorder): every
    /// memory file, the host's meminfo/PSI, the top processes, OOM kills. Hot cgroups (near
    /// their limit, recent limit or memory.high events) are read every --fast-interval.
    /// Until SIGINT/SIGTERM. Read it with `history`, `--at`, `oom show`, `plot`, `export`.
    #[command(
        after_help = "EXAMPLES\n  memlens record                       into /var/lib/memlens (root)\n  memlens record --store /srv/memlens --interval 10s\n  memlens history web --since 2h       read it back"
    )]
    Record(RecordArgs),
    /// A live, interactive view of every container's memory (q quits, ? lists the keys);
    /// `--from CAPTURE` shows a capture, `--replay` walks the flight recorder's store.
    #[command(
        after_help = "EXAMPLES\n  memlens top                      every container, refreshed every second\n  memlens top --interval 5s\n  memlens top --from bundle.tar.gz\n  memlens top --replay --at '10m ago'   step through the recorded past ([ ] { } space g)"
    )]
    Top {
        /// Refresh interval (live) and playback step time (replay).
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Walk the recorded history (`memlens record`'s store; --at to start there, --store
        /// for another store) instead of the live system.
        #[arg(long, conflicts_with_all = ["from", "host_root"])]
        replay: bool,
        #[command(flatten)]
        _json: NoJson,
    },
    /// The breakdown of one cgroup over time from the store: min/max/last per step, events
    /// (OOM kills, limit hits, memory.high events, limit changes, processes started/gone),
    /// and the growth rate of what cannot be reclaimed. Works for cgroups that are gone.
    #[command(
        after_help = "EXAMPLES\n  memlens history web --since 2h\n  memlens history /docker/ID --since 03:00 --until 03:30 --step 1m\n  memlens history web --csv > web.csv"
    )]
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
    #[command(
        after_help = "EXAMPLES\n  memlens plot web --since 6h -o web.png\n  memlens plot /docker/ID --since '30m ago' -o oom.svg"
    )]
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
        #[command(flatten)]
        _json: NoJson,
    },
    /// The true working set of one cgroup (cgroup v2): reclaim it in small steps through
    /// memory.reclaim and watch its pressure, refaults and pgscan/pgsteal; stop at the
    /// pressure budget or when reclaim takes nothing; report what was cold, what is hot, and
    /// a limit from the hot set. It WRITES, to the named cgroup only (never its limits);
    /// --dry-run says what it would write. On cgroup v1 use `memlens run --probe`.
    ///
    /// Examples: `memlens probe /system.slice/web.service --dry-run`,
    /// `memlens probe web --max-psi 0.5% --swappiness 0`.
    Probe {
        /// The cgroup to probe: cgroup path, container name or ID prefix, pod name.
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::completions::targets))]
        target: String,
        #[command(flatten)]
        probe: Box<ProbeArgs>,
    },
    /// A memory request and limit per container from the recorded history (the store of
    /// `memlens record`): from the peak and p50/p95/p99 of what cannot be reclaimed (anon +
    /// shmem + unreclaimable kernel + swap), not the sampled working set krr and the kubelet
    /// use (shown beside it); limit hits, memory.high events, pressure, OOM kills; the
    /// difference from what is set; snippets for kubectl, VPA, compose and systemd.
    ///
    /// Examples: `memlens recommend`, `memlens recommend web --since 24h`,
    /// `memlens recommend web --check-limit 256M`.
    #[command(
        after_help = "EXAMPLES\n  memlens recommend\n  memlens recommend web --since 24h\n  memlens recommend web --check-limit 256M"
    )]
    Recommend {
        /// cgroup path, container name or ID prefix, pod name (as recorded); default every
        /// recorded cgroup that held processes.
        target: Option<String>,
        /// Start: a span back from now (24h) or a TIME; default the whole store.
        #[arg(long, value_name = "SPAN|TIME")]
        since: Option<String>,
        /// Margin above the non-reclaimable peak for the limit.
        #[arg(long, default_value = "15%", value_name = "PERCENT")]
        margin: String,
        /// Is SIZE a safe new limit? safe / needs N MiB reclaimed first / will OOM (from the
        /// non-reclaimable peak and the figures now). Needs a TARGET.
        #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size, requires = "target")]
        check_limit: Option<u64>,
        /// Read the figures from Prometheus's HTTP API (the series `memlens serve` exports,
        /// and cAdvisor's) instead of the store: every node it scrapes. --since defaults to 24h.
        #[arg(long, value_name = "URL")]
        prometheus: Option<String>,
    },
    /// Write recorded history for Prometheus: OpenMetrics text on stdout, for
    /// `promtool tsdb create-blocks-from openmetrics FILE DIR` (the same metric names as
    /// `serve`, one sample per recorded moment).
    #[command(
        after_help = "EXAMPLES\n  memlens export --since 24h > m.om && promtool tsdb create-blocks-from openmetrics m.om data/\n  memlens export web db --since 2h"
    )]
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
        #[command(flatten)]
        _json: NoJson,
    },
    /// Where the node's RAM went: a waterfall from MemTotal (top-level cgroups, memory charged
    /// to no cgroup, free, the unattributed rest), what free, MemAvailable, the kubelet and
    /// systemd-cgtop say, and the kubelet's eviction: thresholds, signals, who goes first.
    #[command(
        after_help = "EXAMPLES\n  memlens node                         where the RAM went, and the kubelet's view\n  kubectl get pods -A -o json | memlens node --pods -\n  memlens node --sample 10s            noisy neighbours"
    )]
    Node {
        /// The kubelet's configuration file, read under --host-root (default
        /// /var/lib/kubelet/config.yaml; its absence means the kubelet's defaults).
        #[arg(long, value_name = "FILE")]
        kubelet_config: Option<PathBuf>,
        /// Pods with their requests and priorities: the output of `kubectl get pods -A -o
        /// json` (`-` for stdin), for the kubelet's exact eviction order.
        #[arg(long, value_name = "FILE")]
        pods: Option<PathBuf>,
        /// The pods cgroup (default: the shallowest kubepods or kubepods.slice).
        #[arg(long, value_name = "CGROUP")]
        kubepods: Option<String>,
        /// Read every cgroup twice this far apart (e.g. 5s) to find noisy neighbours: cgroups
        /// below their limit losing page cache while others grow.
        #[arg(long, value_name = "DURATION", value_parser = sample_duration)]
        sample: Option<std::time::Duration>,
    },
    /// Print the shell completion script (TARGET completes from the live cgroups and
    /// containers). Install: `memlens completions bash > /etc/bash_completion.d/memlens`,
    /// zsh: `memlens completions zsh > "${fpath[1]}/_memlens"`, fish: `memlens completions fish
    /// > ~/.config/fish/completions/memlens.fish`.
    #[command(
        after_help = "EXAMPLES\n  memlens completions bash > /etc/bash_completion.d/memlens\n  source <(memlens completions bash)"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: crate::completions::Shell,
        #[command(flatten)]
        _json: NoJson,
    },
    /// Print the man page (roff). Install: `memlens man > /usr/local/share/man/man1/memlens.1`.
    #[command(
        after_help = "EXAMPLES\n  memlens man > /usr/local/share/man/man1/memlens.1 && man memlens"
    )]
    Man {
        #[command(flatten)]
        _json: NoJson,
    },
    /// Internal: run a memory workload (used by the tests and `memlens lab`).
    #[command(name = "__workload", hide = true)]
    Workload {
        /// Steps.
        steps: Vec<String>,
    },
}

/// `--sample`: a duration (units required) up to 1 h.
fn sample_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::units::duration_between(
        s,
        std::time::Duration::from_millis(1),
        std::time::Duration::from_secs(3600),
    )
}

/// `run --interval`: a duration between 1 ms and 1 min.
fn run_interval(s: &str) -> Result<std::time::Duration, String> {
    crate::units::duration_between(
        s,
        std::time::Duration::from_millis(1),
        std::time::Duration::from_secs(60),
    )
}

/// The flags of `memlens probe` (also taken by `run --probe`).
#[derive(Debug, Args, Clone)]
struct ProbeArgs {
    /// Each step reclaims this share of memory.current.
    #[arg(long, default_value = "10%", value_name = "PERCENT", value_parser = percent)]
    step: f64,
    /// The smallest step (a step that takes less than half of it ends the probe).
    #[arg(long, default_value = "1M", value_name = "SIZE", value_parser = crate::units::parse_size)]
    min_step: u64,
    /// Pressure budget: some stall, percent of each step's window (v2 the cgroup's
    /// memory.pressure; v1 the host's rise over before the probe).
    #[arg(long, default_value = "0.1%", value_name = "PERCENT", value_parser = percent)]
    max_psi: f64,
    /// v1 only (no per-cgroup PSI): refaults allowed per step, as a share of the step.
    #[arg(long, default_value = "10%", value_name = "PERCENT", value_parser = percent)]
    max_refault: f64,
    /// Time between a step and its readings.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_interval)]
    settle: std::time::Duration,
    /// At most this many steps.
    #[arg(long, default_value_t = 60)]
    max_steps: u32,
    /// Wait this long before the first step (`run --probe`: let the command start up).
    #[arg(long = "probe-after", value_name = "DURATION", value_parser = crate::units::parse_duration)]
    probe_after: Option<std::time::Duration>,
    /// v2: pass `swappiness=N` (0-200, or max) with each memory.reclaim write (the kernel is
    /// asked first whether it accepts it). Default: none, or swappiness=0 without swap.
    #[arg(long, value_name = "N|max")]
    swappiness: Option<String>,
    /// Say exactly what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Margin on the hot set for the recommended limit.
    #[arg(long = "probe-margin", default_value = "15%", value_name = "PERCENT", value_parser = percent)]
    probe_margin: f64,
}

impl ProbeArgs {
    fn options(&self) -> crate::probe::ProbeOptions {
        crate::probe::ProbeOptions {
            step: self.step / 100.0,
            min_step: self.min_step.max(4096),
            max_psi: self.max_psi,
            max_refault: self.max_refault / 100.0,
            settle: self.settle,
            max_steps: self.max_steps.max(1),
            after: self.probe_after.unwrap_or_default(),
            swappiness: self.swappiness.clone(),
            dry_run: self.dry_run,
            margin: self.probe_margin / 100.0,
        }
    }
}

/// A percentage such as `10%` or `0.1%` (the % is optional), as a number of percent.
fn percent(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: give a percentage such as 10%")),
    }
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
    #[arg(long, default_value = "2G", value_parser = crate::units::parse_size)]
    max_size: u64,
    /// Hot when what cannot be reclaimed is within this percentage of the effective limit.
    #[arg(long, default_value_t = 20.0)]
    hot_headroom: f64,
    /// Hot for this long after a limit hit or a memory.high event.
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    hot_for: std::time::Duration,
    /// How often every memory file of an idle cgroup is read. A cgroup whose usage has not
    /// changed to the byte since its last read gets only its usage file read each interval,
    /// so what moves while usage stays equal (cache turning active on a re-read: the working
    /// set) is up to this old. Set it to --interval to read every file every tick.
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
    #[command(flatten)]
    _json: NoJson,
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
            // Messages name paths and targets from the system or the user: escaped for the
            // terminal like every human output (render/escape.rs).
            message: render::escape::term_lines(&message.to_string()),
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

/// [`target::resolve`], with a hint when the path is in another cgroup hierarchy (a v1
/// `cpu` or `pids` mount) rather than the memory one.
fn resolve_target(root: &Root, h: &Hierarchy, t: &str) -> Result<String, Failure> {
    target::resolve(root, h, t).map_err(|e| {
        let mp = h.mount_point.display().to_string();
        match e {
            TargetError::NotFound(_) | TargetError::Path(_)
                if t.starts_with("/sys/fs/cgroup/")
                    && !t.starts_with(&format!("{mp}/"))
                    && t != mp =>
            {
                let rest = t
                    .trim_start_matches("/sys/fs/cgroup/")
                    .split_once('/')
                    .map_or("", |(_, r)| r);
                Failure::new(
                    exit::BAD_TARGET,
                    format!(
                        "{t} is not in the memory hierarchy, which is mounted at {mp}{}",
                        if rest.is_empty() {
                            String::new()
                        } else {
                            format!(": try {mp}/{rest} or /{rest}")
                        }
                    ),
                )
            }
            e => e.into(),
        }
    })
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
        if !d.join("proc/meminfo").exists() {
            return Err(Failure::new(
                exit::FAILURE,
                format!(
                    "--host-root {0}: {0}/proc is missing or not a proc file system: is the host's / mounted at {0} (e.g. -v /:{0}:ro, with /proc visible under it)?",
                    d.display()
                ),
            ));
        }
        return Ok(Root::host(d));
    }
    match &g.from {
        None => Ok(Root::live()),
        Some(p) => {
            let mut lim = crate::sys::LoadLimits::default();
            lim.per_file = g.from_max_file.unwrap_or(lim.per_file);
            lim.total = g.from_max_total.unwrap_or(lim.total);
            let r = Root::from_capture_with(p, lim).map_err(|e| {
                let e = e.to_string();
                let shown = p.display().to_string();
                // The archive reader's messages already start with the file's name.
                Failure::new(
                    exit::FAILURE,
                    if e.starts_with(&shown) {
                        format!("cannot open capture {e}")
                    } else {
                        format!("cannot open capture {shown}: {e}")
                    },
                )
            })?;
            if let Ok(mut c) = JSON_CAPTURE.lock() {
                *c = r.capture().cloned();
            }
            Ok(r)
        }
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
                    serde_json::to_string(&render::json::envelope(
                        "oom-event",
                        serde_json::json!(d),
                        None
                    ))
                    .unwrap_or_default()
                ));
            } else {
                emit_human(&render::human::oom_detected(&d, st));
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

fn wait_with_progress(d: std::time::Duration, what: &str) {
    crate::progress::wait(d, what);
}

/// `--json` given to a command that prints no JSON report (it is hidden from its --help).
fn refuse_json(g: &Global, cmd: &str) -> Result<(), Failure> {
    if g.json {
        return Err(Failure::new(
            exit::BAD_TARGET,
            format!("{cmd} prints no JSON report: --json does not apply"),
        ));
    }
    Ok(())
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
        emit_human(&human());
    }
}

/// Prints a human report; under --from, after a banner saying it is a capture and of what.
fn emit_human(s: &str) {
    let banner = JSON_CAPTURE.lock().ok().and_then(|c| {
        c.as_ref().map(|c| {
            format!(
                "CAPTURE of {} taken {} on kernel {} by memlens {}: not this system, as it was then\n\n",
                c.target,
                c.captured_at_unix
                    .map_or("at an unknown time".into(), |t| crate::kmsg::log::wall_time(0, t)
                        .split('.')
                        .next()
                        .map(|x| format!("{x} UTC"))
                        .unwrap_or_default()),
                c.kernel.as_deref().unwrap_or("?"),
                c.memlens_version.as_deref().unwrap_or("?")
            )
        })
    });
    match banner {
        Some(b) => emit(&format!("{b}{s}")),
        None => emit(s),
    }
}

/// What the JSON being printed is (`kind`) and, with --from, the capture it comes from: set
/// once per run by [`run`] and [`open_root`], put into every report by [`emit_json`].
static JSON_KIND: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
static JSON_CAPTURE: std::sync::Mutex<Option<crate::sys::CaptureMeta>> =
    std::sync::Mutex::new(None);

fn set_json_kind(kind: &str) {
    if let Ok(mut k) = JSON_KIND.lock() {
        *k = Some(kind.to_string());
    }
}

/// Prints a JSON report with its envelope (`schema`, `kind`, `problems`, `capture`).
fn emit_json(v: &serde_json::Value) {
    let kind = JSON_KIND
        .lock()
        .ok()
        .and_then(|k| k.clone())
        .unwrap_or_else(|| "memlens".into());
    let cap = JSON_CAPTURE.lock().ok().and_then(|c| c.clone());
    let v = render::json::envelope(&kind, v.clone(), cap.as_ref());
    emit(&format!(
        "{}\n",
        serde_json::to_string_pretty(&v).unwrap_or_default()
    ));
}

/// Runs the command line; returns memlens's exit code (`run` passes the command's through).
pub fn run(cli: Cli) -> Result<i32, Failure> {
    let g = cli.global.clone();
    let st = style(&g);
    // Human output wraps to the terminal's width (COLUMNS when set); piped output does not.
    render::set_width(
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .or_else(|| {
                std::io::stdout()
                    .is_terminal()
                    .then(|| terminal_size::terminal_size().map(|(w, _)| w.0 as usize))
                    .flatten()
            }),
    );
    set_json_kind(match &cli.command {
        None => "overview",
        Some(Command::Show { .. }) => "show",
        Some(Command::Explain { .. }) => "explain",
        Some(Command::Oom { .. }) => "oom",
        Some(Command::Zombies { .. }) => "zombies",
        Some(Command::Ps { .. }) => "ps",
        Some(Command::Capture { .. }) => "capture",
        Some(Command::Run { .. }) => "run",
        Some(Command::Lab { .. }) => "lab",
        Some(Command::Node { .. }) => "node",
        Some(Command::Kernel { .. }) => "kernel",
        Some(Command::Cache { .. }) => "cache",
        Some(Command::History { .. }) => "history",
        Some(Command::Recommend { .. }) => "recommend",
        // No JSON report (refused, or not a report: serve, top, record, plot, export...).
        _ => "memlens",
    });
    match cli.command {
        None => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let mut o = overview::collect(&root, &h, cli.overview.all);
            overview::count_pids(&root, &h, &mut o);
            let tree = cli.overview.all && cli.overview.sort.is_none();
            if tree {
                overview::tree_order(&mut o.rows);
            } else {
                overview::sort(&mut o.rows, cli.overview.sort.as_deref().unwrap_or("usage"));
            }
            output(
                g.json,
                || render::json::overview(&o),
                || {
                    render::human::overview_with(
                        &o,
                        st,
                        render::human::OverviewStyle {
                            tree,
                            no_headers: cli.overview.no_headers,
                        },
                    )
                },
            );
        }
        Some(Command::Node {
            kubelet_config,
            pods,
            kubepods,
            sample,
        }) => {
            let root = open_root(&g)?;
            if sample.is_some() && g.from.is_some() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "--sample reads the live node twice; it cannot sample a capture (--from)",
                ));
            }
            let h = hierarchy(&root)?;
            let pods = match pods {
                None => None,
                Some(f) => {
                    let text = if f.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())
                    } else {
                        std::fs::read_to_string(&f)
                    }
                    .map_err(|e| {
                        Failure::new(exit::BAD_TARGET, format!("--pods {}: {e}", f.display()))
                    })?;
                    Some(
                        crate::kubelet::parse_pods(&text)
                            .map_err(|e| Failure::new(exit::BAD_TARGET, e))?,
                    )
                }
            };
            let opts = crate::node::Options {
                kubelet_config,
                pods,
                kubepods,
                sample,
                forecast: g.from.is_none() && g.at.is_none(),
                store: g.store.clone(),
            };
            let n = crate::node::collect(&root, &h, &opts)
                .map_err(|e| Failure::new(exit::FAILURE, format!("root cgroup unreadable: {e}")))?;
            output(
                g.json,
                || render::node::json(&n),
                || render::node::human(&n, st),
            );
        }
        Some(Command::Show {
            target,
            descendants,
            brief,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = resolve_target(&root, &h, &target)?;
            let r = build(&root, &h, &path, descendants)?;
            let mut findings = crate::rules::evaluate(&r, None);
            findings.extend(forecast_finding(&g, &r));
            if g.json {
                let mut v = render::json::show(&r);
                v["findings"] = serde_json::json!(findings);
                emit_json(&v);
            } else if brief {
                emit_human(&render::human::brief(&r, &findings, st));
            } else {
                // The verdict first; the full report below it.
                let mut out = render::human::verdict_line(&r, &findings, st);
                out.push('\n');
                out.push_str(&render::human::show(&r, st));
                out.push_str(&render::human::findings(&findings, st));
                emit_human(&out);
            }
        }
        Some(Command::Explain {
            target,
            descendants,
            sample,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = resolve_target(&root, &h, &target)?;
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
                    if !g.json {
                        // What is known now reaches a pipe before the wait.
                        emit_human(&render::human::explain_first_sample(&first, d));
                        let _ = std::io::stdout().flush();
                    }
                    wait_with_progress(d, "second sample");
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
                    &serde_json::json!({"target": {"given": target, "path": r.cgroup.path, "version": r.cgroup.version.number()}, "findings": findings, "problems": r.problems()}),
                );
            } else {
                emit_human(&render::human::explain(&r, &findings, st));
            }
        }
        Some(Command::Oom {
            action,
            target,
            file,
            follow,
            count,
        }) => {
            if let Some(OomAction::Forget { n }) = action {
                return crate::trend::forget(g.store.as_deref(), n)
                    .map(|text| {
                        emit_human(&text);
                        exit::OK
                    })
                    .map_err(|(code, e)| Failure::new(code, e));
            }
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
                // The live kernel, or the host's under --host-root (HOST/dev/kmsg, syslog(2)).
                None if !root.is_capture() => crate::oom::Source::Kmsg,
                None => {
                    text = root
                        .read(std::path::Path::new(crate::oom::bundle::CAPTURE_KMSG))
                        .map_err(|e| {
                            Failure::new(
                                exit::BAD_TARGET,
                                format!(
                                    "this capture holds no kernel log ({e}); give one with --file"
                                ),
                            )
                        })?;
                    crate::oom::Source::Captured(&text)
                }
                Some(f) => {
                    text = if f.as_os_str() != "-" && crate::kmsg::source::is_char_device(f) {
                        // A kmsg device (`--file /dev/kmsg`) is read record by record.
                        crate::kmsg::source::read_file(f)
                    } else {
                        // Bytes, decoded lossily line by line (syslog mixes encodings).
                        crate::kmsg::log::read_log_file(f)
                    }
                    .map_err(|e| {
                        let why = if crate::kmsg::source::is_char_device(f)
                            || f.file_name().is_some_and(|n| n == "kmsg")
                        {
                            crate::kmsg::source::explain(f, &e)
                        } else {
                            format!("{}: {e}", f.display())
                        };
                        Failure::new(exit::FAILURE, format!("cannot read {why}"))
                    })?;
                    crate::oom::Source::Text(&text)
                }
            };
            // Syslog stamps carry no year: the log file's mtime gives it (else this year).
            let now = std::time::SystemTime::now();
            let (stamp, why) = match file.as_deref().filter(|f| f.as_os_str() != "-") {
                Some(f) => match std::fs::metadata(f).and_then(|m| m.modified()) {
                    Ok(t) => (t, "the year of the log file's modification time"),
                    Err(_) => (now, "the current year; the file's mtime is unreadable"),
                },
                None => (now, "the current year"),
            };
            let secs = stamp
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let from_kmsg = file.is_none() && !root.is_capture();
            let mut all =
                crate::oom::collect_with_year(&root, src, Some((crate::oom::year_of(secs), why)))
                    .map_err(|e| {
                    Failure::new(
                        exit::FAILURE,
                        format!("cannot read the kernel log: {e} (or pass --file)"),
                    )
                })?;
            if let Some(t) = &target {
                // A live cgroup the target names (its kills may also be in removed cgroups).
                let resolved = report::hierarchy(&root)
                    .ok()
                    .and_then(|h| target::resolve(&root, &h, t).ok());
                all.retain(|p| crate::oom::matches_target(p, t, resolved.as_deref()));
            }
            match action {
                None => {
                    output(
                        g.json,
                        || serde_json::json!({ "events": all }),
                        || {
                            render::human::oom_list_with(
                                &all,
                                st,
                                from_kmsg.then_some(
                                    "Times: /dev/kmsg monotonic stamps + the boot time (CLOCK_REALTIME − CLOCK_BOOTTIME), in UTC.",
                                ),
                            )
                        },
                    );
                }
                // Handled above, before the kernel log is read.
                Some(OomAction::Forget { .. }) => {}
                Some(OomAction::Show { n, capture }) => {
                    let Some(pm) = all.iter().find(|p| p.number == n) else {
                        return Err(Failure::new(
                            exit::BAD_TARGET,
                            crate::oom::no_such_kill(n, &all),
                        ));
                    };
                    set_json_kind("oom-event");
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
        Some(Command::Zombies {
            sample,
            reclaim,
            force,
            why,
            path,
            max_files,
            max_time,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            if why {
                if !root.is_live() && g.host_root.is_none() {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "--why reads page frames of the live system, not a capture (--from)",
                    ));
                }
                let bounds = crate::pagecache::candidates::Bounds {
                    max_files,
                    max_time,
                };
                let w = crate::dying::collect(&root, &h, &path, bounds);
                set_json_kind("zombies-why");
                output(
                    g.json,
                    || serde_json::json!({"why": w}),
                    || render::cache::why(&w, st),
                );
                return Ok(exit::OK);
            }
            if let Some(t) = reclaim {
                if !root.is_live() {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        "--reclaim acts on the live system, not on --from",
                    ));
                }
                let path = resolve_target(&root, &h, &t)?;
                let plan = crate::zombies::plan_reclaim(&root, &h, &path, force)
                    .map_err(|e| Failure::new(exit::BAD_TARGET, e))?;
                // Say what is about to happen before it happens (stderr: stdout is the report).
                eprintln!(
                    "memlens: reclaiming {path}: writing {} ({} charged, {} of it page cache{})",
                    plan.file,
                    render::bytes(plan.usage_bytes),
                    render::bytes(plan.file_bytes),
                    match plan.pids.as_ref().map(Vec::len) {
                        Some(0) => String::new(),
                        Some(n) => format!(
                            "; --force: {n} process(es) will read their files back from disk"
                        ),
                        None => "; --force: processes unknown".into(),
                    }
                );
                set_json_kind("reclaim");
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
            // Human output: the first count is printed (and reaches a pipe) before the wait;
            // the trend follows it.
            let streamed = !g.json && sample.is_some() && root.is_live();
            if streamed {
                emit_human(&render::human::zombies(&first, None, st));
                let _ = std::io::stdout().flush();
            }
            let trend = match sample {
                Some(d) => {
                    if !root.is_live() {
                        return Err(Failure::new(
                            exit::BAD_TARGET,
                            "--sample needs the live system, not --from",
                        ));
                    }
                    wait_with_progress(d, "second count");
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
            } else if streamed {
                emit(&render::human::zombies_trend(&first, trend));
            } else {
                emit_human(&render::human::zombies(&first, trend, st));
            }
        }
        Some(Command::Kernel { target, sample }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            if sample.is_some() && !root.is_live() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "--sample needs the live system, not --from",
                ));
            }
            let path = match &target {
                Some(t) => Some(target::resolve(&root, &h, t)?),
                None => None,
            };
            let r = crate::kmem::collect(&root, &h, path.as_deref(), sample);
            output(
                g.json,
                || serde_json::json!(r),
                || render::kernel::report(&r, st),
            );
        }
        Some(Command::Cache {
            target,
            path,
            max_files,
            max_time,
            top,
            drop,
        }) => {
            let root = open_root(&g)?;
            if !root.is_live() && g.host_root.is_none() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "cache reads the page cache of the live system, not a capture (--from)",
                ));
            }
            let h = hierarchy(&root)?;
            if !drop.is_empty() {
                let d = crate::cache::drop_files(&root, &h, &drop);
                set_json_kind("cache-drop");
                output(
                    g.json,
                    || serde_json::json!({"dropped": d, "problems": []}),
                    || render::cache::dropped(&d, st),
                );
                // A named file that could not be dropped is bad input.
                if d.iter().any(|x| x.error.is_some()) {
                    return Ok(exit::BAD_TARGET);
                }
                return Ok(exit::OK);
            }
            let Some(t) = target else {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "cache needs a TARGET or --drop FILE",
                ));
            };
            let cgpath = target::resolve(&root, &h, &t)?;
            let opts = crate::cache::Options {
                paths: path,
                bounds: crate::pagecache::candidates::Bounds {
                    max_files,
                    max_time,
                },
                top,
            };
            let r = crate::cache::collect(&root, &h, &cgpath, &opts);
            output(
                g.json,
                || serde_json::json!(r),
                || render::cache::report(&r, st),
            );
        }
        Some(Command::Ps {
            target,
            descendants,
            sort,
        }) => {
            let root = open_root(&g)?;
            let h = hierarchy(&root)?;
            let path = resolve_target(&root, &h, &target)?;
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
            include_cmdline,
        }) => {
            let root = open_root(&g)?.record();
            let h = hierarchy(&root)?;
            let label;
            let scope;
            let mut within: Option<String> = None;
            if all {
                label = "--all".to_string();
                scope = crate::capture::Scope::all(include_cmdline);
                let _ = overview::collect(&root, &h, true);
                // What `zombies --from` needs: /proc/cgroups (v1), the root's cgroup.stat (v2).
                let _ = crate::zombies::collect(&root, &h);
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
                let path = resolve_target(&root, &h, &t)?;
                within = Some(path.clone());
                label = t;
                let _ = overview::collect(&root, &h, true);
                let _ = crate::zombies::count(&root, &h);
                report::build(&root, &h, &path, Options { descendants }).map_err(|e| {
                    Failure::new(exit::BAD_TARGET, format!("cgroup {path} vanished: {e}"))
                })?;
                // The children at full detail too, so `show` works on them from the capture.
                let subtree = walk::all_paths(&root, &h, &path);
                for p in subtree.iter().skip(1) {
                    let _ = read::read_cgroup(&root, &h, p, Level::Full);
                }
                scope = crate::capture::Scope::of_paths(
                    std::iter::once(path.as_str()).chain(subtree.iter().map(String::as_str)),
                    include_cmdline,
                );
            }
            // The kernel log's OOM reports about what was captured, for `oom --from`.
            if root.is_live() {
                crate::oom::bundle::capture(&root, within.as_deref());
            }
            let (n, bad) = crate::capture::write(&root, &output, &label, &scope).map_err(|e| {
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
            port_file,
            interval,
            log_format,
            record,
            record_interval,
            retention,
            max_size,
            full_every,
            reread_above,
            max_fds,
            ..
        }) => {
            if g.json {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "serve prints no report: --json does not apply (the API at /api/v1/... serves JSON)",
                ));
            }
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
            crate::serve::run(
                root,
                h,
                crate::serve::ServeOptions {
                    listen,
                    interval,
                    port_file,
                    tiers: crate::cgroup::tier::TierOptions {
                        full_every,
                        threshold: reread_above,
                        fd_cap: max_fds,
                    },
                },
            )
            .map_err(|e| Failure::new(exit::FAILURE, format!("serve on {listen}: {e}")))?;
        }
        Some(Command::Top {
            interval, replay, ..
        }) => {
            if g.json {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "top is interactive: --json has no meaning (use `memlens --json` or `serve`)",
                ));
            }
            if !std::io::stdout().is_terminal() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "top needs a terminal (for one report use `memlens`, for a stream `serve`)",
                ));
            }
            let source = if replay || g.at.is_some() {
                crate::tui::Source::Replay {
                    store: g.store.clone(),
                    at: g.at.clone(),
                }
            } else if let Some(p) = &g.from {
                crate::tui::Source::Capture(Box::new(open_root(&g)?), p.display().to_string())
            } else {
                crate::tui::Source::Live(Box::new(open_root(&g)?), Box::new(open_root(&g)?))
            };
            let color = match g.color {
                ColorMode::Always => true,
                ColorMode::Never => false,
                ColorMode::Auto => std::env::var_os("NO_COLOR").is_none(),
            };
            crate::tui::run(
                source,
                crate::tui::Options {
                    interval,
                    color,
                    store: g.store.clone(),
                },
            )
            .map_err(|e| Failure::new(exit::FAILURE, e))?;
        }
        Some(Command::Record(a)) => {
            refuse_json(&g, "record")?;
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
            ..
        }) => {
            refuse_json(&g, "plot")?;
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
        Some(Command::Probe { target, probe }) => {
            let root = open_root(&g)?;
            if !root.is_live() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "probe acts on the live system, not on --from",
                ));
            }
            let h = hierarchy(&root)?;
            let path = resolve_target(&root, &h, &target)?;
            set_json_kind("probe");
            let o = probe.options();
            let rep = crate::probe::probe_target(
                &root,
                &h,
                &path,
                &o,
                // Said before the first write (stderr: stdout is the report).
                |plan| {
                    eprintln!(
                        "memlens: probe {path}: {}{plan}",
                        if o.dry_run { "dry run, would " } else { "" }
                    )
                },
                |t| {
                    eprintln!(
                        "memlens: step {}: wrote {:?}: {} -> {}, some {}",
                        t.n,
                        t.wrote,
                        render::bytes(t.usage_before),
                        render::bytes(t.usage_after),
                        t.psi_some_percent
                            .map_or("n/a".into(), |p| format!("{p:.2}%"))
                    )
                },
            )
            .map_err(|(c, m)| Failure::new(c, m))?;
            output(
                g.json,
                || serde_json::json!(rep),
                || render::recommend::probe(&rep, st),
            );
        }
        Some(Command::Recommend {
            target,
            since,
            margin,
            check_limit,
            prometheus,
        }) => {
            let m = margin.trim().trim_end_matches('%').trim().parse::<f64>();
            let margin = match m {
                Ok(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => v / 100.0,
                _ => {
                    return Err(Failure::new(
                        exit::BAD_TARGET,
                        format!("--margin {margin:?}: give a percentage such as 15%"),
                    ));
                }
            };
            let q = crate::recommend::Query {
                target,
                since,
                margin,
                check_limit,
            };
            let rep = match &prometheus {
                Some(url) => crate::prom::recommend(url, &q),
                None => crate::recommend::recommend(g.store.as_deref(), &q),
            }
            .map_err(|e| Failure::new(e.0, e.1))?;
            output(
                g.json,
                || serde_json::json!(rep),
                || render::recommend::human(&rep, st),
            );
        }
        Some(Command::Export {
            targets,
            since,
            until,
            format: _,
            ..
        }) => {
            refuse_json(&g, "export")?;
            let e = crate::history::export(g.store.as_deref(), &since, until.as_deref(), &targets)
                .map_err(|e| Failure::new(e.0, e.1))?;
            for p in &e.problems {
                eprintln!("memlens: {p}");
            }
            emit(&render::history::openmetrics(&e));
        }
        Some(Command::Completions { shell, .. }) => {
            refuse_json(&g, "completions")?;
            let mut out = std::io::stdout().lock();
            crate::completions::write(shell, &mut out)
                .map_err(|e| Failure::new(exit::FAILURE, format!("cannot write: {e}")))?;
        }
        Some(Command::Man { .. }) => {
            refuse_json(&g, "man")?;
            let mut buf = Vec::new();
            crate::completions::man(command(), &mut buf)
                .map_err(|e| Failure::new(exit::FAILURE, format!("cannot render: {e}")))?;
            emit(&String::from_utf8_lossy(&buf));
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
            find_limit,
            slowdown,
            probe,
            probe_args,
            ..
        }) => {
            if g.from.is_some() {
                return Err(Failure::new(
                    exit::BAD_TARGET,
                    "run works on the live system only, not with --from",
                ));
            }
            if find_limit {
                let sd = match slowdown.trim().trim_end_matches('%').trim().parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => v / 100.0,
                    _ => {
                        return Err(Failure::new(
                            exit::BAD_TARGET,
                            format!("--slowdown {slowdown:?}: give a percentage such as 10%"),
                        ));
                    }
                };
                let opts = crate::run::RunOptions {
                    command,
                    limit: None,
                    high,
                    swap,
                    interval,
                    timeline: None,
                    reclaim_before_exit: false,
                    parent,
                    probe: None,
                };
                let f = crate::findlimit::find_limit(&opts, sd, |t| {
                    eprintln!(
                        "memlens: trial {}: {} in {:.2} s{}",
                        t.limit
                            .map_or("unlimited".into(), |l| render::bytes(Some(l))),
                        t.outcome,
                        t.wall_seconds,
                        t.why.as_ref().map_or(String::new(), |w| format!(" ({w})"))
                    )
                })
                .map_err(|e| Failure::new(e.code, e.message))?;
                // As `run`: the report goes to -o FILE or stderr (stdout is the command's).
                let text = if g.json {
                    format!(
                        "{}\n",
                        serde_json::to_string_pretty(&render::json::envelope(
                            "find-limit",
                            serde_json::json!(f),
                            None
                        ))
                        .unwrap_or_default()
                    )
                } else {
                    render::recommend::find_limit(&f, st)
                };
                match output.as_ref().map(|p| (p, std::fs::write(p, &text))) {
                    Some((_, Ok(()))) => {}
                    Some((p, Err(e))) => {
                        eprintln!("memlens: cannot write {}: {e}", p.display());
                        eprint!("{text}");
                    }
                    None => eprint!("{text}"),
                }
                return Ok(if f.limit.is_some() {
                    exit::OK
                } else {
                    exit::FAILURE
                });
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
                probe: probe.then(|| probe_args.options()),
            };
            let r = crate::run::run(&opts).map_err(|e| Failure::new(e.code, e.message))?;
            let text = if g.json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&render::json::envelope(
                        "run",
                        crate::render::run::json(&r),
                        None
                    ))
                    .unwrap_or_default()
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
                crate::render::run::human(&r, s)
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
            skip_oom,
            dir,
            compare,
            ..
        }) => {
            if list {
                set_json_kind("lab-list");
                output(
                    g.json,
                    crate::render::lab::list_json,
                    crate::render::lab::list,
                );
                return Ok(exit::OK);
            }
            if let Some(files) = compare {
                set_json_kind("lab-compare");
                let read = |p: &PathBuf| -> Result<serde_json::Value, Failure> {
                    let t = std::fs::read_to_string(p).map_err(|e| {
                        Failure::new(exit::BAD_TARGET, format!("--compare {}: {e}", p.display()))
                    })?;
                    serde_json::from_str(&t).map_err(|e| {
                        Failure::new(
                            exit::BAD_TARGET,
                            format!("--compare {}: not JSON ({e})", p.display()),
                        )
                    })
                };
                let (fa, fb) = (&files[0], &files[1]);
                let (a, b) = (read(fa)?, read(fb)?);
                let c = crate::labdiff::compare(
                    &fa.display().to_string(),
                    &a,
                    &fb.display().to_string(),
                    &b,
                )
                .map_err(|e| Failure::new(exit::BAD_TARGET, e))?;
                output(
                    g.json,
                    || crate::labdiff::json(&c),
                    || crate::labdiff::human(&c, st),
                );
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
            let (run_these, left_out): (Vec<String>, Vec<String>) = if skip_oom {
                let names: Vec<String> = if scenarios.is_empty() {
                    crate::lab::scenarios()
                        .iter()
                        .map(|s| s.name.to_string())
                        .collect()
                } else {
                    scenarios.clone()
                };
                names
                    .into_iter()
                    .partition(|n| !crate::lab::DISRUPTIVE.contains(&n.as_str()))
            } else {
                (scenarios.clone(), Vec::new())
            };
            let mut results = if run_these.is_empty() && !left_out.is_empty() {
                Vec::new()
            } else {
                crate::lab::run(&lab, &run_these).map_err(|e| Failure::new(exit::BAD_TARGET, e))?
            };
            results.extend(left_out.iter().map(|n| crate::lab::skipped_by_flag(n)));
            output(
                g.json,
                || crate::render::lab::json(&results, &lab.about()),
                || crate::render::lab::human(&results, st),
            );
            if !crate::lab::all_held(&results) {
                return Ok(exit::FAILURE);
            }
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
    use clap::Parser;

    /// One duration grammar for every flag (units required), sizes with decimals and
    /// IEC/SI suffixes, and limits below 6 MiB refused.
    #[test]
    fn every_duration_and_size_flag_shares_one_grammar() {
        let p = |a: &[&str]| {
            super::Cli::try_parse_from(std::iter::once("memlens").chain(a.iter().copied()))
        };
        for ok in [
            &["run", "--interval", "1m", "--", "true"][..],
            &["serve", "--interval", "1m"],
            &["zombies", "--sample", "500ms"],
            &["explain", "x", "--sample", "1.5s"],
            &["run", "--limit", "1.5G", "--", "true"],
            &["run", "--limit", "512Mi", "--", "true"],
            &["run", "--limit", "1Gi", "--high", "900MB", "--", "true"],
            &["serve", "--listen", ":9753"],
        ] {
            assert!(p(ok).is_ok(), "{ok:?}: {:?}", p(ok).err());
        }
        for (bad, says) in [
            (
                &["run", "--interval", "10", "--", "true"][..],
                "unit is required",
            ),
            (&["zombies", "--sample", "500"], "unit is required"),
            (&["serve", "--interval", "10"], "unit is required"),
            (&["run", "--limit", "1M", "--", "true"], "6 MiB"),
            (
                &["run", "--limit", "12Q", "--", "true"],
                "unknown size unit",
            ),
        ] {
            let e = p(bad).expect_err("refused").to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

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
