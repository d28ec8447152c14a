//! Front-end output: human tables (units, aligned columns, colour on a TTY) and JSON. Renderers
//! take the assembled results (`report`, `overview`) and never read the system.

pub mod cache;
pub mod human;
pub mod json;
pub mod kernel;
pub mod prometheus;

/// Formats bytes with IEC units (`1.5 GiB`); `n/a` when unavailable.
pub fn bytes(b: Option<u64>) -> String {
    match b {
        None => "n/a".into(),
        Some(b) => {
            const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
            let mut v = b as f64;
            let mut i = 0;
            while v >= 1024.0 && i < U.len() - 1 {
                v /= 1024.0;
                i += 1;
            }
            if i == 0 {
                format!("{b} B")
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

/// A simple aligned table: the first column left-aligned, the others right-aligned unless
/// listed in `left`. Widths count characters, not ANSI codes (cells are styled after layout).
pub fn table(header: &[&str], rows: &[Vec<String>], left: &[usize], style: Style) -> String {
    let n = header.len();
    let mut w = vec![0usize; n];
    for (i, h) in header.iter().enumerate() {
        w[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
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
    let mut out = style.head(&line(header.iter().map(|h| h.to_string()).collect()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
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
