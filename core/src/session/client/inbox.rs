//! Room messages in room order, exactly once (PROTOCOL.md "Room messages").
//!
//! The next expected message is shown at once; up to `REORDER` later ones are kept until
//! the gap before them fills (so the server resends only what was lost, which it learns
//! from the Ack's selective bitmap). Acknowledgements follow QUIC's advice (RFC 9000
//! §13.2.1-2): at once when something arrives out of order, a duplicate, or a Missed;
//! otherwise after every `ack_every` messages, or `max_ack_delay` after the first one not
//! yet acknowledged.

use crate::time::{Duration, Instant};
use crate::wire::NAME_MAX;
use heapless::String;

/// A room message waiting for the gap before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Message<const TEXT: usize> {
    pub seq: u64,
    pub nick: String<NAME_MAX>,
    pub text: String<TEXT>,
    pub timestamp: u64,
}

/// What became of a Deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Arrival<const TEXT: usize> {
    /// The next message: show it.
    Next(Message<TEXT>),
    /// Seen before.
    Duplicate,
    /// Later than the next: kept until the gap fills.
    Kept,
    /// Too far ahead to keep: the server sends it again.
    TooFar,
}

#[derive(Clone, Debug)]
pub(super) struct Inbox<const TEXT: usize, const REORDER: usize> {
    next_seq: u64,
    kept: [Option<Message<TEXT>>; REORDER],
    /// Messages shown since the last Ack.
    unacked: u32,
    pub ack_due: bool,
    pub ack_deadline: Option<Instant>,
    ack_every: u32,
    max_ack_delay: Duration,
}

impl<const TEXT: usize, const REORDER: usize> Inbox<TEXT, REORDER> {
    pub fn new(ack_every: u8, max_ack_delay: Duration) -> Self {
        Self {
            next_seq: 0,
            kept: [const { None }; REORDER],
            unacked: 0,
            ack_due: false,
            ack_deadline: None,
            ack_every: u32::from(ack_every.max(1)),
            max_ack_delay,
        }
    }

    /// Every message before this was shown (or reported missed).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Starts over at `next_seq` (a new room incarnation), forgetting what was kept.
    pub fn reset(&mut self, next_seq: u64) {
        self.next_seq = next_seq;
        for slot in &mut self.kept {
            *slot = None;
        }
        self.unacked = 0;
    }

    fn slot(seq: u64) -> usize {
        usize::try_from(seq % REORDER.max(1) as u64).unwrap_or(0)
    }

    /// Takes room message `seq`.
    pub fn on_deliver(&mut self, message: Message<TEXT>) -> Arrival<TEXT> {
        let seq = message.seq;
        if seq < self.next_seq {
            self.ack_due = true;
            return Arrival::Duplicate;
        }
        if seq == self.next_seq {
            return Arrival::Next(message);
        }
        // Out of order: acknowledge at once, so the server learns of the gap.
        self.ack_due = true;
        // The slots hold `next_seq .. next_seq + REORDER`: `next_seq`'s own slot may hold
        // it (kept while the application was behind).
        if seq - self.next_seq >= REORDER as u64 {
            return Arrival::TooFar;
        }
        match self.kept.get_mut(Self::slot(seq)) {
            Some(Some(kept)) if kept.seq == seq => Arrival::Duplicate,
            Some(slot) => {
                *slot = Some(message);
                Arrival::Kept
            }
            None => Arrival::TooFar,
        }
    }

    /// Keeps the next message for later (the application has no room for it yet);
    /// whether it could be kept. It is not acknowledged until shown.
    pub fn keep_next(&mut self, message: Message<TEXT>) -> bool {
        if message.seq != self.next_seq {
            return false;
        }
        match self.kept.get_mut(Self::slot(message.seq)) {
            Some(slot) => {
                *slot = Some(message);
                true
            }
            None => false,
        }
    }

    /// The next message was shown at `now`.
    pub fn shown(&mut self, now: Instant) {
        self.next_seq = self.next_seq.saturating_add(1);
        self.unacked = self.unacked.saturating_add(1);
        if self.unacked >= self.ack_every {
            self.ack_due = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + self.max_ack_delay);
        }
    }

    /// The kept message that is now next, if any.
    pub fn take_next(&mut self) -> Option<Message<TEXT>> {
        let slot = self.kept.get_mut(Self::slot(self.next_seq))?;
        if slot.as_ref().is_some_and(|m| m.seq == self.next_seq) {
            return slot.take();
        }
        None
    }

    /// Messages before `to` are gone (Missed): go on from `to`. Whether that moved us.
    pub fn skip_to(&mut self, to: u64) -> bool {
        self.ack_due = true;
        if to <= self.next_seq {
            return false;
        }
        self.next_seq = to;
        for slot in &mut self.kept {
            if slot.as_ref().is_some_and(|m| m.seq < to) {
                *slot = None;
            }
        }
        true
    }

    /// Bit `i`: message `next_seq + 1 + i` is kept (the Ack's selective field).
    pub fn selective(&self) -> u64 {
        let mut bits = 0u64;
        for message in self.kept.iter().flatten() {
            let ahead = message.seq.wrapping_sub(self.next_seq);
            if (1..=64).contains(&ahead) {
                bits |= 1 << (ahead - 1);
            }
        }
        bits
    }

    /// Whether the ack timer has fired.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.ack_deadline.is_some_and(|t| t <= now) {
            self.ack_due = true;
        }
    }

    /// An Ack is going out.
    pub fn acked(&mut self) {
        self.ack_due = false;
        self.ack_deadline = None;
        self.unacked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> Message<8> {
        Message {
            seq,
            nick: String::try_from("n").unwrap(),
            text: String::new(),
            timestamp: 0,
        }
    }

    #[test]
    fn keeps_what_comes_early_and_acknowledges_gaps_at_once() {
        let mut inbox: Inbox<8, 4> = Inbox::new(2, Duration::from_millis(10));
        inbox.reset(10);
        assert!(matches!(inbox.on_deliver(message(10)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(0));
        assert!(!inbox.ack_due);
        assert_eq!(inbox.ack_deadline, Some(Instant::from_millis(10)));
        assert_eq!(inbox.on_deliver(message(12)), Arrival::Kept);
        assert!(inbox.ack_due, "a gap is acknowledged at once");
        assert_eq!(inbox.selective(), 0b1, "12 is next_seq (11) + 1 + bit 0");
        assert_eq!(inbox.on_deliver(message(12)), Arrival::Duplicate);
        assert_eq!(
            inbox.on_deliver(message(15)),
            Arrival::TooFar,
            "11 + 4 shares 11's slot"
        );
        assert_eq!(inbox.on_deliver(message(16)), Arrival::TooFar);
        assert_eq!(inbox.take_next(), None, "11 is missing");
        assert!(matches!(inbox.on_deliver(message(11)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(1));
        assert_eq!(inbox.take_next().map(|m| m.seq), Some(12));
        inbox.shown(Instant::from_millis(1));
        inbox.acked();
        assert_eq!((inbox.next_seq(), inbox.selective()), (13, 0));
        assert_eq!(inbox.on_deliver(message(3)), Arrival::Duplicate);
        inbox.acked();
        assert!(inbox.on_deliver(message(15)) == Arrival::Kept);
        assert!(inbox.skip_to(15));
        assert_eq!(
            inbox.take_next().map(|m| m.seq),
            Some(15),
            "kept past the gap"
        );
        assert!(!inbox.skip_to(14));
    }

    #[test]
    fn without_a_reorder_buffer_only_the_next_is_taken() {
        let mut inbox: Inbox<8, 0> = Inbox::new(1, Duration::ZERO);
        assert_eq!(inbox.on_deliver(message(1)), Arrival::TooFar);
        assert!(matches!(inbox.on_deliver(message(0)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(0));
        assert!(inbox.ack_due, "ack_every 1");
        assert_eq!(inbox.selective(), 0);
    }

    /// Each message kept past a gap has a place of its own and its own bit in the Ack's
    /// selective field (PROTOCOL.md "Room messages": bit `i` is `next_seq + 1 + i`); once
    /// the gap fills they are shown in order.
    #[test]
    fn several_messages_past_a_gap_are_each_kept() {
        let mut inbox: Inbox<8, 4> = Inbox::new(2, Duration::from_millis(10));
        assert_eq!(inbox.on_deliver(message(2)), Arrival::Kept);
        assert_eq!(inbox.on_deliver(message(3)), Arrival::Kept);
        assert_eq!(inbox.selective(), 0b110, "2 and 3 are 0 + 1 + bits 1 and 2");
        assert_eq!(inbox.on_deliver(message(2)), Arrival::Duplicate);
        assert!(matches!(inbox.on_deliver(message(0)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(0));
        assert_eq!(inbox.selective(), 0b11, "2 and 3 are 1 + 1 + bits 0 and 1");
        assert_eq!(inbox.take_next(), None, "1 is missing");
        assert!(matches!(inbox.on_deliver(message(1)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(0));
        assert_eq!(inbox.take_next().map(|m| m.seq), Some(2));
        inbox.shown(Instant::from_millis(0));
        assert_eq!(inbox.take_next().map(|m| m.seq), Some(3));
        inbox.shown(Instant::from_millis(0));
        assert_eq!((inbox.take_next(), inbox.next_seq()), (None, 4));
    }

    /// The next message kept while the application is behind is taken from the inbox
    /// once there is room; only the next one can be kept that way. When a resend of it
    /// is shown first, the copy left behind is no longer next and does not stand in the
    /// way of the message that comes to share its place.
    #[test]
    fn the_next_message_waits_for_the_application() {
        let mut inbox: Inbox<8, 4> = Inbox::new(2, Duration::from_millis(10));
        assert!(!inbox.keep_next(message(1)), "not the next");
        assert!(inbox.keep_next(message(0)));
        assert_eq!(inbox.take_next().map(|m| m.seq), Some(0));
        inbox.shown(Instant::from_millis(0));
        assert_eq!(inbox.take_next(), None, "taken");
        assert!(inbox.keep_next(message(1)));
        assert!(matches!(inbox.on_deliver(message(1)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(0));
        assert_eq!(inbox.take_next(), None, "1 was shown, 2 has not come");
        assert_eq!(
            inbox.on_deliver(message(5)),
            Arrival::Kept,
            "5 takes the place the shown 1 had"
        );
        assert_eq!(inbox.selective(), 0b100);
    }

    /// A Missed up to `to` drops what was kept below `to` and keeps what is past it.
    #[test]
    fn a_missed_range_keeps_what_came_after_it() {
        let mut inbox: Inbox<8, 8> = Inbox::new(2, Duration::from_millis(10));
        inbox.reset(10);
        assert_eq!(inbox.on_deliver(message(12)), Arrival::Kept);
        assert_eq!(inbox.on_deliver(message(14)), Arrival::Kept);
        assert!(inbox.skip_to(13));
        assert!(inbox.ack_due, "a Missed is acknowledged at once");
        assert_eq!(inbox.next_seq(), 13);
        assert_eq!(inbox.selective(), 0b1, "14 is 13 + 1 + bit 0");
        assert_eq!(inbox.take_next(), None, "13 has not come");
        assert!(matches!(inbox.on_deliver(message(13)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(0));
        assert_eq!(inbox.take_next().map(|m| m.seq), Some(14));
    }

    /// Messages shown in order are acknowledged `max_ack_delay` after the first one not
    /// yet acknowledged (RFC 9000 §13.2.1), at that instant and not before; an Ack going
    /// out stops the timer and starts the count of `ack_every` over.
    #[test]
    fn the_ack_timer_fires_at_its_deadline() {
        let mut inbox: Inbox<8, 4> = Inbox::new(2, Duration::from_millis(10));
        assert!(matches!(inbox.on_deliver(message(0)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(100));
        assert_eq!(inbox.ack_deadline, Some(Instant::from_millis(110)));
        inbox.on_timeout(Instant::from_millis(109));
        assert!(!inbox.ack_due, "1 ms early");
        inbox.on_timeout(Instant::from_millis(110));
        assert!(inbox.ack_due, "at the deadline");
        inbox.acked();
        assert!(!inbox.ack_due);
        assert_eq!(inbox.ack_deadline, None);
        assert!(matches!(inbox.on_deliver(message(1)), Arrival::Next(_)));
        inbox.shown(Instant::from_millis(120));
        assert!(!inbox.ack_due, "the first of 2 since the Ack");
        assert_eq!(inbox.ack_deadline, Some(Instant::from_millis(130)));
    }
}
