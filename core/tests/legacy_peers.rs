//! Legacy peers (PROTOCOL.md "Legacy senders"): the original Python chat puts bare text
//! in its tokens. The relay answers it in bare text, sends it the room's lines, presence
//! and gaps as text, never lets it hold the room back, and refuses replays of its tokens
//! by remembering them while they are inside the TTL. Held in the simulator
//! (`sim/mod.rs`); the legacy peers are raw tokens from addresses the simulation does not
//! run, and what the relay sends them is read from `Sim::outside`.

mod sim;

use chat_core::session::{Dropped, RelayConfig, RelayLimits};
use chat_core::time::Duration;
use sim::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A token of bare `text`, as `Fernet(key).encrypt(text)` makes it, stamped now; `n`
/// makes its IV (and so the token) unique.
fn legacy_token(sim: &Sim, text: &[u8], n: u32) -> Vec<u8> {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&n.to_be_bytes());
    iv[15] = 0x5A;
    let unix = (UNIX_START_MS + sim.now.millis()) / 1000;
    let mut out = vec![0u8; 2048];
    let len = sim
        .key
        .encrypt_with_iv(text, unix, iv, &mut out)
        .unwrap()
        .len();
    out.truncate(len);
    out
}

/// Hands a legacy peer's line to the relay now.
fn say_legacy(sim: &mut Sim, from: Addr, text: &str, n: u32) -> Result<(), Dropped> {
    let mut token = legacy_token(sim, text.as_bytes(), n);
    let now = sim.now;
    sim.relay.handle_datagram(now, from, &mut token)
}

/// The bare texts the relay sent to `addr`, in order.
fn heard(sim: &Sim, addr: Addr) -> Vec<String> {
    sim.outside
        .iter()
        .filter(|(to, _)| *to == addr)
        .map(|(_, token)| {
            let mut plain = vec![0u8; token.len()];
            let opened = sim.key.decrypt(token, None, &mut plain).expect("our key");
            String::from_utf8(opened.plaintext.to_vec()).expect("bare text")
        })
        .collect()
}

const OLD: Addr = 700;
const OTHER: Addr = 701;

#[test]
fn a_legacy_peer_is_answered_and_told_the_room_in_plain_text() {
    let mut sim = Sim::new(30, Faults::default());
    // Alone in the lobby at first: "1 member".
    assert_eq!(say_legacy(&mut sim, OLD, "anyone?", 1), Ok(()));
    sim.run_for(ms(100));
    assert_eq!(heard(&sim, OLD), ["server: received as #0 for 1 member"]);
    assert_eq!(
        sim.relay.stats().delivered,
        0,
        "its own line is no delivery to it"
    );
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    assert_eq!(
        heard(&sim, OLD)[1..],
        ["* ann joined, bob joined (3 members)"],
        "joins close together, one line"
    );
    assert_eq!(sim.lines(ann), [] as [&str; 0], "joined after #0");
    assert_eq!(say_legacy(&mut sim, OLD, "hi there", 2), Ok(()));
    sim.say(ann, "hello legacy");
    sim.run_for(secs(1));
    let now = sim.now;
    sim.client(bob).leave(now);
    sim.run_for(secs(2));
    // Too long for the room's datagram: refused, with the limit.
    let limit = chat_core::session::max_text_len(RelayConfig::default().max_datagram);
    assert_eq!(say_legacy(&mut sim, OLD, &"x".repeat(limit + 1), 3), Ok(()));
    sim.run_for(ms(100));
    assert_eq!(
        heard(&sim, OLD)[2..],
        [
            "server: received as #1 for 3 members",
            "ann: hello legacy",
            "* bob left (2 members)",
            &format!("server: message refused (too long: at most {limit} bytes)"),
        ],
        "its own line is not sent back to it"
    );
    assert_eq!(sim.lines(ann), ["legacy-1: hi there", "ann: hello legacy"]);
    assert_eq!(sim.relay.stats().refused, 1);
}

#[test]
fn a_legacy_peer_that_fell_behind_the_history_is_told_what_it_missed() {
    let limits = RelayLimits {
        history: 4,
        history_bytes: RelayLimits::history_bytes_for(4).max(1232),
        ..SMALL
    };
    let mut sim = Sim::with(31, Faults::default(), RelayConfig::default(), limits);
    assert_eq!(say_legacy(&mut sim, OTHER, "first", 1), Ok(()));
    sim.run_for(ms(100));
    // Ten lines before the relay sends anything: legacy peers never hold the room back,
    // so the history (4 messages) keeps only the last four.
    for k in 0..10 {
        assert_eq!(
            say_legacy(&mut sim, OLD, &format!("line {k}"), 10 + k),
            Ok(())
        );
    }
    sim.run_for(ms(100));
    let other = heard(&sim, OTHER);
    assert_eq!(other[0], "server: received as #0 for 1 member");
    assert_eq!(
        other[1..],
        [
            "server: you missed messages #1 to #6",
            "legacy-2: line 6",
            "legacy-2: line 7",
            "legacy-2: line 8",
            "legacy-2: line 9",
            "* legacy-2 joined (2 members)",
        ]
    );
}

#[test]
fn a_legacy_line_the_busy_room_cannot_take_is_answered_once_and_holds_nothing() {
    let limits = RelayLimits {
        history: 4,
        history_bytes: RelayLimits::history_bytes_for(4).max(1232),
        ..SMALL
    };
    let mut sim = Sim::with(32, Faults::default(), RelayConfig::default(), limits);
    let ann = sim.add_client("ann", "lobby");
    let slow = sim.add_client("slow", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    // slow stops acknowledging: the history fills with lines it has not acknowledged.
    sim.pause(slow);
    for k in 0..4 {
        sim.say(ann, format!("line {k}"));
    }
    assert!(sim.run_until(secs(2), Sim::all_answered));
    assert_eq!(say_legacy(&mut sim, OLD, "can I?", 1), Ok(()));
    sim.run_for(secs(2));
    let busy = "server: the room is busy and did not take your line: send it again in a moment";
    assert_eq!(
        heard(&sim, OLD)
            .iter()
            .filter(|text| text.as_str() == busy)
            .count(),
        1,
        "{:#?}",
        heard(&sim, OLD)
    );
    // slow catches up: the room has room, and ann's next line goes straight in (no
    // sender is left waiting for a turn: the legacy peer does not send its line again).
    sim.resume(slow);
    assert!(sim.run_until(secs(5), |sim| sim.lines(slow).len() == 4));
    sim.run_for(secs(1));
    let busy_before = sim.relay.stats().busy;
    sim.say(ann, "after");
    assert!(sim.run_until(secs(2), Sim::all_answered));
    assert_eq!(sim.relay.stats().busy, busy_before, "no Busy for ann");
    assert_eq!(
        heard(&sim, OLD)
            .iter()
            .filter(|text| text.as_str() == busy)
            .count(),
        1,
        "{:#?}",
        heard(&sim, OLD)
    );
}

#[test]
fn replayed_legacy_tokens_are_refused_while_they_are_inside_the_ttl() {
    let limits = RelayLimits {
        history: 16,
        history_bytes: RelayLimits::history_bytes_for(16),
        ..SMALL
    };
    let mut sim = Sim::with(33, Faults::default(), RelayConfig::default(), limits);
    let first = legacy_token(&sim, b"line 0", 0);
    assert_eq!(
        sim.relay.handle_datagram(sim.now, OLD, &mut first.clone()),
        Ok(())
    );
    assert_eq!(
        sim.relay
            .handle_datagram(sim.now, OTHER, &mut first.clone()),
        Err(Dropped::Duplicate),
        "from any address"
    );
    // The relay remembers 256 tokens; the 257th finds the memory full of tokens that
    // could still be replayed (inside the TTL and the clock skew): refused unanswered.
    for n in 1..256 {
        assert_eq!(say_legacy(&mut sim, OLD, &format!("line {n}"), n), Ok(()));
    }
    sim.run_for(ms(100));
    let answers = heard(&sim, OLD).len();
    assert_eq!(
        say_legacy(&mut sim, OLD, "one more", 256),
        Err(Dropped::Overloaded)
    );
    // The oldest token (made at second 0) can be replayed while the relay accepts its
    // stamp: up to the TTL (60 s) after it, and the clock skew (60 s) on top.
    sim.run_for(secs(120));
    assert_eq!(
        say_legacy(&mut sim, OLD, "one more", 257),
        Err(Dropped::Overloaded),
        "120 s after the first token"
    );
    sim.run_for(secs(1));
    assert_eq!(say_legacy(&mut sim, OLD, "one more", 258), Ok(()));
    assert_eq!(
        sim.relay.handle_datagram(sim.now, OLD, &mut first.clone()),
        Err(Dropped::Expired),
        "the forgotten token is expired anyway"
    );
    sim.run_for(ms(100));
    // (The lobby was freed when its only member timed out: a new room, numbered from 0.)
    let late: Vec<String> = heard(&sim, OLD)[answers..].to_vec();
    assert_eq!(late, ["server: received as #0 for 1 member"]);
}

#[test]
fn presence_a_legacy_peer_cannot_be_sent_whole_is_cut_and_counted() {
    // 300-byte datagrams: a bare-text line of at most 159 bytes, of which the changes
    // may take all but 24 (kept for the counts). The room keeps its last 4 changes.
    let config = RelayConfig {
        max_datagram: 300,
        ..RelayConfig::default()
    };
    let limits = RelayLimits {
        presence: 4,
        ..SMALL
    };
    let mut sim = Sim::with(34, Faults::default(), config, limits);
    assert_eq!(say_legacy(&mut sim, OLD, "hello", 1), Ok(()));
    sim.run_for(ms(100));
    // Ten joins with 31-byte nicknames (40 bytes a change): the first six left the
    // room's presence before they were sent, and of the last four three fit.
    for k in 0..10 {
        sim.add_client(&format!("a-rather-long-nickname-number-{k}"), "lobby");
    }
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    let first = "* a-rather-long-nickname-number-6 joined, a-rather-long-nickname-number-7 \
                 joined, a-rather-long-nickname-number-8 joined (7 more changes) (11 members)";
    assert_eq!(heard(&sim, OLD)[1..], [first]);
    // Four more, the last of which ends the changes exactly at 159 - 24 = 135 bytes:
    // all fit, and nothing is left to count.
    for k in 0..3 {
        sim.add_client(&format!("b-rather-long-nickname-number-{k}"), "lobby");
    }
    sim.add_client("last-1", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    let second = "* b-rather-long-nickname-number-0 joined, b-rather-long-nickname-number-1 \
                  joined, b-rather-long-nickname-number-2 joined, last-1 joined (15 members)";
    assert_eq!(second.find(" (15"), Some(135));
    assert_eq!(heard(&sim, OLD)[1..], [first, second]);
}

#[test]
fn a_legacy_peer_in_a_cluster_is_announced_to_the_other_servers() {
    use chat_core::fernet::KeyRing;
    use chat_core::session::{
        ClusterRequest, ClusterStorage, GoneSlot, HistoryEntry, MemberSlot, PresenceEntry,
        ProposalSlot, Relay, RemoteRoom, RemoteSlot, RoomSlot,
    };
    use chat_core::time::{Instant, WallClock};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn leak<T: Clone>(value: T, n: usize) -> &'static mut [T] {
        Box::leak(vec![value; n].into_boxed_slice())
    }
    let datagram = RelayConfig::default().max_datagram;
    let storage = chat_core::session::RelayStorage {
        members: leak(MemberSlot::default(), 4),
        gone: leak(GoneSlot::default(), 4),
        rooms: leak(RoomSlot::default(), 2),
        history: leak(HistoryEntry::default(), 2 * 8),
        history_bytes: leak(0u8, 2 * 4096),
        presence: leak(PresenceEntry::default(), 2 * 8),
    };
    let now = Instant::from_millis(0);
    let mut relay: Relay<'static, Addr, StdRng, 1> = Relay::new(
        RelayConfig::default(),
        KeyRing::new(key()),
        StdRng::seed_from_u64(1),
        WallClock::synced(now, UNIX_START_MS),
        storage,
    )
    .expect("storage")
    .with_external_ordering(ClusterStorage {
        proposals: leak(ProposalSlot::default(), 4),
        proposal_bytes: leak(0u8, 4 * datagram),
        remotes: leak(RemoteSlot::default(), 8),
        remote_rooms: leak(RemoteRoom::default(), 2),
    })
    .expect("cluster storage");
    let token = |text: &str, n: u8| {
        let mut out = vec![0u8; 512];
        let len = key()
            .encrypt_with_iv(text.as_bytes(), UNIX_START_MS / 1000, [n; 16], &mut out)
            .expect("room")
            .len();
        out.truncate(len);
        out
    };
    // The first line opens the lobby here; the second makes the peer a member, which
    // the other servers are told (PROTOCOL.md "Legacy senders": legacy-N of the lobby).
    let _ = relay.handle_datagram(now, OLD, &mut token("opens the lobby", 1));
    let _: Vec<_> = std::iter::from_fn(|| relay.poll_request()).collect();
    assert!(relay.open_room(now, "lobby", 5, 0, []));
    assert_eq!(
        relay.handle_datagram(now, OLD, &mut token("hello", 2)),
        Ok(())
    );
    let asked: Vec<_> = std::iter::from_fn(|| relay.poll_request()).collect();
    assert!(
        asked.iter().any(|r| matches!(r,
            ClusterRequest::Joined { room, nick, .. }
                if room.as_str() == "lobby" && nick.as_str() == "legacy-1")),
        "{asked:?}"
    );
}
