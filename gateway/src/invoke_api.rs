//! Lambda's Invoke API, on the admin port: a function called by name, as
//! AWS SDKs, `aws lambda invoke` and `cargo lambda invoke` call it, for the
//! services of a cluster that call functions as they do on AWS.
//!
//! `POST /2015-03-31/functions/{FunctionName}/invocations`, where the name
//! is the function's logical id in the template (`HelloFunction`), its
//! binary's name (`hello`), or its ARN, whole or partial, with no qualifier
//! or `$LATEST` (a pod runs one version). Headers:
//!
//! * `X-Amz-Invocation-Type`: `RequestResponse` (the default: the function's
//!   output is the body, with a 200 even for a function error, which
//!   `X-Amz-Function-Error: Unhandled` marks, as on Lambda), `Event` (a 202
//!   once the payload, at most 1 MB, is queued: [`crate::events`]) or
//!   `DryRun` (a 204 when the function exists).
//! * `X-Amz-Log-Type`: `None`, or `Tail`: the last 4 KB of the
//!   invocation's output (with Lambda's `START`, `END` and `REPORT` lines),
//!   base64, in `X-Amz-Log-Result` ([`crate::logs::Tail`]).
//! * `X-Amz-Client-Context`: base64 of a JSON object, at most 3,583 bytes,
//!   handed to the runtime decoded, as `Lambda-Runtime-Client-Context`.
//!
//! The payload must be JSON (or empty), at most 6 MB. An invocation here is
//! one more request to the function's pool: it takes a place in the same
//! queue (reserved concurrency included) and its bytes are charged to the
//! same memory budget as the HTTP API's requests, so the two doors share one
//! set of limits. It waits for an environment at most the function's
//! `Timeout`, then runs up to its `Timeout` as any invocation does.
//!
//! Errors are Lambda's: its status, its `X-Amzn-ErrorType`, and its body
//! (`{"Type":"User","message":...}`), which the SDKs parse into their
//! exception types ([`ApiError`]).
//!
//! Why the admin port: it is the cluster's door (the NetworkPolicy and the
//! LoadBalancer's Service keep it inside), and an Invoke API on the public
//! port would let anyone on the internet call any function, the
//! authorizers' included, past the routes' authorizers and throttling.

use crate::budget::Budget;
use crate::environment::Output;
use crate::events::{self, Queue};
use crate::intake::ClientBody;
use crate::intake::{self, Admitted};
use crate::metrics::{Metrics, RouteMetrics};
use crate::outbox;
use crate::pool::{InvokeError, Pool};
use crate::refusal::Refusal;
use crate::signature::{AuthError, Claim, Verifier};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// The path of every Invoke API request starts so.
pub const PREFIX: &str = "/2015-03-31/functions/";
/// Invoke API calls a pod serves at once. The admin port holds at most
/// `server::ADMIN_CONNECTIONS` (128) connections, and a connection in a
/// call is never evicted: without this bound, 128 long calls from inside
/// the cluster would leave the kubelet's liveness probe (on the same port)
/// waiting, and the pod restarted. Past it, a 429.
pub const MAX_CONCURRENT_CALLS: usize = 96;
/// The most `X-Amz-Client-Context` may hold, base64 included (Lambda's).
pub const MAX_CLIENT_CONTEXT_BYTES: usize = 3_583;

const INVOCATION_TYPE: HeaderName = HeaderName::from_static("x-amz-invocation-type");
const LOG_TYPE: HeaderName = HeaderName::from_static("x-amz-log-type");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("x-amz-client-context");
const FUNCTION_ERROR: HeaderName = HeaderName::from_static("x-amz-function-error");
const LOG_RESULT: HeaderName = HeaderName::from_static("x-amz-log-result");
const EXECUTED_VERSION: HeaderName = HeaderName::from_static("x-amz-executed-version");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
/// Lambda's request id header, on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// One function the Invoke API can call.
#[derive(Debug, Clone)]
pub struct Target {
    pub pool: Arc<Pool>,
    /// Its asynchronous invocations.
    pub events: Arc<Queue>,
}

/// The Invoke API of the functions a pod runs.
#[derive(Debug)]
pub struct InvokeApi {
    /// Each function by every name it answers to but its ARN.
    by_name: HashMap<String, Target>,
    /// Who may call ([`crate::signature`]).
    verifier: Verifier,
    budget: Budget,
    metrics: Metrics,
    counted: RouteMetrics,
    region: String,
    access_log: bool,
    /// Places for calls in progress ([`MAX_CONCURRENT_CALLS`]).
    calls: tokio::sync::Semaphore,
}

/// How the caller asked for the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse,
    DryRun,
    Event,
}

/// Every answer of the Invoke API that is not the function's: Lambda's
/// error types, each with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 404: no function by that name (or qualifier) in this pod.
    ResourceNotFound(String),
    /// 404: not an operation of the Invoke API.
    UnknownOperation,
    /// 400: a header's value is not one Lambda allows.
    Validation(String),
    /// 400: a parameter Lambda knows, with a value it refuses, or one the
    /// pod does not serve yet.
    InvalidParameterValue(String),
    /// 400: the payload is not JSON, or did not arrive whole.
    InvalidRequestContent(String),
    /// 413: the payload is over this many bytes (6 MB; 1 MB for an
    /// event).
    RequestTooLarge(usize),
    /// 408: the payload did not arrive within 10 s.
    RequestTimeout,
    /// 429: no room now (every environment busy and the queue full, or the
    /// memory budget full): retry after a second.
    TooManyRequests(&'static str),
    /// 5xx: the pod's failure, not the caller's.
    Service(StatusCode, &'static str),
    /// 403: the call is not signed by one of the pod's keys, as AWS
    /// answers it.
    Auth(AuthError),
}

/// The body of an error of AWS's front door (a signature refused).
#[derive(Serialize)]
struct AuthBody<'a> {
    message: &'a str,
}

/// Lambda's error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    message: &'a str,
    #[serde(rename = "Reason", skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::ResourceNotFound(_) | ApiError::UnknownOperation => StatusCode::NOT_FOUND,
            ApiError::Validation(_)
            | ApiError::InvalidParameterValue(_)
            | ApiError::InvalidRequestContent(_) => StatusCode::BAD_REQUEST,
            ApiError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Service(status, _) => *status,
            ApiError::Auth(_) => StatusCode::FORBIDDEN,
        }
    }

    /// `X-Amzn-ErrorType`: the exception an SDK raises.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::UnknownOperation => "UnknownOperationException",
            ApiError::Validation(_) => "ValidationException",
            ApiError::InvalidParameterValue(_) => "InvalidParameterValueException",
            ApiError::InvalidRequestContent(_) => "InvalidRequestContentException",
            ApiError::RequestTooLarge(_) => "RequestTooLargeException",
            ApiError::RequestTimeout => "RequestTimeoutException",
            ApiError::TooManyRequests(_) => "TooManyRequestsException",
            ApiError::Service(..) => "ServiceException",
            ApiError::Auth(AuthError::Missing) => "MissingAuthenticationTokenException",
            ApiError::Auth(AuthError::Incomplete(_)) => "IncompleteSignatureException",
            ApiError::Auth(AuthError::UnknownKey) => "UnrecognizedClientException",
            ApiError::Auth(_) => "InvalidSignatureException",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::ResourceNotFound(what) => format!("Function not found: {what}"),
            ApiError::UnknownOperation => "not an operation of the Invoke API".to_owned(),
            ApiError::Validation(why)
            | ApiError::InvalidParameterValue(why)
            | ApiError::InvalidRequestContent(why) => why.clone(),
            // Lambda's wording, with its limit.
            ApiError::RequestTooLarge(limit) => format!(
                "Request must be smaller than {limit} bytes for the InvokeFunction operation"
            ),
            ApiError::RequestTimeout => "the payload did not arrive within 10 s".to_owned(),
            ApiError::TooManyRequests(why) | ApiError::Service(_, why) => (*why).to_owned(),
            ApiError::Auth(AuthError::Missing) => "Missing Authentication Token".to_owned(),
            ApiError::Auth(AuthError::UnknownKey) => {
                "The security token included in the request is invalid.".to_owned()
            }
            ApiError::Auth(AuthError::Mismatch) => "The request signature we calculated does not \
                match the signature you provided. Check your AWS Secret Access Key and signing \
                method. Consult the service documentation for details."
                .to_owned(),
            ApiError::Auth(
                AuthError::Incomplete(why) | AuthError::WrongScope(why) | AuthError::Expired(why),
            ) => why.clone(),
        }
    }

    /// The one response for this error.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let kind = if self.status().is_server_error() { "Service" } else { "User" };
        let message = self.message();
        let reason = match self {
            ApiError::TooManyRequests(_) => Some("ConcurrentInvocationLimitExceeded"),
            _ => None,
        };
        let mut response = match self {
            // AWS's front door answers these before Lambda does, in its own
            // shape: `{"message": ...}` (botocore reads the error's code from
            // `X-Amzn-ErrorType`, its message from either shape).
            ApiError::Auth(_) => {
                crate::refusal::json(self.status(), &AuthBody { message: &message })
            }
            _ => {
                crate::refusal::json(self.status(), &ErrorBody { kind, message: &message, reason })
            }
        };
        let headers = response.headers_mut();
        headers.insert(ERROR_TYPE, HeaderValue::from_static(self.error_type()));
        if matches!(self, ApiError::TooManyRequests(_))
            || self.status() == StatusCode::SERVICE_UNAVAILABLE
        {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }

    /// One of each kind, in the documentation's order, with when it is
    /// given.
    pub fn kinds() -> [(ApiError, &'static str); 13] {
        let service = ApiError::Service(StatusCode::SERVICE_UNAVAILABLE, "");
        [
            (
                ApiError::Auth(AuthError::Missing),
                "no `Authorization` header (with `--invoke-auth sigv4`, the default)",
            ),
            (
                ApiError::Auth(AuthError::Incomplete(String::new())),
                "an `Authorization` header that is not a Signature Version 4 one, or no `X-Amz-Date`",
            ),
            (
                ApiError::Auth(AuthError::UnknownKey),
                "signed with an access key the pod does not have (or the pod has none)",
            ),
            (
                ApiError::Auth(AuthError::Mismatch),
                "the signature is not the key's (a wrong secret, or a request changed on its way), or it is dated more than 5 minutes from the pod's clock, or scoped to another region or service",
            ),
            (
                ApiError::ResourceNotFound(String::new()),
                "no function of this pod has that name, or the qualifier is not `$LATEST`",
            ),
            (
                ApiError::UnknownOperation,
                "a path or method under `/2015-03-31/functions/` that is not `POST .../{FunctionName}/invocations`",
            ),
            (
                ApiError::Validation(String::new()),
                "`X-Amz-Invocation-Type` or `X-Amz-Log-Type` is not one of Lambda's values",
            ),
            (
                ApiError::InvalidParameterValue(String::new()),
                "the client context is not base64 of a JSON object, or over 3,583 bytes; `Tail` with an invocation type other than `RequestResponse`",
            ),
            (
                ApiError::InvalidRequestContent(String::new()),
                "the payload is not JSON, or its framing broke",
            ),
            (ApiError::RequestTimeout, "the payload did not arrive within 10 s"),
            (
                ApiError::RequestTooLarge(0),
                "the payload is over 6 MB (1 MB for an `Event`; declared, or found while reading), or could never fit the memory budget",
            ),
            (
                ApiError::TooManyRequests(""),
                "every environment of the function is busy and its queue is full (the HTTP API's requests count too), no environment came within the function's `Timeout`, the function's queue of asynchronous invocations is full, 96 calls are in progress in the pod (the admin port's probes keep their room), or the memory budget cannot hold the payload or the answer now; with `Retry-After: 1`",
            ),
            (
                service,
                "the pod is shutting down (503, `Retry-After: 1`), the environment failed under the invocation (502), or a bug (500)",
            ),
        ]
    }

    /// The errors as a Markdown table, for `docs/api.md`.
    pub fn table() -> String {
        let mut table = String::from("| Status | `X-Amzn-ErrorType` | When |\n|---|---|---|\n");
        for (error, when) in ApiError::kinds() {
            let status = match error {
                ApiError::Service(..) => "500, 502, 503".to_owned(),
                _ => error.status().as_u16().to_string(),
            };
            table.push_str(&format!("| {status} | `{}` | {when} |\n", error.error_type()));
        }
        table
    }

    /// What the pipeline's refusal of a request is, said in Lambda's terms
    /// (the steps shared with the HTTP API: admission, budget, body).
    pub fn from_refusal(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::PayloadTooLarge => ApiError::RequestTooLarge(intake::MAX_BODY_BYTES),
            Refusal::BodyTimeout => ApiError::RequestTimeout,
            Refusal::BadRequest => {
                ApiError::InvalidRequestContent("the payload's framing broke".to_owned())
            }
            Refusal::QueueFull | Refusal::IntegrationTimeout => ApiError::TooManyRequests(
                "Rate Exceeded: every environment of the function is busy and its queue is full",
            ),
            Refusal::OverBudget => ApiError::TooManyRequests(
                "Rate Exceeded: the pod's memory budget cannot hold the invocation now",
            ),
            Refusal::ShuttingDown => {
                ApiError::Service(StatusCode::SERVICE_UNAVAILABLE, "the pod is shutting down")
            }
            Refusal::EnvironmentFailed => ApiError::Service(
                StatusCode::BAD_GATEWAY,
                "the execution environment failed under the invocation",
            ),
            _ => ApiError::Service(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        }
    }
}

impl InvokeApi {
    /// The Invoke API of `targets`, each known by the names given with it
    /// (its logical id and its binary's name).
    pub fn new(
        targets: Vec<(Vec<String>, Target)>,
        verifier: Verifier,
        budget: Budget,
        metrics: Metrics,
        region: String,
        access_log: bool,
    ) -> InvokeApi {
        let mut by_name = HashMap::new();
        for (names, target) in targets {
            for name in names {
                by_name.insert(name, target.clone());
            }
        }
        InvokeApi {
            counted: metrics.route("Invoke API"),
            by_name,
            verifier,
            budget,
            metrics,
            region,
            access_log,
            calls: tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS),
        }
    }

    /// Answers one request of the admin port whose path starts with
    /// [`PREFIX`]; never fails.
    pub async fn handle(&self, request: Request<ClientBody>) -> Response<Full<Bytes>> {
        let start = Instant::now();
        let request_id = crate::ids::request_id();
        let path = request.uri().path().to_owned();
        let (function, answer) = match self.calls.try_acquire() {
            Ok(_call) => self.invoke(request, &request_id).await,
            Err(_) => {
                // Drained first, as every refusal's body is.
                let _ = intake::refuse_request(Refusal::QueueFull, request).await;
                (
                    String::new(),
                    Err(ApiError::TooManyRequests(
                        "Rate Exceeded: too many Invoke API calls in progress in this pod",
                    )),
                )
            }
        };
        let mut response = answer.unwrap_or_else(|e| e.response());
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        let status = response.status().as_u16();
        let elapsed = start.elapsed();
        self.counted.answered(status, elapsed.as_secs_f64());
        if self.access_log {
            tracing::info!(
                request_id,
                method = "POST",
                path,
                route = self.counted.route(),
                function,
                status,
                function_error = response.headers().contains_key(FUNCTION_ERROR),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "invoke"
            );
        }
        response
    }

    /// The steps: operation, function, headers, admission and payload, the
    /// invocation, its answer. Also the function's name, for the log.
    async fn invoke(
        &self,
        request: Request<ClientBody>,
        request_id: &str,
    ) -> (String, Result<Response<Full<Bytes>>, ApiError>) {
        let (parts, body) = request.into_parts();
        // Who is calling, first, as on AWS: a call that is not signed by one
        // of the pod's keys learns nothing of its functions, and its body
        // is not read (the connection closes with the answer).
        let claim = match self.verifier.check_head(&parts, SystemTime::now()) {
            Ok(claim) => claim,
            Err(e) => return (String::new(), Err(ApiError::Auth(e))),
        };
        let found = operation(&parts.method, parts.uri.path())
            .and_then(|name| self.find(&name, parts.uri.query()))
            .and_then(|target| Ok((target, Headers::read(&parts.headers)?)));
        let (target, headers) = match found {
            Ok(found) => found,
            Err(e) => {
                let refused = intake::refuse(Refusal::BadRequest, &parts, body);
                let _ = refused.await;
                return (String::new(), Err(e));
            }
        };
        let function = target.pool.function().to_owned();
        if headers.invocation_type == InvocationType::DryRun {
            // Read, for the signature; then dropped.
            let limit = intake::MAX_BODY_BYTES;
            let declared = intake::declared_length(&parts);
            let read =
                intake::read_body((), &self.budget, &self.metrics, &parts, body, declared, limit);
            let checked = match read.await {
                Ok((_, _, body)) => prove(claim, &parts, &body),
                Err(refusal) => Err(ApiError::from_refusal(refusal)),
            };
            if let Err(e) = checked {
                return (function, Err(e));
            }
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            return (function, Ok(response));
        }
        let declared = intake::declared_length(&parts);
        if headers.invocation_type == InvocationType::Event {
            let call = Call { parts, body, declared, claim };
            let queued = self.enqueue(target, call, request_id, headers).await;
            return (function, queued);
        }
        if declared.is_some_and(|n| n > intake::MAX_BODY_BYTES as u64) {
            let _ = intake::refuse(Refusal::PayloadTooLarge, &parts, body).await;
            return (function, Err(ApiError::RequestTooLarge(intake::MAX_BODY_BYTES)));
        }
        let admitted =
            intake::admit(&target.pool, &self.budget, &self.metrics, &parts, body, declared).await;
        let Admitted { admission, account, body } = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => return (function, Err(ApiError::from_refusal(refusal))),
        };
        if let Err(e) = prove(claim, &parts, &body) {
            return (function, Err(e));
        }
        drop(parts);
        if let Err(e) = check_json(&body) {
            return (function, Err(e));
        }
        // Waiting counts against the invocation as on Lambda, whose
        // synchronous invocations never wait: at most the function's own
        // `Timeout`, then it runs for up to that long.
        let wait_until = Instant::now() + target.pool.timeout();
        let pool = target.pool.clone();
        let extra =
            crate::pool::Extra { client_context: headers.client_context, tail: headers.tail };
        let (id, invocation_account) = (request_id.to_owned(), account.clone());
        // A task of its own, so that a caller that hangs up does not cut
        // the invocation short (which would cost its environment).
        let task = tokio::spawn(async move {
            pool.invoke_with(admission, &id, body, extra, invocation_account, wait_until).await
        });
        let output = match task.await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                if let InvokeError::Environment(e) = &e {
                    tracing::warn!(request_id, function, error = %e, "environment failed");
                }
                return (function, Err(ApiError::from_refusal(intake::invoke_refusal(&e))));
            }
            Err(e) => {
                tracing::error!(request_id, error = %e, "invocation task failed");
                return (function, Err(ApiError::from_refusal(Refusal::Internal)));
            }
        };
        let (output, log) = output;
        // The payload stays charged until written (`outbox`).
        let answer = answer(output, log, &self.metrics)
            .map(|response| response.map(|body| Full::new(outbox::hold(body, &account, None))));
        (function, answer)
    }

    /// An `Event`: the payload read (at most [`events::MAX_EVENT_BYTES`],
    /// charged to the budget), checked, and queued; a 202 once it is.
    async fn enqueue(
        &self,
        target: &Target,
        call: Call,
        request_id: &str,
        headers: Headers,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let Call { parts, body, declared, claim } = call;
        let limit = events::MAX_EVENT_BYTES;
        let read =
            intake::read_body((), &self.budget, &self.metrics, &parts, body, declared, limit).await;
        let (_, account, body) = match read {
            Ok(read) => read,
            Err(Refusal::PayloadTooLarge) => return Err(ApiError::RequestTooLarge(limit)),
            Err(refusal) => return Err(ApiError::from_refusal(refusal)),
        };
        prove(claim, &parts, &body)?;
        check_json(&body)?;
        // The client context waits with the event: charged to it too.
        let context = headers.client_context.as_ref().map_or(0, String::len);
        if !account.try_grow(context) {
            self.metrics.over_budget();
            return Err(ApiError::from_refusal(Refusal::OverBudget));
        }
        match target.events.enqueue(request_id, body, headers.client_context, account) {
            Ok(()) => {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::ACCEPTED;
                Ok(response)
            }
            Err(events::Refused::Full) => Err(ApiError::TooManyRequests(
                "Rate Exceeded: the function's queue of asynchronous invocations is full",
            )),
            Err(events::Refused::ShuttingDown) => {
                Err(ApiError::from_refusal(Refusal::ShuttingDown))
            }
        }
    }

    /// The function `name` (percent-decoded) names, with the query's
    /// `Qualifier`, if any.
    fn find(&self, name: &str, query: Option<&str>) -> Result<&Target, ApiError> {
        let qualifier = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == "Qualifier").then(|| decode(value))
        });
        let (function, in_name) = self.split_arn(name);
        let qualifier = match (qualifier, in_name) {
            (Some(a), Some(b)) if a != b => {
                return Err(ApiError::InvalidParameterValue(
                    "The derived qualifier from the function name does not match the specified \
                     qualifier."
                        .to_owned(),
                ));
            }
            (Some(q), _) | (None, Some(q)) => Some(q),
            (None, None) => None,
        };
        let not_found = |function: &str| {
            let arn = format!(
                "arn:aws:lambda:{}:{}:function:{function}{}",
                self.region,
                crate::ACCOUNT_ID,
                qualifier.as_deref().map(|q| format!(":{q}")).unwrap_or_default()
            );
            ApiError::ResourceNotFound(arn)
        };
        match self.by_name.get(function) {
            Some(target) if qualifier.as_deref().is_none_or(|q| q == "$LATEST") => Ok(target),
            _ => Err(not_found(function)),
        }
    }

    /// A function name as Lambda takes it (`{name}`,
    /// `{account}:function:{name}`, or
    /// `arn:aws:lambda:{region}:{account}:function:{name}`, each with an
    /// optional `:{qualifier}`): the name, and the qualifier. An ARN of
    /// another region or account is kept whole: no function has that name.
    fn split_arn<'a>(&self, name: &'a str) -> (&'a str, Option<String>) {
        let account_part = match name.strip_prefix("arn:aws:lambda:") {
            Some(rest) => {
                match rest.strip_prefix(self.region.as_str()).and_then(|r| r.strip_prefix(':')) {
                    Some(rest) => Some(rest),
                    None => return (name, None),
                }
            }
            None => name.starts_with(crate::ACCOUNT_ID).then_some(name),
        };
        let rest = match account_part {
            Some(partial) => {
                let function = partial
                    .strip_prefix(crate::ACCOUNT_ID)
                    .and_then(|r| r.strip_prefix(":function:"));
                match function {
                    Some(rest) => rest,
                    None => return (name, None),
                }
            }
            None => name,
        };
        match rest.split_once(':') {
            Some((function, qualifier)) => (function, Some(qualifier.to_owned())),
            None => (rest, None),
        }
    }
}

/// A payload must be JSON, or empty.
fn check_json(payload: &[u8]) -> Result<(), ApiError> {
    if payload.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        return Ok(());
    }
    Err(ApiError::InvalidRequestContent(
        "Could not parse request body into json: the payload is not JSON".to_owned(),
    ))
}

/// The function name of an Invoke request's path, percent-decoded.
/// A call's head and its body not yet read, with what its signature claims.
struct Call {
    parts: hyper::http::request::Parts,
    body: ClientBody,
    declared: Option<u64>,
    claim: Option<Claim>,
}

/// The signature's proof over the body read (nothing to prove when anyone
/// may call).
fn prove(
    claim: Option<Claim>,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<(), ApiError> {
    match claim {
        Some(claim) => claim.check_body(parts, body).map_err(ApiError::Auth),
        None => Ok(()),
    }
}

fn operation(method: &Method, path: &str) -> Result<String, ApiError> {
    let name = path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or(ApiError::UnknownOperation)?;
    if method != Method::POST {
        return Err(ApiError::UnknownOperation);
    }
    Ok(decode(name))
}

/// `%3A` and the like decoded (an SDK encodes an ARN's colons).
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The Invoke API's own headers, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    pub invocation_type: InvocationType,
    /// `X-Amz-Client-Context`, decoded: the JSON the runtime is given.
    pub client_context: Option<String>,
    /// `X-Amz-Log-Type: Tail`.
    pub tail: bool,
}

impl Headers {
    /// Reads and checks them: a value Lambda would refuse is refused, and
    /// one the pod cannot honour yet is refused rather than ignored.
    pub fn read(headers: &hyper::HeaderMap) -> Result<Headers, ApiError> {
        let text = |name: &HeaderName| -> Result<Option<&str>, ApiError> {
            match headers.get(name) {
                None => Ok(None),
                Some(value) => value
                    .to_str()
                    .map(Some)
                    .map_err(|_| ApiError::Validation(format!("{name}: not a text value"))),
            }
        };
        let invocation_type = match text(&INVOCATION_TYPE)? {
            None | Some("RequestResponse") => InvocationType::RequestResponse,
            Some("DryRun") => InvocationType::DryRun,
            Some("Event") => InvocationType::Event,
            Some(other) => {
                return Err(ApiError::Validation(format!(
                    "1 validation error detected: Value '{other}' at 'invocationType' failed to \
                     satisfy constraint: Member must satisfy enum value set: [Event, \
                     RequestResponse, DryRun]"
                )));
            }
        };
        let tail = match text(&LOG_TYPE)? {
            None | Some("None") => false,
            Some("Tail") => true,
            Some(other) => {
                return Err(ApiError::Validation(format!(
                    "1 validation error detected: Value '{other}' at 'logType' failed to satisfy \
                     constraint: Member must satisfy enum value set: [None, Tail]"
                )));
            }
        };
        if tail && invocation_type != InvocationType::RequestResponse {
            return Err(ApiError::InvalidParameterValue(
                "X-Amz-Log-Type: Tail applies to RequestResponse invocations only".to_owned(),
            ));
        }
        let client_context = match text(&CLIENT_CONTEXT)? {
            None => None,
            Some(encoded) => Some(client_context(encoded)?),
        };
        Ok(Headers { invocation_type, client_context, tail })
    }
}

/// `X-Amz-Client-Context` decoded: base64 of a JSON object, at most
/// [`MAX_CLIENT_CONTEXT_BYTES`].
pub fn client_context(encoded: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::InvalidParameterValue(
            "Client context must be a valid Base64-encoded JSON object.".to_owned(),
        )
    };
    if encoded.len() > MAX_CLIENT_CONTEXT_BYTES {
        return Err(ApiError::InvalidParameterValue(format!(
            "Client context must be at most {MAX_CLIENT_CONTEXT_BYTES} bytes, base64 included."
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| invalid())?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(_)) => String::from_utf8(bytes).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// The caller's answer for what the function gave back: its output with a
/// 200, a function error marked as Lambda marks it, or a 429 when the
/// memory budget could not hold the answer.
fn answer(
    output: Output,
    log: Option<Vec<u8>>,
    metrics: &Metrics,
) -> Result<Response<Bytes>, ApiError> {
    let (payload, failed) = match output {
        Output::Response(payload) => (payload, false),
        Output::Error { payload, .. } => (payload, true),
        Output::OverBudget => {
            metrics.over_budget();
            return Err(ApiError::from_refusal(Refusal::OverBudget));
        }
    };
    let mut response = Response::new(payload);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(EXECUTED_VERSION, HeaderValue::from_static("$LATEST"));
    if failed {
        headers.insert(FUNCTION_ERROR, HeaderValue::from_static("Unhandled"));
    }
    if let Some(log) = log {
        let encoded = base64::engine::general_purpose::STANDARD.encode(log);
        // Base64 is always a header value.
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            headers.insert(LOG_RESULT, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_is_a_post_to_a_functions_invocations() {
        let post = Method::POST;
        assert_eq!(operation(&post, "/2015-03-31/functions/hello/invocations"), Ok("hello".into()));
        assert_eq!(
            operation(&post, "/2015-03-31/functions/arn%3Aaws%3Alambda%3Ax/invocations"),
            Ok("arn:aws:lambda:x".into())
        );
        for path in [
            "/2015-03-31/functions//invocations",
            "/2015-03-31/functions/hello",
            "/2015-03-31/functions/a/b/invocations",
            "/2015-03-31/functions/hello/invocations/x",
        ] {
            assert_eq!(operation(&post, path), Err(ApiError::UnknownOperation), "{path}");
        }
        assert_eq!(
            operation(&Method::GET, "/2015-03-31/functions/hello/invocations"),
            Err(ApiError::UnknownOperation)
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> hyper::HeaderMap {
        let mut map = hyper::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                HeaderValue::from_str(value).expect("a value"),
            );
        }
        map
    }

    #[test]
    fn headers_are_validated_never_ignored() {
        let read = |pairs: &[(&str, &str)]| Headers::read(&headers(pairs));
        assert_eq!(read(&[]).map(|h| h.invocation_type), Ok(InvocationType::RequestResponse));
        assert_eq!(
            read(&[("x-amz-invocation-type", "DryRun")]).map(|h| h.invocation_type),
            Ok(InvocationType::DryRun)
        );
        assert!(matches!(
            read(&[("x-amz-invocation-type", "requestresponse")]),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(read(&[("x-amz-log-type", "All")]), Err(ApiError::Validation(_))));
        assert!(read(&[("x-amz-log-type", "None")]).is_ok());
        assert_eq!(
            read(&[("x-amz-invocation-type", "Event")]).map(|h| h.invocation_type),
            Ok(InvocationType::Event)
        );
        assert_eq!(read(&[("x-amz-log-type", "Tail")]).map(|h| h.tail), Ok(true));
    }

    #[test]
    fn a_client_context_is_base64_of_a_json_object_within_lambdas_limit() {
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let context = r#"{"custom":{"k":"v"}}"#;
        assert_eq!(client_context(&encode(context)), Ok(context.to_owned()));
        for bad in [encode("[1]"), encode("not json"), "%%%".to_owned()] {
            assert!(matches!(client_context(&bad), Err(ApiError::InvalidParameterValue(_))));
        }
        let big = format!(r#"{{"custom":{{"k":"{}"}}}}"#, "x".repeat(2_700));
        assert!(encode(&big).len() > MAX_CLIENT_CONTEXT_BYTES);
        assert!(matches!(client_context(&encode(&big)), Err(ApiError::InvalidParameterValue(_))));
    }

    #[tokio::test]
    async fn errors_carry_lambdas_type_and_body() {
        use http_body_util::BodyExt as _;
        let error = ApiError::ResourceNotFound("arn:aws:lambda:r:1:function:nope".into());
        let response = error.response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[ERROR_TYPE], "ResourceNotFoundException");
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({
                "Type": "User",
                "message": "Function not found: arn:aws:lambda:r:1:function:nope"
            })
        );
        let throttled = ApiError::from_refusal(Refusal::QueueFull).response();
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.headers()[RETRY_AFTER], "1");
        let shutting = ApiError::from_refusal(Refusal::ShuttingDown).response();
        assert_eq!(shutting.headers()[ERROR_TYPE], "ServiceException");
        assert_eq!(
            ApiError::from_refusal(Refusal::PayloadTooLarge),
            ApiError::RequestTooLarge(intake::MAX_BODY_BYTES)
        );
    }

    /// docs/api.md's table of the Invoke API's errors is `table()`;
    /// `KF_BLESS=1 cargo test -p gateway --lib invoke_errors` rewrites it.
    #[test]
    fn the_documented_invoke_errors_are_the_apis() {
        crate::testing::documented("docs/api.md", "invoke_errors", &ApiError::table());
    }
}
