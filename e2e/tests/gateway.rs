//! The container's process tree, proven on the host: the gateway over the
//! function binaries, laid out as the Dockerfile lays them out, on a free
//! loopback port. Every test runs twice: with the gateway's built-in Lambda
//! Runtime API (`builtin::*`, the default) and through the real
//! `aws-lambda-rie` (`rie::*`, the reference); `conformance` checks that
//! both answer every request alike.
//!
//! The `rie` half needs `aws-lambda-rie`: `make test` builds the pinned
//! version into `.tools/bin`, where these tests find it; otherwise set
//! `AWS_LAMBDA_RIE` or put it on `PATH`.

use e2e::{Reply, Server, agent, check_api, get, post, rie, workspace_root};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// The binaries under test: built once for all tests, or the shipped ones
/// (`make test-shipped`, see [`e2e::Binaries`]).
fn binaries() -> &'static e2e::Binaries {
    static BINARIES: OnceLock<e2e::Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| e2e::Binaries::get(env!("CARGO_TARGET_TMPDIR")))
}

/// These tests load both cores; one at a time keeps their timings honest.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the gateway runs its environments (`--emulator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emulator {
    Builtin,
    Rie,
}

impl Emulator {
    fn flag(self) -> &'static str {
        match self {
            Emulator::Builtin => "builtin",
            Emulator::Rie => "rie",
        }
    }
}

/// How to start a stack.
struct Options<'a> {
    name: &'a str,
    emulator: Emulator,
    envs: usize,
    queue: usize,
    /// Changes to the project's template, each `(from, to)` text that must
    /// be there: e.g. a shorter `Timeout`.
    edits: &'a [(&'a str, &'a str)],
    /// Resources added to the template (e.g. a test-only function).
    extra: &'a str,
    /// The template's parameters (`--parameter-overrides`).
    overrides: &'a [&'a str],
    /// More arguments for the gateway.
    args: &'a [&'a str],
    /// Functions replaced by a test runtime from `fixtures/runtimes`.
    replace: &'a [(&'a str, &'a str)],
    vars: &'a [(&'a str, &'a str)],
    /// External extensions to install: `(function, name, executable)`, as
    /// `functions/<function>/extensions/<name>`.
    extensions: &'a [(&'a str, &'a str, &'a str)],
    prewarm: bool,
    /// Start the gateway inside a memory cgroup of this many bytes.
    memory_limit: Option<u64>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            name: "default",
            emulator: Emulator::Builtin,
            envs: 2,
            queue: 128,
            edits: &[],
            extra: "",
            overrides: &[],
            args: &[],
            replace: &[],
            vars: &[],
            extensions: &[],
            prewarm: false,
            memory_limit: None,
        }
    }
}

/// A gateway serving the functions from an image-like directory.
struct Stack {
    server: Server,
    image: PathBuf,
    /// The admin port's base URL: `/metrics`.
    admin: String,
    /// The probes' port's base URL: `/healthz`, `/readyz`.
    probes: String,
    /// The memory cgroup it runs in, if any; removed after the stack.
    cgroup: Option<MemoryCgroup>,
}

/// A cgroup v1 memory controller group of this test run, with a limit.
struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    fn new(name: &str, bytes: u64) -> MemoryCgroup {
        let dir =
            PathBuf::from(format!("/sys/fs/cgroup/memory/kf-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!("cannot create the memory cgroup {} ({e}): run the tests as root", dir.display())
        });
        std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())
            .expect("set the limit");
        MemoryCgroup { dir }
    }

    /// A counter of the cgroup's `memory.oom_control` (`oom_kill`).
    fn oom_kills(&self) -> u64 {
        let text = std::fs::read_to_string(self.dir.join("memory.oom_control")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Empty once the stack's processes are gone.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Stack {
    fn start(options: Options<'_>) -> Stack {
        let bin = binaries();
        let image = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "image-{}-{}",
            options.name,
            options.emulator.flag()
        ));
        let _ = std::fs::remove_dir_all(&image);
        std::fs::create_dir_all(&image).expect("image dir");
        // The project's template, as the image holds it, with the test's
        // changes.
        let mut template =
            std::fs::read_to_string(e2e::template_path()).expect("read template.yaml");
        for (from, to) in options.edits {
            assert!(template.contains(from), "template.yaml has no {from:?} to change");
            template = template.replacen(from, to, 1);
        }
        if !options.extra.is_empty() {
            template =
                template.replacen("\nOutputs:\n", &format!("\n{}\nOutputs:\n", options.extra), 1);
        }
        std::fs::write(image.join("template.yaml"), &template).expect("write the template");
        // The Invoke API's access keys, as a Secret would give them: the
        // clients of these tests sign with the first.
        std::fs::write(image.join("invoke-keys"), format!("{TEST_KEY}\nAKIDOTHER:other-secret\n"))
            .expect("write the keys");
        let overrides: Vec<String> = options.overrides.iter().map(|o| o.to_string()).collect();
        let functions = gateway::template::parse(&template, &overrides, "us-east-1")
            .unwrap_or_else(|e| panic!("the test's template: {e}"))
            .functions;
        // The layout the Dockerfile copies into the image.
        for function in functions.iter().map(|f| f.name.as_str()) {
            let dir = image.join("functions").join(function);
            let runtimes = workspace_root().join("fixtures/runtimes");
            match options.replace.iter().find(|(f, _)| *f == function) {
                Some((_, runtime)) => {
                    e2e::install_bootstrap(&runtimes.join(runtime), &dir);
                    // What the looping runtimes source from their directory.
                    std::fs::copy(runtimes.join("runtime.sh"), dir.join("runtime.sh"))
                        .expect("copy runtime.sh");
                }
                None => e2e::install_bootstrap(&bin.function(function), &dir),
            }
            for (_, name, executable) in options.extensions.iter().filter(|e| e.0 == function) {
                std::fs::create_dir_all(dir.join("extensions")).expect("extensions dir");
                std::fs::copy(executable, dir.join("extensions").join(name)).expect("extension");
            }
        }
        let cgroup = options.memory_limit.map(|bytes| MemoryCgroup::new(options.name, bytes));
        let mut command = match &cgroup {
            // Into the cgroup before the gateway starts, so that it reads its
            // own limit and its children are born inside it.
            Some(cgroup) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(r#"echo $$ > "$0" && exec "$@""#)
                    .arg(cgroup.dir.join("cgroup.procs"))
                    .arg(bin.gateway());
                sh
            }
            None => e2e::command(&bin.gateway()),
        };
        command
            // Port 0: the gateway binds and says where (Server::start_gateway).
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--probe-listen", "127.0.0.1:0", "--invoke-keys", "invoke-keys"])
            // Relative, as `make run` passes it: the gateway must not depend
            // on the directory a bootstrap runs in.
            .args(["--functions-dir", "functions", "--template", "template.yaml"])
            .current_dir(&image)
            .args(["--emulator", options.emulator.flag()])
            .args(["--envs", &options.envs.to_string(), "--queue", &options.queue.to_string()])
            .args(["--grace", "10s"])
            .args(options.args)
            .envs([("KF_PARAMETER_OVERRIDES", options.overrides.join(" "))])
            .args(["--prewarm", if options.prewarm { "true" } else { "false" }])
            .envs(options.vars.iter().copied());
        if options.emulator == Emulator::Rie {
            // The callers skip rie tests without one (see `in_both_modes!`).
            command.arg("--rie").arg(rie().expect("aws-lambda-rie"));
        }
        let log = image.join("gateway.log");
        let (mut server, ports) = Server::start_gateway(command, log, Duration::from_secs(30));
        server.wait_for("/readyz", 200, Duration::from_secs(30));
        let probes = ports.probes.expect("the probes' port");
        Stack { server, image, admin: ports.admin, probes, cgroup }
    }

    fn base(&self) -> &str {
        &self.server.base
    }

    fn metrics(&self) -> String {
        get(&agent(Duration::from_secs(10)), &self.admin, "/metrics").expect("metrics").body
    }

    /// Processes whose command line names this stack's image directory:
    /// its RIEs and bootstraps.
    fn processes(&self) -> Vec<(i32, String)> {
        processes_mentioning(&self.image.to_string_lossy())
    }
}

fn processes_mentioning(marker: &str) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(marker).then_some((pid, cmdline))
        })
        .collect()
}

/// Runs `clients` threads, each sending `request` back to back until
/// `duration` has passed; returns every result with its send time.
fn load(
    clients: usize,
    duration: Duration,
    request: impl Fn(&ureq::Agent) -> Result<Reply, String> + Sync,
) -> Vec<(Instant, Result<Reply, String>)> {
    let end = Instant::now() + duration;
    thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let agent = agent(Duration::from_secs(30));
                    let mut results = Vec::new();
                    while Instant::now() < end {
                        let sent = Instant::now();
                        let result = request(&agent);
                        let failed = result.is_err();
                        results.push((sent, result));
                        if failed {
                            break;
                        }
                    }
                    results
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("client thread")).collect()
    })
}

fn statuses(
    results: &[(Instant, Result<Reply, String>)],
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (_, r) in results {
        let key = match r {
            Ok(reply) => reply.status.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// `n` whose trial division takes about 20 ms: a request long enough to be
/// in flight when something happens.
const SLOW_N: &str = r#"{"n": 999999999999989}"#;

/// The API through the real binaries, and what the gateway counts of it.
/// The gateway's own answers (limits, ids, throttling, queue, deadlines,
/// authorizer, drain) are tested in-process, in `gateway/tests/http.rs`.
fn serves_the_api_and_its_own_endpoints(emulator: Emulator) {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options { name: "api", emulator, ..Options::default() });
    check_api(stack.base());

    let agent = agent(Duration::from_secs(30));
    let r = get(&agent, stack.base(), "/healthz").expect("healthz");
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = get(&agent, stack.base(), "/readyz").expect("readyz");
    assert_eq!((r.status, r.json()), (200, json!({"status": "ready"})));

    let r = get(&agent, &stack.admin, "/readyz").expect("readyz on the admin port");
    assert_eq!(r.status, 200);
    let metrics = stack.metrics();
    for line in [
        r#"kf_gateway_memory_budget_bytes "#,
        r#"kf_gateway_requests_total{route="ANY /api/v1/hello",status="200"}"#,
        r#"kf_gateway_requests_total{route="ANY /api/v1/hello",status="422"}"#,
        r#"kf_gateway_requests_total{route="unmatched",status="404"}"#,
        r#"kf_gateway_cold_starts_total{function="hello"} 1"#,
        r#"kf_gateway_environments{function="hello"} 1"#,
        r#"kf_gateway_request_duration_seconds_bucket{le="#,
        r#"kf_gateway_queue_depth{function="hello"} 0"#,
    ] {
        assert!(metrics.contains(line), "metrics lack {line}:\n{metrics}");
    }
}

fn sixty_four_clients_for_ten_seconds_crash_nothing(emulator: Emulator) {
    let _serial = one_at_a_time();
    // Prewarmed, so the environments exist before the load and a death
    // among them shows.
    let stack =
        Stack::start(Options { name: "load", emulator, prewarm: true, ..Options::default() });
    let before: Vec<i32> = stack.processes().into_iter().map(|(pid, _)| pid).collect();
    let per_environment = if emulator == Emulator::Rie { 2 } else { 1 };
    assert!(before.len() >= 3 * per_environment, "not every function is running: {before:?}");
    let results = load(64, Duration::from_secs(10), |agent| {
        if rand_bit() {
            post(agent, stack.base(), "/api/v1/hello", "{}")
        } else {
            get(agent, stack.base(), "/ping")
        }
    });
    let counts = statuses(&results);
    eprintln!("64 clients, 10 s: {counts:?} ({} requests)", results.len());
    assert!(counts.keys().all(|k| k == "200" || k == "503"), "only 200 or 503: {counts:?}");
    assert!(counts.get("200").is_some_and(|n| *n > 1000), "{counts:?}");
    for (_, r) in &results {
        if let Ok(reply) = r
            && reply.status == 503
        {
            assert_eq!(reply.retry_after.as_deref(), Some("1"));
        }
    }
    let metrics = stack.metrics();
    assert!(
        !metrics.contains("kf_gateway_environment_replacements_total{"),
        "an environment died:\n{metrics}"
    );
    assert!(before.iter().all(|pid| Path::new(&format!("/proc/{pid}")).exists()), "a process died");
}

/// A cheap, thread-safe coin: the low bit of the clock.
fn rand_bit() -> bool {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        & 1
        == 1
}

fn a_killed_function_costs_only_its_request(emulator: Emulator) {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options { name: "kill", emulator, ..Options::default() });
    let marker = stack.image.join("functions/hello/bootstrap").to_string_lossy().into_owned();
    let killer = thread::spawn({
        let marker = marker.clone();
        move || {
            thread::sleep(Duration::from_millis(1500));
            let bootstraps: Vec<i32> = processes_mentioning(&marker)
                .into_iter()
                .filter(|(_, cmd)| cmd.starts_with(&marker))
                .map(|(pid, _)| pid)
                .collect();
            for pid in &bootstraps {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            bootstraps.len()
        }
    });
    let results =
        load(8, Duration::from_secs(4), |agent| post(agent, stack.base(), "/api/v1/hello", SLOW_N));
    let killed = killer.join().expect("killer");
    let counts = statuses(&results);
    eprintln!("killed {killed} hello processes under load: {counts:?}");
    assert!(killed >= 1, "no hello bootstrap was running");
    let failed = results.iter().filter(|(_, r)| !r.as_ref().is_ok_and(|r| r.status == 200)).count();
    assert!(failed <= killed, "{failed} requests failed for {killed} killed processes: {counts:?}");
    assert!(counts.keys().all(|k| k == "200" || k == "500" || k == "502"), "{counts:?}");
    // And the stack serves on.
    let r = post(&agent(Duration::from_secs(30)), stack.base(), "/api/v1/hello", r#"{"n": 12}"#)
        .expect("after");
    assert_eq!((r.status, &r.json()["largest_prime_factor"]), (200, &json!(3)));
}

/// hello's `Timeout` in template.yaml, and a shorter one for the tests.
const HELLO_TIMEOUT: (&str, &str) = ("      Timeout: 10\n", "      Timeout: 1\n");

fn a_function_past_its_timeout_is_stopped_and_a_failing_one_is_a_500(emulator: Emulator) {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options {
        name: "slow",
        emulator,
        edits: &[HELLO_TIMEOUT],
        replace: &[("hello", "slow.sh"), ("ping", "failing.sh")],
        vars: &[("SLOW_SECONDS", "5")],
        ..Options::default()
    });
    let agent = agent(Duration::from_secs(30));
    let started = Instant::now();
    let r = post(&agent, stack.base(), "/api/v1/hello", "{}").expect("slow");
    let took = started.elapsed();
    // On AWS, a function that times out is a function error, which the
    // HTTP API answers with its 500.
    assert_eq!((r.status, r.json()), (500, json!({"message": "Internal Server Error"})));
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "took {took:?}");
    let metrics = stack.metrics();
    assert!(
        metrics.contains(
            r#"kf_gateway_environment_replacements_total{function="hello",reason="timeout"} 1"#
        ),
        "{metrics}"
    );
    // The timed-out environment was killed, its runtime with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let hello = stack.image.join("functions/hello").to_string_lossy().into_owned();
    while !processes_mentioning(&hello).is_empty() {
        assert!(Instant::now() < deadline, "left running: {:?}", processes_mentioning(&hello));
        thread::sleep(Duration::from_millis(20));
    }
    assert!(stack.server.log_text().contains("Task timed out after 1.00 seconds"));

    let r = get(&agent, stack.base(), "/ping").expect("failing");
    assert_eq!((r.status, r.json()), (500, json!({"message": "Internal Server Error"})));
    assert!(stack.server.log_text().contains("this function always fails"));
}

fn sigterm_lets_in_flight_requests_finish_and_exits_0(emulator: Emulator) {
    let _serial = one_at_a_time();
    let mut stack = Stack::start(Options { name: "sigterm", emulator, ..Options::default() });
    let signalled = OnceLock::new();
    let results = thread::scope(|s| {
        let server = &stack.server;
        let signaller = s.spawn(|| {
            thread::sleep(Duration::from_millis(1500));
            signalled.set(Instant::now()).expect("once");
            server.signal("-TERM");
        });
        let results = load(16, Duration::from_secs(5), |agent| {
            post(agent, server.base.as_str(), "/api/v1/hello", SLOW_N)
        });
        signaller.join().expect("signaller");
        results
    });
    let signalled = *signalled.get().expect("signalled");
    let status = stack.server.wait_exit(Duration::from_secs(15)).expect("the gateway exits");
    assert!(status.success(), "exit status {status}:\n{}", stack.server.log_text());
    // Requests sent before the signal were in flight or queued: all answered.
    let before: Vec<_> =
        results.iter().filter(|(sent, _)| *sent + Duration::from_millis(20) < signalled).collect();
    let ok = before.iter().filter(|(_, r)| r.as_ref().is_ok_and(|r| r.status == 200)).count();
    eprintln!("SIGTERM under load: {ok} of {} requests sent before it answered 200", before.len());
    // As many as the 16 clients at least: hundreds natively, a few dozen
    // under qemu (where `make test-shipped` runs the arm64 build).
    assert!(before.len() >= 16, "too little load: {}", before.len());
    assert_eq!(ok, before.len(), "{:?}", statuses(&results));
    // Nothing left behind.
    assert!(stack.processes().is_empty(), "left running: {:?}", stack.processes());
}

/// The load test itself, briefly: Locust with its own checks of every answer
/// (status, fields, the largest prime factor) against the stack, failing on
/// any failed request.
fn a_short_locust_session_has_no_failed_request(emulator: Emulator) {
    let _serial = one_at_a_time();
    let locust = std::env::var_os("LOCUST")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-loadtest/bin/locust"));
    let Some(locust) = e2e::tool("locust", locust.exists().then_some(locust)) else { return };
    let stack = Stack::start(Options { name: "locust", emulator, ..Options::default() });
    let csv = stack.image.join("locust");
    let output = Command::new(&locust)
        .arg("-f")
        .arg(workspace_root().join("locustfile.py"))
        .args(["--headless", "--host", stack.base(), "--only-summary", "--loglevel", "WARNING"])
        .arg("--csv")
        .arg(&csv)
        .envs([("KF_USERS", "10"), ("KF_RAMP_SECONDS", "2"), ("KF_HOLD_SECONDS", "3")])
        .current_dir(workspace_root())
        .output()
        .expect("run locust");
    let report = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "locust failed ({}):\n{report}", output.status);
    let stats =
        std::fs::read_to_string(csv.with_file_name("locust_stats.csv")).expect("locust stats");
    let aggregated = stats.lines().find(|l| l.contains(",Aggregated,")).expect("an Aggregated row");
    let fields: Vec<&str> = aggregated.split(',').collect();
    let (requests, failures): (u64, u64) =
        (fields[2].parse().expect("count"), fields[3].parse().expect("failures"));
    eprintln!("locust: {requests} requests, {failures} failed");
    assert!(requests > 100, "too few requests: {aggregated}");
    assert_eq!(failures, 0, "{report}");
}

fn prewarm_starts_every_function_before_traffic(emulator: Emulator) {
    let _serial = one_at_a_time();
    let stack =
        Stack::start(Options { name: "prewarm", emulator, prewarm: true, ..Options::default() });
    let metrics = stack.metrics();
    for function in ["hello", "ping", "docs"] {
        for line in [
            format!(r#"kf_gateway_environments{{function="{function}"}} 1"#),
            format!(r#"kf_gateway_cold_starts_total{{function="{function}"}} 1"#),
        ] {
            assert!(metrics.contains(&line), "metrics lack {line}:\n{metrics}");
        }
    }
    // The first request finds a warm environment: no second cold start.
    let r = get(&agent(Duration::from_secs(10)), stack.base(), "/ping").expect("ping");
    assert_eq!(r.status, 200);
    assert!(stack.metrics().contains(r#"kf_gateway_cold_starts_total{function="ping"} 1"#));
}

/// The access key (id and secret) the tests' Invoke API clients sign with.
const TEST_KEY: &str = "test:test";

/// boto3's Lambda client against the admin port, as a cluster's service
/// calls a function by name: what it sees, one line of JSON a case.
const BOTO3_CASES: &str = r#"
import base64, json, sys, boto3, botocore.config
event = open(sys.argv[2], "rb").read()
ping = json.loads(event)
ping.update(rawPath="/ping", routeKey="ANY /ping", body=None)
ping["requestContext"]["http"].update(path="/ping", method="GET")
ping = json.dumps(ping).encode()
config = botocore.config.Config(retries={"max_attempts": 1})
client = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test", config=config)
def case(name, **kwargs):
    try:
        r = client.invoke(**kwargs)
        payload = r["Payload"].read()
        out = {"status": r["StatusCode"], "version": r.get("ExecutedVersion"),
               "error": r.get("FunctionError"), "id": r["ResponseMetadata"]["RequestId"]}
        if "LogResult" in r:
            out["log"] = base64.b64decode(r["LogResult"]).decode()
        try:
            out["payload"] = json.loads(payload) if payload else None
        except ValueError:
            out["payload"] = payload.decode()
    except client.exceptions.ClientError as e:
        # The class botocore raised: the modeled exception of that name, if
        # Lambda's API model has one, else the generic ClientError.
        out = {"exception": e.response["Error"]["Code"], "class": type(e).__name__,
               "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
    print(json.dumps({"case": name, **out}))
context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
case("by logical id", FunctionName="HelloFunction", Payload=event)
case("by ARN", FunctionName="arn:aws:lambda:us-east-1:012345678912:function:ping", Payload=ping)
case("with a client context", FunctionName="ping", Payload=ping, ClientContext=context)
case("dry run", FunctionName="hello", InvocationType="DryRun", Payload=event)
case("tail", FunctionName="ping", LogType="Tail", Payload=ping)
case("event", FunctionName="HelloFunction", InvocationType="Event", Payload=event)
case("function error", FunctionName="hello", Payload=b'{"not": "an HTTP event"}')
case("unknown function", FunctionName="nope", Payload=event)
case("another version", FunctionName="hello", Qualifier="7", Payload=event)
case("not JSON", FunctionName="hello", Payload=b"not json")
case("too large", FunctionName="hello", Payload=b'"' + b"x" * 6_300_000 + b'"')
# Who is calling, as Lambda asks it: the same call unsigned, with a wrong
# secret, with a key the pod does not have, and signed for another region.
def client_with(**kwargs):
    args = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test",
                aws_secret_access_key="test", config=config)
    args.update(kwargs)
    return boto3.client("lambda", **args)
unsigned = botocore.config.Config(retries={"max_attempts": 1}, signature_version=botocore.UNSIGNED)
for name, other in [("unsigned", client_with(config=unsigned)),
                    ("wrong secret", client_with(aws_secret_access_key="nope")),
                    ("unknown key", client_with(aws_access_key_id="AKIDNOBODY")),
                    ("another region", client_with(region_name="eu-west-1"))]:
    client = other
    case(name, FunctionName="ping", Payload=ping)
"#;

/// The Invoke API with the real clients people use, against the real
/// binaries: boto3 (what AWS SDKs and `aws lambda invoke` share:
/// botocore's parsing of Lambda's answers and errors) and `cargo lambda
/// invoke`. Identical in both modes: the API is the gateway's; only what
/// runs the function differs.
fn real_clients_invoke_functions_by_name(emulator: Emulator) {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options { name: "invoke-api", emulator, ..Options::default() });
    let event = workspace_root().join("fixtures/events/apigw-v2-http-api.json");
    let python = workspace_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .args(["-c", BOTO3_CASES, &stack.admin, event.to_str().expect("a UTF-8 path")])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (make tools makes it)", python.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "boto3: {stderr}");
    let cases: std::collections::HashMap<String, serde_json::Value> =
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let case: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                (case["case"].as_str().expect("a name").to_owned(), case)
            })
            .collect();
    let case = |name: &str| cases.get(name).unwrap_or_else(|| panic!("no {name}: {stderr}"));
    for name in ["by logical id", "by ARN"] {
        let c = case(name);
        assert_eq!(
            (&c["status"], &c["version"], &c["error"]),
            (&json!(200), &json!("$LATEST"), &json!(null)),
            "{name}: {c}"
        );
        // The function's own answer: an API Gateway response.
        assert_eq!(c["payload"]["statusCode"], 200, "{name}: {c}");
    }
    // What the runtime is given is checked through both kinds in
    // `environments.rs`; here, that a real client's context is taken.
    let c = case("with a client context");
    assert_eq!((&c["status"], &c["payload"]["statusCode"]), (&json!(200), &json!(200)), "{c}");
    assert_eq!(case("dry run")["status"], 204);
    // A tail: the invocation's own lines between Lambda's START and its
    // END and REPORT (the RIE prints those, the built-in API writes them).
    let c = case("tail");
    let (id, log) = (c["id"].as_str().expect("an id"), c["log"].as_str().expect("a log"));
    assert!(log.starts_with(&format!("START RequestId: {id} Version: $LATEST\n")), "{log}");
    assert!(
        log.contains(&format!("\nEND RequestId: {id}\nREPORT RequestId: {id}\tDuration: ")),
        "{log}"
    );
    let c = case("event");
    assert_eq!((&c["status"], &c["payload"]), (&json!(202), &json!(null)), "{c}");
    let failed = case("function error");
    assert_eq!(
        (&failed["status"], &failed["error"]),
        (&json!(200), &json!("Unhandled")),
        "{failed}"
    );
    assert!(failed["payload"]["errorType"].is_string(), "{failed}");
    for (name, exception, status) in [
        ("unknown function", "ResourceNotFoundException", 404),
        ("another version", "ResourceNotFoundException", 404),
        ("not JSON", "InvalidRequestContentException", 400),
        ("too large", "RequestTooLargeException", 413),
    ] {
        let c = case(name);
        assert_eq!(
            (&c["exception"], &c["status"]),
            (&json!(exception), &json!(status)),
            "{name}: {c}"
        );
        // One of Lambda's own modeled errors, as an SDK knows them.
        assert_eq!(c["class"], json!(exception), "{name}: {c}");
    }
    // Who is calling: botocore's own reading of the pod's refusals.
    for (name, exception) in [
        ("unsigned", "MissingAuthenticationTokenException"),
        ("wrong secret", "InvalidSignatureException"),
        ("unknown key", "UnrecognizedClientException"),
        ("another region", "InvalidSignatureException"),
    ] {
        let c = case(name);
        assert_eq!(
            (&c["exception"], &c["status"]),
            (&json!(exception), &json!(403)),
            "{name}: {c}"
        );
    }
    // `cargo lambda invoke --remote`: the Rust SDK, signing with the key.
    let cargo_lambda = workspace_root().join(".venv/bin/cargo-lambda");
    let lambda_invoke = |key: &str| {
        let (id, secret) = key.split_once(':').expect("id:secret");
        Command::new(&cargo_lambda)
            .args(["lambda", "invoke", "--remote", "--endpoint-url", &stack.admin])
            .args(["--region", "us-east-1", "--data-file", event.to_str().expect("a UTF-8 path")])
            .args(["--output-format", "json", "HelloFunction"])
            .envs([("AWS_ACCESS_KEY_ID", id), ("AWS_SECRET_ACCESS_KEY", secret)])
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", cargo_lambda.display()))
    };
    let out = lambda_invoke(TEST_KEY);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke --remote: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON output");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let refused = lambda_invoke("test:wrong");
    assert!(!refused.status.success(), "a wrong secret was taken");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("InvalidSignatureException"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let metrics = stack.metrics();
    assert!(
        metrics.contains(r#"kf_gateway_requests_total{route="Invoke API",status="200"}"#),
        "{metrics}"
    );
}

/// Each test above, once per emulator.
macro_rules! in_both_modes {
    ($($test:ident),* $(,)?) => {
        mod builtin {
            $(#[test]
            fn $test() {
                super::$test(super::Emulator::Builtin)
            })*
        }
        mod rie {
            $(#[test]
            fn $test() {
                if super::rie().is_some() {
                    super::$test(super::Emulator::Rie)
                }
            })*
        }
    };
}

in_both_modes!(
    serves_the_api_and_its_own_endpoints,
    sixty_four_clients_for_ten_seconds_crash_nothing,
    a_killed_function_costs_only_its_request,
    a_function_past_its_timeout_is_stopped_and_a_failing_one_is_a_500,
    the_authorizer_guards_hello_when_switched_on,
    sigterm_lets_in_flight_requests_finish_and_exits_0,
    a_short_locust_session_has_no_failed_request,
    prewarm_starts_every_function_before_traffic,
    real_clients_invoke_functions_by_name,
    an_extension_runs_beside_its_function,
);

/// The `lambda_extension` fixture beside `hello`, through the gateway as
/// users run it: started with each environment, told of every invocation
/// (by its request id, the one the client gets back), and, on SIGTERM,
/// handed `SHUTDOWN` before the gateway exits 0 and leaves nothing
/// running. Under `--emulator rie` there is no SHUTDOWN: the RIE exits on
/// SIGTERM without one (the listed difference, see
/// `tests/environments.rs`). Its memory counts against the environment, and
/// its cost per environment is recorded for the README.
fn an_extension_runs_beside_its_function(emulator: Emulator) {
    let _serial = one_at_a_time();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("extension-through-the-gateway-{}.jsonl", emulator.flag()));
    let _ = std::fs::remove_file(&out);
    let out_var = out.display().to_string();
    let mut stack = Stack::start(Options {
        name: "extension",
        emulator,
        envs: 1,
        extensions: &[("hello", "counter", env!("CARGO_BIN_EXE_counter-extension"))],
        vars: &[("COUNTER_EXTENSION_OUT", out_var.as_str())],
        ..Options::default()
    });
    let agent = agent(Duration::from_secs(30));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r =
            post(&agent, stack.base(), "/api/v1/hello", r#"{"n": 1462370954730}"#).expect("hello");
        assert_eq!(r.status, 200, "{}", r.body);
        ids.push(r.request_id.expect("a request id"));
    }
    let marker = stack.image.join("functions/hello/extensions").to_string_lossy().into_owned();
    // Under the RIE it runs as /opt/extensions/counter, in its namespace.
    let running = if emulator == Emulator::Rie { "/opt/extensions/counter" } else { &marker };
    let extension = processes_mentioning(running);
    assert_eq!(extension.len(), 1, "one extension process: {extension:?}");
    let rss = rss_kb(extension[0].0 as u32);
    assert!(rss > 0, "its memory is read");
    let memory =
        metric(&stack.metrics(), "kf_gateway_environment_max_memory_bytes{function=\"hello\"}");
    if emulator == Emulator::Builtin {
        // The environment's figure holds the extension's too.
        assert!(memory >= (rss * 1024) as f64, "{memory} < the extension's {rss} kB");
        record_reliability("extension", json!({"extension_rss_kb": rss}));
    }
    stack.server.signal("-TERM");
    let status = stack.server.wait_exit(Duration::from_secs(15)).expect("the gateway exits");
    assert!(status.success(), "exit status {status}");
    assert!(processes_mentioning(running).is_empty(), "the extension is stopped");
    let text = std::fs::read_to_string(&out).expect("what the extension saw");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(lines[0]["event"], "REGISTER", "{text}");
    assert_eq!(lines[0]["function_name"], "hello", "{text}");
    let invoked: Vec<&str> =
        lines[1..4].iter().map(|l| l["request_id"].as_str().unwrap_or("")).collect();
    assert_eq!(invoked, ids, "an INVOKE per request, with its request id: {text}");
    match emulator {
        Emulator::Builtin => {
            assert_eq!(lines.len(), 5, "{text}");
            assert_eq!(lines[4]["event"], "SHUTDOWN", "{text}");
            assert_eq!(lines[4]["reason"], "spindown", "{text}");
            assert_eq!(lines[4]["invokes"], 3, "{text}");
        }
        Emulator::Rie => assert_eq!(lines.len(), 4, "no SHUTDOWN under the RIE: {text}"),
    }
}

/// A function's memory stays flat over many invocations: nothing the
/// gateway sends it (such as a fresh X-Ray trace id per invocation, which
/// `lambda_runtime` stores with setenv and glibc never frees) may grow a
/// long-lived environment. Measured before the fix: ~140 bytes an
/// invocation, 1.7 MB over these 12,000.
#[test]
fn a_functions_memory_does_not_grow_with_invocations() {
    let _serial = one_at_a_time();
    let stack =
        Stack::start(Options { name: "memory", envs: 1, prewarm: true, ..Options::default() });
    let ping = stack.image.join("functions/ping/bootstrap").to_string_lossy().into_owned();
    let rss_kb = || {
        let (pid, _) = processes_mentioning(&ping)
            .into_iter()
            .find(|(_, cmd)| cmd.starts_with(&ping))
            .expect("the ping environment");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB")
    };
    let run = |requests: usize| {
        thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let agent = agent(Duration::from_secs(30));
                    for _ in 0..requests / 8 {
                        let r = get(&agent, stack.base(), "/ping").expect("ping");
                        assert_eq!(r.status, 200);
                    }
                });
            }
        })
    };
    // Warm the allocator's pools first, then measure.
    run(2_000);
    let before = rss_kb();
    run(12_000);
    let after = rss_kb();
    eprintln!("ping's resident memory: {before} kB before, {after} kB after 12,000 invocations");
    assert!(after < before + 600, "grew from {before} kB to {after} kB");
}

/// The resident memory of process `pid` now, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Forty clients at once, each sending near-6 MB bodies, to a pod limited
/// to 128 MiB, as an attacker who can reach the LoadBalancer would: every
/// answer is a 200, 413, 422 or 503, the gateway stays within its memory
/// budget, nothing is killed or restarted, and afterwards a large body
/// reaches the function again. (Measured before the budget: 430 MB.)
#[test]
fn large_bodies_cannot_exhaust_the_pods_memory() {
    let _serial = one_at_a_time();
    const LIMIT: u64 = attack::POD_MEMORY;
    let stack = attack::pod("abuse", Options::default().queue);
    let budget = metric(&stack.metrics(), "kf_gateway_memory_budget_bytes");
    assert_eq!(budget, (LIMIT / 3) as f64, "the budget follows the cgroup's limit");
    let gateway = stack.server.child.id();
    let idle_kb = rss_kb(gateway);
    let padding = "a".repeat(5_900_000);
    let body = format!(r#"{{"n": 1462370954730, "padding": "{padding}"}}"#);
    // Text of control bytes: each is six bytes in the event's JSON.
    let control = "\u{1}".repeat(2_000_000);
    let base = stack.base();
    let peak_kb = std::sync::atomic::AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<Reply, String>> = thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak_kb.fetch_max(rss_kb(gateway), std::sync::atomic::Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
        });
        let clients: Vec<_> = (0..40)
            .map(|i| {
                let (body, kind) = if i % 4 == 3 {
                    (control.as_str(), "text/plain")
                } else {
                    (body.as_str(), "application/json")
                };
                s.spawn(move || {
                    let agent = agent(Duration::from_secs(60));
                    (0..3)
                        .map(|_| {
                            e2e::read(
                                agent
                                    .post(format!("{base}/api/v1/hello"))
                                    .header("content-type", kind)
                                    .send(body),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        results
    });
    let counts = statuses(&results.iter().map(|r| (Instant::now(), r.clone())).collect::<Vec<_>>());
    let peak_kb = peak_kb.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "120 bodies of 2 to 6 MB from 40 clients: {counts:?}; gateway RSS {idle_kb} kB idle, \
         peak {peak_kb} kB; budget {} kB",
        budget as u64 / 1024
    );
    // 422: the control bytes are not JSON, which `hello` says.
    assert!(
        counts.keys().all(|k| ["200", "413", "422", "503"].contains(&k.as_str())),
        "{counts:?}"
    );
    // How many 6 MB bodies complete during the storm is a race (0 to 2 of
    // 90 on a 2-CPU VM, also before the Extensions API: ~30 bodies at once
    // grow against a 43 MB budget, and most are refused part-way). What
    // must hold is that each refusal gives its bytes back: the same body,
    // sent once the storm is over, is taken whole and reaches `hello`,
    // which answers it with its own 413 (its model takes 64 KiB at most;
    // the gateway's own 413 would say "Request Entity Too Large").
    let after = e2e::read(
        agent(Duration::from_secs(60))
            .post(format!("{base}/api/v1/hello"))
            .header("content-type", "application/json")
            .send(body.as_str()),
    )
    .expect("a 6 MB body after the storm");
    assert_eq!(
        (after.status, after.json()["message"].clone()),
        (413, json!("the body is 5900035 bytes; this endpoint takes at most 65536")),
        "the budget came back whole, and the body reached the function"
    );
    assert_eq!(metric(&stack.metrics(), "kf_gateway_memory_budget_held_bytes"), 0.0);
    // What the budget does not count: each of the 40 requests' fixed share
    // (head, buffers: `REQUEST_OVERHEAD`, bounded by the connection cap),
    // and the allocator's own slack (free memory its arenas keep resident
    // between peaks; up to about a megabyte over the budget in 2 of 10 runs
    // on a 2-CPU VM).
    let unbudgeted = 40 * gateway::budget::REQUEST_OVERHEAD as u64 + (2 << 20);
    assert!(
        peak_kb * 1024 < idle_kb * 1024 + budget as u64 + unbudgeted,
        "the gateway held {peak_kb} kB, past {idle_kb} kB idle + its {budget} byte budget \
         + {unbudgeted} bytes it does not count"
    );
    let metrics = stack.metrics();
    assert!(!metrics.contains("kf_gateway_environment_replacements_total{"), "{metrics}");
    assert_eq!(stack.cgroup.as_ref().map(MemoryCgroup::oom_kills), Some(0), "an OOM kill");
    assert!(stack.server.log_text().lines().count() < 1000, "log flood");
    let r = get(&agent(Duration::from_secs(10)), stack.base(), "/ping").expect("ping after");
    assert_eq!(r.status, 200);
}

/// What the attack tests share: the stack's public port, a runtime for the
/// attackers, a fresh client's probe, and the pod's peak memory.
mod attack {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A pod's memory limit, as the manifests set it.
    pub const POD_MEMORY: u64 = 128 << 20;

    /// The stack as a pod runs it, in a memory cgroup of [`POD_MEMORY`],
    /// prewarmed, each function's queue holding `queue` requests.
    pub fn pod(name: &str, queue: usize) -> Stack {
        Stack::start(Options {
            name,
            memory_limit: Some(POD_MEMORY),
            prewarm: true,
            queue,
            ..Options::default()
        })
    }

    /// The stack's public port.
    pub fn target(stack: &Stack) -> std::net::SocketAddr {
        address(stack.base())
    }

    /// Two threads for the attackers, the probe and the sampler.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// A connection to `target` from 127.0.0.`last` (a machine of its own),
    /// with `receive_buffer` bytes of receive buffer if given.
    pub async fn connect(
        target: std::net::SocketAddr,
        last: u8,
        receive_buffer: Option<u32>,
    ) -> std::io::Result<tokio::net::TcpStream> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, last], 0)))?;
        socket.connect(target).await
    }

    /// Whether the attack goes on, and how many of its connections were cut.
    #[derive(Debug, Default)]
    pub struct Flood {
        pub stop: std::sync::atomic::AtomicBool,
        pub cut: std::sync::atomic::AtomicU64,
    }

    impl Flood {
        pub fn running(&self) -> bool {
            !self.stop.load(std::sync::atomic::Ordering::Relaxed)
        }

        pub fn cut(&self) -> u64 {
            self.cut.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    /// `count` attackers from 127.0.0.`from` (a machine of its own), each
    /// on a connection of its own: it sends `head`, then `chunk` bytes every
    /// `every`, and reconnects when cut.
    #[derive(Debug, Clone, Copy)]
    pub struct Trickle {
        pub count: usize,
        pub from: u8,
        pub head: &'static [u8],
        pub every: Duration,
        pub chunk: usize,
    }

    /// Starts `attack`'s attackers against `target`, until `flood` stops.
    /// The first connections are spread over a second.
    pub fn trickle(
        flood: &std::sync::Arc<Flood>,
        target: std::net::SocketAddr,
        attack: Trickle,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let Trickle { count, from, head, every, chunk } = attack;
        (0..count)
            .map(|i| {
                let flood = flood.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros((i as u64 * 500) % 1_000_000)).await;
                    while flood.running() {
                        let Ok(mut stream) = connect(target, from, None).await else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let mut alive = stream.write_all(head).await.is_ok();
                        while alive && flood.running() {
                            tokio::time::sleep(every).await;
                            alive = stream.write_all(&vec![b'a'; chunk]).await.is_ok();
                        }
                        flood.cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect()
    }

    /// What fresh clients saw while a flood ran.
    pub struct UnderFlood {
        /// Each fresh `/ping`: its status and how long it took.
        pub answers: Vec<(String, Duration)>,
        /// The gateway's peak resident memory meanwhile, in kB.
        pub gateway_peak_kb: u64,
        /// The attackers' connections that were cut.
        pub cut: u64,
    }

    /// Runs `attacks` against `stack`'s public port, lets them build up for
    /// 3 s, then a fresh client's `/ping` every quarter second for
    /// `seconds`, and stops them.
    pub fn fresh_pings_under(stack: &Stack, attacks: &[Trickle], seconds: u64) -> UnderFlood {
        let gateway = stack.server.child.id();
        let target = target(stack);
        runtime().block_on(async move {
            let flood = std::sync::Arc::new(Flood::default());
            let attackers: Vec<_> =
                attacks.iter().flat_map(|attack| trickle(&flood, target, *attack)).collect();
            let sampler = sample_rss(&flood, gateway);
            tokio::time::sleep(Duration::from_secs(3)).await;
            let answers = fresh_clients(target, "/ping", Duration::from_millis(250), seconds).await;
            flood.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            attackers.iter().for_each(tokio::task::JoinHandle::abort);
            let gateway_peak_kb = sampler.await.expect("sampler");
            UnderFlood { answers, gateway_peak_kb, cut: flood.cut() }
        })
    }

    /// The peak resident memory of process `pid` in kB, sampled every 50 ms
    /// until `flood` stops.
    pub fn sample_rss(flood: &std::sync::Arc<Flood>, pid: u32) -> tokio::task::JoinHandle<u64> {
        let flood = flood.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while flood.running() {
                peak = peak.max(rss_kb(pid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    }

    /// A fresh client's `GET path` every `period` for `seconds`, each on a
    /// new connection from 127.0.0.1 to `target`.
    pub async fn fresh_clients(
        target: std::net::SocketAddr,
        path: &str,
        period: Duration,
        seconds: u64,
    ) -> Vec<(String, Duration)> {
        let mut answers = Vec::new();
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            let (status, took) = fresh_get(target, path).await;
            answers.push((status, took));
            tokio::time::sleep(period.saturating_sub(took)).await;
        }
        answers
    }

    /// The address of a base URL `http://127.0.0.1:port`.
    pub fn address(base: &str) -> std::net::SocketAddr {
        let port: u16 = base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A fresh client's `GET /ping` on a new connection from 127.0.0.1: its
    /// status (or what went wrong) and how long it took.
    pub async fn fresh_ping(target: std::net::SocketAddr) -> (String, Duration) {
        fresh_get(target, "/ping").await
    }

    /// A fresh client's `GET path` on a new connection from 127.0.0.1.
    pub async fn fresh_get(target: std::net::SocketAddr, path: &str) -> (String, Duration) {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let mut stream = connect(target, 1, None).await?;
            let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&reply).into_owned())
        })
        .await;
        let status = match answer {
            Ok(Ok(reply)) => reply.get(9..12).unwrap_or("???").to_owned(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "no answer in 5 s".to_owned(),
        };
        (status, started.elapsed())
    }

    /// The answers that were not a 200 within 1 s, and the slowest.
    pub fn judge(answers: &[(String, Duration)]) -> (Vec<&(String, Duration)>, Duration) {
        let slowest = answers.iter().map(|(_, took)| *took).max().unwrap_or_default();
        let failed = answers
            .iter()
            .filter(|(s, took)| s != "200" || *took > Duration::from_secs(1))
            .collect();
        (failed, slowest)
    }

    /// The pod's peak memory (its cgroup's), in kB.
    pub fn pod_peak_kb(stack: &Stack) -> u64 {
        std::fs::read_to_string(
            stack.cgroup.as_ref().expect("a cgroup").dir.join("memory.max_usage_in_bytes"),
        )
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
            / 1024
    }
}

/// An attacker at the LoadBalancer with one ordinary machine, against a
/// pod of 128 MiB with the defaults users run (1,024 connections): 2,000
/// clients trickling request heads one byte every 2 s (reconnecting when
/// cut) and 60 declaring 6 MB bodies sent at 1 KB/s, all at once for 30 s.
/// A fresh client's `GET /ping`, every quarter second on a new connection,
/// is answered 200 within 1 s every time; nothing is OOM-killed; the
/// gateway's peak memory is reported. The attackers come from 127.0.0.2
/// and 127.0.0.3, the fresh client from 127.0.0.1, as different machines
/// would (all of them loopback addresses).
#[test]
fn slow_clients_cannot_shut_fresh_ones_out() {
    let _serial = one_at_a_time();
    const SLOW_HEADS: usize = 2_000;
    const SLOW_BODIES: usize = 60;
    const SECONDS: u64 = 30;
    // The slow bodies' requests are admitted and hold their bytes, rather
    // than being turned away at the queue's default 128.
    let stack = attack::pod("slow-clients", 1024);
    let heads = attack::Trickle {
        count: SLOW_HEADS,
        from: 2,
        head: b"GET /ping HTTP/1.1\r\nhost: x\r\nx-slow: ",
        every: Duration::from_secs(2),
        chunk: 1,
    };
    let bodies = attack::Trickle {
        count: SLOW_BODIES,
        from: 3,
        head: b"POST /api/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 6000000\r\n\r\n{\"n\": 12, \"pad\": \"",
        every: Duration::from_secs(1),
        chunk: 1024,
    };
    let attack::UnderFlood { answers, gateway_peak_kb: peak_kb, cut } =
        attack::fresh_pings_under(&stack, &[heads, bodies], SECONDS);
    let (failed, slowest) = attack::judge(&answers);
    let metrics = stack.metrics();
    let evicted = metric(&metrics, "kf_gateway_connections_evicted_total");
    let pod_peak_kb = attack::pod_peak_kb(&stack);
    eprintln!(
        "{SLOW_HEADS} slow heads and {SLOW_BODIES} slow bodies for {SECONDS} s: {} fresh /ping, slowest {slowest:?}, \
         {} not 200 within 1 s; {evicted} connections evicted, {cut} attacker connections cut; \
         gateway peak RSS {peak_kb} kB, the pod's peak {} kB of {} kB",
        answers.len(),
        failed.len(),
        pod_peak_kb,
        attack::POD_MEMORY / 1024
    );
    record_reliability(
        "slow-clients",
        json!({"slow_heads": SLOW_HEADS, "slow_bodies": SLOW_BODIES, "seconds": SECONDS,
               "fresh_requests": answers.len(), "fresh_failed": failed.len(),
               "slowest_ms": slowest.as_secs_f64() * 1e3, "evicted": evicted, "attacker_cut": cut,
               "gateway_peak_rss_kb": peak_kb, "pod_peak_kb": pod_peak_kb,
               "limit_kb": attack::POD_MEMORY / 1024, "oom_kills": stack.cgroup.as_ref().map(MemoryCgroup::oom_kills)}),
    );
    assert!(answers.len() >= (SECONDS * 3) as usize, "too few tries: {}", answers.len());
    assert!(failed.is_empty(), "fresh clients shut out: {failed:?}");
    assert!(evicted > 0.0, "the flood never reached the cap: the test tests nothing");
    assert_eq!(stack.cgroup.as_ref().map(MemoryCgroup::oom_kills), Some(0), "an OOM kill");
    assert!(peak_kb > 0 && peak_kb * 1024 < attack::POD_MEMORY, "peak {peak_kb} kB");
}

/// Issue 31: 1,400 connections from one machine (127.0.0.2), each sending
/// a head that declares a 1 MB body and then a byte of it every 2 s,
/// reconnecting when cut, for 20 s, against a pod of 128 MiB with the
/// defaults (1,024 connections). A connection reading a body gives way at
/// the cap as one waiting for a head does, and a body must keep 4 KiB/s
/// after 2 s: a fresh client's `/ping` every quarter second is answered
/// within 1 s every time (it waited up to 9 s when a body counted as a
/// request in progress).
#[test]
fn slow_bodies_cannot_shut_fresh_ones_out() {
    let _serial = one_at_a_time();
    const SLOW_BODIES: usize = 1_400;
    const SECONDS: u64 = 20;
    let stack = attack::pod("slow-bodies", 1024);
    let bodies = attack::Trickle {
        count: SLOW_BODIES,
        from: 2,
        head: b"POST /api/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n{",
        every: Duration::from_secs(2),
        chunk: 1,
    };
    let attack::UnderFlood { answers, gateway_peak_kb: peak_kb, cut } =
        attack::fresh_pings_under(&stack, &[bodies], SECONDS);
    let (failed, slowest) = attack::judge(&answers);
    let metrics = stack.metrics();
    let evicted = metric(&metrics, "kf_gateway_connections_evicted_total");
    let pod_peak_kb = attack::pod_peak_kb(&stack);
    eprintln!(
        "{SLOW_BODIES} slow bodies for {SECONDS} s: {} fresh /ping, slowest {slowest:?}, {} not 200 \
         within 1 s; {evicted} connections evicted, {cut} attacker connections cut; gateway peak \
         RSS {peak_kb} kB, the pod's peak {pod_peak_kb} kB",
        answers.len(),
        failed.len(),
    );
    record_reliability(
        "slow-bodies",
        json!({"slow_bodies": SLOW_BODIES, "seconds": SECONDS,
               "fresh_requests": answers.len(), "fresh_failed": failed.len(),
               "slowest_ms": slowest.as_secs_f64() * 1e3, "evicted": evicted, "attacker_cut": cut,
               "gateway_peak_rss_kb": peak_kb, "pod_peak_kb": pod_peak_kb,
               "limit_kb": attack::POD_MEMORY / 1024, "oom_kills": stack.cgroup.as_ref().map(MemoryCgroup::oom_kills)}),
    );
    assert!(answers.len() >= (SECONDS * 3) as usize, "too few tries: {}", answers.len());
    assert!(failed.is_empty(), "fresh clients shut out: {failed:?}");
    assert!(evicted > 0.0, "the flood never reached the cap: the test tests nothing");
    assert_eq!(stack.cgroup.as_ref().map(MemoryCgroup::oom_kills), Some(0), "an OOM kill");
}

/// Issue 31: a pod of the cluster (127.0.0.2) opens 250 connections to the
/// admin port, each posting to the Invoke API a head that declares a 1 MB
/// payload and then a byte of it every 2 s, reconnecting when cut, for
/// 20 s. The kubelet's probes, every second with its 2 s timeout, are
/// answered every time on the probes' own port (what the manifests'
/// liveness probe asks), and on the admin port too (a trickling body gives
/// way at its cap). They failed 47 of 80 when the probes shared the admin
/// port and refused calls drained their bodies as in-flight requests.
#[test]
fn slow_invoke_callers_cannot_starve_the_probes() {
    let _serial = one_at_a_time();
    const CALLERS: usize = 250;
    const SECONDS: u64 = 20;
    let stack = attack::pod("slow-invokers", 1024);
    let (admin, probes) = (attack::address(&stack.admin), attack::address(&stack.probes));
    let runtime = attack::runtime();
    let (on_probes, on_admin, cut) = runtime.block_on(async move {
        let flood = std::sync::Arc::new(attack::Flood::default());
        let callers = attack::Trickle {
            count: CALLERS,
            from: 2,
            head: b"POST /2015-03-31/functions/HelloFunction/invocations HTTP/1.1\r\n\
                    host: x\r\ncontent-length: 1000000\r\n\r\n{",
            every: Duration::from_secs(2),
            chunk: 1,
        };
        let attackers = attack::trickle(&flood, admin, callers);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let every = Duration::from_secs(1);
        let (on_probes, on_admin) = tokio::join!(
            attack::fresh_clients(probes, "/healthz", every, SECONDS),
            attack::fresh_clients(admin, "/healthz", every, SECONDS),
        );
        flood.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        attackers.iter().for_each(tokio::task::JoinHandle::abort);
        (on_probes, on_admin, flood.cut())
    });
    // The kubelet's timeout (the manifests' timeoutSeconds).
    let late = |answers: &[(String, Duration)]| -> Vec<(String, Duration)> {
        answers
            .iter()
            .filter(|(s, took)| s != "200" || *took > Duration::from_secs(2))
            .cloned()
            .collect()
    };
    let slowest = |answers: &[(String, Duration)]| {
        answers.iter().map(|(_, took)| *took).max().unwrap_or_default()
    };
    let (failed_probes, failed_admin) = (late(&on_probes), late(&on_admin));
    eprintln!(
        "{CALLERS} slow Invoke callers for {SECONDS} s ({cut} of their connections cut): probes' \
         port {} probes, {} failed, slowest {:?}; admin port {} probes, {} failed, slowest {:?}",
        on_probes.len(),
        failed_probes.len(),
        slowest(&on_probes),
        on_admin.len(),
        failed_admin.len(),
        slowest(&on_admin)
    );
    record_reliability(
        "slow-invokers",
        json!({"callers": CALLERS, "seconds": SECONDS, "attacker_cut": cut,
               "probes": on_probes.len(), "probes_failed": failed_probes.len(),
               "slowest_probe_ms": slowest(&on_probes).as_secs_f64() * 1e3,
               "admin_probes": on_admin.len(), "admin_probes_failed": failed_admin.len(),
               "slowest_admin_probe_ms": slowest(&on_admin).as_secs_f64() * 1e3,
               "oom_kills": stack.cgroup.as_ref().map(MemoryCgroup::oom_kills)}),
    );
    assert!(on_probes.len() >= SECONDS as usize - 2, "too few probes: {}", on_probes.len());
    assert!(failed_probes.is_empty(), "liveness probes failed: {failed_probes:?}");
    assert!(failed_admin.is_empty(), "probes on the admin port failed: {failed_admin:?}");
    assert!(cut > 0, "no caller was ever cut: the flood never pressed");
    assert_eq!(stack.cgroup.as_ref().map(MemoryCgroup::oom_kills), Some(0), "an OOM kill");
}

/// Issue 31's key bomb: a valid 6 MB JSON object of 520,000 short unique
/// keys at `hello`, once and then 50 at once, against a pod of 128 MiB.
/// Parsed into a map of every member it took the function to 104 MB and
/// the second was OOM-killed; now `hello` refuses a body over 64 KiB
/// before parsing it (and would skip unknown keys unstored anyway): every
/// answer is a refusal (413, or 503 when the gateway's budget or queue is
/// full), never a 500; no process of the pod is killed or replaced; a
/// fresh `hello` is answered after.
#[test]
fn a_key_bomb_leaves_every_process_of_the_pod_alive() {
    let _serial = one_at_a_time();
    const AT_ONCE: usize = 50;
    let stack = attack::pod("key-bomb", 128);
    let mut bomb = String::from("{");
    for i in 0..520_000 {
        bomb.push_str(&format!("\"k{i}\":0,"));
    }
    bomb.push_str("\"n\":12}");
    assert!(bomb.len() > 6_000_000 && bomb.len() < intake_limit(), "{} bytes", bomb.len());
    let agent = agent(Duration::from_secs(60));
    let before = stack.processes();
    let first = post(&agent, stack.base(), "/api/v1/hello", &bomb).map(|r| r.status);
    let statuses: Vec<Result<u16, String>> = thread::scope(|s| {
        let bombers: Vec<_> = (0..AT_ONCE)
            .map(|_| {
                s.spawn(|| {
                    let own = e2e::agent(Duration::from_secs(60));
                    post(&own, stack.base(), "/api/v1/hello", &bomb).map(|r| r.status)
                })
            })
            .collect();
        bombers.into_iter().map(|b| b.join().expect("bomber")).collect()
    });
    let after = post(&agent, stack.base(), "/api/v1/hello", "{}").expect("hello after");
    let metrics = stack.metrics();
    let env_peak = metric(&metrics, r#"kf_gateway_environment_max_memory_bytes{function="hello"}"#);
    let cold_starts = metric(&metrics, r#"kf_gateway_cold_starts_total{function="hello"}"#);
    let pod_peak_kb = attack::pod_peak_kb(&stack);
    let mut counts = std::collections::BTreeMap::new();
    for status in std::iter::once(&first).chain(&statuses) {
        *counts.entry(format!("{status:?}")).or_insert(0) += 1;
    }
    eprintln!(
        "a 6 MB key bomb, then {AT_ONCE} at once: {counts:?}; hello's environment peaked at \
         {env_peak} bytes, {cold_starts} cold starts; the pod's peak {pod_peak_kb} kB"
    );
    record_reliability(
        "key-bomb",
        json!({"body_bytes": bomb.len(), "at_once": AT_ONCE, "answers": counts,
               "hello_env_peak_bytes": env_peak, "hello_cold_starts": cold_starts,
               "pod_peak_kb": pod_peak_kb, "limit_kb": attack::POD_MEMORY / 1024,
               "oom_kills": stack.cgroup.as_ref().map(MemoryCgroup::oom_kills)}),
    );
    assert_eq!(first, Ok(413), "the first bomb");
    for status in &statuses {
        assert!(matches!(status, Ok(413 | 503)), "a bomb answered {status:?}");
    }
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(stack.cgroup.as_ref().map(MemoryCgroup::oom_kills), Some(0), "an OOM kill");
    assert_eq!(cold_starts, 1.0, "hello's environment was replaced");
    assert_eq!(stack.processes(), before, "a process of the pod died or was replaced");
}

/// Lambda's payload limit, which the bomb must stay under to reach `hello`.
fn intake_limit() -> usize {
    gateway::intake::MAX_BODY_BYTES
}

/// A thousand connections from one machine (127.0.0.2) each ask for the
/// Swagger UI's script (1.5 MB) and never read it, with a 4 KiB receive
/// buffer, and 50 more join every 2 s: without a bound, the answers they
/// leave in the gateway pass a pod's memory. Each answer stays charged to
/// the memory budget until written, and a request that needs the bytes
/// closes the connections whose answers have waited longest to be read.
/// For 20 s a fresh client (127.0.0.1) gets `/ping` every quarter second
/// within 1 s; nothing is OOM-killed in 128 MiB; afterwards the script is
/// served whole.
#[test]
fn slow_readers_cannot_exhaust_the_pods_memory() {
    let _serial = one_at_a_time();
    const READERS: usize = 1_000;
    const SECONDS: u64 = 20;
    const SCRIPT: &[u8] = b"GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nhost: x\r\n\r\n";
    // Every reader's request is answered (past the queue they would be
    // turned away at once, and hold nothing).
    let stack = attack::pod("slow-readers", 2048);
    let gateway = stack.server.child.id();
    let target = attack::target(&stack);
    let runtime = attack::runtime();
    let (answers, peak_kb, opened) = runtime.block_on(async move {
        // The readers that never read: held open until the test ends.
        let open_reader = move || async move {
            let mut stream = attack::connect(target, 2, Some(4096)).await.ok()?;
            stream.write_all(SCRIPT).await.ok()?;
            Some(stream)
        };
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.extend(open_reader().await);
        }
        let sampler = tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(SECONDS + 1);
            let mut peak = 0;
            while Instant::now() < until {
                peak = peak.max(rss_kb(gateway));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        });
        let mut answers = Vec::new();
        let until = Instant::now() + Duration::from_secs(SECONDS);
        let mut next_wave = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if Instant::now() >= next_wave {
                for _ in 0..50 {
                    readers.extend(open_reader().await);
                }
                next_wave += Duration::from_secs(2);
            }
            let (status, took) = attack::fresh_ping(target).await;
            answers.push((status, took));
            tokio::time::sleep(Duration::from_millis(250).saturating_sub(took)).await;
        }
        let peak = sampler.await.expect("sampler");
        (answers, peak, readers.len())
    });
    let (failed, slowest) = attack::judge(&answers);
    let metrics = stack.metrics();
    let closed = metric(&metrics, "kf_gateway_connections_closed_for_memory_total");
    let refused = metric(&metrics, "kf_gateway_memory_budget_refusals_total");
    let pod_peak_kb = attack::pod_peak_kb(&stack);
    // The readers are gone (the runtime dropped them): the script again,
    // read whole, and nothing left held.
    let agent = agent(Duration::from_secs(30));
    let script = get(&agent, stack.base(), "/docs/swagger-ui-bundle.js").expect("the script");
    // Their connections end as the gateway's writes meet the resets.
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let held = metric(&stack.metrics(), "kf_gateway_memory_budget_held_bytes");
        if held == 0.0 || Instant::now() > deadline {
            break held;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "{opened} readers that never read for {SECONDS} s: {} fresh /ping, slowest {slowest:?}, \
         {} not 200 within 1 s; {closed} of their connections closed for memory, {refused} \
         requests refused over budget; gateway peak RSS {peak_kb} kB, the pod's peak {} kB of {} kB",
        answers.len(),
        failed.len(),
        pod_peak_kb,
        attack::POD_MEMORY / 1024
    );
    record_reliability(
        "slow-readers",
        json!({"readers": opened, "seconds": SECONDS, "answer_bytes": script.body.len(),
               "fresh_requests": answers.len(), "fresh_failed": failed.len(),
               "slowest_ms": slowest.as_secs_f64() * 1e3, "closed_for_memory": closed,
               "refused_over_budget": refused,
               "gateway_peak_rss_kb": peak_kb, "pod_peak_kb": pod_peak_kb,
               "limit_kb": attack::POD_MEMORY / 1024, "oom_kills": stack.cgroup.as_ref().map(MemoryCgroup::oom_kills)}),
    );
    assert!(opened >= READERS, "only {opened} readers connected");
    assert!(answers.len() >= (SECONDS * 3) as usize, "too few tries: {}", answers.len());
    assert!(failed.is_empty(), "fresh clients shut out: {failed:?}");
    assert!(closed > 0.0, "no reader's connection closed: the test tests nothing");
    assert_eq!(stack.cgroup.as_ref().map(MemoryCgroup::oom_kills), Some(0), "an OOM kill");
    assert!(peak_kb > 0 && peak_kb * 1024 < attack::POD_MEMORY, "peak {peak_kb} kB");
    assert_eq!(script.status, 200);
    assert!(script.body.len() > 1_000_000, "{} bytes", script.body.len());
    assert_eq!(held, 0.0, "bytes still held after the readers left");
}

/// A function that writes 200 MB of output an invocation (half of it as one
/// line with no end): the gateway passes lines on up to 16 KiB and 1 MiB a
/// second, drops and counts the rest, and meanwhile answers the other
/// routes as usual, its memory unmoved.
#[test]
fn a_function_that_floods_its_logs_costs_neither_memory_nor_the_other_routes() {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options {
        name: "flood",
        replace: &[("hello", "flood.sh")],
        vars: &[("FLOOD_MB", "100")],
        ..Options::default()
    });
    let gateway = stack.server.child.id();
    let idle_kb = rss_kb(gateway);
    let agent = agent(Duration::from_secs(120));
    let done = std::sync::atomic::AtomicBool::new(false);
    let (flooded, pings, peak_kb) = thread::scope(|s| {
        let flood = s.spawn(|| {
            let r = post(&agent, stack.base(), "/api/v1/hello", "{}");
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        });
        let mut pings = Vec::new();
        let mut peak_kb = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let started = Instant::now();
            let r = get(&agent, stack.base(), "/ping").map(|r| r.status);
            pings.push((r, started.elapsed()));
            peak_kb = peak_kb.max(rss_kb(gateway));
            thread::sleep(Duration::from_millis(50));
        }
        (flood.join().expect("flood"), pings, peak_kb)
    });
    let log_bytes = std::fs::metadata(&stack.server.log).map(|m| m.len()).unwrap_or(0);
    let dropped = stack
        .metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"kf_gateway_function_log_dropped_bytes_total{function="hello"} "#)?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    let slowest = pings.iter().map(|(_, took)| *took).max().unwrap_or_default();
    eprintln!(
        "200 MB of output: the flood answered {:?}; {} pings meanwhile, slowest {slowest:?}; \
         the log got {log_bytes} bytes, {dropped} dropped; gateway RSS {idle_kb} kB idle, peak {peak_kb} kB",
        flooded.as_ref().map(|r| r.status),
        pings.len()
    );
    record_reliability(
        "flood",
        json!({"output_mb": 200, "log_bytes": log_bytes, "dropped_bytes": dropped,
               "pings": pings.len(), "slowest_ping_ms": slowest.as_secs_f64() * 1e3,
               "rss_idle_kb": idle_kb, "rss_peak_kb": peak_kb}),
    );
    assert_eq!(flooded.map(|r| r.status), Ok(200));
    assert!(pings.len() >= 5, "too few pings to say: {}", pings.len());
    assert!(pings.iter().all(|(r, _)| *r == Ok(200)), "{pings:?}");
    assert!(slowest < Duration::from_millis(500), "a ping took {slowest:?}");
    // Of stderr's 100 MB of lines, all but a burst and a second's rate a
    // second; stdout's one line was cut to 16 KiB instead.
    assert!(dropped > 80e6, "only {dropped} bytes dropped");
    assert!(log_bytes < 30 << 20, "the log took {log_bytes} bytes");
    assert!(peak_kb < idle_kb + 8 * 1024, "the gateway grew from {idle_kb} kB to {peak_kb} kB");
    let log = stack.server.log_text();
    assert!(log.contains("more bytes of this line cut]"), "no cut line");
    assert!(log.contains("of hello's output dropped"), "no drop report");
}

/// A function whose bootstrap starts children that ignore SIGTERM: the
/// gateway's shutdown still ends within its grace, and nothing it started
/// is left (the environment's process group is killed).
#[test]
fn children_that_ignore_sigterm_do_not_outlive_the_gateway() {
    let _serial = one_at_a_time();
    let mut stack = Stack::start(Options {
        name: "forks",
        replace: &[("hello", "forks.sh")],
        ..Options::default()
    });
    let agent = agent(Duration::from_secs(30));
    let r = post(&agent, stack.base(), "/api/v1/hello", "{}").expect("hello");
    assert_eq!(r.status, 200);
    let marker = stack.image.join("functions/hello").to_string_lossy().into_owned();
    let (bootstrap, _) = processes_mentioning(&marker).into_iter().next().expect("the runtime");
    // The runtime's process group: the runtime, its children, theirs.
    let group = || -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let fields: Vec<&str> =
                    stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
                // State, parent, process group: a zombie does not count.
                fields.first() != Some(&"Z")
                    && fields.get(2) == Some(&bootstrap.to_string().as_str())
            })
            .collect()
    };
    assert!(group().len() >= 3, "the runtime and its two children: {:?}", group());
    let signalled = Instant::now();
    stack.server.signal("-TERM");
    // The stack's grace is 10 s (see `Stack::start`).
    let status = stack.server.wait_exit(Duration::from_secs(12)).expect("the gateway exits");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !group().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!("shutdown with children ignoring SIGTERM: {took:?}");
    record_reliability("forks", json!({"shutdown_ms": took.as_secs_f64() * 1e3, "grace_s": 10}));
    assert!(
        processes_mentioning(&marker).is_empty(),
        "left running: {:?}",
        processes_mentioning(&marker)
    );
}

/// Writes a reliability test's figures to `target/reliability/NAME.json`,
/// which `make e2e` records in results/results.json for the README.
fn record_reliability(name: &str, figures: serde_json::Value) {
    let dir = workspace_root().join("target/reliability");
    std::fs::create_dir_all(&dir).expect("target/reliability");
    std::fs::write(dir.join(format!("{name}.json")), figures.to_string()).expect("write figures");
}

/// The value of an unlabelled metric.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

/// A 413 that Python's clients read: they send the whole body before they
/// read, so a server that answers and closes early gives them a reset.
#[test]
fn python_clients_read_the_413() {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options { name: "python-413", ..Options::default() });
    let script = r#"
import json, sys, urllib.error, urllib.request
url = sys.argv[1] + "/api/v1/hello"
body = b"{" + b" " * 7_000_000 + b"}"
try:
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30)
    print("no error")
except urllib.error.HTTPError as e:
    print(e.code, json.loads(e.read())["message"])
"#;
    let out = Command::new("python3").args(["-c", script, stack.base()]).output().expect("python3");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.trim(), "413 Request Entity Too Large", "{text}");
    // Locust's own client, when the load test's environment is there.
    let python = workspace_root().join(".venv-loadtest/bin/python");
    if python.exists() {
        let script = r#"
import sys, requests
r = requests.post(sys.argv[1] + "/api/v1/hello", data=b"{" + b" " * 7_000_000 + b"}", timeout=30)
print(r.status_code, r.json()["message"])
"#;
        let out = Command::new(python).args(["-c", script, stack.base()]).output().expect("python");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(text.trim(), "413 Request Entity Too Large", "{text}");
    }
}

/// What a client sees of one answer, ids and dates aside: the status, the
/// headers, and the body, with the compute time of `hello` (which differs
/// from run to run) blanked out along with the length it changes.
fn seen(
    agent: &ureq::Agent,
    base: &str,
    (method, path, body): (&str, &str, &str),
) -> (u16, Vec<(String, String)>, String) {
    let url = format!("{base}{path}");
    let result = match method {
        "GET" => agent.get(&url).header("cookie", "a=1; b=2").call(),
        "DELETE" => agent.delete(&url).call(),
        "PUT" => agent.put(&url).header("content-type", "image/png").send(body.as_bytes()),
        _ => agent.post(&url).header("content-type", "application/json").send(body.as_bytes()),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let mut text =
        response.body_mut().with_config().limit(16 << 20).read_to_string().unwrap_or_default();
    let mut timed = false;
    if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(object) = json.as_object_mut()
        && object.contains_key("elapsed_time")
    {
        object.insert("elapsed_time".into(), json!(null));
        object.insert("message2".into(), json!(null));
        text = json.to_string();
        timed = true;
    }
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            let ignored = matches!(name.as_str(), "date" | "x-request-id" | "apigw-requestid");
            !(ignored || timed && name.as_str() == "content-length")
        })
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").to_owned()))
        .collect();
    headers.sort();
    (status, headers, text)
}

/// The built-in Runtime API and the real AWS RIE, side by side: every
/// request gets the same status, headers and body from both, for every
/// route and error of the API and for each way a function can fail.
#[test]
fn conformance_builtin_answers_as_the_rie_does() {
    if rie().is_none() {
        return;
    }
    let _serial = one_at_a_time();
    let agent = agent(Duration::from_secs(30));
    fn start(name: &str, emulator: Emulator, replace: &[(&str, &str)], short: bool) -> Stack {
        let edits: &[(&str, &str)] = if short { &[HELLO_TIMEOUT] } else { &[] };
        Stack::start(Options { name, emulator, replace, edits, ..Options::default() })
    }

    let api: Vec<(&str, &str, &str)> = vec![
        ("GET", "/ping", ""),
        ("GET", "/ping?x=1&x=2", ""),
        ("POST", "/ping", "{}"),
        ("POST", "/api/v1/hello", r#"{"n": 1462370954730}"#),
        ("POST", "/api/v1/hello", r#"{"n": 18446744073709551557, "algorithm": "rho"}"#),
        ("POST", "/api/v1/hello", "nope"),
        ("POST", "/api/v1/hello", "[]"),
        ("POST", "/api/v1/hello", r#"{"n": "12"}"#),
        ("POST", "/api/v1/hello", r#"{"n": 1.5}"#),
        ("POST", "/api/v1/hello", r#"{"n": 1}"#),
        ("POST", "/api/v1/hello", r#"{"n": 18446744073709551557}"#),
        ("POST", "/api/v1/hello", r#"{"algorithm": "magic"}"#),
        ("POST", "/api/v1/hello", ""),
        ("PUT", "/api/v1/hello", "\u{1}\u{2}binary"),
        ("GET", "/api/v1/hello", ""),
        ("DELETE", "/ping", ""),
        ("GET", "/", ""),
        ("GET", "/nope", ""),
        ("GET", "/api/v2/hello", ""),
        ("GET", "/docs/missing.js", ""),
        ("GET", "/openapi.json", ""),
        ("GET", "/docs", ""),
        ("GET", "/docs/", ""),
        ("GET", "/docs/swagger-ui.css", ""),
    ];
    let builtin = start("conf-api", Emulator::Builtin, &[][..], false);
    let rie = start("conf-api", Emulator::Rie, &[][..], false);
    for request in &api {
        let (ours, theirs) =
            (seen(&agent, builtin.base(), *request), seen(&agent, rie.base(), *request));
        assert_eq!(ours, theirs, "{request:?}: builtin (left) and RIE (right) differ");
    }
    drop((builtin, rie));

    // Each way a function can fail, twice in a row: the second request
    // finds the failed environment replaced, not stuck.
    let hello = ("POST", "/api/v1/hello", "{}");
    // (A function that never polls, or answers too late, runs into its
    // Timeout, shortened to 1 s.)
    for (runtime, short, status) in [
        ("failing.sh", false, 500),
        ("init-error.sh", false, 500),
        ("exit-at-start.sh", false, 500),
        ("exit-mid-invoke.sh", false, 500),
        ("big-response.sh", false, 500),
        ("never-polls.sh", true, 500),
        ("slow.sh", true, 500),
    ] {
        let replace = [("hello", runtime)];
        let builtin = start("conf-fail", Emulator::Builtin, &replace[..], short);
        let rie = start("conf-fail", Emulator::Rie, &replace[..], short);
        for attempt in 1..=2 {
            let ours = seen(&agent, builtin.base(), hello);
            let theirs = seen(&agent, rie.base(), hello);
            assert_eq!(ours.0, status, "{runtime}, attempt {attempt}: {ours:?}");
            assert_eq!(
                ours, theirs,
                "{runtime}, attempt {attempt}: builtin (left) and RIE (right) differ"
            );
        }
        // The other functions are untouched.
        let r = get(&agent, builtin.base(), "/ping").expect("ping");
        assert_eq!(r.status, 200, "{runtime}");
    }
}

/// A test-only function, added to the template as a user adds one: its
/// route, variables, memory size and timeout come from the template alone.
const EXTRA_FUNCTION: &str = r#"  EchoFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: echo
    Properties:
      MemorySize: 256
      Environment:
        Variables:
          GREETING: hello-from-the-template
      Events:
        Item:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Method: GET
            Path: /items/{id}
"#;

/// Adding a function is a binary and a template entry: the unchanged
/// gateway serves it, with the event API Gateway would send.
#[test]
fn an_extra_function_in_the_template_is_served_by_the_unchanged_gateway() {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options {
        name: "extra",
        extra: EXTRA_FUNCTION,
        replace: &[("echo", "echo.sh")],
        ..Options::default()
    });
    let agent = agent(Duration::from_secs(30));
    let mut response =
        agent.get(format!("{}/items/42?x=1", stack.base())).call().expect("the extra function");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-greeting"], "hello-from-the-template");
    assert_eq!(response.headers()["x-memory"], "256");
    let event: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("JSON");
    assert_eq!(event["routeKey"], "GET /items/{id}");
    assert_eq!(event["pathParameters"], json!({"id": "42"}));
    assert_eq!(event["rawPath"], "/items/42");
    assert_eq!(event["queryStringParameters"], json!({"x": "1"}));
    // Its route is GET only: another method has no route, as on AWS.
    let r = post(&agent, stack.base(), "/items/42", "{}").expect("post");
    assert_eq!((r.status, r.json()), (404, json!({"message": "Not Found"})));
    // The project's functions are served as before.
    check_api(stack.base());
}

/// `--functions` makes a pod serve some functions only (one Deployment per
/// function); the others' routes are 404s, and their environments never
/// start.
#[test]
fn a_pod_can_serve_a_subset_of_the_functions() {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options {
        name: "subset",
        args: &["--functions", "ping"],
        prewarm: true,
        ..Options::default()
    });
    let agent = agent(Duration::from_secs(30));
    assert_eq!(get(&agent, stack.base(), "/ping").expect("ping").status, 200);
    for (path, body) in [("/api/v1/hello", "{}"), ("/docs/", "")] {
        let r = post(&agent, stack.base(), path, body).expect(path);
        assert_eq!((r.status, r.json()), (404, json!({"message": "Not Found"})), "{path}");
    }
    let running: Vec<_> = stack.processes().into_iter().map(|(_, cmd)| cmd).collect();
    assert!(running.iter().any(|c| c.contains("functions/ping/")), "{running:?}");
    assert!(!running.iter().any(|c| c.contains("functions/hello/")), "{running:?}");
    let metrics = stack.metrics();
    assert!(!metrics.contains(r#"function="hello""#), "{metrics}");
}

/// The gateway refuses to start on a template it cannot honour, or on a
/// function the template does not have, and says what is wrong.
#[test]
fn a_template_it_cannot_honour_stops_the_start_with_the_key_and_line() {
    let bin = binaries();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-template");
    std::fs::create_dir_all(&dir).expect("dir");
    let template = std::fs::read_to_string(e2e::template_path()).expect("template.yaml");
    let bad = template.replacen("      Timeout: 10\n", "      Timeout: 10\n      Layers: [x]\n", 1);
    let line = bad.lines().position(|l| l.contains("Layers")).expect("added") + 1;
    std::fs::write(dir.join("template.yaml"), &bad).expect("write");
    let run = |args: &[&str]| {
        let out = e2e::command(&bin.gateway())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run the gateway");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, log) = run(&["--template", "template.yaml"]);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains(&format!("template line {line}: HelloFunction.Properties.Layers")),
        "{log}"
    );
    std::fs::write(dir.join("template.yaml"), &template).expect("write");
    let (code, log) = run(&["--template", "template.yaml", "--functions", "pong"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(r#"no function \"pong\" (it has hello, ping, docs, authorizer)"#),
        "{log}"
    );
}

/// A key and its hash line, as `make keygen` makes them.
const API_KEY: &str = "kf_e2e_7Yc2Qm9TzL4wPx81";

fn auth_on() -> [String; 2] {
    [
        "RequireApiKey=true".to_owned(),
        format!("ApiKeyHashes={}", shared::auth::hash_line("ci", API_KEY)),
    ]
}

fn with_key(
    agent: &ureq::Agent,
    base: &str,
    key: Option<&str>,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    let request =
        agent.post(format!("{base}/api/v1/hello")).header("content-type", "application/json");
    match key {
        Some(value) => request.header("authorization", value),
        None => request,
    }
}

/// With `RequireApiKey=true`, the template's authorizer (the same binary as
/// on AWS) guards `/api/v1/hello`, as the HTTP API does: 401 without a key,
/// 403 with a wrong one, 200 with a good one, whose decision is then cached.
fn the_authorizer_guards_hello_when_switched_on(emulator: Emulator) {
    let _serial = one_at_a_time();
    let overrides = auth_on();
    let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
    let stack = Stack::start(Options {
        name: "auth",
        emulator,
        overrides: &overrides,
        ..Options::default()
    });
    let agent = agent(Duration::from_secs(30));
    let send = |key: Option<&str>| {
        e2e::read(with_key(&agent, stack.base(), key).send(r#"{"n": 12}"#)).expect("an answer")
    };
    let r = send(None);
    assert_eq!((r.status, r.json()), (401, json!({"message": "Unauthorized"})));
    let r = send(Some("Bearer not-the-key"));
    assert_eq!((r.status, r.json()), (403, json!({"message": "Forbidden"})));
    let r = send(Some(&format!("Bearer {API_KEY}")));
    assert_eq!((r.status, &r.json()["largest_prime_factor"]), (200, &json!(3)), "{}", r.body);
    let r = send(Some(&format!("Bearer {API_KEY}")));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(Some("Bearer not-the-key"));
    assert_eq!(r.status, 403);
    // The other routes stay open.
    assert_eq!(get(&agent, stack.base(), "/ping").expect("ping").status, 200);
    assert_eq!(get(&agent, stack.base(), "/openapi.json").expect("docs").status, 200);

    let metrics = stack.metrics();
    for line in [
        r#"kf_gateway_authorizations_total{authorizer="ApiKeyAuthorizer",result="unauthorized",source="none"} 1"#,
        r#"kf_gateway_authorizations_total{authorizer="ApiKeyAuthorizer",result="denied",source="function"} 1"#,
        r#"kf_gateway_authorizations_total{authorizer="ApiKeyAuthorizer",result="allowed",source="function"} 1"#,
        r#"kf_gateway_authorizations_total{authorizer="ApiKeyAuthorizer",result="allowed",source="cache"} 1"#,
        r#"kf_gateway_authorizations_total{authorizer="ApiKeyAuthorizer",result="denied",source="cache"} 1"#,
    ] {
        assert!(metrics.contains(line), "metrics lack {line}:\n{metrics}");
    }
    // Two decisions were made by the authorizer function, no more: the
    // cache answered the rest without invoking it.
    let invocations: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("kf_gateway_invocation_duration_seconds_count")
                && l.contains(r#"function="authorizer""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(invocations, 2.0, "{metrics}");
    // The key is in no log line.
    assert!(!stack.server.log_text().contains(API_KEY));
}

/// The authorizer's context reaches the function, in
/// `requestContext.authorizer.lambda`, as on AWS.
#[test]
fn the_authorizers_context_reaches_the_function() {
    let _serial = one_at_a_time();
    let overrides = auth_on();
    let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
    let stack = Stack::start(Options {
        name: "auth-context",
        overrides: &overrides,
        replace: &[("hello", "echo.sh")],
        ..Options::default()
    });
    let agent = agent(Duration::from_secs(30));
    let r =
        e2e::read(with_key(&agent, stack.base(), Some(&format!("Bearer {API_KEY}"))).send("{}"))
            .expect("echo");
    assert_eq!(r.status, 200, "{}", r.body);
    let event = r.json();
    assert_eq!(event["requestContext"]["authorizer"], json!({"lambda": {"keyId": "ci"}}));
    assert_eq!(event["routeKey"], "ANY /api/v1/hello");
}

/// Off (the default), the tutorial's `curl -d '{}'` works as before.
#[test]
fn without_the_switch_hello_needs_no_key() {
    let _serial = one_at_a_time();
    let stack = Stack::start(Options { name: "auth-off", ..Options::default() });
    let agent = agent(Duration::from_secs(30));
    let r = post(&agent, stack.base(), "/api/v1/hello", "{}").expect("hello");
    assert_eq!(r.status, 200, "{}", r.body);
    let running: Vec<_> = stack.processes().into_iter().map(|(_, cmd)| cmd).collect();
    assert!(!running.iter().any(|c| c.contains("functions/authorizer/")), "{running:?}");
}
