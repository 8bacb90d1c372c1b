//! Joining and leaving: rooms made on first join and freed on last leave, nicknames made
//! unique within a room, a returning client given back its place, departed sessions
//! remembered.

use super::delivery::Delivery;
use super::members::Member;
use super::receipts::RECEIPTS;
use super::rooms::{self, room_members};
use super::sequencer::Gate;
use super::{Dropped, LeaveReason, Relay, RelayEvent, ReplyKind};
use crate::session::truncated;
use crate::time::{Duration, Instant};
use crate::wire::{self, NAME_MAX, PresenceKind, Resume};
use core::fmt::Write as _;
use core::hash::Hash;
use heapless::String;
use rand_core::CryptoRng;

/// A Join frame, as the relay takes it.
#[derive(Clone, Copy, Debug)]
pub(super) struct JoinRequest<'f> {
    pub session: u64,
    pub version: u8,
    pub nick: &'f str,
    pub room: &'f str,
    pub window: u8,
    pub resume: Option<Resume>,
    /// The token's timestamp.
    pub timestamp: u64,
    /// The datagram's length: nothing answered to it is longer.
    pub len: usize,
}

/// Suffixes tried for a nickname already taken in the room: `ann-2` ... `ann-99`.
const SUFFIXES: u32 = 99;

impl<A: Copy + Eq + Hash, R: CryptoRng, const K: usize> Relay<'_, A, R, K> {
    pub(super) fn on_join(
        &mut self,
        now: Instant,
        from: A,
        join: JoinRequest<'_>,
    ) -> Result<(), Dropped> {
        let session = join.session;
        if session == 0 {
            // No client picks session 0 (PROTOCOL.md "Sessions"): not a frame to answer.
            return Err(Dropped::Malformed);
        }
        if join.version != wire::VERSION {
            return self.reply(from, session, ReplyKind::Version, join.len);
        }
        if let Some(m) = self.members.by_session(session) {
            // Our Welcome was lost (or this is a replay): welcome again, to the member's
            // known address only.
            if let Some(member) = self.members.get_mut(m) {
                member.welcome_due = true;
            }
            self.members.push_ready(m);
            return Err(Dropped::Duplicate);
        }
        if let Some(gone) = self.gone.find(session)
            && (gone.left || join.timestamp <= gone.at)
        {
            // Said goodbye, or a Join made before the session went: a replay.
            return Err(Dropped::Duplicate);
        }
        match self.gate_join(now, from, &join) {
            Gate::Go => {}
            Gate::Parked => return Ok(()),
            Gate::Full => return Err(Dropped::Overloaded),
        }
        // A departed session coming back (the check above let it through) takes its
        // numbering and answers back.
        let restored = self.gone.take(session);
        if let Some(old) = self.members.by_addr(&from, false) {
            self.remove_member(old, LeaveReason::Replaced);
        }
        let r = match self.rooms.by_name(join.room) {
            Some(r) => r,
            None => {
                if self.members.len() >= self.members.capacity() {
                    return self.refuse(from, session, "server full", join.len);
                }
                let epoch = self.rng.next_u64().max(1);
                match self.rooms.create(truncated(join.room), epoch, 0) {
                    Some(r) => r,
                    None => return self.refuse(from, session, "too many rooms", join.len),
                }
            }
        };
        if self.members.len() >= self.members.capacity() {
            return self.refuse(from, session, "server full", join.len);
        }
        let nick = self.free_nick(r, join.nick, session);
        let (epoch, next_seq) = match self.rooms.get(r) {
            Some(room) => (room.epoch, room.history.next_seq()),
            None => return Err(Dropped::Unexpected),
        };
        let (start, resumed) = match join.resume {
            // Where it was, if that room still lives here; a position past the room's
            // end (impossible for a real client) starts at the end.
            Some(resume) if resume.epoch == epoch => (resume.next_seq.min(next_seq), true),
            _ => (next_seq, false),
        };
        let mut delivery = Delivery::new(
            start,
            self.config.initial_window,
            super::delivery::SPAN as u16,
        );
        delivery.progress_at = now;
        let mut member = Member::new(from, session, nick.clone(), r, false, now, delivery);
        member.window = join
            .window
            .clamp(1, self.config.client_window.clamp(1, RECEIPTS as u8));
        if let Some(gone) = restored {
            member.next_msg_id = gone.next_msg_id;
            member.receipts = gone.receipts;
            member.ping_counter = gone.ping_counter;
            member.who_counter = gone.who_counter;
        }
        let m = self.members.insert(member).ok_or(Dropped::Overloaded)?;
        rooms::link(&mut self.rooms, &mut self.members, m);
        let presence = if self.cluster_joined(r, session, &nick) {
            // It moved here from another server of the cluster: not news to the room.
            self.presence_of(r).map_or(0, |log| log.state.next())
        } else {
            self.announce(r, PresenceKind::Joined, &nick)
        };
        let members = self.total_members(r);
        let room_name = match self.rooms.get_mut(r) {
            Some(room) => {
                room.floor = room.floor.min(start);
                room.name.clone()
            }
            None => String::new(),
        };
        if let Some(member) = self.members.get_mut(m) {
            // Its own join is not news to it.
            member.presence_acked = presence;
        }
        self.members.push_ready(m);
        self.arm(Some(now + self.config.member_timeout));
        self.event(RelayEvent::Joined {
            addr: from,
            nick,
            room: room_name,
            members,
            resumed,
        });
        Ok(())
    }

    pub(super) fn refuse(
        &mut self,
        addr: A,
        session: u64,
        reason: &'static str,
        len: usize,
    ) -> Result<(), Dropped> {
        self.event(RelayEvent::Refused { addr, reason });
        self.reply(addr, session, ReplyKind::Refused(reason), len)?;
        Err(Dropped::Overloaded)
    }

    /// `nick`, or the first of `nick-2`, `nick-3`, ... no other member of room `r` has,
    /// here or on another server of a cluster (where `session` itself may be) (its base
    /// shortened at a character boundary to fit [`NAME_MAX`]).
    fn free_nick(&self, r: u32, nick: &str, session: u64) -> String<NAME_MAX> {
        let head = self
            .rooms
            .get(r)
            .map_or(super::members::NIL, |room| room.head);
        let taken = |name: &str| {
            room_members(&self.members, head).any(|(_, m)| m.nick == name)
                || self.remote_nick_taken(r, name, session)
        };
        let mut name: String<NAME_MAX> = truncated(nick);
        if !taken(&name) {
            return name;
        }
        for n in 2..=SUFFIXES {
            let mut suffix: String<4> = String::new();
            let _ = write!(suffix, "-{n}");
            let mut base = nick;
            while base.len() + suffix.len() > NAME_MAX {
                let mut cut = base.len() - 1;
                while !base.is_char_boundary(cut) {
                    cut -= 1;
                }
                base = base.get(..cut).unwrap_or_default();
            }
            name.clear();
            let _ = name.push_str(base.trim_end());
            let _ = name.push_str(&suffix);
            if wire::is_valid_name(&name) && !taken(&name) {
                return name;
            }
        }
        // Ninety-nine of them: let the hundredth share a name.
        truncated(nick)
    }

    /// Records a presence change in room `r` and makes sure it goes out soon (after an
    /// eighth of the presence interval, so that changes close together go in one frame);
    /// the number of the change after it.
    pub(super) fn announce(&mut self, r: u32, kind: PresenceKind, nick: &str) -> u32 {
        let number = self
            .presence_of(r)
            .map_or(0, |mut log| log.push(kind, nick));
        let batch = Duration::from_millis(self.config.presence_interval.millis() / 8);
        let first_tick = self.now + batch;
        let tick = match self.rooms.get_mut(r) {
            Some(room) => *room.presence_tick.get_or_insert(first_tick),
            None => return number,
        };
        self.arm_room(Some(tick));
        number.saturating_add(1)
    }

    /// Removes member `m`: out of its room (freed if it was the last), remembered as
    /// gone, announced.
    pub(super) fn remove_member(&mut self, m: u32, reason: LeaveReason) {
        if let Some(r) = self.members.get(m).filter(|m| m.waiting).map(|m| m.room)
            && let Some(room) = self.rooms.get_mut(r)
        {
            self.members.unlink_wait(&mut room.waiting, m);
        }
        rooms::unlink(&mut self.rooms, &mut self.members, m);
        let Some(member) = self.members.remove(m) else {
            return;
        };
        if !member.legacy {
            let mut gone = super::gone::Gone::new(
                member.session,
                self.unix_now,
                reason == LeaveReason::Left,
                member.next_msg_id,
                member.receipts,
            );
            gone.ping_counter = member.ping_counter;
            gone.who_counter = member.who_counter;
            self.gone.insert(gone);
        }
        let r = member.room;
        let (room_name, empty) = match self.rooms.get(r) {
            Some(room) => (room.name.clone(), room.members == 0),
            None => (String::new(), false),
        };
        if self.cluster.is_some() {
            self.cluster_left(r, member.session, &member.nick, reason);
        }
        if empty {
            if self.cluster.is_some() {
                self.close_room(r);
            } else {
                self.rooms.free(r);
            }
        } else {
            self.announce(r, reason.presence(), &member.nick);
        }
        self.event(RelayEvent::Left {
            addr: member.addr,
            nick: member.nick,
            room: room_name,
            reason,
        });
    }
}
