//! The function runtime of a pod: the same Lambda function binaries that
//! run on AWS, served over plain HTTP, each in execution environments that
//! poll the Lambda Runtime API as on Lambda.
//!
//! A request goes: [`server`] (accept, limits, request id, graceful
//! shutdown) → [`proxy`] (the pipeline: own endpoints, route, throttle,
//! authorizer) → [`intake`] (admission, memory budget, body) → [`event`]
//! (HTTP to an API Gateway HTTP API event) → [`pool`] (queue, one
//! invocation per environment) → [`environment`] (a bootstrap process, and
//! either the gateway's own [`runtime_api`] or the real AWS RIE in front of
//! it) and back. Every answer the gateway gives itself, instead of a
//! function, is a [`refusal::Refusal`], with one response each.
//!
//! * [`invoke_api`]: Lambda's Invoke API on the admin port: a function
//!   called by name, through the same queue and budget.
//! * [`events`]: the Invoke API's asynchronous invocations: a bounded
//!   queue per function, retries, and their drain at shutdown.
//! * [`extension_api`]: Lambda's Extensions API beside each environment's
//!   Runtime API: a function's external extensions, their registration and
//!   events, and the phases they take part in.
//! * [`signature`]: who calls the Invoke API: AWS Signature Version 4
//!   against the pod's access keys.
//! * [`config`]: flags and environment variables.
//! * [`connections`]: the connections a port holds, and which gives way
//!   to a new one at the cap, or to a request the budget cannot hold (the
//!   slow-client defence).
//! * [`template`]: the SAM template read into plain data: functions,
//!   routes, timeouts, variables, limits.
//! * [`routes`]: method and path to function, as API Gateway chooses.
//! * [`throttle`]: the HTTP API's route throttling, a token bucket a route.
//! * [`authorize`]: the HTTP API's Lambda authorizers, with their cache.
//! * [`reaper`]: starting children and reaping all of them (PID 1 duty).
//! * [`logs`]: the functions' output, passed on a line at a time, bounded.
//! * [`cgroup`]: the CPUs the container may use, to size the pools.
//! * [`metrics`]: Prometheus metrics for `/metrics`.
//! * [`budget`]: the bytes requests may hold at once, shared by all.
//! * [`outbox`]: answers on their way out, charged until written.
//! * [`peer`]: which process is at the other end of a loopback connection
//!   (an environment's Runtime API serves only its own processes).
//! * [`refusal`]: every way the gateway answers a request itself.
//! * [`ids`]: request ids and the dates in events and log stream names.
//! * `testing` (feature `testing`): fake environments, templates built in
//!   code, and the gateway started in-process, for `tests/http.rs`.

pub mod authorize;
pub mod budget;
pub mod cgroup;
pub mod config;
pub mod connections;
pub mod environment;
pub mod event;
pub mod events;
pub mod extension_api;
pub mod ids;
pub mod intake;
pub mod invoke_api;
pub mod logs;
pub mod metrics;
pub mod outbox;
pub mod peer;
pub mod pool;
pub mod proxy;
pub mod reaper;
pub mod refusal;
pub mod routes;
pub mod runtime_api;
pub mod server;
pub mod signature;
pub mod template;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;

use authorize::Authorizer;
use budget::Budget;
use config::{Config, Emulator, LogFormat};
use environment::builtin::Builtin;
use environment::rie::Rie;
use environment::{Launcher, Spec};
use invoke_api::InvokeApi;
use metrics::Metrics;
use pool::Pool;
use proxy::Gateway;
use reaper::Reaper;
use routes::Router;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use template::{AuthorizerSpec, Function, Template};
use tokio::net::TcpListener;

/// Lambda's limit on a function's init phase: a prewarmed environment that
/// takes longer is given up.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("--functions: the template has no function {0:?} (it has {1})")]
    UnknownFunction(String, String),
    #[error("function {0}: {1}")]
    Extensions(String, String),
    #[error("--invoke-keys {0}: {1}")]
    InvokeKeys(String, String),
}

/// The ports the gateway serves, bound by its caller (on port 0 in tests).
#[derive(Debug)]
pub struct Listeners {
    /// The API, for the LoadBalancer's clients.
    pub public: TcpListener,
    /// `/metrics` and Lambda's Invoke API, for the cluster's pods.
    pub admin: TcpListener,
    /// `/healthz` and `/readyz` alone, for the kubelet, if asked for.
    pub probes: Option<TcpListener>,
}

/// Serves the functions of `template` on `listeners` with `config` until
/// `shutdown` resolves, then drains and stops every environment. Each
/// function's environments are the kind `config.emulator` names: the
/// built-in Runtime API or the AWS RIE.
pub async fn run(
    config: Config,
    template: Template,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let (emulator, rie) = (config.emulator, config.rie.clone());
    let launch = move |spec: Spec| -> Box<dyn Launcher> {
        match emulator {
            Emulator::Builtin => Box::new(Builtin::new(spec)),
            Emulator::Rie => Box::new(Rie::new(spec, rie.clone())),
        }
    };
    serve(config, template, listeners, launch, shutdown).await
}

/// [`run`] with the environments `launch` makes from each function's
/// [`Spec`]: the seam where the in-process tests put their fakes
/// (`testing`). Everything else (routes, throttling, authorizers, budget,
/// queue, drain) is the gateway's own.
pub async fn serve(
    config: Config,
    template: Template,
    listeners: Listeners,
    mut launch: impl FnMut(Spec) -> Box<dyn Launcher>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let Listeners { public: listener, admin, probes } = listeners;
    let names: Vec<&str> = template.functions.iter().map(|f| f.name.as_str()).collect();
    if let Some(unknown) = config.functions.iter().find(|f| !names.contains(&f.as_str())) {
        return Err(StartError::UnknownFunction(unknown.clone(), names.join(", ")));
    }
    let serves =
        |name: &str| config.functions.is_empty() || config.functions.iter().any(|f| f == name);
    let reaper = Reaper::start()?;
    let metrics = Metrics::new();
    let router = Router::new(&template.routes, serves);
    let authorizer_names: Vec<&str> =
        router.routes().iter().filter_map(|r| r.authorizer.as_deref()).collect();
    let authorizer_specs: Vec<&AuthorizerSpec> = template
        .authorizers
        .iter()
        .filter(|a| authorizer_names.contains(&a.name.as_str()))
        .collect();
    // Those it serves (their routes, and by name the Invoke API), and the
    // authorizers in front of their routes.
    let runs = |name: &str| serves(name) || authorizer_specs.iter().any(|a| a.function == name);
    let envs = config.envs.unwrap_or_else(|| cgroup::available_cpus().get()).max(1);
    let memory_limit = cgroup::memory_limit();
    let budget =
        Budget::new(config.memory_budget.unwrap_or_else(|| budget::default_for(memory_limit)));
    let mut pools = HashMap::new();
    let mut targets = Vec::new();
    let mut queues = Vec::new();
    for function in template.functions.iter().filter(|f| runs(&f.name)) {
        // The functions' output passes through the gateway, bounded.
        let spec = function_spec(&config, function);
        let extensions = function_extensions(&spec.bootstrap)
            .map_err(|why| StartError::Extensions(function.name.clone(), why))?;
        if config.emulator == Emulator::Rie
            && !extensions.is_empty()
            && !environment::rie::has_extensions_mountpoint()
            && [spec.bootstrap.as_path(), config.rie.as_path()]
                .iter()
                .any(|p| p.starts_with("/opt"))
        {
            let why = "under --emulator rie its extensions are bound at /opt/extensions in a mount \
                       namespace of the RIE's own, and with no /opt/extensions to bind over, /opt \
                       is replaced there, which would hide the bootstrap or the RIE: create /opt/extensions";
            return Err(StartError::Extensions(function.name.clone(), why.into()));
        }
        let spec = Spec { logs: Some(metrics.clone()), extensions, ..spec };
        let launcher = launch(spec);
        if !launcher.can_start() {
            let bootstrap = launcher.spec().bootstrap.display();
            tracing::error!(function = function.name, %bootstrap, "function bootstrap missing");
        }
        // ReservedConcurrentExecutions caps the function's environments.
        let max_envs = function.reserved_concurrency.map_or(envs, |n| n.min(envs));
        let pool =
            Arc::new(Pool::new(launcher, reaper.clone(), metrics.clone(), max_envs, config.queue));
        // Its asynchronous invocations: a quarter of the budget at most, so
        // that one function's backlog cannot shut the routes out.
        let policy = events::Policy {
            retries: function.event_retries,
            max_age: function.event_max_age,
            first_retry: events::FIRST_RETRY,
            max_queued: events::MAX_QUEUED,
            max_bytes: budget.total() / 4,
        };
        let queue = events::Queue::start(pool.clone(), policy, metrics.clone(), max_envs);
        queues.push(queue.clone());
        let target = invoke_api::Target { pool: pool.clone(), events: queue };
        targets.push((vec![function.name.clone(), function.logical_id.clone()], target));
        pools.insert(Arc::<str>::from(function.name.as_str()), pool);
    }
    let mut authorizers = HashMap::new();
    for spec in authorizer_specs {
        if let Some(pool) = pools.get(spec.function.as_str()) {
            let authorizer = Authorizer::new(spec.clone(), pool.clone());
            authorizers.insert(Arc::<str>::from(spec.name.as_str()), authorizer);
        }
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin.local_addr()?,
        probes = probes.as_ref().and_then(|p| p.local_addr().ok()).map(|a| a.to_string()),
        memory_limit,
        memory_budget = budget.total(),
        max_connections = config.max_connections,
        emulator = ?config.emulator,
        envs_per_function = envs,
        queue = config.queue,
        functions = ?pools.keys().collect::<Vec<_>>(),
        template_throttle = ?template.throttle,
        throttle = config.throttle,
        "gateway starting"
    );
    let verifier = invoke_verifier(&config)?;
    let invoke = Arc::new(InvokeApi::new(
        targets,
        verifier,
        budget.clone(),
        metrics.clone(),
        config.region.clone(),
        config.access_log,
    ));
    let local_port = listener.local_addr()?.port();
    let gateway = Arc::new(Gateway::new(proxy::Components {
        router,
        pools,
        authorizers,
        metrics,
        // The template's throttling only when the operator asks for it
        // (per pod; see `Config::throttle`).
        throttle: template.throttle.filter(|_| config.throttle),
        access_log: config.access_log,
        local_port,
        budget,
        region: config.region.clone(),
    }));
    if config.prewarm {
        // All functions at once, each within Lambda's init limit: a function
        // that hangs in its init must not hold up the others or the start.
        let warming: Vec<_> = gateway
            .pools()
            .cloned()
            .map(|pool| {
                tokio::spawn(async move {
                    if let Err(e) = pool.prewarm(INIT_TIMEOUT).await {
                        tracing::error!(function = pool.function(), error = %e, "prewarm failed");
                    }
                })
            })
            .collect();
        for task in warming {
            let _ = task.await;
        }
    }
    let timing = server::Shutdown { delay: config.shutdown_delay, grace: config.grace };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_stopped = futures_util::FutureExt::shared(async {
        let _ = admin_stopped.await;
    });
    let probes = probes.map(|probes| {
        tokio::spawn(server::run_probes(probes, gateway.clone(), admin_stopped.clone()))
    });
    let admin = tokio::spawn(server::run_admin(admin, gateway.clone(), invoke, admin_stopped));
    // On SIGTERM the asynchronous invocations' queues run down beside the
    // in-flight requests, within the same delay and grace.
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        shutdown.await;
        let _ = signalled.send(());
    };
    let draining = tokio::spawn(async move {
        let _ = on_signal.await;
        let deadline = tokio::time::Instant::now() + timing.delay + timing.grace;
        let drains = queues.iter().map(|queue| queue.drain(deadline));
        futures_util::future::join_all(drains).await.into_iter().sum::<usize>()
    });
    server::run(listener, gateway.clone(), shutdown, timing, config.max_connections).await;
    if let Ok(lost) = draining.await
        && lost > 0
    {
        tracing::warn!(lost, "asynchronous invocations lost at shutdown (each is logged above)");
    }
    // The edge has stopped taking requests; the environments go last.
    for pool in gateway.pools() {
        pool.shutdown(Duration::from_secs(1)).await;
    }
    tracing::info!("stopped");
    let _ = stop_admin.send(());
    let _ = admin.await;
    if let Some(probes) = probes {
        let _ = probes.await;
    }
    Ok(())
}

/// How the Invoke API checks its callers, from `--invoke-auth` and the
/// keys in `--invoke-keys` (none when the file is absent: every call is
/// then refused, and the log says so once).
fn invoke_verifier(config: &Config) -> Result<signature::Verifier, StartError> {
    if config.invoke_auth == config::InvokeAuth::None {
        tracing::warn!(
            "the Invoke API takes unsigned calls from anyone who reaches the admin port (--invoke-auth none)"
        );
        return Ok(signature::Verifier::Anyone);
    }
    let path = config.invoke_keys.display().to_string();
    let keys = match std::fs::read_to_string(&config.invoke_keys) {
        Ok(text) => signature::Keys::parse(&text).map_err(|e| StartError::InvokeKeys(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => signature::Keys::default(),
        Err(e) => return Err(StartError::InvokeKeys(path, e.to_string())),
    };
    if keys.is_empty() {
        tracing::warn!(keys = %config.invoke_keys.display(), "the Invoke API has no access keys: every call is refused");
    } else {
        tracing::info!(
            keys = keys.len(),
            "the Invoke API takes calls signed with AWS Signature Version 4"
        );
    }
    Ok(signature::Verifier::Keys { keys, region: config.region.clone() })
}

/// How to start `function`'s environments: its bootstrap, and the
/// environment variables Lambda gives a custom runtime
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>)
/// after the template's own `Environment.Variables`.
/// Each environment adds its own `AWS_LAMBDA_RUNTIME_API`,
/// `AWS_LAMBDA_LOG_STREAM_NAME` and `AWS_LAMBDA_INITIALIZATION_TYPE`.
pub fn function_spec(config: &Config, function: &Function) -> Spec {
    let name = function.name.as_str();
    // Absolute: the bootstrap starts in its own directory, where a relative
    // path would no longer lead to it.
    let bootstrap = config.bootstrap(name);
    let bootstrap = std::path::absolute(&bootstrap).unwrap_or(bootstrap);
    let task_root = bootstrap.parent().map(|p| p.display().to_string()).unwrap_or_default();
    // Lambda's default format is Text.
    let json = match config.function_log_format {
        Some(format) => format == LogFormat::Json,
        None => function.log_format.as_deref() == Some("JSON"),
    };
    let mut vars: Vec<(String, String)> =
        function.variables.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let lambda = [
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", function.memory_size.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_FORMAT", if json { "JSON" } else { "Text" }.to_owned()),
        ("AWS_REGION", config.region.clone()),
        ("AWS_DEFAULT_REGION", config.region.clone()),
        // A custom runtime's handler is its executable.
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", task_root),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ];
    vars.extend(lambda.into_iter().map(|(k, v)| (k.to_owned(), v)));
    // Lambda sets the level only for JSON logs (advanced logging controls).
    if json {
        let level = config
            .function_log_level
            .clone()
            .or_else(|| function.log_level.clone())
            .unwrap_or_else(|| "INFO".to_owned());
        vars.push(("AWS_LAMBDA_LOG_LEVEL".to_owned(), level));
    }
    Spec {
        function: Arc::from(name),
        arn: Arc::from(format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{name}", config.region)),
        bootstrap,
        vars,
        timeout: function.timeout,
        logs: None,
        extensions: Vec::new(),
    }
}

/// The external extensions of the function whose bootstrap is
/// `bootstrap`: every file in the `extensions/` directory beside it, in
/// name order (Lambda's `/opt/extensions`, which Lambda lists the same way).
/// None when there is no such directory. Refused, so that the gateway does
/// not start at all: a file that is not executable (Lambda would fail every
/// init with it), and more than Lambda's ten.
pub fn function_extensions(bootstrap: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = bootstrap.parent().map(|d| d.join("extensions")) else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?.path();
        // Followed, as a symlink to a binary is a common way to install one.
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            continue;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("extension {} is not executable", path.display()));
        }
        found.push(path);
    }
    found.sort();
    if found.len() > extension_api::MAX_EXTENSIONS {
        return Err(format!(
            "{} has {} extensions; Lambda allows {}",
            dir.display(),
            found.len(),
            extension_api::MAX_EXTENSIONS
        ));
    }
    Ok(found)
}

/// The account in the functions' ARNs: the one the AWS RIE uses, so that a
/// function sees the same ARN under either emulator.
pub const ACCOUNT_ID: &str = "012345678912";
