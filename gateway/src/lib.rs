//! The function runtime of a pod: the same Lambda function binaries that
//! run on AWS, served over plain HTTP, each in execution environments that
//! poll the Lambda Runtime API as on Lambda.
//!
//! A request goes: [`server`] (accept, limits, request id, graceful
//! shutdown) → [`proxy`] (own endpoints, route, body, status mapping) →
//! [`event`] (HTTP to an API Gateway HTTP API event) → [`pool`] (queue, one
//! invocation per environment) → [`environment`] (a bootstrap process, and
//! either the gateway's own [`runtime_api`] or the real AWS RIE in front of
//! it) and back.
//!
//! * [`config`]: flags and environment variables.
//! * [`routes`]: path to function, from the project's one route table.
//! * [`reaper`]: starting children and reaping all of them (PID 1 duty).
//! * [`cgroup`]: the CPUs the container may use, to size the pools.
//! * [`metrics`]: Prometheus metrics for `/metrics`.

pub mod budget;
pub mod cgroup;
pub mod config;
pub mod environment;
pub mod event;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod reaper;
pub mod routes;
pub mod runtime_api;
pub mod server;

use budget::Budget;
use config::{Config, Emulator, LogFormat};
use environment::builtin::Builtin;
use environment::rie::Rie;
use environment::{Launcher, Spec};
use metrics::Metrics;
use pool::Pool;
use proxy::Gateway;
use reaper::Reaper;
use routes::Router;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves `listener` (and the admin port on `admin`) with `config` until
/// `shutdown` resolves, then drains and stops every environment.
pub async fn run(
    config: Config,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let reaper = Reaper::start()?;
    let metrics = Metrics::new();
    let router = Router::new();
    let envs = config.envs.unwrap_or_else(|| cgroup::available_cpus().get()).max(1);
    let mut pools = HashMap::new();
    for function in router.functions() {
        let spec = function_spec(&config, function);
        if !spec.bootstrap.is_file() {
            tracing::error!(function, bootstrap = %spec.bootstrap.display(), "function bootstrap missing");
        }
        let launcher: Box<dyn Launcher> = match config.emulator {
            Emulator::Builtin => Box::new(Builtin::new(spec)),
            Emulator::Rie => Box::new(Rie::new(spec, config.rie.clone(), config.timeout)),
        };
        let pool = Pool::new(launcher, reaper.clone(), metrics.clone(), envs, config.queue);
        pools.insert(function, Arc::new(pool));
    }
    let memory_limit = cgroup::memory_limit();
    let budget =
        Budget::new(config.memory_budget.unwrap_or_else(|| budget::default_for(memory_limit)));
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin.local_addr()?,
        memory_limit,
        memory_budget = budget.total(),
        max_connections = config.max_connections,
        emulator = ?config.emulator,
        envs_per_function = envs,
        queue = config.queue,
        timeout_ms = config.timeout.as_millis() as u64,
        "gateway starting"
    );
    let local_port = listener.local_addr()?.port();
    let gateway = Arc::new(Gateway::new(
        router,
        pools,
        metrics,
        config.timeout,
        config.access_log,
        local_port,
        budget,
    ));
    if config.prewarm {
        // All functions at once, each within the request timeout: a function
        // that hangs in its init must not hold up the others or the start.
        let warming: Vec<_> = gateway
            .pools()
            .cloned()
            .map(|pool| {
                let timeout = config.timeout;
                tokio::spawn(async move {
                    if let Err(e) = pool.prewarm(timeout).await {
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
    let admin = tokio::spawn(server::run_admin(admin, gateway.clone(), async {
        let _ = admin_stopped.await;
    }));
    server::run(listener, gateway, shutdown, timing, config.max_connections).await;
    let _ = stop_admin.send(());
    let _ = admin.await;
    Ok(())
}

/// How to start `function`'s environments: its bootstrap, and the
/// environment variables Lambda gives a custom runtime
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>).
/// Each environment adds its own `AWS_LAMBDA_RUNTIME_API`,
/// `AWS_LAMBDA_LOG_STREAM_NAME` and `AWS_LAMBDA_INITIALIZATION_TYPE`.
pub fn function_spec(config: &Config, function: &str) -> Spec {
    // Absolute: the bootstrap starts in its own directory, where a relative
    // path would no longer lead to it.
    let bootstrap = config.bootstrap(function);
    let bootstrap = std::path::absolute(&bootstrap).unwrap_or(bootstrap);
    let task_root = bootstrap.parent().map(|p| p.display().to_string()).unwrap_or_default();
    let log_format = match config.log_format {
        LogFormat::Json => "JSON",
        LogFormat::Text => "Text",
    };
    let mut vars = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", config.memory_size.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_FORMAT", log_format.to_owned()),
        ("AWS_REGION", config.region.clone()),
        ("AWS_DEFAULT_REGION", config.region.clone()),
        // A custom runtime's handler is its executable.
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", task_root),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ];
    // Lambda sets the level only for JSON logs (advanced logging controls).
    if config.log_format == LogFormat::Json {
        vars.push(("AWS_LAMBDA_LOG_LEVEL", config.function_log_level.clone()));
    }
    Spec {
        function: Arc::from(function),
        arn: Arc::from(format!(
            "arn:aws:lambda:{}:{ACCOUNT_ID}:function:{function}",
            config.region
        )),
        bootstrap,
        vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// The account in the functions' ARNs: the one the AWS RIE uses, so that a
/// function sees the same ARN under either emulator.
const ACCOUNT_ID: &str = "012345678912";
