//! Answering one HTTP request: the gateway's own endpoints, or the
//! function behind the route, invoked through its pool.
//!
//! Status codes follow API Gateway's HTTP API where it has one: 404
//! `{"message":"Not Found"}` for no route, 413 past Lambda's 6 MB payload
//! limit, 431 past the HTTP API's 10,240 bytes of request line and header
//! values, 429 `{"message":"Too Many Requests"}` past the route's throttling,
//! 500 `{"message":"Internal Server Error"}` when the function fails or runs
//! past its `Timeout`, 503 `{"message":"Service Unavailable"}` when the
//! integration's timeout passes first. Overload is a 503 with `Retry-After`,
//! an environment that died under the request a 502.

use crate::authorize::{self, Authorizer, Context, Outcome};
use crate::budget::{self, Budget, Held};
use crate::environment::Output;
use crate::event::{self, MalformedResponse, RequestMeta};
use crate::metrics::Metrics;
use crate::pool::{InvokeError, Pool};
use crate::routes::{Match, Router};
use crate::template::Throttle;
use crate::throttle::TokenBucket;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Lambda's limit on a synchronous invocation's payload.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// The most a request line and its header values may add up to: API
/// Gateway's HTTP API quota ("Total combined size of request line and
/// header values: 10240 bytes",
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html>).
/// The pod follows it, rather than the 64 KiB its HTTP server would take, so
/// that a request the API refuses on AWS is refused here too.
pub const MAX_HEAD_VALUES_BYTES: usize = 10_240;
/// Most of a refused request's body read and thrown away before answering.
pub const DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// Longest a refused request's body is drained before answering.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);
/// An event's size besides its body: its head, request context, headers.
const EVENT_HEAD_BYTES: usize = 8 * 1024;
/// Bodies larger than this have their event's JSON measured before it is
/// written (a second pass, worth it only where the bytes matter).
const MEASURE_EVENTS_FROM: usize = 64 * 1024;

/// A writer that only counts what it is given.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
/// How long a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The request id header, set by the request-id layer when the client sent
/// none.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// API Gateway's name for the same id, on responses.
pub const APIGW_REQUEST_ID: HeaderName = HeaderName::from_static("apigw-requestid");

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    router: Router,
    pools: HashMap<Arc<str>, Arc<Pool>>,
    /// One bucket per route of `router`, in its order, when the template
    /// throttles.
    buckets: Vec<TokenBucket>,
    /// The authorizers of the routes served, by name.
    authorizers: HashMap<Arc<str>, Authorizer>,
    metrics: Metrics,
    /// Set on SIGTERM: `/readyz` fails so that traffic moves elsewhere.
    draining: AtomicBool,
    access_log: bool,
    /// The port clients connect to, for the event's `x-forwarded-port`.
    local_port: u16,
    /// Bytes that requests may hold at once.
    budget: Budget,
    /// The region in route ARNs.
    region: String,
}

/// API Gateway's error body, `{"message": "Not Found"}`.
#[derive(Serialize)]
struct ErrorMessage {
    message: String,
}

/// Our own JSON bodies, e.g. `{"status":"ok"}`.
#[derive(Serialize)]
struct Status<'a> {
    status: &'a str,
}

impl Gateway {
    /// A gateway over `pools`, one per function of `router`, each route
    /// limited by `throttle` if set.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        router: Router,
        pools: HashMap<Arc<str>, Arc<Pool>>,
        authorizers: HashMap<Arc<str>, Authorizer>,
        metrics: Metrics,
        throttle: Option<Throttle>,
        access_log: bool,
        local_port: u16,
        budget: Budget,
        region: String,
    ) -> Gateway {
        let now = Instant::now();
        let buckets = match throttle {
            Some(limits) => router.routes().iter().map(|_| TokenBucket::new(limits, now)).collect(),
            None => Vec::new(),
        };
        Gateway {
            router,
            pools,
            buckets,
            authorizers,
            metrics,
            draining: AtomicBool::new(false),
            access_log,
            local_port,
            budget,
            region,
        }
    }

    /// Makes `/readyz` fail from now on.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether every function can take a request and we are not draining.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.pools.values().all(|p| p.can_serve())
    }

    /// The pools, the authorizers' included, for start-up and shutdown.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.values()
    }

    /// `/healthz` (alive), `/readyz` (ready), and `/metrics` (Prometheus),
    /// the last only on the admin port; anything else is a 404.
    pub fn own_endpoint(&self, path: &str) -> Response<Full<Bytes>> {
        match path {
            "/healthz" => json(StatusCode::OK, &Status { status: "ok" }),
            "/readyz" if self.ready() => json(StatusCode::OK, &Status { status: "ready" }),
            "/readyz" => json(StatusCode::SERVICE_UNAVAILABLE, &Status { status: "not ready" }),
            "/metrics" => {
                for pool in self.pools.values() {
                    if let Some(bytes) = pool.max_rss_bytes() {
                        self.metrics.max_memory(pool.function(), bytes);
                    }
                }
                self.metrics.budget(self.budget.total(), self.budget.available());
                let mut response = Response::new(Full::new(Bytes::from(self.metrics.encode())));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            _ => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    /// Answers one request; never fails.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let start = Instant::now();
        // The gateway's own id, as API Gateway makes its own: it becomes the
        // Lambda request id, which the Runtime API puts in paths, so no
        // client may choose it. The client's `x-request-id` (or the one the
        // request-id layer made) is kept for the logs and echoed back.
        let request_id = new_request_id();
        let client_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let (route, function, mut response): (&str, &str, _) = match path.as_str() {
            _ if head_size(&request) > MAX_HEAD_VALUES_BYTES => {
                let (parts, body) = request.into_parts();
                let response = message(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Request Header Fields Too Large",
                );
                ("unmatched", "", refuse(response, &parts, body).await)
            }
            "/healthz" | "/readyz" => (own_route(&path), "", self.own_endpoint(&path)),
            _ => match self.router.find(&method, &path) {
                None => {
                    let (parts, body) = request.into_parts();
                    let response = message(StatusCode::NOT_FOUND, "Not Found");
                    ("unmatched", "", refuse(response, &parts, body).await)
                }
                Some(found)
                    if self.buckets.get(found.index).is_some_and(|b| !b.try_take(start)) =>
                {
                    let (parts, body) = request.into_parts();
                    let response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                    (&found.route.key, &found.route.function, refuse(response, &parts, body).await)
                }
                Some(found) => {
                    let response = self.proxy(&found, start, request, remote, &request_id).await;
                    (&found.route.key, &found.route.function, response)
                }
            },
        };
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(APIGW_REQUEST_ID, id);
        }
        let elapsed = start.elapsed();
        let status = response.status().as_u16();
        self.metrics.request(route, status, elapsed.as_secs_f64());
        if self.access_log {
            tracing::info!(
                request_id,
                client_request_id = client_id,
                %method,
                path,
                route,
                function,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        }
        response
    }

    async fn proxy(
        &self,
        found: &Match<'_>,
        start: Instant,
        request: Request<Incoming>,
        remote: SocketAddr,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        let function = &*found.route.function;
        let Some(pool) = self.pools.get(function).cloned() else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        let (parts, body) = request.into_parts();
        let declared =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return refuse(too_large(), &parts, body).await;
        }
        // The route's authorizer first, as on AWS: nothing of an unauthorized
        // request is read or held.
        let authorizer = match self.authorize(found, &parts, remote, start).await {
            Ok(context) => context,
            Err(response) => return refuse(response, &parts, body).await,
        };
        // A place in the pool and in the memory budget first: a request that
        // would be turned away is, before its body is read or held.
        let admitted = match pool.admit() {
            Ok(admitted) => admitted,
            Err(e) => return refuse(invoke_error(e, request_id, function), &parts, body).await,
        };
        let expected = declared.map_or(0, |n| n as usize);
        if budget::cost(expected) > self.budget.total() {
            // It would never fit: waiting and retrying cannot help.
            drop(admitted);
            return refuse(too_large(), &parts, body).await;
        }
        let Some(mut held) = self.budget.try_hold(budget::cost(expected)) else {
            self.metrics.over_budget();
            drop(admitted);
            return refuse(unavailable(), &parts, body).await;
        };
        let body = match tokio::time::timeout(
            BODY_TIMEOUT,
            read_body(body, expected, &self.budget, &mut held),
        )
        .await
        {
            Err(_) => return message(StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
            // The place and the bytes are given back before the rest of the
            // body is drained.
            Ok(Err(BodyError::TooLarge(rest))) => {
                drop((held, admitted));
                return refuse(too_large(), &parts, rest).await;
            }
            Ok(Err(BodyError::OverBudget(rest))) => {
                self.metrics.over_budget();
                drop((held, admitted));
                return refuse(unavailable(), &parts, rest).await;
            }
            Ok(Err(BodyError::Broken)) => return message(StatusCode::BAD_REQUEST, "Bad Request"),
            Ok(Ok(body)) => body,
        };
        let meta = RequestMeta {
            request_id,
            source_ip: remote.ip(),
            local_port: self.local_port,
            route_key: &found.route.key,
            path_parameters: &found.parameters,
            authorizer: authorizer.as_ref(),
            time: SystemTime::now(),
        };
        let event = event::request_event(&parts, &body, &meta);
        // Only the event travels on: the body and headers are freed now.
        drop((parts, body));
        // The event's JSON can be far larger than its body (a control byte
        // is written as six), so for a large body it is measured first, the
        // budget grown to what the text and its JSON hold together, and the
        // buffer sized exactly: a Vec that doubles as it grows would hold up
        // to twice the event, and keep that capacity while it queues.
        // (A small event fits in the fixed share every request holds.)
        let text = event.body.as_ref().map_or(0, String::len);
        let mut size = text + EVENT_HEAD_BYTES;
        if text > MEASURE_EVENTS_FROM {
            let mut counted = ByteCount(0);
            if serde_json::to_writer(&mut counted, &event).is_err() {
                return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
            size = counted.0;
            let missing = (budget::REQUEST_OVERHEAD + text + size).saturating_sub(held.bytes());
            if !self.budget.try_grow(&mut held, missing) {
                self.metrics.over_budget();
                return unavailable();
            }
        }
        let mut buffer = Vec::with_capacity(size);
        if let Err(e) = serde_json::to_writer(&mut buffer, &event) {
            tracing::error!(request_id, error = %e, "event did not serialize");
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
        drop(event);
        let event = Bytes::from(buffer);
        // The integration's deadline counts from the request's arrival, as
        // API Gateway's does.
        let deadline =
            start.checked_add(found.route.integration_timeout).unwrap_or_else(far_future);
        let id = request_id.to_owned();
        // A task of its own, so that a client hanging up does not cut an
        // invocation short (which would cost the environment), and so that
        // an invocation outliving its integration's deadline runs on to its
        // own end, as on Lambda. The budget is held until the event is gone,
        // even if the client is.
        let invocation = tokio::spawn(async move {
            let answer = pool.invoke(admitted, &id, event, deadline).await;
            drop(held);
            answer
        });
        let answer = match tokio::time::timeout_at(deadline, invocation).await {
            Err(_) => return integration_timeout(),
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                tracing::error!(request_id, error = %e, "invocation task failed");
                return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        match answer {
            Ok(Output::Response(output)) => match event::response(&output) {
                Ok(response) => response.map(Full::new),
                Err(MalformedResponse(why)) => {
                    tracing::warn!(request_id, function, why, "malformed function response");
                    message(StatusCode::BAD_GATEWAY, "Bad Gateway")
                }
            },
            Ok(Output::Error { error_type, payload }) => {
                // The function failed (it reported an error, its runtime
                // exited or failed to start, or it ran past its Timeout and
                // was stopped): the HTTP API's 500, as AWS documents for a
                // Lambda integration's errors
                // (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-lambda.html>).
                tracing::warn!(
                    request_id,
                    function,
                    error_type,
                    payload = %String::from_utf8_lossy(&payload),
                    "function error"
                );
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            Err(e) => invoke_error(e, request_id, function),
        }
    }
}

impl Gateway {
    /// Runs the route's authorizer, if it has one: the context to give the
    /// function, or the response that ends the request.
    async fn authorize(
        &self,
        found: &Match<'_>,
        parts: &Parts,
        remote: SocketAddr,
        start: Instant,
    ) -> Result<Option<Context>, Response<Full<Bytes>>> {
        let Some(name) = &found.route.authorizer else { return Ok(None) };
        let Some(authorizer) = self.authorizers.get(name) else {
            // Start-up makes one for every route that names one.
            tracing::error!(authorizer = %name, "authorizer missing");
            return Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
        };
        let count = |result, source| self.metrics.authorization(name, result, source);
        let Some(identity) = authorizer.identity(&parts.headers) else {
            count("unauthorized", "none");
            return Err(message(StatusCode::UNAUTHORIZED, "Unauthorized"));
        };
        if let Some(decision) = authorizer.cached(&identity, start) {
            return match decision {
                authorize::Decision::Allowed(context) => {
                    count("allowed", "cache");
                    Ok(Some(context))
                }
                authorize::Decision::Denied => {
                    count("denied", "cache");
                    Err(message(StatusCode::FORBIDDEN, "Forbidden"))
                }
            };
        }
        let request_id = new_request_id();
        let meta = RequestMeta {
            request_id: &request_id,
            source_ip: remote.ip(),
            local_port: self.local_port,
            route_key: &found.route.key,
            path_parameters: &found.parameters,
            authorizer: None,
            time: SystemTime::now(),
        };
        let route_arn = format!(
            "arn:aws:execute-api:{}:{}:{}/$default/{}{}",
            self.region,
            crate::ACCOUNT_ID,
            event::API_ID,
            parts.method,
            parts.uri.path()
        );
        let event = event::authorizer_event(parts, &meta, identity.clone(), route_arn);
        let Ok(event) = serde_json::to_vec(&event) else {
            return Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
        };
        let wait_until = start + found.route.integration_timeout.min(authorize::AUTHORIZER_TIMEOUT);
        match authorizer.ask(&request_id, Bytes::from(event), wait_until).await {
            Outcome::Allowed(context) => {
                count("allowed", "function");
                let decision = authorize::Decision::Allowed(context.clone());
                authorizer.remember(&identity, &decision, Instant::now());
                Ok(Some(context))
            }
            Outcome::Forbidden => {
                count("denied", "function");
                authorizer.remember(&identity, &authorize::Decision::Denied, Instant::now());
                Err(message(StatusCode::FORBIDDEN, "Forbidden"))
            }
            Outcome::Failed(why) => {
                count("failed", "function");
                tracing::warn!(authorizer = %name, why, "authorizer failed");
                Err(message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"))
            }
            Outcome::Unavailable(e) => {
                count("failed", "function");
                Err(invoke_error(e, &request_id, &authorizer.spec.function))
            }
        }
    }
}

/// A 503 that says when to try again: the queue or the memory budget is
/// full, or the gateway is shutting down.
fn unavailable() -> Response<Full<Bytes>> {
    let mut response = message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn too_large() -> Response<Full<Bytes>> {
    message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
}

/// Why a body was not read whole.
enum BodyError {
    /// Past Lambda's limit; the rest of the body is left to drain.
    TooLarge(Incoming),
    /// Past the memory budget (a body without `Content-Length`).
    OverBudget(Incoming),
    /// The connection broke or the framing was wrong.
    Broken,
}

/// Reads a body of at most [`MAX_BODY_BYTES`], growing `held` past the
/// `expected` bytes already held as more arrives.
async fn read_body(
    mut body: Incoming,
    expected: usize,
    budget: &Budget,
    held: &mut Held,
) -> Result<Bytes, BodyError> {
    let mut collected = BytesMut::with_capacity(expected.min(MAX_BODY_BYTES));
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(BodyError::Broken) };
        let Ok(data) = frame.into_data() else { continue };
        if collected.len() + data.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge(body));
        }
        let beyond = (collected.len() + data.len()).saturating_sub(expected.max(collected.len()));
        if beyond > 0 && !budget.try_grow(held, budget::cost(beyond) - budget::REQUEST_OVERHEAD) {
            return Err(BodyError::OverBudget(body));
        }
        collected.extend_from_slice(&data);
    }
    Ok(collected.freeze())
}

/// Sends `response` to a request whose body is left unread, the way nginx
/// does: the rest of the body is read and thrown away first (at most
/// [`DRAIN_BYTES`], for at most [`DRAIN_TIME`]), so that a client that
/// sends its whole body before it reads (Python's `requests` and `urllib`
/// do) gets the answer instead of a reset. A client that asked to be told
/// first (`Expect: 100-continue`, as curl does for large bodies) has sent
/// nothing yet and gets the answer at once.
async fn refuse(
    response: Response<Full<Bytes>>,
    parts: &Parts,
    mut body: Incoming,
) -> Response<Full<Bytes>> {
    let waits_for_continue = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits_for_continue && !body.is_end_stream() {
        let drained = tokio::time::timeout(DRAIN_TIME, async {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > DRAIN_BYTES {
                    break;
                }
            }
        });
        let _ = drained.await;
    }
    response
}

/// The integration's timeout passed before the function answered (it may
/// still be running, to its own `Timeout`). AWS documents the HTTP API's 30 s
/// limit (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html>,
/// "Maximum integration timeout") but not the status; an HTTP API answers it
/// with 503 `{"message":"Service Unavailable"}` (a REST API's
/// `INTEGRATION_TIMEOUT` would be a 504). No `Retry-After`: trying again
/// will not make the function faster.
fn integration_timeout() -> Response<Full<Bytes>> {
    message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
}

/// The response for a request the pool could not run.
fn invoke_error(error: InvokeError, request_id: &str, function: &str) -> Response<Full<Bytes>> {
    match error {
        InvokeError::Overloaded(_) | InvokeError::ShuttingDown => unavailable(),
        InvokeError::Timeout => integration_timeout(),
        InvokeError::Environment(e) => {
            tracing::warn!(request_id, function, error = %e, "environment failed");
            message(StatusCode::BAD_GATEWAY, "Bad Gateway")
        }
    }
}

/// The size API Gateway counts against [`MAX_HEAD_VALUES_BYTES`]: the
/// request line (`METHOD target HTTP/1.1`) and every header value.
fn head_size<B>(request: &Request<B>) -> usize {
    let target = request.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = request.method().as_str().len() + 1 + target + " HTTP/1.1".len();
    line + request.headers().values().map(HeaderValue::len).sum::<usize>()
}

/// A fresh request id in the UUID format API Gateway uses (random, not
/// secret: std's hasher keys are random per `RandomState`).
fn new_request_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let (a, b) = (state.hash_one(1u8), state.hash_one(2u8));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// The metrics label of one of the gateway's own endpoints.
fn own_route(path: &str) -> &'static str {
    if path == "/healthz" { "/healthz" } else { "/readyz" }
}

/// A deadline for a timeout too large to add to now: effectively none.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    // Our bodies are plain structs of strings, which always serialize.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// API Gateway's `{"message": ...}` error body.
pub fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    json(status, &ErrorMessage { message: text.to_owned() })
}
