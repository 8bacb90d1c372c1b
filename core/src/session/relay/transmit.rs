//! What goes out: answers to non-members first, then the members in the ready queue in
//! turn, one datagram each per turn (so every member gets message `n` before any gets
//! `n + 1`). What a member is owed, most urgent first: its Welcome, the answers to its
//! lines, Busy, Pong, Missed, a Members page, presence changes, then room messages
//! (lost ones first) while its congestion window allows.

use super::delivery::Acked;
use super::members::NIL;
use super::receipts::{Outcome, Receipt};
use super::rooms::room_members;
use super::{Dropped, Relay, Reply, ReplyKind, legacy};
use crate::fernet;
use crate::session::seal_bytes_in_place;
use crate::time::Instant;
use crate::wire::{Body, Changes, Names, NoticeCode, Repr};
use core::hash::Hash;
use rand_core::CryptoRng;

/// What a client of another protocol version is told, longest first: the first that fits
/// the datagram it sent.
const VERSION_TEXTS: [&str; 3] = [
    "protocol 2 needed: update this host-chat client",
    "protocol 2 needed",
    "v2",
];

/// Bytes a Members or Presence frame spends before its list.
const LIST_OVERHEAD: usize = crate::wire::HEADER_LEN + 9;
/// Scratch for a Members or Presence list: at most a default datagram's plaintext.
const LIST_SCRATCH: usize = 1024;

/// Something a member is owed.
#[derive(Clone, Copy, Debug)]
pub(super) enum Due {
    Welcome,
    Answer(Receipt),
    Busy { msg_id: u32, retry_after_ms: u16 },
    Pong(u64),
    Missed { from: u64, to: u64 },
    Members(u32),
    Presence,
    Deliver(u64),
}

impl<A: Copy + Eq + Hash, R: CryptoRng, const K: usize> Relay<'_, A, R, K> {
    /// Writes the next datagram into `buf` (which should hold the largest datagram) and
    /// returns where to send it and its length, or `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(A, usize)> {
        self.tick(now);
        let limit = self.config.max_datagram.min(buf.len());
        let buf = buf.get_mut(..limit)?;
        while let Some(reply) = self.replies.pop_front() {
            match self.emit_reply(&reply, buf) {
                Some(len) => return Some((reply.addr, len)),
                None => self.stats.unanswered = self.stats.unanswered.saturating_add(1),
            }
        }
        while let Some(m) = self.members.pop_ready() {
            let Some(due) = self.next_due(now, m) else {
                continue;
            };
            let Some(len) = self.emit_due(now, m, due, buf) else {
                continue;
            };
            let addr = self.members.get(m)?.addr;
            if self.owes(m) {
                self.members.push_ready(m);
            }
            return Some((addr, len));
        }
        None
    }

    /// Whether member `m` is owed anything now.
    fn owes(&self, m: u32) -> bool {
        let Some(member) = self.members.get(m) else {
            return false;
        };
        let Some(room) = self.rooms.get(member.room) else {
            return false;
        };
        let d = &member.delivery;
        member.welcome_due
            || member.receipts.any_due()
            || member.busy.is_some()
            || member.pong_due.is_some()
            || member.who_due.is_some()
            || member.presence_due
            || d.missed_due
            || (d.missed.is_none() && d.acked() < room.history.first_seq())
            || if member.legacy {
                d.sent_upto() < room.history.next_seq()
            } else {
                d.can_send(room.history.next_seq())
            }
    }

    /// Picks what member `m` needs most, and books it as sent.
    fn next_due(&mut self, now: Instant, m: u32) -> Option<Due> {
        let r = self.members.get(m)?.room;
        let (first_seq, next_seq) = {
            let room = self.rooms.get(r)?;
            (room.history.first_seq(), room.history.next_seq())
        };
        let rto = self.rto(&self.members.get(m)?.delivery);
        let member = self.members.get_mut(m)?;
        if member.welcome_due {
            member.welcome_due = false;
            if !member.legacy {
                return Some(Due::Welcome);
            }
        }
        if let Some(receipt) = member.receipts.take_due(member.next_msg_id) {
            return Some(Due::Answer(receipt));
        }
        if let Some(busy) = member.busy.take() {
            member.busy_sent_at = Some(now);
            return Some(Due::Busy {
                msg_id: busy.msg_id,
                retry_after_ms: busy.retry_after_ms,
            });
        }
        if let Some(counter) = member.pong_due.take() {
            return Some(Due::Pong(counter));
        }
        let d = &mut member.delivery;
        if d.missed_due {
            d.missed_due = false;
            let (from, mut to) = d.missed?;
            if to < first_seq {
                // More left the history since the first Missed went: the same gap, longer.
                self.stats.missed = self.stats.missed.saturating_add(first_seq - to);
                (_, to) = d.skip_to(first_seq, now, rto);
            }
            d.rto_deadline = Some(now + rto);
            let deadline = d.rto_deadline;
            self.arm(deadline);
            return Some(Due::Missed { from, to });
        }
        if d.missed.is_none() && d.acked() < first_seq {
            // Its messages left the history before it got them: say exactly which.
            if member.legacy {
                let from = d.acked();
                d.sent_unacknowledged(first_seq);
                return Some(Due::Missed {
                    from,
                    to: first_seq,
                });
            }
            let (from, to) = d.skip_to(first_seq, now, rto);
            let deadline = d.rto_deadline;
            self.stats.missed = self.stats.missed.saturating_add(to - from);
            self.arm(deadline);
            return Some(Due::Missed { from, to });
        }
        if let Some(start) = member.who_due.take() {
            return Some(Due::Members(start));
        }
        if member.presence_due {
            member.presence_due = false;
            return Some(Due::Presence);
        }
        if member.legacy {
            return self.next_legacy_line(m, next_seq);
        }
        let (seq, again) = member.delivery.next(next_seq, now, rto)?;
        let deadline = member.delivery.rto_deadline;
        self.arm(deadline);
        self.stats.delivered = self.stats.delivered.saturating_add(1);
        if again {
            self.stats.retransmitted = self.stats.retransmitted.saturating_add(1);
        }
        Some(Due::Deliver(seq))
    }

    /// The next room message for legacy peer `m`, skipping its own lines (it had their
    /// answer already).
    fn next_legacy_line(&mut self, m: u32, next_seq: u64) -> Option<Due> {
        let member = self.members.get(m)?;
        let (r, session) = (member.room, member.session);
        let mut seq = member.delivery.sent_upto();
        if let Some(history) = self.history_of(r) {
            // The history holds nothing at or past `next_seq`.
            while history
                .get(seq)
                .is_some_and(|(stored, _)| stored.origin == session)
            {
                seq = seq.saturating_add(1);
            }
        }
        let member = self.members.get_mut(m)?;
        member
            .delivery
            .sent_unacknowledged(seq.saturating_add(1).min(next_seq));
        (seq < next_seq).then(|| {
            self.stats.delivered = self.stats.delivered.saturating_add(1);
            Due::Deliver(seq)
        })
    }

    /// Writes what member `m` is owed into `buf`; the token's length.
    fn emit_due(&mut self, now: Instant, m: u32, due: Due, buf: &mut [u8]) -> Option<usize> {
        let member = self.members.get(m)?;
        let (r, session) = (member.room, member.session);
        if member.legacy {
            return self.emit_legacy(m, due, buf);
        }
        let members = self.total_members(r);
        let room = self.rooms.get(r)?;
        let body = match due {
            Due::Welcome => {
                let d = &member.delivery;
                Body::Welcome {
                    epoch: room.epoch,
                    next_seq: d.missed.map_or(d.acked(), |(from, _)| from),
                    next_msg_id: member.next_msg_id,
                    members,
                    window: member.window,
                    presence: member.presence_acked,
                    nick: &member.nick,
                }
            }
            Due::Answer(receipt) => answer_body(receipt),
            Due::Busy {
                msg_id,
                retry_after_ms,
            } => Body::Busy {
                msg_id,
                retry_after_ms,
            },
            Due::Pong(counter) => Body::Pong { counter, members },
            Due::Missed { from, to } => Body::Missed { from, to },
            Due::Members(start) => return self.emit_members(m, start, buf),
            Due::Presence => return self.emit_presence(now, m, buf),
            Due::Deliver(seq) => return self.emit_deliver(r, seq, buf),
        };
        let len = Repr { session, body }.emit(buf).ok()?;
        seal_bytes_in_place(&self.keys, &mut self.rng, self.unix_now, len, buf)
    }

    /// A page of room members from position `start`.
    fn emit_members(&mut self, m: u32, start: u32, buf: &mut [u8]) -> Option<usize> {
        let member = self.members.get(m)?;
        let total = self.total_members(member.room);
        let room = self.rooms.get(member.room)?;
        let mut scratch = [0u8; LIST_SCRATCH];
        let room_for = list_room(buf.len()).min(scratch.len());
        let names = room_members(&self.members, room.head)
            .map(|(_, m)| m.nick.as_str())
            .chain(self.remote_names(member.room))
            .skip(start as usize);
        let nicks = Names::pack(names, scratch.get_mut(..room_for)?);
        let repr = Repr {
            session: member.session,
            body: Body::Members {
                total,
                start,
                nicks,
            },
        };
        let len = repr.emit(buf).ok()?;
        seal_bytes_in_place(&self.keys, &mut self.rng, self.unix_now, len, buf)
    }

    /// The presence changes member `m` lacks, as many as fit.
    fn emit_presence(&mut self, now: Instant, m: u32, buf: &mut [u8]) -> Option<usize> {
        let (r, session, acked) = {
            let member = self.members.get(m)?;
            (member.room, member.session, member.presence_acked)
        };
        let members = self.total_members(r);
        let mut scratch = [0u8; LIST_SCRATCH];
        let room_for = list_room(buf.len()).min(scratch.len());
        let log = self.presence_of(r)?;
        let (from, changes) = log.since(acked);
        let changes = Changes::pack(changes, scratch.get_mut(..room_for)?);
        let sent_upto = from.saturating_add(u32::try_from(changes.len()).unwrap_or(0));
        let len = Repr {
            session,
            body: Body::Presence {
                members,
                from,
                changes,
            },
        }
        .emit(buf)
        .ok()?;
        let member = self.members.get_mut(m)?;
        member.presence_sent_at = Some(now);
        member.presence_sent_upto = sent_upto;
        self.stats.presence = self.stats.presence.saturating_add(1);
        seal_bytes_in_place(&self.keys, &mut self.rng, self.unix_now, len, buf)
    }

    /// Room message `seq` of room `r`: its token from the history, made again first if
    /// it is older than half the TTL (so that it is still fresh when it arrives).
    fn emit_deliver(&mut self, r: u32, seq: u64, buf: &mut [u8]) -> Option<usize> {
        let fresh_for = (self.config.ttl.millis() / 2000).max(1);
        let unix_now = self.unix_now;
        let (sealed_at, len) = {
            let history = self.history_of(r)?;
            let (stored, token) = history.get(seq)?;
            buf.get_mut(..token.len())?.copy_from_slice(token);
            (stored.sealed_at, token.len())
        };
        if unix_now.saturating_sub(sealed_at) < fresh_for {
            return Some(len);
        }
        let plain = self.open_in(buf, len)?;
        let resealed = seal_bytes_in_place(&self.keys, &mut self.rng, unix_now, plain, buf)?;
        if resealed == len
            && let (Some(mut history), Some(token)) = (self.history_of(r), buf.get(..len))
        {
            history.reseal(seq, token, unix_now);
        }
        Some(resealed)
    }

    /// Opens the `len`-byte token at the front of `buf` and moves its plaintext to the
    /// front; the plaintext's length.
    pub(super) fn open_in(&self, buf: &mut [u8], len: usize) -> Option<usize> {
        let base = buf.as_ptr() as usize;
        let (offset, plain) = {
            let (opened, _) = self.keys.decrypt_in_place(buf.get_mut(..len)?, None).ok()?;
            let offset = (opened.plaintext.as_ptr() as usize).checked_sub(base)?;
            (offset, opened.plaintext.len())
        };
        // The plaintext lies inside the token, so this range is always in `buf`; checked
        // anyway, as `copy_within` would panic.
        let range = offset..offset.checked_add(plain)?;
        buf.get(range.clone())?;
        buf.copy_within(range, 0);
        Some(plain)
    }

    /// The answer to a datagram from a non-member, if it is no longer than that datagram.
    pub(super) fn emit_reply(&mut self, reply: &Reply<A>, buf: &mut [u8]) -> Option<usize> {
        let body = match reply.kind {
            ReplyKind::Pong(counter) => Body::Pong {
                counter,
                members: 0,
            },
            ReplyKind::NotJoined => notice(NoticeCode::NOT_JOINED, ""),
            ReplyKind::Bye => notice(NoticeCode::BYE, ""),
            ReplyKind::Refused(reason) => notice(NoticeCode::REFUSED, reason),
            ReplyKind::Version => notice(NoticeCode::VERSION, VERSION_TEXTS[0]),
        };
        let plaintext_room = fernet::max_message_len(reply.limit)?;
        let body = match body {
            // Shortened to fit (at a character boundary), or sent without text.
            Body::Notice { code, text } => {
                let empty = Repr {
                    session: reply.session,
                    body: notice(code, ""),
                };
                let room = plaintext_room.checked_sub(empty.buffer_len())?;
                // The version notice has short forms that still say it; other texts are
                // cut at a character boundary.
                let text = match code {
                    NoticeCode::VERSION => VERSION_TEXTS
                        .iter()
                        .copied()
                        .find(|t| t.len() <= room)
                        .unwrap_or(""),
                    _ => legacy::cut(text, room),
                };
                notice(code, text)
            }
            body => body,
        };
        let repr = Repr {
            session: reply.session,
            body,
        };
        if fernet::token_len(repr.buffer_len()) > reply.limit {
            return None;
        }
        let len = repr.emit(buf).ok()?;
        seal_bytes_in_place(&self.keys, &mut self.rng, self.unix_now, len, buf)
    }

    /// Sends room `r`'s presence changes to the members that lack them: those that have
    /// acknowledged what they were sent, and those whose last frame went unacknowledged
    /// for their retransmission timeout. Ticks again while some member lacks changes.
    pub(super) fn presence_tick(&mut self, now: Instant, r: u32) {
        let Some(room) = self.rooms.get(r) else {
            return;
        };
        let (head, next) = (room.head, room.presence.next());
        let config = self.config;
        let mut pending = false;
        let mut at = head;
        while let Some(member) = self.members.get_mut(at) {
            let here = at;
            at = member.room_next;
            if member.presence_acked >= next {
                continue;
            }
            pending = true;
            let outstanding = member.presence_sent_upto > member.presence_acked;
            let rto = member
                .delivery
                .rtt
                .rto(config.initial_rto, config.min_rto, config.max_rto)
                .max(config.presence_interval);
            let waited = member.presence_sent_at.is_none_or(|t| now - t >= rto);
            if !outstanding || waited {
                member.presence_due = true;
                self.members.push_ready(here);
            }
        }
        let tick = pending.then(|| now + config.presence_interval);
        if let Some(room) = self.rooms.get_mut(r) {
            room.presence_tick = tick;
        }
        self.arm_room(tick);
    }

    /// Answers a member's Ack: where its deliveries and presence stand, and whether the
    /// room may count on it again.
    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        from: A,
        m: u32,
        next_seq: u64,
        selective: u64,
        presence: u32,
    ) -> Result<(), Dropped> {
        let r = self.members.get(m).ok_or(Dropped::Unexpected)?.room;
        let (room_next, presence_next) = self
            .rooms
            .get(r)
            .map(|room| (room.history.next_seq(), room.presence.next()))
            .ok_or(Dropped::Unexpected)?;
        let rto = self.rto(&self.members.get(m).ok_or(Dropped::Unexpected)?.delivery);
        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
        let acked = member.delivery.on_ack(now, next_seq, selective, rto);
        if acked == Acked::Invalid {
            return Err(Dropped::Unexpected);
        }
        let mut moved = matches!(acked, Acked::New { .. });
        if presence > member.presence_acked && presence <= presence_next {
            member.presence_acked = presence;
            moved = true;
        }
        if !moved {
            return Err(Dropped::Duplicate);
        }
        if member.cut && member.delivery.acked() >= room_next {
            // Caught up: the room counts on it again.
            member.cut = false;
        }
        member.last_heard = now;
        let deadline = member.delivery.rto_deadline;
        self.members.set_addr(m, from);
        self.members.push_ready(m);
        self.arm(deadline);
        Ok(())
    }
}

/// The frame for an answer to a line.
fn answer_body<'a>(receipt: Receipt) -> Body<'a> {
    match receipt.outcome {
        Outcome::Accepted { seq, recipients } => Body::Receipt {
            msg_id: receipt.msg_id,
            seq,
            recipients,
        },
        Outcome::Refused(reason) => Body::Refused {
            msg_id: receipt.msg_id,
            reason,
        },
    }
}

fn notice(code: NoticeCode, text: &str) -> Body<'_> {
    Body::Notice { code, text }
}

/// Bytes a Members or Presence list may take in a datagram of `datagram` bytes.
fn list_room(datagram: usize) -> usize {
    fernet::max_message_len(datagram)
        .unwrap_or(0)
        .saturating_sub(LIST_OVERHEAD)
}

impl<A: Copy + Eq + Hash, R: CryptoRng, const K: usize> Relay<'_, A, R, K> {
    /// The room's members in join order, for tests and the driver's `--stats`.
    pub fn room_members(&self, room: &str) -> impl Iterator<Item = &str> + '_ {
        let head = self
            .rooms
            .by_name(room)
            .and_then(|r| self.rooms.get(r))
            .map_or(NIL, |room| room.head);
        room_members(&self.members, head).map(|(_, m)| m.nick.as_str())
    }
}
