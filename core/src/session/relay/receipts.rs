//! What became of a member's recent lines: the answer to each, kept so that a
//! retransmitted line gets the same answer again, and which answers are still to be sent.

use crate::wire::RefuseReason;

/// Answers remembered per member. A client is granted at most this many lines in flight
/// (its Welcome's `window`), so the answer to any line it may still be waiting for is
/// always here (PROTOCOL.md "Sending a line").
pub const RECEIPTS: usize = 16;

/// What became of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It became room message `seq`, for `recipients` members.
    Accepted { seq: u64, recipients: u32 },
    /// It was refused; its number is used up.
    Refused(RefuseReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Receipt {
    pub msg_id: u32,
    pub outcome: Outcome,
}

/// The last [`RECEIPTS`] answers, by `msg_id % RECEIPTS`, and which are due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Receipts {
    slots: [Option<Receipt>; RECEIPTS],
    due: u16,
}

fn slot(msg_id: u32) -> usize {
    msg_id as usize % RECEIPTS
}

impl Receipts {
    /// Records the answer to `msg_id` and makes it due.
    pub fn record(&mut self, msg_id: u32, outcome: Outcome) {
        let i = slot(msg_id);
        if let Some(s) = self.slots.get_mut(i) {
            *s = Some(Receipt { msg_id, outcome });
            self.due |= 1 << i;
        }
    }

    /// Makes the answer to `msg_id` due again, if it is remembered; whether it was.
    pub fn resend(&mut self, msg_id: u32) -> bool {
        let i = slot(msg_id);
        let known = self
            .slots
            .get(i)
            .is_some_and(|s| s.is_some_and(|r| r.msg_id == msg_id));
        if known {
            self.due |= 1 << i;
        }
        known
    }

    /// Whether the answer to `msg_id` is remembered.
    pub fn knows(&self, msg_id: u32) -> bool {
        self.slots
            .get(slot(msg_id))
            .is_some_and(|s| s.is_some_and(|r| r.msg_id == msg_id))
    }

    /// Whether some answer is due.
    pub fn any_due(&self) -> bool {
        self.due != 0
    }

    /// Takes the oldest due answer: the lowest `msg_id` counting back from `next_msg_id`.
    pub fn take_due(&mut self, next_msg_id: u32) -> Option<Receipt> {
        let mut best: Option<(u32, usize, Receipt)> = None;
        for (i, r) in self.slots.iter().enumerate() {
            if self.due & (1 << i) == 0 {
                continue;
            }
            if let Some(r) = r {
                let age = next_msg_id.wrapping_sub(r.msg_id);
                if best.is_none_or(|(a, _, _)| age > a) {
                    best = Some((age, i, *r));
                }
            }
        }
        let (_, i, receipt) = best?;
        self.due &= !(1 << i);
        Some(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_due_first_and_resend_only_what_is_remembered() {
        let mut r = Receipts::default();
        let accepted = |seq| Outcome::Accepted { seq, recipients: 2 };
        r.record(u32::MAX, accepted(1));
        r.record(0, accepted(2));
        r.record(1, Outcome::Refused(RefuseReason::TOO_LONG));
        assert_eq!(r.take_due(2).map(|r| r.msg_id), Some(u32::MAX), "wraps");
        assert_eq!(r.take_due(2).map(|r| r.msg_id), Some(0));
        assert_eq!(r.take_due(2).map(|r| r.msg_id), Some(1));
        assert_eq!(r.take_due(2), None);
        assert!(r.resend(0));
        assert!(!r.resend(16), "slot 0 holds msg_id 0, not 16");
        assert!(r.any_due());
        assert_eq!(r.take_due(2).map(|r| r.outcome), Some(accepted(2)));
        assert!(!r.any_due());
    }

    /// An answer is remembered under its own `msg_id` only, in its own slot: another
    /// `msg_id` of the same slot is not known until it is recorded, and then replaces it.
    #[test]
    fn knows_and_resends_by_msg_id() {
        let mut r = Receipts::default();
        let refused = Outcome::Refused(RefuseReason::TOO_LONG);
        assert!(!r.knows(5));
        assert!(!r.resend(5), "nothing recorded yet");
        assert!(!r.any_due());
        r.record(5, refused);
        assert!(r.knows(5));
        assert!(!r.knows(21), "slot 5 holds 5, not 21");
        assert!(!r.knows(4) && !r.knows(6));
        assert_eq!(r.take_due(6).map(|r| r.msg_id), Some(5));
        assert!(!r.any_due());
        assert!(r.resend(5), "slot 5 is made due again");
        assert!(r.any_due());
        assert_eq!(
            r.take_due(6),
            Some(Receipt {
                msg_id: 5,
                outcome: refused
            })
        );
        assert_eq!(r.take_due(6), None);
        r.record(21, refused);
        assert!(r.knows(21) && !r.knows(5), "21 took 5's place");
    }
}
