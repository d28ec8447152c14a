//! Views computed from the model only: the normalised breakdown, what other tools would show,
//! and the derived figures (reclaimable, headroom). Nothing here reads the system.

pub mod breakdown;
pub mod derived;
pub mod kernel;
pub mod neighbours;
pub mod offload;
pub mod processes;
pub mod tools;
pub mod waterfall;

use serde::Serialize;
use std::borrow::Cow;

/// A number with where it came from: the kernel file(s) and the formula. `bytes` is `None`
/// when the kernel does not provide what the formula needs, and `source` then says what is
/// missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figure {
    /// The value in bytes, or `None` when unavailable.
    #[serde(rename = "value_bytes")]
    pub bytes: Option<u64>,
    /// The file and formula (or, when unavailable, why). Borrowed when it is a fixed text
    /// (most are): `history` and `recommend` build some 20 figures per recorded sample.
    pub source: Cow<'static, str>,
    /// True when the value is a count, not bytes (cAdvisor's failcnt).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub count: bool,
}

impl Figure {
    /// A figure with a value.
    pub fn new(bytes: Option<u64>, source: impl Into<Cow<'static, str>>) -> Self {
        Figure {
            bytes,
            source: source.into(),
            count: false,
        }
    }

    /// A figure that counts events rather than bytes.
    pub fn count(n: Option<u64>, source: impl Into<Cow<'static, str>>) -> Self {
        Figure {
            bytes: n,
            source: source.into(),
            count: true,
        }
    }

    /// An unavailable figure, with the reason.
    pub fn unavailable(why: impl Into<Cow<'static, str>>) -> Self {
        Figure {
            bytes: None,
            source: why.into(),
            count: false,
        }
    }
}

/// Checked sum of kernel figures: `None` if one is missing or the sum overflows. Kernel
/// numbers enter formulas only through checked arithmetic: a wrapped counter near 2^64 must
/// make a figure unavailable, never a wrong one (issue 19 item 7).
pub fn add(xs: &[u64]) -> Option<u64> {
    xs.iter().try_fold(0u64, |a, x| a.checked_add(*x))
}

/// [`add`] over optional values: `None` if any is `None` or the sum overflows.
pub fn sum_opt(xs: impl IntoIterator<Item = Option<u64>>) -> Option<u64> {
    xs.into_iter().try_fold(0u64, |a, x| a.checked_add(x?))
}

/// Why a formula has no value because its inputs overflow.
pub const OVERFLOW: &str =
    "its inputs overflow a 64-bit sum (an implausible counter, listed in problems)";

#[cfg(test)]
mod sum_tests {
    use super::*;

    #[test]
    fn sums_are_checked() {
        assert_eq!(add(&[1, 2]), Some(3));
        assert_eq!(add(&[u64::MAX, 1]), None);
        assert_eq!(sum_opt([Some(1), None]), None);
        assert_eq!(sum_opt([Some(u64::MAX), Some(1)]), None);
        assert_eq!(sum_opt([Some(2), Some(3)]), Some(5));
    }
}
