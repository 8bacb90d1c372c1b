//! Sessions that are no longer members (left, timed out, replaced), remembered in a ring
//! of caller-provided slots, oldest forgotten first, found by session in O(1).
//!
//! What is remembered serves two rules (PROTOCOL.md "Departed sessions"): a token made
//! before the session went is a replay and gets no answer at all; and a client that comes
//! back (a paused laptop, a radio out of range) gets its line numbering and the answers
//! to its last lines back, so that every line it sent keeps exactly one outcome.

use super::members::NIL;
use super::receipts::Receipts;
use core::hash::Hasher;
use siphasher::sip::SipHasher13;

/// One slot of the relay's memory of departed sessions (see
/// [`RelayStorage::gone`](super::RelayStorage::gone)). Opaque: `GoneSlot::default()` or
/// [`GoneSlot::EMPTY`].
#[derive(Clone, Debug)]
pub struct GoneSlot {
    gone: Option<Gone>,
    /// First departed session hashing to this slot's index.
    bucket: u32,
}

impl GoneSlot {
    /// An empty slot, for `static` arrays.
    pub const EMPTY: Self = Self {
        gone: None,
        bucket: NIL,
    };
}

impl Default for GoneSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// A departed session.
#[derive(Clone, Copy, Debug)]
pub(super) struct Gone {
    pub session: u64,
    /// Unix seconds when it went: only tokens made later can be its client coming back.
    pub at: u64,
    /// It said goodbye: it never comes back, and nothing it sends is answered.
    pub left: bool,
    /// Its line numbering and its last answers, for its return.
    pub next_msg_id: u32,
    pub receipts: Receipts,
    /// Its ping and member-list counters: they keep rising across its return, so that a
    /// Ping or Who captured before it went is still a replay after.
    pub ping_counter: u64,
    pub who_counter: u32,
    next: u32,
}

impl Gone {
    pub fn new(session: u64, at: u64, left: bool, next_msg_id: u32, receipts: Receipts) -> Self {
        Self {
            session,
            at,
            left,
            next_msg_id,
            receipts,
            ping_counter: 0,
            who_counter: 0,
            next: NIL,
        }
    }
}

/// The ring over the caller's slots.
#[derive(Debug)]
pub(super) struct GoneTable<'a> {
    slots: &'a mut [GoneSlot],
    /// Ring position of the oldest record (or hole).
    oldest: usize,
    /// Positions used, holes (taken records) included.
    used: usize,
    keys: (u64, u64),
}

impl<'a> GoneTable<'a> {
    pub fn new(slots: &'a mut [GoneSlot], keys: (u64, u64)) -> Self {
        let usable = slots.len().min(NIL as usize);
        let slots = match slots.get_mut(..usable) {
            Some(slots) => slots,
            None => &mut [],
        };
        for slot in slots.iter_mut() {
            *slot = GoneSlot::EMPTY;
        }
        Self {
            slots,
            oldest: 0,
            used: 0,
            keys,
        }
    }

    fn bucket(&self, session: u64) -> usize {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write_u64(session);
        let n = self.slots.len().max(1) as u64;
        usize::try_from(h.finish() % n).unwrap_or(0)
    }

    fn position(&self, session: u64) -> Option<u32> {
        let mut i = self.slots.get(self.bucket(session))?.bucket;
        while let Some(gone) = self.slots.get(i as usize)?.gone.as_ref() {
            if gone.session == session {
                return Some(i);
            }
            i = gone.next;
        }
        None
    }

    /// The record of `session`, if remembered.
    pub fn find(&self, session: u64) -> Option<&Gone> {
        self.slots
            .get(self.position(session)? as usize)?
            .gone
            .as_ref()
    }

    /// Forgets `session` and returns its record.
    pub fn take(&mut self, session: u64) -> Option<Gone> {
        let i = self.position(session)?;
        self.unlink(i);
        self.slots.get_mut(i as usize)?.gone.take()
    }

    fn unlink(&mut self, i: u32) {
        let Some(gone) = self.slots.get(i as usize).and_then(|s| s.gone) else {
            return;
        };
        let bucket = self.bucket(gone.session);
        let head = self.slots.get(bucket).map_or(NIL, |s| s.bucket);
        if head == i {
            if let Some(slot) = self.slots.get_mut(bucket) {
                slot.bucket = gone.next;
            }
            return;
        }
        let mut at = head;
        while let Some(g) = self.slots.get(at as usize).and_then(|s| s.gone) {
            if g.next == i {
                if let Some(prev) = self
                    .slots
                    .get_mut(at as usize)
                    .and_then(|s| s.gone.as_mut())
                {
                    prev.next = gone.next;
                }
                return;
            }
            at = g.next;
        }
    }

    /// Remembers a departed session (any older record of it is replaced), forgetting the
    /// oldest when full.
    pub fn insert(&mut self, mut gone: Gone) {
        let cap = self.slots.len();
        if cap == 0 {
            return;
        }
        let _ = self.take(gone.session);
        if self.used == cap {
            let oldest = u32::try_from(self.oldest).unwrap_or(NIL);
            self.unlink(oldest);
            if let Some(slot) = self.slots.get_mut(self.oldest) {
                slot.gone = None;
            }
            self.oldest = (self.oldest + 1) % cap;
            self.used -= 1;
        }
        let at = (self.oldest + self.used) % cap;
        let bucket = self.bucket(gone.session);
        gone.next = self.slots.get(bucket).map_or(NIL, |s| s.bucket);
        if let Some(slot) = self.slots.get_mut(at) {
            slot.gone = Some(gone);
        }
        if let Some(slot) = self.slots.get_mut(bucket) {
            slot.bucket = u32::try_from(at).unwrap_or(NIL);
        }
        self.used += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    extern crate std;
    use std::collections::VecDeque;
    use std::vec;

    fn gone(session: u64) -> Gone {
        Gone::new(session, session * 10, false, 1, Receipts::default())
    }

    #[test]
    fn remembers_the_newest_and_forgets_the_oldest() {
        let mut slots = [GoneSlot::EMPTY, GoneSlot::EMPTY, GoneSlot::EMPTY];
        let mut table = GoneTable::new(&mut slots, (3, 4));
        for s in 1..=3 {
            table.insert(gone(s));
        }
        assert_eq!(table.find(2).map(|g| g.at), Some(20));
        table.insert(gone(4));
        assert!(table.find(1).is_none(), "oldest forgotten");
        assert!(table.find(4).is_some());
        assert_eq!(table.take(3).map(|g| g.session), Some(3));
        assert!(table.find(3).is_none());
        table.insert(gone(5));
        table.insert(gone(6));
        for s in [4, 5, 6] {
            assert!(table.find(s).is_some(), "{s}");
        }
        assert!(table.find(2).is_none());
        let mut again = gone(5);
        again.left = true;
        table.insert(again);
        assert!(table.find(5).is_some_and(|g| g.left), "replaced");
    }

    /// Sessions spread over the slots' chains (the O(1) lookup): eight departed sessions
    /// in eight slots are not all on one chain.
    #[test]
    fn sessions_spread_over_the_chains() {
        let mut slots = [GoneSlot::EMPTY; 8];
        let mut table = GoneTable::new(&mut slots, (3, 4));
        for s in 1..=8 {
            table.insert(gone(s));
        }
        let longest = (0..8)
            .map(|b| {
                let mut i = table.slots[b].bucket;
                let mut n = 0;
                while let Some(g) = table.slots.get(i as usize).and_then(|s| s.gone) {
                    n += 1;
                    i = g.next;
                }
                n
            })
            .max();
        assert!(longest.is_some_and(|n| (1..=3).contains(&n)), "{longest:?}");
        for s in 1..=8 {
            assert_eq!(table.find(s).map(|g| g.at), Some(s * 10));
        }
    }

    /// What the table does, in order.
    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u64),
        Take(u64),
    }

    proptest! {
        /// Against a model (a ring of positions, a taken record leaving a hole until the
        /// ring passes it): the same sessions remembered, with the same records, the
        /// newest kept, whatever collides.
        #[test]
        fn matches_a_model(
            cap in 0usize..7,
            keys in any::<(u64, u64)>(),
            ops in proptest::collection::vec(
                prop_oneof![
                    3 => (0u64..12, any::<u64>()).prop_map(|(s, at)| Op::Insert(s, at)),
                    1 => (0u64..12).prop_map(Op::Take),
                ],
                1..80,
            ),
        ) {
            let mut slots = vec![GoneSlot::EMPTY; cap];
            let mut table = GoneTable::new(&mut slots, keys);
            let mut ring: VecDeque<Option<(u64, u64)>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Insert(session, at) => {
                        let mut g = gone(session);
                        g.at = at;
                        table.insert(g);
                        if cap > 0 {
                            for p in ring.iter_mut() {
                                if p.is_some_and(|(s, _)| s == session) {
                                    *p = None;
                                }
                            }
                            if ring.len() == cap {
                                ring.pop_front();
                            }
                            ring.push_back(Some((session, at)));
                        }
                    }
                    Op::Take(session) => {
                        let mut expected = None;
                        for p in ring.iter_mut() {
                            if p.is_some_and(|(s, _)| s == session) {
                                expected = p.take().map(|(_, at)| at);
                            }
                        }
                        prop_assert_eq!(table.take(session).map(|g| (g.session, g.at)),
                            expected.map(|at| (session, at)));
                    }
                }
                prop_assert_eq!(table.used, ring.len());
                for s in 0..12 {
                    let kept = ring.iter().flatten().find(|(k, _)| *k == s).map(|&(_, at)| at);
                    prop_assert_eq!(table.find(s).map(|g| (g.session, g.at)), kept.map(|at| (s, at)));
                }
            }
        }
    }
}
