//! The exporter under connection abuse (issue 19 item 2), loopback only and bounded: hundreds
//! of idle connections that reconnect as soon as they are closed, and a burst of 500
//! simultaneous scrapes, while a legitimate client scrapes. Every legitimate scrape must be
//! answered, and every burst connection must get an HTTP answer (200 or 503), never a silent
//! close. Attackers use other loopback addresses (127.0.0.2...), as a remote client would.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect_from(src: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((src, 0)))?;
    s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Idle connections from `addrs` (`per` each) that reconnect as soon as they are closed,
/// until `stop`. Returns how many times they were closed by the server.
async fn idlers(addrs: Vec<Ipv4Addr>, per: usize, port: u16, stop: Arc<AtomicBool>) -> usize {
    let closed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for a in addrs {
        for _ in 0..per {
            let (stop, closed) = (stop.clone(), closed.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect_from(a, port).await else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let mut b = [0u8; 512];
                    // Hold until the server closes (or answers 503 and closes).
                    loop {
                        tokio::select! {
                            r = s.read(&mut b) => if matches!(r, Ok(0) | Err(_)) { break },
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                                if stop.load(Ordering::Relaxed) { return; }
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    closed.load(Ordering::Relaxed)
}

/// `n` simultaneous `/metrics` from `src`: (answered 200, answered 503, closed unanswered).
/// Each unanswered one is printed with what the client saw.
async fn burst(src: Ipv4Addr, n: usize, port: u16, wait: Duration) -> (usize, usize, usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut s = connect_from(src, port)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let connected = t.elapsed();
            let w = s
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let r = tokio::time::timeout(wait, s.read_to_end(&mut buf)).await;
            let code = buf
                .get(..12.min(buf.len()))
                .map(String::from_utf8_lossy)
                .and_then(|h| h.split_whitespace().nth(1)?.parse::<u16>().ok());
            code.ok_or_else(|| {
                format!(
                    "connected after {connected:?}, write {w:?}, read {r:?} after {:?}, {} bytes",
                    t.elapsed(),
                    buf.len()
                )
            })
        }));
    }
    let (mut ok, mut busy, mut silent) = (0, 0, 0);
    for t in tasks {
        match t.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(200) => ok += 1,
            Ok(503) => busy += 1,
            r => {
                silent += 1;
                eprintln!("burst connection unanswered: {r:?}");
            }
        }
    }
    (ok, busy, silent)
}

/// Raises this process's soft limit of open files to the hard one: the attack holds about
/// 1,150 sockets at once, more than the soft limit of 1,024 a busybox init leaves (the 5.10
/// guest), where the burst's own `connect` failed with EMFILE and counted as unanswered.
fn raise_own_fd_limit(need: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && {
            rl.rlim_cur = rl.rlim_cur.max(rl.rlim_max.min(65536));
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0
        }
    };
    assert!(
        ok && rl.rlim_cur >= need,
        "the test needs {need} open files, the limit is {} (hard {})",
        rl.rlim_cur,
        rl.rlim_max
    );
}

/// The kernel's TCP listen-queue counters (/proc/net/netstat TcpExt: ListenOverflows,
/// ListenDrops, SyncookiesSent, TCPReqQFullDrop), system-wide: a connection the server never
/// accepted is the kernel's to drop or reset, and these say whether it did.
fn listen_counters() -> Vec<(String, u64)> {
    let t = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut l = t.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(h), Some(v)) = (l.next(), l.next()) else {
        return Vec::new();
    };
    h.split_whitespace()
        .zip(v.split_whitespace())
        .filter(|(k, _)| {
            matches!(
                *k,
                "ListenOverflows" | "ListenDrops" | "SyncookiesSent" | "TCPReqQFullDrop"
            )
        })
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
        .collect()
}

/// Connections waiting in the accept queue of the listener on 127.0.0.1:`port`: a listening
/// socket's rx_queue in /proc/net/tcp is its accept backlog (net/ipv4/tcp_ipv4.c
/// get_tcp4_sock: sk_ack_backlog). None when there is no such listener.
fn accept_queue(port: u16) -> Option<u64> {
    let t = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    t.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&local.as_str()) || f.get(3) != Some(&"0A") {
            return None;
        }
        u64::from_str_radix(f.get(4)?.split_once(':')?.1, 16).ok()
    })
}

/// One `GET` from 127.0.0.1 with a read timeout of `wait`: (status, time taken).
fn get(port: u16, path: &str, wait: Duration) -> std::io::Result<(u16, Duration)> {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(wait))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, t.elapsed()))
}

/// How often the server's log says it refused 127.0.0.1 (the legitimate client): one by one
/// (`peer=127.0.0.1:PORT`) or in a summary's `by_address` (`127.0.0.1=N`).
fn legit_refusals(line: &str) -> usize {
    if !line.contains("refused with 503") {
        return 0;
    }
    if line.contains("by_address=") {
        return line
            .split_whitespace()
            .map(|w| w.trim_start_matches("by_address="))
            .find_map(|w| w.strip_prefix("127.0.0.1=")?.parse().ok())
            .unwrap_or(0);
    }
    usize::from(line.contains(" peer=127.0.0.1:"))
}

/// Reads the server's log as slowly as a serial console does (115200 baud, about 11 KB/s: the
/// VM guests' console, where every test's output goes). Returns the refusal lines it read and
/// the refusals of 127.0.0.1 they name.
fn slow_log_sink(err: std::process::ChildStderr) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut err = err;
        let (mut buf, mut pending, mut refused, mut shown) = ([0u8; 1100], Vec::new(), 0, 0);
        let mut legit = 0;
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
            // Whole lines as they come, so a failure's output has the log up to then.
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line);
                refused += usize::from(line.contains("refused with 503"));
                legit += legit_refusals(&line);
                shown += 1;
                if shown <= 40 || line.contains("without an answer") || line.contains("by_address")
                {
                    eprint!("serve: {line}");
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if shown > 40 {
            eprintln!("serve: ... {} more lines", shown - 40);
        }
        (refused, legit)
    })
}

#[test]
fn a_scrape_succeeds_while_one_client_hoards_connections() {
    raise_own_fd_limit(1400);
    // The log goes to a sink as slow as a serial console (the VM's): a flood of log lines
    // must not be what stalls the server (a log line per refused connection did, in the
    // TCG guests: write(2) to stderr blocked the accepting thread).
    let (mut serve, port) = start_serve_with("1s", &[], std::process::Stdio::piped());
    let sink = slow_log_sink(serve.0.stderr.take().expect("serve's stderr"));
    // Time is measured against an unloaded scrape (the TCG guests are 10-50x slower than the
    // host). The server answers connections in the order they arrive, so a scrape under
    // attack waits for the ~1,150 attack connections queued before it to be answered or
    // refused, each costing about an unloaded scrape (5.10 TCG guest: 74 ms each; with a
    // 10 s wait all 500 of a burst went unanswered): never less than 10 s.
    let base = (0..3)
        .filter_map(|_| get(port, "/metrics", Duration::from_secs(60)).ok())
        .map(|(_, d)| d)
        .max()
        .unwrap_or(Duration::from_secs(1));
    let wait = (base * 1200).clamp(Duration::from_secs(10), Duration::from_secs(240));
    let window = (base * 20).clamp(Duration::from_secs(4), Duration::from_secs(20));
    eprintln!("unloaded scrape {base:?}: answers awaited {wait:?}, attack window {window:?}");
    let listen_before = listen_counters();
    let attack_start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let attack = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // 300 idle hoarders on one address, and 320 spread over 8 (more than the
            // server-wide limit of 256).
            let one = tokio::spawn(idlers(
                vec![Ipv4Addr::new(127, 0, 0, 2)],
                300,
                port,
                st.clone(),
            ));
            let spread = tokio::spawn(idlers(
                (3..11).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
                40,
                port,
                st.clone(),
            ));
            tokio::time::sleep(Duration::from_millis(800)).await;
            // The burst waits for its answers up to the longest wait: what it checks is that
            // none is closed without one, and a guest slowed by a loaded host answers the queue
            // later than the unloaded scrape predicts (the 5.10 guest at host load 6: 92 of 500
            // answered in 41 s, the rest still open and answered later). A read that returns
            // the moment it is answered costs nothing when the server is quick.
            let b = burst(
                Ipv4Addr::new(127, 0, 0, 20),
                500,
                port,
                Duration::from_secs(240),
            )
            .await;
            (one.await.unwrap_or(0), spread.await.unwrap_or(0), b)
        })
    });
    // The legitimate client, from 127.0.0.1, during the attack: every scrape answered.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let (mut asked, mut answered) = (0, 0);
    while t.elapsed() < window {
        asked += 1;
        let path = if asked % 2 == 0 {
            "/healthz"
        } else {
            "/metrics"
        };
        match get(port, path, wait) {
            Ok((200, _)) => answered += 1,
            r => eprintln!("legitimate {path}: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let (closed_one, closed_spread, (ok, busy, silent)) = attack.join().unwrap();
    eprintln!(
        "legitimate {answered}/{asked}; hoarders closed {closed_one} + {closed_spread} times; burst of 500: {ok} ok, {busy} 503, {silent} unanswered"
    );
    // Unanswered burst connections the server never closed (6.1 guest: reset with no byte
    // after 8 and 13 s) point at the kernel's listen queue.
    let moved: Vec<String> = listen_counters()
        .iter()
        .zip(&listen_before)
        .map(|((k, a), (_, b))| format!("{k} +{}", a.saturating_sub(*b)))
        .collect();
    eprintln!("kernel listen-queue counters during the attack: {moved:?}");
    let healthy = http_get(port, "/healthz", None).map(|r| r.0);
    // SIGTERM: the server logs what it closed without an answer, if anything.
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(serve.pid() as i32, libc::SIGTERM);
    }
    let _ = serve.0.wait();
    let (refused_lines, legit_refused) = sink.join().unwrap();
    eprintln!(
        "refusals logged one by one: {refused_lines}; refusals of 127.0.0.1 (the legitimate client): {legit_refused}"
    );
    assert_eq!(
        answered, asked,
        "legitimate scrapes answered during the attack (the server refused 127.0.0.1 {legit_refused} times)"
    );
    assert_eq!(silent, 0, "burst connections closed without an answer");
    assert!(ok > 0, "some of the burst is served");
    assert!(
        closed_one > 0,
        "the hoarder beyond its per-address limit is refused or closed"
    );
    // The server is still fine afterwards.
    assert_eq!(healthy.unwrap(), 200);
    // A few refusals one by one per 10 s (5), then one line summing the rest up: at most 6
    // lines per 10 s window the attack lasted, and one at exit (a slow guest's attack spans
    // more windows: 22 lines over 4 in the 6.1 guest on a loaded host). A flood is a line
    // per refusal: hundreds here.
    let windows = attack_start.elapsed().as_secs() / 10 + 1;
    assert!(
        refused_lines as u64 <= 6 * windows + 1,
        "{refused_lines} log lines for refused connections over {windows} windows of 10 s: a flood"
    );
}

/// A client whose request has not arrived when its connection is closed to make room (just
/// connected, on a slow machine: the 5.10 TCG guest lost 16 of a 500-scrape burst so) gets a
/// 503, never a silent close: the server fills up with fresh connections that have sent
/// nothing, a light client arrives and takes the place of one of them, then all send.
#[test]
fn a_connection_closed_before_its_request_arrived_gets_a_503() {
    raise_own_fd_limit(600);
    let (_serve, port) = start_serve("1s", &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // 64 from the heaviest address (its limit), 4 × 48 from others: the 256 in total.
        let mut heavy = Vec::new();
        for _ in 0..64 {
            heavy.push(
                connect_from(Ipv4Addr::new(127, 0, 0, 30), port)
                    .await
                    .unwrap(),
            );
        }
        let mut others = Vec::new();
        for a in 31..35 {
            for _ in 0..48 {
                others.push(
                    connect_from(Ipv4Addr::new(127, 0, 0, a), port)
                        .await
                        .unwrap(),
                );
            }
        }
        // Let the server admit them all before the newcomer.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut light = connect_from(Ipv4Addr::new(127, 0, 0, 1), port)
            .await
            .unwrap();
        light
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), light.read_to_end(&mut buf)).await;
        assert!(
            buf.starts_with(b"HTTP/1.1 200"),
            "the light client: {:?}",
            String::from_utf8_lossy(&buf)
        );
        // Now the heavy address's requests arrive, one of its connections already closed.
        let (mut ok, mut busy, mut silent) = (0, 0, 0);
        for mut s in heavy {
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut b = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut b)).await;
            match b.get(9..12) {
                Some(b"200") => ok += 1,
                Some(b"503") => busy += 1,
                _ => silent += 1,
            }
        }
        drop(others);
        eprintln!("heavy address: {ok} answered 200, {busy} 503, {silent} closed silently");
        assert_eq!(silent, 0, "a connection closed without an answer");
        assert!(
            busy >= 1,
            "one heavy connection made room for the light client"
        );
    });
}

/// A legitimate client whose request is slow to follow its connect (more than the 250 ms a
/// connection is protected for: the 5.10 TCG guest under attack) is not closed to make room
/// for a newcomer that is no lighter: the 5.10 guest's legitimate `/metrics` got `Connection
/// reset by peer`. The legitimate client connects from 127.0.0.1 and waits; a burst from 300
/// addresses, one connection each and no request yet, fills the server; every newcomer past
/// the limit would hold as many connections as the client once admitted, so it is refused
/// (503), and the client's request, sent after 400 ms, is answered 200. Every burst connection
/// gets an answer too.
#[test]
fn a_light_client_slow_to_send_keeps_its_connection_during_a_burst() {
    raise_own_fd_limit(800);
    let (_serve, port) = start_serve("1s", &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut light = connect_from(Ipv4Addr::new(127, 0, 0, 1), port)
            .await
            .unwrap();
        // Admitted, then quiet for longer than the grace of a fresh connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        let mut burst = Vec::new();
        for i in 0..300u16 {
            let src = Ipv4Addr::new(127, 0, 1 + (i / 200) as u8, 1 + (i % 200) as u8);
            burst.push(connect_from(src, port).await.unwrap());
        }
        let connected = t0.elapsed();
        // The server has admitted or refused every one (the kernel queues connects faster
        // than a TCG guest's server accepts them): then it is full.
        let until = Instant::now() + Duration::from_secs(30);
        while accept_queue(port).is_some_and(|q| q > 0) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let accepted = t0.elapsed();
        tokio::time::sleep(Duration::from_millis(100)).await;
        light
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // All at once (one after the other, the last would come after the 5 s header
        // timeout), and while the light client waits for its answer: each burst connection
        // was admitted or refused at its connect, and its header timeout (5 s) runs from
        // then (the 5.10-v1 guest under load answered the light client after 2.1 s, and 41
        // burst requests sent after that came too late).
        let tasks: Vec<_> = burst
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    let t = Instant::now();
                    // A refused one has its 503 waiting (the server may have closed since).
                    let mut b = vec![0u8; 512];
                    let n = match tokio::time::timeout(Duration::from_millis(20), s.read(&mut b))
                        .await
                    {
                        Ok(Ok(n)) => n,
                        _ => 0,
                    };
                    b.truncate(n);
                    let mut seen = String::new();
                    if n == 0 {
                        let w = s
                            .write_all(
                                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            )
                            .await;
                        let r =
                            tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut b))
                                .await;
                        seen = format!("write {w:?} after {:?}, read {r:?}", t.elapsed());
                    }
                    (b, seen)
                })
            })
            .collect();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(20), light.read_to_end(&mut buf)).await;
        let head = String::from_utf8_lossy(&buf[..buf.len().min(60)]).into_owned();
        assert!(
            buf.starts_with(b"HTTP/1.1 200"),
            "the light client's scrape: {r:?} {head:?}"
        );
        let scraped = t0.elapsed();
        let (mut ok, mut busy, mut silent) = (0, 0, 0);
        for (i, t) in tasks.into_iter().enumerate() {
            let (b, seen) = t.await.unwrap_or_default();
            match b.get(9..12) {
                Some(b"200") => ok += 1,
                Some(b"503") => busy += 1,
                _ => {
                    silent += 1;
                    if silent <= 10 {
                        eprintln!("burst connection {i} unanswered: {seen}, {} bytes", b.len());
                    }
                }
            }
        }
        eprintln!(
            "burst of 300 addresses: {ok} answered 200, {busy} 503, {silent} unanswered (connected in {connected:?}, all accepted at {accepted:?}, the light client answered at {scraped:?}, all done at {:?})",
            t0.elapsed()
        );
        assert_eq!(silent, 0, "a burst connection closed without an answer");
        assert!(ok > 0 && busy > 0, "the server filled up, then refused");
    });
}

/// The listen queue holds a burst the server has not accepted yet: std's `bind` listens with a
/// backlog of 128, and past it the 5.10 and 6.1 guests reset connections the server never saw
/// (6.1: 58 of a 500-scrape burst read `ECONNRESET` with no byte; 5.10-v1: the legitimate
/// scrape). With the server stopped (SIGSTOP) nothing is accepted, so the connects that
/// complete are what the kernel queues: 129 of 600 with std's backlog, all with memlens's.
/// Then every one of them is answered once the server runs again.
#[test]
fn the_listen_queue_holds_a_burst_the_server_has_not_accepted_yet() {
    raise_own_fd_limit(1000);
    let (serve, port) = start_serve("1s", &[]);
    let pid = serve.pid() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (connected, codes) = rt.block_on(async move {
        let tasks: Vec<_> = (0..600u16)
            .map(|i| {
                let src = Ipv4Addr::new(127, 0, 2 + (i / 200) as u8, 1 + (i % 200) as u8);
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(4), connect_from(src, port))
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                })
            })
            .collect();
        let mut socks = Vec::new();
        for t in tasks {
            if let Ok(Some(s)) = t.await {
                socks.push(s);
            }
        }
        let connected = socks.len();
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(pid, libc::SIGCONT);
        }
        let answers: Vec<_> = socks
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    let _ = s
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .await;
                    let mut b = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut b)).await;
                    b.get(9..12).map(|c| c.to_vec())
                })
            })
            .collect();
        let mut codes = (0, 0, 0);
        for a in answers {
            match a.await.ok().flatten().as_deref() {
                Some(b"200") => codes.0 += 1,
                Some(b"503") => codes.1 += 1,
                _ => codes.2 += 1,
            }
        }
        (connected, codes)
    });
    // SAFETY: kill(2) on our own child (again: a panic above must not leave it stopped).
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    eprintln!(
        "server stopped: {connected} of 600 connects completed; then {} answered 200, {} 503, {} unanswered",
        codes.0, codes.1, codes.2
    );
    assert_eq!(
        connected, 600,
        "connects the kernel queued for the stopped server"
    );
    assert_eq!(codes.2, 0, "queued connections closed without an answer");
}
