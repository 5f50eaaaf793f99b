//! A budget for the bytes that requests in flight and in the queue hold.
//!
//! A pod has a memory limit, and the kernel kills the whole pod (PID 1
//! and every request in flight) when it is passed. Counting requests is not
//! enough: each 6 MB body is held several times over (as read, in the
//! event's JSON, in serde's working copy), and so is each 6 MB answer of a
//! function (as read from the Runtime API, parsed, as the response's body),
//! so a few dozen of them pass a 128 MiB limit (the abuse test, run without
//! the budget, OOM-kills it). So every byte that a request makes the
//! gateway hold in proportion to what a client or a function sends is
//! charged to one byte budget, as it arrives, to the request's [`Account`]:
//!
//! * its body, as the buffer that holds it grows (so a client that declares
//!   6 MB and trickles holds what it has sent, not what it declared; a body
//!   whose declared size the whole budget could never hold is refused at
//!   once with a 413);
//! * the event's JSON, measured before it is written when the body is large;
//! * the function's answer, as the Runtime API (or the RIE's client) reads
//!   it, for itself and the copies made converting it into a response; the
//!   authorizer's answer likewise, to an account of its own.
//!
//! * the answer's body on its way out, once it is a response larger than
//!   [`REQUEST_OVERHEAD`], until the HTTP server has written it or its
//!   connection has closed ([`crate::outbox`]): a client that asks for a
//!   large answer and does not read it holds it in the gateway (the kernel's
//!   socket buffers take only part, and less when the system's TCP memory
//!   runs short), and a thousand such connections would hold a thousand
//!   answers.
//!
//! A read whose next bytes do not fit first asks the budget's [`Relief`]
//! (the public port's connections) to close connections whose answers have
//! waited longest to be read, of the address holding the most, as the
//! connection cap closes slow heads; what they held comes back as their
//! tasks end. If that cannot cover it, the request is turned away with a
//! 503, as for a full queue, and what it held is given back. What a request holds
//! whatever its size (its head, the event's other fields, its task and
//! buffers: [`REQUEST_OVERHEAD`] at most) is not charged: a connection
//! serves one request at a time, so the connection cap bounds it, and a
//! request without a body never waits on, or is refused by, the budget.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a request holds besides the bytes charged to its account, at most:
/// its head, the event's other fields, buffers. Bounded by the connection
/// cap, not charged.
pub const REQUEST_OVERHEAD: usize = 16 * 1024;

/// The bytes a body of `body` bytes may make the gateway hold at its peak:
/// as read, in the event's JSON (base64 makes it 4/3 as large), and the
/// working copy serde makes on the way.
pub fn cost(body: usize) -> usize {
    body.saturating_mul(4)
}

/// The bytes a function's answer of `payload` bytes may make the gateway
/// hold: as read, parsed, and as the response's body.
pub fn answer_cost(payload: usize) -> usize {
    payload.saturating_mul(3)
}

/// The budget a process with `limit` bytes of memory gives its requests: a
/// third of it, with at least 8 MiB. The rest is for the gateway itself,
/// its connections (each with its buffers and one request's overhead), the
/// answers on their way out, and the allocator's slack. Without a limit:
/// 256 MiB.
pub fn default_for(limit: Option<u64>) -> usize {
    match limit {
        Some(limit) => usize::try_from(limit / 3).unwrap_or(usize::MAX).max(8 << 20),
        None => 256 << 20,
    }
}

/// What can give bytes back when a read does not fit: connections whose
/// answers wait to be read ([`crate::connections::Connections`]).
pub trait Relief: Send + Sync + std::fmt::Debug {
    /// Closes connections holding answers not yet sent, enough to give
    /// back `bytes` as their tasks end, and says how many bytes that is;
    /// closes none (and says 0) if all of them together could not.
    fn relieve(&self, bytes: usize) -> usize;
}

/// How long a read waits for the bytes of the connections [`Relief`]
/// closed to come back (their tasks drop the answers at their next poll).
pub const RELIEF_WAIT: Duration = Duration::from_millis(500);

type ReliefSlot = Arc<OnceLock<Arc<dyn Relief>>>;

/// Bytes left to requests.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: usize,
    relief: ReliefSlot,
}

/// The bytes one request (or one authorizer call) holds of the budget,
/// given back when the last clone is dropped. Clones share it: the request
/// keeps one while its answer is converted, the environment one while it
/// reads the answer.
#[derive(Debug, Clone, Default)]
pub struct Account {
    charged: Option<Arc<Charged>>,
}

#[derive(Debug)]
struct Charged {
    bytes: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    relief: ReliefSlot,
}

impl Charged {
    /// Adds `more` to what is held.
    fn add(&self, more: OwnedSemaphorePermit) {
        let mut permit = self.permit.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *permit {
            Some(permit) => permit.merge(more),
            None => *permit = Some(more),
        }
    }
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Budget {
        let total = total.min(Semaphore::MAX_PERMITS);
        Budget { bytes: Arc::new(Semaphore::new(total)), total, relief: ReliefSlot::default() }
    }

    /// What reads that do not fit may ask to close connections (set once,
    /// by the public port's server).
    pub fn set_relief(&self, relief: Arc<dyn Relief>) {
        let _ = self.relief.set(relief);
    }

    /// The whole budget.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not held now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// A new account, holding nothing yet.
    pub fn account(&self) -> Account {
        let charged = Charged {
            bytes: self.bytes.clone(),
            permit: Mutex::new(None),
            relief: self.relief.clone(),
        };
        Account { charged: Some(Arc::new(charged)) }
    }
}

impl Account {
    /// An account of no budget, which every charge fits (for what is not
    /// a request's: prewarms, tests).
    pub fn unlimited() -> Account {
        Account::default()
    }

    /// Adds `bytes` to what the account holds, if that many are free now.
    pub fn try_grow(&self, bytes: usize) -> bool {
        let Some(charged) = &self.charged else { return true };
        if bytes == 0 {
            return true;
        }
        let Ok(bytes) = u32::try_from(bytes) else { return false };
        match charged.bytes.clone().try_acquire_many_owned(bytes) {
            Ok(more) => {
                charged.add(more);
                true
            }
            Err(_) => false,
        }
    }

    /// [`Account::try_grow`], or, if the bytes are not free, after closing
    /// connections whose answers wait to be read (the budget's [`Relief`])
    /// and waiting up to [`RELIEF_WAIT`] for their bytes.
    pub async fn grow(&self, bytes: usize) -> bool {
        if self.try_grow(bytes) {
            return true;
        }
        let Some(charged) = &self.charged else { return true };
        let (Some(relief), Ok(wanted)) = (charged.relief.get(), u32::try_from(bytes)) else {
            return false;
        };
        let short = bytes.saturating_sub(charged.bytes.available_permits());
        if relief.relieve(short) == 0 {
            return false;
        }
        let freed = charged.bytes.clone().acquire_many_owned(wanted);
        match tokio::time::timeout(RELIEF_WAIT, freed).await {
            Ok(Ok(more)) => {
                charged.add(more);
                true
            }
            _ => false,
        }
    }

    /// Gives back all but `bytes` of what the account holds (what is left
    /// of a request once its answer is a response: the response's body).
    pub fn keep(&self, bytes: usize) {
        let Some(charged) = &self.charged else { return };
        let mut permit = charged.permit.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(permit) = &mut *permit {
            let extra = permit.num_permits().saturating_sub(bytes);
            drop(permit.split(extra));
        }
    }

    /// A new, empty account of the same budget: for bytes that are to be
    /// given back if what they hold is thrown away (a read that fails), and
    /// otherwise moved into this one ([`Account::absorb`]).
    pub fn sibling(&self) -> Account {
        let Some(charged) = &self.charged else { return Account::unlimited() };
        let sibling = Charged {
            bytes: charged.bytes.clone(),
            permit: Mutex::new(None),
            relief: charged.relief.clone(),
        };
        Account { charged: Some(Arc::new(sibling)) }
    }

    /// Moves what `other` holds into this account.
    pub fn absorb(&self, other: Account) {
        let (Some(charged), Some(theirs)) = (&self.charged, &other.charged) else { return };
        let taken = theirs.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(taken) = taken {
            charged.add(taken);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let Some(charged) = &self.charged else { return 0 };
        let permit = charged.permit.lock().unwrap_or_else(|e| e.into_inner());
        permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

/// Why a body was not read whole.
#[derive(Debug)]
pub enum ReadError<B> {
    /// Past the limit; the rest of the body, to drain or drop.
    TooLarge(B),
    /// Past the budget; the rest of the body, likewise.
    OverBudget(B),
    /// The connection broke, the framing was wrong, or the body came too
    /// slowly ([`crate::intake::TooSlow`]): the body's own error.
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads `body` whole (at most `limit` bytes), charging `account` `cost(n)`
/// for each `n` bytes of the buffer that holds it as the buffer grows: by
/// doubling, never past the `declared` size, so that a body that only
/// trickles holds, and costs, no more than about twice what it has sent.
/// The one way the gateway reads what a client or a function sends.
pub async fn read<B>(
    mut body: B,
    limit: usize,
    declared: Option<usize>,
    account: &Account,
    cost: fn(usize) -> usize,
) -> Result<bytes::Bytes, ReadError<B>>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use bytes::Buf;
    use http_body_util::BodyExt;
    // A Vec grown with `reserve_exact`: the allocation is what was charged,
    // never a doubling past the declared size.
    let mut collected: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.into()))?;
        let Ok(mut data) = frame.into_data() else { continue };
        let needed = collected.len() + data.remaining();
        if needed > limit {
            return Err(ReadError::TooLarge(body));
        }
        if needed > collected.capacity() {
            let mut capacity = needed.max(collected.capacity() * 2).min(limit);
            if let Some(declared) = declared.filter(|d| *d >= needed) {
                capacity = capacity.min(declared);
            }
            let before = collected.capacity();
            if !account.grow(cost(capacity - before)).await {
                return Err(ReadError::OverBudget(body));
            }
            collected.reserve_exact(capacity - collected.len());
            // The allocator's rounding too, if it gave more.
            let got = collected.capacity();
            if got > capacity && !account.grow(cost(got - capacity)).await {
                return Err(ReadError::OverBudget(body));
            }
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            let n = chunk.len();
            collected.extend_from_slice(chunk);
            data.advance(n);
        }
    }
    Ok(bytes::Bytes::from(collected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_hold_and_give_back_when_the_last_clone_goes() {
        let budget = Budget::new(100);
        let a = budget.account();
        assert!(a.try_grow(60));
        let b = budget.account();
        assert!(!b.try_grow(41), "over the budget");
        let a2 = a.clone();
        assert!(a2.try_grow(40));
        assert_eq!((a.bytes(), budget.available()), (100, 0));
        assert!(!a.try_grow(1));
        drop(a);
        assert_eq!(budget.available(), 0, "a clone still holds it");
        drop(a2);
        assert_eq!(budget.available(), 100);
        assert!(b.try_grow(0) && b.bytes() == 0);
        assert!(Account::unlimited().try_grow(usize::MAX));
    }

    #[test]
    fn defaults_follow_the_memory_limit() {
        assert_eq!(default_for(Some(128 << 20)), (128 << 20) / 3);
        assert_eq!(default_for(Some(16 << 20)), 8 << 20);
        assert_eq!(default_for(None), 256 << 20);
        assert_eq!(cost(6 << 20), 24 << 20);
        assert_eq!(answer_cost(6 << 20), 18 << 20);
    }

    #[derive(Debug)]
    struct Frees(Mutex<Option<Account>>);

    impl Relief for Frees {
        fn relieve(&self, _: usize) -> usize {
            // Given back a moment later, as a closed connection's task does.
            let held = self.0.lock().unwrap().take();
            let bytes = held.as_ref().map_or(0, Account::bytes);
            tokio::spawn(async move { drop(held) });
            bytes
        }
    }

    /// A read that does not fit asks the relief, waits for what it frees,
    /// and fails when there is nothing to free; `keep` gives back the rest.
    #[tokio::test(start_paused = true)]
    async fn a_growth_that_does_not_fit_waits_for_what_the_relief_frees() {
        let budget = Budget::new(100);
        let slow = budget.account();
        assert!(slow.try_grow(80));
        budget.set_relief(Arc::new(Frees(Mutex::new(Some(slow)))));
        let fresh = budget.account();
        assert!(!fresh.try_grow(50));
        assert!(fresh.grow(50).await, "the slow reader's 80 bytes came back");
        assert_eq!((fresh.bytes(), budget.available()), (50, 50));
        let another = budget.account();
        assert!(!another.grow(60).await, "nothing left to free");
        assert_eq!(another.bytes(), 0);
        fresh.keep(20);
        assert_eq!((fresh.bytes(), budget.available()), (20, 80));
    }
}
