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
#[inline]
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    // Most varints of a row are one byte (the run counts, the template id, a steady
    // interval's zero Δ²): read inline, the rest out of line. A decoder reads some
    // 100 million of them for `recommend` over a day of 1,000 cgroups.
    let b = *buf.get(*pos)?;
    if b < 0x80 {
        *pos += 1;
        return Some(u64::from(b));
    }
    get_varint_long(buf, pos)
}

#[inline(never)]
fn get_varint_long(buf: &[u8], pos: &mut usize) -> Option<u64> {
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

#[inline]
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
    apply_row(buf, pos, &mut out)?;
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

/// One sample of a [`Samples`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRef<'a> {
    /// Wall time, ms since the epoch.
    pub t: i64,
    /// Template id (0: the file was absent).
    pub tpl: u64,
    /// The numbers.
    pub vals: &'a [u64],
}

/// A series' samples in columns, every sample's numbers in one buffer. A `Vec<Sample>`
/// allocates and frees a vector per sample: `recommend` over a day of 1,000 cgroups decodes
/// some 38 million samples, and that was a quarter of its time. A sample whose template and
/// numbers equal its predecessor's (most of an idle cgroup's) shares its numbers.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    t: Vec<i64>,
    tpl: Vec<u64>,
    /// Per sample: the block of `vals` holding its numbers, where they start, how many.
    span: Vec<(u32, u32, u32)>,
    /// The numbers, in blocks of at least [`BLOCK`] (a day of memory.stat is 10 MB: one
    /// growing vector was copied on each doubling).
    vals: Vec<Vec<u64>>,
    /// Emptied blocks kept by [`Self::clear`] for reuse.
    spare: Vec<Vec<u64>>,
}

/// Numbers per block of [`Samples`] (64 KiB: below malloc's mmap threshold, so the blocks
/// of one cgroup are reused for the next instead of mapped, faulted in and unmapped).
const BLOCK: usize = 8 * 1024;

impl PartialEq for Samples {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && self.iter().zip(o.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for Samples {}

impl Samples {
    /// Samples held.
    #[inline]
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether none are held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// The time of sample `i` (panics when out of range, as indexing does).
    #[inline]
    pub fn t(&self, i: usize) -> i64 {
        self.t[i]
    }

    /// The template of sample `i`.
    #[inline]
    pub fn tpl(&self, i: usize) -> u64 {
        self.tpl[i]
    }

    /// The numbers of sample `i`.
    #[inline]
    pub fn vals(&self, i: usize) -> &[u64] {
        let (b, s, n) = self.span[i];
        let s = s as usize;
        &self.vals[b as usize][s..s + n as usize]
    }

    /// Sample `i`, when there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<SampleRef<'_>> {
        (i < self.len()).then(|| SampleRef {
            t: self.t[i],
            tpl: self.tpl[i],
            vals: self.vals(i),
        })
    }

    /// The last sample.
    #[inline]
    pub fn last(&self) -> Option<SampleRef<'_>> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Whether samples `i` and `j` hold the same template and numbers.
    #[inline]
    pub fn same(&self, i: usize, j: usize) -> bool {
        self.tpl[i] == self.tpl[j] && (self.span[i] == self.span[j] || self.vals(i) == self.vals(j))
    }

    /// The samples in order.
    pub fn iter(&self) -> impl Iterator<Item = SampleRef<'_>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Appends a sample.
    #[inline]
    pub fn push(&mut self, t: i64, tpl: u64, vals: &[u64]) {
        self.push_known(t, tpl, vals, None);
    }

    /// [`Self::push`] when the caller knows whether the sample equals the last one held
    /// (`Some`), so the numbers are not compared.
    #[inline]
    fn push_known(&mut self, t: i64, tpl: u64, vals: &[u64], same: Option<bool>) {
        let last = self.len().checked_sub(1);
        let same = last
            .is_some_and(|l| same.unwrap_or_else(|| self.tpl[l] == tpl && self.vals(l) == vals));
        let span = match last {
            Some(l) if same => self.span[l],
            _ => {
                let room = self
                    .vals
                    .last()
                    .is_some_and(|b| b.capacity() - b.len() >= vals.len());
                if !room {
                    let mut block = self.spare.pop().unwrap_or_default();
                    block.reserve(BLOCK.max(vals.len()));
                    self.vals.push(block);
                }
                let b = self.vals.len() - 1;
                let block = &mut self.vals[b];
                let s = block.len();
                block.extend_from_slice(vals);
                (b as u32, s as u32, vals.len() as u32)
            }
        };
        self.t.push(t);
        self.tpl.push(tpl);
        self.span.push(span);
    }

    /// Empties it, keeping its memory for the next samples pushed: a reader of many groups
    /// reuses one group's columns for the next ([`crate::Reader::each_group`]), so a day of
    /// 1,000 cgroups is not a fresh allocation, page faults and zeroing, per cgroup.
    pub fn clear(&mut self) {
        self.t.clear();
        self.tpl.clear();
        self.span.clear();
        for mut b in self.vals.drain(..) {
            b.clear();
            self.spare.push(b);
        }
    }

    /// Room for `n` more samples.
    pub fn reserve(&mut self, n: usize) {
        self.t.reserve(n);
        self.tpl.reserve(n);
        self.span.reserve(n);
    }

    /// Keeps the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        self.t.truncate(n);
        self.tpl.truncate(n);
        self.span.truncate(n);
        match self.span.last() {
            Some(&(b, s, l)) => {
                self.vals.truncate(b as usize + 1);
                self.vals[b as usize].truncate((s + l) as usize);
            }
            None => self.vals.clear(),
        }
    }

    /// Sorts by time, stably (samples of one time keep their order), when they are not
    /// in order already (a reader appends chunks in time order, then the frames).
    pub fn sort_by_time(&mut self) {
        if self.t.windows(2).all(|w| w[0] <= w[1]) {
            return;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.t[i]);
        let mut out = Samples::default();
        for i in order {
            out.push(self.t[i], self.tpl[i], self.vals(i));
        }
        *self = out;
    }
}

impl From<&[Sample]> for Samples {
    fn from(ss: &[Sample]) -> Self {
        let mut out = Samples::default();
        for s in ss {
            out.push(s.t, s.tpl, &s.vals);
        }
        out
    }
}

/// [`decode_series`] into `out`, keeping the samples in `[since, until]` (ms) only, with no
/// allocation per sample. `None` when the bytes are damaged; `out` is then as it was.
pub fn decode_series_into(
    buf: &[u8],
    rows: u32,
    count: impl Fn(u64) -> Option<usize>,
    since: i64,
    until: i64,
    row: &mut Vec<u64>,
    out: &mut Samples,
) -> Option<()> {
    let before = out.len();
    out.reserve(rows as usize);
    let ok = (|| {
        let (mut pos, mut t, mut dt) = (0usize, 0i64, 0i64);
        let mut last_tpl = u64::MAX;
        // Whether the previous row is the last sample in `out`.
        let mut pushed = false;
        row.clear();
        for _ in 0..rows {
            dt = dt.checked_add(unzigzag(get_varint(buf, &mut pos)?))?;
            t = t.checked_add(dt)?;
            let tpl = get_varint(buf, &mut pos)?;
            let n = if tpl == 0 { 0 } else { count(tpl)? };
            // The delta base: the previous row when its template is the same (`row` holds
            // it), else zeros (as `get_row` against an empty `prev`).
            let same_tpl = tpl == last_tpl && row.len() == n;
            if !same_tpl {
                row.clear();
                row.resize(n, 0);
            }
            let moved = apply_row(buf, &mut pos, row)?;
            last_tpl = tpl;
            pushed = if t >= since && t <= until {
                out.push_known(t, tpl, row, pushed.then_some(same_tpl && !moved));
                true
            } else {
                false
            };
        }
        (pos == buf.len()).then_some(())
    })();
    if ok.is_none() {
        out.truncate(before);
    }
    ok
}

/// Applies a row written by [`put_row`] to `vals` (its delta base, as many values as the
/// row has), in place: [`get_row`] without the allocation. Whether a value moved.
#[inline]
fn apply_row(buf: &[u8], pos: &mut usize, vals: &mut [u64]) -> Option<bool> {
    let n = vals.len();
    if n == 0 {
        get_varint(buf, pos)?;
        return Some(false);
    }
    let mut j = 0usize;
    let mut moved = false;
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
        moved |= d != 0;
        vals[j] = vals[j].wrapping_add(d as u64);
        j += 1;
    }
    Some(moved)
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

    /// Numbers across blocks, shared runs and a truncation inside a block read back as pushed.
    #[test]
    fn columns_span_blocks_and_truncate() {
        let mut c = Samples::default();
        let mut want = Vec::new();
        for i in 0..6_000u64 {
            let v = [i / 4, 7, i % 3];
            c.push(i as i64, 1 + i / 2_500, &v);
            want.push((i as i64, 1 + i / 2_500, v.to_vec()));
        }
        assert!(c.vals.len() > 1, "more than one block");
        let got = |c: &Samples| -> Vec<(i64, u64, Vec<u64>)> {
            c.iter().map(|s| (s.t, s.tpl, s.vals.to_vec())).collect()
        };
        assert_eq!(got(&c), want);
        c.truncate(4_000);
        want.truncate(4_000);
        assert_eq!(got(&c), want);
        c.push(-1, 9, &[1, 2, 3]);
        assert_eq!(c.last().unwrap().vals, &[1, 2, 3]);
        c.truncate(0);
        assert!(c.is_empty() && c.vals.is_empty());
        // Cleared columns reuse their blocks and read back only what is pushed after.
        for i in 0..6_000u64 {
            c.push(i as i64, 1, &[i, 7, i % 3]);
        }
        let blocks = c.vals.len();
        c.clear();
        assert!(c.is_empty() && c.vals.is_empty() && c.spare.len() == blocks);
        c.push(5, 2, &[1, 2]);
        c.push(6, 2, &[1, 2]);
        c.push(7, 3, &[4]);
        assert_eq!(
            got(&c),
            vec![(5, 2, vec![1, 2]), (6, 2, vec![1, 2]), (7, 3, vec![4])]
        );
        assert_eq!(
            c,
            Samples::from(
                &[
                    Sample {
                        t: 5,
                        tpl: 2,
                        vals: vec![1, 2]
                    },
                    Sample {
                        t: 6,
                        tpl: 2,
                        vals: vec![1, 2]
                    },
                    Sample {
                        t: 7,
                        tpl: 3,
                        vals: vec![4]
                    }
                ][..]
            )
        );
    }

    proptest! {
        /// The columns decode what `decode_series` decodes, over any rows, templates
        /// (value counts) and time window.
        #[test]
        fn columns_equal_the_samples(
            rows in proptest::collection::vec((0u64..3, proptest::collection::vec(0u64..4, 3)), 0..30),
            since in 0i64..40_000,
            len in 0i64..40_000,
        ) {
            let mut s = SeriesBuf::default();
            for (i, (tpl, r)) in rows.iter().enumerate() {
                let n = if *tpl == 0 { 0 } else { *tpl as usize + 1 };
                s.push(i as i64 * 1000, *tpl, &r[..n]);
            }
            let count = |t: u64| Some(t as usize + 1);
            let want: Vec<Sample> = decode_series(&s.bytes, s.rows, count)
                .unwrap()
                .into_iter()
                .filter(|x| x.t >= since && x.t <= since + len)
                .collect();
            let mut got = Samples::default();
            got.push(-1, 1, &[7, 7]);
            decode_series_into(&s.bytes, s.rows, count, since, since + len, &mut Vec::new(), &mut got).unwrap();
            let mut expect = Samples::default();
            expect.push(-1, 1, &[7, 7]);
            for x in &want {
                expect.push(x.t, x.tpl, &x.vals);
            }
            prop_assert_eq!(&got, &expect);
            prop_assert_eq!(got.iter().skip(1).map(|x| (x.t, x.tpl, x.vals.to_vec())).collect::<Vec<_>>(),
                want.iter().map(|x| (x.t, x.tpl, x.vals.clone())).collect::<Vec<_>>());
            // Damaged bytes leave `out` as it was.
            let n = got.len();
            if !s.bytes.is_empty() {
                let cut = &s.bytes[..s.bytes.len() - 1];
                if decode_series_into(cut, s.rows, count, i64::MIN, i64::MAX, &mut Vec::new(), &mut got).is_none() {
                    prop_assert_eq!(got.len(), n);
                }
            }
        }

        /// The one-byte fast path reads what the byte loop reads (value, position, the end,
        /// an overlong varint), on any bytes.
        #[test]
        fn varints_read_as_the_loop_reads_them(bytes in proptest::collection::vec(any::<u8>(), 0..24), start in 0usize..4) {
            // The byte loop alone, without the fast path in front of it.
            let reference = get_varint_long;
            let (mut a, mut b) = (start, start);
            loop {
                let (x, y) = (get_varint(&bytes, &mut a), reference(&bytes, &mut b));
                prop_assert_eq!(x, y);
                if x.is_none() {
                    break;
                }
                prop_assert_eq!(a, b);
            }
        }

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
