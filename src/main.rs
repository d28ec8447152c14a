use clap::Parser;
use memlens::cli::{Cli, run};

fn main() {
    let cli = Cli::parse();
    if let Err(f) = run(cli) {
        eprintln!("memlens: {}", f.message);
        std::process::exit(f.code);
    }
}
