//! `cargo xtask dev | test | build-worker | setup` — everything a fresh machine needs.
//!
//! This file holds the command line and the helpers every command uses (running
//! commands, the workspace root, free ports); each command is a module: `setup` (every
//! install step, idempotent: a second run skips what is already there), `build`
//! (`build-worker`, `build-sdk`), `dev`, `ci` (`test`), `serve`, `bench` (with `fanout`
//! and `soak`), and `http` the small HTTP client they share.

use std::env;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod build;
/// The benchmark charts' font loader, ovation-load's own file (see its doc comment).
#[path = "../../load/src/chart_font.rs"]
mod chart_font;
mod ci;
mod dev;
mod fanout;
mod http;
mod serve;
mod setup;
mod soak;

use build::{build_sdk, build_worker};
use dev::dev_token;
use setup::{npm_install, setup};

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

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => dev::dev(),
        Some("test") => ci::test(),
        Some("serve") => serve::serve(&args[1..]),
        Some("build-worker") => build_worker(args.iter().any(|a| a == "--if-stale")),
        Some("build-sdk") => build_sdk(),
        Some("setup") => setup(),
        Some("bench") => bench::bench(args.get(1).map(String::as_str)),
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
