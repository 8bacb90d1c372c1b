//! What a client tells its application.

use crate::time::Duration;
use crate::wire::{NAME_MAX, PresenceKind, RefuseReason};
use heapless::String;

/// What happened, for the application to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent<const TEXT: usize> {
    /// The server welcomed us into the room as `nick` (the name asked for, or a free
    /// variant of it when another member has it). Again after a lost session or a server
    /// restart when `rejoined`; `resumed` when we kept our place in the room (every
    /// message we missed meanwhile follows, or a [`ClientEvent::Missed`] says which are
    /// gone); a rejoin that did not resume means the room itself was restarted.
    Joined {
        members: u32,
        rejoined: bool,
        resumed: bool,
        nick: String<NAME_MAX>,
    },
    /// A room message, in room order, exactly once.
    Message {
        seq: u64,
        nick: String<NAME_MAX>,
        text: String<TEXT>,
        /// When the server sealed it, Unix seconds.
        timestamp: u64,
    },
    /// The server's answer to our line `id` (the value [`Client::send`](super::Client::send)
    /// returned): it became room message `seq` for `recipients` members.
    Delivered { id: u32, seq: u64, recipients: u32 },
    /// The server refused our line `id`; it will not be sent again.
    Refused { id: u32, reason: RefuseReason },
    /// Our line `id` (`text`) did not reach the room: the session closed (we left, the
    /// join was refused, or the server stopped answering) before the server took it.
    /// Every line still waiting gets one, in order, just before [`ClientEvent::Closed`].
    Undelivered { id: u32, text: String<TEXT> },
    /// Members joined or left: the room has `members` members; `changes` in order;
    /// `skipped` more changes happened that are not listed (too many at once: ask for
    /// the member list to see who is there).
    Presence {
        members: u32,
        skipped: u32,
        changes: PresenceChanges<TEXT>,
    },
    /// A message from the server.
    Notice { text: String<TEXT> },
    /// Room messages `from` to `to - 1` left the server's history before we got them; the
    /// next message is `to`.
    Missed { from: u64, to: u64 },
    /// A page of the answer to [`Client::request_members`](super::Client::request_members):
    /// `total` members; `names` are those from position `start` on (the next pages follow
    /// by themselves).
    Members {
        total: u32,
        start: u32,
        names: NameList<TEXT>,
    },
    /// No answer from the server yet, after `waited`: wrong address, server down, a
    /// different key, or a server too old for this protocol (a server ignores tokens it
    /// cannot verify).
    NoAnswer { waited: Duration },
    /// Nothing heard from the server for `silent_for`.
    ServerLost { silent_for: Duration },
    /// The server is heard again after [`ClientEvent::ServerLost`].
    ServerBack,
    /// The server no longer knows us (it restarted, or dropped us while we were silent):
    /// joining again, asking for our place back.
    Rejoining,
    /// The real time was learnt from the server (devices without a clock).
    ClockSynced { unix_secs: u64 },
    /// The join was refused, or we left: the session is over.
    Closed,
}

/// Names, in order, in `N` bytes (each followed by `\n`, which no name contains).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameList<const N: usize>(String<N>);

impl<const N: usize> NameList<N> {
    /// Adds a name; `false` if it does not fit.
    pub fn push(&mut self, name: &str) -> bool {
        if self.0.len() + name.len() + 1 > N {
            return false;
        }
        self.0.push_str(name).is_ok() && self.0.push('\n').is_ok()
    }

    /// The names, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split_terminator('\n')
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Presence changes, in order, in `N` bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceChanges<const N: usize>(NameList<N>);

impl<const N: usize> PresenceChanges<N> {
    /// Adds a change; `false` if it does not fit.
    pub fn push(&mut self, kind: PresenceKind, name: &str) -> bool {
        let mut entry: String<{ NAME_MAX + 1 }> = String::new();
        let tag = char::from(b'0' + kind.to_u8());
        entry.push(tag).is_ok() && entry.push_str(name).is_ok() && self.0.push(&entry)
    }

    /// The changes, in order.
    pub fn iter(&self) -> impl Iterator<Item = (PresenceKind, &str)> {
        self.0.iter().filter_map(|entry| {
            let tag = entry.as_bytes().first()?.checked_sub(b'0')?;
            Some((PresenceKind::from_u8(tag)?, entry.get(1..)?))
        })
    }

    /// How many changes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why [`Client::send`](super::Client::send) did not take a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Longer than `max` bytes, the most a datagram can carry.
    TooLong { max: usize },
    /// Too many lines await the server's answer; try again after the next event.
    QueueFull,
    /// The session is over (or closing).
    Closed,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong { max } => write!(f, "message too long: at most {max} bytes"),
            Self::QueueFull => f.write_str("too many messages waiting for the server"),
            Self::Closed => f.write_str("not connected"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_hold_what_fits_in_order() {
        let mut names: NameList<8> = NameList::default();
        assert!(names.push("ann"));
        assert!(names.push("bo"));
        assert!(!names.push("x"), "8 bytes used");
        assert_eq!(names.iter().collect::<heapless::Vec<_, 4>>(), ["ann", "bo"]);
        let mut changes: PresenceChanges<16> = PresenceChanges::default();
        assert!(changes.push(PresenceKind::Joined, "ann"));
        assert!(changes.push(PresenceKind::TimedOut, "bob, jr"));
        assert_eq!(
            changes.iter().collect::<heapless::Vec<_, 4>>(),
            [
                (PresenceKind::Joined, "ann"),
                (PresenceKind::TimedOut, "bob, jr")
            ]
        );
        assert_eq!(changes.len(), 2);
    }

    /// A name that fills the list to its last byte fits (`N` is a capacity, not a bound
    /// to stay under); one byte more does not, and a refused name leaves the list as it
    /// was, without a half-written entry.
    #[test]
    fn a_name_that_fills_the_list_exactly_fits() {
        let mut names: NameList<8> = NameList::default();
        assert!(names.is_empty());
        assert_eq!(names.len(), 0);
        assert!(names.push("ann"), "4 of 8 bytes");
        assert!(!names.is_empty());
        assert!(!names.push("bob!"), "5 more bytes do not fit in 4");
        assert!(names.push("bob"), "4 more bytes fill it exactly");
        assert_eq!(names.len(), 2);
        assert_eq!(
            names.iter().collect::<heapless::Vec<_, 4>>(),
            ["ann", "bob"]
        );
    }

    /// A presence change carries any valid name, the longest (`NAME_MAX` bytes) too.
    #[test]
    fn a_change_holds_the_longest_name() {
        let bytes = [b'n'; NAME_MAX];
        let longest = core::str::from_utf8(&bytes).unwrap();
        let mut changes: PresenceChanges<64> = PresenceChanges::default();
        assert!(changes.is_empty());
        assert!(changes.push(PresenceKind::Left, longest));
        assert!(!changes.is_empty());
        assert_eq!(
            changes.iter().collect::<heapless::Vec<_, 2>>(),
            [(PresenceKind::Left, longest)]
        );
    }

    /// Each refusal says what happened, and the length limit names the limit.
    #[test]
    fn send_errors_read_as_sentences() {
        use core::fmt::Write;
        let shown = |error: SendError| {
            let mut text: String<64> = String::new();
            write!(text, "{error}").unwrap();
            text
        };
        assert_eq!(
            shown(SendError::TooLong { max: 5 }),
            "message too long: at most 5 bytes"
        );
        assert_eq!(
            shown(SendError::QueueFull),
            "too many messages waiting for the server"
        );
        assert_eq!(shown(SendError::Closed), "not connected");
    }
}
