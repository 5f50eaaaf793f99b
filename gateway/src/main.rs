//! `gateway`: serve the functions over HTTP (see the crate docs), or, on
//! AWS Lambda, become the function the image is configured to run.

use clap::Parser;
use gateway::config::{Config, LogFormat};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // On AWS Lambda (a container image), the runtime API is already there:
    // run the function itself, named by the image's command or _HANDLER.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return exec_function();
    }
    let config = Config::parse();
    init_tracing(config.log_format);
    let workers = config.workers.unwrap_or_else(|| gateway::cgroup::available_cpus().get()).max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        gateway::run(config, listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gateway failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stopping only when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("KF_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

/// Replaces this process with `<functions dir>/<name>/bootstrap`.
fn exec_function() -> ExitCode {
    let name =
        std::env::args().nth(1).or_else(|| std::env::var("_HANDLER").ok()).unwrap_or_default();
    let dir = std::env::var("KF_FUNCTIONS_DIR").unwrap_or_else(|_| "/opt/kf-api/functions".into());
    if name.is_empty() || name.contains('/') {
        eprintln!("on AWS Lambda: set the image command to a function name (hello, ping, docs)");
        return ExitCode::FAILURE;
    }
    let bootstrap = Path::new(&dir).join(&name).join("bootstrap");
    let error = std::process::Command::new(&bootstrap).exec();
    eprintln!("cannot run {}: {error}", bootstrap.display());
    ExitCode::FAILURE
}
