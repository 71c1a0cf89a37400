//! `cargo xtask setup`: install what is missing, idempotently (a second run skips what is
//! already there): the wasm32 target, rustfmt and clippy, wasm-bindgen-cli at the
//! Cargo.lock version, worker-build, npm packages, Chromium and ffmpeg.

use crate::build::modified;
use crate::{cargo, output_of, root, run, step, Result};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Debian's Chromium, driven by playwright-core in browser tests and benchmarks.
const CHROMIUM: &str = "/usr/bin/chromium";

/// worker-build matching the `worker` crate version in Cargo.toml.
const WORKER_BUILD_VERSION: &str = "0.8.7";

/// The exact wasm-bindgen version in Cargo.lock (the CLI must match it).
fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(version.trim_end_matches('"').to_owned());
            }
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

pub(crate) fn setup() -> Result {
    step("setup: toolchain pieces (skipped when present)");
    let targets = output_of("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !targets.lines().any(|t| t == "wasm32-unknown-unknown") {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let components = output_of("rustup", &["component", "list", "--installed"]).unwrap_or_default();
    for component in ["rustfmt", "clippy"] {
        if !components.lines().any(|c| c.starts_with(component)) {
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    let version = locked_wasm_bindgen_version()?;
    let installed = output_of("wasm-bindgen", &["--version"]).unwrap_or_default();
    if installed.split_whitespace().nth(1) != Some(version.as_str()) {
        eprintln!("installing wasm-bindgen-cli {version} (a few minutes, once)");
        run(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))?;
    }
    let worker_build = output_of("worker-build", &["--version"]).unwrap_or_default();
    if worker_build.trim() != WORKER_BUILD_VERSION {
        eprintln!("installing worker-build (a few minutes, once)");
        run(cargo().args(["install", "worker-build", "--version", WORKER_BUILD_VERSION]))?;
    }
    npm_install()?;
    // Browser tests and the SDK benchmark drive Debian's Chromium (playwright-core);
    // the `ovation-cue` tests make HLS streams with ffmpeg and check them with ffprobe.
    let mut packages: Vec<&str> = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        packages.extend(["chromium", "chromium-driver"]);
    }
    if output_of("ffprobe", &["-version"]).is_none() {
        packages.push("ffmpeg");
    }
    if !packages.is_empty() {
        eprintln!("installing {} (apt, once)", packages.join(", "));
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get")
            .args(["install", "-y"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    eprintln!("setup: ok");
    Ok(())
}

/// `npm ci` when node_modules is missing or older than package-lock.json.
pub(crate) fn npm_install() -> Result {
    let root = root();
    let lock = root.join("package-lock.json");
    let marker = root.join("node_modules/.package-lock.json");
    let fresh = match (modified(&lock), modified(&marker)) {
        (Some(lock), Some(marker)) => marker >= lock,
        _ => false,
    };
    if !fresh || !root.join("node_modules/.bin/wrangler").exists() {
        eprintln!("installing npm packages from package-lock.json");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&root))?;
    }
    Ok(())
}
