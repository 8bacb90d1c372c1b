//! Our lines until each has its answer (PROTOCOL.md "Sending a line").
//!
//! Lines are numbered in order (`msg_id`) and the server takes them strictly in order, so
//! an answer to line `n` means every line before `n` was taken too: one whose own answer
//! has not come was answered and the answer lost, and is sent again at once to get it (the
//! server answers a retransmission with the same answer). Each line stays here until its
//! own answer: every line gets exactly one outcome.
//!
//! At most a congestion window of lines is in flight ([`NewReno`], at most the window the
//! server granted). A Busy answer means the room could not take the line: it and every
//! line after it go again after the wait the server asked for, and the window halves. A
//! retransmission timeout sends every unanswered line again from the minimum window, with
//! exponential backoff; any answer from the server (Receipt, Refused, Busy) ends the
//! backoff.

use crate::congestion::{Controller, NewReno, RttEstimator};
use crate::time::{Duration, Instant};
use heapless::{Deque, String};

use super::SendError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// To be sent (again).
    Waiting { again: bool },
    /// Sent at `at`; `again` if it was sent before (no RTT sample from it: Karn).
    Sent { at: Instant, again: bool },
    /// Its answer came.
    Answered,
}

#[derive(Clone, Debug)]
struct Line<const TEXT: usize> {
    /// What [`Client::send`](super::Client::send) returned.
    id: u32,
    /// The number on the wire (renumbered if we join again).
    msg_id: u32,
    text: String<TEXT>,
    state: State,
}

/// A line that is due, to put in a Chat frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Due<'a> {
    pub msg_id: u32,
    pub text: &'a str,
}

/// Timer bounds, from the client's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Timers {
    pub initial_rto: Duration,
    pub min_rto: Duration,
    pub max_rto: Duration,
}

#[derive(Clone, Debug)]
pub(super) struct Outbox<const TEXT: usize, const N: usize> {
    lines: Deque<Line<TEXT>, N>,
    next_id: u32,
    next_msg_id: u32,
    pub cc: NewReno,
    pub rtt: RttEstimator,
    pub rto_deadline: Option<Instant>,
    /// Nothing goes before this (the server said Busy).
    pub hold_until: Option<Instant>,
    timers: Timers,
}

impl<const TEXT: usize, const N: usize> Outbox<TEXT, N> {
    pub fn new(timers: Timers) -> Self {
        let max = u16::try_from(N).unwrap_or(u16::MAX).max(1);
        Self {
            lines: Deque::new(),
            next_id: 1,
            next_msg_id: 1,
            cc: NewReno::new(max.min(4), 1, max),
            rtt: RttEstimator::new(),
            rto_deadline: None,
            hold_until: None,
            timers,
        }
    }

    pub fn rto(&self) -> Duration {
        self.rtt.rto(
            self.timers.initial_rto,
            self.timers.min_rto,
            self.timers.max_rto,
        )
    }

    /// Lines without their answer yet.
    pub fn len(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.state != State::Answered)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a line; the id its outcome will carry.
    pub fn push(&mut self, text: &str, max: usize) -> Result<u32, SendError> {
        if text.len() > max {
            return Err(SendError::TooLong { max });
        }
        let mut stored = String::new();
        stored
            .push_str(text)
            .map_err(|_| SendError::TooLong { max })?;
        let id = self.next_id;
        let line = Line {
            id,
            msg_id: self.next_msg_id,
            text: stored,
            state: State::Waiting { again: false },
        };
        self.lines
            .push_back(line)
            .map_err(|_| SendError::QueueFull)?;
        self.next_id = self.next_id.wrapping_add(1);
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        Ok(id)
    }

    /// The server granted a window of `window` lines.
    pub fn grant(&mut self, window: u8) {
        self.cc.set_max(u16::from(window.max(1)).min(N as u16));
    }

    fn in_flight(&self) -> u32 {
        let sent = self
            .lines
            .iter()
            .filter(|l| matches!(l.state, State::Sent { .. }))
            .count();
        u32::try_from(sent).unwrap_or(u32::MAX)
    }

    /// Whether a line could go now.
    pub fn has_due(&self, now: Instant) -> bool {
        self.hold_until.is_none_or(|t| t <= now)
            && self.in_flight() < self.cc.window()
            && self
                .lines
                .iter()
                .any(|l| matches!(l.state, State::Waiting { .. }))
    }

    /// Takes the first line due, books it as sent at `now`, arms the timer.
    pub fn next_due(&mut self, now: Instant) -> Option<Due<'_>> {
        if !self.has_due(now) {
            return None;
        }
        self.hold_until = None;
        let rto = self.rto();
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + rto);
        }
        let line = self
            .lines
            .iter_mut()
            .find(|l| matches!(l.state, State::Waiting { .. }))?;
        let again = matches!(line.state, State::Waiting { again: true });
        line.state = State::Sent { at: now, again };
        Some(Due {
            msg_id: line.msg_id,
            text: &line.text,
        })
    }

    /// The server answered line `msg_id`; its id, or `None` if that line has no answer
    /// pending (a duplicate).
    pub fn on_answer(&mut self, now: Instant, msg_id: u32) -> Option<u32> {
        let at = self
            .lines
            .iter()
            .position(|l| l.msg_id == msg_id && l.state != State::Answered)?;
        let mut id = 0;
        for (i, line) in self.lines.iter_mut().enumerate() {
            if i == at {
                if let State::Sent { at, again: false } = line.state {
                    self.rtt.sample(now - at);
                }
                line.state = State::Answered;
                id = line.id;
            } else if i < at && matches!(line.state, State::Sent { .. }) {
                // The server took it (it takes lines in order): its answer was lost. Ask
                // again now rather than after a timeout.
                line.state = State::Waiting { again: true };
            }
        }
        while self
            .lines
            .front()
            .is_some_and(|l| l.state == State::Answered)
        {
            let _ = self.lines.pop_front();
        }
        self.cc.on_ack(1);
        self.rtt.reset_backoff();
        self.rto_deadline = (self.in_flight() > 0).then(|| now + self.rto());
        Some(id)
    }

    /// The server could not take line `msg_id` now: it and every line after it go again
    /// after `retry_after`, from a halved window; with a `retry_after` of zero the room
    /// has made room for it (it was first in line): they go at once, and the window
    /// stays. Whether it was ours.
    pub fn on_busy(&mut self, now: Instant, msg_id: u32, retry_after: Duration) -> bool {
        let Some(at) = self
            .lines
            .iter()
            .position(|l| l.msg_id == msg_id && l.state != State::Answered)
        else {
            return false;
        };
        for line in self.lines.iter_mut().skip(at) {
            if let State::Sent { again, .. } = line.state {
                line.state = State::Waiting { again };
            }
        }
        if retry_after > Duration::ZERO {
            self.cc.on_congestion_event();
        }
        self.rtt.reset_backoff();
        self.hold_until = Some(now + retry_after);
        self.rto_deadline = (self.in_flight() > 0).then(|| now + self.rto());
        true
    }

    /// The timer fired: every unanswered line goes again, from the minimum window, and
    /// the next timeout is twice as long.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.rto_deadline.is_none_or(|t| t > now) {
            return;
        }
        self.rto_deadline = None;
        for line in self.lines.iter_mut() {
            if matches!(line.state, State::Sent { .. }) {
                line.state = State::Waiting { again: true };
            }
        }
        self.cc.on_timeout();
        self.rtt.back_off();
    }

    /// The server expects `next_msg_id` next (from its Welcome). Lines numbered below it
    /// were taken before (a server that remembered us): they keep their numbers and go
    /// again to get their answers. The others are numbered from `next_msg_id`. Everything
    /// unanswered goes again now.
    pub fn renumber(&mut self, next_msg_id: u32) {
        let first = self
            .lines
            .iter()
            .find(|l| l.state != State::Answered)
            .map_or(next_msg_id, |l| l.msg_id);
        let known = next_msg_id.wrapping_sub(first) as i32;
        let mut msg_id = next_msg_id;
        for line in self.lines.iter_mut() {
            if line.state == State::Answered {
                continue;
            }
            let taken = known > 0 && (line.msg_id.wrapping_sub(first) as i32) < known;
            if !taken {
                line.msg_id = msg_id;
                msg_id = msg_id.wrapping_add(1);
            }
            let again = !matches!(line.state, State::Waiting { again: false });
            line.state = State::Waiting { again };
        }
        self.next_msg_id = msg_id;
        self.hold_until = None;
        self.rto_deadline = None;
        self.rtt.reset_backoff();
    }

    /// Takes the oldest unanswered line: its id and text (the session is over).
    pub fn pop_unanswered(&mut self) -> Option<(u32, String<TEXT>)> {
        while let Some(line) = self.lines.pop_front() {
            if line.state != State::Answered {
                return Some((line.id, line.text));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERS: Timers = Timers {
        initial_rto: Duration::from_millis(300),
        min_rto: Duration::from_millis(200),
        max_rto: Duration::from_secs(4),
    };

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn sent(o: &mut Outbox<16, 8>, now: Instant) -> heapless::Vec<u32, 8> {
        let mut ids = heapless::Vec::new();
        while let Some(due) = o.next_due(now) {
            ids.push(due.msg_id).unwrap();
        }
        ids
    }

    #[test]
    fn every_line_waits_for_its_own_answer() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b", "c"] {
            o.push(text, 16).unwrap();
        }
        assert_eq!(sent(&mut o, at(0)).as_slice(), [1, 2, 3]);
        // 2's answer comes, 1's was lost: 1 goes again at once.
        assert_eq!(o.on_answer(at(10), 2), Some(2));
        assert_eq!(o.len(), 2);
        assert_eq!(sent(&mut o, at(10)).as_slice(), [1]);
        assert_eq!(o.on_answer(at(11), 2), None, "a duplicate answer");
        assert_eq!(o.on_answer(at(12), 1), Some(1));
        assert_eq!(o.on_answer(at(13), 3), Some(3));
        assert!(o.is_empty());
        assert_eq!(o.rto_deadline, None);
    }

    #[test]
    fn busy_holds_and_halves_then_timeouts_back_off() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b", "c", "d"] {
            o.push(text, 16).unwrap();
        }
        assert_eq!(sent(&mut o, at(0)).len(), 4);
        assert!(o.on_busy(at(5), 2, Duration::from_millis(50)));
        assert_eq!(o.cc.window(), 2);
        assert!(sent(&mut o, at(20)).is_empty(), "held");
        assert_eq!(sent(&mut o, at(55)).as_slice(), [2], "1 still in flight");
        o.on_timeout(at(1000));
        assert_eq!(o.cc.window(), 1);
        assert_eq!(sent(&mut o, at(1000)).as_slice(), [1]);
        assert_eq!(o.rto(), Duration::from_millis(600), "backed off");
        assert!(o.on_busy(at(1001), 1, Duration::ZERO));
        assert_eq!(
            o.rto(),
            Duration::from_millis(300),
            "an answer ends the backoff"
        );
        assert!(!o.on_busy(at(1001), 9, Duration::ZERO), "not ours");
        // A zero wait is the room's turn for it: at once (that the window is kept is
        // `a_busy_without_a_wait_keeps_the_window`: here it is at its minimum already).
        assert!(o.on_busy(at(1002), 1, Duration::ZERO));
        assert!(o.has_due(at(1002)));
        assert_eq!(
            o.push("too long for sixteen", 16),
            Err(SendError::TooLong { max: 16 })
        );
    }

    #[test]
    fn renumbering_keeps_what_the_server_took() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b", "c"] {
            o.push(text, 16).unwrap();
        }
        sent(&mut o, at(0));
        // A server that remembered us took 1 and 2: they keep their numbers.
        o.renumber(3);
        assert_eq!(sent(&mut o, at(1)).as_slice(), [1, 2, 3]);
        // A new server: everything from 1 again, in order.
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b"] {
            o.push(text, 16).unwrap();
        }
        o.on_answer(at(0), 1);
        o.renumber(1);
        assert_eq!(sent(&mut o, at(1)).as_slice(), [1]);
        assert_eq!(o.push("c", 16), Ok(3));
        assert_eq!(sent(&mut o, at(2)).as_slice(), [2]);
        let (id, text) = o.pop_unanswered().unwrap();
        assert_eq!((id, text.as_str()), (2, "b"));
        assert_eq!(o.pop_unanswered().map(|(id, _)| id), Some(3));
        assert_eq!(o.pop_unanswered(), None);
    }

    /// A line of exactly the limit is taken; one byte more is refused, also when the
    /// storage (`TEXT`) would hold it, for the limit is what a datagram can carry.
    #[test]
    fn a_line_of_exactly_the_limit_is_taken() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        assert!(o.is_empty());
        assert_eq!(o.push("abcde", 4), Err(SendError::TooLong { max: 4 }));
        assert!(o.is_empty(), "nothing queued");
        assert_eq!(o.push("abcd", 4), Ok(1));
        assert!(!o.is_empty());
        assert_eq!(o.len(), 1);
    }

    /// At most the window the server granted is in flight, at least one line.
    #[test]
    fn the_granted_window_bounds_what_is_in_flight() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b", "c", "d"] {
            o.push(text, 16).unwrap();
        }
        o.grant(2);
        assert_eq!(o.cc.window(), 2);
        assert_eq!(sent(&mut o, at(0)).as_slice(), [1, 2]);
        o.grant(0);
        assert_eq!(o.cc.window(), 1, "at least one");
    }

    /// The retransmission timer runs from the first line sent while lines are in flight:
    /// an answer re-arms it from the new RTO (RFC 6298 §5.3) while others are unanswered,
    /// and stops it when none is; it fires at its deadline, not before.
    #[test]
    fn the_retransmission_timer_runs_while_lines_are_in_flight() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b"] {
            o.push(text, 16).unwrap();
        }
        assert_eq!(sent(&mut o, at(1000)).as_slice(), [1, 2]);
        assert_eq!(o.rto_deadline, Some(at(1300)), "the initial RTO");
        // A 50 ms sample: srtt 50 + 4 × rttvar 25 is 150, raised to the 200 ms minimum.
        assert_eq!(o.on_answer(at(1050), 1), Some(1));
        assert_eq!(o.rto(), Duration::from_millis(200));
        assert_eq!(o.rto_deadline, Some(at(1250)), "2 is still in flight");
        o.on_timeout(at(1249));
        assert!(!o.has_due(at(1249)), "1 ms early: nothing goes again");
        assert_eq!(o.rto(), Duration::from_millis(200));
        o.on_timeout(at(1250));
        assert_eq!(o.rto_deadline, None);
        assert_eq!(o.rto(), Duration::from_millis(400), "backed off");
        assert_eq!(
            sent(&mut o, at(1250)).as_slice(),
            [2],
            "again at the deadline"
        );
        assert_eq!(o.rto_deadline, Some(at(1650)));
        assert_eq!(o.on_answer(at(1260), 2), Some(2));
        assert_eq!(o.rto_deadline, None, "nothing in flight");
    }

    /// After a Busy the timer runs only for the lines still in flight before it.
    #[test]
    fn after_busy_the_timer_runs_only_for_lines_still_in_flight() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b"] {
            o.push(text, 16).unwrap();
        }
        assert_eq!(sent(&mut o, at(1000)).as_slice(), [1, 2]);
        assert!(o.on_busy(at(1010), 2, Duration::from_millis(50)));
        assert_eq!(o.rto_deadline, Some(at(1310)), "1 is still in flight");
        assert!(o.on_busy(at(1020), 1, Duration::from_millis(50)));
        assert_eq!(o.rto_deadline, None, "nothing in flight");
        o.on_timeout(at(5000));
        assert_eq!(o.rto(), Duration::from_millis(300), "no timeout came");
        assert_eq!(sent(&mut o, at(1070)).as_slice(), [1]);
    }

    /// A Busy without a wait (the room made room for the line: it was first in line) is
    /// no sign of congestion: the lines go again at once and the window stays; a Busy
    /// with a wait halves it (RFC 9002 §7.3.2).
    #[test]
    fn a_busy_without_a_wait_keeps_the_window() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b", "c", "d"] {
            o.push(text, 16).unwrap();
        }
        assert_eq!(sent(&mut o, at(0)).as_slice(), [1, 2, 3, 4]);
        assert!(o.on_busy(at(5), 1, Duration::ZERO));
        assert_eq!(o.cc.window(), 4, "kept");
        assert_eq!(sent(&mut o, at(5)).as_slice(), [1, 2, 3, 4], "at once");
        assert!(o.on_busy(at(6), 1, Duration::from_millis(1)));
        assert_eq!(o.cc.window(), 2, "halved");
    }

    /// A server that took some of our lines (its Welcome's next_msg_id is past them) gets
    /// the others numbered from its next_msg_id, and new lines after those, so no number
    /// is used twice (PROTOCOL.md "Several servers").
    #[test]
    fn lines_the_server_did_not_take_are_numbered_after_those_it_took() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b", "c"] {
            o.push(text, 16).unwrap();
        }
        sent(&mut o, at(0));
        // This server took 1 and expects 2: 2 and 3 are numbered from 2, "d" is 4.
        o.renumber(2);
        o.push("d", 16).unwrap();
        assert_eq!(sent(&mut o, at(1)).as_slice(), [1, 2, 3, 4]);
        // A server that took 1 and 2 and expects 9: they keep their numbers, the next
        // line is 9.
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        for text in ["a", "b"] {
            o.push(text, 16).unwrap();
        }
        sent(&mut o, at(0));
        o.renumber(9);
        o.push("c", 16).unwrap();
        assert_eq!(sent(&mut o, at(1)).as_slice(), [1, 2, 9]);
    }

    /// A server whose Welcome expects our first unanswered line took none of them: every
    /// one is numbered again from there, in order, however far apart an earlier server
    /// put their numbers (numbers compare as serial numbers, RFC 1982: the farthest
    /// comparable is half the number space).
    #[test]
    fn a_server_that_took_none_numbers_every_line_again() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        o.push("a", 16).unwrap();
        assert_eq!(sent(&mut o, at(0)).as_slice(), [1]);
        // A server that took 1 and expects the number half the space away.
        let far = 1 + i32::MAX as u32;
        o.renumber(far);
        o.push("b", 16).unwrap();
        o.push("c", 16).unwrap();
        assert_eq!(sent(&mut o, at(1)).as_slice(), [1, far, far + 1]);
        o.renumber(1);
        assert_eq!(sent(&mut o, at(2)).as_slice(), [1, 2, 3]);
        assert_eq!(o.push("d", 16), Ok(4));
        assert_eq!(sent(&mut o, at(3)).as_slice(), [4]);
    }

    /// Karn's rule (RFC 6298 §3) across a rejoin: a line sent before it goes again, so
    /// its answer gives no round-trip sample; a line first sent after it gives one.
    #[test]
    fn after_a_rejoin_only_lines_sent_once_give_a_round_trip_sample() {
        let mut o: Outbox<16, 8> = Outbox::new(TIMERS);
        o.push("a", 16).unwrap();
        assert_eq!(sent(&mut o, at(0)).as_slice(), [1]);
        o.push("b", 16).unwrap();
        o.renumber(1);
        assert_eq!(sent(&mut o, at(1000)).as_slice(), [1, 2]);
        assert_eq!(o.on_answer(at(1050), 1), Some(1));
        assert_eq!(o.rto(), TIMERS.initial_rto, "1 was sent twice: no sample");
        assert_eq!(o.on_answer(at(1050), 2), Some(2));
        assert_eq!(
            o.rto(),
            Duration::from_millis(200),
            "2 was sent once: a 50 ms sample"
        );
    }
}
