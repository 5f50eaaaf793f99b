//! The built-in kind of environment: the function's bootstrap, started by
//! the gateway itself and polling a Runtime API the gateway serves
//! ([`crate::runtime_api`]), as Lambda's own environments work.
//!
//! Per invocation this costs one loopback round trip on a kept-alive
//! connection (the event on `/next`'s answer, the payload on the post),
//! against the RIE's two HTTP servers and the Go runtime in between.
//!
//! Failures are Lambda's: a bootstrap that exits, is killed or posts an
//! init error fails the invocation it held with a function error
//! (`Runtime.ExitError`, or its init error) and its environment is
//! replaced; one that never polls, or never answers, is stopped by the
//! pool's deadline.
//!
//! The function's external extensions (the executables in `extensions/`
//! beside its bootstrap, [`Spec::extensions`]) start first, each in a
//! process group of its own, and must register before the bootstrap
//! starts; the phases they take part in are [`crate::extension_api`]'s. An
//! extension that exits before the environment stops fails it
//! (`Extension.Crash`), as on Lambda. Stopping an environment hands
//! `SHUTDOWN` to the extensions registered for it, after the runtime is
//! killed, and waits up to [`SHUTDOWN_DEADLINE`] for each to exit or call
//! `next` again.

use super::{BoxFuture, EnvError, Environment, Invocation, Launcher, Output, Spec, peak_rss_bytes};
use crate::extension_api::Metadata;
use crate::ids;
use crate::reaper::{Exit, Reaper};
use crate::runtime_api::{self, InitError, Phase, Reply, RuntimeApi};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How long extensions have to handle `SHUTDOWN` (Lambda's: 2 s when there
/// are extensions).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// One running extension process.
#[derive(Debug)]
struct Extension {
    /// Its file name, the name it must register under.
    name: String,
    /// Its pid, also its process group's id.
    pid: Pid,
    exit: watch::Receiver<Exit>,
}

impl Extension {
    fn kill(&self) {
        if self.exit.borrow().is_none() {
            let _ = killpg(self.pid, Signal::SIGKILL);
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

/// The first of `extensions` to exit: its name and how it ended. Never
/// completes when there are none.
async fn first_exit(extensions: &[Extension]) -> (String, String) {
    if extensions.is_empty() {
        return std::future::pending().await;
    }
    let mut exits = tokio::task::JoinSet::new();
    for extension in extensions {
        let mut exit = extension.exit.clone();
        let name = extension.name.clone();
        exits.spawn(async move {
            let how = exit.wait_for(Option::is_some).await.map(|h| h.clone().unwrap_or_default());
            (name, how.unwrap_or_default())
        });
    }
    exits.join_next().await.and_then(Result::ok).unwrap_or_default()
}

/// Starts built-in environments of one function.
#[derive(Debug)]
pub struct Builtin {
    spec: Spec,
}

impl Builtin {
    pub fn new(spec: Spec) -> Builtin {
        Builtin { spec }
    }
}

impl Launcher for Builtin {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn start<'a>(
        &'a self,
        reaper: &'a Reaper,
        prewarmed: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Environment>, EnvError>> {
        Box::pin(async move {
            let env = BuiltinEnv::start(&self.spec, reaper, prewarmed).await?;
            Ok(Box::new(env) as Box<dyn Environment>)
        })
    }
}

/// A running bootstrap and the Runtime API it polls.
#[derive(Debug)]
struct BuiltinEnv {
    id: u64,
    function: std::sync::Arc<str>,
    /// `Lambda-Runtime-Invoked-Function-Arn`, empty if the ARN cannot be a
    /// header value.
    arn: hyper::header::HeaderValue,
    /// The bootstrap's pid, also its process group's id.
    pid: Pid,
    /// Turns `Some` when the bootstrap has exited.
    exit: watch::Receiver<Exit>,
    api: RuntimeApi,
    /// Its output, when the gateway reads it.
    tail: Option<crate::logs::Tail>,
    /// Its external extensions.
    extensions: Vec<Extension>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, for the `REPORT` line.
    memory_size: String,
    phase: watch::Receiver<Phase>,
    fresh: bool,
    /// Set when the environment can take no more invocations.
    broken: bool,
    /// Set once the processes are killed, so that `Drop` does not repeat it.
    stopped: bool,
}

impl BuiltinEnv {
    async fn start(spec: &Spec, reaper: &Reaper, prewarmed: bool) -> Result<BuiltinEnv, EnvError> {
        // Listening before the bootstrap starts: it can connect at once, and
        // the port is the kernel's choice, so no other process can take it.
        let var = |name: &str| spec.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let names: Vec<String> = spec
            .extensions
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        let meta = Metadata {
            function_name: var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| spec.function.to_string()),
            function_version: var("AWS_LAMBDA_FUNCTION_VERSION")
                .unwrap_or_else(|| "$LATEST".into()),
            handler: var("_HANDLER").unwrap_or_default(),
            account_id: spec.arn.split(':').nth(4).unwrap_or_default().to_owned(),
            external: names.clone(),
        };
        let api = RuntimeApi::with_extensions(meta).await.map_err(EnvError::Port)?;
        api.confine();
        let stream = format!(
            "{}/[$LATEST]{:016x}{:016x}",
            ids::utc_date(SystemTime::now()),
            ids::random_u64(),
            ids::random_u64()
        );
        let command = |program: &std::path::Path| {
            let mut command = Command::new(program);
            // The gateway's own settings are not the function's business.
            for (name, _) in std::env::vars_os() {
                if name.to_str().is_some_and(|n| n.starts_with("KF_")) {
                    command.env_remove(name);
                }
            }
            command
                .envs(spec.vars.iter().map(|(k, v)| (k, v)))
                .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
                .env("AWS_LAMBDA_LOG_STREAM_NAME", &stream)
                .env(
                    "AWS_LAMBDA_INITIALIZATION_TYPE",
                    if prewarmed { "provisioned-concurrency" } else { "on-demand" },
                )
                .stdin(Stdio::null())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
            // A session of its own (so a group of its own: killing the
            // group stops whatever the process started, too). The Runtime
            // API serves only this environment's sessions (`crate::peer`),
            // and no process can move into a session from outside it.
            // SAFETY: `setsid` is async-signal-safe, as `pre_exec` requires.
            unsafe {
                command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
            }
            if let Some(root) = spec.bootstrap.parent() {
                command.current_dir(root);
            }
            command
        };
        let tail = spec.logs.as_ref().map(|_| crate::logs::Tail::default());
        let logs = spec.logs.as_ref().zip(tail.as_ref()).map(|(m, t)| (&spec.function, m, t));
        // The extensions first; they must all register before the runtime
        // starts (Lambda's order).
        let mut extensions = Vec::with_capacity(spec.extensions.len());
        let stop_all = |extensions: &[Extension]| extensions.iter().for_each(Extension::kill);
        for (path, name) in spec.extensions.iter().zip(names) {
            match api.spawn_member(|| reaper.spawn(&mut command(path), true, logs)) {
                Ok((pid, exit)) => extensions.push(Extension { name, pid, exit }),
                Err(source) => {
                    stop_all(&extensions);
                    return Err(EnvError::Spawn { program: path.display().to_string(), source });
                }
            }
        }
        if !extensions.is_empty() {
            tokio::select! {
                () = api.extensions_registered() => {}
                (name, how) = first_exit(&extensions) => {
                    stop_all(&extensions);
                    return Err(EnvError::Died(format!("extension {name} {how} before it registered")));
                }
            }
        }
        let (pid, exit) =
            match api.spawn_member(|| reaper.spawn(&mut command(&spec.bootstrap), true, logs)) {
                Ok(spawned) => spawned,
                Err(source) => {
                    stop_all(&extensions);
                    let program = spec.bootstrap.display().to_string();
                    return Err(EnvError::Spawn { program, source });
                }
            };
        let phase = api.phase();
        let env = BuiltinEnv {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            function: spec.function.clone(),
            arn: hyper::header::HeaderValue::from_str(&spec.arn)
                .unwrap_or(hyper::header::HeaderValue::from_static("")),
            pid,
            exit,
            api,
            phase,
            tail,
            extensions,
            memory_size: spec
                .vars
                .iter()
                .find(|(k, _)| k == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            fresh: true,
            broken: false,
            stopped: false,
        };
        tracing::debug!(function = %env.function, env = env.id, pid = pid.as_raw(), api = %env.api.address(), "environment started");
        Ok(env)
    }

    /// The error an invocation ends with when the bootstrap has exited,
    /// worded as Lambda words it.
    fn exit_error(&self, request_id: &str, how: &str) -> Output {
        let why = match how {
            "exited with 0" => "Runtime exited without providing a reason".to_owned(),
            how => format!("Runtime exited with error: {how}"),
        };
        let message = format!("RequestId: {request_id} Error: {why}");
        Output::Error {
            error_type: "Runtime.ExitError".into(),
            payload: runtime_api::error_payload("Runtime.ExitError", &message),
        }
    }

    /// The error an invocation ends with when an extension has exited.
    fn crash_error(request_id: &str, name: &str, how: &str) -> Output {
        let message = format!("RequestId: {request_id} Error: Extension {name} exited: {how}");
        Output::Error {
            error_type: "Extension.Crash".into(),
            payload: runtime_api::error_payload("Extension.Crash", &message),
        }
    }

    /// Stops the runtime, hands `SHUTDOWN` (for `reason`) to the extensions
    /// registered for it, and waits up to [`SHUTDOWN_DEADLINE`] for each to
    /// exit or ask for its next event; then kills everything.
    async fn shut_down(&mut self, reason: &str) {
        if !self.stopped && !self.extensions.is_empty() {
            if self.exit.borrow().is_none() {
                let _ = killpg(self.pid, Signal::SIGKILL);
                let _ = kill(self.pid, Signal::SIGKILL);
            }
            let deadline = SystemTime::now() + SHUTDOWN_DEADLINE;
            let deadline_ms =
                deadline.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            if self.api.shutdown_extensions(deadline_ms, reason) {
                let mut done = tokio::task::JoinSet::new();
                for extension in &self.extensions {
                    let mut exit = extension.exit.clone();
                    let handled = self.api.shut_down_by(&extension.name);
                    done.spawn(async move {
                        tokio::select! {
                            _ = exit.wait_for(Option::is_some) => {}
                            () = handled => {}
                        }
                    });
                }
                let all = async { while done.join_next().await.is_some() {} };
                let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, all).await;
            }
        }
        self.kill_processes();
    }

    fn kill_processes(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.extensions.iter().for_each(Extension::kill);
        // Once reaped, the reaper has killed its group already, and the id
        // may belong to someone else: leave it alone.
        if self.exit.borrow().is_none() {
            // The group first (the bootstrap and anything it started), then
            // the bootstrap itself should it have left the group.
            let _ = killpg(self.pid, Signal::SIGKILL);
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

impl Environment for BuiltinEnv {
    fn id(&self) -> u64 {
        self.id
    }

    fn fresh(&self) -> bool {
        self.fresh
    }

    fn initialized(&self) -> bool {
        *self.phase.borrow() == Phase::Ready
    }

    fn is_alive(&self) -> bool {
        !self.stopped
            && !self.broken
            && self.exit.borrow().is_none()
            && self.extensions.iter().all(|e| e.exit.borrow().is_none())
            && !matches!(*self.phase.borrow(), Phase::Failed(_))
    }

    fn warm(&mut self) -> BoxFuture<'_, Result<(), EnvError>> {
        Box::pin(async move {
            let mut phase = self.phase.clone();
            let mut exit = self.exit.clone();
            tokio::select! {
                ready = phase.wait_for(|p| *p != Phase::Initializing) => match ready.as_deref() {
                    Ok(Phase::Ready) => {
                        // Its cold start is paid: the first invocation is warm.
                        self.fresh = false;
                        Ok(())
                    }
                    Ok(Phase::Failed(failed)) => {
                        self.broken = true;
                        Err(EnvError::Died(format!("init failed: {failed:?}")))
                    }
                    _ => Err(EnvError::Died("the Runtime API stopped".into())),
                },
                how = exit.wait_for(Option::is_some) => {
                    self.broken = true;
                    let how = how.map(|h| h.clone().unwrap_or_default()).unwrap_or_default();
                    Err(EnvError::Died(format!("bootstrap {how} during init")))
                }
                (name, how) = first_exit(&self.extensions) => {
                    self.broken = true;
                    Err(EnvError::Died(format!("extension {name} {how} during init")))
                }
            }
        })
    }

    fn invoke(&mut self, invocation: Invocation) -> BoxFuture<'_, Result<Output, EnvError>> {
        Box::pin(async move {
            // Stopped by the gateway, or failed before: not the function's
            // doing. A bootstrap that exited or failed its init before this
            // invocation reached it is the function's, and fails the
            // invocation as it would mid-way, with Lambda's error (below:
            // watch's `wait_for` sees a state already reached).
            if self.stopped || self.broken {
                return Err(EnvError::Died("the environment is not running".into()));
            }
            let deadline_ms = invocation
                .deadline
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default();
            let request_id = invocation.request_id;
            // Lambda's own lines around an invocation's output, which a tail
            // shows (the RIE prints them; so does Lambda).
            let tailed = self.tail.clone().filter(crate::logs::Tail::capturing);
            let started = std::time::Instant::now();
            if let Some(tail) = &tailed {
                tail.note(format!("START RequestId: {request_id} Version: $LATEST\n").as_bytes());
            }
            let reply = self.api.submit(runtime_api::Invocation {
                request_id: request_id.clone(),
                deadline_ms,
                function_arn: self.arn.clone(),
                // No X-Ray trace id, as the AWS RIE sends none:
                // `lambda_runtime` copies it into the process environment
                // (`_X_AMZN_TRACE_ID`) with setenv, and glibc keeps every
                // value ever set, so a fresh id per invocation grows a
                // long-lived environment's memory without bound (measured:
                // ~140 bytes an invocation, 11 MB per 80,000). Lambda
                // recycles its environments within hours; a pod's live on.
                trace_id: None,
                client_context: invocation.client_context,
                cognito_identity: None,
                event: invocation.event,
                account: invocation.account,
            });
            let mut phase = self.phase.clone();
            let mut exit = self.exit.clone();
            let output = tokio::select! {
                // A reply that came with the exit still counts.
                biased;
                reply = reply => match reply {
                    Ok(Reply::Response(payload)) => Output::Response(payload),
                    Ok(Reply::Error { error_type, payload }) => Output::Error { error_type, payload },
                    Ok(Reply::OverBudget) => Output::OverBudget,
                    Err(_) => {
                        self.broken = true;
                        return Err(EnvError::Died("the invocation was dropped".into()));
                    }
                },
                failed = phase.wait_for(|p| matches!(p, Phase::Failed(_))) => {
                    self.broken = true;
                    match failed.as_deref() {
                        Ok(Phase::Failed(InitError { error_type, payload })) => {
                            Output::Error { error_type: error_type.clone(), payload: payload.clone() }
                        }
                        _ => return Err(EnvError::Died("the Runtime API stopped".into())),
                    }
                }
                how = exit.wait_for(Option::is_some) => {
                    self.broken = true;
                    let how = how.map(|h| h.clone().unwrap_or_default()).unwrap_or_default();
                    self.exit_error(&request_id, &how)
                }
                (name, how) = first_exit(&self.extensions) => {
                    self.broken = true;
                    Self::crash_error(&request_id, &name, &how)
                }
            };
            // The invocation is over, and the environment free, once every
            // extension registered for INVOKE has asked for its next event
            // (the RIE answers its client only then, too). The pool's
            // deadline bounds the wait, as Lambda's timeout does.
            if !self.extensions.is_empty() && !self.broken {
                let mut phase = self.phase.clone();
                tokio::select! {
                    () = self.api.extensions_settled() => {}
                    _ = phase.wait_for(|p| matches!(p, Phase::Failed(_))) => self.broken = true,
                    _ = first_exit(&self.extensions) => self.broken = true,
                }
            }
            self.fresh = false;
            if let Some(tail) = &tailed {
                // The function's lines written before it answered first.
                tail.flush().await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let used = peak_rss_bytes(self.pid).unwrap_or_default() / (1024 * 1024);
                let lines = format!(
                    "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {:.0} ms\tMemory Size: {} MB\tMax Memory Used: {used} MB\t\n",
                    ms.ceil(),
                    self.memory_size
                );
                tail.note(lines.as_bytes());
            }
            Ok(output)
        })
    }

    fn tail(&self) -> Option<crate::logs::Tail> {
        self.tail.clone()
    }

    fn max_rss_bytes(&self) -> Option<u64> {
        // Each extension counts against the environment, as on Lambda.
        let extensions = self.extensions.iter().filter_map(|e| peak_rss_bytes(e.pid));
        peak_rss_bytes(self.pid).map(|runtime| runtime + extensions.sum::<u64>())
    }

    fn kill(mut self: Box<Self>) {
        // Extensions that asked for SHUTDOWN get it (reason `failure`: the
        // pool replaces an environment that died or timed out), in the
        // background, bounded by the shutdown deadline.
        if self.api.wants_shutdown()
            && !self.stopped
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { self.shut_down("failure").await });
            return;
        }
        self.kill_processes();
    }

    fn stop(mut self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()> {
        let mut exit = self.exit.clone();
        Box::pin(async move {
            self.shut_down("spindown").await;
            let _ = tokio::time::timeout(grace, exit.wait_for(Option::is_some)).await;
        })
    }
}

impl Drop for BuiltinEnv {
    /// An environment dropped mid-invocation (or by a panic) must not leave
    /// processes behind.
    fn drop(&mut self) {
        self.kill_processes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::path::Path;

    /// The tests here that start processes, one at a time: each has a
    /// reaper, which reaps every child of the process (`waitpid(-1)`), so
    /// two at once would take each other's children.
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn spec(runtime: &str) -> Spec {
        Spec {
            function: "fixture".into(),
            bootstrap: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/runtimes")
                .join(runtime),
            vars: Vec::new(),
            arn: "arn:aws:lambda:us-east-1:000000000000:function:fixture".into(),
            timeout: Duration::from_secs(5),
            logs: None,
            extensions: Vec::new(),
        }
    }

    /// A bootstrap that exits at once, seen to have exited before the
    /// first invocation reaches it (the order the cold-start path usually
    /// loses the race to), fails that invocation as Lambda does: the
    /// function's `Runtime.ExitError` (a 500), not a dead environment (a
    /// 502), the same answer as when the exit comes mid-invocation.
    #[tokio::test]
    async fn a_bootstrap_that_exited_before_its_invocation_fails_it_with_lambdas_error() {
        let _alone = ALONE.lock().await;
        let reaper = Reaper::start().expect("reaper");
        let mut env =
            BuiltinEnv::start(&spec("exit-at-start.sh"), &reaper, false).await.expect("started");
        env.exit.clone().wait_for(Option::is_some).await.expect("its exit is seen");
        assert!(!env.is_alive());
        let invocation = Invocation {
            request_id: "r-1".into(),
            event: Bytes::from_static(b"{}"),
            client_context: None,
            account: crate::budget::Account::unlimited(),
            deadline: SystemTime::now() + Duration::from_secs(5),
        };
        match env.invoke(invocation).await {
            Ok(Output::Error { error_type, payload }) => {
                assert_eq!(error_type, "Runtime.ExitError");
                let payload = String::from_utf8_lossy(&payload);
                assert!(
                    payload.contains("RequestId: r-1 Error: Runtime exited with error: exit"),
                    "{payload}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Once failed, it takes nothing more: the pool replaces it.
        let again = Invocation {
            request_id: "r-2".into(),
            event: Bytes::from_static(b"{}"),
            client_context: None,
            account: crate::budget::Account::unlimited(),
            deadline: SystemTime::now() + Duration::from_secs(5),
        };
        assert!(matches!(env.invoke(again).await, Err(EnvError::Died(_))));
    }

    /// `fixtures/runtimes/context.sh` with `fixtures/runtimes/extension.sh`
    /// beside it, misbehaving as `mode` says.
    fn with_extension(mode: &str) -> Spec {
        let mut spec = spec("context.sh");
        let runtimes = spec.bootstrap.parent().expect("the fixtures").to_owned();
        spec.extensions = vec![runtimes.join("extension.sh")];
        spec.vars.push(("EXTENSION_MODE".into(), mode.into()));
        spec
    }

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            event: Bytes::from_static(b"{}"),
            client_context: None,
            account: crate::budget::Account::unlimited(),
            deadline: SystemTime::now() + Duration::from_secs(5),
        }
    }

    /// Issue 31: any process of the pod could read an environment's port
    /// and poll its `/next`, and was handed every other invocation. Now a
    /// process outside the environment's sessions (this test's own) is
    /// closed on at once, unanswered, and the environment's own runtime
    /// gets the invocation.
    #[tokio::test]
    async fn a_process_outside_the_environment_cannot_poll_its_runtime_api() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _alone = ALONE.lock().await;
        let reaper = Reaper::start().expect("reaper");
        let mut echo = spec("echo.sh");
        echo.vars.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()));
        let mut env = BuiltinEnv::start(&echo, &reaper, false).await.expect("started");
        env.warm().await.expect("ready");
        let mut stranger =
            tokio::net::TcpStream::connect(env.api.address()).await.expect("connects");
        let poll = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n";
        stranger.write_all(poll.as_bytes()).await.expect("sent");
        let answered = env.invoke(invocation("r-1")).await;
        assert!(matches!(answered, Ok(Output::Response(_))), "{answered:?}");
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), stranger.read_to_end(&mut got));
        // Closed with its request unread: an end of stream or a reset.
        match read.await {
            Ok(Ok(0)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset && got.is_empty() => {}
            other => {
                panic!("the stranger was served: {other:?} {:?}", String::from_utf8_lossy(&got))
            }
        }
        Box::new(env).stop(Duration::from_secs(1)).await;
    }

    /// An extension that exits before registering: the environment never
    /// starts its runtime, and the start fails (the pool backs off).
    #[tokio::test]
    async fn an_extension_that_exits_before_registering_fails_the_start() {
        let _alone = ALONE.lock().await;
        let reaper = Reaper::start().expect("reaper");
        let started = BuiltinEnv::start(&with_extension("exit-at-start"), &reaper, false).await;
        match started {
            Err(EnvError::Died(why)) => {
                assert!(
                    why.contains("extension extension.sh exited with 0 before it registered"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// Init is over only when every extension has asked for its first
    /// event: one that registers and never asks keeps the environment from
    /// becoming ready (the pool's init deadline then replaces it).
    #[tokio::test]
    async fn init_waits_for_every_extension_to_call_next() {
        let _alone = ALONE.lock().await;
        let reaper = Reaper::start().expect("reaper");
        let mut env = BuiltinEnv::start(&with_extension("never-next"), &reaper, false)
            .await
            .expect("started");
        let warm = tokio::time::timeout(Duration::from_millis(1500), env.warm()).await;
        assert!(warm.is_err(), "ready although the extension never called next: {warm:?}");
        assert!(!env.initialized());
        Box::new(env).stop(Duration::from_secs(1)).await;
    }

    /// An extension's init error fails the environment's init, with
    /// Lambda's `Extension.InitError`.
    #[tokio::test]
    async fn an_extensions_init_error_fails_the_environment() {
        let _alone = ALONE.lock().await;
        let reaper = Reaper::start().expect("reaper");
        let mut env = BuiltinEnv::start(&with_extension("init-error"), &reaper, false)
            .await
            .expect("started");
        match env.warm().await {
            Err(EnvError::Died(why)) => {
                assert!(why.contains("Extension.InitError"), "{why}");
                assert!(why.contains("Fixture.Broken"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!env.is_alive());
    }

    /// An extension that exits mid-invocation: the runtime's answer still
    /// goes to the client, and the environment is not reused (the pool
    /// replaces it). Its memory counted against the environment first.
    #[tokio::test]
    async fn an_extension_that_crashes_ends_its_environment() {
        let _alone = ALONE.lock().await;
        let reaper = Reaper::start().expect("reaper");
        let mut env = BuiltinEnv::start(&with_extension("crash-on-invoke"), &reaper, false)
            .await
            .expect("started");
        env.warm().await.expect("init completes");
        let both = env.max_rss_bytes().expect("known");
        let runtime = peak_rss_bytes(env.pid).expect("known");
        assert!(both > runtime, "the extension's memory is counted: {both} <= {runtime}");
        let output = env.invoke(invocation("r-1")).await.expect("an output");
        assert_eq!(output, Output::Response(Bytes::from_static(b"null")));
        assert!(!env.is_alive(), "an environment whose extension crashed is not reused");
        assert!(matches!(env.invoke(invocation("r-2")).await, Err(EnvError::Died(_))));
    }
}
