//! Front-end output: human tables (units, aligned columns, colour on a TTY) and JSON. Renderers
//! take the assembled results (`report`, `overview`) and never read the system.

pub mod cache;
pub mod escape;
pub mod history;
pub mod human;
pub mod json;
pub mod kernel;
pub mod lab;
pub mod node;
pub mod plot;
pub mod prometheus;
pub mod recommend;
pub mod run;

/// Formats bytes with IEC units (`1.5 GiB`); `n/a` when unavailable.
pub fn bytes(b: Option<u64>) -> String {
    match b {
        None => "n/a".into(),
        Some(b) => {
            const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
            // Roll over at 1000, not 1024, so a figure never needs four digits before the
            // point ("1001.9 MiB" reads as "0.98 GiB"); the value stays binary (IEC).
            let mut v = b as f64;
            let mut i = 0;
            while v >= 1000.0 && i < U.len() - 1 {
                v /= 1024.0;
                i += 1;
            }
            if i == 0 {
                format!("{b} B")
            } else if v < 1.0 {
                format!("{v:.2} {}", U[i])
            } else {
                format!("{v:.1} {}", U[i])
            }
        }
    }
}

/// Formats a signed byte difference (`+316.0 KiB`, `-4.0 KiB`).
pub fn signed_bytes(b: Option<i64>) -> String {
    match b {
        None => "n/a".into(),
        Some(v) if v < 0 => format!("-{}", bytes(Some(v.unsigned_abs()))),
        Some(v) => format!("+{}", bytes(Some(v as u64))),
    }
}

/// Formats a percentage.
pub fn percent(p: Option<f64>) -> String {
    p.map_or("n/a".into(), |p| format!("{p:.1}%"))
}

/// Terminal styling, off unless stdout is a terminal and NO_COLOR is unset.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Whether to emit ANSI colour codes.
    pub color: bool,
}

impl Style {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    /// A section heading.
    pub fn head(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    /// Secondary text (sources, notes).
    pub fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    /// A warning.
    pub fn warn(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    /// Something bad.
    pub fn bad(&self, s: &str) -> String {
        self.wrap("31", s)
    }
}

static WIDTH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets the width human output wraps to (`None`: no wrapping, e.g. piped output).
pub fn set_width(w: Option<usize>) {
    WIDTH.store(w.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
}

/// The width human output wraps to, if any.
pub fn width() -> Option<usize> {
    match WIDTH.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        w => Some(w),
    }
}

/// Splits `text` into lines of at most `max` characters at spaces (a longer word is cut).
pub fn wrap_words(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut words: Vec<String> = Vec::new();
    for w in text.split(' ') {
        let c: Vec<char> = w.chars().collect();
        if c.len() <= max {
            words.push(w.to_string());
        } else {
            words.extend(c.chunks(max).map(|x| x.iter().collect::<String>()));
        }
    }
    for w in &words {
        let w = w.as_str();
        let n = cur.chars().count();
        if n > 0 && n + 1 + w.chars().count() > max {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// `prefix` + `text` wrapped to [`width`], continuation lines indented by `hang` spaces.
pub fn wrapped(prefix: &str, prefix_len: usize, text: &str, hang: usize) -> String {
    match width() {
        Some(w) if w > hang + 20 && prefix_len + text.chars().count() > w => {
            let first_max = w.saturating_sub(prefix_len).max(20);
            let mut out = String::from(prefix);
            let lines = wrap_words(text, first_max.min(w - hang));
            for (i, l) in lines.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(hang));
                }
                out.push_str(l);
            }
            out
        }
        _ => format!("{prefix}{text}"),
    }
}

/// A simple aligned table: the first column left-aligned, the others right-aligned unless
/// listed in `left`. Widths count characters, not ANSI codes (cells are styled after layout).
pub fn table(header: &[&str], rows: &[Vec<String>], left: &[usize], style: Style) -> String {
    table_in(header, rows, left, style, 0)
}

/// [`table`], to be printed indented by `indent` columns: a left-aligned last column (a
/// source, a formula) wraps onto continuation lines so rows fit [`width`].
pub fn table_in(
    header: &[&str],
    rows: &[Vec<String>],
    left: &[usize],
    style: Style,
    indent: usize,
) -> String {
    let n = header.len();
    // Cells are data (names, paths, log text): escaped here, once, for every table.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape::term(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut w = vec![0usize; n];
    for (i, h) in header.iter().enumerate() {
        w[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    // Room for the last column when it is text (left-aligned) and the rows are too wide:
    // wrapped in place when at least 24 columns are left for it, else each row's last cell
    // goes below the row ("stacked"), indented by 4 and wrapped to the width.
    let mut stacked: Option<usize> = None;
    let last_room = match width() {
        Some(tw) if n > 1 && left.contains(&(n - 1)) => {
            let before: usize = w[..n - 1].iter().sum::<usize>() + 2 * (n - 1) + indent;
            let room = tw.saturating_sub(before);
            if before + w[n - 1] <= tw {
                None
            } else if room >= 24 {
                Some((room, before - indent))
            } else {
                stacked = Some(tw.saturating_sub(indent + 4).max(20));
                None
            }
        }
        _ => None,
    };
    // Stacked and still too wide: the first column (a label) wraps too.
    let mut cap0 = None;
    if let (Some(_), Some(tw)) = (stacked, width()) {
        let others: usize = w[1..n - 1].iter().sum::<usize>() + 2 * (n - 1) + indent;
        let room0 = tw.saturating_sub(others);
        if room0 < w[0] && room0 >= 16 {
            w[0] = room0;
            cap0 = Some(room0);
        }
    }
    let wrap_last = |cells: Vec<String>| -> Vec<Vec<String>> {
        match last_room {
            _ if stacked.is_some() && cells.len() == n => {
                let mut v = Vec::new();
                let labels = match cap0 {
                    Some(c) => wrap_words(&cells[0], c),
                    None => vec![cells[0].clone()],
                };
                let k = labels.len();
                for (i, l) in labels.into_iter().enumerate() {
                    let mut c = vec![l];
                    if i + 1 == k {
                        c.extend(cells[1..n - 1].iter().cloned());
                    } else {
                        c.extend(std::iter::repeat_n(String::new(), n - 2));
                    }
                    c.push(String::new());
                    v.push(c);
                }
                for p in wrap_words(&cells[n - 1], stacked.unwrap_or(60)) {
                    if p.is_empty() {
                        continue;
                    }
                    let mut c = vec![format!("    {p}")];
                    c.extend(std::iter::repeat_n(String::new(), n - 1));
                    v.push(c);
                }
                v
            }
            Some((room, _)) if cells.len() == n => {
                let parts = wrap_words(&cells[n - 1], room);
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(k, p)| {
                        let mut c: Vec<String> = if k == 0 {
                            cells[..n - 1].to_vec()
                        } else {
                            vec![String::new(); n - 1]
                        };
                        c.push(p);
                        c
                    })
                    .collect()
            }
            _ => vec![cells],
        }
    };
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate().take(n) {
            let pad = w[i].saturating_sub(c.chars().count());
            let last = i + 1 == n;
            if i == 0 || left.contains(&i) {
                s.push_str(c);
                if !last {
                    s.push_str(&" ".repeat(pad));
                }
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
            if !last {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    let mut head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    if stacked.is_some() {
        // The stacked column has no place in the header line.
        head[n - 1] = String::new();
    }
    let mut out = style.head(&line(head));
    out.push('\n');
    for r in rows {
        for l in wrap_last(r.clone()) {
            let text = line(l);
            // A continuation line: its empty cells are spaces up to the last column.
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn units() {
        assert_eq!(bytes(Some(512)), "512 B");
        assert_eq!(bytes(Some(1536)), "1.5 KiB");
        assert_eq!(bytes(Some(100 << 20)), "100.0 MiB");
        // Units roll over before four digits.
        assert_eq!(bytes(Some(1_050_574_848)), "0.98 GiB");
        assert_eq!(bytes(Some(1000)), "0.98 KiB");
        assert_eq!(bytes(Some(999)), "999 B");
        assert_eq!(bytes(None), "n/a");
        assert_eq!(signed_bytes(Some(-4096)), "-4.0 KiB");
    }
    #[test]
    fn aligned() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["x".into(), "1".into()],
                vec!["long".into(), "22".into()],
            ],
            &[],
            Style { color: false },
        );
        assert_eq!(t, "A     BB\nx      1\nlong  22\n");
    }
}
