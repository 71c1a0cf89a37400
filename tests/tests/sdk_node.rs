//! The packed npm package `ovation` (target/npm/ovation-0.1.0.tgz, from
//! `cargo xtask build-sdk`) installed into a scratch project and exercised by
//! `node --test` (npm/test/*.test.mjs) against the real worker under wrangler dev.

use ovation_tests::{root, scratch_dir, sdk_project, token, Server};
use std::process::Command;

#[test]
fn npm_package_against_the_worker() {
    let root = root();
    let main = Server::start(&scratch_dir("sdk-main"));
    // Connections end after 2 s (GoAway, then the server closes them): reconnect tests.
    let short = Server::start_with_vars(
        &scratch_dir("sdk-short"),
        &[("OVATION_CONNECTION_LIFETIME_MS", "2000")],
    );
    let project = sdk_project("sdk-node");
    for entry in std::fs::read_dir(root.join("npm/test")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".test.mjs") {
            std::fs::copy(&path, project.join(path.file_name().unwrap())).unwrap();
        }
    }
    let tokens = serde_json::json!({
        "admin": token("admin", "admin-1", "*"),
        "host": token("host", "host", "*"),
        "ana": token("viewer", "ana", "*"),
        "bob": token("viewer", "bob", "*"),
        "cy": token("viewer", "cy", "*"),
        "mo": token("moderator", "mo", "*"),
    });
    let status = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .current_dir(&project)
        .env("OVATION_URL", &main.base)
        .env("OVATION_URL_SHORT_LIFETIME", &short.base)
        .env("OVATION_TOKENS", tokens.to_string())
        .status()
        .expect("node runs");
    assert!(status.success(), "node --test failed (output above)");
}
