//! The reference kind of environment: a function's bootstrap under its own
//! real `aws-lambda-rie` (the AWS Lambda Runtime Interface Emulator),
//! taking one invocation at a time, as on AWS Lambda. Slower than the
//! built-in kind (two Go HTTP servers between the gateway and the
//! function), and kept so that the same tests can check the built-in
//! Runtime API against AWS's own emulator.
//!
//! The RIE in its classic mode crashes when a second invocation arrives
//! while one runs (RIE issue #97: the whole process dies on a nil pointer),
//! so an [`Environment`] is only ever used by the one request that holds it
//! (see [`crate::pool`]). Each RIE gets two loopback ports of its own (its
//! invoke API and the Runtime API its bootstrap polls) and starts the
//! bootstrap lazily, on the first invocation.
//!
//! The RIE runs external extensions from one fixed directory,
//! `/opt/extensions` (its `rapid/handlers.go`), with no flag to move it,
//! while a pod serves several functions, each with its own `extensions/`.
//! So an RIE whose function has extensions runs in a mount namespace of its
//! own in which that directory is bound at `/opt/extensions`
//! (`bind_extensions`); nothing of it is seen outside.

use super::{BoxFuture, EnvError, Environment, Invocation, Launcher, Output, Spec, peak_rss_bytes};
use crate::budget::{self, Account, ReadError};
use crate::reaper::{Exit, Reaper, children_of, parent_of};
use crate::runtime_api::MAX_PAYLOAD_BYTES;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgid};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The RIE's invoke path (it serves one function, always named `function`).
const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";
/// The header that makes the RIE use our request id as the invocation id,
/// so the function's logs and context carry the gateway's request id.
const REQUEST_ID_HEADER: &str = "x-amzn-requestid";
/// The Invoke API's client context, base64 of its JSON.
const CLIENT_CONTEXT_HEADER: &str = "x-amz-client-context";
/// Lambda's header for an invocation that ended in a function error.
const FUNCTION_ERROR_HEADER: &str = "x-amz-function-error";
/// How long a new RIE may take to listen before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts RIE environments of one function.
#[derive(Debug)]
pub struct Rie {
    spec: Spec,
    /// The `aws-lambda-rie` executable.
    rie: PathBuf,
    /// Environment variables for the RIE itself, on top of the spec's.
    vars: Vec<(String, String)>,
}

impl Rie {
    /// The RIE is told a function timeout two seconds longer than the
    /// spec's, so that the pool's (the same in both modes) fires first.
    pub fn new(spec: Spec, rie: PathBuf) -> Rie {
        let seconds = spec.timeout.as_secs_f64().ceil() as u64 + 2;
        let vars = vec![("AWS_LAMBDA_FUNCTION_TIMEOUT".to_owned(), seconds.to_string())];
        Rie { spec, rie, vars }
    }
}

impl Launcher for Rie {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn start<'a>(
        &'a self,
        reaper: &'a Reaper,
        _prewarmed: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Environment>, EnvError>> {
        Box::pin(async move {
            let env = RieEnv::start(self, reaper).await?;
            Ok(Box::new(env) as Box<dyn Environment>)
        })
    }
}

/// A running RIE with its function.
#[derive(Debug)]
struct RieEnv {
    /// Unique within the process, for logs.
    id: u64,
    /// Whose environment this is.
    function: Arc<str>,
    /// The RIE's process id.
    pid: Pid,
    /// The RIE's invoke address.
    addr: SocketAddr,
    /// Turns `Some` when the RIE has exited.
    exit: watch::Receiver<Exit>,
    /// A kept-alive connection to the RIE, opened on first use.
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Whether no invocation has run yet: the next one is a cold start.
    fresh: bool,
    /// Set once the processes are killed, so that `Drop` does not repeat it.
    stopped: bool,
    /// The process groups of the bootstraps this RIE ran: still killable
    /// after the RIE itself has died and they were re-parented.
    groups: HashSet<Pid>,
    /// The invoke and Runtime API ports, reserved while this lives.
    _ports: [Port; 2],
    /// Its output (the RIE's `START`/`END`/`REPORT` lines and the
    /// function's), when the gateway reads it.
    tail: Option<crate::logs::Tail>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Loopback ports that live environments of this process use.
static RESERVED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback port reserved for one environment until dropped.
///
/// The RIE must be told its ports, so they are found free first and then
/// released for it to bind; the reservation keeps two environments of this
/// process, started at the same moment, from being handed the same port
/// (one would then send its invocations to the other's RIE).
#[derive(Debug)]
struct Port(u16);

/// How a call to the RIE failed.
enum Failed {
    Connection(hyper::Error),
    /// Its answer broke off, or ran past any answer Lambda allows.
    Body,
}

/// Whether `/opt/extensions` exists to bind a function's extensions over;
/// without it, the RIE's namespace gets an empty `/opt` of its own (see
/// `bind_extensions`).
pub fn has_extensions_mountpoint() -> bool {
    std::path::Path::new("/opt/extensions").is_dir()
}

/// Makes `command` (the RIE) start in a mount namespace of its own, where
/// `dir` is at `/opt/extensions`: the one place the RIE looks for external
/// extensions. Where `/opt/extensions` does not exist, `/opt` itself is
/// replaced there by an empty tmpfs holding only `extensions` (on Lambda,
/// `/opt` holds the function's layers and nothing else; the gateway refuses
/// at start-up to do this when the bootstrap or the RIE lives under `/opt`).
///
/// A new mount namespace needs `CAP_SYS_ADMIN`; without it, a user
/// namespace of its own (mapping only the gateway's own user and group)
/// grants it, where the kernel allows unprivileged user namespaces. The
/// start fails with the kernel's error otherwise; a restricted pod allows
/// neither, which is why the manifests run the built-in kind.
///
/// Written with `libc` in `pre_exec`: between fork and exec only
/// async-signal-safe calls may run, so every path and map is made before.
fn bind_extensions(command: &mut Command, dir: &std::path::Path) -> Result<(), EnvError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let invalid = |e: std::ffi::NulError| EnvError::Spawn {
        program: dir.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    };
    let source = CString::new(dir.as_os_str().as_bytes()).map_err(invalid)?;
    let replace_opt = !has_extensions_mountpoint();
    // SAFETY: geteuid and getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let uid_map = format!("{uid} {uid} 1\n").into_bytes();
    let gid_map = format!("{gid} {gid} 1\n").into_bytes();
    fn check(result: libc::c_int) -> std::io::Result<()> {
        if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }
    fn write(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
        // SAFETY: a NUL-terminated path, and a buffer with its length.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, data.as_ptr().cast(), data.len());
            libc::close(fd);
            if written != data.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only async-signal-safe functions on data made before the fork.
    unsafe {
        command.pre_exec(move || {
            let none = std::ptr::null::<libc::c_char>();
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
                write(c"/proc/self/setgroups", b"deny")?;
                write(c"/proc/self/uid_map", &uid_map)?;
                write(c"/proc/self/gid_map", &gid_map)?;
            }
            // Nothing mounted from here on reaches the host's namespace.
            check(libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            if replace_opt {
                let options = c"mode=0755,size=16k";
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/opt".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ))?;
                check(libc::mkdir(c"/opt/extensions".as_ptr(), 0o755))?;
            }
            let flags = libc::MS_BIND | libc::MS_REC;
            check(libc::mount(
                source.as_ptr(),
                c"/opt/extensions".as_ptr(),
                none,
                flags,
                std::ptr::null(),
            ))
        });
    }
    Ok(())
}

impl Port {
    fn reserve() -> Result<Port, EnvError> {
        for _ in 0..32 {
            let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(EnvError::Port)?;
            let port = listener.local_addr().map_err(EnvError::Port)?.port();
            let mut reserved = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
            if !reserved.contains(&port) {
                reserved.push(port);
                return Ok(Port(port));
            }
        }
        Err(EnvError::Port(std::io::Error::other("no unreserved loopback port")))
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        RESERVED.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| *p != self.0);
    }
}

impl RieEnv {
    /// Starts an RIE for `spec` and waits until it listens.
    ///
    /// The RIE cannot listen on port 0 (it tells its bootstrap the Runtime
    /// API's address before binding), so free ports are found first; if
    /// another process takes one in between, the RIE exits and the start is
    /// retried on new ports.
    async fn start(launcher: &Rie, reaper: &Reaper) -> Result<RieEnv, EnvError> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(launcher, reaper).await {
                Ok(env) => return Ok(env),
                Err(e @ EnvError::NotListening(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| EnvError::NotListening("no attempt".into())))
    }

    async fn try_start(launcher: &Rie, reaper: &Reaper) -> Result<RieEnv, EnvError> {
        let spec = &launcher.spec;
        let ports = [Port::reserve()?, Port::reserve()?];
        let (invoke_port, runtime_port) = (ports[0].0, ports[1].0);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, invoke_port));
        let mut command = Command::new(&launcher.rie);
        command
            .arg("--runtime-interface-emulator-address")
            .arg(addr.to_string())
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime_port}"))
            .arg(&spec.bootstrap)
            .envs(spec.vars.iter().chain(&launcher.vars).map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        // The RIE passes the function's output on as its own.
        // The RIE's own diagnostics (`... [INFO] (rapid) ...`) are not the
        // function's: a tail leaves them out, as Lambda's has none.
        if let Some(dir) = spec.extensions.first().and_then(|e| e.parent()) {
            bind_extensions(&mut command, dir)?;
        }
        let tail = spec.logs.as_ref().map(|_| crate::logs::Tail::skipping(b"] (rapid) "));
        let logs = spec.logs.as_ref().zip(tail.as_ref()).map(|(m, t)| (&spec.function, m, t));
        let (pid, exit) = reaper.spawn(&mut command, false, logs).map_err(|source| {
            EnvError::Spawn { program: launcher.rie.display().to_string(), source }
        })?;
        let mut env = RieEnv {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            function: spec.function.clone(),
            pid,
            addr,
            exit,
            sender: None,
            fresh: true,
            stopped: false,
            groups: HashSet::new(),
            _ports: ports,
            tail,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_micros(500);
        loop {
            if let Some(how) = env.exit.borrow().clone() {
                env.stopped = true;
                return Err(EnvError::NotListening(format!("RIE {how}")));
            }
            // Both of the RIE's APIs must listen: it starts the bootstrap on
            // the first invocation, and a bootstrap that finds no Runtime API
            // exits and fails that invocation.
            let runtime_api_up =
                TcpStream::connect((Ipv4Addr::LOCALHOST, runtime_port)).await.is_ok();
            if runtime_api_up && let Ok(stream) = TcpStream::connect(addr).await {
                env.attach(stream).await?;
                tracing::debug!(function = %env.function, env = env.id, pid = pid.as_raw(), %addr, "environment started");
                return Ok(env);
            }
            if Instant::now() > deadline {
                return Err(EnvError::NotListening(format!(
                    "nothing on {addr} after {START_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    async fn attach(&mut self, stream: TcpStream) -> Result<(), EnvError> {
        stream.set_nodelay(true).ok();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the RIE closes the connection or the sender is dropped.
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one event and returns the RIE's status, its function error
    /// header (`X-Amz-Function-Error`), and body, charged to `account` as it
    /// is read (`None`: the budget could not hold it).
    ///
    /// The caller must hold this environment exclusively until it returns.
    async fn call(
        &mut self,
        request_id: &str,
        event: Bytes,
        client_context: Option<&str>,
        account: &Account,
    ) -> Result<(StatusCode, Option<String>, Option<Bytes>), EnvError> {
        if let Some(how) = self.exit.borrow().clone() {
            return Err(EnvError::Died(format!("RIE {how}")));
        }
        let reusable = match &mut self.sender {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| EnvError::Died(format!("RIE not reachable: {e}")))?;
            self.attach(stream).await?;
        }
        let mut request = Request::post(INVOKE_PATH)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(HOST, self.addr.to_string())
            .body(Full::new(event))
            .map_err(|e| EnvError::Died(format!("invoke request: {e}")))?;
        if let Ok(id) = HeaderValue::from_str(request_id) {
            request.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
        if let Some(context) = client_context {
            // Lambda's Invoke API form, which the RIE takes as the caller's.
            let encoded = base64::engine::general_purpose::STANDARD.encode(context);
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                request.headers_mut().insert(CLIENT_CONTEXT_HEADER, value);
            }
        }
        // `attach` always leaves a sender behind.
        let Some(sender) = self.sender.as_mut() else {
            return Err(EnvError::Died("no connection".into()));
        };
        let result = async {
            let response = sender.send_request(request).await.map_err(Failed::Connection)?;
            let status = response.status();
            let function_error = response
                .headers()
                .get(FUNCTION_ERROR_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let declared = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            // The RIE holds answers to Lambda's limit itself; past twice
            // that, something is wrong with the connection.
            let limit = 2 * MAX_PAYLOAD_BYTES;
            let body = match budget::read(
                response.into_body(),
                limit,
                declared,
                account,
                budget::answer_cost,
            )
            .await
            {
                Ok(body) => Some(body),
                Err(ReadError::OverBudget(_)) => None,
                Err(ReadError::TooLarge(_) | ReadError::Broken(_)) => {
                    return Err(Failed::Body);
                }
            };
            Ok::<_, Failed>((status, function_error, body))
        }
        .await;
        match result {
            Ok(answer) => {
                if answer.2.is_none() {
                    // The answer was left half read: the connection goes.
                    self.sender = None;
                }
                if self.fresh {
                    // The RIE has started its bootstrap by now.
                    self.groups.extend(children_of(self.pid));
                    self.fresh = false;
                }
                Ok(answer)
            }
            Err(e) => {
                self.sender = None;
                // A connection that breaks mid-invoke means the RIE died.
                match (self.exit.borrow().clone(), e) {
                    (Some(how), _) => Err(EnvError::Died(format!("RIE {how}"))),
                    (None, Failed::Connection(e)) => Err(EnvError::Connection(e)),
                    (None, Failed::Body) => {
                        Err(EnvError::Died("the RIE's answer broke off".into()))
                    }
                }
            }
        }
    }

    fn kill_processes(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.sender = None;
        // The bootstrap runs in a process group of its own, which killing
        // the RIE would leave running: kill its group first. A bootstrap
        // whose RIE died was re-parented to the gateway; one whose parent is
        // neither is not ours (its pid was reused) and is left alone.
        let own = Pid::from_raw(std::process::id() as i32);
        let mut groups: Vec<Pid> = children_of(self.pid);
        groups.extend(self.groups.iter().copied());
        for child in groups {
            let parent = parent_of(child);
            if parent != Some(self.pid) && parent != Some(own) {
                continue;
            }
            match getpgid(Some(child)) {
                Ok(group) if group == child => {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                _ => {
                    let _ = kill(child, Signal::SIGKILL);
                }
            }
        }
        if self.exit.borrow().is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

impl Environment for RieEnv {
    fn id(&self) -> u64 {
        self.id
    }

    fn fresh(&self) -> bool {
        self.fresh
    }

    fn is_alive(&self) -> bool {
        !self.stopped && self.exit.borrow().is_none()
    }

    fn warm(&mut self) -> BoxFuture<'_, Result<(), EnvError>> {
        // The RIE starts its bootstrap on the first invocation: one the
        // function answers 404 to.
        Box::pin(async move {
            self.call("prewarm", prewarm_event(), None, &Account::unlimited()).await.map(drop)
        })
    }

    fn invoke(&mut self, invocation: Invocation) -> BoxFuture<'_, Result<Output, EnvError>> {
        Box::pin(async move {
            let (status, function_error, body) = self
                .call(
                    &invocation.request_id,
                    invocation.event,
                    invocation.client_context.as_deref(),
                    &invocation.account,
                )
                .await?;
            let Some(body) = body else { return Ok(Output::OverBudget) };
            Ok(match (status, function_error) {
                (StatusCode::OK, None) => match rie_error_type(&body) {
                    // The RIE answers a function error with a 200 and the
                    // error's payload, without Lambda's X-Amz-Function-Error
                    // header: its `errorType` is all that tells them apart.
                    Some(error_type) => Output::Error { error_type, payload: body },
                    None => Output::Response(body),
                },
                (_, Some(kind)) => Output::Error {
                    error_type: rie_error_type(&body).unwrap_or(kind),
                    payload: body,
                },
                (status, None) => Output::Error {
                    error_type: rie_error_type(&body)
                        .unwrap_or_else(|| format!("Rie.Status{}", status.as_u16())),
                    payload: body,
                },
            })
        })
    }

    fn tail(&self) -> Option<crate::logs::Tail> {
        self.tail.clone()
    }

    fn max_rss_bytes(&self) -> Option<u64> {
        let own = peak_rss_bytes(self.pid)?;
        Some(own + children_of(self.pid).into_iter().filter_map(peak_rss_bytes).sum::<u64>())
    }

    fn kill(mut self: Box<Self>) {
        self.kill_processes();
    }

    fn stop(mut self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()> {
        // Nothing in an environment needs a graceful stop: the requests it
        // served are over by the time the pool stops it.
        self.kill_processes();
        let mut exit = self.exit.clone();
        Box::pin(async move {
            let _ = tokio::time::timeout(grace, exit.wait_for(Option::is_some)).await;
        })
    }
}

/// The `errorType` of an error payload: an object with `errorType` and no
/// `statusCode` (a function's own response has one).
fn rie_error_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
        #[serde(rename = "statusCode")]
        status_code: Option<serde::de::IgnoredAny>,
    }
    let shape: Shape = serde_json::from_slice(body).ok()?;
    match shape {
        Shape { error_type: Some(kind), status_code: None } => Some(kind),
        _ => None,
    }
}

/// An event for a path no function serves.
fn prewarm_event() -> Bytes {
    let mut event = aws_lambda_events::apigw::ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.raw_path = Some("/__prewarm".into());
    event.route_key = Some("$default".into());
    event.request_context.http.method = hyper::Method::GET;
    event.request_context.http.path = Some("/__prewarm".into());
    Bytes::from(serde_json::to_vec(&event).unwrap_or_default())
}

impl Drop for RieEnv {
    /// An environment dropped mid-invocation (or by a panic) must not leave
    /// processes behind.
    fn drop(&mut self) {
        self.kill_processes();
    }
}
