//! Snapshot tests of `memlens top`'s screens on a fixture capture, drawn with ratatui's
//! TestBackend at 80×24 and 160×48 (and narrow), including an empty node and 1,000 rows.
//! The app is driven by the same keys a user types.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use memlens::sys::Root;
use memlens::tui::app::{Action, App, Kill};
use memlens::tui::{draw, snapshot};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::path::Path;

const CAPTURE: &str = "tests/fixtures/captures/v1-host-6.18/v1-capture.tar.gz";

fn snap(focus: Option<&str>) -> snapshot::Snapshot {
    let root = Root::from_capture(Path::new(CAPTURE)).expect("fixture capture");
    let h = memlens::report::hierarchy(&root).expect("hierarchy");
    let t = root
        .capture()
        .and_then(|c| c.captured_at_unix)
        .map_or(0, |s| s as i64 * 1000);
    snapshot::take(&root, &h, focus, t, "capture fixture")
}

fn screen(app: &App, s: Option<&snapshot::Snapshot>, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| draw::draw(f, app, s)).expect("draw");
    format!("{}", t.backend())
}

fn key(app: &mut App, s: &snapshot::Snapshot, c: KeyCode) -> Action {
    app.key(KeyEvent::new(c, KeyModifiers::NONE), Some(s))
}

#[test]
fn node_screen() {
    let s = snap(None);
    let mut app = App::new(false, false);
    app.ingest(&s);
    insta::assert_snapshot!("node_80x24", screen(&app, Some(&s), 80, 24));
    insta::assert_snapshot!("node_160x48", screen(&app, Some(&s), 160, 48));
    insta::assert_snapshot!("node_narrow_40x12", screen(&app, Some(&s), 40, 12));
    key(&mut app, &s, KeyCode::Char('t'));
    insta::assert_snapshot!("node_tree_80x24", screen(&app, Some(&s), 80, 24));
    key(&mut app, &s, KeyCode::Char('n'));
    assert!(!app.tree, "a sort key leaves the tree");
    key(&mut app, &s, KeyCode::Char('/'));
    for c in "v1cap".chars() {
        key(&mut app, &s, KeyCode::Char(c));
    }
    key(&mut app, &s, KeyCode::Enter);
    assert_eq!(app.visible(&s).len(), 1);
    insta::assert_snapshot!("node_filtered_80x24", screen(&app, Some(&s), 80, 24));
    key(&mut app, &s, KeyCode::Char('?'));
    insta::assert_snapshot!("help_80x24", screen(&app, Some(&s), 80, 24));
    assert_eq!(key(&mut app, &s, KeyCode::Char('x')), Action::None);
    assert!(!app.help);
    assert_eq!(key(&mut app, &s, KeyCode::Char('q')), Action::Quit);
}

#[test]
fn cgroup_screen() {
    let s = snap(None);
    let mut app = App::new(false, false);
    app.ingest(&s);
    // Sorted by usage the root comes first: the test cgroup is the second row.
    key(&mut app, &s, KeyCode::Down);
    let a = key(&mut app, &s, KeyCode::Enter);
    assert_eq!(a, Action::Focus(Some("/memlens-test-v1capture".into())));
    let s = snap(Some("/memlens-test-v1capture"));
    app.ingest(&s);
    let big = screen(&app, Some(&s), 160, 48);
    assert!(big.contains("python3"), "{big}");
    assert!(big.contains("WHAT OTHER TOOLS SHOW"), "{big}");
    insta::assert_snapshot!("cgroup_160x48", big);
    insta::assert_snapshot!("cgroup_80x24", screen(&app, Some(&s), 80, 24));
    key(&mut app, &s, KeyCode::Char('p'));
    assert_eq!(
        key(&mut app, &s, KeyCode::Esc),
        Action::Focus(None),
        "Esc goes back"
    );
}

#[test]
fn empty_node_and_a_thousand_rows() {
    let mut s = snap(None);
    let mut app = App::new(false, false);
    let mut empty = s.clone();
    empty.overview.rows.clear();
    empty.extras.clear();
    app.ingest(&empty);
    insta::assert_snapshot!("empty_80x24", screen(&app, Some(&empty), 80, 24));
    assert_eq!(key(&mut app, &empty, KeyCode::Enter), Action::None);
    let base = s.overview.rows[1].clone();
    let e = s.extras[1].clone();
    for i in 0..1000 {
        let mut r = base.clone();
        r.path = format!("/bulk/c{i:04}");
        r.usage_bytes = Some(1_000_000 + i as u64 * 4096);
        s.overview.rows.push(r);
        s.extras.push(e.clone());
    }
    app.ingest(&s);
    let t0 = std::time::Instant::now();
    let out = screen(&app, Some(&s), 160, 48);
    let took = t0.elapsed();
    assert!(out.contains("1002 of 1002 cgroups"), "{out}");
    insta::assert_snapshot!("thousand_160x48", out);
    // End goes to the last row; the table scrolls to keep it in view.
    key(&mut app, &s, KeyCode::End);
    let out = screen(&app, Some(&s), 80, 24);
    assert!(
        out.contains("/bulk/c0000") || out.contains("c0000"),
        "{out}"
    );
    eprintln!("1002 rows drawn at 160x48 in {took:?} (debug build)");
}

#[test]
fn oom_banner_and_post_mortem() {
    let s = snap(None);
    let mut app = App::new(false, false);
    app.ingest(&s);
    app.kill(Kill {
        cgroup: Some("/memlens-test-v1capture".into()),
        line: "2026-12-01T09:12:30Z in /memlens-test-v1capture: victim python3 (pid 42)".into(),
        post_mortem: Some("OOM kill #1\n  victim 42 (python3)".into()),
    });
    let out = screen(&app, Some(&s), 80, 24);
    assert!(out.contains("OOM KILL"), "{out}");
    assert!(out.contains("!/memlens-test"), "row marked: {out}");
    key(&mut app, &s, KeyCode::Enter);
    let out = screen(&app, Some(&s), 80, 24);
    assert!(out.contains("victim 42 (python3)"), "{out}");
}

/// The node header: the `memlens node` waterfall in four sums and the dying cgroups,
/// computed from the same files (the capture's /proc/cgroups − its live directories).
#[test]
fn header_shows_the_node_waterfall_and_dying_cgroups() {
    let s = snap(None);
    let n = s.node.clone().expect("node figures");
    let root = Root::from_capture(Path::new(CAPTURE)).unwrap();
    let h = memlens::report::hierarchy(&root).unwrap();
    let (dying, ..) = memlens::zombies::count(&root, &h);
    assert_eq!(n.dying, dying);
    assert!(n.dying.is_some());
    let node = memlens::node::collect(&root, &h, &Default::default()).unwrap();
    let line = |k: &str| node.waterfall.get(k).and_then(|l| l.bytes);
    assert_eq!(n.in_cgroups, line("top_level_cgroups"));
    assert_eq!(n.free, line("free"));
    let mut app = App::new(false, false);
    app.ingest(&s);
    let out = screen(&app, Some(&s), 80, 24);
    let third = out.lines().nth(2).unwrap_or_default().to_string();
    assert!(
        third.contains("cgroups") && third.contains(&format!("dying {}", dying.unwrap())),
        "{out}"
    );
}

/// The wheel moves the selection, a click selects a row, a click on the selected row opens
/// it, a click closes help.
#[test]
fn mouse_selects_scrolls_and_opens() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let s = snap(None);
    let mut app = App::new(false, false);
    app.ingest(&s);
    screen(&app, Some(&s), 80, 24);
    let (y0, first, drawn) = app.table.get();
    assert_eq!((first, drawn), (0, 2), "two rows drawn from the first");
    let ev = |kind, row| MouseEvent {
        kind,
        column: 3,
        row,
        modifiers: KeyModifiers::NONE,
    };
    let left = MouseEventKind::Down(MouseButton::Left);
    assert_eq!(app.mouse(ev(left, y0 + 1), Some(&s)), Action::None);
    assert_eq!(app.selected, 1);
    // Below the last row: nothing.
    assert_eq!(app.mouse(ev(left, y0 + 5), Some(&s)), Action::None);
    assert_eq!(app.selected, 1);
    app.mouse(ev(MouseEventKind::ScrollUp, y0), Some(&s));
    assert_eq!(app.selected, 0);
    app.mouse(ev(MouseEventKind::ScrollDown, y0), Some(&s));
    assert_eq!(app.selected, 1, "stops at the last row");
    assert_eq!(
        app.mouse(ev(left, y0 + 1), Some(&s)),
        Action::Focus(Some("/memlens-test-v1capture".into()))
    );
    key(&mut app, &s, KeyCode::Char('?'));
    assert!(app.help);
    app.mouse(ev(left, 0), Some(&s));
    assert!(!app.help);
}

/// The same screens on a cgroup v2 capture (Debian 6.1 in the VM, tests/vm/vm-capture.sh).
#[test]
fn v2_screens() {
    let root = Root::from_capture(Path::new(
        "tests/fixtures/captures/v2-debian-6.1/v2-capture.tar.gz",
    ))
    .expect("v2 fixture capture");
    let h = memlens::report::hierarchy(&root).expect("hierarchy");
    let t = root
        .capture()
        .and_then(|c| c.captured_at_unix)
        .map_or(0, |s| s as i64 * 1000);
    let s = snapshot::take(&root, &h, None, t, "capture fixture");
    let mut app = App::new(false, false);
    app.ingest(&s);
    let out = screen(&app, Some(&s), 80, 24);
    assert!(out.contains("cgroup v2"), "{out}");
    insta::assert_snapshot!("v2_node_80x24", out);
    insta::assert_snapshot!("v2_node_160x48", screen(&app, Some(&s), 160, 48));
    let i = app
        .visible(&s)
        .iter()
        .position(|(i, _)| s.overview.rows[*i].path == "/memlens-test-capture")
        .expect("the captured cgroup is a row");
    app.selected = i;
    let a = key(&mut app, &s, KeyCode::Enter);
    assert_eq!(a, Action::Focus(Some("/memlens-test-capture".into())));
    let s = snapshot::take(
        &root,
        &h,
        Some("/memlens-test-capture"),
        t,
        "capture fixture",
    );
    app.ingest(&s);
    let big = screen(&app, Some(&s), 160, 48);
    assert!(big.contains("WHAT OTHER TOOLS SHOW"), "{big}");
    insta::assert_snapshot!("v2_cgroup_160x48", big);
    insta::assert_snapshot!("v2_cgroup_80x24", screen(&app, Some(&s), 80, 24));
}

/// A replay step back in time shows no trend for that frame (the delta against the later
/// sample would show growth as shrinking); forward steps do.
#[test]
fn a_step_back_in_replay_shows_no_reversed_trend() {
    let mut s = snap(None);
    let mut app = App::new(false, true);
    let p = s.overview.rows[1].path.clone();
    let u = s.overview.rows[1].usage_bytes.unwrap();
    s.taken_ms = 2_000;
    app.ingest(&s);
    let mut later = s.clone();
    later.taken_ms = 3_000;
    later.overview.rows[1].usage_bytes = Some(u + (64 << 20));
    app.ingest(&later);
    assert_eq!(app.trend(&p, Some(u + (64 << 20))), 1, "grew going forward");
    // Back to t = 2 s: smaller, but that is not the cgroup shrinking.
    app.ingest(&s);
    assert_eq!(app.trend(&p, Some(u)), 0);
}

/// The v2 drill-down shows what `free` prints inside the container, plain (the host's
/// /proc/meminfo, per free variant) and under lxcfs (the container's own figures, lxcfs
/// proc_meminfo_read): checked against the capture's files read here.
#[test]
fn v2_drill_down_shows_free_plain_and_under_lxcfs() {
    let root = Root::from_capture(Path::new(
        "tests/fixtures/captures/v2-debian-6.1/v2-capture.tar.gz",
    ))
    .expect("v2 fixture capture");
    let h = memlens::report::hierarchy(&root).expect("hierarchy");
    let cg = "/memlens-test-capture";
    let s = snapshot::take(&root, &h, Some(cg), 0, "capture fixture");
    let mut app = App::new(false, false);
    app.ingest(&s);
    let i = app
        .visible(&s)
        .iter()
        .position(|(i, _)| s.overview.rows[*i].path == cg)
        .expect("the captured cgroup is a row");
    app.selected = i;
    assert_eq!(
        key(&mut app, &s, KeyCode::Enter),
        Action::Focus(Some(cg.into()))
    );
    let file = |p: &str| root.read(Path::new(p)).expect(p);
    let num = |p: &str| file(p).trim().parse::<u64>().expect(p);
    let dir = format!("/sys/fs/cgroup{cg}");
    let usage = num(&format!("{dir}/memory.current"));
    let cache: u64 = file(&format!("{dir}/memory.stat"))
        .lines()
        .find_map(|l| l.strip_prefix("file ")?.parse().ok())
        .expect("memory.stat file");
    let max = file(&format!("{dir}/memory.max"));
    let host_kib: u64 = file("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix(" kB")?
                .parse()
                .ok()
        })
        .expect("MemTotal");
    let total = max
        .trim()
        .parse::<u64>()
        .map_or(host_kib * 1024, |m| m.min(host_kib * 1024));
    let lx = &s.detail.as_ref().expect("detail").report.tools.free.lxcfs;
    assert_eq!(lx.total_bytes, Some(total));
    assert_eq!(lx.free_bytes, Some(total - usage));
    assert_eq!(lx.buff_cache_bytes, Some(cache));
    assert_eq!(lx.available_bytes, Some(total - usage + cache));
    assert_eq!(lx.used_bytes, Some(usage - cache));
    let out = screen(&app, Some(&s), 160, 48);
    let line = out
        .lines()
        .find(|l| l.contains("free used under lxcfs"))
        .unwrap_or_else(|| panic!("no lxcfs free line:\n{out}"));
    assert!(
        line.contains(&memlens::render::bytes(Some(usage - cache))),
        "{line}"
    );
    assert!(out.contains("free used, plain (procps-ng 4.0.1+)"), "{out}");
    assert!(
        out.contains("free used, plain (procps-ng 3.3.10–4.0.0 free, BusyBox)"),
        "{out}"
    );
}
