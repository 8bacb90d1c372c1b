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
pub const DELIVER_OVERHEAD: usize = HEADER_LEN + 8 + 1 + 1 + NAME_MAX + 2;

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
    pub const JOIN: u8 = 0x01;
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
}

/// Why the server sent a [`Body::Notice`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NoticeCode(pub u8);

impl NoticeCode {
    /// Plain information.
    pub const INFO: Self = Self(0);
    /// The server has no member with this session (it restarted, or dropped us): join
    /// again.
    pub const NOT_JOINED: Self = Self(1);
    /// The join was refused (server or room full, bad name); the text says why.
    pub const REFUSED: Self = Self(2);
    /// A chat line was refused as too long to relay.
    pub const TOO_LONG: Self = Self(3);
    /// The server accepted our leave.
    pub const BYE: Self = Self(4);
}

/// A frame, parsed. Strings borrow from the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Client session: random per join, names the member in both directions; the room's
    /// epoch on frames meant for a whole room (`Deliver`).
    pub session: u64,
    /// What the frame says.
    pub body: Body<'a>,
}

/// The kinds of frame and their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Client → server: join `room` as `nick`.
    Join { nick: &'a str, room: &'a str },
    /// Server → client: joined. Room messages for this member start at `next_seq`; the
    /// server expects chat `next_msg_id` next. `epoch` names this incarnation of the
    /// room: a different one means the server forgot the room (it restarted).
    Welcome {
        epoch: u64,
        next_seq: u64,
        next_msg_id: u32,
        members: u16,
    },
    /// Client → server: a chat line, numbered per session from 1.
    Chat { msg_id: u32, text: &'a str },
    /// Server → client: chat `msg_id` became room message `seq`, sent to `recipients`.
    Receipt {
        msg_id: u32,
        seq: u64,
        recipients: u16,
    },
    /// Server → client: room message `seq`; `notice` marks the server's own lines
    /// (joins, leaves), which `nick` then names.
    Deliver {
        seq: u64,
        notice: bool,
        nick: &'a str,
        text: &'a str,
    },
    /// Client → server: every message before `next_seq` arrived, and message
    /// `next_seq + 1 + i` arrived where bit `i` of `selective` is set.
    Ack { next_seq: u64, selective: u32 },
    /// Client → server: keepalive; `counter` rises with every ping of a session.
    Ping { counter: u64 },
    /// Server → client: answer to the ping with that `counter`.
    Pong { counter: u64, members: u16 },
    /// Client → server: leaving.
    Leave,
    /// Server → client: something to tell the member.
    Notice { code: NoticeCode, text: &'a str },
    /// Server → client: room messages `from..to` are gone from the server's history
    /// before this member acknowledged them.
    Missed { from: u64, to: u64 },
    /// Client → server: who is in my room?
    Who,
    /// Server → client: `total` members; the first of their names.
    Members { total: u16, nicks: Names<'a> },
}

impl<'a> Repr<'a> {
    /// Parses a whole frame; every byte must belong to a field.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let frame = Frame::new_checked(bytes)?;
        let session = frame.session();
        let mut r = Reader(bytes.get(HEADER_LEN..).unwrap_or_default());
        let body = match frame.kind() {
            kind::JOIN => Body::Join {
                nick: r.name()?,
                room: r.name()?,
            },
            kind::WELCOME => Body::Welcome {
                epoch: r.u64()?,
                next_seq: r.u64()?,
                next_msg_id: r.u32()?,
                members: r.u16()?,
            },
            kind::CHAT => Body::Chat {
                msg_id: r.u32()?,
                text: r.text()?,
            },
            kind::RECEIPT => Body::Receipt {
                msg_id: r.u32()?,
                seq: r.u64()?,
                recipients: r.u16()?,
            },
            kind::DELIVER => Body::Deliver {
                seq: r.u64()?,
                notice: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(Error::Malformed),
                },
                nick: r.name()?,
                text: r.text()?,
            },
            kind::ACK => Body::Ack {
                next_seq: r.u64()?,
                selective: r.u32()?,
            },
            kind::PING => Body::Ping { counter: r.u64()? },
            kind::PONG => Body::Pong {
                counter: r.u64()?,
                members: r.u16()?,
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
            kind::WHO => Body::Who,
            kind::MEMBERS => {
                let total = r.u16()?;
                let count = r.u8()?;
                let rest = r.0;
                let mut names = Reader(rest);
                for _ in 0..count {
                    names.name()?;
                }
                let used = rest.len().saturating_sub(names.0.len());
                r = names;
                Body::Members {
                    total,
                    nicks: Names {
                        count,
                        bytes: rest.get(..used).unwrap_or_default(),
                    },
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
            Body::Join { nick, room } => {
                w.name(nick)?;
                w.name(room)?;
            }
            Body::Welcome {
                epoch,
                next_seq,
                next_msg_id,
                members,
            } => {
                w.u64(epoch)?;
                w.u64(next_seq)?;
                w.u32(next_msg_id)?;
                w.u16(members)?;
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
                w.u16(recipients)?;
            }
            Body::Deliver {
                seq,
                notice,
                nick,
                text,
            } => {
                w.u64(seq)?;
                w.u8(u8::from(notice))?;
                w.name(nick)?;
                w.text(text)?;
            }
            Body::Ack {
                next_seq,
                selective,
            } => {
                w.u64(next_seq)?;
                w.u32(selective)?;
            }
            Body::Ping { counter } => w.u64(counter)?,
            Body::Pong { counter, members } => {
                w.u64(counter)?;
                w.u16(members)?;
            }
            Body::Leave | Body::Who => {}
            Body::Notice { code, text } => {
                w.u8(code.0)?;
                w.text(text)?;
            }
            Body::Missed { from, to } => {
                w.u64(from)?;
                w.u64(to)?;
            }
            Body::Members { total, nicks } => {
                w.u16(total)?;
                w.u8(nicks.count)?;
                w.bytes(nicks.bytes)?;
            }
        }
        Ok(w.len)
    }

    /// The exact length [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        let body = match self.body {
            Body::Join { nick, room } => 2 + nick.len() + room.len(),
            Body::Welcome { .. } => 22,
            Body::Chat { text, .. } => 6 + text.len(),
            Body::Receipt { .. } => 14,
            Body::Deliver { nick, text, .. } => 12 + nick.len() + text.len(),
            Body::Ack { .. } => 12,
            Body::Ping { .. } => 8,
            Body::Pong { .. } => 10,
            Body::Leave | Body::Who => 0,
            Body::Notice { text, .. } => 3 + text.len(),
            Body::Missed { .. } => 16,
            Body::Members { nicks, .. } => 3 + nicks.bytes.len(),
        };
        HEADER_LEN.saturating_add(body)
    }
}

impl Body<'_> {
    fn kind(&self) -> u8 {
        match self {
            Self::Join { .. } => kind::JOIN,
            Self::Welcome { .. } => kind::WELCOME,
            Self::Chat { .. } => kind::CHAT,
            Self::Receipt { .. } => kind::RECEIPT,
            Self::Deliver { .. } => kind::DELIVER,
            Self::Ack { .. } => kind::ACK,
            Self::Ping { .. } => kind::PING,
            Self::Pong { .. } => kind::PONG,
            Self::Leave => kind::LEAVE,
            Self::Notice { .. } => kind::NOTICE,
            Self::Missed { .. } => kind::MISSED,
            Self::Who => kind::WHO,
            Self::Members { .. } => kind::MEMBERS,
        }
    }
}

/// Whether `name` may be a nickname or room: 1 to [`NAME_MAX`] bytes, no control
/// characters, not blank.
pub fn is_valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && !name.chars().any(char::is_control)
        && !name.trim().is_empty()
}

/// Names in a [`Body::Members`] frame, each behind a `u8` length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names<'a> {
    count: u8,
    bytes: &'a [u8],
}

impl<'a> Names<'a> {
    /// Packs as many of `names` as fit into `storage`; returns the list and how many were
    /// taken. Invalid names are skipped.
    pub fn pack<'n>(
        names: impl Iterator<Item = &'n str>,
        storage: &'a mut [u8],
    ) -> (Names<'a>, usize) {
        let mut w = Writer {
            buf: storage,
            len: 0,
        };
        let mut count: u8 = 0;
        for name in names {
            if count == u8::MAX {
                break;
            }
            let before = w.len;
            if !is_valid_name(name) || w.name(name).is_err() {
                w.len = before;
                break;
            }
            count = count.saturating_add(1);
        }
        let len = w.len;
        let bytes = w.buf.get(..len).unwrap_or_default();
        (Names { count, bytes }, usize::from(count))
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
        let (nicks, taken) = Names::pack(["ann", "bob", "über"].into_iter(), &mut storage);
        assert_eq!(taken, 3);
        assert_eq!(
            nicks.iter().collect::<heapless::Vec<_, 4>>(),
            ["ann", "bob", "über"]
        );
        let session = 0x0102_0304_0506_0708;
        for body in [
            Body::Join {
                nick: "ann",
                room: "lobby",
            },
            Body::Welcome {
                epoch: 3,
                next_seq: 7,
                next_msg_id: 1,
                members: 3,
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
            Body::Deliver {
                seq: 7,
                notice: false,
                nick: "ann",
                text: "héllo",
            },
            Body::Deliver {
                seq: 8,
                notice: true,
                nick: "bob",
                text: "bob joined",
            },
            Body::Ack {
                next_seq: 8,
                selective: 0b101,
            },
            Body::Ping { counter: 9 },
            Body::Pong {
                counter: 9,
                members: 2,
            },
            Body::Leave,
            Body::Notice {
                code: NoticeCode::REFUSED,
                text: "room full",
            },
            Body::Missed { from: 3, to: 9 },
            Body::Who,
            Body::Members { total: 5, nicks },
        ] {
            round_trip(Repr { session, body });
        }
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
    fn bad_names_and_text_are_refused() {
        let mut buf = [0u8; 128];
        let long = "x".repeat(NAME_MAX + 1);
        for nick in ["", " ", "a\nb", long.as_str()] {
            let repr = Repr {
                session: 1,
                body: Body::Join { nick, room: "r" },
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
    }
}
