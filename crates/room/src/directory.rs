//! The tenant directory's lists a page at a time (`GET /v1/rooms`): which list, how many
//! rooms, from which room on; and the page cut from what storage lists in key order. The
//! Worker checks the query with it before asking the directory, which cuts the page.
//! And what becomes of an entry a create admitted, once the directory asks its room
//! (`AdmittedEntry`).

use crate::{AdminError, RoomStatus};
use ovation_proto::limits::DIRECTORY_PAGE_ROOMS_MAX;
use ovation_proto::RoomId;

/// Which of the directory's lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    Live,
    /// Ended rooms, with their replay windows.
    Archived,
}

/// One page of a list: `?status=live|archived&limit=N&after=ROOM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryQuery {
    pub listed: Listed,
    /// Rooms in the page: 1..=`DIRECTORY_PAGE_ROOMS_MAX`, that by default.
    pub limit: usize,
    /// The page starts after this room: the `next` of the page before.
    pub after: Option<RoomId>,
}

/// The rooms of one page, in room order, and where the next starts (`None`: the last).
#[derive(Debug, PartialEq, Eq)]
pub struct DirectoryPage<T> {
    pub rooms: Vec<T>,
    pub next: Option<String>,
}

impl DirectoryQuery {
    /// The query's parameters; others are let be. Each bad value is refused with what it
    /// must be: 400 `unsupported_status`, or 400 `invalid` for `limit` and `after`.
    pub fn parse<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, AdminError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut query = DirectoryQuery {
            listed: Listed::Live,
            limit: DIRECTORY_PAGE_ROOMS_MAX,
            after: None,
        };
        for (key, value) in pairs {
            let value = value.as_ref();
            match key.as_ref() {
                "status" => {
                    query.listed = match value {
                        "live" => Listed::Live,
                        "archived" => Listed::Archived,
                        _ => return Err(AdminError::UnsupportedStatus),
                    }
                }
                "limit" => {
                    query.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=DIRECTORY_PAGE_ROOMS_MAX).contains(n))
                        .ok_or_else(|| {
                            AdminError::Invalid(format!(
                                "`limit` is a whole number from 1 to {DIRECTORY_PAGE_ROOMS_MAX}"
                            ))
                        })?;
                }
                "after" => {
                    let room = RoomId::parse(value).map_err(|e| {
                        AdminError::Invalid(format!("`after` is not a room id: {}", e.message()))
                    })?;
                    query.after = Some(room);
                }
                _ => {}
            }
        }
        Ok(query)
    }

    /// The query string the Worker forwards to the directory (parsed again there).
    pub fn to_query_string(&self) -> String {
        let status = match self.listed {
            Listed::Live => "live",
            Listed::Archived => "archived",
        };
        let mut query = format!("status={status}&limit={}", self.limit);
        if let Some(after) = &self.after {
            // Room ids are `[a-z0-9-]`: nothing to escape.
            query.push_str("&after=");
            query.push_str(after.as_str());
        }
        query
    }

    /// How many entries to ask storage for, from `after` on (its listing starts at a key,
    /// inclusive): the room `after` itself, the page, and one to tell whether more follow.
    pub fn entries_to_read(&self) -> usize {
        self.limit + 2
    }

    /// The page, from entries listed in room order from `after` on (`entries_to_read`).
    pub fn page<T>(&self, entries: impl IntoIterator<Item = (String, T)>) -> DirectoryPage<T> {
        let after = self.after.as_ref().map(RoomId::as_str);
        let mut rooms = Vec::new();
        let mut last = None;
        let mut more = false;
        for (room, entry) in entries {
            if after.is_some_and(|after| room.as_str() <= after) {
                continue;
            }
            if rooms.len() == self.limit {
                more = true;
                break;
            }
            rooms.push(entry);
            last = Some(room);
        }
        DirectoryPage {
            rooms,
            next: last.filter(|_| more),
        }
    }
}

/// What a room object says of its opening (its internal `GET /opening`), asked by the
/// directory about an entry a create admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpeningSeen {
    /// The stored opening's status; `None` when the object holds none (never created,
    /// or a create that died before it stored one).
    pub status: Option<RoomStatus>,
    /// The opening ended, and its end is settled and archived.
    pub end_finished: bool,
    /// A create is under way in the object now.
    pub creating: bool,
}

/// What becomes of an entry a create admitted, `DIRECTORY_ENTRY_CHECK_AFTER_MS` after
/// its admission. The directory lists a room before its create opens it (the admission
/// is the room count's limit), and only that create's request removes the entry when the
/// create fails: a process killed in between, or a request cancelled with its client
/// gone, left a room listed live that never opened, for good, holding one of the
/// tenant's `DIRECTORY_ROOMS_MAX` places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmittedEntry {
    /// Its room opened (and, if it ended since, its end archives the entry): listed,
    /// not asked about again.
    Confirmed,
    /// No opening of its create's: the entry goes (if still the one that create made).
    Orphaned,
    /// A create still under way, an earlier opening's end not finished (the create that
    /// waits for it may still open the room), or no answer: asked again later
    /// (`DIRECTORY_ENTRY_CHECK_AGAIN_MS`).
    AskAgain,
}

impl AdmittedEntry {
    /// `seen`: the room's answer, `None` when it gave none.
    pub fn of(seen: Option<OpeningSeen>) -> AdmittedEntry {
        let Some(seen) = seen else {
            return AdmittedEntry::AskAgain;
        };
        if seen.creating {
            return AdmittedEntry::AskAgain;
        }
        match seen.status {
            None => AdmittedEntry::Orphaned,
            Some(RoomStatus::Live) => AdmittedEntry::Confirmed,
            // An end not finished may be this entry's own opening's (its end archives
            // the entry) or an earlier one's (a create refused while it settles).
            Some(RoomStatus::Ended) if !seen.end_finished => AdmittedEntry::AskAgain,
            // A finished end archived its own opening's entry, and a live entry made
            // after the end is left by the archive (`/archive`'s `ended_ms`): this one
            // is of a create that never opened the room.
            Some(RoomStatus::Ended) => AdmittedEntry::Orphaned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<DirectoryQuery, AdminError> {
        DirectoryQuery::parse(query.split('&').filter(|p| !p.is_empty()).map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_owned(), v.to_owned())
        }))
    }

    #[test]
    fn an_admitted_entry_goes_only_when_no_opening_of_its_create_exists() {
        use AdmittedEntry::{AskAgain, Confirmed, Orphaned};
        let (live, ended) = (Some(RoomStatus::Live), Some(RoomStatus::Ended));
        // (status, end finished, creating) → what becomes of the entry.
        let cases = [
            // The create died before the room stored an opening.
            ((None, false, false), Orphaned),
            ((live, false, false), Confirmed),
            // Ended: its end archives the entry, or a create waiting for it may open it.
            ((ended, false, false), AskAgain),
            // Ended and archived before this entry was made: a re-create that never opened.
            ((ended, true, false), Orphaned),
        ];
        // A create under way (and a retry's), whatever the object held before.
        let creating = [None, live, ended]
            .into_iter()
            .flat_map(|status| [false, true].map(|finished| ((status, finished, true), AskAgain)));
        for ((status, end_finished, creating), expected) in cases.into_iter().chain(creating) {
            let seen = OpeningSeen {
                status,
                end_finished,
                creating,
            };
            assert_eq!(AdmittedEntry::of(Some(seen)), expected, "{seen:?}");
        }
        // A room that did not answer is asked again, never taken for gone.
        assert_eq!(AdmittedEntry::of(None), AskAgain);
    }

    #[test]
    fn a_list_query_is_checked_one_past_each_limit_and_at_the_edges_of_its_types() {
        let whole = parse("").unwrap();
        assert_eq!(
            (whole.listed, whole.limit, whole.after),
            (Listed::Live, DIRECTORY_PAGE_ROOMS_MAX, None)
        );
        assert_eq!(parse("status=archived").unwrap().listed, Listed::Archived);
        assert_eq!(
            parse("status=ended").unwrap_err(),
            AdminError::UnsupportedStatus
        );
        assert_eq!(parse("limit=1").unwrap().limit, 1);
        let max = format!("limit={DIRECTORY_PAGE_ROOMS_MAX}");
        assert_eq!(parse(&max).unwrap().limit, DIRECTORY_PAGE_ROOMS_MAX);
        let past = format!("limit={}", DIRECTORY_PAGE_ROOMS_MAX + 1);
        for bad in [
            past.as_str(),
            "limit=0",
            "limit=-1",
            "limit=9007199254740993",
            "limit=18446744073709551616",
            "limit=1.5",
            "limit=",
        ] {
            let refused = parse(bad).unwrap_err();
            assert_eq!(
                (refused.code(), refused.http_status()),
                ("invalid", 400),
                "{bad}"
            );
            assert!(refused.message().contains("limit"), "{bad}");
        }
        let after = parse("after=weur-show&limit=5").unwrap();
        assert_eq!(after.after.as_ref().map(RoomId::as_str), Some("weur-show"));
        for bad in ["after=", "after=Not%20a%20room", "after=../x"] {
            let refused = parse(bad).unwrap_err();
            assert_eq!(refused.code(), "invalid", "{bad}");
        }
        // What the Worker forwards reads back as the same query.
        let forwarded = after.to_query_string();
        assert_eq!(parse(&forwarded).unwrap(), after);
    }

    #[test]
    fn pages_chained_by_next_list_every_room_once_in_order() {
        let all: Vec<String> = (0..7).map(|i| format!("weur-r{i}")).collect();
        for limit in 1..=8 {
            let mut seen = Vec::new();
            let mut after: Option<RoomId> = None;
            loop {
                let query = DirectoryQuery {
                    listed: Listed::Live,
                    limit,
                    after: after.clone(),
                };
                // What storage lists: keys from `after` on (inclusive), at most this many.
                let listed: Vec<(String, String)> = all
                    .iter()
                    .filter(|r| after.as_ref().is_none_or(|a| r.as_str() >= a.as_str()))
                    .take(query.entries_to_read())
                    .map(|r| (r.clone(), r.clone()))
                    .collect();
                let page = query.page(listed);
                assert!(page.rooms.len() <= limit);
                seen.extend(page.rooms);
                match page.next {
                    Some(next) => after = Some(RoomId::parse(&next).unwrap()),
                    None => break,
                }
            }
            assert_eq!(seen, all, "limit {limit}");
        }
        // A room removed between pages is not needed to go on.
        let query = DirectoryQuery {
            listed: Listed::Live,
            limit: 2,
            after: Some(RoomId::parse("weur-r2").unwrap()),
        };
        let listed = ["weur-r3", "weur-r4", "weur-r5"].map(|r| (r.to_owned(), r));
        let page = query.page(listed);
        assert_eq!(page.rooms, ["weur-r3", "weur-r4"]);
        assert_eq!(page.next.as_deref(), Some("weur-r4"));
    }
}
