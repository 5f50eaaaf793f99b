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
    // The image's HEALTHCHECK: `gateway probe http://127.0.0.1:8080/healthz`.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("probe") {
        return probe(args.get(2).map_or("http://127.0.0.1:8080/healthz", String::as_str));
    }
    keep_big_buffers_out_of_the_heap();
    raise_open_files_limit();
    let config = Config::parse();
    init_tracing(config.log_format);
    // The template first: a key it cannot honour stops the start, naming it.
    let template = match gateway::template::load(
        &config.template,
        &config.parameter_overrides,
        &config.region,
    ) {
        Ok(template) => template,
        Err(e) => {
            tracing::error!(error = %e, "the template cannot configure the gateway");
            return ExitCode::from(2);
        }
    };
    let workers = config.workers.unwrap_or_else(|| gateway::cgroup::available_cpus().get()).max(1);
    // One CPU: one thread does it all, with no hand-offs between threads
    // (a pod limited to one CPU, or the bench's pinned core).
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Listening for the signals before anything else: as PID 1, a signal
        // nobody handles is dropped.
        let shutdown = shutdown_signal()?;
        let listener = gateway::server::listen(config.listen)?;
        let admin = tokio::net::TcpListener::bind(config.admin_listen).await?;
        let probes = match config.probe_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let listeners = gateway::Listeners { public: listener, admin, probes };
        gateway::run(config, template, listeners, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gateway failed");
            ExitCode::FAILURE
        }
    }
}

/// Makes glibc give every buffer of 128 KiB or more its own mapping, returned
/// to the system when freed. By default the threshold rises to the largest
/// such buffer freed so far, after which request bodies of megabytes come
/// from the heap and stay resident when freed: the pod's memory would then
/// be the largest burst ever served, not the requests held now (which the
/// memory budget bounds).
fn keep_big_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in `main`, before any other thread exists;
    // mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Lets the process open as many files as its hard limit allows: every
/// connection is a descriptor, and the default soft limit (often 1,024)
/// would make accept fail below the connection cap, the functions' pipes
/// and sockets included. Go's runtime does the same at start.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a struct of our own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A future that resolves on the first SIGTERM (Kubernetes) or SIGINT
/// (Ctrl-C); the handlers are installed when this is called.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
    })
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

/// Exits 0 if `url` (plain `http://host:port/path`) answers 200 within two
/// seconds. The runtime image has no curl; this is its health check.
fn probe(url: &str) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("probe: only http:// URLs: {url}");
        return ExitCode::FAILURE;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let timeout = Duration::from_secs(2);
    let answer = (|| -> std::io::Result<String> {
        let addr = authority
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        write!(stream, "GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n")?;
        let mut head = [0u8; 16];
        let n = stream.read(&mut head)?;
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    })();
    match answer {
        Ok(status) if status.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("probe: {url} answered {status:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("probe: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
