//! Quizzes: a sequence of questions, each Open → Result (scored at its close), one
//! counted answer per user and question, scores by correctness and speed.
//!
//! Invariants: a user's first answer to a question is the one that counts; points are
//! given only when a question closes, exactly once per question (`scored` counts the
//! closed questions); every score is the sum of the points of that user's correct answers,
//! so a room rebuilt from the stored answers (`answer/<quiz>/<question>/<user>`) has the
//! same scores and ranks.

use crate::polls::check_cue;
use crate::Refusal;
use ovation_proto::limits::{
    POLL_OPTION_BYTES_MAX, POLL_QUESTION_BYTES_MAX, QUIZ_LEADERBOARD_ENTRIES_MAX, QUIZ_OPTIONS_MAX,
    QUIZ_OPTIONS_MIN, QUIZ_PARTICIPANTS_MAX, QUIZ_POINTS_CORRECT, QUIZ_POINTS_SPEED_MAX,
    QUIZ_QUESTIONS_MAX, QUIZ_WINDOW_MS_DEFAULT, QUIZ_WINDOW_MS_MAX, QUIZ_WINDOW_MS_MIN,
};
use ovation_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One question of a quiz spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuizQuestionSpec {
    pub question: String,
    pub options: Vec<String>,
    /// The correct option (from 0). Viewers see it only in the question's result.
    pub correct: u8,
    /// `QUIZ_WINDOW_MS_DEFAULT` when absent.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// Opens with this cue in the video (see the video-sync design).
    #[serde(default)]
    pub cue: Option<String>,
}

/// What the host asks for when creating a quiz; the body of `POST …/quizzes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuizSpec {
    pub title: String,
    pub questions: Vec<QuizQuestionSpec>,
}

impl QuizSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.title.trim().is_empty() || self.title.len() > POLL_QUESTION_BYTES_MAX {
            return Err(format!("a title is 1..={POLL_QUESTION_BYTES_MAX} bytes"));
        }
        if self.questions.is_empty() || self.questions.len() > QUIZ_QUESTIONS_MAX {
            return Err(format!("a quiz has 1..={QUIZ_QUESTIONS_MAX} questions"));
        }
        for (i, q) in self.questions.iter().enumerate() {
            let at = |m: String| format!("question {i}: {m}");
            if q.question.trim().is_empty() || q.question.len() > POLL_QUESTION_BYTES_MAX {
                return Err(at(format!(
                    "a question is 1..={POLL_QUESTION_BYTES_MAX} bytes"
                )));
            }
            if !(QUIZ_OPTIONS_MIN..=QUIZ_OPTIONS_MAX).contains(&q.options.len()) {
                return Err(at(format!(
                    "a question has {QUIZ_OPTIONS_MIN}..={QUIZ_OPTIONS_MAX} options"
                )));
            }
            if q.options
                .iter()
                .any(|o| o.trim().is_empty() || o.len() > POLL_OPTION_BYTES_MAX)
            {
                return Err(at(format!(
                    "an option is 1..={POLL_OPTION_BYTES_MAX} bytes"
                )));
            }
            if usize::from(q.correct) >= q.options.len() {
                return Err(at("`correct` names no option".into()));
            }
            if let Some(w) = q.window_ms {
                if !(QUIZ_WINDOW_MS_MIN..=QUIZ_WINDOW_MS_MAX).contains(&w) {
                    return Err(at(format!(
                        "window_ms is {QUIZ_WINDOW_MS_MIN}..={QUIZ_WINDOW_MS_MAX}"
                    )));
                }
            }
            check_cue(q.cue.as_deref()).map_err(at)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuizPhase {
    /// Created; no question asked yet.
    New,
    /// Question `current` takes answers.
    Open,
    /// Question `current` is closed and scored: its correct option and the ranking show.
    Result,
    /// The host ended the quiz (or its last result is out and the host ended it).
    Ended,
}

impl QuizPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            QuizPhase::New => "new",
            QuizPhase::Open => "open",
            QuizPhase::Result => "result",
            QuizPhase::Ended => "ended",
        }
    }
}

/// The stored definition and phase (`quiz`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuizRecord {
    pub number: u64,
    pub spec: QuizSpec,
    pub phase: QuizPhase,
    /// The question asked last (meaningful from Open on).
    pub current: u16,
    /// The window of every question asked so far, in order (scores depend on them).
    pub asked: Vec<QuestionWindow>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuestionWindow {
    pub opened_ms: u64,
    pub closes_at_ms: u64,
    pub closed_ms: Option<u64>,
}

impl QuizRecord {
    pub fn id(&self) -> String {
        format!("z{}", self.number)
    }
}

/// A stored answer: the option, when it came, and the user's display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AnswerRecord {
    pub option: u8,
    pub at_ms: u64,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Participant {
    pub name: String,
    pub score: u64,
    /// Points won in the last scored question (None: did not answer it).
    pub last_points: Option<u64>,
    /// The scored questions this participant answered (bit `q`), whose stored answer
    /// records go when the next quiz opens.
    answered: u32,
}
const _: () = assert!(QUIZ_QUESTIONS_MAX <= u32::BITS as usize);

/// A quiz rebuilt from its record and its stored answers one at a time, in any order:
/// each answer to a closed question is scored as it comes (points, the questions its
/// participant answered, the last scored question's tallies and points), and only the
/// current question's answers are held. A big quiz's millions of stored answers (up to
/// `QUIZ_PARTICIPANTS_MAX` × `QUIZ_QUESTIONS_MAX`) never sit in memory at once: the room
/// object pages through them at wake-up.
pub(crate) struct QuizFold {
    quiz: Quiz,
    /// The quiz's id (`z<n>`): its answers are stored under it.
    id: String,
    /// Questions closed (and so scored) in the record.
    closed_count: usize,
    /// The record's question: its answers are held (for repeats, or to score at close).
    current: u16,
}

impl QuizFold {
    pub fn new(record: QuizRecord) -> QuizFold {
        let open = record.phase == QuizPhase::Open;
        let closed_count = record.asked.len() - usize::from(open);
        let current = record.current;
        let mut quiz = Quiz::create(record.number, record.spec.clone());
        quiz.record = record;
        if closed_count > 0 {
            let last = &quiz.record.spec.questions[closed_count - 1];
            quiz.last_tallies = vec![0; last.options.len()];
        }
        quiz.scored = u16::try_from(closed_count).expect("bounded by QUIZ_QUESTIONS_MAX");
        QuizFold {
            id: quiz.id(),
            quiz,
            closed_count,
            current,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// One stored answer; an answer to a question the record never asked (or an option
    /// past its question's) is passed over.
    pub fn answer(&mut self, question: u16, user: String, answer: AnswerRecord) {
        let index = usize::from(question);
        let Some(spec) = self.quiz.record.spec.questions.get(index) else {
            return;
        };
        if usize::from(answer.option) >= spec.options.len() {
            return;
        }
        if index < self.closed_count {
            let window = self.quiz.record.asked[index];
            let points = if answer.option == spec.correct {
                Quiz::points(window, answer.at_ms)
            } else {
                0
            };
            let last_scored = index + 1 == self.closed_count;
            if last_scored {
                self.quiz.last_tallies[usize::from(answer.option)] += 1;
            }
            let participant = self.quiz.participants.entry(user.clone()).or_default();
            // The name of the latest question answered, as the live quiz keeps it,
            // whatever order the answers come in.
            if participant.answered >> question <= 1 {
                participant.name.clone_from(&answer.name);
            }
            participant.score += points;
            participant.answered |= 1 << question;
            if last_scored {
                participant.last_points = Some(points);
            }
        }
        if question == self.current {
            self.quiz.answers.insert(user, answer);
        }
    }

    pub fn finish(mut self) -> Quiz {
        if self.quiz.record.phase == QuizPhase::Open {
            let participants = &self.quiz.participants;
            self.quiz.newcomers = self
                .quiz
                .answers
                .keys()
                .filter(|user| !participants.contains_key(*user))
                .count();
        }
        self.quiz
    }
}

/// A participant's standing after a question was scored.
struct RankedParticipant {
    user: String,
    score: u64,
    last_points: Option<u64>,
    rank: usize,
}

/// The score notices of a scored question not sent yet, in ranking order: a quiz of
/// `QUIZ_PARTICIPANTS_MAX` participants holds a standing each (about 60 bytes and the
/// user id: 20–30 MB at the most, against about 50 MB of messages and their copies for
/// each shard built at once before), and builds `QUIZ_SCORE_NOTICES_PER_TICK_MAX`
/// messages a flush.
pub(crate) struct ScoreNotices {
    quiz: String,
    question: u16,
    participants: usize,
    due: std::vec::IntoIter<RankedParticipant>,
}

impl ScoreNotices {
    pub fn quiz(&self) -> &str {
        &self.quiz
    }

    /// The users not told yet.
    pub fn into_users(self) -> HashSet<String> {
        self.due.map(|p| p.user).collect()
    }

    /// The next `count` notices (fewer at the end) to users `reachable` says a notice
    /// can reach; the others are passed over, costing nothing of `count`.
    pub fn take(&mut self, count: usize, reachable: impl Fn(&str) -> bool) -> Vec<ScoreNotice> {
        self.due
            .by_ref()
            .filter(|p| reachable(&p.user))
            .take(count)
            .map(|p| {
                let payload = serde_json::json!({
                    "type": "quiz_score",
                    "quiz": self.quiz,
                    "question": self.question,
                    "answered": p.last_points.is_some(),
                    "correct": p.last_points.is_some_and(|points| points > 0),
                    "points": p.last_points.unwrap_or(0),
                    "score": p.score,
                    "rank": p.rank,
                    "participants": self.participants,
                })
                .to_string();
                ScoreNotice {
                    user: p.user,
                    payload,
                }
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.due.len() == 0
    }
}

/// What each participant learns after a question: their own result and rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScoreNotice {
    pub user: String,
    pub payload: String,
}

pub(crate) struct Quiz {
    pub record: QuizRecord,
    /// Answers to the open question.
    answers: HashMap<String, AnswerRecord>,
    /// Those of `answers` from users no earlier question scored: with `participants`,
    /// the distinct users the quiz would score (`QUIZ_PARTICIPANTS_MAX`).
    newcomers: usize,
    pub participants: HashMap<String, Participant>,
    /// Tallies of the last scored question (shown in its result).
    last_tallies: Vec<u64>,
    /// Closed questions scored so far.
    scored: u16,
}

impl Quiz {
    pub fn create(number: u64, spec: QuizSpec) -> Quiz {
        debug_assert!(spec.validate().is_ok());
        Quiz {
            record: QuizRecord {
                number,
                spec,
                phase: QuizPhase::New,
                current: 0,
                asked: Vec::new(),
            },
            answers: HashMap::new(),
            newcomers: 0,
            participants: HashMap::new(),
            last_tallies: Vec::new(),
            scored: 0,
        }
    }

    /// Rebuilds a quiz from its record and every stored answer `(question, user, answer)`,
    /// in any order (see `QuizFold`; the room's restore feeds one a time).
    #[cfg(test)]
    pub fn restore(
        record: QuizRecord,
        answers: impl IntoIterator<Item = (u16, String, AnswerRecord)>,
    ) -> Quiz {
        let mut fold = QuizFold::new(record);
        for (question, user, answer) in answers {
            fold.answer(question, user, answer);
        }
        fold.finish()
    }

    pub fn id(&self) -> String {
        self.record.id()
    }

    fn question(&self) -> &QuizQuestionSpec {
        &self.record.spec.questions[usize::from(self.record.current)]
    }

    /// Opens the next question (the first one after New). `Err` when a question is open
    /// or none is left.
    pub fn next(&mut self, now_ms: u64) -> Result<(), String> {
        let next = match self.record.phase {
            QuizPhase::New => 0,
            QuizPhase::Result => self.record.current + 1,
            QuizPhase::Open => return Err("a question is open: close it first".into()),
            QuizPhase::Ended => return Err("the quiz has ended".into()),
        };
        if usize::from(next) >= self.record.spec.questions.len() {
            return Err("no question left: end the quiz".into());
        }
        self.record.current = next;
        self.record.phase = QuizPhase::Open;
        let window_ms = self.question().window_ms.unwrap_or(QUIZ_WINDOW_MS_DEFAULT);
        self.record.asked.push(QuestionWindow {
            opened_ms: now_ms,
            closes_at_ms: now_ms + window_ms,
            closed_ms: None,
        });
        assert_eq!(self.record.asked.len(), usize::from(next) + 1);
        self.answers.clear();
        self.newcomers = 0;
        Ok(())
    }

    /// The window of the question asked last.
    pub fn window(&self) -> Option<QuestionWindow> {
        self.record.asked.last().copied()
    }

    /// When the open question closes.
    pub fn closes_at_ms(&self) -> Option<u64> {
        (self.record.phase == QuizPhase::Open).then(|| {
            self.window()
                .expect("an open question was asked")
                .closes_at_ms
        })
    }

    pub fn answer(
        &mut self,
        user: &str,
        name: &str,
        question: u16,
        option: u8,
        now_ms: u64,
    ) -> Result<Option<AnswerRecord>, Refusal> {
        let closed = || Refusal::new(ErrorCode::PollClosed, "this question is closed");
        if question != self.record.current {
            // An answer to a question scored already is a repeat (acknowledged), as it
            // is after its close: the retry of an answer whose ack was lost, after the
            // room forgot its client id (a restart) and moved on to the next question.
            let scored = question < self.record.current
                && self
                    .participants
                    .get(user)
                    .is_some_and(|p| p.answered & (1 << question) != 0);
            return if scored { Ok(None) } else { Err(closed()) };
        }
        if usize::from(option) >= self.question().options.len() {
            return Err(Refusal::new(ErrorCode::Invalid, "no such option"));
        }
        // An answer taken is a repeat (acknowledged) even after the close: usually the
        // retry of an answer whose acknowledgement was lost.
        if self.answers.contains_key(user) {
            return Ok(None);
        }
        // The window is the rule, not the phase alone: the phase changes when the room's
        // timer runs, and an answer between the deadline and that run was scored.
        let window_over = self.closes_at_ms().is_some_and(|at| now_ms >= at);
        if self.record.phase != QuizPhase::Open || window_over {
            return Err(closed());
        }
        // Counted once each: a returning participant's answer takes no new place.
        let newcomer = !self.participants.contains_key(user);
        if newcomer && self.participants.len() + self.newcomers >= QUIZ_PARTICIPANTS_MAX {
            return Err(Refusal::new(
                ErrorCode::TooMany,
                format!("a quiz scores at most {QUIZ_PARTICIPANTS_MAX} participants"),
            ));
        }
        self.newcomers += usize::from(newcomer);
        let record = AnswerRecord {
            option,
            at_ms: now_ms,
            name: name.to_owned(),
        };
        self.answers.insert(user.to_owned(), record.clone());
        Ok(Some(record))
    }

    /// Whose answers this quiz stored, and to which questions (bit `q`): those scored,
    /// and the open question's.
    pub fn answered_by_user(&self) -> Vec<(String, u32)> {
        let mut answered: HashMap<&str, u32> = self
            .participants
            .iter()
            .map(|(user, p)| (user.as_str(), p.answered))
            .collect();
        if self.record.phase == QuizPhase::Open {
            for user in self.answers.keys() {
                *answered.entry(user.as_str()).or_default() |= 1 << self.record.current;
            }
        }
        answered
            .into_iter()
            .map(|(user, questions)| (user.to_owned(), questions))
            .collect()
    }

    pub fn answers(&self) -> usize {
        self.answers.len()
    }

    /// Closes the open question and scores it. False when none is open.
    pub fn close(&mut self, now_ms: u64) -> bool {
        if self.record.phase != QuizPhase::Open {
            return false;
        }
        self.record
            .asked
            .last_mut()
            .expect("an open question was asked")
            .closed_ms = Some(now_ms);
        self.score_current();
        self.record.phase = QuizPhase::Result;
        true
    }

    /// Closes the open question on a staff command: not within `QUIZ_WINDOW_MS_MIN` (the
    /// shortest window a question may have) of the previous question's close. Closing
    /// scores it (the ranking, a notice due to every participant, up to
    /// `QUIZ_PARTICIPANTS_MAX`): a moderator alternating `next_question` and
    /// `close_question` as fast as its frames go made 19 scorings in a tick.
    pub fn close_by_staff(&mut self, now_ms: u64) -> Result<(), String> {
        if self.record.phase != QuizPhase::Open {
            return Err("no question is open".into());
        }
        let asked = &self.record.asked;
        let previous_close = asked.len().checked_sub(2).and_then(|i| asked[i].closed_ms);
        if let Some(closable_ms) = previous_close.map(|at| at + QUIZ_WINDOW_MS_MIN) {
            if now_ms < closable_ms {
                return Err(format!(
                    "questions are closed at most one per {QUIZ_WINDOW_MS_MIN} ms (each \
                     scoring tells every participant): close this one in {} ms",
                    closable_ms - now_ms
                ));
            }
        }
        self.close(now_ms);
        Ok(())
    }

    pub fn end(&mut self, now_ms: u64) -> bool {
        if self.record.phase == QuizPhase::Ended {
            return false;
        }
        self.close(now_ms);
        self.record.phase = QuizPhase::Ended;
        true
    }

    /// Points for a correct answer at `at_ms`: all the speed points at the opening, none
    /// at the close (answers are only taken in between).
    fn points(window: QuestionWindow, at_ms: u64) -> u64 {
        let window_ms = window.closes_at_ms.saturating_sub(window.opened_ms).max(1);
        let left_ms = window.closes_at_ms.saturating_sub(at_ms).min(window_ms);
        QUIZ_POINTS_CORRECT + QUIZ_POINTS_SPEED_MAX * left_ms / window_ms
    }

    fn score_current(&mut self) {
        let question = self.record.current;
        assert_eq!(
            self.scored, question,
            "each question is scored once, in order"
        );
        self.scored += 1;
        let correct = self.question().correct;
        let window = self.record.asked[usize::from(question)];
        let mut tallies = vec![0u64; self.question().options.len()];
        for participant in self.participants.values_mut() {
            participant.last_points = None;
        }
        let answers = std::mem::take(&mut self.answers);
        for (user, answer) in &answers {
            tallies[usize::from(answer.option)] += 1;
            let points = if answer.option == correct {
                Quiz::points(window, answer.at_ms)
            } else {
                0
            };
            let participant = self.participants.entry(user.clone()).or_default();
            participant.name.clone_from(&answer.name);
            participant.score += points;
            participant.last_points = Some(points);
            participant.answered |= 1 << question;
        }
        self.answers = answers;
        self.last_tallies = tallies;
    }

    /// Participants by score (highest first, then user id): the ranking.
    fn ranking(&self) -> Vec<(&String, &Participant)> {
        let mut ranked: Vec<(&String, &Participant)> = self.participants.iter().collect();
        ranked.sort_by(|a, b| b.1.score.cmp(&a.1.score).then_with(|| a.0.cmp(b.0)));
        ranked
    }

    /// The notices of the question just scored, one per participant, to be sent a
    /// few at a time (`ScoreNotices`): first to `first` (those the last question's
    /// notices had not reached yet), then the others, each in ranking order.
    pub fn score_notices_due(&self, first: HashSet<String>) -> ScoreNotices {
        let ranked = self.ranking();
        let mut rank = 0;
        let mut previous = None;
        let mut due = Vec::with_capacity(ranked.len());
        for (position, (user, p)) in ranked.into_iter().enumerate() {
            if previous != Some(p.score) {
                rank = position + 1;
                previous = Some(p.score);
            }
            due.push(RankedParticipant {
                user: user.clone(),
                score: p.score,
                last_points: p.last_points,
                rank,
            });
        }
        let participants = due.len();
        if !first.is_empty() {
            // Stable: each part keeps the ranking order.
            let (mut unreached, reached): (Vec<_>, Vec<_>) =
                due.into_iter().partition(|p| first.contains(&p.user));
            unreached.extend(reached);
            due = unreached;
        }
        ScoreNotices {
            quiz: self.id(),
            question: self.record.current,
            participants,
            due: due.into_iter(),
        }
    }

    /// One notice per participant after a question is scored: points, score and rank
    /// (equal scores share a rank).
    #[cfg(test)]
    pub fn score_notices(&self) -> Vec<ScoreNotice> {
        let mut due = self.score_notices_due(HashSet::new());
        due.take(usize::MAX, |_| true)
    }

    pub fn score_of(&self, user: &str) -> Option<u64> {
        self.participants.get(user).map(|p| p.score)
    }

    /// The `quiz` part: the question (its correct option only once scored), the
    /// leaderboard top 10, and the phase with its times.
    pub fn part_json(&self) -> String {
        let r = &self.record;
        let mut value = serde_json::json!({
            "id": self.id(),
            "title": r.spec.title,
            "phase": r.phase.as_str(),
            "question_count": r.spec.questions.len(),
            "participants": self.participants.len(),
        });
        if !r.asked.is_empty() {
            let q = self.question();
            let window = self.window().expect("asked");
            let mut question = serde_json::json!({
                "index": r.current,
                "text": q.question,
                "options": q.options,
                "cue": q.cue,
                "opened_ms": window.opened_ms,
                "closes_at_ms": window.closes_at_ms,
                "closed_ms": window.closed_ms,
            });
            if r.phase != QuizPhase::Open && usize::from(self.scored) > usize::from(r.current) {
                question["correct"] = serde_json::json!(q.correct);
                question["tallies"] = serde_json::json!(self.last_tallies);
            }
            value["question"] = question;
        }
        let top: Vec<serde_json::Value> = self
            .ranking()
            .into_iter()
            .take(QUIZ_LEADERBOARD_ENTRIES_MAX)
            .map(|(user, p)| serde_json::json!({"user": user, "name": p.name, "score": p.score}))
            .collect();
        value["leaderboard"] = serde_json::Value::Array(top);
        value.to_string()
    }

    /// Live answer count for hosts and moderators (a direct message each tick).
    pub fn answers_json(&self) -> String {
        serde_json::json!({
            "type": "quiz_answers",
            "id": self.id(),
            "question": self.record.current,
            "answers": self.answers.len(),
        })
        .to_string()
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    /// A correct answer gets `QUIZ_POINTS_CORRECT` plus at most `QUIZ_POINTS_SPEED_MAX`:
    /// all of it at the opening (never more, even for a clock before it), none at the
    /// close, and less one millisecond after the opening.
    #[test]
    fn speed_points_are_at_most_quiz_points_speed_max() {
        let window = QuestionWindow {
            opened_ms: 1_000,
            closes_at_ms: 11_000,
            closed_ms: None,
        };
        let most = QUIZ_POINTS_CORRECT + QUIZ_POINTS_SPEED_MAX;
        assert_eq!(Quiz::points(window, 1_000), most);
        assert_eq!(Quiz::points(window, 0), most);
        assert!(Quiz::points(window, 1_001) < most);
        assert_eq!(Quiz::points(window, 11_000), QUIZ_POINTS_CORRECT);
    }
}
