//! `cargo xtask test`: the whole of CI (`.ci/run`): formatting, lints, unit and
//! simulation tests, the SDK in Chromium, and the integration tests under `wrangler dev`
//! and on workerd alone.

use crate::build::{build_sdk, build_worker};
use crate::setup::setup;
use crate::{cargo, output_of, root, run, step, Result};
use std::process::Command;

/// `sdk-wasm/tests/browser.rs` in headless Chromium: wasm-bindgen-test-runner (installed
/// with wasm-bindgen-cli by `setup`) drives Debian's Chromium through chromedriver, with the
/// capabilities in `sdk-wasm/webdriver.json`.
fn test_sdk_in_browser() -> Result {
    step("SDK glue in headless Chromium (wasm-bindgen-test)");
    let root = root();
    let runner = output_of("which", &["wasm-bindgen-test-runner"])
        .map(|s| s.trim().to_owned())
        .ok_or("wasm-bindgen-test-runner not found: run `cargo xtask setup` (wasm-bindgen-cli)")?;
    run(cargo()
        .args(["test", "--target", "wasm32-unknown-unknown"])
        .args(["-p", "ovation-sdk-wasm", "--test", "browser"])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &runner)
        .env("CHROMEDRIVER", "/usr/bin/chromedriver")
        .env(
            "WASM_BINDGEN_TEST_WEBDRIVER_JSON",
            root.join("sdk-wasm/webdriver.json"),
        )
        .env("WASM_BINDGEN_TEST_TIMEOUT", "60")
        .current_dir(&root))
}

pub(crate) fn test() -> Result {
    setup()?;
    let root = root();
    step("cargo fmt --check");
    run(cargo()
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(&root))?;
    // The JavaScript's rustfmt and clippy: format and lint as biome.jsonc sets them.
    step("biome ci (JavaScript format and lint)");
    run(Command::new(root.join("node_modules/.bin/biome"))
        .args(["ci", "--colors=off"])
        .current_dir(&root))?;
    step("clippy (native)");
    run(cargo()
        .args([
            "clippy",
            "--workspace",
            "--exclude",
            "ovation-edge-worker",
            "--all-targets",
        ])
        .args(["--", "-D", "warnings"])
        .current_dir(&root))?;
    step("clippy (wasm32: edge worker and the crates it uses)");
    run(cargo()
        .args(["clippy", "--target", "wasm32-unknown-unknown"])
        .args([
            "-p",
            "ovation-edge-worker",
            "-p",
            "ovation-proto",
            "-p",
            "ovation-room",
        ])
        .args(["-p", "ovation-client", "-p", "ovation-sdk-wasm"])
        .args(["-p", "ovation-auth", "--", "-D", "warnings"])
        .current_dir(&root))?;
    step("clippy (wasm32: the SDK's browser tests)");
    run(cargo()
        .args(["clippy", "--target", "wasm32-unknown-unknown"])
        .args([
            "-p",
            "ovation-sdk-wasm",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(&root))?;
    step("unit, property and simulation tests");
    run(cargo()
        .args([
            "test",
            "--workspace",
            "--exclude",
            "ovation-edge-worker",
            "--exclude",
        ])
        .args(["ovation-tests"])
        .current_dir(&root))?;
    build_worker(true)?;
    build_sdk()?;
    test_sdk_in_browser()?;
    // The gift tests run the real settlement service beside the worker; the video-sync
    // test injects cues with ovation-cue.
    run(cargo()
        .args([
            "build",
            "-p",
            "ovation-settlement",
            "-p",
            "ovation-cue-tool",
        ])
        .current_dir(&root))?;
    step("integration tests: real WebSockets against the worker under wrangler dev");
    run(cargo()
        .args(["test", "-p", "ovation-tests", "--", "--test-threads=4"])
        .env("OVATION_WRANGLER", root.join("node_modules/.bin/wrangler"))
        .current_dir(&root))?;
    // The same bundle self-hosted (`cargo xtask serve`'s config, tests/tests/selfhost.rs
    // ran above): the core edge tests and the gift path on workerd alone. workerd has no
    // HTTP cache behind `caches.default`, so the cache-hit check is wrangler's only
    // (docs/self-hosting.md, limits).
    step("integration tests on workerd alone (self-hosting): core edge tests, gifts");
    run(cargo()
        .args([
            "test",
            "-p",
            "ovation-tests",
            "--test",
            "edge",
            "--test",
            "gifts",
        ])
        .args(["--", "--test-threads=4"])
        .args(["--skip", "parts_are_versioned_immutable_and_cached"])
        .env("OVATION_RUNTIME", "workerd")
        .current_dir(&root))?;
    eprintln!("\nxtask test: all green");
    Ok(())
}
