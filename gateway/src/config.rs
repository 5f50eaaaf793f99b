//! The gateway's settings: flags, each also readable from an environment
//! variable (what a Kubernetes manifest sets).

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// How execution environments run a function's bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Emulator {
    /// The gateway serves the Lambda Runtime API to each bootstrap itself.
    Builtin,
    /// Each bootstrap runs under the real AWS Lambda Runtime Interface
    /// Emulator (`--rie`): the reference, slower.
    Rie,
}

/// Who may call the Invoke API on the admin port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InvokeAuth {
    /// Callers sign with AWS Signature Version 4 and one of the pod's
    /// access keys (`--invoke-keys`), as on Lambda.
    Sigv4,
    /// Anyone who reaches the admin port: for local work only.
    None,
}

/// HTTP front for Lambda functions: plain HTTP in, API Gateway HTTP API
/// events to the functions' own bootstraps through the Lambda Runtime API,
/// one invocation per execution environment at a time.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "KF_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of the admin port: `/metrics` and Lambda's Invoke API (and
    /// `/healthz`, `/readyz`), for Prometheus and the cluster's pods; not
    /// for the internet.
    #[arg(long, env = "KF_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,

    /// Address of a port that answers only `/healthz` and `/readyz`, for the
    /// kubelet's probes: no caller of the other ports can take its
    /// connections (the image and the manifests use 0.0.0.0:9091)
    /// [default: none].
    #[arg(long, env = "KF_PROBE_LISTEN")]
    pub probe_listen: Option<SocketAddr>,

    /// Who may call Lambda's Invoke API on the admin port: `sigv4`, callers
    /// signing with AWS Signature Version 4 and one of `--invoke-keys` (as
    /// boto3, the AWS CLI and the SDKs do with credentials set), or `none`,
    /// anyone who reaches the port (local work; `make run` uses it).
    #[arg(long, env = "KF_INVOKE_AUTH", value_enum, default_value_t = InvokeAuth::Sigv4)]
    pub invoke_auth: InvokeAuth,

    /// The Invoke API's access keys: a file of `ACCESS_KEY_ID:SECRET_ACCESS_KEY`
    /// lines (a Kubernetes Secret, mounted). Without the file, every call
    /// is refused.
    #[arg(long, env = "KF_INVOKE_KEYS", default_value = "/etc/kf-api/invoke/keys")]
    pub invoke_keys: PathBuf,

    /// Most connections open at once; more wait in the kernel's backlog.
    #[arg(long, env = "KF_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Bytes that requests in flight and in the queue may hold at once
    /// (e.g. `48Mi`); past it, a 503 [default: a third of the cgroup's
    /// memory limit, or 256Mi without one].
    #[arg(long, env = "KF_MEMORY_BUDGET", value_parser = parse_bytes)]
    pub memory_budget: Option<usize>,

    /// The SAM template that configures the functions, their routes and
    /// limits, as on AWS (docs/configuration.md lists the keys it honours).
    #[arg(long, env = "KF_TEMPLATE", default_value = "/opt/kf-api/template.yaml")]
    pub template: PathBuf,

    /// The template's parameters, as `sam deploy` takes them: `Name=Value`,
    /// several separated by spaces or given more than once.
    #[arg(long, env = "KF_PARAMETER_OVERRIDES", num_args = 1.., value_delimiter = ' ')]
    pub parameter_overrides: Vec<String>,

    /// Serve only these functions (by name, comma-separated), so that each
    /// can have its own Deployment and scale on its own; the other
    /// functions' routes are 404s here, and so are their names on the
    /// Invoke API (the authorizers of the routes served run too)
    /// [default: all of them, a function with no route included].
    #[arg(long, env = "KF_FUNCTIONS", value_delimiter = ',')]
    pub functions: Vec<String>,

    /// Directory holding one `<function>/bootstrap` per function.
    #[arg(long, env = "KF_FUNCTIONS_DIR", default_value = "/opt/kf-api/functions")]
    pub functions_dir: PathBuf,

    /// How environments run: the built-in Lambda Runtime API, or the real
    /// AWS Lambda Runtime Interface Emulator.
    #[arg(long, env = "KF_EMULATOR", value_enum, default_value_t = Emulator::Builtin)]
    pub emulator: Emulator,

    /// The aws-lambda-rie executable, with `--emulator rie` (a name is
    /// looked up on PATH).
    #[arg(long, env = "KF_RIE", default_value = "aws-lambda-rie")]
    pub rie: PathBuf,

    /// Most execution environments per function [default: the CPUs of the
    /// container's cgroup quota].
    #[arg(long, env = "KF_ENVS")]
    pub envs: Option<usize>,

    /// Requests that may wait per function when every environment is busy;
    /// more get 503 with Retry-After. Enough for the tutorial's 250 users on
    /// one function; the route's integration timeout bounds how long any of
    /// them waits.
    #[arg(long, env = "KF_QUEUE", default_value_t = 1024)]
    pub queue: usize,

    /// On SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, env = "KF_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub grace: Duration,

    /// On SIGTERM, how long to keep serving with /readyz failing before
    /// refusing connections, so load balancers stop sending traffic first.
    #[arg(long, env = "KF_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Start one environment per function before serving, so that no
    /// request pays a cold start (costs its memory while idle).
    #[arg(long, env = "KF_PREWARM", default_value_t = false, action = clap::ArgAction::Set)]
    pub prewarm: bool,

    /// Threads serving HTTP [default: the CPUs of the cgroup quota].
    #[arg(long, env = "KF_WORKERS")]
    pub workers: Option<usize>,

    /// Apply the template's route throttling (the HTTP API's
    /// `DefaultRouteSettings`) in this process. On AWS those limits hold for
    /// the whole API; here they would hold for each pod, so N replicas allow N
    /// times the rate, and a pod refuses load it could serve while its CPU,
    /// which the autoscaler watches, stays low. Off by default: a pod's
    /// overload is met by the admission queue, the byte budget and 503 with
    /// Retry-After, and the HPA adds pods. The template is read and checked
    /// either way.
    #[arg(long, env = "KF_THROTTLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub throttle: bool,

    /// Log one line per request (off by default: a log line per request
    /// costs more CPU than the gateway's own work on it; `/metrics` counts
    /// every request by route and status).
    #[arg(long, env = "KF_ACCESS_LOG", default_value_t = false, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// The AWS region the functions are told they run in.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,

    /// The gateway's log format.
    #[arg(long, env = "KF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// The functions' log format (`AWS_LAMBDA_LOG_FORMAT`) for every
    /// function, instead of each one's `LoggingConfig.LogFormat` (e.g.
    /// `text` in a terminal).
    #[arg(long, env = "KF_FUNCTION_LOG_FORMAT", value_enum)]
    pub function_log_format: Option<LogFormat>,

    /// The functions' log level (`AWS_LAMBDA_LOG_LEVEL`, JSON logs only)
    /// for every function, instead of each one's
    /// `LoggingConfig.ApplicationLogLevel`.
    #[arg(long, env = "KF_FUNCTION_LOG_LEVEL")]
    pub function_log_level: Option<String>,
}

impl Config {
    /// The bootstrap of `function`.
    pub fn bootstrap(&self, function: &str) -> PathBuf {
        self.functions_dir.join(function).join("bootstrap")
    }
}

/// `250ms`, `30s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) =
        s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let value: f64 = number.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// `1048576`, `512Ki`, `48Mi`, `1Gi` (powers of two, as Kubernetes writes
/// them), or `64M` (powers of ten).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: usize = number.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let scale: usize = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use Ki, Mi, Gi, K, M or G")),
    };
    value.checked_mul(scale).ok_or_else(|| format!("too large: {s:?}"))
}

/// The flags as a Markdown table (flag, variable, default, meaning), made
/// from the same definitions as `--help`, so the documentation cannot drift
/// from the binary: a test compares it with `docs/configuration.md`.
pub fn flags_table() -> String {
    use clap::CommandFactory;
    let mut table =
        String::from("| Flag | Variable | Default | What it sets |\n|---|---|---|---|\n");
    for arg in Config::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let help =
            arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let mut help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let values =
            arg.get_default_values().iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>();
        let mut default =
            if values.is_empty() { "none".to_string() } else { format!("`{}`", values.join(", ")) };
        // A default that depends on the machine is written in the help
        // text's closing `[default: ...]`; it goes in its own column.
        if let Some(start) = help.rfind(" [default: ").filter(|_| help.ends_with(']')) {
            default = help[start + " [default: ".len()..help.len() - 1].to_string();
            help.truncate(start);
        }
        let help = help.trim_end_matches('.').replace('|', "\\|");
        table.push_str(&format!("| `--{long}` | `{env}` | {default} | {help} |\n"));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md's flag table is `flags_table()`'s output;
    /// `KF_BLESS=1 cargo test -p gateway --lib flags` rewrites it.
    #[test]
    fn the_documented_flags_are_the_binarys() {
        let table = flags_table();
        crate::testing::documented("docs/configuration.md", "flags", &table);
        for flag in ["--listen", "--throttle", "--workers", "--function-log-level"] {
            assert!(table.contains(&format!("`{flag}`")), "{flag} is missing");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("48Mi"), Ok(48 << 20));
        assert_eq!(parse_bytes("2Gi"), Ok(2 << 30));
        assert_eq!(parse_bytes("64M"), Ok(64_000_000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5Ti").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn lists_parse() {
        let config = Config::try_parse_from([
            "gateway",
            "--functions",
            "hello,ping",
            "--parameter-overrides",
            "A=1 B=2",
            "--parameter-overrides",
            "C=3",
        ])
        .expect("lists");
        assert_eq!(config.functions, ["hello", "ping"]);
        assert_eq!(config.parameter_overrides, ["A=1", "B=2", "C=3"]);
    }

    #[test]
    fn defaults_parse() {
        let config = Config::try_parse_from(["gateway"]).expect("defaults");
        assert_eq!(config.listen.port(), 8080);
        assert!(config.functions.is_empty() && config.parameter_overrides.is_empty());
        assert!(!config.access_log);
        assert_eq!(config.emulator, Emulator::Builtin);
    }
}
