//! The TUI's state and its keys, without a terminal: what is selected, sorted, filtered,
//! which screen is open, the in-memory ring of past usages (sparklines, trend marks). Pure,
//! so the snapshot tests drive it exactly as a user would.

use super::snapshot::Snapshot;
use crate::overview::Row;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};

/// Samples kept per cgroup for sparklines: 10 minutes at the default 1 s interval.
pub const RING: usize = 600;

/// Node-screen sort columns: (key, name shown, column).
pub const SORTS: &[(char, &str)] = &[
    ('u', "usage"),
    ('w', "working-set"),
    ('l', "limit"),
    ('%', "percent"),
    ('r', "not-reclaimable"),
    ('h', "headroom"),
    ('m', "shmem"),
    ('k', "kernel"),
    ('s', "swap"),
    ('p', "pids"),
    ('P', "psi"),
    ('o', "oom"),
    ('f', "limit-hits"),
    ('n', "name"),
];

/// Process-table sort columns on the cgroup screen.
pub const PROC_SORTS: &[(char, &str)] = &[
    ('r', "rss"),
    ('p', "pss"),
    ('u', "uss"),
    ('s', "swap"),
    ('a', "anon"),
    ('i', "pid"),
];

/// Usage, limit hits and refaults of one cgroup (levels, or deltas).
pub type Trio<T> = (Option<T>, Option<T>, Option<T>);

/// Which screen is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    /// Every container.
    Node,
    /// One cgroup (its path).
    Cgroup(String),
}

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing beyond a redraw.
    None,
    /// Leave.
    Quit,
    /// Ask the collector for this cgroup's full report (or none) and a fresh snapshot.
    Focus(Option<String>),
    /// Replay: move by this many samples (negative: back).
    Step(i64),
    /// Replay: jump to the previous (-1) or next (+1) OOM kill.
    OomJump(i64),
    /// Replay: play or pause.
    PlayPause,
    /// Replay: jump to a time as typed (`--at` syntax).
    Seek(String),
}

/// One OOM kill seen while running (banner, row mark).
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    /// The memcg the kill is counted in.
    pub cgroup: Option<String>,
    /// One line: victim, memcg, time.
    pub line: String,
    /// The post-mortem as text (Enter on the banner opens it).
    pub post_mortem: Option<String>,
}

/// An input line being typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// `/`: the row filter.
    Filter,
    /// `g` in replay: a time.
    Time,
}

/// The whole UI state.
#[derive(Debug, Clone)]
pub struct App {
    /// The open screen.
    pub screen: Screen,
    /// Node-screen sort (index into [`SORTS`]).
    pub sort: usize,
    /// Process sort (index into [`PROC_SORTS`]).
    pub proc_sort: usize,
    /// Substring filter on name, image and path (case-insensitive).
    pub filter: String,
    /// A prompt being typed, and its text so far.
    pub prompt: Option<(Prompt, String)>,
    /// Every memory cgroup as a tree, instead of the containers.
    pub tree: bool,
    /// Show per-interval deltas (usage, limit hits, refaults) instead of levels.
    pub deltas: bool,
    /// `?` open.
    pub help: bool,
    /// Selected row of the node screen (index into the visible rows).
    pub selected: usize,
    /// Colour allowed (NO_COLOR / --color never turn it off).
    pub color: bool,
    /// Usage per cgroup, oldest first: (ms, bytes).
    pub ring: HashMap<String, VecDeque<(i64, u64)>>,
    /// The previous snapshot's figures per cgroup: (usage, limit hits, refaults).
    pub prev: HashMap<String, Trio<u64>>,
    /// This snapshot's deltas against the previous one.
    pub delta: HashMap<String, Trio<i64>>,
    /// OOM kills seen, newest last.
    pub kills: Vec<Kill>,
    /// The newest kill's banner is shown (until Esc or Enter).
    pub banner: bool,
    /// A post-mortem open (its text).
    pub post_mortem: Option<String>,
    /// Replay mode: keys step through the store.
    pub replay: bool,
    /// Replay: playing.
    pub playing: bool,
    /// A one-line status (replay errors, collector problems).
    pub status: Option<String>,
    /// Where the last frame drew the node table: (screen row of its first data row, index
    /// of the visible row drawn there, rows drawn). Set by `draw`, read by [`App::mouse`].
    pub table: Cell<(u16, usize, usize)>,
}

impl App {
    /// A fresh state on the node screen.
    pub fn new(color: bool, replay: bool) -> Self {
        App {
            screen: Screen::Node,
            sort: 0,
            proc_sort: 0,
            filter: String::new(),
            prompt: None,
            tree: false,
            deltas: false,
            help: false,
            selected: 0,
            color,
            ring: HashMap::new(),
            prev: HashMap::new(),
            delta: HashMap::new(),
            kills: Vec::new(),
            banner: false,
            post_mortem: None,
            replay,
            playing: false,
            status: None,
            table: Cell::new((0, 0, 0)),
        }
    }

    /// Takes in a new snapshot: ring, deltas, trend. A replay step backwards clears the ring
    /// (a sparkline runs forward in time).
    pub fn ingest(&mut self, s: &Snapshot) {
        let mut seen = std::collections::HashSet::new();
        let mut delta = HashMap::new();
        // A step back in time (replay): no delta against the later sample, whose sign
        // would be the trend reversed.
        let backwards = self
            .ring
            .values()
            .filter_map(|r| r.back())
            .any(|(t, _)| *t >= s.taken_ms);
        if backwards {
            self.prev.clear();
        }
        for (r, e) in s.overview.rows.iter().zip(&s.extras) {
            seen.insert(r.path.clone());
            let ring = self.ring.entry(r.path.clone()).or_default();
            if ring.back().is_some_and(|(t, _)| *t >= s.taken_ms) {
                ring.clear();
            }
            if let Some(u) = r.usage_bytes {
                ring.push_back((s.taken_ms, u));
                while ring.len() > RING {
                    ring.pop_front();
                }
            }
            let now = (r.usage_bytes, e.limit_hits, e.refaults);
            if let Some(p) = self.prev.get(&r.path) {
                let d = |a: Option<u64>, b: Option<u64>| Some(a? as i64 - b? as i64);
                delta.insert(
                    r.path.clone(),
                    (d(now.0, p.0), d(now.1, p.1), d(now.2, p.2)),
                );
            }
            self.prev.insert(r.path.clone(), now);
        }
        // Forget cgroups that are gone: the ring stays bounded with container churn.
        self.ring.retain(|k, _| seen.contains(k));
        self.prev.retain(|k, _| seen.contains(k));
        self.delta = delta;
    }

    /// Growing (+1), shrinking (−1) or steady (0) since the previous snapshot: a change of
    /// more than 1% of usage or 1 MiB, so page-cache jitter does not flicker.
    pub fn trend(&self, path: &str, usage: Option<u64>) -> i8 {
        let (Some(Some(d)), Some(u)) = (self.delta.get(path).map(|d| d.0), usage) else {
            return 0;
        };
        let thr = ((u / 100) as i64).max(1 << 20);
        if d > thr {
            1
        } else if d < -thr {
            -1
        } else {
            0
        }
    }

    /// The node screen's rows, in display order: containers (or every cgroup as a tree with
    /// `t`), filtered, sorted. Returns indices into `s.overview.rows` and each row's depth.
    pub fn visible(&self, s: &Snapshot) -> Vec<(usize, usize)> {
        let rows = &s.overview.rows;
        let any_container = rows.iter().any(|r| r.identity.is_container());
        let f = self.filter.to_lowercase();
        let mut idx: Vec<usize> = (0..rows.len())
            .filter(|&i| self.tree || !any_container || rows[i].identity.is_container())
            .filter(|&i| f.is_empty() || matches(&rows[i], &f))
            .collect();
        if self.tree {
            idx.sort_by(|&a, &b| {
                let c = |r: &Row| -> Vec<String> {
                    r.path
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect()
                };
                c(&rows[a]).cmp(&c(&rows[b]))
            });
            let depth = |r: &Row| r.path.split('/').filter(|c| !c.is_empty()).count();
            return idx.into_iter().map(|i| (i, depth(&rows[i]))).collect();
        }
        let key = SORTS.get(self.sort).map_or("usage", |s| s.1);
        let k = |i: usize| -> Option<u64> {
            let r = &rows[i];
            let e = s.extras.get(i);
            match key {
                "working-set" => r.working_set_bytes,
                "limit" => r.limit_bytes,
                "percent" => r.percent_of_limit.map(|p| (p * 1000.0) as u64),
                "not-reclaimable" => r.not_reclaimable_bytes,
                // Least headroom first: the row nearest an OOM kill on top.
                "headroom" => r.oom_headroom_bytes.map(|h| u64::MAX - h),
                "shmem" => r.shmem_bytes,
                "kernel" => r.kernel_bytes,
                "swap" => r.swap_bytes,
                "pids" => r.pids.map(|p| p as u64),
                "psi" => e.and_then(|e| e.psi_some10).map(|p| (p * 100.0) as u64),
                "oom" => r.oom_kills,
                "limit-hits" => e.and_then(|e| e.limit_hits),
                _ => r.usage_bytes,
            }
        };
        if key == "name" {
            idx.sort_by_cached_key(|&i| name(&rows[i]));
        } else {
            idx.sort_by(|&a, &b| {
                k(b).cmp(&k(a))
                    .then_with(|| rows[a].path.cmp(&rows[b].path))
            });
        }
        idx.into_iter().map(|i| (i, 0)).collect()
    }

    /// Handles one key against the snapshot on screen.
    pub fn key(&mut self, k: KeyEvent, s: Option<&Snapshot>) -> Action {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if let Some((kind, text)) = &mut self.prompt {
            match k.code {
                KeyCode::Esc => {
                    if *kind == Prompt::Filter {
                        self.filter.clear();
                    }
                    self.prompt = None;
                }
                KeyCode::Enter => {
                    let (kind, text) = (kind.clone(), text.clone());
                    self.prompt = None;
                    if kind == Prompt::Time {
                        return Action::Seek(text);
                    }
                }
                KeyCode::Backspace => {
                    text.pop();
                    if *kind == Prompt::Filter {
                        self.filter = text.clone();
                    }
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    if *kind == Prompt::Filter {
                        self.filter = text.clone();
                        self.selected = 0;
                    }
                }
                _ => {}
            }
            return Action::None;
        }
        if self.help {
            self.help = false;
            return match k.code {
                KeyCode::Char('q') => Action::Quit,
                _ => Action::None,
            };
        }
        if self.post_mortem.is_some() {
            if matches!(k.code, KeyCode::Char('q')) {
                return Action::Quit;
            }
            self.post_mortem = None;
            return Action::None;
        }
        // Keys common to both screens.
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => {
                self.help = true;
                return Action::None;
            }
            KeyCode::Char('[') | KeyCode::Left if self.replay => return Action::Step(-1),
            KeyCode::Char(']') | KeyCode::Right if self.replay => return Action::Step(1),
            KeyCode::Char('{') if self.replay => return Action::OomJump(-1),
            KeyCode::Char('}') if self.replay => return Action::OomJump(1),
            KeyCode::Char(' ') if self.replay => {
                self.playing = !self.playing;
                return Action::PlayPause;
            }
            KeyCode::Char('g') if self.replay => {
                self.prompt = Some((Prompt::Time, String::new()));
                return Action::None;
            }
            _ => {}
        }
        if self.banner {
            match k.code {
                KeyCode::Esc => {
                    self.banner = false;
                    return Action::None;
                }
                KeyCode::Enter => {
                    self.banner = false;
                    self.post_mortem = self.kills.last().and_then(|k| k.post_mortem.clone());
                    if self.post_mortem.is_none() {
                        self.post_mortem = self.kills.last().map(|k| k.line.clone());
                    }
                    return Action::None;
                }
                _ => {}
            }
        }
        match self.screen.clone() {
            Screen::Node => self.node_key(k, s),
            Screen::Cgroup(_) => self.cgroup_key(k),
        }
    }

    fn node_key(&mut self, k: KeyEvent, s: Option<&Snapshot>) -> Action {
        let n = s.map_or(0, |s| self.visible(s).len());
        match k.code {
            KeyCode::Down => {
                self.selected = (self.selected + 1).min(n.saturating_sub(1));
            }
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::PageDown => self.selected = (self.selected + 10).min(n.saturating_sub(1)),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(10),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = n.saturating_sub(1),
            KeyCode::Char('/') => {
                self.prompt = Some((Prompt::Filter, self.filter.clone()));
            }
            KeyCode::Esc => self.filter.clear(),
            KeyCode::Char('t') => {
                self.tree = !self.tree;
                self.selected = 0;
            }
            KeyCode::Char('d') => self.deltas = !self.deltas,
            KeyCode::Enter => {
                if let Some(s) = s
                    && let Some((i, _)) = self.visible(s).get(self.selected)
                {
                    let p = s.overview.rows[*i].path.clone();
                    self.screen = Screen::Cgroup(p.clone());
                    return Action::Focus(Some(p));
                }
            }
            KeyCode::Char(c) => {
                if let Some(i) = SORTS.iter().position(|(key, _)| *key == c) {
                    self.sort = i;
                    self.tree = false;
                }
            }
            _ => {}
        }
        Action::None
    }

    fn cgroup_key(&mut self, k: KeyEvent) -> Action {
        match k.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('b') => {
                self.screen = Screen::Node;
                Action::Focus(None)
            }
            KeyCode::Char(c) => {
                if let Some(i) = PROC_SORTS.iter().position(|(key, _)| *key == c) {
                    self.proc_sort = i;
                }
                Action::None
            }
            _ => Action::None,
        }
    }

    /// A mouse event: the wheel moves the selection on the node screen (3 rows a notch), a
    /// left click selects a row and a click on the selected row opens it (as Enter); any
    /// click closes help or a post-mortem.
    pub fn mouse(&mut self, m: MouseEvent, s: Option<&Snapshot>) -> Action {
        let click = matches!(m.kind, MouseEventKind::Down(MouseButton::Left));
        if self.help || self.post_mortem.is_some() {
            if click {
                self.help = false;
                self.post_mortem = None;
            }
            return Action::None;
        }
        if self.screen != Screen::Node || self.prompt.is_some() {
            return Action::None;
        }
        let n = s.map_or(0, |s| self.visible(s).len());
        match m.kind {
            MouseEventKind::ScrollDown => {
                self.selected = (self.selected + 3).min(n.saturating_sub(1));
            }
            MouseEventKind::ScrollUp => self.selected = self.selected.saturating_sub(3),
            MouseEventKind::Down(MouseButton::Left) => {
                let (y0, first, drawn) = self.table.get();
                if m.row < y0 || usize::from(m.row - y0) >= drawn {
                    return Action::None;
                }
                let i = first + usize::from(m.row - y0);
                if i >= n {
                    return Action::None;
                }
                if i == self.selected {
                    return self.node_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE), s);
                }
                self.selected = i;
            }
            _ => {}
        }
        Action::None
    }

    /// Records an OOM kill seen live: banner shown, row marked.
    pub fn kill(&mut self, k: Kill) {
        self.kills.push(k);
        if self.kills.len() > 100 {
            self.kills.remove(0);
        }
        self.banner = true;
    }
}

/// The row's name: the identity's, else the path.
pub fn name(r: &Row) -> String {
    r.identity.display_name().unwrap_or_else(|| r.path.clone())
}

fn matches(r: &Row, f: &str) -> bool {
    name(r).to_lowercase().contains(f)
        || r.path.to_lowercase().contains(f)
        || r.identity
            .names
            .image
            .as_deref()
            .is_some_and(|i| i.to_lowercase().contains(f))
}
