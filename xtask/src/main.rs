//! `cargo xtask dev | test | build-worker | setup` — everything a fresh machine needs.
//!
//! Every install step lives here, idempotent: a second run skips what is already there.

use std::env;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The benchmark charts' font loader, ovation-load's own file (see its doc comment).
#[path = "../../load/src/chart_font.rs"]
mod chart_font;
mod fanout;
mod http;
mod serve;
mod soak;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  dev            install what is missing, build the edge worker, run it under
                 `wrangler dev` on 127.0.0.1:8787 (data in .data/wrangler), serve the
                 demo page (HLS test stream with a cue, the overlay) and the host
                 console on 127.0.0.1:8790, print URLs and dev tokens; Ctrl-C stops
                 everything
  test           fmt check, clippy (native and wasm32), unit and simulation tests,
                 then integration tests against the real worker under wrangler dev,
                 and the core ones again on workerd alone (self-hosting)
  serve          self-host the edge on the open-source workerd runtime (no wrangler):
                 writes DIR/config.capnp (modules, Durable Objects stored on disk in
                 DIR/storage, bindings from wrangler.toml) and execs `workerd serve`;
                 [--listen 127.0.0.1:8790] [--data .data/workerd] [--keys-file FILE |
                 --dev-keys] (else OVATION_TENANT_KEYS from the environment)
                 [--settlement-url URL [--settlement-secret-file FILE]] [--var N=V]
                 [--workerd PATH] [--config-only]; see docs/self-hosting.md
  build-worker   build edge-worker/build with worker-build (skips when up to date)
  build-sdk      build the client SDK (sdk-wasm, wasm-bindgen, wasm-opt) and pack the
                 npm package `ovation` into target/npm/ovation-0.1.0.tgz
  bench ledger   gift ledger throughput and latency on SQLite and PostgreSQL, with
                 pgbench (simple-update) on the same PostgreSQL as the reference
  bench sdk      SDK size (gzip) and decode speed in Chromium against JSON.parse
  bench fanout   broadcast fan-out of a room under `ovation-load fanout`, against a
                 naive Durable Object, PartyServer, Socket.IO and a native tokio server
                 (bench/), one after another: deliveries, losses, latency, server CPU,
                 cost per 1,000 viewer-minutes; [--viewers N] [--comments-per-s C]
                 [--duration-s D] [--rooms R] [--only ovation,native,...]
  bench shards   ours alone at every (viewers, shards) pair: how S shards change
                 deliveries per CPU-second and p99; [--viewers 1000,5000,10000]
                 [--shards 0,1,2,4] and bench fanout's load options
  bench soak     resident memory of workerd per held socket (1,000 and 5,000), ours
                 beside the naive Durable Object, and over a soak of mixed traffic
                 (growth after warm-up), with a chart; [--minutes 30] [--only ...]
  setup          only install what is missing (wasm32 target, wasm-bindgen-cli at the
                 Cargo.lock version, worker-build, npm packages from package-lock.json)
";

/// Bearer secret of the settlement service under `cargo xtask dev` (development only).
const DEV_SETTLEMENT_SECRET: &str = ovation_auth::dev::SETTLEMENT_SECRET;

/// Debian's Chromium, driven by playwright-core in browser tests and benchmarks.
const CHROMIUM: &str = "/usr/bin/chromium";

/// worker-build matching the `worker` crate version in Cargo.toml.
const WORKER_BUILD_VERSION: &str = "0.8.7";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => dev(),
        Some("test") => test(),
        Some("serve") => serve::serve(&args[1..]),
        Some("build-worker") => build_worker(args.iter().any(|a| a == "--if-stale")),
        Some("build-sdk") => build_sdk(),
        Some("setup") => setup(),
        Some("bench") => bench(args.get(1).map(String::as_str)),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

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

fn setup() -> Result {
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
fn npm_install() -> Result {
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

fn modified(path: &Path) -> Option<SystemTime> {
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

fn build_worker(if_stale: bool) -> Result {
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
fn sdk_stage() -> PathBuf {
    root().join("target/npm/stage")
}

/// Builds the client SDK: sdk-wasm for wasm32, wasm-bindgen (ES module), wasm-opt -Oz,
/// then stages the package in target/npm/stage with its JavaScript minified by esbuild
/// (the generated glue and `src/index.js`: every viewer downloads them) and `npm pack`s
/// it into target/npm/.
fn build_sdk() -> Result {
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
        .arg(wasm)
        .arg("-o")
        .arg(wasm))
}

fn dev_token(role: &str, user: &str) -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    ovation_auth::mint(
        &ovation_auth::SigningKey::hs256(ovation_auth::dev::HS256_SECRET.as_bytes()),
        ovation_auth::TokenClaims {
            sub: user.into(),
            name: user.into(),
            room: "*".into(),
            role: role.into(),
            tenant: ovation_auth::dev::TENANT.into(),
        },
        now_ms,
        12 * 60 * 60 * 1000,
    )
}

fn wrangler_dev(port: u16, persist: &Path) -> Command {
    let root = root();
    let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
    cmd.args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .arg("--persist-to")
        .arg(persist)
        .args(["--inspector-port", &free_port().to_string()])
        .args(["--show-interactive-dev-session=false"])
        .current_dir(root.join("edge-worker"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true");
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn dev() -> Result {
    setup()?;
    build_worker(true)?;
    let root = root();
    let data = root.join(".data/wrangler");
    fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
    let url = "http://127.0.0.1:8787";
    step("starting the settlement service on SQLite (127.0.0.1:8788)");
    run(cargo()
        .args(["build", "-p", "ovation-settlement"])
        .current_dir(&root))?;
    let settlement_data = root.join(".data/settlement");
    let mut settlement = Command::new(root.join("target/debug/ovation-settlement"))
        .args([
            "--listen",
            "127.0.0.1:8788",
            "--secret",
            DEV_SETTLEMENT_SECRET,
        ])
        .arg("--data-dir")
        .arg(&settlement_data)
        .spawn()
        .map_err(|e| format!("starting ovation-settlement: {e}"))?;
    step("starting wrangler dev (Ctrl-C stops it)");
    // Development keys and secrets reach wrangler dev only through this generated env
    // file: wrangler.toml carries none, so `wrangler deploy` cannot ship them.
    let env_file = root.join(".data/dev.vars");
    fs::write(
        &env_file,
        ovation_auth::dev::dev_vars(&[
            ("OVATION_SETTLEMENT_URL", "http://127.0.0.1:8788"),
            ("OVATION_SETTLEMENT_SECRET", DEV_SETTLEMENT_SECRET),
        ]),
    )
    .map_err(|e| format!("writing {}: {e}", env_file.display()))?;
    let mut child = wrangler_dev(8787, &data)
        .arg("--env-file")
        .arg(&env_file)
        .spawn()
        .map_err(|e| format!("starting wrangler: {e}"))?;
    wait_ready(url, Duration::from_secs(90))?;
    let admin = dev_token("admin", "dev-admin");
    let viewer = dev_token("viewer", "dev-viewer");
    let host = dev_token("host", "dev-host");
    let mut demo = start_demo(url, &admin, &viewer)?;
    println!(
        "\nOvation edge is up.\n\
         \n  API           {url}/v1/rooms\n  OpenAPI       {url}/v1/openapi.json\n  WebSocket     ws://127.0.0.1:8787/v1/rooms/<room>/ws?token=…\n  data          {}\n  settlement    http://127.0.0.1:8788 (bearer {DEV_SETTLEMENT_SECRET}, SQLite in .data/settlement)\n\
         \n  admin token   {admin}\n  viewer token  {viewer}\n\
         \n  demo page     http://127.0.0.1:{DEMO_PORT}/ (leads to /demo.html?url={url}&room={DEMO_ROOM}&stream=/stream/index.m3u8&token={viewer})\n  host console  http://127.0.0.1:{DEMO_PORT}/console.html?url={url}&room={DEMO_ROOM}&token={host}\n  (the demo stream's cue at {DEMO_CUE_S} s opens the product card)\n\
         \nTry it (two more terminals; the CLI mints dev tokens for --as USER):\n  cargo run -q -p ovation-cli -- --as boss room create weur-demo --host boss --title Demo\n  cargo run -q -p ovation-cli -- --as ana watch weur-demo\n  cargo run -q -p ovation-cli -- --as bob say weur-demo hello\n",
        data.display()
    );
    let status = child.wait().map_err(|e| e.to_string())?;
    eprintln!("wrangler exited: {status}");
    let _ = settlement.kill();
    let _ = settlement.wait();
    let _ = demo.kill();
    let _ = demo.wait();
    Ok(())
}

/// Port of the demo page and host console served by `cargo xtask dev`.
const DEMO_PORT: u16 = 8790;
const DEMO_ROOM: &str = "weur-demo";
const DEMO_CUE_ID: &str = "demo-product";
const DEMO_CUE_S: &str = "5";

/// Builds the SDK, generates the demo HLS stream with a cue once (ffmpeg + ovation-cue,
/// kept in .data/demo-stream), and starts the demo server (tools/demo-server.mjs), which
/// creates the demo room, pins a product card that opens at the cue, and leads `/` to the
/// demo page with the viewer token.
fn start_demo(url: &str, admin_token: &str, viewer_token: &str) -> Result<std::process::Child> {
    let root = root();
    build_sdk()?;
    step("demo stream (ffmpeg test picture and tone, a cue injected by ovation-cue)");
    run(cargo()
        .args(["build", "-p", "ovation-cue-tool"])
        .current_dir(&root))?;
    let stream = root.join(".data/demo-stream");
    let playlist = stream.join("index.m3u8");
    if !playlist.exists() {
        fs::create_dir_all(&stream).map_err(|e| format!("creating {}: {e}", stream.display()))?;
        run(Command::new("ffmpeg")
            .args(ovation_cue_tool::test_stream_ffmpeg_args(
                60, "640x360", false,
            ))
            .arg(&playlist))?;
        run(Command::new(root.join("target/debug/ovation-cue"))
            .args(["inject", "--playlist"])
            .arg(&playlist)
            .args(["--at", DEMO_CUE_S, "--cue", DEMO_CUE_ID])
            .args(["--ref", "product:demo-sneakers"]))?;
    } else {
        println!(
            "  {} exists (delete it to generate it again)",
            stream.display()
        );
    }
    Command::new("node")
        .arg(root.join("tools/demo-server.mjs"))
        .env("OVATION_URL", url)
        .env("OVATION_ADMIN_TOKEN", admin_token)
        .env("OVATION_VIEWER_TOKEN", viewer_token)
        .env("OVATION_ROOM", DEMO_ROOM)
        .env("OVATION_PORT", DEMO_PORT.to_string())
        .env("OVATION_REPO", &root)
        .env("OVATION_SDK", sdk_stage())
        .env("OVATION_STREAM", &stream)
        .env("OVATION_CUE_ID", DEMO_CUE_ID)
        .spawn()
        .map_err(|e| format!("starting the demo server: {e}"))
}

/// Waits until the worker answers its OpenAPI route.
fn wait_ready(url: &str, limit: Duration) -> Result {
    let started = Instant::now();
    let host = url.trim_start_matches("http://");
    // No connect timeout: the worker is on this machine, a refused connect is quick.
    let timeouts = http::Timeouts {
        connect: None,
        read: Duration::from_secs(5),
    };
    while started.elapsed() < limit {
        if http::get(host, "/v1/openapi.json", timeouts).is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!(
        "the worker did not answer on {url} within {limit:?}"
    ))
}

fn bench(which: Option<&str>) -> Result {
    match which {
        Some("ledger") => {
            step("ledger benchmark (release build)");
            run(cargo()
                .args([
                    "run",
                    "--release",
                    "-p",
                    "ovation-settlement",
                    "--bin",
                    "ledger-bench",
                ])
                .current_dir(root()))
        }
        Some("sdk") => bench_sdk(),
        Some("fanout") => fanout::bench_fanout(),
        Some("shards") => fanout::bench_shards(),
        Some("soak") => soak::bench_soak(),
        Some(other) => Err(format!(
            "unknown benchmark `{other}` (known: ledger, sdk, fanout, shards, soak)"
        )),
        None => {
            Err("name a benchmark: cargo xtask bench ledger | sdk | fanout | shards | soak".into())
        }
    }
}

/// SDK budget: wasm + JavaScript, gzipped: 57,703 B measured on 2026-12-04 (docs/benchmarks.md)
/// and a margin of about 300 B, so that any growth is a decision.
const SDK_GZIP_BYTES_BUDGET: u64 = 58_000;
/// SDK budget: events decoded and dispatched to JavaScript per second in Chromium.
const SDK_EVENTS_PER_S_BUDGET: f64 = 1_000_000.0;

fn gzip_len(path: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    Ok(out.stdout.len() as u64)
}

/// A representative server batch: 100 events of one tick in a busy room.
fn bench_batch() -> (Vec<u8>, String) {
    use ovation_proto::{Action, ActionBody, Event, ServerFrame};
    let mut events = Vec::new();
    let mut json = Vec::new();
    for i in 0..100u64 {
        let user = format!("viewer-{}", 1000 + i * 7);
        let name = format!("Viewer {}", 1000 + i * 7);
        let (event, value) = match i % 10 {
            8 => (
                Event::Likes { total: 10_000 + i },
                serde_json::json!({"type": "like", "total": 10_000 + i}),
            ),
            9 => (
                Event::Online { count: 5_000 },
                serde_json::json!({"type": "online", "count": 5_000}),
            ),
            _ => {
                let text = format!("comment number {i} — what a goal!!");
                (
                    Event::Action(Action {
                        seq: 500 + i,
                        ts_ms: 1_790_000_000_000 + i,
                        user: user.clone(),
                        name: name.clone(),
                        body: ActionBody::Comment { text: text.clone() },
                    }),
                    serde_json::json!({"type": "comment", "seq": 500 + i,
                        "ts_ms": 1_790_000_000_000u64 + i, "user": user, "name": name,
                        "text": text, "system": false}),
                )
            }
        };
        events.push(event);
        json.push(value);
    }
    let frame = ServerFrame::Batch {
        server_time_ms: 1_790_000_000_000,
        events,
    }
    .encode();
    (frame, serde_json::Value::Array(json).to_string())
}

fn bench_sdk() -> Result {
    setup()?;
    build_sdk()?;
    let root = root();
    // What the package ships (see build_sdk).
    let wasm_dir = sdk_stage().join("wasm");
    let wasm = wasm_dir.join("ovation_sdk_bg.wasm");
    let glue = wasm_dir.join("ovation_sdk.js");
    let wrapper = sdk_stage().join("src/index.js");
    let raw = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (wasm_gz, glue_gz, wrapper_gz) = (gzip_len(&wasm)?, gzip_len(&glue)?, gzip_len(&wrapper)?);
    let total_gz = wasm_gz + glue_gz + wrapper_gz;
    step("SDK size as shipped (minified JavaScript; gzip -9)");
    println!("  wasm       {:>7} B raw {:>7} B gz", raw(&wasm), wasm_gz);
    println!("  wasm glue  {:>7} B raw {:>7} B gz", raw(&glue), glue_gz);
    println!(
        "  index.js   {:>7} B raw {:>7} B gz",
        raw(&wrapper),
        wrapper_gz
    );
    let player = sdk_stage().join("src/player.js");
    println!(
        "  player.js  {:>7} B raw {:>7} B gz  (loaded by attachPlayer only; not in the total)",
        raw(&player),
        gzip_len(&player)?
    );
    // replay() loads its own wasm module and glue (viewers of live rooms never do).
    let replay_parts = [
        sdk_stage().join("src/replay.js"),
        wasm_dir.join("ovation_replay_bg.wasm"),
        wasm_dir.join("ovation_replay.js"),
    ];
    let mut replay_gz = 0;
    for part in &replay_parts {
        replay_gz += gzip_len(part)?;
    }
    println!(
        "  replay     {:>7} B raw {:>7} B gz  (replay.js + its wasm and glue, loaded by replay() only; not in the total)",
        replay_parts.iter().map(|p| raw(p)).sum::<u64>(),
        replay_gz
    );
    println!(
        "  total      {:>7} B gz  (budget {} B: {})",
        total_gz,
        SDK_GZIP_BYTES_BUDGET,
        if total_gz <= SDK_GZIP_BYTES_BUDGET {
            "met"
        } else {
            "NOT met"
        }
    );
    bench_sdk_peer_sizes(total_gz)?;
    step("SDK decode + dispatch in Chromium (vs JSON.parse of the same events)");
    let dir = root.join("target/sdk-bench");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (frame, json) = bench_batch();
    let write = |name: &str, bytes: &[u8]| {
        fs::write(dir.join(name), bytes).map_err(|e| format!("cannot write {name}: {e}"))
    };
    write("batch.bin", &frame)?;
    write("batch.json", json.as_bytes())?;
    for (from, name) in [
        (wasm.clone(), "ovation_sdk_bg.wasm"),
        (glue.clone(), "ovation_sdk.js"),
        (root.join("npm/bench/bench.js"), "bench.js"),
        (root.join("npm/bench/index.html"), "index.html"),
    ] {
        fs::copy(&from, dir.join(name)).map_err(|e| format!("cannot copy {name}: {e}"))?;
    }
    let out = Command::new("node")
        .arg(root.join("npm/bench/sdk-bench.mjs"))
        .arg(&dir)
        .current_dir(&root)
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the Chromium benchmark failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let result: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("bad benchmark output `{line}`: {e}"))?;
    let ours = result["ours_events_per_s"].as_f64().unwrap_or(0.0);
    let peer = result["json_events_per_s"].as_f64().unwrap_or(0.0);
    println!(
        "  batch: {} events, {} B postcard ({} B as JSON)",
        result["events_per_batch"], result["frame_bytes"], result["json_bytes"]
    );
    println!(
        "  ovation (wasm decode + JSON.parse + dispatch):  {:>12.0} events/s (budget {:.0}: {})",
        ours,
        SDK_EVENTS_PER_S_BUDGET,
        if ours >= SDK_EVENTS_PER_S_BUDGET {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("  peer: JSON.parse + dispatch of the same events: {peer:>12.0} events/s");
    println!("  ratio ovation / JSON.parse: {:.2}", ours / peer.max(1.0));
    println!(
        "  per batch: wasm decode + events JSON into JavaScript {} µs; TextDecoder on the \
         batch as UTF-8 {} µs, as the SDK's ASCII JSON {} µs",
        result["wasm_us_per_batch"], result["textdecoder_utf8_us"], result["textdecoder_ascii_us"]
    );
    Ok(())
}

/// The clients users would pick instead of ours, each as a viewer downloads it: a tiny page
/// in `npm/bench/peers/` that connects, subscribes and sends through the client's main API
/// (so tree-shaking keeps what a real page keeps), bundled for the browser by the pinned
/// esbuild, minified, gzip -9. The packages are the pinned devDependencies installed by
/// `setup` in this run.
const SDK_SIZE_PEERS: [(&str, &str); 5] = [
    ("centrifuge", "centrifuge"),
    ("socket.io-client", "socket.io-client"),
    ("ably", "ably"),
    (
        "ably (ably/modular, WebSocket + fetch plugins)",
        "ably-modular",
    ),
    ("partysocket", "partysocket"),
];

fn bench_sdk_peer_sizes(ours_gz: u64) -> Result {
    step("SDK size against the clients users would pick instead (browser bundle; gzip -9)");
    let root = root();
    let out_dir = root.join("target/sdk-bench/peers");
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let version = |package: &str| -> String {
        let manifest = root.join("node_modules").join(package).join("package.json");
        fs::read_to_string(&manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|json| json["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    };
    println!("  ovation    {ours_gz:>7} B gz  (wasm + glue + index.js, as above)");
    for (label, entry) in SDK_SIZE_PEERS {
        let bundle = out_dir.join(format!("{entry}.js"));
        run(Command::new(root.join("node_modules/.bin/esbuild"))
            .arg(root.join("npm/bench/peers").join(format!("{entry}.js")))
            .args(["--bundle", "--minify", "--platform=browser", "--format=esm"])
            .arg("--log-level=warning")
            .arg(format!("--outfile={}", bundle.display())))?;
        let package = label.split_whitespace().next().unwrap_or(label);
        let peer_gz = gzip_len(&bundle)?;
        println!(
            "  {label} {}: {peer_gz:>7} B gz; ratio ovation / it {:.2}",
            version(package),
            ours_gz as f64 / peer_gz.max(1) as f64
        );
    }
    Ok(())
}

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

fn test() -> Result {
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
