//! Answering one HTTP request: the gateway's own endpoints, or the
//! function behind the route, invoked through its pool.
//!
//! The pipeline, each step its own function: the head's size and the route
//! ([`Gateway::handle`]); the route's throttle; the body's declared size;
//! the route's authorizer (`authorize`); admission, the memory budget and
//! the body ([`crate::intake`]); the event, sized against the budget
//! (`encode`); the invocation and its answer (`invoke`, `answer`). A step
//! that ends the request returns a [`Refusal`], and `handle` turns it into
//! the one response it has.

use crate::authorize::{self, Authorizer, Context, Outcome};
use crate::budget::{Account, Budget};
use crate::connections::State;
use crate::environment::Output;
use crate::event::{self, MalformedResponse, RequestMeta};
use crate::intake::ClientBody;
use crate::intake::{self, Admitted};
use crate::metrics::{Metrics, RouteMetrics};
use crate::outbox;
use crate::pool::{Admission, Pool};
use crate::refusal::{Refusal, json};
use crate::routes::{Match, Router};
use crate::template::Throttle;
use crate::throttle::TokenBucket;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Bodies larger than this have their event's JSON measured before it is
/// written (a second pass, worth it only where the bytes matter).
const MEASURE_EVENTS_FROM: usize = 64 * 1024;

/// The client's request id header, echoed back (the gateway's own id when
/// the client sent none).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// API Gateway's name for the same id, on responses.
pub const APIGW_REQUEST_ID: HeaderName = HeaderName::from_static("apigw-requestid");

/// The client at the other end of a connection, known once for all its
/// requests.
#[derive(Debug)]
pub struct Client {
    pub addr: SocketAddr,
    /// Its address as the event's `sourceIp` writes it.
    pub ip: String,
    /// Its connection's place in the registry, where answers not yet
    /// written are counted ([`crate::outbox`]).
    pub connection: Option<Arc<State>>,
}

impl Client {
    pub fn new(addr: SocketAddr, connection: Option<Arc<State>>) -> Client {
        Client { addr, ip: addr.ip().to_string(), connection }
    }
}

/// What a gateway is made of (see `lib::run`, and `testing` for tests).
#[derive(Debug)]
pub struct Components {
    pub router: Router,
    /// One per function of `router`, the authorizers' included.
    pub pools: HashMap<Arc<str>, Arc<Pool>>,
    /// The authorizers of the routes served, by name.
    pub authorizers: HashMap<Arc<str>, Authorizer>,
    pub metrics: Metrics,
    /// The limits every route is held to, when the pod throttles.
    pub throttle: Option<Throttle>,
    /// One log line per request.
    pub access_log: bool,
    /// The port clients connect to, for the event's `x-forwarded-port`.
    pub local_port: u16,
    /// Bytes that requests may hold at once.
    pub budget: Budget,
    /// The region in route ARNs.
    pub region: String,
}

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    router: Router,
    pools: HashMap<Arc<str>, Arc<Pool>>,
    /// One bucket per route of `router`, in its order, when the template
    /// throttles.
    buckets: Vec<TokenBucket>,
    authorizers: HashMap<Arc<str>, Authorizer>,
    metrics: Metrics,
    /// Each route's metrics, in `router`'s order, then the requests no route
    /// takes: `unmatched`, `/healthz`, `/readyz`.
    counted: Vec<RouteMetrics>,
    /// Set on SIGTERM: `/readyz` fails so that traffic moves elsewhere.
    draining: AtomicBool,
    access_log: bool,
    local_port: u16,
    budget: Budget,
    region: String,
}

/// Our own JSON bodies, e.g. `{"status":"ok"}`.
#[derive(Serialize)]
struct Status<'a> {
    status: &'a str,
}

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

impl Gateway {
    pub fn new(parts: Components) -> Gateway {
        let now = Instant::now();
        let buckets = match parts.throttle {
            Some(limits) => {
                parts.router.routes().iter().map(|_| TokenBucket::new(limits, now)).collect()
            }
            None => Vec::new(),
        };
        let mut counted: Vec<RouteMetrics> =
            parts.router.routes().iter().map(|r| parts.metrics.route(&r.key)).collect();
        counted.extend(["unmatched", "/healthz", "/readyz"].map(|r| parts.metrics.route(r)));
        Gateway {
            counted,
            router: parts.router,
            pools: parts.pools,
            buckets,
            authorizers: parts.authorizers,
            metrics: parts.metrics,
            draining: AtomicBool::new(false),
            access_log: parts.access_log,
            local_port: parts.local_port,
            budget: parts.budget,
            region: parts.region,
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

    /// The metrics, for the edge's own counts.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The memory budget, shared with the Invoke API.
    pub fn budget(&self) -> &Budget {
        &self.budget
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
            _ => Refusal::NotFound.response(),
        }
    }

    /// Answers one request; never fails.
    pub async fn handle(
        &self,
        request: Request<ClientBody>,
        client: &Client,
    ) -> Response<Full<Bytes>> {
        let start = Instant::now();
        // The gateway's own id, as API Gateway makes its own: it becomes the
        // Lambda request id, which the Runtime API puts in paths, so no
        // client may choose it. The client's `x-request-id` is kept for the
        // logs and echoed back; without one, the gateway's id stands in.
        let request_id = crate::ids::request_id();
        let client_id = request.headers().get(&REQUEST_ID).cloned();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let own = self.router.routes().len();
        let (route, function, answer): (usize, &str, _) = match path.as_str() {
            _ if intake::head_size(&request) > intake::MAX_HEAD_VALUES_BYTES => {
                let refusal = intake::refuse_request(Refusal::HeaderFieldsTooLarge, request);
                (own, "", Err(refusal.await))
            }
            _ if !intake::head_is_text(&request) => {
                let refusal = intake::refuse_request(Refusal::BadRequest, request);
                (own, "", Err(refusal.await))
            }
            "/healthz" => (own + 1, "", Ok(self.own_endpoint(&path))),
            "/readyz" => (own + 2, "", Ok(self.own_endpoint(&path))),
            _ => match self.router.find(&method, &path) {
                None => (own, "", Err(intake::refuse_request(Refusal::NotFound, request).await)),
                Some(found)
                    if self.buckets.get(found.index).is_some_and(|b| !b.try_take(start)) =>
                {
                    let refusal = intake::refuse_request(Refusal::Throttled, request).await;
                    (found.index, &found.route.function, Err(refusal))
                }
                Some(found) => {
                    let answer = self.proxy(&found, start, request, client, &request_id).await;
                    (found.index, &found.route.function, answer)
                }
            },
        };
        let mut response = answer.unwrap_or_else(Refusal::response);
        // An id of hex digits and dashes is always a header value.
        let ours = HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static(""));
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, client_id.unwrap_or_else(|| ours.clone()));
        headers.insert(APIGW_REQUEST_ID, ours);
        let elapsed = start.elapsed();
        let status = response.status().as_u16();
        let counted = &self.counted[route];
        counted.answered(status, elapsed.as_secs_f64());
        if self.access_log {
            tracing::info!(
                request_id,
                client_request_id = response
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default(),
                %method,
                path,
                route = counted.route(),
                function,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        }
        response
    }

    /// The steps of a routed request, up to the function's answer.
    async fn proxy(
        &self,
        found: &Match<'_>,
        start: Instant,
        request: Request<ClientBody>,
        client: &Client,
        request_id: &str,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let function = &*found.route.function;
        let Some(pool) = self.pools.get(function).cloned() else {
            return Err(Refusal::NotFound);
        };
        let (parts, body) = request.into_parts();
        let declared = intake::declared_length(&parts);
        if declared.is_some_and(|n| n > intake::MAX_BODY_BYTES as u64) {
            return Err(intake::refuse(Refusal::PayloadTooLarge, &parts, body).await);
        }
        // The route's authorizer first, as on AWS: nothing of an unauthorized
        // request is read or held.
        let authorizer = match self.authorize(found, &parts, client, start).await {
            Ok(context) => context,
            Err(refusal) => return Err(intake::refuse(refusal, &parts, body).await),
        };
        let Admitted { admission, account, body } =
            intake::admit(&pool, &self.budget, &self.metrics, &parts, body, declared).await?;
        let meta = RequestMeta {
            request_id,
            source_ip: &client.ip,
            local_port: self.local_port,
            route_key: &found.route.key,
            path_parameters: &found.parameters,
            authorizer: authorizer.as_ref(),
            time: SystemTime::now(),
        };
        let event = event::request_event(&parts, &body, &meta);
        // Only the event travels on: the body and headers are freed now.
        drop((parts, body));
        let event = self.encode(&event, &account, request_id)?;
        // The integration's deadline counts from the request's arrival, as
        // API Gateway's does.
        let deadline =
            start.checked_add(found.route.integration_timeout).unwrap_or_else(far_future);
        let output = invoke(pool, admission, account.clone(), request_id, event, deadline).await?;
        if output == Output::OverBudget {
            self.metrics.over_budget();
        }
        // The answer's bytes stay charged to the account until it is a
        // response, and then its body's until written.
        let response = answer(output, request_id, function)?;
        let connection = client.connection.as_ref();
        Ok(response.map(|body| Full::new(outbox::hold(body, &account, connection))))
    }

    /// The event as the JSON the function is sent. Its JSON can be far
    /// larger than its body (a control byte is written as six), so for a
    /// large body it is measured first, the budget grown to what the text
    /// and its JSON hold together, and the buffer sized exactly: a Vec that
    /// doubles as it grows would hold up to twice the event, and keep that
    /// capacity while it queues. (A small event fits in the fixed share
    /// every request holds.)
    fn encode(
        &self,
        event: &ApiGatewayV2httpRequest,
        account: &Account,
        request_id: &str,
    ) -> Result<Bytes, Refusal> {
        let text = event.body.as_ref().map_or(0, String::len);
        let mut size = event::estimated_json_len(event);
        if text > MEASURE_EVENTS_FROM {
            let mut counted = ByteCount(0);
            if serde_json::to_writer(&mut counted, event).is_err() {
                return Err(Refusal::Internal);
            }
            size = counted.0;
            let missing = (text + size).saturating_sub(account.bytes());
            if !account.try_grow(missing) {
                self.metrics.over_budget();
                return Err(Refusal::OverBudget);
            }
        }
        let mut buffer = Vec::with_capacity(size);
        if let Err(e) = serde_json::to_writer(&mut buffer, event) {
            tracing::error!(request_id, error = %e, "event did not serialize");
            return Err(Refusal::Internal);
        }
        Ok(Bytes::from(buffer))
    }

    /// Runs the route's authorizer, if it has one: the context to give the
    /// function, or the refusal that ends the request.
    async fn authorize(
        &self,
        found: &Match<'_>,
        parts: &Parts,
        client: &Client,
        start: Instant,
    ) -> Result<Option<Context>, Refusal> {
        let Some(name) = &found.route.authorizer else { return Ok(None) };
        let Some(authorizer) = self.authorizers.get(name) else {
            // Start-up makes one for every route that names one.
            tracing::error!(authorizer = %name, "authorizer missing");
            return Err(Refusal::Internal);
        };
        let count = |result, source| self.metrics.authorization(name, result, source);
        let Some(identity) = authorizer.identity(&parts.headers) else {
            count("unauthorized", "none");
            return Err(Refusal::Unauthorized);
        };
        if let Some(decision) = authorizer.cached(&identity, start) {
            return match decision {
                authorize::Decision::Allowed(context) => {
                    count("allowed", "cache");
                    Ok(Some(context))
                }
                authorize::Decision::Denied => {
                    count("denied", "cache");
                    Err(Refusal::Forbidden)
                }
            };
        }
        let request_id = crate::ids::request_id();
        let meta = RequestMeta {
            request_id: &request_id,
            source_ip: &client.ip,
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
        let Ok(event) = serde_json::to_vec(&event) else { return Err(Refusal::Internal) };
        let wait_until = start + found.route.integration_timeout.min(authorize::AUTHORIZER_TIMEOUT);
        let account = self.budget.account();
        match authorizer.ask(&request_id, Bytes::from(event), account, wait_until).await {
            Outcome::Allowed(context) => {
                count("allowed", "function");
                let decision = authorize::Decision::Allowed(context.clone());
                authorizer.remember(&identity, &decision, Instant::now());
                Ok(Some(context))
            }
            Outcome::Forbidden => {
                count("denied", "function");
                authorizer.remember(&identity, &authorize::Decision::Denied, Instant::now());
                Err(Refusal::Forbidden)
            }
            Outcome::Failed(why) => {
                count("failed", "function");
                tracing::warn!(authorizer = %name, why, "authorizer failed");
                Err(Refusal::AuthorizerError)
            }
            Outcome::OverBudget => {
                count("failed", "function");
                self.metrics.over_budget();
                Err(Refusal::OverBudget)
            }
            Outcome::Unavailable(e) => {
                count("failed", "function");
                Err(pool_refusal(&e, &request_id, &authorizer.spec.function))
            }
        }
    }
}

/// Invokes `event` on `pool`, waiting at most until `deadline`. The
/// invocation is a task of its own, so that a client hanging up does not
/// cut it short (which would cost the environment), and so that one
/// outliving its integration's deadline runs on to its own end, as on
/// Lambda. The account goes with the invocation: the event's bytes stay
/// charged until it is gone and the answer's are charged as they are read,
/// even if the client is gone.
async fn invoke(
    pool: Arc<Pool>,
    admission: Admission,
    account: Account,
    request_id: &str,
    event: Bytes,
    deadline: Instant,
) -> Result<Output, Refusal> {
    let id = request_id.to_owned();
    let function = pool.function().to_owned();
    let invocation =
        tokio::spawn(async move { pool.invoke(admission, &id, event, account, deadline).await });
    match tokio::time::timeout_at(deadline, invocation).await {
        Err(_) => Err(Refusal::IntegrationTimeout),
        Ok(Ok(Ok(output))) => Ok(output),
        Ok(Ok(Err(e))) => Err(pool_refusal(&e, request_id, &function)),
        Ok(Err(e)) => {
            tracing::error!(request_id, error = %e, "invocation task failed");
            Err(Refusal::Internal)
        }
    }
}

/// The client's answer for what the function gave back.
fn answer(output: Output, request_id: &str, function: &str) -> Result<Response<Bytes>, Refusal> {
    match output {
        Output::Response(output) => match event::response(&output) {
            Ok(response) => Ok(response),
            Err(MalformedResponse(why)) => {
                tracing::warn!(request_id, function, why, "malformed function response");
                Err(Refusal::MalformedResponse)
            }
        },
        Output::OverBudget => {
            tracing::warn!(
                request_id,
                function,
                "the function's answer did not fit the memory budget"
            );
            Err(Refusal::OverBudget)
        }
        Output::Error { error_type, payload } => {
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
            Err(Refusal::FunctionError)
        }
    }
}

/// [`intake::invoke_refusal`], logging an environment that failed.
fn pool_refusal(error: &crate::pool::InvokeError, request_id: &str, function: &str) -> Refusal {
    if let crate::pool::InvokeError::Environment(e) = error {
        tracing::warn!(request_id, function, error = %e, "environment failed");
    }
    intake::invoke_refusal(error)
}

/// A deadline for a timeout too large to add to now: effectively none.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
