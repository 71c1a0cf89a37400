//! `cargo xtask build-worker` and `build-sdk`: the edge worker with worker-build (skipped
//! when up to date), and the client SDK (wasm-bindgen, wasm-opt, esbuild, `npm pack`).

use crate::{cargo, output_of, root, run, step, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).ok()?.modified().ok()
}

/// Newest modification time of the files worker-build reads.
fn newest_source(dir: &Path, newest: &mut SystemTime) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "build" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            newest_source(&path, newest);
        } else if let Some(t) = modified(&path) {
            *newest = (*newest).max(t);
        }
    }
}

pub(crate) fn build_worker(if_stale: bool) -> Result {
    let root = root();
    let worker = root.join("edge-worker");
    let output = worker.join("build/index.js");
    if if_stale {
        let mut newest = UNIX_EPOCH;
        for dir in ["edge-worker", "crates"] {
            newest_source(&root.join(dir), &mut newest);
        }
        for file in ["Cargo.lock", "Cargo.toml"] {
            if let Some(t) = modified(&root.join(file)) {
                newest = newest.max(t);
            }
        }
        if modified(&output).is_some_and(|built| built >= newest) {
            eprintln!("edge worker is up to date");
            return Ok(());
        }
    }
    step("building the edge worker (worker-build --release)");
    let bin = root.join("node_modules/.bin");
    let wasm_bindgen = output_of("which", &["wasm-bindgen"])
        .map(|s| s.trim().to_owned())
        .ok_or("wasm-bindgen not found: run `cargo xtask setup`")?;
    run(Command::new("worker-build")
        .arg("--release")
        .current_dir(&worker)
        .env("WASM_BINDGEN_BIN", wasm_bindgen)
        .env("WASM_OPT_BIN", bin.join("wasm-opt"))
        .env("ESBUILD_BIN", bin.join("esbuild"))
        .env("CARGO_TARGET_DIR", root.join("target")))?;
    if !output.exists() {
        return Err(format!("worker-build did not produce {}", output.display()));
    }
    Ok(())
}

/// Where `build-sdk` leaves the packed npm tarball.
fn sdk_tarball() -> PathBuf {
    root().join("target/npm/ovation-0.1.0.tgz")
}

/// Where `build_sdk` assembles the package as shipped (minified JavaScript); `npm/`
/// keeps the readable source.
pub(crate) fn sdk_stage() -> PathBuf {
    root().join("target/npm/stage")
}

/// Builds the client SDK: sdk-wasm for wasm32, wasm-bindgen (ES module), wasm-opt -Oz,
/// then stages the package in target/npm/stage with its JavaScript minified by esbuild
/// (the generated glue and `src/index.js`: every viewer downloads them) and `npm pack`s
/// it into target/npm/.
pub(crate) fn build_sdk() -> Result {
    let root = root();
    step("building the client SDK (sdk-wasm → npm/wasm, npm pack)");
    // The replay player's core is a module of its own, loaded by `replay()` only.
    run(cargo()
        .args([
            "build",
            "-p",
            "ovation-sdk-wasm",
            "-p",
            "ovation-sdk-replay-wasm",
        ])
        .args(["--release", "--target", "wasm32-unknown-unknown"])
        .current_dir(&root))?;
    let wasm_dir = root.join("npm/wasm");
    for (out_name, crate_wasm) in [
        ("ovation_sdk", "ovation_sdk_wasm.wasm"),
        ("ovation_replay", "ovation_sdk_replay_wasm.wasm"),
    ] {
        // The wrappers always pass the module (no default URL in the glue), and every
        // supported browser and Node has TextEncoder.encodeInto (no fallback): 67 B gz.
        run(Command::new("wasm-bindgen")
            .args(["--target", "web", "--out-name", out_name, "--no-typescript"])
            .args(["--omit-default-module-path", "--encode-into", "always"])
            .arg("--out-dir")
            .arg(&wasm_dir)
            .arg(
                root.join("target/wasm32-unknown-unknown/release")
                    .join(crate_wasm),
            ))?;
        let wasm = wasm_dir.join(format!("{out_name}_bg.wasm"));
        wasm_opt(&root, &wasm)?;
    }
    let out = root.join("target/npm");
    let stage = sdk_stage();
    let _ = fs::remove_dir_all(&stage);
    for dir in ["src", "wasm"] {
        let dir = stage.join(dir);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for file in [
        "package.json",
        "README.md",
        "src/index.d.ts",
        "src/react.d.ts",
        "wasm/ovation_sdk_bg.wasm",
        "wasm/ovation_replay_bg.wasm",
    ] {
        fs::copy(root.join("npm").join(file), stage.join(file))
            .map_err(|e| format!("cannot stage npm/{file}: {e}"))?;
    }
    for file in [
        "src/index.js",
        "src/player.js",
        "src/replay.js",
        "src/react.js",
        "wasm/ovation_sdk.js",
        "wasm/ovation_replay.js",
    ] {
        run(Command::new(root.join("node_modules/.bin/esbuild"))
            .arg(root.join("npm").join(file))
            .args(["--minify", "--format=esm", "--log-level=warning"])
            .arg(format!("--outfile={}", stage.join(file).display())))?;
    }
    run(Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(&out)
        .current_dir(&stage))?;
    if !sdk_tarball().exists() {
        return Err(format!(
            "npm pack did not produce {}",
            sdk_tarball().display()
        ));
    }
    eprintln!("packed {}", sdk_tarball().display());
    Ok(())
}

/// wasm-opt -Oz on a built module, in place; --converge: -Oz again until nothing shrinks
/// (0.15 KB gzipped; every viewer downloads it). --low-memory-unused lets it fold constant
/// offsets into loads and stores (0.43 KB gz): Rust puts the 1 MiB stack first, growing
/// down to address 0, and the data after it, so the lowest KiB is touched only by a stack
/// already overflowing. The producers and target-features sections are for tools, not
/// browsers (0.2 KB gz).
fn wasm_opt(root: &Path, wasm: &Path) -> Result {
    run(Command::new(root.join("node_modules/.bin/wasm-opt"))
        .args(["-Oz", "--converge", "--low-memory-unused"])
        .args(["--strip-producers", "--strip-target-features"])
        .args(["--enable-bulk-memory", "--enable-nontrapping-float-to-int"])
        .args([
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
        ])
        .args(["--enable-multivalue"])
        // Then once more through binaryen's own control-flow rebuild: flattened and
        // re-looped, -Oz finds what rustc's structure hid (0.3 KB gz of the SDK).
        .args(["--flatten", "--rereloop", "-Oz"])
        .arg(wasm)
        .arg("-o")
        .arg(wasm))
}
