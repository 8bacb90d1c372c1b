//! Legacy peers: programs that predate frames (the original Python chat) put bare UTF-8
//! text in their tokens. The relay makes each address an anonymous member `legacy-N` of
//! the room [`LEGACY_ROOM`], turns its text into room messages, answers it in bare text,
//! and sends it the room's messages and presence as bare text, once each, without
//! acknowledgements (best effort), until it is silent for the member timeout.
//!
//! Legacy tokens carry no sequence number, so replays are refused by remembering the
//! tokens accepted within the TTL (by the characters that hold their IV).

use super::delivery::Delivery;
use super::members::Member;
use super::receipts::{Outcome, Receipt};
use super::rooms;
use super::transmit::Due;
use super::{Dropped, Relay};
use crate::session::{seal_bytes_in_place, truncated};
use crate::time::Instant;
use crate::wire::{Body, NAME_MAX, PresenceKind, Repr};
use core::fmt::Write as _;
use core::hash::Hash;
use heapless::{Deque, String};
use rand_core::CryptoRng;

/// Room that legacy senders talk in.
pub const LEGACY_ROOM: &str = "lobby";
/// Legacy tokens remembered to refuse replays while they are within the TTL.
const SEEN: usize = 256;

/// The characters of a token's text that cover its IV: token text is canonical, so equal
/// tokens have equal text, and the IV is what makes a token unique.
pub(super) fn fingerprint(datagram: &[u8]) -> [u8; 24] {
    let mut fingerprint = [0u8; 24];
    if let Some(part) = datagram.get(12..36) {
        fingerprint.copy_from_slice(part);
    }
    fingerprint
}

/// Legacy tokens accepted lately, and how many legacy peers there were.
#[derive(Debug, Default)]
pub(super) struct Seen {
    tokens: Deque<([u8; 24], u64), SEEN>,
    count: u32,
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(super) fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Formats text into the front of `buf`; `None` if it does not fit.
fn write_text(buf: &mut [u8], args: core::fmt::Arguments<'_>) -> Option<usize> {
    struct Cursor<'b> {
        buf: &'b mut [u8],
        len: usize,
    }
    impl core::fmt::Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
            self.buf
                .get_mut(self.len..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut cursor = Cursor { buf, len: 0 };
    cursor.write_fmt(args).ok()?;
    Some(cursor.len)
}

/// "" or "s".
fn plural(n: impl Into<u64>) -> &'static str {
    if n.into() == 1 { "" } else { "s" }
}

impl<A: Copy + Eq + Hash, R: CryptoRng, const K: usize> Relay<'_, A, R, K> {
    pub(super) fn on_legacy(
        &mut self,
        now: Instant,
        from: A,
        text: &str,
        fingerprint: [u8; 24],
        timestamp: u64,
    ) -> Result<(), Dropped> {
        if self
            .legacy
            .tokens
            .iter()
            .any(|(seen, _)| *seen == fingerprint)
        {
            return Err(Dropped::Duplicate);
        }
        if self.legacy.tokens.is_full() {
            // Forget the oldest only once it is too old to be accepted again.
            let horizon = self
                .unix_now
                .saturating_sub(self.config.ttl.millis() / 1000)
                .saturating_sub(self.config.clock_skew.millis() / 1000);
            match self.legacy.tokens.front() {
                Some(&(_, stamped)) if stamped < horizon => {
                    let _ = self.legacy.tokens.pop_front();
                }
                _ => return Err(Dropped::Overloaded),
            }
        }
        let _ = self.legacy.tokens.push_back((fingerprint, timestamp));

        let m = match self.members.by_addr(&from, true) {
            Some(m) => m,
            None => self.add_legacy(now, from)?,
        };
        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
        let msg_id = member.next_msg_id;
        self.on_chat(now, from, m, msg_id, text)
    }

    fn add_legacy(&mut self, now: Instant, from: A) -> Result<u32, Dropped> {
        if self.members.len() >= self.members.capacity() {
            return Err(Dropped::Overloaded);
        }
        if !self.legacy_room_open(now) {
            return Err(Dropped::Overloaded);
        }
        let r = match self.rooms.by_name(LEGACY_ROOM) {
            Some(r) => r,
            None => {
                let epoch = self.rng.next_u64().max(1);
                self.rooms
                    .create(truncated(LEGACY_ROOM), epoch, 0)
                    .ok_or(Dropped::Overloaded)?
            }
        };
        self.legacy.count = self.legacy.count.wrapping_add(1);
        let mut nick: String<NAME_MAX> = String::new();
        let _ = write!(nick, "legacy-{}", self.legacy.count);
        let start = self.rooms.get(r).map_or(0, |room| room.history.next_seq());
        let session = self.rng.next_u64();
        let mut member = Member::new(
            from,
            session,
            nick.clone(),
            r,
            true,
            now,
            Delivery::new(start, 1, 1),
        );
        member.presence_acked = self.rooms.get(r).map_or(0, |room| room.presence.next());
        let m = self.members.insert(member).ok_or(Dropped::Overloaded)?;
        rooms::link(&mut self.rooms, &mut self.members, m);
        let after = if self.cluster.is_some() && self.cluster_joined(r, session, &nick) {
            self.presence_of(r).map_or(0, |log| log.state.next())
        } else {
            self.announce(r, PresenceKind::Joined, &nick)
        };
        if let Some(member) = self.members.get_mut(m) {
            member.presence_acked = after;
        }
        self.arm(Some(now + self.config.member_timeout));
        Ok(m)
    }

    /// What legacy peer `m` is owed, as bare text.
    pub(super) fn emit_legacy(&mut self, m: u32, due: Due, buf: &mut [u8]) -> Option<usize> {
        let limit = self.line_limit();
        let len = match due {
            Due::Welcome | Due::Pong(_) | Due::Members(_) => return None,
            Due::Answer(Receipt {
                outcome: Outcome::Accepted { seq, recipients },
                ..
            }) => write_text(
                buf,
                format_args!(
                    "server: received as #{seq} for {recipients} member{}",
                    plural(recipients)
                ),
            )?,
            Due::Answer(Receipt {
                outcome: Outcome::Refused(reason),
                ..
            }) => write_text(
                buf,
                format_args!(
                    "server: message refused ({}: at most {limit} bytes)",
                    reason.as_str()
                ),
            )?,
            Due::Busy { .. } => write_text(
                buf,
                format_args!(
                    "server: the room is busy and did not take your line: send it again in a moment"
                ),
            )?,
            Due::Missed { from, to } => write_text(
                buf,
                format_args!(
                    "server: you missed messages #{from} to #{}",
                    to.saturating_sub(1)
                ),
            )?,
            Due::Presence => self.legacy_presence(m, buf)?,
            Due::Deliver(seq) => {
                let r = self.members.get(m)?.room;
                let len = {
                    let history = self.history_of(r)?;
                    let (_, token) = history.get(seq)?;
                    buf.get_mut(..token.len())?.copy_from_slice(token);
                    token.len()
                };
                let plain = self.open_in(buf, len)?;
                legacy_line(buf, plain)?
            }
        };
        seal_bytes_in_place(&self.keys, &mut self.rng, self.unix_now, len, buf)
    }

    /// `* ann joined, bob left (3 members)`: the changes legacy peer `m` has not been
    /// sent, as many as fit; they count as read.
    fn legacy_presence(&mut self, m: u32, buf: &mut [u8]) -> Option<usize> {
        let (r, acked) = {
            let member = self.members.get(m)?;
            (member.room, member.presence_acked)
        };
        let members = self.total_members(r);
        let room_for = crate::fernet::max_message_len(buf.len())?;
        let log = self.presence_of(r)?;
        let next = log.state.next();
        let (from, changes) = log.since(acked);
        let mut text: String<1024> = String::new();
        let _ = text.push_str("*");
        let mut listed = 0u32;
        for (kind, nick) in changes {
            let before = text.len();
            let sep = if listed == 0 { " " } else { ", " };
            if write!(text, "{sep}{nick} {}", kind.as_str()).is_err() || text.len() + 24 > room_for
            {
                text.truncate(before);
                break;
            }
            listed += 1;
        }
        let skipped = (next - from).saturating_sub(listed) + from.saturating_sub(acked);
        if skipped > 0 {
            let _ = write!(text, " ({skipped} more change{})", plural(skipped));
        }
        let _ = write!(text, " ({members} member{})", plural(members));
        if let Some(member) = self.members.get_mut(m) {
            member.presence_acked = next;
        }
        write_text(buf, format_args!("{text}"))
    }
}

/// Turns the Deliver frame at the front of `buf` (`len` bytes) into `nick: text` there;
/// the text's length.
fn legacy_line(buf: &mut [u8], len: usize) -> Option<usize> {
    let (nick, text_at, text_len) = {
        let repr = Repr::parse(buf.get(..len)?).ok()?;
        let Body::Deliver { nick, text, .. } = repr.body else {
            return None;
        };
        let base = buf.as_ptr() as usize;
        let text_at = (text.as_ptr() as usize).checked_sub(base)?;
        (truncated::<NAME_MAX>(nick), text_at, text.len())
    };
    let prefix = nick.len() + 2;
    if prefix.checked_add(text_len)? > buf.len() || text_at.checked_add(text_len)? > buf.len() {
        return None;
    }
    buf.copy_within(text_at..text_at.checked_add(text_len)?, prefix);
    buf.get_mut(..nick.len())?.copy_from_slice(nick.as_bytes());
    buf.get_mut(nick.len()..prefix)?.copy_from_slice(b": ");
    Some(prefix + text_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary_at_or_below_the_limit() {
        assert_eq!(cut("hello", 9), "hello");
        assert_eq!(cut("hello", 5), "hello");
        assert_eq!(cut("hello", 4), "hell");
        // "é" is two bytes (1..3): a cut inside it goes back before it.
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("€", 2), "");
        assert_eq!(cut("", 3), "");
    }

    #[test]
    fn a_deliver_frame_becomes_nick_colon_text_even_when_it_fills_the_buffer() {
        let repr = Repr {
            session: 7,
            body: Body::Deliver {
                seq: 3,
                nick: "ann",
                text: "hi there",
            },
        };
        // The frame exactly fills the buffer: its text ends at the buffer's end.
        let mut buf = [0u8; 64];
        let len = repr.buffer_len();
        let buf = &mut buf[..len];
        assert_eq!(repr.emit(buf), Ok(len));
        assert_eq!(legacy_line(buf, len), Some(13));
        assert_eq!(&buf[..13], b"ann: hi there");
        // And with room to spare after it.
        let mut buf = [0u8; 64];
        assert_eq!(repr.emit(&mut buf), Ok(len));
        assert_eq!(legacy_line(&mut buf, len), Some(13));
        assert_eq!(&buf[..13], b"ann: hi there");
        // Not a Deliver: nothing.
        let mut buf = [0u8; 64];
        let ack = Repr {
            session: 7,
            body: Body::Ack {
                next_seq: 1,
                selective: 0,
                presence: 0,
            },
        };
        let len = ack.emit(&mut buf).unwrap();
        assert_eq!(legacy_line(&mut buf, len), None);
    }

    #[test]
    fn plural_is_empty_only_for_one() {
        assert_eq!(plural(0u32), "s");
        assert_eq!(plural(1u32), "");
        assert_eq!(plural(2u64), "s");
    }
}
