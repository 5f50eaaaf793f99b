//! Asynchronous invocations: the Invoke API's `Event` type. The caller gets
//! a 202 as soon as the event is queued; the function runs it later, on the
//! same environments as every other request, and is tried again if it
//! fails, as Lambda does.
//!
//! * One queue per function, in memory, bounded in count
//!   ([`MAX_QUEUED`]) and in bytes (a quarter of the memory budget, and
//!   each event is charged to the budget while it is queued, so the two
//!   doors share one budget). A full queue is a 429.
//! * Drained by as many workers as the function may have environments.
//!   A worker takes a place in the pool's queue like any request and waits
//!   there in turn: both the places and the environments are handed out
//!   first come, first served, so an event runs after the synchronous
//!   requests already waiting when it reaches the pool, and before those
//!   that come after. Why not after every synchronous request: under a
//!   steady load the events would never run, and their queue would only
//!   fill; nobody waits on an event, but it must not starve either.
//! * A failed invocation (a function error, a timeout, a crashed
//!   environment) is tried again up to `EventInvokeConfig.
//!   MaximumRetryAttempts` times (Lambda's default, 2), waiting
//!   [`FIRST_RETRY`] before the first retry and twice that before the
//!   second, as Lambda does; an event older than `MaximumEventAgeInSeconds`
//!   when its turn comes is dropped. Each drop is logged with its request id
//!   and counted in `kf_gateway_events_total`.
//! * On SIGTERM the queue takes nothing more (503) and is run down,
//!   retries at once, until the grace period ends; whatever is still queued
//!   or running then is logged with its request id and counted
//!   (`lost_shutdown`). A pod that dies loses its queue: see
//!   `docs/api.md` for what Lambda promises that a pod's memory cannot.

use crate::budget::Account;
use crate::environment::Output;
use crate::metrics::Metrics;
use crate::pool::{InvokeError, Pool};
use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The largest event the queue takes: Lambda's limit for asynchronous
/// payloads (1 MB since 2025; 256 KB before), which also bounds what one
/// event holds while it waits.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// The most events one function's queue holds, retries waiting included.
pub const MAX_QUEUED: usize = 1_000;
/// Lambda's wait before the first retry of a failed event (the second
/// waits twice as long).
pub const FIRST_RETRY: Duration = Duration::from_secs(60);

/// How one function's events are kept and retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Tries after the first (`MaximumRetryAttempts`).
    pub retries: u32,
    /// Oldest an event may be when its turn comes (`MaximumEventAgeInSeconds`).
    pub max_age: Duration,
    /// The wait before the first retry; each further one doubles it.
    pub first_retry: Duration,
    /// Most events queued.
    pub max_queued: usize,
    /// Most bytes of events queued.
    pub max_bytes: usize,
}

/// Why an event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The function's queue is full (count or bytes).
    Full,
    /// The gateway is shutting down.
    ShuttingDown,
}

/// One event, from its 202 until it is done.
#[derive(Debug)]
struct Queued {
    request_id: String,
    event: Bytes,
    client_context: Option<String>,
    /// Its bytes, charged to the memory budget until it is done.
    account: Account,
    enqueued: Instant,
    /// Tries so far.
    attempts: u32,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Queued>,
    /// Retries, each with when it may run.
    delayed: Vec<(Instant, Queued)>,
    /// Request ids of the events being run.
    running: Vec<String>,
    bytes: usize,
    /// No more events are taken (shutdown).
    closed: bool,
    /// The grace period is over: what is left was counted as lost.
    abandoned: bool,
}

impl State {
    fn queued(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }
}

impl Queued {
    /// What it holds that a caller chose: its payload and client context.
    fn size(&self) -> usize {
        self.event.len() + self.client_context.as_ref().map_or(0, String::len)
    }
}

/// One function's queue of events and the workers that run them.
#[derive(Debug)]
pub struct Queue {
    pool: Arc<Pool>,
    policy: Policy,
    metrics: Metrics,
    state: Mutex<State>,
    /// Woken when the state changes.
    changed: Notify,
}

impl Queue {
    /// A queue in front of `pool`, and `workers` tasks that run it (as many
    /// as the function may have environments).
    pub fn start(pool: Arc<Pool>, policy: Policy, metrics: Metrics, workers: usize) -> Arc<Queue> {
        let queue = Arc::new(Queue {
            pool,
            policy,
            metrics,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        });
        for _ in 0..workers.max(1) {
            let queue = queue.clone();
            tokio::spawn(async move { queue.work().await });
        }
        queue
    }

    fn function(&self) -> &str {
        self.pool.function()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` and its client context (both already charged to
    /// `account`) as request `request_id`.
    pub fn enqueue(
        &self,
        request_id: &str,
        event: Bytes,
        client_context: Option<String>,
        account: Account,
    ) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::ShuttingDown);
        }
        let queued = Queued {
            request_id: request_id.to_owned(),
            event,
            client_context,
            account,
            enqueued: Instant::now(),
            attempts: 0,
        };
        if state.queued() >= self.policy.max_queued
            || state.bytes + queued.size() > self.policy.max_bytes
        {
            return Err(Refused::Full);
        }
        state.bytes += queued.size();
        state.ready.push_back(queued);
        self.metrics.events_queued(self.function(), state.queued());
        drop(state);
        self.metrics.event(self.function(), "queued");
        self.changed.notify_waiters();
        Ok(())
    }

    /// Events queued or waiting for a retry, and running.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.queued(), state.running.len())
    }

    /// A worker: runs events until the queue is closed and empty.
    async fn work(&self) {
        while let Some(event) = self.next().await {
            self.run(event).await;
        }
    }

    /// The next event to run, waiting for one; `None` once the queue is
    /// closed and nothing is left for this worker.
    async fn next(&self) -> Option<Queued> {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            let wake_at = {
                let mut state = self.lock();
                if state.abandoned {
                    return None;
                }
                let now = Instant::now();
                // Retries that are due, or all of them once shutting down.
                let closed = state.closed;
                let mut i = 0;
                while i < state.delayed.len() {
                    if closed || state.delayed[i].0 <= now {
                        let (_, event) = state.delayed.swap_remove(i);
                        state.ready.push_back(event);
                    } else {
                        i += 1;
                    }
                }
                if let Some(event) = state.ready.pop_front() {
                    state.running.push(event.request_id.clone());
                    return Some(event);
                }
                if state.closed && state.delayed.is_empty() {
                    return None;
                }
                state.delayed.iter().map(|(at, _)| *at).min()
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Runs one event: done, or queued again for a retry, or dropped.
    async fn run(&self, mut event: Queued) {
        let function = self.function().to_owned();
        let request_id = event.request_id.clone();
        if event.enqueued.elapsed() >= self.policy.max_age {
            tracing::warn!(
                function,
                request_id,
                attempts = event.attempts,
                max_age_s = self.policy.max_age.as_secs(),
                "asynchronous invocation dropped: older than MaximumEventAgeInSeconds"
            );
            self.finish(event, Some("dropped_age"));
            return;
        }
        let Ok(admission) = self.pool.admit_waiting().await else {
            // The pool has stopped: shutdown's count takes it.
            self.finish(event, None);
            return;
        };
        event.attempts += 1;
        // A synchronous caller's wait is bounded; an event's is not, beyond
        // its age, but one try waits at most the function's `Timeout`.
        let wait_until = Instant::now() + self.pool.timeout();
        let pool = self.pool.clone();
        let (id, payload, context, account) = (
            request_id.clone(),
            event.event.clone(),
            event.client_context.clone(),
            event.account.clone(),
        );
        // A task of its own: an invocation once started runs to its end.
        let task = tokio::spawn(async move {
            let extra = crate::pool::Extra { client_context: context, tail: false };
            pool.invoke_with(admission, &id, payload, extra, account, wait_until).await
        });
        let failure = match task.await {
            Ok(Ok((Output::Response(_) | Output::OverBudget, _))) => None,
            Ok(Ok((Output::Error { error_type, .. }, _))) => Some(error_type),
            Ok(Err(InvokeError::ShuttingDown)) => {
                self.finish(event, None);
                return;
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the invocation task failed: {e}")),
        };
        let Some(error) = failure else {
            self.finish(event, Some("succeeded"));
            return;
        };
        if event.attempts > self.policy.retries {
            tracing::warn!(
                function,
                request_id,
                attempts = event.attempts,
                error,
                "asynchronous invocation dropped: it failed past MaximumRetryAttempts"
            );
            self.finish(event, Some("dropped_retries"));
            return;
        }
        let wait = self.policy.first_retry.saturating_mul(1 << (event.attempts - 1).min(16));
        tracing::info!(
            function,
            request_id,
            attempts = event.attempts,
            error,
            retry_in_s = wait.as_secs_f64(),
            "asynchronous invocation failed; it will be tried again"
        );
        self.metrics.event(&function, "retried");
        let mut state = self.lock();
        state.running.retain(|r| *r != request_id);
        if !state.abandoned {
            state.delayed.push((Instant::now() + wait, event));
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// An event is done: its bytes are given back, its outcome counted.
    fn finish(&self, event: Queued, outcome: Option<&'static str>) {
        let mut state = self.lock();
        state.running.retain(|r| *r != event.request_id);
        state.bytes = state.bytes.saturating_sub(event.size());
        let (queued, abandoned) = (state.queued(), state.abandoned);
        drop(state);
        self.metrics.events_queued(self.function(), queued);
        // Once abandoned, shutdown has counted it already.
        if let Some(outcome) = outcome.filter(|_| !abandoned) {
            self.metrics.event(self.function(), outcome);
        }
        drop(event);
        self.changed.notify_waiters();
    }

    /// Shutdown: takes no more events, runs what is queued (retries at
    /// once) until `deadline`, then logs and counts every event still
    /// queued or running as lost. Returns how many were.
    pub async fn drain(&self, deadline: Instant) -> usize {
        self.lock().closed = true;
        self.changed.notify_waiters();
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            {
                let state = self.lock();
                if state.queued() == 0 && state.running.is_empty() {
                    return 0;
                }
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let mut guard = self.lock();
        guard.abandoned = true;
        let state = &mut *guard;
        let queued: Vec<String> = state
            .ready
            .drain(..)
            .chain(state.delayed.drain(..).map(|(_, event)| event))
            .map(|event| event.request_id)
            .collect();
        let running = state.running.clone();
        state.bytes = 0;
        drop(guard);
        let function = self.function();
        for (request_id, was) in
            queued.iter().map(|id| (id, "queued")).chain(running.iter().map(|id| (id, "running")))
        {
            tracing::warn!(
                function,
                request_id,
                was,
                "asynchronous invocation lost: the grace period ended before it ran"
            );
            self.metrics.event(function, "lost_shutdown");
        }
        self.metrics.events_queued(function, 0);
        self.changed.notify_waiters();
        queued.len() + running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Invocation;
    use crate::testing::{Record, Reply};

    /// The fake's reply: `ok` answers, `fail` is a function error,
    /// `fail-once:<id>` fails the first try of each event only, `slow`
    /// answers after 10 s.
    fn reply(invocation: &Invocation) -> Reply {
        static FAILED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        match &*invocation.event {
            b"ok" => Reply::Payload(Bytes::from_static(b"{}")),
            b"slow" => Reply::After(
                Duration::from_secs(10),
                Box::new(Reply::Payload(Bytes::from_static(b"{}"))),
            ),
            b"fail-once" => {
                let mut failed = FAILED.lock().expect("failed");
                if failed.contains(&invocation.request_id) {
                    Reply::Payload(Bytes::from_static(b"{}"))
                } else {
                    failed.push(invocation.request_id.clone());
                    Reply::Error("Once".into())
                }
            }
            _ => Reply::Error("Boom".into()),
        }
    }

    fn queue(
        retries: u32,
        max_age: Duration,
        max_queued: usize,
    ) -> (Arc<Queue>, Arc<Record>, Metrics) {
        let timeout = Duration::from_secs(30);
        let (pool, record, metrics) =
            crate::testing::fake_pool(Arc::new(reply), Duration::ZERO, 1, 4, timeout);
        let policy =
            Policy { retries, max_age, first_retry: FIRST_RETRY, max_queued, max_bytes: 1 << 20 };
        (Queue::start(pool, policy, metrics.clone(), 1), record, metrics)
    }

    fn put(queue: &Queue, id: &str, event: &'static str) -> Result<(), Refused> {
        queue.enqueue(id, Bytes::from_static(event.as_bytes()), None, Account::unlimited())
    }

    /// Lets the workers run until nothing changes for a (paused) second.
    async fn settle() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    fn count(metrics: &Metrics, outcome: &str) -> u64 {
        let text = metrics.encode();
        let line = format!(r#"kf_gateway_events_total{{function="fake",outcome="{outcome}"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0, |n| n.trim().parse().expect("a count"))
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_runs_once_and_is_done() {
        let (queue, record, metrics) = queue(2, Duration::from_secs(3600), 10);
        put(&queue, "e-1", "ok").expect("queued");
        settle().await;
        assert_eq!(Record::count(&record.invoked), 1);
        assert_eq!((count(&metrics, "queued"), count(&metrics, "succeeded")), (1, 1));
        assert_eq!(queue.counts(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_event_is_tried_again_after_one_then_two_minutes_then_dropped() {
        let (queue, record, metrics) = queue(2, Duration::from_secs(21_600), 10);
        put(&queue, "e-1", "fail").expect("queued");
        settle().await;
        assert_eq!(Record::count(&record.invoked), 1);
        // Not before a minute has passed.
        tokio::time::sleep(FIRST_RETRY - Duration::from_secs(2)).await;
        assert_eq!(Record::count(&record.invoked), 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(Record::count(&record.invoked), 2);
        // The second retry waits two minutes.
        tokio::time::sleep(2 * FIRST_RETRY - Duration::from_secs(2)).await;
        assert_eq!(Record::count(&record.invoked), 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(Record::count(&record.invoked), 3);
        settle().await;
        assert_eq!((count(&metrics, "retried"), count(&metrics, "dropped_retries")), (2, 1));
        assert_eq!(queue.counts(), (0, 0));
        // And never again.
        tokio::time::sleep(10 * FIRST_RETRY).await;
        assert_eq!(Record::count(&record.invoked), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn without_retries_a_failure_is_dropped_at_once_and_a_retry_can_succeed() {
        let (queue, record, metrics) = queue(0, Duration::from_secs(3600), 10);
        put(&queue, "e-1", "fail").expect("queued");
        settle().await;
        assert_eq!(count(&metrics, "dropped_retries"), 1);
        let (queue, _, metrics) = self::queue(1, Duration::from_secs(3600), 10);
        put(&queue, "e-2", "fail-once").expect("queued");
        tokio::time::sleep(FIRST_RETRY + Duration::from_secs(1)).await;
        assert_eq!((count(&metrics, "retried"), count(&metrics, "succeeded")), (1, 1));
        assert_eq!(Record::count(&record.invoked), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_past_its_age_is_dropped_unrun() {
        // Its retry would come after 60 s, past an age of 60 s.
        let (queue, record, metrics) = queue(2, Duration::from_secs(60), 10);
        put(&queue, "e-1", "fail").expect("queued");
        tokio::time::sleep(FIRST_RETRY + Duration::from_secs(1)).await;
        assert_eq!(Record::count(&record.invoked), 1);
        assert_eq!(count(&metrics, "dropped_age"), 1);
        assert_eq!(queue.counts(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_and_a_closed_one_too() {
        // The one environment is busy for 10 s with the first event, so the
        // rest wait in the queue.
        let (queue, _, _) = queue(2, Duration::from_secs(3600), 2);
        put(&queue, "e-1", "slow").expect("queued");
        settle().await;
        put(&queue, "e-2", "ok").expect("queued");
        put(&queue, "e-3", "ok").expect("queued");
        assert_eq!(put(&queue, "e-4", "ok"), Err(Refused::Full));
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(queue.drain(deadline).await, 0, "all ran within the grace period");
        assert_eq!(put(&queue, "e-5", "ok"), Err(Refused::ShuttingDown));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_runs_retries_at_once_and_counts_what_is_left() {
        let (queue, record, metrics) = queue(2, Duration::from_secs(3600), 10);
        put(&queue, "e-1", "fail-once").expect("queued");
        settle().await;
        assert_eq!(queue.counts(), (1, 0), "its retry waits");
        // The retry runs at once, and succeeds, well within the grace period.
        assert_eq!(queue.drain(Instant::now() + Duration::from_secs(5)).await, 0);
        assert_eq!(count(&metrics, "succeeded"), 1);
        let invoked = Record::count(&record.invoked);
        // Now a queue that cannot finish in time: one slow event running,
        // two waiting.
        let (queue, _, metrics) = self::queue(2, Duration::from_secs(3600), 10);
        for (id, event) in [("s-1", "slow"), ("s-2", "slow"), ("s-3", "ok")] {
            put(&queue, id, event).expect("queued");
        }
        settle().await;
        assert_eq!(queue.drain(Instant::now() + Duration::from_secs(5)).await, 3);
        assert_eq!(count(&metrics, "lost_shutdown"), 3);
        // The running one ends later; it is not counted twice.
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(count(&metrics, "succeeded"), 0);
        assert_eq!(queue.counts(), (0, 0));
        assert!(invoked >= 2);
    }
}
