//! Every limit of the system, in one place. Units go last in the name.
//!
//! A limit that external input can exceed is enforced with an error (a frame error, an
//! HTTP error with a stable code, or a close code); a limit that only our own code could
//! exceed is asserted.

/// Wire protocol version, sent in `Hello` and `Welcome`. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u16 = 1;
/// WebSocket subprotocol negotiated on upgrade.
pub const SUBPROTOCOL: &str = "ovation.v1";

/// Largest binary frame a client may send.
pub const CLIENT_FRAME_BYTES_MAX: usize = 16 * 1024;
/// Largest frame a server sends (a batch); clients refuse anything larger.
pub const SERVER_FRAME_BYTES_MAX: usize = 1024 * 1024;

/// Comment text, UTF-8 bytes.
pub const COMMENT_BYTES_MAX: usize = 500;
/// Reaction kind (an emoji or a short name), UTF-8 bytes.
pub const REACTION_BYTES_MAX: usize = 32;
/// System broadcast text, UTF-8 bytes.
pub const SYSTEM_MESSAGE_BYTES_MAX: usize = 1000;
/// Peer (direct) message payload: JSON text, bytes.
pub const DIRECT_PAYLOAD_BYTES_MAX: usize = 4 * 1024;
/// State part name, bytes (`[a-z0-9_-]`).
pub const PART_NAME_BYTES_MAX: usize = 64;
/// State part value: JSON text, bytes.
pub const PART_VALUE_BYTES_MAX: usize = 8 * 1024;
/// Distinct state parts per room.
pub const PARTS_COUNT_MAX: usize = 64;
/// Parts the room itself owns (`ovation_room::RESERVED_PARTS`: the room, its poll, quiz,
/// Q&A, product, leaderboard and announcement). They are written whatever
/// `PARTS_COUNT_MAX` says, so a room may hold up to `ROOM_PARTS_MAX` parts.
pub const PARTS_RESERVED_MAX: usize = 7;
/// Parts a room may hold, its own included: what a resuming client may list in its
/// Hello (it lists every part it was sent).
pub const ROOM_PARTS_MAX: usize = PARTS_COUNT_MAX + PARTS_RESERVED_MAX;
/// User id (`sub` claim), bytes.
pub const USER_ID_BYTES_MAX: usize = 128;
/// Display name, bytes.
pub const USER_NAME_BYTES_MAX: usize = 64;
/// Room id including its region prefix, bytes.
pub const ROOM_ID_BYTES_MAX: usize = 64;
/// Tenant id, bytes.
pub const TENANT_ID_BYTES_MAX: usize = 64;
/// Room title, bytes.
pub const ROOM_TITLE_BYTES_MAX: usize = 200;

/// Action ring buffer: count bound.
pub const RING_EVENTS_MAX: usize = 1024;
/// Action ring buffer: age bound.
pub const RING_AGE_MS_MAX: u64 = 30_000;
/// Output is batched per connection per tick: this tick for an object with few sockets
/// (see `tick_ms_for`). It is the longest a room's output waits for its flush while the
/// fan-out budget lasts less (`FANOUT_FRAMES_BURST`, `flush::Pacing`).
pub const TICK_MS: u64 = 50;
/// A sharded room whose last flush is this many ticks ago is quiet: its next output goes
/// out at once (leading edge) rather than a tick later (`flush::Pacing`).
pub const FLUSH_QUIET_TICKS: u64 = 2;
/// The closest two flushes of an unsharded room may be while its fan-out budget allows
/// output at once: a connection gets at most one frame per this many milliseconds.
pub const FLUSH_SPACING_MS_MIN: u64 = 10;
/// The longest tick: an object with many sockets stretches its tick up to this, and no
/// further (it bounds the batching delay every event waits).
pub const TICK_MS_MAX: u64 = 250;
/// Frames per second an object's fan-out aims to stay under when every tick carries
/// something (one frame per socket per tick). Each send costs the object's one thread
/// 20–35 µs in workerd (`cargo xtask bench fanout`), so 25,000 frames/s is a half to
/// three quarters of it: at 50 ms ticks that is 1,250 sockets, past which a busy room
/// saturates its thread and every delivery waits behind the queue. Longer ticks carry
/// more events per frame instead (deliveries per CPU-second grow with them).
pub const FANOUT_FRAMES_PER_S_TARGET: u64 = 25_000;
/// Frames an unsharded room may send at once out of that budget (a quarter second of
/// it): while it lasts, output goes out as it comes (`FLUSH_SPACING_MS_MIN` apart), so a
/// room under its budget pays no batching delay; spent, output waits for its tick. Each
/// send costs about the same CPU as the naive object's (`cargo xtask bench fanout`), so
/// batching saves CPU only by holding events: it is kept for when the thread needs it.
pub const FANOUT_FRAMES_BURST: u64 = FANOUT_FRAMES_PER_S_TARGET / 4;

/// The tick of an object whose fan-out reaches `sockets` sockets each tick (a room: its
/// own sockets, or the most any of its shards holds, since a shard sends its viewers the
/// room's batch as it arrives): `TICK_MS` up to 1,250 sockets, then as long as keeps
/// the fan-out under `FANOUT_FRAMES_PER_S_TARGET`, at most `TICK_MS_MAX` (from 6,250).
pub fn tick_ms_for(sockets: u64) -> u64 {
    (sockets * 1_000)
        .div_ceil(FANOUT_FRAMES_PER_S_TARGET)
        .clamp(TICK_MS, TICK_MS_MAX)
}
/// A sharded room sends its shards the online count this often even when unchanged (a
/// batch lost on the way is noticed at the next); viewers get the count when it changes
/// (an unchanged count is not worth a frame to every socket).
pub const ONLINE_REFRESH_MS: u64 = 2_000;
/// A changed online count is published at most this often (a newcomer gets the current
/// count at once). Joins and leaves in a big room would otherwise cost every viewer a
/// frame every tick: 10,000 viewers connecting took 87 s, each tick resending the count.
pub const ONLINE_PUBLISH_INTERVAL_MS: u64 = 1_000;
/// A changed like total is published at most this often: the first like after a quiet
/// spell goes out at the next flush, later ones ride on the room's other output or wait
/// for this. One viewer tapping likes within their rate made every tick a frame to every
/// socket (20 a second each, a quiet room of 1,000 at its fan-out ceiling).
pub const LIKES_PUBLISH_INTERVAL_MS: u64 = 250;
/// Accepted client ids remembered per user (all of the user's sockets and devices), so
/// frames retried after a reconnect are acknowledged rather than applied twice: the last
/// of those that took a sequence number (comments, reactions, …) and, apart, the last of
/// the rest (likes, votes, answers, questions, …), so a second device's likes never push
/// out a comment whose ack was lost. The client retries for `CLIENT_ACTION_TIMEOUT_MS`:
/// a viewer's comments and a burst of reactions in that time are remembered (asserted
/// below); reactions sent faster than about 1 a second for the whole window can push out
/// the oldest, and more than 64 like frames (likes tapped for 16 s) a question. (1.5 KiB
/// per user at most: 16 and 8 bytes an id.)
pub const RECENT_SEQUENCED_IDS_PER_USER_MAX: usize = 64;
pub const RECENT_UNSEQUENCED_IDS_PER_USER_MAX: usize = 64;
/// Like frames of one tick whose client ids are stored with the like total (`likes_last`),
/// so a room restored from storage still acknowledges, not counts, a like whose ack its
/// crash lost. The room object stores there too, under the same bound, the product clicks,
/// commands, parts and questions of the tick (answered without a sequence number). Bounded
/// so the record stays under the platform's 128 KiB value (user ids are at most
/// `USER_ID_BYTES_MAX`); frames past it in one tick are applied but not stored (at worst
/// applied twice if retried across a crash).
pub const LIKE_FRAMES_STORED_PER_TICK_MAX: usize = 512;
/// Events queued for one connection in one tick; later ones that tick are dropped, and
/// the dropped actions told as a `Gap` at the end of the batch (`Room::enqueue`).
pub const OUTBOX_EVENTS_MAX: usize = 2_048;
/// Answers (`Ack`, `Error`) to a connection's own frames queued past `OUTBOX_EVENTS_MAX`:
/// a tick full of broadcasts never costs a sender its answers (it would wait them out as
/// `timeout`). Bounded by what one tick of its frames can ask: the frame burst and the
/// resends of a resumed client (repeats are answered before the frame rate).
pub const OUTBOX_ANSWERS_PAST_MAX: usize = FRAMES_BURST as usize + CLIENT_ACTIONS_PENDING_MAX;
/// Separate runs of a connection's own actions left out that a shard tells apart (one
/// `Gap` each) until its next flush; past it, the last run grows to cover the new one.
/// A shard awaiting the room's state can leave out own actions of several batches, with
/// ones it kept between them, and one `Gap` over all would name the kept ones missed.
pub const OWN_GAPS_PER_FLUSH_MAX: usize = 16;
/// A tick's broadcasts encoded to at most this many bytes are copied into the one frame of
/// each connection with events of its own (an ack, a pong): a copy is cheaper than a
/// second send. Past it (a host's burst of large parts) that connection's own events go
/// in a frame of their own before the broadcasts' one shared encoding, so a burst is
/// never copied per connection.
pub const SHARED_BATCH_COPY_BYTES_MAX: usize = 4 * 1024;

/// Comment token bucket: sustained rate and burst.
pub const COMMENT_RATE_PER_S: u32 = 1;
pub const COMMENT_BURST: u32 = 3;
/// Likes per user per second, after client-side coalescing (a bucket over the count).
pub const LIKES_RATE_PER_S: u32 = 20;
pub const LIKES_BURST: u32 = 20;
/// Likes one frame may carry: no more than the user's bucket holds, since a frame is
/// taken whole (it was 100, and a frame of 21 to 100 likes was refused for the rate with
/// a wait of forever).
pub const LIKE_COUNT_PER_FRAME_MAX: u32 = LIKES_BURST;
/// Any frame: sustained rate and burst per connection.
pub const FRAMES_RATE_PER_S: u32 = 20;
pub const FRAMES_BURST: u32 = 40;
/// Frames past its frame rate a connection may send, each refused `rate_limited`: a
/// bucket of this many, refilled at `FRAMES_RATE_PER_S`; past it the connection is closed
/// `4005` (`too_many_frames`). A client that ignores the refusals only made the room
/// decode and answer more, without end; now it costs at most twice the frame rate. The
/// SDK holds at most `CLIENT_ACTIONS_PENDING_MAX` actions and a like frame a period, so
/// it stays below.
pub const FRAMES_REFUSED_BURST: u32 = 2 * FRAMES_BURST;
const _: () = assert!(
    CLIENT_ACTIONS_PENDING_MAX as u32 + 8 < FRAMES_BURST + FRAMES_REFUSED_BURST,
    "an SDK sending all it holds at once is refused, never closed"
);
/// Repeats (frames whose client id the user's frames already used, answered with their
/// first answer) a connection may send before they cost frames of its rate: a bucket of
/// this many, refilled at `FRAMES_RATE_PER_S`. A resumed client resends all it holds at
/// once, and a repeat refused for the rate would read as "not applied"; a socket sending
/// one repeat without end made the room decode and answer each, never closed. Past this
/// and the frame burst, repeats count as refused frames (answered still), and past
/// `FRAMES_REFUSED_BURST` of those the connection is closed `4005`.
pub const FRAMES_REPEATED_BURST: u32 =
    (RECENT_SEQUENCED_IDS_PER_USER_MAX + RECENT_UNSEQUENCED_IDS_PER_USER_MAX) as u32;
/// The repeats' bucket refills slowly: a connection's resends come in one burst after it
/// opens (a new connection starts with a full bucket), and repeats past it draw on the
/// frame and refusal buckets as any frame does, so a socket repeating faster than about
/// `2 × FRAMES_RATE_PER_S` is closed, as for other frames.
pub const FRAMES_REPEATED_PER_S: u32 = 1;
const _: () = assert!(
    CLIENT_ACTIONS_PENDING_MAX as u32 + 8 <= FRAMES_REPEATED_BURST,
    "an SDK resending all it holds at once is answered within the repeats' burst"
);
/// Reactions: sustained rate and burst per user.
pub const REACTION_RATE_PER_S: u32 = 5;
pub const REACTION_BURST: u32 = 10;
/// Direct messages a host/moderator may send per second.
pub const DIRECT_RATE_PER_S: u32 = 50;
pub const DIRECT_BURST: u32 = 100;
/// Staff commands and part writes a host or moderator sends over their sockets, per user
/// (one bucket): a part write goes to every viewer and a command to the stored audit
/// trail, so one staff member's sockets cannot make those the room's work. The burst
/// bans a raid's accounts at once. The admin API is the tenant's server and is not
/// rated here.
pub const STAFF_WRITES_RATE_PER_S: u32 = 5;
pub const STAFF_WRITES_BURST: u32 = 50;

/// Sockets per room object; the platform allows 32,768, we stay well below.
pub const CONNECTIONS_PER_ROOM_MAX: usize = 10_000;
/// Actions the room accepts per second (a bucket of `ROOM_ACTIONS_BURST`, whatever the
/// room's flushes); above it senders get `rate_limited` ("room busy"). Bounds the
/// fan-out work of a flush (the big-rooms design samples instead).
pub const ROOM_ACTIONS_PER_S_MAX: u64 = 4_000;
/// Actions the room accepts at once: one longest tick's share of the rate.
pub const ROOM_ACTIONS_BURST: u64 = ROOM_ACTIONS_PER_S_MAX * TICK_MS_MAX / 1_000;
/// Gift ids remembered per gifter: a retry of an older gift after a crash could be
/// announced twice (the charge itself is still made once).
pub const GIFT_IDS_REMEMBERED_PER_USER_MAX: usize = 64;
/// Gift ids whose charge a room answered `unavailable` (the charge may have been made
/// with its answer lost), stored so the gifter's retry, answered `replayed`, is
/// announced, even after the room restarted; the oldest is forgotten first (its gift then
/// stays paid and unannounced, never announced twice).
pub const GIFT_OUTCOMES_UNKNOWN_MAX: usize = 1_024;
/// One gifter's share of `GIFT_OUTCOMES_UNKNOWN_MAX`: past it the gifter's own oldest is
/// forgotten, so one user's gifts during an outage cannot push out the others'.
pub const GIFT_OUTCOMES_UNKNOWN_PER_USER_MAX: usize = 16;
const _: () = assert!(GIFT_OUTCOMES_UNKNOWN_PER_USER_MAX <= GIFT_OUTCOMES_UNKNOWN_MAX);
/// Copies of one gift (same user, id, sku, quantity) sent while its charge is in flight
/// that wait for its answer (a reconnect's resend, an app's retry, one per tab); one more
/// is refused `unavailable` with this wait, to retry with the same id.
pub const GIFT_RESENDS_JOINED_MAX: usize = 8;
pub const GIFT_IN_PROGRESS_RETRY_AFTER_MS: u32 = 1_000;
/// How long a room object waits for one answer of the settlement service (a charge, an
/// account opened, a settlement) before taking it as failed (`unavailable`, whose retry
/// the ledger answers with the first attempt's outcome).
pub const SETTLEMENT_CALL_TIMEOUT_MS: u32 = 10_000;
/// Charges a room object has in flight at once from one event: the platform queues an
/// invocation's connections past a few, and a queued call would spend its deadline
/// waiting.
pub const SETTLEMENT_CHARGES_IN_FLIGHT_MAX: usize = 4;
/// The wait told to the retry of a gift whose charge may have been made while the room
/// sells no such gift now (gifts off, or the catalog changed): retried later, not refused
/// for good, so the charge's answer can still announce it.
pub const GIFT_UNKNOWN_UNSOLD_RETRY_AFTER_MS: u32 = 30_000;
/// A gift recovered after a crash (its charge may have been made, and its gifter's socket
/// is gone) whose charge is answered `unavailable` is asked for again by the room itself,
/// first after this wait, doubling up to `GIFT_RECOVERED_RETRY_MS_MAX`, until the ledger
/// answers for good: no one else would ask, and a charge made would stay paid and unshown.
pub const GIFT_RECOVERED_RETRY_MS_MIN: u64 = 1_000;
pub const GIFT_RECOVERED_RETRY_MS_MAX: u64 = 60_000;
/// Asks of one recovered gift before the room gives it up to its gifter's retry (as a
/// live gift answered `unavailable`): about 16 hours at the longest wait, so a room whose
/// gifts were turned off for good does not wake a minute for ever.
pub const GIFT_RECOVERED_RETRIES_MAX: u32 = 1_000;
/// Sockets one user may hold in one room object (the room's own, or one shard's): a few
/// tabs or devices. More are refused at connect with close `4409` (`TooManySockets`), so
/// one token cannot fill a room (`CONNECTIONS_PER_ROOM_MAX`) and lock everyone else out.
/// Sockets still waiting for their `Hello` count too.
pub const USER_SOCKETS_PER_ROOM_MAX: usize = 5;
/// Upgrades one user may start in one room, as a token bucket checked by the Worker
/// before the room object is woken (`ovation_room::UserRateLimiter`): a burst of
/// `USER_CONNECTS_BURST`, then `USER_CONNECTS_PER_S` a second. A person with a few tabs
/// and flaky networks stays far below; a script opening and closing sockets as fast as
/// it can is refused `429 rate_limited` without costing the room anything.
pub const USER_CONNECTS_BURST: u32 = 10;
pub const USER_CONNECTS_PER_S: u32 = 1;
/// Users whose connect buckets one Worker isolate remembers; beyond it, buckets that
/// have refilled (they remember nothing) are forgotten first.
pub const CONNECT_LIMITER_USERS_MAX: usize = 10_000;
/// Rooms one user may reach through one Worker isolate that its connect (or read)
/// buckets do not know yet and that turn out not to exist: a burst of
/// `USER_NEW_ROOMS_BURST`, then `USER_NEW_ROOMS_PER_S` a second, on top of each room's own
/// bucket. Every room id is a room object woken (a room that does not exist answers 404
/// only after it woke), so without it a token valid for every room (`room: "*"`) woke a
/// new object with each made-up room id, each with a full bucket of its own. Each new
/// room takes one before its request goes on and gets it back when the room exists, so a
/// lobby reading any number of live rooms one after another spends none (at most this
/// many at once); refused `429 rate_limited` with `retry-after`, as the per-room rate is.
pub const USER_NEW_ROOMS_BURST: u32 = 64;
pub const USER_NEW_ROOMS_PER_S: u32 = 2;
/// A socket must send `Hello` within this long of opening, or it is closed with `4003`
/// (`HelloTimeout`); until then it is not counted online. Clients send it at once; as
/// long as the client's own wait for `Welcome` (`CLIENT_CONNECT_TIMEOUT_MS`), so a room
/// busy with a connection storm, whose queued Hellos arrive late, never closes a socket
/// its client is still waiting on (asserted below).
pub const HELLO_DEADLINE_MS: u64 = 10_000;
/// Rate-limit buckets remembered per room (users, not connections).
pub const RATE_BUCKETS_MAX: usize = 2 * CONNECTIONS_PER_ROOM_MAX;
/// Least recently used users whose rate buckets go at once when a new user finds
/// `RATE_BUCKETS_MAX` held: one pass over the buckets per this many new users, not one
/// per new user (a vote burst of 50,000 voters would walk 20,000 buckets each).
pub const RATE_BUCKETS_EVICTED_AT_ONCE: usize = RATE_BUCKETS_MAX / 16;
/// Tokens may live at most this long (`exp - iat`).
pub const TOKEN_LIFETIME_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// A token's `iat` may lie at most this far after the verifier's clock (the minting
/// backend's clock may run a little ahead); later is refused `token_issued_in_future`,
/// and a token without `iat` `token_iat_missing` (its lifetime could not be checked).
pub const TOKEN_IAT_LEEWAY_MS: u64 = 60_000;
/// A connection lives a random time in this range, then gets GoAway.
pub const CONNECTION_LIFETIME_MS_MIN: u64 = 30 * 60 * 1000;
pub const CONNECTION_LIFETIME_MS_MAX: u64 = 60 * 60 * 1000;
/// Lowest lifetime the `OVATION_CONNECTION_LIFETIME_MS` override (tests, staging) may set.
pub const CONNECTION_LIFETIME_OVERRIDE_MS_MIN: u64 = 1_000;
/// After GoAway the server closes the socket this much later if the client has not.
pub const GOAWAY_GRACE_MS: u64 = 5_000;
/// A socket with no traffic and no heartbeat for this long is closed by the sweep.
pub const STALE_SOCKET_MS: u64 = 90_000;
/// Lowest silence the `OVATION_STALE_SOCKET_MS` override (tests, staging) may set for a
/// room's sockets (a heartbeat is every `HEARTBEAT_INTERVAL_MS`; tests ping faster).
pub const STALE_SOCKET_OVERRIDE_MS_MIN: u64 = 1_000;
/// A user at `USER_SOCKETS_PER_ROOM_MAX` who opens one more socket gets it in place of
/// one of theirs silent this long (no frame, no heartbeat: a tab or network gone without
/// a close, which the stale sweep would only close later), so a viewer whose network
/// dropped a few times is not locked out; with none that silent, the new socket is
/// refused `4409`. A live client heartbeats every `HEARTBEAT_INTERVAL_MS`.
pub const USER_SOCKET_REPLACEABLE_SILENCE_MS: u64 = HEARTBEAT_INTERVAL_MS + 10_000;
/// The heartbeat a client sends as a text frame, and the runtime's auto-response to it
/// (it does not wake the room).
pub const HEARTBEAT_TEXT: &str = "ping";
pub const HEARTBEAT_REPLY_TEXT: &str = "pong";
/// Clients send a heartbeat (`HEARTBEAT_TEXT`, answered by the auto-response) this often.
pub const HEARTBEAT_INTERVAL_MS: u64 = 25_000;
/// A room that ended but could not complete its end (the settlement service or the
/// directory did not answer, or the process died mid-end) tries again this long after
/// its last try, woken by its alarm if nothing else comes first (`POST …/end` tries at
/// once).
pub const ROOM_END_RETRY_INTERVAL_MS: u64 = 10_000;
/// The longest wait between a room's own tries of an end that keeps failing: the wait
/// doubles after each failed try from `ROOM_END_RETRY_INTERVAL_MS` up to this
/// (`room_end_retry_after_ms`), so a settlement service down for a day, or a failure that
/// lasts, costs each ended room a call an hour, not one each 10 s.
pub const ROOM_END_RETRY_INTERVAL_MS_MAX: u64 = 60 * 60 * 1000;

/// How long after a failed try of its end a room tries again by itself, after
/// `tries_failed` failed tries in a row (at least one).
pub fn room_end_retry_after_ms(tries_failed: u32) -> u64 {
    let doublings = tries_failed.saturating_sub(1).min(16);
    (ROOM_END_RETRY_INTERVAL_MS << doublings).min(ROOM_END_RETRY_INTERVAL_MS_MAX)
}
/// Live rooms the directory admits per tenant (a room whose create raced a failed one
/// is listed once open whatever the count: one more per such race).
pub const DIRECTORY_ROOMS_MAX: usize = 10_000;
/// Rooms in one page of `GET /v1/rooms` (`?limit=`, which defaults to it): the whole
/// directory is 10,000 entries of up to a few hundred bytes each, megabytes in one answer.
pub const DIRECTORY_PAGE_ROOMS_MAX: usize = 1_000;
/// Largest admin API request body.
pub const ADMIN_BODY_BYTES_MAX: usize = 16 * 1024;
/// Largest body forwarded to a room or directory object (by the Worker, or by a room
/// object archiving itself): an admin body
/// re-encoded (a part's value goes as a JSON string, where each quote, backslash,
/// newline or tab takes two bytes) plus the fields it fills in (a quiz's unset options
/// as `null`). Read with `ADMIN_BODY_BYTES_MAX`, a body within its bound came back 413.
pub const OBJECT_BODY_BYTES_MAX: usize = 2 * ADMIN_BODY_BYTES_MAX + 4 * 1024;
/// `OVATION_TEST_DIRECTORY_REMOVE_DELAY_MS` (a test knob: a failed create's directory
/// removal lands this late) is taken up to this.
pub const TEST_DIRECTORY_REMOVE_DELAY_MS_MAX: u64 = 10_000;
/// `OVATION_TEST_DIRECTORY_ARCHIVE_DELAY_MS` (a test knob: an archive waits this long
/// between its archived entry's write and the live entry's removal, for a kill there) is
/// taken up to this.
pub const TEST_DIRECTORY_ARCHIVE_DELAY_MS_MAX: u64 = 10_000;
/// How long after a create admitted a room to the directory the directory asks the room
/// whether it opened (`ovation_room::AdmittedEntry`): past the longest a create can take
/// (the Worker waits up to `2 × SETTLEMENT_CALL_TIMEOUT_MS + 5 s` for a create under way,
/// then creates with one more settlement call), so a create still running is never taken
/// for one that died. `OVATION_TEST_DIRECTORY_CHECK_AFTER_MS` (tests) shortens it.
pub const DIRECTORY_ENTRY_CHECK_AFTER_MS: u64 = 120_000;
const _: () = assert!(
    DIRECTORY_ENTRY_CHECK_AFTER_MS > 4 * SETTLEMENT_CALL_TIMEOUT_MS as u64 + 5_000,
    "an entry is asked about only after its create is over"
);
/// An entry whose room could not say yet (a create under way, an earlier end not
/// finished, no answer) is asked about again after this, doubled per ask up to
/// `DIRECTORY_ENTRY_CHECK_AGAIN_MS_MAX`.
pub const DIRECTORY_ENTRY_CHECK_AGAIN_MS: u64 = 30_000;
/// Rooms the directory asks about in one run of its alarm (each a call to a room object,
/// one after another); the rest due are asked in the next run, at once. A tenant creating
/// thousands of rooms within the check's delay does not make one alarm call them all.
pub const DIRECTORY_ENTRY_CHECKS_PER_ALARM_MAX: usize = 64;
pub const DIRECTORY_ENTRY_CHECK_AGAIN_MS_MAX: u64 = 3_600_000;

/// When an entry asked about `asks` times without an answer is asked again.
pub fn directory_entry_check_again_after_ms(asks: u32) -> u64 {
    let doublings = asks.saturating_sub(1).min(16);
    (DIRECTORY_ENTRY_CHECK_AGAIN_MS << doublings).min(DIRECTORY_ENTRY_CHECK_AGAIN_MS_MAX)
}
/// A viewer's reads of the room over HTTP (`…/state`, `…/events`, parts and replay
/// windows the room object answers), as a token bucket per user, in the Worker before the
/// room object wakes and in the room object: the SDK's pull transport reads once a second
/// in a quiet room and about 3 a second while parts change (docs/http-api.md, the pull
/// transport; `crates/client/src/pull.rs`); a script reading as fast
/// as it can from many clients is refused `429 rate_limited` (with `retry-after`) and
/// costs the room little. Staff tokens are not limited.
pub const USER_READS_PER_S: u32 = 50;
pub const USER_READS_BURST: u32 = 100;
/// Events returned by one pull (`events?since=`) request.
pub const PULL_EVENTS_MAX: usize = 256;
/// Poll interval the server suggests to pull clients.
pub const PULL_INTERVAL_MS: u32 = 1_000;
/// Largest expected audience accepted when a room is created.
pub const EXPECTED_AUDIENCE_MAX: u64 = 10_000_000;
/// A gift's idempotency key, bytes.
pub const GIFT_ID_BYTES_MAX: usize = 48;
/// A gift catalog entry's name, bytes.
pub const GIFT_SKU_BYTES_MAX: usize = 32;
/// Gifts of one kind in one frame.
pub const GIFT_QTY_MAX: u32 = 99;
/// Gifts waiting for the settlement service per room; more are refused (`rate_limited`).
pub const GIFTS_PENDING_MAX: usize = 512;
/// One gifter's share of `GIFTS_PENDING_MAX` (two bursts of `GIFT_BURST`); more of theirs
/// are refused `rate_limited` until their charges are answered: a viewer without funds
/// sending gifts at the gift rate to a slow settlement service filled the room's queue,
/// and every other gifter was refused.
/// Like every per-user bound, it keys on the token's `sub`: a tenant that mints throwaway
/// user ids (guest tokens) gives each its own share.
pub const GIFTS_PENDING_PER_USER_MAX: usize = 2 * GIFT_BURST as usize;
const _: () = assert!(GIFTS_PENDING_PER_USER_MAX < GIFTS_PENDING_MAX);
/// Gifts per user per second (sustained, burst).
pub const GIFT_RATE_PER_S: u32 = 5;
pub const GIFT_BURST: u32 = 10;
/// Entries of the `leaderboard` part (top gifters).
pub const LEADERBOARD_ENTRIES_MAX: usize = 10;
/// Gifters whose totals a room remembers.
pub const GIFTERS_MAX: usize = 100_000;
/// Entries of a gift catalog.
pub const GIFT_CATALOG_ENTRIES_MAX: usize = 256;
/// A catalog price, in minor units: the most of it a room sells in one gift
/// (`GIFT_QTY_MAX`) stays within what the ledger takes (`LEDGER_AMOUNT_MAX`) and within
/// the integers JavaScript holds exactly.
pub const GIFT_PRICE_MAX: u64 = LEDGER_AMOUNT_MAX / GIFT_QTY_MAX as u64;

// ---- Polls (crates/room/src/polls.rs) ----

/// A poll id (assigned by the room: `p<n>`), bytes.
pub const POLL_ID_BYTES_MAX: usize = 32;
/// Options of one poll.
pub const POLL_OPTIONS_MIN: usize = 2;
pub const POLL_OPTIONS_MAX: usize = 10;
/// A poll's question and each option, bytes.
pub const POLL_QUESTION_BYTES_MAX: usize = 280;
pub const POLL_OPTION_BYTES_MAX: usize = 80;
/// A poll's answer window: default, bounds.
pub const POLL_WINDOW_MS_DEFAULT: u64 = 20_000;
pub const POLL_WINDOW_MS_MIN: u64 = 1_000;
pub const POLL_WINDOW_MS_MAX: u64 = 3_600_000;
/// Storage records of a replaced poll or quiz deleted per tick (`TICK_MS`): a big quiz's
/// millions go over minutes, never in one write (`crates/room/src/purge.rs`).
pub const STORAGE_DELETES_PER_TICK_MAX: usize = 512;
/// Distinct voters one poll counts, in the room object (a big room's shards relay their
/// viewers' votes to it, so the bound is the room's, not each shard's).
/// Votes beyond it are refused (`too_many`), never silently dropped.
pub const POLL_VOTERS_MAX: usize = 200_000;
/// A cue id that opens an interaction when its video moment plays, bytes.
pub const CUE_ID_BYTES_MAX: usize = 64;

// ---- Quizzes (crates/room/src/quiz.rs) ----

/// A quiz id (assigned by the room: `z<n>`), bytes.
pub const QUIZ_ID_BYTES_MAX: usize = 32;
/// Questions of one quiz. Question and option texts share the poll limits.
pub const QUIZ_QUESTIONS_MAX: usize = 20;
/// Options of one quiz question.
pub const QUIZ_OPTIONS_MIN: usize = 2;
pub const QUIZ_OPTIONS_MAX: usize = 6;
/// A question's answer window: default, bounds.
pub const QUIZ_WINDOW_MS_DEFAULT: u64 = 15_000;
pub const QUIZ_WINDOW_MS_MIN: u64 = 1_000;
pub const QUIZ_WINDOW_MS_MAX: u64 = 300_000;
/// Points for a correct answer, plus up to this many for speed (all of it for an answer
/// at the opening instant, none at the close).
pub const QUIZ_POINTS_CORRECT: u64 = 500;
pub const QUIZ_POINTS_SPEED_MAX: u64 = 500;
/// Participants one quiz scores (one room object); answers beyond are refused `too_many`.
pub const QUIZ_PARTICIPANTS_MAX: usize = 200_000;
/// Score notices (`quiz_score` messages) a room sends a flush after a question is scored,
/// the rest at the next flushes: a quiz of `QUIZ_PARTICIPANTS_MAX` participants never
/// builds all its messages (and a big room's copies of them for each shard) at once. A
/// big room of 200,000 participants (ticks of 200–250 ms) tells them all in about
/// 20–25 s (computed, not measured; they wait in the room while a shard is behind).
pub const QUIZ_SCORE_NOTICES_PER_TICK_MAX: usize = 2_000;
/// Entries of the quiz leaderboard in the `quiz` part.
pub const QUIZ_LEADERBOARD_ENTRIES_MAX: usize = 10;

// ---- Q&A (crates/room/src/qa.rs) ----

/// A question id (assigned by the room: `a<n>`), bytes.
pub const QA_ID_BYTES_MAX: usize = 32;
/// A question's text, bytes.
pub const QA_QUESTION_BYTES_MAX: usize = 300;
/// Questions a room holds (every status); more are refused `too_many`.
pub const QA_QUESTIONS_MAX: usize = 1_000;
/// Questions one user may have in a room (every status), so one viewer cannot fill the
/// room's `QA_QUESTIONS_MAX` for everyone; more are refused `too_many`.
pub const QA_QUESTIONS_PER_USER_MAX: usize = 10;
/// Questions listed in the `qa` part (visible ones, most upvoted first) and in the
/// moderators' approval queue message.
pub const QA_PART_ENTRIES_MAX: usize = 50;
/// Upvotes one room counts, every question's together (one per user and question: each
/// is a stored record and a name held in the room object's memory); more are refused
/// `too_many`. Each counted upvote also takes one from the user's reaction allowance
/// (`REACTION_RATE_PER_S`, `REACTION_BURST`).
pub const QA_UPVOTES_MAX: usize = 200_000;
/// How often upvotes alone republish the `qa` part (up to 50 questions of text, sent to
/// every viewer): at most once per interval. A question asked, approved, answered or
/// hidden goes out at the next tick.
pub const QA_UPVOTES_PUBLISH_INTERVAL_MS: u64 = 1_000;

// ---- Product offers (crates/room/src/products.rs) ----

pub const PRODUCT_ID_BYTES_MAX: usize = 64;
pub const PRODUCT_TITLE_BYTES_MAX: usize = 120;
/// The price as displayed ("€19.99"), bytes.
pub const PRODUCT_PRICE_BYTES_MAX: usize = 32;
/// Image URL and deep link, bytes.
pub const PRODUCT_URL_BYTES_MAX: usize = 2_048;
/// Products whose clicks a room counts.
pub const PRODUCTS_COUNTED_MAX: usize = 100;
/// Clicks a room counts, one per user and product, over all its products (each a stored
/// record and a name held in the room object's memory); a new user's click past it is
/// refused `too_many` and the counts stay. A user's repeat clicks on a product are not
/// counted. Each counted click takes one from the user's reaction allowance
/// (`REACTION_RATE_PER_S`, `REACTION_BURST`).
pub const PRODUCT_CLICKERS_MAX: usize = 200_000;

// ---- Moderation (crates/room/src/moderation.rs) ----

/// Users muted or banned at once, per room.
pub const MUTED_USERS_MAX: usize = 10_000;
pub const BANNED_USERS_MAX: usize = 10_000;
/// The word filter: words and the bytes of each (matched case-insensitively as
/// substrings of comments and questions).
pub const WORD_FILTER_WORDS_MAX: usize = 200;
pub const WORD_FILTER_WORD_BYTES_MAX: usize = 40;
/// Comments a moderator removed, remembered so a repeat of one (a retried command) is
/// answered `not_found`, not made a second `Removed` action.
pub const REMOVALS_REMEMBERED_MAX: usize = 1_024;
/// Comments of staff (and of the room's host) whose author and rank the room remembers,
/// the newest, so a lower rank cannot remove them after they left the recent actions
/// (or while their author is not connected); stored, a record each, so also after the
/// room object restarted.
pub const STAFF_COMMENTS_REMEMBERED_MAX: usize = 1_024;
/// Numbers whose kind the room remembers after their actions left its recent actions,
/// the newest, one bit each (128 KiB at most): a moderator's removal of a gift, reaction
/// or system message among them is refused `not_found` ("not a comment"), as while it is
/// kept. About 4 minutes of a room at `ROOM_ACTIONS_PER_S_MAX`, hours of an ordinary one;
/// stored (256 records of 512 bytes at most), so kept across a restart of the room object
/// (and the recording keeps every non-comment: `ovation_replay` removes comments only).
pub const NUMBER_KINDS_REMEMBERED_MAX: u64 = 1 << 20;
/// Keys one storage `list` call reads when a room object wakes: its records are fed to the
/// room's loader a page at a time, never all at once (a big quiz leaves millions of
/// answers; every room object of an isolate shares its 128 MB). Tests may lower it with
/// the worker variable `OVATION_RESTORE_PAGE_KEYS` (1 and up).
pub const RESTORE_PAGE_KEYS_MAX: usize = 1_024;
/// Slow mode: the longest interval between one user's comments.
pub const SLOW_MODE_MS_MAX: u64 = 300_000;
/// Slow mode: viewers whose last comment the room remembers (those who commented within
/// the interval). Past it the earliest is forgotten first (that viewer may comment again
/// sooner), so a big room's commenters cost bounded memory and constant time a comment.
pub const SLOW_MODE_USERS_MAX: usize = 100_000;
/// A timed mute lasts this long at least and at most (a mute without `duration_ms`
/// lasts until `unmute`): 0 would mute nobody while saying so, and an end past 2^53 ms
/// would reach JavaScript rounded.
pub const MUTE_MS_MIN: u64 = 1;
pub const MUTE_MS_MAX: u64 = 30 * 24 * 60 * 60 * 1_000;
/// The pinned announcement, bytes.
pub const ANNOUNCEMENT_BYTES_MAX: usize = 500;
/// Entries of a room's audit trail and of one entry's detail. When the trail is full a new
/// entry drops the oldest entry of the author who holds the most, so one staff member's
/// flood of commands pushes out their own entries first, and every other author keeps at
/// least an equal share of the trail (all admin-API commands are one author, `admin`).
pub const AUDIT_ENTRIES_MAX: usize = 500;
pub const AUDIT_DETAIL_BYTES_MAX: usize = 200;
/// A staff command sent over the socket (JSON), bytes.
pub const STAFF_COMMAND_BYTES_MAX: usize = CLIENT_FRAME_BYTES_MAX - 64;

// ---- Tokens and tenants (crates/auth) ----

/// Tenants one deployment accepts keys for.
pub const TENANTS_MAX: usize = 256;
/// Other tenants' keys (of the token's algorithm, in tenant order) a token whose
/// signature fails under its own tenant's key is tried with, to answer
/// `token_wrong_tenant` rather than `token_invalid_signature`: all 256 made one forged
/// token cost hundreds of signature checks before any rate limit, on every route.
pub const WRONG_TENANT_KEYS_TRIED_MAX: usize = 8;
/// HS256 secrets shorter than this are refused at configuration time.
pub const HS256_SECRET_BYTES_MIN: usize = 16;
/// Tokens longer than this are refused before parsing.
pub const TOKEN_BYTES_MAX: usize = 4096;

// ---- Gift ledger (crates/ledger, the settlement service) ----

/// Shards of one settlement deployment.
pub const LEDGER_SHARDS_MAX: u16 = 64;
/// A deposit's or gift's id.
pub const TRANSFER_ID_BYTES_MAX: usize = 64;
/// Ledger user accounts are tenant-scoped (`tenant:user`, `ledger_user_account`).
pub const LEDGER_USER_ID_BYTES_MAX: usize = TENANT_ID_BYTES_MAX + 1 + USER_ID_BYTES_MAX;
/// Ledger room accounts are `tenant:room:epoch` (`ledger_room_account`; an epoch is a
/// u64 of at most 20 digits).
pub const LEDGER_ROOM_ID_BYTES_MAX: usize = TENANT_ID_BYTES_MAX + 1 + ROOM_ID_BYTES_MAX + 1 + 20;
/// A gift's sku at the ledger (the room's catalog keeps them shorter:
/// `GIFT_SKU_BYTES_MAX`).
pub const LEDGER_SKU_BYTES_MAX: usize = 64;
/// Largest single deposit or gift, in minor units.
pub const LEDGER_AMOUNT_MAX: u64 = 1_000_000_000_000;
/// Largest balance a deposit may bring a user account to, in minor units: 2^53 − 1, the
/// largest integer a JavaScript number carries exactly (the SDK's `balance` event, the
/// HTTP API's JSON). A deposit past it is refused (`balance_limit`); gifts only lower a
/// sender's balance. A settlement's credit to a room's host is never refused (the money
/// has moved), so a host's balance can pass it: not bounded here.
pub const LEDGER_BALANCE_MAX: u64 = (1 << 53) - 1;
/// Most a shard's treasury may mint, in minor units: 2^56, the sum of every deposit ever
/// made in the shard (nothing goes back to the treasury). The treasury's balance is minus
/// this, and every other account holds part of what all shards minted (a settlement moves
/// gifts from every shard to the host's): each is an `i64` in both engines, where past
/// ±2^63 the database's arithmetic fails (a 500, or a settlement that never completes).
/// At most `LEDGER_SHARDS_MAX` (64) shards of 2^56 is 2^62: every account, and any sum
/// of them, fits. A deposit past it is refused (`treasury_limit`), with nothing moved.
/// It is 72 thousand deposits of `LEDGER_AMOUNT_MAX` in one shard, so no real shard
/// meets it.
pub const LEDGER_SHARD_MINTED_MAX: u64 = 1 << 56;
// All the money there can be, and a deposit past a shard's bound by the most it can,
// fit an `i64`.
const _: () = assert!(
    LEDGER_SHARD_MINTED_MAX * LEDGER_SHARDS_MAX as u64 + LEDGER_AMOUNT_MAX <= i64::MAX as u64
);
/// Largest quantity of one gift at the ledger (rooms take at most `GIFT_QTY_MAX`).
pub const LEDGER_QTY_MAX: u32 = 10_000;
/// Gifts of one shard committed in one transaction (group commit): what arrived while
/// the previous batch committed, at most this many. No wait is added to gather more: an
/// idle shard commits a lone gift at once.
pub const GIFT_BATCH_MAX: usize = 256;
/// Gifts queued for one shard's commit loop; a sender past it waits (backpressure).
pub const GIFTS_QUEUED_PER_SHARD_MAX: usize = 4_096;
/// Largest request body the settlement service reads (413 `body_too_large` past it).
pub const SETTLEMENT_BODY_BYTES_MAX: usize = 16 * 1024;
/// Shortest bearer secret the settlement service starts with.
pub const SETTLEMENT_SECRET_BYTES_MIN: usize = 16;

// ---- JavaScript SDK and overlay (npm/src, player-overlay) ----
//
// The JavaScript keeps its own copies of these (they bound the DOM and timers, not the
// protocol). `tests/tests/js_limits.rs` fails when a copy differs from the value here or
// when a numeric constant appears at the top of a shipped JavaScript file without an
// entry in `JS_LIMITS`.

/// Cued events `player.js` holds for the video; beyond it the oldest are let go.
pub const JS_PLAYER_HELD_EVENTS_MAX: u64 = 2048;
/// `ovation/react` closes a room this long after its last user unmounts (StrictMode's
/// double mount reuses it).
pub const JS_REACT_RELEASE_DELAY_MS: u64 = 0;
/// Most recent comments an `ovation/react` connection keeps for `useComments` (its `max`
/// is at most this).
pub const JS_REACT_COMMENTS_KEPT_MAX: u64 = 500;
/// `useComments()` without `max`.
pub const JS_REACT_COMMENTS_DEFAULT_MAX: u64 = 50;
/// A replay asks its core for the window again this long after a fetch failed: the
/// core's retry time (`CLIENT_REPLAY_RETRY_MS`; earlier it would not ask yet).
pub const JS_REPLAY_RETRY_TICK_MS: u64 = CLIENT_REPLAY_RETRY_MS;
/// A replay window's fetch that has not answered this long fails as `timeout` (and is
/// asked again): the live SDK's wait for a pull request.
pub const JS_REPLAY_FETCH_TIMEOUT_MS: u64 = CLIENT_FETCH_TIMEOUT_MS;
/// `replay()` waits this long for its code and wasm, then rejects `sdk_load_failed`: a
/// download that stalls never leaves the call pending for good.
pub const JS_REPLAY_LOAD_TIMEOUT_MS: u64 = CLIENT_FETCH_TIMEOUT_MS;
/// Comments the overlay keeps on screen.
pub const OVERLAY_COMMENTS_MAX: u64 = 100;
pub const OVERLAY_DANMAKU_LANES: u64 = 6;
pub const OVERLAY_DANMAKU_ITEMS_MAX: u64 = 40;
pub const OVERLAY_HEARTS_MAX: u64 = 24;
pub const OVERLAY_GIFT_POPS_MAX: u64 = 3;
pub const OVERLAY_TOAST_MS: u64 = 4000;
/// Comments and log lines the staff console keeps.
pub const CONSOLE_COMMENTS_MAX: u64 = 200;
pub const CONSOLE_LOG_MAX: u64 = 100;

/// Every JavaScript copy: (file from the repository root, constant, value).
pub const JS_LIMITS: [(&str, &str, u64); 16] = [
    (
        "npm/src/player.js",
        "HELD_EVENTS_MAX",
        JS_PLAYER_HELD_EVENTS_MAX,
    ),
    (
        "npm/src/player.js",
        "CUE_PAYLOAD_BYTES_MAX",
        CLIENT_CUE_PAYLOAD_BYTES_MAX as u64,
    ),
    (
        "npm/src/react.js",
        "RELEASE_DELAY_MS",
        JS_REACT_RELEASE_DELAY_MS,
    ),
    (
        "npm/src/react.js",
        "COMMENTS_KEPT_MAX",
        JS_REACT_COMMENTS_KEPT_MAX,
    ),
    (
        "npm/src/react.js",
        "COMMENTS_DEFAULT_MAX",
        JS_REACT_COMMENTS_DEFAULT_MAX,
    ),
    (
        "npm/src/replay.js",
        "RETRY_TICK_MS",
        JS_REPLAY_RETRY_TICK_MS,
    ),
    (
        "npm/src/replay.js",
        "FETCH_TIMEOUT_MS",
        JS_REPLAY_FETCH_TIMEOUT_MS,
    ),
    (
        "npm/src/index.js",
        "REPLAY_LOAD_TIMEOUT_MS",
        JS_REPLAY_LOAD_TIMEOUT_MS,
    ),
    (
        "player-overlay/overlay-limits.js",
        "COMMENTS_MAX",
        OVERLAY_COMMENTS_MAX,
    ),
    (
        "player-overlay/overlay-limits.js",
        "DANMAKU_LANES",
        OVERLAY_DANMAKU_LANES,
    ),
    (
        "player-overlay/overlay-limits.js",
        "DANMAKU_ITEMS_MAX",
        OVERLAY_DANMAKU_ITEMS_MAX,
    ),
    (
        "player-overlay/overlay-limits.js",
        "HEARTS_MAX",
        OVERLAY_HEARTS_MAX,
    ),
    (
        "player-overlay/overlay-limits.js",
        "GIFT_POPS_MAX",
        OVERLAY_GIFT_POPS_MAX,
    ),
    (
        "player-overlay/overlay-limits.js",
        "TOAST_MS",
        OVERLAY_TOAST_MS,
    ),
    (
        "player-overlay/console.js",
        "COMMENTS_MAX",
        CONSOLE_COMMENTS_MAX,
    ),
    ("player-overlay/console.js", "LOG_MAX", CONSOLE_LOG_MAX),
];

// ---- Client SDK (crates/client) ----

/// Reconnect backoff: attempt `n` waits a uniformly random time in
/// `0..=min(CLIENT_BACKOFF_MS_MAX, CLIENT_BACKOFF_MS_BASE * 2^n)` ("full jitter").
pub const CLIENT_BACKOFF_MS_BASE: u64 = 500;
pub const CLIENT_BACKOFF_MS_MAX: u64 = 30_000;
/// The longest wait after a close `4005` (the application's pace): doubling from 1 s,
/// and well within an action's timeout, so what was pending is sent again in time.
pub const CLIENT_FRAME_RATE_CLOSE_WAIT_MS_MAX: u64 = CLIENT_BACKOFF_MS_BASE << 4;
const _: () = assert!(
    CLIENT_FRAME_RATE_CLOSE_WAIT_MS_MAX + CLIENT_BACKOFF_MS_BASE < CLIENT_ACTION_TIMEOUT_MS / 2
);
/// A socket that has not opened and said Welcome within this time counts as failed.
pub const CLIENT_CONNECT_TIMEOUT_MS: u64 = 10_000;
const _: () = assert!(
    HELLO_DEADLINE_MS >= CLIENT_CONNECT_TIMEOUT_MS,
    "the room must not close a socket whose client still waits for its Welcome"
);
/// With `transport: "auto"`, this many WebSocket failures in a row switch to pull, while
/// no socket of the session has said Welcome (one that had keeps reconnecting sockets).
pub const CLIENT_WS_FAILURES_BEFORE_PULL: u32 = 3;
/// With `transport: "auto"`, this many failed upgrades in a row each found the room live
/// and the token good (so forgiven as the Worker's per-user connect rate) still switch to
/// pull while no socket said Welcome: spaced a second apart at least, more than the
/// connect rate (`USER_CONNECTS_PER_S`) refuses one client; a network that strips
/// WebSocket upgrades and lets HTTPS through looks exactly so, and was never given pull.
pub const CLIENT_WS_FAILURES_IN_LIVE_ROOM_BEFORE_PULL: u32 = 5;
const _: () = assert!(
    CLIENT_WS_FAILURES_IN_LIVE_ROOM_BEFORE_PULL > CLIENT_WS_FAILURES_BEFORE_PULL,
    "a failure the connect rate explains is forgiven more often than one it does not"
);
/// An open socket that received nothing (not even a heartbeat answer) for this long is
/// considered dead and replaced.
pub const CLIENT_SILENCE_MS_MAX: u64 = 2 * HEARTBEAT_INTERVAL_MS + 10_000;
/// Actions sent and not yet acknowledged; more are refused (`too_many`).
pub const CLIENT_ACTIONS_PENDING_MAX: usize = 64;
/// An action not acknowledged within this time fails with `timeout` and is not retried
/// again. Inside the room's memory of a viewer's sequenced client ids
/// (`RECENT_SEQUENCED_IDS_PER_USER_MAX`, asserted there; `RING_AGE_MS_MAX`), so a retry
/// of a comment is recognised.
pub const CLIENT_ACTION_TIMEOUT_MS: u64 = 20_000;
const _: () = assert!(
    COMMENT_RATE_PER_S as u64 * CLIENT_ACTION_TIMEOUT_MS / 1_000
        + (COMMENT_BURST + REACTION_BURST) as u64
        <= RECENT_SEQUENCED_IDS_PER_USER_MAX as u64,
    "a viewer's comments and a burst of reactions outlive the client's retries"
);
/// Likes are coalesced into one frame per this period.
pub const CLIENT_LIKE_FLUSH_MS: u64 = 250;
/// The rate the client sends likes at: 90 % of the room's (`LIKES_RATE_PER_S`), so link
/// jitter that brings two frames closer together than they left does not make the
/// room refuse one. A refused frame's count is queued again, never dropped.
pub const CLIENT_LIKES_RATE_PER_S: u32 = LIKES_RATE_PER_S * 9 / 10;
/// Likes waiting to be sent (50 s at the room's rate); taps beyond it are not queued and
/// are reported to the application (`likes_dropped`, code `too_many`).
pub const CLIENT_LIKES_PENDING_MAX: u32 = 1_000;
/// The longest a refused like frame waits before its count is sent again (the room's
/// bucket refills any count a client sends within a second).
pub const CLIENT_LIKE_RETRY_MS_MAX: u64 = 1_000;
/// A session that was open and, reconnecting, is refused `4409 too_many_sockets` waits
/// `USER_SOCKET_REPLACEABLE_SILENCE_MS` (plus jitter) and tries again, this many times,
/// before it ends: the sockets over the cap may be its own, lost without a close on a
/// bad network, and the room gives their place to a new socket once they are silent
/// that long. A first connect refused 4409 ends at once (another tab holds the places).
pub const CLIENT_SOCKET_CAP_RETRIES_MAX: u32 = 2;
/// After a WebSocket that never opened, one `GET /v1/rooms/{room}/state` with the token
/// learns why (a browser cannot read a refused upgrade's status): a refusal ends the
/// session with the server's code at once. At most one such check is in flight; one
/// without an answer for this long is replaced by the next.
pub const CLIENT_ADMISSION_CHECK_TIMEOUT_MS: u64 = 5_000;
/// Clock samples kept; the estimate is the median offset of the lowest-RTT quarter.
pub const CLIENT_CLOCK_SAMPLES_MAX: usize = 32;
/// Samples taken one after another when a connection opens.
pub const CLIENT_CLOCK_BURST: usize = 5;
/// A clock sample is taken this often afterwards.
pub const CLIENT_CLOCK_REFRESH_MS: u64 = 30_000;
/// A ping without its pong for this long is given up.
pub const CLIENT_PING_TIMEOUT_MS: u64 = 3_000;
/// A pull request without an answer for this long counts as failed.
pub const CLIENT_FETCH_TIMEOUT_MS: u64 = 10_000;
/// Client events waiting for the application to drain them; past it newer events are
/// dropped and counted (`Client::events_dropped`).
pub const CLIENT_EVENTS_QUEUED_MAX: usize = 64 * 1024;

// ---- Video sync (crates/client/src/playback.rs) ----

/// Cues remembered; the oldest (by media time) are forgotten first.
pub const CLIENT_CUES_KNOWN_MAX: usize = 1_024;
/// A cue payload the player takes, bytes: the format's own bound (`ovation-cues`'
/// `CUE_PAYLOAD_BYTES_MAX`); a longer one in a stream is not a cue and is passed over, so
/// a hostile stream holds at most `CLIENT_CUES_KNOWN_MAX` of these in a viewer's memory.
pub const CLIENT_CUE_PAYLOAD_BYTES_MAX: usize = 1_024;
/// Reports of one cue within this distance are the same cue (players round differently).
pub const CLIENT_CUE_SAME_MS_MAX: u64 = 50;
/// A cue reported after its moment has played still fires if it is at most this late.
pub const CLIENT_CUE_LATE_MS_MAX: u64 = 1_500;
/// A playhead step forward larger than this is a seek, not playback.
pub const CLIENT_PLAYHEAD_JUMP_MS_MAX: u64 = 2_000;
/// A step back of at most this is disagreement between the player's signals (frame
/// callbacks trail `currentTime` by a frame or so), not a seek. Real seeks also come
/// through the player's `seeked` event.
pub const CLIENT_PLAYHEAD_JITTER_MS_MAX: u64 = 250;
/// Cues fired and not yet taken by the host.
pub const CLIENT_CUES_DUE_MAX: usize = 256;
/// The first playhead report arrives up to a `timeupdate` period after playback starts:
/// cues this far before it belong to the same first moment (a cue in the first second).
pub const CLIENT_PLAYHEAD_FIRST_SLACK_MS: u64 = 500;
/// An open cued interaction whose cue the player has not found shows once the playhead's
/// wall-clock time (EXT-X-PROGRAM-DATE-TIME) is this far past the moment it opened on the
/// server: the encoder puts the cue in at about that moment, and the slack lets the cue
/// itself fire first when the viewer's video holds it.
pub const CLIENT_CUE_BEHIND_SLACK_MS: u64 = 2_000;
/// Cued interactions waiting for the video at once (one per interaction part, with room
/// to spare); past it the oldest shows at once rather than never.
pub const CLIENT_CUES_AWAITED_MAX: usize = 16;

// ---- Replay playback (crates/client/src/replay.rs) ----

/// One replay fetch asks this much server time, aligned on the recording's start (whole
/// chunks): a viewer-hour played through is 60 requests.
pub const CLIENT_REPLAY_WINDOW_MS: u64 = 60_000;
/// The next window is fetched once the playhead is this close to the end of what is
/// loaded (server time; at rate 2 a fetch still has 10 s of video to arrive in).
pub const CLIENT_REPLAY_PREFETCH_MS: u64 = 20_000;
/// Windows kept loaded; past it the one farthest from the playhead is let go (a seek
/// back to it fetches it again).
pub const CLIENT_REPLAY_WINDOWS_MAX: usize = 6;
/// Events and snapshot entries taken from one window answer; the rest are dropped (the
/// recorder keeps far fewer: `REPLAY_SAMPLED_EVENTS_PER_S_MAX` comments a second).
pub const CLIENT_REPLAY_WINDOW_EVENTS_MAX: usize = 16_384;
/// After a failed fetch, and before asking a live recording again for what it recorded
/// since, the player waits this long.
pub const CLIENT_REPLAY_RETRY_MS: u64 = 2_000;
/// Comments, reactions and gifts the playhead passed more than this long before their
/// window arrived are not shown (no burst of old comments after a slow fetch); part and
/// like changes still apply.
pub const CLIENT_REPLAY_LATE_MS_MAX: u64 = 2_000;
/// A cued event waits for its cue to play (as it did live) when the cue lies at most this
/// far after the event's server time; a cue farther away is another moment of the video.
pub const CLIENT_REPLAY_CUE_WAIT_MS_MAX: u64 = 60_000;
const _: () = assert!(
    CLIENT_REPLAY_WINDOW_MS <= REPLAY_WINDOW_MS_MAX
        && CLIENT_REPLAY_WINDOW_MS.is_multiple_of(REPLAY_CHUNK_MS)
        && CLIENT_REPLAY_PREFETCH_MS < CLIENT_REPLAY_WINDOW_MS
);

// ---- Big rooms: shards (room ↔ shard relay) ----

/// Expected audience one shard is planned for: a room expecting more gets
/// `ceil(audience / SHARD_VIEWERS_TARGET)` shards (see `shards_for_audience`). Well
/// below `CONNECTIONS_PER_ROOM_MAX`, so a shard has room for an unlucky hash and growth.
pub const SHARD_VIEWERS_TARGET: u64 = 5_000;
/// Big rooms whose shard count one router (one isolate) remembers
/// (`ovation_room::ShardRoutes`): a join of a remembered room goes straight to the
/// viewer's shard. Past it, expired rooms are forgotten first, then half.
pub const ROUTER_SHARD_ROUTES_MAX: usize = 10_000;
/// How long the router trusts a room's shard count after the room named it. Within one
/// opening of a room counts only grow, so an older count still places a viewer on a
/// shard the room serves; a room opened again is another epoch, whose shards send such
/// joins back to the room object. The bound is for what no shard can tell (a room's end
/// whose batch to a shard was lost).
pub const ROUTER_SHARD_ROUTE_TTL_MS: u64 = 10_000;
/// Shards one room may have: 1.25 M viewers at `SHARD_VIEWERS_TARGET`. The most whose
/// batches `shard_batch_interval_ms_for` can space to `ROOM_SHARD_BATCHES_PER_S_TARGET`
/// within `TICK_MS_MAX` (a compile-time check below); past it a room would need a
/// second level of relays between it and its shards.
pub const SHARDS_PER_ROOM_MAX: u16 = 250;
/// Batches a room exchanges with its shards per second each way, at most, when every
/// shard has something to say every time: a Durable Object handles about 1,000
/// requests per second (Cloudflare's guidance), and a shard's batch up is a request to
/// the room. Past 50 shards the batches are spaced further apart instead
/// (`shard_batch_interval_ms_for`).
pub const ROOM_SHARD_BATCHES_PER_S_TARGET: u64 = 1_000;

/// How far apart each shard of a room with `shards` shards sends the room its batches,
/// and the least the room waits between its batches to the shards: `TICK_MS` up to 50
/// shards, then one millisecond per shard (1,000 batches per second in all), at most
/// `TICK_MS_MAX`. What it costs: a viewer's comment may wait that long on its shard.
pub fn shard_batch_interval_ms_for(shards: u16) -> u64 {
    (u64::from(shards) * 1_000)
        .div_ceil(ROOM_SHARD_BATCHES_PER_S_TARGET)
        .clamp(TICK_MS, TICK_MS_MAX)
}
/// The tick of a room (or of a shard's viewers, who get the room's batches as they
/// come) whose fan-out reaches `sockets` sockets and that has `shards` shards (0: none):
/// `tick_ms_for(sockets)`, and no shorter than `shard_batch_interval_ms_for(shards)`.
pub fn room_tick_ms_for(sockets: u64, shards: u16) -> u64 {
    tick_ms_for(sockets).max(shard_batch_interval_ms_for(shards))
}
const _: () = assert!(
    SHARDS_PER_ROOM_MAX as u64 * 1_000 <= TICK_MS_MAX * ROOM_SHARD_BATCHES_PER_S_TARGET,
    "the longest interval must space every shard's batches to the target"
);
/// Shard counts a room takes in its life, the count a big room is created with being the
/// first (each count is remembered, so a peer message reaches a user placed under any of
/// them).
pub const SHARD_COUNTS_MAX: usize = 16;
/// The room's states (snapshots) one flush sends its shards: a restarted room, or one
/// grown to `SHARDS_PER_ROOM_MAX` shards, wants one for each, and all in one flush held
/// that many copies of a state of up to megabytes in the room object's memory.
pub const SHARD_SNAPSHOTS_PER_FLUSH_MAX: usize = 16;
/// Comments a sharded room shows to everyone per second, taken per tick (`per_tick`: 10
/// per 50 ms tick, 50 per 250 ms tick); above it comments are sampled (only the sender
/// sees theirs). More than anyone can read, and it bounds every viewer's download
/// whatever the audience.
pub const SHARDED_COMMENTS_PER_S_MAX: u64 = 200;

/// The share of a per-second allowance one tick of `tick_ms` may use, so a rate holds
/// whatever the tick (`tick_ms_for`): at least one.
pub fn per_tick(per_s: u64, tick_ms: u64) -> usize {
    usize::try_from((per_s * tick_ms / 1_000).max(1)).expect("per-tick shares are small")
}
/// Client frames a shard forwards to the room in one batch; the rest wait a tick.
pub const RELAY_FRAMES_PER_BATCH_MAX: usize = 2_000;
/// Forwarded frames a shard holds for the room; above it clients are told "room busy".
pub const SHARD_FORWARD_QUEUE_MAX: usize = 4 * RELAY_FRAMES_PER_BATCH_MAX;
/// The room's batches a shard may have on their way (handed to the host and not yet
/// delivered or failed) before the room holds that shard's output: a shard slower than
/// the room's ticks then gets the ticks it missed merged into its next batch (fewer sends
/// for it, not more), nothing dropped.
pub const SHARD_DOWN_BATCHES_IN_FLIGHT_MAX: u32 = 4;
/// Broadcast events a room holds for a shard behind (`SHARD_DOWN_BATCHES_IN_FLIGHT_MAX`);
/// past it they go and the shard gets the room's state instead (its viewers their missed
/// actions from it, or a `Gap`).
pub const SHARD_HELD_EVENTS_MAX: usize = 4_096;
/// Encoded bytes of broadcasts a room holds for all its shards behind together; past it
/// the shard holding the most gets the room's state instead.
pub const ROOM_SHARD_HELD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How long a shard may stay at `SHARD_DOWN_BATCHES_IN_FLIGHT_MAX` before the room takes
/// its batches as lost (a host that never reports one: a request that never ends) and
/// sends it its state.
pub const SHARD_HELD_MS_MAX: u64 = 10_000;
/// Answers for single connections and users (acknowledgements, refusals, balances, direct
/// messages, quiz notices) a room holds for a shard behind, each kind; past it the oldest
/// go, counted in `shard_answers_dropped` and logged (their senders' SDKs time out, and a
/// resend is answered as a repeat).
pub const SHARD_HELD_ANSWERS_MAX: usize = RELAY_FRAMES_PER_BATCH_MAX;
/// The room object's batches queued for one shard while its previous batch is on its way
/// (`ovation_room::ShardOutbox`): a backstop far above what the room hands out
/// (`SHARD_DOWN_BATCHES_IN_FLIGHT_MAX`): reached when a request to a shard hangs, as the
/// room lets the shard go every `SHARD_HELD_MS_MAX` and sends it more. Past it the oldest go, and the shard asks for the room's
/// state when it sees the hole in the numbers.
pub const SHARD_DOWN_BATCHES_QUEUED_MAX: usize = 64;
/// Bytes of batches queued for all of a room's shards together (a room object's isolate
/// has 128 MB); past it the longest queue's oldest go first, never a shard's newest.
pub const ROOM_SHARD_DOWN_QUEUED_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Votes and answers forwarded and not yet answered by the room (remembered so an
/// accepted one is answered locally when repeated); full, they are forgotten whole (only
/// a shortcut: a repeat the shard does not answer goes to the room).
pub const SHARD_CHOICES_PENDING_MAX: usize = 4 * RELAY_FRAMES_PER_BATCH_MAX;
/// Sockets a shard remembers the user of after they closed, so the room's acks that
/// arrive after a close (a socket closed while its frames were on their way) are still
/// remembered for the resends of its next socket.
pub const SHARD_CLOSED_SOCKETS_REMEMBERED_MAX: usize = 1_024;
/// A room↔shard message (a snapshot carries every part and the ring).
pub const RELAY_MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// A shard without the room's state asks again after this long.
pub const SHARD_SNAPSHOT_RETRY_MS: u64 = 1_000;
/// A shard's batch whose request failed is sent again after its interval, doubled per
/// failure up to this (never dropped: its likes were acknowledged).
pub const SHARD_UP_RETRY_MS_MAX: u64 = 5_000;
/// Batch numbers a shard's stored record reserves at once: the record is written once
/// per this many batches (and whenever likes move), and a restarted shard numbers its
/// batches above the reserve.
pub const SHARD_UP_SEQS_RESERVED: u64 = 1_000;
/// A batch the room refuses (4xx) is sent again this many times, spaced like a failed
/// one, before it is dropped and logged: during a deploy a room object still on the
/// previous build refuses the new build's batches for a while.
pub const SHARD_UP_REFUSED_RETRIES: u32 = 20;
/// A batch whose request fails (no answer, a 5xx) this many times is dropped and logged
/// with its likes: about 10 minutes at `SHARD_UP_RETRY_MS_MAX`, past which a room that
/// fails on it would otherwise block every later batch of the shard for good.
pub const SHARD_UP_FAILURES_MAX: u32 = 120;

/// Viewer sockets a room with `shards` shards holds: the room object's own when it has
/// none, else `CONNECTIONS_PER_ROOM_MAX` per shard.
pub fn room_sockets_max(shards: u16) -> usize {
    CONNECTIONS_PER_ROOM_MAX * usize::from(shards.max(1))
}

/// Shards for a room expecting `expected_audience` viewers: 0 (the room holds the
/// sockets itself) up to `SHARD_VIEWERS_TARGET`, then one per `SHARD_VIEWERS_TARGET`,
/// at most `SHARDS_PER_ROOM_MAX`.
pub fn shards_for_audience(expected_audience: u64) -> u16 {
    if expected_audience <= SHARD_VIEWERS_TARGET {
        return 0;
    }
    let shards = expected_audience.div_ceil(SHARD_VIEWERS_TARGET);
    u16::try_from(shards.min(u64::from(SHARDS_PER_ROOM_MAX))).expect("clamped")
}

// ---- Replay (crates/replay, `GET /v1/rooms/{room}/replay`) ----

/// The recording is cut in chunks of this much server time ([start, start + this)), each
/// written once when its window has passed (append-only, immutable). A viewer-hour of
/// replay fetched in aligned one-minute windows is 60 requests.
pub const REPLAY_CHUNK_MS: u64 = 10_000;
/// Comments and reactions a recording keeps per second of server time: the first this many
/// of each second, the rest of it left out and counted (deterministic: the same room gives
/// the same recording). The host's comments, system messages, gifts, removals and part
/// changes are always kept. More than anyone reads in a replay.
pub const REPLAY_SAMPLED_EVENTS_PER_S_MAX: u32 = 30;
/// A part (a poll's tallies move every tick) is recorded at most this often; a change
/// inside the interval is held and recorded, with its latest value, when it ends.
pub const REPLAY_PART_INTERVAL_MS: u64 = 1_000;
/// The like total is recorded at most this often.
pub const REPLAY_LIKES_INTERVAL_MS: u64 = 1_000;
/// A room's recording, bytes (its sealed chunks, encoded): at it the recording stops and
/// every window after says `truncated_at_ms` (20 comments/s records about 7 MB an hour:
/// docs/replay.md).
pub const REPLAY_ROOM_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// One `GET …/replay` window, ms (`to - from`); longer is refused 400
/// `replay_window_too_long`.
pub const REPLAY_WINDOW_MS_MAX: u64 = 5 * 60_000;
/// Stored chunk bytes one window answer reads: a chunk holds 10 s of a room whose parts
/// (64 of 8 KiB, each recorded up to once a second) can make it megabytes, so a 5-minute
/// window read 31 of them. Past it the answer stops at the start of the first chunk it
/// did not read (its `to_ms`), and the client asks on from there.
pub const REPLAY_WINDOW_READ_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Window answers a room object reads at once; more are refused 503 `replay_busy` with
/// `retry-after` (the SDK asks again): a viewer's read burst of long windows held
/// hundreds of megabytes of chunks in one isolate.
pub const REPLAY_WINDOW_READS_IN_FLIGHT_MAX: usize = 4;
/// Of those, one user's at once (a second is refused `replay_busy` the same way): one
/// viewer keeping reads in flight held every place, and every other viewer of the room
/// was refused for as long as it went on. A replay reads one window at a time.
pub const REPLAY_WINDOW_READS_IN_FLIGHT_PER_USER_MAX: usize = 1;
/// A chunk is written this long after its window ends, so an action stamped just before
/// the end but handed to the recorder a little later still lands in it (later ones are
/// recorded at the next chunk's start, keeping the recording in time order).
pub const REPLAY_SEAL_GRACE_MS: u64 = 2_000;
/// Sealed chunks a room holds in memory while their writes fail (retried after every
/// pump); past it the oldest is given up (logged, and named in `missing_chunks` by
/// every window that needs it). 30 chunks are 5 minutes of recording.
pub const REPLAY_UNWRITTEN_CHUNKS_MAX: usize = 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_that_keeps_failing_is_tried_less_often_up_to_an_hour() {
        assert_eq!(room_end_retry_after_ms(0), ROOM_END_RETRY_INTERVAL_MS);
        assert_eq!(room_end_retry_after_ms(1), ROOM_END_RETRY_INTERVAL_MS);
        assert_eq!(room_end_retry_after_ms(2), 2 * ROOM_END_RETRY_INTERVAL_MS);
        assert_eq!(room_end_retry_after_ms(3), 4 * ROOM_END_RETRY_INTERVAL_MS);
        let waits: Vec<u64> = (1..40).map(room_end_retry_after_ms).collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            room_end_retry_after_ms(u32::MAX),
            ROOM_END_RETRY_INTERVAL_MS_MAX
        );
        assert_eq!(*waits.last().unwrap(), ROOM_END_RETRY_INTERVAL_MS_MAX);
    }
}
