use clap::FromArgMatches;
use memlens::cli::{Cli, run};

fn main() {
    // A shell asking for completions (COMPLETE=bash memlens -- ...) is answered here.
    clap_complete::CompleteEnv::with_factory(memlens::cli::command).complete();
    let m = memlens::cli::command().get_matches();
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
