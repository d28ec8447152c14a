//! memlens-core: the kernel sources memlens reads and the model they fill.
//!
//! [`sys`] (where files come from: the live system or a capture) →
//! [`cgroup`], [`proc`], [`kmsg`], [`pagecache`] (read and parse cgroupfs, /proc, the kernel
//! log, a file's page cache) → [`model`] (what one sample means). Everything that computes
//! from the model or shows it lives in the `memlens` crate; the store that keeps models over
//! time in `memlens-store`. Data flows one way: nothing here knows about either.

pub mod cgroup;
pub mod identity;
pub mod kmsg;
pub mod model;
pub mod pagecache;
pub mod proc;
pub mod sys;
pub mod units;
