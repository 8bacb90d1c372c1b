//! [`Repr`]: a frame parsed into its kind's fields, and emitted from them.

use super::codec::{Reader, Writer};
use super::*;

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
