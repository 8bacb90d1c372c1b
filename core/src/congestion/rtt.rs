//! Round-trip time estimation and the retransmission timeout (RFC 6298; RFC 9002 §5).

use crate::time::Duration;

/// Smoothed round-trip time and its variation, from samples, in milliseconds, and the
/// retransmission timeout they give: `srtt + max(4 × rttvar, granularity)`, clamped to
/// `[min, max]`, doubled per consecutive timeout (RFC 6298 §2, §5.5).
///
/// Samples must come from messages sent once (Karn's algorithm, RFC 6298 §3): a
/// retransmitted message's acknowledgement cannot tell which copy it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    /// Smoothed RTT, ms; 0 before the first sample.
    srtt: u32,
    /// RTT variation, ms.
    rttvar: u32,
    /// Consecutive timeouts since the last acknowledgement.
    backoff: u8,
}

/// Timer granularity (RFC 9002 §6.1.2 kGranularity is 1 ms; the drivers' timers are
/// coarser, so a few ms).
const GRANULARITY_MS: u32 = 5;

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RttEstimator {
    /// No samples yet.
    pub const fn new() -> Self {
        Self {
            srtt: 0,
            rttvar: 0,
            backoff: 0,
        }
    }

    /// The smoothed RTT, if there was a sample.
    pub fn smoothed(&self) -> Option<Duration> {
        (self.srtt > 0).then(|| Duration::from_millis(u64::from(self.srtt)))
    }

    /// Takes one sample (RFC 6298 §2.2, §2.3: alpha 1/8, beta 1/4). A sample of 0 ms (a
    /// loopback answer within the same millisecond) counts as 1 ms.
    pub fn sample(&mut self, rtt: Duration) {
        let r = u32::try_from(rtt.millis()).unwrap_or(u32::MAX).max(1);
        if self.srtt == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
        } else {
            let delta = self.srtt.abs_diff(r);
            self.rttvar = (self.rttvar.saturating_mul(3).saturating_add(delta)) / 4;
            self.srtt = (self.srtt.saturating_mul(7).saturating_add(r)) / 8;
        }
    }

    /// Something new was acknowledged: the backoff ends (RFC 6298 §5.7 keeps it until a
    /// new sample; an acknowledgement of new data is as good a sign here).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// The retransmission timer fired: the next timeout is twice as long.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1).min(16);
    }

    /// Consecutive timeouts since the last acknowledgement.
    pub fn backoff(&self) -> u8 {
        self.backoff
    }

    /// The retransmission timeout: `initial` before any sample, else `srtt + max(4 ×
    /// rttvar, granularity)` but at least `min`; doubled per consecutive timeout; at most
    /// `max`.
    pub fn rto(&self, initial: Duration, min: Duration, max: Duration) -> Duration {
        let base = if self.srtt == 0 {
            initial
        } else {
            let spread = self.rttvar.saturating_mul(4).max(GRANULARITY_MS);
            Duration::from_millis(u64::from(self.srtt.saturating_add(spread))).max(min)
        };
        let mut rto = base;
        for _ in 0..self.backoff {
            rto = rto.doubled_up_to(max);
        }
        rto.min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: Duration = Duration::from_millis(300);
    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(4);

    #[test]
    fn first_sample_then_smoothing() {
        let mut rtt = RttEstimator::new();
        assert_eq!(rtt.smoothed(), None);
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), INITIAL);
        rtt.sample(Duration::from_millis(100));
        // srtt 100, rttvar 50: 100 + 200.
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), Duration::from_millis(300));
        rtt.sample(Duration::from_millis(100));
        // rttvar (3·50 + 0)/4 = 37; srtt 100: 100 + 148.
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), Duration::from_millis(248));
        assert_eq!(rtt.smoothed(), Some(Duration::from_millis(100)));
        rtt.sample(Duration::from_millis(900));
        // rttvar (3·37 + 800)/4 = 227; srtt (700 + 900)/8 = 200: 200 + 908.
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), Duration::from_millis(1108));
    }

    #[test]
    fn loopback_samples_stay_above_the_floor_and_backoff_doubles_to_the_cap() {
        let mut rtt = RttEstimator::new();
        rtt.sample(Duration::ZERO);
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), MIN);
        rtt.back_off();
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), Duration::from_millis(400));
        for _ in 0..20 {
            rtt.back_off();
        }
        assert_eq!(rtt.backoff(), 16);
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), MAX);
        rtt.reset_backoff();
        assert_eq!(rtt.rto(INITIAL, MIN, MAX), MIN);
    }
}
