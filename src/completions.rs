//! Shell completions (`memlens completions bash|zsh|fish`) and the man page (`memlens man`).
//!
//! Completions are clap_complete's dynamic ones: the shell script registered by
//! `memlens completions SHELL` calls memlens back (`COMPLETE=SHELL memlens -- ARGS`), so TARGET
//! completes from what is live on this node: cgroup paths, container IDs and names.

use crate::model::Hierarchy;
use crate::sys::Root;
use clap_complete::CompletionCandidate;
use clap_complete::env::EnvCompleter;

/// The shells `memlens completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    /// bash (source it, or put it in /etc/bash_completion.d/memlens).
    Bash,
    /// zsh (put it in a directory on $fpath as _memlens).
    Zsh,
    /// fish (~/.config/fish/completions/memlens.fish).
    Fish,
}

/// Writes the registration script for `shell` to `out`.
pub fn write(shell: Shell, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let (name, bin) = ("memlens", "memlens");
    match shell {
        Shell::Bash => clap_complete::env::Bash.write_registration("COMPLETE", name, bin, bin, out),
        Shell::Zsh => clap_complete::env::Zsh.write_registration("COMPLETE", name, bin, bin, out),
        Shell::Fish => clap_complete::env::Fish.write_registration("COMPLETE", name, bin, bin, out),
    }
}

/// Writes the man page (roff) of memlens, its subcommands listed, to `out`.
pub fn man(cmd: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}

/// TARGET candidates: every live memory cgroup's path, and container IDs (12 characters,
/// as docker prints them) with their names as help.
pub fn targets() -> Vec<CompletionCandidate> {
    let root = Root::live();
    let Ok(h): Result<Hierarchy, _> = crate::report::hierarchy(&root) else {
        return Vec::new();
    };
    let o = crate::overview::collect(&root, &h, true);
    let mut v = Vec::new();
    for r in &o.rows {
        let name = r.identity.display_name();
        if let Some(id) = &r.identity.container_id {
            let mut c = CompletionCandidate::new(id.chars().take(12).collect::<String>());
            if let Some(n) = &name {
                c = c.help(Some(n.clone().into()));
            }
            v.push(c);
        }
        v.push(CompletionCandidate::new(r.path.clone()));
    }
    v
}
