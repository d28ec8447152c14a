//! The kernel log and the OOM reports in it.
//!
//! `log` turns raw log text (from `/dev/kmsg`, `dmesg`, `dmesg -T`, `journalctl -k` or syslog)
//! into [`log::LogLine`]s; `oom` groups those lines into [`oom::OomReport`]s.

pub mod log;
pub mod oom;
pub mod source;
pub mod tail;
