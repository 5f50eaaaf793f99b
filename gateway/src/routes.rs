//! Which function a path goes to.
//!
//! The table is `shared::routes::ROUTES`, the one every router of the
//! project agrees with (the SAM template's HTTP API routes are checked
//! against it too). As on API Gateway, a route matches every method: each
//! function answers 405 itself for a method it does not serve.

use shared::routes::{CATCH_ALL, ROUTES};

/// One path and the function behind it.
#[derive(Debug, Clone)]
pub struct Route {
    /// Path pattern, as in the table.
    pub path: &'static str,
    /// The function's name.
    pub function: &'static str,
    /// API Gateway's route key, e.g. `ANY /api/v1/hello`.
    pub key: String,
    matcher: shared::routes::Route,
}

/// Every route of the API.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// The routes of `shared::routes::ROUTES`, one per path.
    pub fn new() -> Router {
        let mut routes: Vec<Route> = Vec::new();
        for r in ROUTES {
            if !routes.iter().any(|known| known.path == r.path) {
                let key = format!("ANY {}", r.path.replace(CATCH_ALL, "/{proxy+}"));
                routes.push(Route { path: r.path, function: r.function, key, matcher: *r });
            }
        }
        Router { routes }
    }

    /// The route for `path`, if any.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matcher.matches(path))
    }

    /// Every function that some route needs, each once.
    pub fn functions(&self) -> Vec<&'static str> {
        shared::routes::functions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_path_and_nothing_else() {
        let router = Router::new();
        let function = |p: &str| router.find(p).map(|r| r.function);
        assert_eq!(function("/api/v1/hello"), Some("hello"));
        assert_eq!(function("/ping"), Some("ping"));
        assert_eq!(function("/openapi.json"), Some("docs"));
        assert_eq!(function("/docs"), Some("docs"));
        assert_eq!(function("/docs/swagger-ui.css"), Some("docs"));
        assert_eq!(router.find("/docs/").map(|r| r.key.as_str()), Some("ANY /docs/{proxy+}"));
        for unknown in ["/", "/nope", "/api/v1/hello/", "/pingx", "/healthz"] {
            assert_eq!(function(unknown), None, "{unknown}");
        }
        assert_eq!(router.functions(), ["hello", "ping", "docs"]);
    }
}
