//! `make bench`'s HTTP half: the container's stack (gateway and functions,
//! in each emulator mode) on this host, measured the way docs/measurements.md reports
//! it, beside nginx serving the same `/ping` bytes as the one-core ceiling.
//!
//! Each server runs pinned to one CPU and the load generator (`wrk`) to the
//! other, so the numbers say what one core of a pod does; every throughput
//! is also given as a share of nginx's in the same run, so the figures
//! compare across machines. Per mode it measures: cold start (process
//! start to the first 200 from `/api/v1/hello`), resident memory (idle,
//! one warm environment, the peak under load), throughput and latency for
//! `GET /ping` and `POST /api/v1/hello` at 50 connections, the CPU each
//! process (gateway, RIE, function) spends per request, one connection's
//! latency, and the exit status after SIGTERM. In `rie` mode it also
//! invokes an RIE directly, for what the gateway adds over it.
//!
//! Each load run (50 connections, `ping` and `hello`) is repeated
//! (`--trials`, 3 by default) and the median run by throughput reported,
//! with every run's throughput beside it: one 10 s run on a shared machine
//! can be off by a fifth, and the spread says how far to trust a figure.
//!
//! Usage: `stack-bench [--image DIR] [--seconds N] [--trials N] [--out FILE]
//! [--modes builtin,rie]`; needs `wrk`, `taskset`, `nginx` (else the baseline is
//! reported missing), and for `rie` `AWS_LAMBDA_RIE` (or `aws-lambda-rie`
//! on PATH).

use e2e::{Server, agent, free_port, post, workspace_root};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const STACK_CPU: &str = "1";
const LOAD_CPU: &str = "0";
const CONNECTIONS: u32 = 50;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    const USAGE: &str = "usage: stack-bench [--image DIR] [--seconds N] [--trials N] [--out FILE] [--modes builtin,rie]";
    // Every other word is a flag this knows, followed by its value: a typo
    // or `--help` must not start a bench that takes minutes.
    for pair in args[1..].chunks(2) {
        if !matches!(pair[0].as_str(), "--image" | "--seconds" | "--trials" | "--out" | "--modes")
            || pair.len() < 2
        {
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

    let nginx = nginx_baseline(seconds, &logs);
    let nginx_rps = nginx["rps"].as_f64();
    let mut report = json!({
        "machine": machine(),
        "date": now_utc(),
        "commit": git(&["rev-parse", "--short", "HEAD"]),
        "pinning": {"stack_cpu": STACK_CPU, "load_cpu": LOAD_CPU, "connections": CONNECTIONS, "seconds": seconds, "trials": trials},
        "nginx_ping": nginx,
    });
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let mut result = measure_mode(mode, &image, &rie, seconds, trials, &logs);
        for run in ["ping", "hello"] {
            if let (Some(ceiling), Some(rps)) = (nginx_rps, result[run]["rps"].as_f64()) {
                result[run]["share_of_nginx"] = json!((rps / ceiling * 1e4).round() / 1e4);
            }
        }
        report[mode] = result;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write report");
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    eprintln!("written to {}", out.display());
}

/// One emulator mode, measured whole.
fn measure_mode(
    mode: &str,
    image: &Path,
    rie: &str,
    seconds: u64,
    trials: usize,
    logs: &Path,
) -> Value {
    // 1. Cold start and idle memory.
    let port = free_port();
    let started = Instant::now();
    let mut gateway = start_gateway(image, mode, rie, port, logs);
    let base = gateway.base.clone();
    poll_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let rss_idle_kb = rss_tree_kb(gateway.child.id() as i32);
    let client = agent(Duration::from_secs(10));
    poll_until(Duration::from_secs(30), || {
        post(&client, &base, "/api/v1/hello", "{}").is_ok_and(|r| r.status == 200)
    });
    let cold_start = started.elapsed();
    let rss_one_env_kb = rss_tree_kb(gateway.child.id() as i32);
    eprintln!(
        "{mode}: cold start {cold_start:?}; idle RSS {rss_idle_kb} kB, with hello warm {rss_one_env_kb} kB"
    );

    // 2. Throughput, latency, memory under load, CPU per request per process.
    let ping = median_of(trials, || {
        measure(&gateway, mode, "ping", &format!("{base}/ping"), None, seconds)
    });
    let hello = median_of(trials, || {
        measure(&gateway, mode, "hello", &format!("{base}/api/v1/hello"), Some("{}"), seconds)
    });

    // 3. One connection at a time: the latency of one request on its own.
    let one = wrk(&format!("{base}/ping"), None, seconds.min(5), 1);
    let rss_after_kb = rss_tree_kb(gateway.child.id() as i32);
    gateway.signal("-TERM");
    let exit = gateway.wait_exit(Duration::from_secs(30));
    drop(gateway);
    let mut result = json!({
        "cold_start_ms": ms(cold_start),
        "rss_kb": {"idle_no_environment": rss_idle_kb, "one_warm_environment": rss_one_env_kb,
                   "after_load": rss_after_kb},
        "ping": ping,
        "hello": hello,
        "one_connection_ping": one.to_json(),
        "clean_exit_on_sigterm": exit.is_some_and(|s| s.success()),
    });
    if mode == "rie" {
        // What the gateway adds over invoking the RIE straight.
        let direct = direct_rie(image, rie, seconds.min(5), logs);
        result["rie_direct_one_connection"] = direct.to_json();
        result["gateway_added_us_per_request"] = json!(1e6 / one.rps - 1e6 / direct.rps);
    }
    result
}

/// nginx answering `/ping` with the same bytes, one worker on the stack's
/// CPU: the most one core serves over HTTP here.
fn nginx_baseline(seconds: u64, logs: &Path) -> Value {
    let Ok(found) = Command::new("sh").args(["-c", "command -v nginx"]).output() else {
        return json!({"missing": "cannot run sh"});
    };
    if !found.status.success() {
        return json!({"missing": "nginx is not installed (apt-get install nginx)"});
    }
    let dir = logs.join("nginx");
    std::fs::create_dir_all(&dir).expect("nginx dir");
    // nginx resolves relative paths against its prefix, not the working
    // directory.
    let dir = std::path::absolute(&dir).expect("an absolute path");
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
    let mut command = Command::new("taskset");
    command.args(["-c", STACK_CPU, "nginx", "-p"]).arg(&dir).arg("-c").arg(dir.join("nginx.conf"));
    let mut server = Server::start(command, port, logs.join("stack-bench-nginx.log"));
    server.wait_for("/ping", 200, Duration::from_secs(10));
    let run = wrk(&format!("{}/ping", server.base), None, seconds, CONNECTIONS);
    eprintln!("nginx: {:.0} req/s, p50 {} ms, p99 {} ms", run.rps, run.p50_ms, run.p99_ms);
    run.to_json()
}

fn start_gateway(image: &Path, mode: &str, rie: &str, port: u16, logs: &Path) -> Server {
    let mut command = Command::new("taskset");
    command
        .args(["-c", STACK_CPU])
        .arg(image.join("gateway"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--functions-dir")
        .arg(image.join("functions"))
        .arg("--template")
        .arg(image.join("template.yaml"))
        // The default: no template throttle in a pod (KF_THROTTLE).
        .args(["--emulator", mode, "--rie", rie]);
    Server::start(command, port, logs.join(format!("stack-bench-gateway-{mode}.log")))
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

/// `trials` runs of `run`: the median one by throughput (the slower middle
/// one of an even count), with every run's req/s in `trials_rps` and the
/// highest peak memory of them all.
fn median_of(trials: usize, mut run: impl FnMut() -> Value) -> Value {
    let rps = |r: &Value| r["rps"].as_f64().unwrap_or(0.0);
    let mut runs: Vec<Value> = (0..trials).map(|_| run()).collect();
    let all: Vec<f64> = runs.iter().map(rps).collect();
    let peak = runs.iter().filter_map(|r| r["rss_peak_kb"].as_u64()).max();
    runs.sort_by(|a, b| rps(a).total_cmp(&rps(b)));
    let mut median = runs.swap_remove((runs.len() - 1) / 2);
    median["trials_rps"] = json!(all);
    median["rss_peak_kb"] = json!(peak);
    median
}

/// A load run with memory sampled and CPU time per process role taken.
fn measure(
    gateway: &Server,
    mode: &str,
    name: &str,
    url: &str,
    body: Option<&str>,
    seconds: u64,
) -> Value {
    let root = gateway.child.id() as i32;
    let before = cpu_by_role(root);
    let peak = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let run = thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_tree_kb(root), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(200));
            }
        });
        let run = wrk(url, body, seconds, CONNECTIONS);
        done.store(true, Ordering::Relaxed);
        run
    });
    let after = cpu_by_role(root);
    let mut cpu_us = BTreeMap::new();
    for (role, ticks) in &after {
        let spent = ticks - before.get(role).copied().unwrap_or(0.0);
        cpu_us.insert(role.clone(), (spent * 1e6 / run.requests.max(1) as f64).round());
    }
    eprintln!(
        "{mode} {name}: {:.0} req/s, p50 {} ms, p99 {} ms, cpu/request {cpu_us:?}",
        run.rps, run.p50_ms, run.p99_ms
    );
    let mut value = run.to_json();
    value["cpu_us_per_request"] = json!(cpu_us);
    value["rss_peak_kb"] = json!(peak.load(Ordering::Relaxed));
    value["environments"] = json!(count_role(root, if mode == "rie" { "rie" } else { "function" }));
    value
}

/// `root` and its descendants: (pid, role, utime+stime in seconds, rss kB).
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
        let mut inside = false;
        for _ in 0..16 {
            if p == root {
                inside = true;
                break;
            }
            match parent.get(&p) {
                Some(&pp) if pp > 0 => p = pp,
                _ => break,
            }
        }
        if inside {
            let role = match comm.as_str() {
                "gateway" | "taskset" => "gateway",
                c if c.starts_with("aws-lambda-rie") => "rie",
                _ => "function",
            };
            all.push((pid, role.to_owned(), *cpu, *rss));
        }
    }
    all
}

fn rss_tree_kb(root: i32) -> u64 {
    tree(root).iter().map(|(_, _, _, rss)| rss).sum()
}

fn cpu_by_role(root: i32) -> BTreeMap<String, f64> {
    let mut by_role = BTreeMap::new();
    for (_, role, cpu, _) in tree(root) {
        *by_role.entry(role).or_insert(0.0) += cpu;
    }
    by_role
}

fn count_role(root: i32, role: &str) -> usize {
    tree(root).iter().filter(|(_, r, _, _)| r == role).count()
}

/// `ping` invoked straight through an RIE, one request at a time (the RIE
/// cannot take more), for the gateway's overhead.
fn direct_rie(image: &Path, rie: &str, seconds: u64, logs: &Path) -> WrkRun {
    let (invoke, runtime) = (free_port(), free_port());
    let mut command = Command::new("taskset");
    command
        .args(["-c", STACK_CPU, rie, "--runtime-interface-emulator-address"])
        .arg(format!("127.0.0.1:{invoke}"))
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{runtime}"))
        .arg(image.join("functions/ping/bootstrap"))
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("LOG_LEVEL", "warn");
    let _rie = Server::start(command, invoke, logs.join("stack-bench-rie.log"));
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
    wrk(&url, Some(&event), seconds, 1)
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
