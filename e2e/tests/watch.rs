//! The API as a developer runs it locally: `cargo lambda watch` serving every
//! function on its real path, on a free loopback port, checked over HTTP.
//!
//! Needs `cargo lambda`: `make test` installs it into `.venv`, where this
//! test finds it; otherwise set `CARGO_LAMBDA` or put it on `PATH`.

use e2e::{Server, check_api, free_port, workspace_root};
use std::process::Command;
use std::time::Duration;

/// How long the first request may take: the watcher builds the functions
/// on demand, which on a cold target directory means compiling them.
const STARTUP: Duration = Duration::from_secs(600);

#[test]
fn every_route_and_error_over_http() {
    let root = workspace_root();
    // CARGO_LAMBDA, else the project's venv that `make test` fills, else PATH.
    let venv = root.join(".venv/bin/cargo-lambda");
    let found = match std::env::var_os("CARGO_LAMBDA") {
        Some(path) => Some(path.into()),
        None if venv.exists() => Some(venv),
        None => e2e::on_path("cargo-lambda"),
    };
    let Some(cargo_lambda) = e2e::tool("cargo-lambda", found) else { return };
    let mut command = Command::new(cargo_lambda);
    let port = free_port();
    command
        .args(["lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .current_dir(root);
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cargo-lambda-watch.log");
    let mut watch = Server::start(command, port, log);
    watch.wait_for("/ping", 200, STARTUP);
    check_api(&watch.base);
}
