//! OOM wall-clock times (issue 11 item 6): the kernel log's stamps are monotonic
//! (CLOCK_BOOTTIME-based, as `dmesg -T` treats them); /proc/stat btime is whole seconds, so
//! times computed from it were up to 1 s early while printed to the microsecond. memlens
//! converts with CLOCK_REALTIME − CLOCK_BOOTTIME on the live system. A record written to
//! /dev/kmsg at a known wall time must come out within 10 ms of it.

use memlens::kmsg::log::{parse_log, wall_time_us};
use memlens::sys::Root;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{SystemTime, UNIX_EPOCH};

/// CLOCK_BOOTTIME in microseconds.
fn boottime_us() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).unwrap();
    t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

#[test]
fn a_kmsg_stamp_converts_to_the_wall_time_it_was_written_at() {
    let open = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg");
    let mut f = match open {
        Ok(f) => f,
        Err(e) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "/dev/kmsg: {e}"
            );
            eprintln!("SKIPPED: /dev/kmsg: {e} (needs root)");
            return;
        }
    };
    // Skip what is there (Documentation/ABI/testing/dev-kmsg: SEEK_END), then log a marker.
    let mut buf = vec![0u8; 16384];
    f.seek(SeekFrom::End(0)).unwrap();
    let marker = format!("memlens-test wall-time marker {}", std::process::id());
    let (b0, before) = (boottime_us(), unix_us(SystemTime::now()));
    // One record per write; the newline ends it (else printk holds it as a continuation).
    f.write_all(format!("{marker}\n").as_bytes()).unwrap();
    let (after, b1) = (unix_us(SystemTime::now()), boottime_us());
    let mut text = String::new();
    for _ in 0..1000 {
        match f.read(&mut buf) {
            Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => {
                if text.contains(&marker) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    let line = parse_log(&text)
        .into_iter()
        .find(|l| l.text.contains(&marker))
        .expect("our marker in /dev/kmsg");
    let mono = line.mono_usec.expect("kmsg records carry a stamp");
    let boot = memlens::oom::boot_time_us(&Root::live()).expect("clocks");
    let wall = boot + mono;
    // The kernel stamps records with local_clock(), which tracks CLOCK_BOOTTIME on real
    // hardware (here: within microseconds) but can lag it in an emulated guest (the TCG VM:
    // 46 ms after 30 s). memlens's conversion must add nothing to that offset: within 10 ms
    // of the write, plus the kernel's own offset where it has one.
    let offset = if mono < b0 {
        b0 - mono
    } else {
        mono.saturating_sub(b1)
    };
    eprintln!("kernel log clock vs CLOCK_BOOTTIME at the write: {offset} µs");
    let lo = before.saturating_sub(10_000 + offset);
    let hi = after + 10_000 + offset;
    assert!(
        (lo..=hi).contains(&wall),
        "stamp {mono} µs + boot {boot} µs = {wall}, written between {before} and {after} (log clock offset {offset} µs)"
    );
    // Where the log clock tracks CLOCK_BOOTTIME (this host), that is the 10 ms the issue asks.
    if offset < 1_000 {
        assert!(wall + 10_000 >= before && wall <= after + 10_000);
    }
    // And the text form is that instant (to the microsecond).
    let s = wall_time_us(mono, boot);
    assert!(s.ends_with('Z') && s.len() == 27, "{s}");
    // btime alone is whole seconds: it can be up to 1 s early, which is what this fixes.
    let bt = memlens::oom::boot_time(&Root::live()).unwrap() * 1_000_000;
    assert!(
        boot >= bt && boot - bt < 1_000_000 + 10_000,
        "btime {bt}, clocks {boot}"
    );
}
