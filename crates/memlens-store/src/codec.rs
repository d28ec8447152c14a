//! The store's value codec: a kernel file's text as a *template* (its words, with the numbers
//! taken out) and the numbers as unsigned integers, and rows of such numbers as zero-run /
//! zigzag-delta varints.
//!
//! Why text templates rather than a schema of known keys: a sample must regenerate the exact
//! bytes the kernel printed (memory.stat with its unknown keys in their order, `max`, PSI's
//! `avg10=0.00`), so that `--at` feeds every command the same file it would read live
//! ([`memlens_core::sys::Root::from_files`]), and a key the kernel adds tomorrow is recorded today.
//! A template changes only when the file's words change (a limit set from `max` to a number,
//! a new key), so it is stored once and named by an id in each row.
//!
//! Why hand-written varints: the rows are a few bytes each (an idle cgroup's row is one byte
//! per file: "every value unchanged"), and zstd then compresses the chunk. No crate encodes
//! "runs of unchanged values, then a delta" this compactly.

/// Template marker: an integer taken out of the text.
pub const INT: u8 = 0x00;
/// Template marker: a decimal `I.F` taken out, followed by one byte: the number of fraction
/// digits (the value is `I·10^d + F`).
const DEC: u8 = 0x01;
/// First byte of a template whose numbers were taken out.
pub const TOKENIZED: u8 = b'T';
/// First byte of a template that is the file itself (it held a marker byte).
const LITERAL: u8 = b'L';

/// A byte that may not precede a number we take out: inside identifiers (`avg10`, hex IDs in
/// names) the digits stay words, so a template does not change with every ID.
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Reads the digit run at `i`; `None` when it has a leading zero (kept literal so it renders
/// back the same) or does not fit a u64.
fn digits(text: &[u8], i: usize) -> Option<(u64, usize)> {
    let mut j = i;
    let mut v: u64 = 0;
    while j < text.len() && text[j].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(text[j] - b'0'))?;
        j += 1;
    }
    (j > i && !(text[i] == b'0' && j - i > 1)).then_some((v, j))
}

/// Splits `text` into its template and numbers (see the module docs). Lossless:
/// `render(&t, &v) == text` (tested by proptest).
pub fn tokenize(text: &[u8]) -> (Vec<u8>, Vec<u64>) {
    if text.iter().any(|&b| b == INT || b == DEC) {
        let mut t = Vec::with_capacity(text.len() + 1);
        t.push(LITERAL);
        t.extend_from_slice(text);
        return (t, Vec::new());
    }
    let mut tpl = Vec::with_capacity(text.len() / 2 + 1);
    tpl.push(TOKENIZED);
    let mut vals = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let starts = b.is_ascii_digit() && (i == 0 || !word_byte(text[i - 1]));
        if starts && let Some((int, j)) = digits(text, i) {
            // A decimal: digits '.' digits, the fraction's width kept in the template.
            if j + 1 < text.len()
                && text[j] == b'.'
                && text[j + 1].is_ascii_digit()
                && let Some(end) =
                    (j + 1..=text.len()).find(|&k| k == text.len() || !text[k].is_ascii_digit())
            {
                let width = end - j - 1;
                let frac = std::str::from_utf8(&text[j + 1..end])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                let val = 10u64
                    .checked_pow(width as u32)
                    .and_then(|p| int.checked_mul(p))
                    .and_then(|x| x.checked_add(frac?));
                if width <= 19
                    && let Some(v) = val
                    && (end == text.len() || !word_byte(text[end]))
                {
                    tpl.push(DEC);
                    tpl.push(width as u8);
                    vals.push(v);
                    i = end;
                    continue;
                }
            }
            if j == text.len() || !word_byte(text[j]) {
                tpl.push(INT);
                vals.push(int);
                i = j;
                continue;
            }
            // Digits followed by letters (an ID): words.
            tpl.extend_from_slice(&text[i..j]);
            i = j;
            continue;
        }
        tpl.push(b);
        i += 1;
    }
    (tpl, vals)
}

/// How many numbers a template takes; `None` for a damaged template.
pub fn value_count(tpl: &[u8]) -> Option<usize> {
    match *tpl.first()? {
        LITERAL => Some(0),
        TOKENIZED => {
            let mut n = 0;
            let mut i = 1;
            while i < tpl.len() {
                match tpl[i] {
                    INT => n += 1,
                    DEC => {
                        n += 1;
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            Some(n)
        }
        _ => None,
    }
}

/// The text of a template filled with `vals`; `None` when they do not match.
pub fn render(tpl: &[u8], vals: &[u64]) -> Option<Vec<u8>> {
    match *tpl.first()? {
        LITERAL => return vals.is_empty().then(|| tpl[1..].to_vec()),
        TOKENIZED => {}
        _ => return None,
    }
    let mut out = Vec::with_capacity(tpl.len() + vals.len() * 8);
    let mut it = vals.iter();
    let mut i = 1;
    while i < tpl.len() {
        match tpl[i] {
            INT => push_decimal(&mut out, *it.next()?, 0),
            DEC => {
                i += 1;
                let w = u32::from(*tpl.get(i)?);
                let v = *it.next()?;
                let p = 10u64.checked_pow(w)?;
                push_decimal(&mut out, v / p, 0);
                out.push(b'.');
                push_decimal(&mut out, v % p, w as usize);
            }
            b => out.push(b),
        }
        i += 1;
    }
    it.next().is_none().then_some(out)
}

/// Appends `v` in decimal, zero-padded to `width` digits (no allocation: `render` runs for
/// every file of every sample a reader of the store turns back into text).
fn push_decimal(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let mut n = 0;
    loop {
        buf[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(n)));
    out.extend(buf[..n].iter().rev());
}

/// Appends `v` as an LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*pos`; `None` at the end or on an overlong one.
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends a row of values as deltas from `prev` (same length, or empty for "from zero"):
/// a varint count of unchanged values, then the zigzag delta of the next changed one, and
/// so on; a row with nothing changed is one byte.
pub fn put_row(out: &mut Vec<u8>, vals: &[u64], prev: &[u64]) {
    let base = |j: usize| prev.get(j).copied().unwrap_or(0);
    let mut zeros = 0u64;
    for (j, &v) in vals.iter().enumerate() {
        let d = v.wrapping_sub(base(j)) as i64;
        if d == 0 {
            zeros += 1;
        } else {
            put_varint(out, zeros);
            put_varint(out, zigzag(d));
            zeros = 0;
        }
    }
    if zeros > 0 || vals.is_empty() {
        put_varint(out, zeros);
    }
}

/// Reads a row of `n` values written by [`put_row`] against `prev`.
pub fn get_row(buf: &[u8], pos: &mut usize, n: usize, prev: &[u64]) -> Option<Vec<u64>> {
    let mut out: Vec<u64> = (0..n).map(|j| prev.get(j).copied().unwrap_or(0)).collect();
    let mut j = 0usize;
    if n == 0 {
        get_varint(buf, pos)?;
        return Some(out);
    }
    while j < n {
        let z = usize::try_from(get_varint(buf, pos)?).ok()?;
        j = j.checked_add(z)?;
        if j > n {
            return None;
        }
        if j == n {
            break;
        }
        let d = unzigzag(get_varint(buf, pos)?);
        out[j] = out[j].wrapping_add(d as u64);
        j += 1;
    }
    Some(out)
}

/// Skips a row of `n` values written by [`put_row`] (no delta base needed: the row's shape
/// is its own).
pub fn skip_row(buf: &[u8], pos: &mut usize, n: usize) -> Option<()> {
    if n == 0 {
        get_varint(buf, pos)?;
        return Some(());
    }
    let mut j = 0usize;
    while j < n {
        let z = usize::try_from(get_varint(buf, pos)?).ok()?;
        j = j.checked_add(z)?;
        if j > n {
            return None;
        }
        if j == n {
            break;
        }
        get_varint(buf, pos)?;
        j += 1;
    }
    Some(())
}

/// One series' rows in a chunk being built: times as delta-of-delta, then per row the
/// template id (0 = the file was absent at that sample) and the values against the previous
/// row's (when the template is the same).
#[derive(Debug, Default, Clone)]
pub struct SeriesBuf {
    /// The encoded rows.
    pub bytes: Vec<u8>,
    /// Rows held.
    pub rows: u32,
    last_t: i64,
    last_dt: i64,
    last_tpl: u64,
    last_vals: Vec<u64>,
}

impl SeriesBuf {
    /// Appends a sample at `t` (ms) with template `tpl` and its values.
    pub fn push(&mut self, t: i64, tpl: u64, vals: &[u64]) {
        let dt = t - self.last_t;
        put_varint(&mut self.bytes, zigzag(dt - self.last_dt));
        put_varint(&mut self.bytes, tpl);
        if tpl == self.last_tpl && self.rows > 0 {
            put_row(&mut self.bytes, vals, &self.last_vals);
        } else {
            put_row(&mut self.bytes, vals, &[]);
        }
        self.last_t = t;
        self.last_dt = dt;
        self.last_tpl = tpl;
        self.last_vals.clear();
        self.last_vals.extend_from_slice(vals);
        self.rows += 1;
    }

    /// The previous row's values when its template is `tpl` (the delta base), else empty.
    pub fn last_row(&self, tpl: u64) -> &[u64] {
        if self.rows > 0 && self.last_tpl == tpl {
            &self.last_vals
        } else {
            &[]
        }
    }

    /// The time of the last row (ms), when there is one.
    pub fn last_time(&self) -> Option<i64> {
        (self.rows > 0).then_some(self.last_t)
    }
}

/// One decoded sample of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Wall time, ms since the epoch.
    pub t: i64,
    /// Template id (0: the file was absent).
    pub tpl: u64,
    /// The numbers.
    pub vals: Vec<u64>,
}

/// Decodes a [`SeriesBuf`]'s bytes; `count` gives a template's value count. `None` when
/// the bytes are damaged.
pub fn decode_series(
    buf: &[u8],
    rows: u32,
    count: impl Fn(u64) -> Option<usize>,
) -> Option<Vec<Sample>> {
    let mut out = Vec::with_capacity(rows as usize);
    let (mut pos, mut t, mut dt) = (0usize, 0i64, 0i64);
    let mut last_tpl = u64::MAX;
    let mut last: Vec<u64> = Vec::new();
    for _ in 0..rows {
        dt = dt.checked_add(unzigzag(get_varint(buf, &mut pos)?))?;
        t = t.checked_add(dt)?;
        let tpl = get_varint(buf, &mut pos)?;
        let n = if tpl == 0 { 0 } else { count(tpl)? };
        let prev: &[u64] = if tpl == last_tpl { &last } else { &[] };
        let vals = get_row(buf, &mut pos, n, prev)?;
        last_tpl = tpl;
        last.clone_from(&vals);
        out.push(Sample { t, tpl, vals });
    }
    (pos == buf.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(s: &str) -> (Vec<u8>, Vec<u64>) {
        let (t, v) = tokenize(s.as_bytes());
        assert_eq!(render(&t, &v).unwrap(), s.as_bytes(), "{s:?}");
        assert_eq!(value_count(&t), Some(v.len()));
        (t, v)
    }

    #[test]
    fn kernel_files_roundtrip_with_numbers_taken_out() {
        let (t, v) = roundtrip("anon 123\nfile 0\nunknown_key 18446744073709551615\n");
        assert_eq!(v, vec![123, 0, u64::MAX]);
        assert_eq!(t, b"Tanon \0\nfile \0\nunknown_key \0\n");
        let (_, v) = roundtrip("some avg10=0.05 avg60=12.50 avg300=0.00 total=987\n");
        assert_eq!(v, vec![5, 1250, 0, 987]);
        let (t, v) = roundtrip("max\n");
        assert!(v.is_empty() && t == b"Tmax\n");
        roundtrip("Name:\tbash\nVmRSS:\t    1234 kB\nCpus_allowed:\t3\n");
        // IDs keep their digits as words; leading zeros and huge numbers stay literal.
        let (_, v) = roundtrip("d\tdocker-3f2a9c.scope 007 99999999999999999999999 1.2.3\n");
        assert_eq!(v, vec![12, 3]);
        roundtrip("with a \0 marker 12\n");
        roundtrip("");
    }

    #[test]
    fn rows_cost_one_byte_when_unchanged() {
        let mut b = Vec::new();
        put_row(&mut b, &[5, 6, 7], &[5, 6, 7]);
        assert_eq!(b.len(), 1);
        let mut p = 0;
        assert_eq!(get_row(&b, &mut p, 3, &[5, 6, 7]).unwrap(), vec![5, 6, 7]);
        // Skipping a row reads exactly its bytes.
        let mut b = Vec::new();
        put_row(&mut b, &[5, 0, 7, 9], &[5, 6, 1, 9]);
        put_row(&mut b, &[], &[]);
        b.push(0x2a);
        let mut p = 0;
        skip_row(&b, &mut p, 4).unwrap();
        skip_row(&b, &mut p, 0).unwrap();
        assert_eq!(b[p], 0x2a);
        let mut s = SeriesBuf::default();
        s.push(1000, 1, &[1, 2, 3]);
        s.push(2000, 1, &[1, 2, 4]);
        s.push(3000, 2, &[9]);
        s.push(4000, 0, &[]);
        let d = decode_series(&s.bytes, s.rows, |t| Some(if t == 1 { 3 } else { 1 })).unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(d[1].vals, vec![1, 2, 4]);
        assert_eq!(d[2].vals, vec![9]);
        assert_eq!((d[3].t, d[3].tpl), (4000, 0));
    }

    proptest! {
        #[test]
        fn any_text_roundtrips(s in "[a-z0-9 .=_:\\-\n\t]{0,80}") {
            let (t, v) = tokenize(s.as_bytes());
            prop_assert_eq!(render(&t, &v).unwrap(), s.as_bytes().to_vec());
        }

        #[test]
        fn any_rows_roundtrip(rows in proptest::collection::vec(proptest::collection::vec(any::<u64>(), 3), 1..20)) {
            let mut s = SeriesBuf::default();
            for (i, r) in rows.iter().enumerate() {
                s.push(i as i64 * 1000 + (r[0] % 7) as i64, 1, r);
            }
            let d = decode_series(&s.bytes, s.rows, |_| Some(3)).unwrap();
            for (a, b) in d.iter().zip(&rows) {
                prop_assert_eq!(&a.vals, b);
            }
        }
    }
}
