//! The SAM template, read into plain data: which functions a pod runs, on
//! which routes, with which limits. The file AWS deploys configures the pod
//! too, so that the two deployments cannot drift apart.
//!
//! A strict subset is read, and everything in it is honoured. By file:
//!
//! * `yaml.rs`: the YAML, with each node's tag (`!Ref`, `!If`, `!GetAtt`)
//!   and line, which `yaml_rust2`'s own tree forgets.
//! * `reader.rs`: `Parameters` (`Default`, `AllowedValues`, `NoEcho`),
//!   `Conditions`, `Globals` (`Function` and `HttpApi`, merged key by key
//!   into each resource, as SAM does), `Resources`, and the checks across
//!   them: every authorizer's function exists, every route's authorizer is
//!   declared, every `security` entry is on a route a function has.
//! * `function.rs`: each `AWS::Serverless::Function`: its binary
//!   (`Metadata.BuildProperties.Binary` for `rust-cargolambda` builds,
//!   else the last directory of `CodeUri`), its limits and variables, and
//!   its `HttpApi` events (`Path` with `{name}` and a last `{name+}`,
//!   `Method` or `ANY`, `TimeoutInMillis`, `PayloadFormatVersion` 2.0, an
//!   `Auth.Authorizer`). Keys: `Runtime`, `PackageType`, `CodeUri`,
//!   `Timeout`, `MemorySize`, `ReservedConcurrentExecutions`, `Environment`,
//!   `LoggingConfig`, `LogFormat`, `ApplicationLogLevel`, `SystemLogLevel`,
//!   `LogGroup`, `EventInvokeConfig`, `MaximumRetryAttempts`,
//!   `MaximumEventAgeInSeconds`, `Events`, `Path`, `Method`, `ApiId`, `TimeoutInMillis`,
//!   `PayloadFormatVersion`, `Auth`.
//! * `api.rs`: the `AWS::Serverless::HttpApi`: its `$default` stage, its
//!   `DefaultRouteSettings` throttling (and the logging settings there,
//!   read past), its Lambda authorizers (`FunctionArn` as `!GetAtt X.Arn`,
//!   payload 2.0, simple responses, `Identity.Headers`, `ReauthorizeEvery`),
//!   and of its `DefinitionBody` only `paths.<path>.<method>.security`, a
//!   list of at most one authorizer or an `!If` between two such lists.
//!   Keys: `StageName`, `DefaultRouteSettings`, `ThrottlingBurstLimit`,
//!   `ThrottlingRateLimit`, `DetailedMetricsEnabled`, `DataTraceEnabled`,
//!   `LoggingLevel`, `Auth`, `DefinitionBody`, `FunctionArn`,
//!   `AuthorizerPayloadFormatVersion`, `EnableSimpleResponses`, `Identity`,
//!   `EnableFunctionDefaultPermissions`, `FunctionInvokeRole`, `Headers`,
//!   `ReauthorizeEvery`, `openapi`, `info`, `paths`,
//!   `x-amazon-apigateway-any-method`.
//! * `intrinsics.rs`: `!Ref` (or `{"Ref": ...}`) to a parameter, resolved
//!   to its `Default` or a `--parameter-overrides Name=Value`, checked
//!   against its `AllowedValues`; `!Ref AWS::Region`; `!If` and the
//!   conditions it names, with `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`
//!   and `Condition`.
//!
//! Keys that change nothing in a pod (IAM roles, descriptions, log groups,
//! tags, architectures, ...) are listed in [`IGNORED_FUNCTION_KEYS`] and
//! [`IGNORED_API_KEYS`]. Any other key, event type or intrinsic function in
//! the fields read is an error at start-up that names the key and its line:
//! a pod never behaves differently from AWS without saying so. A test keeps
//! each file's "Keys:" list above equal to the keys its code matches.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod api;
mod function;
mod intrinsics;
mod reader;
#[cfg(test)]
mod tests;
mod yaml;

use api::{Api, ApiAuthorizer, Security};
use intrinsics::{kind, literal};
use reader::Reader;
use yaml::{Node, Value, error, map, merged, yaml};

/// The HTTP API's longest integration timeout, and its default
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html>).
pub const MAX_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Lambda's longest function timeout.
const MAX_FUNCTION_TIMEOUT: u64 = 900;
/// Lambda's default function timeout, when neither the function nor
/// `Globals` set one.
const DEFAULT_FUNCTION_TIMEOUT: u64 = 3;
/// Lambda's default memory size.
const DEFAULT_MEMORY_SIZE: u32 = 128;
/// Lambda's default `MaximumRetryAttempts` of asynchronous invocations.
pub const DEFAULT_EVENT_RETRIES: u32 = 2;
/// Lambda's default `MaximumEventAgeInSeconds`: 6 hours.
pub const DEFAULT_EVENT_MAX_AGE: Duration = Duration::from_secs(21_600);

/// Function properties that change nothing in a pod, each with why.
pub const IGNORED_FUNCTION_KEYS: [(&str, &str); 17] = [
    ("Description", "documentation"),
    ("Role", "IAM: the pod's permissions are its ServiceAccount's"),
    ("Policies", "IAM"),
    ("PermissionsBoundary", "IAM"),
    ("RolePath", "IAM"),
    ("Tags", "resource tags"),
    ("PropagateTags", "resource tags"),
    ("Handler", "a custom runtime runs its bootstrap"),
    ("Architectures", "the image is built for each architecture"),
    ("FunctionName", "the pod names a function by its binary"),
    ("Tracing", "X-Ray: the pod sends no trace ids"),
    ("KmsKeyArn", "encryption of the variables at rest on AWS"),
    ("CodeSigningConfigArn", "code signing on upload"),
    ("AutoPublishAlias", "versions and aliases of deployments"),
    ("DeploymentPreference", "CodeDeploy traffic shifting; the pod rolls out by its Deployment"),
    ("ProvisionedConcurrencyConfig", "the pod's --prewarm does the same"),
    ("RuntimeManagementConfig", "runtime updates on AWS"),
];

/// HttpApi properties that change nothing in a pod.
pub const IGNORED_API_KEYS: [(&str, &str); 7] = [
    ("Description", "documentation"),
    ("AccessLogSettings", "CloudWatch access logs; the pod has --access-log"),
    ("Tags", "resource tags"),
    ("PropagateTags", "resource tags"),
    ("FailOnWarnings", "deployment of the API definition"),
    ("DisableExecuteApiEndpoint", "the execute-api host name on AWS"),
    ("Domain", "custom domain names; the pod's is its Service's"),
];

/// Why the template cannot configure a pod.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("template line {line}: not YAML: {message}")]
    Yaml { line: usize, message: String },
    #[error("template line {line}: {key}: {why}")]
    Key { line: usize, key: String, why: String },
    #[error("--parameter-overrides: {0}")]
    Override(String),
}

/// What a pod runs, read from the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Every function with at least one route, in the template's order.
    pub functions: Vec<Function>,
    /// The routes of every function.
    pub routes: Vec<RouteSpec>,
    /// The HTTP API's default route throttling, if it sets one.
    pub throttle: Option<Throttle>,
    /// The HTTP API's Lambda authorizers.
    pub authorizers: Vec<AuthorizerSpec>,
}

/// A Lambda authorizer of the HTTP API (payload 2.0, simple responses).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizerSpec {
    /// Its name in `Auth.Authorizers`.
    pub name: String,
    /// The function that decides, by its `name`.
    pub function: String,
    /// The request headers it is given as its identity (`Identity.Headers`,
    /// lower case): a request without one of them is a 401 and the function
    /// is not called.
    pub identity_headers: Vec<String>,
    /// How long a decision is kept per identity (`Identity.ReauthorizeEvery`;
    /// 0: none is kept).
    pub ttl: Duration,
}

/// One `AWS::Serverless::Function`.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// The name the pod knows it by: its binary, `<functions dir>/<name>/bootstrap`.
    pub name: String,
    /// Its logical id in the template, e.g. `HelloFunction`.
    pub logical_id: String,
    /// How long one invocation may run before it is stopped.
    pub timeout: Duration,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_size: u32,
    /// `Environment.Variables`, with parameters resolved.
    pub variables: BTreeMap<String, String>,
    /// The most environments it may have at once.
    pub reserved_concurrency: Option<usize>,
    /// `LoggingConfig.LogFormat`: `JSON` or `Text` (Lambda's default).
    pub log_format: Option<String>,
    /// `LoggingConfig.ApplicationLogLevel`.
    pub log_level: Option<String>,
    /// `EventInvokeConfig.MaximumRetryAttempts`: how many times a failed
    /// asynchronous invocation is tried again (Lambda's default, 2).
    pub event_retries: u32,
    /// `EventInvokeConfig.MaximumEventAgeInSeconds`: how long an
    /// asynchronous invocation may wait to run (Lambda's default, 6 hours).
    pub event_max_age: Duration,
}

/// One route of the HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// `ANY`, or a method in upper case.
    pub method: String,
    /// The path pattern, e.g. `/docs/{proxy+}`.
    pub path: String,
    /// The function's `name`.
    pub function: String,
    /// How long API Gateway waits for the function (`TimeoutInMillis`).
    pub integration_timeout: Duration,
    /// The authorizer in front of it, by name: the event's
    /// `Auth.Authorizer`, or the HttpApi's `DefinitionBody` `security`.
    pub authorizer: Option<String>,
    /// The template line of its event, for messages.
    pub line: usize,
}

/// `DefaultRouteSettings`' throttling: a token bucket per route.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Requests a route may take at once (`ThrottlingBurstLimit`).
    pub burst: u32,
    /// Requests per second it refills at (`ThrottlingRateLimit`).
    pub rate: f64,
}

/// Reads the template at `path`, with `overrides` (`Name=Value`) replacing
/// parameters' defaults and `region` as `AWS::Region`.
pub fn load(path: &Path, overrides: &[String], region: &str) -> Result<Template, TemplateError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TemplateError::Read { path: path.to_owned(), source })?;
    parse(&text, overrides, region)
}

/// Reads a template's text (see [`load`]).
pub fn parse(text: &str, overrides: &[String], region: &str) -> Result<Template, TemplateError> {
    let root = yaml(text)?;
    Reader::new(&root, overrides, region)?.read(&root)
}
