//! The core's own time types. The core never reads a clock: drivers pass `now`.

use core::ops::{Add, Sub};

/// A point on the driver's monotonic clock, in milliseconds from any origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Instant {
    /// The instant `millis` milliseconds after the clock's origin.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the clock's origin.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Whole milliseconds.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Twice as long, at most `cap`: exponential backoff.
    pub fn doubled_up_to(self, cap: Duration) -> Self {
        Self(self.0.saturating_mul(2).min(cap.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

/// Maps the monotonic clock to Unix time, once something has told us the real time:
/// the host's clock, or (on a device without one) a verified server token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WallClock {
    anchor: Option<(Instant, u64)>,
}

impl WallClock {
    /// A clock that knows the time: at `now` it was `unix_millis`.
    pub const fn synced(now: Instant, unix_millis: u64) -> Self {
        Self {
            anchor: Some((now, unix_millis)),
        }
    }

    /// Records that at `now` it was `unix_millis`.
    pub fn sync(&mut self, now: Instant, unix_millis: u64) {
        self.anchor = Some((now, unix_millis));
    }

    /// Whether the real time is known.
    pub const fn is_synced(&self) -> bool {
        self.anchor.is_some()
    }

    /// Unix seconds at `now`, if known.
    pub fn unix_secs(&self, now: Instant) -> Option<u64> {
        let (at, unix_millis) = self.anchor?;
        let millis = if now >= at {
            unix_millis.saturating_add((now - at).millis())
        } else {
            unix_millis.saturating_sub((at - now).millis())
        };
        Some(millis / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_follows_the_monotonic_clock() {
        let clock = WallClock::synced(Instant::from_millis(5_000), 1_700_000_000_500);
        assert_eq!(
            clock.unix_secs(Instant::from_millis(5_000)),
            Some(1_700_000_000)
        );
        assert_eq!(
            clock.unix_secs(Instant::from_millis(7_600)),
            Some(1_700_000_003)
        );
        assert_eq!(
            clock.unix_secs(Instant::from_millis(0)),
            Some(1_699_999_995)
        );
        assert_eq!(
            WallClock::default().unix_secs(Instant::from_millis(1)),
            None
        );
        assert_eq!(
            Duration::from_millis(300).doubled_up_to(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn instants_and_durations_keep_their_milliseconds() {
        for ms in [0, 1, 999, 1_700_000_000_123, u64::MAX] {
            assert_eq!(Instant::from_millis(ms).millis(), ms);
            assert_eq!(Duration::from_millis(ms).millis(), ms);
        }
        assert_eq!(Duration::ZERO.millis(), 0);
        assert_eq!(Duration::from_secs(3).millis(), 3_000);
        assert_eq!(Duration::from_secs(u64::MAX).millis(), u64::MAX);
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let early = Instant::from_millis(1_000);
        let late = Instant::from_millis(1_250);
        assert_eq!(late - early, Duration::from_millis(250));
        assert_eq!(late.saturating_since(early), Duration::from_millis(250));
        assert_eq!(early - late, Duration::ZERO);
        assert_eq!(early + Duration::from_millis(250), late);
        assert_eq!(
            Instant::from_millis(u64::MAX - 1) + Duration::from_millis(5),
            Instant::from_millis(u64::MAX)
        );
    }

    #[test]
    fn backoff_doubles_until_the_cap() {
        let cap = Duration::from_secs(4);
        let steps: [u64; 6] = [500, 1_000, 2_000, 4_000, 4_000, 4_000];
        let mut rto = Duration::from_millis(250);
        for want in steps {
            rto = rto.doubled_up_to(cap);
            assert_eq!(rto.millis(), want);
        }
        assert_eq!(Duration::ZERO.doubled_up_to(cap), Duration::ZERO);
        assert_eq!(
            Duration::from_millis(u64::MAX).doubled_up_to(Duration::from_millis(u64::MAX)),
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn wall_clock_syncs_and_resyncs() {
        let mut clock = WallClock::default();
        assert!(!clock.is_synced());
        assert_eq!(clock.unix_secs(Instant::from_millis(0)), None);
        clock.sync(Instant::from_millis(10_000), 2_000_000);
        assert!(clock.is_synced());
        assert_eq!(
            clock,
            WallClock::synced(Instant::from_millis(10_000), 2_000_000)
        );
        assert_eq!(clock.unix_secs(Instant::from_millis(10_999)), Some(2_000));
        assert_eq!(clock.unix_secs(Instant::from_millis(11_000)), Some(2_001));
        // A later sync replaces the anchor (the clock was off by a minute).
        clock.sync(Instant::from_millis(11_000), 2_061_000);
        assert_eq!(clock.unix_secs(Instant::from_millis(11_000)), Some(2_061));
        // Before the Unix epoch or past u64: saturates instead of wrapping.
        let clock = WallClock::synced(Instant::from_millis(5_000), 1_000);
        assert_eq!(clock.unix_secs(Instant::from_millis(0)), Some(0));
        let clock = WallClock::synced(Instant::from_millis(0), 1_000);
        assert_eq!(
            clock.unix_secs(Instant::from_millis(u64::MAX)),
            Some(u64::MAX / 1000)
        );
    }
}
