//! The SAM template, read into plain data: which functions a pod runs, on
//! which routes, with which limits. The file AWS deploys configures the pod
//! too, so that the two deployments cannot drift apart.
//!
//! A strict subset is read, and everything in it is honoured:
//!
//! * each `AWS::Serverless::Function` (with `Globals.Function` applied):
//!   its binary (`Metadata.BuildProperties.Binary` for `rust-cargolambda`
//!   builds, else the last directory of `CodeUri`), `Timeout`, `MemorySize`,
//!   `Environment.Variables`, `ReservedConcurrentExecutions` (the most
//!   environments it gets in a pod), `LoggingConfig`'s `LogFormat` and
//!   `ApplicationLogLevel`, and its `HttpApi` events: `Path` (with `{name}`
//!   and `{name+}`), `Method` (or `ANY`), `TimeoutInMillis`,
//!   `PayloadFormatVersion` 2.0;
//! * the `AWS::Serverless::HttpApi` (with `Globals.HttpApi` applied):
//!   `DefaultRouteSettings`' `ThrottlingBurstLimit` and `ThrottlingRateLimit`;
//! * `!Ref` (or `{"Ref": ...}`) to a parameter, resolved to its `Default` or
//!   to a `--parameter-overrides Name=Value`, checked against its
//!   `AllowedValues`; `!Ref AWS::Region`.
//!
//! Keys that change nothing in a pod (IAM roles, descriptions, log groups,
//! tags, architectures, ...) are listed in [`IGNORED_FUNCTION_KEYS`] and
//! [`IGNORED_API_KEYS`]. Any other key, event type or intrinsic function in
//! the fields read is an error at start-up that names the key and its line:
//! a pod never behaves differently from AWS without saying so.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

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

/// Function properties that change nothing in a pod, each with why.
pub const IGNORED_FUNCTION_KEYS: [(&str, &str); 19] = [
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
    ("DeadLetterQueue", "asynchronous invocations only"),
    ("EventInvokeConfig", "asynchronous invocations only"),
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

// ---------------------------------------------------------------------------
// YAML with lines and tags: `yaml_rust2`'s own tree forgets both.

#[derive(Debug, Clone)]
enum Value {
    /// The text, quoted or not: numbers are parsed where one is expected.
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
struct Node {
    value: Value,
    /// `Ref` for `!Ref`, and so on.
    tag: Option<String>,
    line: usize,
}

#[derive(Default)]
struct Builder {
    /// Open collections, each with the key it is stored under.
    stack: Vec<(Node, Option<String>)>,
    /// A key read, waiting for its value.
    key: Vec<Option<String>>,
    done: Option<Node>,
    error: Option<TemplateError>,
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.done = Some(node),
            Some((Node { value: Value::Seq(items), .. }, _)) => items.push(node),
            Some((Node { value: Value::Map(entries), .. }, _)) => {
                let slot = self.key.last_mut().expect("a map has a key slot");
                match slot.take() {
                    None => match node.value {
                        Value::Scalar(key) => *slot = Some(key),
                        _ => {
                            self.error.get_or_insert(TemplateError::Yaml {
                                line: node.line,
                                message: "a key that is not a plain value".into(),
                            });
                        }
                    },
                    Some(key) => entries.push((key, node)),
                }
            }
            Some(_) => unreachable!("only collections are on the stack"),
        }
    }
}

fn tag_name(tag: Option<yaml_rust2::parser::Tag>) -> Option<String> {
    tag.map(|t| if t.handle == "!" { t.suffix } else { format!("{}{}", t.handle, t.suffix) })
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, _, _, tag) => {
                self.push(Node { value: Value::Scalar(text), tag: tag_name(tag), line });
            }
            Event::SequenceStart(_, tag) => self
                .stack
                .push((Node { value: Value::Seq(Vec::new()), tag: tag_name(tag), line }, None)),
            Event::MappingStart(_, tag) => {
                self.stack
                    .push((Node { value: Value::Map(Vec::new()), tag: tag_name(tag), line }, None));
                self.key.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    if matches!(node.value, Value::Map(_)) {
                        self.key.pop();
                    }
                    self.push(node);
                }
            }
            Event::Alias(_) => {
                self.error.get_or_insert(TemplateError::Yaml {
                    line,
                    message: "YAML aliases are not supported (CloudFormation refuses them too)"
                        .into(),
                });
            }
            _ => {}
        }
    }
}

fn yaml(text: &str) -> Result<Node, TemplateError> {
    let mut builder = Builder::default();
    Parser::new_from_str(text).load(&mut builder, false).map_err(|e| TemplateError::Yaml {
        line: e.marker().line(),
        message: e.info().to_owned(),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    builder.done.ok_or(TemplateError::Yaml { line: 1, message: "the template is empty".into() })
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }
}

fn error(node: &Node, key: &str, why: impl Into<String>) -> TemplateError {
    TemplateError::Key { line: node.line, key: key.to_owned(), why: why.into() }
}

/// A map at `key`, or an error naming it.
fn map<'a>(node: &'a Node, key: &str) -> Result<&'a Node, TemplateError> {
    match &node.value {
        Value::Map(_) if node.tag.is_none() => Ok(node),
        _ => Err(error(node, key, "must be a mapping")),
    }
}

/// `base` with `over`'s entries added or replacing its own; maps are
/// merged key by key, as SAM applies `Globals`.
fn merged(base: &Node, over: &Node) -> Node {
    let (Value::Map(base_entries), Value::Map(over_entries)) = (&base.value, &over.value) else {
        return over.clone();
    };
    if base.tag.is_some() || over.tag.is_some() {
        return over.clone();
    }
    let mut entries = base_entries.clone();
    for (key, value) in over_entries {
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = merged(old, value),
            None => entries.push((key.clone(), value.clone())),
        }
    }
    Node { value: Value::Map(entries), tag: None, line: over.line }
}

// ---------------------------------------------------------------------------
// The template's meaning.

struct Reader {
    /// Parameters' values: defaults, then overrides.
    parameters: HashMap<String, Option<String>>,
    /// The template's `Conditions`, evaluated when used.
    conditions: HashMap<String, Node>,
    region: String,
    /// Logical ids of the `AWS::Serverless::HttpApi` resources.
    apis: Vec<String>,
}

impl Reader {
    fn new(root: &Node, overrides: &[String], region: &str) -> Result<Reader, TemplateError> {
        let mut parameters = HashMap::new();
        let mut allowed: HashMap<String, Vec<String>> = HashMap::new();
        let mut secret: Vec<String> = Vec::new();
        if let Some(section) = root.get("Parameters") {
            for (name, parameter) in map(section, "Parameters")?.entries() {
                let default = match parameter.get("Default") {
                    Some(node) => Some(literal(node, &format!("Parameters.{name}.Default"))?),
                    None => None,
                };
                if let Some(Node { value: Value::Seq(values), .. }) = parameter.get("AllowedValues")
                {
                    let key = format!("Parameters.{name}.AllowedValues");
                    let values: Result<Vec<String>, _> =
                        values.iter().map(|v| literal(v, &key)).collect();
                    allowed.insert(name.clone(), values?);
                }
                if parameter
                    .get("NoEcho")
                    .is_some_and(|n| literal(n, "NoEcho").is_ok_and(|v| v == "true"))
                {
                    secret.push(name.clone());
                }
                parameters.insert(name.clone(), default);
            }
        }
        for item in overrides.iter().filter(|item| !item.is_empty()) {
            let Some((name, value)) = item.split_once('=') else {
                return Err(TemplateError::Override(format!("{item:?} is not Name=Value")));
            };
            let Some(slot) = parameters.get_mut(name) else {
                return Err(TemplateError::Override(format!(
                    "the template has no parameter {name:?}"
                )));
            };
            if let Some(values) = allowed.get(name)
                && !values.iter().any(|v| v == value)
            {
                let shown = if secret.iter().any(|s| s == name) { "(NoEcho)" } else { value };
                return Err(TemplateError::Override(format!(
                    "{name}={shown:?} is not one of its AllowedValues {values:?}"
                )));
            }
            *slot = Some(value.to_owned());
        }
        let mut apis = Vec::new();
        if let Some(resources) = root.get("Resources") {
            for (id, resource) in map(resources, "Resources")?.entries() {
                if kind(resource) == Some("AWS::Serverless::HttpApi") {
                    apis.push(id.clone());
                }
            }
        }
        let mut conditions = HashMap::new();
        if let Some(section) = root.get("Conditions") {
            for (name, condition) in map(section, "Conditions")?.entries() {
                conditions.insert(name.clone(), condition.clone());
            }
        }
        Ok(Reader { parameters, conditions, region: region.to_owned(), apis })
    }

    fn read(&self, root: &Node) -> Result<Template, TemplateError> {
        let empty = Node { value: Value::Map(Vec::new()), tag: None, line: root.line };
        let globals = match root.get("Globals") {
            Some(globals) => map(globals, "Globals")?.clone(),
            None => empty.clone(),
        };
        let function_globals = globals.get("Function").cloned().unwrap_or_else(|| empty.clone());
        let api_globals = globals.get("HttpApi").cloned().unwrap_or_else(|| empty.clone());
        let resources = root.get("Resources").ok_or_else(|| error(root, "Resources", "missing"))?;

        let mut template = Template {
            functions: Vec::new(),
            routes: Vec::new(),
            throttle: None,
            authorizers: Vec::new(),
        };
        let resources = map(resources, "Resources")?;
        // The API first: its authorizers name functions, its body routes.
        let mut api = Api::default();
        for (id, resource) in resources.entries() {
            match kind(resource) {
                Some("AWS::Serverless::HttpApi") => {
                    let properties = resource.get("Properties").cloned().unwrap_or(empty.clone());
                    let properties = merged(&api_globals, map(&properties, id)?);
                    api = self.api(id, &properties)?;
                    template.throttle = api.throttle;
                }
                Some("AWS::Serverless::Api") => {
                    return Err(error(
                        resource,
                        id,
                        "REST APIs (AWS::Serverless::Api) are not served by the pod: use an HttpApi",
                    ));
                }
                _ => {}
            }
        }
        let mut apis_used: Vec<String> = Vec::new();
        let mut all = Vec::new();
        for (id, resource) in resources.entries() {
            if kind(resource) != Some("AWS::Serverless::Function") {
                continue;
            }
            let properties = resource.get("Properties").cloned().unwrap_or(empty.clone());
            let properties = merged(&function_globals, map(&properties, id)?);
            let (function, routes) = self.function(id, resource, &properties, &mut apis_used)?;
            if all.iter().any(|(f, _): &(Function, Vec<RouteSpec>)| f.name == function.name) {
                return Err(error(
                    resource,
                    id,
                    format!("a second function with the binary {:?}", function.name),
                ));
            }
            all.push((function, routes));
        }
        // Authorizers: their functions by name.
        for (name, logical_id, authorizer) in &api.authorizers {
            let Some((function, _)) = all.iter().find(|(f, _)| &f.logical_id == logical_id) else {
                return Err(error(
                    authorizer,
                    &format!("Auth.Authorizers.{name}.FunctionArn"),
                    format!("{logical_id} is not a function of the template"),
                ));
            };
            let (identity_headers, ttl) = self.identity(name, authorizer)?;
            template.authorizers.push(AuthorizerSpec {
                name: name.clone(),
                function: function.name.clone(),
                identity_headers,
                ttl,
            });
        }
        for (function, routes) in all {
            let authorizes = template.authorizers.iter().any(|a| a.function == function.name);
            if !routes.is_empty() || authorizes {
                template.functions.push(function);
                template.routes.extend(routes);
            }
        }
        // The body's `security`, on the routes the events made.
        for (method, path, authorizer, line) in &api.security {
            let Some(route) =
                template.routes.iter_mut().find(|r| &r.method == method && &r.path == path)
            else {
                return Err(TemplateError::Key {
                    line: *line,
                    key: format!("DefinitionBody.paths.{path}"),
                    why: format!("no function has the route {method} {path}"),
                });
            };
            if route.authorizer.is_none() {
                route.authorizer = authorizer.clone();
            }
        }
        for route in &template.routes {
            if let Some(name) = &route.authorizer
                && !template.authorizers.iter().any(|a| &a.name == name)
            {
                return Err(TemplateError::Key {
                    line: route.line,
                    key: format!("{} {}", route.method, route.path),
                    why: format!("no authorizer {name:?} in the HttpApi's Auth.Authorizers"),
                });
            }
        }
        if apis_used.len() > 1 {
            return Err(error(
                root,
                "Resources",
                format!(
                    "routes on more than one HTTP API ({}): a pod serves one",
                    apis_used.join(", ")
                ),
            ));
        }
        for (i, route) in template.routes.iter().enumerate() {
            if let Some(other) = template.routes[..i]
                .iter()
                .find(|r| r.method == route.method && r.path == route.path)
            {
                return Err(TemplateError::Key {
                    line: route.line,
                    key: format!("{} {}", route.method, route.path),
                    why: format!("the same route as line {}", other.line),
                });
            }
        }
        if template.functions.is_empty() {
            return Err(error(root, "Resources", "no function with an HttpApi event"));
        }
        Ok(template)
    }

    /// One function and its routes.
    fn function(
        &self,
        id: &str,
        resource: &Node,
        properties: &Node,
        apis_used: &mut Vec<String>,
    ) -> Result<(Function, Vec<RouteSpec>), TemplateError> {
        let mut function = Function {
            name: String::new(),
            logical_id: id.to_owned(),
            timeout: Duration::from_secs(DEFAULT_FUNCTION_TIMEOUT),
            memory_size: DEFAULT_MEMORY_SIZE,
            variables: BTreeMap::new(),
            reserved_concurrency: None,
            log_format: None,
            log_level: None,
        };
        let mut code_uri = None;
        let mut routes = Vec::new();
        for (key, node) in properties.entries() {
            let path = format!("{id}.Properties.{key}");
            match key.as_str() {
                "Runtime" => {
                    let runtime = self.string(node, &path)?;
                    if !matches!(runtime.as_str(), "provided.al2023" | "provided.al2") {
                        return Err(error(
                            node,
                            &path,
                            format!(
                                "{runtime:?}: the pod runs custom runtimes (provided.al2023, provided.al2) only"
                            ),
                        ));
                    }
                }
                "PackageType" => {
                    let kind = self.string(node, &path)?;
                    if kind != "Zip" {
                        return Err(error(node, &path, "only Zip functions (a bootstrap binary)"));
                    }
                }
                "CodeUri" => code_uri = Some(self.string(node, &path)?),
                "Timeout" => {
                    let seconds = self.number(node, &path, 1, MAX_FUNCTION_TIMEOUT)?;
                    function.timeout = Duration::from_secs(seconds);
                }
                "MemorySize" => {
                    function.memory_size = self.number(node, &path, 128, 10_240)? as u32;
                }
                "ReservedConcurrentExecutions" => {
                    let n = self.number(node, &path, 0, u32::MAX as u64)?;
                    if n == 0 {
                        return Err(error(
                            node,
                            &path,
                            "0 stops the function on AWS; leave it out of the pod with --functions instead",
                        ));
                    }
                    function.reserved_concurrency = Some(n as usize);
                }
                "Environment" => {
                    for (inner, value) in map(node, &path)?.entries() {
                        let path = format!("{path}.{inner}");
                        if inner != "Variables" {
                            return Err(error(value, &path, "not supported in a pod"));
                        }
                        for (name, value) in map(value, &path)?.entries() {
                            let path = format!("{path}.{name}");
                            check_variable_name(value, &path, name)?;
                            function.variables.insert(name.clone(), self.string(value, &path)?);
                        }
                    }
                }
                "LoggingConfig" => {
                    for (inner, value) in map(node, &path)?.entries() {
                        let path = format!("{path}.{inner}");
                        match inner.as_str() {
                            "LogFormat" => {
                                let format = self.string(value, &path)?;
                                if !matches!(format.as_str(), "JSON" | "Text") {
                                    return Err(error(value, &path, "JSON or Text"));
                                }
                                function.log_format = Some(format);
                            }
                            "ApplicationLogLevel" => {
                                function.log_level = Some(self.string(value, &path)?)
                            }
                            // The runtime's own lines, and where logs go on AWS.
                            "SystemLogLevel" | "LogGroup" => {}
                            _ => return Err(error(value, &path, "not supported in a pod")),
                        }
                    }
                }
                "Events" => {
                    for (event_id, event) in map(node, &path)?.entries() {
                        let path = format!("{path}.{event_id}");
                        routes.push(self.route(&path, event, apis_used)?);
                    }
                }
                _ if IGNORED_FUNCTION_KEYS.iter().any(|(k, _)| k == key) => {}
                _ => return Err(error(node, &path, "not supported in a pod")),
            }
        }
        let build = resource.get("Metadata");
        let method = build.and_then(|m| m.get("BuildMethod"));
        let binary = build.and_then(|m| m.get("BuildProperties")).and_then(|p| p.get("Binary"));
        function.name = match (method, binary) {
            (_, Some(binary)) => {
                self.string(binary, &format!("{id}.Metadata.BuildProperties.Binary"))?
            }
            (Some(method), None) if self.string(method, "BuildMethod")? == "rust-cargolambda" => {
                return Err(error(
                    method,
                    &format!("{id}.Metadata.BuildProperties.Binary"),
                    "missing: name the binary cargo lambda builds",
                ));
            }
            _ => {
                let uri = code_uri.unwrap_or_default();
                let name = uri.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
                if name.is_empty() || name == "." {
                    return Err(error(
                        resource,
                        id,
                        "no binary: set Metadata.BuildProperties.Binary, or a CodeUri directory named after it",
                    ));
                }
                name.to_owned()
            }
        };
        if function.name.is_empty()
            || !function.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(error(resource, id, format!("{:?} is not a binary name", function.name)));
        }
        for route in &mut routes {
            route.function = function.name.clone();
        }
        Ok((function, routes))
    }

    /// One event: an `HttpApi` route.
    fn route(
        &self,
        path: &str,
        event: &Node,
        apis_used: &mut Vec<String>,
    ) -> Result<RouteSpec, TemplateError> {
        let kind_node = event.get("Type").ok_or_else(|| error(event, path, "no Type"))?;
        let kind = self.string(kind_node, &format!("{path}.Type"))?;
        if kind != "HttpApi" {
            return Err(error(
                kind_node,
                &format!("{path}.Type"),
                format!("{kind}: only HttpApi events are served by the pod"),
            ));
        }
        let empty = Node { value: Value::Map(Vec::new()), tag: None, line: event.line };
        let properties = event.get("Properties").unwrap_or(&empty);
        let mut route = RouteSpec {
            method: String::new(),
            path: String::new(),
            function: String::new(),
            integration_timeout: MAX_INTEGRATION_TIMEOUT,
            authorizer: None,
            line: event.line,
        };
        let mut api = "ServerlessHttpApi".to_owned();
        for (key, node) in map(properties, path)?.entries() {
            let path = format!("{path}.Properties.{key}");
            match key.as_str() {
                "Path" => route.path = self.string(node, &path)?,
                "Method" => route.method = self.string(node, &path)?.to_ascii_uppercase(),
                "ApiId" => {
                    api = self.reference(node, &path)?;
                    if !self.apis.contains(&api) {
                        return Err(error(
                            node,
                            &path,
                            format!("{api} is not an HttpApi of this template"),
                        ));
                    }
                }
                "TimeoutInMillis" => {
                    let ms =
                        self.number(node, &path, 50, MAX_INTEGRATION_TIMEOUT.as_millis() as u64)?;
                    route.integration_timeout = Duration::from_millis(ms);
                }
                "PayloadFormatVersion" => {
                    if self.string(node, &path)? != "2.0" {
                        return Err(error(node, &path, "the pod sends payload format 2.0 only"));
                    }
                }
                "Auth" => {
                    for (inner, value) in map(node, &path)?.entries() {
                        let path = format!("{path}.{inner}");
                        if inner != "Authorizer" {
                            return Err(error(value, &path, "not supported in a pod"));
                        }
                        let name = self.scalar_text(value, &path)?;
                        route.authorizer = (name != "NONE").then_some(name);
                    }
                }
                _ => return Err(error(node, &path, "not supported in a pod")),
            }
        }
        if route.path.is_empty() || route.method.is_empty() {
            return Err(error(
                properties,
                path,
                "Path and Method are both needed ($default routes are not served by the pod)",
            ));
        }
        check_path(properties, path, &route.path)?;
        const METHODS: [&str; 8] =
            ["ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
        if !METHODS.contains(&route.method.as_str()) {
            return Err(error(
                properties,
                &format!("{path}.Properties.Method"),
                format!("{:?} is not one of {METHODS:?}", route.method),
            ));
        }
        if !apis_used.contains(&api) {
            apis_used.push(api);
        }
        Ok(route)
    }

    /// The HttpApi's throttling, authorizers and body, checking its other
    /// keys.
    fn api(&self, id: &str, properties: &Node) -> Result<Api, TemplateError> {
        let mut api = Api::default();
        let mut throttle = None;
        for (key, node) in properties.entries() {
            let path = format!("{id}.Properties.{key}");
            match key.as_str() {
                "StageName" => {
                    if self.string(node, &path)? != "$default" {
                        return Err(error(
                            node,
                            &path,
                            "the pod serves the $default stage only (no stage prefix in paths)",
                        ));
                    }
                }
                "DefaultRouteSettings" => {
                    let (mut burst, mut rate) = (None, None);
                    for (inner, value) in map(node, &path)?.entries() {
                        let path = format!("{path}.{inner}");
                        match inner.as_str() {
                            "ThrottlingBurstLimit" => {
                                burst = Some(self.number(value, &path, 0, u32::MAX as u64)? as u32)
                            }
                            "ThrottlingRateLimit" => rate = Some(self.float(value, &path)?),
                            // Metrics and logs on AWS.
                            "DetailedMetricsEnabled" | "DataTraceEnabled" | "LoggingLevel" => {}
                            _ => return Err(error(value, &path, "not supported in a pod")),
                        }
                    }
                    throttle = match (burst, rate) {
                        (None, None) => None,
                        (Some(burst), Some(rate)) => Some(Throttle { burst, rate }),
                        _ => {
                            return Err(error(
                                node,
                                &path,
                                "set both ThrottlingBurstLimit and ThrottlingRateLimit",
                            ));
                        }
                    };
                }
                "Auth" => {
                    for (inner, value) in map(node, &path)?.entries() {
                        let path = format!("{path}.{inner}");
                        if inner != "Authorizers" {
                            return Err(error(value, &path, "not supported in a pod"));
                        }
                        for (name, authorizer) in map(value, &path)?.entries() {
                            let path = format!("{path}.{name}");
                            let function = self.authorizer(&path, authorizer)?;
                            api.authorizers.push((name.clone(), function, authorizer.clone()));
                        }
                    }
                }
                "DefinitionBody" => api.security = self.body(&path, node)?,
                _ if IGNORED_API_KEYS.iter().any(|(k, _)| k == key) => {}
                _ => return Err(error(node, &path, "not supported in a pod")),
            }
        }
        api.throttle = throttle;
        Ok(api)
    }

    /// A Lambda authorizer's keys; the logical id of its function.
    fn authorizer(&self, path: &str, node: &Node) -> Result<String, TemplateError> {
        let mut function = None;
        for (key, value) in map(node, path)?.entries() {
            let path = format!("{path}.{key}");
            match key.as_str() {
                "FunctionArn" => function = Some(get_att_arn(value, &path)?),
                "AuthorizerPayloadFormatVersion" => {
                    if self.string(value, &path)? != "2.0" {
                        return Err(error(
                            value,
                            &path,
                            "the pod sends authorizers payload 2.0 only",
                        ));
                    }
                }
                "EnableSimpleResponses" => {
                    if self.string(value, &path)? != "true" {
                        return Err(error(
                            value,
                            &path,
                            "the pod reads simple responses only (true)",
                        ));
                    }
                }
                // Checked by `identity`; permissions are IAM's business.
                "Identity" | "EnableFunctionDefaultPermissions" | "FunctionInvokeRole" => {}
                _ => return Err(error(value, &path, "not supported in a pod")),
            }
        }
        if node.get("EnableSimpleResponses").is_none() {
            return Err(error(
                node,
                path,
                "EnableSimpleResponses: true is needed (the pod reads simple responses)",
            ));
        }
        function.ok_or_else(|| error(node, &format!("{path}.FunctionArn"), "missing"))
    }

    /// An authorizer's `Identity`: its headers and cache time.
    fn identity(&self, name: &str, node: &Node) -> Result<(Vec<String>, Duration), TemplateError> {
        let path = format!("Auth.Authorizers.{name}.Identity");
        let Some(identity) = node.get("Identity") else {
            return Err(error(node, &path, "missing: the pod needs the identity headers"));
        };
        let (mut headers, mut ttl) = (Vec::new(), Duration::ZERO);
        for (key, value) in map(identity, &path)?.entries() {
            let path = format!("{path}.{key}");
            match key.as_str() {
                "Headers" => {
                    let Value::Seq(items) = &value.value else {
                        return Err(error(value, &path, "must be a list of header names"));
                    };
                    for item in items {
                        headers.push(self.scalar_text(item, &path)?.to_ascii_lowercase());
                    }
                }
                "ReauthorizeEvery" => {
                    ttl = Duration::from_secs(self.number(value, &path, 0, 3600)?)
                }
                _ => return Err(error(value, &path, "not supported in a pod (Headers only)")),
            }
        }
        if headers.is_empty() {
            return Err(error(identity, &path, "Headers: at least one header"));
        }
        Ok((headers, ttl))
    }

    /// The only `DefinitionBody` the pod reads: `paths.<path>.<method>.security`,
    /// a list of at most one authorizer or an `!If` between two such lists
    /// (how a parameter switches an authorizer on, which an event's `Auth`
    /// cannot do). `openapi` and `info` are read past.
    #[allow(clippy::type_complexity)]
    fn body(
        &self,
        path: &str,
        node: &Node,
    ) -> Result<Vec<(String, String, Option<String>, usize)>, TemplateError> {
        let mut security = Vec::new();
        for (key, value) in map(node, path)?.entries() {
            let path = format!("{path}.{key}");
            match key.as_str() {
                "openapi" | "info" => {}
                "paths" => {
                    for (route_path, methods) in map(value, &path)?.entries() {
                        let path = format!("{path}.{route_path}");
                        for (method_key, operation) in map(methods, &path)?.entries() {
                            let path = format!("{path}.{method_key}");
                            let method = match method_key.as_str() {
                                "x-amazon-apigateway-any-method" => "ANY".to_owned(),
                                m @ ("get" | "post" | "put" | "patch" | "delete" | "head"
                                | "options") => m.to_ascii_uppercase(),
                                _ => return Err(error(operation, &path, "not an HTTP method")),
                            };
                            for (field, list) in map(operation, &path)?.entries() {
                                let path = format!("{path}.{field}");
                                if field != "security" {
                                    return Err(error(
                                        list,
                                        &path,
                                        "not supported in a pod (security only)",
                                    ));
                                }
                                let chosen = self.if_branch(list, &path)?;
                                let authorizer = security_requirement(chosen, &path)?;
                                security.push((
                                    method.clone(),
                                    route_path.clone(),
                                    authorizer,
                                    list.line,
                                ));
                            }
                        }
                    }
                }
                _ => return Err(error(value, &path, "not supported in a pod")),
            }
        }
        Ok(security)
    }

    /// `node`, or the branch an `!If` chooses.
    fn if_branch<'a>(&self, node: &'a Node, key: &str) -> Result<&'a Node, TemplateError> {
        let arguments = match (&node.value, node.tag.as_deref()) {
            (Value::Seq(items), Some("If")) => items.as_slice(),
            (Value::Map(entries), None) if entries.len() == 1 && entries[0].0 == "Fn::If" => {
                match &entries[0].1.value {
                    Value::Seq(items) => items.as_slice(),
                    _ => return Err(error(node, key, "Fn::If takes [condition, then, else]")),
                }
            }
            _ => return Ok(node),
        };
        let [condition, then, otherwise] = arguments else {
            return Err(error(node, key, "Fn::If takes [condition, then, else]"));
        };
        let name = self.scalar_text(condition, key)?;
        Ok(if self.condition(&name, key, node, 0)? { then } else { otherwise })
    }

    /// The value of the condition `name`.
    fn condition(
        &self,
        name: &str,
        key: &str,
        at: &Node,
        depth: usize,
    ) -> Result<bool, TemplateError> {
        let Some(node) = self.conditions.get(name) else {
            return Err(error(at, key, format!("no condition {name:?} in Conditions")));
        };
        self.evaluate(node, &format!("Conditions.{name}"), depth + 1)
    }

    /// `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`, over
    /// parameters and literals.
    fn evaluate(&self, node: &Node, key: &str, depth: usize) -> Result<bool, TemplateError> {
        if depth > 16 {
            return Err(error(node, key, "conditions nested too deep (a cycle?)"));
        }
        let (function, arguments): (&str, &Node) = match (&node.value, node.tag.as_deref()) {
            (_, Some(tag)) => (tag, node),
            (Value::Map(entries), None) if entries.len() == 1 => {
                let (name, value) = &entries[0];
                (name.strip_prefix("Fn::").unwrap_or(name), value)
            }
            _ => return Err(error(node, key, "not a condition")),
        };
        let items = match &arguments.value {
            Value::Seq(items) => items.as_slice(),
            _ if function == "Condition" => &[],
            _ => return Err(error(node, key, format!("Fn::{function} takes a list"))),
        };
        match (function, items) {
            ("Equals", [a, b]) => Ok(self.string(a, key)? == self.string(b, key)?),
            ("Not", [c]) => Ok(!self.evaluate(c, key, depth + 1)?),
            ("And", items) if !items.is_empty() => {
                items.iter().try_fold(true, |all, c| Ok(all && self.evaluate(c, key, depth + 1)?))
            }
            ("Or", items) if !items.is_empty() => {
                items.iter().try_fold(false, |any, c| Ok(any || self.evaluate(c, key, depth + 1)?))
            }
            ("Condition", _) => {
                let name = self.scalar_text(arguments, key)?;
                self.condition(&name, key, node, depth)
            }
            _ => Err(error(node, key, format!("Fn::{function} cannot be evaluated in a pod"))),
        }
    }

    /// A scalar, or a `Ref` to a parameter or `AWS::Region`.
    fn string(&self, node: &Node, key: &str) -> Result<String, TemplateError> {
        if let Some(target) = ref_name(node) {
            if target == "AWS::Region" {
                return Ok(self.region.clone());
            }
            return match self.parameters.get(&target) {
                Some(Some(value)) => Ok(value.clone()),
                Some(None) => Err(error(
                    node,
                    key,
                    format!(
                        "parameter {target} has no Default: pass --parameter-overrides {target}=..."
                    ),
                )),
                None => {
                    Err(error(node, key, format!("!Ref {target}: not a parameter of the template")))
                }
            };
        }
        self.scalar_text(node, key)
    }

    fn scalar_text(&self, node: &Node, key: &str) -> Result<String, TemplateError> {
        match (&node.value, &node.tag) {
            (Value::Scalar(text), None) => Ok(text.clone()),
            (_, Some(tag)) => Err(error(
                node,
                key,
                format!("!{tag} cannot be resolved in a pod (only !Ref to a parameter)"),
            )),
            (Value::Map(entries), None)
                if entries.len() == 1 && entries[0].0.starts_with("Fn::") =>
            {
                Err(error(
                    node,
                    key,
                    format!(
                        "{} cannot be resolved in a pod (only Ref to a parameter)",
                        entries[0].0
                    ),
                ))
            }
            _ => Err(error(node, key, "must be a plain value")),
        }
    }

    /// The logical id a `!Ref` names.
    fn reference(&self, node: &Node, key: &str) -> Result<String, TemplateError> {
        match ref_name(node) {
            Some(target) => Ok(target),
            None => Err(error(node, key, "must be a !Ref to the HttpApi")),
        }
    }

    fn number(&self, node: &Node, key: &str, min: u64, max: u64) -> Result<u64, TemplateError> {
        let text = self.string(node, key)?;
        match text.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => {
                Err(error(node, key, format!("{text:?} is not a whole number from {min} to {max}")))
            }
        }
    }

    fn float(&self, node: &Node, key: &str) -> Result<f64, TemplateError> {
        let text = self.string(node, key)?;
        match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
            _ => Err(error(node, key, format!("{text:?} is not a number of 0 or more"))),
        }
    }
}

/// What the HttpApi resource says.
#[derive(Debug, Default)]
struct Api {
    throttle: Option<Throttle>,
    /// Each authorizer: its name, its function's logical id, its node.
    authorizers: Vec<(String, String, Node)>,
    /// `DefinitionBody` security: method, path, authorizer, line.
    security: Vec<(String, String, Option<String>, usize)>,
}

/// The logical id in `!GetAtt X.Arn` (or its long forms).
fn get_att_arn(node: &Node, key: &str) -> Result<String, TemplateError> {
    let target = match (&node.value, node.tag.as_deref()) {
        (Value::Scalar(text), Some("GetAtt")) => text.strip_suffix(".Arn").map(str::to_owned),
        (Value::Seq(items), Some("GetAtt")) => arn_pair(items),
        (Value::Map(entries), None) if entries.len() == 1 && entries[0].0 == "Fn::GetAtt" => {
            match &entries[0].1.value {
                Value::Seq(items) => arn_pair(items),
                Value::Scalar(text) => text.strip_suffix(".Arn").map(str::to_owned),
                _ => None,
            }
        }
        _ => None,
    };
    target.ok_or_else(|| error(node, key, "must be !GetAtt <a function of the template>.Arn"))
}

fn arn_pair(items: &[Node]) -> Option<String> {
    match items {
        [Node { value: Value::Scalar(id), .. }, Node { value: Value::Scalar(attribute), .. }]
            if attribute == "Arn" =>
        {
            Some(id.clone())
        }
        _ => None,
    }
}

/// The authorizer an OpenAPI `security` list names: `[]` for none, or
/// `[{Name: []}]`.
fn security_requirement(node: &Node, key: &str) -> Result<Option<String>, TemplateError> {
    let Value::Seq(items) = &node.value else {
        return Err(error(node, key, "must be a list of security requirements"));
    };
    match items.as_slice() {
        [] => Ok(None),
        [Node { value: Value::Map(entries), tag: None, .. }] if entries.len() == 1 => {
            Ok(Some(entries[0].0.clone()))
        }
        _ => Err(error(node, key, "the pod takes at most one authorizer per route")),
    }
}

/// The `Type` of a resource.
fn kind(resource: &Node) -> Option<&str> {
    match resource.get("Type").map(|t| &t.value) {
        Some(Value::Scalar(kind)) => Some(kind),
        _ => None,
    }
}

/// What a `!Ref x` or `{"Ref": x}` names.
fn ref_name(node: &Node) -> Option<String> {
    match (&node.value, node.tag.as_deref()) {
        (Value::Scalar(text), Some("Ref")) => Some(text.clone()),
        (Value::Map(entries), None) if entries.len() == 1 && entries[0].0 == "Ref" => {
            match &entries[0].1 {
                Node { value: Value::Scalar(text), tag: None, .. } => Some(text.clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A value that needs no resolving, such as a parameter's `Default`.
fn literal(node: &Node, key: &str) -> Result<String, TemplateError> {
    match (&node.value, &node.tag) {
        (Value::Scalar(text), None) => Ok(text.clone()),
        _ => Err(error(node, key, "must be a plain value")),
    }
}

/// Lambda refuses these names in `Environment.Variables`
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>).
fn check_variable_name(node: &Node, key: &str, name: &str) -> Result<(), TemplateError> {
    const RESERVED: [&str; 14] = [
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    ];
    let valid = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(error(
            node,
            key,
            "a variable name is letters, digits and _, starting with a letter",
        ));
    }
    if RESERVED.contains(&name)
        || name.starts_with("AWS_ACCESS_KEY")
        || name.starts_with("AWS_SECRET")
        || name == "AWS_SESSION_TOKEN"
    {
        return Err(error(node, key, "reserved by Lambda: it cannot be set"));
    }
    Ok(())
}

/// A route path as the HTTP API takes it: starting with `/`, segments that
/// are literal, `{name}`, or a last `{name+}`.
fn check_path(node: &Node, key: &str, path: &str) -> Result<(), TemplateError> {
    let bad =
        |why: &str| Err(error(node, &format!("{key}.Properties.Path"), format!("{path:?}: {why}")));
    let Some(rest) = path.strip_prefix('/') else { return bad("must start with /") };
    if rest.is_empty() {
        return Ok(());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return bad("an empty segment");
        }
        if let Some(inner) = segment.strip_prefix('{') {
            let Some(name) = inner.strip_suffix('}') else { return bad("an unclosed {") };
            let (name, greedy) = match name.strip_suffix('+') {
                Some(name) => (name, true),
                None => (name, false),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return bad("a variable name is letters, digits and _");
            }
            if greedy && i + 1 != segments.len() {
                return bad("a greedy {name+} must be the last segment");
            }
        } else if segment.contains(['{', '}']) {
            return bad("a variable must be a whole segment");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = include_str!("../../template.yaml");

    fn read(text: &str) -> Result<Template, TemplateError> {
        parse(text, &[], "eu-west-1")
    }

    /// A template with one function and the given extra lines, indented
    /// where the caller puts them.
    fn one_function(function_props: &str, event_props: &str, api_props: &str) -> String {
        format!(
            r#"Transform: AWS::Serverless-2016-10-31
Parameters:
  Level:
    Type: String
    Default: WARN
    AllowedValues: [DEBUG, INFO, WARN]
  Seconds:
    Type: Number
    Default: 7
  NoDefault:
    Type: String
Globals:
  Function:
    Runtime: provided.al2023
    Timeout: 4
    MemorySize: 256
    Environment:
      Variables:
        FROM_GLOBALS: g
        OVERRIDDEN: globals
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Description: test
{api_props}
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: fixture
    Properties:
      Role: !GetAtt SomeRole.Arn
{function_props}
      Events:
        Get:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: get
            Path: /items/{{id}}
{event_props}
"#
        )
    }

    fn refused(text: &str) -> String {
        match read(text) {
            Ok(template) => panic!("accepted: {template:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_the_projects_template() {
        let template = read(PROJECT).expect("template.yaml");
        let names: Vec<_> = template.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["hello", "ping", "docs", "authorizer"]);
        let timeouts: Vec<_> = template.functions.iter().map(|f| f.timeout.as_secs()).collect();
        assert_eq!(timeouts, [10, 3, 5, 3], "each function's own Timeout, or Globals'");
        let memory: Vec<_> = template.functions.iter().map(|f| f.memory_size).collect();
        assert_eq!(memory, [512, 128, 128, 128]);
        assert_eq!(template.functions[0].log_format.as_deref(), Some("JSON"));
        assert_eq!(template.functions[0].log_level.as_deref(), Some("INFO"));
        let routes: Vec<_> = template
            .routes
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str(), r.function.as_str()))
            .collect();
        assert_eq!(
            routes,
            [
                ("ANY", "/api/v1/hello", "hello"),
                ("ANY", "/ping", "ping"),
                ("ANY", "/openapi.json", "docs"),
                ("ANY", "/docs", "docs"),
                ("ANY", "/docs/{proxy+}", "docs"),
            ]
        );
        assert!(template.routes.iter().all(|r| r.integration_timeout == MAX_INTEGRATION_TIMEOUT));
        assert_eq!(template.throttle, Some(Throttle { burst: 500, rate: 1000.0 }));
        // The authorizer: read, and off by default.
        assert_eq!(
            template.authorizers,
            [AuthorizerSpec {
                name: "ApiKeyAuthorizer".into(),
                function: "authorizer".into(),
                identity_headers: vec!["authorization".into()],
                ttl: Duration::from_secs(300),
            }]
        );
        assert_eq!(template.functions[3].variables["KF_API_KEYS"], "");
        assert!(template.routes.iter().all(|r| r.authorizer.is_none()));
        // One parameter turns it on for /api/v1/hello only.
        let on = parse(
            PROJECT,
            &["RequireApiKey=true".into(), "ApiKeyHashes=ci:abc".into()],
            "eu-west-1",
        )
        .expect("auth on");
        let guarded: Vec<_> =
            on.routes.iter().filter(|r| r.authorizer.is_some()).map(|r| r.path.as_str()).collect();
        assert_eq!(guarded, ["/api/v1/hello"]);
        assert_eq!(on.functions[3].variables["KF_API_KEYS"], "ci:abc");
        let e = parse(PROJECT, &["ApiKeyHashes=x".into(), "RequireApiKey=yes".into()], "x")
            .expect_err("not allowed");
        assert!(e.to_string().contains("AllowedValues"), "{e}");
    }

    /// An HttpApi with an authorizer, switched by condition `On` (on the
    /// parameter `Level`).
    fn with_authorizer(body_security: &str, identity: &str) -> String {
        let text = one_function(
            "",
            "",
            &format!(
                "      DefinitionBody:
        openapi: \"3.0.1\"
        info: {{title: t, version: \"1\"}}
        paths:
          /items/{{id}}:
            get:
              security: {body_security}
      Auth:
        Authorizers:
          Keys:
            FunctionArn: !GetAtt Fn.Arn
            AuthorizerPayloadFormatVersion: \"2.0\"
            EnableSimpleResponses: true
{identity}"
            ),
        );
        text.replace(
            "Globals:",
            "Conditions:\n  On: !Equals [!Ref Level, DEBUG]\n  Off: !Not [Condition: On]\n  Both: {\"Fn::And\": [{Condition: On}, !Equals [a, a]]}\nGlobals:",
        )
    }

    const IDENTITY: &str = "            Identity:
              Headers: [Authorization, X-Tenant]
              ReauthorizeEvery: 60";

    #[test]
    fn authorizers_and_the_conditions_that_switch_them() {
        let on = |overrides: &[&str], security: &str| {
            let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
            let text = with_authorizer(security, IDENTITY);
            parse(&text, &overrides, "x").expect("valid").routes[0].authorizer.clone()
        };
        let keys = Some("Keys".to_owned());
        assert_eq!(on(&[], "[{Keys: []}]"), keys);
        assert_eq!(on(&[], "[]"), None);
        assert_eq!(on(&[], "!If [On, [{Keys: []}], []]"), None, "Level defaults to WARN");
        assert_eq!(on(&["Level=DEBUG"], "!If [On, [{Keys: []}], []]"), keys);
        assert_eq!(on(&["Level=DEBUG"], "!If [Off, [{Keys: []}], []]"), None);
        assert_eq!(on(&["Level=DEBUG"], "{\"Fn::If\": [Both, [{Keys: []}], []]}"), keys);
        let template = parse(&with_authorizer("[]", IDENTITY), &[], "x").expect("valid");
        assert_eq!(template.authorizers[0].identity_headers, ["authorization", "x-tenant"]);
        assert_eq!(template.authorizers[0].ttl, Duration::from_secs(60));
        assert_eq!(template.authorizers[0].function, "fixture");

        for (security, identity, says) in [
            ("[{Keys: []}, {Other: []}]", IDENTITY, "at most one authorizer"),
            ("!If [Nope, [], []]", IDENTITY, "no condition \"Nope\""),
            ("!If [On, []]", IDENTITY, "Fn::If takes"),
            ("[]", "", "Identity: missing"),
            ("[]", "            Identity:\n              QueryStrings: [k]", "Headers only"),
            ("[]", "            Identity:\n              Headers: []", "at least one header"),
            (
                "[]",
                "            Identity:\n              Headers: [A]\n              ReauthorizeEvery: 9999",
                "from 0 to 3600",
            ),
        ] {
            let error = refused(&with_authorizer(security, identity));
            assert!(error.contains(says), "{security} / {identity}: {error}");
        }
        let text = with_authorizer("[]", IDENTITY);
        for (from, to, says) in [
            ("            get:\n", "            put:\n", "no function has the route PUT"),
            ("            get:\n", "            brew:\n", "not an HTTP method"),
            (
                "              security:",
                "              summary: x\n              security:",
                "security only",
            ),
            (
                "FunctionArn: !GetAtt Fn.Arn",
                "FunctionArn: !GetAtt Nope.Arn",
                "Nope is not a function",
            ),
            ("FunctionArn: !GetAtt Fn.Arn", "FunctionArn: arn:aws:lambda:x", "must be !GetAtt"),
            (
                "EnableSimpleResponses: true",
                "EnableSimpleResponses: false",
                "simple responses only",
            ),
            (
                "AuthorizerPayloadFormatVersion: \"2.0\"",
                "AuthorizerPayloadFormatVersion: \"1.0\"",
                "payload 2.0",
            ),
            (
                "      Auth:\n",
                "      Auth:\n        DefaultAuthorizer: Keys\n",
                "DefaultAuthorizer: not supported",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            let error = refused(&text.replacen(from, to, 1));
            assert!(error.contains(says), "{to}: {error}");
        }
        // A NoEcho parameter's value is never repeated in a message.
        let secret = text.replace(
            "  NoDefault:\n",
            "  Secret:\n    Type: String\n    NoEcho: true\n    AllowedValues: [a]\n  NoDefault:\n",
        );
        let e = parse(&secret, &["Secret=hunter2".into()], "x").expect_err("not allowed");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn every_supported_key_with_globals_and_parameters() {
        let text = one_function(
            "      Timeout: !Ref Seconds
      ReservedConcurrentExecutions: 2
      Environment:
        Variables:
          OVERRIDDEN: function
          LEVEL: !Ref Level
          REGION: !Ref AWS::Region
          COUNT: 3
      LoggingConfig:
        LogFormat: JSON
        ApplicationLogLevel: {Ref: Level}
        LogGroup: !Ref SomeGroup",
            "            TimeoutInMillis: 1500
            PayloadFormatVersion: \"2.0\"",
            "      DefaultRouteSettings:
        ThrottlingBurstLimit: 3
        ThrottlingRateLimit: 0.5
        DetailedMetricsEnabled: true",
        );
        let template = read(&text).expect("valid");
        let f = &template.functions[0];
        assert_eq!((f.name.as_str(), f.logical_id.as_str()), ("fixture", "Fn"));
        assert_eq!(f.timeout, Duration::from_secs(7), "!Ref to a parameter's Default");
        assert_eq!(f.memory_size, 256, "from Globals");
        assert_eq!(f.reserved_concurrency, Some(2));
        let vars: Vec<_> = f.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            vars,
            [
                ("COUNT", "3"),
                ("FROM_GLOBALS", "g"),
                ("LEVEL", "WARN"),
                ("OVERRIDDEN", "function"),
                ("REGION", "eu-west-1"),
            ],
            "Globals' variables merged under the function's"
        );
        assert_eq!((f.log_format.as_deref(), f.log_level.as_deref()), (Some("JSON"), Some("WARN")));
        let route = &template.routes[0];
        assert_eq!((route.method.as_str(), route.path.as_str()), ("GET", "/items/{id}"));
        assert_eq!(route.integration_timeout, Duration::from_millis(1500));
        assert_eq!(template.throttle, Some(Throttle { burst: 3, rate: 0.5 }));

        // Overrides, as `sam deploy --parameter-overrides` takes them.
        let overridden =
            parse(&text, &["Level=DEBUG".into(), "Seconds=9".into()], "x").expect("overrides");
        assert_eq!(overridden.functions[0].timeout, Duration::from_secs(9));
        assert_eq!(overridden.functions[0].variables["LEVEL"], "DEBUG");
        for (bad, says) in [
            ("Level=LOUD", "AllowedValues"),
            ("Nope=1", "no parameter \"Nope\""),
            ("Level", "not Name=Value"),
        ] {
            let e = parse(&text, &[bad.into()], "x").expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // Lambda's default timeout without Globals.
        let bare =
            text.replace("    Timeout: 4\n", "").replace("      Timeout: !Ref Seconds\n", "");
        assert_eq!(read(&bare).expect("bare").functions[0].timeout, Duration::from_secs(3));
    }

    #[test]
    fn what_it_cannot_honour_is_an_error_naming_the_key_and_line() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // (function properties, event properties, api properties, message)
            ("      Layers: [arn]", "", "", "Fn.Properties.Layers: not supported"),
            ("      Timeout: !GetAtt X.Y", "", "", "!GetAtt cannot be resolved"),
            ("      Timeout: {\"Fn::If\": [a, 1, 2]}", "", "", "Fn::If cannot be resolved"),
            ("      Timeout: 901", "", "", "from 1 to 900"),
            ("      Timeout: soon", "", "", "\"soon\" is not a whole number"),
            ("      Timeout: !Ref NoDefault", "", "", "NoDefault has no Default"),
            ("      Timeout: !Ref Missing", "", "", "not a parameter"),
            ("      Runtime: python3.13", "", "", "custom runtimes"),
            ("      ReservedConcurrentExecutions: 0", "", "", "--functions"),
            (
                "      Environment:\n        Variables:\n          AWS_REGION: x",
                "",
                "",
                "reserved by Lambda",
            ),
            ("      Environment:\n        Variables:\n          1X: x", "", "", "variable name"),
            (
                "",
                "            Auth:\n              Authorizer: Missing",
                "",
                "no authorizer \"Missing\"",
            ),
            (
                "",
                "            Auth:\n              AuthorizationScopes: [a]",
                "",
                "AuthorizationScopes: not",
            ),
            ("", "            RouteSettings: {}", "", "RouteSettings: not supported"),
            ("", "            PayloadFormatVersion: \"1.0\"", "", "payload format 2.0"),
            ("", "            TimeoutInMillis: 31000", "", "from 50 to 30000"),
            (
                "",
                "",
                "      CorsConfiguration: true",
                "Api.Properties.CorsConfiguration: not supported",
            ),
            ("", "", "      StageName: prod", "$default stage"),
            ("", "", "      DefaultRouteSettings:\n        ThrottlingBurstLimit: 1", "set both"),
        ];
        for (function, event, api, says) in cases {
            let error = refused(&one_function(function, event, api));
            assert!(error.contains(says), "{function}{event}{api}: {error}");
            assert!(error.starts_with("template line "), "{error}");
        }
        // The line is the key's own.
        let error = refused(&one_function("      Layers: [arn]", "", ""));
        let text = one_function("      Layers: [arn]", "", "");
        let line = text.lines().position(|l| l.contains("Layers")).expect("the line") + 1;
        assert!(error.starts_with(&format!("template line {line}:")), "{error} (line {line})");
    }

    #[test]
    fn whole_template_constructs_it_cannot_serve_are_errors() {
        let base = one_function("", "", "");
        let cases: Vec<(String, &str)> = vec![
            (base.replace("Type: HttpApi\n", "Type: Api\n"), "only HttpApi events"),
            (base.replace("Path: /items/{id}", "Path: /items/{id+}/more"), "must be the last"),
            (base.replace("Path: /items/{id}", "Path: items"), "must start with /"),
            (base.replace("            Method: get\n", ""), "$default routes"),
            (base.replace("Method: get", "Method: brew"), "is not one of"),
            (
                base.replace("ApiId: !Ref Api", "ApiId: !Ref Other"),
                "not an HttpApi of this template",
            ),
            (base.replace("        Binary: fixture\n", ""), "BuildProperties.Binary: missing"),
            (base.replace("Binary: fixture", "Binary: ../x"), "not a binary name"),
            (
                base.replace("  Fn:\n", "  Rest:\n    Type: AWS::Serverless::Api\n  Fn:\n"),
                "REST APIs",
            ),
            (
                format!(
                    "{base}        Again:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref Api\n            Method: GET\n            Path: /items/{{id}}\n"
                ),
                "the same route as line",
            ),
            (format!("{base}  Extra: &anchor\n    Type: X\n  Copy: *anchor\n"), "aliases"),
            ("Resources: [\n".to_owned(), "not YAML"),
        ];
        for (text, says) in cases {
            let error = refused(&text);
            assert!(error.contains(says), "{says}: {error}");
        }
    }

    #[test]
    fn a_function_without_build_metadata_is_named_by_its_code_uri() {
        let text = one_function("      CodeUri: target/lambda/fixture-two/", "", "").replace(
            "    Metadata:\n      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: fixture\n",
            "",
        );
        assert_eq!(read(&text).expect("valid").functions[0].name, "fixture-two");
    }
}
