//! Staff commands: what hosts and moderators do to a live room, from the admin API or
//! over their socket (`ClientFrame::Command`), with one code path and one audit trail.
//!
//! Invariants: viewers can run no staff command (refused `forbidden` before anything
//! changes); ending the room needs a host or admin; every command that changed the room
//! is written to the audit trail, which is stored with it.

use crate::moderation::{check_slow_mode, normalise_words, AuditEntry, Mute};
use crate::products::{ClickOutcome, ProductCard};
use crate::qa::{QaStatus, UpvoteOutcome};
use crate::quiz::{Quiz, QuizPhase, QuizSpec, ScoreNotices};
use crate::Refusal;
use crate::{
    polls, AdminCommand, AdminError, AdminReply, ConnectionId, Identity, Output, PollPhase,
    PollSpec, Room, RoomStatus, StorageOp,
};
use ovation_proto::limits::{
    ANNOUNCEMENT_BYTES_MAX, MUTE_MS_MAX, MUTE_MS_MIN, QA_QUESTION_BYTES_MAX,
    QUIZ_SCORE_NOTICES_PER_TICK_MAX, REMOVALS_REMEMBERED_MAX, USER_ID_BYTES_MAX,
};
use ovation_proto::{ActionBody, CloseCode, ErrorCode, Event, Role};
use serde::{Deserialize, Serialize};

/// One staff command. JSON: `{"command": "<name>", …fields}`; the admin API's routes
/// build these, and a staff socket sends them as `ClientFrame::Command`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum StaffCommand {
    CreatePoll {
        spec: PollSpec,
    },
    ClosePoll {
        id: String,
    },
    RevealPoll {
        id: String,
    },
    CreateQuiz {
        spec: QuizSpec,
    },
    /// Opens the quiz's next question (the first after creation).
    NextQuestion {
        id: String,
    },
    /// Closes the open question before its window ends (it is scored then).
    CloseQuestion {
        id: String,
    },
    EndQuiz {
        id: String,
    },
    PinProduct {
        product: ProductCard,
    },
    UnpinProduct,
    /// Q&A: hold new questions for approval (or not).
    QaSettings {
        approval: bool,
    },
    QaApprove {
        id: String,
    },
    QaAnswer {
        id: String,
    },
    QaHide {
        id: String,
    },
    /// Mutes a user: their comments and questions reach no one. `duration_ms` absent:
    /// until unmuted.
    Mute {
        user: String,
        #[serde(default)]
        duration_ms: Option<u64>,
    },
    Unmute {
        user: String,
    },
    /// Bans a user: their sockets close (`banned`) and reconnecting is refused.
    Ban {
        user: String,
    },
    Unban {
        user: String,
    },
    /// Removes a comment (by sequence number) for everyone.
    DeleteComment {
        seq: u64,
    },
    /// Least interval between two comments of one viewer; 0 turns slow mode off.
    SlowMode {
        interval_ms: u64,
    },
    /// Replaces the word filter (case-insensitive substrings).
    WordFilter {
        words: Vec<String>,
    },
    /// Pins an announcement; `null` text unpins it.
    Announce {
        text: Option<String>,
    },
    /// Ends the room (hosts and admins only).
    EndRoom,
}

impl StaffCommand {
    /// The commands `POST /v1/rooms/{room}/moderation` takes (the others have their own
    /// routes).
    pub const MODERATION: [&'static str; 8] = [
        "mute",
        "unmute",
        "ban",
        "unban",
        "delete_comment",
        "slow_mode",
        "word_filter",
        "announce",
    ];

    /// A moderation command (mute, ban, delete, slow mode, word filter, announcement).
    pub fn is_moderation(&self) -> bool {
        matches!(
            self,
            StaffCommand::Mute { .. }
                | StaffCommand::Unmute { .. }
                | StaffCommand::Ban { .. }
                | StaffCommand::Unban { .. }
                | StaffCommand::DeleteComment { .. }
                | StaffCommand::SlowMode { .. }
                | StaffCommand::WordFilter { .. }
                | StaffCommand::Announce { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            StaffCommand::CreatePoll { .. } => "create_poll",
            StaffCommand::ClosePoll { .. } => "close_poll",
            StaffCommand::RevealPoll { .. } => "reveal_poll",
            StaffCommand::CreateQuiz { .. } => "create_quiz",
            StaffCommand::NextQuestion { .. } => "next_question",
            StaffCommand::CloseQuestion { .. } => "close_question",
            StaffCommand::EndQuiz { .. } => "end_quiz",
            StaffCommand::PinProduct { .. } => "pin_product",
            StaffCommand::UnpinProduct => "unpin_product",
            StaffCommand::QaSettings { .. } => "qa_settings",
            StaffCommand::QaApprove { .. } => "qa_approve",
            StaffCommand::QaAnswer { .. } => "qa_answer",
            StaffCommand::QaHide { .. } => "qa_hide",
            StaffCommand::Mute { .. } => "mute",
            StaffCommand::Unmute { .. } => "unmute",
            StaffCommand::Ban { .. } => "ban",
            StaffCommand::Unban { .. } => "unban",
            StaffCommand::DeleteComment { .. } => "delete_comment",
            StaffCommand::SlowMode { .. } => "slow_mode",
            StaffCommand::WordFilter { .. } => "word_filter",
            StaffCommand::Announce { .. } => "announce",
            StaffCommand::EndRoom => "end_room",
        }
    }

    /// What the audit trail says it applied to.
    fn detail(&self) -> String {
        match self {
            StaffCommand::CreatePoll { spec } => spec.question.clone(),
            StaffCommand::CreateQuiz { spec } => spec.title.clone(),
            StaffCommand::ClosePoll { id }
            | StaffCommand::RevealPoll { id }
            | StaffCommand::NextQuestion { id }
            | StaffCommand::CloseQuestion { id }
            | StaffCommand::EndQuiz { id }
            | StaffCommand::QaApprove { id }
            | StaffCommand::QaAnswer { id }
            | StaffCommand::QaHide { id } => id.clone(),
            StaffCommand::PinProduct { product } => product.id.clone(),
            StaffCommand::QaSettings { approval } => format!("approval={approval}"),
            StaffCommand::Mute { user, duration_ms } => match duration_ms {
                Some(ms) => format!("{user} for {ms} ms"),
                None => user.clone(),
            },
            StaffCommand::Unmute { user }
            | StaffCommand::Ban { user }
            | StaffCommand::Unban { user } => user.clone(),
            StaffCommand::DeleteComment { seq } => format!("seq {seq}"),
            StaffCommand::SlowMode { interval_ms } => format!("{interval_ms} ms"),
            StaffCommand::WordFilter { words } => format!("{} words", words.len()),
            StaffCommand::Announce { text } => text.clone().unwrap_or_else(|| "(unpinned)".into()),
            StaffCommand::UnpinProduct | StaffCommand::EndRoom => String::new(),
        }
    }
}

pub use ovation_proto::SYSTEM_SENDER;

fn refused(message: impl Into<String>) -> AdminError {
    AdminError::Refused(message.into())
}

/// Whether `by` may run `command` at all: staff only, and only the host ends the room.
fn may_run(by: &Identity, command: &StaffCommand) -> Result<(), AdminError> {
    if !by.role.is_staff() || (matches!(command, StaffCommand::EndRoom) && by.role < Role::Host) {
        return Err(AdminError::Forbidden);
    }
    Ok(())
}

impl Room {
    /// Runs a staff command for `by` (from the admin API or a staff socket).
    pub(crate) fn staff(
        &mut self,
        by: &Identity,
        command: StaffCommand,
        now_ms: u64,
    ) -> Result<AdminReply, AdminError> {
        may_run(by, &command)?;
        let name = command.name();
        let detail = command.detail();
        let reply = self.run_staff(by, command, now_ms)?;
        let (entry, dropped) = self
            .moderation
            .audit(&by.user, by.role, name, detail, now_ms);
        self.store(StorageOp::put_audit(&entry));
        if let Some(n) = dropped {
            self.store(StorageOp::delete_audit(n));
        }
        Ok(reply)
    }

    fn store(&mut self, op: StorageOp) {
        self.outputs.push_back(Output::Store(op));
    }

    fn run_staff(
        &mut self,
        by: &Identity,
        command: StaffCommand,
        now_ms: u64,
    ) -> Result<AdminReply, AdminError> {
        match command {
            StaffCommand::CreatePoll { spec } => self.create_poll(spec, now_ms),
            StaffCommand::ClosePoll { id } => {
                self.find_poll(&id)?;
                self.poll_changed(|poll| poll.close(now_ms), now_ms);
                Ok(self.poll_reply())
            }
            StaffCommand::RevealPoll { id } => {
                self.find_poll(&id)?;
                self.poll_changed(|poll| poll.reveal(now_ms), now_ms);
                Ok(self.poll_reply())
            }
            StaffCommand::CreateQuiz { spec } => {
                spec.validate().map_err(AdminError::Invalid)?;
                if self
                    .quiz
                    .as_ref()
                    .is_some_and(|q| q.record.phase != QuizPhase::Ended)
                {
                    return Err(refused("a quiz is running: end it first"));
                }
                let number = self.quiz.as_ref().map_or(1, |q| q.record.number + 1);
                // The previous quiz's answers are no longer needed (its result is in its
                // part and the log); left stored, a restore would read them all again.
                // Deleted over the next ticks (`purge`): a big quiz has millions.
                if let Some(previous) = &self.quiz {
                    self.purge
                        .answers(previous.id(), previous.answered_by_user());
                }
                self.quiz = Some(Quiz::create(number, spec));
                self.quiz_changed(false, now_ms);
                Ok(self.quiz_reply())
            }
            StaffCommand::NextQuestion { id } => {
                self.find_quiz(&id)?
                    .next(now_ms)
                    .map_err(AdminError::Refused)?;
                self.quiz_changed(false, now_ms);
                Ok(self.quiz_reply())
            }
            StaffCommand::CloseQuestion { id } => {
                self.find_quiz(&id)?
                    .close_by_staff(now_ms)
                    .map_err(AdminError::Refused)?;
                self.quiz_changed(true, now_ms);
                Ok(self.quiz_reply())
            }
            StaffCommand::EndQuiz { id } => {
                let quiz = self.find_quiz(&id)?;
                let was_open = quiz.record.phase == QuizPhase::Open;
                if !quiz.end(now_ms) {
                    return Err(refused("the quiz has ended"));
                }
                self.quiz_changed(was_open, now_ms);
                Ok(self.quiz_reply())
            }
            StaffCommand::PinProduct { product } => {
                product.validate().map_err(AdminError::Invalid)?;
                let id = product.id.clone();
                self.products
                    .pin(product, now_ms)
                    .map_err(AdminError::Refused)?;
                self.products_changed(now_ms);
                Ok(AdminReply::Done(serde_json::json!({ "pinned": id })))
            }
            StaffCommand::UnpinProduct => {
                self.products.pinned = None;
                self.products_changed(now_ms);
                Ok(AdminReply::Done(serde_json::json!({ "pinned": null })))
            }
            StaffCommand::QaSettings { approval } => {
                self.moderation.settings.qa_approval = approval;
                self.store(StorageOp::put_settings(&self.moderation.settings));
                self.qa.part_dirty = true;
                self.schedule_tick(now_ms);
                Ok(AdminReply::Done(
                    serde_json::json!({ "approval": approval }),
                ))
            }
            StaffCommand::QaApprove { id } => self.qa_status(&id, QaStatus::Visible, now_ms),
            StaffCommand::QaAnswer { id } => self.qa_status(&id, QaStatus::Answered, now_ms),
            StaffCommand::QaHide { id } => self.qa_status(&id, QaStatus::Hidden, now_ms),
            StaffCommand::Mute { user, duration_ms } => {
                self.check_target(by, &user)?;
                if duration_ms.is_some_and(|d| !(MUTE_MS_MIN..=MUTE_MS_MAX).contains(&d)) {
                    return Err(AdminError::Invalid(format!(
                        "duration_ms is {MUTE_MS_MIN}..={MUTE_MS_MAX} (leave it out to mute \
                         until unmute)"
                    )));
                }
                // A moderator's short mute would end a host's mute early.
                if !self.moderation.may_change_mute(&user, by.role, now_ms) {
                    return Err(AdminError::Forbidden);
                }
                let until_ms = duration_ms.map(|d| now_ms.saturating_add(d));
                let mute = Mute {
                    until_ms,
                    by_role: by.role,
                };
                let expired = self
                    .moderation
                    .mute(&user, mute, now_ms)
                    .map_err(AdminError::Refused)?;
                for expired in expired {
                    self.store(StorageOp::delete_mute(&expired));
                }
                self.store(StorageOp::put_mute(&user, &mute));
                let notice = serde_json::json!({
                    "type": "muted", "until_ms": until_ms, "by": by.user,
                })
                .to_string();
                self.notify(&user, &notice, now_ms);
                Ok(AdminReply::Done(
                    serde_json::json!({ "muted": user, "until_ms": until_ms }),
                ))
            }
            StaffCommand::Unmute { user } => {
                if !self.moderation.muted.contains_key(&user) {
                    return Err(AdminError::NotFound("this user is not muted"));
                }
                if !self.moderation.may_change_mute(&user, by.role, now_ms) {
                    return Err(AdminError::Forbidden);
                }
                self.moderation.muted.remove(&user);
                self.store(StorageOp::delete_mute(&user));
                let notice = serde_json::json!({ "type": "unmuted", "by": by.user }).to_string();
                self.notify(&user, &notice, now_ms);
                Ok(AdminReply::Done(serde_json::json!({ "unmuted": user })))
            }
            StaffCommand::Ban { user } => {
                self.check_target(by, &user)?;
                // Banned again by a lower rank, the ban would pass to that rank.
                if !self.moderation.may_change_ban(&user, by.role) {
                    return Err(AdminError::Forbidden);
                }
                self.moderation
                    .ban(&user, by.role)
                    .map_err(AdminError::Refused)?;
                self.store(StorageOp::put_ban(&user, by.role));
                let disconnected = self.connections_of(&user).count();
                self.close_user(&user, CloseCode::Banned, &format!("by {}", by.user), now_ms);
                Ok(AdminReply::Done(
                    serde_json::json!({ "banned": user, "disconnected": disconnected }),
                ))
            }
            StaffCommand::Unban { user } => {
                if !self.moderation.banned.contains_key(&user) {
                    return Err(AdminError::NotFound("this user is not banned"));
                }
                if !self.moderation.may_change_ban(&user, by.role) {
                    return Err(AdminError::Forbidden);
                }
                self.moderation.banned.remove(&user);
                self.store(StorageOp::delete_ban(&user));
                // The shards the user may be placed on (at most `SHARD_COUNTS_MAX`) are
                // told in their next batch, or the user stays refused on their shard for
                // the rest of the show. (Told with a whole state each, as before, a
                // moderator's ban/unban churn kept the room sending states.) A ban still
                // waiting to go to a shard (banned and unbanned within one tick) is
                // withdrawn, or the shard would apply it after the unban.
                if self.shards.is_sharded() {
                    for closes in self.shards.close_users.values_mut() {
                        closes.retain(|(banned, code)| {
                            !(banned == &user && *code == CloseCode::Banned.code())
                        });
                    }
                    for shard in self.shards.of_user(&user) {
                        let unbanned = self.shards.unbanned.entry(shard).or_default();
                        unbanned.insert(user.clone());
                    }
                    self.schedule_tick(now_ms);
                }
                Ok(AdminReply::Done(serde_json::json!({ "unbanned": user })))
            }
            StaffCommand::DeleteComment { seq } => {
                // A comment older than the ring (30 s, 1,024 actions) is removed too: the
                // viewers who show it drop it, and the recording leaves it out.
                if self.moderation.removed.contains(&seq) {
                    return Err(AdminError::NotFound("this comment was removed already"));
                }
                self.ring.check_comment(seq).map_err(AdminError::NotFound)?;
                // Staff remove their own words and those of users below them, as they
                // mute and ban (a moderator not the host's or another moderator's): the
                // author's role when they wrote it counts (remembered for staff), and
                // their sockets' now. A viewer's comment older than the ring has no
                // author the room can check, nor needs one.
                let staff_author = self.moderation.staff_comment(seq);
                let author = staff_author
                    .map(|(author, _)| author)
                    .or_else(|| self.ring.author_of(seq));
                let role_then = staff_author.map(|(_, role)| role);
                if author.is_some_and(|author| {
                    author != by.user && !self.ranks_above(by, author, role_then)
                }) {
                    return Err(AdminError::Forbidden);
                }
                let removed = self
                    .ring
                    .remove_comment(seq)
                    .map_err(AdminError::NotFound)?;
                if removed == crate::ring::CommentRemoved::Kept {
                    self.store(StorageOp::delete_action(seq));
                }
                // Remembered either way: a retry once the ring moved on would find the
                // number older than the ring, and remove it a second time.
                let removed = &mut self.moderation.removed;
                if removed.len() >= REMOVALS_REMEMBERED_MAX {
                    removed.pop_front();
                }
                removed.push_back(seq);
                let removal = self.push_action(
                    &by.user,
                    &by.name,
                    ActionBody::Removed { seq },
                    None,
                    now_ms,
                );
                Ok(AdminReply::Done(
                    serde_json::json!({ "removed": seq, "seq": removal }),
                ))
            }
            StaffCommand::SlowMode { interval_ms } => {
                check_slow_mode(interval_ms).map_err(AdminError::Invalid)?;
                self.moderation.settings.slow_mode_ms = interval_ms;
                self.store(StorageOp::put_settings(&self.moderation.settings));
                Ok(AdminReply::Done(
                    serde_json::json!({ "slow_mode_ms": interval_ms }),
                ))
            }
            StaffCommand::WordFilter { words } => {
                let words = normalise_words(words).map_err(AdminError::Invalid)?;
                let count = words.len();
                self.moderation.settings.words = words;
                self.store(StorageOp::put_settings(&self.moderation.settings));
                Ok(AdminReply::Done(serde_json::json!({ "words": count })))
            }
            StaffCommand::Announce { text } => {
                let value = match text {
                    Some(text) => {
                        if text.trim().is_empty() || text.len() > ANNOUNCEMENT_BYTES_MAX {
                            return Err(AdminError::Invalid(format!(
                                "an announcement is 1..={ANNOUNCEMENT_BYTES_MAX} bytes"
                            )));
                        }
                        serde_json::json!({ "text": text, "by": by.name, "ts_ms": now_ms })
                    }
                    None => serde_json::json!({ "text": null }),
                };
                let version = self.put_part("announcement".into(), value.to_string(), now_ms);
                Ok(AdminReply::PartSet { version })
            }
            StaffCommand::EndRoom => self.admin(AdminCommand::End, now_ms),
        }
    }

    /// Staff cannot mute or ban themselves or the room's host.
    fn check_target(&self, by: &Identity, user: &str) -> Result<(), AdminError> {
        if user.is_empty() || user.len() > USER_ID_BYTES_MAX {
            return Err(AdminError::Invalid(format!(
                "a user id is 1..={USER_ID_BYTES_MAX} bytes"
            )));
        }
        if user == by.user || user == self.info.host_user {
            return Err(refused("the host and yourself cannot be muted or banned"));
        }
        if !self.ranks_above(by, user, None) {
            return Err(AdminError::Forbidden);
        }
        Ok(())
    }

    /// Whether `by` may act on `user`'s account or words: staff act only on those below
    /// them (a moderator on viewers, a host on moderators too; an admin on anyone), and
    /// no one but an admin on the room's host. The room knows a user's role from their
    /// sockets and from `known_role` (what it remembers of them), so another user not
    /// connected now, and not remembered, is taken as a viewer.
    fn ranks_above(&self, by: &Identity, user: &str, known_role: Option<Role>) -> bool {
        if by.role == Role::Admin {
            return true;
        }
        if user == self.info.host_user {
            return false;
        }
        let target_role = self
            .connections_of(user)
            .map(|id| self.connections[&id].identity.role)
            .chain(known_role)
            .max();
        target_role.is_none_or(|role| role < by.role)
    }

    /// A system message (a direct message from `SYSTEM_SENDER`) to these connections.
    fn send_system(&mut self, targets: &[ConnectionId], payload: &str, now_ms: u64) {
        for &target in targets {
            let event = Event::Direct {
                from: SYSTEM_SENDER.into(),
                payload: payload.to_owned(),
                ts_ms: now_ms,
            };
            self.enqueue(target, event, now_ms);
        }
    }

    /// A system message to every connection of one user (on the room or its shards).
    fn notify(&mut self, user: &str, payload: &str, now_ms: u64) {
        let event = Event::Direct {
            from: SYSTEM_SENDER.into(),
            payload: payload.to_owned(),
            ts_ms: now_ms,
        };
        self.send_to_user(user, event, now_ms);
    }

    /// A system message to every ready host and moderator connection.
    pub(crate) fn notify_staff(&mut self, payload: &str, now_ms: u64) {
        let targets: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.ready && c.remote.is_none() && c.identity.role.is_staff())
            .map(|(id, _)| *id)
            .collect();
        self.send_system(&targets, payload, now_ms);
    }

    // ---- Quizzes ----

    fn find_quiz(&mut self, id: &str) -> Result<&mut Quiz, AdminError> {
        self.quiz
            .as_mut()
            .filter(|q| q.id() == id)
            .ok_or(AdminError::NotFound(
                "no such quiz (only the room's latest)",
            ))
    }

    fn quiz_reply(&self) -> AdminReply {
        let quiz = self.quiz.as_ref().expect("a quiz exists");
        AdminReply::Done(serde_json::json!({
            "id": quiz.id(), "phase": quiz.record.phase.as_str(),
            "question": quiz.record.current, "participants": quiz.participants.len(),
            "answers": quiz.answers(),
        }))
    }

    /// Stores the quiz record and republishes the `quiz` part; after a question was
    /// scored, tells every participant their points, score and rank, at most
    /// `QUIZ_SCORE_NOTICES_PER_TICK_MAX` a flush (`send_score_notices`). Those of an
    /// earlier question not sent yet are not sent: this question's tell the same and more.
    pub(crate) fn quiz_changed(&mut self, scored: bool, now_ms: u64) {
        let quiz = self.quiz.as_ref().expect("a quiz exists");
        let record = StorageOp::put_quiz(&quiz.record);
        let value = quiz.part_json();
        // An ended room has no one left to tell (a question its timer closed after the end).
        if scored && self.status != RoomStatus::Ended {
            // A question scored while the last one's notices are still going out: its own
            // replace them (they tell the same and more), first to those the last ones
            // had not reached, so the bottom of a big ranking is not skipped question
            // after question. Another quiz's final notices still go out first.
            let same_quiz = self
                .score_notices
                .back()
                .is_some_and(|due| due.quiz() == quiz.id());
            let unreached = if same_quiz {
                self.score_notices.pop_back().map(ScoreNotices::into_users)
            } else {
                None
            };
            let due = quiz.score_notices_due(unreached.unwrap_or_default());
            if self.score_notices.len() >= 2 {
                self.score_notices.pop_front();
            }
            self.score_notices.push_back(due);
        }
        self.store(record);
        self.put_part("quiz".into(), value, now_ms);
        if scored {
            self.schedule_tick(now_ms);
        }
    }

    /// A flush's score notices: the next `QUIZ_SCORE_NOTICES_PER_TICK_MAX`, the rest at
    /// the next flushes (each flush carries at most that many, however long a tick is).
    /// An unsharded room passes over participants with no socket (nothing would carry
    /// their notice); a big room cannot tell, its viewers being on its shards.
    pub(crate) fn send_score_notices(&mut self, now_ms: u64) {
        let sharded = self.shards.is_sharded();
        if sharded && self.shards.any_behind() {
            // They wait here (one entry a participant), not in a shard's held answers,
            // where past `SHARD_HELD_ANSWERS_MAX` they would be dropped.
            return;
        }
        let mut notices = Vec::new();
        while notices.len() < QUIZ_SCORE_NOTICES_PER_TICK_MAX {
            let Some(due) = self.score_notices.front_mut() else {
                break;
            };
            let connections = &self.connections;
            let reachable = |user: &str| sharded || connections.of_user(user).next().is_some();
            notices.extend(due.take(QUIZ_SCORE_NOTICES_PER_TICK_MAX - notices.len(), reachable));
            if due.is_empty() {
                self.score_notices.pop_front();
            }
        }
        for notice in notices {
            self.notify(&notice.user, &notice.payload, now_ms);
        }
    }

    pub(crate) fn on_answer(
        &mut self,
        identity: &Identity,
        quiz_id: &str,
        question: u16,
        option: u8,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        let Some(quiz) = self.quiz.as_mut().filter(|q| q.id() == quiz_id) else {
            return Err(Refusal::new(ErrorCode::NotFound, "no such quiz"));
        };
        match quiz.answer(&identity.user, &identity.name, question, option, now_ms) {
            Ok(Some(answer)) => {
                self.quiz_answers_dirty = true;
                let record = StorageOp::put_answer(quiz_id, question, &identity.user, &answer);
                self.store(record);
                self.schedule_tick(now_ms);
                Ok(None)
            }
            Ok(None) => Ok(None),
            Err(refusal) => Err(refusal),
        }
    }

    // ---- Q&A ----

    fn qa_status(
        &mut self,
        id: &str,
        status: QaStatus,
        now_ms: u64,
    ) -> Result<AdminReply, AdminError> {
        let record = self
            .qa
            .set_status(id, status)
            .ok_or(AdminError::NotFound("no such question"))?
            .clone();
        self.store(StorageOp::put_qa(&record));
        self.schedule_tick(now_ms);
        Ok(AdminReply::Done(
            serde_json::json!({ "id": id, "status": status.as_str() }),
        ))
    }

    pub(crate) fn on_ask(
        &mut self,
        identity: &Identity,
        text: String,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        // As for a comment: an empty question is `invalid`, a long one `too_long` (the
        // SDK refuses both before sending, with the same codes).
        if text.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::Invalid, "a question needs text"));
        }
        if text.len() > QA_QUESTION_BYTES_MAX {
            return Err(Refusal::new(
                ErrorCode::TooLong,
                format!("a question is 1..={QA_QUESTION_BYTES_MAX} bytes"),
            ));
        }
        self.check_speech(identity, &text, now_ms)?;
        self.buckets(&identity.user, now_ms)
            .comments
            .take(1, now_ms)
            .map_err(Refusal::slow_down)?;
        let approval = self.moderation.settings.qa_approval;
        let record = self
            .qa
            .ask(&identity.user, &identity.name, text, approval, now_ms)?
            .clone();
        self.store(StorageOp::put_qa(&record));
        self.schedule_tick(now_ms);
        Ok(None)
    }

    pub(crate) fn on_upvote(
        &mut self,
        identity: &Identity,
        question_id: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        // An upvote that counts is a reaction: one user's sockets cannot upvote their way
        // through the questions faster than they may react. A repeat or a refusal costs
        // nothing.
        if let UpvoteOutcome::Counted = self.qa.check_upvote(question_id, &identity.user)? {
            self.buckets(&identity.user, now_ms)
                .reactions
                .take(1, now_ms)
                .map_err(Refusal::slow_down)?;
        }
        match self.qa.upvote(question_id, &identity.user)? {
            UpvoteOutcome::Counted => {
                let number = crate::qa::parse_question_id(question_id).expect("found");
                self.store(StorageOp::put_upvote(number, &identity.user));
                self.schedule_tick(now_ms);
            }
            UpvoteOutcome::Repeat => {}
        }
        Ok(None)
    }

    /// Mutes and the word filter apply to everything a viewer writes for others.
    pub(crate) fn check_speech(
        &mut self,
        identity: &Identity,
        text: &str,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if identity.role.is_staff() {
            return Ok(());
        }
        if self.moderation.is_muted(&identity.user, now_ms) {
            return Err(Refusal::new(ErrorCode::Muted, "a moderator muted you"));
        }
        if self.moderation.is_filtered(text) {
            return Err(Refusal::new(
                ErrorCode::Blocked,
                "this text contains a filtered word",
            ));
        }
        Ok(())
    }

    // ---- Products ----

    fn products_changed(&mut self, now_ms: u64) {
        let value = self.products.part_json();
        self.store(StorageOp::put_pinned(self.products.pinned.as_ref()));
        self.put_part("product".into(), value, now_ms);
    }

    pub(crate) fn on_product_click(
        &mut self,
        identity: &Identity,
        product_id: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        // A click that counts is a reaction, as an upvote is; a repeat changes nothing and
        // costs nothing (the overlay still opens the link).
        if let ClickOutcome::Counted = self.products.check_click(product_id, &identity.user)? {
            self.buckets(&identity.user, now_ms)
                .reactions
                .take(1, now_ms)
                .map_err(Refusal::slow_down)?;
        }
        if let ClickOutcome::Counted = self.products.click(product_id, &identity.user)? {
            self.store(StorageOp::put_clicker(product_id, &identity.user));
            self.schedule_tick(now_ms);
        }
        Ok(None)
    }

    /// Once per tick: interaction state that changes per vote/answer/upvote/click goes
    /// out at most once (parts republished, counts to staff, click totals stored).
    pub(crate) fn publish_interactions(&mut self, now_ms: u64) {
        if std::mem::take(&mut self.quiz_answers_dirty) {
            if let Some(payload) = self.quiz.as_ref().map(Quiz::answers_json) {
                self.notify_staff(&payload, now_ms);
            }
        }
        if self.qa.take_part_due(now_ms) {
            let value = self.qa.part_json(self.moderation.settings.qa_approval);
            self.put_part("qa".into(), value, now_ms);
        }
        if std::mem::take(&mut self.qa.queue_dirty) {
            let payload = self.qa.queue_json();
            self.notify_staff(&payload, now_ms);
        }
        let changed = std::mem::take(&mut self.products.clicks_changed);
        if !changed.is_empty() {
            for id in &changed {
                let count = self.products.clicks[id];
                self.store(StorageOp::put_clicks(id, count));
            }
            let payload = self.products.clicks_json();
            self.notify_staff(&payload, now_ms);
        }
    }

    /// What a staff connection learns on joining (the queue and counters it missed).
    pub(crate) fn staff_welcome(&mut self, connection: ConnectionId, now_ms: u64) {
        let mut payloads = Vec::new();
        if self.qa.has_pending() {
            payloads.push(self.qa.queue_json());
        }
        if !self.products.clicks.is_empty() {
            payloads.push(self.products.clicks_json());
        }
        if let Some(poll) = &self.poll {
            payloads.push(poll.tallies_json());
        }
        for payload in payloads {
            self.send_system(&[connection], &payload, now_ms);
        }
    }

    /// The closing times the room's timer must wake for, and upvotes held back.
    pub(crate) fn interaction_deadline(&self) -> Option<u64> {
        // Upvotes held back by their interval wake the room for a tick, unless one is
        // due anyway (the tick publishes them).
        let upvotes = self
            .qa
            .upvotes_due_at_ms()
            .filter(|_| self.pacing.flush_at_ms().is_none());
        let poll = self
            .poll
            .as_ref()
            .filter(|p| p.record.phase == PollPhase::Open)
            .map(|p| p.record.closes_at_ms);
        let quiz = self.quiz.as_ref().and_then(Quiz::closes_at_ms);
        poll.into_iter().chain(quiz).chain(upvotes).min()
    }

    /// Closes what is due: the poll's window, the quiz question's window; and asks for
    /// the tick that publishes upvotes held back until now.
    pub(crate) fn close_due_interactions(&mut self, now_ms: u64) {
        if self.qa.upvotes_due_at_ms().is_some_and(|at| at <= now_ms) {
            self.schedule_tick(now_ms);
        }
        let poll_due = self
            .poll
            .as_ref()
            .is_some_and(|p| p.record.phase == PollPhase::Open && p.record.closes_at_ms <= now_ms);
        if poll_due {
            self.poll_changed(|poll: &mut polls::Poll| poll.close(now_ms), now_ms);
        }
        let quiz_due = self
            .quiz
            .as_ref()
            .and_then(Quiz::closes_at_ms)
            .is_some_and(|at| at <= now_ms);
        if quiz_due {
            self.quiz.as_mut().expect("due").close(now_ms);
            self.quiz_changed(true, now_ms);
        }
    }

    /// One from the staff member's allowance of commands and part writes over sockets.
    pub(crate) fn take_staff_write(
        &mut self,
        identity: &Identity,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        self.buckets(&identity.user, now_ms)
            .staff_writes
            .take(1, now_ms)
            .map_err(Refusal::slow_down)
    }

    /// A staff command sent over a socket: parsed, run, acknowledged with its reply as a
    /// system message to the sender.
    pub(crate) fn on_command(
        &mut self,
        connection: ConnectionId,
        identity: &Identity,
        client_id: u64,
        json: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, Refusal> {
        if !identity.role.is_staff() {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "hosts and moderators only",
            ));
        }
        self.take_staff_write(identity, now_ms)?;
        let command: StaffCommand = serde_json::from_str(json)
            .map_err(|e| Refusal::new(ErrorCode::Invalid, format!("bad command: {e}")))?;
        if matches!(command, StaffCommand::EndRoom)
            && self.status == RoomStatus::Live
            && may_run(identity, &command).is_ok()
        {
            // Ending closes every socket, the sender's too: its answer goes out first,
            // ahead of `RoomEnded` (the caller's `Ack` finds the socket gone and is left
            // out).
            self.reply_to_command(connection, client_id, &AdminReply::Ended, now_ms);
            self.enqueue(
                connection,
                Event::Ack {
                    client_id,
                    seq: None,
                },
                now_ms,
            );
            self.staff(identity, command, now_ms)
                .map_err(Refusal::from)?;
            return Ok(None);
        }
        let reply = self
            .staff(identity, command, now_ms)
            .map_err(Refusal::from)?;
        if self.connections.contains_key(&connection) {
            self.reply_to_command(connection, client_id, &reply, now_ms);
        }
        Ok(None)
    }

    fn reply_to_command(
        &mut self,
        connection: ConnectionId,
        client_id: u64,
        reply: &AdminReply,
        now_ms: u64,
    ) {
        let payload = serde_json::json!({
            "type": "command_reply", "client_id": client_id, "reply": reply.to_json(),
        })
        .to_string();
        self.send_system(&[connection], &payload, now_ms);
    }

    /// The room's audit trail, oldest first.
    pub fn audit_trail(&self) -> impl Iterator<Item = &AuditEntry> {
        self.moderation.audit.iter()
    }

    pub fn is_banned(&self, user: &str) -> bool {
        self.moderation.is_banned(user)
    }

    /// A quiz participant's score.
    pub fn quiz_score(&self, user: &str) -> Option<u64> {
        self.quiz.as_ref().and_then(|q| q.score_of(user))
    }
}
