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

use super::members::Busy;
use super::receipts::Outcome;
use super::rooms::room_members;
use super::{Dropped, Relay, RelayEvent};
use crate::fernet;
use crate::session::{max_text_len, seal_bytes_in_place};
use crate::time::Instant;
use crate::wire::{Body, RefuseReason, Repr};
use core::hash::Hash;
use rand_core::CryptoRng;

/// Bounds of the wait a Busy asks for, milliseconds.
const RETRY_MIN_MS: u64 = 10;
const RETRY_MAX_MS: u64 = 1000;

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
        if self.cluster.is_some() && text.len() <= self.line_limit() {
            // The room's order is kept outside: the line is proposed (sequencer.rs).
            return self.on_chat_ordered(now, from, m, msg_id, text);
        }
        let outcome = if text.len() > self.line_limit() {
            self.stats.refused = self.stats.refused.saturating_add(1);
            Outcome::Refused(RefuseReason::TOO_LONG)
        } else {
            match self.append_line(now, r, session, &nick, text) {
                Ok(seq) => {
                    self.stats.relayed = self.stats.relayed.saturating_add(1);
                    let recipients = self.total_members(r);
                    Outcome::Accepted { seq, recipients }
                }
                Err(retry_after_ms) => {
                    // Not taken, its number not used up: the sender waits and sends it
                    // again. Its address does not follow a frame that changed nothing.
                    self.stats.busy = self.stats.busy.saturating_add(1);
                    if let Some(member) = self.members.get_mut(m) {
                        member.busy = Some(Busy {
                            msg_id,
                            retry_after_ms,
                        });
                    }
                    self.members.push_ready(m);
                    return Ok(());
                }
            }
        };
        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
        member.receipts.record(msg_id, outcome);
        member.next_msg_id = msg_id.wrapping_add(1);
        member.busy = None;
        self.members.set_addr(m, from);
        self.members.push_ready(m);
        Ok(())
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
        let mut at = self
            .rooms
            .get(r)
            .map_or(super::members::NIL, |room| room.head);
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
        let mut at = self
            .rooms
            .get(r)
            .map_or(super::members::NIL, |room| room.head);
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
