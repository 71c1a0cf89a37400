//! Video sync in a real browser: an HLS test stream generated at test time by ffmpeg
//! (testsrc + sine, `-hls_flags program_date_time`) with a cue injected by `ovation-cue`,
//! played by hls.js in headless Chromium under the SDK's `attachPlayer`, against the real
//! worker under wrangler dev. The checks live in npm/test/player/drive.mjs (a VOD stream)
//! and npm/test/player/live.mjs (the same kind of stream served as a live sliding window);
//! screenshots are kept under target/ovation-tests/artifacts/.

mod player;

use ovation_tests::{create_room, shared};
use player::{drive, player_project, test_stream, Cue};
use std::sync::Mutex;

/// The browser checks here measure timing to tens of milliseconds: one at a time.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

const CUE_ID: &str = "promo-1";
const CUE_S: &str = "3.0";
/// A cue in the first second of the stream.
const EARLY_CUE_S: &str = "0.3";

#[test]
fn cues_open_interactions_at_their_frame_and_skewed_viewers_see_events_at_one_video_moment() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = shared();
    let room = create_room(server, "weur");
    // 8 s of test picture, cues at CUE_S and EARLY_CUE_S.
    let stream = test_stream(
        "video-stream",
        8,
        &[
            Cue {
                at_s: CUE_S,
                id: CUE_ID,
                reference: "product:red-1",
            },
            Cue {
                at_s: EARLY_CUE_S,
                id: "early-1",
                reference: "custom:intro",
            },
        ],
    );
    let project = player_project("video-sync", &["npm/test/player/drive.mjs"]);
    drive(
        &project,
        "drive.mjs",
        &room,
        &["ana", "bob", "cy"],
        &stream,
        &[
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
    // 36 s of test picture, the poll's cue at LIVE_CUE_S.
    let stream = test_stream(
        "video-live-stream",
        36,
        &[Cue {
            at_s: LIVE_CUE_S,
            id: LIVE_CUE_ID,
            reference: "poll:live",
        }],
    );
    let project = player_project("video-live", &["npm/test/player/live.mjs"]);
    drive(
        &project,
        "live.mjs",
        &room,
        &["ana", "bob", "cy"],
        &stream,
        &[
            ("OVATION_CUE_S", LIVE_CUE_S),
            ("OVATION_CUE_ID", LIVE_CUE_ID),
        ],
        "live video sync checks failed",
    );
}
