//! Presence: who joined and left a room, told to its members without costing what a line
//! costs.
//!
//! Joins and leaves are not room messages: they do not take a place in the history, a
//! sequence number or a member's window. Each room keeps a short log of its latest
//! changes, numbered by their own counter; each member acknowledges how far it has read
//! it (in its Acks). The relay sends a member the changes it lacks in one `Presence`
//! frame, as many as fit, at most once per presence interval (a "tick" of the room), and
//! again after the member's retransmission timeout if it did not acknowledge them. A
//! member that fell behind the log gets the newest changes and learns how many it did not
//! get (the gap between its position and the frame's `from`), plus the member count.
//!
//! So a join storm of `N` members costs each member one frame per tick while it lasts, not
//! `N` messages: `O(N × storm duration)` datagrams instead of `O(N²)`.

use crate::wire::{NAME_MAX, PresenceKind};
use heapless::String;

/// One change in a room's presence log (see
/// [`RelayStorage::presence`](super::RelayStorage::presence)). Opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceEntry {
    kind: u8,
    nick: String<NAME_MAX>,
}

impl PresenceEntry {
    /// An empty entry, for `static` arrays.
    pub const EMPTY: Self = Self {
        kind: 0,
        nick: String::new(),
    };
}

impl Default for PresenceEntry {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Where a room's presence log stands; the entries are the caller's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PresenceState {
    /// The number the next change gets.
    next: u32,
    /// Changes kept.
    len: u32,
    /// Ring index of the oldest.
    oldest: u32,
}

impl PresenceState {
    /// The number the next change gets: every member that acknowledged this has them all.
    pub fn next(&self) -> u32 {
        self.next
    }

    /// The oldest change still kept.
    pub fn first(&self) -> u32 {
        self.next.saturating_sub(self.len)
    }
}

/// A room's presence log over its share of the caller's storage.
#[derive(Debug)]
pub(super) struct PresenceLog<'s> {
    pub state: &'s mut PresenceState,
    pub entries: &'s mut [PresenceEntry],
}

impl PresenceLog<'_> {
    /// Records a change; its number.
    pub fn push(&mut self, kind: PresenceKind, nick: &str) -> u32 {
        let cap = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let number = self.state.next;
        self.state.next = number.saturating_add(1);
        if cap == 0 {
            return number;
        }
        let at = (self.state.oldest + self.state.len.min(cap)) % cap;
        if self.state.len == cap {
            self.state.oldest = (self.state.oldest + 1) % cap;
        } else {
            self.state.len += 1;
        }
        if let Some(entry) = self.entries.get_mut(at as usize) {
            entry.kind = kind.to_u8();
            entry.nick.clear();
            let _ = entry.nick.push_str(nick);
        }
        number
    }

    /// The changes from number `from` on (from the oldest kept if `from` is older), with
    /// the number of the first.
    pub fn since(&self, from: u32) -> (u32, impl Iterator<Item = (PresenceKind, &str)> + '_) {
        let state = *self.state;
        let start = from.max(state.first()).min(state.next);
        let cap = self.entries.len().max(1);
        let skip = (start - state.first()) as usize;
        let count = (state.next - start) as usize;
        let iter = (0..count).filter_map(move |k| {
            let i = (state.oldest as usize + skip + k) % cap;
            let entry = self.entries.get(i)?;
            Some((PresenceKind::from_u8(entry.kind)?, entry.nick.as_str()))
        });
        (start, iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    extern crate std;

    #[test]
    fn keeps_the_newest_changes() {
        let mut state = PresenceState::default();
        let mut entries = [
            PresenceEntry::EMPTY,
            PresenceEntry::EMPTY,
            PresenceEntry::EMPTY,
        ];
        let mut log = PresenceLog {
            state: &mut state,
            entries: &mut entries,
        };
        assert_eq!(log.push(PresenceKind::Joined, "ann"), 0);
        assert_eq!(log.push(PresenceKind::Joined, "bob"), 1);
        let (from, changes) = log.since(1);
        assert_eq!(from, 1);
        assert_eq!(changes.collect::<Vec<_>>(), [(PresenceKind::Joined, "bob")]);
        log.push(PresenceKind::Left, "ann");
        log.push(PresenceKind::TimedOut, "bob");
        assert_eq!(log.state.first(), 1);
        assert_eq!(log.state.next(), 4);
        let (from, changes) = log.since(0);
        assert_eq!(from, 1, "0 was forgotten: the frame starts at 1");
        assert_eq!(
            changes.collect::<Vec<_>>(),
            [
                (PresenceKind::Joined, "bob"),
                (PresenceKind::Left, "ann"),
                (PresenceKind::TimedOut, "bob")
            ]
        );
        let (from, changes) = log.since(4);
        assert_eq!((from, changes.count()), (4, 0));
    }

    /// A room given no presence storage still numbers its changes (so members' positions
    /// move on) and sends none.
    #[test]
    fn no_storage_numbers_changes_and_keeps_none() {
        let mut state = PresenceState::default();
        let mut log = PresenceLog {
            state: &mut state,
            entries: &mut [],
        };
        assert_eq!(log.push(PresenceKind::Joined, "ann"), 0);
        assert_eq!(log.push(PresenceKind::Left, "ann"), 1);
        assert_eq!((log.state.first(), log.state.next()), (2, 2));
        let (from, changes) = log.since(0);
        assert_eq!((from, changes.count()), (2, 0));
    }

    /// A large log that has turned over many times (a busy room over a long run) still
    /// keeps exactly the newest changes: its positions stay within the ring however many
    /// changes went through it.
    #[test]
    fn a_large_log_turns_over_many_times() {
        const CAP: usize = 1 << 16;
        let mut state = PresenceState::default();
        let mut entries = std::vec![PresenceEntry::EMPTY; CAP];
        let mut log = PresenceLog {
            state: &mut state,
            entries: &mut entries,
        };
        let turns = 3;
        let total = (CAP * turns + 5) as u32;
        let nick = |n: u32| std::format!("m{}", n % 1000);
        for n in 0..total {
            log.push(PresenceKind::Joined, &nick(n));
        }
        assert_eq!(log.state.first(), total - CAP as u32);
        assert_eq!(log.state.next(), total);
        let (from, changes) = log.since(total - 3);
        assert_eq!(from, total - 3);
        let got: Vec<_> = changes.map(|(_, s)| std::string::String::from(s)).collect();
        assert_eq!(got, [nick(total - 3), nick(total - 2), nick(total - 1)]);
        let (from, changes) = log.since(0);
        assert_eq!((from, changes.count()), (total - CAP as u32, CAP));
    }

    /// The log against a plain model (every change in a list, the newest `cap` kept), for
    /// every capacity up to 5 and every reader position, over several turns of the ring.
    #[test]
    fn matches_a_list_of_every_change() {
        let kinds = [
            PresenceKind::Joined,
            PresenceKind::Left,
            PresenceKind::TimedOut,
        ];
        for cap in 1..=5 {
            let mut state = PresenceState::default();
            let mut entries = std::vec![PresenceEntry::EMPTY; cap];
            let mut log = PresenceLog {
                state: &mut state,
                entries: &mut entries,
            };
            let mut all = Vec::new();
            for n in 0..13u32 {
                let nick = std::format!("m{n}");
                let kind = kinds[n as usize % kinds.len()];
                assert_eq!(log.push(kind, &nick), n);
                all.push((kind, nick));
                let first = all.len().saturating_sub(cap) as u32;
                assert_eq!((log.state.first(), log.state.next()), (first, n + 1));
                for from in 0..=n + 2 {
                    let (start, changes) = log.since(from);
                    let start_model = from.clamp(first, n + 1);
                    assert_eq!(start, start_model, "cap {cap}, after {n}, from {from}");
                    let got: Vec<_> = changes
                        .map(|(k, s)| (k, std::string::String::from(s)))
                        .collect();
                    assert_eq!(got, all[start_model as usize..], "cap {cap}, from {from}");
                }
            }
        }
    }
}
