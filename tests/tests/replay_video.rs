//! Replay in a real browser: a live session recorded over the generated HLS test stream
//! (ffmpeg testsrc + sine, EXT-X-PROGRAM-DATE-TIME, a product cue injected by
//! `ovation-cue`), then the recording played as VOD by hls.js in headless Chromium under the
//! SDK's `replay().attachPlayer`, against the real worker under wrangler dev. The checks
//! live in npm/test/player/replay.mjs: every comment shows within 100 ms of the video
//! moment at which a live viewer saw it, the cued product card at its cue as live, and a
//! seek to the middle shows the open poll with the tallies of that moment and no burst of
//! older comments; `<ovation-overlay replay>` shows it read-only. Screenshots go to
//! target/ovation-tests/artifacts/.

mod player;

use ovation_tests::{create_room, root, shared};
use player::{drive, player_project, test_stream, Cue};

const CUE_ID: &str = "promo-1";
/// The product card's cue: after the pin (3 s into the session, about 5 s into the video).
const CUE_S: &str = "10.0";

#[test]
fn a_recorded_session_replays_in_sync_with_its_video_and_a_seek_shows_that_moment() {
    let server = shared();
    let room = create_room(server, "weur");
    // 40 s of test picture; the product's cue at CUE_S.
    let stream = test_stream(
        "replay-stream",
        40,
        &[Cue {
            at_s: CUE_S,
            id: CUE_ID,
            reference: "product:red-1",
        }],
    );
    let overlay = root().join("player-overlay");
    let project = player_project(
        "replay-video",
        &[
            "npm/test/player/replay.html",
            "npm/test/player/replay-page.js",
            "npm/test/player/replay.mjs",
        ],
    );
    drive(
        &project,
        "replay.mjs",
        &room,
        &["ana", "bob", "cy", "dan"],
        &stream,
        &[
            ("OVATION_CUE_S", CUE_S),
            ("OVATION_CUE_ID", CUE_ID),
            ("OVATION_OVERLAY", overlay.to_str().expect("a UTF-8 path")),
        ],
        "replay video checks failed",
    );
}
