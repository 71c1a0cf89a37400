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
/// Output is batched per connection per tick.
pub const TICK_MS: u64 = 50;
/// Online count is republished this often even when unchanged.
pub const ONLINE_REFRESH_MS: u64 = 2_000;
/// Events queued for one connection before older actions are dropped (and a gap told).
pub const OUTBOX_EVENTS_MAX: usize = 2_048;

/// Comment token bucket: sustained rate and burst.
pub const COMMENT_RATE_PER_S: u32 = 1;
pub const COMMENT_BURST: u32 = 3;
/// Likes per user per second, after client-side coalescing (a bucket over the count).
pub const LIKES_RATE_PER_S: u32 = 20;
pub const LIKES_BURST: u32 = 20;
/// Likes one frame may carry.
pub const LIKE_COUNT_PER_FRAME_MAX: u32 = 100;
/// Any frame: sustained rate and burst per connection.
pub const FRAMES_RATE_PER_S: u32 = 20;
pub const FRAMES_BURST: u32 = 40;
/// Reactions: sustained rate and burst per user.
pub const REACTION_RATE_PER_S: u32 = 5;
pub const REACTION_BURST: u32 = 10;
/// Direct messages a host/moderator may send per second.
pub const DIRECT_RATE_PER_S: u32 = 50;
pub const DIRECT_BURST: u32 = 100;

/// Sockets per room object; the platform allows 32,768, we stay well below.
pub const CONNECTIONS_PER_ROOM_MAX: usize = 10_000;
/// Rate-limit buckets remembered per room (users, not connections).
pub const RATE_BUCKETS_MAX: usize = 2 * CONNECTIONS_PER_ROOM_MAX;
/// Tokens may live at most this long (`exp - iat`).
pub const TOKEN_LIFETIME_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// A connection lives a random time in this range, then gets GoAway.
pub const CONNECTION_LIFETIME_MS_MIN: u64 = 30 * 60 * 1000;
pub const CONNECTION_LIFETIME_MS_MAX: u64 = 60 * 60 * 1000;
/// Lowest lifetime the `OVATION_CONNECTION_LIFETIME_MS` override (tests, staging) may set.
pub const CONNECTION_LIFETIME_OVERRIDE_MS_MIN: u64 = 1_000;
/// After GoAway the server closes the socket this much later if the client has not.
pub const GOAWAY_GRACE_MS: u64 = 5_000;
/// A socket with no traffic and no heartbeat for this long is closed by the sweep.
pub const STALE_SOCKET_MS: u64 = 90_000;
/// Sweep period for stale sockets.
pub const SWEEP_INTERVAL_MS: u64 = 30_000;
/// Clients send a heartbeat (text "ping", answered by the auto-response) this often.
pub const HEARTBEAT_INTERVAL_MS: u64 = 25_000;
/// Live rooms listed by the directory per tenant.
pub const DIRECTORY_ROOMS_MAX: usize = 10_000;
/// Largest admin API request body.
pub const ADMIN_BODY_BYTES_MAX: usize = 16 * 1024;
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
/// Gifts per user per second (sustained, burst).
pub const GIFT_RATE_PER_S: u32 = 5;
pub const GIFT_BURST: u32 = 10;
/// Entries of the `leaderboard` part (top gifters).
pub const LEADERBOARD_ENTRIES_MAX: usize = 10;
/// Gifters whose totals a room remembers.
pub const GIFTERS_MAX: usize = 100_000;
/// Entries of a gift catalog.
pub const GIFT_CATALOG_ENTRIES_MAX: usize = 256;
