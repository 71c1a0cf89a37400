//! Video sync in a real browser: an HLS test stream generated at test time by ffmpeg
//! (testsrc + sine, `-hls_flags program_date_time`) with a cue injected by `ovation-cue`,
//! played by hls.js in headless Chromium under the SDK's `attachPlayer`, against the real
//! worker under wrangler dev. The checks live in npm/test/player/drive.mjs (a VOD stream)
//! and npm/test/player/live.mjs (the same kind of stream served as a live sliding window);
//! screenshots are kept under target/ovation-tests/artifacts/.

use ovation_tests::{
    copy_into, create_room, root, run_driver, scratch_dir, sdk_project, shared, token,
};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// The browser checks here measure timing to tens of milliseconds: one at a time.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

const CUE_ID: &str = "promo-1";
const CUE_S: &str = "3.0";
/// A cue in the first second of the stream.
const EARLY_CUE_S: &str = "0.3";

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

/// 8 s of 320×240 test picture and a 440 Hz tone, 2 s TS segments, with
/// EXT-X-PROGRAM-DATE-TIME, then cues injected at `CUE_S` and `EARLY_CUE_S`.
fn test_stream(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    run(
        Command::new("ffmpeg")
            .args(ovation_cue_tool::test_stream_ffmpeg_args(
                8, "320x240", false,
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
    run(
        Command::new(cue_tool)
            .args(["inject", "--playlist"])
            .arg(dir.join("index.m3u8"))
            .args(["--at", CUE_S, "--cue", CUE_ID, "--ref", "product:red-1"])
            .args([
                "--at",
                EARLY_CUE_S,
                "--cue",
                "early-1",
                "--ref",
                "custom:intro",
            ]),
        "ovation-cue inject",
    );
}

#[test]
fn cues_open_interactions_at_their_frame_and_skewed_viewers_see_events_at_one_video_moment() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = shared();
    let room = create_room(server, "weur");
    let stream = scratch_dir("video-stream");
    test_stream(&stream);
    let project = sdk_project("video-sync");
    copy_into(
        &project,
        &[
            "npm/test/player/index.html",
            "npm/test/player/page.js",
            "npm/test/player/drive.mjs",
        ],
    );
    let tokens = serde_json::json!({
        "admin": token("admin", "admin-1", "*"),
        "ana": token("viewer", "ana", &room),
        "bob": token("viewer", "bob", &room),
        "cy": token("viewer", "cy", &room),
    })
    .to_string();
    run_driver(
        &project,
        "drive.mjs",
        &[
            ("OVATION_URL", server.base.as_str()),
            ("OVATION_ROOM", &room),
            ("OVATION_TOKENS", &tokens),
            ("OVATION_STREAM", stream.to_str().expect("a UTF-8 path")),
            ("OVATION_CUE_S", CUE_S),
            ("OVATION_EARLY_CUE_S", EARLY_CUE_S),
            ("OVATION_CUE_ID", CUE_ID),
        ],
        "video sync checks failed",
    );
}

/// The poll's cue in the live stream: in its sixth 2-second segment, after the first
/// three-segment live window.
const LIVE_CUE_ID: &str = "poll-live-1";
const LIVE_CUE_S: &str = "11.0";

/// Latecomers see what is open: a cued poll on a live sliding-window stream is shown to a
/// viewer who plays over the cue when the cue plays (not earlier), to a viewer who seeks
/// past the cue at once, and to a viewer who joins after the cue's segment left the window
/// within a second of playing (see live.mjs).
#[test]
fn an_open_cued_poll_reaches_latecomers_and_seekers_of_a_live_stream() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = shared();
    let room = create_room(server, "weur");
    let stream = scratch_dir("video-live-stream");
    std::fs::create_dir_all(&stream).unwrap();
    run(
        Command::new("ffmpeg")
            .args(ovation_cue_tool::test_stream_ffmpeg_args(
                36, "320x240", false,
            ))
            .arg(stream.join("index.m3u8")),
        "ffmpeg",
    );
    run(
        Command::new(root().join("target/debug/ovation-cue"))
            .args(["inject", "--playlist"])
            .arg(stream.join("index.m3u8"))
            .args([
                "--at",
                LIVE_CUE_S,
                "--cue",
                LIVE_CUE_ID,
                "--ref",
                "poll:live",
            ]),
        "ovation-cue inject",
    );
    let project = sdk_project("video-live");
    copy_into(
        &project,
        &[
            "npm/test/player/index.html",
            "npm/test/player/page.js",
            "npm/test/player/live.mjs",
        ],
    );
    let tokens = serde_json::json!({
        "admin": token("admin", "admin-1", "*"),
        "ana": token("viewer", "ana", &room),
        "bob": token("viewer", "bob", &room),
        "cy": token("viewer", "cy", &room),
    })
    .to_string();
    run_driver(
        &project,
        "live.mjs",
        &[
            ("OVATION_URL", server.base.as_str()),
            ("OVATION_ROOM", &room),
            ("OVATION_TOKENS", &tokens),
            ("OVATION_STREAM", stream.to_str().expect("a UTF-8 path")),
            ("OVATION_CUE_S", LIVE_CUE_S),
            ("OVATION_CUE_ID", LIVE_CUE_ID),
        ],
        "live video sync checks failed",
    );
}
