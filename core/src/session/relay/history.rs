//! A room's history: its recent room messages, each kept as the sealed `Deliver` token
//! every member is sent (one encryption per message, whatever the room's size), in a ring
//! of bytes the caller provides.
//!
//! Tokens vary in length (a 64-byte line makes a 200-byte token, the longest line a
//! 1232-byte one), so the history is bounded twice: at most `entries.len()` messages and
//! at most `bytes.len()` bytes of tokens. Tokens are written contiguously; one that does
//! not fit before the end of the ring starts again at offset 0.

/// One message of a room's history (see
/// [`RelayStorage::history`](super::RelayStorage::history)): where its token lies and who
/// sent it. Opaque.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryEntry {
    offset: u32,
    len: u16,
    /// Unix seconds the token was made: it is made again when it gets old, so that a
    /// member receiving it late still finds it within the TTL.
    sealed_at: u64,
    /// The sender's session (legacy peers are not sent their own lines back).
    origin: u64,
}

impl HistoryEntry {
    /// An empty entry, for `static` arrays.
    pub const EMPTY: Self = Self {
        offset: 0,
        len: 0,
        sealed_at: 0,
        origin: 0,
    };
}

/// Where a room's history stands; the entries and bytes are the caller's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct HistoryState {
    first_seq: u64,
    /// Messages kept.
    len: u32,
    /// Ring index of the oldest entry.
    oldest: u32,
    /// Next byte to write.
    write: u32,
    /// Bytes of tokens kept.
    used: u32,
}

impl HistoryState {
    /// An empty history whose next message is `next_seq`.
    pub fn starting_at(next_seq: u64) -> Self {
        Self {
            first_seq: next_seq,
            ..Self::default()
        }
    }

    /// The oldest message kept.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.first_seq.saturating_add(u64::from(self.len))
    }

    /// Bytes of tokens kept.
    #[cfg(test)]
    pub fn used(&self) -> u32 {
        self.used
    }
}

/// A room's history over its share of the caller's storage.
#[derive(Debug)]
pub(super) struct History<'s> {
    pub state: &'s mut HistoryState,
    pub entries: &'s mut [HistoryEntry],
    pub bytes: &'s mut [u8],
}

/// A message of the history, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stored {
    pub sealed_at: u64,
    pub origin: u64,
}

impl History<'_> {
    fn ring_index(&self, nth: u64) -> Option<usize> {
        let cap = self.entries.len() as u64;
        if cap == 0 {
            return None;
        }
        usize::try_from((u64::from(self.state.oldest) + nth) % cap).ok()
    }

    fn entry(&self, seq: u64) -> Option<&HistoryEntry> {
        let nth = seq.checked_sub(self.state.first_seq)?;
        if nth >= u64::from(self.state.len) {
            return None;
        }
        self.entries.get(self.ring_index(nth)?)
    }

    /// Message `seq`'s token and what is known of it.
    pub fn get(&self, seq: u64) -> Option<(Stored, &[u8])> {
        let e = self.entry(seq)?;
        let start = e.offset as usize;
        let token = self
            .bytes
            .get(start..start.checked_add(usize::from(e.len))?)?;
        Some((
            Stored {
                sealed_at: e.sealed_at,
                origin: e.origin,
            },
            token,
        ))
    }

    /// Replaces message `seq`'s token by `token` (the same length) made at `sealed_at`.
    pub fn reseal(&mut self, seq: u64, token: &[u8], sealed_at: u64) {
        let Some(nth) = seq.checked_sub(self.state.first_seq) else {
            return;
        };
        let Some(i) = self.ring_index(nth) else {
            return;
        };
        let Some(e) = self.entries.get_mut(i) else {
            return;
        };
        if usize::from(e.len) != token.len() {
            return;
        }
        let start = e.offset as usize;
        e.sealed_at = sealed_at;
        if let Some(slot) = self.bytes.get_mut(start..start.saturating_add(token.len())) {
            slot.copy_from_slice(token);
        }
    }

    /// Whether a `len`-byte token could ever be kept.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.bytes.len() && len <= usize::from(u16::MAX) && !self.entries.is_empty()
    }

    /// Where a `len`-byte token would go now without evicting anything.
    fn free_offset(&self, len: usize) -> Option<usize> {
        if self.state.len as usize >= self.entries.len() {
            return None;
        }
        if self.state.len == 0 {
            return (len <= self.bytes.len()).then_some(0);
        }
        let start = self.entries.get(self.ring_index(0)?)?.offset as usize;
        let write = self.state.write as usize;
        if write > start {
            // Kept: [start, write). Free: [write, end) and [0, start).
            if self.bytes.len().saturating_sub(write) >= len {
                Some(write)
            } else {
                (start >= len).then_some(0)
            }
        } else {
            // Wrapped: kept [start, end) and [0, write); free [write, start).
            (start.saturating_sub(write) >= len).then_some(write)
        }
    }

    /// Drops the oldest message; its sequence number.
    pub fn evict_oldest(&mut self) -> Option<u64> {
        if self.state.len == 0 {
            return None;
        }
        let seq = self.state.first_seq;
        let len = self
            .ring_index(0)
            .and_then(|i| self.entries.get(i))
            .map_or(0, |e| u32::from(e.len));
        self.state.used = self.state.used.saturating_sub(len);
        self.state.first_seq = seq.saturating_add(1);
        self.state.len -= 1;
        let cap = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.state.oldest = (self.state.oldest + 1) % cap.max(1);
        if self.state.len == 0 {
            self.state.oldest = 0;
            self.state.write = 0;
            self.state.used = 0;
        }
        Some(seq)
    }

    /// Takes back the newest message (one whose token could not be written).
    pub fn evict_newest(&mut self) {
        if self.state.len == 0 {
            return;
        }
        self.state.len -= 1;
        let newest = self
            .ring_index(u64::from(self.state.len))
            .and_then(|i| self.entries.get(i))
            .map_or((0, 0), |e| (e.offset, u32::from(e.len)));
        self.state.write = newest.0;
        self.state.used = self.state.used.saturating_sub(newest.1);
        if self.state.len == 0 {
            self.state.oldest = 0;
            self.state.write = 0;
        }
    }

    /// Drops every message below `floor`.
    pub fn evict_below(&mut self, floor: u64) {
        while self.state.len > 0 && self.state.first_seq < floor {
            let _ = self.evict_oldest();
        }
    }

    /// How many tokens of up to `len` bytes fit now, at least (counting whole entries and
    /// free bytes; a token that finds the free bytes split at the ring's end evicts more
    /// when it comes, or waits).
    pub fn room_for(&self, len: usize) -> u32 {
        let entries = (self.entries.len() as u32).saturating_sub(self.state.len);
        let bytes = (self.bytes.len() as u32).saturating_sub(self.state.used);
        entries.min(bytes / (len.max(1) as u32))
    }

    /// Makes room for a `len`-byte token by evicting the oldest messages while
    /// `evictable(seq)` allows; whether there is room now.
    pub fn make_room(&mut self, len: usize, mut evictable: impl FnMut(u64) -> bool) -> bool {
        if !self.fits(len) {
            return false;
        }
        while self.free_offset(len).is_none() {
            if !evictable(self.state.first_seq) || self.evict_oldest().is_none() {
                return false;
            }
        }
        true
    }

    /// Appends a `len`-byte message from `origin` (after [`make_room`](Self::make_room)
    /// said yes); its sequence number and the bytes to write its token into.
    pub fn append(&mut self, len: usize, origin: u64, sealed_at: u64) -> Option<(u64, &mut [u8])> {
        let offset = self.free_offset(len)?;
        let i = self.ring_index(u64::from(self.state.len))?;
        let len16 = u16::try_from(len).ok()?;
        *self.entries.get_mut(i)? = HistoryEntry {
            offset: u32::try_from(offset).ok()?,
            len: len16,
            sealed_at,
            origin,
        };
        let end = offset.checked_add(len)?;
        self.state.write = u32::try_from(end).ok()?;
        let seq = self.state.next_seq();
        self.state.len += 1;
        self.state.used = self.state.used.saturating_add(u32::from(len16));
        Some((seq, self.bytes.get_mut(offset..end)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    extern crate std;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    /// A history's storage, owned: `E` entries, `B` bytes.
    struct Ring<const E: usize, const B: usize> {
        state: HistoryState,
        entries: [HistoryEntry; E],
        bytes: [u8; B],
    }

    impl<const E: usize, const B: usize> Ring<E, B> {
        fn starting_at(seq: u64) -> Self {
            Self {
                state: HistoryState::starting_at(seq),
                entries: [HistoryEntry::EMPTY; E],
                bytes: [0; B],
            }
        }

        fn history(&mut self) -> History<'_> {
            History {
                state: &mut self.state,
                entries: &mut self.entries,
                bytes: &mut self.bytes,
            }
        }
    }

    fn push(h: &mut History<'_>, len: usize, fill: u8) -> Option<u64> {
        if !h.make_room(len, |_| true) {
            return None;
        }
        let (seq, slot) = h.append(len, u64::from(fill), 0)?;
        slot.fill(fill);
        Some(seq)
    }

    #[test]
    fn wraps_and_evicts_the_oldest() {
        let mut ring = Ring::<4, 10>::starting_at(5);
        let mut h = ring.history();
        assert_eq!(push(&mut h, 4, 1), Some(5));
        assert_eq!(push(&mut h, 4, 2), Some(6));
        assert_eq!(push(&mut h, 4, 3), Some(7), "wraps, evicting 5");
        assert_eq!(h.state.first_seq(), 6);
        assert_eq!(h.get(6).map(|(_, t)| t.to_vec()), Some(vec![2; 4]));
        assert_eq!(h.get(7).map(|(_, t)| t.to_vec()), Some(vec![3; 4]));
        assert_eq!(h.get(5), None);
        assert_eq!(h.get(8), None);
        assert!(!h.make_room(11, |_| true), "never fits");
        assert!(!h.make_room(8, |_| false), "needs eviction, refused");
        assert_eq!(h.state.first_seq(), 6, "nothing evicted when refused");
    }

    proptest! {
        /// Against a model: every kept message reads back exactly, the newest are kept,
        /// and the bounds hold.
        #[test]
        fn matches_a_model(lens in proptest::collection::vec(1usize..40, 1..200)) {
            let mut ring = Ring::<7, 100>::starting_at(0);
            let mut h = ring.history();
            let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            for (n, len) in lens.into_iter().enumerate() {
                let fill = (n % 251) as u8;
                let seq = push(&mut h, len, fill).expect("fits after evicting");
                prop_assert_eq!(seq, n as u64);
                model.push_back((seq, vec![fill; len]));
                while model.front().is_some_and(|(s, _)| *s < h.state.first_seq()) {
                    model.pop_front();
                }
                prop_assert!(model.len() <= 7);
                prop_assert!(model.iter().map(|(_, t)| t.len()).sum::<usize>() <= 100);
                prop_assert_eq!(
                    h.state.used() as usize,
                    model.iter().map(|(_, t)| t.len()).sum::<usize>()
                );
                prop_assert_eq!(h.state.next_seq(), n as u64 + 1);
                // The oldest's ring position stays an index into the entries, however
                // many messages come and go (never a count that could overflow).
                prop_assert!(h.state.oldest < 7, "{}", h.state.oldest);
                for (s, t) in &model {
                    prop_assert_eq!(h.get(*s).map(|(_, b)| b.to_vec()), Some(t.clone()));
                }
            }
        }
    }

    fn token(h: &History<'_>, seq: u64) -> Option<Vec<u8>> {
        h.get(seq).map(|(_, t)| t.to_vec())
    }

    /// Only a token that can ever fit is taken: no longer than the bytes (nor than a
    /// `u16`), and only if there is an entry at all.
    #[test]
    fn fits_at_most_the_bytes_and_a_u16() {
        let (mut state, mut entries, mut bytes) = (
            HistoryState::starting_at(0),
            [HistoryEntry::EMPTY; 2],
            vec![0u8; 70_000],
        );
        let h = History {
            state: &mut state,
            entries: &mut entries,
            bytes: &mut bytes[..10],
        };
        assert!(h.fits(10));
        assert!(!h.fits(11));
        let h = History {
            state: &mut state,
            entries: &mut entries,
            bytes: &mut bytes,
        };
        assert!(h.fits(usize::from(u16::MAX)));
        assert!(!h.fits(usize::from(u16::MAX) + 1));
        let h = History {
            state: &mut state,
            entries: &mut [],
            bytes: &mut bytes,
        };
        assert!(!h.fits(1), "no entries");
    }

    /// A message made again (its token older than half the TTL) replaces the old token in
    /// place, with its new time; a token of another length, or for a message not kept,
    /// changes nothing. Who sent it is kept.
    #[test]
    fn reseal_replaces_a_token_in_place() {
        let mut ring = Ring::<4, 16>::starting_at(5);
        let mut h = ring.history();
        for fill in 1..=3 {
            push(&mut h, 4, fill);
        }
        h.reseal(6, &[9; 4], 77);
        let stored = Stored {
            sealed_at: 77,
            origin: 2,
        };
        assert_eq!(h.get(6), Some((stored, &[9u8; 4][..])));
        h.reseal(6, &[8; 3], 88);
        assert_eq!(
            h.get(6),
            Some((stored, &[9u8; 4][..])),
            "not the same length"
        );
        h.reseal(4, &[8; 4], 88);
        assert_eq!(token(&h, 5), Some(vec![1; 4]));
        assert_eq!(token(&h, 7), Some(vec![3; 4]));
        assert_eq!(h.get(5).map(|(s, _)| s.sealed_at), Some(0));
    }

    /// A message whose token could not be written is taken back: the next one gets its
    /// number and its place, and nothing older goes.
    #[test]
    fn evict_newest_gives_back_the_number_and_the_place() {
        let mut ring = Ring::<4, 12>::starting_at(5);
        let mut h = ring.history();
        for fill in 1..=3 {
            push(&mut h, 4, fill);
        }
        h.evict_newest();
        assert_eq!((h.state.next_seq(), h.state.used()), (7, 8));
        assert_eq!(h.room_for(4), 1);
        assert_eq!(push(&mut h, 4, 4), Some(7));
        assert_eq!(h.state.first_seq(), 5, "nothing evicted");
        assert_eq!(token(&h, 5), Some(vec![1; 4]));
        assert_eq!(token(&h, 6), Some(vec![2; 4]));
        assert_eq!(token(&h, 7), Some(vec![4; 4]));
        for _ in 0..3 {
            h.evict_newest();
        }
        assert_eq!((h.state.next_seq(), h.state.used()), (5, 0));
        h.evict_newest();
        assert_eq!(h.state.next_seq(), 5, "nothing to take back");
        assert_eq!(push(&mut h, 12, 5), Some(5));
        assert_eq!(token(&h, 5), Some(vec![5; 12]));
    }

    /// Messages below the room's floor (every member has them) go; the floor itself
    /// stays; a floor past the end empties the history and numbering goes on.
    #[test]
    fn evict_below_drops_exactly_what_is_below_the_floor() {
        let mut ring = Ring::<8, 64>::starting_at(5);
        let mut h = ring.history();
        for fill in 1..=5 {
            push(&mut h, 4, fill);
        }
        h.evict_below(5);
        assert_eq!(h.state.first_seq(), 5);
        h.evict_below(7);
        assert_eq!((h.state.first_seq(), h.state.used()), (7, 12));
        assert_eq!(token(&h, 7), Some(vec![3; 4]));
        h.evict_below(100);
        assert_eq!((h.state.first_seq(), h.state.next_seq()), (10, 10));
        assert_eq!(h.state.used(), 0);
        assert_eq!(push(&mut h, 4, 6), Some(10));
    }

    /// How many more tokens fit without evicting: whole entries and whole tokens' bytes.
    #[test]
    fn room_for_counts_entries_and_bytes() {
        let mut ring = Ring::<4, 30>::starting_at(0);
        let mut h = ring.history();
        assert_eq!(h.room_for(6), 4, "entries bound it");
        assert_eq!(h.room_for(10), 3, "bytes bound it");
        push(&mut h, 8, 1);
        assert_eq!(h.room_for(5), 3);
        assert_eq!(h.room_for(11), 2);
        assert_eq!(h.room_for(23), 0);
    }

    /// A ring whose free bytes are exactly used up (the write point back at the oldest
    /// token) has none: the next token evicts instead of overwriting the oldest.
    #[test]
    fn a_ring_with_its_bytes_used_up_evicts_before_it_writes() {
        let mut ring = Ring::<4, 10>::starting_at(0);
        let mut h = ring.history();
        push(&mut h, 4, 1);
        push(&mut h, 4, 2);
        assert_eq!(push(&mut h, 4, 3), Some(2), "at 0, evicting 0");
        // Kept: 1 at [4, 8), 2 at [0, 4): no free byte between.
        assert_eq!(push(&mut h, 2, 4), Some(3));
        assert_eq!(h.state.first_seq(), 2, "1 evicted");
        assert_eq!(token(&h, 2), Some(vec![3; 4]));
        assert_eq!(token(&h, 3), Some(vec![4; 2]));
    }
}
