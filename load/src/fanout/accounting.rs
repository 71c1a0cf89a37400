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
}

/// What one viewer contributes to the tally.
pub struct ViewerRecord<'a> {
    pub room: usize,
    pub presence: Option<Presence>,
    pub received: &'a Received,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// (comment, viewer) pairs owed.
    pub expected: u64,
    /// Of those, the ones received.
    pub received: u64,
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
) -> Tally {
    let mut by_room: Vec<Vec<OwedComment>> = vec![Vec::new(); rooms];
    for comment in comments {
        by_room[comment.room].push(*comment);
    }
    let mut tally = Tally::default();
    for viewer in viewers {
        let Some(presence) = viewer.presence else {
            continue;
        };
        for comment in &by_room[viewer.room] {
            if presence.expects(comment.sent_us) {
                tally.expected += 1;
                tally.received += u64::from(viewer.received.contains(comment.index_in_room));
            }
        }
    }
    debug_assert!(tally.received <= tally.expected);
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
            },
            OwedComment {
                room: 0,
                index_in_room: 1,
                sent_us: 5 * S,
            },
            OwedComment {
                room: 0,
                index_in_room: 2,
                sent_us: 9 * S,
            },
            OwedComment {
                room: 1,
                index_in_room: 0,
                sent_us: 5 * S,
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
                room: 0,
                presence: Some(Presence {
                    joined_us: 0,
                    left_us: None,
                }),
                received: &all,
            },
            // Left at 6 s: owed only the 1 s comment (5 s + 2 s > 6 s), which it got.
            ViewerRecord {
                room: 0,
                presence: Some(Presence {
                    joined_us: 0,
                    left_us: Some(6 * S),
                }),
                received: &only_first,
            },
            // Joined at 4 s, stayed: owed 5 s and 9 s, got neither.
            ViewerRecord {
                room: 0,
                presence: Some(Presence {
                    joined_us: 4 * S,
                    left_us: None,
                }),
                received: &nothing,
            },
            // Never connected: owed nothing.
            ViewerRecord {
                room: 0,
                presence: None,
                received: &nothing,
            },
            // Room 1: owed its one comment, which it got (bit 0).
            ViewerRecord {
                room: 1,
                presence: Some(Presence {
                    joined_us: 0,
                    left_us: None,
                }),
                received: &only_first,
            },
        ];
        let tally = tally(2, &comments, viewers);
        // Owed 3 + 1 + 2 + 1, received 3 + 1 + none + 1.
        assert_eq!(
            tally,
            Tally {
                expected: 7,
                received: 5
            }
        );
        assert_eq!(tally.lost(), 2);
    }
}
