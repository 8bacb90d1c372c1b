//! Flow control from senders: a member's lines are taken strictly in order; each gets
//! exactly one answer (Receipt with its room sequence number, or Refused), kept for
//! retransmissions; a line the room cannot take yet gets Busy instead, which tells the
//! sender to wait and slow down rather than retransmit into a full history.
//!
//! A room can take a line while its history has room, or can make room by dropping
//! messages every member it waits for has acknowledged (those below the room's *floor*).
//! A member that stops acknowledging holds the floor for at most the stall limit; then the
//! room goes on without it (it is *cut*), and if it comes back after its messages left the
//! history it is told exactly what it missed.

use super::members::{Busy, NIL};
use super::receipts::Outcome;
use super::rooms::room_members;
use super::{Dropped, Relay, RelayEvent};
use crate::fernet;
use crate::session::{max_text_len, seal_bytes_in_place};
use crate::time::{Duration, Instant};
use crate::wire::{Body, RefuseReason, Repr};
use core::hash::Hash;
use rand_core::CryptoRng;

/// Bounds of the wait a Busy asks for, milliseconds (the first waiting sender is told its
/// turn before; this is its fallback).
const RETRY_MIN_MS: u64 = 10;
const RETRY_MAX_MS: u64 = 1000;
/// How often a room with waiting senders looks whether it can take a line.
const ADMIT_EVERY: Duration = Duration::from_millis(5);

impl<A: Copy + Eq + Hash, R: CryptoRng, const K: usize> Relay<'_, A, R, K> {
    /// The longest line the relay takes: its Deliver, with the longest nickname, must fit
    /// a datagram.
    pub(super) fn line_limit(&self) -> usize {
        max_text_len(self.config.max_datagram)
    }

    pub(super) fn on_chat(
        &mut self,
        now: Instant,
        from: A,
        m: u32,
        msg_id: u32,
        text: &str,
    ) -> Result<(), Dropped> {
        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
        let ahead = msg_id.wrapping_sub(member.next_msg_id) as i32;
        if ahead < 0 {
            // A retransmission (our answer was lost) or a replay: the same answer again,
            // to the member's known address, never a second room message.
            if member.receipts.resend(msg_id) {
                self.members.push_ready(m);
            }
            return Err(Dropped::Duplicate);
        }
        if ahead > 0 {
            // Sent after a line we did not take (Busy): the sender sends it again.
            return Err(Dropped::Unexpected);
        }
        let (r, session, nick) = (member.room, member.session, member.nick.clone());
        member.last_heard = now;
        let others_wait = self.rooms.get(r).is_some_and(|room| room.waiting.0 != NIL);
        let its_turn = member.waiting && member.granted_at.is_some();
        let outcome = if text.len() > self.line_limit() {
            self.stats.refused = self.stats.refused.saturating_add(1);
            Outcome::Refused(RefuseReason::TOO_LONG)
        } else if others_wait && !its_turn {
            // Others wait for the room already: this sender waits its turn behind them.
            self.busy(now, r, m, msg_id, RETRY_MAX_MS as u16);
            return Ok(());
        } else {
            match self.take_line(now, r, session, msg_id, &nick, text) {
                Ok(taken) => {
                    if its_turn && let Some(room) = self.rooms.get_mut(r) {
                        // Its turn came and its line is in.
                        self.members.unlink_wait(&mut room.waiting, m);
                    }
                    let Some(seq) = taken else {
                        // Proposed: the room's order is kept outside, and the line's
                        // answer comes with it (sequencer.rs).
                        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
                        member.turns_missed = 0;
                        member.next_msg_id = msg_id.wrapping_add(1);
                        member.busy = None;
                        self.members.set_addr(m, from);
                        return Ok(());
                    };
                    self.stats.relayed = self.stats.relayed.saturating_add(1);
                    let recipients = self.total_members(r);
                    Outcome::Accepted { seq, recipients }
                }
                Err(retry_after_ms) => {
                    if let Some(member) = self.members.get_mut(m) {
                        member.granted_at = None;
                    }
                    self.busy(now, r, m, msg_id, retry_after_ms);
                    return Ok(());
                }
            }
        };
        if let Some(member) = self.members.get_mut(m) {
            member.turns_missed = 0;
        }
        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
        member.receipts.record(msg_id, outcome);
        member.next_msg_id = msg_id.wrapping_add(1);
        member.busy = None;
        self.members.set_addr(m, from);
        self.members.push_ready(m);
        Ok(())
    }

    /// Answers member `m`'s line `msg_id` with Busy: not taken, its number not used up;
    /// the sender waits and sends it again. Senders wait their turn (first come, first
    /// served): the first in line is told when the room has room for it (a Busy with no
    /// wait, see `admit`); `retry_after_ms` is its fallback if that answer is lost. Its
    /// address does not follow a frame that changed nothing.
    fn busy(&mut self, now: Instant, r: u32, m: u32, msg_id: u32, retry_after_ms: u16) {
        self.stats.busy = self.stats.busy.saturating_add(1);
        // A legacy sender never sends its line again (PROTOCOL.md "Legacy senders"): it
        // is told, and waits for no turn (in the line, it would hold every other sender
        // to a Busy first, and be told its turn again and again).
        let legacy = self.members.get(m).is_some_and(|member| member.legacy);
        if !legacy && let Some(room) = self.rooms.get_mut(r) {
            self.members.push_wait(&mut room.waiting, m);
        }
        if let Some(member) = self.members.get_mut(m) {
            member.busy = Some(Busy {
                msg_id,
                retry_after_ms,
            });
        }
        self.members.push_ready(m);
        self.schedule_admission(now, r);
    }

    /// Makes sure room `r` looks again soon whether it can take the first waiting
    /// sender's line.
    fn schedule_admission(&mut self, now: Instant, r: u32) {
        let Some(room) = self.rooms.get_mut(r) else {
            return;
        };
        if room.waiting.0 == NIL {
            room.admit_tick = None;
            return;
        }
        let at = *room.admit_tick.get_or_insert(now + ADMIT_EVERY);
        self.arm_room(Some(at));
    }

    /// Room `r`'s admission tick, while senders wait: gives as many of them, in the
    /// order they came, their turn (a Busy with no wait) as the room has room for lines,
    /// counting the turns given and not used yet. A turn not used within a retransmission
    /// timeout (the answer was lost, or the sender went away) is given again; a sender that
    /// let two turns go goes to the back of the line, so that it cannot hold the others.
    pub(super) fn admit(&mut self, now: Instant, r: u32) {
        if let Some(room) = self.rooms.get_mut(r) {
            room.admit_tick = None;
        }
        let token = self.config.max_datagram;
        let room_for = if self.make_room(now, r, token) {
            let floor = self.rooms.get(r).map_or(0, |room| room.floor);
            self.history_of(r).map_or(0, |mut history| {
                history.evict_below(floor);
                history.room_for(token)
            })
        } else {
            0
        };
        let mut turns = room_for;
        let mut at = self.rooms.get(r).map_or(NIL, |room| room.waiting.0);
        let mut laggard = None;
        while at != NIL {
            let next = self.members.wait_next(at);
            let rto = self
                .members
                .get(at)
                .map(|member| self.rto(&member.delivery))
                .unwrap_or_default()
                .max(Duration::from_millis(100));
            if let Some(member) = self.members.get_mut(at) {
                if member.granted_at.is_some_and(|t| now - t >= rto) {
                    member.granted_at = None;
                    member.turns_missed = member.turns_missed.saturating_add(1);
                    if member.turns_missed >= 2 && laggard.is_none() {
                        laggard = Some(at);
                    }
                }
                if member.granted_at.is_some() {
                    turns = turns.saturating_sub(1);
                } else if turns > 0 && laggard != Some(at) {
                    turns -= 1;
                    member.granted_at = Some(now);
                    member.busy = Some(Busy {
                        msg_id: member.next_msg_id,
                        retry_after_ms: 0,
                    });
                    self.members.push_ready(at);
                }
            }
            at = next;
        }
        if let (Some(m), Some(room)) = (laggard, self.rooms.get_mut(r)) {
            self.members.unlink_wait(&mut room.waiting, m);
            self.members.push_wait(&mut room.waiting, m);
            if let Some(member) = self.members.get_mut(m) {
                member.turns_missed = 0;
            }
        }
        self.schedule_admission(now, r);
    }

    /// Appends a line from member `origin` to room `r`'s history as one sealed Deliver
    /// token, and wakes the room's members. Its sequence number, or how long the sender
    /// should wait (ms) because the room cannot take it yet.
    pub(super) fn append_line(
        &mut self,
        now: Instant,
        r: u32,
        origin: u64,
        nick: &str,
        text: &str,
    ) -> Result<u64, u16> {
        let epoch = self.rooms.get(r).map_or(0, |room| room.epoch);
        let frame = |seq| Repr {
            session: epoch,
            body: Body::Deliver { seq, nick, text },
        };
        let token_len = fernet::token_len(frame(0).buffer_len());
        if !self.make_room(now, r, token_len) {
            return Err(self.retry_after(now, r));
        }
        let unix_now = self.unix_now;
        let Some(mut history) = super::history_view(
            &mut self.rooms,
            self.history,
            self.history_bytes,
            self.per_room,
            r,
        ) else {
            return Err(RETRY_MAX_MS as u16);
        };
        let Some((seq, slot)) = history.append(token_len, origin, unix_now) else {
            return Err(RETRY_MAX_MS as u16);
        };
        let sealed = frame(seq)
            .emit(slot)
            .ok()
            .and_then(|len| seal_bytes_in_place(&self.keys, &mut self.rng, unix_now, len, slot));
        if sealed != Some(token_len) {
            // Cannot happen (the length is exact); the slot would hold garbage, so the
            // message is dropped again.
            if let Some(mut history) = self.history_of(r) {
                history.evict_newest();
            }
            return Err(RETRY_MAX_MS as u16);
        }
        self.wake_room(now, r, seq);
        Ok(seq)
    }

    /// Queues every member of room `r` for message `seq`; a member that was caught up
    /// starts being behind now (its stall clock starts).
    fn wake_room(&mut self, now: Instant, r: u32, seq: u64) {
        let mut at = self.rooms.get(r).map_or(NIL, |room| room.head);
        while let Some(member) = self.members.get_mut(at) {
            let next = member.room_next;
            if member.delivery.acked() == seq {
                member.delivery.progress_at = now;
            }
            self.members.push_ready(at);
            at = next;
        }
    }

    /// Makes room for a `len`-byte token in room `r`'s history: drops what every member
    /// the room waits for has acknowledged; if that is not enough, stops waiting for
    /// members stalled past the stall limit. Whether there is room.
    pub(super) fn make_room(&mut self, now: Instant, r: u32, len: usize) -> bool {
        for attempt in 0..3 {
            let floor = match attempt {
                0 => self.rooms.get(r).map_or(0, |room| room.floor),
                1 => self.scan_floor(r),
                _ => {
                    if !self.cut_stalled(now, r) {
                        return false;
                    }
                    self.scan_floor(r)
                }
            };
            if let Some(room) = self.rooms.get_mut(r) {
                room.floor = floor;
            }
            let Some(mut history) = self.history_of(r) else {
                return false;
            };
            if history.make_room(len, |seq| seq < floor) {
                return true;
            }
        }
        false
    }

    /// The lowest position of the members room `r` waits for (not legacy, not cut); the
    /// room's next sequence number if none.
    fn scan_floor(&self, r: u32) -> u64 {
        let Some(room) = self.rooms.get(r) else {
            return 0;
        };
        room_members(&self.members, room.head)
            .filter(|(_, m)| !m.legacy && !m.cut)
            .map(|(_, m)| m.delivery.acked())
            .min()
            .unwrap_or_else(|| room.history.next_seq())
    }

    /// Cuts the members holding room `r`'s floor that made no progress for the stall
    /// limit; whether any was.
    fn cut_stalled(&mut self, now: Instant, r: u32) -> bool {
        let floor = self.scan_floor(r);
        let stall_limit = self.config.stall_limit;
        let mut cut_any = false;
        let mut at = self.rooms.get(r).map_or(NIL, |room| room.head);
        while let Some(member) = self.members.get_mut(at) {
            let next = member.room_next;
            if !member.legacy
                && !member.cut
                && member.delivery.acked() == floor
                && now - member.delivery.progress_at >= stall_limit
            {
                member.cut = true;
                cut_any = true;
                self.stats.stalled = self.stats.stalled.saturating_add(1);
                let (addr, nick) = (member.addr, member.nick.clone());
                let room = self
                    .rooms
                    .get(r)
                    .map(|room| room.name.clone())
                    .unwrap_or_default();
                self.event(RelayEvent::Stalled { addr, nick, room });
            }
            at = next;
        }
        cut_any
    }

    /// How long a sender should wait before offering its line again to room `r`, ms:
    /// about two round trips of the slowest member the room waits for, no later than
    /// when that member would be cut.
    pub(super) fn retry_after(&self, now: Instant, r: u32) -> u16 {
        let floor = self.scan_floor(r);
        let mut wait = RETRY_MAX_MS;
        if let Some(room) = self.rooms.get(r) {
            for (_, m) in room_members(&self.members, room.head) {
                if m.legacy || m.cut || m.delivery.acked() != floor {
                    continue;
                }
                let rtt = m.delivery.rtt.smoothed().map_or(50, |d| d.millis());
                let cut_in = (m.delivery.progress_at + self.config.stall_limit)
                    .saturating_since(now)
                    .millis();
                wait = wait
                    .min(rtt.saturating_mul(2))
                    .min(cut_in.max(RETRY_MIN_MS));
            }
        }
        u16::try_from(wait.clamp(RETRY_MIN_MS, RETRY_MAX_MS)).unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    //! The rules of this file on a relay whose members are planted in its table (no
    //! clients): each test sets the positions and clocks a rule reads, and checks the
    //! exact result at the rule's bounds.

    extern crate std;

    use super::super::delivery::Delivery;
    use super::super::members::Member;
    use super::super::rooms;
    use super::super::tests::Storage;
    use super::*;
    use crate::session::truncated;
    use rand::rngs::StdRng;
    use std::vec::Vec;

    type TestRelay<'a> = Relay<'a, u32, StdRng, 0>;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Room `name`, made with its next sequence number `next_seq` if new.
    fn room(relay: &mut TestRelay<'_>, name: &str, next_seq: u64) -> u32 {
        match relay.rooms.by_name(name) {
            Some(r) => r,
            None => relay.rooms.create(truncated(name), 1, next_seq).unwrap(),
        }
    }

    /// A member at address `addr` of room `r` that has acknowledged everything before
    /// `acked`, and last made progress at `progress_at`.
    fn plant(
        relay: &mut TestRelay<'_>,
        r: u32,
        addr: u32,
        acked: u64,
        progress_at: Instant,
        legacy: bool,
    ) -> u32 {
        let mut delivery = Delivery::new(acked, 1, 16);
        delivery.progress_at = progress_at;
        let nick = truncated(if legacy { "legacy" } else { "ann" });
        let member = Member::new(
            addr,
            u64::from(addr),
            nick,
            r,
            legacy,
            progress_at,
            delivery,
        );
        let m = relay.members.insert(member).unwrap();
        rooms::link(&mut relay.rooms, &mut relay.members, m);
        m
    }

    #[test]
    fn the_floor_is_the_lowest_position_of_the_members_the_room_waits_for() {
        let mut storage = Storage::new();
        let mut relay = storage.relay(at(0));
        let r = room(&mut relay, "dev", 0);
        plant(&mut relay, r, 1, 7, at(0), false);
        plant(&mut relay, r, 2, 5, at(0), false);
        // Neither a legacy member nor a cut one holds the floor.
        plant(&mut relay, r, 3, 2, at(0), true);
        let cut = plant(&mut relay, r, 4, 3, at(0), false);
        relay.members.get_mut(cut).unwrap().cut = true;
        assert_eq!(relay.scan_floor(r), 5);
        // No member it waits for: the room's next number.
        let lobby = room(&mut relay, "lobby", 9);
        plant(&mut relay, lobby, 5, 2, at(0), true);
        assert_eq!(relay.scan_floor(lobby), 9);
    }

    #[test]
    fn only_members_holding_the_floor_past_the_stall_limit_are_cut() {
        let mut storage = Storage::new();
        let mut relay = storage.relay(at(0));
        let limit = relay.config.stall_limit;
        let r = room(&mut relay, "dev", 0);
        let t0 = at(1_000);
        let slow = plant(&mut relay, r, 1, 5, t0, false);
        let ahead = plant(&mut relay, r, 2, 7, t0, false);
        let legacy = plant(&mut relay, r, 3, 5, at(0), true);
        let was_cut = plant(&mut relay, r, 4, 5, at(0), false);
        relay.members.get_mut(was_cut).unwrap().cut = true;
        let cut = |relay: &TestRelay<'_>| {
            [slow, ahead, legacy, was_cut].map(|m| relay.members.get(m).unwrap().cut)
        };
        let stall_ends = limit.millis() + 1_000;
        assert!(!relay.cut_stalled(at(stall_ends - 1), r));
        assert_eq!(cut(&relay), [false, false, false, true]);
        assert_eq!(relay.stats.stalled, 0);
        assert!(relay.cut_stalled(at(stall_ends), r), "at the stall limit");
        assert_eq!(cut(&relay), [true, false, false, true]);
        assert_eq!(relay.stats.stalled, 1);
    }

    #[test]
    fn a_busy_sender_waits_two_round_trips_of_the_slowest_at_most_until_it_is_cut() {
        let mut storage = Storage::new();
        let mut relay = storage.relay(at(0));
        let r = room(&mut relay, "dev", 0);
        let t0 = at(10_000);
        // The one the room waits for: at the floor, no RTT sample yet (50 ms assumed).
        plant(&mut relay, r, 1, 0, t0, false);
        // Long stalled, but not waited for: legacy, cut, or past the floor.
        plant(&mut relay, r, 2, 0, at(0), true);
        let cut = plant(&mut relay, r, 3, 0, at(0), false);
        relay.members.get_mut(cut).unwrap().cut = true;
        plant(&mut relay, r, 4, 3, at(0), false);
        let cut_at = 10_000 + relay.config.stall_limit.millis();
        assert_eq!(relay.retry_after(t0, r), 100);
        assert_eq!(relay.retry_after(at(cut_at - 30), r), 30);
        assert_eq!(
            relay.retry_after(at(cut_at - 5), r),
            10,
            "never under 10 ms"
        );
        assert_eq!(relay.retry_after(at(cut_at + 5_000), r), 10);
    }

    #[test]
    fn room_is_made_by_dropping_only_what_everyone_has_acknowledged() {
        let mut storage = Storage::new();
        let mut relay = storage.relay(at(0));
        let r = room(&mut relay, "dev", 0);
        let t0 = at(1_000);
        let ann = plant(&mut relay, r, 1, 0, t0, false);
        for seq in 0..16 {
            assert_eq!(relay.append_line(t0, r, 1, "ann", "line"), Ok(seq));
        }
        // Full, and ann (not stalled) has acknowledged nothing: the sender waits.
        assert_eq!(relay.append_line(t0, r, 1, "ann", "line"), Err(100));
        assert!(!relay.make_room(t0, r, 200));
        // ann has 0 to 2 now (the room's floor, 0, is found stale): the oldest goes, as
        // much as the new line needs.
        let mut delivery = Delivery::new(3, 1, 16);
        delivery.progress_at = t0;
        relay.members.get_mut(ann).unwrap().delivery = delivery;
        assert!(relay.make_room(t0, r, 200));
        let first = relay.rooms.get(r).map(|room| room.history.first_seq());
        assert_eq!(first, Some(1));
        assert_eq!(relay.rooms.get(r).map(|room| room.floor), Some(3));
        // Full again of what ann lacks (3 to 18), and ann silent since t0: at the stall
        // limit the room goes on without it.
        for seq in 16..19 {
            assert_eq!(relay.append_line(t0, r, 1, "ann", "line"), Ok(seq));
        }
        let stalled = at(1_000 + relay.config.stall_limit.millis());
        assert!(!relay.make_room(at(stalled.millis() - 1), r, 200));
        assert!(!relay.members.get(ann).unwrap().cut);
        assert!(relay.make_room(stalled, r, 200));
        assert!(relay.members.get(ann).unwrap().cut);
    }

    #[test]
    fn a_new_line_starts_the_stall_clock_of_the_members_it_finds_caught_up() {
        let mut storage = Storage::new();
        let mut relay = storage.relay(at(0));
        let r = room(&mut relay, "dev", 5);
        let caught_up = plant(&mut relay, r, 1, 5, at(0), false);
        let behind = plant(&mut relay, r, 2, 3, at(0), false);
        assert_eq!(relay.append_line(at(700), r, 1, "ann", "hi"), Ok(5));
        let progress = |m| relay.members.get(m).unwrap().delivery.progress_at;
        assert_eq!(progress(caught_up), at(700));
        assert_eq!(progress(behind), at(0), "already behind: its clock runs on");
    }

    #[test]
    fn lines_are_taken_up_to_the_limit_and_in_turn_while_others_wait() {
        let mut storage = Storage::new();
        let mut relay = storage.relay(at(0));
        let r = room(&mut relay, "dev", 0);
        let now = at(1_000);
        let ann = plant(&mut relay, r, 1, 0, now, false);
        let bob = plant(&mut relay, r, 2, 0, now, false);
        let limit = relay.line_limit();
        let longest = "x".repeat(limit);
        assert_eq!(relay.on_chat(now, 1, ann, 1, &longest), Ok(()));
        assert_eq!((relay.stats.relayed, relay.stats.refused), (1, 0));
        let too_long = "x".repeat(limit + 1);
        assert_eq!(relay.on_chat(now, 1, ann, 2, &too_long), Ok(()));
        assert_eq!((relay.stats.relayed, relay.stats.refused), (1, 1));
        assert_eq!(
            relay.on_chat(now, 1, ann, 2, "again"),
            Err(Dropped::Duplicate)
        );
        assert_eq!(
            relay.on_chat(now, 1, ann, 4, "ahead"),
            Err(Dropped::Unexpected)
        );
        // bob waits for the room (not his turn yet): ann's next line waits behind him.
        {
            let room = relay.rooms.get_mut(r).unwrap();
            relay.members.push_wait(&mut room.waiting, bob);
        }
        assert_eq!(relay.on_chat(now, 1, ann, 3, "behind bob"), Ok(()));
        assert_eq!((relay.stats.relayed, relay.stats.busy), (1, 1));
        let admit_tick = relay.rooms.get(r).unwrap().admit_tick;
        assert_eq!(
            admit_tick,
            Some(now + ADMIT_EVERY),
            "the room looks again soon"
        );
        let busy = relay.members.get(ann).unwrap().busy;
        assert_eq!(
            busy,
            Some(Busy {
                msg_id: 3,
                retry_after_ms: 1000
            })
        );
        // bob's line before his turn: Busy again; on his turn, taken, and he leaves the line.
        assert_eq!(relay.on_chat(now, 2, bob, 1, "early"), Ok(()));
        assert_eq!((relay.stats.relayed, relay.stats.busy), (1, 2));
        relay.members.get_mut(bob).unwrap().granted_at = Some(now);
        assert_eq!(relay.on_chat(now, 2, bob, 1, "my turn"), Ok(()));
        assert_eq!((relay.stats.relayed, relay.stats.busy), (2, 2));
        assert!(!relay.members.get(bob).unwrap().waiting);
        assert_eq!(relay.rooms.get(r).unwrap().waiting, (ann, ann));
    }

    /// The members waiting in room `r`'s line, first first.
    fn line_of(relay: &TestRelay<'_>, r: u32) -> Vec<u32> {
        let mut line = Vec::new();
        let mut at = relay.rooms.get(r).unwrap().waiting.0;
        while at != NIL {
            line.push(at);
            at = relay.members.wait_next(at);
        }
        line
    }

    #[test]
    fn waiting_senders_get_turns_as_the_room_has_room_and_a_laggard_goes_to_the_back() {
        let mut storage = Storage::new();
        let mut relay = storage.relay(at(0));
        let r = room(&mut relay, "dev", 0);
        let t0 = at(1_000);
        let senders: Vec<u32> = (1..=4)
            .map(|a| plant(&mut relay, r, a, 0, t0, false))
            .collect();
        for &m in &senders {
            let room = relay.rooms.get_mut(r).unwrap();
            relay.members.push_wait(&mut room.waiting, m);
        }
        // An empty history of 4096 bytes has room for 3 largest lines: 3 turns.
        let granted = |relay: &TestRelay<'_>| {
            senders
                .iter()
                .map(|&m| relay.members.get(m).unwrap().granted_at)
                .collect::<Vec<_>>()
        };
        relay.admit(t0, r);
        let t = |ms: u64| Some(at(1_000 + ms));
        assert_eq!(granted(&relay), [t(0), t(0), t(0), None]);
        let busy = relay.members.get(senders[0]).unwrap().busy;
        assert_eq!(
            busy,
            Some(Busy {
                msg_id: 1,
                retry_after_ms: 0
            })
        );
        assert_eq!(
            relay.rooms.get(r).unwrap().admit_tick,
            Some(t0 + ADMIT_EVERY)
        );
        // Turns not used stay given for a retransmission timeout (300 ms before an RTT
        // sample), then are given again, and counted as missed.
        relay.admit(at(1_299), r);
        assert_eq!(granted(&relay), [t(0), t(0), t(0), None]);
        relay.admit(at(1_300), r);
        assert_eq!(granted(&relay), [t(300), t(300), t(300), None]);
        let missed = |relay: &TestRelay<'_>| {
            senders
                .iter()
                .map(|&m| relay.members.get(m).unwrap().turns_missed)
                .collect::<Vec<_>>()
        };
        assert_eq!(missed(&relay), [1, 1, 1, 0]);
        assert_eq!(line_of(&relay, r), senders);
        // A second turn missed: the first such sender goes to the back of the line,
        // without a turn this time; the last in line gets it.
        relay.admit(at(1_600), r);
        assert_eq!(granted(&relay), [None, t(600), t(600), t(600)]);
        assert_eq!(missed(&relay), [0, 2, 2, 0]);
        assert_eq!(
            line_of(&relay, r),
            [senders[1], senders[2], senders[3], senders[0]]
        );
    }
}
