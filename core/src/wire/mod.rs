//! The chat frame: the plaintext inside every token, as a view over bytes and a parsed
//! representation, in the manner of smoltcp's `wire` module.
//!
//! ```text
//! 0      1      2               10
//! +------+------+---------------+---------------- - -
//! | 0xC1 | kind | session (u64) | body (per kind)
//! +------+------+---------------+---------------- - -
//! ```
//!
//! `0xC1` can never start UTF-8 text, so a frame is never mistaken for the bare text the
//! original Python programs put in their tokens (see [`Plaintext`]). Integers are big
//! endian; strings are UTF-8 behind a length (`u8` for names, `u16` for text).
//! PROTOCOL.md describes every kind byte by byte.

use core::fmt;

mod codec;
mod lists;
mod names;
mod repr;
#[cfg(test)]
mod tests;

pub use lists::{Changes, Names};
pub use names::{NameError, check_name, is_valid_name};
pub use repr::{Body, Repr};

/// First byte of every frame: never the first byte of UTF-8 text.
pub const MAGIC: u8 = 0xC1;
/// Bytes before the body: magic, kind, session.
pub const HEADER_LEN: usize = 10;
/// Longest nickname or room name, in bytes.
pub const NAME_MAX: usize = 32;
/// Bytes a `Deliver` frame adds to its text, with the longest nickname: the server must
/// be able to relay what it accepts, so this bounds a chat line.
pub const DELIVER_OVERHEAD: usize = HEADER_LEN + 8 + 1 + NAME_MAX + 2;

/// Why bytes are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than its fields say.
    Truncated,
    /// Not a frame: the first byte is not [`MAGIC`].
    NotAFrame,
    /// A kind this version does not know.
    UnknownKind(u8),
    /// A field has a value the format forbids (bad UTF-8, empty or long name, ...).
    Malformed,
    /// Bytes left after the last field.
    TrailingBytes,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("frame truncated"),
            Self::NotAFrame => f.write_str("not a chat frame"),
            Self::UnknownKind(kind) => write!(f, "unknown frame kind {kind:#04x}"),
            Self::Malformed => f.write_str("malformed frame field"),
            Self::TrailingBytes => f.write_str("trailing bytes after frame"),
            Self::BufferTooSmall => f.write_str("buffer too small for frame"),
        }
    }
}

impl core::error::Error for Error {}

/// What a token's plaintext holds: a frame, or a bare line of text from a legacy peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plaintext<'a> {
    /// A chat frame.
    Frame(Repr<'a>),
    /// UTF-8 text, as the original Python programs send.
    Legacy(&'a str),
}

impl<'a> Plaintext<'a> {
    /// Tells frames from legacy text and parses either.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        match bytes.first() {
            Some(&MAGIC) => Repr::parse(bytes).map(Self::Frame),
            _ => core::str::from_utf8(bytes)
                .map(Self::Legacy)
                .map_err(|_| Error::NotAFrame),
        }
    }
}

/// A checked view of a frame's fixed header, over any byte container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` after checking it holds a header that starts with [`MAGIC`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        match buffer.as_ref() {
            [MAGIC, _, _, _, _, _, _, _, _, _, ..] => Ok(Self { buffer }),
            [] | [MAGIC, ..] => Err(Error::Truncated),
            _ => Err(Error::NotAFrame),
        }
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0; HEADER_LEN];
        for (out, byte) in header.iter_mut().zip(self.buffer.as_ref()) {
            *out = *byte;
        }
        header
    }

    /// The kind byte.
    pub fn kind(&self) -> u8 {
        let [_, kind, ..] = self.header();
        kind
    }

    /// The session the frame belongs to.
    pub fn session(&self) -> u64 {
        let [_, _, session @ ..] = self.header();
        u64::from_be_bytes(session)
    }

    /// The bytes after the header.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// Kind bytes.
mod kind {
    pub const JOIN_V1: u8 = 0x01;
    pub const WELCOME: u8 = 0x02;
    pub const CHAT: u8 = 0x03;
    pub const RECEIPT: u8 = 0x04;
    pub const DELIVER: u8 = 0x05;
    pub const ACK: u8 = 0x06;
    pub const PING: u8 = 0x07;
    pub const PONG: u8 = 0x08;
    pub const LEAVE: u8 = 0x09;
    pub const NOTICE: u8 = 0x0A;
    pub const MISSED: u8 = 0x0B;
    pub const WHO: u8 = 0x0C;
    pub const MEMBERS: u8 = 0x0D;
    pub const JOIN: u8 = 0x0E;
    pub const BUSY: u8 = 0x0F;
    pub const REFUSED: u8 = 0x10;
    pub const PRESENCE: u8 = 0x11;
}

/// The protocol version this crate speaks, carried in [`Body::Join`].
pub const VERSION: u8 = 2;

/// A [`Body::Join`] frame is padded with zero bytes to at least this many bytes, so that
/// nothing the server answers to it (a Welcome, a refusal) is longer than the Join: a
/// forged or replayed Join cannot make the server an amplifier (the rule QUIC applies to
/// its Initial packets, RFC 9000 §8.1). The longest Welcome is 72 bytes.
pub const JOIN_MIN_LEN: usize = 80;

/// Why the server sent a [`Body::Notice`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NoticeCode(pub u8);

impl NoticeCode {
    /// Plain information.
    pub const INFO: Self = Self(0);
    /// The server has no member with this session (it restarted, or dropped us): join
    /// again.
    pub const NOT_JOINED: Self = Self(1);
    /// The join was refused (server full, too many rooms); the text says why.
    pub const REFUSED: Self = Self(2);
    /// The server accepted our leave.
    pub const BYE: Self = Self(4);
    /// The server does not speak the client's protocol version; the text says which it
    /// speaks.
    pub const VERSION: Self = Self(5);
}

/// Why the server refused a chat line ([`Body::Refused`]). The line's `msg_id` is used
/// up: the next line takes the next number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefuseReason(pub u8);

impl RefuseReason {
    /// Longer than the server can relay in one datagram.
    pub const TOO_LONG: Self = Self(1);

    /// A short lowercase description.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TOO_LONG => "too long",
            _ => "refused",
        }
    }
}

/// What a [`Body::Presence`] change says about a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceKind {
    /// Joined the room.
    Joined,
    /// Said goodbye.
    Left,
    /// Went silent for longer than the member timeout.
    TimedOut,
    /// Replaced by a new session from the same address (its client restarted).
    Replaced,
}

impl PresenceKind {
    /// The byte on the wire.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Joined => 1,
            Self::Left => 2,
            Self::TimedOut => 3,
            Self::Replaced => 4,
        }
    }

    /// The kind of a byte on the wire.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Joined),
            2 => Some(Self::Left),
            3 => Some(Self::TimedOut),
            4 => Some(Self::Replaced),
            _ => None,
        }
    }

    /// How it reads after a nickname: "joined", "left", "timed out", "reconnected".
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Joined => "joined",
            Self::Left => "left",
            Self::TimedOut => "timed out",
            Self::Replaced => "reconnected",
        }
    }
}

/// Where a rejoining client was: the room's `epoch` and the next room sequence number it
/// has not received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resume {
    /// The epoch of the room the client was in (never 0).
    pub epoch: u64,
    /// Every room message before this one was received.
    pub next_seq: u64,
}
