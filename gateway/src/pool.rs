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

use crate::environment::{EnvError, Environment, Invocation, Launcher, Output};
use crate::metrics::Metrics;
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

/// Why an invocation produced no output.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("all {0} environments are busy and the queue is full")]
    Overloaded(usize),
    #[error("timed out")]
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
}

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
    /// not pay the cold start.
    pub async fn prewarm(&self) -> Result<(), EnvError> {
        let _slot = self.slots.acquire().await.map_err(|_| EnvError::Died("pool closed".into()))?;
        let mut env = self.start_env(true).await?;
        match env.warm().await {
            Ok(_) => {
                self.metrics.cold_start(self.function());
                self.release(env);
                Ok(())
            }
            Err(e) => {
                self.discard(env, "died");
                Err(e)
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

    /// Runs one invocation of `event` on an environment of its own.
    ///
    /// Runs to completion once started: call it from a spawned task, so that
    /// a client that goes away does not cancel an invocation half-way and
    /// cost an environment.
    pub async fn invoke(
        &self,
        _admitted: Admission,
        request_id: &str,
        event: Bytes,
        deadline: Instant,
    ) -> Result<Output, InvokeError> {
        let function = self.function();
        self.metrics.queue_add(function, 1);
        let slot = tokio::time::timeout_at(deadline, self.slots.acquire()).await;
        self.metrics.queue_add(function, -1);
        let _slot = match slot {
            Err(_) => return Err(InvokeError::Timeout),
            Ok(Err(_)) => return Err(InvokeError::ShuttingDown),
            Ok(Ok(permit)) => permit,
        };
        let mut env = match self.take_idle() {
            Some(env) => env,
            // A cold start counts against the request's deadline too.
            None => match tokio::time::timeout_at(deadline, self.start_env(false)).await {
                Ok(started) => started?,
                Err(_) => return Err(InvokeError::Timeout),
            },
        };
        let cold = env.fresh();
        let invocation = Invocation {
            request_id: request_id.to_owned(),
            event,
            deadline: SystemTime::now() + deadline.saturating_duration_since(Instant::now()),
        };
        self.metrics.busy_add(function, 1);
        let started = Instant::now();
        let result = tokio::time::timeout_at(deadline, env.invoke(invocation)).await;
        self.metrics.busy_add(function, -1);
        match result {
            Ok(Ok(output)) => {
                self.metrics.invocation(function, started.elapsed().as_secs_f64(), cold);
                if env.is_alive() {
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
                Ok(output)
            }
            Ok(Err(e)) => {
                tracing::warn!(function, env = env.id(), request_id, error = %e, "environment failed; replacing it");
                self.discard(env, "died");
                Err(e.into())
            }
            Err(_) => {
                // The environment is still running the invocation: kill it,
                // and start afresh next time.
                tracing::warn!(
                    function,
                    env = env.id(),
                    request_id,
                    "invocation timed out; replacing its environment"
                );
                self.discard(env, "timeout");
                Err(InvokeError::Timeout)
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
        for env in envs {
            env.stop(Duration::from_secs(2)).await;
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
