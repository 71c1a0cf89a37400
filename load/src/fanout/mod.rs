//! The fan-out scenario: viewers spread over live chat rooms; a few of them comment at a
//! steady rate, others like, some leave and are replaced; every viewer measures how long
//! each comment took to reach it. The same load runs against our server (`ovation`) and
//! against peer servers speaking a plain JSON protocol (`json`) or Socket.IO v4
//! (`socketio`), so a benchmark compares like with like.
//!
//! Latency is measured on this process's monotonic clock: a comment's text carries its id
//! and its send instant (`wire::comment_text`), and the receiving viewer, in the same
//! process, subtracts. No clock offset is involved, and the generator's own delays
//! (scheduling, decoding) are included, which is why the report carries the generator's
//! CPU time and how late comments left against their schedule.
//!
//! The run is single-threaded by design (a `LocalSet` on the caller's current-thread
//! runtime): the generator shares the machine with the server it measures, so it must
//! stay cheap and its cost must be visible.

mod accounting;
pub mod chart;
mod shared;
mod stats;
mod viewer;
pub mod wire;

use crate::{Lcg, Minter, CONNECT_CONCURRENCY, VIEWERS_MAX};
use accounting::Sampling;
use ovation_proto::limits::{room_sockets_max, shards_for_audience, CONNECTIONS_PER_ROOM_MAX};
use ovation_proto::RoomId;
use serde::Serialize;
use shared::{Command, CommentRecord, CommentState, Shared};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use viewer::{spawn_viewer, Endpoints};

pub use accounting::DELIVERY_WINDOW_US;
pub use wire::COMMENT_TEXT_BYTES;

/// Rooms one run may drive.
pub const ROOMS_MAX: usize = 10_000;
/// Comments or likes per room per second, and churn per second over all rooms.
pub const RATE_PER_S_MAX: f64 = 10_000.0;
/// Measured part of a run.
pub const DURATION_S_MAX: u64 = 3_600;
pub const WARMUP_S_MAX: u64 = 600;
/// Comments per second one sender sends by default: half of what our server lets a user
/// sustain (1/s, burst 3), so the rate limit never decides the result.
pub const SENDER_COMMENTS_PER_S: f64 = 0.5;
/// Comments one run may send (each costs a few bytes of bookkeeping).
pub const COMMENTS_MAX: u64 = 50_000_000;
/// Memory for "which viewer got which comment": one bit per (viewer, comment of its room).
pub const TRACKING_BYTES_MAX: u64 = 1 << 30;
/// Open files this process needs besides one socket per viewer.
pub const OPEN_FILES_HEADROOM: u64 = 100;
/// A viewer must be connected (and welcomed) within this.
pub const CONNECT_TIMEOUT_MS: u64 = 20_000;
/// After the measured window, how long a missing comment may still arrive.
pub const GRACE_MS: u64 = 5_000;
/// A run fails when fewer viewers than this share connect.
pub const CONNECTED_PERCENT_MIN: usize = 50;
/// How long viewers get to close their sockets at the end before their tasks are dropped.
const CLOSE_WAIT_MS: u64 = 3_000;
/// How often the grace period checks whether everything arrived.
const SETTLE_CHECK_MS: u64 = 50;
/// A full loss tally (every viewer × every comment) is rerun at most this often.
const TALLY_EVERY_MS: u64 = 500;
/// Random picks of a connected viewer before a like or a churn is skipped.
const PICK_TRIES: usize = 16;

/// Which server the viewers speak to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Our server: `ovation.v1` binary frames; rooms are created through the admin API.
    Ovation,
    /// A peer server speaking the plain JSON protocol in text frames.
    Json,
    /// A Socket.IO v4 server, spoken raw over WebSocket (Engine.IO v4 framing).
    #[value(name = "socketio")]
    #[serde(rename = "socketio")]
    SocketIo,
}

impl Target {
    pub const fn as_str(self) -> &'static str {
        match self {
            Target::Ovation => "ovation",
            Target::Json => "json",
            Target::SocketIo => "socketio",
        }
    }

    /// Where a peer target listens unless `--url-template` says otherwise.
    pub const fn default_url_template(self) -> &'static str {
        match self {
            Target::Ovation | Target::Json => "ws://127.0.0.1:9000/parties/main/{room}?user={user}",
            Target::SocketIo => {
                "ws://127.0.0.1:9000/socket.io/?EIO=4&transport=websocket&room={room}&user={user}"
            }
        }
    }
}

#[derive(Clone)]
pub struct FanoutConfig {
    pub target: Target,
    /// Our server's HTTP base (`http://127.0.0.1:8787`), for `Target::Ovation`.
    pub base: String,
    /// Peer targets: a `ws://` URL with `{room}` and `{user}` placeholders.
    pub url_template: String,
    pub rooms: usize,
    /// Viewers over all rooms, spread evenly.
    pub viewers: usize,
    /// Per room.
    pub comments_per_s: f64,
    /// Per room.
    pub likes_per_s: f64,
    /// Leaves, each followed by a join in the same room, per second over all rooms.
    pub churn_per_s: f64,
    pub duration_s: u64,
    /// Load runs but nothing is measured.
    pub warmup_s: u64,
    pub seed: u64,
    /// `None`: enough that each sends at most `SENDER_COMMENTS_PER_S`.
    pub senders_per_room: Option<usize>,
    /// Room ids are `<prefix>-<index>`; the prefix starts with a region (`weur-`).
    pub room_prefix: String,
    /// Our server: the audience rooms are created for (`None`: viewers per room).
    pub expected_audience: Option<u64>,
    /// Our server: grow every room to this many shards after creating it
    /// (`POST /v1/rooms/{room}/shards`); `None` keeps what the audience gives.
    pub shards: Option<u16>,
    pub minter: Minter,
}

/// What the caller is told while a run goes on.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// One plain line per phase.
    Line(String),
    Connecting {
        answered: usize,
        connected: usize,
        total: usize,
    },
    Running {
        elapsed_s: u64,
        total_s: u64,
        deliveries_per_s: u64,
        latency_ms_p99: f64,
    },
}

/// One second of the measured window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SecondSample {
    /// Seconds since the end of warm-up.
    pub second: u64,
    /// Comments received in this second, over all viewers.
    pub deliveries: u64,
    /// Latency of the comments sent in this second.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    /// Viewers connected at the end of this second.
    pub viewers_connected: usize,
}

/// What a fan-out run measured. Counts are over the measured window (after warm-up) unless
/// a field says otherwise. Messages are WebSocket data messages (text or binary, one frame
/// each: no server here fragments); bytes are their payloads, without WebSocket framing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FanoutReport {
    pub target: String,
    /// The HTTP base (ours) or the URL template (peers).
    pub endpoint: String,
    pub rooms: usize,
    pub room_ids: Vec<String>,
    pub viewers: usize,
    pub senders_per_room: usize,
    pub comments_per_s: f64,
    pub likes_per_s: f64,
    pub churn_per_s: f64,
    pub duration_s: u64,
    pub warmup_s: u64,
    pub seed: u64,
    pub expected_audience: Option<u64>,
    pub shards: Option<u16>,
    pub comment_text_bytes: usize,
    pub delivery_window_ms: u64,
    pub grace_ms: u64,

    /// Viewers of the initial set that connected (churn joins not included).
    pub viewers_connected: usize,
    pub connect_failures: usize,
    /// Time to connect the initial set.
    pub connect_s: f64,

    /// Comments sent in the window.
    pub comments_sent: u64,
    /// Our server: comments acknowledged. Peers have no acknowledgement: equal to sent.
    pub comments_acknowledged: u64,
    pub comments_refused: u64,
    pub comments_refused_by_code: BTreeMap<&'static str, u64>,
    /// Our server: sent, neither acknowledged nor refused by the end of the grace period.
    pub comments_unanswered: u64,
    /// Due in the window but not sent: the sender was not connected, or its socket failed.
    pub comments_skipped: u64,

    /// Our sharded rooms: acknowledged comments that their sender received and no other
    /// viewer did. Above `SHARDED_COMMENTS_PER_S_MAX` (taken per tick) the room shows a
    /// comment to its sender only, by design; such comments are owed to nobody else and
    /// are neither in `deliveries_expected` nor in `losses`.
    pub comments_sampled: u64,
    /// (comment, viewer) pairs owed: each acknowledged (or sent) comment, unless sampled,
    /// times the viewers of its room connected from before its send until
    /// `delivery_window_ms` after.
    pub deliveries_expected: u64,
    /// Owed pairs that arrived (within the grace period).
    pub deliveries_expected_received: u64,
    pub losses: u64,
    /// A viewer receiving the same comment again (whole run).
    pub duplicates: u64,
    /// Comments received by all viewers during the window (the first copy each).
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    /// Comments sent before the receiving viewer joined (replays; not in `deliveries` nor
    /// in latency; whole run).
    pub deliveries_before_join: u64,
    /// Comment texts of ours with an id never sent to this viewer's room (whole run).
    pub deliveries_unknown: u64,
    /// Our server: `Gap` events (the server dropped actions for a slow viewer).
    pub gaps: u64,

    /// Latency of comments sent in the window, every delivery to every viewer.
    pub latency_samples: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub latency_ms_mean: f64,
    /// How late comments left against their schedule (the generator's own lag).
    pub send_lag_ms_p99: f64,
    pub send_lag_ms_max: f64,

    pub messages_received: u64,
    pub payload_bytes_received: u64,
    /// All payload bytes received (comments, likes, online counts, acks) per delivery.
    pub bytes_per_delivery: f64,
    /// WebSocket pings, pongs and closes received.
    pub control_frames_received: u64,
    /// Every data message the clients sent: comments, likes, heartbeat answers, and the
    /// handshakes of churn joins. Each is 1/20 of a billable request on Cloudflare.
    pub messages_sent: u64,
    pub payload_bytes_sent: u64,

    pub likes_sent: u64,
    pub likes_refused: u64,
    /// The like totals last published, summed over rooms (each room's highest total seen
    /// by any of its viewers; whole run, warm-up included).
    pub likes_total_last: Option<u64>,

    /// Churn joins that connected, and leaves done (window).
    pub churn_joins: u64,
    pub churn_leaves: u64,
    /// Churn joins that could not connect (whole run; a join still connecting at the end
    /// is in neither count).
    pub churn_join_failures: u64,
    /// Viewers whose socket ended without our asking (whole run).
    pub viewers_dropped: u64,

    /// This process's CPU time (user + system) during the window, and as a share of one
    /// core. A test server in the same process counts too.
    pub generator_cpu_s: Option<f64>,
    pub generator_cpu_percent: Option<f64>,

    pub series: Vec<SecondSample>,
}

/// The checked shape of a run.
#[derive(Clone, Debug, PartialEq)]
struct Plan {
    room_ids: Vec<String>,
    /// Initial viewers per room (sums to `viewers`).
    viewers_per_room: Vec<usize>,
    senders_per_room: usize,
    expected_audience: u64,
    /// Our sharded rooms show a comment to its sender only above their per-tick cap.
    sampling: Sampling,
}

fn check_rate(name: &str, value: f64) -> Result<(), String> {
    if !(0.0..=RATE_PER_S_MAX).contains(&value) {
        return Err(format!("{name} is 0..={RATE_PER_S_MAX}, not {value}"));
    }
    Ok(())
}

fn plan(config: &FanoutConfig) -> Result<Plan, String> {
    if config.rooms == 0 || config.rooms > ROOMS_MAX {
        return Err(format!("rooms is 1..={ROOMS_MAX}, not {}", config.rooms));
    }
    if config.viewers > VIEWERS_MAX {
        return Err(format!(
            "viewers is at most {VIEWERS_MAX} per process, not {}: run several generators",
            config.viewers
        ));
    }
    if config.viewers < config.rooms {
        return Err(format!(
            "viewers ({}) must be at least rooms ({}): every room needs a viewer",
            config.viewers, config.rooms
        ));
    }
    check_rate("comments-per-s", config.comments_per_s)?;
    check_rate("likes-per-s", config.likes_per_s)?;
    check_rate("churn-per-s", config.churn_per_s)?;
    if config.duration_s == 0 || config.duration_s > DURATION_S_MAX {
        return Err(format!(
            "duration-s is 1..={DURATION_S_MAX}, not {}",
            config.duration_s
        ));
    }
    if config.warmup_s > WARMUP_S_MAX {
        return Err(format!(
            "warmup-s is 0..={WARMUP_S_MAX}, not {}",
            config.warmup_s
        ));
    }
    let viewers_per_room: Vec<usize> = (0..config.rooms)
        .map(|room| {
            config.viewers / config.rooms + usize::from(room < config.viewers % config.rooms)
        })
        .collect();
    let smallest_room = *viewers_per_room.iter().min().expect("rooms >= 1");
    let largest_room = *viewers_per_room.iter().max().expect("rooms >= 1");
    // A sharded room takes that many sockets per shard.
    let audience = config.expected_audience.unwrap_or(largest_room as u64);
    let shards = config
        .shards
        .unwrap_or_else(|| shards_for_audience(audience));
    let sampling = if config.target == Target::Ovation && shards > 0 {
        Sampling::SenderOnlyAboveCap
    } else {
        Sampling::Never
    };
    let sockets_max = room_sockets_max(shards);
    if config.target == Target::Ovation && largest_room > sockets_max {
        return Err(format!(
            "{largest_room} viewers in one room, but our server takes at most \
             {CONNECTIONS_PER_ROOM_MAX} sockets per room or shard ({shards} shard(s)): \
             use more rooms or shards"
        ));
    }
    let senders_per_room = match config.senders_per_room {
        _ if config.comments_per_s == 0.0 => 0,
        Some(0) => return Err("senders-per-room must be at least 1 when comments are sent".into()),
        Some(senders) if senders > smallest_room => {
            return Err(format!(
                "senders-per-room ({senders}) is more than the viewers of the smallest room \
                 ({smallest_room})"
            ))
        }
        Some(senders) => senders,
        None => ((config.comments_per_s / SENDER_COMMENTS_PER_S).ceil() as usize)
            .clamp(1, smallest_room),
    };
    let run_s = (config.warmup_s + config.duration_s) as f64;
    let comments_per_room = (config.comments_per_s * run_s).ceil() as u64 + 1;
    let comments = comments_per_room * config.rooms as u64;
    if comments > COMMENTS_MAX {
        return Err(format!(
            "this run would send {comments} comments, more than {COMMENTS_MAX}: shorten it or \
             lower comments-per-s"
        ));
    }
    let viewers_ever = config.viewers as u64 + (config.churn_per_s * run_s).ceil() as u64;
    let tracking_bytes = viewers_ever * comments_per_room / 8;
    if tracking_bytes > TRACKING_BYTES_MAX {
        return Err(format!(
            "tracking deliveries would take {} MiB, more than {} MiB: fewer viewers, a shorter \
             run or fewer comments per room",
            tracking_bytes >> 20,
            TRACKING_BYTES_MAX >> 20
        ));
    }
    let room_ids: Vec<String> = (0..config.rooms)
        .map(|room| format!("{}-{room}", config.room_prefix))
        .collect();
    // Ids go into URLs and our admin API unescaped: hold every target to our id rules.
    for id in &room_ids {
        RoomId::parse(id).map_err(|e| format!("room id {id:?}: {e}"))?;
    }
    if config.target != Target::Ovation
        && !(config.url_template.starts_with("ws://") && config.url_template.contains("{room}"))
    {
        return Err(format!(
            "url-template must be a ws:// URL with a {{room}} placeholder, not {:?}",
            config.url_template
        ));
    }
    let expected_audience = config
        .expected_audience
        .unwrap_or(config.viewers.div_ceil(config.rooms) as u64);
    Ok(Plan {
        room_ids,
        viewers_per_room,
        senders_per_room,
        expected_audience,
        sampling,
    })
}

/// Raises the open-file soft limit to the hard limit and checks it fits the viewers.
fn raise_open_files_limit(viewers: usize) -> Result<(), String> {
    let needed = viewers as u64 + OPEN_FILES_HEADROOM;
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("raising the open-file limit: {e}"))?;
    if needed > limit {
        return Err(format!(
            "{viewers} viewers need {needed} open files but the hard limit is {limit}: raise \
             it (`ulimit -Hn`, or LimitNOFILE) or run fewer viewers per process"
        ));
    }
    Ok(())
}

/// Picks a random connected viewer of `room` (not a sender when `senders_too` is false).
fn pick_viewer(shared: &Shared, rng: &mut Lcg, room: usize, senders_too: bool) -> Option<usize> {
    let members = &shared.members[room];
    if members.is_empty() {
        return None;
    }
    (0..PICK_TRIES).find_map(|_| {
        let viewer = members[rng.below(members.len() as u64) as usize];
        let state = &shared.viewers[viewer];
        (state.is_connected() && (senders_too || !state.is_sender)).then_some(viewer)
    })
}

/// A stream of events at a steady rate: event `n` is due at `start_us + n / rate`.
struct Schedule {
    start_us: u64,
    interval_us: f64,
    next: u64,
}

impl Schedule {
    fn new(start_us: u64, per_s: f64) -> Schedule {
        Schedule {
            start_us,
            interval_us: if per_s > 0.0 {
                1e6 / per_s
            } else {
                f64::INFINITY
            },
            next: 0,
        }
    }

    /// When the next event is due (`u64::MAX`: never).
    fn due_us(&self) -> u64 {
        let offset = self.next as f64 * self.interval_us;
        if offset.is_finite() {
            self.start_us + offset as u64
        } else {
            u64::MAX
        }
    }
}

/// Runs the fan-out scenario. `progress` hears about each phase and, while running, each
/// second. Needs a current-thread runtime (it runs its viewers on a `LocalSet`).
pub async fn fanout(
    config: FanoutConfig,
    progress: impl FnMut(Progress),
) -> Result<FanoutReport, String> {
    let plan = plan(&config)?;
    raise_open_files_limit(config.viewers)?;
    tokio::task::LocalSet::new()
        .run_until(run(config, plan, progress))
        .await
}

async fn run(
    config: FanoutConfig,
    plan: Plan,
    mut progress: impl FnMut(Progress),
) -> Result<FanoutReport, String> {
    let mut line = |text: String| progress(Progress::Line(text));
    if config.target == Target::Ovation {
        create_rooms(&config, &plan, &mut line).await?;
    }
    if config.target == Target::Ovation
        && config.comments_per_s / plan.senders_per_room.max(1) as f64
            > f64::from(ovation_proto::limits::COMMENT_RATE_PER_S)
    {
        line(format!(
            "warning: {} senders per room each send {:.2} comments/s, above the server's \
             per-user limit of {}/s: expect rate_limited refusals",
            plan.senders_per_room,
            config.comments_per_s / plan.senders_per_room as f64,
            ovation_proto::limits::COMMENT_RATE_PER_S
        ));
    }
    let run_s = config.warmup_s + config.duration_s;
    let shared = Rc::new(RefCell::new(Shared::new(
        config.target,
        config.rooms,
        config.duration_s,
        plan.sampling,
    )));
    let endpoints = Rc::new(Endpoints {
        target: config.target,
        base: config.base.clone(),
        url_template: config.url_template.clone(),
        room_ids: plan.room_ids.clone(),
        minter: config.minter.clone(),
        seed: config.seed,
        permits: Arc::new(Semaphore::new(CONNECT_CONCURRENCY)),
    });

    // Phase 1: connect the initial viewers; the first ones of each room are its senders.
    line(format!(
        "connecting {} viewers to {} {} room(s), {CONNECT_CONCURRENCY} at a time",
        config.viewers,
        config.rooms,
        config.target.as_str()
    ));
    let connect_started = Instant::now();
    let (connected_tx, mut connected_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(config.viewers);
    let mut senders: Vec<Vec<usize>> = vec![Vec::new(); config.rooms];
    for (room, &count) in plan.viewers_per_room.iter().enumerate() {
        for position in 0..count {
            let is_sender = position < plan.senders_per_room;
            if is_sender {
                senders[room].push(shared.borrow().viewers.len());
            }
            tasks.push(spawn_viewer(
                &shared,
                &endpoints,
                room,
                is_sender,
                false,
                Some(connected_tx.clone()),
            ));
        }
    }
    drop(connected_tx);
    let (mut answered, mut viewers_connected) = (0, 0);
    while answered < config.viewers {
        let Some(connected) = connected_rx.recv().await else {
            break;
        };
        answered += 1;
        viewers_connected += usize::from(connected);
        progress(Progress::Connecting {
            answered,
            connected: viewers_connected,
            total: config.viewers,
        });
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let mut line = |text: String| progress(Progress::Line(text));
    line(format!(
        "connected {viewers_connected}/{} in {connect_s:.1} s",
        config.viewers
    ));
    if viewers_connected * 100 < config.viewers * CONNECTED_PERCENT_MIN {
        close_all(&shared, tasks).await;
        if config.target == Target::Ovation {
            end_rooms(&config, &plan, &mut line).await;
        }
        let why = shared.borrow_mut().first_connect_error.take();
        return Err(format!(
            "only {viewers_connected} of {} viewers connected (fewer than \
             {CONNECTED_PERCENT_MIN} %) to {}: {}",
            config.viewers,
            if config.target == Target::Ovation {
                &config.base
            } else {
                &config.url_template
            },
            why.unwrap_or_else(|| "no reason given".into())
        ));
    }

    // Phase 2: warm-up, then the measured window, on one steady schedule.
    let (run_start_us, run_end_us) = {
        let mut shared = shared.borrow_mut();
        let start_us = shared.now_us();
        shared.window_start_us = start_us + config.warmup_s * 1_000_000;
        shared.window_end_us = shared.window_start_us + config.duration_s * 1_000_000;
        (start_us, shared.window_end_us)
    };
    line(format!(
        "running {} s ({} s warm-up): {} comments/s and {} likes/s per room, churn {}/s, {} \
         senders per room",
        run_s,
        config.warmup_s,
        config.comments_per_s,
        config.likes_per_s,
        config.churn_per_s,
        plan.senders_per_room
    ));
    let origin = shared.borrow().origin;
    let rooms = config.rooms;
    let mut rng = Lcg(config.seed ^ 0x5eed_fa00);
    let mut comments = Schedule::new(run_start_us, config.comments_per_s * rooms as f64);
    let mut likes = Schedule::new(run_start_us, config.likes_per_s * rooms as f64);
    let mut churn = Schedule::new(run_start_us, config.churn_per_s);
    let mut cpu_window_start_s = None;
    let mut next_second: u64 = 1;
    loop {
        let now_us = shared.borrow().now_us();
        if cpu_window_start_s.is_none() && shared.borrow().in_window(now_us) {
            cpu_window_start_s = Some(stats::process_cpu_s());
        }
        while comments.due_us() <= now_us.min(run_end_us - 1) {
            let (id, due_us) = (comments.next, comments.due_us());
            comments.next += 1;
            let room = (id % rooms as u64) as usize;
            let index_in_room = (id / rooms as u64) as usize;
            let mut shared = shared.borrow_mut();
            let sender = senders[room][index_in_room % senders[room].len()];
            shared.comments.push(CommentRecord {
                sender,
                due_us,
                sent_us: u64::MAX,
                state: CommentState::Unsent,
            });
            if let Some(commands) = &shared.viewers[sender].commands {
                let _ = commands.send(Command::Comment { id });
            }
        }
        while likes.due_us() <= now_us.min(run_end_us - 1) {
            let room = (likes.next % rooms as u64) as usize;
            likes.next += 1;
            let shared = shared.borrow();
            if let Some(viewer) = pick_viewer(&shared, &mut rng, room, true) {
                if let Some(commands) = &shared.viewers[viewer].commands {
                    let _ = commands.send(Command::Like);
                }
            }
        }
        while churn.due_us() <= now_us.min(run_end_us - 1) {
            churn.next += 1;
            let room = rng.below(rooms as u64) as usize;
            let leaving = pick_viewer(&shared.borrow(), &mut rng, room, false);
            if let Some(viewer) = leaving {
                if let Some(commands) = &shared.borrow().viewers[viewer].commands {
                    let _ = commands.send(Command::Leave);
                }
                tasks.push(spawn_viewer(&shared, &endpoints, room, false, true, None));
            }
        }
        while next_second <= run_s && now_us >= run_start_us + next_second * 1_000_000 {
            let mut shared = shared.borrow_mut();
            if next_second > config.warmup_s {
                let second = (next_second - config.warmup_s - 1) as usize;
                shared.seconds[second].viewers_connected = shared.connected_now;
            }
            progress(Progress::Running {
                elapsed_s: next_second,
                total_s: run_s,
                deliveries_per_s: shared.deliveries_this_second,
                latency_ms_p99: stats::quantile_ms(&shared.latency_us, 0.99),
            });
            shared.deliveries_this_second = 0;
            next_second += 1;
        }
        // After the last second's sample.
        if now_us >= run_end_us {
            break;
        }
        let wake_us = comments
            .due_us()
            .min(likes.due_us())
            .min(churn.due_us())
            .min(run_start_us + next_second * 1_000_000)
            .min(run_end_us);
        tokio::time::sleep_until((origin + Duration::from_micros(wake_us)).into()).await;
    }
    let generator_cpu_s = match (cpu_window_start_s.flatten(), stats::process_cpu_s()) {
        (Some(start_s), Some(end_s)) => Some(end_s - start_s),
        _ => None,
    };
    let mut line = |text: String| progress(Progress::Line(text));

    // Phase 3: grace. Stop early once the last comment of every room has arrived and a
    // full tally finds nothing missing.
    line(format!(
        "window over; waiting up to {GRACE_MS} ms for comments still on their way"
    ));
    let grace_end = tokio::time::Instant::now() + Duration::from_millis(GRACE_MS);
    let mut next_tally = tokio::time::Instant::now();
    while tokio::time::Instant::now() < grace_end {
        let now = tokio::time::Instant::now();
        if now >= next_tally && shared.borrow().last_comments_arrived() {
            if shared.borrow().tally().lost() == 0 {
                break;
            }
            next_tally = now + Duration::from_millis(TALLY_EVERY_MS);
        }
        tokio::time::sleep(Duration::from_millis(SETTLE_CHECK_MS)).await;
    }
    close_all(&shared, tasks).await;
    if config.target == Target::Ovation {
        end_rooms(&config, &plan, &mut line).await;
    }

    let shared = shared.borrow();
    let report = report(
        &config,
        &plan,
        &shared,
        viewers_connected,
        connect_s,
        generator_cpu_s,
    );
    line(format!(
        "done: {} deliveries/s, p99 {:.1} ms, {} lost, {} duplicates",
        report.deliveries_per_s.round(),
        report.latency_ms_p99,
        report.losses,
        report.duplicates
    ));
    Ok(report)
}

/// Ends the run for every viewer and waits (bounded) for their sockets to close.
async fn close_all(shared: &Rc<RefCell<Shared>>, tasks: Vec<JoinHandle<()>>) {
    for viewer in &mut shared.borrow_mut().viewers {
        viewer.commands = None;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(CLOSE_WAIT_MS);
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
        }
    }
}

fn admin_api(config: &FanoutConfig) -> ovation_cli::Api {
    ovation_cli::Api::new(&config.base, &config.minter.token("admin-1", "admin", "*"))
}

/// Creates every room through the admin API; a room that is live already is used as is.
async fn create_rooms(
    config: &FanoutConfig,
    plan: &Plan,
    line: &mut impl FnMut(String),
) -> Result<(), String> {
    let api = admin_api(config);
    let room_ids = plan.room_ids.clone();
    let audience = plan.expected_audience;
    let shards = config.shards;
    let reused = tokio::task::spawn_blocking(move || {
        let mut reused = 0;
        for room in &room_ids {
            let body = serde_json::json!({
                "room": room, "host": "host-1", "title": "load", "expected_audience": audience,
            });
            let reply = api.post("/v1/rooms", &body)?;
            match reply.status {
                200 | 201 => {}
                409 => reused += 1,
                status => return Err(format!("creating room {room}: {status} {}", reply.body)),
            }
            if let Some(shards) = shards {
                let grow = serde_json::json!({ "shards": shards });
                let reply = api.post(&format!("/v1/rooms/{room}/shards"), &grow)?;
                if reply.status != 200 {
                    return Err(format!(
                        "sharding room {room}: {} {}",
                        reply.status, reply.body
                    ));
                }
            }
        }
        Ok(reused)
    })
    .await
    .map_err(|e| e.to_string())??;
    line(format!(
        "created {} room(s) at {} (expected audience {audience}){}",
        plan.room_ids.len() - reused,
        config.base,
        if reused > 0 {
            format!("; {reused} were live already and are reused")
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// Ends the rooms again so repeated runs do not pile up live rooms; failures are told,
/// not fatal (the measurement is done).
async fn end_rooms(config: &FanoutConfig, plan: &Plan, line: &mut impl FnMut(String)) {
    let api = admin_api(config);
    let room_ids = plan.room_ids.clone();
    let failures = tokio::task::spawn_blocking(move || {
        room_ids
            .iter()
            .filter(|room| {
                !api.post(&format!("/v1/rooms/{room}/end"), &serde_json::json!({}))
                    .is_ok_and(|reply| reply.status == 200)
            })
            .count()
    })
    .await
    .unwrap_or(plan.room_ids.len());
    if failures > 0 {
        line(format!("could not end {failures} room(s); they stay live"));
    }
}

fn report(
    config: &FanoutConfig,
    plan: &Plan,
    shared: &Shared,
    viewers_connected: usize,
    connect_s: f64,
    generator_cpu_s: Option<f64>,
) -> FanoutReport {
    let tally = shared.tally();
    let measured = || {
        shared
            .comments
            .iter()
            .filter(|comment| shared.in_window(comment.sent_us))
    };
    let count = |state: CommentState| measured().filter(|c| c.state == state).count() as u64;
    let comments_sent = measured()
        .filter(|c| c.state != CommentState::SendFailed)
        .count() as u64;
    let comments_skipped = shared
        .comments
        .iter()
        .filter(|c| {
            shared.in_window(c.due_us)
                && matches!(c.state, CommentState::Unsent | CommentState::SendFailed)
        })
        .count() as u64;
    let (comments_acknowledged, comments_unanswered) = match config.target {
        Target::Ovation => (count(CommentState::Acknowledged), count(CommentState::Sent)),
        Target::Json | Target::SocketIo => (count(CommentState::Sent), 0),
    };
    let duration_s = config.duration_s as f64;
    let traffic = &shared.traffic;
    FanoutReport {
        target: config.target.as_str().into(),
        endpoint: match config.target {
            Target::Ovation => config.base.clone(),
            Target::Json | Target::SocketIo => config.url_template.clone(),
        },
        rooms: config.rooms,
        room_ids: plan.room_ids.clone(),
        viewers: config.viewers,
        senders_per_room: plan.senders_per_room,
        comments_per_s: config.comments_per_s,
        likes_per_s: config.likes_per_s,
        churn_per_s: config.churn_per_s,
        duration_s: config.duration_s,
        warmup_s: config.warmup_s,
        seed: config.seed,
        expected_audience: (config.target == Target::Ovation).then_some(plan.expected_audience),
        shards: config.shards.filter(|_| config.target == Target::Ovation),
        comment_text_bytes: COMMENT_TEXT_BYTES,
        delivery_window_ms: DELIVERY_WINDOW_US / 1_000,
        grace_ms: GRACE_MS,
        viewers_connected,
        connect_failures: config.viewers - viewers_connected,
        connect_s,
        comments_sent,
        comments_acknowledged,
        comments_refused: count(CommentState::Refused),
        comments_refused_by_code: shared.refused_by_code.clone(),
        comments_unanswered,
        comments_skipped,
        comments_sampled: tally.comments_sampled,
        deliveries_expected: tally.expected,
        deliveries_expected_received: tally.received,
        losses: tally.lost(),
        duplicates: shared.duplicates,
        deliveries: shared.deliveries,
        deliveries_per_s: shared.deliveries as f64 / duration_s,
        deliveries_before_join: shared.deliveries_before_join,
        deliveries_unknown: shared.deliveries_unknown,
        gaps: shared.gaps,
        latency_samples: shared.latency_us.len(),
        latency_ms_p50: stats::quantile_ms(&shared.latency_us, 0.50),
        latency_ms_p95: stats::quantile_ms(&shared.latency_us, 0.95),
        latency_ms_p99: stats::quantile_ms(&shared.latency_us, 0.99),
        latency_ms_max: stats::max_ms(&shared.latency_us),
        latency_ms_mean: stats::mean_ms(&shared.latency_us),
        send_lag_ms_p99: stats::quantile_ms(&shared.send_lag_us, 0.99),
        send_lag_ms_max: stats::max_ms(&shared.send_lag_us),
        messages_received: traffic.messages_received,
        payload_bytes_received: traffic.payload_bytes_received,
        bytes_per_delivery: if shared.deliveries == 0 {
            0.0
        } else {
            traffic.payload_bytes_received as f64 / shared.deliveries as f64
        },
        control_frames_received: traffic.control_frames_received,
        messages_sent: traffic.messages_sent,
        payload_bytes_sent: traffic.payload_bytes_sent,
        likes_sent: shared.likes_sent,
        likes_refused: shared.likes_refused,
        likes_total_last: shared
            .likes_total_by_room
            .iter()
            .flatten()
            .copied()
            .reduce(|sum, total| sum + total),
        churn_joins: shared.churn_joins,
        churn_leaves: shared.churn_leaves,
        churn_join_failures: shared.churn_join_failures,
        viewers_dropped: shared.viewers_dropped,
        generator_cpu_s,
        generator_cpu_percent: generator_cpu_s.map(|cpu_s| 100.0 * cpu_s / duration_s),
        series: shared
            .seconds
            .iter()
            .enumerate()
            .map(|(second, state)| SecondSample {
                second: second as u64,
                deliveries: state.deliveries,
                latency_ms_p50: stats::quantile_ms(&state.latency_us, 0.50),
                latency_ms_p99: stats::quantile_ms(&state.latency_us, 0.99),
                viewers_connected: state.viewers_connected,
            })
            .collect(),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use ovation_auth::{dev, SigningKey};

    fn config() -> FanoutConfig {
        FanoutConfig {
            target: Target::Json,
            base: "http://127.0.0.1:8787".into(),
            url_template: Target::Json.default_url_template().into(),
            rooms: 3,
            viewers: 10,
            comments_per_s: 20.0,
            likes_per_s: 0.0,
            churn_per_s: 0.0,
            duration_s: 20,
            warmup_s: 2,
            seed: 1,
            senders_per_room: None,
            room_prefix: "weur-fanout-test".into(),
            expected_audience: None,
            shards: None,
            minter: Minter {
                key: SigningKey::hs256(dev::HS256_SECRET.as_bytes()),
                tenant: dev::TENANT.into(),
            },
        }
    }

    #[test]
    fn viewers_spread_evenly_and_senders_default_to_half_a_comment_per_second_each() {
        let even = plan(&FanoutConfig {
            viewers: 300,
            ..config()
        })
        .unwrap();
        assert_eq!(even.viewers_per_room, [100, 100, 100]);
        assert_eq!(even.senders_per_room, 40);
        assert_eq!(even.expected_audience, 100);
        assert_eq!(even.room_ids[2], "weur-fanout-test-2");

        // Uneven split, and a default capped by the smallest room.
        let uneven = plan(&config()).unwrap();
        assert_eq!(uneven.viewers_per_room, [4, 3, 3]);
        assert_eq!(uneven.senders_per_room, 3);
        assert_eq!(uneven.expected_audience, 4);

        let silent = plan(&FanoutConfig {
            comments_per_s: 0.0,
            ..config()
        })
        .unwrap();
        assert_eq!(silent.senders_per_room, 0);
    }

    #[test]
    fn bad_shapes_are_refused_with_the_limit_named() {
        let refusals = [
            (
                FanoutConfig {
                    rooms: 0,
                    ..config()
                },
                "rooms is 1..=",
            ),
            (
                FanoutConfig {
                    viewers: 2,
                    ..config()
                },
                "at least rooms",
            ),
            (
                FanoutConfig {
                    viewers: VIEWERS_MAX + 1,
                    ..config()
                },
                "per process",
            ),
            (
                FanoutConfig {
                    comments_per_s: -1.0,
                    ..config()
                },
                "comments-per-s is",
            ),
            (
                FanoutConfig {
                    likes_per_s: f64::NAN,
                    ..config()
                },
                "likes-per-s is",
            ),
            (
                FanoutConfig {
                    duration_s: 0,
                    ..config()
                },
                "duration-s is",
            ),
            (
                FanoutConfig {
                    senders_per_room: Some(4),
                    ..config()
                },
                "smallest room",
            ),
            (
                FanoutConfig {
                    senders_per_room: Some(0),
                    ..config()
                },
                "at least 1",
            ),
            (
                FanoutConfig {
                    room_prefix: "eu-load".into(),
                    ..config()
                },
                "region prefix",
            ),
            (
                FanoutConfig {
                    room_prefix: "weur-Load".into(),
                    ..config()
                },
                "a-z, 0-9",
            ),
            (
                FanoutConfig {
                    url_template: "ws://host/x".into(),
                    ..config()
                },
                "{room}",
            ),
            (
                FanoutConfig {
                    viewers: 100_000,
                    rooms: 1,
                    duration_s: 3_600,
                    comments_per_s: 1_000.0,
                    ..config()
                },
                "tracking deliveries",
            ),
        ];
        for (config, expected) in refusals {
            let error = plan(&config).unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        let crowded = plan(&FanoutConfig {
            target: Target::Ovation,
            viewers: CONNECTIONS_PER_ROOM_MAX + 1,
            rooms: 1,
            shards: Some(1),
            ..config()
        });
        assert!(crowded.unwrap_err().contains("sockets per room"));
        // Without `--shards` that audience makes a big room: its shards take them.
        let big = plan(&FanoutConfig {
            target: Target::Ovation,
            viewers: CONNECTIONS_PER_ROOM_MAX + 1,
            rooms: 1,
            ..config()
        });
        assert!(big.is_ok(), "{big:?}");
        // Our server needs no URL template.
        assert!(plan(&FanoutConfig {
            target: Target::Ovation,
            url_template: String::new(),
            ..config()
        })
        .is_ok());
    }

    #[test]
    fn schedules_space_events_evenly_and_never_fire_at_rate_zero() {
        let mut schedule = Schedule::new(1_000, 4.0);
        let dues: Vec<u64> = (0..3)
            .map(|_| {
                let due = schedule.due_us();
                schedule.next += 1;
                due
            })
            .collect();
        assert_eq!(dues, [1_000, 251_000, 501_000]);
        assert_eq!(Schedule::new(0, 0.0).due_us(), u64::MAX);
    }
}
