//! Names from the system (cgroup directories, process names, container names, log text) are
//! chosen by whoever created them: `mkdir $'x\033[31mRED'` or a process named `\033[2J` would
//! colour the table or clear the administrator's screen if printed raw. Human output passes
//! every such string through [`term`]; JSON carries the exact bytes (serde escapes them).
//!
//! Hand-written: no well-kept crate does just this (`strip-ansi-escapes` drops sequences,
//! losing bytes the administrator needs to see; `unicode-security` is about confusables).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 controls (tab and newline included: a
/// name must not break a table's line), DEL, C1 controls (U+0080–U+009F; `\u{9b}` is a CSI
/// on some terminals), and the bidirectional overrides and isolates that reorder what is
/// shown (U+202A–U+202E, U+2066–U+2069).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as an escape: `\xHH` for ASCII controls (the
/// kernel's own convention in /dev/kmsg and /proc), `\u{HHHH}` for the others. Borrowed when
/// there is nothing to escape (the common case).
pub fn term(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// [`term`] for a multi-line text: each line escaped, the newlines kept.
pub fn term_lines(s: &str) -> String {
    s.split('\n').map(term).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_the_rest() {
        assert_eq!(term("x\x1b[31mRED"), "x\\x1b[31mRED");
        assert_eq!(term("\x1b[2J\x07"), "\\x1b[2J\\x07");
        assert_eq!(term("a\tb\nc\x7f"), "a\\x09b\\x0ac\\x7f");
        assert_eq!(term("\u{9b}2J"), "\\u{009b}2J");
        assert_eq!(term("abc\u{202e}def"), "abc\\u{202e}def");
        // Ordinary names, Unicode included, and the kernel's own escapes, untouched.
        assert!(matches!(term("nginx.service"), Cow::Borrowed(_)));
        assert_eq!(term("café ü 日本"), "café ü 日本");
        assert_eq!(term("comm\\x1b"), "comm\\x1b");
        assert_eq!(term_lines("a\x1b\nb"), "a\\x1b\nb");
    }
}
