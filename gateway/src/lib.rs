//! The HTTP front of a pod: the same Lambda function binaries that run on
//! AWS, served over plain HTTP through the AWS Lambda Runtime Interface
//! Emulator (RIE).
//!
//! A request goes: [`server`] (accept, limits, request id, graceful
//! shutdown) → [`proxy`] (own endpoints, route, body, status mapping) →
//! [`event`] (HTTP to an API Gateway HTTP API event) → [`pool`] (queue, one
//! invocation per environment) → [`environment`] (an RIE process and its
//! function) and back.
//!
//! * [`config`]: flags and environment variables.
//! * [`routes`]: path to function, from the project's one route table.
//! * [`reaper`]: starting children and reaping all of them (PID 1 duty).
//! * [`cgroup`]: the CPUs the container may use, to size the pools.
//! * [`metrics`]: Prometheus metrics for `/metrics`.

pub mod cgroup;
pub mod config;
pub mod environment;
pub mod event;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod reaper;
pub mod routes;
pub mod server;

use config::{Config, LogFormat};
use environment::Spec;
use metrics::Metrics;
use pool::Pool;
use proxy::Gateway;
use reaper::Reaper;
use routes::Router;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves `listener` with `config` until `shutdown` resolves, then drains
/// and stops every environment.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let reaper = Reaper::start()?;
    let metrics = Metrics::new();
    let router = Router::new();
    let envs = config.envs.unwrap_or_else(|| cgroup::available_cpus().get()).max(1);
    // The RIE kills a runtime that overruns its own timeout; ours is shorter,
    // so the gateway's fires first and answers the client.
    let rie_timeout = config.timeout.as_secs() + 2;
    let log_format = match config.log_format {
        LogFormat::Json => "JSON",
        LogFormat::Text => "Text",
    };
    let mut pools = HashMap::new();
    for function in router.functions() {
        let spec = Spec {
            function: Arc::from(function),
            rie: config.rie.clone(),
            bootstrap: config.bootstrap(function),
            vars: vec![
                ("AWS_LAMBDA_FUNCTION_NAME".into(), function.into()),
                ("AWS_LAMBDA_FUNCTION_TIMEOUT".into(), rie_timeout.to_string()),
                ("AWS_LAMBDA_LOG_FORMAT".into(), log_format.into()),
                ("LOG_LEVEL".into(), "warn".into()),
            ],
        };
        if !spec.bootstrap.is_file() {
            tracing::error!(function, bootstrap = %spec.bootstrap.display(), "function bootstrap missing");
        }
        let pool = Pool::new(spec, reaper.clone(), metrics.clone(), envs, config.queue);
        pools.insert(function, Arc::new(pool));
    }
    tracing::info!(
        listen = %listener.local_addr()?,
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
                    match tokio::time::timeout(timeout, pool.prewarm()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(function = pool.function(), error = %e, "prewarm failed")
                        }
                        Err(_) => tracing::error!(function = pool.function(), "prewarm timed out"),
                    }
                })
            })
            .collect();
        for task in warming {
            let _ = task.await;
        }
    }
    let timing = server::Shutdown { delay: config.shutdown_delay, grace: config.grace };
    server::run(listener, gateway, shutdown, timing).await;
    Ok(())
}
