//! Storage records: how a room survives eviction. Keys are strings, values postcard.
//!
//! * `meta` — [`MetaRecord`]
//! * `part/<name>` — [`PartRecord`]
//! * `action/<seq, 20 digits>` — `ovation_proto::Action` (the ring buffer)
//! * `gifter/<user>` — `Gifter`: total gifted and recent gift ids (feeds `leaderboard`)
//! * `pending/<request, 20 digits>` — a gift waiting for its charge
//! * `poll` — the latest poll's definition and phase (`polls::PollRecord`)
//! * `vote/<poll id>/<user>` — one counted vote (the option, one byte); votes of an older
//!   poll are deleted when a new poll opens (and at restore, if a crash left some)
//! * `quiz` — the latest quiz's definition, phase and question windows
//! * `answer/<quiz id>/<question, 5 digits>/<user>` — one counted answer (`AnswerRecord`)
//! * `qa/<n, 20 digits>` — a Q&A question; `upvote/<n>/<user>` — one upvote
//! * `pinned` — the pinned product card; `clicks/<product id>` — its click count;
//!   `clicker/<product id>/<user>` — one user counted for it
//! * `settings` — slow mode, word filter, Q&A approval; `mute/<user>` (until, ms, and the
//!   muting staff's role; an older build's holds the end alone), `ban/<user>` (the
//!   banning staff's role; an older build's is empty); `audit/<n, 20 digits>` — the audit
//!   trail

use crate::moderation::{AuditEntry, Mute, Settings};
use crate::polls::{Poll, PollPhase, PollRecord};
use crate::products::ProductCard;
use crate::qa::{Qa, QaRecord};
use crate::quiz::{AnswerRecord, QuizFold, QuizRecord};
use crate::{Gifter, Output, PartSet, PartState, PendingGift, Room, RoomInfo, RoomStatus};
use ovation_proto::limits::{
    GIFT_OUTCOMES_UNKNOWN_MAX, LIKE_FRAMES_STORED_PER_TICK_MAX, ROOM_PARTS_MAX,
    SHARDS_PER_ROOM_MAX, SHARD_COUNTS_MAX,
};
use ovation_proto::{Action, Role};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub const META_KEY: &str = "meta";
/// Keys under this prefix are the host's own, not the room's records: `Room::restore`
/// passes them over, so a host may keep its own beside the room's (the room object's
/// tenant) and a later build's such keys never stop this one from loading a room.
pub const HOST_KEY_PREFIX: &str = "object/";
const PART_PREFIX: &str = "part/";
const ACTION_PREFIX: &str = "action/";
const GIFTER_PREFIX: &str = "gifter/";
/// Which numbers were not comments (`ring::NotComments`), a record per
/// `NUMBERS_PER_KINDS_RECORD` numbers.
const KINDS_PREFIX: &str = "kinds/";
const PENDING_PREFIX: &str = "pending/";
/// Gifts answered `unavailable` and not announced (`gifts::OutcomeUnknown`).
const UNKNOWN_PREFIX: &str = "unknown/";
const POLL_KEY: &str = "poll";
const VOTE_PREFIX: &str = "vote/";
const QUIZ_KEY: &str = "quiz";
const ANSWER_PREFIX: &str = "answer/";
/// The range of the stored answers' keys, `[ANSWER_KEYS_START, ANSWER_KEYS_END)`: a host
/// lists it last at wake-up, after the `quiz` record, so `RoomLoader` scores each answer
/// as it comes (a big quiz's millions never held at once).
pub const ANSWER_KEYS_START: &str = ANSWER_PREFIX;
/// The first key after every `answer/…` (`'0'` follows `'/'`).
pub const ANSWER_KEYS_END: &str = "answer0";
const QA_PREFIX: &str = "qa/";
const UPVOTE_PREFIX: &str = "upvote/";
const PINNED_KEY: &str = "pinned";
const CLICKS_PREFIX: &str = "clicks/";
const CLICKER_PREFIX: &str = "clicker/";
const SETTINGS_KEY: &str = "settings";
const MUTE_PREFIX: &str = "mute/";
const BAN_PREFIX: &str = "ban/";
/// A staff comment's author and their role then (`Moderation::staff_comments`).
const STAFF_COMMENT_PREFIX: &str = "staff_comment/";
const AUDIT_PREFIX: &str = "audit/";
const SHARDS_KEY: &str = "shards";
/// The last batch applied from each shard (`ShardUp` instance and number).
const SHARD_UPS_KEY: &str = "shard_ups";
/// The like frames (user, client id) acknowledged in the last tick that had any.
const LIKES_LAST_KEY: &str = "likes_last";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// Bumped when the record layout changes; `restore` refuses other versions.
const RECORD_FORMAT: u16 = 2;

#[derive(Serialize, Deserialize)]
struct MetaRecord {
    format: u16,
    info: RoomInfo,
    status: RoomStatus,
    epoch: u64,
    total_version: u64,
    last_seq: u64,
    likes_total: u64,
    created_ms: u64,
}

/// An action of the ring and the client id its sender gave it (format 2).
#[derive(Serialize, Deserialize)]
struct ActionRecord {
    action: Action,
    client_id: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct PartRecord {
    version: u64,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct ShardUpRecord {
    shard: u16,
    instance: u64,
    seq: u64,
}

/// A record that is exactly one `T`: trailing bytes make it another record (a mute of the
/// current format, say, misread as one of an older format), not this one.
fn decode_whole<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding into a Vec cannot fail")
}

impl StorageOp {
    pub(crate) fn put_meta(room: &Room) -> StorageOp {
        StorageOp::Put {
            key: META_KEY.into(),
            value: encode(&MetaRecord {
                format: RECORD_FORMAT,
                info: room.info.clone(),
                status: room.status,
                epoch: room.epoch,
                total_version: room.parts.total_version(),
                last_seq: room.ring.last_seq(),
                likes_total: room.likes_total,
                created_ms: room.created_ms,
            }),
        }
    }

    pub(crate) fn put_likes_last(frames: &[(String, u64)]) -> StorageOp {
        StorageOp::Put {
            key: LIKES_LAST_KEY.into(),
            value: encode(&frames),
        }
    }

    pub(crate) fn put_part(name: &str, version: u64, value: &str) -> StorageOp {
        StorageOp::Put {
            key: format!("{PART_PREFIX}{name}"),
            value: encode(&PartRecord {
                version,
                value: value.to_owned(),
            }),
        }
    }

    pub(crate) fn put_action(action: &Action, client_id: Option<u64>) -> StorageOp {
        StorageOp::Put {
            key: action_key(action.seq),
            value: encode(&ActionRecord {
                action: action.clone(),
                client_id,
            }),
        }
    }

    pub(crate) fn put_kinds(record: u64, words: &[u64]) -> StorageOp {
        StorageOp::Put {
            key: format!("{KINDS_PREFIX}{record:020}"),
            value: encode(&words),
        }
    }

    pub(crate) fn delete_kinds(record: u64) -> StorageOp {
        StorageOp::Delete {
            key: format!("{KINDS_PREFIX}{record:020}"),
        }
    }

    pub(crate) fn put_gifter(user: &str, record: &Gifter) -> StorageOp {
        StorageOp::Put {
            key: format!("{GIFTER_PREFIX}{user}"),
            value: encode(record),
        }
    }

    pub(crate) fn put_pending_gift(pending: &PendingGift) -> StorageOp {
        StorageOp::Put {
            key: format!("{PENDING_PREFIX}{:020}", pending.charge.request),
            value: encode(pending),
        }
    }

    pub(crate) fn put_outcome_unknown(unknown: &crate::gifts::OutcomeUnknown) -> StorageOp {
        StorageOp::Put {
            key: format!("{UNKNOWN_PREFIX}{:020}", unknown.n),
            value: encode(unknown),
        }
    }

    pub(crate) fn delete_outcome_unknown(n: u64) -> StorageOp {
        StorageOp::Delete {
            key: format!("{UNKNOWN_PREFIX}{n:020}"),
        }
    }

    pub(crate) fn delete_pending_gift(request: u64) -> StorageOp {
        StorageOp::Delete {
            key: format!("{PENDING_PREFIX}{request:020}"),
        }
    }

    pub(crate) fn put_poll(record: &PollRecord) -> StorageOp {
        StorageOp::Put {
            key: POLL_KEY.into(),
            value: encode(record),
        }
    }

    pub(crate) fn put_vote(poll_id: &str, user: &str, option: u8) -> StorageOp {
        StorageOp::Put {
            key: format!("{VOTE_PREFIX}{poll_id}/{user}"),
            value: vec![option],
        }
    }

    pub(crate) fn delete_vote(poll_id: &str, user: &str) -> StorageOp {
        StorageOp::Delete {
            key: format!("{VOTE_PREFIX}{poll_id}/{user}"),
        }
    }

    pub(crate) fn put_quiz(record: &QuizRecord) -> StorageOp {
        StorageOp::Put {
            key: QUIZ_KEY.into(),
            value: encode(record),
        }
    }

    pub(crate) fn put_answer(
        quiz_id: &str,
        question: u16,
        user: &str,
        answer: &AnswerRecord,
    ) -> StorageOp {
        StorageOp::Put {
            key: answer_key(quiz_id, question, user),
            value: encode(answer),
        }
    }

    pub(crate) fn delete_answer(quiz_id: &str, question: u16, user: &str) -> StorageOp {
        StorageOp::Delete {
            key: answer_key(quiz_id, question, user),
        }
    }

    pub(crate) fn put_qa(record: &QaRecord) -> StorageOp {
        StorageOp::Put {
            key: format!("{QA_PREFIX}{:020}", record.number),
            value: encode(record),
        }
    }

    pub(crate) fn put_upvote(number: u64, user: &str) -> StorageOp {
        StorageOp::Put {
            key: format!("{UPVOTE_PREFIX}{number}/{user}"),
            value: Vec::new(),
        }
    }

    pub(crate) fn put_pinned(pinned: Option<&(ProductCard, u64)>) -> StorageOp {
        StorageOp::Put {
            key: PINNED_KEY.into(),
            value: encode(&pinned),
        }
    }

    pub(crate) fn put_clicker(product_id: &str, user: &str) -> StorageOp {
        StorageOp::Put {
            key: format!("{CLICKER_PREFIX}{product_id}/{user}"),
            value: Vec::new(),
        }
    }

    pub(crate) fn put_clicks(product_id: &str, count: u64) -> StorageOp {
        StorageOp::Put {
            key: format!("{CLICKS_PREFIX}{product_id}"),
            value: encode(&count),
        }
    }

    pub(crate) fn put_settings(settings: &Settings) -> StorageOp {
        StorageOp::Put {
            key: SETTINGS_KEY.into(),
            value: encode(settings),
        }
    }

    /// `mute/<user>`: the end and the muting rank (a record of an older build holds the
    /// end alone, read as a moderator's).
    pub(crate) fn put_mute(user: &str, mute: &Mute) -> StorageOp {
        StorageOp::Put {
            key: format!("{MUTE_PREFIX}{user}"),
            value: encode(&(mute.until_ms, mute.by_role)),
        }
    }

    pub(crate) fn delete_mute(user: &str) -> StorageOp {
        StorageOp::Delete {
            key: format!("{MUTE_PREFIX}{user}"),
        }
    }

    /// `ban/<user>`: the banning rank (a record of an older build is empty, read as a
    /// moderator's).
    pub(crate) fn put_ban(user: &str, by_role: Role) -> StorageOp {
        StorageOp::Put {
            key: format!("{BAN_PREFIX}{user}"),
            value: encode(&by_role),
        }
    }

    /// Every shard count the room has had, oldest first.
    pub(crate) fn put_shards(counts: &[u16]) -> StorageOp {
        StorageOp::Put {
            key: SHARDS_KEY.into(),
            value: encode(&counts),
        }
    }

    /// The last batch applied from each shard, so a batch sent again after the room
    /// restarted is still applied once.
    pub(crate) fn put_shard_ups(applied: &BTreeMap<u16, crate::sharding::UpApplied>) -> StorageOp {
        let records: Vec<ShardUpRecord> = applied
            .iter()
            .map(|(&shard, up)| ShardUpRecord {
                shard,
                instance: up.instance,
                seq: up.seq,
            })
            .collect();
        StorageOp::Put {
            key: SHARD_UPS_KEY.into(),
            value: encode(&records),
        }
    }

    pub(crate) fn put_staff_comment(seq: u64, author: &str, role: Role) -> StorageOp {
        StorageOp::Put {
            key: format!("{STAFF_COMMENT_PREFIX}{seq:020}"),
            value: encode(&(author, role)),
        }
    }

    pub(crate) fn delete_staff_comment(seq: u64) -> StorageOp {
        StorageOp::Delete {
            key: format!("{STAFF_COMMENT_PREFIX}{seq:020}"),
        }
    }

    pub(crate) fn delete_ban(user: &str) -> StorageOp {
        StorageOp::Delete {
            key: format!("{BAN_PREFIX}{user}"),
        }
    }

    pub(crate) fn put_audit(entry: &AuditEntry) -> StorageOp {
        StorageOp::Put {
            key: format!("{AUDIT_PREFIX}{:020}", entry.n),
            value: encode(entry),
        }
    }

    pub(crate) fn delete_audit(n: u64) -> StorageOp {
        StorageOp::Delete {
            key: format!("{AUDIT_PREFIX}{n:020}"),
        }
    }

    pub(crate) fn delete_action(seq: u64) -> StorageOp {
        StorageOp::Delete {
            key: action_key(seq),
        }
    }
}

fn answer_key(quiz_id: &str, question: u16, user: &str) -> String {
    format!("{ANSWER_PREFIX}{quiz_id}/{question:05}/{user}")
}

fn action_key(seq: u64) -> String {
    format!("{ACTION_PREFIX}{seq:020}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    Corrupt { key: String },
    UnknownFormat { format: u16 },
    UnknownKey { key: String },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Corrupt { key } => write!(f, "stored record `{key}` is corrupt"),
            RestoreError::UnknownFormat { format } => write!(f, "unknown record format {format}"),
            RestoreError::UnknownKey { key } => write!(f, "unknown stored key `{key}`"),
        }
    }
}

/// Rebuilds a room from its stored records fed one at a time, in any order (`Room::restore`
/// feeds them all). The room object pages through its storage and feeds the `quiz` record
/// before the `answer/…` ones: each answer is then scored as it comes (`QuizFold`), so a
/// big quiz's millions of answers never sit in memory at once; answers fed before the
/// record wait for it.
#[derive(Default)]
pub struct RoomLoader {
    meta: Option<MetaRecord>,
    parts: BTreeMap<String, PartState>,
    leftover_parts: Vec<StorageOp>,
    actions: BTreeMap<u64, ActionRecord>,
    gifters: BTreeMap<String, Gifter>,
    pending: BTreeMap<u64, PendingGift>,
    outcomes_unknown: BTreeMap<u64, crate::gifts::OutcomeUnknown>,
    poll: Option<PollRecord>,
    votes: Vec<(String, String, u8)>,
    quiz: Option<QuizFold>,
    answers: Vec<(String, u16, String, AnswerRecord)>,
    /// Answers of a quiz replaced (a crash while its records were being deleted): each
    /// quiz's users with the questions they answered (bit `q`), as the live room queues
    /// them for `purge`: millions of answers held as one delete each would be the memory
    /// this loader saves.
    stale_answers: BTreeMap<String, HashMap<String, u32>>,
    questions: Vec<QaRecord>,
    upvotes: Vec<(u64, String)>,
    pinned: Option<(ProductCard, u64)>,
    clicks: BTreeMap<String, u64>,
    clickers: Vec<(String, String)>,
    settings: Settings,
    muted: BTreeMap<String, Mute>,
    banned: BTreeMap<String, Role>,
    audit: Vec<AuditEntry>,
    shard_counts: Vec<u16>,
    shard_ups: Vec<ShardUpRecord>,
    likes_last: Vec<(String, u64)>,
    kinds: BTreeMap<u64, Vec<u64>>,
    staff_comments: Vec<(u64, String, Role)>,
}

impl RoomLoader {
    pub fn new() -> RoomLoader {
        RoomLoader::default()
    }

    /// One stored record. Records the room did not write are an error, not ignored,
    /// except the host's own (`HOST_KEY_PREFIX`).
    pub fn feed(&mut self, key: String, value: Vec<u8>) -> Result<(), RestoreError> {
        let corrupt = || RestoreError::Corrupt { key: key.clone() };
        if key == META_KEY {
            let record: MetaRecord = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            if record.format != RECORD_FORMAT {
                return Err(RestoreError::UnknownFormat {
                    format: record.format,
                });
            }
            self.meta = Some(record);
        } else if let Some(name) = key
            .strip_prefix(PART_PREFIX)
            .filter(|name| crate::parts::is_javascript_internal_name(name))
        {
            // Stored before such names were refused: deleted, never served (and not
            // counted: the room took other parts in their places).
            self.leftover_parts.push(StorageOp::Delete {
                key: format!("{PART_PREFIX}{name}"),
            });
        } else if let Some(name) = key.strip_prefix(PART_PREFIX) {
            let record: PartRecord = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            self.parts.insert(
                name.to_owned(),
                PartState {
                    version: record.version,
                    value: record.value,
                },
            );
        } else if key.starts_with(PENDING_PREFIX) {
            let mut gift: PendingGift = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            gift.recovered = true;
            self.pending.insert(gift.charge.request, gift);
        } else if let Some(n) = key.strip_prefix(UNKNOWN_PREFIX) {
            let n: u64 = n.parse().map_err(|_| corrupt())?;
            let unknown = crate::gifts::OutcomeUnknown::decode(n, &value).ok_or_else(corrupt)?;
            self.outcomes_unknown.insert(n, unknown);
            if self.outcomes_unknown.len() > GIFT_OUTCOMES_UNKNOWN_MAX {
                return Err(corrupt());
            }
        } else if let Some(seq) = key.strip_prefix(STAFF_COMMENT_PREFIX) {
            let seq: u64 = seq.parse().map_err(|_| corrupt())?;
            let (author, role): (String, Role) = decode_whole(&value).ok_or_else(corrupt)?;
            self.staff_comments.push((seq, author, role));
        } else if let Some(record) = key.strip_prefix(KINDS_PREFIX) {
            let record: u64 = record.parse().map_err(|_| corrupt())?;
            let words: Vec<u64> = decode_whole(&value).ok_or_else(corrupt)?;
            if words.len() != 64 {
                return Err(corrupt());
            }
            self.kinds.insert(record, words);
        } else if let Some(user) = key.strip_prefix(GIFTER_PREFIX) {
            let record: Gifter = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            self.gifters.insert(user.to_owned(), record);
        } else if key == POLL_KEY {
            self.poll = Some(postcard::from_bytes(&value).map_err(|_| corrupt())?);
        } else if let Some(rest) = key.strip_prefix(VOTE_PREFIX) {
            let (poll_id, user) = rest.split_once('/').ok_or_else(corrupt)?;
            let [option] = value[..] else {
                return Err(corrupt());
            };
            self.votes
                .push((poll_id.to_owned(), user.to_owned(), option));
        } else if key == QUIZ_KEY {
            let record: QuizRecord = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            let mut fold = QuizFold::new(record);
            // Answers fed before the quiz's record wait for it (any order is taken).
            for (quiz_id, question, user, answer) in std::mem::take(&mut self.answers) {
                self.fold_answer(&mut fold, quiz_id, question, user, answer);
            }
            self.quiz = Some(fold);
        } else if let Some(rest) = key.strip_prefix(ANSWER_PREFIX) {
            let mut fields = rest.splitn(3, '/');
            let (Some(quiz_id), Some(question), Some(user)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(corrupt());
            };
            let question: u16 = question.parse().map_err(|_| corrupt())?;
            let answer: AnswerRecord = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            let answer = (quiz_id.to_owned(), question, user.to_owned(), answer);
            match self.quiz.take() {
                Some(mut fold) => {
                    let (quiz_id, question, user, answer) = answer;
                    self.fold_answer(&mut fold, quiz_id, question, user, answer);
                    self.quiz = Some(fold);
                }
                None => self.answers.push(answer),
            }
        } else if key.starts_with(QA_PREFIX) {
            self.questions
                .push(postcard::from_bytes(&value).map_err(|_| corrupt())?);
        } else if let Some(rest) = key.strip_prefix(UPVOTE_PREFIX) {
            let (number, user) = rest.split_once('/').ok_or_else(corrupt)?;
            let number: u64 = number.parse().map_err(|_| corrupt())?;
            self.upvotes.push((number, user.to_owned()));
        } else if key == PINNED_KEY {
            self.pinned = postcard::from_bytes(&value).map_err(|_| corrupt())?;
        } else if let Some(id) = key.strip_prefix(CLICKS_PREFIX) {
            let count: u64 = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            self.clicks.insert(id.to_owned(), count);
        } else if let Some(rest) = key.strip_prefix(CLICKER_PREFIX) {
            // A product id holds no '/'; the user is the rest.
            let (id, user) = rest.split_once('/').ok_or_else(corrupt)?;
            self.clickers.push((id.to_owned(), user.to_owned()));
        } else if key == SETTINGS_KEY {
            self.settings = postcard::from_bytes(&value).map_err(|_| corrupt())?;
        } else if let Some(user) = key.strip_prefix(MUTE_PREFIX) {
            // Before ranks were kept a mute was its end alone; a moderator's rank
            // (the lowest staff's) leaves such a mute as anyone could lift it then.
            let (until_ms, by_role) = decode_whole::<(Option<u64>, Role)>(&value)
                .or_else(|| {
                    decode_whole::<Option<u64>>(&value).map(|until_ms| (until_ms, Role::Moderator))
                })
                .ok_or_else(corrupt)?;
            self.muted
                .insert(user.to_owned(), Mute { until_ms, by_role });
        } else if let Some(user) = key.strip_prefix(BAN_PREFIX) {
            let by_role = if value.is_empty() {
                Role::Moderator
            } else {
                decode_whole(&value).ok_or_else(corrupt)?
            };
            self.banned.insert(user.to_owned(), by_role);
        } else if key == LIKES_LAST_KEY {
            self.likes_last = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            if self.likes_last.len() > LIKE_FRAMES_STORED_PER_TICK_MAX {
                return Err(corrupt());
            }
        } else if key == SHARDS_KEY {
            self.shard_counts = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            let growing = self.shard_counts.windows(2).all(|w| w[0] < w[1]);
            let bounded = self.shard_counts.len() <= SHARD_COUNTS_MAX
                && self
                    .shard_counts
                    .iter()
                    .all(|&c| (1..=SHARDS_PER_ROOM_MAX).contains(&c));
            if !growing || !bounded {
                return Err(corrupt());
            }
        } else if key == SHARD_UPS_KEY {
            self.shard_ups = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            if self.shard_ups.len() > usize::from(SHARDS_PER_ROOM_MAX) {
                return Err(corrupt());
            }
        } else if key.starts_with(AUDIT_PREFIX) {
            self.audit
                .push(postcard::from_bytes(&value).map_err(|_| corrupt())?);
        } else if key.starts_with(ACTION_PREFIX) {
            let record: ActionRecord = postcard::from_bytes(&value).map_err(|_| corrupt())?;
            self.actions.insert(record.action.seq, record);
        } else if key.starts_with(HOST_KEY_PREFIX) {
            // The host's own (`HOST_KEY_PREFIX`).
        } else {
            return Err(RestoreError::UnknownKey { key });
        }
        Ok(())
    }

    /// An answer once the quiz's record is known: scored into the quiz, or (of another
    /// quiz: a crash between opening a new one and deleting them all) deleted over the
    /// next ticks (`purge`).
    fn fold_answer(
        &mut self,
        fold: &mut QuizFold,
        quiz_id: String,
        question: u16,
        user: String,
        answer: AnswerRecord,
    ) {
        if quiz_id == fold.id() {
            fold.answer(question, user, answer);
        } else {
            mark_stale_answer(&mut self.stale_answers, quiz_id, question, user);
        }
    }

    /// The room the records make, woken at `now_ms`. `Ok(None)` when the room was never
    /// created.
    pub fn finish(self, now_ms: u64) -> Result<Option<Room>, RestoreError> {
        let RoomLoader {
            meta,
            parts,
            leftover_parts,
            actions,
            gifters,
            pending,
            outcomes_unknown,
            poll,
            votes,
            quiz,
            answers,
            stale_answers,
            questions,
            upvotes,
            pinned,
            clicks,
            clickers,
            settings,
            muted,
            banned,
            mut audit,
            shard_counts,
            shard_ups,
            likes_last,
            kinds,
            staff_comments,
        } = self;
        let Some(meta) = meta else {
            return Ok(None);
        };
        assert!(
            parts.len() <= ROOM_PARTS_MAX,
            "more parts stored than allowed"
        );
        let mut room = Room::empty(meta.info, meta.epoch, meta.created_ms);
        room.status = meta.status;
        room.likes_total = meta.likes_total;
        // A total held back by its publication interval when the object stopped is
        // published to the sockets kept across the restart at the first flush.
        if meta.likes_total > 0 {
            room.likes_changed(now_ms);
        }
        // Frames acknowledged without a sequence number in the last tick before the crash
        // (likes, product clicks, commands, parts, questions): a retry is acknowledged
        // again, not applied again.
        for (user, client_id) in likes_last {
            room.buckets(&user, now_ms).remember(client_id, None);
        }
        room.online_refresh_at_ms = now_ms;
        room.parts = PartSet::restored(
            meta.total_version,
            parts
                .into_iter()
                .map(|(name, part): (String, PartState)| (name, part.version, part.value)),
        );
        room.outputs
            .extend(leftover_parts.into_iter().map(Output::Store));
        // Ask again for every charge that had no answer: the service answers a charge it
        // already made as `replayed`, and a recovered gift is announced then.
        room.gifts = crate::gifts::Gifts::restored(gifters, pending, outcomes_unknown);
        for gift in room.gifts.pending() {
            room.outputs.push_back(Output::Charge(gift.charge.clone()));
        }
        // Records of an older poll or quiz (a crash between opening a new one and
        // deleting them all) are deleted over the next ticks (`purge`).
        let poll_id = poll.as_ref().map(PollRecord::id);
        let (current_votes, stale_votes): (Vec<_>, Vec<_>) = votes
            .into_iter()
            .partition(|(id, _, _)| Some(id) == poll_id.as_ref());
        let stale_votes = stale_votes
            .into_iter()
            .map(|(id, user, _)| StorageOp::delete_vote(&id, &user))
            .collect();
        room.purge.ops(stale_votes);
        room.poll = poll.map(|record| {
            let votes = current_votes
                .into_iter()
                .map(|(_, user, option)| (user, option));
            Poll::restore(record, votes)
        });
        // A vote is stored when it arrives, the `poll` part at the tick after it: a crash
        // between left the part behind the votes. Published at the next tick.
        let parts = &room.parts;
        let behind = room.poll.as_mut().is_some_and(|poll| {
            let public = poll.record.tallies_public && poll.record.phase == PollPhase::Open;
            let shown = parts.get("poll").map(|part| part.value.as_str());
            poll.tallies_dirty = public && shown != Some(poll.part_json().as_str());
            poll.tallies_dirty
        });
        if behind {
            room.schedule_tick(now_ms);
        }
        // Answers with no quiz record: of a quiz replaced, deleted like its stale ones.
        let mut stale_answers = stale_answers;
        for (quiz_id, question, user, _) in answers {
            mark_stale_answer(&mut stale_answers, quiz_id, question, user);
        }
        for (quiz_id, users) in stale_answers {
            room.purge.answers(quiz_id, users.into_iter().collect());
        }
        room.quiz = quiz.map(QuizFold::finish);
        room.qa = Qa::restore(questions, upvotes);
        let shown = room.parts.get("qa").map(|part| part.value.as_str());
        room.qa.republish_if_behind(shown, settings.qa_approval);
        room.products.pinned = pinned;
        room.products.clicks = clicks;
        room.products.restore_clickers(clickers);
        room.products.count_pinned();
        room.moderation.settings = settings;
        let forgotten = room.moderation.restore_staff_comments(staff_comments);
        room.outputs.extend(
            forgotten
                .into_iter()
                .map(|seq| Output::Store(StorageOp::delete_staff_comment(seq))),
        );
        room.moderation.muted = muted;
        room.moderation.banned = banned;
        audit.sort_by_key(|e| e.n);
        room.moderation.audit_next = audit.last().map_or(0, |e| e.n + 1);
        room.moderation.audit = audit.into();
        // Actions are written before the meta that counts them, so the stored ring may
        // hold at most what meta knows; anything newer was never acknowledged.
        let actions: Vec<ActionRecord> = actions
            .into_values()
            .filter(|r| r.action.seq <= meta.last_seq)
            .collect();
        // Their client ids go to the ring, which answers their retries (`seq_of`).
        let client_ids: Vec<(u64, u64)> = actions
            .iter()
            .filter_map(|r| r.client_id.map(|client_id| (r.action.seq, client_id)))
            .collect();
        room.ring = crate::ring::ActionRing::restored(
            meta.last_seq,
            actions.into_iter().map(|r| r.action),
            crate::ring::NotComments::restored(kinds),
        );
        for (seq, client_id) in client_ids {
            room.ring.remember_client_id(seq, client_id);
        }
        room.evict_old_actions(now_ms);
        // This instance numbers its batches from 1 again: every shard gets a snapshot.
        room.shards.counts = shard_counts;
        room.shards.up_applied = shard_ups
            .into_iter()
            .map(|r| {
                let applied = crate::sharding::UpApplied {
                    instance: r.instance,
                    seq: r.seq,
                };
                (r.shard, applied)
            })
            .collect();
        room.shards.snapshot_wanted = room.shards.all().collect();
        if !room.shards.snapshot_wanted.is_empty() {
            room.schedule_tick(now_ms);
        }
        Ok(Some(room))
    }
}

/// Marks a stale answer for deletion: its user's bit `question` under its quiz.
fn mark_stale_answer(
    stale: &mut BTreeMap<String, HashMap<String, u32>>,
    quiz_id: String,
    question: u16,
    user: String,
) {
    let answered = stale.entry(quiz_id).or_default().entry(user).or_default();
    // Stored question numbers are below `QUIZ_QUESTIONS_MAX` (at most 32, asserted in
    // quiz.rs); a larger one is not the room's record, and is passed over.
    if let Some(bit) = 1u32.checked_shl(u32::from(question)) {
        *answered |= bit;
    }
}

impl Room {
    /// Rebuilds a room from its stored records (any order). `Ok(None)` when the room was
    /// never created. Records the room did not write are an error, not ignored, except
    /// the host's own (`HOST_KEY_PREFIX`).
    pub fn restore(
        records: impl IntoIterator<Item = (String, Vec<u8>)>,
        now_ms: u64,
    ) -> Result<Option<Room>, RestoreError> {
        let mut loader = RoomLoader::new();
        for (key, value) in records {
            loader.feed(key, value)?;
        }
        loader.finish(now_ms)
    }
}
