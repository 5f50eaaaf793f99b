//! What the in-process tests are made of: fake execution environments that
//! follow a script, templates built in code, the whole gateway started on
//! 127.0.0.1:0 inside the test, and a small HTTP client.
//!
//! The gateway's HTTP behaviour (statuses, limits, throttling, authorizers,
//! queue, deadlines, drain) does not depend on what runs a function, only on
//! what the function answers and when. So `gateway/tests/http.rs` runs the
//! real [`crate::serve`] with a [`Fake`] per function instead of a bootstrap
//! process: no build of the functions, no child process, no port guessing
//! (the test binds the listeners and hands them over), and tokio's clock can
//! be paused. What needs real processes (the Runtime API against the RIE,
//! the function binaries, signals, PID 1) stays in `e2e`.
//!
//! Compiled for the crate's own tests and with the `testing` feature.

use crate::config::Config;
use crate::environment::{BoxFuture, EnvError, Environment, Invocation, Launcher, Output, Spec};
use crate::reaper::Reaper;
use crate::template::{AuthorizerSpec, Function, RouteSpec, Template, Throttle};
use crate::{StartError, serve};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as LambdaBody;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::handshake;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a fake function does with one invocation.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answers with this payload (an API Gateway response, say: see
    /// [`http`]).
    Payload(Bytes),
    /// Reports a function error of this type, as `/error` does.
    Error(String),
    /// Its runtime exits during the invocation: a function error, and the
    /// environment is gone.
    Exit,
    /// Its runtime exits before it ever asks for an invocation (a failed
    /// init): a function error, the environment gone, and the function's
    /// next start backed off.
    ExitAtStart,
    /// The environment breaks under the invocation (its connection drops).
    Break,
    /// Never answers.
    Hang,
    /// Waits this long, then does the rest.
    After(Duration, Box<Reply>),
    /// Writes this line to its output (what a tail shows), then does the
    /// rest.
    Log(String, Box<Reply>),
}

/// A payload in the shape API Gateway's payload 2.0 expects from a
/// function: `statusCode`, a JSON content type, `body`.
pub fn http(status: u16, body: &str) -> Reply {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers.insert("content-type", "application/json".parse().expect("a header value"));
    response.body = Some(LambdaBody::Text(body.to_owned()));
    let bytes = serde_json::to_vec(&response).expect("a response serializes");
    Reply::Payload(Bytes::from(bytes))
}

/// A function's whole behaviour: a reply for each invocation.
pub type Script = Arc<dyn Fn(&Invocation) -> Reply + Send + Sync>;

/// What a [`Fake`]'s environments did, for the test to assert on.
#[derive(Debug, Default)]
pub struct Record {
    /// Environments started (cold starts and prewarms).
    pub started: AtomicUsize,
    /// Invocations begun.
    pub invoked: AtomicUsize,
    /// Environments killed (abandoned past a deadline, or broken).
    pub killed: AtomicUsize,
    /// Environments stopped at shutdown.
    pub stopped: AtomicUsize,
    /// Every event received, in order.
    pub events: Mutex<Vec<Bytes>>,
}

impl Record {
    /// The events received so far, parsed as JSON.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let events = self.events.lock().expect("events");
        events.iter().map(|e| serde_json::from_slice(e).expect("an event is JSON")).collect()
    }

    /// A counter's value.
    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// The launcher of one fake function: environments that follow `script`.
pub struct Fake {
    spec: Spec,
    script: Script,
    cold_start: Duration,
    record: Arc<Record>,
}

impl fmt::Debug for Fake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fake").field("function", &self.spec.function).finish_non_exhaustive()
    }
}

impl Fake {
    /// Environments of `spec`'s function that answer as `script` says,
    /// after a cold start of `cold_start`.
    pub fn new(spec: Spec, script: Script, cold_start: Duration, record: Arc<Record>) -> Fake {
        Fake { spec, script, cold_start, record }
    }
}

static IDS: AtomicU64 = AtomicU64::new(1);

impl Launcher for Fake {
    fn spec(&self) -> &Spec {
        &self.spec
    }
    fn can_start(&self) -> bool {
        true
    }
    fn start<'a>(
        &'a self,
        _reaper: &'a Reaper,
        _prewarmed: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Environment>, EnvError>> {
        Box::pin(async move {
            self.record.started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.cold_start).await;
            let env = FakeEnv {
                id: IDS.fetch_add(1, Ordering::Relaxed),
                fresh: true,
                alive: true,
                initialized: true,
                script: self.script.clone(),
                record: self.record.clone(),
                tail: crate::logs::Tail::default(),
            };
            Ok(Box::new(env) as Box<dyn Environment>)
        })
    }
}

struct FakeEnv {
    id: u64,
    fresh: bool,
    alive: bool,
    initialized: bool,
    script: Script,
    record: Arc<Record>,
    /// What its `Log` replies wrote.
    tail: crate::logs::Tail,
}

impl fmt::Debug for FakeEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeEnv").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Environment for FakeEnv {
    fn id(&self) -> u64 {
        self.id
    }
    fn fresh(&self) -> bool {
        self.fresh
    }
    fn initialized(&self) -> bool {
        self.initialized
    }
    fn is_alive(&self) -> bool {
        self.alive
    }
    fn warm(&mut self) -> BoxFuture<'_, Result<(), EnvError>> {
        self.fresh = false;
        Box::pin(async { Ok(()) })
    }
    fn invoke(&mut self, invocation: Invocation) -> BoxFuture<'_, Result<Output, EnvError>> {
        self.record.invoked.fetch_add(1, Ordering::SeqCst);
        self.record.events.lock().expect("events").push(invocation.event.clone());
        self.fresh = false;
        let mut reply = (self.script)(&invocation);
        Box::pin(async move {
            loop {
                return match reply {
                    Reply::After(delay, then) => {
                        tokio::time::sleep(delay).await;
                        reply = *then;
                        continue;
                    }
                    Reply::Log(line, then) => {
                        self.tail.note(format!("{line}\n").as_bytes());
                        reply = *then;
                        continue;
                    }
                    // Charged to the invocation's account as a real
                    // environment charges what it reads.
                    Reply::Payload(bytes) => {
                        if invocation.account.try_grow(crate::budget::answer_cost(bytes.len())) {
                            Ok(Output::Response(bytes))
                        } else {
                            Ok(Output::OverBudget)
                        }
                    }
                    Reply::Error(error_type) => {
                        let payload = serde_json::json!({
                            "errorType": error_type,
                            "errorMessage": "the fake failed",
                        });
                        Ok(Output::Error { error_type, payload: Bytes::from(payload.to_string()) })
                    }
                    Reply::Exit | Reply::ExitAtStart => {
                        self.initialized = !matches!(reply, Reply::ExitAtStart);
                        self.alive = false;
                        Ok(Output::Error {
                            error_type: "Runtime.ExitError".into(),
                            payload: Bytes::new(),
                        })
                    }
                    Reply::Break => {
                        self.alive = false;
                        Err(EnvError::Died("the fake broke".into()))
                    }
                    Reply::Hang => std::future::pending().await,
                };
            }
        })
    }
    fn max_rss_bytes(&self) -> Option<u64> {
        None
    }
    fn tail(&self) -> Option<crate::logs::Tail> {
        Some(self.tail.clone())
    }
    fn kill(self: Box<Self>) {
        self.record.killed.fetch_add(1, Ordering::SeqCst);
    }
    fn stop(self: Box<Self>, _grace: Duration) -> BoxFuture<'static, ()> {
        self.record.stopped.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

/// A pool (`max_envs` environments, `queue` places waiting) of a fake
/// function named `fake` that answers as `script` says, each environment
/// after a cold start of `cold_start`, each invocation given `timeout`: for
/// the pool's and the event queue's own tests.
pub fn fake_pool(
    script: Script,
    cold_start: Duration,
    max_envs: usize,
    queue: usize,
    timeout: Duration,
) -> (Arc<crate::pool::Pool>, Arc<Record>, crate::metrics::Metrics) {
    let record = Arc::new(Record::default());
    let metrics = crate::metrics::Metrics::new();
    let spec = Spec {
        function: Arc::from("fake"),
        bootstrap: "/nonexistent/bootstrap".into(),
        vars: Vec::new(),
        arn: Arc::from("arn:aws:lambda:us-east-1:012345678912:function:fake"),
        timeout,
        logs: None,
        extensions: Vec::new(),
    };
    let launcher = Box::new(Fake::new(spec, script, cold_start, record.clone()));
    let pool = crate::pool::Pool::new(launcher, Reaper::idle(), metrics.clone(), max_envs, queue);
    (Arc::new(pool), record, metrics)
}

/// The gateway's settings from these flags, as `main` would parse them
/// (the `KF_*` variables of the test's environment apply too: CI sets none).
/// The Invoke API takes unsigned calls unless the flags say otherwise: the
/// tests of its signatures say `--invoke-auth sigv4` (`tests/invoke_api.rs`).
pub fn config(flags: &[&str]) -> Config {
    let anyone = (!flags.contains(&"--invoke-auth")).then_some(["--invoke-auth", "none"]);
    let args = std::iter::once("gateway").chain(anyone.into_iter().flatten());
    Config::try_parse_from(args.chain(flags.iter().copied()))
        .unwrap_or_else(|e| panic!("flags {flags:?}: {e}"))
}

/// A function as the template reader makes one, with Lambda's defaults
/// (3 s `Timeout`, 128 MB).
pub fn function(name: &str) -> Function {
    Function {
        name: name.to_owned(),
        logical_id: format!("{name}Function"),
        timeout: Duration::from_secs(3),
        memory_size: 128,
        variables: BTreeMap::new(),
        reserved_concurrency: None,
        log_format: None,
        log_level: None,
        event_retries: crate::template::DEFAULT_EVENT_RETRIES,
        event_max_age: crate::template::DEFAULT_EVENT_MAX_AGE,
    }
}

/// A route (`ANY`, a path, a function) with the HTTP API's 30 s
/// integration timeout.
pub fn route(method: &str, path: &str, function: &str) -> RouteSpec {
    RouteSpec {
        method: method.to_owned(),
        path: path.to_owned(),
        function: function.to_owned(),
        integration_timeout: Duration::from_secs(30),
        authorizer: None,
        line: 0,
    }
}

/// A template of `routes`, with a function for each function they name.
pub fn template(routes: Vec<RouteSpec>) -> Template {
    let mut functions: Vec<Function> = Vec::new();
    for r in &routes {
        if !functions.iter().any(|f| f.name == r.function) {
            functions.push(function(&r.function));
        }
    }
    Template { functions, routes, throttle: None, authorizers: Vec::new() }
}

/// An authorizer named `name` run by `function`, reading `header`, caching
/// for `ttl`.
pub fn authorizer(name: &str, function: &str, header: &str, ttl: Duration) -> AuthorizerSpec {
    AuthorizerSpec {
        name: name.to_owned(),
        function: function.to_owned(),
        identity_headers: vec![header.to_owned()],
        ttl,
    }
}

/// The throttle of an HTTP API's `DefaultRouteSettings`.
pub fn throttle(burst: u32, rate: f64) -> Throttle {
    Throttle { burst, rate }
}

/// The functions' fakes: a script per function, and what each did.
#[derive(Default)]
pub struct Fakes {
    scripts: HashMap<String, (Script, Duration)>,
    records: HashMap<String, Arc<Record>>,
}

impl Fakes {
    /// No function scripted yet: each answers `{"ok":true}` with a 200.
    pub fn new() -> Fakes {
        Fakes::default()
    }

    /// `function` answers as `script` says, with no cold start.
    pub fn script(
        self,
        function: &str,
        script: impl Fn(&Invocation) -> Reply + Send + Sync + 'static,
    ) -> Fakes {
        self.script_with_cold_start(function, Duration::ZERO, script)
    }

    /// `function` answers as `script` says, each environment after a cold
    /// start of `cold_start`.
    pub fn script_with_cold_start(
        mut self,
        function: &str,
        cold_start: Duration,
        script: impl Fn(&Invocation) -> Reply + Send + Sync + 'static,
    ) -> Fakes {
        self.scripts.insert(function.to_owned(), (Arc::new(script), cold_start));
        self
    }

    fn launcher(&mut self, spec: Spec) -> Box<dyn Launcher> {
        let name = spec.function.to_string();
        let (script, cold_start) = self.scripts.get(&name).cloned().unwrap_or_else(|| {
            (Arc::new(|_: &Invocation| http(200, r#"{"ok":true}"#)), Duration::ZERO)
        });
        let record = self.records.entry(name).or_default().clone();
        Box::new(Fake::new(spec, script, cold_start, record))
    }
}

/// The gateway running in this process on 127.0.0.1, until [`Running::stop`].
pub struct Running {
    /// The public port.
    pub addr: SocketAddr,
    /// The admin port.
    pub admin: SocketAddr,
    /// The probes' port.
    pub probes: SocketAddr,
    records: HashMap<String, Arc<Record>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), StartError>>,
}

impl Running {
    /// Starts the gateway with `config` (listen addresses ignored: the
    /// test binds both ports) over `template`, each function faked as
    /// `fakes` says. It is serving when this returns: the listeners are
    /// bound, and the kernel queues connections until the first accept.
    pub async fn start(config: Config, template: Template, mut fakes: Fakes) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the public port");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind the admin port");
        let probes = TcpListener::bind("127.0.0.1:0").await.expect("bind the probes' port");
        let (addr, admin_addr, probes_addr) = (
            listener.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
            probes.local_addr().expect("addr"),
        );
        let listeners = crate::Listeners { public: listener, admin, probes: Some(probes) };
        // Every function's record exists before the start, so a test can
        // hold one while the gateway makes its launchers.
        for f in &template.functions {
            fakes.records.entry(f.name.clone()).or_default();
        }
        let records = fakes.records.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let launch = move |spec: Spec| fakes.launcher(spec);
            serve(config, template, listeners, launch, async {
                let _ = stopped.await;
            })
            .await
        });
        Running { addr, admin: admin_addr, probes: probes_addr, records, stop: Some(stop), task }
    }

    /// What `function`'s environments did.
    pub fn record(&self, function: &str) -> Arc<Record> {
        self.records.get(function).cloned().unwrap_or_else(|| panic!("no function {function}"))
    }

    /// Begins the shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down as on SIGTERM and waits for the end.
    pub async fn stop(mut self) -> Result<(), StartError> {
        self.begin_stop();
        self.task.await.expect("the gateway task")
    }

    /// Waits for the gateway to end by itself (after [`Running::begin_stop`]
    /// or a start error).
    pub async fn finished(self) -> Result<(), StartError> {
        self.task.await.expect("the gateway task")
    }

    /// Sends `request` on a new connection to the public port.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        send(self.addr, request).await
    }

    /// `GET path` on the public port.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(get(path)).await
    }

    /// `POST path` with `body` on the public port.
    pub async fn post(&self, path: &str, body: &str) -> Answer {
        self.send(post(path, body)).await
    }

    /// `GET path` on the admin port.
    pub async fn admin_get(&self, path: &str) -> Answer {
        send(self.admin, get(path)).await
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A `GET` of `path`.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).header("host", "test").body(Full::default()).expect("a request")
}

/// A `POST` of `body` to `path`.
pub fn post(path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "test")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a request")
}

/// Sends `request` to `addr` on a connection of its own.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the body").to_bytes();
    Answer { status: parts.status, headers: parts.headers, body }
}

/// Writes `bytes` to `addr` on a new connection and reads until the server
/// closes it or `within` passes: for heads no client library would send.
pub async fn raw(addr: SocketAddr, bytes: &[u8], within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Holds the `<!-- {block} -->` ... `<!-- /{block} -->` part of the
/// repository's `doc` (a path from the workspace root) equal to `generated`,
/// the text the code makes; with `KF_BLESS` set it rewrites that part
/// instead. So a table in the docs cannot drift from the code it describes.
pub fn documented(doc: &str, block: &str, generated: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let (open, close) = (format!("<!-- {block} -->\n"), format!("<!-- /{block} -->"));
    let start = text.find(&open).unwrap_or_else(|| panic!("{doc} has no {open}")) + open.len();
    let end = start + text[start..].find(&close).unwrap_or_else(|| panic!("{doc} has no {close}"));
    if std::env::var_os("KF_BLESS").is_some() {
        let blessed = format!("{}{generated}{}", &text[..start], &text[end..]);
        std::fs::write(&path, blessed).unwrap_or_else(|e| panic!("{doc}: {e}"));
        return;
    }
    assert_eq!(
        text[start..end],
        *generated,
        "{doc}'s {block} differ from the code's; KF_BLESS=1 cargo test -p gateway --lib {block} rewrites them"
    );
}
