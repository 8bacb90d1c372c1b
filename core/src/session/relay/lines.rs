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
