//! Which deliveries a run owed and which it made, as pure functions over what the viewers
//! recorded. Kept apart from the sockets so the churn rules are unit-tested.

/// A comment is owed to a viewer that stays connected at least this long after its send:
/// a viewer leaving sooner may leave before the comment could reach it.
pub const DELIVERY_WINDOW_US: u64 = 2_000_000;

/// When a viewer could receive comments, in microseconds since the run's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presence {
    /// When the viewer was connected (WebSocket open, and `Welcome` for our server).
    pub joined_us: u64,
    /// When the viewer left by churn. `None` while it stays to the end; a viewer that the
    /// server dropped also stays `None`, so what it missed counts as lost.
    pub left_us: Option<u64>,
}

impl Presence {
    /// Whether a comment sent at `sent_us` must reach this viewer: it was connected
    /// before the send and stayed for `DELIVERY_WINDOW_US` after it.
    pub fn expects(&self, sent_us: u64) -> bool {
        self.joined_us <= sent_us
            && self
                .left_us
                .is_none_or(|left_us| left_us >= sent_us.saturating_add(DELIVERY_WINDOW_US))
    }
}

/// Which comments of its room one viewer received: one bit per room-local comment index
/// (a run of 60 s at 20 comments/s is 150 bytes per viewer).
#[derive(Clone, Debug, Default)]
pub struct Received {
    words: Vec<u64>,
}

impl Received {
    /// Marks `index` received; false when it already was (a duplicate).
    pub fn insert(&mut self, index: usize) -> bool {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }

    pub fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|word| word & (1u64 << (index % 64)) != 0)
    }
}

/// A comment the run measures and owes: sent after warm-up (and acknowledged, for our
/// server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwedComment {
    pub room: usize,
    /// Index among its room's comments (the `Received` bit).
    pub index_in_room: usize,
    pub sent_us: u64,
    /// The viewer that sent it (an index among all viewers, as `ViewerRecord::viewer`).
    pub sender: usize,
}

/// What one viewer contributes to the tally.
pub struct ViewerRecord<'a> {
    /// Its index among all viewers.
    pub viewer: usize,
    pub room: usize,
    pub presence: Option<Presence>,
    pub received: &'a Received,
}

/// Whether the server may show a comment to its sender only. Our sharded rooms do, above
/// the tick's share of `SHARDED_COMMENTS_PER_S_MAX` (by design: it bounds every
/// viewer's download); no other target does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    Never,
    SenderOnlyAboveCap,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// (comment, viewer) pairs owed.
    pub expected: u64,
    /// Of those, the ones received.
    pub received: u64,
    /// Comments its sender received and no other viewer owed it did, where the server
    /// samples (`Sampling::SenderOnlyAboveCap`). Their pairs are in neither count: the
    /// server chose not to deliver them, so they are not losses.
    pub comments_sampled: u64,
}

impl Tally {
    pub fn lost(&self) -> u64 {
        self.expected - self.received
    }
}

/// Counts the owed deliveries and the ones made. Viewers that never connected owe
/// nothing (they are reported as connect failures instead).
pub fn tally<'a>(
    rooms: usize,
    comments: &[OwedComment],
    viewers: impl IntoIterator<Item = ViewerRecord<'a>>,
    sampling: Sampling,
) -> Tally {
    let mut by_room: Vec<Vec<ViewerRecord<'a>>> = (0..rooms).map(|_| Vec::new()).collect();
    for viewer in viewers {
        if viewer.presence.is_some() {
            by_room[viewer.room].push(viewer);
        }
    }
    let mut tally = Tally::default();
    for comment in comments {
        let (mut expected, mut received, mut sender_received) = (0u64, 0u64, false);
        for viewer in &by_room[comment.room] {
            let presence = viewer.presence.expect("only connected viewers are kept");
            if presence.expects(comment.sent_us) {
                let got = viewer.received.contains(comment.index_in_room);
                expected += 1;
                received += u64::from(got);
                sender_received |= got && viewer.viewer == comment.sender;
            }
        }
        let others_received = received - u64::from(sender_received);
        let sampled = sampling == Sampling::SenderOnlyAboveCap
            && sender_received
            && others_received == 0
            && expected > 1;
        if sampled {
            tally.comments_sampled += 1;
        } else {
            tally.expected += expected;
            tally.received += received;
        }
    }
    assert!(tally.received <= tally.expected);
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_viewer_is_owed_what_was_sent_while_it_stayed_long_enough() {
        let stays = Presence {
            joined_us: 10 * S,
            left_us: None,
        };
        assert!(!stays.expects(10 * S - 1), "sent before it joined");
        assert!(stays.expects(10 * S));
        assert!(stays.expects(1_000 * S));

        let leaves = Presence {
            joined_us: 0,
            left_us: Some(20 * S),
        };
        assert!(
            leaves.expects(18 * S),
            "left exactly two seconds after the send"
        );
        assert!(
            !leaves.expects(18 * S + 1),
            "left within two seconds of the send"
        );
        assert!(!leaves.expects(25 * S), "sent after it left");
        assert!(Presence {
            joined_us: 0,
            left_us: Some(u64::MAX)
        }
        .expects(u64::MAX));
    }

    #[test]
    fn received_marks_each_comment_once() {
        let mut received = Received::default();
        assert!(!received.contains(0));
        assert!(received.insert(130));
        assert!(!received.insert(130), "a duplicate");
        assert!(received.contains(130));
        assert!(!received.contains(129) && !received.contains(131) && !received.contains(10_000));
        assert!(received.insert(0));
        assert!(received.contains(0));
    }

    #[test]
    fn tally_counts_churners_only_for_comments_inside_their_stay() {
        // Room 0 has comments at 1 s, 5 s and 9 s; room 1 one at 5 s.
        let comments = [
            OwedComment {
                room: 0,
                index_in_room: 0,
                sent_us: S,
                sender: 0,
            },
            OwedComment {
                room: 0,
                index_in_room: 1,
                sent_us: 5 * S,
                sender: 0,
            },
            OwedComment {
                room: 0,
                index_in_room: 2,
                sent_us: 9 * S,
                sender: 0,
            },
            OwedComment {
                room: 1,
                index_in_room: 0,
                sent_us: 5 * S,
                sender: 4,
            },
        ];
        let all = {
            let mut r = Received::default();
            (0..3).for_each(|i| {
                r.insert(i);
            });
            r
        };
        let only_first = {
            let mut r = Received::default();
            r.insert(0);
            r
        };
        let nothing = Received::default();
        let viewers = [
            // Stayed all along and got all three.
            ViewerRecord {
                viewer: 0,
                room: 0,
                presence: Some(Presence {
                    joined_us: 0,
                    left_us: None,
                }),
                received: &all,
            },
            // Left at 6 s: owed only the 1 s comment (5 s + 2 s > 6 s), which it got.
            ViewerRecord {
                viewer: 1,
                room: 0,
                presence: Some(Presence {
                    joined_us: 0,
                    left_us: Some(6 * S),
                }),
                received: &only_first,
            },
            // Joined at 4 s, stayed: owed 5 s and 9 s, got neither.
            ViewerRecord {
                viewer: 2,
                room: 0,
                presence: Some(Presence {
                    joined_us: 4 * S,
                    left_us: None,
                }),
                received: &nothing,
            },
            // Never connected: owed nothing.
            ViewerRecord {
                viewer: 3,
                room: 0,
                presence: None,
                received: &nothing,
            },
            // Room 1: owed its one comment, which it got (bit 0).
            ViewerRecord {
                viewer: 4,
                room: 1,
                presence: Some(Presence {
                    joined_us: 0,
                    left_us: None,
                }),
                received: &only_first,
            },
        ];
        let tally = tally(2, &comments, viewers, Sampling::Never);
        // Owed 3 + 1 + 2 + 1, received 3 + 1 + none + 1.
        assert_eq!(
            tally,
            Tally {
                expected: 7,
                received: 5,
                comments_sampled: 0,
            }
        );
        assert_eq!(tally.lost(), 2);
    }

    #[test]
    fn a_comment_only_its_sender_received_is_sampled_where_the_server_samples() {
        let viewer = |viewer, received| ViewerRecord {
            viewer,
            room: 0,
            presence: Some(Presence {
                joined_us: 0,
                left_us: None,
            }),
            received,
        };
        let comment = |index_in_room, sender| OwedComment {
            room: 0,
            index_in_room,
            sent_us: S,
            sender,
        };
        // Comment 0 (by viewer 0) reached everyone; comment 1 (by viewer 0) only its
        // sender; comment 2 (by viewer 1) only viewer 0, not its sender: a loss.
        let (mut first, mut second, mut third) = (
            Received::default(),
            Received::default(),
            Received::default(),
        );
        for index in [0, 1, 2] {
            first.insert(index);
        }
        second.insert(0);
        third.insert(0);
        let comments = [comment(0, 0), comment(1, 0), comment(2, 1)];
        let records = || [viewer(0, &first), viewer(1, &second), viewer(2, &third)];

        let sampled = tally(1, &comments, records(), Sampling::SenderOnlyAboveCap);
        assert_eq!(
            sampled,
            Tally {
                expected: 6,
                received: 4,
                comments_sampled: 1,
            },
            "comment 1 is sampled; comment 2 reached someone else, so its misses are losses"
        );
        let never = tally(1, &comments, records(), Sampling::Never);
        assert_eq!(
            never,
            Tally {
                expected: 9,
                received: 5,
                comments_sampled: 0,
            },
            "where nothing is sampled, every miss is a loss"
        );
        // A comment nobody received, its sender included, is lost, not sampled.
        let nobody = tally(1, &[comment(5, 0)], records(), Sampling::SenderOnlyAboveCap);
        assert_eq!((nobody.comments_sampled, nobody.lost()), (0, 3));
    }
}
