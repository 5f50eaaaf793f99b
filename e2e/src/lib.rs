//! Black-box tests of the API as people run it: `cargo lambda watch`
//! (`tests/watch.rs`) and the container's process tree, gateway over RIE
//! over the functions (`tests/gateway.rs`). This library holds what both
//! share: starting a server process on a free loopback port, an HTTP
//! client, and [`check_api`], every route and error of the API.

use serde_json::{Value, json};
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ureq::Agent;

/// The workspace's root directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the e2e crate is in the workspace")
}

/// The project's SAM template, which configures both deployments.
pub fn template_path() -> PathBuf {
    workspace_root().join("template.yaml")
}

/// The functions of the project's template, in its order: the one list of
/// functions every test takes.
pub fn functions() -> Vec<String> {
    let template = gateway::template::load(&template_path(), &[], "us-east-1")
        .unwrap_or_else(|e| panic!("template.yaml: {e}"));
    template.functions.into_iter().map(|f| f.name).collect()
}

/// The gateway's and every function's binaries (the workspace's, built as
/// the Dockerfile builds them), once per test process with the test's own
/// profile; `target_tmpdir` is the test's `CARGO_TARGET_TMPDIR`, inside the
/// target directory.
pub fn binaries(target_tmpdir: &'static str) -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let release = !cfg!(debug_assertions);
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--bins", "--workspace", "--exclude", "e2e"]);
        if release {
            cargo.arg("--release");
        }
        let status = cargo.current_dir(workspace_root()).status().expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
        let target = Path::new(target_tmpdir).parent().expect("target dir");
        target.join(if release { "release" } else { "debug" })
    })
}

/// The binaries the stack tests run: those `cargo build` makes here, or the
/// shipped ones (`make test-shipped`): `KF_SHIPPED_IMAGE` names an image's
/// `/opt/kf-api` laid out by `tools/cross.sh` (its gateway and functions),
/// `KF_SHIPPED_FUNCTIONS` a `target/lambda` of `make build`'s Lambda
/// artifacts (`<name>/bootstrap`, behind this machine's gateway).
#[derive(Debug, Clone)]
pub struct Binaries {
    built: PathBuf,
    image: Option<PathBuf>,
    lambda: Option<PathBuf>,
}

impl Binaries {
    /// The binaries for this test run (see [`binaries`]).
    pub fn get(target_tmpdir: &'static str) -> Binaries {
        let var = |name: &str| std::env::var_os(name).map(|d| workspace_root().join(d));
        let image = var("KF_SHIPPED_IMAGE");
        let lambda = var("KF_SHIPPED_FUNCTIONS");
        // The gateway is built here unless the image brings its own.
        let built =
            if image.is_some() { PathBuf::new() } else { binaries(target_tmpdir).to_owned() };
        Binaries { built, image, lambda }
    }

    /// The gateway's executable.
    pub fn gateway(&self) -> PathBuf {
        match &self.image {
            Some(image) => image.join("gateway"),
            None => self.built.join("gateway"),
        }
    }

    /// `function`'s binary.
    pub fn function(&self, function: &str) -> PathBuf {
        match (&self.image, &self.lambda) {
            (Some(image), _) => image.join("functions").join(function).join("bootstrap"),
            (None, Some(lambda)) => lambda.join(function).join("bootstrap"),
            (None, None) => self.built.join(function),
        }
    }
}

/// Whether `path` is an ELF binary for a CPU other than this one's, which
/// runs under `qemu-aarch64` (Debian's qemu-user; no binfmt_misc needed).
pub fn is_foreign(path: &Path) -> bool {
    let mut header = [0u8; 20];
    let read = File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
    if read.is_err() || &header[..4] != b"\x7fELF" {
        return false;
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    const X86_64: u16 = 0x3e;
    const AARCH64: u16 = 0xb7;
    let here = if cfg!(target_arch = "x86_64") { X86_64 } else { AARCH64 };
    machine != here
}

/// A command that runs `program`, under qemu if it is for another CPU.
pub fn command(program: &Path) -> Command {
    if is_foreign(program) {
        let mut command = Command::new("qemu-aarch64");
        command.arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Puts `source` in `dir` as the function's `bootstrap`; a binary for
/// another CPU goes in as `bootstrap.bin`, with a `bootstrap` that runs it
/// under qemu.
pub fn install_bootstrap(source: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).expect("function dir");
    if is_foreign(source) {
        std::fs::copy(source, dir.join("bootstrap.bin")).expect("copy bootstrap");
        let wrapper = "#!/bin/sh\nexec qemu-aarch64 \"$(dirname \"$0\")/bootstrap.bin\" \"$@\"\n";
        std::fs::write(dir.join("bootstrap"), wrapper).expect("write the qemu wrapper");
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(dir.join("bootstrap"), mode).expect("chmod");
    } else {
        std::fs::copy(source, dir.join("bootstrap")).expect("copy bootstrap");
    }
}

/// The `aws-lambda-rie` to run: `AWS_LAMBDA_RIE`, else the pinned one that
/// `make test` builds into `.tools/bin`, else the one on `PATH`; or `None`
/// (the test is skipped, see [`tool`]).
pub fn rie() -> Option<PathBuf> {
    let found = match std::env::var_os("AWS_LAMBDA_RIE") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.exists()),
        None => {
            let tools = workspace_root().join(".tools/bin/aws-lambda-rie");
            if tools.exists() { Some(tools) } else { on_path("aws-lambda-rie") }
        }
    };
    tool("aws-lambda-rie", found)
}

/// `name` on `PATH`, if it is there.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A tool a test needs, or why there is none. A plain `cargo test` on a
/// fresh clone skips the tests whose tool is missing, saying so; `make
/// test` (and so CI) installs every tool and sets `KF_REQUIRE_TOOLS=1`,
/// under which a missing tool fails the test instead.
pub fn tool(name: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("KF_REQUIRE_TOOLS").is_some() => {
            panic!("{name} not found: `make test` installs it (KF_REQUIRE_TOOLS is set)")
        }
        None => {
            eprintln!("skipped: {name} not found; `make test` installs it and runs this test");
            None
        }
    }
}

/// A loopback port nobody listens on right now. Only for servers that must
/// be told their port before they bind (`cargo lambda watch`, the RIE, the
/// bench's peers): another process can take it in between. The gateway is
/// started on port 0 instead (`Server::start_gateway`).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// An HTTP client that reports every status as a response (never as an
/// error), follows no redirect, and gives up after `timeout`.
pub fn agent(timeout: Duration) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub allow: Option<String>,
    pub location: Option<String>,
    pub retry_after: Option<String>,
    /// `apigw-requestid`: the request's id, which is also its invocation's.
    pub request_id: Option<String>,
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Reads a response, or says why there is none.
pub fn read(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, String> {
    let mut response = result.map_err(|e| e.to_string())?;
    let header =
        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (content_type, allow, location, retry_after, request_id) = (
        header("content-type").unwrap_or_default(),
        header("allow"),
        header("location"),
        header("retry-after"),
        header("apigw-requestid"),
    );
    let body = response
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok(Reply {
        status: response.status().as_u16(),
        content_type,
        allow,
        location,
        retry_after,
        request_id,
        body,
    })
}

/// `GET base+path`.
pub fn get(agent: &Agent, base: &str, path: &str) -> Result<Reply, String> {
    read(agent.get(format!("{base}{path}")).call())
}

/// `POST base+path` with `body`, sent as `curl -d` sends it: with a form
/// content type, which must not matter.
pub fn post(agent: &Agent, base: &str, path: &str, body: &str) -> Result<Reply, String> {
    read(
        agent
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(body),
    )
}

/// A server process in its own process group, logging to a file; killed
/// with its whole group when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

/// A gateway's ports besides the public one, as base URLs.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The admin port: `/metrics`, the Invoke API.
    pub admin: String,
    /// The probes' port, when the gateway was given one.
    pub probes: Option<String>,
}

impl Server {
    /// Starts `command` (which must serve HTTP on `port`) with its output
    /// in `log`.
    pub fn start(mut command: Command, port: u16, log: PathBuf) -> Server {
        let out = File::create(&log).expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .process_group(0);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Server { child, base: format!("http://127.0.0.1:{port}"), log }
    }

    /// Starts a gateway `command` told to listen on `127.0.0.1:0` for both
    /// ports, and learns the addresses it bound from its "gateway starting"
    /// log line (JSON, the default format). Nothing is guessed: a port found
    /// free and then handed to a child can be taken by another test in
    /// between. Returns the server (its `base` the public port) and the
    /// other ports' base URLs.
    pub fn start_gateway(command: Command, log: PathBuf, within: Duration) -> (Server, Ports) {
        let mut server = Server::start(command, 0, log);
        let deadline = Instant::now() + within;
        loop {
            let text = server.log_text();
            let starting = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|line| line["message"] == "gateway starting");
            if let Some(line) = starting {
                let address = |key: &str| match line[key].as_str() {
                    Some(address) => format!("http://{address}"),
                    None => panic!("the gateway's start line has no {key}: {line}"),
                };
                server.base = address("listen");
                let probes = line["probes"].as_str().map(|a| format!("http://{a}"));
                return (server, Ports { admin: address("admin"), probes });
            }
            if let Ok(Some(exit)) = server.child.try_wait() {
                panic!("gateway exited with {exit}:\n{text}");
            }
            assert!(Instant::now() < deadline, "no start line after {within:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `GET path` answers `status`, or fails with the log.
    pub fn wait_for(&mut self, path: &str, status: u16, within: Duration) {
        let agent = agent(Duration::from_secs(30));
        let deadline = Instant::now() + within;
        loop {
            if get(&agent, &self.base, path).is_ok_and(|r| r.status == status) {
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("server exited with {exit}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{path} not {status} after {within:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `-TERM`) to the server process itself.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal} failed");
    }

    /// Waits up to `within` for the server to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ =
                Command::new("kill").args([signal, "--", &group]).stderr(Stdio::null()).status();
        };
        kill("-TERM");
        let _ = self.wait_exit(Duration::from_secs(10));
        // Whatever of the group is left, and the server if it ignored TERM.
        kill("-KILL");
        let _ = self.child.wait();
    }
}

/// Every route and error of the API, over HTTP at `base`. The same checks
/// hold under `cargo lambda watch` and behind the gateway: one API.
pub fn check_api(base: &str) {
    let agent = agent(Duration::from_secs(60));
    let get = |path: &str| get(&agent, base, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let post = |path: &str, body: &str| {
        post(&agent, base, path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    };

    let r = get("/ping");
    assert_eq!((r.status, r.json()), (200, json!({"ping": "pong!"})));
    assert_eq!(r.content_type, "application/json");

    // The original's request, and the new fields.
    let r = post("/api/v1/hello", "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    let (n, p) =
        (body["n"].as_u64().expect("n"), body["largest_prime_factor"].as_u64().expect("p"));
    assert!((1_250_000_000_000..2_500_000_000_000).contains(&n) && n % p == 0, "{body}");
    assert_eq!(body["message1"], "Hello, world!");
    let r = post("/api/v1/hello", r#"{"n": 1462370954730}"#);
    assert_eq!(r.json()["largest_prime_factor"], 398_311);
    let r = post("/api/v1/hello", r#"{"n": 18446744073709551557, "algorithm": "rho"}"#);
    assert_eq!(r.json()["largest_prime_factor"], json!(18_446_744_073_709_551_557u64));

    // Bad input: FastAPI's 422 shape, naming the problem.
    for (body, loc, kind) in [
        ("nope", json!(["body", 1]), "json_invalid"),
        ("[]", json!(["body"]), "model_attributes_type"),
        (r#"{"n": "12"}"#, json!(["body", "n"]), "int_type"),
        (r#"{"n": 1.5}"#, json!(["body", "n"]), "int_from_float"),
        (r#"{"n": 1}"#, json!(["body", "n"]), "greater_than_equal"),
        (r#"{"n": 18446744073709551557}"#, json!(["body", "n"]), "less_than_equal"),
        (r#"{"algorithm": "magic"}"#, json!(["body", "algorithm"]), "enum"),
        (r#"{"n": 1e400}"#, json!(["body", "n"]), "less_than_equal"),
        (r#"{"n": -1e400}"#, json!(["body", "n"]), "greater_than_equal"),
        (r#"{"algorithm": 1e400}"#, json!(["body", "algorithm"]), "enum"),
        ("", json!(["body"]), "missing"),
    ] {
        let r = post("/api/v1/hello", body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        let detail = &r.json()["detail"][0];
        assert_eq!((&detail["loc"], &detail["type"]), (&loc, &json!(kind)), "{body}");
    }
    let r = post("/api/v1/hello", r#"{"n": 18446744073709551557}"#);
    assert!(r.json()["detail"][0]["msg"].as_str().is_some_and(|m| m.contains("rho")));
    // The input echoed as sent: an integer past 2^64 stays that integer.
    let r = post("/api/v1/hello", r#"{"n": 18446744073709551616}"#);
    assert!(r.body.contains(r#""input":18446744073709551616"#), "{}", r.body);

    // Wrong method, unknown paths.
    let r = get("/api/v1/hello");
    assert_eq!((r.status, r.allow.as_deref()), (405, Some("POST")));
    assert_eq!(r.json(), json!({"message": "Method Not Allowed"}));
    let r = post("/ping", "{}");
    assert_eq!((r.status, r.allow.as_deref()), (405, Some("GET")));
    for path in ["/", "/nope", "/api/v2/hello", "/docs/missing.js"] {
        let r = get(path);
        assert_eq!((r.status, r.json()), (404, json!({"message": "Not Found"})), "{path}");
    }

    // The docs: the generated document and the bundled Swagger UI.
    let r = get("/openapi.json");
    assert_eq!(r.status, 200);
    assert!(r.json()["paths"]["/api/v1/hello"]["post"]["responses"]["422"].is_object());
    let r = get("/docs");
    assert_eq!((r.status, r.location.as_deref()), (308, Some("docs/index.html")));
    let r = get("/docs/");
    assert!(r.status == 200 && r.content_type.starts_with("text/html"), "{}", r.body);
    assert!(r.body.contains("swagger-ui-bundle.js"));
    let r = get("/docs/swagger-ui-bundle.js");
    assert!(r.status == 200 && r.body.len() > 100_000);
}
