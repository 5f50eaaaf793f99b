//! The connections a port holds, and who gives way when they are too many.
//!
//! Behind an L4 LoadBalancer nothing stands between a client and the
//! gateway, so the gateway itself must keep a flood of slow clients from
//! shutting fresh ones out. A connection costs the process memory (hyper's
//! buffers, a task) whether or not it ever sends a request, so the count is
//! capped. What happens at the cap is the defence: a slowloris client
//! trickles its request head for as long as the head timeout allows, and if
//! new connections simply waited for a place, a few thousand such clients
//! would hold every place and a fresh client would wait seconds in the
//! kernel's backlog.
//!
//! So, as Envoy's overload manager does when a resource runs short, the
//! connections that are doing nothing useful go first: when a connection
//! arrives at the cap, the one that has waited longest for a request head
//! (trickling one, or idle between keep-alive requests) or for the rest of
//! a request's body (trickling one, or one refused and being drained) is
//! closed to make room, choosing among the connections of the client
//! address that holds the most of them, so that one machine's flood is paid
//! for by that machine's own connections. A body must also keep a minimum
//! rate ([`crate::intake::ClientBody`]). A connection whose request is with
//! the gateway (its authorizer, its queue, its function) is never chosen.
//! Only when every connection is serving such a request does a new one
//! wait, as before, in the kernel's backlog.
//!
//! Clients behind one NAT share an address, and so share the blame in a
//! flood from behind it. Behind a Kubernetes LoadBalancer the gateway sees
//! client addresses only with `externalTrafficPolicy: Local` (the manifests
//! set it); with `Cluster`, every connection comes from a node's address and
//! the choice falls back to the oldest waiting connection of all.
//!
//! The same registry relieves the memory budget ([`crate::budget::Relief`]):
//! a connection whose answer has been handed to the HTTP server and not yet
//! read by its client holds that answer ([`crate::outbox`]), and a client
//! that never reads would hold it until the connection closes. When a read
//! does not fit the budget, connections holding answers that have waited
//! at least [`SLOW_ANSWER`] are closed, of the address holding the most
//! such bytes first, its longest waiting first, until what they hold covers
//! what is missing; a fresh request then fits, and the slow readers pay.
//!
//! Memory: the registry keeps, per open connection, one entry (an address,
//! two words of state, a sender; under 100 bytes), so at the cap of `cap`
//! connections it holds `cap` entries; each connection's own buffers are
//! bounded by the HTTP server's settings ([`crate::server`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// The open connections of one port, at most `cap` of them.
#[derive(Debug)]
pub struct Connections {
    cap: usize,
    /// When the registry was made: the origin of the states' clocks.
    epoch: Instant,
    inner: Mutex<Inner>,
    wake: Arc<Wake>,
    /// Where closing for the memory budget is counted, if anywhere.
    metrics: OnceLock<crate::metrics::Metrics>,
}

/// How a new connection waiting for room learns of it: a connection ended,
/// or one went back to waiting for its client (and so may be closed).
#[derive(Debug, Default)]
struct Wake {
    notify: Notify,
    /// Whether a new connection waits for room now.
    blocked: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

impl Inner {
    /// Takes connection `id` out of the registry and tells it to close
    /// (its task ends on its own, and gives back what it held).
    fn close(&mut self, id: u64) -> Option<Entry> {
        let mut entry = self.open.remove(&id)?;
        if let Some(close) = entry.close.take() {
            let _ = close.send(());
        }
        Some(entry)
    }
}

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    state: Arc<State>,
    /// Closes the connection when sent (or dropped).
    close: Option<oneshot::Sender<()>>,
}

/// What a connection is doing: serving a request, or waiting for a
/// client (a request's head, or the rest of its body) since some time.
/// Written by the connection on each request, without a lock.
#[derive(Debug)]
pub struct State {
    /// Microseconds since the registry's epoch at which the connection
    /// began waiting for its client (a head, or a body), plus one; `0`
    /// while it serves a request.
    waiting_since: AtomicU64,
    /// Bytes of answers handed to the HTTP server and not yet written.
    unsent: AtomicUsize,
    epoch: Instant,
    wake: Arc<Wake>,
}

/// How long an answer must have waited to be read before its connection
/// may be closed to relieve the memory budget: a client on a fair link
/// reads an answer of this API well within it.
pub const SLOW_ANSWER: Duration = Duration::from_secs(1);

impl State {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    /// A request's head has arrived: the connection is busy.
    pub fn serving(&self) {
        self.waiting_since.store(0, Ordering::Relaxed);
    }

    /// The request is answered: the connection waits for the next head.
    pub fn waiting(&self) {
        self.waiting_since.store(self.now(), Ordering::Relaxed);
        if self.wake.blocked.load(Ordering::Relaxed) {
            self.wake.notify.notify_one();
        }
    }

    /// Marks the connection serving until the guard is dropped (the answer
    /// given, or the request's future dropped or panicked).
    pub fn serving_until_dropped(self: &Arc<Self>) -> Serving {
        self.serving();
        Serving(self.clone())
    }

    /// The request's body is being read: the connection may give way, as
    /// one waiting for a head may, until the guard is dropped (the body
    /// read whole, refused or dropped). A client that trickles its body
    /// holds its place no better than one that trickles its head.
    pub fn reading_body(self: &Arc<Self>) -> ReadingBody {
        self.waiting();
        ReadingBody(self.clone())
    }

    /// `bytes` more of an answer held for the client until written; given
    /// back by [`State::sent`].
    pub fn unsent(&self, bytes: usize) {
        self.unsent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `bytes` of an answer written (or dropped with the connection).
    pub fn sent(&self, bytes: usize) {
        self.unsent.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Since when it has waited for a head (microseconds after the epoch),
    /// if it does.
    fn waiting_since(&self) -> Option<u64> {
        match self.waiting_since.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

/// A connection serving a request; waiting again when dropped.
#[derive(Debug)]
pub struct Serving(Arc<State>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.waiting();
    }
}

/// A connection reading a request's body; serving again when dropped.
#[derive(Debug)]
pub struct ReadingBody(Arc<State>);

impl Drop for ReadingBody {
    fn drop(&mut self) {
        self.0.serving();
    }
}

/// A connection's place: it gives the place back when dropped.
#[derive(Debug)]
pub struct Place {
    id: u64,
    connections: Arc<Connections>,
    /// The connection's state, for its requests to update.
    pub state: Arc<State>,
    /// Resolves when the connection is chosen to give way.
    pub closed: oneshot::Receiver<()>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
        self.connections.wake.notify.notify_one();
    }
}

/// Why a place was made, for the caller's logs and metrics.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    /// There was room.
    Room,
    /// A connection waiting for a head or a body was closed to make room.
    Evicted { ip: IpAddr, waited_ms: u64 },
}

impl Connections {
    /// A registry of at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
            wake: Arc::new(Wake::default()),
            metrics: OnceLock::new(),
        })
    }

    /// Counts the connections closed for the memory budget in `metrics`.
    pub fn count_in(&self, metrics: crate::metrics::Metrics) {
        let _ = self.metrics.set(metrics);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until a connection from `ip` may be served: at once below the
    /// cap; at the cap, once a waiting connection has been told to close
    /// (see the module's doc), or, if every connection is serving a
    /// request, once one ends.
    pub async fn admit(self: &Arc<Self>, ip: IpAddr) -> (Place, Admitted) {
        let mut how = Admitted::Room;
        loop {
            // Registered before looking, so that an end in between is seen.
            let freed = self.wake.notify.notified();
            {
                let mut inner = self.lock();
                if inner.open.len() >= self.cap
                    && let Some(evicted) = self.evict(&mut inner)
                {
                    how = evicted;
                }
                // The evicted connection leaves the registry at once (its
                // task ends on its own), so there is room now if there was
                // a connection to evict.
                if inner.open.len() < self.cap {
                    let id = inner.next_id;
                    inner.next_id += 1;
                    let state = Arc::new(State {
                        waiting_since: AtomicU64::new(0),
                        unsent: AtomicUsize::new(0),
                        epoch: self.epoch,
                        wake: self.wake.clone(),
                    });
                    state.waiting();
                    let (close, closed) = oneshot::channel();
                    inner.open.insert(id, Entry { ip, state: state.clone(), close: Some(close) });
                    let place = Place { id, connections: self.clone(), state, closed };
                    self.wake.blocked.store(false, Ordering::Relaxed);
                    return (place, how);
                }
                // Every connection serves a request: wait until one ends or
                // goes back to waiting for its client.
                self.wake.blocked.store(true, Ordering::Relaxed);
            }
            freed.await;
        }
    }

    /// Closes the connection that has waited longest for a head, among
    /// those of the address with the most connections waiting (of
    /// addresses with as many, the one whose oldest has waited longest);
    /// `None` if no connection waits.
    fn evict(&self, inner: &mut Inner) -> Option<Admitted> {
        // Per address: connections waiting, and the oldest one's time.
        let mut per_ip: HashMap<IpAddr, (usize, u64)> = HashMap::new();
        for entry in inner.open.values() {
            if let Some(since) = entry.state.waiting_since() {
                let (count, oldest) = per_ip.entry(entry.ip).or_insert((0, u64::MAX));
                *count += 1;
                *oldest = (*oldest).min(since);
            }
        }
        let (&ip, _) = per_ip
            .iter()
            .max_by_key(|(_, (count, oldest))| (*count, std::cmp::Reverse(*oldest)))?;
        let (&id, since) = inner
            .open
            .iter()
            .filter(|(_, e)| e.ip == ip)
            .filter_map(|(id, e)| Some((id, e.state.waiting_since()?)))
            .min_by_key(|(_, since)| *since)?;
        let entry = inner.close(id)?;
        let waited_ms = entry.state.now().saturating_sub(since) / 1000;
        Some(Admitted::Evicted { ip, waited_ms })
    }
}

/// A connection holding an answer that has waited to be read since `since`.
struct SlowAnswer {
    since: u64,
    id: u64,
    held: usize,
}

impl crate::budget::Relief for Connections {
    fn relieve(&self, bytes: usize) -> usize {
        let mut inner = self.lock();
        // The latest time (as `waiting_since` counts) a slow answer began.
        let Some(oldest) = self.epoch.elapsed().checked_sub(SLOW_ANSWER) else { return 0 };
        let oldest = oldest.as_micros() as u64 + 1;
        // Connections whose answers have waited at least SLOW_ANSWER: per
        // address, the bytes they hold, and each one's.
        let mut per_ip: HashMap<IpAddr, (usize, Vec<SlowAnswer>)> = HashMap::new();
        for (&id, entry) in &inner.open {
            let held = entry.state.unsent.load(Ordering::Relaxed);
            match entry.state.waiting_since() {
                Some(since) if held > 0 && since <= oldest => {
                    let (total, list) = per_ip.entry(entry.ip).or_default();
                    *total += held;
                    list.push(SlowAnswer { since, id, held });
                }
                _ => {}
            }
        }
        if per_ip.values().map(|(total, _)| total).sum::<usize>() < bytes {
            return 0;
        }
        let mut order: Vec<_> = per_ip.into_values().collect();
        order.sort_by_key(|(total, _)| std::cmp::Reverse(*total));
        let (mut freed, mut closed) = (0, 0);
        'closing: for (_, mut list) in order {
            list.sort_unstable_by_key(|answer| answer.since);
            for SlowAnswer { id, held, .. } in list {
                if freed >= bytes {
                    break 'closing;
                }
                if inner.close(id).is_some() {
                    freed += held;
                    closed += 1;
                }
            }
        }
        if let Some(metrics) = self.metrics.get() {
            metrics.closed_for_memory(closed);
        }
        tracing::debug!(closed, freed, "closed slow readers' connections for the memory budget");
        // Their places are free now, as for an eviction at the cap.
        self.wake.notify.notify_one();
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_cap_every_connection_gets_a_place() {
        let connections = Connections::new(3);
        let mut places = Vec::new();
        for _ in 0..3 {
            let (place, how) = connections.admit(ip(1)).await;
            assert_eq!(how, Admitted::Room);
            places.push(place);
        }
        assert_eq!(connections.len(), 3);
        drop(places);
        assert!(connections.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_waiting_connection_of_the_biggest_holder_gives_way() {
        let connections = Connections::new(4);
        // A client's connection, then an attacker's three trickling heads.
        let (mut client, _) = connections.admit(ip(1)).await;
        tokio::time::advance(Duration::from_millis(100)).await;
        let (mut first, _) = connections.admit(ip(2)).await;
        let (mut second, _) = connections.admit(ip(2)).await;
        tokio::time::advance(Duration::from_millis(100)).await;
        let (mut third, _) = connections.admit(ip(2)).await;
        tokio::time::advance(Duration::from_millis(300)).await;
        // The client's connection has waited longest of all (500 ms), but
        // its address holds one connection, the attacker's three: the
        // attacker's oldest gives way.
        let (_fresh, how) = connections.admit(ip(3)).await;
        assert!(
            matches!(how, Admitted::Evicted { ip, waited_ms: 400 } if ip == self::ip(2)),
            "{how:?}"
        );
        let told = [first.closed.try_recv().is_ok(), second.closed.try_recv().is_ok()];
        assert_eq!(told.iter().filter(|t| **t).count(), 1, "one of the attacker's two oldest");
        assert!(third.closed.try_recv().is_err(), "the attacker's newest stays");
        assert!(client.closed.try_recv().is_err(), "the client is left alone");
        assert_eq!(connections.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_serving_a_request_is_never_evicted_and_a_newcomer_waits_for_one_to_end() {
        let connections = Connections::new(2);
        let (a, _) = connections.admit(ip(1)).await;
        let (b, _) = connections.admit(ip(1)).await;
        a.state.serving();
        b.state.serving();
        let waiting = tokio::spawn({
            let connections = connections.clone();
            async move { connections.admit(ip(2)).await.1 }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "no place while both serve");
        // One finishes its request and waits for the next: the newcomer
        // takes its place at once, though no connection has ended.
        b.state.waiting();
        let admitted = tokio::time::timeout(Duration::from_millis(1), waiting).await;
        assert!(
            matches!(admitted, Ok(Ok(Admitted::Evicted { .. }))),
            "the newcomer waited for a connection to end: {admitted:?}"
        );
        drop((a, b));
    }

    /// Many addresses with one connection each (a botnet, an IPv6 range):
    /// the one that has waited longest goes, never a newcomer.
    #[tokio::test(start_paused = true)]
    async fn among_addresses_holding_as_many_the_longest_waiting_goes() {
        let connections = Connections::new(8);
        let mut places = Vec::new();
        for last in 1..=8 {
            places.push(connections.admit(ip(last)).await.0);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        let (_new, how) = connections.admit(ip(9)).await;
        assert_eq!(how, Admitted::Evicted { ip: ip(1), waited_ms: 80 });
        assert!(places[0].closed.try_recv().is_ok());
        assert!(places[1..].iter_mut().all(|p| p.closed.try_recv().is_err()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_back_to_waiting_after_a_request_can_be_evicted() {
        let connections = Connections::new(1);
        let (mut a, _) = connections.admit(ip(1)).await;
        a.state.serving();
        tokio::time::advance(Duration::from_secs(1)).await;
        a.state.waiting();
        tokio::time::advance(Duration::from_millis(20)).await;
        let (_b, how) = connections.admit(ip(2)).await;
        assert_eq!(how, Admitted::Evicted { ip: ip(1), waited_ms: 20 });
        assert!(a.closed.try_recv().is_ok());
    }

    /// When the budget runs short, the connections holding answers their
    /// clients have not read for SLOW_ANSWER give way, the biggest holder's
    /// oldest first, and only as many as cover what is missing; answers
    /// handed over just now and idle connections are left alone.
    #[tokio::test(start_paused = true)]
    async fn a_short_budget_closes_the_slowest_readers_of_the_biggest_holder() {
        use crate::budget::Relief;
        let connections = Connections::new(16);
        let (mut idle, _) = connections.admit(ip(1)).await;
        let (mut reader, _) = connections.admit(ip(1)).await;
        reader.state.unsent(300);
        let mut attacker = Vec::new();
        for _ in 0..3 {
            let (place, _) = connections.admit(ip(2)).await;
            place.state.unsent(200);
            attacker.push(place);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        // Nothing has waited a second yet.
        assert_eq!(connections.relieve(100), 0);
        tokio::time::advance(SLOW_ANSWER).await;
        let (mut fresh, _) = connections.admit(ip(3)).await;
        fresh.state.unsent(1000);
        // More than all slow answers hold together: nobody is closed.
        assert_eq!(connections.relieve(1000), 0);
        assert_eq!(connections.len(), 6);
        // 300 missing: the attacker (600 bytes) pays, oldest first, two
        // connections' worth.
        assert_eq!(connections.relieve(300), 400);
        let closed: Vec<bool> = attacker.iter_mut().map(|p| p.closed.try_recv().is_ok()).collect();
        assert_eq!(closed, [true, true, false]);
        assert!(reader.closed.try_recv().is_err() && idle.closed.try_recv().is_err());
        assert!(fresh.closed.try_recv().is_err(), "its answer is not a second old");
        assert_eq!(connections.len(), 4);
        // A written answer is no longer held.
        reader.state.sent(300);
        attacker[2].state.sent(200);
        assert_eq!(connections.relieve(1), 0);
    }
}
