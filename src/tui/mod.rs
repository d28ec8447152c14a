//! `memlens top`: a live, interactive view of every container's memory, and replay of the
//! recorded past in the same screens.
//!
//! One more front end over the same model (the shape of bottom's and below's TUIs): a
//! collector thread reads [`snapshot::Snapshot`]s with the code the overview, `show` and
//! the exporter use; an OOM thread runs `oom --follow`'s [`Follower`]; the UI thread only
//! renders the latest snapshot and handles keys. It never reads /sys or /proc itself.

pub mod app;
pub mod draw;
pub mod snapshot;

use crate::model::Hierarchy;
use crate::oom::follow::{Detected, Follower};
use crate::sys::Root;
use app::{Action, App, Kill};
use crossterm::event::{self, Event, KeyEventKind};
use snapshot::Snapshot;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Where the figures come from.
pub enum Source {
    /// This system (or `--host-root`): refreshed every interval, OOM kills followed. Two
    /// handles on the same system: the collector's and the OOM follower's (a [`Root`] is
    /// not shared between threads).
    Live(Box<Root>, Box<Root>),
    /// A capture (`--from`): one moment, shown as is.
    Capture(Box<Root>, String),
    /// The flight recorder's store, starting at a time (`--at` syntax; default: the newest).
    Replay {
        /// The store (None: the default one).
        store: Option<PathBuf>,
        /// Start time.
        at: Option<String>,
    },
}

/// Options of `memlens top`.
pub struct Options {
    /// Refresh interval (live), playback step (replay).
    pub interval: Duration,
    /// Colour allowed (NO_COLOR and `--color never` turn it off).
    pub color: bool,
    /// The flight recorder's store (`--store`; None: the default): replay reads it, and
    /// live sparklines start with its samples while `memlens record` writes it.
    pub store: Option<PathBuf>,
}

/// What the collector sends the UI.
pub struct Update {
    /// The new moment (`None`: only kills, the UI keeps its snapshot).
    pub snapshot: Option<Snapshot>,
    /// OOM kills to show (recorded ones met while stepping through a replay).
    pub kills: Vec<Kill>,
    /// A one-line status (replay position, errors), replacing the previous one.
    pub status: Option<String>,
}

/// What the UI asks the collector.
pub enum Request {
    /// Read the full report of this cgroup from now on (None: none), and refresh now.
    Focus(Option<String>),
    /// Replay moves.
    Step(i64),
    /// Replay: previous/next OOM kill.
    OomJump(i64),
    /// Replay: play/pause.
    PlayPause,
    /// Replay: a time.
    Seek(String),
}

/// One line for a kill seen by the follower, and its post-mortem as `oom show` prints it.
pub fn kill_of(d: &Detected) -> Kill {
    let who = d
        .post_mortem
        .as_ref()
        .and_then(|p| p.report.victim.as_ref())
        .map(|v| {
            format!(
                "victim {} (pid {})",
                v.comm.as_deref().unwrap_or("?"),
                v.pid.map_or("?".to_string(), |p| p.to_string())
            )
        })
        .unwrap_or_else(|| format!("{} kill(s) counted", d.kills));
    let name = d
        .identity
        .as_ref()
        .and_then(|i| i.display_name())
        .or_else(|| d.cgroup.clone())
        .unwrap_or_else(|| "?".into());
    Kill {
        cgroup: d.cgroup.clone(),
        line: format!("{} in {name}: {who}", d.detected_at),
        post_mortem: d
            .post_mortem
            .as_ref()
            .map(|p| crate::render::human::oom_show(p, crate::render::Style { color: false })),
    }
}

/// Runs `memlens top` until q/Ctrl-C. Errors: the source cannot be opened.
pub fn run(source: Source, opts: Options) -> Result<(), String> {
    let (req_tx, req_rx) = mpsc::channel::<Request>();
    let (up_tx, up_rx) = mpsc::channel::<Update>();
    let replay = matches!(source, Source::Replay { .. });
    match source {
        Source::Live(root, oom_root) => {
            let h = crate::report::hierarchy(&root).map_err(|e| e.to_string())?;
            let oom_tx = up_tx.clone();
            // The follower's own thread: it blocks in poll(2) on the kernel log.
            std::thread::spawn(move || oom_thread(*oom_root, oom_tx));
            let (every, store) = (opts.interval, opts.store.clone());
            std::thread::spawn(move || live_collector(*root, h, every, store, req_rx, up_tx));
        }
        Source::Capture(root, label) => {
            let h = crate::report::hierarchy(&root).map_err(|e| e.to_string())?;
            let t = root
                .capture()
                .and_then(|c| c.captured_at_unix)
                .map_or(0, |s| s as i64 * 1000);
            std::thread::spawn(move || {
                capture_collector(*root, h, t, format!("capture {label}"), req_rx, up_tx)
            });
        }
        Source::Replay { store, at } => {
            let r = crate::history::open_store(store.as_deref()).map_err(|e| e.to_string())?;
            let start = match &at {
                Some(a) => crate::history::parse_time(a, crate::store::now_ms())?,
                None => r
                    .range()
                    .map_err(|e| e.to_string())?
                    .map(|(_, hi)| hi)
                    .ok_or_else(|| {
                        format!("the store {} holds no samples yet", r.dir().display())
                    })?,
            };
            let first = replay_update(&r, start, None)?;
            up_tx.send(first).map_err(|e| e.to_string())?;
            std::thread::spawn(move || replay_collector(r, start, opts.interval, req_rx, up_tx));
        }
    }
    let mut app = App::new(opts.color, replay);
    ui(&mut app, req_tx, up_rx)
}

fn oom_thread(root: Root, tx: Sender<Update>) {
    // Issue 14 asks for a kill on screen within 2 s: a counter-only kill (the log cut) is
    // seen within this poll plus the grace time (400 ms).
    let Ok(mut f) = Follower::start(root).map(|f| f.with_poll(Duration::from_secs(1))) else {
        return;
    };
    loop {
        let kills = f.next(Duration::from_millis(500));
        if kills.is_empty() {
            continue;
        }
        let up = Update {
            snapshot: None,
            kills: kills.iter().map(kill_of).collect(),
            status: None,
        };
        if tx.send(up).is_err() {
            return;
        }
    }
}

fn live_collector(
    root: Root,
    h: Hierarchy,
    every: Duration,
    store: Option<PathBuf>,
    rx: Receiver<Request>,
    tx: Sender<Update>,
) {
    let mut focus: Option<String> = None;
    let mut cache = snapshot::Cache::default();
    // The focused cgroup's recorded past, read once when it is opened (the ring covers the
    // rest): (cgroup, samples).
    let mut recorded: Option<(String, Vec<(i64, u64)>)> = None;
    loop {
        let now = crate::store::now_ms();
        let mut s = snapshot::take_cached(&root, &h, focus.as_deref(), now, "live", &mut cache);
        if let Some(f) = &focus
            && recorded.as_ref().is_none_or(|(p, _)| p != f)
        {
            recorded = Some((
                f.clone(),
                snapshot::recorded_usage(store.as_deref(), f, now),
            ));
        }
        if let (Some(d), Some((_, v))) = (s.detail.as_mut(), &recorded) {
            d.recorded = v.clone();
        }
        let up = Update {
            snapshot: Some(s),
            kills: vec![],
            status: None,
        };
        if tx.send(up).is_err() {
            return;
        }
        let until = Instant::now() + every;
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Request::Focus(f)) => {
                    focus = f;
                    break;
                }
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

fn capture_collector(
    root: Root,
    h: Hierarchy,
    t: i64,
    label: String,
    rx: Receiver<Request>,
    tx: Sender<Update>,
) {
    let mut focus = None;
    loop {
        let s = snapshot::take(&root, &h, focus.as_deref(), t, &label);
        if tx
            .send(Update {
                snapshot: Some(s),
                kills: vec![],
                status: None,
            })
            .is_err()
        {
            return;
        }
        match rx.recv() {
            Ok(Request::Focus(f)) => focus = f,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The recorded moment `t` as an update, with the kills recorded in `(since, t]`.
pub fn replay_update(
    r: &crate::store::Reader,
    t: i64,
    focus: Option<&str>,
) -> Result<Update, String> {
    replay_update_since(r, t, None, focus)
}

fn replay_update_since(
    r: &crate::store::Reader,
    t: i64,
    since: Option<i64>,
    focus: Option<&str>,
) -> Result<Update, String> {
    let m = crate::history::moment(r, t)?;
    let root = Root::from_files(m.files);
    let h = crate::report::hierarchy(&root).map_err(|e| e.to_string())?;
    let snap = snapshot::take(&root, &h, focus, t, "replay");
    let mut kills = vec![];
    if let Some(s) = since.filter(|s| *s < t) {
        for e in r.events(s + 1, t).map_err(|e| e.to_string())? {
            if e.kind == "oom-kill" {
                kills.push(recorded_kill(&e));
            }
        }
    }
    Ok(Update {
        snapshot: Some(snap),
        kills,
        status: (!m.problems.is_empty()).then(|| m.problems.join("; ")),
    })
}

/// A recorded OOM kill (the store keeps the follower's event as JSON).
fn recorded_kill(e: &crate::store::Event) -> Kill {
    let victim = e.data["post_mortem"]["report"]["victim"]["comm"].as_str();
    Kill {
        cgroup: e.cgroup.clone(),
        line: format!(
            "{} in {}{}",
            crate::history::format_time(e.t),
            e.cgroup.as_deref().unwrap_or("?"),
            victim.map_or(String::new(), |v| format!(": victim {v}"))
        ),
        post_mortem: serde_json::to_string_pretty(&e.data).ok(),
    }
}

fn replay_collector(
    r: crate::store::Reader,
    start: i64,
    every: Duration,
    rx: Receiver<Request>,
    tx: Sender<Update>,
) {
    let step = r
        .meta("interval_ms")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(10_000)
        .max(1);
    let mut t = start;
    let mut focus: Option<String> = None;
    let mut playing = false;
    loop {
        let req = if playing {
            match rx.recv_timeout(every) {
                Ok(q) => Some(q),
                Err(RecvTimeoutError::Timeout) => Some(Request::Step(1)),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(q) => Some(q),
                Err(_) => return,
            }
        };
        let prev_t = t;
        // Kills recorded in (before, t] are shown on arrival.
        let mut before = t;
        let mut status = None;
        match req {
            Some(Request::Focus(f)) => focus = f,
            Some(Request::Step(n)) => t += n * step,
            Some(Request::PlayPause) => {
                playing = !playing;
                continue;
            }
            Some(Request::Seek(s)) => {
                match crate::history::parse_time(&s, crate::store::now_ms()) {
                    Ok(x) => t = x,
                    Err(e) => status = Some(e),
                }
            }
            Some(Request::OomJump(d)) => {
                let range = r.range().ok().flatten().unwrap_or((t, t));
                let kills: Vec<i64> = r
                    .events(range.0, range.1)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.kind == "oom-kill")
                    .map(|e| e.t)
                    .collect();
                let next = if d > 0 {
                    kills.iter().find(|k| **k > t).copied()
                } else {
                    kills.iter().rev().find(|k| **k < t).copied()
                };
                match next {
                    // Landing on a kill shows it (banner, post-mortem), backwards too.
                    Some(k) => {
                        t = k;
                        before = k - 1;
                    }
                    None => status = Some("no recorded OOM kill that way".into()),
                }
            }
            None => {}
        }
        // Stay inside the recording.
        if let Ok(Some((lo, hi))) = r.range() {
            if t > hi {
                t = hi;
                playing = false;
            }
            t = t.max(lo);
        }
        let up = match replay_update_since(&r, t, Some(before), focus.as_deref()) {
            Ok(mut u) => {
                if status.is_some() {
                    u.status = status;
                }
                u
            }
            Err(e) => {
                t = prev_t;
                match replay_update(&r, t, focus.as_deref()) {
                    Ok(mut u) => {
                        u.status = Some(e);
                        u
                    }
                    Err(_) => continue,
                }
            }
        };
        if tx.send(up).is_err() {
            return;
        }
    }
}

/// The event loop: keys and updates, redrawing only when something changed.
fn ui(app: &mut App, req: Sender<Request>, up: Receiver<Update>) -> Result<(), String> {
    // ratatui::init installs a panic hook that restores the terminal before the panic
    // message prints (raw mode off, main screen back), so a bug never leaves a broken tty.
    let mut term = ratatui::init();
    // Mouse reports on (wheel, clicks); turned off again on exit and before a panic message
    // (ratatui's hook restores raw mode and the screen, not mouse reporting).
    let mouse =
        crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture).is_ok();
    if mouse {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
            prev(info);
        }));
    }
    let mut latest: Option<Snapshot> = None;
    let mut dirty = true;
    let result = loop {
        while let Ok(u) = up.try_recv() {
            apply(app, &mut latest, u);
            dirty = true;
        }
        if dirty {
            if let Err(e) = term.draw(|f| draw::draw(f, app, latest.as_ref())) {
                break Err(e.to_string());
            }
            dirty = false;
        }
        match event::poll(Duration::from_millis(50)) {
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                    dirty = true;
                    let send = |r: Request| req.send(r).is_ok();
                    match app.key(k, latest.as_ref()) {
                        Action::Quit => break Ok(()),
                        Action::None => {}
                        Action::Focus(f) => {
                            send(Request::Focus(f));
                        }
                        Action::Step(n) => {
                            send(Request::Step(n));
                        }
                        Action::OomJump(n) => {
                            send(Request::OomJump(n));
                        }
                        Action::PlayPause => {
                            send(Request::PlayPause);
                        }
                        Action::Seek(s) => {
                            send(Request::Seek(s));
                        }
                    }
                }
                Ok(Event::Mouse(m)) => {
                    let before = (app.selected, app.help, app.post_mortem.is_some());
                    match app.mouse(m, latest.as_ref()) {
                        Action::Focus(f) => {
                            dirty = true;
                            let _ = req.send(Request::Focus(f));
                        }
                        _ => dirty |= before != (app.selected, app.help, app.post_mortem.is_some()),
                    }
                }
                Ok(Event::Resize(..)) => dirty = true,
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            },
            Ok(false) => {}
            Err(e) => break Err(e.to_string()),
        }
    };
    if mouse {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    }
    ratatui::restore();
    result
}

/// Takes in an update: kills first (an OOM-only update carries no snapshot).
pub fn apply(app: &mut App, latest: &mut Option<Snapshot>, u: Update) {
    for k in u.kills {
        app.kill(k);
    }
    if u.status.is_some() || u.snapshot.is_some() {
        app.status = u.status;
    }
    if let Some(s) = u.snapshot {
        app.ingest(&s);
        *latest = Some(s);
    }
}
