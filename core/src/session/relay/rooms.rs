//! The room table: rooms by name (O(1), keyed SipHash chains whose heads live in the
//! slots), each with its epoch, its member list (linked through the member slots), and
//! the state of its history and presence log (whose storage is the caller's).

use super::history::HistoryState;
use super::members::{Member, Members, NIL};
use super::presence::PresenceState;
use crate::time::Instant;
use crate::wire::NAME_MAX;
use core::hash::{Hash, Hasher};
use heapless::String;
use siphasher::sip::SipHasher13;

/// One slot of the relay's room table (see
/// [`RelayStorage::rooms`](super::RelayStorage::rooms)). Opaque: make as many as the
/// relay should hold rooms, with `RoomSlot::default()` or [`RoomSlot::EMPTY`].
#[derive(Clone, Debug)]
pub struct RoomSlot {
    room: Option<Room>,
    /// First room whose name hashes to this slot's index.
    bucket: u32,
    next_free: u32,
}

impl RoomSlot {
    /// An empty slot, for `static` arrays.
    pub const EMPTY: Self = Self {
        room: None,
        bucket: NIL,
        next_free: NIL,
    };
}

impl Default for RoomSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// A room.
#[derive(Clone, Debug)]
pub(super) struct Room {
    pub name: String<NAME_MAX>,
    /// Random and never 0: names this incarnation of the room.
    pub epoch: u64,
    /// Members, legacy peers included.
    pub members: u32,
    /// The member list, in join order.
    pub head: u32,
    pub tail: u32,
    pub history: HistoryState,
    pub presence: PresenceState,
    /// No member that the room waits for has acknowledged less than this: messages below
    /// it may leave the history. A lower bound, raised by a scan when room is needed.
    pub floor: u64,
    /// When the presence changes are next sent to the members that lack them.
    pub presence_tick: Option<Instant>,
    /// Senders waiting for the room to take a line, first come first served (head,
    /// tail), and when the room next looks whether it can take the first one's.
    pub waiting: (u32, u32),
    pub admit_tick: Option<Instant>,
    next_in_bucket: u32,
}

/// The table over the caller's slots.
#[derive(Debug)]
pub(super) struct Rooms<'a> {
    slots: &'a mut [RoomSlot],
    free: u32,
    len: usize,
    keys: (u64, u64),
}

impl<'a> Rooms<'a> {
    /// Takes the slots (at most `u32::MAX - 1` are used) and clears them.
    pub fn new(slots: &'a mut [RoomSlot], keys: (u64, u64)) -> Self {
        let usable = slots.len().min(NIL as usize);
        let slots = match slots.get_mut(..usable) {
            Some(slots) => slots,
            None => &mut [],
        };
        let count = slots.len();
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = RoomSlot::EMPTY;
            slot.next_free = if i + 1 < count {
                u32::try_from(i + 1).unwrap_or(NIL)
            } else {
                NIL
            };
        }
        Self {
            free: if count > 0 { 0 } else { NIL },
            slots,
            len: 0,
            keys,
        }
    }

    /// Rooms now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The most rooms.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn bucket(&self, name: &str) -> usize {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        name.hash(&mut h);
        let n = self.slots.len().max(1) as u64;
        usize::try_from(h.finish() % n).unwrap_or(0)
    }

    pub fn get(&self, i: u32) -> Option<&Room> {
        self.slots.get(i as usize)?.room.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut Room> {
        self.slots.get_mut(i as usize)?.room.as_mut()
    }

    /// The room called `name`.
    pub fn by_name(&self, name: &str) -> Option<u32> {
        let mut i = self.slots.get(self.bucket(name))?.bucket;
        while let Some(room) = self.get(i) {
            if room.name == name {
                return Some(i);
            }
            i = room.next_in_bucket;
        }
        None
    }

    /// Creates room `name` (not yet in the table) with `epoch`, its first message
    /// numbered `next_seq`; `None` when the table is full.
    pub fn create(&mut self, name: String<NAME_MAX>, epoch: u64, next_seq: u64) -> Option<u32> {
        let i = self.free;
        let bucket = self.bucket(&name);
        let head = self.slots.get(bucket)?.bucket;
        let slot = self.slots.get_mut(i as usize)?;
        self.free = slot.next_free;
        slot.next_free = NIL;
        slot.room = Some(Room {
            name,
            epoch,
            members: 0,
            head: NIL,
            tail: NIL,
            history: HistoryState::starting_at(next_seq),
            presence: PresenceState::default(),
            floor: next_seq,
            presence_tick: None,
            waiting: (NIL, NIL),
            admit_tick: None,
            next_in_bucket: head,
        });
        if let Some(slot) = self.slots.get_mut(bucket) {
            slot.bucket = i;
        }
        self.len = self.len.saturating_add(1);
        Some(i)
    }

    /// Frees room `i` (its members must be gone).
    pub fn free(&mut self, i: u32) {
        let Some(room) = self.get(i) else {
            return;
        };
        let (bucket, next) = (self.bucket(&room.name), room.next_in_bucket);
        let head = self.slots.get(bucket).map_or(NIL, |s| s.bucket);
        if head == i {
            if let Some(slot) = self.slots.get_mut(bucket) {
                slot.bucket = next;
            }
        } else {
            let mut at = head;
            while let Some(room) = self.get(at) {
                if room.next_in_bucket == i {
                    if let Some(room) = self.get_mut(at) {
                        room.next_in_bucket = next;
                    }
                    break;
                }
                at = room.next_in_bucket;
            }
        }
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.room = None;
            slot.next_free = self.free;
            self.free = i;
            self.len = self.len.saturating_sub(1);
        }
    }
}

/// Appends member `m` to its room's member list.
pub(super) fn link<A: Copy + Eq + Hash>(
    rooms: &mut Rooms<'_>,
    members: &mut Members<'_, A>,
    m: u32,
) {
    let Some(r) = members.get(m).map(|m| m.room) else {
        return;
    };
    let Some(room) = rooms.get_mut(r) else {
        return;
    };
    let tail = room.tail;
    room.tail = m;
    if room.head == NIL {
        room.head = m;
    }
    room.members = room.members.saturating_add(1);
    if let Some(last) = members.get_mut(tail) {
        last.room_next = m;
    }
    if let Some(member) = members.get_mut(m) {
        member.room_prev = tail;
        member.room_next = NIL;
    }
}

/// Takes member `m` out of its room's member list.
pub(super) fn unlink<A: Copy + Eq + Hash>(
    rooms: &mut Rooms<'_>,
    members: &mut Members<'_, A>,
    m: u32,
) {
    let Some((r, prev, next)) = members.get(m).map(|m| (m.room, m.room_prev, m.room_next)) else {
        return;
    };
    match members.get_mut(prev) {
        Some(p) => p.room_next = next,
        None => {
            if let Some(room) = rooms.get_mut(r) {
                room.head = next;
            }
        }
    }
    match members.get_mut(next) {
        Some(n) => n.room_prev = prev,
        None => {
            if let Some(room) = rooms.get_mut(r) {
                room.tail = prev;
            }
        }
    }
    if let Some(room) = rooms.get_mut(r) {
        room.members = room.members.saturating_sub(1);
    }
    if let Some(member) = members.get_mut(m) {
        member.room_prev = NIL;
        member.room_next = NIL;
    }
}

/// The members of a room, in join order, with their slot numbers.
pub(super) struct RoomMembers<'t, 'a, A> {
    members: &'t Members<'a, A>,
    at: u32,
}

impl<'t, A: Copy + Eq + Hash> Iterator for RoomMembers<'t, '_, A> {
    type Item = (u32, &'t Member<A>);
    fn next(&mut self) -> Option<Self::Item> {
        let i = self.at;
        let member = self.members.get(i)?;
        self.at = member.room_next;
        Some((i, member))
    }
}

/// Iterates the members of the room whose list starts at `head`.
pub(super) fn room_members<'t, 'a, A>(
    members: &'t Members<'a, A>,
    head: u32,
) -> RoomMembers<'t, 'a, A> {
    RoomMembers { members, at: head }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    extern crate std;

    fn name(s: &str) -> String<NAME_MAX> {
        let mut n = String::new();
        let _ = n.push_str(s);
        n
    }

    /// `count` names that hash to one bucket of `rooms`.
    fn colliding(rooms: &Rooms<'_>, count: usize) -> Vec<std::string::String> {
        let mut by_bucket: Vec<Vec<std::string::String>> = std::vec![Vec::new(); rooms.capacity()];
        for k in 0.. {
            let n = std::format!("room{k}");
            let b = rooms.bucket(&n);
            by_bucket[b].push(n);
            if by_bucket[b].len() == count {
                return core::mem::take(&mut by_bucket[b]);
            }
        }
        unreachable!()
    }

    /// Names are keyed into the buckets, not all into one: the table finds a room in O(1).
    #[test]
    fn names_spread_over_the_buckets() {
        let mut slots = std::vec![RoomSlot::EMPTY; 16];
        let mut rooms = Rooms::new(&mut slots, (1, 2));
        for k in 0..16 {
            assert!(rooms.create(name(&std::format!("room{k}")), 1, 0).is_some());
        }
        assert_eq!((rooms.len(), rooms.capacity()), (16, 16));
        let heads = slots.iter().filter(|s| s.bucket != NIL).count();
        assert!(heads >= 4, "16 names in {heads} buckets");
    }

    /// Rooms whose names share a bucket are each found, and stay found when any other of
    /// them (the chain's head, middle or end) is freed and its slot reused.
    #[test]
    fn a_shared_bucket_survives_frees_anywhere_in_its_chain() {
        let mut slots = std::vec![RoomSlot::EMPTY; 4];
        let mut rooms = Rooms::new(&mut slots, (1, 2));
        let names = colliding(&rooms, 4);
        let find = |rooms: &Rooms<'_>, n: &str| rooms.by_name(n);
        // The chain is d -> c -> b -> a (each new room goes in front).
        let ids: Vec<u32> = names
            .iter()
            .map(|n| rooms.create(name(n), 7, 0).expect("a free slot"))
            .collect();
        assert_eq!(ids, [0, 1, 2, 3], "slots are taken in order");
        for (n, &i) in names.iter().zip(&ids) {
            assert_eq!(find(&rooms, n), Some(i));
            assert_eq!(rooms.get(i).map(|r| r.name.as_str()), Some(n.as_str()));
        }
        assert_eq!(rooms.create(name("one more"), 7, 0), None, "full");
        rooms.free(ids[1]); // the middle
        assert_eq!(find(&rooms, &names[1]), None);
        for k in [0, 2, 3] {
            assert_eq!(
                find(&rooms, &names[k]),
                Some(ids[k]),
                "{k} after freeing the middle"
            );
        }
        rooms.free(ids[3]); // the head
        assert_eq!(find(&rooms, &names[3]), None);
        for k in [0, 2] {
            assert_eq!(
                find(&rooms, &names[k]),
                Some(ids[k]),
                "{k} after freeing the head"
            );
        }
        rooms.free(ids[0]); // the end
        assert_eq!(find(&rooms, &names[0]), None);
        assert_eq!(find(&rooms, &names[2]), Some(ids[2]));
        assert_eq!(rooms.len(), 1);
        // The freed slots are reused, the last freed first, by rooms of any bucket.
        let other = names
            .iter()
            .map(std::string::String::as_str)
            .collect::<Vec<_>>();
        let again = rooms.create(name("elsewhere"), 8, 5).expect("a freed slot");
        assert_eq!(again, ids[0]);
        assert_eq!(rooms.create(name(other[1]), 9, 0), Some(ids[3]));
        assert_eq!(find(&rooms, "elsewhere"), Some(again));
        assert_eq!(find(&rooms, other[1]), Some(ids[3]));
        assert_eq!(find(&rooms, other[2]), Some(ids[2]));
        assert_eq!(find(&rooms, other[0]), None);
        assert_eq!(find(&rooms, other[3]), None);
        assert_eq!(rooms.len(), 3);
        rooms.free(ids[2]);
        rooms.free(ids[2]); // twice: nothing more happens
        assert_eq!(rooms.len(), 2);
        assert_eq!(find(&rooms, other[1]), Some(ids[3]));
    }
}
