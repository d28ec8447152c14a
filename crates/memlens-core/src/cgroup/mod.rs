//! Kernel source: cgroup v1 and v2 memory controller files.
//!
//! `mount` finds the hierarchy, `parse` understands the files' formats, `read` fills one
//! [`crate::model::Cgroup`], `walk` lists the cgroups of a hierarchy, `owned` creates and
//! removes the cgroups memlens itself owns, and `reclaim` empties the one cgroup a user names
//! with `memlens zombies --reclaim` (the only two modules that write to /sys).

pub mod events;
pub mod handle;
pub mod mount;
pub mod owned;
pub mod parse;
pub mod peak;
pub mod read;
pub mod reclaim;
pub mod slabinfo;
pub mod walk;
