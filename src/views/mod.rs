//! Views computed from the model only: the normalised breakdown, what other tools would show,
//! and the derived figures (reclaimable, headroom). Nothing here reads the system.

pub mod breakdown;
pub mod derived;
pub mod neighbours;
pub mod processes;
pub mod tools;
pub mod waterfall;

use serde::Serialize;

/// A number with where it came from: the kernel file(s) and the formula. `bytes` is `None`
/// when the kernel does not provide what the formula needs, and `source` then says what is
/// missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figure {
    /// The value in bytes, or `None` when unavailable.
    pub bytes: Option<u64>,
    /// The file and formula (or, when unavailable, why).
    pub source: String,
    /// True when the value is a count, not bytes (cAdvisor's failcnt).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub count: bool,
}

impl Figure {
    /// A figure with a value.
    pub fn new(bytes: Option<u64>, source: impl Into<String>) -> Self {
        Figure {
            bytes,
            source: source.into(),
            count: false,
        }
    }

    /// A figure that counts events rather than bytes.
    pub fn count(n: Option<u64>, source: impl Into<String>) -> Self {
        Figure {
            bytes: n,
            source: source.into(),
            count: true,
        }
    }

    /// An unavailable figure, with the reason.
    pub fn unavailable(why: impl Into<String>) -> Self {
        Figure {
            bytes: None,
            source: why.into(),
            count: false,
        }
    }
}
