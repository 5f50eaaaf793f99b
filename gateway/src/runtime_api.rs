//! The AWS Lambda Runtime API (version 2018-06-01) that one execution
//! environment's bootstrap polls, served by the gateway itself.
//!
//! This is the protocol Lambda speaks to a custom runtime
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /2018-06-01/runtime/invocation/next` | held until there is an invocation, then its event with the `Lambda-Runtime-*` headers |
//! | `POST .../runtime/invocation/{id}/response` | `202 {"status":"OK"}`; the payload is the invocation's result |
//! | `POST .../runtime/invocation/{id}/error` | `202 {"status":"OK"}`; the invocation failed |
//! | `POST .../runtime/init/error` | `202 {"status":"OK"}`; the environment failed to start |
//!
//! Errors are Lambda's (as its Runtime Interface Emulator implements them,
//! the same code as Lambda's own): a post for an unknown request id, or with
//! no invocation running, is `400 InvalidRequestID`; a second answer to the
//! same invocation or an init error after init is `403
//! InvalidStateTransition`; a payload over 6,291,556 bytes is `413
//! RequestEntityTooLarge` (and fails the invocation with
//! `Function.ResponseSizeTooLarge`); each with an
//! `{"errorMessage","errorType"}` body. An unknown path is a 404 and a
//! known path with another method a 405 with `Allow`. A `/next` while an
//! invocation is unanswered gets that same invocation again, as Lambda does.
//!
//! Each environment has its own [`RuntimeApi`] on a loopback listener of its
//! own, so nothing another process does can reach a runtime's invocations,
//! and the side that submits invocations ([`crate::environment::builtin`])
//! never sees HTTP: it hands over an [`Invocation`] and gets back a
//! [`Reply`], and watches its [`Phase`] (ready, or failed to initialize).

use crate::budget::{self, Account, ReadError};
use crate::extension_api::{self, Metadata, Registry};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};

/// The API version in every path.
pub const VERSION: &str = "2018-06-01";
/// Lambda's limit on a synchronous response (and an error) payload:
/// 6 MB, as the Runtime API enforces it (6,291,556 bytes, the RIE's
/// `MaxPayloadSize`).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 + 100;
/// At most this many connections to one environment's API at once: a
/// runtime polls on one and posts on one, each extension holds its `next`
/// on one and may open another, and nothing else may hold the
/// environment's memory.
const MAX_CONNECTIONS: usize = 8 + 2 * crate::extension_api::MAX_EXTENSIONS;

/// The headers `/next` answers with (lower case, as `http` spells them).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
pub const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
pub const FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
pub const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
pub const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
pub const COGNITO_IDENTITY: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");
/// The header a runtime names its error's type in.
pub const ERROR_TYPE: HeaderName = HeaderName::from_static("lambda-runtime-function-error-type");

/// One invocation, as `/next` hands it to the runtime.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`: the gateway's request id.
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`: when the function's time is up, in
    /// milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`, made a header value once an
    /// environment (empty: not sent).
    pub function_arn: HeaderValue,
    /// `Lambda-Runtime-Trace-Id` (X-Ray's `Root=...;Parent=...;Sampled=0`),
    /// sent only when there is one.
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Client-Context`, sent only when there is one (API
    /// Gateway never sends one).
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity`, likewise.
    pub cognito_identity: Option<String>,
    /// The event, as the response body.
    pub event: Bytes,
    /// What the answer is charged to as it is read.
    pub account: Account,
}

/// How an invocation ended, as the runtime reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `POST .../response`: the payload.
    Response(Bytes),
    /// `POST .../error`, or a response Lambda refuses: the error's type and
    /// its `{"errorMessage","errorType"}` payload.
    Error { error_type: String, payload: Bytes },
    /// An answer the memory budget could not hold now (the runtime is told
    /// 413; the client gets a 503).
    OverBudget,
}

/// A runtime's `/runtime/init/error`: it cannot take invocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    pub error_type: String,
    pub payload: Bytes,
}

/// Where an environment's runtime stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Started; has not asked for an invocation yet (its init is running).
    Initializing,
    /// Has polled `/next` at least once: its init is done.
    Ready,
    /// Posted an init error: the environment must be replaced.
    Failed(InitError),
}

/// The Runtime API of one environment.
#[derive(Debug)]
pub struct RuntimeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// The accept loop; its connections die with it.
    server: AbortHandle,
}

#[derive(Debug)]
pub(crate) struct Shared {
    /// A std mutex: held for a take or a put, never across an await.
    state: Mutex<State>,
    /// Wakes a `/next` waiting for work.
    work: Notify,
    /// Wakes every extension's `/event/next` when events are handed out.
    extension_work: Notify,
    /// Bumped whenever an extension's state changes, for those waiting on
    /// the extensions (registered, ready, shut down).
    progress: watch::Sender<()>,
    phase: watch::Sender<Phase>,
    /// The sessions whose processes may connect, once confined
    /// ([`RuntimeApi::confine`]); `None`: any process may.
    sessions: Mutex<Option<Vec<i32>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Submitted, not yet handed to the runtime.
    waiting: Option<(Invocation, oneshot::Sender<Reply>)>,
    /// Handed to the runtime by `/next`, not yet answered.
    running: Option<(Invocation, oneshot::Sender<Reply>)>,
    /// The request id of the invocation answered last, until the next
    /// `/next`: a second answer to it is a state error, not an unknown id.
    answered: Option<String>,
    /// Whether the runtime has asked for work (its own init is over).
    polled: bool,
    /// The environment's extensions ([`crate::extension_api`]).
    extensions: Registry,
}

impl RuntimeApi {
    /// Serves the Runtime API on a new loopback listener of its own, on a
    /// port the kernel picks (the bootstrap is told it, so there is no race
    /// for a port).
    pub async fn start() -> std::io::Result<RuntimeApi> {
        RuntimeApi::with_extensions(Metadata::default()).await
    }

    /// [`RuntimeApi::start`], serving the Extensions API too: `meta` is
    /// what registration answers and which external extensions were
    /// started.
    pub async fn with_extensions(meta: Metadata) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (phase, _) = watch::channel(Phase::Initializing);
        let state = State { extensions: Registry::new(meta), ..State::default() };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            work: Notify::new(),
            extension_work: Notify::new(),
            progress: watch::Sender::new(()),
            phase,
            sessions: Mutex::new(None),
        });
        let server = tokio::spawn(serve(listener, shared.clone())).abort_handle();
        Ok(RuntimeApi { shared, addr, server })
    }

    /// From now on, serves only connections from the processes of the
    /// sessions started by [`RuntimeApi::spawn_member`] ([`crate::peer`]):
    /// no other process of the pod can poll this environment's `/next`,
    /// answer its invocations or call its Extensions API.
    pub fn confine(&self) {
        let mut sessions = self.shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get_or_insert_with(Vec::new);
    }

    /// Runs `spawn`, which starts a process in a session of its own, and
    /// admits that session. The session is admitted before any connection
    /// is checked against the list: a check waits for a spawn under way.
    pub fn spawn_member<T>(
        &self,
        spawn: impl FnOnce() -> std::io::Result<(nix::unistd::Pid, T)>,
    ) -> std::io::Result<(nix::unistd::Pid, T)> {
        let mut sessions = self.shared.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let spawned = spawn()?;
        if let Some(sessions) = sessions.as_mut() {
            sessions.push(spawned.0.as_raw());
        }
        Ok(spawned)
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Hands `invocation` to the runtime's next (or current) `/next`; the
    /// receiver gets the runtime's reply. An environment runs one
    /// invocation at a time: submitting a second before the first is
    /// answered replaces nothing and fails the second at once.
    pub fn submit(&self, invocation: Invocation) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.waiting.is_some() || state.running.is_some() {
                // Dropping `tx` closes `rx`: the caller sees the failure.
                return rx;
            }
            state.waiting = Some((invocation, tx));
        }
        self.shared.work.notify_one();
        rx
    }

    /// Watches the runtime's phase: ready once it first polls, failed on an
    /// init error or a broken protocol.
    pub fn phase(&self) -> watch::Receiver<Phase> {
        self.shared.phase.subscribe()
    }

    /// Waits until `done` holds for the extensions, re-checking whenever
    /// one of them moves.
    async fn until(&self, done: impl Fn(&Registry) -> bool) {
        until(&self.shared, done).await;
    }

    /// Completes when the extension called `name` is done with `SHUTDOWN`
    /// (it need not be polled while this API lives: it holds its own
    /// reference).
    pub fn shut_down_by(&self, name: &str) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let name = name.to_owned();
        async move { until(&shared, |r| r.shut_down_by(&name)).await }
    }

    /// Waits until every external extension started has registered (the
    /// runtime starts after that, as on Lambda).
    pub async fn extensions_registered(&self) {
        self.until(Registry::all_registered).await;
    }

    /// Waits until every extension has called `next` since its last event:
    /// after an invocation, the environment is free only then.
    pub async fn extensions_settled(&self) {
        self.until(Registry::all_ready).await;
    }

    /// Hands `SHUTDOWN` to the extensions registered for it; `false` if
    /// there are none.
    pub fn shutdown_extensions(&self, deadline_ms: u64, reason: &str) -> bool {
        let any = self.shared.with_extensions(|r| r.shutdown(deadline_ms, reason));
        if any {
            self.shared.extension_work.notify_waiters();
        }
        any
    }

    /// Whether any extension registered for `SHUTDOWN`.
    pub fn wants_shutdown(&self) -> bool {
        self.shared.with_extensions(|r| r.wants_shutdown())
    }

    /// Waits until the extensions given `SHUTDOWN` have taken it and
    /// called `next` again (an extension that exits instead is the
    /// environment's to notice).
    pub async fn extensions_shut_down(&self) {
        self.until(Registry::shut_down).await;
    }
}

async fn until(shared: &Shared, done: impl Fn(&Registry) -> bool) {
    let mut progress = shared.progress.subscribe();
    loop {
        progress.borrow_and_update();
        if shared.with_extensions(|r| done(r)) {
            return;
        }
        if progress.changed().await.is_err() {
            return;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `stream` comes from a process of the environment (always,
    /// until confined). A connection from elsewhere is closed unanswered.
    fn is_from_environment(&self, stream: &tokio::net::TcpStream) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(sessions) = sessions else { return true };
        let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
            return false;
        };
        let ok = crate::peer::in_sessions(local, peer, &sessions);
        if !ok {
            tracing::warn!(%peer, "a process outside the environment connected to its Runtime API; closed");
        }
        ok
    }

    pub(crate) fn with_extensions<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.lock().extensions)
    }

    /// A future that completes when events are next handed to extensions
    /// (created before looking for one, so none is missed).
    pub(crate) fn extension_work(&self) -> tokio::sync::futures::Notified<'_> {
        self.extension_work.notified()
    }

    /// An extension moved: init may be over now, and whoever waits on the
    /// extensions looks again.
    pub(crate) fn changed(&self) {
        self.progress.send_replace(());
        self.check_init();
    }

    /// Init is over when the runtime and every extension have called
    /// `next`: the environment is ready, and registration closes.
    fn check_init(&self) {
        if *self.phase.borrow() != Phase::Initializing {
            return;
        }
        let ready = {
            let mut state = self.lock();
            let ready =
                state.polled && state.extensions.all_registered() && state.extensions.all_ready();
            if ready {
                state.extensions.close();
            }
            ready
        };
        if ready {
            self.phase.send_if_modified(|phase| {
                let first = *phase == Phase::Initializing;
                if first {
                    *phase = Phase::Ready;
                }
                first
            });
            // An invocation submitted during init may go now.
            self.work.notify_one();
        }
    }

    /// An extension posted an init or exit error: the environment fails,
    /// with the error Lambda gives its invocation.
    pub(crate) fn extension_failed(&self, name: &str, kind: &str, at_exit: bool) {
        let (error_type, what) =
            if at_exit { ("Extension.ExitError", "exit") } else { ("Extension.InitError", "init") };
        let message = format!("Extension {name} reported an {what} error: {kind}");
        let payload = error_payload(error_type, &message);
        let failed = Phase::Failed(InitError { error_type: error_type.to_owned(), payload });
        self.phase.send_replace(failed);
        self.progress.send_replace(());
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here: aborting this task drops the set, which aborts every
    // connection, a `/next` held open included.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // A loopback listener of our own fails only when the process is
            // out of descriptors; the runtime's connections carry on.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            continue;
        }
        stream.set_nodelay(true).ok();
        let shared = shared.clone();
        connections.spawn(async move {
            if !shared.is_from_environment(&stream) {
                return;
            }
            let service = service_fn(move |request| handle(shared.clone(), request));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Lambda's error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "errorMessage")]
    message: &'a str,
    #[serde(rename = "errorType")]
    kind: &'a str,
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn accepted() -> Response<Full<Bytes>> {
    json(StatusCode::ACCEPTED, br#"{"status":"OK"}"#.to_vec())
}

/// An error body: `{"errorMessage": message, "errorType": kind}`.
pub fn error_payload(kind: &str, message: &str) -> Bytes {
    // Two strings always serialize.
    Bytes::from(serde_json::to_vec(&ErrorBody { message, kind }).unwrap_or_default())
}

pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, error_payload(kind, message).to_vec())
}

/// What a request to the Runtime API asks for.
#[derive(Debug, PartialEq, Eq)]
enum Call<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    /// A known path, another method: the one it takes.
    WrongMethod(&'static str),
    Unknown,
}

fn call<'a>(method: &Method, path: &'a str) -> Call<'a> {
    let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(VERSION)) else {
        return Call::Unknown;
    };
    let found = match rest {
        "/runtime/invocation/next" => Call::Next,
        "/runtime/init/error" => Call::InitError,
        rest => match rest.strip_prefix("/runtime/invocation/").and_then(|t| t.rsplit_once('/')) {
            Some((id, "response")) if !id.is_empty() && !id.contains('/') => Call::Response(id),
            Some((id, "error")) if !id.is_empty() && !id.contains('/') => Call::Error(id),
            _ => return Call::Unknown,
        },
    };
    let expected = if found == Call::Next { Method::GET } else { Method::POST };
    if *method == expected {
        found
    } else if found == Call::Next {
        Call::WrongMethod("GET")
    } else {
        Call::WrongMethod("POST")
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    if let Some((call, method)) = extension_api::call(&path) {
        if request.method().as_str() != method {
            return Ok(wrong_method(method));
        }
        return Ok(extension_api::handle(&shared, call, request).await);
    }
    let response = match call(request.method(), &path) {
        Call::Next => next(&shared).await,
        Call::Response(id) => {
            let id = id.to_owned();
            finish(&shared, &id, request, None).await
        }
        Call::Error(id) => {
            let id = id.to_owned();
            let kind = error_type(&request);
            finish(&shared, &id, request, Some(kind)).await
        }
        Call::InitError => {
            if *shared.phase.borrow() != Phase::Initializing {
                return Ok(invalid_transition("InitError"));
            }
            let kind = error_type(&request);
            let payload = match read_payload(request, &Account::unlimited()).await {
                Ok(payload) => payload,
                Err(refused) => return Ok(refused.response()),
            };
            shared.phase.send_replace(Phase::Failed(InitError { error_type: kind, payload }));
            accepted()
        }
        Call::WrongMethod(allow) => wrong_method(allow),
        Call::Unknown => {
            let mut response =
                Response::new(Full::new(Bytes::from_static(b"404 page not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            response
        }
    };
    Ok(response)
}

fn wrong_method(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn error_type(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get(&ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or("Runtime.Unknown")
        .to_owned()
}

/// `GET /next`: the next invocation, once there is one.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    if !std::mem::replace(&mut shared.lock().polled, true) {
        shared.check_init();
    }
    loop {
        // Registered before looking, so a submit in between is not missed.
        let notified = shared.work.notified();
        {
            let mut state = shared.lock();
            if let Some((invocation, _)) = &state.running {
                // Asked again before answering: the same invocation again,
                // as Lambda does.
                return next_response(invocation.clone());
            }
            state.answered = None;
            // Init is over (the extensions' too) before an invocation goes.
            let ready = *shared.phase.borrow() == Phase::Ready;
            if let Some((invocation, reply)) = state.waiting.take_if(|_| ready) {
                // The extensions get their INVOKE as the runtime gets the
                // event.
                let arn = invocation.function_arn.to_str().unwrap_or_default();
                let told =
                    state.extensions.invoke(invocation.deadline_ms, &invocation.request_id, arn);
                state.running = Some((invocation.clone(), reply));
                drop(state);
                if told {
                    shared.extension_work.notify_waiters();
                    shared.progress.send_replace(());
                }
                return next_response(invocation);
            }
        }
        notified.await;
    }
}

fn next_response(invocation: Invocation) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(invocation.event));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(DEADLINE_MS, HeaderValue::from(invocation.deadline_ms));
    if !invocation.function_arn.is_empty() {
        headers.insert(FUNCTION_ARN, invocation.function_arn);
    }
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(REQUEST_ID, &invocation.request_id);
    if let Some(trace) = &invocation.trace_id {
        put(TRACE_ID, trace);
    }
    if let Some(context) = &invocation.client_context {
        put(CLIENT_CONTEXT, context);
    }
    if let Some(identity) = &invocation.cognito_identity {
        put(COGNITO_IDENTITY, identity);
    }
    response
}

/// `POST .../{id}/response` (no error type) or `.../{id}/error`.
async fn finish(
    shared: &Shared,
    id: &str,
    request: Request<Incoming>,
    error_type: Option<String>,
) -> Response<Full<Bytes>> {
    // The id is checked before the payload is read: a post for another
    // invocation costs nothing.
    if let Some(refused) = check_id(shared, id, error_type.is_some()) {
        return refused;
    }
    // The answer is charged as it is read, to an account of its own that
    // joins the invocation's once the answer is taken (a post that breaks
    // off, or a second one, gives its bytes back).
    let account = shared
        .lock()
        .running
        .as_ref()
        .filter(|(running, _)| running.request_id == id)
        .map_or_else(Account::unlimited, |(running, _)| running.account.clone());
    let read = account.sibling();
    let payload = read_payload(request, &read).await;
    if let Err(refused @ Refused::Unreadable) = &payload {
        // The post broke off: the invocation is still the runtime's to
        // answer (it may post again), not a failure of the function.
        return refused.response();
    }
    let Some((_, reply)) = ({
        let mut state = shared.lock();
        let taken = state.running.take_if(|(running, _)| running.request_id == id);
        if taken.is_some() {
            state.answered = Some(id.to_owned());
        }
        taken
    }) else {
        // Answered on another connection while this payload was read.
        return check_id(shared, id, error_type.is_some()).unwrap_or_else(|| {
            error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID")
        });
    };
    match payload {
        Ok(payload) => {
            account.absorb(read);
            let result = match error_type {
                None => Reply::Response(payload),
                Some(error_type) => Reply::Error { error_type, payload },
            };
            let _ = reply.send(result);
            accepted()
        }
        Err(refused @ Refused::OverBudget) => {
            let _ = reply.send(Reply::OverBudget);
            refused.response()
        }
        Err(refused) => {
            // Lambda fails the invocation when its response is too large.
            let message = format!(
                "Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."
            );
            let _ = reply.send(Reply::Error {
                error_type: "Function.ResponseSizeTooLarge".into(),
                payload: error_payload("Function.ResponseSizeTooLarge", &message),
            });
            refused.response()
        }
    }
}

/// The refusal of an answer to invocation `id`, if it is not the one
/// running.
fn check_id(shared: &Shared, id: &str, is_error: bool) -> Option<Response<Full<Bytes>>> {
    let state = shared.lock();
    if state.running.as_ref().is_some_and(|(running, _)| running.request_id == id) {
        return None;
    }
    if state.answered.as_deref() == Some(id) {
        let to = if is_error { "InvocationErrorResponse" } else { "InvocationResponse" };
        return Some(invalid_transition_from("RuntimeResponseSentState", to));
    }
    Some(error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID"))
}

fn invalid_transition(to: &str) -> Response<Full<Bytes>> {
    invalid_transition_from("RuntimeReadyState", to)
}

fn invalid_transition_from(from: &str, to: &str) -> Response<Full<Bytes>> {
    let message = format!(
        "State transition from {from} to {to} failed for runtime. Error: State transition is not allowed"
    );
    error(StatusCode::FORBIDDEN, "InvalidStateTransition", &message)
}

/// Why a payload was not taken.
#[derive(Debug)]
enum Refused {
    /// Past [`MAX_PAYLOAD_BYTES`].
    TooLarge,
    /// Past what the memory budget can hold now (read to the end and
    /// dropped; the runtime is told it was taken).
    OverBudget,
    /// The post broke off or was malformed.
    Unreadable,
}

impl Refused {
    fn response(&self) -> Response<Full<Bytes>> {
        match self {
            Refused::TooLarge => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."),
            ),
            // The runtime did its part; the gateway cannot hold the answer
            // now. The client gets a 503, and the runtime, whose payload
            // was read to the end and dropped, a 202: an error status would
            // make `lambda_runtime` exit, and the environment be started
            // again, for the gateway's own shortage.
            Refused::OverBudget => accepted(),
            Refused::Unreadable => {
                error(StatusCode::BAD_REQUEST, "InvalidRequest", "The payload could not be read")
            }
        }
    }
}

/// A request's body, at most [`MAX_PAYLOAD_BYTES`], charged to `account`
/// as it is read.
async fn read_payload(request: Request<Incoming>, account: &Account) -> Result<Bytes, Refused> {
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let body = request.into_body();
    match budget::read(body, MAX_PAYLOAD_BYTES, declared, account, budget::answer_cost).await {
        Ok(payload) => Ok(payload),
        Err(ReadError::TooLarge(_)) => Err(Refused::TooLarge),
        Err(ReadError::OverBudget(mut body)) => {
            // Read to the end, a frame at a time, holding none of it.
            use http_body_util::BodyExt;
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    return Err(Refused::Unreadable);
                }
            }
            Err(Refused::OverBudget)
        }
        Err(ReadError::Broken(_)) => Err(Refused::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods() {
        let v = |rest: &str| format!("/{VERSION}{rest}");
        assert_eq!(call(&Method::GET, &v("/runtime/invocation/next")), Call::Next);
        assert_eq!(
            call(&Method::POST, &v("/runtime/invocation/abc/response")),
            Call::Response("abc")
        );
        assert_eq!(call(&Method::POST, &v("/runtime/invocation/abc/error")), Call::Error("abc"));
        assert_eq!(call(&Method::POST, &v("/runtime/init/error")), Call::InitError);
        assert_eq!(call(&Method::POST, &v("/runtime/invocation/next")), Call::WrongMethod("GET"));
        assert_eq!(
            call(&Method::GET, &v("/runtime/invocation/abc/response")),
            Call::WrongMethod("POST")
        );
        for (method, path) in [
            (Method::POST, v("/runtime/invocation//response")),
            (Method::POST, v("/runtime/invocation/a/b/response")),
            (Method::POST, v("/runtime/invocation/abc/other")),
            (Method::GET, "/2019-01-01/runtime/invocation/next".to_owned()),
            (Method::GET, "/".to_owned()),
        ] {
            assert_eq!(call(&method, &path), Call::Unknown, "{method} {path}");
        }
    }
}

/// The protocol's error paths, over a real HTTP connection.
#[cfg(test)]
mod protocol {
    use super::*;
    use hyper::client::conn::http1::{SendRequest, handshake};
    use tokio::net::TcpStream;

    async fn connect(api: &RuntimeApi) -> SendRequest<Full<Bytes>> {
        let stream = TcpStream::connect(api.address()).await.expect("connect");
        let (sender, connection) = handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        sender
    }

    async fn send(
        sender: &mut SendRequest<Full<Bytes>>,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> (StatusCode, hyper::HeaderMap, String) {
        let request = Request::builder()
            .method(method)
            .uri(format!("/{VERSION}{path}"))
            .header("host", "runtime")
            .body(Full::new(body))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = http_body_util::BodyExt::collect(body).await.expect("body").to_bytes();
        (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            deadline_ms: 1_796_006_599_123,
            function_arn: HeaderValue::from_static(
                "arn:aws:lambda:us-east-1:012345678912:function:f",
            ),
            trace_id: None,
            client_context: None,
            cognito_identity: None,
            event: Bytes::from_static(br#"{"n":1}"#),
            account: Account::unlimited(),
        }
    }

    #[tokio::test]
    async fn errors_are_lambdas() {
        let api = RuntimeApi::start().await.expect("start");
        let mut runtime = connect(&api).await;
        let mut phase = api.phase();
        assert_eq!(*phase.borrow(), Phase::Initializing);

        // Nothing running: any answer is for an unknown id.
        let (status, _, body) =
            send(&mut runtime, Method::POST, "/runtime/invocation/x/response", Bytes::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#);

        let reply = api.submit(invocation("a"));
        // A second submission while one is pending is refused at once.
        assert!(api.submit(invocation("b")).await.is_err());
        let (status, headers, body) =
            send(&mut runtime, Method::GET, "/runtime/invocation/next", Bytes::new()).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"n":1}"#));
        assert_eq!(headers[&REQUEST_ID], "a");
        assert_eq!(headers[&DEADLINE_MS], "1796006599123");
        for absent in [TRACE_ID, CLIENT_CONTEXT, COGNITO_IDENTITY] {
            assert!(headers.get(&absent).is_none(), "{absent} sent without a value");
        }
        phase.wait_for(|p| *p == Phase::Ready).await.expect("ready");
        // Asked again before answering: the same invocation again.
        let (_, again, _) =
            send(&mut runtime, Method::GET, "/runtime/invocation/next", Bytes::new()).await;
        assert_eq!(again[&REQUEST_ID], "a");

        // Another id, another path, another method.
        let (status, _, _) =
            send(&mut runtime, Method::POST, "/runtime/invocation/b/response", Bytes::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, headers, _) =
            send(&mut runtime, Method::GET, "/runtime/invocation/a/response", Bytes::new()).await;
        assert_eq!(
            (status, &headers[ALLOW]),
            (StatusCode::METHOD_NOT_ALLOWED, &HeaderValue::from_static("POST"))
        );
        let (status, _, body) =
            send(&mut runtime, Method::GET, "/runtime/nope", Bytes::new()).await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, "404 page not found\n"));
        // Init is over: an init error now is a state error.
        let (status, _, body) =
            send(&mut runtime, Method::POST, "/runtime/init/error", Bytes::new()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains(r#""errorType":"InvalidStateTransition""#), "{body}");

        // The answer, then the same answer again.
        let payload = Bytes::from_static(br#"{"statusCode":200}"#);
        let (status, _, body) =
            send(&mut runtime, Method::POST, "/runtime/invocation/a/response", payload.clone())
                .await;
        assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
        assert_eq!(reply.await, Ok(Reply::Response(payload)));
        let (status, _, body) =
            send(&mut runtime, Method::POST, "/runtime/invocation/a/error", Bytes::new()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("RuntimeResponseSentState to InvocationErrorResponse"), "{body}");

        // Over the payload limit: a 413 to the runtime, and the invocation
        // fails with Lambda's error.
        let reply = api.submit(invocation("c"));
        let (_, headers, _) =
            send(&mut runtime, Method::GET, "/runtime/invocation/next", Bytes::new()).await;
        assert_eq!(headers[&REQUEST_ID], "c");
        let big = Bytes::from(vec![b'a'; MAX_PAYLOAD_BYTES + 1]);
        let (status, _, body) =
            send(&mut runtime, Method::POST, "/runtime/invocation/c/response", big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body,
            r#"{"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"}"#
        );
        let Ok(Reply::Error { error_type, .. }) = reply.await else { panic!("an error reply") };
        assert_eq!(error_type, "Function.ResponseSizeTooLarge");

        // Exactly the limit is accepted; an error names its type.
        let reply = api.submit(invocation("d"));
        send(&mut runtime, Method::GET, "/runtime/invocation/next", Bytes::new()).await;
        let limit = Bytes::from(vec![b'a'; MAX_PAYLOAD_BYTES]);
        let request = Request::post(format!("/{VERSION}/runtime/invocation/d/error"))
            .header("host", "runtime")
            .header(ERROR_TYPE, "Custom.Error")
            .body(Full::new(limit.clone()))
            .expect("request");
        let response = runtime.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            reply.await,
            Ok(Reply::Error { error_type: "Custom.Error".into(), payload: limit })
        );
    }

    /// An answer is charged to its invocation's account as it is read; one
    /// the budget cannot hold is read to the end and dropped, `OverBudget`
    /// to the pool and a 202 to the runtime (which serves on), and what it
    /// held is given back.
    #[tokio::test]
    async fn answers_are_charged_to_the_invocations_account() {
        let budget = crate::budget::Budget::new(3 << 20);
        let api = RuntimeApi::start().await.expect("start");
        let mut runtime = connect(&api).await;
        for (id, size, fits) in
            [("a", 600_000, true), ("b", 1_200_000, false), ("c", 600_000, true)]
        {
            let account = budget.account();
            let reply = api.submit(Invocation { account: account.clone(), ..invocation(id) });
            send(&mut runtime, Method::GET, "/runtime/invocation/next", Bytes::new()).await;
            let payload = Bytes::from(vec![b'a'; size]);
            let (status, _, body) = send(
                &mut runtime,
                Method::POST,
                &format!("/runtime/invocation/{id}/response"),
                payload.clone(),
            )
            .await;
            if fits {
                assert_eq!(status, StatusCode::ACCEPTED);
                assert_eq!(reply.await, Ok(Reply::Response(payload)));
                assert_eq!(account.bytes(), crate::budget::answer_cost(size), "charged while held");
            } else {
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                assert_eq!(reply.await, Ok(Reply::OverBudget));
            }
            drop(account);
            assert_eq!(budget.available(), 3 << 20, "given back");
        }
    }

    #[tokio::test]
    async fn an_init_error_fails_the_environment() {
        let api = RuntimeApi::start().await.expect("start");
        let mut runtime = connect(&api).await;
        let request = Request::post(format!("/{VERSION}/runtime/init/error"))
            .header("host", "runtime")
            .header(ERROR_TYPE, "Runtime.ConfigError")
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let response = runtime.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let phase = api.phase().borrow().clone();
        assert_eq!(
            phase,
            Phase::Failed(InitError {
                error_type: "Runtime.ConfigError".into(),
                payload: Bytes::from_static(b"{}")
            })
        );
    }

    #[tokio::test]
    async fn next_waits_for_work_and_stops_with_the_api() {
        let api = RuntimeApi::start().await.expect("start");
        let mut runtime = connect(&api).await;
        let waiting = tokio::spawn(async move {
            send(&mut runtime, Method::GET, "/runtime/invocation/next", Bytes::new()).await
        });
        tokio::task::yield_now().await;
        let mut phase = api.phase();
        phase.wait_for(|p| *p == Phase::Ready).await.expect("ready");
        assert!(!waiting.is_finished(), "/next answered with nothing to run");
        let reply = api.submit(invocation("late"));
        let (_, headers, _) = waiting.await.expect("next");
        assert_eq!(headers[&REQUEST_ID], "late");
        // Dropping the API closes its connections: the reply never comes.
        drop(api);
        assert!(reply.await.is_err());
    }
}
