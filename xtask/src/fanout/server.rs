//! The servers the benchmarks measure: how to start each target (`ServerSpec`), the
//! process group it runs in (`ServerGroup`: readiness, CPU ticks, stop) and the /proc walk
//! over a group's processes.

use super::{OURS, OURS_SELF_HOSTED, OURS_WRANGLER_DEV};
use crate::{free_port, http, root, Result};
use ovation_selfhost::{workerd_command, EdgeManifest, Secret, SelfHost};
use std::ffi::OsString;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The host bundles the Worker and starts workerd first: on two busy cores that can take a
/// while.
pub(crate) const SERVER_START_S_MAX: u64 = 180;

/// The shell that runs each server: raise the descriptor limit (thousands of sockets),
/// run the server with the arguments after the script, and stop the whole group when the
/// pipe on its stdin closes, that is when xtask ends, even by Ctrl-C (the group is not
/// the terminal's foreground group, so the terminal's signal does not reach it).
const SERVER_SHELL: &str = "ulimit -n \"$(ulimit -Hn)\" || exit 1; \
    \"$0\" \"$@\" </dev/null & read -r _lifeline; kill -TERM -$$";

/// How to run one target's server and point the load generator at it.
pub(crate) struct ServerSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) dir: PathBuf,
    pub(crate) ready: Ready,
    /// The generator's `--target` and endpoint options.
    pub(crate) generator_args: Vec<String>,
}

impl ServerSpec {
    pub(crate) fn of(target: &str, port: u16, state: &Path) -> Result<ServerSpec> {
        let root = root();
        let json_peer = vec![
            "--target".into(),
            "json".into(),
            "--url-template".into(),
            format!("ws://127.0.0.1:{port}/parties/main/{{room}}?user={{user}}"),
        ];
        // The Durable Object targets run in workerd through bench/host/host.mjs
        // (Miniflare, bundled as `wrangler deploy` bundles), not under `wrangler dev`:
        // the dev proxy holds about six descriptors per WebSocket and dies near 3,300
        // sockets under this machine's open-file limit, and it adds its own CPU per
        // message to every Durable Object target alike.
        let workerd = |dir: &str, ready: Ready, generator_args: Vec<String>| ServerSpec {
            program: PathBuf::from("node"),
            args: vec![
                root.join("bench/host/host.mjs").into(),
                "--config".into(),
                root.join(dir).join("wrangler.toml").into(),
                "--port".into(),
                port.to_string().into(),
                "--persist".into(),
                state.as_os_str().to_owned(),
            ],
            dir: root.join(dir),
            ready,
            generator_args,
        };
        let ours_args = vec![
            "--target".into(),
            "ovation".into(),
            "--base".into(),
            format!("http://127.0.0.1:{port}"),
        ];
        // wrangler.toml carries no key: the development tenants' keys come from a
        // generated file, as under `wrangler dev` (an env file) or an operator's
        // `--keys-file` (the keys' JSON).
        let dev_keys_file = |name: &str, text: String| -> Result<PathBuf> {
            fs::create_dir_all(state).map_err(|e| format!("creating {}: {e}", state.display()))?;
            let file = state.join(name);
            fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
            Ok(file)
        };
        Ok(match target {
            OURS => {
                let env_file = dev_keys_file("dev.vars", ovation_auth::dev::dev_vars(&[]))?;
                let mut spec = workerd("edge-worker", Ready::HttpOk("/v1/openapi.json"), ours_args);
                spec.args.extend(["--env-file".into(), env_file.into()]);
                spec
            }
            OURS_SELF_HOSTED => {
                // As an operator runs it: the config `cargo xtask serve` writes (crate
                // ovation-selfhost) into a data directory, and the command it starts.
                let keys =
                    dev_keys_file("tenant-keys.json", ovation_auth::dev::tenant_keys_json())?;
                let manifest = EdgeManifest::read(&root.join("edge-worker/wrangler.toml"))
                    .map_err(|e| e.to_string())?;
                let config = SelfHost {
                    listen: format!("127.0.0.1:{port}"),
                    data_dir: state.to_path_buf(),
                    bundle_dir: root.join("edge-worker/build"),
                    tenant_keys: Secret::File(keys),
                    settlement: None,
                    vars: Vec::new(),
                }
                .write(&manifest)
                .map_err(|e| e.to_string())?;
                let command = workerd_command(&crate::serve::workerd_default(), &config);
                ServerSpec {
                    program: PathBuf::from(command.get_program()),
                    args: command.get_args().map(OsString::from).collect(),
                    dir: command
                        .get_current_dir()
                        .map_or_else(|| state.to_path_buf(), Path::to_path_buf),
                    ready: Ready::HttpOk("/v1/openapi.json"),
                    generator_args: ours_args,
                }
            }
            OURS_WRANGLER_DEV => {
                let env_file = dev_keys_file("dev.vars", ovation_auth::dev::dev_vars(&[]))?;
                // wrangler dev serves a copy of the Worker as built now: it reloads, and
                // drops every socket, when the file it serves changes, and on a shared
                // machine someone may rebuild during a run. (The other runtimes of ours
                // copy the bundle when they start.)
                let worker = state.join("worker");
                copy_files(&root.join("edge-worker/build"), &worker.join("build"))?;
                copy_files_named(&root.join("edge-worker"), &worker, &["wrangler.toml"])?;
                ServerSpec {
                    program: root.join("node_modules/.bin/wrangler"),
                    args: vec![
                        "dev".into(),
                        "--config".into(),
                        worker.join("wrangler.toml").into(),
                        "--ip".into(),
                        "127.0.0.1".into(),
                        "--port".into(),
                        port.to_string().into(),
                        "--inspector-port".into(),
                        free_port().to_string().into(),
                        "--persist-to".into(),
                        state.join("wrangler").into(),
                        "--env-file".into(),
                        env_file.into(),
                        "--show-interactive-dev-session=false".into(),
                    ],
                    dir: worker,
                    ready: Ready::HttpOk("/v1/openapi.json"),
                    generator_args: ours_args,
                }
            }
            "naive-do" | "partyserver" => workerd(
                &format!("bench/peers/{target}"),
                Ready::HttpAnswer("/"),
                json_peer,
            ),
            "socketio" => ServerSpec {
                program: PathBuf::from("node"),
                args: vec![
                    root.join("bench/peers/socketio/server.mjs").into(),
                    port.to_string().into(),
                ],
                dir: root.clone(),
                ready: Ready::TcpConnect,
                generator_args: vec![
                    "--target".into(),
                    "socketio".into(),
                    "--url-template".into(),
                    format!(
                        "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket\
                         &room={{room}}&user={{user}}"
                    ),
                ],
            },
            "native" => ServerSpec {
                program: root.join("target/release/ovation-native-peer"),
                args: vec!["--port".into(), port.to_string().into()],
                dir: root.clone(),
                ready: Ready::TcpConnect,
                generator_args: json_peer,
            },
            other => return Err(format!("unknown target `{other}`")),
        })
    }
}

/// Copies the files (not the directories) at the top of `from` into `to`.
fn copy_files(from: &Path, to: &Path) -> Result {
    let names: Vec<String> = fs::read_dir(from)
        .map_err(|e| format!("reading {}: {e}", from.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    copy_files_named(from, to, &names)
}

fn copy_files_named(from: &Path, to: &Path, names: &[&str]) -> Result {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    for name in names {
        fs::copy(from.join(name), to.join(name))
            .map_err(|e| format!("copying {}: {e}", from.join(name).display()))?;
    }
    Ok(())
}

/// How to tell that a server is up.
pub(crate) enum Ready {
    /// An HTTP GET of the path answers 200 (the worker itself is serving).
    HttpOk(&'static str),
    /// An HTTP GET of the path answers anything below 500 (a peer's 404 will do).
    HttpAnswer(&'static str),
    /// The port accepts a TCP connection (servers that listen once they are ready).
    TcpConnect,
}

/// A server in its own process group (see `SERVER_SHELL`), stopped on drop.
pub(crate) struct ServerGroup {
    child: Child,
    /// Closing it (dropping it, or xtask ending) makes the shell stop the group.
    _lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl ServerGroup {
    pub(crate) fn start(
        program: &Path,
        args: &[OsString],
        dir: &Path,
        log: &Path,
    ) -> Result<ServerGroup> {
        let log_file =
            fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let log_copy = log_file.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("sh")
            .args(["-c", SERVER_SHELL])
            .arg(program)
            .args(args)
            .current_dir(dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::piped())
            .stdout(log_copy)
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let lifeline = child.stdin.take();
        Ok(ServerGroup {
            child,
            _lifeline: lifeline,
            log: log.to_path_buf(),
        })
    }

    pub(crate) fn group_id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn wait_ready(&mut self, port: u16, ready: &Ready, limit: Duration) -> Result {
        let started = Instant::now();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server exited with {status} before it was ready; log:\n{}",
                    self.log_tail()
                ));
            }
            let up = match ready {
                Ready::TcpConnect => {
                    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
                }
                Ready::HttpOk(path) => http_status(address, path) == Some(200),
                Ready::HttpAnswer(path) => http_status(address, path).is_some_and(|s| s < 500),
            };
            if up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(format!(
            "the server did not answer on port {port} within {limit:?}; log:\n{}",
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// User and system CPU ticks of every process in the group, including the children
    /// they have reaped (so a process that ends during the run still counts).
    pub(super) fn cpu_ticks(&self) -> u64 {
        group_processes(self.group_id())
            .iter()
            // Fields 14 to 17 (utime, stime, cutime, cstime).
            .filter(|process| process.stat.len() >= 15)
            .map(|process| {
                process.stat[11..15]
                    .iter()
                    .filter_map(|f| f.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    }

    pub(crate) fn stop(&mut self) {
        let group = format!("-{}", self.group_id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let any_left = Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !any_left {
                break;
            }
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ServerGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status code of `GET path`, if the server answers within a few seconds.
fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let timeouts = http::Timeouts {
        connect: Some(Duration::from_secs(1)),
        read: Duration::from_secs(5),
    };
    let response = http::get(&address.to_string(), path, timeouts).ok()?;
    Some(response.status)
}

/// One process of a process group, from /proc.
pub(crate) struct GroupProcess {
    /// Its /proc directory.
    pub dir: PathBuf,
    /// The fields of `stat` after the command name, from field 3 (state) on.
    pub stat: Vec<String>,
}

/// Every process whose process group is `group` (the servers the benchmarks start lead
/// their own group, so their children are found however they were spawned).
pub(crate) fn group_processes(group: u32) -> Vec<GroupProcess> {
    let group = group.to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut processes = Vec::new();
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name (field 2) may hold spaces and parentheses: the fields after
        // its closing parenthesis start at field 3 (state); field 5 is pgrp.
        let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let stat: Vec<String> = after_name.split_whitespace().map(str::to_owned).collect();
        if stat.get(2) == Some(&group) {
            processes.push(GroupProcess {
                dir: entry.path(),
                stat,
            });
        }
    }
    processes
}
