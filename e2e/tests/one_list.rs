//! One list of functions: `template.yaml`. Every other place that names
//! functions or routes takes them from it, or from the workspace's
//! `functions/*` crates, and these tests fail when any place disagrees.

use e2e::workspace_root;
use gateway::template::{RouteSpec, Template};
use std::collections::BTreeSet;

fn template() -> Template {
    gateway::template::load(&e2e::template_path(), &[], "us-east-1").expect("template.yaml")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The template's functions, by name.
fn functions() -> BTreeSet<String> {
    template().functions.into_iter().map(|f| f.name).collect()
}

/// The workspace's function crates: each directory under `functions/` with
/// a binary of its own name.
#[test]
fn the_workspaces_function_binaries_are_the_templates_functions() {
    let mut binaries = BTreeSet::new();
    for entry in std::fs::read_dir(workspace_root().join("functions")).expect("functions/") {
        let dir = entry.expect("entry").path();
        let name = dir.file_name().and_then(|n| n.to_str()).expect("a name").to_owned();
        let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
            .expect("Cargo.toml")
            .parse()
            .expect("TOML");
        assert_eq!(manifest["package"]["name"].as_str(), Some(name.as_str()), "{}", dir.display());
        if dir.join("src/main.rs").exists() {
            binaries.insert(name);
        }
    }
    assert_eq!(binaries, functions(), "functions/*/ binaries (left) and template.yaml (right)");
    // The workspace takes every crate there, with nothing to add by hand.
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let members = manifest["workspace"]["members"].as_array().expect("members");
    assert!(members.iter().any(|m| m.as_str() == Some("functions/*")), "{members:?}");
}

/// The table the functions answer 404 and 405 from (they need it behind an
/// ALB or a Function URL, which route nothing) is the template's routes.
#[test]
fn shared_routes_are_the_templates_routes() {
    let declared: BTreeSet<(String, String)> = template()
        .routes
        .iter()
        .map(|r: &RouteSpec| {
            assert_eq!(r.method, "ANY", "each function answers 405 itself: {r:?}");
            (r.path.replace("{proxy+}", "{*file}"), r.function.clone())
        })
        .collect();
    let table: BTreeSet<(String, String)> =
        shared::routes::ROUTES.iter().map(|r| (r.path.to_owned(), r.function.to_owned())).collect();
    assert_eq!(declared, table, "template.yaml (left) and shared::routes (right)");
}

/// `cargo lambda watch`'s router sends each template route to its function.
#[test]
fn the_watch_router_is_the_templates_routes() {
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router]");
    for route in template().routes {
        let path = route.path.replace("{proxy+}", "{*file}");
        assert_eq!(
            router.get(&path).and_then(|f| f.as_str()),
            Some(route.function.as_str()),
            "watch router entry for {path}"
        );
    }
    let names = functions();
    for (path, function) in router {
        let function = function.as_str().expect("a function name");
        assert!(names.contains(function), "{path} -> {function}: not a function of the template");
    }
}

/// The image's build (`tools/cross.sh`, which the Dockerfile runs) and
/// `make stage` (the same script) build and copy every function crate
/// there is, naming none.
#[test]
fn the_image_takes_every_function_without_naming_one() {
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("RUN tools/cross.sh image"),
        "the Dockerfile builds with tools/cross.sh"
    );
    let makefile = read("Makefile");
    assert!(
        makefile.contains("\ttools/cross.sh stage "),
        "make stage lays out with tools/cross.sh"
    );
    let cross = read("tools/cross.sh");
    assert!(cross.contains("for dir in functions/*/"), "tools/cross.sh does not copy functions/*/");
    for (path, text) in [("tools/cross.sh", cross), ("Makefile", makefile)] {
        for name in functions() {
            for hard_coded in
                [format!("-p {name} "), format!("-p {name}\n"), format!(" {name} ping")]
            {
                assert!(!text.contains(&hard_coded), "{path} names {name:?}: {hard_coded:?}");
            }
        }
        assert!(text.contains("template.yaml"), "{path} does not ship the template");
    }
}

/// The per-function overlay has a Deployment for each function, and its
/// Ingress sends each route's path to that function's Service.
#[test]
fn the_per_function_overlay_covers_every_route() {
    let overlay = "k8s/overlays/per-function";
    let kustomization = read(&format!("{overlay}/kustomization.yaml"));
    // Functions with routes; an authorizer runs in the pods of the routes it
    // guards.
    let routed: BTreeSet<String> = template().routes.into_iter().map(|r| r.function).collect();
    for name in routed {
        assert!(kustomization.contains(&format!("  - {name}\n")), "{overlay} lacks {name}");
        let own = read(&format!("{overlay}/{name}/kustomization.yaml"));
        assert!(own.contains(&format!("name: KF_FUNCTIONS\n                    value: {name}\n")));
    }
    let ingress = read(&format!("{overlay}/ingress.yaml"));
    for route in template().routes {
        let path = route.path.trim_end_matches("/{proxy+}");
        let at = ingress
            .find(&format!("- path: {path}\n"))
            .unwrap_or_else(|| panic!("the Ingress has no path {path}"));
        let service = ingress[at..]
            .split("name: kf-api-svc-")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("a backend");
        assert_eq!(service, route.function, "the Ingress sends {path} to {service}");
        if route.path.ends_with("{proxy+}") {
            assert!(
                ingress[at..].starts_with(&format!("- path: {path}\n            pathType: Prefix"))
            );
        }
    }
}
