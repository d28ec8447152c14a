use clap::Parser;
use memlens::cli::{Cli, run};

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(f) => {
            eprintln!("memlens: {}", f.message);
            std::process::exit(f.code);
        }
    }
}
