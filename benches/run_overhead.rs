//! The cost of `memlens run` at the default 50 ms interval (needs root or a delegated cgroup).
//!
//! Runs the same CPU+memory workload (`memlens __workload anon=256M work=1100 exit`: touch
//! 256 MiB, then a fixed 1.1 billion rounds of arithmetic that keep writing into it, ~2.5 s;
//! a fixed amount of work, so time stolen by the sampler shows in the wall time) directly and under
//! `memlens run --`, alternating, and compares wall time and CPU time (getrusage
//! RUSAGE_CHILDREN: the workload alone, or the workload plus memlens itself). The overhead is
//! computed from the fastest round of each (on shared cores other load only ever adds time,
//! so the minimum is the least noisy estimate); medians are printed too. It also runs
//! `memlens run -- sleep 3` and prints memlens's own CPU per second of sampling, the part of
//! the overhead that does not depend on the workload. Target: under 2%.

use std::process::{Command, Stdio};
use std::time::Instant;

const ROUNDS: usize = 7;

fn children_cpu() -> f64 {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn once(cmd: &mut Command) -> (f64, f64) {
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let st = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let wall = t0.elapsed().as_secs_f64();
    assert!(st.success(), "{cmd:?} failed: {st}");
    (wall, children_cpu() - cpu0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_memlens");
    let work = ["__workload", "anon=256M", "work=1100", "exit"];
    let (mut dw, mut dc, mut rw, mut rc) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let (w, c) = once(Command::new(bin).args(work));
        dw.push(w);
        dc.push(c);
        let (w, c) = once(Command::new(bin).args(["run", "--"]).arg(bin).args(work));
        rw.push(w);
        rc.push(c);
    }
    println!("workload: memlens {}", work.join(" "));
    println!("{ROUNDS} rounds each, alternating; memlens run at the default 50 ms interval");
    println!(
        "direct:        wall min {:.3} s median {:.3} s   cpu min {:.3} s median {:.3} s",
        min(&dw),
        median(dw.clone()),
        min(&dc),
        median(dc.clone())
    );
    println!(
        "memlens run:   wall min {:.3} s median {:.3} s   cpu min {:.3} s median {:.3} s",
        min(&rw),
        median(rw.clone()),
        min(&rc),
        median(rc.clone())
    );
    println!(
        "overhead:      wall {:+.2}%   cpu {:+.2}%   (fastest rounds; target < 2%)",
        (min(&rw) / min(&dw) - 1.0) * 100.0,
        (min(&rc) / min(&dc) - 1.0) * 100.0
    );
    let (w, c) = once(Command::new(bin).args(["run", "--", "sleep", "3"]));
    println!(
        "sampler alone: memlens run -- sleep 3 used {:.3} s CPU in {:.3} s ({:.2}% of one core)",
        c,
        w,
        c / w * 100.0
    );
}
