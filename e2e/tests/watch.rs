//! The API as a developer runs it locally: `cargo lambda watch` serving every
//! function on its real path, on a free loopback port, checked over HTTP.
//!
//! Needs `cargo lambda`: `make test` installs it into `.venv`, where this
//! test finds it; otherwise set `CARGO_LAMBDA` or put it on `PATH`.

use serde_json::{Value, json};
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ureq::Agent;

/// How long the first request may take: the watcher builds the functions
/// on demand, which on a cold target directory means compiling them.
const STARTUP: Duration = Duration::from_secs(600);

/// `cargo lambda watch` in its own process group, stopped when dropped.
struct Watch {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Watch {
    fn start() -> Watch {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let port = free_port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cargo-lambda-watch.log");
        let out = File::create(&log).expect("log file");
        // CARGO_LAMBDA, else the project's venv that `make test` fills, else PATH.
        let venv = root.join(".venv/bin/cargo-lambda");
        let mut command = match std::env::var_os("CARGO_LAMBDA") {
            Some(path) => Command::new(path),
            None if venv.exists() => Command::new(venv),
            None => Command::new("cargo-lambda"),
        };
        command
            .args(["lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            // Its own group, so that stopping it also stops the function
            // processes it starts.
            .process_group(0);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot start `cargo-lambda` ({e}): run `make test`, which installs it, or set CARGO_LAMBDA")
        });
        Watch { child, base: format!("http://127.0.0.1:{port}"), log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until `/ping` answers 200, or fails with the watcher's log.
    fn wait_ready(&mut self, agent: &Agent) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(mut r) = agent.get(&self.url("/ping")).call()
                && r.status() == 200
                && r.body_mut().read_to_string().is_ok_and(|b| b.contains("pong"))
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cargo lambda watch exited with {status}:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "not ready after {STARTUP:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ =
                Command::new("kill").args([signal, "--", &group]).stderr(Stdio::null()).status();
        };
        kill("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever of the group is left (function processes), and the
        // watcher itself if it ignored the request.
        kill("-KILL");
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

struct Reply {
    status: u16,
    content_type: String,
    allow: Option<String>,
    location: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn read(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.expect("HTTP exchange");
    let header =
        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (content_type, allow, location) =
        (header("content-type").unwrap_or_default(), header("allow"), header("location"));
    Reply {
        status: response.status().as_u16(),
        content_type,
        allow,
        location,
        body: response.body_mut().read_to_string().expect("body"),
    }
}

#[test]
fn every_route_and_error_over_http() {
    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut watch = Watch::start();
    watch.wait_ready(&agent);
    let get = |path: &str| read(agent.get(&watch.url(path)).call());
    let post = |path: &str, body: &str| {
        // As `curl -d` sends it: a form content type, which must not matter.
        read(
            agent
                .post(&watch.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .send(body),
        )
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
        ("", json!(["body"]), "missing"),
    ] {
        let r = post("/api/v1/hello", body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        let detail = &r.json()["detail"][0];
        assert_eq!((&detail["loc"], &detail["type"]), (&loc, &json!(kind)), "{body}");
    }
    let r = post("/api/v1/hello", r#"{"n": 18446744073709551557}"#);
    assert!(r.json()["detail"][0]["msg"].as_str().is_some_and(|m| m.contains("rho")));

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
    assert_eq!((r.status, r.location.as_deref()), (308, Some("docs/")));
    let r = get("/docs/");
    assert!(r.status == 200 && r.content_type.starts_with("text/html"), "{}", r.body);
    assert!(r.body.contains("swagger-ui-bundle.js"));
    let r = get("/docs/swagger-ui-bundle.js");
    assert!(r.status == 200 && r.body.len() > 100_000);
}
