//! Prometheus metrics of the gateway, served on `/metrics`.
//!
//! Counters are by route (API Gateway's route key, e.g. `ANY /ping`, or
//! `unmatched`) and status; the histogram is by route; the pool
//! gauges (waiting requests, busy and live environments) and counters (cold
//! starts, replaced environments) are by function.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};

// Route and function names are `Arc<str>`: a lookup clones a pointer, not
// the name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    function: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Authorization {
    authorizer: String,
    /// `allowed`, `denied` (403), `unauthorized` (401: no identity) or
    /// `failed` (500).
    result: &'static str,
    /// `function` (the authorizer ran), `cache`, or `none` (401s).
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionReason {
    function: String,
    reason: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Handles to every metric; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    queued: Family<FunctionLabel, Gauge>,
    busy: Family<FunctionLabel, Gauge>,
    live: Family<FunctionLabel, Gauge>,
    cold_starts: Family<FunctionLabel, Counter>,
    restarts: Family<FunctionReason, Counter>,
    suppressed: Family<FunctionLabel, Counter>,
    log_dropped: Family<FunctionLabel, Counter>,
    invocations: Family<FunctionStart, Histogram, fn() -> Histogram>,
    max_memory: Family<FunctionLabel, Gauge>,
    budget_bytes: Gauge,
    budget_held: Gauge,
    over_budget: Counter,
    evicted: Counter,
    relieved: Counter,
    authorizations: Family<Authorization, Counter>,
    events_queued: Family<FunctionLabel, Gauge>,
    events: Family<FunctionOutcome, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionOutcome {
    function: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionStart {
    function: Arc<str>,
    /// `cold` for an environment's first invocation (its init included),
    /// else `warm`.
    start: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kf_gateway");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let queued = Family::<FunctionLabel, Gauge>::default();
        let busy = Family::<FunctionLabel, Gauge>::default();
        let live = Family::<FunctionLabel, Gauge>::default();
        let cold_starts = Family::<FunctionLabel, Counter>::default();
        let restarts = Family::<FunctionReason, Counter>::default();
        let invocations =
            Family::<FunctionStart, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let max_memory = Family::<FunctionLabel, Gauge>::default();
        let log_dropped = Family::<FunctionLabel, Counter>::default();
        registry.register(
            "function_log_dropped_bytes",
            "Bytes of functions' output dropped for passing their environment's rate (1 MiB a second), by function",
            log_dropped.clone(),
        );
        let suppressed = Family::<FunctionLabel, Counter>::default();
        registry.register(
            "environment_starts_suppressed",
            "Requests answered with a function's last start failure while its new environments are backed off, by function",
            suppressed.clone(),
        );
        registry.register(
            "requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register("request_duration_seconds", "Time to answer, by route", latency.clone());
        registry.register("queue_depth", "Requests waiting for an environment", queued.clone());
        registry.register("environments_busy", "Environments running an invocation", busy.clone());
        registry.register("environments", "Environments alive, idle or busy", live.clone());
        registry.register(
            "cold_starts",
            "Invocations that started a new environment",
            cold_starts.clone(),
        );
        registry.register(
            "environment_replacements",
            "Environments killed and replaced, by reason",
            restarts.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Time from handing an event to an environment to its answer (Lambda's REPORT Duration), by function and cold or warm start",
            invocations.clone(),
        );
        registry.register(
            "environment_max_memory_bytes",
            "Highest peak resident memory of a warm environment's processes (Lambda's REPORT Max Memory Used), sampled when scraped",
            max_memory.clone(),
        );
        let budget_bytes = Gauge::default();
        let budget_held = Gauge::default();
        let over_budget = Counter::default();
        registry.register(
            "memory_budget_bytes",
            "Bytes that requests in flight and in the queue may hold at once",
            budget_bytes.clone(),
        );
        registry.register(
            "memory_budget_held_bytes",
            "Bytes of the budget held by requests now",
            budget_held.clone(),
        );
        registry.register(
            "memory_budget_refusals",
            "Requests turned away with a 503 because the memory budget was full",
            over_budget.clone(),
        );
        let evicted = Counter::default();
        registry.register(
            "connections_evicted",
            "Connections waiting for a request head that were closed to make room for a new one at the connection cap",
            evicted.clone(),
        );
        let relieved = Counter::default();
        registry.register(
            "connections_closed_for_memory",
            "Connections whose answers had waited longest to be read, closed because a request needed the memory budget's bytes",
            relieved.clone(),
        );
        let authorizations = Family::<Authorization, Counter>::default();
        registry.register(
            "authorizations",
            "Requests judged by a Lambda authorizer, by result (allowed, denied, unauthorized, failed) and source (function, cache, none)",
            authorizations.clone(),
        );
        let events_queued = Family::<FunctionLabel, Gauge>::default();
        registry.register(
            "events_queued",
            "Asynchronous invocations (the Invoke API's Event type) queued or waiting to be retried, by function",
            events_queued.clone(),
        );
        let events = Family::<FunctionOutcome, Counter>::default();
        registry.register(
            "events",
            "Asynchronous invocations by function and outcome: queued, succeeded, retried, dropped_age (past MaximumEventAgeInSeconds), dropped_retries (failed past MaximumRetryAttempts), lost_shutdown (still queued or running when the grace period ended)",
            events.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                events_queued,
                events,
                authorizations,
                budget_bytes,
                budget_held,
                over_budget,
                evicted,
                relieved,
                invocations,
                max_memory,
                registry,
                requests,
                latency,
                queued,
                busy,
                live,
                cold_starts,
                restarts,
                suppressed,
                log_dropped,
            }),
        }
    }

    /// The metrics of one route (or of `unmatched`, `/healthz`, `/readyz`),
    /// to keep: counting a request then takes no lookup by name.
    pub fn route(&self, route: &str) -> RouteMetrics {
        RouteMetrics { route: Arc::from(route), metrics: self.clone(), latency: OnceLock::new() }
    }

    /// The per-invocation metrics of one function, to keep (the pool does).
    pub fn function(&self, function: &str) -> FunctionMetrics {
        let function = Arc::<str>::from(function);
        let label = FunctionLabel { function: function.clone() };
        FunctionMetrics {
            queued: self.inner.queued.get_or_create(&label).clone(),
            busy: self.inner.busy.get_or_create(&label).clone(),
            warm: OnceLock::new(),
            cold: OnceLock::new(),
            function,
            metrics: self.clone(),
        }
    }

    pub(crate) fn set_live(&self, function: &str, live: usize) {
        self.inner.live.get_or_create(&label(function)).set(live as i64);
    }

    pub(crate) fn cold_start(&self, function: &str) {
        self.inner.cold_starts.get_or_create(&label(function)).inc();
    }

    pub(crate) fn max_memory(&self, function: &str, bytes: u64) {
        let gauge = self.inner.max_memory.get_or_create(&label(function));
        gauge.set(gauge.get().max(bytes as i64));
    }

    pub(crate) fn budget(&self, total: usize, available: usize) {
        self.inner.budget_bytes.set(total as i64);
        self.inner.budget_held.set(total.saturating_sub(available) as i64);
    }

    pub(crate) fn authorization(
        &self,
        authorizer: &str,
        result: &'static str,
        source: &'static str,
    ) {
        let key = Authorization { authorizer: authorizer.to_owned(), result, source };
        self.inner.authorizations.get_or_create(&key).inc();
    }

    pub(crate) fn events_queued(&self, function: &str, queued: usize) {
        self.inner.events_queued.get_or_create(&label(function)).set(queued as i64);
    }

    pub(crate) fn event(&self, function: &str, outcome: &'static str) {
        let key = FunctionOutcome { function: function.to_owned(), outcome };
        self.inner.events.get_or_create(&key).inc();
    }

    pub(crate) fn connection_evicted(&self) {
        self.inner.evicted.inc();
    }

    pub(crate) fn closed_for_memory(&self, connections: u64) {
        self.inner.relieved.inc_by(connections);
    }

    pub(crate) fn over_budget(&self) {
        self.inner.over_budget.inc();
    }

    pub(crate) fn log_dropped(&self, function: &str, bytes: u64) {
        self.inner.log_dropped.get_or_create(&label(function)).inc_by(bytes);
    }

    pub(crate) fn start_suppressed(&self, function: &str) {
        self.inner.suppressed.get_or_create(&label(function)).inc();
    }

    pub(crate) fn restart(&self, function: &str, reason: &str) {
        let key = FunctionReason { function: function.to_owned(), reason: reason.to_owned() };
        self.inner.restarts.get_or_create(&key).inc();
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

fn label(function: &str) -> FunctionLabel {
    FunctionLabel { function: Arc::from(function) }
}

/// One route's metrics (see [`Metrics::route`]). Its latency histogram is
/// made on first use, so that a route never asked for shows no series, as
/// before it was kept.
#[derive(Debug)]
pub struct RouteMetrics {
    route: Arc<str>,
    metrics: Metrics,
    latency: OnceLock<Histogram>,
}

impl RouteMetrics {
    /// The route's label: its key, e.g. `ANY /ping`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Counts an answered request.
    pub fn answered(&self, status: u16, seconds: f64) {
        let inner = &self.metrics.inner;
        inner.requests.get_or_create(&RouteStatus { route: self.route.clone(), status }).inc();
        let latency = self.latency.get_or_init(|| {
            inner.latency.get_or_create(&RouteLabel { route: self.route.clone() }).clone()
        });
        latency.observe(seconds);
    }
}

/// One function's per-invocation metrics (see [`Metrics::function`]).
#[derive(Debug)]
pub struct FunctionMetrics {
    function: Arc<str>,
    metrics: Metrics,
    queued: Gauge,
    busy: Gauge,
    warm: OnceLock<Histogram>,
    cold: OnceLock<Histogram>,
}

impl FunctionMetrics {
    pub(crate) fn queue_add(&self, delta: i64) {
        self.queued.inc_by(delta);
    }

    pub(crate) fn busy_add(&self, delta: i64) {
        self.busy.inc_by(delta);
    }

    /// Counts an invocation that took `seconds`, a cold start if `cold`.
    pub(crate) fn invocation(&self, seconds: f64, cold: bool) {
        let (cell, start) = if cold { (&self.cold, "cold") } else { (&self.warm, "warm") };
        let histogram = cell.get_or_init(|| {
            let key = FunctionStart { function: self.function.clone(), start };
            self.metrics.inner.invocations.get_or_create(&key).clone()
        });
        histogram.observe(seconds);
        if cold {
            self.metrics.cold_start(&self.function);
        }
    }
}
