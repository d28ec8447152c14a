//! memlens: how much memory a container really uses, why, and what happens next.
//!
//! Data flows one way (see DEVELOPERS.md):
//! `sys` (where files come from: the live system or a capture) →
//! `cgroup`, `proc`, `kmsg` (kernel sources: read and parse) →
//! `model` (what one sample means) →
//! `views` (other tools' figures, derived values, rules) →
//! `render` / `cli` (front ends; they never touch /sys or /proc).

pub mod kmsg;
