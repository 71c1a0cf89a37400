//! What the browser player tests share (`mod player;` in tests/tests/video_sync.rs and
//! tests/tests/replay_video.rs): the HLS test stream made with ffmpeg and `ovation-cue`,
//! the SDK project holding the live player page (npm/test/player/: index.html, page.js,
//! player.js: the script the replay page shares), the drivers' shared harness.mjs (the
//! page server's routes, headless Chromium) and a driver, and the run of that driver
//! against the shared worker.

use ovation_tests::{copy_into, root, run_driver, scratch_dir, sdk_project, shared, token};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `command` to its end; panics with its output when it fails.
fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (run `cargo xtask setup`)"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A cue injected into the test stream: `ovation-cue inject --at <at_s> --cue <id>
/// --ref <reference>`.
pub struct Cue<'a> {
    pub at_s: &'a str,
    pub id: &'a str,
    pub reference: &'a str,
}

/// `seconds` of 320×240 test picture and a 440 Hz tone, 2 s TS segments, with
/// EXT-X-PROGRAM-DATE-TIME (a fresh scratch dir named after `name`, its playlist
/// index.m3u8), then `cues` injected by target/debug/ovation-cue.
pub fn test_stream(name: &str, seconds: u32, cues: &[Cue]) -> PathBuf {
    let dir = scratch_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    run(
        Command::new("ffmpeg")
            .args(ovation_cue_tool::test_stream_ffmpeg_args(
                seconds, "320x240", false,
            ))
            .arg(dir.join("index.m3u8")),
        "ffmpeg",
    );
    let cue_tool = root().join("target/debug/ovation-cue");
    assert!(
        cue_tool.exists(),
        "{} is missing: `cargo xtask test` builds it",
        cue_tool.display()
    );
    let mut inject = Command::new(cue_tool);
    inject
        .args(["inject", "--playlist"])
        .arg(dir.join("index.m3u8"));
    for cue in cues {
        inject.args(["--at", cue.at_s, "--cue", cue.id, "--ref", cue.reference]);
    }
    run(&mut inject, "ovation-cue inject");
    dir
}

/// An SDK project (see `sdk_project`) with the live player page, the drivers' harness and
/// `files` (the driver and whatever else it serves, paths from the repository root)
/// copied in.
pub fn player_project(name: &str, files: &[&str]) -> PathBuf {
    let project = sdk_project(name);
    copy_into(
        &project,
        &[
            "npm/test/player/index.html",
            "npm/test/player/page.js",
            "npm/test/player/player.js",
            "npm/test/player/harness.mjs",
        ],
    );
    copy_into(&project, files);
    project
}

/// Runs `driver` (in `project`) against the shared worker's `room` and the HLS `stream`
/// (OVATION_URL, OVATION_ROOM, OVATION_STREAM), with OVATION_TOKENS (JSON) holding `admin`
/// (an admin of every room) and a viewer token of `room` for each of `viewers` by name,
/// plus `env`. Panics with `what` when the driver fails.
pub fn drive(
    project: &Path,
    driver: &str,
    room: &str,
    viewers: &[&str],
    stream: &Path,
    env: &[(&str, &str)],
    what: &str,
) {
    let mut tokens = serde_json::Map::new();
    tokens.insert("admin".into(), token("admin", "admin-1", "*").into());
    for viewer in viewers {
        tokens.insert((*viewer).into(), token("viewer", viewer, room).into());
    }
    let tokens = serde_json::Value::Object(tokens).to_string();
    let mut all = vec![
        ("OVATION_URL", shared().base.as_str()),
        ("OVATION_ROOM", room),
        ("OVATION_TOKENS", &tokens),
        ("OVATION_STREAM", stream.to_str().expect("a UTF-8 path")),
    ];
    all.extend_from_slice(env);
    run_driver(project, driver, &all, what);
}
