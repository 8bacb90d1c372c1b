//! The session API's smaller promises: the drop reasons and their counters (the words
//! `host-chat server --stats` prints for scripts), and tokens from a clock too far ahead
//! on either side (PROTOCOL.md "Datagrams": at most 60 s in the future, whatever the
//! TTL), the leave reasons' words, what a relay's storage costs, the relay's log events
//! and its clock as a driver corrects it.

mod sim;

use chat_core::fernet;
use chat_core::fernet::KeyRing;
use chat_core::session::{ClientConfig, ClientEvent, ClientState, Dropped, RelayConfig};
use chat_core::time::{Duration, Instant, WallClock};
use sim::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn drop_reasons_have_stable_names_and_counter_slots() {
    let names = [
        "invalid_token",
        "expired",
        "from_the_future",
        "malformed",
        "unexpected",
        "duplicate",
        "overloaded",
        "too_long",
    ];
    for (i, (reason, name)) in Dropped::ALL.iter().zip(names).enumerate() {
        assert_eq!(reason.index(), i, "{reason:?}");
        assert_eq!(reason.as_str(), name);
        assert_eq!(reason.to_string(), name, "Display is the name");
    }
    assert_eq!(Dropped::from(fernet::Error::Expired), Dropped::Expired);
    assert_eq!(
        Dropped::from(fernet::Error::FromTheFuture),
        Dropped::FromTheFuture
    );
    for error in [fernet::Error::InvalidToken, fernet::Error::BufferTooSmall] {
        assert_eq!(Dropped::from(error), Dropped::InvalidToken);
    }
}

#[test]
fn the_relay_counts_each_drop_under_its_own_reason() {
    let mut sim = Sim::new(40, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    sim.say(ann, "hello");
    sim.run_for(secs(1));
    let before = sim.relay.stats();
    let now = sim.now;
    // Two datagrams that are no token, one replay, one too long.
    for junk in [&b"junk"[..], &b"more junk"[..]] {
        let _ = sim.relay.handle_datagram(now, 90, &mut junk.to_vec());
    }
    let chat = sim.peers[ann].captured[1].clone();
    assert_eq!(
        sim.relay.handle_datagram(now, 90, &mut chat.clone()),
        Err(Dropped::Duplicate)
    );
    assert_eq!(
        sim.relay.handle_datagram(now, 90, &mut vec![b'A'; 1233]),
        Err(Dropped::TooLong)
    );
    let after = sim.relay.stats();
    for reason in Dropped::ALL {
        let expected = match reason {
            Dropped::InvalidToken => 2,
            Dropped::Duplicate | Dropped::TooLong => 1,
            _ => 0,
        };
        assert_eq!(
            after.dropped(reason) - before.dropped(reason),
            expected,
            "{reason}"
        );
    }
    assert_eq!(after.datagrams - before.datagrams, 4);
}

#[test]
fn a_client_whose_clock_is_ahead_beyond_the_skew_is_not_believed() {
    let mut sim = Sim::new(41, Faults::default());
    // Two minutes ahead: past the 60 s the relay allows for clock skew, though within
    // the TTL's reach it would be if the TTL alone were judged.
    let ahead = WallClock::synced(sim.now, UNIX_START_MS + 120_000);
    let ann = sim.add_client_with(
        ClientConfig::new("ann", "lobby"),
        KeyRing::new(key()),
        ahead,
    );
    sim.run_for(secs(5));
    assert_eq!(sim.state(ann), ClientState::Joining);
    assert!(sim.relay.stats().dropped(Dropped::FromTheFuture) > 0);
    assert_eq!(sim.relay.stats().dropped(Dropped::Expired), 0);
}

#[test]
fn a_server_whose_clock_is_ahead_beyond_the_skew_is_not_believed() {
    // The relay's clock is two minutes ahead of the client's; its long TTL takes the
    // client's (to it, old) tokens. The client takes none of the relay's.
    let config = RelayConfig {
        ttl: secs(600),
        ..RelayConfig::default()
    };
    let mut sim = Sim::with(42, Faults::default(), config, SMALL);
    let behind = WallClock::synced(sim.now, UNIX_START_MS - 120_000);
    let ann = sim.add_client_with(
        ClientConfig::new("ann", "lobby"),
        KeyRing::new(key()),
        behind,
    );
    sim.run_for(secs(5));
    assert!(sim.relay.member_count() == 1, "the relay took the join");
    assert_eq!(sim.state(ann), ClientState::Joining, "the client did not");
    assert_eq!(
        sim.count_events(ann, |e| matches!(e, ClientEvent::NoAnswer { .. })),
        1
    );
    // A client that allows for the skew takes them.
    let lenient = sim.add_client_with(
        ClientConfig {
            clock_skew: secs(180),
            ..ClientConfig::new("bob", "lobby")
        },
        KeyRing::new(key()),
        behind,
    );
    sim.run_for(secs(5));
    assert_eq!(sim.state(lenient), ClientState::Joined);
}

#[test]
fn leave_reasons_are_told_in_the_rooms_words() {
    use chat_core::session::LeaveReason;
    assert_eq!(LeaveReason::Left.as_str(), "left");
    assert_eq!(LeaveReason::TimedOut.as_str(), "timed out");
    assert_eq!(LeaveReason::Replaced.as_str(), "reconnected");
}

#[test]
fn the_storage_a_relay_needs_is_the_sum_of_its_slots() {
    use chat_core::session::{
        GoneSlot, HistoryEntry, MemberSlot, PresenceEntry, RelayLimits, RoomSlot,
    };
    use core::mem::size_of;
    let limits = RelayLimits {
        members: 10,
        rooms: 3,
        history: 4,
        history_bytes: 1_000,
        presence: 5,
        gone: 7,
    };
    let per_room = size_of::<RoomSlot>()
        + 4 * size_of::<HistoryEntry>()
        + 1_000
        + 5 * size_of::<PresenceEntry>();
    assert_eq!(
        limits.bytes::<u32>(),
        10 * size_of::<MemberSlot<u32>>() + 7 * size_of::<GoneSlot>() + 3 * per_room
    );
    // Beyond what a usize holds: the most, not a wrapped small number.
    let huge = RelayLimits {
        members: usize::MAX / 2,
        ..limits
    };
    assert_eq!(huge.bytes::<u32>(), usize::MAX);
    assert_eq!(RelayLimits::history_bytes_for(512), 512 * 256);
}

#[test]
fn the_relay_reports_joins_leaves_and_refusals_for_its_log() {
    use chat_core::session::{LeaveReason, RelayEvent};
    let mut sim = Sim::with(
        43,
        Faults::default(),
        RelayConfig::default(),
        limits(2, 8, 64),
    );
    assert_eq!(sim.relay.capacity(), (2, 8));
    let ann = sim.add_client("ann", "lobby");
    sim.run_for(secs(1));
    let bob = sim.add_client("bob", "lobby");
    sim.run_for(secs(1));
    let carl = sim.add_client("carl", "lobby");
    sim.run_for(secs(1));
    let now = sim.now;
    sim.client(bob).leave(now);
    sim.run_for(secs(2));
    let log: Vec<String> = sim
        .relay_events
        .iter()
        .map(|e| match e {
            RelayEvent::Joined {
                addr,
                nick,
                room,
                members,
                resumed,
            } => format!("{addr} joined {room} as {nick}, {members} members, resumed {resumed}"),
            RelayEvent::Left {
                addr,
                nick,
                room,
                reason,
            } => format!("{addr} {nick} left {room}: {}", reason.as_str()),
            RelayEvent::Refused { addr, reason } => format!("{addr} refused: {reason}"),
            RelayEvent::Stalled { addr, .. } => format!("{addr} stalled"),
        })
        .collect();
    let (a, b, c) = (Sim::addr(ann), Sim::addr(bob), Sim::addr(carl));
    assert_eq!(
        log,
        [
            format!("{a} joined lobby as ann, 1 members, resumed false"),
            format!("{b} joined lobby as bob, 2 members, resumed false"),
            format!("{c} refused: server full"),
            format!("{b} bob left lobby: {}", LeaveReason::Left.as_str()),
        ]
    );
    assert_eq!(sim.relay.stats().events_lost, 0);
}

#[test]
fn a_relay_whose_clock_a_driver_moves_ahead_takes_its_clients_tokens_as_old() {
    let mut sim = Sim::new(44, Faults::default());
    // The driver corrects the relay's clock two minutes ahead (beyond the 60 s skew).
    let now = sim.now;
    sim.relay
        .sync_clock(now, UNIX_START_MS + now.millis() + 120_000);
    let ann = sim.add_client("ann", "lobby");
    sim.run_for(secs(5));
    // To the relay the client's tokens are two minutes old: beyond its 60 s TTL.
    assert_eq!(sim.relay.member_count(), 0);
    assert!(sim.relay.stats().dropped(Dropped::Expired) > 0);
    assert_eq!(sim.state(ann), ClientState::Joining);
}

#[test]
fn a_datagram_longer_than_the_largest_is_not_opened_by_the_relay() {
    let mut sim = Sim::new(45, Faults::default());
    let max = RelayConfig::default().max_datagram;
    let now = sim.now;
    assert_eq!(
        sim.relay.handle_datagram(now, 9, &mut vec![b'A'; max]),
        Err(Dropped::InvalidToken)
    );
    assert_eq!(
        sim.relay.handle_datagram(now, 9, &mut vec![b'A'; max + 1]),
        Err(Dropped::TooLong)
    );
}

#[test]
fn an_old_ping_gets_the_time_only_from_a_stranger() {
    use chat_core::wire::Body;
    let mut sim = Sim::new(46, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    sim.record_relay = true;
    let session = sim.client(ann).session();
    let now = sim.now;
    let old = (UNIX_START_MS + now.millis()) / 1000 - 3_600;
    // A member's ping from an hour ago: a replay, not a device asking for the time.
    let mut ping = sealed(session, Body::Ping { counter: 99 }, old);
    assert_eq!(
        sim.relay.handle_datagram(now, Sim::addr(ann), &mut ping),
        Err(Dropped::Expired)
    );
    // The same from a session nobody knows: one Pong with the time.
    let mut asking = sealed(4_242, Body::Ping { counter: 1 }, old);
    assert_eq!(sim.relay.handle_datagram(now, 777, &mut asking), Ok(()));
    sim.flush_relay();
    let answered: Vec<Addr> = sim.relay_out.iter().map(|&(to, _)| to).collect();
    assert_eq!(answered, [777]);
}

#[test]
fn a_session_that_said_goodbye_gets_no_answer_to_anything_after() {
    use chat_core::wire::Body;
    let mut sim = Sim::new(47, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    let session = sim.client(ann).session();
    let now = sim.now;
    sim.client(ann).leave(now);
    sim.run_for(secs(2));
    assert_eq!(sim.state(ann), ClientState::Closed);
    sim.record_relay = true;
    let now = sim.now;
    let later = (UNIX_START_MS + now.millis()) / 1000 + 1;
    let mut ping = sealed(session, Body::Ping { counter: 50 }, later);
    assert_eq!(
        sim.relay.handle_datagram(now, 777, &mut ping),
        Err(Dropped::Duplicate)
    );
    sim.flush_relay();
    assert!(sim.relay_out.is_empty(), "{:?}", sim.relay_out);
}

/// How long after running the timers `late_by` after they were due the relay asks to
/// run them again, when bob's join has just made a presence change due in the room.
fn next_timer_after(late_by: Duration) -> Duration {
    let mut sim = Sim::new(48, Faults::default());
    sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    sim.add_client("bob", "lobby");
    sim.run_for(Duration::from_millis(6));
    let due = sim.relay.poll_timeout().expect("a timer");
    let at = due + late_by;
    sim.relay.handle_timeout(at);
    sim.flush_relay();
    sim.relay.poll_timeout().expect("a timer") - at
}

#[test]
fn a_room_timer_once_run_is_not_asked_for_again_at_once() {
    // What is left is the answers' retransmission timers (200 ms at least), not another
    // pass over the rooms, whether the driver ran the timers on time or a second late
    // (a busy machine).
    for late_by in [Duration::from_millis(0), secs(1)] {
        let next = next_timer_after(late_by);
        assert!(
            next >= Duration::from_millis(200),
            "{} ms late: next timer {} ms after",
            late_by.millis(),
            next.millis()
        );
    }
}

/// Every token the relay sends to `to` at `at`, as sent (what `flush_relay` sends, kept).
fn relay_tokens_to(sim: &mut Sim, at: Instant, to: Addr) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 1232];
    let mut tokens = Vec::new();
    while let Some((addr, len)) = sim.relay.poll_transmit(at, &mut buf) {
        if addr == to {
            tokens.push(buf[..len].to_vec());
        }
    }
    tokens
}

/// A token the relay sent, opened: its timestamp and plaintext.
fn opened(token: &[u8]) -> (u64, Vec<u8>) {
    let mut plain = vec![0u8; token.len()];
    let opened = key().decrypt(token, None, &mut plain).expect("ours");
    (opened.timestamp, opened.plaintext.to_vec())
}

/// Every frame the relay sends to `to` now, opened.
fn relay_frames_to(sim: &mut Sim, to: Addr) -> Vec<Vec<u8>> {
    let now = sim.now;
    let tokens = relay_tokens_to(sim, now, to);
    tokens.iter().map(|token| opened(token).1).collect()
}

#[test]
fn a_members_answers_go_out_back_to_back() {
    // Two lines too long for the room arrive together: both refusals go out at once, one
    // after the other, with no other datagram or timer between (the relay comes back to a
    // member while it still owes it anything).
    use chat_core::session::max_text_len;
    use chat_core::wire::{Body, RefuseReason, Repr};
    let mut sim = Sim::new(49, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    let session = sim.client(ann).session();
    let long = "x".repeat(max_text_len(RelayConfig::default().max_datagram) + 1);
    let now = sim.now;
    let unix = (UNIX_START_MS + now.millis()) / 1000;
    for msg_id in [1, 2] {
        let mut line = sealed(
            session,
            Body::Chat {
                msg_id,
                text: &long,
            },
            unix,
        );
        assert_eq!(
            sim.relay.handle_datagram(now, Sim::addr(ann), &mut line),
            Ok(())
        );
    }
    let frames = relay_frames_to(&mut sim, Sim::addr(ann));
    let bodies: Vec<_> = frames
        .iter()
        .map(|f| Repr::parse(f).expect("a frame").body)
        .collect();
    let refused = |msg_id| Body::Refused {
        msg_id,
        reason: RefuseReason::TOO_LONG,
    };
    assert_eq!(bodies, [refused(1), refused(2)]);
}

#[test]
fn a_members_page_is_as_full_as_the_datagram_allows() {
    // 60 members with the longest nicknames: the first page of Who's answer carries as
    // many names as fit in one largest datagram, and not one more.
    use chat_core::wire::{Body, HEADER_LEN, NAME_MAX, Repr};
    let mut sim = Sim::new(50, Faults::default());
    let members: Vec<usize> = (0..60)
        .map(|i| sim.add_client(&format!("{i:0>width$}", width = NAME_MAX), "lobby"))
        .collect();
    sim.join_all(secs(10));
    sim.run_for(secs(2));
    let ann = members[0];
    let session = sim.client(ann).session();
    let now = sim.now;
    let unix = (UNIX_START_MS + now.millis()) / 1000;
    let mut who = sealed(
        session,
        Body::Who {
            counter: 1,
            start: 0,
        },
        unix,
    );
    assert_eq!(
        sim.relay.handle_datagram(now, Sim::addr(ann), &mut who),
        Ok(())
    );
    let frames = relay_frames_to(&mut sim, Sim::addr(ann));
    let pages: Vec<_> = frames
        .iter()
        .filter_map(|f| match Repr::parse(f).expect("a frame").body {
            Body::Members {
                total,
                start,
                nicks,
            } => Some((total, start, nicks.len(), f.len())),
            _ => None,
        })
        .collect();
    let max = RelayConfig::default().max_datagram;
    // The frame: header, total (u32), start (u32), count (u8), then each name behind
    // its length byte.
    let fits = |names: usize| fernet::token_len(HEADER_LEN + 9 + names * (1 + NAME_MAX)) <= max;
    let most = (0..60).take_while(|&n| fits(n + 1)).count();
    assert!(most < 60, "the test needs more members than one page holds");
    assert_eq!(pages.len(), 1, "{pages:?}");
    let (total, start, count, len) = pages[0];
    assert_eq!((total, start, count), (60, 0, most));
    assert_eq!(len, HEADER_LEN + 9 + most * (1 + NAME_MAX));
}

/// A reader that joins `sim`'s relay at `at` (simulated time) as session `session`,
/// resuming room `epoch` at `seq`: the Deliver of `seq` it gets, as (timestamp, token).
fn deliver_on_resume(
    sim: &mut Sim,
    at: Instant,
    session: u64,
    epoch: u64,
    seq: u64,
) -> (u64, Vec<u8>) {
    use chat_core::wire::{Body, Repr, Resume, VERSION};
    let addr = 900 + session as Addr % 100;
    let unix = (UNIX_START_MS + at.millis()) / 1000;
    let join = Body::Join {
        version: VERSION,
        nick: "reader",
        room: "lobby",
        window: 8,
        resume: Some(Resume {
            epoch,
            next_seq: seq,
        }),
    };
    let mut join = sealed(session, join, unix);
    assert_eq!(sim.relay.handle_datagram(at, addr, &mut join), Ok(()));
    relay_tokens_to(sim, at, addr)
        .into_iter()
        .find_map(|token| {
            let (stamp, plain) = opened(&token);
            match Repr::parse(&plain).map(|r| r.body) {
                Ok(Body::Deliver { seq: s, .. }) if s == seq => Some((stamp, token)),
                _ => None,
            }
        })
        .expect("the message, delivered")
}

#[test]
fn a_message_older_than_half_the_ttl_is_sealed_again_before_it_goes() {
    // PROTOCOL.md "Room messages": the relay keeps each room message as the token it
    // sealed, and seals it again, with the time of sending, when it has been kept for
    // half the TTL or longer (whole seconds), so that it is still fresh when it arrives.
    // The resealed token then replaces the kept one. Here the TTL is 4 s: a message kept
    // 1 s goes as it was sealed, one kept 2 s is sealed again.
    let config = RelayConfig {
        ttl: secs(4),
        ..RelayConfig::default()
    };
    let mut sim = Sim::with(51, Faults::default(), config, SMALL);
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(2));
    // Just after a whole second of Unix time, so that the line is sealed in that second.
    let into_second = (UNIX_START_MS + sim.now.millis()) % 1000;
    sim.run_for(Duration::from_millis(1000 - into_second + 50));
    sim.say(ann, "hello");
    sim.run_for(Duration::from_millis(100));
    let (seq, _) = *sim.delivered(ann).get(&1).expect("hello taken");
    let epoch = sim.client(ann).room_epoch();
    let now = sim.now;
    let (sealed_at, kept) = deliver_on_resume(&mut sim, now, 1, epoch, seq);
    assert_eq!(
        sealed_at,
        (UNIX_START_MS + now.millis()) / 1000,
        "sealed this second"
    );
    let second = |s: u64| Instant::from_millis(s * 1000 - UNIX_START_MS);
    // Kept 1 s (1.5 s): the kept token itself.
    let (stamp, token) = deliver_on_resume(
        &mut sim,
        second(sealed_at + 1) + Duration::from_millis(500),
        2,
        epoch,
        seq,
    );
    assert_eq!((stamp, &token), (sealed_at, &kept));
    // Kept 2 s: sealed again, now.
    let (stamp, resealed) = deliver_on_resume(
        &mut sim,
        second(sealed_at + 2) + Duration::from_millis(100),
        3,
        epoch,
        seq,
    );
    assert_eq!(stamp, sealed_at + 2);
    assert_ne!(resealed, kept);
    // Half a second later, in the same second: the resealed token, kept.
    let (stamp, token) = deliver_on_resume(
        &mut sim,
        second(sealed_at + 2) + Duration::from_millis(600),
        4,
        epoch,
        seq,
    );
    assert_eq!((stamp, &token), (sealed_at + 2, &resealed));
}
