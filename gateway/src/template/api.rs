//! `AWS::Serverless::HttpApi`: its throttling, its Lambda authorizers, and
//! the `security` of its `DefinitionBody`.

use super::*;

impl Reader {
    /// The HttpApi's throttling, authorizers and body, checking its other
    /// keys.
    pub(super) fn api(&self, id: &str, properties: &Node) -> Result<Api, TemplateError> {
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
                            api.authorizers.push(ApiAuthorizer {
                                name: name.clone(),
                                function,
                                node: authorizer.clone(),
                            });
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
    pub(super) fn authorizer(&self, path: &str, node: &Node) -> Result<String, TemplateError> {
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
    pub(super) fn identity(
        &self,
        name: &str,
        node: &Node,
    ) -> Result<(Vec<String>, Duration), TemplateError> {
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
    pub(super) fn body(&self, path: &str, node: &Node) -> Result<Vec<Security>, TemplateError> {
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
                                security.push(Security {
                                    method: method.clone(),
                                    path: route_path.clone(),
                                    authorizer,
                                    line: list.line,
                                });
                            }
                        }
                    }
                }
                _ => return Err(error(value, &path, "not supported in a pod")),
            }
        }
        Ok(security)
    }
}

/// What the HttpApi resource says.
#[derive(Debug, Default)]
pub(super) struct Api {
    pub(super) throttle: Option<Throttle>,
    /// Each authorizer: its name, its function's logical id, its node.
    pub(super) authorizers: Vec<ApiAuthorizer>,
    /// `DefinitionBody` security: method, path, authorizer, line.
    pub(super) security: Vec<Security>,
}

/// One of the HttpApi's `Auth.Authorizers`.
#[derive(Debug)]
pub(super) struct ApiAuthorizer {
    pub(super) name: String,
    /// The logical id of the function its `FunctionArn` names.
    pub(super) function: String,
    /// Its node, for its `Identity` and for errors' lines.
    pub(super) node: Node,
}

/// One `security` entry of the `DefinitionBody`: the route it is on, and
/// the authorizer it names (none for `[]`).
#[derive(Debug)]
pub(super) struct Security {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) authorizer: Option<String>,
    pub(super) line: usize,
}

/// The logical id in `!GetAtt X.Arn` (or its long forms).
pub(super) fn get_att_arn(node: &Node, key: &str) -> Result<String, TemplateError> {
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

pub(super) fn arn_pair(items: &[Node]) -> Option<String> {
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
pub(super) fn security_requirement(
    node: &Node,
    key: &str,
) -> Result<Option<String>, TemplateError> {
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
