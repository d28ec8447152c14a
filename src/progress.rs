//! Long waits (`--sample`): a countdown on a terminal, so a wait does not look hung.

use std::io::{IsTerminal, Write};

/// Sleeps `d`; on a terminal (stderr) shows a countdown so a long `--sample` does not look
/// hung. Nothing is printed when stderr is not a terminal (scripts, pipes): there the
/// commands print what is ready before the wait instead (see cli.rs).
pub fn wait(d: std::time::Duration, what: &str) {
    let tty = std::io::stderr().is_terminal();
    if !tty || d < std::time::Duration::from_secs(1) {
        std::thread::sleep(d);
        return;
    }
    let end = std::time::Instant::now() + d;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        eprint!(
            "\rmemlens: {what} in {:.0}s (Ctrl-C to stop)   ",
            left.as_secs_f64().ceil()
        );
        let _ = std::io::stderr().flush();
        std::thread::sleep(left.min(std::time::Duration::from_millis(250)));
    }
    // Clear the line.
    eprint!("\r{}\r", " ".repeat(60));
}
