//! The template's meaning, and the checks across resources: parameters
//! and conditions first, then the HttpApi (its authorizers name functions,
//! its body names routes), then each function and its events, then that
//! every authorizer, route and security entry refers to something real.

use super::*;

pub(super) struct Reader {
    /// Parameters' values: defaults, then overrides.
    pub(super) parameters: HashMap<String, Option<String>>,
    /// The template's `Conditions`, evaluated when used.
    pub(super) conditions: HashMap<String, Node>,
    pub(super) region: String,
    /// Logical ids of the `AWS::Serverless::HttpApi` resources.
    pub(super) apis: Vec<String>,
}

impl Reader {
    pub(super) fn new(
        root: &Node,
        overrides: &[String],
        region: &str,
    ) -> Result<Reader, TemplateError> {
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

    pub(super) fn read(&self, root: &Node) -> Result<Template, TemplateError> {
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
        for ApiAuthorizer { name, function: logical_id, node: authorizer } in &api.authorizers {
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
        for Security { method, path, authorizer, line } in &api.security {
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
}
