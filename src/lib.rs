//! memlens: how much memory a container really uses, why, and what happens next.
//!
//! Data flows one way (see DEVELOPERS.md):
//! [`sys`] (where files come from: the live system or a capture) →
//! [`cgroup`], [`proc`], [`kmsg`] (kernel sources: read and parse) →
//! [`model`] (what one sample means) →
//! [`views`] (other tools' figures, derived values) →
//! [`report`] / [`overview`] (assembled results) → `render` and `cli` (front ends; they never
//! touch /sys or /proc).

// The kernel sources and the model (crates/memlens-core) and the store (crates/memlens-store)
// are their own crates; re-exported so every path stays `memlens::cgroup`, `crate::model`, ….
pub use memlens_core::{cgroup, identity, kmsg, model, pagecache, proc, sys, units};
pub use memlens_store as store;

pub mod cache;
pub mod capture;
pub mod cli;
pub mod completions;
pub mod dying;
pub mod findlimit;
pub mod history;
pub mod kernel;
pub mod kmem;
pub mod kubelet;
pub mod lab;
pub mod metrics;
pub mod node;
pub mod oom;
pub mod overview;
pub mod progress;
pub mod recommend;
pub mod record;
pub mod render;
pub mod report;
pub mod rules;
pub mod run;
pub mod serve;
pub mod target;
pub mod trend;
pub mod tui;
pub mod views;
pub mod workload;
pub mod zombies;
