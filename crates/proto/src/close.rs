/// WebSocket close codes sent by the server. The range tells the client what to do:
///
/// * `4000..=4099` — transient: reconnect (with backoff) and resume.
/// * `4400..=4499` — the client is at fault or not allowed: do **not** reconnect with the
///   same frames or token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// Planned: connection lifetime over (after GoAway). Reconnect now and resume.
    GoingAway,
    /// The socket showed no sign of life for `STALE_SOCKET_MS`.
    Stale,
    /// The room restarted or is moving. Reconnect and resume.
    Restarting,
    /// A frame could not be decoded or broke a field limit.
    BadFrame,
    /// A frame larger than `CLIENT_FRAME_BYTES_MAX`.
    FrameTooLarge,
    /// The protocol version in `Hello` is not supported.
    UnsupportedProtocol,
    /// The first frame was not `Hello`, or `Hello` came twice.
    ProtocolViolation,
    /// The room has ended.
    RoomEnded,
    /// The room is full (`CONNECTIONS_PER_ROOM_MAX`).
    RoomFull,
    /// Text frames (other than the heartbeat) are not part of the protocol.
    TextNotSupported,
    /// A moderator banned this user from the room; reconnecting is refused.
    Banned,
    /// The user already holds `USER_SOCKETS_PER_ROOM_MAX` sockets in this room (tabs,
    /// devices): close one of them first. Refused at connect, so the sockets already open
    /// keep working and nobody else's place in the room is taken.
    TooManySockets,
    /// The socket sent no `Hello` within `HELLO_DEADLINE_MS` of opening. A client that
    /// was merely slow may reconnect.
    HelloTimeout,
    /// The user starts sockets in this room faster than `USER_CONNECTS_PER_S` (after a
    /// burst of `USER_CONNECTS_BURST`): refused at connect, before a socket exists (the
    /// host answers the upgrade `429 rate_limited`). Transient: try again later.
    ConnectRateLimited,
    /// The socket went on sending past its frame rate, `FRAMES_REFUSED_BURST`
    /// frames refused in a row. Transient: reconnect with backoff.
    TooManyFrames,
}

impl CloseCode {
    pub const ALL: [CloseCode; 15] = [
        CloseCode::GoingAway,
        CloseCode::Stale,
        CloseCode::Restarting,
        CloseCode::BadFrame,
        CloseCode::FrameTooLarge,
        CloseCode::UnsupportedProtocol,
        CloseCode::ProtocolViolation,
        CloseCode::RoomEnded,
        CloseCode::RoomFull,
        CloseCode::TextNotSupported,
        CloseCode::Banned,
        CloseCode::TooManySockets,
        CloseCode::HelloTimeout,
        CloseCode::ConnectRateLimited,
        CloseCode::TooManyFrames,
    ];

    pub const fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 4000,
            CloseCode::Stale => 4001,
            CloseCode::Restarting => 4002,
            CloseCode::BadFrame => 4400,
            CloseCode::FrameTooLarge => 4413,
            CloseCode::UnsupportedProtocol => 4426,
            CloseCode::ProtocolViolation => 4402,
            CloseCode::RoomEnded => 4410,
            CloseCode::RoomFull => 4429,
            CloseCode::TextNotSupported => 4415,
            CloseCode::Banned => 4403,
            CloseCode::TooManySockets => 4409,
            CloseCode::HelloTimeout => 4003,
            CloseCode::ConnectRateLimited => 4004,
            CloseCode::TooManyFrames => 4005,
        }
    }

    pub const fn reason(self) -> &'static str {
        match self {
            CloseCode::GoingAway => "going_away",
            CloseCode::Stale => "stale",
            CloseCode::Restarting => "restarting",
            CloseCode::BadFrame => "bad_frame",
            CloseCode::FrameTooLarge => "frame_too_large",
            CloseCode::UnsupportedProtocol => "unsupported_protocol",
            CloseCode::ProtocolViolation => "protocol_violation",
            CloseCode::RoomEnded => "room_ended",
            CloseCode::RoomFull => "room_full",
            CloseCode::TextNotSupported => "text_not_supported",
            CloseCode::Banned => "banned",
            CloseCode::TooManySockets => "too_many_sockets",
            CloseCode::HelloTimeout => "hello_timeout",
            CloseCode::ConnectRateLimited => "rate_limited",
            CloseCode::TooManyFrames => "too_many_frames",
        }
    }

    /// Whether a client should reconnect after this close.
    pub const fn should_reconnect(self) -> bool {
        self.code() < 4400
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }
}
