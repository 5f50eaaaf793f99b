//! `make bench`'s HTTP half: the container's stack (gateway and functions,
//! in each emulator mode) on this host, beside its peers, all measured in
//! one run so that every comparison is a ratio taken on the same machine at
//! the same time:
//!
//! * `nginx`: nginx serving the same `/ping` bytes, the ceiling of HTTP on
//!   one core;
//! * `floor`: the protocol's floor (`src/bin/floor.rs`), an HTTP front and
//!   the Lambda Runtime API driving the same function bootstraps and nothing
//!   else;
//! * `builtin` and `rie`: the gateway in its two modes;
//! * `original`: the Python original's equivalent (`tools/original`,
//!   FastAPI on uvicorn, one worker).
//!
//! Each server runs pinned to one CPU and the load generator (`wrk`) to the
//! other, so the numbers say what one core of a pod does. Every server is
//! started first and stays up; then each trial runs `GET /ping` and `POST
//! /api/v1/hello` (50 connections) against each server in turn. A shared
//! VM's speed drifts by tens of percent within minutes, so the ratios are
//! taken trial by trial (a server against the peer measured seconds before
//! it) and the median ratio is reported with its range; each figure is the
//! median of the trials with its range too, and the run warns when nginx,
//! the machine's yardstick, moved more than 20% between trials.
//!
//! Per gateway mode it also measures cold start (process start to the first
//! 200 from `/api/v1/hello`), resident memory (idle, one warm environment,
//! the peak under load), the CPU each process (gateway, RIE, function)
//! spends per request, one connection's latency, and the exit status after
//! SIGTERM; in `rie` mode it invokes an RIE directly too, for what the
//! gateway adds over it.
//!
//! Usage: `stack-bench [--image DIR] [--seconds N] [--trials N] [--out FILE]
//! [--modes builtin,rie] [--original UVICORN]`; needs `wrk`, `taskset`,
//! `nginx` (else its baseline is reported missing), the `floor` binary
//! beside this one, for `rie` `AWS_LAMBDA_RIE` (or `aws-lambda-rie` on
//! PATH), and for the original the `uvicorn` of its venv (`make bench`
//! makes .venv-original).

use e2e::{Server, agent, free_port, post, workspace_root};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const STACK_CPU: &str = "1";
const LOAD_CPU: &str = "0";
const CONNECTIONS: u32 = 50;
/// How far nginx may move between trials before the run says not to trust
/// its ratios much.
const NGINX_DRIFT: f64 = 0.20;

const USAGE: &str = "usage: stack-bench [--image DIR] [--seconds N] [--trials N] [--out FILE] \
                     [--modes builtin,rie] [--original UVICORN]";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Every other word is a flag this knows, followed by its value: a typo
    // or `--help` must not start a bench that takes minutes.
    for pair in args[1..].chunks(2) {
        let known = ["--image", "--seconds", "--trials", "--out", "--modes", "--original"];
        if !known.contains(&pair[0].as_str()) || pair.len() < 2 {
            eprintln!("{USAGE}");
            std::process::exit(if pair[0] == "--help" || pair[0] == "-h" { 0 } else { 2 });
        }
    }
    let arg =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let image = arg("--image")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/image/opt/kf-api"));
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let trials: usize = arg("--trials").and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let out = arg("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/bench/stack.json"));
    let modes = arg("--modes").unwrap_or_else(|| "builtin,rie".into());
    let rie = std::env::var("AWS_LAMBDA_RIE").unwrap_or_else(|_| "aws-lambda-rie".into());
    assert!(
        image.join("gateway").exists(),
        "no {}: run `make stage`",
        image.join("gateway").display()
    );
    std::fs::create_dir_all(out.parent().expect("out dir")).expect("create out dir");
    let logs = out.parent().expect("out dir").to_path_buf();
    let bench = Bench { image, rie, seconds, logs };

    // Every server up first; the gateways' start measured on the way.
    let mut peers: Vec<Peer> = Vec::new();
    let mut missing = BTreeMap::new();
    match bench.nginx() {
        Ok(peer) => peers.push(peer),
        Err(why) => drop(missing.insert("nginx", why)),
    }
    peers.push(bench.floor());
    let mut starts = BTreeMap::new();
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (peer, start) = bench.gateway(mode);
        starts.insert(peer.name, start);
        peers.push(peer);
    }
    match arg("--original") {
        Some(uvicorn) => peers.push(bench.original(&uvicorn)),
        None => drop(missing.insert("original", "no --original UVICORN given".to_owned())),
    }

    // The trials: each route against each server in turn, trial after trial.
    let mut runs: BTreeMap<(&str, &str), Vec<Value>> = BTreeMap::new();
    for trial in 1..=trials {
        for route in &ROUTES {
            for peer in peers.iter().filter(|p| route.name == "ping" || p.name != "nginx") {
                eprint!("trial {trial}/{trials} {} {}: ", peer.name, route.name);
                let run = bench.load(peer, route);
                runs.entry((peer.name, route.name)).or_default().push(run);
            }
        }
    }

    let mut report = json!({
        "machine": machine(),
        "date": now_utc(),
        "commit": git(&["rev-parse", "--short", "HEAD"]),
        "pinning": {"stack_cpu": STACK_CPU, "load_cpu": LOAD_CPU, "connections": CONNECTIONS,
                    "seconds": seconds, "trials": trials, "interleaved": true},
        "missing": missing,
    });
    for peer in &peers {
        let mut section = json!({});
        for route in &ROUTES {
            if let Some(trials) = runs.get(&(peer.name, route.name)) {
                section[route.name] = summary(trials);
            }
        }
        if let Some(start) = starts.remove(peer.name) {
            for (key, value) in start.as_object().expect("an object") {
                section[key] = value.clone();
            }
        }
        report[if peer.name == "nginx" { "nginx_ping" } else { peer.name }] =
            if peer.name == "nginx" { section["ping"].clone() } else { section };
    }
    report["ratios"] = ratios(&runs, &peers);
    report["warnings"] = json!(warnings(&runs));

    // After the load: each gateway's memory, one connection, and its exit.
    for peer in peers.iter_mut().filter(|p| p.name == "builtin" || p.name == "rie") {
        let one = wrk(&format!("{}/ping", peer.server.base), None, seconds.min(5), 1);
        let rss_after = rss_tree_kb(peer.server.child.id() as i32);
        peer.server.signal("-TERM");
        let exit = peer.server.wait_exit(Duration::from_secs(30));
        let section = &mut report[peer.name];
        section["one_connection_ping"] = one.to_json();
        section["rss_kb"]["after_load"] = json!(rss_after);
        section["clean_exit_on_sigterm"] = json!(exit.is_some_and(|s| s.success()));
        if peer.name == "rie" {
            // What the gateway adds over invoking the RIE straight.
            let direct = bench.direct_rie();
            section["rie_direct_one_connection"] = direct.to_json();
            section["gateway_added_us_per_request"] = json!(1e6 / one.rps - 1e6 / direct.rps);
        }
    }
    for mode in ["builtin", "rie"] {
        let nginx = report["nginx_ping"]["rps"].as_f64();
        for route in ["ping", "hello"] {
            if let (Some(ceiling), Some(rps)) = (nginx, report[mode][route]["rps"].as_f64()) {
                report[mode][route]["share_of_nginx"] = json!((rps / ceiling * 1e4).round() / 1e4);
            }
        }
    }
    drop(peers);
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write report");
    println!("{}", serde_json::to_string_pretty(&report["ratios"]).expect("json"));
    for warning in report["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
    }
    eprintln!("written to {}", out.display());
}

/// A load: a route and how to ask for it.
struct Route {
    name: &'static str,
    path: &'static str,
    body: Option<&'static str>,
}

const ROUTES: [Route; 2] = [
    Route { name: "ping", path: "/ping", body: None },
    Route { name: "hello", path: "/api/v1/hello", body: Some("{}") },
];

/// A server under test, up for the whole run.
struct Peer {
    name: &'static str,
    server: Server,
}

/// What every server is started with.
struct Bench {
    image: PathBuf,
    rie: String,
    seconds: u64,
    logs: PathBuf,
}

impl Bench {
    /// `command` pinned to the stack's CPU.
    fn pinned(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("taskset");
        command.args(["-c", STACK_CPU]).arg(program);
        command
    }

    /// nginx answering `/ping` with the same bytes, one worker: the most
    /// one core serves over HTTP here.
    fn nginx(&self) -> Result<Peer, String> {
        let found = Command::new("sh").args(["-c", "command -v nginx"]).output();
        if !found.is_ok_and(|f| f.status.success()) {
            return Err("nginx is not installed (apt-get install nginx)".into());
        }
        // nginx resolves relative paths against its prefix, not the working
        // directory.
        let dir = std::path::absolute(self.logs.join("nginx")).expect("an absolute path");
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n\
               fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location = /ping {{ default_type application/json; return 200 '{{\"ping\":\"pong!\"}}'; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let mut command = self.pinned("nginx");
        command.arg("-p").arg(&dir).arg("-c").arg(dir.join("nginx.conf"));
        let mut server = Server::start(command, port, self.logs.join("stack-bench-nginx.log"));
        server.wait_for("/ping", 200, Duration::from_secs(10));
        Ok(Peer { name: "nginx", server })
    }

    /// The protocol's floor, with the gateway's flags and template.
    fn floor(&self) -> Peer {
        let binary = std::env::current_exe().expect("this binary").with_file_name("floor");
        assert!(binary.exists(), "no {}: cargo build --release -p e2e --bins", binary.display());
        let port = free_port();
        let mut command = self.pinned(binary);
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--functions-dir")
            .arg(self.image.join("functions"))
            .arg("--template")
            .arg(self.image.join("template.yaml"));
        let mut server = Server::start(command, port, self.logs.join("stack-bench-floor.log"));
        server.wait_for("/ping", 200, Duration::from_secs(30));
        Peer { name: "floor", server }
    }

    /// The Python original's equivalent, on uvicorn with one worker. Its
    /// access log is off, as the gateway's is by default: the comparison is
    /// of serving, not of logging (the original logged every request, which
    /// would only slow it further).
    fn original(&self, uvicorn: &str) -> Peer {
        let port = free_port();
        let mut command = self.pinned(uvicorn);
        command
            .args(["app:app", "--app-dir"])
            .arg(workspace_root().join("tools/original"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--no-access-log");
        let mut server = Server::start(command, port, self.logs.join("stack-bench-original.log"));
        server.wait_for("/ping", 200, Duration::from_secs(60));
        Peer { name: "original", server }
    }

    /// The gateway in `mode`, with its cold start and idle memory.
    fn gateway(&self, mode: &str) -> (Peer, Value) {
        let port = free_port();
        let started = Instant::now();
        let mut command = self.pinned(self.image.join("gateway"));
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--functions-dir")
            .arg(self.image.join("functions"))
            .arg("--template")
            .arg(self.image.join("template.yaml"))
            // The default: no template throttle in a pod (KF_THROTTLE).
            .args(["--emulator", mode, "--rie", &self.rie]);
        let log = self.logs.join(format!("stack-bench-gateway-{mode}.log"));
        let server = Server::start(command, port, log);
        poll_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let rss_idle_kb = rss_tree_kb(server.child.id() as i32);
        let client = agent(Duration::from_secs(10));
        poll_until(Duration::from_secs(30), || {
            post(&client, &server.base, "/api/v1/hello", "{}").is_ok_and(|r| r.status == 200)
        });
        let cold_start = started.elapsed();
        let rss_one_env_kb = rss_tree_kb(server.child.id() as i32);
        eprintln!(
            "{mode}: cold start {cold_start:?}; idle RSS {rss_idle_kb} kB, with hello warm {rss_one_env_kb} kB"
        );
        let name = if mode == "rie" { "rie" } else { "builtin" };
        let start = json!({
            "cold_start_ms": ms(cold_start),
            "rss_kb": {"idle_no_environment": rss_idle_kb, "one_warm_environment": rss_one_env_kb},
        });
        (Peer { name, server }, start)
    }

    /// One load run on `peer`, with its memory sampled and the CPU time of
    /// each of its processes taken.
    fn load(&self, peer: &Peer, route: &Route) -> Value {
        let root = peer.server.child.id() as i32;
        let role = |comm: &str, pid: i32| role(peer.name, comm, pid == root);
        let before = cpu_by_role(root, role);
        let peak = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let url = format!("{}{}", peer.server.base, route.path);
        let run = thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_tree_kb(root), Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(200));
                }
            });
            let run = wrk(&url, route.body, self.seconds, CONNECTIONS);
            done.store(true, Ordering::Relaxed);
            run
        });
        let after = cpu_by_role(root, role);
        let mut cpu_us = BTreeMap::new();
        for (role, seconds) in &after {
            let spent = seconds - before.get(role).copied().unwrap_or(0.0);
            cpu_us.insert(role.clone(), (spent * 1e6 / run.requests.max(1) as f64).round());
        }
        eprintln!("{:.0} req/s, p99 {} ms, cpu/request {cpu_us:?}", run.rps, run.p99_ms);
        let mut value = run.to_json();
        value["cpu_us_per_request"] = json!(cpu_us);
        value["rss_peak_kb"] = json!(peak.load(Ordering::Relaxed));
        value
    }

    /// `ping` invoked straight through an RIE, one request at a time (the
    /// RIE cannot take more), for the gateway's overhead.
    fn direct_rie(&self) -> WrkRun {
        let (invoke, runtime) = (free_port(), free_port());
        let mut command = self.pinned(&self.rie);
        command
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{invoke}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime}"))
            .arg(self.image.join("functions/ping/bootstrap"))
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("LOG_LEVEL", "warn");
        let _rie = Server::start(command, invoke, self.logs.join("stack-bench-rie.log"));
        let url = format!("http://127.0.0.1:{invoke}/2015-03-31/functions/function/invocations");
        let event = json!({
            "version": "2.0", "routeKey": "ANY /ping", "rawPath": "/ping", "rawQueryString": "",
            "headers": {"host": "127.0.0.1"}, "isBase64Encoded": false,
            "requestContext": {"http": {"method": "GET", "path": "/ping", "protocol": "HTTP/1.1",
                                        "sourceIp": "127.0.0.1", "userAgent": "wrk"},
                               "requestId": "bench", "routeKey": "ANY /ping", "stage": "$default",
                               "timeEpoch": 0}
        })
        .to_string();
        let client = agent(Duration::from_secs(10));
        poll_until(Duration::from_secs(10), || {
            e2e::read(client.post(&url).send(event.as_str()))
                .is_ok_and(|r| r.status == 200 && r.body.contains("pong"))
        });
        wrk(&url, Some(&event), self.seconds.min(5), 1)
    }
}

/// Whose CPU a process's time is: the gateway's (and the RIE's, and the
/// functions') for the gateway; the front's and the functions' for the
/// floor; the server's for nginx and the original.
fn role(peer: &str, comm: &str, is_root: bool) -> &'static str {
    match peer {
        "builtin" | "rie" => match comm {
            "gateway" | "taskset" => "gateway",
            c if c.starts_with("aws-lambda-rie") => "rie",
            _ => "function",
        },
        "floor" if is_root => "front",
        "floor" => "function",
        _ => "server",
    }
}

/// The trials of one server and route: the median run by throughput (the
/// slower middle one of an even count), with every trial's throughput, and
/// the range of its latency and CPU figures over the trials.
fn summary(trials: &[Value]) -> Value {
    let rps = |r: &Value| r["rps"].as_f64().unwrap_or(0.0);
    let mut sorted: Vec<&Value> = trials.iter().collect();
    sorted.sort_by(|a, b| rps(a).total_cmp(&rps(b)));
    let mut median = sorted[(sorted.len() - 1) / 2].clone();
    let range = |f: &dyn Fn(&Value) -> Option<f64>| {
        let all: Vec<f64> = trials.iter().filter_map(f).collect();
        json!([
            all.iter().copied().fold(f64::INFINITY, f64::min),
            all.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        ])
    };
    median["trials_rps"] = json!(trials.iter().map(rps).collect::<Vec<_>>());
    let mut spread = json!({
        "rps": range(&|r| r["rps"].as_f64()),
        "p99_ms": range(&|r| r["p99_ms"].as_f64()),
    });
    if let Some(roles) = median["cpu_us_per_request"].as_object() {
        for role in roles.keys() {
            spread["cpu_us_per_request"][role] =
                range(&|r| r["cpu_us_per_request"][role.as_str()].as_f64());
        }
    }
    median["spread"] = spread;
    median["rss_peak_kb"] = json!(trials.iter().filter_map(|r| r["rss_peak_kb"].as_u64()).max());
    median
}

/// Each gateway mode against each peer, trial by trial: `rps(mode) /
/// rps(peer)` in the same trial, the median with its range, for `/ping`
/// and `hello` (nginx serves only `/ping`).
fn ratios(runs: &BTreeMap<(&str, &str), Vec<Value>>, peers: &[Peer]) -> Value {
    let mut out = json!({});
    let rps = |r: &Value| r["rps"].as_f64().unwrap_or(0.0);
    for mode in peers.iter().filter(|p| p.name == "builtin" || p.name == "rie") {
        for peer in peers.iter().filter(|p| p.name != mode.name) {
            for route in &ROUTES {
                let (Some(ours), Some(theirs)) =
                    (runs.get(&(mode.name, route.name)), runs.get(&(peer.name, route.name)))
                else {
                    continue;
                };
                let mut each: Vec<f64> = ours
                    .iter()
                    .zip(theirs)
                    .filter(|(_, t)| rps(t) > 0.0)
                    .map(|(o, t)| rps(o) / rps(t))
                    .collect();
                if each.is_empty() {
                    continue;
                }
                let trials = each.clone();
                each.sort_by(f64::total_cmp);
                let round = |x: f64| (x * 1e4).round() / 1e4;
                out[mode.name][route.name][peer.name] = json!({
                    "median": round(each[(each.len() - 1) / 2]),
                    "min": round(each[0]),
                    "max": round(each[each.len() - 1]),
                    "trials": trials.into_iter().map(round).collect::<Vec<_>>(),
                });
            }
        }
    }
    out
}

/// What says not to trust this run much: nginx moving between trials.
fn warnings(runs: &BTreeMap<(&str, &str), Vec<Value>>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(nginx) = runs.get(&("nginx", "ping")) {
        let all: Vec<f64> = nginx.iter().filter_map(|r| r["rps"].as_f64()).collect();
        let (low, high) =
            all.iter().fold((f64::INFINITY, 0.0_f64), |(l, h), &x| (l.min(x), h.max(x)));
        if low > 0.0 && high / low - 1.0 > NGINX_DRIFT {
            out.push(format!(
                "nginx moved {:.0}% between trials ({low:.0} to {high:.0} req/s): this machine's speed \
                 drifted during the run; the ratios, each taken within one trial, hold better than \
                 the absolute figures",
                (high / low - 1.0) * 100.0
            ));
        }
    }
    out
}

fn poll_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "not ready after {limit:?}");
        thread::sleep(Duration::from_micros(500));
    }
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// One wrk run's results.
struct WrkRun {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    socket_errors: String,
}

impl WrkRun {
    fn to_json(&self) -> Value {
        json!({"requests": self.requests, "rps": self.rps.round(), "p50_ms": self.p50_ms,
               "p99_ms": self.p99_ms, "non_2xx": self.non_2xx, "socket_errors": self.socket_errors})
    }
}

fn wrk(url: &str, body: Option<&str>, seconds: u64, connections: u32) -> WrkRun {
    let mut command = Command::new("taskset");
    command.args(["-c", LOAD_CPU, "wrk", "-t1", "--latency"]);
    command.args(["-c", &connections.to_string(), "-d", &format!("{seconds}s")]);
    let script;
    if let Some(body) = body {
        script = std::env::temp_dir().join(format!("kf-wrk-{}.lua", std::process::id()));
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        );
        std::fs::write(&script, lua).expect("wrk script");
        command.arg("-s").arg(&script);
    }
    let output = command.arg(url).output().expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let find = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    };
    let latency = |p: &str| find(p).map(|v| parse_wrk_duration(&v)).unwrap_or(f64::NAN);
    WrkRun {
        requests: text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        rps: find("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        p50_ms: latency("50%"),
        p99_ms: latency("99%"),
        non_2xx: find("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0),
        socket_errors: find("Socket errors:").unwrap_or_default(),
    }
}

/// `1.23ms`, `456.00us`, `1.20s` in milliseconds.
fn parse_wrk_duration(s: &str) -> f64 {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}

/// `root` and its descendants: (pid, comm, utime+stime in seconds, rss kB).
fn tree(root: i32) -> Vec<(i32, String, f64, u64)> {
    let ticks_per_second = 100.0; // USER_HZ on Linux.
    let mut all = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return all };
    let mut parent = BTreeMap::new();
    let mut info = BTreeMap::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let comm = &stat[stat.find('(').map_or(0, |i| i + 1)..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (Some(ppid), Some(utime), Some(stime), Some(rss_pages)) =
            (fields.get(1), fields.get(11), fields.get(12), fields.get(21))
        else {
            continue;
        };
        let cpu = (utime.parse::<f64>().unwrap_or(0.0) + stime.parse::<f64>().unwrap_or(0.0))
            / ticks_per_second;
        let rss_kb = rss_pages.parse::<u64>().unwrap_or(0) * 4;
        parent.insert(pid, ppid.parse::<i32>().unwrap_or(0));
        info.insert(pid, (comm.to_owned(), cpu, rss_kb));
    }
    for (&pid, (comm, cpu, rss)) in &info {
        let mut p = pid;
        for _ in 0..16 {
            if p == root {
                all.push((pid, comm.clone(), *cpu, *rss));
                break;
            }
            match parent.get(&p) {
                Some(&pp) if pp > 0 => p = pp,
                _ => break,
            }
        }
    }
    all
}

fn rss_tree_kb(root: i32) -> u64 {
    tree(root).iter().map(|(_, _, _, rss)| rss).sum()
}

fn cpu_by_role(root: i32, role: impl Fn(&str, i32) -> &'static str) -> BTreeMap<String, f64> {
    let mut by_role = BTreeMap::new();
    for (pid, comm, cpu, _) in tree(root) {
        *by_role.entry(role(&comm, pid).to_owned()).or_insert(0.0) += cpu;
    }
    by_role
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    json!({"cpu": cpu, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
           "memory_gib": (memory as f64 / 1048576.0).round(), "os": std::env::consts::OS,
           "arch": std::env::consts::ARCH})
}

fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .current_dir(workspace_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
