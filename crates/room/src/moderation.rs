//! Moderation: mutes, bans, slow mode, the word filter, and the room's audit trail.
//!
//! Invariants: at most `MUTED_USERS_MAX` mutes and `BANNED_USERS_MAX` bans are held (more
//! are refused, never silently dropped); filter words are stored lowercase and non-empty;
//! the audit trail holds at most `AUDIT_ENTRIES_MAX` entries in the order of their
//! numbers; a full trail drops the oldest entry of the author holding the most entries
//! (so one author's flood pushes out their own first, and every other author keeps at
//! least an equal share); a running mute or a ban is lifted or changed only by staff of
//! the rank that imposed it or above (an admin always). Every record is stored per key (`mute/<user>`, `ban/<user>`,
//! `settings`, `audit/<n>`) so a restarted room enforces the same rules.

use ovation_proto::limits::{
    AUDIT_DETAIL_BYTES_MAX, AUDIT_ENTRIES_MAX, BANNED_USERS_MAX, MUTED_USERS_MAX, SLOW_MODE_MS_MAX,
    SLOW_MODE_USERS_MAX, STAFF_COMMENTS_REMEMBERED_MAX, WORD_FILTER_WORDS_MAX,
    WORD_FILTER_WORD_BYTES_MAX,
};
use ovation_proto::Role;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Room rules set by staff, stored as one record (`settings`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// Least time between two comments of one viewer; 0 is off.
    pub slow_mode_ms: u64,
    /// Lowercase words; a comment or question containing one is refused `blocked`.
    pub words: Vec<String>,
    /// Questions wait in the moderators' queue until approved.
    pub qa_approval: bool,
}

/// Whether staff of rank `role` may override what a rank `imposed_by` imposed (nothing
/// imposed: anyone): that rank or above, an admin always.
fn may_override(role: Role, imposed_by: Option<Role>) -> bool {
    role == Role::Admin || imposed_by.is_none_or(|by| role >= by)
}

/// One line of the audit trail: who did what to whom, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub n: u64,
    pub ts_ms: u64,
    pub by: String,
    pub role: Role,
    /// The staff command's name (`mute`, `create_poll`, …).
    pub command: String,
    /// What it applied to and how (bounded by `AUDIT_DETAIL_BYTES_MAX`).
    pub detail: String,
}

/// A user's mute: until when (ms; `None` until unmuted), and the rank of the staff who
/// muted them (only that rank or above lifts or shortens it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mute {
    pub until_ms: Option<u64>,
    pub by_role: Role,
}

#[derive(Default)]
pub(crate) struct Moderation {
    pub muted: BTreeMap<String, Mute>,
    /// Banned user → the rank of the staff who banned them (only that rank or above
    /// lifts the ban).
    pub banned: BTreeMap<String, Role>,
    pub settings: Settings,
    /// When each viewer last commented (not stored: slow mode restarts generous), and
    /// the same in the order they commented, to forget the earliest first.
    pub last_comment_ms: HashMap<String, u64>,
    comments_in_order: VecDeque<(u64, String)>,
    pub audit: VecDeque<AuditEntry>,
    pub audit_next: u64,
    /// Numbers a moderator removed, the last `REMOVALS_REMEMBERED_MAX` (not stored: after
    /// a restart a repeat of one older than the ring goes out again, which viewers and
    /// the recording take as the same removal).
    pub removed: VecDeque<u64>,
    /// The last `STAFF_COMMENTS_REMEMBERED_MAX` comments of staff and of the room's host:
    /// (seq, author, the author's role then). Stored (`staff_comment/<seq>`), so a room
    /// object that hibernated or restarted still refuses a lower rank's removal of one.
    staff_comments: VecDeque<(u64, String, Role)>,
}

impl Moderation {
    pub fn is_muted(&self, user: &str, now_ms: u64) -> bool {
        self.muted
            .get(user)
            .is_some_and(|mute| mute.until_ms.is_none_or(|until| now_ms < until))
    }

    pub fn is_banned(&self, user: &str) -> bool {
        self.banned.contains_key(user)
    }

    /// Remembers a staff comment; the number of the one it pushes out, whose record
    /// goes.
    pub fn remember_staff_comment(&mut self, seq: u64, author: &str, role: Role) -> Option<u64> {
        let forgotten = if self.staff_comments.len() >= STAFF_COMMENTS_REMEMBERED_MAX {
            self.staff_comments.pop_front().map(|(seq, _, _)| seq)
        } else {
            None
        };
        self.staff_comments
            .push_back((seq, author.to_owned(), role));
        forgotten
    }

    /// Staff comments read back from storage, oldest first: the newest
    /// `STAFF_COMMENTS_REMEMBERED_MAX` kept; the numbers of the others, whose records go.
    pub(crate) fn restore_staff_comments(
        &mut self,
        mut comments: Vec<(u64, String, Role)>,
    ) -> Vec<u64> {
        comments.sort_by_key(|(seq, _, _)| *seq);
        let past = comments.len().saturating_sub(STAFF_COMMENTS_REMEMBERED_MAX);
        let forgotten = comments.drain(..past).map(|(seq, _, _)| seq).collect();
        self.staff_comments = comments.into();
        forgotten
    }

    /// The author of staff comment `seq` and their role when they wrote it.
    pub fn staff_comment(&self, seq: u64) -> Option<(&str, Role)> {
        self.staff_comments
            .iter()
            .find(|(s, _, _)| *s == seq)
            .map(|(_, author, role)| (author.as_str(), *role))
    }

    /// Whether staff of rank `role` may lift or change `user`'s mute (one that ran out
    /// anyone may): only the rank that imposed it or above, an admin always.
    pub fn may_change_mute(&self, user: &str, role: Role, now_ms: u64) -> bool {
        let muted_by = self
            .muted
            .get(user)
            .filter(|_| self.is_muted(user, now_ms))
            .map(|mute| mute.by_role);
        may_override(role, muted_by)
    }

    /// Whether staff of rank `role` may lift or impose again `user`'s ban: only the rank
    /// that imposed it or above, an admin always.
    pub fn may_change_ban(&self, user: &str, role: Role) -> bool {
        may_override(role, self.banned.get(user).copied())
    }

    /// Whether a text contains a filtered word (case-insensitive).
    pub fn is_filtered(&self, text: &str) -> bool {
        if self.settings.words.is_empty() {
            return false;
        }
        let lower = text.to_lowercase();
        self.settings
            .words
            .iter()
            .any(|w| lower.contains(w.as_str()))
    }

    /// Slow mode: `Err(wait_ms)` when a viewer comments again too soon; records the
    /// comment otherwise.
    pub fn slow_mode_take(&mut self, user: &str, now_ms: u64) -> Result<(), u64> {
        let interval_ms = self.settings.slow_mode_ms;
        if interval_ms == 0 {
            return Ok(());
        }
        if let Some(&last) = self.last_comment_ms.get(user) {
            if now_ms < last + interval_ms {
                return Err(last + interval_ms - now_ms);
            }
        }
        // Bounded by the users who commented within one interval, and by
        // `SLOW_MODE_USERS_MAX`: the earliest are forgotten first, each once.
        while let Some((at_ms, _)) = self.comments_in_order.front() {
            let passed = now_ms >= at_ms.saturating_add(interval_ms);
            // The order's length too: after the clock stepped back, entries behind one
            // not passed yet are users who commented again (their map entry is newer).
            let full = self.last_comment_ms.len() >= SLOW_MODE_USERS_MAX
                || self.comments_in_order.len() >= 2 * SLOW_MODE_USERS_MAX;
            if !passed && !full {
                break;
            }
            let (at_ms, earliest) = self.comments_in_order.pop_front().expect("a front");
            if self.last_comment_ms.get(&earliest) == Some(&at_ms) {
                self.last_comment_ms.remove(&earliest);
            }
        }
        self.last_comment_ms.insert(user.to_owned(), now_ms);
        self.comments_in_order.push_back((now_ms, user.to_owned()));
        Ok(())
    }

    #[cfg(test)]
    pub fn comments_in_order_len(&self) -> usize {
        self.comments_in_order.len()
    }

    /// Mutes `user` until `until_ms` (`None`: until unmuted). At `MUTED_USERS_MAX` the
    /// mutes that ran out are forgotten first (they mute no one); the users whose mute
    /// was forgotten are returned, for their records to go too.
    pub fn mute(&mut self, user: &str, mute: Mute, now_ms: u64) -> Result<Vec<String>, String> {
        let mut expired = Vec::new();
        if !self.muted.contains_key(user) && self.muted.len() >= MUTED_USERS_MAX {
            self.muted.retain(|muted, held| {
                let over = held.until_ms.is_some_and(|until| until <= now_ms);
                if over {
                    expired.push(muted.clone());
                }
                !over
            });
            if self.muted.len() >= MUTED_USERS_MAX {
                return Err(format!("at most {MUTED_USERS_MAX} users are muted at once"));
            }
        }
        self.muted.insert(user.to_owned(), mute);
        Ok(expired)
    }

    pub fn ban(&mut self, user: &str, by_role: Role) -> Result<(), String> {
        if !self.banned.contains_key(user) && self.banned.len() >= BANNED_USERS_MAX {
            return Err(format!(
                "at most {BANNED_USERS_MAX} users are banned at once"
            ));
        }
        self.banned.insert(user.to_owned(), by_role);
        Ok(())
    }

    /// Appends to the audit trail; returns the entry and the number of the entry it
    /// pushed out, if any.
    pub fn audit(
        &mut self,
        by: &str,
        role: Role,
        command: &str,
        detail: String,
        now_ms: u64,
    ) -> (AuditEntry, Option<u64>) {
        let entry = AuditEntry {
            n: self.audit_next,
            ts_ms: now_ms,
            by: by.to_owned(),
            role,
            command: command.to_owned(),
            detail: truncate(detail, AUDIT_DETAIL_BYTES_MAX),
        };
        self.audit_next += 1;
        self.audit.push_back(entry.clone());
        let dropped = (self.audit.len() > AUDIT_ENTRIES_MAX).then(|| self.drop_audit_entry());
        assert!(self.audit.len() <= AUDIT_ENTRIES_MAX);
        (entry, dropped)
    }

    /// Drops the oldest entry of the author who holds the most (of those, the author
    /// whose oldest entry is oldest) and returns its number: a moderator flooding the
    /// trail with commands pushes out their own entries, and every other author keeps
    /// at least their share of the trail.
    fn drop_audit_entry(&mut self) -> u64 {
        // author → (entries, the position of their oldest)
        let mut authors: HashMap<&str, (usize, usize)> = HashMap::new();
        for (position, entry) in self.audit.iter().enumerate() {
            authors.entry(&entry.by).or_insert((0, position)).0 += 1;
        }
        let (_, oldest) = authors
            .into_values()
            .max_by_key(|&(entries, oldest)| (entries, std::cmp::Reverse(oldest)))
            .expect("a full trail has authors");
        self.audit
            .remove(oldest)
            .expect("a position in the trail")
            .n
    }
}

/// Validates and normalises a word filter: lowercase, trimmed, no empties or duplicates.
pub(crate) fn normalise_words(words: Vec<String>) -> Result<Vec<String>, String> {
    if words.len() > WORD_FILTER_WORDS_MAX {
        return Err(format!(
            "a word filter holds at most {WORD_FILTER_WORDS_MAX} words"
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for word in words {
        let word = word.trim().to_lowercase();
        if word.is_empty() || word.len() > WORD_FILTER_WORD_BYTES_MAX {
            return Err(format!(
                "a filter word is 1..={WORD_FILTER_WORD_BYTES_MAX} bytes"
            ));
        }
        if !out.contains(&word) {
            out.push(word);
        }
    }
    Ok(out)
}

pub(crate) fn check_slow_mode(interval_ms: u64) -> Result<(), String> {
    if interval_ms > SLOW_MODE_MS_MAX {
        return Err(format!("slow mode is 0..={SLOW_MODE_MS_MAX} ms"));
    }
    Ok(())
}

/// Cuts a text to at most `bytes_max` bytes on a character boundary.
pub(crate) fn truncate(mut text: String, bytes_max: usize) -> String {
    let end = ovation_proto::cut_at_char(&text, bytes_max).len();
    text.truncate(end);
    text
}
