//! The `<ovation-overlay>` web component, the host console and the webview bridge
//! (player-overlay/) in headless Chromium, built on the packed npm package, against the
//! real worker under wrangler dev. The checks live in player-overlay/test/drive.mjs;
//! screenshots are kept under target/ovation-tests/artifacts/.

use ovation_tests::{
    copy_into, create_room, root, run_driver, scratch_dir, sdk_project, shared, token, Server,
    Settlement,
};

/// Runs one scenario of the driver against the worker on `server` with the given tokens
/// for the room.
fn drive(server: &Server, scenario: &str, room: &str, tokens: serde_json::Value) {
    let project = sdk_project(&format!("overlay-{scenario}"));
    copy_into(
        &project,
        &[
            "player-overlay/test/drive.mjs",
            "player-overlay/test/drive-page.mjs",
            "player-overlay/test/drive-viewers.mjs",
            "player-overlay/test/drive-a11y.mjs",
        ],
    );
    let overlay = root().join("player-overlay");
    run_driver(
        &project,
        "drive.mjs",
        &[
            ("OVATION_SCENARIO", scenario),
            ("OVATION_URL", server.base.as_str()),
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
    // Gifts on: the picker lists the room's catalog.
    let settlement = Settlement::start();
    let server = settlement.server(&scratch_dir("overlay-viewers"));
    let room = create_room(&server, "weur");
    let tokens = serde_json::json!({
        // create_room makes "host-1" the room's host.
        "host": token("host", "host-1", &room),
        "ana": token("viewer", "ana", &room),
        "bob": token("viewer", "bob", &room),
        "cy": token("viewer", "cy", &room),
    });
    drive(&server, "viewers", &room, tokens);
}

#[test]
fn webview_bridge_forwards_events_to_native_handlers_and_runs_native_dispatches() {
    let room = create_room(shared(), "weur");
    let tokens = serde_json::json!({
        "dan": token("viewer", "dan", &room),
        "cy": token("viewer", "cy", &room),
    });
    drive(shared(), "bridge", &room, tokens);
}

#[test]
fn overlay_passes_axe_has_44px_touch_targets_names_with_visible_text_and_wraps_a_long_title() {
    // Gifts on: the gift picker is checked too.
    let settlement = Settlement::start();
    let server = settlement.server(&scratch_dir("overlay-a11y"));
    let room = create_room(&server, "weur");
    let tokens = serde_json::json!({
        "admin": token("admin", "boss", &room),
        // create_room makes "host-1" the room's host.
        "host": token("host", "host-1", &room),
        "ana": token("viewer", "ana", &room),
        "cy": token("viewer", "cy", &room),
    });
    drive(&server, "a11y", &room, tokens);
}

/// One HTTP/1.1 GET on loopback: the status line and headers, and the body.
fn http_get(base: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), body.to_owned())
}

#[test]
fn demo_server_root_leads_to_the_demo_page_with_the_room_stream_and_a_viewer_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let room = ovation_tests::room_id("weur");
    let viewer = token("viewer", "demo-viewer", &room);
    let scratch = ovation_tests::scratch_dir("demo-server");
    std::fs::create_dir_all(&scratch).unwrap();
    /// Stops the demo server however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _demo = Stop(
        std::process::Command::new("node")
            .arg(root().join("tools/demo-server.mjs"))
            .env("OVATION_URL", &shared().base)
            .env("OVATION_ADMIN_TOKEN", token("admin", "boss", "*"))
            .env("OVATION_VIEWER_TOKEN", &viewer)
            .env("OVATION_ROOM", &room)
            .env("OVATION_PORT", port.to_string())
            .env("OVATION_REPO", root())
            .env("OVATION_SDK", &scratch)
            .env("OVATION_STREAM", &scratch)
            .env("OVATION_CUE_ID", "demo-product")
            .spawn()
            .expect("node runs the demo server"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (head, _) = http_get(&base, "/");
    assert!(head.starts_with("HTTP/1.1 302"), "`/` answered {head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location in {head}"));
    let query = location
        .strip_prefix("/demo.html?")
        .unwrap_or_else(|| panic!("`/` leads to {location}, not the demo page"));
    let pairs: std::collections::BTreeMap<String, String> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":").replace("%2F", "/")))
        .collect();
    assert_eq!(pairs["url"], shared().base, "{location}");
    assert_eq!(pairs["room"], room, "{location}");
    assert_eq!(pairs["stream"], "/stream/index.m3u8", "{location}");
    assert_eq!(pairs["token"], viewer, "{location}");
    let (head, page) = http_get(&base, location);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{location} answered {head}"
    );
    assert!(
        page.contains("<ovation-overlay"),
        "{location} is not the demo page"
    );
}
