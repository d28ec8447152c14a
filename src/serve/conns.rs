//! The exporter's connection table: who holds how many connections, which are idle, and
//! whom to close when a new one arrives at a limit.
//!
//! One client must not lock the scrapes out (issue 19 item 2: 300 idle connections that
//! reconnect at once gave 0 of 37 `/healthz` answers). So:
//! - each client address holds at most [`MAX_PER_ADDR`] connections, the whole server
//!   [`MAX_CONNECTIONS`];
//! - at the per-address limit, that address's connection idle longest (no request in
//!   progress, quiet for [`IDLE_GRACE`]) is closed to make room for its newcomer;
//! - at the server-wide limit, a connection of the address holding the most connections is
//!   closed (the one quiet longest, never one in a request; if all of that address's are in
//!   a request, the next heaviest address's), and only of an address that keeps more
//!   connections than the newcomer's will hold: a light client always gets in while a heavy
//!   one hoards, and the lightest client's connection is never closed for a newcomer that is
//!   no lighter;
//! - when nothing is idle the newcomer gets a `503 Service Unavailable` with `Retry-After`,
//!   never a silent close.
//!
//! Within one address, a fresh connection is protected for [`IDLE_GRACE`] so that a burst of
//! real requests is answered (200 or 503), not closed before its request was read. A lighter
//! newcomer may still take the place of a fresh connection of a heavier address (a hoarder
//! must not keep it out by reconnecting faster than that): when that connection never began a
//! request, the server answers it 503 instead of closing it silently (serve.rs).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Open connections of the whole server.
pub const MAX_CONNECTIONS: usize = 256;
/// Open connections of one client address.
pub const MAX_PER_ADDR: usize = 64;
/// A connection without a request for this long may be closed to make room.
pub const IDLE_GRACE: Duration = Duration::from_millis(250);

struct Entry {
    ip: IpAddr,
    /// The socket (owned by the connection's task, open while the entry exists; -1 in unit
    /// tests): a connection whose request is already in the socket buffer is not idle.
    fd: RawFd,
    busy: bool,
    /// Accepted, or last request finished.
    last: Instant,
    close: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    conns: HashMap<u64, Entry>,
}

/// The table (see the module docs).
pub struct Conns {
    inner: Mutex<Inner>,
    max_total: usize,
    max_per_addr: usize,
}

/// An admitted connection: removed from the table on drop. `closed` fires when another
/// connection needs its place.
pub struct Slot {
    conns: Arc<Conns>,
    id: u64,
    /// Notified when this connection is evicted.
    pub closed: Arc<Notify>,
}

impl Slot {
    /// Marks a request in progress (not evictable) or finished (idle from now).
    pub fn busy(&self, busy: bool) {
        let mut g = self.conns.lock();
        if let Some(e) = g.conns.get_mut(&self.id) {
            e.busy = busy;
            e.last = Instant::now();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.lock().conns.remove(&self.id);
    }
}

impl Conns {
    /// A table with the given limits.
    pub fn new(max_total: usize, max_per_addr: usize) -> Arc<Self> {
        Arc::new(Conns {
            inner: Mutex::new(Inner::default()),
            max_total,
            max_per_addr,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Admits a connection from `ip` (socket `fd`), closing an idle one if a limit is
    /// reached; `Err` with the reason when every connection at the limit is busy (answer 503).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, fd: RawFd) -> Result<Slot, String> {
        let now = Instant::now();
        let mut g = self.lock();
        let idle = |e: &Entry| !e.busy && now.duration_since(e.last) >= IDLE_GRACE;
        // Among the candidates, the one quiet longest whose socket holds no unread request.
        let pick = |g: &Inner, ok: &dyn Fn(&Entry) -> bool| -> Option<u64> {
            let mut c: Vec<(&u64, &Entry)> = g.conns.iter().filter(|(_, e)| ok(e)).collect();
            c.sort_by_key(|(_, e)| e.last);
            c.into_iter()
                .find(|(_, e)| !request_waiting(e.fd))
                .map(|(id, _)| *id)
        };
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        for e in g.conns.values() {
            *per_ip.entry(e.ip).or_default() += 1;
        }
        let mine = per_ip.get(&ip).copied().unwrap_or(0);
        let victim = if mine >= self.max_per_addr {
            let v = pick(&g, &|e| e.ip == ip && idle(e));
            if v.is_none() {
                return Err(format!(
                    "{ip} has {mine} connections open, all busy (limit {} per address)",
                    self.max_per_addr
                ));
            }
            v
        } else if g.conns.len() >= self.max_total {
            // The victim comes from the heaviest address that has a connection to spare: when
            // the heaviest one's are all in a request (a burst of slow scrapes), the next
            // heaviest gives one up, so a light client is not refused while others idle. Only
            // an address heavier than the newcomer will be once admitted gives one up, and
            // then any of its connections not in a request, fresh ones too (a hoarder must not
            // keep a light client out by reconnecting faster than IDLE_GRACE). Never one of an
            // address that would be no heavier than the newcomer: that frees nothing for a
            // lighter client, and a fresh connection of a one-connection client can be slow to
            // send its request (the 5.10 TCG guest under attack: more than IDLE_GRACE), which
            // reset the legitimate scrape.
            let weight = |e: &Entry| per_ip.get(&e.ip).copied().unwrap_or(0);
            let mut c: Vec<(&u64, &Entry)> = g
                .conns
                .iter()
                .filter(|(_, e)| !e.busy && weight(e) > mine + 1)
                .collect();
            c.sort_by_key(|(_, e)| (std::cmp::Reverse(weight(e)), e.last));
            let v = c
                .into_iter()
                .find(|(_, e)| !request_waiting(e.fd))
                .map(|(id, _)| *id);
            if v.is_none() {
                return Err(format!(
                    "{} connections open, all busy (limit {})",
                    g.conns.len(),
                    self.max_total
                ));
            }
            v
        } else {
            None
        };
        if let Some(v) = victim
            && let Some(e) = g.conns.remove(&v)
        {
            // notify_one keeps the permit if the task is not waiting yet.
            e.close.notify_one();
        }
        let id = g.next;
        g.next += 1;
        let closed = Arc::new(Notify::new());
        g.conns.insert(
            id,
            Entry {
                ip,
                fd,
                busy: false,
                last: now,
                close: closed.clone(),
            },
        );
        Ok(Slot {
            conns: self.clone(),
            id,
            closed,
        })
    }

    /// Open connections.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().conns.len()
    }
}

/// Whether bytes wait unread in the socket (a request the connection's task has not read
/// yet): closing it now would drop that request unanswered.
fn request_waiting(fd: RawFd) -> bool {
    if fd < 0 {
        return false;
    }
    let mut b = 0u8;
    // SAFETY: a 1-byte peek into our own buffer; `fd` stays open while its entry exists.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut b as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Conns {
        fn admit_test(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, String> {
            self.admit(ip, -1)
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    /// The 5.10 guest (TCG): the burst's address held the most connections, all in slow
    /// `/metrics` requests, and the legitimate client got 503 while 60 hoarders of another
    /// address idled.
    #[test]
    fn the_next_heaviest_address_gives_way_when_the_heaviest_is_all_busy() {
        let c = Conns::new(6, 3);
        let burst: Vec<Slot> = (0..3).map(|_| c.admit_test(ip(20)).unwrap()).collect();
        for s in &burst {
            s.busy(true);
        }
        let _hoard: Vec<Slot> = (0..2).map(|_| c.admit_test(ip(2)).unwrap()).collect();
        let _other = c.admit_test(ip(3)).unwrap();
        assert_eq!(c.len(), 6);
        // A light newcomer closes a hoarder's connection (not in a request), not refused.
        let _legit = c.admit_test(ip(1)).unwrap();
        assert_eq!(c.len(), 6);
        // A newcomer no lighter than the rest does not close their fresh connections: 503.
        assert!(c.admit_test(ip(2)).is_err());
        assert_eq!(c.len(), 6);
    }

    /// The 5.10 guest (TCG) under attack: the legitimate client's fresh connection, its
    /// request not arrived after IDLE_GRACE, was closed for a newcomer of a new address (the
    /// same one connection once admitted), and its scrape was reset.
    #[test]
    fn the_lightest_clients_connection_is_not_closed_for_a_newcomer_no_lighter() {
        let c = Conns::new(4, 3);
        let _legit = c.admit_test(ip(1)).unwrap();
        std::thread::sleep(IDLE_GRACE);
        let _others: Vec<Slot> = (2..5).map(|n| c.admit_test(ip(n)).unwrap()).collect();
        // Every address holds one: a fifth would hold as many, so it is refused.
        let e = c.admit_test(ip(5)).err().unwrap();
        assert!(e.contains("all busy"), "{e}");
        // A heavier address gives one up to a newcomer lighter than it will be, fresh or not.
        let c = Conns::new(4, 3);
        let _legit = c.admit_test(ip(1)).unwrap();
        std::thread::sleep(IDLE_GRACE);
        let _hoard: Vec<Slot> = (0..3).map(|_| c.admit_test(ip(2)).unwrap()).collect();
        let _a = c.admit_test(ip(5)).unwrap();
        let _b = c.admit_test(ip(6)).unwrap();
        // One each now: the light client's is still there, and a newcomer is refused.
        assert!(c.admit_test(ip(7)).is_err());
        assert_eq!(c.len(), 4);
        assert!(c.lock().conns.values().any(|e| e.ip == ip(1)));
    }

    #[test]
    fn idle_connections_make_room_busy_ones_get_503() {
        let c = Conns::new(4, 3);
        let a: Vec<Slot> = (0..3).map(|_| c.admit_test(ip(2)).unwrap()).collect();
        // Fresh connections are protected: the fourth from the same address is refused.
        assert!(c.admit_test(ip(2)).is_err());
        std::thread::sleep(IDLE_GRACE);
        // Idle now: the oldest makes room for the newcomer of the same address.
        let _n = c.admit_test(ip(2)).unwrap();
        assert_eq!(c.len(), 3);
        // Another address at the global limit: the heaviest address's idle one goes, even a
        // fresh one when the newcomer is lighter.
        let _b = c.admit_test(ip(3)).unwrap();
        assert_eq!(c.len(), 4);
        let _d = c.admit_test(ip(4)).unwrap();
        assert_eq!(c.len(), 4);
        let _e = c.admit_test(ip(5)).unwrap();
        assert_eq!(c.len(), 4);
        // All busy: refused with a reason.
        for s in &a {
            s.busy(true);
        }
        let c2 = Conns::new(1, 1);
        let s = c2.admit_test(ip(2)).unwrap();
        s.busy(true);
        std::thread::sleep(IDLE_GRACE);
        let e = c2.admit_test(ip(5)).err().unwrap();
        assert!(e.contains("all busy"), "{e}");
        drop(s);
        assert!(c2.admit_test(ip(5)).is_ok());
    }
}
