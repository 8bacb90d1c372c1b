//! The server's note about clients that use another key: once a minute per address, in
//! a table of bounded size (anyone can send from many addresses).
//!
//! A server never answers a datagram it cannot verify (PROTOCOL.md), so a client with
//! the wrong key only hears silence; the operator at least reads in the log who is
//! trying. Only datagrams that look like Fernet tokens (`gAAAAA...`, the spec's version
//! byte and a timestamp's high bytes) count: random junk is only counted, never logged.

use chat_cli::count;
use chat_core::time::{Duration, Instant};
use std::collections::HashMap;
use std::net::SocketAddr;

/// How often an address is named in the log.
pub const EVERY: Duration = Duration::from_secs(60);
/// Addresses remembered at once (about 64 KiB).
pub const CAPACITY: usize = 1024;
/// How often a full table is swept of addresses not named for [`EVERY`].
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Whether `datagram` looks like a Fernet token: version byte `0x80` and the zero high
/// bytes of a timestamp before 2106, as base64url (`gAAAAA`), and at least the length of
/// the shortest token.
pub fn looks_like_token(datagram: &[u8]) -> bool {
    datagram.len() >= 100 && datagram.starts_with(b"gAAAAA")
}

/// Which addresses were named in the log, and when.
#[derive(Debug)]
pub struct WrongKeyLog {
    named: HashMap<SocketAddr, Instant>,
    capacity: usize,
    next_sweep: Instant,
    /// When the log last said that the table is full.
    full_told: Option<Instant>,
}

impl WrongKeyLog {
    /// An empty table of at most `capacity` addresses.
    pub fn new(capacity: usize) -> Self {
        Self {
            named: HashMap::with_capacity(capacity),
            capacity,
            next_sweep: Instant::from_millis(0),
            full_told: None,
        }
    }

    /// A token from `from` failed verification at `now`: the line to log, if this
    /// address was not named in the last minute.
    pub fn on_invalid(&mut self, now: Instant, from: SocketAddr) -> Option<String> {
        let due = |at: &Instant| now - *at >= EVERY;
        if let Some(at) = self.named.get_mut(&from) {
            if !due(at) {
                return None;
            }
            *at = now;
            return Some(line(from));
        }
        if self.named.len() >= self.capacity && self.next_sweep <= now {
            self.named.retain(|_, at| !due(at));
            self.next_sweep = now + SWEEP_EVERY;
        }
        if self.named.len() < self.capacity {
            self.named.insert(from, now);
            return Some(line(from));
        }
        if self.full_told.is_some_and(|at| !due(&at)) {
            return None;
        }
        self.full_told = Some(now);
        Some(format!(
            "more addresses send tokens this server cannot verify (wrong key?): {} were \
             named in the last minute, the most this log tracks; it stops naming new ones \
             until they age out (all are still counted as invalid_token)",
            count(self.named.len() as u64, "address")
        ))
    }
}

fn line(from: SocketAddr) -> String {
    format!(
        "a client at {from} sends tokens this server cannot verify: wrong key? (it needs this \
         server's key, from its key file or HOST_CHAT_KEY; such datagrams are never \
         answered; said once a minute per address)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn once_a_minute_per_address() {
        let mut log = WrongKeyLog::new(4);
        let t = Instant::from_millis;
        let first = log.on_invalid(t(1_000), addr(1)).unwrap();
        assert!(first.starts_with(
            "a client at 10.0.0.1:1 sends tokens this server cannot verify: wrong key?"
        ));
        assert_eq!(log.on_invalid(t(2_000), addr(1)), None);
        assert_eq!(log.on_invalid(t(60_999), addr(1)), None);
        assert!(log.on_invalid(t(2_000), addr(2)).is_some());
        assert!(log.on_invalid(t(61_000), addr(1)).is_some());
    }

    #[test]
    fn the_table_is_bounded_and_says_so() {
        let mut log = WrongKeyLog::new(3);
        let t = Instant::from_millis;
        for port in 1..=3 {
            assert!(log.on_invalid(t(0), addr(port)).is_some());
        }
        let full = log.on_invalid(t(10), addr(4)).unwrap();
        assert!(
            full.contains("3 addresses were named in the last minute"),
            "{full}"
        );
        assert!(full.contains("stops naming new ones"), "{full}");
        // Said once a minute, whatever the flood.
        for port in 5..1000 {
            assert_eq!(log.on_invalid(t(20), addr(port)), None);
        }
        assert_eq!(log.named.len(), 3);
        // Once the old entries age out, new addresses are named again.
        assert!(
            log.on_invalid(t(60_000), addr(7))
                .unwrap()
                .contains("10.0.0.1:7")
        );
        assert!(log.named.len() <= 3);
    }

    #[test]
    fn only_token_shaped_datagrams_count() {
        assert!(looks_like_token(
            &[b"gAAAAA".as_slice(), &[b'x'; 94]].concat()
        ));
        assert!(!looks_like_token(b"gAAAAA"));
        assert!(!looks_like_token(&[0u8; 200]));
    }
}
