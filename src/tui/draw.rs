//! Drawing the screens from an [`App`] and a [`Snapshot`] (ratatui widgets). Figures are
//! formatted by `render`'s helpers, so the TUI prints the same numbers, the same way, as
//! `memlens` and `memlens show`.

use super::app::{App, PROC_SORTS, Prompt, SORTS, Screen};
use super::snapshot::{RowExtra, Snapshot};
use crate::overview::Row;
use crate::render::{bytes, percent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row as TRow, Sparkline, Table, Wrap,
};

/// Draws the whole frame.
pub fn draw(f: &mut Frame, app: &App, s: Option<&Snapshot>) {
    let area = f.area();
    let Some(s) = s else {
        f.render_widget(
            Paragraph::new("memlens top: reading the first snapshot..."),
            area,
        );
        return;
    };
    match &app.screen {
        Screen::Node => node(f, area, app, s),
        Screen::Cgroup(p) => cgroup(f, area, app, s, p),
    }
    if let Some(pm) = &app.post_mortem {
        popup(f, area, " OOM kill (any key closes) ", pm);
    }
    if app.help {
        popup(f, area, " keys (any key closes) ", &help_text(app));
    }
}

fn st(app: &App, c: Color) -> Style {
    if app.color {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn time(ms: i64) -> String {
    if ms == 0 {
        return "time n/a".into();
    }
    crate::history::format_time(ms)
}

/// The host header: meminfo, swap, kubelet's memory.available, PSI.
fn header(app: &App, s: &Snapshot) -> Vec<Line<'static>> {
    let h = &s.overview.host.host;
    let m = |k: &str| bytes(h.mem(k));
    let swap = match (h.mem("SwapTotal"), h.mem("SwapFree")) {
        (Some(t), Some(f)) => format!("{}/{}", bytes(Some(t.saturating_sub(f))), bytes(Some(t))),
        _ => "n/a".into(),
    };
    let psi = h.pressure.map_or("n/a".to_string(), |p| {
        format!("some {:.1}% full {:.1}%", p.some.avg10, p.full.avg10)
    });
    let psi_style = match h.pressure {
        Some(p) if p.some.avg10 >= 10.0 => st(app, Color::Red),
        Some(p) if p.some.avg10 >= 1.0 => st(app, Color::Yellow),
        _ => Style::default(),
    };
    let mut l1 = vec![
        Span::styled("memlens top ", bold()),
        Span::raw(format!(
            "{} · {} · cgroup v{} · ",
            s.source,
            time(s.taken_ms),
            s.overview.hierarchy.version.number()
        )),
        Span::raw("? help  q quit"),
    ];
    if app.replay {
        l1.push(Span::styled(
            if app.playing {
                "  ▶ playing"
            } else {
                "  ❚❚ paused"
            },
            st(app, Color::Cyan),
        ));
    }
    let l2 = vec![
        Span::raw(format!(
            "Mem {} avail {} cache {} shmem {} swap {} ",
            m("MemTotal"),
            m("MemAvailable"),
            m("Cached"),
            m("Shmem"),
            swap
        )),
        Span::raw(format!(
            "kubelet avail {} ",
            bytes(s.overview.host.node_memory_available.bytes)
        )),
        Span::raw("PSI "),
        Span::styled(psi, psi_style),
    ];
    let sb = |v: Option<i64>| match v {
        Some(b) if b < 0 => format!("−{}", bytes(Some(b.unsigned_abs()))),
        b => bytes(b.map(|b| b as u64)),
    };
    let l3 = match &s.node {
        Some(n) => format!(
            "cgroups {}  outside {}  free {}  unattributed {}  dying {}",
            sb(n.in_cgroups),
            sb(n.outside_cgroups),
            sb(n.free),
            sb(n.unattributed),
            n.dying.map_or("n/a".into(), |d| d.to_string())
        ),
        None => "node waterfall n/a (root cgroup unreadable)".into(),
    };
    vec![Line::from(l1), Line::from(l2), Line::from(l3)]
}

/// One column of the node table.
struct Col {
    title: &'static str,
    width: u16,
    /// Lower drops first when the terminal is narrow.
    keep: u8,
}

const COLS: &[Col] = &[
    Col {
        title: "NAME",
        width: 0,
        keep: 255,
    },
    Col {
        title: "IMAGE/POD",
        width: 16,
        keep: 20,
    },
    Col {
        title: "LIMIT",
        width: 9,
        keep: 90,
    },
    Col {
        title: "USAGE",
        width: 10,
        keep: 100,
    },
    Col {
        title: "WSET",
        width: 9,
        keep: 80,
    },
    Col {
        title: "NORECL",
        width: 9,
        keep: 70,
    },
    Col {
        title: "HEADRM",
        width: 9,
        keep: 75,
    },
    Col {
        title: "SHMEM",
        width: 9,
        keep: 40,
    },
    Col {
        title: "KERNEL",
        width: 9,
        keep: 30,
    },
    Col {
        title: "SWAP",
        width: 9,
        keep: 35,
    },
    Col {
        title: "PIDS",
        width: 5,
        keep: 50,
    },
    Col {
        title: "PSI",
        width: 5,
        keep: 45,
    },
    Col {
        title: "OOM",
        width: 4,
        keep: 85,
    },
    Col {
        title: "HITS",
        width: 6,
        keep: 60,
    },
    Col {
        title: "REFLT",
        width: 7,
        keep: 10,
    },
];

/// The columns that fit `width`, NAME taking what is left (at least 16).
fn fit(width: u16) -> Vec<usize> {
    let mut keep: Vec<usize> = (0..COLS.len()).collect();
    let need = |k: &[usize]| -> u16 { k.iter().map(|&i| COLS[i].width + 1).sum::<u16>() + 16 };
    while need(&keep) > width && keep.len() > 2 {
        let (pos, _) = keep
            .iter()
            .enumerate()
            .skip(1)
            .min_by_key(|(_, i)| COLS[**i].keep)
            .unwrap_or((1, &1));
        keep.remove(pos);
    }
    keep
}

fn signed(d: Option<i64>, as_bytes: bool) -> String {
    match d {
        None => "n/a".into(),
        Some(0) => "0".into(),
        Some(v) if as_bytes => crate::render::signed_bytes(Some(v)),
        Some(v) => format!("{v:+}"),
    }
}

fn cell(app: &App, r: &Row, e: &RowExtra, col: &str, depth: usize) -> (String, Style) {
    let d = app
        .delta
        .get(&r.path)
        .copied()
        .unwrap_or((None, None, None));
    let plain = Style::default();
    match col {
        "NAME" => {
            let mark = match app.trend(&r.path, r.usage_bytes) {
                1 => "↑",
                -1 => "↓",
                _ => " ",
            };
            let killed = app
                .kills
                .iter()
                .any(|k| k.cgroup.as_deref() == Some(&r.path));
            let n = if app.tree {
                let last = r.path.rsplit('/').next().unwrap_or("/");
                let n = super::app::name(r);
                let label = if r.identity.is_container() {
                    n
                } else {
                    last.to_string()
                };
                format!(
                    "{}{}",
                    "  ".repeat(depth.saturating_sub(1)),
                    if r.path == "/" {
                        "/".to_string()
                    } else {
                        label
                    }
                )
            } else {
                super::app::name(r)
            };
            (
                format!("{mark}{}{n}", if killed { "!" } else { "" }),
                if killed {
                    st(app, Color::Red).add_modifier(Modifier::BOLD)
                } else {
                    plain
                },
            )
        }
        "IMAGE/POD" => (
            r.identity
                .names
                .image
                .clone()
                .or_else(|| r.identity.names.pod.clone())
                .unwrap_or_else(|| "-".into()),
            plain,
        ),
        "LIMIT" => (
            r.limit_bytes.map_or("unlim".into(), |l| bytes(Some(l))),
            plain,
        ),
        "USAGE" => {
            let t = if app.deltas {
                signed(d.0, true)
            } else {
                bytes(r.usage_bytes)
            };
            let style = match r.percent_of_limit {
                Some(p) if p >= 90.0 => st(app, Color::Red),
                Some(p) if p >= 75.0 => st(app, Color::Yellow),
                _ => plain,
            };
            (t, style)
        }
        "WSET" => (bytes(r.working_set_bytes), plain),
        "NORECL" => (bytes(r.not_reclaimable_bytes), plain),
        "HEADRM" => {
            let style = match (r.oom_headroom_bytes, r.limit_bytes) {
                (Some(h), Some(l)) if h < l / 10 => st(app, Color::Red),
                (Some(h), Some(l)) if h < l / 4 => st(app, Color::Yellow),
                _ => plain,
            };
            (
                if r.limit_bytes.is_none() {
                    "-".into()
                } else {
                    bytes(r.oom_headroom_bytes)
                },
                style,
            )
        }
        "SHMEM" => (bytes(r.shmem_bytes), plain),
        "KERNEL" => (bytes(r.kernel_bytes), plain),
        "SWAP" => (bytes(r.swap_bytes), plain),
        "PIDS" => (r.pids.map_or("n/a".into(), |p| p.to_string()), plain),
        "PSI" => match e.psi_some10 {
            None => ("n/a".into(), plain),
            Some(p) => (
                format!("{p:.1}"),
                if p >= 10.0 {
                    st(app, Color::Red)
                } else if p >= 1.0 {
                    st(app, Color::Yellow)
                } else {
                    plain
                },
            ),
        },
        "OOM" => match r.oom_kills {
            None => ("n/a".into(), plain),
            Some(0) => ("0".into(), plain),
            Some(n) => (
                n.to_string(),
                st(app, Color::Red).add_modifier(Modifier::BOLD),
            ),
        },
        "HITS" => {
            let t = if app.deltas {
                signed(d.1, false)
            } else {
                e.limit_hits.map_or("n/a".into(), |n| n.to_string())
            };
            let style = if d.1.is_some_and(|x| x > 0) {
                st(app, Color::Yellow)
            } else {
                plain
            };
            (t, style)
        }
        "REFLT" => (
            if app.deltas {
                signed(d.2, false)
            } else {
                e.refaults.map_or("n/a".into(), |n| n.to_string())
            },
            plain,
        ),
        _ => (String::new(), plain),
    }
}

fn node(f: &mut Frame, area: Rect, app: &App, s: &Snapshot) {
    let banner = app.banner && !app.kills.is_empty();
    let [head, ban, body, foot] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(if banner { 1 } else { 0 }),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(header(app, s)), head);
    if banner && let Some(k) = app.kills.last() {
        let style = if app.color {
            Style::default().fg(Color::White).bg(Color::Red)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        };
        f.render_widget(
            Paragraph::new(format!(
                "OOM KILL {}  (Enter: post-mortem, Esc: hide)",
                k.line
            ))
            .style(style),
            ban,
        );
    }
    let cols = fit(body.width);
    let vis = app.visible(s);
    let sort_name = SORTS.get(app.sort).map_or("usage", |x| x.1);
    let header_row = TRow::new(cols.iter().map(|&c| {
        let t = COLS[c].title;
        let sorted = !app.tree
            && matches!(
                (t, sort_name),
                ("USAGE", "usage")
                    | ("WSET", "working-set")
                    | ("LIMIT", "limit" | "percent")
                    | ("NORECL", "not-reclaimable")
                    | ("HEADRM", "headroom")
                    | ("SHMEM", "shmem")
                    | ("KERNEL", "kernel")
                    | ("SWAP", "swap")
                    | ("PIDS", "pids")
                    | ("PSI", "psi")
                    | ("OOM", "oom")
                    | ("HITS", "limit-hits")
                    | ("NAME", "name")
            );
        Cell::from(if sorted {
            format!("{t}▼")
        } else {
            t.to_string()
        })
    }))
    .style(bold().add_modifier(Modifier::UNDERLINED));
    // Only the rows in view are formatted: a thousand cgroups cost a thousand sorts' keys,
    // not a thousand formatted rows.
    let height = body.height.saturating_sub(1) as usize;
    let sel = app.selected.min(vis.len().saturating_sub(1));
    let first = sel.saturating_sub(height.saturating_sub(1));
    // For the mouse: the first data row is below the column titles.
    app.table.set((
        body.y + 1,
        first,
        height.min(vis.len().saturating_sub(first)),
    ));
    let rows = vis
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(n, (i, depth))| {
            let r = &s.overview.rows[*i];
            let e = s.extras.get(*i).cloned().unwrap_or_default();
            let row = TRow::new(cols.iter().map(|&c| {
                let (t, style) = cell(app, r, &e, COLS[c].title, *depth);
                Cell::from(t).style(style)
            }));
            if n == sel {
                row.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        });
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|&c| match COLS[c].width {
            0 => Constraint::Fill(1),
            w => Constraint::Length(w),
        })
        .collect();
    f.render_widget(Table::new(rows, widths).header(header_row), body);
    let footer = match &app.prompt {
        Some((Prompt::Filter, t)) => format!("filter: {t}▏ (Enter keeps, Esc clears)"),
        Some((Prompt::Time, t)) => {
            format!("jump to time: {t}▏ (3m ago, 03:12, 2026-12-01T03:12:00Z)")
        }
        None => {
            let mut v = format!(
                "{} of {} cgroups{}{} · sort {} · u w l % r h m k s p P o f n · / filter · t tree · d deltas · Enter open",
                vis.len(),
                s.overview.rows.len(),
                if app.tree {
                    " (tree, hierarchical figures)"
                } else {
                    ""
                },
                if app.filter.is_empty() {
                    String::new()
                } else {
                    format!(" matching {:?}", app.filter)
                },
                if app.tree { "tree" } else { sort_name },
            );
            if app.replay {
                v = format!("[ ] step · {{ }} OOM kill · space play · g time · {v}");
            }
            if let Some(st) = &app.status {
                v = format!("{st} · {v}");
            }
            v
        }
    };
    f.render_widget(Paragraph::new(footer).style(st(app, Color::DarkGray)), foot);
}

/// The breakdown bar: segments against the limit (or usage when unlimited), memory.high
/// marked. Without colour each part has its own letter, so the bar reads under NO_COLOR.
fn bar(app: &App, s: &Snapshot, width: u16) -> Vec<Line<'static>> {
    let Some(d) = &s.detail else {
        return vec![];
    };
    let b = &d.report.breakdown;
    let limit = d.report.derived.limit.bytes;
    let usage = b.usage.bytes.unwrap_or(0);
    let v = |x: &crate::views::Figure| x.bytes.unwrap_or(0);
    let anon = v(&b.anon);
    let shmem = v(&b.shmem);
    let parts: Vec<(&str, char, Color, u64)> = vec![
        ("anon", 'a', Color::Red, anon),
        ("active file", 'F', Color::Yellow, v(&b.active_file)),
        ("inactive file", 'f', Color::Green, v(&b.inactive_file)),
        ("shmem", 's', Color::Magenta, shmem),
        ("kernel", 'k', Color::Blue, v(&b.kernel)),
        ("swap", 'w', Color::Cyan, v(&b.swap)),
    ];
    let total = limit.unwrap_or(usage).max(usage).max(1);
    let w = width.saturating_sub(2).max(10) as u64;
    let mut spans = Vec::new();
    let mut used = 0u64;
    for (_, ch, c, val) in &parts {
        let n = (val * w / total).min(w - used);
        used += n;
        let style = if app.color {
            Style::default().bg(*c).fg(Color::Black)
        } else {
            Style::default()
        };
        spans.push(Span::styled(ch.to_string().repeat(n as usize), style));
    }
    let rest = w - used;
    spans.push(Span::raw(
        if limit.is_some() { "·" } else { " " }.repeat(rest as usize),
    ));
    let mut lines = vec![Line::from(spans)];
    let high = s
        .overview
        .rows
        .iter()
        .zip(&s.extras)
        .find(|(r, _)| Some(&r.path) == Some(&d.report.cgroup.path))
        .and_then(|(_, e)| e.high_bytes);
    let mut marks = String::new();
    if let Some(h) = high {
        let at = (h.min(total) * w / total) as usize;
        marks = format!(
            "{}^ memory.high {}",
            " ".repeat(at.min(w as usize)),
            bytes(Some(h))
        );
    }
    lines.push(Line::from(marks));
    let legend: Vec<Span> = parts
        .iter()
        .flat_map(|(n, ch, c, val)| {
            [
                Span::styled(
                    format!("{ch}"),
                    if app.color {
                        Style::default().bg(*c).fg(Color::Black)
                    } else {
                        Style::default()
                    },
                ),
                Span::raw(format!(" {n} {}  ", bytes(Some(*val)))),
            ]
        })
        .chain([Span::raw(format!(
            "· headroom to limit {}",
            limit.map_or("unlimited".to_string(), |l| bytes(Some(
                l.saturating_sub(usage)
            )))
        ))])
        .collect();
    lines.push(Line::from(legend));
    lines
}

fn cgroup(f: &mut Frame, area: Rect, app: &App, s: &Snapshot, path: &str) {
    let row = s.overview.rows.iter().find(|r| r.path == path);
    let title = row.map_or(path.to_string(), super::app::name);
    let Some(d) = &s.detail else {
        let msg = s
            .detail_error
            .clone()
            .unwrap_or_else(|| "reading...".into());
        f.render_widget(
            Paragraph::new(vec![
                Line::from(Span::styled(format!("{title}  {path}"), bold())),
                Line::from(msg),
                Line::from("Esc: back"),
            ]),
            area,
        );
        return;
    };
    let r = &d.report;
    let wide = area.width >= 120;
    // The tools list (every figure, the free lines) gets the rows it needs on a tall
    // terminal, the processes keeping at least 8; at 80×24 it stays 6 (it scrolls off).
    let tool_lines = (r.tools.figures.len() + r.tools.free.used_variants.len() + 2) as u16;
    let mid_h = (if wide { 9 } else { 6 }).max(tool_lines.min(area.height.saturating_sub(10 + 8)));
    let [head, barea, summ, spark, mid, procs, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(mid_h),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let lim = &r.derived.limit;
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(format!("{title} "), bold()),
                Span::raw(format!(
                    "{path} · {} · {}",
                    r.identity.names.image.as_deref().unwrap_or("-"),
                    time(s.taken_ms)
                )),
            ]),
            Line::from(format!(
                "usage {} of limit {} ({}){}",
                bytes(r.breakdown.usage.bytes),
                lim.bytes
                    .map_or("unlimited".to_string(), |l| bytes(Some(l))),
                percent(r.derived.percent_of_limit),
                lim.set_by
                    .as_deref()
                    .filter(|p| *p != path)
                    .map_or(String::new(), |p| format!(", set by {p}"))
            )),
        ]),
        head,
    );
    f.render_widget(Paragraph::new(bar(app, s, barea.width)), barea);
    let dv = &r.derived;
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("reclaimable ", st(app, Color::Green)),
            Span::raw(format!("{}  ", bytes(dv.reclaimable.bytes))),
            Span::styled("not reclaimable ", st(app, Color::Red)),
            Span::raw(format!("{}  ", bytes(dv.not_reclaimable.bytes))),
            Span::styled("OOM headroom ", bold()),
            Span::raw(if lim.bytes.is_none() {
                "unlimited".to_string()
            } else {
                bytes(dv.oom_headroom.bytes)
            }),
        ])),
        summ,
    );
    // The recorded past (the store, while `memlens record` writes it) before the ring's
    // first sample, then the ring.
    let ring = app.ring.get(path);
    let ring_t0 = ring.and_then(|v| v.front()).map_or(i64::MAX, |(t, _)| *t);
    let mut data: Vec<u64> = d
        .recorded
        .iter()
        .filter(|(t, _)| *t < ring_t0)
        .map(|(_, u)| *u)
        .collect();
    let from_store = data.len();
    data.extend(ring.into_iter().flatten().map(|(_, u)| *u));
    let shown = &data[data
        .len()
        .saturating_sub(spark.width.saturating_sub(2) as usize)..];
    let (lo, hi) = (
        shown.iter().min().copied().unwrap_or(0),
        shown.iter().max().copied().unwrap_or(0),
    );
    // Relative to the window's minimum, so a small change on a large usage shows.
    let rel: Vec<u64> = shown.iter().map(|u| u - lo + 1).collect();
    f.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .title(format!(
                        " usage, last {} samples{}: {} .. {} ",
                        shown.len(),
                        match from_store.saturating_sub(data.len() - shown.len()) {
                            0 => String::new(),
                            n => format!(" ({n} from the store)"),
                        },
                        bytes(Some(lo)),
                        bytes(Some(hi))
                    ))
                    .borders(Borders::TOP),
            )
            .data(&rel)
            .style(st(app, Color::Cyan)),
        spark,
    );
    let mut tools: Vec<Line> = r
        .tools
        .figures
        .iter()
        .map(|t| Line::from(format!("{:>9}  {}", bytes(t.figure.bytes), t.tool)))
        .collect();
    // `free` inside the container: plain (the host's /proc/meminfo, per free variant) and
    // where lxcfs serves /proc/meminfo (the container's own figures).
    let fr = &r.tools.free;
    for v in &fr.used_variants {
        tools.push(Line::from(format!(
            "{:>9}  free used, plain ({})",
            bytes(v.used_bytes),
            v.tool.trim_end_matches(" free")
        )));
    }
    let lx = &fr.lxcfs;
    tools.push(Line::from(format!(
        "{:>9}  free used under lxcfs (total {}, available {})",
        bytes(lx.used_bytes),
        bytes(lx.total_bytes),
        bytes(lx.available_bytes)
    )));
    let findings: Vec<Line> = if d.findings.is_empty() {
        vec![Line::from("none")]
    } else {
        d.findings
            .iter()
            .map(|x| {
                let sev = format!("{:?}", x.severity).to_lowercase();
                let c = match sev.as_str() {
                    "critical" => Color::Red,
                    "warn" => Color::Yellow,
                    _ => Color::Reset,
                };
                Line::from(vec![
                    Span::styled(format!("{sev:>8} "), st(app, c)),
                    Span::raw(x.title.clone()),
                ])
            })
            .collect()
    };
    let [ta, fa] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
        .spacing(1)
        .areas(mid);
    f.render_widget(
        Paragraph::new(tools).block(
            Block::default()
                .title(" WHAT OTHER TOOLS SHOW ")
                .borders(Borders::TOP),
        ),
        ta,
    );
    f.render_widget(
        Paragraph::new(findings)
            .wrap(Wrap { trim: true })
            .block(Block::default().title(" FINDINGS ").borders(Borders::TOP)),
        fa,
    );
    processes(f, procs, app, r);
    f.render_widget(
        Paragraph::new(format!(
            "Esc back · sort processes: {} · ? help",
            PROC_SORTS
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(" ")
        ))
        .style(st(app, Color::DarkGray)),
        foot,
    );
}

fn processes(f: &mut Frame, area: Rect, app: &App, r: &crate::report::Report) {
    let key = PROC_SORTS.get(app.proc_sort).map_or("rss", |x| x.1);
    let mut ps: Vec<&crate::model::Process> = r.processes.iter().collect();
    let k = |p: &crate::model::Process| -> Option<u64> {
        match key {
            "pss" => p.pss_bytes,
            "uss" => p.uss_bytes,
            "swap" => p.swap_bytes,
            "anon" => p.rss_anon_bytes,
            "pid" => Some(u64::MAX - p.pid as u64),
            _ => p.rss_bytes,
        }
    };
    ps.sort_by(|a, b| k(b).cmp(&k(a)).then(a.pid.cmp(&b.pid)));
    let hdr = [
        "PID", "USER", "RSS", "ANON", "FILE", "SHMEM", "PSS", "USS", "SWAP", "COMMAND",
    ];
    let rows = ps.iter().map(|p| {
        TRow::new(vec![
            p.pid.to_string(),
            p.user
                .clone()
                .or_else(|| p.uid.map(|u| u.to_string()))
                .unwrap_or_default(),
            bytes(p.rss_bytes),
            bytes(p.rss_anon_bytes),
            bytes(p.rss_file_bytes),
            bytes(p.rss_shmem_bytes),
            bytes(p.pss_bytes),
            bytes(p.uss_bytes),
            bytes(p.swap_bytes),
            crate::render::escape::term(
                p.cmdline
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .or(p.comm.as_deref())
                    .unwrap_or("?"),
            )
            .into_owned(),
        ])
    });
    let w = [7, 8, 9, 9, 9, 9, 9, 9, 9];
    let mut widths: Vec<Constraint> = w.iter().map(|&x| Constraint::Length(x)).collect();
    widths.push(Constraint::Min(10));
    f.render_widget(
        Table::new(rows, widths)
            .header(TRow::new(hdr.iter().map(|h| Cell::from(*h))).style(bold()))
            .block(
                Block::default()
                    .title(format!(" PROCESSES ({}, by {key}) ", r.processes.len()))
                    .borders(Borders::TOP),
            ),
        area,
    );
}

fn help_text(app: &App) -> String {
    let mut t = String::from(
        "NODE SCREEN\n\
         ↑ ↓ PgUp PgDn Home End  select a row\n\
         Enter   open the selected cgroup\n\
         /       filter by name, image or path (Esc clears)\n\
         t       every memory cgroup as a tree (figures are hierarchical)\n\
         d       per-interval deltas of usage, limit hits, refaults\n",
    );
    t.push_str("sort:  ");
    t.push_str(
        &SORTS
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    t.push_str("\n\nCGROUP SCREEN\nEsc/b   back\nsort processes: ");
    t.push_str(
        &PROC_SORTS
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    t.push_str("\n\nOOM kills: a banner; Enter opens the post-mortem, Esc hides it.\n");
    if app.replay {
        t.push_str("\nREPLAY\n[ ←  ] →  one sample back / forward\n{ }     previous / next OOM kill\nspace   play / pause\ng       jump to a time\n");
    }
    t.push_str("\n?       this help\nq Ctrl-C quit");
    t
}

fn popup(f: &mut Frame, area: Rect, title: &str, text: &str) {
    let w = area.width.saturating_sub(4).min(100);
    let h = area.height.saturating_sub(2);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .title(title.to_string())
                    .borders(Borders::ALL),
            ),
        r,
    );
}
