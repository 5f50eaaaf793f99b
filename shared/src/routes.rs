//! Which function serves which METHOD + path.
//!
//! One table for every place that routes: each function checks it to answer
//! 404 and 405 itself (a function behind an ALB or a Function URL sees every
//! path), and tests keep `cargo lambda watch`'s router (the workspace
//! `Cargo.toml`) and the SAM template's routes (`e2e/tests/one_list.rs`)
//! equal to it.

use crate::error::ApiError;

/// What a matched request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/v1/hello`: factor a number.
    Hello,
    /// `GET /ping`: liveness of the API.
    Ping,
    /// `GET /openapi.json`: the OpenAPI document.
    OpenApi,
    /// `GET /docs` and `GET /docs/{file}`: Swagger UI.
    Docs,
}

/// One route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path; a trailing `/{*file}` matches the rest of the path, empty or not.
    pub path: &'static str,
    /// Name of the function binary that serves it.
    pub function: &'static str,
    /// What it does.
    pub endpoint: Endpoint,
}

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    Route { method: "POST", path: "/api/v1/hello", function: "hello", endpoint: Endpoint::Hello },
    Route { method: "GET", path: "/ping", function: "ping", endpoint: Endpoint::Ping },
    Route { method: "GET", path: "/openapi.json", function: "docs", endpoint: Endpoint::OpenApi },
    Route { method: "GET", path: "/docs", function: "docs", endpoint: Endpoint::Docs },
    Route { method: "GET", path: "/docs/{*file}", function: "docs", endpoint: Endpoint::Docs },
];

/// Path suffix that makes a route match a whole subtree.
pub const CATCH_ALL: &str = "/{*file}";

impl Route {
    /// Whether this route's path matches `path`.
    pub fn matches(&self, path: &str) -> bool {
        match self.path.strip_suffix(CATCH_ALL) {
            Some(prefix) => {
                path.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('/')).is_some()
            }
            None => path == self.path,
        }
    }
}

/// The route of `function` for `method` and `path`.
///
/// A path that none of the function's routes has is a 404; a path it has
/// with another method is a 405 that lists the methods it does serve.
pub fn resolve(function: &str, method: &str, path: &str) -> Result<&'static Route, ApiError> {
    let mut allow = Vec::new();
    for route in ROUTES.iter().filter(|r| r.function == function && r.matches(path)) {
        if route.method.eq_ignore_ascii_case(method) {
            return Ok(route);
        }
        allow.push(route.method);
    }
    if allow.is_empty() {
        Err(ApiError::NotFound { path: path.to_owned() })
    } else {
        Err(ApiError::MethodNotAllowed { method: method.to_owned(), path: path.to_owned(), allow })
    }
}

/// The names of all functions, each once, in table order.
pub fn functions() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        if !names.contains(&route.function) {
            names.push(route.function);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_each_route_to_its_function() {
        for route in ROUTES {
            let path = route.path.replace(CATCH_ALL, "/index.css");
            assert_eq!(resolve(route.function, route.method, &path), Ok(route));
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        let err = resolve("hello", "GET", "/api/v1/hello").unwrap_err();
        assert_eq!(err.status(), 405);
        assert_eq!(err.allow().as_deref(), Some("POST"));
    }

    #[test]
    fn other_paths_are_404_even_when_another_function_has_them() {
        for (function, path) in [
            ("hello", "/ping"),
            ("hello", "/api/v1/hello/"),
            ("ping", "/"),
            ("docs", "/docsx"),
            ("docs", "/nope"),
        ] {
            assert_eq!(resolve(function, "GET", path).unwrap_err().status(), 404, "{path}");
        }
    }

    #[test]
    fn cargo_lambda_watch_router_is_this_table() {
        let manifest: toml::Table = include_str!("../../Cargo.toml").parse().expect("Cargo.toml");
        let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
            .as_table()
            .expect("router table");
        for route in ROUTES {
            assert_eq!(
                router.get(route.path).and_then(|f| f.as_str()),
                Some(route.function),
                "watch router entry for {}",
                route.path
            );
        }
        // Besides the table's paths, only the root and the catch-all, sent to
        // the docs function, which answers 404 for them.
        let mut extra: Vec<_> =
            router.keys().filter(|p| !ROUTES.iter().any(|r| r.path == p.as_str())).collect();
        extra.sort();
        assert_eq!(extra, vec!["/", "/{*path}"]);
        assert!(extra.iter().all(|p| router[p.as_str()].as_str() == Some("docs")));
    }
}
