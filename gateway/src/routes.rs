//! Which function a request goes to: the template's HTTP API routes, chosen
//! as API Gateway chooses them
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html>):
//! the most specific match wins. A route without a greedy `{name+}` beats one
//! with it (a longer greedy prefix beats a shorter one); segment by segment,
//! a literal beats a `{name}`; a route's own method beats `ANY`. A request no
//! route matches, the method included, is a 404.

use crate::template::RouteSpec;
use hyper::Method;
use std::sync::Arc;
use std::time::Duration;

/// One segment of a route's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: one segment.
    Variable(String),
    /// `{name+}`: the rest of the path (last only).
    Greedy(String),
}

/// One route and the function behind it.
#[derive(Debug, Clone)]
pub struct Route {
    /// API Gateway's route key, e.g. `ANY /docs/{proxy+}`: the event's
    /// `routeKey` and the metrics' `route` label.
    pub key: String,
    /// The function's name.
    pub function: Arc<str>,
    /// How long the client waits for the function at most.
    pub integration_timeout: Duration,
    /// The authorizer in front of the function, by name.
    pub authorizer: Option<Arc<str>>,
    /// `None` for `ANY`.
    method: Option<Method>,
    segments: Vec<Segment>,
    /// Its rank among the routes that match a request: smaller wins.
    specificity: Specificity,
}

type Specificity = (bool, std::cmp::Reverse<usize>, Vec<u8>, bool);

/// A route that matched a request, with its path variables.
#[derive(Debug)]
pub struct Match<'a> {
    /// Its place in [`Router::routes`].
    pub index: usize,
    pub route: &'a Route,
    /// `pathParameters`: each `{name}` and `{name+}` with what it matched.
    pub parameters: Vec<(String, String)>,
}

/// Every route a pod serves.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// The routes of `specs` whose function `serves` accepts; the others
    /// are left out, and their paths are 404s in this pod.
    pub fn new(specs: &[RouteSpec], serves: impl Fn(&str) -> bool) -> Router {
        let routes = specs
            .iter()
            .filter(|spec| serves(&spec.function))
            .map(|spec| {
                let method = (spec.method != "ANY")
                    .then(|| Method::from_bytes(spec.method.as_bytes()).ok())
                    .flatten();
                let segments = segments(&spec.path);
                Route {
                    key: format!("{} {}", spec.method, spec.path),
                    function: Arc::from(spec.function.as_str()),
                    integration_timeout: spec.integration_timeout,
                    authorizer: spec.authorizer.as_deref().map(Arc::from),
                    specificity: specificity(&segments, method.is_none()),
                    method,
                    segments,
                }
            })
            .collect();
        Router { routes }
    }

    /// Every route, in the template's order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path`, if any.
    pub fn find(&self, method: &Method, path: &str) -> Option<Match<'_>> {
        let request: Vec<&str> = match path.strip_prefix('/') {
            Some("") => Vec::new(),
            Some(rest) => rest.split('/').collect(),
            None => return None,
        };
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, route)| route.method.as_ref().is_none_or(|m| m == method))
            .filter_map(|(index, route)| {
                let parameters = matches(&route.segments, &request)?;
                Some(Match { index, route, parameters })
            })
            .min_by(|a, b| a.route.specificity.cmp(&b.route.specificity))
    }
}

/// Orders routes from the most specific (smallest) to the least.
fn specificity(segments: &[Segment], any_method: bool) -> Specificity {
    let greedy = matches!(segments.last(), Some(Segment::Greedy(_)));
    let kinds = segments
        .iter()
        .map(|s| match s {
            Segment::Literal(_) => 0,
            Segment::Variable(_) => 1,
            Segment::Greedy(_) => 2,
        })
        .collect();
    (greedy, std::cmp::Reverse(segments.len()), kinds, any_method)
}

fn segments(path: &str) -> Vec<Segment> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => match name.strip_suffix('+') {
                Some(name) => Segment::Greedy(name.to_owned()),
                None => Segment::Variable(name.to_owned()),
            },
            None => Segment::Literal(s.to_owned()),
        })
        .collect()
}

/// The path variables if `route` matches the `request`'s segments.
fn matches(route: &[Segment], request: &[&str]) -> Option<Vec<(String, String)>> {
    let mut parameters = Vec::new();
    for (i, segment) in route.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                // One or more segments, the empty one after a trailing `/`
                // included (`/docs/` is the docs' index).
                if request.len() <= i {
                    return None;
                }
                parameters.push((name.clone(), request[i..].join("/")));
                return Some(parameters);
            }
            Segment::Literal(text) => {
                if request.get(i) != Some(&text.as_str()) {
                    return None;
                }
            }
            Segment::Variable(name) => match request.get(i) {
                Some(value) if !value.is_empty() => {
                    parameters.push((name.clone(), (*value).into()))
                }
                _ => return None,
            },
        }
    }
    (request.len() == route.len()).then_some(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str, &str)]) -> Router {
        let specs: Vec<RouteSpec> = routes
            .iter()
            .map(|(method, path, function)| RouteSpec {
                method: (*method).to_owned(),
                path: (*path).to_owned(),
                function: (*function).to_owned(),
                integration_timeout: Duration::from_secs(30),
                authorizer: None,
                line: 1,
            })
            .collect();
        Router::new(&specs, |_| true)
    }

    fn function(router: &Router, method: Method, path: &str) -> Option<String> {
        router.find(&method, path).map(|m| m.route.function.to_string())
    }

    #[test]
    fn the_projects_routes_find_each_path_and_nothing_else() {
        let router = router(&[
            ("ANY", "/api/v1/hello", "hello"),
            ("ANY", "/ping", "ping"),
            ("ANY", "/openapi.json", "docs"),
            ("ANY", "/docs", "docs"),
            ("ANY", "/docs/{proxy+}", "docs"),
        ]);
        let get = |p: &str| function(&router, Method::GET, p);
        assert_eq!(get("/api/v1/hello").as_deref(), Some("hello"));
        assert_eq!(function(&router, Method::DELETE, "/ping").as_deref(), Some("ping"));
        assert_eq!(get("/openapi.json").as_deref(), Some("docs"));
        assert_eq!(get("/docs").as_deref(), Some("docs"));
        assert_eq!(get("/docs/swagger-ui.css").as_deref(), Some("docs"));
        let index = router.find(&Method::GET, "/docs/").expect("the docs' index");
        assert_eq!(index.route.key, "ANY /docs/{proxy+}");
        assert_eq!(index.parameters, [("proxy".to_owned(), String::new())]);
        let file = router.find(&Method::GET, "/docs/a/b.js").expect("a file");
        assert_eq!(file.parameters, [("proxy".to_owned(), "a/b.js".to_owned())]);
        for unknown in ["/", "/nope", "/api/v1/hello/", "/pingx", "/healthz", "", "ping"] {
            assert_eq!(get(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let router = router(&[
            ("ANY", "/{proxy+}", "greedy-root"),
            ("ANY", "/pets/{proxy+}", "greedy-pets"),
            ("ANY", "/pets/{id}", "pet"),
            ("GET", "/pets/{id}", "get-pet"),
            ("ANY", "/pets/dog", "dog"),
            ("POST", "/pets/{id}/toys", "toys"),
        ]);
        let at = |method: Method, p: &str| function(&router, method, p);
        assert_eq!(at(Method::GET, "/pets/dog").as_deref(), Some("dog"), "literal over variable");
        assert_eq!(at(Method::GET, "/pets/7").as_deref(), Some("get-pet"), "method over ANY");
        assert_eq!(at(Method::PUT, "/pets/7").as_deref(), Some("pet"));
        assert_eq!(at(Method::POST, "/pets/7/toys").as_deref(), Some("toys"));
        // GET /pets/7/toys has no route of its own: the longest greedy one.
        assert_eq!(at(Method::GET, "/pets/7/toys").as_deref(), Some("greedy-pets"));
        assert_eq!(at(Method::GET, "/cats").as_deref(), Some("greedy-root"));
        let pet = router.find(&Method::GET, "/pets/7").expect("a pet");
        assert_eq!(pet.parameters, [("id".to_owned(), "7".to_owned())]);
        // An empty segment is no `{id}`.
        assert_eq!(at(Method::PUT, "/pets/").as_deref(), Some("greedy-pets"));
    }

    #[test]
    fn a_method_without_a_route_is_not_found() {
        let router = router(&[("GET", "/items", "list"), ("POST", "/items", "add")]);
        assert_eq!(function(&router, Method::GET, "/items").as_deref(), Some("list"));
        assert_eq!(function(&router, Method::POST, "/items").as_deref(), Some("add"));
        assert_eq!(function(&router, Method::DELETE, "/items"), None);
    }

    #[test]
    fn a_pod_serving_some_functions_knows_only_their_routes() {
        let specs = [("ANY", "/a", "a"), ("ANY", "/b", "b")].map(|(m, p, f)| RouteSpec {
            method: m.to_owned(),
            path: p.to_owned(),
            function: f.to_owned(),
            integration_timeout: Duration::from_secs(30),
            authorizer: None,
            line: 1,
        });
        let router = Router::new(&specs, |f| f == "b");
        assert!(router.find(&Method::GET, "/a").is_none());
        assert!(router.find(&Method::GET, "/b").is_some());
    }
}
