//! What the viewers and the driver share during a run: every viewer's stay and received
//! comments, every comment's fate, the histograms and the traffic counters. One thread
//! owns it (`Rc<RefCell<_>>`, borrowed only between awaits), so recording a delivery is a
//! few field updates, not a lock.

use super::accounting::{self, OwedComment, Presence, Received, Sampling, ViewerRecord};
use super::{stats, wire, Target};
use hdrhistogram::Histogram;
use ovation_proto::ErrorCode;
use std::collections::BTreeMap;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Client ids of likes start here; a comment's client id is its id + 1, below this.
pub(super) const LIKE_CLIENT_ID_FIRST: u64 = 1 << 48;

/// What the driver asks of one viewer.
#[derive(Debug)]
pub(super) enum Command {
    Comment { id: u64 },
    Like,
    Leave,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CommentState {
    /// Scheduled; the sender has not sent it (yet, or ever).
    Unsent,
    /// Sent; for our server, waiting for its answer.
    Sent,
    Acknowledged,
    Refused,
    /// The sender's socket failed while sending it.
    SendFailed,
}

pub(super) struct CommentRecord {
    /// The viewer that sends it.
    pub(super) sender: usize,
    pub(super) due_us: u64,
    pub(super) sent_us: u64,
    pub(super) state: CommentState,
}

pub(super) struct ViewerState {
    pub(super) room: usize,
    pub(super) is_sender: bool,
    /// Spawned by churn (counted as a join once connected).
    pub(super) is_churn_join: bool,
    pub(super) joined_us: Option<u64>,
    /// Left by churn.
    pub(super) left_us: Option<u64>,
    /// The socket ended without our asking.
    pub(super) dropped: bool,
    pub(super) received: Received,
    /// `None` once the viewer is gone, or at the end of the run.
    pub(super) commands: Option<mpsc::UnboundedSender<Command>>,
}

impl ViewerState {
    pub(super) fn is_connected(&self) -> bool {
        self.joined_us.is_some()
            && self.left_us.is_none()
            && !self.dropped
            && self.commands.is_some()
    }
}

#[derive(Default)]
pub(super) struct Traffic {
    pub(super) messages_received: u64,
    pub(super) payload_bytes_received: u64,
    pub(super) control_frames_received: u64,
    pub(super) messages_sent: u64,
    pub(super) payload_bytes_sent: u64,
}

pub(super) struct SecondState {
    pub(super) deliveries: u64,
    pub(super) latency_us: Histogram<u64>,
    pub(super) viewers_connected: usize,
}

/// Everything the viewers and the driver share (one thread: `Rc<RefCell<_>>`, borrowed
/// only between awaits).
pub(super) struct Shared {
    pub(super) origin: Instant,
    pub(super) target: Target,
    pub(super) rooms: usize,
    pub(super) sampling: Sampling,
    /// The measured window in µs since `origin`; empty (`MAX..MAX`) until the run starts.
    pub(super) window_start_us: u64,
    pub(super) window_end_us: u64,
    pub(super) viewers: Vec<ViewerState>,
    /// Viewer indices per room, connected or not.
    pub(super) members: Vec<Vec<usize>>,
    /// Indexed by comment id.
    pub(super) comments: Vec<CommentRecord>,
    pub(super) latency_us: Histogram<u64>,
    pub(super) send_lag_us: Histogram<u64>,
    pub(super) seconds: Vec<SecondState>,
    pub(super) traffic: Traffic,
    pub(super) deliveries: u64,
    /// For the progress line.
    pub(super) deliveries_this_second: u64,
    pub(super) duplicates: u64,
    pub(super) deliveries_before_join: u64,
    pub(super) deliveries_unknown: u64,
    pub(super) gaps: u64,
    pub(super) refused_by_code: BTreeMap<&'static str, u64>,
    pub(super) likes_sent: u64,
    pub(super) likes_refused: u64,
    /// Per room, the highest like total any of its viewers saw.
    pub(super) likes_total_by_room: Vec<Option<u64>>,
    pub(super) churn_joins: u64,
    pub(super) churn_join_failures: u64,
    pub(super) churn_leaves: u64,
    pub(super) viewers_dropped: u64,
    pub(super) connected_now: usize,
    pub(super) next_like_client_id: u64,
    /// Why the first viewer that could not connect failed, for the error message.
    pub(super) first_connect_error: Option<String>,
}

impl Shared {
    /// Nothing measured yet: the window opens when the run starts.
    pub(super) fn new(target: Target, rooms: usize, duration_s: u64, sampling: Sampling) -> Shared {
        Shared {
            origin: Instant::now(),
            target,
            rooms,
            sampling,
            window_start_us: u64::MAX,
            window_end_us: u64::MAX,
            viewers: Vec::new(),
            members: vec![Vec::new(); rooms],
            comments: Vec::new(),
            latency_us: stats::run_histogram(),
            send_lag_us: stats::run_histogram(),
            seconds: (0..duration_s)
                .map(|_| SecondState {
                    deliveries: 0,
                    latency_us: stats::second_histogram(),
                    viewers_connected: 0,
                })
                .collect(),
            traffic: Traffic::default(),
            deliveries: 0,
            deliveries_this_second: 0,
            duplicates: 0,
            deliveries_before_join: 0,
            deliveries_unknown: 0,
            gaps: 0,
            refused_by_code: BTreeMap::new(),
            likes_sent: 0,
            likes_refused: 0,
            likes_total_by_room: vec![None; rooms],
            churn_joins: 0,
            churn_join_failures: 0,
            churn_leaves: 0,
            viewers_dropped: 0,
            connected_now: 0,
            next_like_client_id: 0,
            first_connect_error: None,
        }
    }

    pub(super) fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    pub(super) fn in_window(&self, at_us: u64) -> bool {
        (self.window_start_us..self.window_end_us).contains(&at_us)
    }

    pub(super) fn second_of(&self, at_us: u64) -> Option<usize> {
        self.in_window(at_us)
            .then(|| ((at_us - self.window_start_us) / 1_000_000) as usize)
    }

    pub(super) fn on_sent(&mut self, at_us: u64, payload_bytes: usize) {
        if self.in_window(at_us) {
            self.traffic.messages_sent += 1;
            self.traffic.payload_bytes_sent += payload_bytes as u64;
        }
    }

    pub(super) fn on_received(&mut self, at_us: u64, message: &Message) {
        if !self.in_window(at_us) {
            return;
        }
        match message {
            Message::Text(_) | Message::Binary(_) => {
                self.traffic.messages_received += 1;
                self.traffic.payload_bytes_received += message.len() as u64;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                self.traffic.control_frames_received += 1;
            }
        }
    }

    pub(super) fn on_joined(&mut self, viewer: usize, at_us: u64) {
        let state = &mut self.viewers[viewer];
        state.joined_us = Some(at_us);
        self.connected_now += 1;
        if state.is_churn_join && self.in_window(at_us) {
            self.churn_joins += 1;
        }
    }

    /// The viewer's socket is gone; `churned` when we asked it to leave.
    pub(super) fn on_gone(&mut self, viewer: usize, at_us: u64, churned: bool) {
        let was_connected = self.viewers[viewer].is_connected();
        let state = &mut self.viewers[viewer];
        state.commands = None;
        if !was_connected {
            return;
        }
        self.connected_now -= 1;
        if churned {
            state.left_us = Some(at_us);
            if self.in_window(at_us) {
                self.churn_leaves += 1;
            }
        } else {
            state.dropped = true;
            self.viewers_dropped += 1;
        }
    }

    /// The sender is about to send comment `id`; returns its text.
    pub(super) fn on_comment_sending(&mut self, id: u64, at_us: u64) -> String {
        let in_window = self.in_window(at_us);
        let comment = &mut self.comments[id as usize];
        debug_assert_eq!(comment.state, CommentState::Unsent);
        comment.sent_us = at_us;
        comment.state = CommentState::Sent;
        if in_window {
            stats::record(&mut self.send_lag_us, at_us.saturating_sub(comment.due_us));
        }
        wire::comment_text(id, at_us)
    }

    pub(super) fn on_comment_send_failed(&mut self, id: u64) {
        self.comments[id as usize].state = CommentState::SendFailed;
    }

    /// A viewer received the comment text `id@sent_us`.
    pub(super) fn on_comment(&mut self, viewer: usize, id: u64, sent_us: u64, at_us: u64) {
        let room = self.viewers[viewer].room;
        // Only ids we sent, to this room, with the instant we put in: anything else is
        // not ours to count (and must not grow the bitset).
        let known = self.comments.get(id as usize).is_some_and(|comment| {
            comment.state != CommentState::Unsent && comment.sent_us == sent_us
        });
        if !known || id % self.rooms as u64 != room as u64 {
            self.deliveries_unknown += 1;
            return;
        }
        let state = &mut self.viewers[viewer];
        if !state.received.insert((id / self.rooms as u64) as usize) {
            self.duplicates += 1;
            return;
        }
        if state.joined_us.is_none_or(|joined_us| sent_us < joined_us) {
            self.deliveries_before_join += 1;
            return;
        }
        if let Some(second) = self.second_of(at_us) {
            self.deliveries += 1;
            self.seconds[second].deliveries += 1;
        }
        self.deliveries_this_second += 1;
        if let Some(second) = self.second_of(sent_us) {
            let latency_us = at_us.saturating_sub(sent_us);
            stats::record(&mut self.latency_us, latency_us);
            stats::record(&mut self.seconds[second].latency_us, latency_us);
        }
    }

    pub(super) fn on_likes_total(&mut self, viewer: usize, total: u64) {
        let last = &mut self.likes_total_by_room[self.viewers[viewer].room];
        *last = Some(last.map_or(total, |last| last.max(total)));
    }

    /// Our server answered client id `client_id`.
    pub(super) fn on_answer(&mut self, client_id: u64, refusal: Option<ErrorCode>) {
        if client_id >= LIKE_CLIENT_ID_FIRST {
            self.likes_refused += u64::from(refusal.is_some());
            return;
        }
        let Some(comment) = client_id
            .checked_sub(1)
            .and_then(|id| self.comments.get_mut(id as usize))
        else {
            return;
        };
        if comment.state != CommentState::Sent {
            return;
        }
        let sent_us = comment.sent_us;
        match refusal {
            None => comment.state = CommentState::Acknowledged,
            Some(code) => {
                comment.state = CommentState::Refused;
                if self.in_window(sent_us) {
                    *self.refused_by_code.entry(code.as_str()).or_default() += 1;
                }
            }
        }
    }

    /// Whether a sent comment is owed to the viewers (the server took it).
    pub(super) fn is_owed(&self, comment: &CommentRecord) -> bool {
        match (self.target, comment.state) {
            (Target::Ovation, state) => state == CommentState::Acknowledged,
            (_, state) => state == CommentState::Sent,
        }
    }

    pub(super) fn owed_comments(&self) -> Vec<OwedComment> {
        self.comments
            .iter()
            .enumerate()
            .filter(|(_, comment)| self.in_window(comment.sent_us) && self.is_owed(comment))
            .map(|(id, comment)| OwedComment {
                room: id % self.rooms,
                index_in_room: id / self.rooms,
                sent_us: comment.sent_us,
                sender: comment.sender,
            })
            .collect()
    }

    pub(super) fn tally(&self) -> accounting::Tally {
        let viewers = self
            .viewers
            .iter()
            .enumerate()
            .map(|(index, viewer)| ViewerRecord {
                viewer: index,
                room: viewer.room,
                presence: viewer.joined_us.map(|joined_us| Presence {
                    joined_us,
                    left_us: viewer.left_us,
                }),
                received: &viewer.received,
            });
        accounting::tally(self.rooms, &self.owed_comments(), viewers, self.sampling)
    }

    /// Cheap check for the grace period: every answer is in (ours), and every connected
    /// viewer holds the last owed comment of its room.
    pub(super) fn last_comments_arrived(&self) -> bool {
        let unanswered = self.target == Target::Ovation
            && self.comments.iter().any(|c| c.state == CommentState::Sent);
        if unanswered {
            return false;
        }
        let mut last_owed: Vec<Option<(usize, u64)>> = vec![None; self.rooms];
        for (id, comment) in self.comments.iter().enumerate().rev() {
            let room = id % self.rooms;
            if last_owed[room].is_none() && self.in_window(comment.sent_us) && self.is_owed(comment)
            {
                last_owed[room] = Some((id / self.rooms, comment.sent_us));
            }
            if last_owed.iter().all(Option::is_some) {
                break;
            }
        }
        self.viewers.iter().all(|viewer| {
            let Some((index_in_room, sent_us)) = last_owed[viewer.room] else {
                return true;
            };
            !viewer.is_connected()
                || viewer
                    .joined_us
                    .is_some_and(|joined_us| joined_us > sent_us)
                || viewer.received.contains(index_in_room)
        })
    }
}
