//! `make keygen` makes a key and the `id:hash` line the authorizer accepts
//! it by.

use shared::auth::{ApiKeys, Decision};
use std::process::Command;

#[test]
fn make_keygen_prints_a_key_and_the_hash_line_that_accepts_it() {
    let run = || {
        let out = Command::new("make")
            .args(["--no-print-directory", "keygen", "KEY_ID=ci"])
            .current_dir(e2e::workspace_root())
            .output()
            .expect("run make keygen");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
                .trim()
                .to_owned()
        };
        (
            field("key (give it to the client; it is not stored anywhere):"),
            field("hash line (ApiKeyHashes, or the Secret):"),
        )
    };
    let (key, line) = run();
    assert!(key.len() >= 40 && key.starts_with("kf_"), "{key}");
    assert!(line.starts_with("ci:") && !line.contains(&key), "{line}");
    let keys = ApiKeys::parse(&line).expect("the hash line parses");
    assert_eq!(keys.check(Some(&format!("Bearer {key}"))), Decision::Allow { key_id: "ci".into() });
    // A fresh key each time.
    let (other, _) = run();
    assert_ne!(key, other);
}
