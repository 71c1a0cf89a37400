//! The packed npm package `ovation` (target/npm/ovation-0.1.0.tgz, from
//! `cargo xtask build-sdk`) installed into a scratch project and exercised by
//! `node --test` (npm/test/*.test.mjs) against the real worker under wrangler dev;
//! react.test.mjs (`ovation/react` on a scripted room) needs no server.

use ovation_auth::{dev, mint, SigningKey, TokenClaims};
use ovation_tests::{root, scratch_dir, sdk_project, token, token_with, Server};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tokens the server refuses, each for its own reason (refusals.test.mjs).
fn refused_tokens() -> serde_json::Value {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let dev_key = SigningKey::hs256(dev::HS256_SECRET.as_bytes());
    let claims = TokenClaims {
        sub: "ana".into(),
        name: "ANA".into(),
        room: "*".into(),
        role: "viewer".into(),
        tenant: dev::TENANT.into(),
    };
    let hour_ms = 60 * 60 * 1000;
    serde_json::json!({
        // Issued two hours ago for one hour.
        "expired": mint(&dev_key, claims, now_ms - 2 * hour_ms, hour_ms),
        "wrong_room": token("viewer", "ana", "weur-elsewhere"),
        "wrong_key": token_with(
            &SigningKey::hs256(b"not-the-dev-tenant-secret"), dev::TENANT, "viewer", "ana", "*"),
        // A real viewer of the other tenant: its rooms are not the dev tenant's.
        "other_tenant": token_with(
            &SigningKey::hs256(dev::OTHER_HS256_SECRET.as_bytes()),
            dev::OTHER_TENANT, "viewer", "ana", "*"),
    })
}

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
        "viewers": (0..10).map(|i| token("viewer", &format!("v{i}"), "*")).collect::<Vec<_>>(),
        "refused": refused_tokens(),
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
