//! The execution environments of one function, and the queue in front of
//! them.
//!
//! Lambda's own model: one invocation per environment at a time, a crash
//! costs one request, and a function scales by adding environments (here,
//! up to the CPUs the pod has). The pool works the same over either kind of
//! environment ([`crate::environment`]). (Why not the RIE's
//! multi-concurrency mode, `AWS_LAMBDA_MAX_CONCURRENCY`: it ignores the
//! bootstrap path it is given, runs the runtime as a fixed uid, and shuts
//! the whole RIE down when the runtime crashes.)
//!
//! * At most `max_envs` environments exist; they start on demand (the first
//!   request to a function pays its cold start) and are kept warm.
//! * A request holds an environment exclusively for one invocation (the
//!   RIE even crashes if handed a second one concurrently).
//! * At most `queue_depth` more requests wait; beyond that the answer is an
//!   immediate 503, so overload sheds load instead of piling up latency.
//! * An environment whose invocation times out, or whose processes die, is
//!   killed and replaced; only the request it held fails.

use crate::budget::Account;
use crate::environment::{EnvError, Environment, Invocation, Launcher, Output};
use crate::metrics::{FunctionMetrics, Metrics};
use crate::reaper::Reaper;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A request's place in a pool: running or waiting. Taken before the
/// request's body is read, so that a request the pool would turn away costs
/// neither the reading nor the memory.
#[derive(Debug)]
pub struct Admission(#[allow(dead_code)] OwnedSemaphorePermit);

/// What an Invoke API caller may add to an invocation.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// `X-Amz-Client-Context`, decoded.
    pub client_context: Option<String>,
    /// `X-Amz-Log-Type: Tail`: return the invocation's last 4 KB of output.
    pub tail: bool,
}

/// Why an invocation produced no output.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("all {0} environments are busy and the queue is full")]
    Overloaded(usize),
    /// It waited past its integration's deadline without running.
    #[error("no environment before the integration's deadline")]
    Timeout,
    #[error(transparent)]
    Environment(#[from] EnvError),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// The environments of one function.
#[derive(Debug)]
pub struct Pool {
    /// How to start an environment.
    launcher: Box<dyn Launcher>,
    reaper: Arc<Reaper>,
    metrics: Metrics,
    /// This function's per-invocation metrics, looked up once.
    counted: FunctionMetrics,
    /// Warm environments nobody holds. A std mutex: it is held for a push
    /// or a pop, never across an await.
    idle: Mutex<Vec<Box<dyn Environment>>>,
    /// One permit per environment that may exist: holding one entitles a
    /// request to an idle environment or to start a new one.
    slots: Semaphore,
    /// Permits for requests in the pool, running or waiting: `max_envs +
    /// queue_depth`. A request that finds none is turned away.
    admission: Arc<Semaphore>,
    /// The most environments this function may have.
    max_envs: usize,
    /// Environments alive (idle or busy), for readiness and metrics.
    live: AtomicUsize,
    /// New environments that failed in a row, and what the last one said.
    failing: Mutex<Failing>,
}

/// A function whose new environments keep failing before their first
/// invocation (a bootstrap that exits at start, an init error): each start
/// costs a process,
/// so after a failure the next start waits, as Lambda's own init failures
/// are retried no sooner than the next invocation, and the wait doubles with
/// each failure in a row, from [`START_BACKOFF`] to [`MAX_START_BACKOFF`].
/// A request that would start an environment before then gets the last
/// failure's answer at once (the same 500 the failure itself gave), without
/// a process; an environment that starts and answers ends the back-off.
#[derive(Debug, Default)]
struct Failing {
    in_a_row: u32,
    until: Option<Instant>,
    last: Option<Output>,
}

/// The wait after a new environment's first failure.
pub const START_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between starts of a function whose environments fail.
pub const MAX_START_BACKOFF: Duration = Duration::from_secs(10);

impl Pool {
    /// A pool with no environment yet.
    pub fn new(
        launcher: Box<dyn Launcher>,
        reaper: Arc<Reaper>,
        metrics: Metrics,
        max_envs: usize,
        queue_depth: usize,
    ) -> Pool {
        Pool {
            counted: metrics.function(launcher.function()),
            launcher,
            reaper,
            metrics,
            idle: Mutex::new(Vec::with_capacity(max_envs)),
            slots: Semaphore::new(max_envs),
            admission: Arc::new(Semaphore::new(
                (max_envs + queue_depth).min(Semaphore::MAX_PERMITS),
            )),
            max_envs,
            live: AtomicUsize::new(0),
            failing: Mutex::new(Failing::default()),
        }
    }

    /// The answer for a request that would start an environment while the
    /// function's starts are backed off, if they are.
    fn backed_off(&self) -> Option<Output> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing.until.is_some_and(|until| Instant::now() < until) {
            failing.last.clone()
        } else {
            None
        }
    }

    /// Records how a new environment's first invocation went.
    fn first_invocation(&self, failed: Option<&Output>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match failed {
            None => *failing = Failing::default(),
            Some(output) => {
                failing.in_a_row = failing.in_a_row.saturating_add(1);
                let wait = START_BACKOFF
                    .saturating_mul(1 << failing.in_a_row.saturating_sub(1).min(16))
                    .min(MAX_START_BACKOFF);
                failing.until = Some(Instant::now() + wait);
                failing.last = Some(output.clone());
                tracing::warn!(
                    function = self.function(),
                    failures_in_a_row = failing.in_a_row,
                    backoff_ms = wait.as_millis() as u64,
                    "a new environment failed; its next start waits"
                );
            }
        }
    }

    /// The function this pool runs.
    pub fn function(&self) -> &str {
        self.launcher.function()
    }

    /// Whether the function can take a request: its bootstrap exists, and
    /// it has a warm environment or room to start one.
    pub fn can_serve(&self) -> bool {
        self.launcher.can_start() && !self.slots.is_closed()
    }

    /// Starts one environment ahead of traffic, so the first request does
    /// not pay the cold start; one whose init takes longer than `within` is
    /// stopped and counted as gone.
    pub async fn prewarm(&self, within: Duration) -> Result<(), EnvError> {
        let deadline = Instant::now() + within;
        let too_slow = || EnvError::Died(format!("init took longer than {within:?}"));
        let _slot = self.slots.acquire().await.map_err(|_| EnvError::Died("pool closed".into()))?;
        let mut env = match tokio::time::timeout_at(deadline, self.start_env(true)).await {
            Ok(started) => started?,
            Err(_) => return Err(too_slow()),
        };
        match tokio::time::timeout_at(deadline, env.warm()).await {
            Ok(Ok(())) => {
                self.metrics.cold_start(self.function());
                self.release(env);
                Ok(())
            }
            Ok(Err(e)) => {
                self.discard(env, "died");
                Err(e)
            }
            Err(_) => {
                self.discard(env, "timeout");
                Err(too_slow())
            }
        }
    }

    /// A place in this pool for one request, or why there is none: every
    /// environment busy and the queue full (a 503), or shutting down.
    pub fn admit(&self) -> Result<Admission, InvokeError> {
        self.admission.clone().try_acquire_owned().map(Admission).map_err(|e| match e {
            tokio::sync::TryAcquireError::Closed => InvokeError::ShuttingDown,
            tokio::sync::TryAcquireError::NoPermits => InvokeError::Overloaded(self.max_envs),
        })
    }

    /// A place in this pool, waiting for one in turn (the asynchronous
    /// invocations' workers do: nobody waits on them); an error only once
    /// the pool has shut down.
    pub async fn admit_waiting(&self) -> Result<Admission, InvokeError> {
        match self.admission.clone().acquire_owned().await {
            Ok(permit) => Ok(Admission(permit)),
            Err(_) => Err(InvokeError::ShuttingDown),
        }
    }

    /// How long one invocation may run (the function's `Timeout`).
    pub fn timeout(&self) -> Duration {
        self.launcher.spec().timeout
    }

    /// Runs one invocation of `event` on an environment of its own.
    ///
    /// A request waits for an environment (and its cold start) until
    /// `wait_until`, the integration's deadline: past it, nobody is waiting
    /// for the answer any more, and it gives up without running. Once it
    /// runs, the function has its own `Timeout` (the Spec's), as on Lambda:
    /// an invocation past it is stopped, its environment replaced, and the
    /// result is Lambda's `Sandbox.Timedout` function error.
    ///
    /// Runs to completion once started: call it from a spawned task, so that
    /// a client that goes away does not cancel an invocation half-way and
    /// cost an environment.
    pub async fn invoke(
        &self,
        admitted: Admission,
        request_id: &str,
        event: Bytes,
        account: Account,
        wait_until: Instant,
    ) -> Result<Output, InvokeError> {
        let extra = Extra::default();
        let invoked = self.invoke_with(admitted, request_id, event, extra, account, wait_until);
        invoked.await.map(|(output, _)| output)
    }

    /// [`Pool::invoke`] with what the Invoke API's callers may add: a
    /// client context, and a request for the invocation's log tail (which
    /// comes back with the output: empty if the environment's output is not
    /// read by the gateway).
    pub async fn invoke_with(
        &self,
        _admitted: Admission,
        request_id: &str,
        event: Bytes,
        extra: Extra,
        account: Account,
        wait_until: Instant,
    ) -> Result<(Output, Option<Vec<u8>>), InvokeError> {
        let function = self.function();
        self.counted.queue_add(1);
        let slot = tokio::time::timeout_at(wait_until, self.slots.acquire()).await;
        self.counted.queue_add(-1);
        let _slot = match slot {
            Err(_) => return Err(InvokeError::Timeout),
            Ok(Err(_)) => return Err(InvokeError::ShuttingDown),
            Ok(Ok(permit)) => permit,
        };
        let mut env = match self.take_idle() {
            Some(env) => env,
            None => {
                if let Some(failed) = self.backed_off() {
                    self.metrics.start_suppressed(function);
                    return Ok((failed, extra.tail.then(Vec::new)));
                }
                // A cold start counts against the request's wait too.
                match tokio::time::timeout_at(wait_until, self.start_env(false)).await {
                    Ok(started) => started?,
                    Err(_) => return Err(InvokeError::Timeout),
                }
            }
        };
        let cold = env.fresh();
        let timeout = self.launcher.spec().timeout;
        let started = Instant::now();
        let deadline = started.checked_add(timeout).unwrap_or(started + Duration::from_secs(900));
        let invocation = Invocation {
            account,
            request_id: request_id.to_owned(),
            event,
            client_context: extra.client_context,
            deadline: SystemTime::now() + timeout,
        };
        let tail = if extra.tail { env.tail() } else { None };
        if let Some(tail) = &tail {
            tail.begin();
        }
        self.counted.busy_add(1);
        let result = tokio::time::timeout_at(deadline, env.invoke(invocation)).await;
        self.counted.busy_add(-1);
        let log = match &tail {
            Some(tail) => Some(tail.end().await),
            None => extra.tail.then(Vec::new),
        };
        match result {
            Ok(Ok(output)) => {
                self.counted.invocation(started.elapsed().as_secs_f64(), cold);
                let alive = env.is_alive();
                if cold {
                    // A new environment that ended with an error before its
                    // runtime asked for the invocation (exited at start,
                    // failed its init) backs the next start off; one that
                    // crashed on the invocation itself does not (an input
                    // may do that, and one client must not shut the function
                    // off for the others); one that answered ends a back-off.
                    let failed =
                        !alive && !env.initialized() && matches!(output, Output::Error { .. });
                    self.first_invocation(failed.then_some(&output));
                }
                if alive {
                    self.release(env);
                } else {
                    tracing::warn!(
                        function,
                        env = env.id(),
                        request_id,
                        "environment ended with its invocation; replacing it"
                    );
                    self.discard(env, "died");
                }
                Ok((output, log))
            }
            Ok(Err(e)) => {
                tracing::warn!(function, env = env.id(), request_id, error = %e, "environment failed; replacing it");
                self.discard(env, "died");
                Err(e.into())
            }
            Err(_) => {
                // The environment is still running the invocation: kill it,
                // and start afresh next time, as Lambda does.
                tracing::warn!(
                    function,
                    env = env.id(),
                    request_id,
                    timeout_ms = timeout.as_millis() as u64,
                    "invocation timed out; replacing its environment"
                );
                self.discard(env, "timeout");
                Ok((timed_out(request_id, timeout), log))
            }
        }
    }

    fn take_idle(&self) -> Option<Box<dyn Environment>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(env) = idle.pop() {
            if env.is_alive() {
                return Some(env);
            }
            drop(idle);
            self.discard(env, "died");
            idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        }
        None
    }

    async fn start_env(&self, prewarmed: bool) -> Result<Box<dyn Environment>, EnvError> {
        let env = self.launcher.start(&self.reaper, prewarmed).await?;
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.set_live(self.function(), live);
        Ok(env)
    }

    fn release(&self, env: Box<dyn Environment>) {
        if self.slots.is_closed() {
            // The pool has stopped (an invocation outlived the shutdown's
            // grace): stop this environment instead of keeping it warm.
            env.kill();
            self.forget_one();
            return;
        }
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(env);
    }

    fn discard(&self, env: Box<dyn Environment>, reason: &'static str) {
        env.kill();
        self.forget_one();
        self.metrics.restart(self.function(), reason);
    }

    /// One environment fewer alive.
    fn forget_one(&self) {
        let before =
            self.live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let live = before.map_or(0, |n| n - 1);
        self.metrics.set_live(self.function(), live);
    }

    /// Refuses new requests, and stops the environments once the running
    /// invocations are over (or `grace` has passed).
    pub async fn shutdown(&self, grace: Duration) {
        self.admission.close();
        let all = u32::try_from(self.max_envs).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, self.slots.acquire_many(all)).await;
        self.slots.close();
        let envs: Vec<Box<dyn Environment>> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        // At once, not one after another: each may give its extensions up
        // to two seconds for SHUTDOWN.
        let mut stopping = tokio::task::JoinSet::new();
        for env in envs {
            stopping.spawn(env.stop(Duration::from_secs(2)));
        }
        while stopping.join_next().await.is_some() {
            self.forget_one();
        }
    }

    /// Environments alive now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The highest peak resident memory of this function's idle
    /// environments, in bytes (Lambda's `Max Memory Used`), for `/metrics`.
    pub fn max_rss_bytes(&self) -> Option<u64> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter().filter_map(|env| env.max_rss_bytes()).max()
    }
}

/// Lambda's function error for an invocation stopped at its timeout.
fn timed_out(request_id: &str, timeout: Duration) -> Output {
    let payload = serde_json::json!({
        "errorType": "Sandbox.Timedout",
        "errorMessage": format!(
            "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
            timeout.as_secs_f64()
        ),
    });
    Output::Error {
        error_type: "Sandbox.Timedout".to_owned(),
        payload: Bytes::from(payload.to_string()),
    }
}

/// The pool's logic over fake environments, on tokio's paused clock: every
/// duration below is exact, and nothing waits in real time.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Record, Reply};

    /// The fake's reply to an event: `ok:<ms>` answers with the request id
    /// after that long, `exit` ends the environment with its invocation (as
    /// a bootstrap that exits), `hang` never answers, anything else breaks
    /// the environment.
    fn reply(invocation: &Invocation) -> Reply {
        let event = String::from_utf8_lossy(&invocation.event).into_owned();
        match event.split_once(':') {
            Some(("ok", ms)) => Reply::After(
                Duration::from_millis(ms.parse().expect("milliseconds")),
                Box::new(Reply::Payload(Bytes::from(invocation.request_id.clone()))),
            ),
            _ if event == "exit" => Reply::Exit,
            _ if event == "exit-at-start" => Reply::ExitAtStart,
            _ if event == "hang" => Reply::Hang,
            _ => Reply::Break,
        }
    }

    fn pool(max_envs: usize, queue: usize) -> (Arc<Pool>, Arc<Record>, Metrics) {
        pool_with_timeout(max_envs, queue, LONG)
    }

    fn pool_with_timeout(
        max_envs: usize,
        queue: usize,
        timeout: Duration,
    ) -> (Arc<Pool>, Arc<Record>, Metrics) {
        // A cold start takes 10 ms.
        let script = Arc::new(reply);
        crate::testing::fake_pool(script, Duration::from_millis(10), max_envs, queue, timeout)
    }

    /// Runs `event` as request `id`, waiting for an environment at most
    /// `wait` from now, in a task.
    fn run(
        pool: &Arc<Pool>,
        id: &'static str,
        event: &'static str,
        wait: Duration,
    ) -> tokio::task::JoinHandle<(Result<Output, InvokeError>, Duration)> {
        let admitted = pool.admit().expect("admitted");
        let pool = pool.clone();
        let start = Instant::now();
        tokio::spawn(async move {
            let out = pool
                .invoke(admitted, id, Bytes::from(event), Account::unlimited(), start + wait)
                .await;
            (out, start.elapsed())
        })
    }

    const LONG: Duration = Duration::from_secs(60);

    fn ok(id: &str) -> Result<Output, InvokeError> {
        Ok(Output::Response(Bytes::from(id.to_owned())))
    }

    fn same(a: &Result<Output, InvokeError>, b: &Result<Output, InvokeError>) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[tokio::test(start_paused = true)]
    async fn admits_environments_plus_queue_and_no_more() {
        let (pool, _, _) = pool(2, 1);
        let held: Vec<_> = (0..3).map(|_| pool.admit().expect("room")).collect();
        assert!(matches!(pool.admit(), Err(InvokeError::Overloaded(2))));
        drop(held);
        assert!(pool.admit().is_ok(), "room again once requests leave");
    }

    #[tokio::test(start_paused = true)]
    async fn one_invocation_per_environment_the_rest_wait_in_order() {
        let (pool, record, _) = pool(1, 8);
        let first = run(&pool, "a", "ok:100", LONG);
        tokio::task::yield_now().await;
        let second = run(&pool, "b", "ok:100", LONG);
        let (a, took_a) = first.await.expect("a");
        let (b, took_b) = second.await.expect("b");
        assert!(same(&a, &ok("a")) && same(&b, &ok("b")), "{a:?} {b:?}");
        // 10 ms of cold start, then 100 ms each, one after the other.
        assert_eq!(took_a, Duration::from_millis(110));
        assert_eq!(took_b, Duration::from_millis(210));
        assert_eq!(record.started.load(Ordering::SeqCst), 1, "one environment, kept warm");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waits_past_its_integrations_deadline_gives_up_without_running() {
        let (pool, record, _) = pool(1, 8);
        let busy = run(&pool, "a", "ok:500", LONG);
        tokio::task::yield_now().await;
        let waiting = run(&pool, "b", "ok:1", Duration::from_millis(200));
        let (b, took) = waiting.await.expect("b");
        assert!(matches!(b, Err(InvokeError::Timeout)), "{b:?}");
        assert_eq!(took, Duration::from_millis(200));
        assert!(same(&busy.await.expect("a").0, &ok("a")));
        assert_eq!(record.invoked.load(Ordering::SeqCst), 1, "b never ran");
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_past_the_functions_timeout_is_a_function_error_and_costs_its_environment()
     {
        let (pool, record, metrics) = pool_with_timeout(1, 8, Duration::from_millis(300));
        // The integration would wait longer: the function's own timeout ends it.
        let (out, took) = run(&pool, "a", "hang", LONG).await.expect("a");
        let Ok(Output::Error { error_type, payload }) = out else { panic!("{out:?}") };
        assert_eq!(error_type, "Sandbox.Timedout");
        assert!(String::from_utf8_lossy(&payload).contains("Task timed out after 0.30 seconds"));
        // 10 ms of cold start, then 300 ms of the function's time.
        assert_eq!(took, Duration::from_millis(310));
        assert_eq!((record.killed.load(Ordering::SeqCst), pool.live()), (1, 0));
        let encoded = metrics.encode();
        assert!(
            encoded
                .contains(r#"environment_replacements_total{function="fake",reason="timeout"} 1"#),
            "{encoded}"
        );
        // The next request gets a new environment.
        assert!(same(&run(&pool, "b", "ok:1", LONG).await.expect("b").0, &ok("b")));
        assert_eq!(record.started.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_environment_that_ends_or_breaks_is_replaced() {
        let (pool, record, _) = pool(1, 8);
        let (out, _) = run(&pool, "a", "exit", LONG).await.expect("a");
        assert!(matches!(out, Ok(Output::Error { .. })), "{out:?}");
        let (out, _) = run(&pool, "b", "break", LONG).await.expect("b");
        assert!(matches!(out, Err(InvokeError::Environment(_))), "{out:?}");
        assert!(same(&run(&pool, "c", "ok:1", LONG).await.expect("c").0, &ok("c")));
        assert_eq!(record.started.load(Ordering::SeqCst), 3, "each failure cost its environment");
        assert_eq!(record.killed.load(Ordering::SeqCst), 2);
        assert_eq!(pool.live(), 1);
    }

    /// A function whose environments exit before their first invocation
    /// costs a process per back-off period, not per request: in between,
    /// requests get the last failure's answer at once; the wait doubles with
    /// each failure in a row; one environment that answers ends it. One that
    /// crashes on its invocation (as an input may make it) backs nothing off.
    #[tokio::test(start_paused = true)]
    async fn new_environments_that_keep_failing_are_started_no_faster_than_the_back_off() {
        let (pool, record, metrics) = pool(2, 8);
        let start = Instant::now();
        let mut starts = Vec::new();
        // One request every 10 ms for 1.6 s, each to an environment that exits.
        for i in 0..160 {
            let before = record.started.load(Ordering::SeqCst);
            let (out, _) = run(&pool, "x", "exit-at-start", LONG).await.expect("x");
            assert!(matches!(&out, Ok(Output::Error { .. })), "request {i}: {out:?}");
            if record.started.load(Ordering::SeqCst) > before {
                starts.push(start.elapsed().as_millis() as u64);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Each start takes 10 ms and fails (the times are when it failed);
        // the next start waits 100, 200, 400, 800 ms after the failure.
        assert_eq!(starts, [10, 120, 330, 740, 1550], "starts at {starts:?}");
        let m = metrics.encode();
        assert!(m.contains(r#"environment_starts_suppressed_total{function="fake"} 155"#), "{m}");
        // Once past the back-off, an environment that answers ends it.
        tokio::time::sleep(MAX_START_BACKOFF).await;
        assert!(same(&run(&pool, "y", "ok:1", LONG).await.expect("y").0, &ok("y")));
        assert_eq!(
            record.invoked.load(Ordering::SeqCst),
            6,
            "ran only on the environments started"
        );
        // Crashes on the invocation itself: every request gets a fresh
        // environment, none is turned away.
        for id in ["z1", "z2", "z3"] {
            let (out, _) = run(&pool, id, "exit", LONG).await.expect("z");
            assert!(matches!(out, Ok(Output::Error { .. })));
        }
        assert_eq!(record.invoked.load(Ordering::SeqCst), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_running_invocations_then_stops_environments() {
        let (pool, record, _) = pool(2, 8);
        let running = run(&pool, "a", "ok:400", LONG);
        // A second environment, warm and idle by the time of the shutdown.
        assert!(same(&run(&pool, "b", "ok:1", LONG).await.expect("b").0, &ok("b")));
        let start = Instant::now();
        pool.shutdown(Duration::from_secs(5)).await;
        // `a` ends at 10 ms (cold start) + 400 ms; the shutdown began when
        // `b` was done, at 10 + 1 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(399));
        assert!(same(&running.await.expect("a").0, &ok("a")), "the running one finished");
        assert_eq!(record.stopped.load(Ordering::SeqCst), 2, "both stopped");
        assert!(matches!(pool.admit(), Err(InvokeError::ShuttingDown)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_prewarm_that_takes_too_long_is_stopped_and_not_counted() {
        let (pool, record, metrics) = pool(1, 8);
        // Starting takes 10 ms; 5 ms is not enough.
        assert!(pool.prewarm(Duration::from_millis(5)).await.is_err());
        assert_eq!(pool.live(), 0);
        assert!(pool.prewarm(Duration::from_millis(50)).await.is_ok());
        assert_eq!((pool.live(), record.started.load(Ordering::SeqCst)), (1, 2));
        assert!(metrics.encode().contains(r#"cold_starts_total{function="fake"} 1"#));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_up_on_invocations_after_the_grace() {
        let (pool, record, _) = pool(1, 8);
        let running = run(&pool, "a", "hang", LONG);
        tokio::task::yield_now().await;
        let start = Instant::now();
        pool.shutdown(Duration::from_millis(250)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        // The environment still running is not stopped under it; the idle
        // ones (none here) would be.
        assert_eq!(record.stopped.load(Ordering::SeqCst), 0);
        assert!(!running.is_finished());
        running.abort();
    }
}
