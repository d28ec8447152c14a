use clap::FromArgMatches;
use memlens::cli::{Cli, run};

/// mimalloc, not glibc's malloc: the recorder and the exporter allocate and free small
/// buffers for each of thousands of kernel files per tick, and glibc's consolidation of its
/// fast bins (triggered by every request above ~1 KiB, such as a memory.stat text) was a
/// fifth of the recorder's CPU at 1,000 idle memcgs (issue 13). Without transparent huge
/// pages (the `no_thp` feature, and [`no_huge_pages`]): with them its arenas are backed
/// 2 MiB at a time and the recorder's RSS was 47-50 MB instead of 31-33 MB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for the long-running agents (PR_SET_THP_DISABLE, Linux 3.15+):
/// their heap is a few tens of MB of small objects, and huge pages only inflate their RSS on
/// nodes whose THP setting is `always`. Not for the other commands: the flag is inherited
/// across fork and exec, and `run` / `--find-limit` must measure the user's command as it
/// runs without memlens. Best effort: nothing else depends on it.
fn no_huge_pages() {
    // SAFETY: prctl with integer arguments only changes this process's THP flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() {
    // A shell asking for completions (COMPLETE=bash memlens -- ...) is answered here.
    clap_complete::CompleteEnv::with_factory(memlens::cli::command).complete();
    let m = memlens::cli::command().get_matches();
    if matches!(m.subcommand_name(), Some("record" | "serve")) {
        no_huge_pages();
    }
    let cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(f) => {
            eprintln!("memlens: {}", f.message);
            std::process::exit(f.code);
        }
    }
}
