//! Replay in a real browser: a live session recorded over the generated HLS test stream
//! (ffmpeg testsrc + sine, EXT-X-PROGRAM-DATE-TIME, a product cue injected by
//! `ovation-cue`), then the recording played as VOD by hls.js in headless Chromium under the
//! SDK's `replay().attachPlayer`, against the real worker under wrangler dev. The checks
//! live in npm/test/player/replay.mjs: every comment shows within 100 ms of the video
//! moment at which a live viewer saw it, the cued product card at its cue as live, and a
//! seek to the middle shows the open poll with the tallies of that moment and no burst of
//! older comments; `<ovation-overlay replay>` shows it read-only. Screenshots go to
//! target/ovation-tests/artifacts/.

use ovation_tests::{
    copy_into, create_room, root, run_driver, scratch_dir, sdk_project, shared, token,
};
use std::process::Command;

const CUE_ID: &str = "promo-1";
/// The product card's cue: after the pin (3 s into the session, about 5 s into the video).
const CUE_S: &str = "10.0";

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

#[test]
fn a_recorded_session_replays_in_sync_with_its_video_and_a_seek_shows_that_moment() {
    let server = shared();
    let room = create_room(server, "weur");
    // 40 s of 320×240 test picture, 2 s TS segments, dated; the product's cue at CUE_S.
    let stream = scratch_dir("replay-stream");
    std::fs::create_dir_all(&stream).unwrap();
    run(
        Command::new("ffmpeg")
            .args(ovation_cue_tool::test_stream_ffmpeg_args(
                40, "320x240", false,
            ))
            .arg(stream.join("index.m3u8")),
        "ffmpeg",
    );
    let cue_tool = root().join("target/debug/ovation-cue");
    assert!(
        cue_tool.exists(),
        "{} is missing: `cargo xtask test` builds it",
        cue_tool.display()
    );
    run(
        Command::new(cue_tool)
            .args(["inject", "--playlist"])
            .arg(stream.join("index.m3u8"))
            .args(["--at", CUE_S, "--cue", CUE_ID, "--ref", "product:red-1"]),
        "ovation-cue inject",
    );
    let project = sdk_project("replay-video");
    let overlay = root().join("player-overlay");
    copy_into(
        &project,
        &[
            "npm/test/player/index.html",
            "npm/test/player/page.js",
            "npm/test/player/replay.html",
            "npm/test/player/replay-page.js",
            "npm/test/player/replay.mjs",
        ],
    );
    let tokens = serde_json::json!({
        "admin": token("admin", "admin-1", "*"),
        "ana": token("viewer", "ana", &room),
        "bob": token("viewer", "bob", &room),
        "cy": token("viewer", "cy", &room),
        "dan": token("viewer", "dan", &room),
    })
    .to_string();
    run_driver(
        &project,
        "replay.mjs",
        &[
            ("OVATION_URL", server.base.as_str()),
            ("OVATION_ROOM", &room),
            ("OVATION_TOKENS", &tokens),
            ("OVATION_STREAM", stream.to_str().expect("a UTF-8 path")),
            ("OVATION_CUE_S", CUE_S),
            ("OVATION_CUE_ID", CUE_ID),
            ("OVATION_OVERLAY", overlay.to_str().expect("a UTF-8 path")),
        ],
        "replay video checks failed",
    );
}
