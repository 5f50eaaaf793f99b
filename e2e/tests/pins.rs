//! Versions pinned in more than one file agree, so that what the tests run
//! is what ships.

use e2e::workspace_root;

/// The value of the first line of `file` that starts with `prefix`.
fn pinned(file: &str, prefix: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join(file)).expect("readable");
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{file} has no line starting {prefix:?}"));
    line[prefix.len()..].trim().to_owned()
}

#[test]
fn the_image_carries_the_rie_the_tests_run() {
    let tests = pinned("Makefile", "RIE_VERSION :=");
    let image = pinned("Dockerfile", "ARG RIE_VERSION=");
    assert!(tests.starts_with("v0.0.0-"), "a pseudo-version: {tests}");
    assert_eq!(image, tests, "Dockerfile and Makefile pin different RIE versions");
}

/// The shipped builds unwind on panic: with `panic = "abort"` the gateway's
/// catch-panic layer never runs, and one panicking request ends PID 1 and
/// every request in flight.
#[test]
fn release_builds_unwind_on_panic() {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = text.parse().expect("valid TOML");
    let profiles = manifest.get("profile").and_then(|p| p.as_table()).expect("[profile.*]");
    for (name, profile) in profiles {
        let panic = profile.get("panic").and_then(|p| p.as_str()).unwrap_or("unwind");
        assert_eq!(panic, "unwind", "[profile.{name}] aborts on panic");
        let packages = profile.get("package").and_then(|p| p.as_table());
        for (package, settings) in packages.into_iter().flatten() {
            assert!(
                settings.get("panic").is_none(),
                "[profile.{name}.package.{package}] sets panic"
            );
        }
    }
}
