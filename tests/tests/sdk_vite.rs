//! Packaging: a small Vite app (npm/test/vite-app) that depends on the packed `ovation`
//! tarball is built with the pinned Vite, served, and opened in headless Chromium
//! (playwright-core, Debian's Chromium); it connects to the real worker under wrangler dev
//! and must show a comment posted by another client. A React app (npm/test/vite-react-app)
//! does the same through `ovation/react` in StrictMode. Screenshots are kept under
//! target/ovation-tests/artifacts/.

use ovation_tests::{
    copy_into, create_room, root, run_driver, scratch_dir, sdk_project, token, Server,
};
use std::process::Command;

#[test]
fn a_vite_app_with_the_tarball_builds_and_receives_a_comment_in_chromium() {
    let root = root();
    let server = Server::start(&scratch_dir("sdk-vite-server"));
    let room = create_room(&server, "weur");
    let project = sdk_project("sdk-vite");
    copy_into(
        &project,
        &[
            "npm/test/vite-app/index.html",
            "npm/test/vite-app/main.js",
            "npm/test/vite-app/drive.mjs",
        ],
    );
    let status = Command::new("node")
        .arg(root.join("node_modules/vite/bin/vite.js"))
        .args(["build", "--logLevel", "warn"])
        .current_dir(&project)
        .status()
        .expect("node runs vite");
    assert!(status.success(), "vite build failed (output above)");
    let assets: Vec<String> = std::fs::read_dir(project.join("dist/assets"))
        .expect("vite wrote dist/assets")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with(".wasm")),
        "the SDK's wasm is emitted as an asset: {assets:?}"
    );
    let tokens = serde_json::json!({
        "ana": token("viewer", "ana", &room),
        "bob": token("viewer", "bob", &room),
    })
    .to_string();
    run_driver(
        &project,
        "drive.mjs",
        &[
            ("OVATION_URL", server.base.as_str()),
            ("OVATION_ROOM", &room),
            ("OVATION_TOKENS", &tokens),
        ],
        "the Vite app did not receive the comment",
    );
}

/// `ovation/react` as a user ships it: a React app in StrictMode (npm/test/vite-react-app)
/// built by Vite from the tarball with React's development build (where StrictMode mounts,
/// unmounts and mounts again), in Chromium against the worker. It must show the online
/// count, a comment, a poll with the viewer's vote and the revealed tallies, construct
/// exactly one WebSocket, and close it when the provider unmounts.
#[test]
fn a_react_app_in_strict_mode_renders_comments_a_poll_vote_and_online_on_one_socket() {
    let root = root();
    let server = Server::start(&scratch_dir("sdk-vite-react-server"));
    let room = create_room(&server, "weur");
    let project = sdk_project("sdk-vite-react");
    copy_into(
        &project,
        &[
            "npm/test/vite-react-app/index.html",
            "npm/test/vite-react-app/main.jsx",
            "npm/test/vite-react-app/drive.mjs",
        ],
    );
    let status = Command::new("node")
        .arg(root.join("node_modules/vite/bin/vite.js"))
        .args(["build", "--logLevel", "warn"])
        .current_dir(&project)
        .env("NODE_ENV", "development")
        .status()
        .expect("node runs vite");
    assert!(status.success(), "vite build failed (output above)");
    let tokens = serde_json::json!({
        "admin": token("admin", "admin-1", "*"),
        "ana": token("viewer", "ana", &room),
        "bob": token("viewer", "bob", &room),
    })
    .to_string();
    run_driver(
        &project,
        "drive.mjs",
        &[
            ("OVATION_URL", server.base.as_str()),
            ("OVATION_ROOM", &room),
            ("OVATION_TOKENS", &tokens),
        ],
        "the React app did not show what the room said on one socket",
    );
}
