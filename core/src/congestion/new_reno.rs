//! NewReno (RFC 9002 §7.3, appendix B; RFC 6582), counted in messages.

use super::Controller;

/// NewReno congestion control in messages: slow start (one more message per message
/// acknowledged) up to the slow-start threshold, then congestion avoidance (one more per
/// window acknowledged); halved on a congestion event, back to the minimum on a timeout.
/// Eight bytes of state, `Copy`, so it fits in every member slot of a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewReno {
    window: u16,
    ssthresh: u16,
    /// Messages acknowledged in congestion avoidance since the window last grew.
    avoided: u16,
    min: u8,
    /// Largest window, a hard cap (the receiver's window or the sequence span tracked).
    max: u16,
}

impl NewReno {
    /// A controller that starts at `initial` messages, never goes below `min` (at least
    /// 1) nor above `max`.
    pub fn new(initial: u16, min: u8, max: u16) -> Self {
        let min = min.max(1);
        let max = max.max(u16::from(min));
        Self {
            window: initial.clamp(u16::from(min), max),
            ssthresh: max,
            avoided: 0,
            min,
            max,
        }
    }

    /// The slow-start threshold: below it the window grows by one per acknowledged
    /// message.
    pub fn ssthresh(&self) -> u32 {
        u32::from(self.ssthresh)
    }

    /// Changes the cap (e.g. the peer granted a different window), keeping the window
    /// under it.
    pub fn set_max(&mut self, max: u16) {
        self.max = max.max(u16::from(self.min));
        self.window = self.window.min(self.max);
        self.ssthresh = self.ssthresh.min(self.max);
    }
}

impl Controller for NewReno {
    fn window(&self) -> u32 {
        u32::from(self.window)
    }

    fn on_ack(&mut self, acked: u32) {
        let acked = u16::try_from(acked).unwrap_or(u16::MAX);
        if self.window < self.ssthresh {
            // Slow start (RFC 9002 §7.3.1), not past the threshold in one step.
            self.window = self.window.saturating_add(acked).min(self.ssthresh);
            return;
        }
        // Congestion avoidance (§7.3.3): one more message per window acknowledged.
        self.avoided = self.avoided.saturating_add(acked);
        while self.avoided >= self.window && self.window > 0 {
            self.avoided -= self.window;
            self.window = self.window.saturating_add(1);
        }
        if self.window >= self.max {
            self.window = self.max;
            self.avoided = 0;
        }
    }

    fn on_congestion_event(&mut self) {
        // kLossReductionFactor = 0.5 (§7.3.2).
        self.window = (self.window / 2).max(u16::from(self.min));
        self.ssthresh = self.window;
        self.avoided = 0;
    }

    fn on_timeout(&mut self) {
        self.ssthresh = (self.window / 2).max(u16::from(self.min));
        self.window = u16::from(self.min);
        self.avoided = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance_then_halving() {
        let mut cc = NewReno::new(4, 2, 64);
        assert_eq!(cc.window(), 4);
        cc.on_ack(4);
        assert_eq!(cc.window(), 8, "slow start doubles per window");
        cc.on_congestion_event();
        assert_eq!((cc.window(), cc.ssthresh()), (4, 4));
        cc.on_ack(3);
        assert_eq!(cc.window(), 4, "avoidance: less than a window acknowledged");
        cc.on_ack(1);
        assert_eq!(cc.window(), 5, "one more per window");
        cc.on_ack(5);
        assert_eq!(cc.window(), 6);
        cc.on_timeout();
        assert_eq!((cc.window(), cc.ssthresh()), (2, 3));
        cc.on_ack(1);
        assert_eq!(cc.window(), 3, "slow start again, up to the threshold");
        cc.on_ack(10);
        assert_eq!(
            cc.window(),
            5,
            "then avoidance: 10 acked grow 3 to 4 (3 used), 4 to 5 (4 used)"
        );
    }

    #[test]
    fn bounds_hold() {
        let mut cc = NewReno::new(100, 0, 16);
        assert_eq!(cc.window(), 16, "initial clamped to the cap");
        for _ in 0..10 {
            cc.on_congestion_event();
        }
        assert_eq!(cc.window(), 1, "never below one message");
        cc.on_ack(u32::MAX);
        assert!(cc.window() <= 16);
        for _ in 0..1000 {
            cc.on_ack(16);
        }
        assert_eq!(cc.window(), 16, "never above the cap");
        cc.set_max(4);
        assert_eq!(cc.window(), 4);
    }
}
