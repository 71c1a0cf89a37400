//! The `<ovation-overlay>` web component, the host console and the webview bridge
//! (player-overlay/) in headless Chromium, built on the packed npm package, against the
//! real worker under wrangler dev. The checks live in player-overlay/test/drive.mjs;
//! screenshots are kept under target/ovation-tests/artifacts/.

use ovation_tests::{copy_into, create_room, root, run_driver, sdk_project, shared, token};

/// Runs one scenario of the driver with the given tokens for the room.
fn drive(scenario: &str, room: &str, tokens: serde_json::Value) {
    let project = sdk_project(&format!("overlay-{scenario}"));
    copy_into(&project, &["player-overlay/test/drive.mjs"]);
    let overlay = root().join("player-overlay");
    run_driver(
        &project,
        "drive.mjs",
        &[
            ("OVATION_SCENARIO", scenario),
            ("OVATION_URL", shared().base.as_str()),
            ("OVATION_ROOM", room),
            ("OVATION_TOKENS", &tokens.to_string()),
            ("OVATION_OVERLAY", overlay.to_str().expect("a UTF-8 path")),
        ],
        &format!("overlay checks ({scenario}) failed"),
    );
}

#[test]
fn host_console_runs_a_poll_that_two_viewer_overlays_vote_in_and_see_the_result_with_comments_and_likes(
) {
    let room = create_room(shared(), "weur");
    let tokens = serde_json::json!({
        // create_room makes "host-1" the room's host.
        "host": token("host", "host-1", &room),
        "ana": token("viewer", "ana", &room),
        "bob": token("viewer", "bob", &room),
        "cy": token("viewer", "cy", &room),
    });
    drive("viewers", &room, tokens);
}

#[test]
fn webview_bridge_forwards_events_to_native_handlers_and_runs_native_dispatches() {
    let room = create_room(shared(), "weur");
    let tokens = serde_json::json!({
        "dan": token("viewer", "dan", &room),
        "cy": token("viewer", "cy", &room),
    });
    drive("bridge", &room, tokens);
}
