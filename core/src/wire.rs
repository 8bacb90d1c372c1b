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

/// A frame, parsed. Strings borrow from the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Client session: random per client, names the member in both directions; the room's
    /// epoch on frames meant for a whole room (`Deliver`).
    pub session: u64,
    /// What the frame says.
    pub body: Body<'a>,
}

/// The kinds of frame and their fields. PROTOCOL.md gives the rules for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Client → server, protocol version 1's join (kind 0x01): answered with
    /// [`NoticeCode::VERSION`] only.
    JoinV1 { nick: &'a str, room: &'a str },
    /// Client → server: join `room` as `nick`, speaking protocol `version`, sending at
    /// most `window` lines before their answers; `resume` says where a returning client
    /// was. Padded to [`JOIN_MIN_LEN`] on the wire.
    Join {
        version: u8,
        nick: &'a str,
        room: &'a str,
        window: u8,
        resume: Option<Resume>,
    },
    /// Server → client: joined as `nick` (the name asked for, or a free variant of it).
    /// Room messages for this member start at `next_seq`; the server expects chat
    /// `next_msg_id` next and takes at most `window` lines in flight; presence changes
    /// start at `presence`. `epoch` names this incarnation of the room.
    Welcome {
        epoch: u64,
        next_seq: u64,
        next_msg_id: u32,
        members: u32,
        window: u8,
        presence: u32,
        nick: &'a str,
    },
    /// Client → server: a chat line, numbered per session.
    Chat { msg_id: u32, text: &'a str },
    /// Server → client: chat `msg_id` became room message `seq`, for `recipients` members.
    Receipt {
        msg_id: u32,
        seq: u64,
        recipients: u32,
    },
    /// Server → client: chat `msg_id` was refused for `reason`; its number is used up.
    Refused { msg_id: u32, reason: RefuseReason },
    /// Server → client: the room cannot take chat `msg_id` now; send it (and every line
    /// after it) again after `retry_after_ms` milliseconds. Its number is not used up.
    Busy { msg_id: u32, retry_after_ms: u16 },
    /// Server → client: room message `seq`, from `nick`.
    Deliver {
        seq: u64,
        nick: &'a str,
        text: &'a str,
    },
    /// Client → server: every room message before `next_seq` arrived, and message
    /// `next_seq + 1 + i` arrived where bit `i` of `selective` is set; every presence
    /// change before `presence` arrived.
    Ack {
        next_seq: u64,
        selective: u64,
        presence: u32,
    },
    /// Client → server: keepalive; `counter` starts at 1 and rises with every ping of a
    /// session.
    Ping { counter: u64 },
    /// Server → client: answer to the ping with that `counter`.
    Pong { counter: u64, members: u32 },
    /// Client → server: leaving.
    Leave,
    /// Server → client: something to tell the client.
    Notice { code: NoticeCode, text: &'a str },
    /// Server → client: room messages `from` to `to - 1` left the history before this
    /// member got them; the next is `to`.
    Missed { from: u64, to: u64 },
    /// Client → server: list the room's members from position `start`; `counter` rises
    /// with every request of a session.
    Who { counter: u32, start: u32 },
    /// Server → client: the room has `total` members; these are those from position
    /// `start` on.
    Members {
        total: u32,
        start: u32,
        nicks: Names<'a>,
    },
    /// Server → client: the room has `members` members; presence changes numbered from
    /// `from` on.
    Presence {
        members: u32,
        from: u32,
        changes: Changes<'a>,
    },
}

impl<'a> Repr<'a> {
    /// Parses a whole frame; every byte must belong to a field.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let frame = Frame::new_checked(bytes)?;
        let session = frame.session();
        let mut r = Reader(bytes.get(HEADER_LEN..).unwrap_or_default());
        let body = match frame.kind() {
            kind::JOIN_V1 => Body::JoinV1 {
                nick: r.name()?,
                room: r.name()?,
            },
            kind::JOIN => {
                let version = r.u8()?;
                let nick = r.name()?;
                let room = r.name()?;
                let window = r.u8()?;
                let epoch = r.u64()?;
                let next_seq = r.u64()?;
                if epoch == 0 && next_seq != 0 {
                    // No position without a room to be in.
                    return Err(Error::Malformed);
                }
                // Exactly the padding that makes JOIN_MIN_LEN (frames are canonical),
                // all zeros.
                let before = bytes.len().saturating_sub(r.0.len());
                let padding = usize::from(r.u8()?);
                if padding != JOIN_MIN_LEN.saturating_sub(before.saturating_add(1))
                    || r.take(padding)?.iter().any(|&b| b != 0)
                {
                    return Err(Error::Malformed);
                }
                Body::Join {
                    version,
                    nick,
                    room,
                    window,
                    resume: (epoch != 0).then_some(Resume { epoch, next_seq }),
                }
            }
            kind::WELCOME => Body::Welcome {
                epoch: r.u64()?,
                next_seq: r.u64()?,
                next_msg_id: r.u32()?,
                members: r.u32()?,
                window: r.u8()?,
                presence: r.u32()?,
                nick: r.name()?,
            },
            kind::CHAT => Body::Chat {
                msg_id: r.u32()?,
                text: r.text()?,
            },
            kind::RECEIPT => Body::Receipt {
                msg_id: r.u32()?,
                seq: r.u64()?,
                recipients: r.u32()?,
            },
            kind::REFUSED => Body::Refused {
                msg_id: r.u32()?,
                reason: RefuseReason(r.u8()?),
            },
            kind::BUSY => Body::Busy {
                msg_id: r.u32()?,
                retry_after_ms: r.u16()?,
            },
            kind::DELIVER => Body::Deliver {
                seq: r.u64()?,
                nick: r.name()?,
                text: r.text()?,
            },
            kind::ACK => Body::Ack {
                next_seq: r.u64()?,
                selective: r.u64()?,
                presence: r.u32()?,
            },
            kind::PING => Body::Ping { counter: r.u64()? },
            kind::PONG => Body::Pong {
                counter: r.u64()?,
                members: r.u32()?,
            },
            kind::LEAVE => Body::Leave,
            kind::NOTICE => Body::Notice {
                code: NoticeCode(r.u8()?),
                text: r.text()?,
            },
            kind::MISSED => Body::Missed {
                from: r.u64()?,
                to: r.u64()?,
            },
            kind::WHO => Body::Who {
                counter: r.u32()?,
                start: r.u32()?,
            },
            kind::MEMBERS => {
                let total = r.u32()?;
                let start = r.u32()?;
                let count = r.u8()?;
                let bytes = r.entries(count, false)?;
                Body::Members {
                    total,
                    start,
                    nicks: Names { count, bytes },
                }
            }
            kind::PRESENCE => {
                let members = r.u32()?;
                let from = r.u32()?;
                let count = r.u8()?;
                let bytes = r.entries(count, true)?;
                Body::Presence {
                    members,
                    from,
                    changes: Changes { count, bytes },
                }
            }
            other => return Err(Error::UnknownKind(other)),
        };
        if !r.0.is_empty() {
            return Err(Error::TrailingBytes);
        }
        Ok(Self { session, body })
    }

    /// Writes the frame to the front of `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer { buf, len: 0 };
        w.u8(MAGIC)?;
        w.u8(self.body.kind())?;
        w.u64(self.session)?;
        match self.body {
            Body::JoinV1 { nick, room } => {
                w.name(nick)?;
                w.name(room)?;
            }
            Body::Join {
                version,
                nick,
                room,
                window,
                resume,
            } => {
                w.u8(version)?;
                w.name(nick)?;
                w.name(room)?;
                w.u8(window)?;
                let resume = resume.unwrap_or(Resume {
                    epoch: 0,
                    next_seq: 0,
                });
                w.u64(resume.epoch)?;
                w.u64(resume.next_seq)?;
                let padding = JOIN_MIN_LEN.saturating_sub(w.len.saturating_add(1));
                w.u8(u8::try_from(padding).map_err(|_| Error::Malformed)?)?;
                for _ in 0..padding {
                    w.u8(0)?;
                }
            }
            Body::Welcome {
                epoch,
                next_seq,
                next_msg_id,
                members,
                window,
                presence,
                nick,
            } => {
                w.u64(epoch)?;
                w.u64(next_seq)?;
                w.u32(next_msg_id)?;
                w.u32(members)?;
                w.u8(window)?;
                w.u32(presence)?;
                w.name(nick)?;
            }
            Body::Chat { msg_id, text } => {
                w.u32(msg_id)?;
                w.text(text)?;
            }
            Body::Receipt {
                msg_id,
                seq,
                recipients,
            } => {
                w.u32(msg_id)?;
                w.u64(seq)?;
                w.u32(recipients)?;
            }
            Body::Refused { msg_id, reason } => {
                w.u32(msg_id)?;
                w.u8(reason.0)?;
            }
            Body::Busy {
                msg_id,
                retry_after_ms,
            } => {
                w.u32(msg_id)?;
                w.u16(retry_after_ms)?;
            }
            Body::Deliver { seq, nick, text } => {
                w.u64(seq)?;
                w.name(nick)?;
                w.text(text)?;
            }
            Body::Ack {
                next_seq,
                selective,
                presence,
            } => {
                w.u64(next_seq)?;
                w.u64(selective)?;
                w.u32(presence)?;
            }
            Body::Ping { counter } => w.u64(counter)?,
            Body::Pong { counter, members } => {
                w.u64(counter)?;
                w.u32(members)?;
            }
            Body::Leave => {}
            Body::Notice { code, text } => {
                w.u8(code.0)?;
                w.text(text)?;
            }
            Body::Missed { from, to } => {
                w.u64(from)?;
                w.u64(to)?;
            }
            Body::Who { counter, start } => {
                w.u32(counter)?;
                w.u32(start)?;
            }
            Body::Members {
                total,
                start,
                nicks,
            } => {
                w.u32(total)?;
                w.u32(start)?;
                w.u8(nicks.count)?;
                w.bytes(nicks.bytes)?;
            }
            Body::Presence {
                members,
                from,
                changes,
            } => {
                w.u32(members)?;
                w.u32(from)?;
                w.u8(changes.count)?;
                w.bytes(changes.bytes)?;
            }
        }
        Ok(w.len)
    }

    /// The exact length [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        let body = match self.body {
            Body::JoinV1 { nick, room } => 2 + nick.len() + room.len(),
            Body::Join { nick, room, .. } => {
                let unpadded = 1 + 2 + nick.len() + room.len() + 1 + 16 + 1;
                return JOIN_MIN_LEN.max(HEADER_LEN + unpadded);
            }
            Body::Welcome { nick, .. } => 29 + 1 + nick.len(),
            Body::Chat { text, .. } => 6 + text.len(),
            Body::Receipt { .. } => 16,
            Body::Refused { .. } => 5,
            Body::Busy { .. } => 6,
            Body::Deliver { nick, text, .. } => 11 + nick.len() + text.len(),
            Body::Ack { .. } => 20,
            Body::Ping { .. } => 8,
            Body::Pong { .. } => 12,
            Body::Leave => 0,
            Body::Notice { text, .. } => 3 + text.len(),
            Body::Missed { .. } => 16,
            Body::Who { .. } => 8,
            Body::Members { nicks, .. } => 9 + nicks.bytes.len(),
            Body::Presence { changes, .. } => 9 + changes.bytes.len(),
        };
        HEADER_LEN.saturating_add(body)
    }
}

impl Body<'_> {
    fn kind(&self) -> u8 {
        match self {
            Self::JoinV1 { .. } => kind::JOIN_V1,
            Self::Join { .. } => kind::JOIN,
            Self::Welcome { .. } => kind::WELCOME,
            Self::Chat { .. } => kind::CHAT,
            Self::Receipt { .. } => kind::RECEIPT,
            Self::Refused { .. } => kind::REFUSED,
            Self::Busy { .. } => kind::BUSY,
            Self::Deliver { .. } => kind::DELIVER,
            Self::Ack { .. } => kind::ACK,
            Self::Ping { .. } => kind::PING,
            Self::Pong { .. } => kind::PONG,
            Self::Leave => kind::LEAVE,
            Self::Notice { .. } => kind::NOTICE,
            Self::Missed { .. } => kind::MISSED,
            Self::Who { .. } => kind::WHO,
            Self::Members { .. } => kind::MEMBERS,
            Self::Presence { .. } => kind::PRESENCE,
        }
    }
}

/// Whether `name` may be a nickname or a room name (PROTOCOL.md "Names"):
///
/// * 1 to [`NAME_MAX`] bytes of UTF-8;
/// * no character of the Unicode general categories Cc (controls), Cf (format characters:
///   U+200B zero width space, U+FEFF, the bidirectional controls, ...), Zl (U+2028) or Zp
///   (U+2029);
/// * no White_Space character other than U+0020 SPACE (so U+00A0, U+3000 are refused), and
///   no space at either end.
///
/// The categories are those of Unicode 15.1.
pub fn is_valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && name
            .chars()
            .all(|c| c == ' ' || !(c.is_control() || c.is_whitespace() || is_format_character(c)))
}

/// Unicode 15.1 general category Cf (DerivedGeneralCategory.txt).
fn is_format_character(c: char) -> bool {
    const CF: [(u32, u32); 21] = [
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = u32::from(c);
    CF.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Names in a [`Body::Members`] frame, each behind a `u8` length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names<'a> {
    count: u8,
    bytes: &'a [u8],
}

impl<'a> Names<'a> {
    /// Packs as many of `names` as fit into `storage`, stopping at the first that does not
    /// fit; returns the list. Invalid names are skipped.
    pub fn pack<'n>(names: impl Iterator<Item = &'n str>, storage: &'a mut [u8]) -> Names<'a> {
        let (count, bytes) = pack_entries(names.map(|name| (None, name)), storage);
        Names { count, bytes }
    }

    /// How many names.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader(self.bytes);
        core::iter::from_fn(move || r.name().ok())
    }
}

/// Presence changes in a [`Body::Presence`] frame: each a kind byte and a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changes<'a> {
    count: u8,
    bytes: &'a [u8],
}

impl<'a> Changes<'a> {
    /// Packs as many of `changes` as fit into `storage`, in order, stopping at the first
    /// that does not fit; returns the list. Invalid names are skipped.
    pub fn pack<'n>(
        changes: impl Iterator<Item = (PresenceKind, &'n str)>,
        storage: &'a mut [u8],
    ) -> Changes<'a> {
        let (count, bytes) = pack_entries(changes.map(|(k, n)| (Some(k), n)), storage);
        Changes { count, bytes }
    }

    /// How many changes.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The changes, in order.
    pub fn iter(&self) -> impl Iterator<Item = (PresenceKind, &'a str)> + 'a {
        let mut r = Reader(self.bytes);
        core::iter::from_fn(move || {
            let kind = PresenceKind::from_u8(r.u8().ok()?)?;
            Some((kind, r.name().ok()?))
        })
    }
}

/// Writes `(kind?, name)` entries into `storage` while they fit (at most 255).
fn pack_entries<'n, 's>(
    entries: impl Iterator<Item = (Option<PresenceKind>, &'n str)>,
    storage: &'s mut [u8],
) -> (u8, &'s [u8]) {
    let mut w = Writer {
        buf: storage,
        len: 0,
    };
    let mut count: u8 = 0;
    for (kind, name) in entries {
        if count == u8::MAX {
            break;
        }
        if !is_valid_name(name) {
            continue;
        }
        let before = w.len;
        let written = match kind {
            Some(kind) => w.u8(kind.to_u8()).and_then(|()| w.name(name)),
            None => w.name(name),
        };
        if written.is_err() {
            w.len = before;
            break;
        }
        count = count.saturating_add(1);
    }
    let len = w.len;
    (count, w.buf.get(..len).unwrap_or_default())
}

/// Reads fields from the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.take(N)?.try_into().map_err(|_| Error::Truncated)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn str(&mut self, len: usize) -> Result<&'a str, Error> {
        core::str::from_utf8(self.take(len)?).map_err(|_| Error::Malformed)
    }

    fn name(&mut self) -> Result<&'a str, Error> {
        let len = usize::from(self.u8()?);
        let name = self.str(len)?;
        if is_valid_name(name) {
            Ok(name)
        } else {
            Err(Error::Malformed)
        }
    }

    fn text(&mut self) -> Result<&'a str, Error> {
        let len = usize::from(self.u16()?);
        self.str(len)
    }

    /// `count` names, each behind a kind byte if `kinds`, checked; returns their bytes.
    fn entries(&mut self, count: u8, kinds: bool) -> Result<&'a [u8], Error> {
        let rest = self.0;
        for _ in 0..count {
            if kinds && PresenceKind::from_u8(self.u8()?).is_none() {
                return Err(Error::Malformed);
            }
            self.name()?;
        }
        let used = rest.len().saturating_sub(self.0.len());
        Ok(rest.get(..used).unwrap_or_default())
    }
}

/// Writes fields to a slice.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<(), Error> {
        self.bytes(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    fn name(&mut self, name: &str) -> Result<(), Error> {
        if !is_valid_name(name) {
            return Err(Error::Malformed);
        }
        self.u8(u8::try_from(name.len()).map_err(|_| Error::Malformed)?)?;
        self.bytes(name.as_bytes())
    }

    fn text(&mut self, text: &str) -> Result<(), Error> {
        self.u16(u16::try_from(text.len()).map_err(|_| Error::Malformed)?)?;
        self.bytes(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(repr: Repr<'_>) {
        let mut buf = [0u8; 256];
        let len = repr.emit(&mut buf).unwrap();
        assert_eq!(len, repr.buffer_len(), "{repr:?}");
        assert_eq!(Repr::parse(&buf[..len]), Ok(repr));
        assert_eq!(Plaintext::parse(&buf[..len]), Ok(Plaintext::Frame(repr)));
        for cut in 0..len {
            assert!(Repr::parse(&buf[..cut]).is_err(), "{repr:?} cut at {cut}");
        }
        let mut longer = [0u8; 257];
        longer[..len].copy_from_slice(&buf[..len]);
        assert_eq!(Repr::parse(&longer[..len + 1]), Err(Error::TrailingBytes));
        for short in 0..len {
            assert_eq!(repr.emit(&mut buf[..short]), Err(Error::BufferTooSmall));
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let mut storage = [0u8; 64];
        let nicks = Names::pack(["ann", "bob", "über"].into_iter(), &mut storage);
        assert_eq!(nicks.len(), 3);
        assert_eq!(
            nicks.iter().collect::<heapless::Vec<_, 4>>(),
            ["ann", "bob", "über"]
        );
        let mut storage2 = [0u8; 64];
        let changes = Changes::pack(
            [
                (PresenceKind::Joined, "ann"),
                (PresenceKind::TimedOut, "bob"),
            ]
            .into_iter(),
            &mut storage2,
        );
        assert_eq!(
            changes.iter().collect::<heapless::Vec<_, 4>>(),
            [
                (PresenceKind::Joined, "ann"),
                (PresenceKind::TimedOut, "bob")
            ]
        );
        let session = 0x0102_0304_0506_0708;
        for body in [
            Body::JoinV1 {
                nick: "ann",
                room: "lobby",
            },
            Body::Join {
                version: VERSION,
                nick: "ann",
                room: "lobby",
                window: 16,
                resume: None,
            },
            Body::Join {
                version: VERSION,
                nick: "a-name-of-thirty-two-bytes-long!",
                room: "a-room-of-thirty-two-bytes-long!",
                window: 1,
                resume: Some(Resume {
                    epoch: 9,
                    next_seq: 41,
                }),
            },
            Body::Welcome {
                epoch: 3,
                next_seq: 7,
                next_msg_id: 1,
                members: 3,
                window: 16,
                presence: 12,
                nick: "ann-2",
            },
            Body::Chat {
                msg_id: 1,
                text: "héllo",
            },
            Body::Chat {
                msg_id: 2,
                text: "",
            },
            Body::Receipt {
                msg_id: 1,
                seq: 7,
                recipients: 2,
            },
            Body::Refused {
                msg_id: 3,
                reason: RefuseReason::TOO_LONG,
            },
            Body::Busy {
                msg_id: 4,
                retry_after_ms: 250,
            },
            Body::Deliver {
                seq: 7,
                nick: "ann",
                text: "héllo",
            },
            Body::Ack {
                next_seq: 8,
                selective: 0b101,
                presence: 3,
            },
            Body::Ping { counter: 9 },
            Body::Pong {
                counter: 9,
                members: 2,
            },
            Body::Leave,
            Body::Notice {
                code: NoticeCode::REFUSED,
                text: "server full",
            },
            Body::Missed { from: 3, to: 9 },
            Body::Who {
                counter: 1,
                start: 0,
            },
            Body::Members {
                total: 5,
                start: 2,
                nicks,
            },
            Body::Presence {
                members: 7,
                from: 40,
                changes,
            },
        ] {
            round_trip(Repr { session, body });
        }
    }

    #[test]
    fn joins_are_padded_to_outweigh_any_answer() {
        let mut buf = [0u8; 128];
        let join = Repr {
            session: 1,
            body: Body::Join {
                version: VERSION,
                nick: "a",
                room: "b",
                window: 1,
                resume: None,
            },
        };
        assert_eq!(join.emit(&mut buf), Ok(JOIN_MIN_LEN));
        let welcome = Repr {
            session: 1,
            body: Body::Welcome {
                epoch: 1,
                next_seq: 1,
                next_msg_id: 1,
                members: 1,
                window: 1,
                presence: 1,
                nick: "a-name-of-thirty-two-bytes-long!",
            },
        };
        assert_eq!(welcome.buffer_len(), 72);
        assert!(welcome.buffer_len() <= JOIN_MIN_LEN);
        // Padding must be zeros, and exactly as long as needed.
        let len = join.emit(&mut buf).unwrap();
        buf[len - 1] = 1;
        assert_eq!(Repr::parse(&buf[..len]), Err(Error::Malformed));
        buf[len - 1] = 0;
        // Header, version, "a", "b", window, resume: the padding length is at 32.
        let padding_at = HEADER_LEN + 1 + 2 + 2 + 1 + 16;
        assert_eq!(usize::from(buf[padding_at]), len - padding_at - 1);
        buf[padding_at] += 1;
        buf[len] = 0;
        assert_eq!(
            Repr::parse(&buf[..len + 1]),
            Err(Error::Malformed),
            "more padding than needed"
        );
    }

    #[test]
    fn frames_and_legacy_text_are_told_apart() {
        assert_eq!(Plaintext::parse(b"hello"), Ok(Plaintext::Legacy("hello")));
        assert_eq!(Plaintext::parse(b""), Ok(Plaintext::Legacy("")));
        assert_eq!(Plaintext::parse(&[0xFF, 1]), Err(Error::NotAFrame));
        assert_eq!(Plaintext::parse(&[MAGIC]), Err(Error::Truncated));
        assert!(core::str::from_utf8(&[MAGIC, b'a']).is_err());
        let mut frame = [MAGIC, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Repr::parse(&frame), Err(Error::UnknownKind(0x7F)));
        frame[1] = kind::LEAVE;
        assert_eq!(
            Frame::new_checked(&frame[..]).map(|f| f.kind()),
            Ok(kind::LEAVE)
        );
    }

    #[test]
    fn names_follow_the_unicode_rules() {
        for good in [
            "ann",
            "Ann Smith",
            "über",
            "日本語",
            "x",
            "a-name-of-thirty-two-bytes-long!",
        ] {
            assert!(is_valid_name(good), "{good:?}");
        }
        for bad in [
            "",
            " ",
            " ann",
            "ann ",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{85}b",    // NEL: Cc
            "a\u{a0}b",    // NO-BREAK SPACE: White_Space
            "a\u{3000}b",  // IDEOGRAPHIC SPACE: White_Space
            "a\u{200b}b",  // ZERO WIDTH SPACE: Cf
            "\u{feff}ann", // BOM: Cf
            "a\u{2028}b",  // LINE SEPARATOR: Zl
            "a\u{2029}b",  // PARAGRAPH SEPARATOR: Zp
            "a\u{202e}b",  // RIGHT-TO-LEFT OVERRIDE: Cf
            "a\u{e0041}",  // TAG LATIN CAPITAL A: Cf
            "\u{ad}",      // SOFT HYPHEN: Cf
            "a-name-of-thirty-three-bytes-long",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn bad_names_and_text_are_refused() {
        let mut buf = [0u8; 128];
        let long = "x".repeat(NAME_MAX + 1);
        for nick in ["", " ", "a\nb", long.as_str()] {
            let repr = Repr {
                session: 1,
                body: Body::JoinV1 { nick, room: "r" },
            };
            assert_eq!(repr.emit(&mut buf), Err(Error::Malformed), "{nick:?}");
        }
        // Invalid UTF-8 in a chat line.
        let mut frame = [
            MAGIC,
            kind::CHAT,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
            0,
            1,
            0xFF,
        ];
        assert_eq!(Repr::parse(&frame), Err(Error::Malformed));
        frame[16] = b'a';
        assert!(Repr::parse(&frame).is_ok());
        // An unknown presence kind.
        let mut storage = [0u8; 16];
        let changes = Changes::pack([(PresenceKind::Left, "ann")].into_iter(), &mut storage);
        let mut buf = [0u8; 64];
        let len = Repr {
            session: 1,
            body: Body::Presence {
                members: 1,
                from: 0,
                changes,
            },
        }
        .emit(&mut buf)
        .unwrap();
        buf[HEADER_LEN + 9] = 9;
        assert_eq!(Repr::parse(&buf[..len]), Err(Error::Malformed));
    }

    #[test]
    fn packing_stops_at_the_first_name_that_does_not_fit() {
        let mut storage = [0u8; 9];
        let names = Names::pack(["ann", "bob", "carol"].into_iter(), &mut storage);
        assert_eq!(
            names.iter().collect::<heapless::Vec<_, 4>>(),
            ["ann", "bob"]
        );
    }
}
