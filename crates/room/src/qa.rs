//! Q&A: viewers ask (length-limited), upvote once each; staff approve (when the room
//! holds questions for approval), mark answered, or hide.
//!
//! Invariants: a question's upvotes are its set of upvoters, so a user counts once;
//! only visible or answered questions are listed to viewers;
//! at most `QA_QUESTIONS_MAX` questions and `QA_UPVOTES_MAX` upvotes are held
//! (`upvotes_total` is the sum of the questions' upvoter sets). Questions are stored as `qa/<n>` and
//! upvotes one record per user (`upvote/<n>/<user>`), so a restart rebuilds the counts.

use crate::Refusal;
use ovation_proto::limits::{
    QA_PART_ENTRIES_MAX, QA_QUESTIONS_MAX, QA_QUESTIONS_PER_USER_MAX, QA_UPVOTES_MAX,
    QA_UPVOTES_PUBLISH_INTERVAL_MS,
};
use ovation_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QaStatus {
    /// Waiting for a moderator's approval (seen by staff only).
    Pending,
    Visible,
    Answered,
    Hidden,
}

impl QaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QaStatus::Pending => "pending",
            QaStatus::Visible => "visible",
            QaStatus::Answered => "answered",
            QaStatus::Hidden => "hidden",
        }
    }
}

/// A stored question (`qa/<n>`); its upvotes are stored beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QaRecord {
    pub number: u64,
    pub user: String,
    pub name: String,
    pub text: String,
    pub ts_ms: u64,
    pub status: QaStatus,
}

pub(crate) fn question_id(number: u64) -> String {
    format!("a{number}")
}

pub(crate) fn parse_question_id(id: &str) -> Option<u64> {
    id.strip_prefix('a')?.parse().ok()
}

pub(crate) struct QaQuestion {
    pub record: QaRecord,
    upvoters: HashSet<String>,
}

impl QaQuestion {
    pub fn upvotes(&self) -> u64 {
        self.upvoters.len() as u64
    }

    fn json(&self) -> serde_json::Value {
        let r = &self.record;
        serde_json::json!({
            "id": question_id(r.number), "user": r.user, "name": r.name, "text": r.text,
            "ts_ms": r.ts_ms, "status": r.status.as_str(), "upvotes": self.upvotes(),
        })
    }
}

#[derive(Default)]
pub(crate) struct Qa {
    pub questions: BTreeMap<u64, QaQuestion>,
    pub next_number: u64,
    /// Upvotes counted, every question's together.
    upvotes_total: usize,
    /// The `qa` part needs republishing (next tick): a question's text or status changed.
    pub part_dirty: bool,
    /// Upvotes changed the `qa` part's counts: republished at the first tick from
    /// `upvotes_publish_earliest_ms` (`QA_UPVOTES_PUBLISH_INTERVAL_MS` after the last).
    upvotes_dirty: bool,
    upvotes_publish_earliest_ms: u64,
    /// The moderators' queue changed (next tick).
    pub queue_dirty: bool,
}

pub(crate) enum UpvoteOutcome {
    Counted,
    Repeat,
}

impl Qa {
    pub fn restore(records: Vec<QaRecord>, upvotes: impl IntoIterator<Item = (u64, String)>) -> Qa {
        let mut qa = Qa::default();
        for record in records {
            qa.next_number = qa.next_number.max(record.number + 1);
            qa.questions.insert(
                record.number,
                QaQuestion {
                    record,
                    upvoters: HashSet::new(),
                },
            );
        }
        for (number, user) in upvotes {
            if let Some(q) = qa.questions.get_mut(&number) {
                q.upvoters.insert(user);
            }
        }
        qa.upvotes_total = qa.questions.values().map(|q| q.upvoters.len()).sum();
        qa
    }

    pub fn ask(
        &mut self,
        user: &str,
        name: &str,
        text: String,
        approval: bool,
        now_ms: u64,
    ) -> Result<&QaRecord, Refusal> {
        if self.questions.len() >= QA_QUESTIONS_MAX {
            return Err(Refusal::new(
                ErrorCode::TooMany,
                format!("a room holds at most {QA_QUESTIONS_MAX} questions"),
            ));
        }
        let asked = self
            .questions
            .values()
            .filter(|q| q.record.user == user)
            .take(QA_QUESTIONS_PER_USER_MAX)
            .count();
        if asked >= QA_QUESTIONS_PER_USER_MAX {
            return Err(Refusal::new(
                ErrorCode::TooMany,
                format!("one user asks at most {QA_QUESTIONS_PER_USER_MAX} questions in a room"),
            ));
        }
        let number = self.next_number.max(1);
        self.next_number = number + 1;
        let status = if approval {
            self.queue_dirty = true;
            QaStatus::Pending
        } else {
            self.part_dirty = true;
            QaStatus::Visible
        };
        let record = QaRecord {
            number,
            user: user.to_owned(),
            name: name.to_owned(),
            text,
            ts_ms: now_ms,
            status,
        };
        let question = self.questions.entry(number).or_insert(QaQuestion {
            record,
            upvoters: HashSet::new(),
        });
        Ok(&question.record)
    }

    /// What `upvote` would do, changing nothing: count it (`Counted`), answer it as a
    /// repeat, or refuse it. The room takes the user's reaction allowance only for an
    /// upvote that counts.
    pub fn check_upvote(&self, id: &str, user: &str) -> Result<UpvoteOutcome, Refusal> {
        let question = parse_question_id(id)
            .and_then(|n| self.questions.get(&n))
            .filter(|q| matches!(q.record.status, QaStatus::Visible | QaStatus::Answered))
            .ok_or(Refusal::new(ErrorCode::NotFound, "no such question"))?;
        if question.upvoters.contains(user) {
            return Ok(UpvoteOutcome::Repeat);
        }
        if self.upvotes_total >= QA_UPVOTES_MAX {
            return Err(Refusal::new(
                ErrorCode::TooMany,
                format!("a room counts at most {QA_UPVOTES_MAX} upvotes"),
            ));
        }
        Ok(UpvoteOutcome::Counted)
    }

    pub fn upvote(&mut self, id: &str, user: &str) -> Result<UpvoteOutcome, Refusal> {
        if let UpvoteOutcome::Repeat = self.check_upvote(id, user)? {
            return Ok(UpvoteOutcome::Repeat);
        }
        let question = parse_question_id(id)
            .and_then(|n| self.questions.get_mut(&n))
            .expect("checked");
        question.upvoters.insert(user.to_owned());
        self.upvotes_total += 1;
        self.upvotes_dirty = true;
        Ok(UpvoteOutcome::Counted)
    }

    /// Whether the `qa` part is to be republished at `now_ms` (a question changed, or
    /// upvotes did and the interval since the last republish of upvotes has passed); if
    /// so, it is taken as republished.
    pub fn take_part_due(&mut self, now_ms: u64) -> bool {
        let upvotes_due = self.upvotes_dirty && self.upvotes_publish_earliest_ms <= now_ms;
        if !(self.part_dirty || upvotes_due) {
            return false;
        }
        // Only a republish carrying new upvotes starts the interval: a question asked
        // right before does not hold the first upvotes back.
        if std::mem::take(&mut self.upvotes_dirty) {
            self.upvotes_publish_earliest_ms = now_ms + QA_UPVOTES_PUBLISH_INTERVAL_MS;
        }
        self.part_dirty = false;
        true
    }

    /// A restored room's `qa` part as stored (`shown`): when it is behind the questions
    /// (upvotes counted in the last interval before a stop, never published), it goes
    /// out at the first tick.
    pub fn republish_if_behind(&mut self, shown: Option<&str>, approval: bool) {
        if !self.questions.is_empty() && shown != Some(self.part_json(approval).as_str()) {
            self.upvotes_dirty = true;
        }
    }

    /// When upvotes held back by the interval are due to go out.
    pub fn upvotes_due_at_ms(&self) -> Option<u64> {
        self.upvotes_dirty
            .then_some(self.upvotes_publish_earliest_ms)
    }

    /// Staff sets a question's status; returns the changed record.
    pub fn set_status(&mut self, id: &str, status: QaStatus) -> Option<&QaRecord> {
        let question = parse_question_id(id).and_then(|n| self.questions.get_mut(&n))?;
        let was = question.record.status;
        question.record.status = status;
        if was == QaStatus::Pending || status == QaStatus::Pending {
            self.queue_dirty = true;
        }
        self.part_dirty = true;
        Some(&question.record)
    }

    /// The `qa` part: visible and answered questions, most upvoted first (then oldest).
    pub fn part_json(&self, approval: bool) -> String {
        let mut listed: Vec<&QaQuestion> = self
            .questions
            .values()
            .filter(|q| matches!(q.record.status, QaStatus::Visible | QaStatus::Answered))
            .collect();
        let count = listed.len();
        listed.sort_by(|a, b| {
            b.upvotes()
                .cmp(&a.upvotes())
                .then(a.record.number.cmp(&b.record.number))
        });
        let questions: Vec<serde_json::Value> = listed
            .into_iter()
            .take(QA_PART_ENTRIES_MAX)
            .map(QaQuestion::json)
            .collect();
        serde_json::json!({ "approval": approval, "count": count, "questions": questions })
            .to_string()
    }

    /// The approval queue for moderators (a direct message), oldest first.
    pub fn queue_json(&self) -> String {
        let pending: Vec<&QaQuestion> = self
            .questions
            .values()
            .filter(|q| q.record.status == QaStatus::Pending)
            .collect();
        let count = pending.len();
        let listed: Vec<serde_json::Value> = pending
            .into_iter()
            .take(QA_PART_ENTRIES_MAX)
            .map(QaQuestion::json)
            .collect();
        serde_json::json!({ "type": "qa_queue", "count": count, "pending": listed }).to_string()
    }

    pub fn has_pending(&self) -> bool {
        self.questions
            .values()
            .any(|q| q.record.status == QaStatus::Pending)
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    /// The `qa` part lists `QA_PART_ENTRIES_MAX` questions and counts all of them; one
    /// more question is counted but not listed.
    #[test]
    fn the_qa_part_lists_qa_part_entries_max_questions_and_counts_one_past() {
        let mut qa = Qa::default();
        for i in 0..=QA_PART_ENTRIES_MAX {
            let user = format!("u{i}");
            qa.ask(&user, "U", format!("question {i}"), false, 0)
                .unwrap();
        }
        let part: serde_json::Value = serde_json::from_str(&qa.part_json(false)).unwrap();
        assert_eq!(
            part["questions"].as_array().unwrap().len(),
            QA_PART_ENTRIES_MAX
        );
        assert_eq!(part["count"], QA_PART_ENTRIES_MAX + 1);
    }

    /// One user asks `QA_QUESTIONS_PER_USER_MAX` questions (pending or visible), one
    /// more is refused `too_many`, and everyone else still asks (the room's own bound,
    /// `QA_QUESTIONS_MAX`, is tested with the other interaction bounds).
    #[test]
    fn one_user_cannot_fill_the_room_s_questions() {
        let mut qa = Qa::default();
        for i in 0..QA_QUESTIONS_PER_USER_MAX {
            qa.ask("greedy", "G", format!("q{i}"), i % 2 == 0, 0)
                .unwrap();
        }
        let refused = qa.ask("greedy", "G", "one more".into(), false, 0);
        assert_eq!(refused.err().map(|r| r.code), Some(ErrorCode::TooMany));
        qa.ask("other", "O", "why?".into(), false, 0).unwrap();
    }
}
