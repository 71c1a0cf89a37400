//! What `wrangler deploy` ships, and what a deployment without tenant keys does.
//!
//! The development keys must never reach production: wrangler.toml carries none, and the
//! bundle `wrangler deploy --dry-run` builds (offline) carries none even when a developer
//! keeps a `.dev.vars` and a `.env` with them beside the config. A deployment whose
//! operator forgot `wrangler secret put OVATION_TENANT_KEYS` refuses every token with
//! 503 `auth_not_configured` and says why in its log; one whose entry for one tenant
//! cannot be used refuses that tenant's tokens only.

use ovation_auth::{dev, SigningKey};
use ovation_cli::{Api, Socket, SocketEnd};
use ovation_tests::{root, scratch_dir, token, token_with, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

fn wrangler() -> PathBuf {
    std::env::var("OVATION_WRANGLER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("node_modules/.bin/wrangler"))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("a readable directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// The development secrets, and the JSON that holds the tenants' keys.
fn dev_secrets() -> Vec<String> {
    let mut secrets: Vec<String> = dev::SECRETS.iter().map(|s| s.to_string()).collect();
    secrets.push(dev::tenant_keys_json());
    secrets
}

#[test]
fn deploy_dry_run_bundle_and_config_carry_no_development_key_even_with_dev_vars_beside_them() {
    let worker = root().join("edge-worker");
    let built = worker.join("build");
    assert!(
        built.join("index.js").exists(),
        "edge-worker/build is missing: run `cargo xtask build-worker` (cargo xtask test does)"
    );
    // The repository's config, unchanged, beside the built worker and the local-only
    // files a developer may keep (wrangler dev reads them; deploy must not).
    let project = scratch_dir("deploy-dry-run");
    let copied = project.join("build");
    std::fs::create_dir_all(&copied).unwrap();
    let mut built_files = Vec::new();
    files_under(&built, &mut built_files);
    for file in built_files {
        let to = copied.join(file.strip_prefix(&built).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
    let config_text = std::fs::read_to_string(worker.join("wrangler.toml")).unwrap();
    std::fs::write(project.join("wrangler.toml"), &config_text).unwrap();
    let local_only = dev::dev_vars(&[("OVATION_SETTLEMENT_SECRET", dev::SETTLEMENT_SECRET)]);
    std::fs::write(project.join(".dev.vars"), &local_only).unwrap();
    std::fs::write(project.join(".env"), &local_only).unwrap();

    for secret in dev_secrets() {
        assert!(
            !config_text.contains(&secret),
            "edge-worker/wrangler.toml carries the development secret {secret:?}"
        );
    }
    assert!(
        !config_text.contains("OVATION_TENANT_KEYS ="),
        "edge-worker/wrangler.toml sets OVATION_TENANT_KEYS (it must be a secret)"
    );

    let out_dir = project.join("dist");
    let output = Command::new(wrangler())
        .args(["deploy", "--dry-run", "--outdir"])
        .arg(&out_dir)
        .current_dir(&project)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .env_remove("CLOUDFLARE_API_TOKEN")
        .output()
        .expect("wrangler runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "wrangler deploy --dry-run failed:\n{printed}"
    );
    assert!(
        printed.contains("--dry-run: exiting now"),
        "not a dry run?\n{printed}"
    );
    // The bindings wrangler would upload are printed: no key, no tenant keys variable.
    for secret in dev_secrets() {
        assert!(
            !printed.contains(&secret),
            "the deploy would upload the development secret {secret:?}:\n{printed}"
        );
    }
    assert!(
        !printed.contains("OVATION_TENANT_KEYS") && !printed.contains("OVATION_SETTLEMENT_SECRET"),
        "the deploy would bind a secret as a plain variable:\n{printed}"
    );
    let mut bundle = Vec::new();
    files_under(&out_dir, &mut bundle);
    assert!(
        bundle
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "wasm")),
        "the dry-run bundle has no wasm: {bundle:?}"
    );
    for file in &bundle {
        let bytes = std::fs::read(file).unwrap();
        for secret in dev_secrets() {
            assert!(
                !contains(&bytes, &secret),
                "{} in the deploy bundle carries the development secret {secret:?}",
                file.display()
            );
        }
    }
}

/// An admin token of the development's other tenant.
fn other_tenants_admin() -> String {
    let key = SigningKey::hs256(dev::OTHER_HS256_SECRET.as_bytes());
    token_with(&key, dev::OTHER_TENANT, "admin", "ops", "*")
}

#[test]
fn a_worker_without_tenant_keys_refuses_every_token_with_auth_not_configured_and_logs_why() {
    let server = Server::start_without_tenant_keys(&scratch_dir("no-tenant-keys"));
    let other = other_tenants_admin();
    for bearer in [token("admin", "boss", "*"), other, String::new()] {
        let api = Api::new(&server.base, &bearer);
        let room = serde_json::json!({ "room": "weur-nokeys", "host": "boss" });
        for (what, reply) in [
            ("create a room", api.post("/v1/rooms", &room)),
            ("list rooms", api.get("/v1/rooms")),
            ("room state", api.get("/v1/rooms/weur-nokeys/state")),
        ] {
            let reply = reply.unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert_eq!(reply.status, 503, "{what}: {:?}", reply.body);
            assert_eq!(reply.body["code"], "auth_not_configured", "{what}");
        }
    }
    match Socket::connect(
        &server.base,
        "weur-nokeys",
        &token("viewer", "ana", "weur-nokeys"),
        None,
    ) {
        // (The client library does not always hand over a refused upgrade's body: the
        // status is the check here, the code is checked on the HTTP routes above.)
        Err(SocketEnd::Refused(503, body)) => {
            assert!(
                body.is_empty() || body.contains("auth_not_configured"),
                "{body}"
            )
        }
        Err(other) => panic!("the upgrade ended {other:?}"),
        Ok(_) => panic!("a socket opened on a worker without tenant keys"),
    }
    // The operator reads what is wrong and how to fix it (wrangler writes its log a
    // moment after the answers: read once it is there).
    let marker = r#""event":"auth_not_configured""#;
    server.wait_for_log(marker, std::time::Duration::from_secs(10));
    let log = std::fs::read_to_string(&server.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no auth_not_configured log line:\n{log}"));
    assert!(
        line.contains("wrangler secret put OVATION_TENANT_KEYS"),
        "{line}"
    );
}

/// One tenant's entry in `OVATION_TENANT_KEYS` that cannot be used (here a secret
/// shorter than 16 bytes) refuses that tenant's tokens with 503 `auth_not_configured`,
/// logged with the tenant and why; the other tenants go on working. It used to refuse
/// every token of every tenant.
#[test]
fn one_tenants_unusable_key_refuses_only_that_tenants_tokens() {
    let keys = serde_json::json!({
        dev::TENANT: { "hs256": dev::HS256_SECRET },
        dev::OTHER_TENANT: { "hs256": "too-short" },
    })
    .to_string();
    let keys: &'static str = Box::leak(keys.into_boxed_str());
    let server = Server::start_with_tenant_keys(&scratch_dir("one-bad-tenant-key"), keys);
    let room = format!("weur-onebad-{}", ovation_tests::unique());
    let created = server
        .admin()
        .post(
            "/v1/rooms",
            &serde_json::json!({ "room": room, "host": "boss" }),
        )
        .unwrap();
    assert_eq!(
        created.status, 201,
        "the good tenant works: {:?}",
        created.body
    );
    let other = other_tenants_admin();
    let refused = Api::new(&server.base, &other).get("/v1/rooms").unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "auth_not_configured");
    let log = std::fs::read_to_string(&server.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(r#""event":"auth_not_configured""#) && l.contains(dev::OTHER_TENANT))
        .unwrap_or_else(|| panic!("no log line names the tenant:\n{log}"));
    assert!(line.contains("shorter than 16 bytes"), "{line}");
}
