//! The member table: every member's state in caller-provided slots, found by session and
//! by address in O(1), and the ready queue of members that have something to send.
//!
//! Lookups use chained hashing with keyed SipHash-1-3 (keys drawn from the relay's RNG,
//! so a peer cannot choose addresses or sessions that collide). The bucket heads live in
//! the slots themselves (bucket `i`'s head is in slot `i`), so the table is one slice of
//! [`MemberSlot`]s and nothing else: a device can give it a `static` array, a PC a `Vec`.

use super::delivery::Delivery;
use super::receipts::Receipts;
use crate::time::Instant;
use crate::wire::NAME_MAX;
use core::hash::{Hash, Hasher};
use heapless::String;
use siphasher::sip::SipHasher13;

/// "No slot".
pub(super) const NIL: u32 = u32::MAX;

/// One slot of the relay's member table (see
/// [`RelayStorage::members`](super::RelayStorage::members)): a member or nothing, plus the
/// heads of two hash buckets. Opaque: make as many as the relay should hold members, with
/// `MemberSlot::default()` or [`MemberSlot::EMPTY`].
#[derive(Clone, Debug)]
pub struct MemberSlot<A> {
    member: Option<Member<A>>,
    /// First member whose session hashes to this slot's index.
    by_session: u32,
    /// First member whose address hashes to this slot's index.
    by_addr: u32,
    /// The next free slot, while this one is free.
    next_free: u32,
    /// The next member in the ready queue, while this slot is queued.
    ready_next: u32,
    queued: bool,
    /// The next member waiting for its room to take a line (see `lines`).
    wait_next: u32,
}

impl<A> MemberSlot<A> {
    /// An empty slot, for `static` arrays.
    pub const EMPTY: Self = Self {
        member: None,
        by_session: NIL,
        by_addr: NIL,
        next_free: NIL,
        ready_next: NIL,
        queued: false,
        wait_next: NIL,
    };
}

impl<A> Default for MemberSlot<A> {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Something the member is owed: the answer to a line that could not be taken yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Busy {
    pub msg_id: u32,
    pub retry_after_ms: u16,
}

/// Everything the relay knows about one member.
#[derive(Clone, Debug)]
pub(super) struct Member<A> {
    pub addr: A,
    /// Random per client session; legacy senders get a made-up one.
    pub session: u64,
    pub nick: String<NAME_MAX>,
    pub room: u32,
    /// Neighbours in the room's member list.
    pub room_prev: u32,
    pub room_next: u32,
    /// A bare-text sender (PROTOCOL.md "Legacy senders").
    pub legacy: bool,
    pub last_heard: Instant,

    // Its lines (PROTOCOL.md "Sending a line").
    pub next_msg_id: u32,
    /// Lines it may have in flight, as granted in its Welcome.
    pub window: u8,
    pub receipts: Receipts,
    pub busy: Option<Busy>,
    pub busy_sent_at: Option<Instant>,
    /// In its room's queue of senders waiting for room (see `lines`).
    pub waiting: bool,
    /// When it was told its turn had come (a Busy with no wait).
    pub granted_at: Option<Instant>,
    /// Turns it was given and did not use, in a row.
    pub turns_missed: u8,

    // Control frames owed.
    pub welcome_due: bool,
    pub ping_counter: u64,
    pub pong_due: Option<u64>,
    pub who_counter: u32,
    pub who_due: Option<u32>,

    // The room's messages toward it (PROTOCOL.md "Room messages").
    pub delivery: Delivery,
    /// Excluded from the room's floor: it stalled past the stall limit, and the room went
    /// on without it until it catches up.
    pub cut: bool,

    // Presence changes toward it.
    pub presence_acked: u32,
    /// The last Presence frame sent covered the changes before this.
    pub presence_sent_upto: u32,
    pub presence_sent_at: Option<Instant>,
    pub presence_due: bool,

    next_session: u32,
    next_addr: u32,
}

impl<A> Member<A> {
    /// A member of room `room` that has just joined at `now`; its deliveries start at
    /// `start`.
    pub fn new(
        addr: A,
        session: u64,
        nick: String<NAME_MAX>,
        room: u32,
        legacy: bool,
        now: Instant,
        delivery: Delivery,
    ) -> Self {
        Self {
            addr,
            session,
            nick,
            room,
            room_prev: NIL,
            room_next: NIL,
            legacy,
            last_heard: now,
            next_msg_id: 1,
            window: 1,
            receipts: Receipts::default(),
            busy: None,
            busy_sent_at: None,
            waiting: false,
            granted_at: None,
            turns_missed: 0,
            welcome_due: !legacy,
            ping_counter: 0,
            pong_due: None,
            who_counter: 0,
            who_due: None,
            delivery,
            cut: false,
            presence_acked: 0,
            presence_sent_upto: 0,
            presence_sent_at: None,
            presence_due: false,
            next_session: NIL,
            next_addr: NIL,
        }
    }
}

/// The table over the caller's slots.
#[derive(Debug)]
pub(super) struct Members<'a, A> {
    slots: &'a mut [MemberSlot<A>],
    free: u32,
    len: usize,
    keys: (u64, u64),
    ready_head: u32,
    ready_tail: u32,
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NIL)
}

impl<'a, A: Copy + Eq + Hash> Members<'a, A> {
    /// Takes the slots (at most `u32::MAX - 1` are used) and clears them.
    pub fn new(slots: &'a mut [MemberSlot<A>], keys: (u64, u64)) -> Self {
        let usable = slots.len().min(NIL as usize);
        let slots = match slots.get_mut(..usable) {
            Some(slots) => slots,
            None => &mut [],
        };
        let count = slots.len();
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = MemberSlot::EMPTY;
            slot.next_free = if i + 1 < count { index(i + 1) } else { NIL };
        }
        Self {
            free: if count > 0 { 0 } else { NIL },
            slots,
            len: 0,
            keys,
            ready_head: NIL,
            ready_tail: NIL,
        }
    }

    /// Members now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The most members.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn bucket(&self, hash: u64) -> usize {
        let n = self.slots.len().max(1) as u64;
        usize::try_from(hash % n).unwrap_or(0)
    }

    fn hash_session(&self, session: u64) -> usize {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write_u64(session);
        self.bucket(h.finish())
    }

    fn hash_addr(&self, addr: &A) -> usize {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        addr.hash(&mut h);
        self.bucket(h.finish())
    }

    pub fn get(&self, i: u32) -> Option<&Member<A>> {
        self.slots.get(i as usize)?.member.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut Member<A>> {
        self.slots.get_mut(i as usize)?.member.as_mut()
    }

    /// The framed (not legacy) member with this session.
    pub fn by_session(&self, session: u64) -> Option<u32> {
        let mut i = self.slots.get(self.hash_session(session))?.by_session;
        while let Some(member) = self.get(i) {
            if member.session == session && !member.legacy {
                return Some(i);
            }
            i = member.next_session;
        }
        None
    }

    /// The member at `addr`, framed or legacy as asked.
    pub fn by_addr(&self, addr: &A, legacy: bool) -> Option<u32> {
        let mut i = self.slots.get(self.hash_addr(addr))?.by_addr;
        while let Some(member) = self.get(i) {
            if member.addr == *addr && member.legacy == legacy {
                return Some(i);
            }
            i = member.next_addr;
        }
        None
    }

    /// Adds a member; `None` when the table is full.
    pub fn insert(&mut self, mut member: Member<A>) -> Option<u32> {
        let i = self.free;
        let (bs, ba) = (
            self.hash_session(member.session),
            self.hash_addr(&member.addr),
        );
        member.next_session = self.slots.get(bs)?.by_session;
        member.next_addr = self.slots.get(ba)?.by_addr;
        let slot = self.slots.get_mut(i as usize)?;
        self.free = slot.next_free;
        slot.next_free = NIL;
        slot.member = Some(member);
        if let Some(head) = self.slots.get_mut(bs) {
            head.by_session = i;
        }
        if let Some(head) = self.slots.get_mut(ba) {
            head.by_addr = i;
        }
        self.len = self.len.saturating_add(1);
        Some(i)
    }

    /// Removes member `i` and returns it. Its slot may stay in the ready queue; a popped
    /// empty slot is skipped.
    pub fn remove(&mut self, i: u32) -> Option<Member<A>> {
        let (session, addr) = {
            let m = self.get(i)?;
            (m.session, m.addr)
        };
        self.unlink_session(i, session);
        self.unlink_addr(i, &addr);
        let slot = self.slots.get_mut(i as usize)?;
        let member = slot.member.take()?;
        slot.next_free = self.free;
        self.free = i;
        self.len = self.len.saturating_sub(1);
        Some(member)
    }

    /// Moves member `i` to a new address.
    pub fn set_addr(&mut self, i: u32, addr: A) {
        let Some(old) = self.get(i).map(|m| m.addr) else {
            return;
        };
        if old == addr {
            return;
        }
        self.unlink_addr(i, &old);
        let bucket = self.hash_addr(&addr);
        let head = self.slots.get(bucket).map_or(NIL, |s| s.by_addr);
        if let Some(m) = self.get_mut(i) {
            m.addr = addr;
            m.next_addr = head;
        }
        if let Some(slot) = self.slots.get_mut(bucket) {
            slot.by_addr = i;
        }
    }

    fn unlink_session(&mut self, i: u32, session: u64) {
        let bucket = self.hash_session(session);
        let next = self.get(i).map_or(NIL, |m| m.next_session);
        let Some(head) = self.slots.get(bucket).map(|s| s.by_session) else {
            return;
        };
        if head == i {
            if let Some(slot) = self.slots.get_mut(bucket) {
                slot.by_session = next;
            }
            return;
        }
        let mut at = head;
        while let Some(m) = self.get(at) {
            if m.next_session == i {
                if let Some(m) = self.get_mut(at) {
                    m.next_session = next;
                }
                return;
            }
            at = m.next_session;
        }
    }

    fn unlink_addr(&mut self, i: u32, addr: &A) {
        let bucket = self.hash_addr(addr);
        let next = self.get(i).map_or(NIL, |m| m.next_addr);
        let Some(head) = self.slots.get(bucket).map(|s| s.by_addr) else {
            return;
        };
        if head == i {
            if let Some(slot) = self.slots.get_mut(bucket) {
                slot.by_addr = next;
            }
            return;
        }
        let mut at = head;
        while let Some(m) = self.get(at) {
            if m.next_addr == i {
                if let Some(m) = self.get_mut(at) {
                    m.next_addr = next;
                }
                return;
            }
            at = m.next_addr;
        }
    }

    /// Queues member `i` to be asked what it needs sent (once; queued members stay where
    /// they are).
    pub fn push_ready(&mut self, i: u32) {
        let tail = self.ready_tail;
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        if slot.queued || slot.member.is_none() {
            return;
        }
        slot.queued = true;
        slot.ready_next = NIL;
        match self.slots.get_mut(tail as usize) {
            Some(last) => last.ready_next = i,
            None => self.ready_head = i,
        }
        self.ready_tail = i;
    }

    /// Appends member `i` to the wait queue `queue` (head, tail) and marks it waiting.
    pub fn push_wait(&mut self, queue: &mut (u32, u32), i: u32) {
        let Some(member) = self.get_mut(i) else {
            return;
        };
        if member.waiting {
            return;
        }
        member.waiting = true;
        member.granted_at = None;
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.wait_next = NIL;
        }
        match self.slots.get_mut(queue.1 as usize) {
            Some(last) if queue.1 != NIL => last.wait_next = i,
            _ => queue.0 = i,
        }
        queue.1 = i;
    }

    /// The member after `i` in its wait queue.
    pub fn wait_next(&self, i: u32) -> u32 {
        self.slots.get(i as usize).map_or(NIL, |s| s.wait_next)
    }

    /// Takes the first member off the wait queue `queue`.
    pub fn pop_wait(&mut self, queue: &mut (u32, u32)) -> Option<u32> {
        let i = queue.0;
        let slot = self.slots.get_mut(i as usize)?;
        queue.0 = slot.wait_next;
        slot.wait_next = NIL;
        if queue.0 == NIL {
            queue.1 = NIL;
        }
        if let Some(member) = self.get_mut(i) {
            member.waiting = false;
            member.granted_at = None;
        }
        Some(i)
    }

    /// Takes member `i` out of the wait queue `queue`, wherever it is (O(queue)).
    pub fn unlink_wait(&mut self, queue: &mut (u32, u32), i: u32) {
        if queue.0 == i {
            let _ = self.pop_wait(queue);
            return;
        }
        let mut at = queue.0;
        while let Some(next) = self.slots.get(at as usize).map(|s| s.wait_next) {
            if next == NIL {
                return;
            }
            if next == i {
                let after = self.slots.get(i as usize).map_or(NIL, |s| s.wait_next);
                if let Some(slot) = self.slots.get_mut(at as usize) {
                    slot.wait_next = after;
                }
                if queue.1 == i {
                    queue.1 = at;
                }
                if let Some(slot) = self.slots.get_mut(i as usize) {
                    slot.wait_next = NIL;
                }
                if let Some(member) = self.get_mut(i) {
                    member.waiting = false;
                    member.granted_at = None;
                }
                return;
            }
            at = next;
        }
    }

    /// The next queued member (possibly a slot emptied since it was queued).
    pub fn pop_ready(&mut self) -> Option<u32> {
        let i = self.ready_head;
        let slot = self.slots.get_mut(i as usize)?;
        self.ready_head = slot.ready_next;
        slot.ready_next = NIL;
        slot.queued = false;
        if self.ready_head == NIL {
            self.ready_tail = NIL;
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(addr: u16, session: u64) -> Member<u16> {
        Member::new(
            addr,
            session,
            String::try_from("m").unwrap(),
            0,
            false,
            Instant::default(),
            Delivery::new(0, 4, 64),
        )
    }

    #[test]
    fn insert_find_remove_reuse() {
        let mut slots = [MemberSlot::EMPTY; 4];
        let mut table = Members::new(&mut slots, (1, 2));
        let a = table.insert(member(10, 100)).unwrap();
        let b = table.insert(member(11, 101)).unwrap();
        let c = table.insert(member(12, 102)).unwrap();
        let d = table.insert(member(13, 103)).unwrap();
        assert!(table.insert(member(14, 104)).is_none(), "full");
        assert_eq!(table.len(), 4);
        for (i, addr, session) in [(a, 10, 100), (b, 11, 101), (c, 12, 102), (d, 13, 103)] {
            assert_eq!(table.by_session(session), Some(i));
            assert_eq!(table.by_addr(&addr, false), Some(i));
            assert_eq!(table.by_addr(&addr, true), None);
        }
        assert_eq!(table.remove(b).map(|m| m.session), Some(101));
        assert_eq!(table.by_session(101), None);
        assert_eq!(table.by_addr(&11, false), None);
        assert_eq!(table.by_session(103), Some(d), "chains survive removal");
        table.set_addr(c, 20);
        assert_eq!(table.by_addr(&12, false), None);
        assert_eq!(table.by_addr(&20, false), Some(c));
        let e = table.insert(member(15, 105)).unwrap();
        assert_eq!(e, b, "the freed slot is reused");
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn wait_queue_is_fifo_and_unlinks_anywhere() {
        let mut slots = [MemberSlot::EMPTY; 4];
        let mut table = Members::new(&mut slots, (0, 0));
        let ids: heapless::Vec<u32, 4> = (0..4)
            .map(|k| table.insert(member(k, u64::from(k))).unwrap())
            .collect();
        let mut queue = (NIL, NIL);
        for &i in &ids {
            table.push_wait(&mut queue, i);
        }
        table.push_wait(&mut queue, ids[1]);
        table.unlink_wait(&mut queue, ids[2]);
        table.unlink_wait(&mut queue, ids[3]);
        assert_eq!(queue.1, ids[1], "the tail follows an unlink at the end");
        assert_eq!(table.pop_wait(&mut queue), Some(ids[0]));
        assert!(table.get(ids[1]).unwrap().waiting);
        assert_eq!(table.pop_wait(&mut queue), Some(ids[1]));
        assert!(!table.get(ids[1]).unwrap().waiting);
        assert_eq!(table.pop_wait(&mut queue), None);
        assert_eq!(queue, (NIL, NIL));
        table.push_wait(&mut queue, ids[3]);
        assert_eq!(queue, (ids[3], ids[3]));
    }

    #[test]
    fn ready_queue_is_fifo_and_queues_once() {
        let mut slots = [MemberSlot::EMPTY; 3];
        let mut table = Members::new(&mut slots, (0, 0));
        let a = table.insert(member(1, 1)).unwrap();
        let b = table.insert(member(2, 2)).unwrap();
        table.push_ready(b);
        table.push_ready(a);
        table.push_ready(b);
        assert_eq!(table.pop_ready(), Some(b));
        table.push_ready(b);
        assert_eq!(table.pop_ready(), Some(a));
        assert_eq!(table.pop_ready(), Some(b));
        assert_eq!(table.pop_ready(), None);
        table.push_ready(2);
        assert_eq!(table.pop_ready(), None, "empty slots are not queued");
    }

    /// Longest chain of bucket heads `head` followed by `next` (module docs: O(1) lookups
    /// by session and by address).
    fn longest_chain(
        table: &Members<'_, u16>,
        head: impl Fn(&MemberSlot<u16>) -> u32,
        next: impl Fn(&Member<u16>) -> u32,
    ) -> usize {
        (0..table.slots.len())
            .map(|b| {
                let mut i = head(&table.slots[b]);
                let mut len = 0;
                while let Some(m) = table.get(i) {
                    len += 1;
                    i = next(m);
                }
                len
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn members_spread_over_the_buckets_by_session_and_by_address() {
        let mut slots = [MemberSlot::EMPTY; 64];
        let mut table = Members::new(&mut slots, (7, 9));
        assert_eq!(table.capacity(), 64);
        for k in 0..64u16 {
            table.insert(member(k, 1000 + u64::from(k))).unwrap();
        }
        for k in 0..64u16 {
            assert_eq!(table.by_session(1000 + u64::from(k)), Some(u32::from(k)));
            assert_eq!(table.by_addr(&k, false), Some(u32::from(k)));
        }
        // 64 members hashed into 64 buckets: the longest chain of a uniform hash is
        // about 4 long; one bucket for all would be 64.
        let by_session = longest_chain(&table, |s| s.by_session, |m| m.next_session);
        let by_addr = longest_chain(&table, |s| s.by_addr, |m| m.next_addr);
        assert!((1..=8).contains(&by_session), "{by_session}");
        assert!((1..=8).contains(&by_addr), "{by_addr}");
    }

    #[test]
    fn a_table_of_one_slot_holds_one_member() {
        let mut slots = [MemberSlot::EMPTY; 1];
        let mut table = Members::new(&mut slots, (1, 2));
        assert_eq!(table.capacity(), 1);
        assert_eq!(table.insert(member(10, 100)), Some(0));
        assert_eq!(table.by_session(100), Some(0));
        assert_eq!(table.by_addr(&10, false), Some(0));
        assert_eq!(table.insert(member(11, 101)), None, "full");
        assert!(table.remove(0).is_some());
        assert_eq!(table.insert(member(11, 101)), Some(0));
        assert_eq!(table.by_session(101), Some(0));
        assert_eq!(table.by_addr(&11, false), Some(0));
    }

    /// `n` values from `candidates` that `hash` puts in one bucket.
    fn colliding<T: Copy>(
        candidates: impl Iterator<Item = T>,
        hash: impl Fn(T) -> usize,
        n: usize,
    ) -> heapless::Vec<T, 4> {
        let mut by_bucket: [heapless::Vec<T, 4>; 4] = Default::default();
        for c in candidates {
            let bucket = &mut by_bucket[hash(c)];
            let _ = bucket.push(c);
            if bucket.len() == n {
                return bucket.clone();
            }
        }
        panic!("no {n} collide");
    }

    #[test]
    fn removal_keeps_the_rest_of_a_bucket_chain() {
        let mut slots = [MemberSlot::EMPTY; 4];
        let mut table = Members::new(&mut slots, (5, 6));
        let sessions = colliding(100..1000u64, |s| table.hash_session(s), 4);
        let addrs = colliding(100..1000u16, |a| table.hash_addr(&a), 4);
        let ids: heapless::Vec<u32, 4> = (0..3)
            .map(|k| table.insert(member(addrs[k], sessions[k])).unwrap())
            .collect();
        let find = |table: &Members<'_, u16>, k: usize| {
            (
                table.by_session(sessions[k]),
                table.by_addr(&addrs[k], false),
            )
        };
        // One chain each way, newest first: 2, 1, 0. Out of the middle, then the head.
        assert!(table.remove(ids[1]).is_some());
        assert_eq!(find(&table, 0), (Some(ids[0]), Some(ids[0])));
        assert_eq!(
            find(&table, 1),
            (None, None),
            "gone, though its bucket is not empty"
        );
        assert_eq!(find(&table, 2), (Some(ids[2]), Some(ids[2])));
        assert!(table.remove(ids[2]).is_some());
        assert_eq!(find(&table, 0), (Some(ids[0]), Some(ids[0])));
        assert_eq!(find(&table, 2), (None, None));
        // A member in a freed slot, in the same buckets; then the tail goes.
        let d = table.insert(member(addrs[3], sessions[3])).unwrap();
        assert!(table.remove(ids[0]).is_some());
        assert_eq!(find(&table, 0), (None, None));
        assert_eq!(find(&table, 3), (Some(d), Some(d)));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_session_finds_only_its_framed_member() {
        let mut slots = [MemberSlot::EMPTY; 4];
        let mut table = Members::new(&mut slots, (5, 6));
        let sessions = colliding(100..1000u64, |s| table.hash_session(s), 2);
        let mut legacy = member(1, sessions[0]);
        legacy.legacy = true;
        let legacy = table.insert(legacy).unwrap();
        let framed = table.insert(member(2, sessions[1])).unwrap();
        assert_eq!(
            table.by_session(sessions[0]),
            None,
            "a legacy member has no session"
        );
        assert_eq!(table.by_session(sessions[1]), Some(framed));
        assert_eq!(table.by_addr(&1, true), Some(legacy));
        assert!(table.remove(framed).is_some());
        assert_eq!(table.by_session(sessions[1]), None);
    }

    #[test]
    fn a_wait_queue_keeps_its_tail_when_one_leaves_the_middle() {
        let mut slots = [MemberSlot::EMPTY; 3];
        let mut table = Members::new(&mut slots, (0, 0));
        let ids: heapless::Vec<u32, 3> = (0..3)
            .map(|k| table.insert(member(k, u64::from(k))).unwrap())
            .collect();
        let mut queue = (NIL, NIL);
        for &i in &ids {
            table.push_wait(&mut queue, i);
        }
        assert_eq!(table.wait_next(ids[0]), ids[1]);
        table.unlink_wait(&mut queue, ids[1]);
        assert_eq!(queue, (ids[0], ids[2]));
        assert!(!table.get(ids[1]).unwrap().waiting);
        assert_eq!(table.wait_next(ids[0]), ids[2]);
        assert_eq!(table.wait_next(ids[2]), NIL, "the last has none after it");
        assert_eq!(table.wait_next(ids[1]), NIL, "unlinked");
        table.push_wait(&mut queue, ids[1]);
        assert_eq!(queue, (ids[0], ids[1]));
        assert_eq!(table.wait_next(ids[2]), ids[1]);
        // Off the front: the tail stays.
        assert_eq!(table.pop_wait(&mut queue), Some(ids[0]));
        assert_eq!(queue, (ids[2], ids[1]));
    }
}
