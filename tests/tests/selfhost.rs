//! Self-hosting: the same Worker bundle on the open-source workerd runtime alone (no
//! wrangler, no Miniflare), configured by `ovation-selfhost` as `cargo xtask serve` does,
//! with real WebSockets. The core edge tests also run on it: `OVATION_RUNTIME=workerd
//! cargo test -p ovation-tests --test edge` (a stage of `cargo xtask test`).

use ovation_cli::{Api, Socket};
use ovation_proto::{ActionBody, ClientFrame, Event, Resume};
use ovation_selfhost::{EdgeManifest, Secret, SelfHost, TENANT_KEYS_ENV};
use ovation_tests::{create_room, token, Runtime, Server};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn comment_text(event: &Event) -> Option<&str> {
    match event {
        Event::Action(action) => match &action.body {
            ActionBody::Comment { text } => Some(text),
            _ => None,
        },
        _ => None,
    }
}

fn welcome(socket: &mut Socket) -> ovation_proto::Welcome {
    match socket.wait_for(WAIT, |e| matches!(e, Event::Welcome(_))) {
        Ok(Event::Welcome(w)) => w,
        other => panic!("no welcome: {other:?}"),
    }
}

#[test]
fn a_room_survives_kill_9_of_workerd_and_a_restart_on_the_same_data_directory() {
    let data = ovation_tests::scratch_dir("selfhost");
    let mut server = Server::start_on(Runtime::Workerd, &data);
    let room = create_room(&server, "weur");
    let admin = server.admin();
    let put = admin
        .put(
            &format!("/v1/rooms/{room}/parts/banner"),
            &json!({"q": "tea?"}),
        )
        .unwrap();
    assert_eq!(put.status, 200, "{:?}", put.body);

    // Two viewers over real WebSockets: one comments and likes, the other sees it.
    let mut watcher = Socket::connect(
        &server.base,
        &room,
        &token("viewer", "watcher", &room),
        None,
    )
    .unwrap();
    welcome(&mut watcher);
    let mut keeper =
        Socket::connect(&server.base, &room, &token("viewer", "keeper", &room), None).unwrap();
    let epoch = welcome(&mut keeper).epoch;
    keeper
        .send(&ClientFrame::Comment {
            client_id: 1,
            text: "survives kill -9".into(),
        })
        .unwrap();
    keeper
        .send(&ClientFrame::Like {
            client_id: 2,
            count: 4,
        })
        .unwrap();
    keeper
        .wait_for(WAIT, |e| matches!(e, Event::Ack { client_id: 2, .. }))
        .expect("the like is acknowledged");
    let seen = watcher
        .wait_for(WAIT, |e| comment_text(e).is_some())
        .expect("the comment reaches the other viewer");
    assert_eq!(comment_text(&seen), Some("survives kill -9"));
    let before = admin.get(&format!("/v1/rooms/{room}/state")).unwrap().body;
    assert_eq!(before["likes"], 4, "{before}");

    // Every Durable Object class keeps its objects on disk under the data directory.
    let room_objects = data.join("storage/ovation-edge-RoomObject");
    let stored = std::fs::read_dir(&room_objects)
        .unwrap_or_else(|e| panic!("{}: {e}", room_objects.display()))
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".sqlite"));
    assert!(
        stored,
        "no room object stored in {}",
        room_objects.display()
    );

    // No close, no flush: the whole process group dies at once.
    server.kill_hard();
    drop((watcher, keeper));

    let server = Server::start_on(Runtime::Workerd, &data);
    let admin = server.admin();
    let after = admin.get(&format!("/v1/rooms/{room}/state")).unwrap().body;
    for key in [
        "epoch",
        "version",
        "parts",
        "likes",
        "action_cursor",
        "status",
    ] {
        assert_eq!(before[key], after[key], "{key} changed across kill -9");
    }
    // The action ring survived: a socket resuming from before the comment gets it again,
    // with the room's parts, and the pull transport lists it.
    let mut back = Socket::connect(
        &server.base,
        &room,
        &token("viewer", "keeper", &room),
        Some(Resume {
            epoch,
            action_cursor: 0,
            part_versions: Vec::new(),
        }),
    )
    .unwrap();
    let events = back.snapshot(Duration::from_secs(10), 0).unwrap();
    assert!(
        matches!(&events[0], Event::Welcome(w) if w.resumed),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .filter_map(comment_text)
            .any(|t| t == "survives kill -9"),
        "{events:?}"
    );
    assert!(events.iter().any(
        |e| matches!(e, Event::Part { name, value, .. } if name == "banner" && value.contains("tea"))
    ));
    let viewer = Api::new(&server.base, &token("viewer", "puller", &room));
    let pulled = viewer
        .get(&format!("/v1/rooms/{room}/events?since=0"))
        .unwrap();
    assert_eq!(pulled.status, 200, "{:?}", pulled.body);
    assert!(
        pulled.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == "survives kill -9"),
        "{}",
        pulled.body
    );
    // The tenant's directory (its own Durable Object) still lists the room as live.
    let rooms = admin.get("/v1/rooms?status=live").unwrap().body;
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == room.as_str()),
        "{rooms}"
    );
}

/// One liker across restarts, as the SDK keeps it: the like frames it sent and heard no
/// answer to are sent again (same client id) on its next socket.
#[derive(Default)]
struct Liker {
    user: String,
    next_id: u64,
    unanswered: std::collections::BTreeSet<u64>,
    /// Like frames (of one like each) acknowledged, and refused.
    acked: u64,
    refused: u64,
}

impl Liker {
    /// Connects, sends again what went unanswered, and likes without pause until the
    /// socket dies (`until_answered`: instead, stops once nothing is unanswered).
    fn run(mut self, base: &str, room: &str, until_answered: bool) -> Liker {
        // The kill may come before this viewer is in (a slow start): nothing sent then.
        let Ok(mut socket) = Socket::connect(base, room, &token("viewer", &self.user, room), None)
        else {
            return self;
        };
        if socket
            .wait_for(WAIT, |e| matches!(e, Event::Welcome(_)))
            .is_err()
        {
            return self;
        }
        let like = |socket: &mut Socket, client_id| {
            socket
                .send(&ClientFrame::Like {
                    client_id,
                    count: 1,
                })
                .is_ok()
        };
        let again: Vec<u64> = self.unanswered.iter().copied().collect();
        if !again
            .into_iter()
            .all(|client_id| like(&mut socket, client_id))
        {
            return self;
        }
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if until_answered {
                if self.unanswered.is_empty() || std::time::Instant::now() > deadline {
                    return self;
                }
            } else {
                let client_id = self.next_id;
                if !like(&mut socket, client_id) {
                    return self;
                }
                self.next_id += 1;
                self.unanswered.insert(client_id);
            }
            // About 16 frames a second: under the like and frame rates.
            let until = std::time::Instant::now() + Duration::from_millis(60);
            loop {
                let left = until.saturating_duration_since(std::time::Instant::now());
                match socket.next_event(left) {
                    Ok(Some(Event::Ack { client_id, .. })) => {
                        if self.unanswered.remove(&client_id) {
                            self.acked += 1;
                        }
                    }
                    Ok(Some(Event::Error {
                        client_id: Some(client_id),
                        ..
                    })) => {
                        if self.unanswered.remove(&client_id) {
                            self.refused += 1;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return self,
                }
            }
        }
    }
}

/// A big room's shards acknowledge likes themselves. Viewers on every shard like without
/// pause while workerd is killed (-9, the whole process group) three times at different
/// moments and restarted on the same data directory; each viewer comes back (which wakes
/// its shard) and sends again, as the SDK does, every like frame it heard no answer to.
/// Once every frame is answered, the room counts exactly the likes acknowledged: none
/// lost (a shard stores what it acknowledged before the ack leaves and sends its batch
/// again until the room answers), none twice (the room applies each batch once; a shard
/// and the room recognise a like frame sent again).
#[test]
fn a_big_rooms_acknowledged_likes_survive_kill_9_of_workerd_mid_stream() {
    let data = ovation_tests::scratch_dir("selfhost-likes");
    let mut server = Server::start_on(Runtime::Workerd, &data);
    let room = ovation_tests::create_big_room(&server, 12_000); // 3 shards
    let mut likers: Vec<Liker> = (0..6)
        .map(|i| Liker {
            user: format!("liker-{i}"),
            next_id: 1,
            ..Liker::default()
        })
        .collect();
    let shards: std::collections::BTreeSet<u16> = likers
        .iter()
        .map(|l| ovation_proto::shard_of(&l.user, 3))
        .collect();
    assert!(
        shards.len() >= 2,
        "the likers are spread over shards: {shards:?}"
    );
    let mut unanswered_at_kills = 0;
    // At least three kills, and more (up to seven) while none came with a like frame in
    // flight: on a loaded machine every answer may be back at a kill's instant, which
    // tests nothing of the resend.
    let runs_ms = [1_300_u64, 1_770, 2_150, 1_530, 1_910, 2_370, 1_150];
    for (kill, run_ms) in runs_ms.into_iter().enumerate() {
        if kill >= 3 && unanswered_at_kills > 0 {
            break;
        }
        let running: Vec<_> = likers
            .into_iter()
            .map(|liker| {
                let (base, room) = (server.base.clone(), room.clone());
                std::thread::spawn(move || liker.run(&base, &room, false))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(run_ms));
        server.kill_hard();
        likers = running
            .into_iter()
            .map(|l| l.join().expect("a liker"))
            .collect();
        unanswered_at_kills += likers.iter().map(|l| l.unanswered.len()).sum::<usize>();
        server = Server::start_on(Runtime::Workerd, &data);
    }
    // Back once more: every frame still unanswered is sent again until it is answered.
    likers = likers
        .into_iter()
        .map(|liker| liker.run(&server.base, &room, true))
        .collect();
    let unanswered: usize = likers.iter().map(|l| l.unanswered.len()).sum();
    let acked: u64 = likers.iter().map(|l| l.acked).sum();
    let refused: u64 = likers.iter().map(|l| l.refused).sum();
    assert_eq!(unanswered, 0, "every like frame is answered in the end");
    let counted = ovation_tests::likes_counted_settled(&server, &room, acked);
    eprintln!(
        "likes: {acked} acknowledged ({unanswered_at_kills} unanswered at the kills, sent \
         again), {refused} refused, {counted} counted"
    );
    assert!(acked > 100, "the likers liked: {acked} acknowledged");
    assert!(unanswered_at_kills > 0, "the kills came mid-stream");
    assert_eq!(counted, acked, "every acknowledged like counted once");
}

#[test]
fn without_tenant_keys_workerd_refuses_every_token_with_its_own_code() {
    let data = ovation_tests::scratch_dir("selfhost-nokeys");
    let server = Server::start_on_without_tenant_keys(Runtime::Workerd, &data);
    let reply = server
        .admin()
        .post(
            "/v1/rooms",
            &json!({ "room": "weur-nokeys", "host": "h", "title": "t" }),
        )
        .unwrap();
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(
        reply.body["code"], "auth_not_configured",
        "{:?}",
        reply.body
    );
}

// The deployment recipes in selfhost/deploy, run as far as this offline machine can: the
// systemd unit's ExecStart and the container's CMD start workerd on a config written as
// docs/self-hosting.md says, with every absolute path moved under a scratch directory.

/// The `[Service]` keys of a unit file, in order.
fn unit_service_keys(text: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (key, value) = line.split_once('=').expect("KEY=value");
            keys.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    keys
}

fn unit_key<'a>(keys: &'a [(String, String)], name: &str) -> &'a str {
    keys.iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("the unit has no {name}="))
}

/// `path` under `root` when it starts with `prefix` (an absolute path of the deployment).
fn moved(path: &str, prefix: &str, root: &Path) -> Option<PathBuf> {
    let rest = Path::new(path).strip_prefix(prefix).ok()?;
    Some(root.join(rest))
}

/// Room objects stored under a storage directory: one `<object id, 64 hex>.sqlite` each
/// (beside the class's own `metadata.sqlite`).
fn stored_room_objects(storage: &Path) -> usize {
    std::fs::read_dir(storage.join("ovation-edge-RoomObject"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".sqlite").is_some_and(|id| {
                        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

/// The config `cargo xtask serve --config-only --data DIR` writes with the tenant keys
/// from workerd's environment, listening on 127.0.0.1:`port` here.
fn write_config(data_dir: &Path, port: u16) -> PathBuf {
    let root = ovation_tests::root();
    let manifest = EdgeManifest::read(&root.join("edge-worker/wrangler.toml")).unwrap();
    SelfHost {
        listen: format!("127.0.0.1:{port}"),
        data_dir: data_dir.to_path_buf(),
        bundle_dir: root.join("edge-worker/build"),
        tenant_keys: Secret::Environment(TENANT_KEYS_ENV.into()),
        settlement: None,
        vars: Vec::new(),
    }
    .write(&manifest)
    .unwrap()
}

const UNIT: &str = "selfhost/deploy/ovation-edge.service";
const CONTAINERFILE: &str = "selfhost/deploy/Containerfile";

#[test]
fn the_systemd_units_execstart_serves_its_config_with_keys_from_its_environment_file() {
    let unit = std::fs::read_to_string(ovation_tests::root().join(UNIT)).unwrap();
    let keys = unit_service_keys(&unit);
    let exec: Vec<&str> = unit_key(&keys, "ExecStart").split_whitespace().collect();
    assert!(exec[0].ends_with("/workerd"), "ExecStart runs {}", exec[0]);
    let config_in_unit = exec
        .iter()
        .find(|a| a.ends_with(".capnp"))
        .expect("ExecStart names a config");
    let data_in_unit = Path::new(config_in_unit)
        .parent()
        .unwrap()
        .to_str()
        .unwrap();
    // The keys come from the environment file (workerd's environment), never the config.
    assert!(!unit_key(&keys, "EnvironmentFile").is_empty());

    let scratch = ovation_tests::scratch_dir("unit");
    let port = ovation_tests::free_port();
    let config = write_config(&scratch, port);
    assert_eq!(
        config,
        moved(config_in_unit, data_in_unit, &scratch)
            .unwrap()
            .canonicalize()
            .unwrap()
    );
    let mut command = Command::new(ovation_tests::workerd_binary());
    command
        .args(exec[1..].iter().map(|arg| {
            moved(arg, data_in_unit, &scratch).map_or_else(|| arg.into(), PathBuf::into_os_string)
        }))
        // systemd starts a system service in / unless told otherwise.
        .current_dir("/")
        .env(TENANT_KEYS_ENV, ovation_auth::dev::tenant_keys_json());
    let server = Server::start_workerd_command(&command, port, &scratch);
    create_room(&server, "weur");

    // Under ProtectSystem=strict the storage must be inside ReadWritePaths.
    let writable = moved(unit_key(&keys, "ReadWritePaths"), data_in_unit, &scratch)
        .expect("ReadWritePaths is inside the data directory");
    assert_eq!(
        stored_room_objects(&writable),
        1,
        "the room is not stored under ReadWritePaths ({})",
        writable.display()
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    }
    // verify checks that ExecStart's program exists: here it is the npm package's workerd.
    let unit = std::fs::read_to_string(ovation_tests::root().join(UNIT)).unwrap();
    let exec = unit_key(&unit_service_keys(&unit), "ExecStart").to_owned();
    let program = exec.split_whitespace().next().unwrap();
    let workerd = ovation_tests::workerd_binary().canonicalize().unwrap();
    let dir = ovation_tests::scratch_dir("unit-verify");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ovation-edge.service");
    std::fs::write(
        &file,
        unit.replace(
            &format!("ExecStart={exec}"),
            &format!(
                "ExecStart={}",
                exec.replacen(program, workerd.to_str().unwrap(), 1)
            ),
        ),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {}\n{complaints}",
        verify.status
    );
}

/// A Containerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if current.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .iter()
        .map(|line| {
            let (name, rest) = line.trim().split_once(' ').expect("INSTRUCTION arguments");
            (name.to_owned(), rest.trim().to_owned())
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        // The workerd binary is large: a link to it stands for the copy.
        std::os::unix::fs::symlink(from.canonicalize().unwrap(), to).unwrap();
    }
}

#[test]
fn the_container_recipes_cmd_serves_its_copies_with_the_storage_on_the_volume() {
    let text = std::fs::read_to_string(ovation_tests::root().join(CONTAINERFILE)).unwrap();
    let steps = instructions(&text);
    let all = |name: &str| -> Vec<&str> {
        steps
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, args)| args.as_str())
            .collect()
    };
    // The documented config listens on the port the image exposes.
    let exposed = all("EXPOSE")[0];
    assert!(
        text.contains(&format!("--listen '*:{exposed}'")),
        "the build steps in {CONTAINERFILE} do not listen on the EXPOSEd port {exposed}"
    );

    // The build context, as the file's header writes it.
    let port = ovation_tests::free_port();
    let context = ovation_tests::scratch_dir("image-context");
    write_config(&context, port);
    std::os::unix::fs::symlink(
        ovation_tests::workerd_binary().canonicalize().unwrap(),
        context.join("workerd"),
    )
    .unwrap();
    // The image's file system: every COPY, the volume.
    let image = ovation_tests::scratch_dir("image-root");
    for copy in all("COPY") {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        let (destination, sources) = parts.split_last().unwrap();
        for source in sources {
            let from = context.join(source);
            assert!(
                from.exists(),
                "COPY {source}: not in the build context the documented commands write"
            );
            copy_tree(&from, &image.join(destination.trim_start_matches('/')));
        }
    }
    let volume = image.join(all("VOLUME")[0].trim_start_matches('/'));
    std::fs::create_dir_all(&volume).unwrap();

    let cmd: Vec<String> = serde_json::from_str(all("CMD")[0]).expect("CMD in exec form");
    // On the image's PATH (Debian's: /usr/local/bin first).
    let program = image.join("usr/local/bin").join(&cmd[0]);
    assert!(program.exists(), "{} is not on the image's PATH", cmd[0]);
    let in_image = |arg: &str| -> String {
        match arg.split_once("=/") {
            Some((name, path)) => format!("{name}={}", image.join(path).display()),
            None if arg.starts_with('/') => image
                .join(arg.trim_start_matches('/'))
                .display()
                .to_string(),
            None => arg.to_owned(),
        }
    };
    let mut command = Command::new(program);
    command
        .args(cmd[1..].iter().map(|arg| in_image(arg)))
        .current_dir("/")
        // docker run -e OVATION_TENANT_KEYS=...
        .env(TENANT_KEYS_ENV, ovation_auth::dev::tenant_keys_json());
    let server = Server::start_workerd_command(&command, port, &image);
    create_room(&server, "weur");
    assert_eq!(stored_room_objects(&volume), 1, "no room on the volume");
    assert_eq!(
        stored_room_objects(&context.join("storage")),
        0,
        "the room went to the build machine's storage path named in the config"
    );
}
