//! What a spawned server says in its log: its counters (asked for with SIGUSR1) and the
//! first join it refused.

use crate::chat::child::ServerChild;
use std::process::Command;
use std::time::Duration;

/// [`server_stats`] of every spawned server, added up.
pub(super) fn servers_stats(servers: &[ServerChild]) -> Option<(u64, u64, u64)> {
    servers.iter().try_fold((0, 0, 0), |(a, b, c), server| {
        let (x, y, z) = server_stats(server)?;
        Some((a + x, b + y, c + z))
    })
}

/// Asks a spawned `host-chat server` for its counters (SIGUSR1) and reads them from its
/// log: lines relayed, deliveries sent, deliveries sent again.
fn server_stats(server: &ServerChild) -> Option<(u64, u64, u64)> {
    let log = server.log()?;
    while log.try_recv().is_ok() {}
    Command::new("kill")
        .args(["-USR1", &server.id().to_string()])
        .status()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let line = log.recv_timeout(left).ok()?;
        if let Some(stats) = line.split("stats: ").nth(1) {
            let number = |name: &str| -> Option<u64> {
                stats
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            return Some((
                number("relayed")?,
                number("delivered")?,
                number("retransmitted")?,
            ));
        }
    }
    None
}

/// The first refusal a spawned server logged ("refused a join from ...: REASON"), to say
/// why clients did not get in.
pub(super) fn server_refusal(server: &ServerChild) -> Option<String> {
    let log = server.log()?;
    log.try_iter().find_map(|line| {
        line.split_once("refused a join from ")
            .map(|(_, r)| r.to_owned())
    })
}
