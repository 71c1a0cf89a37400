//! `ovation-load`: real WebSocket viewers against live rooms, many per process (tokio),
//! measuring what users feel. Two scenarios:
//!
//! - **vote burst** (`vote_burst`): N viewers connect, the admin API opens a poll, 70 % of
//!   them vote within one second, and the report says whether every acknowledged vote was
//!   counted and how soon after the close the result reached the viewers. Times compared
//!   across machines are all on the server's clock: the poll's `closes_at_ms` is in the
//!   `poll` part and every batch carries `server_time_ms`, so the result delay needs no
//!   clock-offset estimate.
//! - **fan-out** (`fanout`): viewers spread over chat rooms, a few of them commenting at a
//!   steady rate (plus likes and churn); every viewer measures each comment's latency on
//!   this process's own clock, and the report counts owed, delivered, lost and duplicated
//!   deliveries, bytes and messages. It runs the same load against our server or against
//!   peer servers speaking plain JSON or Socket.IO, so a benchmark compares like with like.
//!   See the `fanout` module.

use futures_util::{SinkExt, StreamExt};
use ovation_auth::{mint, SigningKey, TokenClaims};
use ovation_proto::limits::{HEARTBEAT_INTERVAL_MS, HEARTBEAT_TEXT, SUBPROTOCOL};
use ovation_proto::{ClientFrame, Event, Hello, ServerFrame, PROTOCOL_VERSION};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub mod chart_font;
pub mod fanout;

pub use fanout::{fanout, FanoutConfig, FanoutReport, Progress, Target};

/// Viewers one run may open (one process; the room object allows 10,000 sockets).
pub const VIEWERS_MAX: usize = 100_000;
/// Connections opened at once while ramping up.
pub const CONNECT_CONCURRENCY: usize = 64;
/// How long a viewer waits for its Welcome (from its connect), and for the result after
/// the poll's window (from the poll's opening).
pub const WAIT_MS_MAX: u64 = 60_000;

/// Who may mint tokens for the viewers (a tenant's signing key).
#[derive(Clone)]
pub struct Minter {
    pub key: SigningKey,
    pub tenant: String,
}

impl Minter {
    pub fn token(&self, user: &str, role: &str, room: &str) -> String {
        mint(
            &self.key,
            TokenClaims {
                sub: user.into(),
                name: user.to_uppercase(),
                room: room.into(),
                role: role.into(),
                tenant: self.tenant.clone(),
            },
            now_ms(),
            60 * 60 * 1000,
        )
    }
}

#[derive(Clone)]
pub struct BurstConfig {
    /// `http://127.0.0.1:8787`.
    pub base: String,
    pub room: String,
    pub viewers: usize,
    /// Share of viewers that vote, in percent, each at a random moment of `burst_ms`
    /// after the poll part reaches it.
    pub voting_percent: u32,
    pub burst_ms: u64,
    pub window_ms: u64,
    pub options: u8,
    pub seed: u64,
    pub minter: Minter,
}

/// What a vote burst measured. Tallies are counted from acknowledgements: a vote the
/// room acknowledged must be in the result.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BurstReport {
    pub viewers: usize,
    pub connected: usize,
    pub connect_s: f64,
    pub voters: usize,
    pub votes_acknowledged: usize,
    pub votes_refused: usize,
    /// Share of viewers that voted within `burst_ms` of the poll reaching them (and were
    /// acknowledged).
    pub voted_within_burst_percent: f64,
    pub expected_tallies: Vec<u64>,
    pub result_tallies: Vec<u64>,
    pub tallies_exact: bool,
    /// Viewers that received the result part.
    pub result_received: usize,
    /// Server time of the first batch carrying the result minus the poll's closing time.
    pub result_delay_ms_first: u64,
    /// The same for the last viewer to receive it.
    pub result_delay_ms_last: u64,
    pub ack_latency_ms_p50: u64,
    pub ack_latency_ms_p99: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// What one viewer task reports.
#[derive(Debug, Default)]
struct ViewerOutcome {
    connected: bool,
    voted: Option<u8>,
    acknowledged: bool,
    refused: bool,
    ack_latency_ms: Option<u64>,
    /// Sent within `burst_ms` of the poll part arriving (viewer's clock).
    in_burst: bool,
    /// Server time of the batch carrying the result, and the result's tallies.
    result: Option<(u64, u64, Vec<u64>)>,
}

/// A small deterministic generator: runs are repeatable from the seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The plan of one viewer: whether and when it votes, and for which option.
#[derive(Clone, Copy)]
struct Plan {
    vote: Option<(u8, u64)>,
}

fn ws_url(base: &str, room: &str, token: &str) -> String {
    let base = base
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    format!("{base}/v1/rooms/{room}/ws?token={token}")
}

/// Runs a vote burst; `progress` gets one line per phase (and while connecting).
pub async fn vote_burst(
    config: BurstConfig,
    progress: impl Fn(&str),
) -> Result<BurstReport, String> {
    if config.viewers == 0 || config.viewers > VIEWERS_MAX {
        return Err(format!("viewers is 1..={VIEWERS_MAX}"));
    }
    if !(2..=10).contains(&config.options) || config.voting_percent > 100 {
        return Err("options is 2..=10 and voting_percent 0..=100".into());
    }
    let mut rng = Lcg(config.seed);
    // Exactly `voting_percent` of the viewers vote (rounded up): the first ones of a
    // seeded shuffle.
    let voters = (config.viewers * config.voting_percent as usize).div_ceil(100);
    let mut order: Vec<usize> = (0..config.viewers).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut plans = vec![Plan { vote: None }; config.viewers];
    for &viewer in &order[..voters] {
        let option = rng.below(u64::from(config.options)) as u8;
        // A tick of slack so timer resolution under load cannot push a vote past it.
        let at_ms = rng.below(config.burst_ms.saturating_sub(50).max(1));
        plans[viewer].vote = Some((option, at_ms));
    }

    // Phase 1: connect everyone (bounded concurrency), each waits for its Welcome.
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let (connected_tx, mut connected_rx) = mpsc::unbounded_channel::<bool>();
    // When the poll opened: each viewer waits for the poll and its result from then on,
    // not from its own connect (connecting thousands can take longer than the wait).
    let (poll_opened_tx, poll_opened_rx) = watch::channel::<Option<tokio::time::Instant>>(None);
    let mut tasks = Vec::with_capacity(config.viewers);
    for (index, plan) in plans.iter().copied().enumerate() {
        let user = format!("load-{}-{index}", config.seed);
        let url = ws_url(
            &config.base,
            &config.room,
            &config.minter.token(&user, "viewer", &config.room),
        );
        let permits = permits.clone();
        let connected_tx = connected_tx.clone();
        let burst_ms = config.burst_ms;
        let window_ms = config.window_ms;
        let poll_opened = poll_opened_rx.clone();
        tasks.push(tokio::spawn(async move {
            viewer(
                url,
                plan,
                (burst_ms, window_ms),
                permits,
                connected_tx,
                poll_opened,
            )
            .await
        }));
    }
    drop(connected_tx);
    let mut connected = 0;
    let mut answered = 0;
    while let Some(ok) = connected_rx.recv().await {
        answered += 1;
        connected += usize::from(ok);
        if answered % 500 == 0 || answered == config.viewers {
            progress(&format!(
                "connected {connected}/{} ({:.1} s)",
                config.viewers,
                started.elapsed().as_secs_f64()
            ));
        }
        if answered == config.viewers {
            break;
        }
    }
    let connect_s = started.elapsed().as_secs_f64();

    // Phase 2: open the poll through the admin API; viewers vote once its part arrives.
    let admin = ovation_cli::Api::new(
        &config.base,
        &config.minter.token("load-admin", "admin", "*"),
    );
    let body = serde_json::json!({
        "question": "Load test: which option?",
        "options": (0..config.options).map(|o| format!("option {o}")).collect::<Vec<_>>(),
        "window_ms": config.window_ms,
    });
    let path = format!("/v1/rooms/{}/polls", config.room);
    let reply = tokio::task::spawn_blocking(move || admin.post(&path, &body))
        .await
        .map_err(|e| e.to_string())??;
    if reply.status != 200 {
        return Err(format!("opening the poll: {} {}", reply.status, reply.body));
    }
    let _ = poll_opened_tx.send(Some(tokio::time::Instant::now()));
    progress(&format!(
        "poll {} open for {} ms; {} viewers vote within {} ms",
        reply.body["id"],
        config.window_ms,
        plans.iter().filter(|p| p.vote.is_some()).count(),
        config.burst_ms
    ));

    // Phase 3: wait for every viewer to see the result.
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.map_err(|e| e.to_string())?);
    }
    Ok(report(&config, &outcomes, connect_s, connected))
}

fn report(
    config: &BurstConfig,
    outcomes: &[ViewerOutcome],
    connect_s: f64,
    connected: usize,
) -> BurstReport {
    let mut expected = vec![0u64; usize::from(config.options)];
    let mut latencies: Vec<u64> = Vec::new();
    for outcome in outcomes {
        if let (Some(option), true) = (outcome.voted, outcome.acknowledged) {
            expected[usize::from(option)] += 1;
        }
        latencies.extend(outcome.ack_latency_ms);
    }
    latencies.sort_unstable();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let results: Vec<&(u64, u64, Vec<u64>)> =
        outcomes.iter().filter_map(|o| o.result.as_ref()).collect();
    let delays: Vec<u64> = results
        .iter()
        .map(|(batch_ms, closes_ms, _)| batch_ms.saturating_sub(*closes_ms))
        .collect();
    let result_tallies = results.first().map(|r| r.2.clone()).unwrap_or_default();
    let in_burst = outcomes
        .iter()
        .filter(|o| o.in_burst && o.acknowledged)
        .count();
    BurstReport {
        viewers: config.viewers,
        connected,
        connect_s,
        voters: outcomes.iter().filter(|o| o.voted.is_some()).count(),
        votes_acknowledged: outcomes.iter().filter(|o| o.acknowledged).count(),
        votes_refused: outcomes.iter().filter(|o| o.refused).count(),
        voted_within_burst_percent: 100.0 * in_burst as f64 / config.viewers as f64,
        tallies_exact: !results.is_empty()
            && results.iter().all(|r| r.2 == expected)
            && expected.iter().sum::<u64>() > 0,
        expected_tallies: expected,
        result_tallies,
        result_received: results.len(),
        result_delay_ms_first: delays.iter().copied().min().unwrap_or(0),
        result_delay_ms_last: delays.iter().copied().max().unwrap_or(0),
        ack_latency_ms_p50: percentile(50),
        ack_latency_ms_p99: percentile(99),
    }
}

/// Each socket's read buffer. tungstenite zero-fills the free part of it before every
/// read, so its default (128 KiB) cost two thirds of the generator's CPU time in memset
/// with one small message per read; larger frames still grow it as needed.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// A viewer's WebSocket, opened the way browsers open theirs: Nagle off (with it, a
/// small frame sent while an earlier one is unacknowledged waits for the peer's delayed
/// ACK, 40 ms on Linux, which would be measured as the server's latency).
pub(crate) async fn open_socket(
    url: String,
    subprotocol: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(protocol) = subprotocol {
        let value = protocol
            .parse()
            .map_err(|_| "a bad subprotocol".to_owned())?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES);
    let disable_nagle = true;
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), disable_nagle)
            .await
            .map_err(|e| e.to_string())?;
    Ok(socket)
}

/// When a viewer of our server sends its heartbeat (`HEARTBEAT_TEXT`): every
/// `HEARTBEAT_INTERVAL_MS` from now, as the SDK does.
pub(crate) fn heartbeat_interval() -> tokio::time::Interval {
    let period = Duration::from_millis(HEARTBEAT_INTERVAL_MS);
    tokio::time::interval_at(tokio::time::Instant::now() + period, period)
}

/// One viewer: connect, say Hello, wait for the go, vote per plan once the open poll's
/// part arrives, then wait for the result part. It gives up `WAIT_MS_MAX` after its
/// connect if no Welcome came, and `window_ms + WAIT_MS_MAX` after the poll opened if no
/// result came.
async fn viewer(
    url: String,
    plan: Plan,
    (burst_ms, window_ms): (u64, u64),
    permits: Arc<Semaphore>,
    connected_tx: mpsc::UnboundedSender<bool>,
    mut poll_opened_at: watch::Receiver<Option<tokio::time::Instant>>,
) -> ViewerOutcome {
    let mut outcome = ViewerOutcome::default();
    let wait = Duration::from_millis(WAIT_MS_MAX);
    let socket = {
        let _permit = permits.acquire().await.expect("never closed");
        match tokio::time::timeout(wait, open_socket(url, Some(SUBPROTOCOL))).await {
            Ok(Ok(socket)) => Some(socket),
            _ => None,
        }
    };
    let Some(socket) = socket else {
        let _ = connected_tx.send(false);
        return outcome;
    };
    let (mut sink, mut stream) = socket.split();
    let hello = ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        resume: None,
    });
    if sink.send(Message::binary(hello.encode())).await.is_err() {
        let _ = connected_tx.send(false);
        return outcome;
    }
    let mut deadline = tokio::time::Instant::now() + wait;
    let mut waiting_for_poll = true;
    let mut welcomed = false;
    let mut vote_at: Option<tokio::time::Instant> = None;
    let mut poll_opened: Option<Instant> = None;
    let mut sent_at: Option<Instant> = None;
    let mut poll_id = String::new();
    // Heartbeats as the SDK sends them: connecting thousands can outlast the stale sweep.
    let mut heartbeat = heartbeat_interval();
    loop {
        let vote_due = async {
            match vote_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Between the Welcome and the poll's opening only the run's end stops it.
            _ = tokio::time::sleep_until(deadline), if !(welcomed && waiting_for_poll) => break,
            _ = heartbeat.tick() => {
                if sink.send(Message::text(HEARTBEAT_TEXT)).await.is_err() {
                    break;
                }
            }
            changed = poll_opened_at.changed(), if waiting_for_poll && welcomed => {
                if changed.is_err() {
                    break; // the run ended without opening a poll
                }
                let opened_at = poll_opened_at.borrow_and_update().expect("only Some is sent");
                waiting_for_poll = false;
                deadline = opened_at + Duration::from_millis(window_ms) + wait;
            }
            _ = vote_due => {
                vote_at = None;
                let (option, _) = plan.vote.expect("planned");
                let frame = ClientFrame::Vote { client_id: 1, poll_id: poll_id.clone(), option };
                let now = Instant::now();
                sent_at = Some(now);
                outcome.in_burst = poll_opened
                    .is_some_and(|opened| now.duration_since(opened) <= Duration::from_millis(burst_ms));
                outcome.voted = Some(option);
                if sink.send(Message::binary(frame.encode())).await.is_err() {
                    break;
                }
            }
            message = stream.next() => {
                let Some(Ok(message)) = message else { break };
                let Message::Binary(bytes) = message else { continue };
                let Ok(ServerFrame::Batch { server_time_ms, events }) = ServerFrame::decode(&bytes) else {
                    break;
                };
                for event in events {
                    match event {
                        Event::Welcome(_) if !welcomed => {
                            welcomed = true;
                            outcome.connected = true;
                            let _ = connected_tx.send(true);
                        }
                        Event::Part { name, value, .. } if name == "poll" => {
                            let part: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
                            match part["phase"].as_str() {
                                Some("open") if poll_opened.is_none() => {
                                    poll_opened = Some(Instant::now());
                                    poll_id = part["id"].as_str().unwrap_or_default().to_owned();
                                    if let Some((_, at_ms)) = plan.vote {
                                        vote_at = Some(tokio::time::Instant::now() + Duration::from_millis(at_ms));
                                    }
                                }
                                Some("result") if poll_opened.is_some() => {
                                    let tallies: Vec<u64> = part["tallies"]
                                        .as_array()
                                        .map(|a| a.iter().filter_map(|t| t.as_u64()).collect())
                                        .unwrap_or_default();
                                    // The scheduled close: a late timer counts against us.
                                    let closes_ms = part["closes_at_ms"].as_u64().unwrap_or(0);
                                    outcome.result = Some((server_time_ms, closes_ms, tallies));
                                }
                                _ => {}
                            }
                        }
                        Event::Ack { client_id: 1, .. } => {
                            outcome.acknowledged = true;
                            let now = Instant::now();
                            if let Some(sent) = sent_at {
                                outcome.ack_latency_ms = Some(now.duration_since(sent).as_millis() as u64);
                            }
                        }
                        Event::Error { client_id: Some(1), .. } => outcome.refused = true,
                        _ => {}
                    }
                }
                if outcome.result.is_some() {
                    break;
                }
            }
        }
    }
    if !welcomed {
        let _ = connected_tx.send(false);
    }
    let _ = sink.send(Message::Close(None)).await;
    outcome
}
