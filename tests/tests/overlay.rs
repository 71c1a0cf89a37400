//! The `<ovation-overlay>` web component, the host console and the webview bridge
//! (player-overlay/) in headless Chromium, built on the packed npm package, against the
//! real worker under wrangler dev. The checks live in player-overlay/test/drive.mjs;
//! screenshots are kept under target/ovation-tests/artifacts/.

use ovation_tests::{create_room, root, sdk_project, shared, token};
use std::process::Command;

/// Runs one scenario of the driver with the given tokens for the room.
fn drive(scenario: &str, room: &str, tokens: serde_json::Value) {
    let root = root();
    let project = sdk_project(&format!("overlay-{scenario}"));
    // Next to the installed package, so `import "ovation"` resolves as in an app.
    std::fs::copy(
        root.join("player-overlay/test/drive.mjs"),
        project.join("drive.mjs"),
    )
    .unwrap();
    let artifacts = root.join("target/ovation-tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let status = Command::new("node")
        .arg("drive.mjs")
        .current_dir(&project)
        .env("OVATION_SCENARIO", scenario)
        .env("OVATION_URL", &shared().base)
        .env("OVATION_ROOM", room)
        .env("OVATION_TOKENS", tokens.to_string())
        .env("OVATION_REPO", &root)
        .env("OVATION_SDK", project.join("node_modules/ovation"))
        .env("OVATION_OVERLAY", root.join("player-overlay"))
        .env("OVATION_ARTIFACTS", &artifacts)
        .status()
        .expect("node runs the driver");
    assert!(
        status.success(),
        "overlay checks ({scenario}) failed (output above)"
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
