//! The HTTP API's Lambda authorizers, run as API Gateway runs them
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html>):
//! before a protected route's function, a request without every identity
//! header is a 401 `{"message":"Unauthorized"}` and the authorizer is not
//! called; otherwise the authorizer function (in its own execution
//! environments, like any function) gets a payload 2.0 `REQUEST` event and
//! answers with a simple response. `isAuthorized: false` is a 403
//! `{"message":"Forbidden"}`; an authorizer that fails or answers something
//! else is a 500. An allowed request's function gets the authorizer's
//! `context` in `requestContext.authorizer.lambda`.
//!
//! Decisions are cached per identity value for the template's
//! `ReauthorizeEvery`, in a cache bounded in bytes, not only in entries: an
//! attacker sending a fresh 10 KB header each time evicts old entries, it
//! does not grow the pod.

use crate::budget::Account;
use crate::environment::Output;
use crate::pool::{InvokeError, Pool};
use crate::template::AuthorizerSpec;
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerSimpleResponse;
use bytes::Bytes;
use hyper::HeaderMap;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The most bytes (identity values and contexts) the decision cache of one
/// authorizer holds.
pub const CACHE_BYTES: usize = 1 << 20;
/// What an entry costs besides its key and context.
const ENTRY_OVERHEAD: usize = 96;
/// Lambda authorizers must answer within 10 s on AWS.
pub const AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(10);

/// The context an authorizer gives an allowed request.
pub type Context = HashMap<String, Value>;

/// What an authorizer said.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allowed(Context),
    Denied,
}

/// What asking the authorizer function came to.
#[derive(Debug)]
pub enum Outcome {
    /// Go on to the function, with this context.
    Allowed(Context),
    /// The authorizer said no (403).
    Forbidden,
    /// The authorizer failed or answered something else (500).
    Failed(String),
    /// Its pool could not take the request (503, as for any function).
    Unavailable(InvokeError),
    /// Its answer did not fit in the memory budget now (503).
    OverBudget,
}

/// One authorizer of the API, with its environments and its cache.
#[derive(Debug)]
pub struct Authorizer {
    pub spec: AuthorizerSpec,
    pub pool: Arc<Pool>,
    cache: Mutex<DecisionCache>,
}

impl Authorizer {
    pub fn new(spec: AuthorizerSpec, pool: Arc<Pool>) -> Authorizer {
        Authorizer { spec, pool, cache: Mutex::new(DecisionCache::new(CACHE_BYTES)) }
    }

    /// The identity values of a request, in the template's order, or `None`
    /// if one is missing or empty.
    pub fn identity(&self, headers: &HeaderMap) -> Option<Vec<String>> {
        self.spec
            .identity_headers
            .iter()
            .map(|name| {
                let values: Vec<&str> =
                    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
                let joined = values.join(",");
                (!joined.trim().is_empty()).then_some(joined)
            })
            .collect()
    }

    /// A cached decision for `identity`, if one is still fresh at `now`.
    pub fn cached(&self, identity: &[String], now: Instant) -> Option<Decision> {
        if self.spec.ttl.is_zero() {
            return None;
        }
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key(identity), now)
    }

    /// Keeps `decision` for `identity` for the template's TTL.
    pub fn remember(&self, identity: &[String], decision: &Decision, now: Instant) {
        if self.spec.ttl.is_zero() {
            return;
        }
        let expires = now + self.spec.ttl;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key(identity), decision.clone(), expires);
    }

    /// Runs the authorizer function on `event` (its JSON) and reads its
    /// simple response.
    /// The answer is charged to `account` as it is read.
    pub async fn ask(
        &self,
        request_id: &str,
        event: Bytes,
        account: Account,
        wait_until: Instant,
    ) -> Outcome {
        let admitted = match self.pool.admit() {
            Ok(admitted) => admitted,
            Err(e) => return Outcome::Unavailable(e),
        };
        let pool = self.pool.clone();
        let id = request_id.to_owned();
        // A task of its own, as for any invocation: a client that goes away
        // does not cut it short.
        let invocation =
            tokio::spawn(
                async move { pool.invoke(admitted, &id, event, account, wait_until).await },
            );
        match invocation.await {
            Ok(Ok(Output::Response(bytes))) => match decision(&bytes) {
                Some(Decision::Allowed(context)) => Outcome::Allowed(context),
                Some(Decision::Denied) => Outcome::Forbidden,
                None => Outcome::Failed(format!(
                    "not a simple response: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )),
            },
            Ok(Ok(Output::Error { error_type, .. })) => Outcome::Failed(error_type),
            Ok(Ok(Output::OverBudget)) => Outcome::OverBudget,
            Ok(Err(e)) => Outcome::Unavailable(e),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// A simple response's decision, if `bytes` is one.
pub fn decision(bytes: &[u8]) -> Option<Decision> {
    let response: ApiGatewayV2CustomAuthorizerSimpleResponse<Context> =
        serde_json::from_slice(bytes).ok()?;
    Some(if response.is_authorized {
        Decision::Allowed(response.context)
    } else {
        Decision::Denied
    })
}

/// The cache key of an identity: its values, which cannot hold a newline
/// (they come from header values).
fn key(identity: &[String]) -> String {
    identity.join("\n")
}

/// Decisions by identity, oldest evicted first once `capacity` bytes are
/// held.
#[derive(Debug)]
struct DecisionCache {
    entries: HashMap<String, (Decision, Instant, usize)>,
    /// Keys in the order they were inserted.
    order: VecDeque<String>,
    bytes: usize,
    capacity: usize,
}

impl DecisionCache {
    fn new(capacity: usize) -> DecisionCache {
        DecisionCache { entries: HashMap::new(), order: VecDeque::new(), bytes: 0, capacity }
    }

    fn get(&mut self, key: &str, now: Instant) -> Option<Decision> {
        match self.entries.get(key) {
            Some((decision, expires, _)) if *expires > now => Some(decision.clone()),
            Some(_) => {
                self.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, key: String, decision: Decision, expires: Instant) {
        let context = match &decision {
            Decision::Allowed(context) => serde_json::to_string(context).map_or(0, |s| s.len()),
            Decision::Denied => 0,
        };
        let size = 2 * key.len() + context + ENTRY_OVERHEAD;
        if size > self.capacity {
            return;
        }
        self.remove(&key);
        while self.bytes + size > self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some((_, _, freed)) = self.entries.remove(&oldest) {
                self.bytes -= freed;
            }
        }
        self.order.push_back(key.clone());
        self.entries.insert(key, (decision, expires, size));
        self.bytes += size;
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, _, freed)) = self.entries.remove(key) {
            self.bytes -= freed;
            self.order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allowed(id: &str) -> Decision {
        Decision::Allowed(HashMap::from([("keyId".to_owned(), json!(id))]))
    }

    #[test]
    fn reads_simple_responses_and_nothing_else() {
        assert_eq!(
            decision(br#"{"isAuthorized": true, "context": {"keyId": "ci"}}"#),
            Some(allowed("ci"))
        );
        assert_eq!(decision(br#"{"isAuthorized": true}"#), Some(Decision::Allowed(HashMap::new())));
        assert_eq!(
            decision(br#"{"isAuthorized": false, "context": {"x": 1}}"#),
            Some(Decision::Denied)
        );
        for bad in [&b"{}"[..], b"null", b"true", b"{\"isAuthorized\": \"yes\"}", b"not json"] {
            assert_eq!(decision(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let mut cache = DecisionCache::new(CACHE_BYTES);
        let now = Instant::now();
        cache.insert("Bearer a".into(), allowed("a"), now + Duration::from_secs(300));
        assert_eq!(cache.get("Bearer a", now + Duration::from_secs(299)), Some(allowed("a")));
        assert_eq!(cache.get("Bearer a", now + Duration::from_secs(300)), None);
        assert_eq!((cache.entries.len(), cache.bytes), (0, 0), "an expired entry is dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded_in_bytes_and_evicts_the_oldest() {
        let mut cache = DecisionCache::new(64 * 1024);
        let later = Instant::now() + Duration::from_secs(300);
        // 10 KB identities, as many as a hostile client likes.
        for i in 0..100 {
            cache.insert(format!("{i:05}{}", "x".repeat(10_000)), Decision::Denied, later);
            assert!(cache.bytes <= 64 * 1024, "{} bytes after {i}", cache.bytes);
        }
        assert_eq!(cache.entries.len(), cache.order.len());
        assert!(cache.entries.len() >= 2, "the newest are kept");
        let newest = format!("{:05}{}", 99, "x".repeat(10_000));
        assert_eq!(cache.get(&newest, Instant::now()), Some(Decision::Denied));
        let oldest = format!("{:05}{}", 0, "x".repeat(10_000));
        assert_eq!(cache.get(&oldest, Instant::now()), None);
        // Replacing an entry does not count it twice.
        let before = cache.bytes;
        cache.insert(newest.clone(), Decision::Denied, later);
        assert_eq!(cache.bytes, before);
    }
}
