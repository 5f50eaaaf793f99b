//! Execution environments: one function's bootstrap, taking one invocation
//! at a time, as on AWS Lambda.
//!
//! Two kinds sit behind one small interface, so the pool and the tests treat
//! them alike:
//! * [`builtin`] (the default): the gateway serves the Lambda Runtime API to
//!   the bootstrap itself ([`crate::runtime_api`]); nothing stands between
//!   the two processes but one loopback connection.
//! * [`rie`]: the bootstrap under the real AWS Lambda Runtime Interface
//!   Emulator, the reference the built-in kind is checked against.
//!
//! A [`Launcher`] starts environments of one function; an [`Environment`]
//! runs invocations: an event's bytes and a deadline in, the function's
//! [`Output`] or an [`EnvError`] out. Neither knows any client HTTP.

pub mod builtin;
pub mod rie;

use crate::budget::Account;
use crate::reaper::Reaper;
use bytes::Bytes;
use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A boxed future, so environments can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How to start the environments of one function.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The function's name, e.g. `hello`.
    pub function: Arc<str>,
    /// The function's bootstrap executable.
    pub bootstrap: PathBuf,
    /// Environment variables of the bootstrap, Lambda's own included.
    pub vars: Vec<(String, String)>,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub arn: Arc<str>,
    /// How long one invocation may run (the template's `Timeout`).
    pub timeout: Duration,
    /// Where its environments' output goes: through the gateway, bounded
    /// and counted in these metrics ([`crate::logs`]), or, when `None`,
    /// straight to the gateway's own stdout and stderr.
    pub logs: Option<crate::metrics::Metrics>,
    /// The function's external extensions: the executables in the
    /// `extensions/` directory beside its bootstrap (Lambda's
    /// `/opt/extensions`), started in each environment before the runtime.
    pub extensions: Vec<PathBuf>,
}

/// One invocation, as the pool hands it to an environment.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// What the answer is charged to as it is read (see [`crate::budget`]).
    pub account: Account,
    /// The request id, which becomes the Lambda request id.
    pub request_id: String,
    /// The event.
    pub event: Bytes,
    /// The caller's client context (JSON), as the Invoke API's
    /// `X-Amz-Client-Context` gives it; `None` for the HTTP API's requests.
    pub client_context: Option<String>,
    /// When the function's time is up (it is told so in
    /// `Lambda-Runtime-Deadline-Ms`; the pool enforces it).
    pub deadline: SystemTime,
}

/// What an invocation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The function's response payload.
    Response(Bytes),
    /// The invocation failed (Lambda's `FunctionError`): the function
    /// reported an error, its runtime exited or failed to initialize, or its
    /// response was refused. The type and the `{"errorMessage","errorType"}`
    /// payload are for the logs.
    Error { error_type: String, payload: Bytes },
    /// The function answered, but the memory budget could not hold the
    /// answer now: the client gets a 503, as for a full queue.
    OverBudget,
}

/// Why an environment could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("no loopback port: {0}")]
    Port(std::io::Error),
    #[error("the environment did not start listening: {0}")]
    NotListening(String),
    #[error("the environment died: {0}")]
    Died(String),
    #[error("the RIE connection failed: {0}")]
    Connection(#[from] hyper::Error),
}

/// Starts the environments of one function.
pub trait Launcher: Send + Sync + Debug {
    /// How its environments start.
    fn spec(&self) -> &Spec;
    /// The function's name.
    fn function(&self) -> &str {
        &self.spec().function
    }
    /// Whether an environment can be started at all (its bootstrap exists).
    fn can_start(&self) -> bool {
        self.spec().bootstrap.is_file()
    }
    /// Starts one environment. `prewarmed` ones are started ahead of
    /// traffic (Lambda's provisioned concurrency).
    fn start<'a>(
        &'a self,
        reaper: &'a Reaper,
        prewarmed: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Environment>, EnvError>>;
}

/// One execution environment.
pub trait Environment: Send + Debug {
    /// Unique within the process, for logs.
    fn id(&self) -> u64;
    /// Whether no invocation has run yet: the next one is a cold start.
    fn fresh(&self) -> bool;
    /// Whether it can take another invocation.
    fn is_alive(&self) -> bool;
    /// Whether its runtime finished its init (asked for an invocation): an
    /// environment that ends before that failed to start; one that ends
    /// after it failed an invocation, which an input may cause.
    fn initialized(&self) -> bool {
        true
    }
    /// Runs its init ahead of the first invocation and waits for it to end.
    fn warm(&mut self) -> BoxFuture<'_, Result<(), EnvError>>;
    /// Runs one invocation. The caller holds the environment exclusively
    /// until it returns, and bounds it with the deadline: an environment
    /// whose invocation is abandoned must be killed, never reused.
    fn invoke(&mut self, invocation: Invocation) -> BoxFuture<'_, Result<Output, EnvError>>;
    /// The peak resident memory of its processes, in bytes, if known.
    fn max_rss_bytes(&self) -> Option<u64>;
    /// Its output as it passes, for the Invoke API's `Tail`; `None` when it
    /// goes straight to the gateway's own (no `Spec::logs`).
    fn tail(&self) -> Option<crate::logs::Tail> {
        None
    }
    /// Kills its processes at once.
    fn kill(self: Box<Self>);
    /// Kills its processes and waits up to `grace` for them to be reaped.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()>;
}

/// The highest resident set of `pid` so far (`VmHWM`), in bytes.
pub fn peak_rss_bytes(pid: nix::unistd::Pid) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
