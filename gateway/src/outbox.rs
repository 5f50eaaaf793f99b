//! Answers on their way out.
//!
//! Once a function's answer is a response, the HTTP server writes its body
//! as fast as the client reads it; until then the gateway holds it. A client
//! that asks for a large answer and reads slowly, or not at all, would hold
//! it for as long as the connection stays open, so a thousand of them could
//! hold a thousand answers, well past a pod's memory. So a body larger than
//! [`REQUEST_OVERHEAD`] stays charged to its request's budget account, and
//! counted on its connection, until the HTTP server drops it (written, or
//! the connection closed): the budget bounds what answers in flight hold,
//! and the connection registry can close the slowest readers when a fresh
//! request needs the bytes ([`crate::connections`]).
//!
//! The body is the same bytes, not a copy: [`Bytes::from_owner`] ties the
//! charge to the buffer's life, which hyper keeps until the last byte is
//! written.

use crate::budget::{Account, REQUEST_OVERHEAD};
use crate::connections::State;
use bytes::Bytes;
use std::sync::Arc;

/// `body`, holding its length of `account`'s budget (all else the account
/// holds is given back) and counted on `connection`, until dropped.
/// Bodies up to [`REQUEST_OVERHEAD`] go as they are: the connection cap
/// bounds what they hold.
pub fn hold(body: Bytes, account: &Account, connection: Option<&Arc<State>>) -> Bytes {
    let len = body.len();
    if len <= REQUEST_OVERHEAD {
        return body;
    }
    account.keep(len);
    if let Some(connection) = connection {
        connection.unsent(len);
    }
    Bytes::from_owner(Held { body, _account: account.clone(), connection: connection.cloned() })
}

/// A body and what it holds.
struct Held {
    body: Bytes,
    _account: Account,
    connection: Option<Arc<State>>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(connection) = &self.connection {
            connection.sent(self.body.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;

    #[test]
    fn a_large_body_holds_its_length_until_dropped_and_a_small_one_nothing() {
        let budget = Budget::new(1 << 20);
        let account = budget.account();
        assert!(account.try_grow(300_000));
        let body = hold(Bytes::from(vec![7u8; 100_000]), &account, None);
        drop(account);
        assert_eq!(budget.available(), (1 << 20) - 100_000, "the rest given back");
        // Cloned and sliced as hyper may: the last handle gives it back.
        let part = body.slice(10..20);
        drop(body);
        assert_eq!(budget.available(), (1 << 20) - 100_000);
        assert_eq!(&part[..], &[7u8; 10]);
        drop(part);
        assert_eq!(budget.available(), 1 << 20);

        let account = budget.account();
        assert!(account.try_grow(50_000));
        let small = hold(Bytes::from(vec![1u8; REQUEST_OVERHEAD]), &account, None);
        drop(account);
        assert_eq!(budget.available(), 1 << 20, "a small body holds nothing");
        drop(small);
    }
}
