//! `ovation`: poke a running Ovation deployment.

use clap::{Parser, Subcommand};
use ovation_auth::{dev, mint, SigningKey, TokenClaims};
use ovation_cli::{describe, Api, Socket, SocketEnd};
use ovation_proto::limits::TOKEN_LIFETIME_MS_MAX;
use ovation_proto::{ClientFrame, CloseCode, Event, PartVersion, Resume};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "ovation",
    version,
    about = "Command-line client for Ovation live rooms"
)]
struct Cli {
    /// Base URL of the edge worker.
    #[arg(
        long,
        env = "OVATION_URL",
        default_value = "http://127.0.0.1:8787",
        global = true
    )]
    url: String,
    /// Token to use. Without one, a dev-tenant token is minted with the dev secret
    /// (works against `cargo xtask dev` only).
    #[arg(long, env = "OVATION_TOKEN", global = true)]
    token: Option<String>,
    /// User id for minted dev tokens.
    #[arg(long = "as", default_value = "cli-user", global = true)]
    user: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mint a token (HS256) for a tenant.
    Token {
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long, default_value = "*")]
        room: String,
        #[arg(long, default_value = dev::TENANT)]
        tenant: String,
        /// HS256 secret of the tenant (default: the dev secret).
        #[arg(long, env = "OVATION_SECRET", default_value = dev::HS256_SECRET)]
        secret: String,
        /// Lifetime in seconds (at most 24 h).
        #[arg(long, default_value_t = 3600)]
        ttl_s: u64,
        /// Display name (default: the user id).
        #[arg(long)]
        name: Option<String>,
    },
    /// Create, end or list rooms (admin).
    #[command(subcommand)]
    Room(RoomCommand),
    /// Print a room's events live; reconnects and resumes on GoAway or a dropped socket.
    Watch { room: String },
    /// Post a comment.
    Say { room: String, text: String },
    /// Send likes.
    Like {
        room: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Send a peer message (JSON) to every connection of one user (host/moderator/admin).
    Direct {
        room: String,
        /// The user id to address.
        to: String,
        payload: String,
    },
    /// Send a gift from the room's catalog (charged at the settlement service).
    Gift {
        room: String,
        sku: String,
        #[arg(long, default_value_t = 1)]
        qty: u32,
        /// Idempotency key (default: random); reuse it to retry the same gift.
        #[arg(long)]
        id: Option<String>,
    },
    /// Broadcast a system message (admin API).
    Broadcast { room: String, text: String },
    /// Show the room's state versions.
    State { room: String },
    /// Show the room's counters (admin).
    Stats { room: String },
}

#[derive(Subcommand)]
enum RoomCommand {
    Create {
        room: String,
        #[arg(long)]
        host: String,
        #[arg(long, default_value = "")]
        title: String,
        #[arg(long, default_value_t = 0)]
        audience: u64,
    },
    End {
        room: String,
    },
    List,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn dev_token(user: &str, role: &str) -> String {
    mint(
        &SigningKey::hs256(dev::HS256_SECRET.as_bytes()),
        TokenClaims {
            sub: user.into(),
            name: user.into(),
            room: "*".into(),
            role: role.into(),
            tenant: dev::TENANT.into(),
        },
        now_ms(),
        60 * 60 * 1000,
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovation: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_reply(reply: ovation_cli::Reply) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&reply.body).unwrap_or_default();
    if reply.status >= 400 {
        return Err(format!("HTTP {}: {text}", reply.status));
    }
    println!("{text}");
    Ok(())
}

/// Every live room of the tenant, every page of the directory, printed as one `{rooms}`.
fn list_rooms(api: &Api) -> Result<(), String> {
    match api.all_rooms("live", ovation_proto::limits::DIRECTORY_PAGE_ROOMS_MAX) {
        Ok(rooms) => {
            let text = serde_json::to_string_pretty(&json!({ "rooms": rooms })).unwrap_or_default();
            println!("{text}");
            Ok(())
        }
        Err(reply) => print_reply(*reply),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let token_for = |role: &str| {
        cli.token
            .clone()
            .unwrap_or_else(|| dev_token(&cli.user, role))
    };
    let api = |role: &str| Api::new(&cli.url, &token_for(role));
    match &cli.command {
        Command::Token {
            role,
            room,
            tenant,
            secret,
            ttl_s,
            name,
        } => {
            let ttl_ms = token_lifetime_ms(*ttl_s)?;
            if ovation_proto::Role::parse(role).is_none() {
                return Err(format!(
                    "unknown role `{role}` (viewer, moderator, host, admin)"
                ));
            }
            let claims = TokenClaims {
                sub: cli.user.clone(),
                name: name.clone().unwrap_or_else(|| cli.user.clone()),
                room: room.clone(),
                role: role.clone(),
                tenant: tenant.clone(),
            };
            println!(
                "{}",
                mint(
                    &SigningKey::hs256(secret.as_bytes()),
                    claims,
                    now_ms(),
                    ttl_ms
                )
            );
            Ok(())
        }
        Command::Room(RoomCommand::Create {
            room,
            host,
            title,
            audience,
        }) => print_reply(api("admin").post(
            "/v1/rooms",
            &json!({ "room": room, "host": host, "title": title, "expected_audience": audience }),
        )?),
        Command::Room(RoomCommand::End { room }) => {
            print_reply(api("admin").post(&format!("/v1/rooms/{room}/end"), &json!({}))?)
        }
        Command::Room(RoomCommand::List) => list_rooms(&api("admin")),
        Command::Broadcast { room, text } => print_reply(api("admin").post(
            &format!("/v1/rooms/{room}/messages"),
            &json!({ "text": text }),
        )?),
        Command::State { room } => {
            print_reply(api("viewer").get(&format!("/v1/rooms/{room}/state"))?)
        }
        Command::Stats { room } => {
            print_reply(api("admin").get(&format!("/v1/rooms/{room}/stats"))?)
        }
        Command::Watch { room } => watch(&cli.url, room, &token_for("viewer")),
        Command::Say { room, text } => send_one(
            &cli.url,
            room,
            &token_for("viewer"),
            ClientFrame::Comment {
                client_id: session_client_id(),
                text: text.clone(),
            },
        ),
        Command::Like { room, count } => send_one(
            &cli.url,
            room,
            &token_for("viewer"),
            ClientFrame::Like {
                client_id: session_client_id(),
                count: *count,
            },
        ),
        Command::Gift { room, sku, qty, id } => {
            let gift_id = id.clone().unwrap_or_else(|| format!("cli-{:x}", now_ms()));
            send_one(
                &cli.url,
                room,
                &token_for("viewer"),
                ClientFrame::Gift {
                    client_id: session_client_id(),
                    gift_id,
                    sku: sku.clone(),
                    qty: *qty,
                },
            )
        }
        Command::Direct { room, to, payload } => {
            serde_json::from_str::<Value>(payload)
                .map_err(|e| format!("payload must be JSON: {e}"))?;
            send_one(
                &cli.url,
                room,
                &token_for("host"),
                ClientFrame::Direct {
                    client_id: session_client_id(),
                    to_user: to.clone(),
                    payload: payload.clone(),
                },
            )
        }
    }
}

fn end_message(end: SocketEnd) -> String {
    match end {
        SocketEnd::Closed(code, reason) => format!("socket closed: {code} {reason}"),
        SocketEnd::Refused(status, body) => format!("refused: HTTP {status} {body}"),
        SocketEnd::Io(e) => e,
    }
}

/// Connects, sends one frame, prints the server's answer to it.
fn send_one(url: &str, room: &str, token: &str, frame: ClientFrame) -> Result<(), String> {
    let mut socket = Socket::connect(url, room, token, None).map_err(end_message)?;
    let client_id = frame.client_id();
    socket.send(&frame)?;
    let answer = socket
        .wait_for(Duration::from_secs(10), |e| match e {
            Event::Ack { client_id: c, .. } => Some(*c) == client_id,
            Event::Error { client_id: c, .. } => *c == client_id,
            _ => false,
        })
        .map_err(end_message)?;
    socket.close();
    match answer {
        Event::Error { .. } => Err(describe(&answer)),
        other => {
            println!("{}", describe(&other));
            Ok(())
        }
    }
}

/// Prints events; on a reconnectable close, reconnects with backoff and resumes.
fn watch(url: &str, room: &str, token: &str) -> Result<(), String> {
    let mut epoch = None;
    let mut cursor = 0;
    let mut parts: BTreeMap<String, u64> = BTreeMap::new();
    let mut backoff_ms = 250;
    loop {
        let resume = epoch.map(|epoch| Resume {
            epoch,
            action_cursor: cursor,
            part_versions: parts
                .iter()
                .map(|(name, version)| PartVersion {
                    name: name.clone(),
                    version: *version,
                })
                .collect(),
        });
        let mut socket = match Socket::connect(url, room, token, resume) {
            Ok(socket) => socket,
            Err(SocketEnd::Refused(status, body)) => {
                return Err(format!("refused: HTTP {status} {body}"))
            }
            Err(e) => {
                eprintln!("* cannot connect ({}); retrying", end_message(e));
                std::thread::sleep(Duration::from_millis(backoff_ms));
                backoff_ms = (backoff_ms * 2).min(10_000);
                continue;
            }
        };
        let mut last_heartbeat = std::time::Instant::now();
        let end = loop {
            if last_heartbeat.elapsed() > Duration::from_secs(20) {
                let _ = socket.send_text("ping");
                last_heartbeat = std::time::Instant::now();
            }
            match socket.next_event(Duration::from_secs(5)) {
                Ok(Some(event)) => {
                    match &event {
                        Event::Welcome(w) => {
                            if epoch != Some(w.epoch) {
                                parts.clear();
                                cursor = w.action_cursor;
                            }
                            epoch = Some(w.epoch);
                            backoff_ms = 250;
                        }
                        Event::Part { name, version, .. } => {
                            parts.insert(name.clone(), *version);
                        }
                        Event::Action(a) => cursor = cursor.max(a.seq),
                        _ => {}
                    }
                    println!("{}", describe(&event));
                    if matches!(event, Event::GoAway { .. }) {
                        break SocketEnd::Closed(CloseCode::GoingAway.code(), String::new());
                    }
                }
                Ok(None) => {}
                Err(end) => break end,
            }
        };
        match end {
            SocketEnd::Closed(code, reason) => {
                let reconnect =
                    CloseCode::from_code(code).map_or(code < 4400, |c| c.should_reconnect());
                if !reconnect {
                    return Err(format!("closed by server: {code} {reason}"));
                }
                eprintln!("* reconnecting after close {code} {reason}");
            }
            other => eprintln!("* connection lost ({}); reconnecting", end_message(other)),
        }
        std::thread::sleep(Duration::from_millis(backoff_ms));
        backoff_ms = (backoff_ms * 2).min(10_000);
    }
}

/// A client id for this invocation. The room treats a repeated (user, client id) as a
/// retry and does not apply it again, so each run of the CLI needs a fresh one.
fn session_client_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64 ^ u64::from(std::process::id()) << 20) & ((1 << 52) - 1)
}

/// `--ttl-s` in milliseconds: 1 s to the service's 24 h (a product past `u64` wrapped to a
/// short lifetime that passed the check, and 0 printed a token expired at once).
fn token_lifetime_ms(ttl_s: u64) -> Result<u64, String> {
    ttl_s
        .checked_mul(1_000)
        .filter(|ms| (1_000..=TOKEN_LIFETIME_MS_MAX).contains(ms))
        .ok_or_else(|| format!("--ttl-s is 1 to {} (24 h)", TOKEN_LIFETIME_MS_MAX / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lifetime_is_refused_one_past_its_limits_and_at_the_edges_of_u64() {
        let max_s = TOKEN_LIFETIME_MS_MAX / 1_000;
        assert_eq!(token_lifetime_ms(1), Ok(1_000));
        assert_eq!(token_lifetime_ms(max_s), Ok(TOKEN_LIFETIME_MS_MAX));
        for refused in [
            0,
            max_s + 1,
            u64::MAX / 1_000 + 1,
            18_446_744_073_709_552,
            u64::MAX,
        ] {
            assert!(token_lifetime_ms(refused).is_err(), "{refused}");
        }
    }
}
