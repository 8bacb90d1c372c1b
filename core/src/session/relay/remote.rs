//! Members connected to other servers of a cluster (the roster the other servers tell
//! us), per room, in caller-provided slots: counted in the room's member count, listed by
//! `Who`, and their nicknames kept out of the room's new members' reach.
//!
//! Each remote member is named by the server it is on (a number the driver gives that
//! server) and its session: a member that moves to another server keeps its session, so
//! the move replaces its entry instead of adding one.

use super::members::NIL;
use crate::wire::NAME_MAX;
use heapless::String;

/// One slot of the remote roster (see
/// [`ClusterStorage::remotes`](super::ClusterStorage::remotes)). Opaque.
#[derive(Clone, Debug)]
pub struct RemoteSlot {
    remote: Option<Remote>,
    /// The next member of the same room, or the next free slot.
    next: u32,
}

impl RemoteSlot {
    /// An empty slot, for `static` arrays.
    pub const EMPTY: Self = Self {
        remote: None,
        next: NIL,
    };
}

impl Default for RemoteSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Per room slot: where its remote members are (see
/// [`ClusterStorage::remote_rooms`](super::ClusterStorage::remote_rooms)). Opaque.
#[derive(Clone, Copy, Debug)]
pub struct RemoteRoom {
    head: u32,
    count: u32,
}

impl RemoteRoom {
    /// An empty room, for `static` arrays.
    pub const EMPTY: Self = Self {
        head: NIL,
        count: 0,
    };
}

impl Default for RemoteRoom {
    fn default() -> Self {
        Self::EMPTY
    }
}

#[derive(Clone, Debug)]
pub(super) struct Remote {
    pub server: u64,
    pub session: u64,
    pub nick: String<NAME_MAX>,
}

/// What [`Roster::add`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Added {
    /// A new member of the room.
    New,
    /// The session was already in the room, on another server (or with another name):
    /// it moved.
    Moved,
    /// Already known as it is.
    Known,
    /// No slot left.
    Full,
}

/// The roster over the caller's slots.
#[derive(Debug)]
pub(super) struct Roster<'a> {
    slots: &'a mut [RemoteSlot],
    rooms: &'a mut [RemoteRoom],
    free: u32,
}

impl<'a> Roster<'a> {
    pub fn new(slots: &'a mut [RemoteSlot], rooms: &'a mut [RemoteRoom]) -> Self {
        let usable = slots.len().min(NIL as usize);
        let slots = match slots.get_mut(..usable) {
            Some(slots) => slots,
            None => &mut [],
        };
        let count = slots.len();
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.remote = None;
            slot.next = if i + 1 < count {
                u32::try_from(i + 1).unwrap_or(NIL)
            } else {
                NIL
            };
        }
        for room in rooms.iter_mut() {
            *room = RemoteRoom::EMPTY;
        }
        Self {
            free: if count > 0 { 0 } else { NIL },
            slots,
            rooms,
        }
    }

    /// Remote members of room `r`.
    pub fn count(&self, r: u32) -> u32 {
        self.rooms.get(r as usize).map_or(0, |room| room.count)
    }

    /// Remote members of room `r` on `server`.
    pub fn count_on(&self, r: u32, server: u64) -> u32 {
        let n = self.iter(r).filter(|m| m.server == server).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Room `r`'s remote members.
    pub fn iter(&self, r: u32) -> impl Iterator<Item = &Remote> + '_ {
        let mut at = self.rooms.get(r as usize).map_or(NIL, |room| room.head);
        core::iter::from_fn(move || {
            let slot = self.slots.get(at as usize)?;
            at = slot.next;
            slot.remote.as_ref()
        })
    }

    /// Whether a remote member of room `r` other than `session` is called `nick`.
    pub fn has_nick(&self, r: u32, nick: &str, session: u64) -> bool {
        self.iter(r).any(|m| m.nick == nick && m.session != session)
    }

    /// The slot of `session` in room `r`, and the slot before it in the room's list.
    fn find(&self, r: u32, session: u64) -> Option<(u32, u32)> {
        let mut prev = NIL;
        let mut at = self.rooms.get(r as usize)?.head;
        while let Some(slot) = self.slots.get(at as usize) {
            if slot.remote.as_ref().is_some_and(|m| m.session == session) {
                return Some((at, prev));
            }
            prev = at;
            at = slot.next;
        }
        None
    }

    /// Records that `session` is in room `r` on `server` as `nick`.
    pub fn add(&mut self, r: u32, server: u64, session: u64, nick: &str) -> Added {
        if let Some((i, _)) = self.find(r, session) {
            let Some(m) = self
                .slots
                .get_mut(i as usize)
                .and_then(|s| s.remote.as_mut())
            else {
                return Added::Full;
            };
            if m.server == server && m.nick == nick {
                return Added::Known;
            }
            m.server = server;
            m.nick.clear();
            let _ = m.nick.push_str(nick);
            return Added::Moved;
        }
        let i = self.free;
        let Some(head) = self.rooms.get(r as usize).map(|room| room.head) else {
            return Added::Full;
        };
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return Added::Full;
        };
        self.free = slot.next;
        let mut name = String::new();
        let _ = name.push_str(nick);
        slot.remote = Some(Remote {
            server,
            session,
            nick: name,
        });
        slot.next = head;
        if let Some(room) = self.rooms.get_mut(r as usize) {
            room.head = i;
            room.count = room.count.saturating_add(1);
        }
        Added::New
    }

    /// Forgets `session` in room `r` if it is there (on `server`, if given); its entry.
    pub fn remove(&mut self, r: u32, session: u64, server: Option<u64>) -> Option<Remote> {
        let (i, prev) = self.find(r, session)?;
        let slot = self.slots.get(i as usize)?;
        if server.is_some_and(|s| slot.remote.as_ref().is_some_and(|m| m.server != s)) {
            return None;
        }
        let next = slot.next;
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if let Some(room) = self.rooms.get_mut(r as usize) {
                    room.head = next;
                }
            }
        }
        if let Some(room) = self.rooms.get_mut(r as usize) {
            room.count = room.count.saturating_sub(1);
        }
        let slot = self.slots.get_mut(i as usize)?;
        let remote = slot.remote.take();
        slot.next = self.free;
        self.free = i;
        remote
    }

    /// Forgets the first remote member of room `r` on `server` (every one, with
    /// `server` `None`); its entry.
    pub fn remove_first_on(&mut self, r: u32, server: Option<u64>) -> Option<Remote> {
        let session = self
            .iter(r)
            .find(|m| server.is_none_or(|s| m.server == s))?
            .session;
        self.remove(r, session, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn adds_moves_and_removes_per_room_and_server() {
        let mut slots = [RemoteSlot::EMPTY, RemoteSlot::EMPTY, RemoteSlot::EMPTY];
        let mut rooms = [RemoteRoom::EMPTY; 2];
        let mut roster = Roster::new(&mut slots, &mut rooms);
        assert_eq!(roster.add(0, 1, 10, "ann"), Added::New);
        assert_eq!(roster.add(0, 1, 11, "bob"), Added::New);
        assert_eq!(roster.add(1, 2, 12, "cid"), Added::New);
        assert_eq!(roster.add(1, 2, 13, "dan"), Added::Full);
        assert_eq!(roster.add(0, 1, 10, "ann"), Added::Known);
        assert_eq!(roster.add(0, 2, 10, "ann"), Added::Moved);
        assert_eq!((roster.count(0), roster.count(1)), (2, 1));
        assert_eq!(roster.count_on(0, 2), 1);
        assert!(roster.has_nick(0, "bob", 10));
        assert!(!roster.has_nick(0, "bob", 11), "its own name is not taken");
        assert!(roster.remove(0, 10, Some(1)).is_none(), "ann is on 2 now");
        assert_eq!(
            roster.remove(0, 10, Some(2)).map(|m| m.nick),
            Some("ann".try_into().unwrap())
        );
        assert_eq!(
            roster.add(1, 2, 13, "dan"),
            Added::New,
            "the slot is reused"
        );
        let names: Vec<&str> = roster.iter(1).map(|m| m.nick.as_str()).collect();
        assert_eq!(names, ["dan", "cid"]);
        while roster.remove_first_on(1, Some(2)).is_some() {}
        assert_eq!(roster.count(1), 0);
        assert_eq!(roster.count(0), 1);
    }

    #[test]
    fn default_slots_are_empty_and_members_are_counted_per_server() {
        use std::format;
        assert_eq!(
            format!("{:?}", RemoteSlot::default()),
            format!("{:?}", RemoteSlot::EMPTY)
        );
        assert_eq!(
            format!("{:?}", RemoteRoom::default()),
            format!("{:?}", RemoteRoom::EMPTY)
        );
        let mut slots = [
            RemoteSlot::default(),
            RemoteSlot::default(),
            RemoteSlot::default(),
        ];
        let mut rooms = [RemoteRoom::default(); 2];
        let mut roster = Roster::new(&mut slots, &mut rooms);
        assert_eq!(roster.add(0, 1, 10, "ann"), Added::New);
        assert_eq!(roster.add(0, 1, 11, "bob"), Added::New);
        assert_eq!(roster.add(0, 2, 12, "cid"), Added::New);
        assert_eq!(roster.count_on(0, 1), 2);
        assert_eq!(roster.count_on(0, 2), 1);
        assert_eq!(roster.count_on(0, 3), 0);
        assert_eq!(roster.count_on(1, 1), 0, "another room");
        assert_eq!(roster.add(0, 1, 12, "cid"), Added::Moved);
        assert_eq!(roster.count_on(0, 1), 3);
        assert_eq!(roster.count_on(0, 2), 0);
    }
}
