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
mod plan;
mod report;
mod rooms;
mod schedule;
mod shared;
mod stats;
mod viewer;
pub mod wire;

use crate::{Lcg, Minter, CONNECT_CONCURRENCY};
use plan::{plan, raise_open_files_limit, Plan};
use rooms::{create_rooms, end_rooms};
use schedule::{pick_viewer, Schedule};
use serde::Serialize;
use shared::{Command, CommentRecord, CommentState, Shared};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use viewer::{spawn_viewer, Endpoints};

pub use accounting::DELIVERY_WINDOW_US;
pub use report::{FanoutReport, SecondSample};
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
    let report = report::report(
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
