//! `cargo xtask dev`: the edge worker under `wrangler dev`, the settlement service, the
//! demo page and host console, and the development tokens they print.

use crate::build::{build_sdk, build_worker, sdk_stage};
use crate::setup::setup;
use crate::{cargo, free_port, http, root, run, step, Result};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bearer secret of the settlement service under `cargo xtask dev` (development only).
const DEV_SETTLEMENT_SECRET: &str = ovation_auth::dev::SETTLEMENT_SECRET;

pub(crate) fn dev_token(role: &str, user: &str) -> String {
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

pub(crate) fn dev() -> Result {
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
