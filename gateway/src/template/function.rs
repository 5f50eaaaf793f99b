//! `AWS::Serverless::Function`: its binary, timeout, memory, variables,
//! concurrency, logging, and its `HttpApi` events (the routes).

use super::*;

impl Reader {
    /// One function and its routes.
    pub(super) fn function(
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
            event_retries: DEFAULT_EVENT_RETRIES,
            event_max_age: DEFAULT_EVENT_MAX_AGE,
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
                "EventInvokeConfig" => {
                    for (inner, value) in map(node, &path)?.entries() {
                        let path = format!("{path}.{inner}");
                        match inner.as_str() {
                            "MaximumRetryAttempts" => {
                                function.event_retries = self.number(value, &path, 0, 2)? as u32;
                            }
                            "MaximumEventAgeInSeconds" => {
                                let seconds = self.number(value, &path, 60, 21_600)?;
                                function.event_max_age = Duration::from_secs(seconds);
                            }
                            _ => {
                                return Err(error(
                                    value,
                                    &path,
                                    "not supported in a pod: a failed event is logged and counted, with no destination",
                                ));
                            }
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
                // A layer is a zip in an AWS account: a pod cannot fetch it.
                // What a layer usually brings, extensions, a pod takes from
                // the function's own `extensions/` directory instead.
                _ if key == "Layers" => return Err(error(node, &path, LAYERS)),
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
    pub(super) fn route(
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
}

/// Lambda refuses these names in `Environment.Variables`
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>).
pub(super) fn check_variable_name(node: &Node, key: &str, name: &str) -> Result<(), TemplateError> {
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
pub(super) fn check_path(node: &Node, key: &str, path: &str) -> Result<(), TemplateError> {
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

/// Why `Layers` is refused, and what to do instead.
const LAYERS: &str = "not supported in a pod: a layer's files are fetched from an AWS account at \
deploy time; put the extensions a layer would bring in the function's extensions/ directory beside \
its bootstrap (docs/extensions.md)";
