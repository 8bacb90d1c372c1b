//! Room messages toward one member: which arrived (cumulative and selective
//! acknowledgements), which are lost and must go again, how many may be in flight (the
//! congestion window), and when to stop waiting (the retransmission timeout).
//!
//! Loss detection follows RFC 9002 §6 with sequence numbers standing in for packet
//! numbers: a message is lost once a message at least [`PACKET_THRESHOLD`] later was
//! acknowledged (§6.1.1), or when the retransmission timer fires with it unacknowledged.
//! Only lost messages are sent again, never the whole window ("go back N" is what made
//! the first relay collapse under load). One congestion event per window of losses: the
//! recovery point is the highest sequence sent when the window was last reduced
//! (§7.3.2).

use crate::congestion::{Controller, NewReno, RttEstimator};
use crate::time::{Duration, Instant};

/// Messages tracked beyond the cumulative acknowledgement: the most that can be in flight
/// to one member, and the span of the Ack's selective bitmap (plus the one it stands
/// after).
pub const SPAN: u64 = 64;

/// kPacketThreshold (RFC 9002 §6.1.1).
pub const PACKET_THRESHOLD: u64 = 3;

/// What an acknowledgement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Acked {
    /// It acknowledged messages never sent (or out of a Missed gap): ignored.
    Invalid,
    /// Older than what we know (reordered, a replay, or sent before our Missed).
    Stale,
    /// Nothing new, but consistent.
    Same,
    /// Something new: `advanced` if the cumulative point moved.
    New { advanced: bool },
}

/// Where the room's messages toward one member stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Delivery {
    /// Every message before this arrived.
    acked: u64,
    /// Bit `i`: message `acked + i` arrived (bit 0 is never set).
    received: u64,
    /// Bit `i`: message `acked + i` is lost and must be sent again.
    lost: u64,
    /// Bit `i`: message `acked + i` was sent again since it was found lost; only the
    /// timer may find it lost again.
    resent: u64,
    /// Every message before this was sent at least once.
    sent_upto: u64,
    /// Losses below this do not reduce the window again.
    recovery: u64,
    pub cc: NewReno,
    pub rtt: RttEstimator,
    /// A message sent once and when: the next RTT sample.
    probe: Option<(u64, Instant)>,
    pub rto_deadline: Option<Instant>,
    /// When `acked` last moved, or the member last became behind.
    pub progress_at: Instant,
    /// Missed `(from, to)` was sent; not yet acknowledged.
    pub missed: Option<(u64, u64)>,
    /// The Missed above is to be sent (again).
    pub missed_due: bool,
}

fn below(n: u64) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

fn shr(bits: u64, n: u64) -> u64 {
    if n >= 64 { 0 } else { bits >> n }
}

impl Delivery {
    /// Deliveries that start at `start`, with a congestion window of `initial` messages
    /// (at most `max`, at most [`SPAN`]).
    pub fn new(start: u64, initial: u16, max: u16) -> Self {
        let max = max.min(SPAN as u16);
        Self {
            acked: start,
            received: 0,
            lost: 0,
            resent: 0,
            sent_upto: start,
            recovery: start,
            cc: NewReno::new(initial, 2, max),
            rtt: RttEstimator::new(),
            probe: None,
            rto_deadline: None,
            progress_at: Instant::default(),
            missed: None,
            missed_due: false,
        }
    }

    /// Every message before this arrived.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Every message before this was sent.
    pub fn sent_upto(&self) -> u64 {
        self.sent_upto
    }

    fn outstanding_mask(&self) -> u64 {
        below(self.sent_upto.saturating_sub(self.acked))
    }

    /// Messages sent, not acknowledged, not known lost.
    pub fn in_flight(&self) -> u64 {
        let mask = self.outstanding_mask();
        let sent = u64::from(mask.count_ones());
        sent.saturating_sub(u64::from((self.received & mask).count_ones()))
            .saturating_sub(u64::from((self.lost & mask).count_ones()))
    }

    /// Whether a message could go now, given the room's next sequence number.
    pub fn can_send(&self, room_next: u64) -> bool {
        if self.missed.is_some() {
            return false;
        }
        let window_open = self.in_flight() < u64::from(self.cc.window());
        let has_new = self.sent_upto < room_next && self.sent_upto - self.acked < SPAN;
        window_open && (self.lost != 0 || has_new)
    }

    /// Takes the next message to send, lost ones first, and books it as sent at `now`
    /// (arming the timer for `rto`); whether it is a retransmission.
    pub fn next(&mut self, room_next: u64, now: Instant, rto: Duration) -> Option<(u64, bool)> {
        if !self.can_send(room_next) {
            return None;
        }
        let picked = if self.lost != 0 {
            let i = u64::from(self.lost.trailing_zeros());
            self.lost &= !(1 << i);
            self.resent |= 1 << i;
            let seq = self.acked.saturating_add(i);
            if self.probe.is_some_and(|(p, _)| p == seq) {
                // Karn: an acknowledgement could answer either copy.
                self.probe = None;
            }
            (seq, true)
        } else {
            let seq = self.sent_upto;
            self.sent_upto = seq.saturating_add(1);
            if self.probe.is_none() {
                self.probe = Some((seq, now));
            }
            (seq, false)
        };
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + rto);
        }
        Some(picked)
    }

    /// A legacy peer (no acknowledgements) was sent everything before `upto`: best
    /// effort, once.
    pub fn sent_unacknowledged(&mut self, upto: u64) {
        self.acked = self.acked.max(upto);
        self.sent_upto = self.sent_upto.max(upto);
        self.received = 0;
        self.lost = 0;
        self.resent = 0;
    }

    /// Takes an Ack (`next_seq`, `selective`) at `now`; `rto` restarts the timer if it
    /// acknowledges new messages and others are still in flight (RFC 6298 §5.3).
    pub fn on_ack(&mut self, now: Instant, next_seq: u64, selective: u64, rto: Duration) -> Acked {
        if next_seq > self.sent_upto {
            return Acked::Invalid;
        }
        if let Some((_, to)) = self.missed {
            if next_seq < to {
                return Acked::Stale;
            }
            // The member took the Missed and stands at its end.
            self.missed = None;
            self.missed_due = false;
            self.rto_deadline = None;
            self.rtt.reset_backoff();
            self.progress_at = now;
            return Acked::New { advanced: true };
        }
        if next_seq < self.acked {
            return Acked::Stale;
        }
        let shift = next_seq - self.acked;
        let (old_acked, old_received, old_resent) = (self.acked, self.received, self.resent);
        // Newly acknowledged: cumulatively (old base) and selectively (new base).
        let newly_cumulative = below(shift) & !old_received;
        self.received = shr(self.received, shift);
        self.lost = shr(self.lost, shift);
        self.resent = shr(self.resent, shift);
        self.acked = next_seq;
        let valid = self.outstanding_mask();
        let sacked = (selective << 1) & valid;
        let newly_selective = sacked & !self.received;
        let resent_selective = newly_selective & self.resent;
        self.received |= sacked;
        self.lost &= !self.received;
        self.resent &= !self.received;

        if let Some((seq, at)) = self.probe {
            let arrived = seq < self.acked
                || (seq - self.acked < 64 && self.received & (1 << (seq - self.acked)) != 0);
            if arrived {
                self.rtt.sample(now - at);
                self.probe = None;
            }
        }
        if shift > 0 {
            self.progress_at = now;
            self.rtt.reset_backoff();
        }
        // Losses first, then growth: messages first sent before the recovery point do not
        // grow the window (RFC 9002 §7.3.2, appendix A.7 and B.5); messages sent again
        // since are new transmissions, and do.
        self.detect_losses();
        let grows = |bits: u64, again: u64, base: u64| {
            let after = bits & !below(self.recovery.saturating_sub(base));
            (after | (bits & again)).count_ones()
        };
        let growth = grows(newly_cumulative, old_resent, old_acked)
            + grows(newly_selective, resent_selective, self.acked);
        if growth > 0 {
            self.cc.on_ack(growth);
        }
        let newly =
            u64::from(newly_cumulative.count_ones()) + u64::from(newly_selective.count_ones());
        if self.in_flight() == 0 && self.lost == 0 {
            self.rto_deadline = None;
        } else if newly > 0 || self.rto_deadline.is_none() {
            // Restarted only when new messages are acknowledged (RFC 6298 §5.3): a
            // repeated Ack must not put off the retransmission.
            self.rto_deadline = Some(now + rto);
        }
        if newly > 0 {
            Acked::New {
                advanced: shift > 0,
            }
        } else {
            Acked::Same
        }
    }

    /// Marks lost every message [`PACKET_THRESHOLD`] or more below the highest one
    /// acknowledged, and reduces the window once per recovery episode.
    fn detect_losses(&mut self) {
        if self.received == 0 {
            return;
        }
        let highest = 63 - u64::from(self.received.leading_zeros());
        if highest < PACKET_THRESHOLD {
            return;
        }
        let candidates = below(highest - PACKET_THRESHOLD + 1) & self.outstanding_mask();
        let newly_lost = candidates & !self.received & !self.lost & !self.resent;
        if newly_lost == 0 {
            return;
        }
        self.lost |= newly_lost;
        let first = self
            .acked
            .saturating_add(u64::from(newly_lost.trailing_zeros()));
        if first >= self.recovery {
            self.cc.on_congestion_event();
            self.recovery = self.sent_upto;
        }
    }

    /// The retransmission timer fired at `now`: every unacknowledged message is lost, the
    /// window collapses and the timer backs off. Whether there is something to send.
    pub fn on_timeout(&mut self) -> bool {
        self.rto_deadline = None;
        if self.missed.is_some() {
            self.missed_due = true;
            self.rtt.back_off();
            return true;
        }
        let mask = self.outstanding_mask();
        if mask & !self.received == 0 {
            return false;
        }
        self.lost = mask & !self.received;
        self.resent = 0;
        self.probe = None;
        self.cc.on_timeout();
        self.rtt.back_off();
        self.recovery = self.sent_upto;
        true
    }

    /// The room no longer has messages `acked..to`: tell the member (Missed) and go on
    /// from `to`. Returns the Missed range.
    pub fn skip_to(&mut self, to: u64, now: Instant, rto: Duration) -> (u64, u64) {
        let from = self.missed.map_or(self.acked, |(from, _)| from);
        self.missed = Some((from, to));
        self.missed_due = false;
        self.acked = to;
        self.sent_upto = to;
        self.recovery = to;
        self.received = 0;
        self.lost = 0;
        self.resent = 0;
        self.probe = None;
        self.rto_deadline = Some(now + rto);
        (from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    extern crate std;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    const RTO: Duration = Duration::from_millis(300);

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn send_all(d: &mut Delivery, room_next: u64, now: Instant) -> heapless::Vec<u64, 64> {
        let mut sent = heapless::Vec::new();
        while let Some((seq, _)) = d.next(room_next, now, RTO) {
            sent.push(seq).unwrap();
        }
        sent
    }

    #[test]
    fn a_repeated_ack_does_not_put_off_the_retransmission() {
        let mut d = Delivery::new(0, 4, 64);
        assert_eq!(send_all(&mut d, 4, at(0)).len(), 4);
        assert_eq!(d.rto_deadline, Some(at(300)));
        assert_eq!(d.on_ack(at(100), 1, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.rto_deadline, Some(at(400)), "restarted: 0 acknowledged");
        // The same Ack again, twice: nothing new, the timer stands.
        assert_eq!(d.on_ack(at(200), 1, 0, RTO), Acked::Same);
        assert_eq!(d.on_ack(at(350), 1, 0, RTO), Acked::Same);
        assert_eq!(d.rto_deadline, Some(at(400)));
        assert_eq!(d.on_ack(at(360), 4, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.rto_deadline, None, "nothing in flight");
    }

    #[test]
    fn window_limits_what_is_in_flight() {
        let mut d = Delivery::new(10, 4, 64);
        assert_eq!(send_all(&mut d, 100, at(0)).as_slice(), [10, 11, 12, 13]);
        assert_eq!(d.in_flight(), 4);
        assert_eq!(d.rto_deadline, Some(at(300)));
        assert_eq!(d.on_ack(at(20), 12, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.cc.window(), 6, "slow start: +2");
        assert_eq!(d.rtt.smoothed(), Some(Duration::from_millis(20)));
        assert_eq!(send_all(&mut d, 100, at(20)).as_slice(), [14, 15, 16, 17]);
        assert_eq!(d.in_flight(), 6);
        assert_eq!(d.on_ack(at(21), 11, 0, RTO), Acked::Stale);
        assert_eq!(d.on_ack(at(21), 19, 0, RTO), Acked::Invalid, "never sent");
    }

    #[test]
    fn selective_acks_find_the_hole_and_only_it_goes_again() {
        let mut d = Delivery::new(0, 8, 64);
        assert_eq!(send_all(&mut d, 8, at(0)).len(), 8);
        // 0 lost; 1..=4 arrived: bit i of selective is 1 + i.
        assert_eq!(
            d.on_ack(at(10), 0, 0b1111, RTO),
            Acked::New { advanced: false }
        );
        assert_eq!(d.cc.window(), 4, "one congestion event: halved");
        assert_eq!(d.in_flight(), 3, "5, 6, 7");
        assert_eq!(d.next(8, at(10), RTO), Some((0, true)), "only the hole");
        assert_eq!(
            d.next(8, at(10), RTO),
            None,
            "window full: 5, 6, 7 and 0 again"
        );
        // 5 arrives too: 0 was resent, so it is not lost again by the threshold.
        assert_eq!(
            d.on_ack(at(11), 0, 0b11111, RTO),
            Acked::New { advanced: false }
        );
        assert_eq!(d.lost, 0);
        assert_eq!(
            d.cc.window(),
            4,
            "same recovery episode: no second reduction"
        );
        assert_eq!(d.on_ack(at(12), 8, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.rto_deadline, None);
    }

    #[test]
    fn timeout_resends_what_is_missing_from_the_minimum_window() {
        let mut d = Delivery::new(0, 8, 64);
        send_all(&mut d, 8, at(0));
        assert!(d.on_timeout());
        assert_eq!(d.cc.window(), 2);
        assert_eq!(d.rtt.backoff(), 1);
        assert_eq!(send_all(&mut d, 8, at(300)).as_slice(), [0, 1]);
        assert_eq!(d.on_ack(at(301), 2, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.rtt.backoff(), 0, "progress ends the backoff");
        assert_eq!(
            d.rtt.smoothed(),
            None,
            "Karn: no sample from resent messages"
        );
        assert_eq!(send_all(&mut d, 8, at(301)).as_slice(), [2, 3, 4, 5]);
    }

    #[test]
    fn missed_holds_deliveries_until_acknowledged() {
        let mut d = Delivery::new(3, 8, 64);
        assert_eq!(d.skip_to(10, at(0), RTO), (3, 10));
        assert!(!d.can_send(20));
        assert_eq!(d.on_ack(at(1), 3, 0, RTO), Acked::Stale);
        assert!(d.on_timeout(), "the Missed goes again");
        assert!(d.missed_due);
        assert_eq!(d.on_ack(at(2), 10, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.missed, None);
        assert_eq!(d.next(20, at(2), RTO), Some((10, false)));
    }

    /// The room's end and the span both bound what goes: a member is sent only messages
    /// the room has, and never more than [`SPAN`] beyond its cumulative acknowledgement,
    /// however many of them it acknowledged selectively (the Ack's bitmap covers no more).
    #[test]
    fn only_what_the_room_has_and_no_more_than_the_span_goes() {
        let mut d = Delivery::new(100, 16, 64);
        assert_eq!((d.acked(), d.sent_upto()), (100, 100));
        assert_eq!(send_all(&mut d, 103, at(0)).as_slice(), [100, 101, 102]);
        assert_eq!((d.acked(), d.sent_upto()), (100, 103));
        assert!(!d.can_send(103), "the room has no more");
        assert!(d.can_send(104));

        let mut d = Delivery::new(0, 64, 64);
        assert_eq!(send_all(&mut d, 200, at(0)).len(), 64);
        // 1..=63 arrived, 0 did not: 0 is lost and goes again, and nothing new goes
        // although the window (halved to 32) has room: 64 would be beyond the span.
        let all_but_the_first = (1 << 63) - 1;
        assert_eq!(
            d.on_ack(at(10), 0, all_but_the_first, RTO),
            Acked::New { advanced: false }
        );
        assert_eq!(d.cc.window(), 32);
        assert_eq!(d.next(200, at(10), RTO), Some((0, true)));
        assert_eq!(d.in_flight(), 1);
        assert!(!d.can_send(200), "span full");
        assert_eq!(d.next(200, at(10), RTO), None);
        assert_eq!(d.on_ack(at(20), 64, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.next(200, at(20), RTO), Some((64, false)));
    }

    /// A legacy peer acknowledges nothing: what it was sent counts as delivered, once.
    #[test]
    fn a_legacy_peer_is_sent_everything_once() {
        let mut d = Delivery::new(5, 4, 64);
        d.sent_unacknowledged(9);
        assert_eq!((d.acked(), d.sent_upto(), d.in_flight()), (9, 9, 0));
        d.sent_unacknowledged(7);
        assert_eq!((d.acked(), d.sent_upto()), (9, 9), "never backwards");
        assert_eq!(d.next(12, at(0), RTO), Some((9, false)));
    }

    /// RFC 9002 §6.1.1: a message is lost once one [`PACKET_THRESHOLD`] later arrived,
    /// not before: with only the third after it acknowledged, the two between are not.
    /// Karn (RFC 6298 §3): the round trip is sampled from a message sent once, whether
    /// its arrival is told cumulatively or selectively, and never from one sent again.
    #[test]
    fn loss_is_three_later_and_rtt_comes_from_messages_sent_once() {
        let mut d = Delivery::new(100, 4, 64);
        assert_eq!(
            send_all(&mut d, 200, at(0)).as_slice(),
            [100, 101, 102, 103]
        );
        // 101 arrived, 100 (the probe) not yet: no sample, nothing lost.
        assert_eq!(
            d.on_ack(at(10), 100, 0b1, RTO),
            Acked::New { advanced: false }
        );
        assert_eq!(d.rtt.smoothed(), None);
        assert_eq!(d.lost, 0);
        assert_eq!(d.on_ack(at(11), 100, 0b1, RTO), Acked::Same, "nothing new");
        assert_eq!(d.progress_at, Instant::default(), "acked did not move");
        // 100 arrives: the probe's round trip, 20 ms.
        assert_eq!(d.on_ack(at(20), 102, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.rtt.smoothed(), Some(Duration::from_millis(20)));
        assert_eq!(d.progress_at, at(20));
        assert_eq!(
            d.rto_deadline,
            Some(at(20) + RTO),
            "102, 103 still in flight"
        );
        assert_eq!(
            send_all(&mut d, 200, at(20)).as_slice(),
            [104, 105, 106, 107]
        );
        // 104 (the next probe) and 105 arrive, told selectively: 30 ms; 102 is three
        // below 105, 103 only two.
        assert_eq!(
            d.on_ack(at(50), 102, 0b110, RTO),
            Acked::New { advanced: false }
        );
        assert_eq!(d.rtt.smoothed(), Some(Duration::from_millis(21)));
        assert_eq!(d.lost, 0b1, "102 lost, 103 not yet");
        assert_eq!(d.cc.window(), 3, "halved from 6");
        assert_eq!(d.in_flight(), 3, "103, 106, 107");

        // A probe found lost and sent again gives no sample when it arrives.
        let mut d = Delivery::new(0, 8, 64);
        send_all(&mut d, 8, at(0));
        d.on_ack(at(10), 0, 0b1111, RTO);
        assert_eq!(d.next(8, at(10), RTO), Some((0, true)));
        assert_eq!(d.on_ack(at(40), 8, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.rtt.smoothed(), None, "Karn");
    }

    /// Two holes: each goes again once, lowest first, and neither is found lost again by
    /// the threshold (only the timer may).
    #[test]
    fn every_hole_goes_again_once() {
        let mut d = Delivery::new(0, 8, 64);
        send_all(&mut d, 8, at(0));
        // 1, 3, 4, 5 arrived: 0 and 2 are lost, one congestion event.
        assert_eq!(
            d.on_ack(at(10), 0, 0b11101, RTO),
            Acked::New { advanced: false }
        );
        assert_eq!((d.lost, d.cc.window()), (0b101, 4));
        assert_eq!(d.next(8, at(10), RTO), Some((0, true)));
        assert_eq!(d.next(8, at(10), RTO), Some((2, true)));
        assert_eq!(d.next(8, at(10), RTO), None, "6, 7, 0, 2 in flight");
        d.on_ack(at(11), 0, 0b111101, RTO);
        assert_eq!(d.lost, 0, "0 and 2 were sent again");
    }

    /// A timeout with nothing unacknowledged does nothing; with some, exactly those are
    /// lost, and go again as the collapsed window allows; a later acknowledgement leaves
    /// the rest lost, and the timer armed for them.
    #[test]
    fn a_timeout_loses_exactly_what_is_unacknowledged() {
        let mut d = Delivery::new(0, 8, 64);
        send_all(&mut d, 4, at(0));
        d.on_ack(at(10), 4, 0, RTO);
        let before = d;
        assert!(!d.on_timeout(), "nothing outstanding");
        assert_eq!((d.cc, d.rtt), (before.cc, before.rtt));

        let mut d = Delivery::new(0, 8, 64);
        send_all(&mut d, 8, at(0));
        d.on_ack(at(10), 0, 0b10, RTO);
        assert!(d.on_timeout());
        assert_eq!(d.lost, 0b1111_1011, "all but 2");
        assert_eq!(send_all(&mut d, 8, at(300)).as_slice(), [0, 1]);
        assert_eq!(d.on_ack(at(310), 3, 0, RTO), Acked::New { advanced: true });
        assert_eq!(d.lost, 0b1_1111, "3 to 7");
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.rto_deadline, Some(at(310) + RTO));
        assert_eq!(d.cc.window(), 4, "0 and 1 went again: they grow the window");
        assert_eq!(send_all(&mut d, 8, at(310)).as_slice(), [3, 4, 5, 6]);
    }

    /// RFC 9002 §7.3.2 with appendix B.5: a message first sent before the recovery point
    /// grows the window only if it was sent again since (a new transmission); one first
    /// sent after it always does; each counts once, however it qualifies. Here 8 is sent
    /// after the recovery point (8) and is lost in the same episode (7, below the point,
    /// is the first loss: no second reduction), then both go again and arrive.
    #[test]
    fn a_message_sent_after_the_recovery_point_and_again_grows_the_window_once() {
        let mut expected = NewReno::new(8, 2, 64);
        let mut d = Delivery::new(0, 8, 64);
        send_all(&mut d, 12, at(0));
        d.on_ack(at(10), 0, 0b1111, RTO);
        expected.on_congestion_event();
        assert_eq!((d.lost, d.recovery, d.cc), (0b1, 8, expected));
        assert_eq!(send_all(&mut d, 12, at(10)).as_slice(), [0]);
        d.on_ack(at(20), 0, 0b11_1111, RTO);
        assert_eq!(
            d.cc, expected,
            "5 and 6 were sent before the recovery point"
        );
        assert_eq!(send_all(&mut d, 12, at(20)).as_slice(), [8, 9]);
        // 0 (sent again) and 9 (after the point) arrive: two.
        d.on_ack(at(30), 7, 0b10, RTO);
        expected.on_ack(2);
        assert_eq!(d.cc, expected);
        assert_eq!(send_all(&mut d, 12, at(30)).as_slice(), [10, 11]);
        // 10 and 11 arrive: two more; 7 and 8 are lost, 7 below the point: no reduction.
        d.on_ack(at(40), 7, 0b1110, RTO);
        expected.on_ack(2);
        assert_eq!((d.lost, d.recovery, d.cc), (0b11, 8, expected));
        assert_eq!(send_all(&mut d, 12, at(40)).as_slice(), [7, 8]);
        // 7 (before the point, sent again) and 8 (after it, sent again): one each.
        assert_eq!(d.on_ack(at(50), 12, 0, RTO), Acked::New { advanced: true });
        expected.on_ack(2);
        assert_eq!(d.cc, expected);
    }

    /// A reference for [`Delivery`] over sets of sequence numbers instead of bitmaps,
    /// written from the module's rules (RFC 9002 §6.1.1, §7.3.2; RFC 6298 §3, §5).
    #[derive(Clone, Debug)]
    struct Model {
        acked: u64,
        sent_upto: u64,
        received: BTreeSet<u64>,
        lost: BTreeSet<u64>,
        resent: BTreeSet<u64>,
        recovery: u64,
        cc: NewReno,
        rtt: RttEstimator,
        probe: Option<(u64, Instant)>,
        rto_deadline: Option<Instant>,
        progress_at: Instant,
    }

    impl Model {
        fn new(start: u64, initial: u16, max: u16) -> Self {
            Self {
                acked: start,
                sent_upto: start,
                received: BTreeSet::new(),
                lost: BTreeSet::new(),
                resent: BTreeSet::new(),
                recovery: start,
                cc: NewReno::new(initial, 2, max.min(64)),
                rtt: RttEstimator::new(),
                probe: None,
                rto_deadline: None,
                progress_at: Instant::default(),
            }
        }

        fn unacked(&self) -> impl Iterator<Item = u64> + '_ {
            (self.acked..self.sent_upto).filter(|s| !self.received.contains(s))
        }

        fn in_flight(&self) -> u64 {
            self.unacked().filter(|s| !self.lost.contains(s)).count() as u64
        }

        fn can_send(&self, room_next: u64) -> bool {
            self.in_flight() < u64::from(self.cc.window())
                && (!self.lost.is_empty()
                    || (self.sent_upto < room_next && self.sent_upto - self.acked < 64))
        }

        fn next(&mut self, room_next: u64, now: Instant) -> Option<(u64, bool)> {
            if !self.can_send(room_next) {
                return None;
            }
            let picked = if let Some(s) = self.lost.pop_first() {
                self.resent.insert(s);
                if self.probe.is_some_and(|(p, _)| p == s) {
                    self.probe = None;
                }
                (s, true)
            } else {
                let s = self.sent_upto;
                self.sent_upto += 1;
                self.probe.get_or_insert((s, now));
                (s, false)
            };
            self.rto_deadline.get_or_insert(now + RTO);
            Some(picked)
        }

        fn on_ack(&mut self, now: Instant, n: u64, selective: u64) -> Acked {
            if n > self.sent_upto {
                return Acked::Invalid;
            }
            if n < self.acked {
                return Acked::Stale;
            }
            let old_acked = self.acked;
            let old_resent = self.resent.clone();
            let newly_cumulative: Vec<u64> = (self.acked..n)
                .filter(|s| !self.received.contains(s))
                .collect();
            self.received.retain(|&s| s >= n);
            self.lost.retain(|&s| s >= n);
            self.resent.retain(|&s| s >= n);
            self.acked = n;
            let sacked: BTreeSet<u64> = (0..63)
                .filter(|i| selective & (1 << i) != 0)
                .map(|i| n + 1 + i)
                .filter(|&s| s < self.sent_upto)
                .collect();
            let newly_selective: Vec<u64> = sacked.difference(&self.received).copied().collect();
            let resent_selective: BTreeSet<u64> = newly_selective
                .iter()
                .copied()
                .filter(|s| self.resent.contains(s))
                .collect();
            self.received.extend(&sacked);
            self.lost.retain(|s| !sacked.contains(s));
            self.resent.retain(|s| !sacked.contains(s));
            if let Some((p, at)) = self.probe
                && (p < self.acked || self.received.contains(&p))
            {
                self.rtt.sample(now - at);
                self.probe = None;
            }
            if n > old_acked {
                self.progress_at = now;
                self.rtt.reset_backoff();
            }
            self.detect_losses();
            let recovery = self.recovery;
            let growth = newly_cumulative
                .iter()
                .filter(|&&s| s >= recovery || old_resent.contains(&s))
                .count()
                + newly_selective
                    .iter()
                    .filter(|&&s| s >= recovery || resent_selective.contains(&s))
                    .count();
            if growth > 0 {
                self.cc.on_ack(growth as u32);
            }
            let newly = newly_cumulative.len() + newly_selective.len();
            if self.in_flight() == 0 && self.lost.is_empty() {
                self.rto_deadline = None;
            } else if newly > 0 || self.rto_deadline.is_none() {
                // RFC 6298 §5.3: restarted only by new acknowledgements.
                self.rto_deadline = Some(now + RTO);
            }
            if newly > 0 {
                Acked::New {
                    advanced: n > old_acked,
                }
            } else {
                Acked::Same
            }
        }

        fn detect_losses(&mut self) {
            let Some(&highest) = self.received.last() else {
                return;
            };
            if highest - self.acked < PACKET_THRESHOLD {
                return;
            }
            let newly: Vec<u64> = (self.acked..=highest - PACKET_THRESHOLD)
                .filter(|s| {
                    !self.received.contains(s) && !self.lost.contains(s) && !self.resent.contains(s)
                })
                .collect();
            let Some(&first) = newly.first() else {
                return;
            };
            self.lost.extend(newly);
            if first >= self.recovery {
                self.cc.on_congestion_event();
                self.recovery = self.sent_upto;
            }
        }

        fn on_timeout(&mut self) -> bool {
            self.rto_deadline = None;
            let unacked: BTreeSet<u64> = self.unacked().collect();
            if unacked.is_empty() {
                return false;
            }
            self.lost = unacked;
            self.resent.clear();
            self.probe = None;
            self.cc.on_timeout();
            self.rtt.back_off();
            self.recovery = self.sent_upto;
            true
        }
    }

    fn seqs(base: u64, bits: u64) -> BTreeSet<u64> {
        (0..64)
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| base + i)
            .collect()
    }

    /// What the member does, and what happens to the datagrams on the way.
    #[derive(Clone, Debug)]
    enum Op {
        /// The room gets this many more messages.
        Grow(u64),
        /// The relay sends the next message, if it may.
        Send,
        /// A message on the way arrives at the member.
        Arrive(usize),
        /// A message on the way is lost.
        Drop(usize),
        /// The member acknowledges what it has.
        Ack,
        /// An older acknowledgement arrives again.
        Replay(usize),
        /// An acknowledgement of anything (a broken or hostile member).
        Raw(u64, u64),
        /// Time passes, ms.
        Wait(u64),
        /// The retransmission timer fires.
        Timeout,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0u64..4).prop_map(Op::Grow),
            6 => Just(Op::Send),
            4 => any::<usize>().prop_map(Op::Arrive),
            2 => any::<usize>().prop_map(Op::Drop),
            3 => Just(Op::Ack),
            1 => any::<usize>().prop_map(Op::Replay),
            1 => (0u64..72, any::<u64>()).prop_map(|(n, s)| Op::Raw(n, s)),
            2 => (0u64..60).prop_map(Op::Wait),
            1 => Just(Op::Timeout),
        ]
    }

    proptest! {
        /// Against the reference, after every step: what goes, what each Ack and timeout
        /// does, what is in flight, lost, sent again; the window, the RTT, the timer.
        #[test]
        fn matches_a_model(
            start in 0u64..1000,
            initial in 1u16..80,
            max in 1u16..80,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut d = Delivery::new(start, initial, max);
            let mut m = Model::new(start, initial, max);
            let mut now = at(0);
            let mut room_next = start;
            let mut on_the_way: Vec<u64> = Vec::new();
            let mut got: BTreeSet<u64> = BTreeSet::new();
            let mut acks: Vec<(u64, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Grow(k) => room_next += k,
                    Op::Send => {
                        let sent = d.next(room_next, now, RTO);
                        prop_assert_eq!(sent, m.next(room_next, now));
                        if let Some((s, _)) = sent {
                            on_the_way.push(s);
                        }
                    }
                    Op::Arrive(i) if !on_the_way.is_empty() => {
                        got.insert(on_the_way.remove(i % on_the_way.len()));
                    }
                    Op::Drop(i) if !on_the_way.is_empty() => {
                        on_the_way.remove(i % on_the_way.len());
                    }
                    Op::Arrive(_) | Op::Drop(_) => {}
                    Op::Ack | Op::Replay(_) | Op::Raw(..) => {
                        let (n, selective) = match op {
                            Op::Ack => {
                                let n = (start..).find(|s| !got.contains(s)).unwrap_or(start);
                                let selective = (0..64)
                                    .filter(|i| got.contains(&(n + 1 + i)))
                                    .fold(0u64, |bits, i| bits | 1 << i);
                                acks.push((n, selective));
                                (n, selective)
                            }
                            Op::Replay(i) if !acks.is_empty() => acks[i % acks.len()],
                            Op::Raw(k, selective) => (m.acked.saturating_sub(4) + k, selective),
                            _ => continue,
                        };
                        prop_assert_eq!(
                            d.on_ack(now, n, selective, RTO),
                            m.on_ack(now, n, selective)
                        );
                    }
                    Op::Wait(ms) => now = now + Duration::from_millis(ms),
                    Op::Timeout => prop_assert_eq!(d.on_timeout(), m.on_timeout()),
                }
                prop_assert_eq!((d.acked(), d.sent_upto()), (m.acked, m.sent_upto));
                prop_assert_eq!(seqs(d.acked, d.received), m.received.clone());
                prop_assert_eq!(seqs(d.acked, d.lost), m.lost.clone());
                prop_assert_eq!(seqs(d.acked, d.resent), m.resent.clone());
                prop_assert_eq!(d.recovery, m.recovery);
                prop_assert_eq!((d.cc, d.rtt), (m.cc, m.rtt));
                prop_assert_eq!(d.probe, m.probe);
                prop_assert_eq!(d.rto_deadline, m.rto_deadline);
                prop_assert_eq!(d.progress_at, m.progress_at);
                prop_assert_eq!(d.in_flight(), m.in_flight());
                prop_assert_eq!(d.can_send(room_next), m.can_send(room_next));
            }
        }
    }
}
