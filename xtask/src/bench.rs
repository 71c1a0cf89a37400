//! `cargo xtask bench <name>`: the dispatch to each benchmark, and the SDK's own (size
//! gzipped and decode speed in Chromium, against its budgets and peers).

use crate::build::{build_sdk, sdk_stage};
use crate::{cargo, fanout, root, run, setup, soak, step, Result};
use std::fs;
use std::path::Path;
use std::process::Command;

pub(crate) fn bench(which: Option<&str>) -> Result {
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
/// and a margin of about 300 B, so that any growth is a decision. Raised by 400 B on
/// 2026-12-06 for the refusal fixes (58,261 B: numbers checked before the wasm, refusal
/// codes per action, a full room told; docs/benchmarks.md), and by 200 B in session 5 for
/// the leak and input fixes (58,508 B: a closed session lets go of its room, one event's
/// failure does not cost the batch, arguments of the wrong type are refused, the wasm
/// loads under connect's timeout; 241 B came out of the wasm the same day), and by 300 B
/// in session 6 for pull viewers' parts (58,846 B: a part read answered at a newer version
/// is labelled with it, read from `x-ovation-part-version` through two imports, and a
/// wider `FetchReply`; without it a part changing faster than a round trip never arrived),
/// and by 100 B in session 7 for the server's code on a 5xx or 429 (58,925 B: an `error`
/// event for the admission check's and a pull read's server error, and `connect()`
/// rejecting with its code; without it a worker without keys looked like no network),
/// and by 1,000 B in session 13 for three refusals told right (59,777 B: `auto` reads over
/// pull on a network that strips upgrades, an action resent after a reconnect and refused
/// for the rate goes again rather than told refused, a promise settles when its end is
/// told inside its own start; without them such a network could not connect, an app
/// asked a question twice, and a promise hung).
const SDK_GZIP_BYTES_BUDGET: u64 = 60_000;
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
