//! What a fan-out run reports (`FanoutReport`, with its per-second `SecondSample`s), and
//! how it is tallied from the run's shared state at the end.

use super::plan::Plan;
use super::shared::{CommentState, Shared};
use super::{stats, FanoutConfig, Target, COMMENT_TEXT_BYTES, DELIVERY_WINDOW_US, GRACE_MS};
use serde::Serialize;
use std::collections::BTreeMap;

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

pub(super) fn report(
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
