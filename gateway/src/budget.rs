//! A budget for the bytes that requests in flight and in the queue hold.
//!
//! A pod has a memory limit, and the kernel kills the whole pod (PID 1
//! and every request in flight) when it is passed. Counting requests is not
//! enough: each 6 MB body is held several times over (as read, in the
//! event's JSON, in serde's working copy), so a few dozen of them pass a
//! 128 MiB limit (the abuse test, run without the budget, OOM-kills it).
//! So each request holds a share of a byte budget for as long as its body
//! and event live: taken before the body is read where `Content-Length`
//! says how much is coming, and grown while it is read where it does not.
//! A request that does not fit is turned away with a 503, as for a full
//! queue, before it costs anything.
//!
//! What a request costs is [`cost`]: its body held as read, the event's JSON
//! text that carries it (base64 makes it 4/3 as large), and the working copy
//! that serde makes of the body on the way, plus a fixed share for its head
//! and the event's other fields.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What every request holds besides its body: its head, the event's other
/// fields, buffers.
pub const REQUEST_OVERHEAD: usize = 16 * 1024;

/// The bytes a request with a body of `body` bytes may hold at its peak.
pub fn cost(body: usize) -> usize {
    REQUEST_OVERHEAD.saturating_add(body.saturating_mul(4))
}

/// The budget a process with `limit` bytes of memory gives its requests: a
/// third of it, with at least 8 MiB. The rest is for the gateway itself,
/// its connections' buffers, the functions' answers on their way out, and
/// the allocator's slack. Without a limit: 256 MiB.
pub fn default_for(limit: Option<u64>) -> usize {
    match limit {
        Some(limit) => usize::try_from(limit / 3).unwrap_or(usize::MAX).max(8 << 20),
        None => 256 << 20,
    }
}

/// Bytes left to requests.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// A request's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Budget {
        let total = total.min(Semaphore::MAX_PERMITS);
        Budget { bytes: Arc::new(Semaphore::new(total)), total }
    }

    /// The whole budget.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not held now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// `bytes` of the budget, if that many are free now.
    pub fn try_hold(&self, bytes: usize) -> Option<Held> {
        let mut held = Held { permit: None };
        self.try_grow(&mut held, bytes).then_some(held)
    }

    /// Adds `bytes` to what `held` holds, if that many are free now.
    pub fn try_grow(&self, held: &mut Held, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(bytes) = u32::try_from(bytes) else { return false };
        match self.bytes.clone().try_acquire_many_owned(bytes) {
            Ok(more) => {
                match &mut held.permit {
                    Some(permit) => permit.merge(more),
                    None => held.permit = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }
}

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_gives_back() {
        let budget = Budget::new(100);
        let mut a = budget.try_hold(60).expect("fits");
        assert!(budget.try_hold(41).is_none(), "over the budget");
        assert!(budget.try_grow(&mut a, 40));
        assert_eq!((a.bytes(), budget.available()), (100, 0));
        assert!(!budget.try_grow(&mut a, 1));
        drop(a);
        assert_eq!(budget.available(), 100);
        assert!(budget.try_hold(0).is_some_and(|h| h.bytes() == 0));
    }

    #[test]
    fn defaults_follow_the_memory_limit() {
        assert_eq!(default_for(Some(128 << 20)), (128 << 20) / 3);
        assert_eq!(default_for(Some(16 << 20)), 8 << 20);
        assert_eq!(default_for(None), 256 << 20);
        assert_eq!(cost(6 << 20), REQUEST_OVERHEAD + (24 << 20));
    }
}
