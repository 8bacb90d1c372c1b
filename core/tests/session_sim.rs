//! The chat protocol's promises, held in the deterministic simulator (see `sim/mod.rs`):
//! PROTOCOL.md's behaviour section, case by case.

mod sim;

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::RelayLimits;
use chat_core::session::{ClientConfig, ClientEvent, ClientState, Dropped, RelayConfig};
use chat_core::time::{Duration, Instant, WallClock};
use chat_core::wire::{self, Body, NoticeCode, PresenceKind, Repr};
use sim::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// `members` join `room`, then each says `lines` lines, 40 ms apart; everything settles.
fn chat(sim: &mut Sim, nicks: &[&str], lines: usize) -> Vec<usize> {
    let members: Vec<usize> = nicks.iter().map(|n| sim.add_client(n, "lobby")).collect();
    sim.join_all(secs(30));
    sim.run_for(secs(1));
    for k in 0..lines {
        for (&m, nick) in members.iter().zip(nicks) {
            sim.say(m, format!("{nick} line {k}"));
        }
        sim.run_for(ms(40));
    }
    let expected = nicks.len() * lines;
    let done = sim.run_until(secs(120), |sim| {
        sim.all_answered() && members.iter().all(|&m| sim.lines(m).len() == expected)
    });
    let status: Vec<_> = members
        .iter()
        .map(|&m| (sim.lines(m).len(), sim.peers[m].backlog.len()))
        .collect();
    assert!(done, "everything arrives (seed {}): {status:?}", sim.seed);
    sim.run_for(secs(2));
    members
}

fn own_lines_in_order(sim: &Sim, members: &[usize], nicks: &[&str], lines: usize) {
    for &m in members {
        let seen = sim.lines(m);
        for nick in nicks {
            let own: Vec<&String> = seen
                .iter()
                .filter(|l| l.starts_with(&format!("{nick}:")))
                .collect();
            let expected: Vec<String> = (0..lines)
                .map(|k| format!("{nick}: {nick} line {k}"))
                .collect();
            assert_eq!(
                own,
                expected.iter().collect::<Vec<_>>(),
                "member {m}, from {nick}"
            );
        }
    }
}

#[test]
fn three_members_share_one_history_on_a_clean_network() {
    let mut sim = Sim::new(1, Faults::default());
    let nicks = ["ann", "bob", "cy"];
    let members = chat(&mut sim, &nicks, 10);
    let history = assert_stable_room(&sim, &members);
    assert_eq!(history.len(), 30, "joins take no place in the history");
    own_lines_in_order(&sim, &members, &nicks, 10);
    for &m in &members {
        let receipts = sim.delivered(m);
        assert_eq!(receipts.len(), 10, "a receipt per line");
        assert!(receipts.values().all(|&(_, recipients)| recipients == 3));
    }
    let stats = sim.relay.stats();
    assert_eq!(stats.retransmitted, 0);
    assert_eq!(stats.relayed, 30);
    assert_eq!(stats.delivered, 90);
}

#[test]
fn loss_duplication_and_reordering_lose_nothing_and_repeat_nothing() {
    for seed in 0..8 {
        let faults = Faults {
            loss: 0.2,
            duplicate: 0.1,
            jitter: 30,
        };
        let mut sim = Sim::new(seed, faults);
        let nicks = ["ann", "bob", "cy"];
        let members = chat(&mut sim, &nicks, 12);
        assert_stable_room(&sim, &members);
        own_lines_in_order(&sim, &members, &nicks, 12);
        assert!(sim.relay.stats().retransmitted > 0, "the faults were real");
    }
}

#[test]
fn members_learn_who_joins_and_leaves_without_it_taking_room_messages() {
    let mut sim = Sim::new(2, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    let joined: Vec<_> = sim.peers[ann]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Presence {
                members, changes, ..
            } => Some((
                *members,
                changes
                    .iter()
                    .map(|(k, n)| (k, n.to_owned()))
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        joined,
        [(2, vec![(PresenceKind::Joined, "bob".to_owned())])]
    );
    assert_eq!(sim.peers[bob].client.as_ref().unwrap().members(), 2);
    let now = sim.now;
    sim.client(bob).leave(now);
    sim.run_for(secs(2));
    assert!(sim.peers[ann].events.iter().any(|e| matches!(
        e,
        ClientEvent::Presence { members: 1, changes, .. }
            if changes.iter().eq([(PresenceKind::Left, "bob")])
    )));
    assert_eq!(sim.relay.stats().relayed, 0);
    assert!(sim.transcript(ann).is_empty(), "no room message was used");
}

#[test]
fn a_taken_nickname_gets_a_suffix_and_the_client_is_told() {
    let mut sim = Sim::new(3, Faults::default());
    let first = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    let second = sim.add_client("ann", "lobby");
    let elsewhere = sim.add_client("ann", "other");
    sim.join_all(secs(5));
    assert_eq!(sim.peers[first].client.as_ref().unwrap().nick(), "ann");
    assert_eq!(sim.peers[second].client.as_ref().unwrap().nick(), "ann-2");
    assert_eq!(
        sim.peers[elsewhere].client.as_ref().unwrap().nick(),
        "ann",
        "per room"
    );
    assert!(
        sim.peers[second]
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Joined { nick, .. } if nick.as_str() == "ann-2"))
    );
    sim.say(second, "hi");
    sim.run_for(secs(1));
    assert_eq!(sim.lines(first), ["ann-2: hi"]);
}

#[test]
fn a_device_without_a_clock_learns_the_time_from_the_server() {
    let mut sim = Sim::new(3, Faults::default());
    let device = sim.add_client_with(
        ClientConfig::new("sensor", "lobby"),
        KeyRing::new(key()),
        WallClock::default(),
    );
    assert_eq!(sim.state(device), ClientState::SyncingClock);
    sim.join_all(secs(10));
    let unix = sim.peers[device]
        .client
        .as_ref()
        .unwrap()
        .clock()
        .unix_secs(sim.now)
        .unwrap();
    assert!(unix.abs_diff(UNIX_START_MS / 1000) <= 2, "{unix}");
    assert_eq!(
        sim.count_events(device, |e| matches!(e, ClientEvent::ClockSynced { .. })),
        1
    );
}

#[test]
fn clock_jumps_within_the_ttl_are_tolerated_and_beyond_it_are_not() {
    let mut sim = Sim::new(4, Faults::default());
    // 40 s ahead: inside the clock skew allowance, chat works.
    let ahead = WallClock::synced(sim.now, UNIX_START_MS + 40_000);
    let ann = sim.add_client_with(
        ClientConfig::new("ann", "lobby"),
        KeyRing::new(key()),
        ahead,
    );
    sim.join_all(secs(5));
    // Ten minutes behind: every token looks expired to the server.
    let behind = WallClock::synced(sim.now, UNIX_START_MS - 600_000);
    let bob = sim.add_client_with(
        ClientConfig::new("bob", "lobby"),
        KeyRing::new(key()),
        behind,
    );
    sim.run_for(secs(5));
    assert_eq!(sim.state(ann), ClientState::Joined);
    assert_eq!(sim.state(bob), ClientState::Joining);
    assert!(sim.relay.stats().dropped(Dropped::Expired) > 0);
    assert_eq!(
        sim.count_events(bob, |e| matches!(e, ClientEvent::NoAnswer { .. })),
        1
    );
}

#[test]
fn silent_members_are_dropped_and_a_lost_server_is_reported() {
    let mut sim = Sim::new(5, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    // bob's machine vanishes for good.
    sim.peers[bob].client = None;
    sim.run_for(secs(35));
    assert_eq!(sim.relay.member_count(), 1);
    assert!(sim.peers[ann].events.iter().any(|e| matches!(
        e,
        ClientEvent::Presence { changes, .. } if changes.iter().eq([(PresenceKind::TimedOut, "bob")])
    )));
    // The network between ann and the server fails: ann is told, then comes back.
    sim.pause(ann);
    sim.run_for(secs(1));
    sim.resume(ann);
    let saved = sim.faults;
    sim.faults.loss = 1.0;
    sim.run_for(secs(20));
    assert_eq!(
        sim.count_events(ann, |e| matches!(e, ClientEvent::ServerLost { .. })),
        1
    );
    sim.faults = saved;
    sim.run_for(secs(40));
    assert_eq!(
        sim.count_events(ann, |e| matches!(e, ClientEvent::ServerBack)),
        1
    );
    assert_eq!(sim.state(ann), ClientState::Joined, "rejoined by itself");
}

#[test]
fn a_member_paused_past_the_timeout_resumes_exactly_where_it_was() {
    for seed in 0..4 {
        let mut sim = Sim::new(10 + seed, Faults::default());
        let ann = sim.add_client("ann", "lobby");
        let bob = sim.add_client("bob", "lobby");
        sim.join_all(secs(5));
        sim.say(ann, "before");
        sim.run_for(secs(1));
        // bob's laptop lid closes right after he typed a line.
        sim.say(bob, "typed before the lid closed");
        let now = sim.now;
        sim.step(now);
        sim.pause(bob);
        for k in 0..20 {
            sim.say(ann, format!("while away {k}"));
            sim.run_for(ms(200));
        }
        sim.run_for(secs(40));
        assert!(sim.relay.member_count() == 1, "bob timed out");
        sim.resume(bob);
        let caught_up = sim.run_until(secs(30), |sim| sim.lines(bob).len() == 21 + 1);
        let lines = sim.lines(bob);
        assert!(caught_up, "seed {seed}: {lines:?}");
        // Its line reached the server just before the lid closed; its answer did not.
        assert_eq!(lines[0], "ann: before");
        assert_eq!(lines[1], "bob: typed before the lid closed");
        for k in 0..20 {
            assert_eq!(lines[2 + k], format!("ann: while away {k}"));
        }
        assert_eq!(
            sim.count_events(bob, |e| matches!(e, ClientEvent::Missed { .. })),
            0
        );
        assert!(sim.peers[bob].events.iter().any(|e| matches!(
            e,
            ClientEvent::Joined {
                rejoined: true,
                resumed: true,
                ..
            }
        )));
        assert_eq!(
            sim.delivered(bob).len(),
            1,
            "its line got exactly one outcome"
        );
        assert_one_history(&sim, &[ann, bob]);
    }
}

#[test]
fn a_member_paused_beyond_the_history_gets_one_exact_missed() {
    let limits = RelayLimits {
        history: 16,
        history_bytes: RelayLimits::history_bytes_for(16),
        ..SMALL
    };
    let mut sim = Sim::with(20, Faults::default(), RelayConfig::default(), limits);
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    sim.say(ann, "seen by both");
    sim.run_for(secs(1));
    sim.pause(bob);
    for k in 0..50 {
        sim.say(ann, format!("line {k}"));
        sim.run_for(ms(100));
    }
    sim.run_for(secs(5));
    sim.resume(bob);
    assert!(sim.run_until(secs(30), |sim| sim.all_answered()
        && sim.lines(bob).last().is_some_and(|l| l == "ann: line 49")));
    let missed: Vec<_> = sim.peers[bob]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Missed { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    // It had seen #0; the history keeps the last 16 of #1..=#50.
    assert_eq!(missed, [(1, 35)]);
    let lines = sim.lines(bob);
    assert_eq!(lines.len(), 1 + 16);
    assert_eq!(lines[1], "ann: line 34");
    assert_one_history(&sim, &[ann, bob]);
    assert_eq!(sim.relay.stats().missed, 34);
}

#[test]
fn a_stuck_member_holds_the_room_back_no_longer_than_the_stall_limit() {
    let limits = RelayLimits {
        history: 16,
        history_bytes: RelayLimits::history_bytes_for(16),
        ..SMALL
    };
    let config = RelayConfig {
        stall_limit: secs(2),
        ..RelayConfig::default()
    };
    let mut sim = Sim::with(21, Faults::default(), config, limits);
    let ann = sim.add_client("ann", "lobby");
    let stuck = sim.add_client("stuck", "lobby");
    sim.join_all(secs(5));
    sim.pause(stuck);
    let start = sim.now;
    for k in 0..40 {
        sim.say(ann, format!("line {k}"));
    }
    assert!(sim.run_until(secs(20), Sim::all_answered));
    let took = sim.now - start;
    assert!(
        took >= secs(2) && took < secs(4),
        "the room waited for the stall limit, then went on: {took:?}"
    );
    let stats = sim.relay.stats();
    assert!(
        stats.busy > 0,
        "senders were told to wait, not left to retransmit"
    );
    assert_eq!(stats.stalled, 1);
    assert_eq!(sim.delivered(ann).len(), 40);
    assert_eq!(sim.lines(ann).len(), 40);
}

#[test]
fn every_line_of_a_burst_gets_its_own_receipt() {
    let mut sim = Sim::new(22, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let slow = sim.add_client_with(
        ClientConfig {
            ack_every: 16,
            max_ack_delay: ms(150),
            ..ClientConfig::new("slow", "lobby")
        },
        KeyRing::new(key()),
        sim.synced_clock(),
    );
    sim.join_all(secs(5));
    for k in 0..40 {
        sim.say(ann, format!("burst {k}"));
    }
    assert!(sim.run_until(secs(30), |sim| sim.all_answered()
        && sim.lines(slow).len() == 40));
    let receipts = sim.delivered(ann);
    assert_eq!(receipts.len(), 40);
    let seqs: Vec<u64> = receipts.values().map(|&(seq, _)| seq).collect();
    assert_eq!(seqs, (0..40).collect::<Vec<_>>());
    assert_stable_room(&sim, &[ann, slow]);
}

#[test]
fn a_restarted_server_is_rejoined_and_nothing_waiting_is_lost() {
    let mut sim = Sim::new(6, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    sim.say(ann, "before");
    sim.run_for(secs(1));
    sim.relay = Sim::relay_with(
        RelayConfig::default(),
        SMALL,
        KeyRing::new(key()),
        99,
        sim.now,
    );
    sim.say(ann, "after");
    sim.run_for(secs(15));
    // The new server never knew "before"; "after" waited in ann's outbox, was renumbered
    // for the new server and went through. bob rejoined on his next ping, in a new room
    // incarnation (not resumed).
    assert_eq!(sim.delivered(ann).len(), 2);
    assert_eq!(sim.lines(ann), ["ann: before", "ann: after"]);
    assert!(sim.peers[bob].events.iter().any(|e| matches!(
        e,
        ClientEvent::Joined {
            rejoined: true,
            resumed: false,
            ..
        }
    )));
    sim.say(ann, "welcome back");
    sim.run_for(secs(1));
    assert_eq!(sim.lines(bob), ["ann: before", "ann: welcome back"]);
}

#[test]
fn replayed_tokens_are_never_delivered_twice() {
    let mut sim = Sim::new(7, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    sim.say(ann, "pay 5 coins");
    sim.run_for(secs(2));
    let captured = sim.peers[ann].captured.clone();
    // Replay everything ann ever sent, from her address and from another.
    for from in [Sim::addr(ann), 999] {
        for bytes in &captured {
            let _ = sim.relay.handle_datagram(sim.now, from, &mut bytes.clone());
        }
    }
    sim.run_for(secs(2));
    assert_eq!(sim.lines(bob), ["ann: pay 5 coins"]);
    assert!(sim.relay.stats().dropped(Dropped::Duplicate) > 0);
    assert!(
        !sim.sent_to.contains_key(&999),
        "nothing answered to the replayer"
    );
    // After the TTL they are refused outright.
    sim.run_for(secs(70));
    let expired_before = sim.relay.stats().dropped(Dropped::Expired);
    for bytes in &captured {
        let _ = sim.relay.handle_datagram(sim.now, 999, &mut bytes.clone());
    }
    assert!(sim.relay.stats().dropped(Dropped::Expired) > expired_before);
    sim.run_for(secs(2));
    assert_eq!(sim.lines(bob), ["ann: pay 5 coins"]);
}

#[test]
fn a_departed_sessions_datagrams_replayed_get_no_answer_at_all() {
    let mut sim = Sim::new(8, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    for k in 0..5 {
        sim.say(ann, format!("line {k}"));
    }
    sim.run_for(secs(2));
    sim.client(ann).request_members();
    sim.run_for(secs(1));
    let now = sim.now;
    sim.client(ann).leave(now);
    sim.run_for(secs(2));
    assert_eq!(sim.state(ann), ClientState::Closed);
    let captured = sim.peers[ann].captured.clone();
    let before = sim.relay.stats().relayed;
    for bytes in &captured {
        let _ = sim.relay.handle_datagram(sim.now, 4242, &mut bytes.clone());
    }
    sim.run_for(secs(2));
    assert_eq!(sim.sent_to.get(&4242), None, "no answer at all");
    assert_eq!(sim.relay.stats().relayed, before);
    assert_eq!(sim.lines(bob).len(), 5);
}

/// Seals `body` from `session` with our key, at the server's time.
fn token(sim: &Sim, session: u64, body: Body<'_>) -> Vec<u8> {
    sealed(session, body, (UNIX_START_MS + sim.now.millis()) / 1000)
}

#[test]
fn answers_to_strangers_are_never_larger_than_what_asked() {
    let mut sim = Sim::new(9, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    sim.record_relay = true;
    let asks = [
        Body::Who {
            counter: 1,
            start: 0,
        },
        Body::Leave,
        Body::Ping { counter: 1 },
        Body::Ack {
            next_seq: 0,
            selective: 0,
            presence: 0,
        },
        Body::Chat {
            msg_id: 1,
            text: "",
        },
        Body::JoinV1 {
            nick: "a",
            room: "b",
        },
        Body::JoinV1 {
            nick: "ann",
            room: "lobby",
        },
    ];
    for (i, body) in asks.into_iter().enumerate() {
        let mut datagram = token(&sim, 0xDEAD + i as u64, body);
        let asked = datagram.len();
        let from = 500 + i as Addr;
        let _ = sim.relay.handle_datagram(sim.now, from, &mut datagram);
        sim.flush_relay();
        for &(to, len) in &sim.relay_out {
            if to == from {
                assert!(len <= asked, "{body:?}: {len} > {asked}");
            }
        }
        assert!(
            sim.relay_out.iter().any(|&(to, _)| to == from),
            "{body:?} is answered (not joined, bye, pong or version)"
        );
        sim.relay_out.clear();
    }
    // A version-1 client is told which version the server speaks, if it fits.
    let _ = ann;
}

#[test]
fn a_version_1_join_is_told_the_server_speaks_version_2() {
    let mut sim = Sim::new(11, Faults::default());
    let mut datagram = token(
        &sim,
        77,
        Body::JoinV1 {
            nick: "old-client",
            room: "lobby",
        },
    );
    let _ = sim.relay.handle_datagram(sim.now, 9, &mut datagram);
    let mut buf = [0u8; 1232];
    let (to, len) = sim.relay.poll_transmit(sim.now, &mut buf).unwrap();
    assert_eq!(to, 9);
    let mut plain = [0u8; 1232];
    let opened = key().decrypt(&buf[..len], None, &mut plain).unwrap();
    match Repr::parse(opened.plaintext).unwrap().body {
        Body::Notice { code, text } => {
            assert_eq!(code, NoticeCode::VERSION);
            assert!(text.contains('2'), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(wire::VERSION, 2);
}

#[test]
fn garbage_and_wrong_keys_get_no_answer() {
    let mut sim = Sim::new(8, Faults::default());
    let mut junk = b"not a token at all".to_vec();
    assert_eq!(
        sim.relay.handle_datagram(sim.now, 5, &mut junk),
        Err(Dropped::InvalidToken)
    );
    let stranger = Key::from_bytes(&[8; 32]);
    let mut token = vec![0u8; 200];
    let len = stranger
        .encrypt_with_iv(b"hello", UNIX_START_MS / 1000, [0; 16], &mut token)
        .unwrap()
        .len();
    token.truncate(len);
    assert_eq!(
        sim.relay.handle_datagram(sim.now, 5, &mut token),
        Err(Dropped::InvalidToken)
    );
    let mut buf = [0u8; 1232];
    assert_eq!(sim.relay.poll_transmit(sim.now, &mut buf), None);
    assert_eq!(sim.relay.stats().dropped(Dropped::InvalidToken), 2);
}

#[test]
fn legacy_text_tokens_chat_with_members() {
    let mut sim = Sim::new(9, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(2));
    // What the original Python program sends: Fernet(key).encrypt(b"hi there").
    let mut token = vec![0u8; 200];
    let unix = (UNIX_START_MS + sim.now.millis()) / 1000;
    let len = key()
        .encrypt_with_iv(b"hi there", unix, [1; 16], &mut token)
        .unwrap()
        .len();
    token.truncate(len);
    let legacy: Addr = 77;
    assert_eq!(
        sim.relay
            .handle_datagram(sim.now, legacy, &mut token.clone()),
        Ok(())
    );
    assert_eq!(
        sim.relay
            .handle_datagram(sim.now, legacy, &mut token.clone()),
        Err(Dropped::Duplicate),
        "a replayed legacy token is refused"
    );
    let mut to_legacy = Vec::new();
    let mut buf = [0u8; 1232];
    while let Some((to, len)) = sim.relay.poll_transmit(sim.now, &mut buf) {
        if to == legacy {
            let mut out = [0u8; 1232];
            let opened = key().decrypt(&buf[..len], None, &mut out).unwrap();
            to_legacy.push(String::from_utf8(opened.plaintext.to_vec()).unwrap());
        } else {
            sim.send(SERVER, to, buf[..len].to_vec());
        }
    }
    assert_eq!(to_legacy, ["server: received as #0 for 2 members"]);
    sim.say(ann, "hello legacy");
    sim.run_for(ms(100));
    assert_eq!(sim.lines(ann), ["legacy-1: hi there", "ann: hello legacy"]);
}

#[test]
fn refused_lines_get_their_reason_and_use_up_their_number() {
    // The server takes smaller datagrams than the client thinks.
    let config = RelayConfig {
        max_datagram: 400,
        ..RelayConfig::default()
    };
    let mut sim = Sim::with(12, Faults::default(), config, SMALL);
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    let limit = chat_core::session::max_text_len(400);
    sim.say(ann, "x".repeat(limit + 1));
    sim.say(ann, "fits");
    assert!(sim.run_until(secs(5), Sim::all_answered));
    let refused: Vec<_> = sim.peers[ann]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Refused { id, reason } => Some((*id, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [(1, wire::RefuseReason::TOO_LONG)]);
    assert_eq!(sim.delivered(ann).keys().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(sim.lines(ann), ["ann: fits"]);
    assert_eq!(sim.relay.stats().refused, 1);
}

#[test]
fn a_full_server_and_too_many_rooms_refuse_joins_and_say_why() {
    let limits = RelayLimits {
        members: 2,
        rooms: 2,
        gone: 2,
        ..SMALL
    };
    let mut sim = Sim::with(13, Faults::default(), RelayConfig::default(), limits);
    sim.add_client("ann", "one");
    sim.add_client("bob", "two");
    sim.join_all(secs(5));
    let third_room = sim.add_client("cy", "three");
    let _ = sim.client(third_room).send("never delivered");
    sim.run_for(secs(2));
    let full = sim.add_client("dee", "one");
    sim.run_for(secs(2));
    for (index, why) in [(third_room, "server full"), (full, "server full")] {
        assert_eq!(sim.state(index), ClientState::Closed);
        assert!(
            sim.peers[index]
                .events
                .iter()
                .any(|e| matches!(e, ClientEvent::Notice { text } if text.as_str() == why)),
            "{:?}",
            sim.peers[index].events
        );
    }
    assert!(
        sim.peers[third_room]
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Undelivered { id: 1, .. }))
    );
    // With room for members but not rooms.
    let limits = RelayLimits {
        members: 8,
        rooms: 1,
        gone: 8,
        ..SMALL
    };
    let mut sim = Sim::with(14, Faults::default(), RelayConfig::default(), limits);
    sim.add_client("ann", "one");
    sim.join_all(secs(5));
    let other = sim.add_client("bob", "two");
    sim.run_for(secs(2));
    assert!(
        sim.peers[other].events.iter().any(
            |e| matches!(e, ClientEvent::Notice { text } if text.as_str() == "too many rooms")
        )
    );
    assert_eq!(sim.relay.room_count(), 1);
}

#[test]
fn rooms_are_isolated_and_room_messages_replayed_elsewhere_are_dropped() {
    let mut sim = Sim::new(15, Faults::default());
    let a1 = sim.add_client("ann", "alpha");
    let a2 = sim.add_client("amy", "alpha");
    let b1 = sim.add_client("bob", "beta");
    sim.join_all(secs(5));
    sim.say(a1, "in alpha");
    sim.say(b1, "in beta");
    assert!(sim.run_until(secs(5), Sim::all_answered));
    sim.run_for(secs(1));
    assert_eq!(sim.lines(a2), ["ann: in alpha"]);
    assert_eq!(sim.lines(b1), ["bob: in beta"]);
    assert_stable_room(&sim, &[a1, a2]);
    assert_stable_room(&sim, &[b1]);
    assert_eq!(sim.delivered(a1).values().next().unwrap().0, 0);
    assert_eq!(
        sim.delivered(b1).values().next().unwrap().0,
        0,
        "numbered per room"
    );
    // alpha's room message, replayed to beta's member: another epoch, dropped.
    let epoch = sim.peers[a2].client.as_ref().unwrap().room_epoch();
    let mut foreign = token(
        &sim,
        epoch,
        Body::Deliver {
            seq: 1,
            nick: "ann",
            text: "forged into beta",
        },
    );
    let now = sim.now;
    assert_eq!(
        sim.client(b1).handle_datagram(now, &mut foreign),
        Err(Dropped::Unexpected)
    );
}

#[test]
fn members_on_the_old_and_the_new_key_chat_during_a_rotation() {
    let old = key();
    let new = Key::from_bytes(&[9; 32]);
    let mut sim = Sim::new(16, Faults::default());
    // The server has moved to the new key and still accepts the old one.
    let mut ring = KeyRing::new(new.clone());
    ring.push(old.clone()).unwrap();
    sim.relay = Sim::relay_with(RelayConfig::default(), SMALL, ring, 16, sim.now);
    // ann has not switched yet (old key first, new accepted); bob has.
    let mut ann_ring = KeyRing::new(old.clone());
    ann_ring.push(new.clone()).unwrap();
    let mut bob_ring = KeyRing::new(new);
    bob_ring.push(old).unwrap();
    let clock = sim.synced_clock();
    let ann = sim.add_client_with(ClientConfig::new("ann", "lobby"), ann_ring, clock);
    let bob = sim.add_client_with(ClientConfig::new("bob", "lobby"), bob_ring, clock);
    sim.join_all(secs(5));
    sim.say(ann, "from the old key");
    sim.say(bob, "from the new key");
    assert!(sim.run_until(secs(5), |sim| sim.all_answered()
        && sim.lines(ann).len() == 2
        && sim.lines(bob).len() == 2));
    assert_stable_room(&sim, &[ann, bob]);
    // A member with only the old key cannot read the server any more.
    let stale = sim.add_client_with(
        ClientConfig::new("stale", "lobby"),
        KeyRing::new(Key::from_bytes(&[7; 32])),
        clock,
    );
    sim.run_for(secs(5));
    assert_eq!(sim.state(stale), ClientState::Joining);
}

#[test]
fn the_member_list_comes_in_pages_and_all_of_it() {
    let mut sim = Sim::new(17, Faults::default());
    let limits = RelayLimits {
        members: 128,
        gone: 128,
        ..SMALL
    };
    sim.relay = Sim::relay_with(
        RelayConfig::default(),
        limits,
        KeyRing::new(key()),
        17,
        sim.now,
    );
    let members: Vec<usize> = (0..100)
        .map(|i| sim.add_client(&format!("member-with-a-long-name-{i:03}"), "lobby"))
        .collect();
    sim.join_all(secs(10));
    sim.client(members[0]).request_members();
    sim.run_for(secs(2));
    let mut names = Vec::new();
    let mut pages = 0;
    for event in &sim.peers[members[0]].events {
        if let ClientEvent::Members {
            total,
            start,
            names: page,
        } = event
        {
            assert_eq!(*total, 100);
            assert_eq!(*start as usize, names.len(), "pages follow each other");
            names.extend(page.iter().map(str::to_owned));
            pages += 1;
        }
    }
    assert!(pages > 1, "100 long names do not fit one datagram");
    let expected: Vec<String> = (0..100)
        .map(|i| format!("member-with-a-long-name-{i:03}"))
        .collect();
    assert_eq!(names, expected, "join order, every member once");
}

#[test]
fn an_application_that_stops_reading_events_loses_nothing() {
    let mut sim = Sim::new(18, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    // bob's application stops reading its events for a while: its client's queue fills,
    // and what does not fit is left unacknowledged, to come again.
    sim.peers[bob].reading = false;
    for k in 0..200 {
        sim.say(ann, format!("line {k}"));
    }
    sim.run_for(secs(3));
    assert!(sim.lines(bob).is_empty());
    sim.peers[bob].reading = true;
    sim.touch(bob);
    assert!(sim.run_until(secs(60), |sim| sim.lines(bob).len() == 200));
    assert_one_history(&sim, &[ann, bob]);
}

#[test]
fn leaving_lets_waiting_lines_reach_the_room_first_and_reports_the_rest() {
    let mut sim = Sim::new(19, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    let _ = sim.client(ann).send("last words");
    let now = sim.now;
    sim.client(ann).leave(now);
    sim.run_for(secs(3));
    assert_eq!(sim.lines(bob), ["ann: last words"]);
    assert_eq!(sim.state(ann), ClientState::Closed);
    // With the server gone, a line cannot get there: it is reported undelivered.
    sim.faults.loss = 1.0;
    let _ = sim.client(bob).send("into the void");
    let now = sim.now;
    sim.client(bob).leave(now);
    sim.run_for(secs(10));
    assert_eq!(sim.state(bob), ClientState::Closed);
    let tail: Vec<_> = sim.peers[bob]
        .events
        .iter()
        .rev()
        .take(2)
        .cloned()
        .collect();
    assert!(matches!(tail[0], ClientEvent::Closed));
    assert!(matches!(tail[1], ClientEvent::Undelivered { id: 1, .. }));
}

#[test]
fn a_join_replayed_after_its_session_went_is_refused() {
    let mut sim = Sim::new(23, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    let join = sim.peers[ann].captured[0].clone();
    let now = sim.now;
    sim.client(ann).leave(now);
    sim.run_for(secs(2));
    assert_eq!(sim.relay.member_count(), 1);
    let _ = sim.relay.handle_datagram(sim.now, 66, &mut join.clone());
    sim.run_for(secs(1));
    assert_eq!(
        sim.relay.member_count(),
        1,
        "a replayed Join brings nobody back"
    );
    assert_eq!(sim.sent_to.get(&66), None);
    let _ = bob;
}

#[test]
fn a_busy_room_serves_its_senders_in_turn() {
    // Sixteen senders offer twenty lines each at once to a room whose history holds 32:
    // most are told Busy; they get in in the order they came, so all finish close together
    // (first come, first served), none starved.
    let limits = RelayLimits {
        history: 32,
        history_bytes: RelayLimits::history_bytes_for(32),
        ..SMALL
    };
    let mut sim = Sim::with(3, Faults::default(), RelayConfig::default(), limits);
    let members: Vec<usize> = (0..16)
        .map(|i| sim.add_client(&format!("s{i}"), "lobby"))
        .collect();
    sim.join_all(secs(5));
    let start = sim.now;
    for k in 0..20 {
        for &m in &members {
            sim.say(m, format!("{m} line {k}"));
        }
    }
    assert!(sim.run_until(secs(60), Sim::all_answered));
    let finished: Vec<u64> = members
        .iter()
        .map(|&m| {
            let peer = &sim.peers[m];
            peer.events
                .iter()
                .zip(&peer.times)
                .filter(|(e, _)| matches!(e, ClientEvent::Delivered { .. }))
                .map(|(_, t)| (*t - start).millis())
                .max()
                .unwrap()
        })
        .collect();
    let (first, last) = (
        *finished.iter().min().unwrap(),
        *finished.iter().max().unwrap(),
    );
    assert!(sim.relay.stats().busy > 0, "the room was busy");
    assert!(
        last - first <= last / 4,
        "senders finish together, none starved: {finished:?}"
    );
    assert_stable_room(&sim, &members);
}

#[test]
fn the_member_list_arrives_whole_over_a_lossy_network() {
    for seed in 0..4 {
        let faults = Faults {
            loss: 0.3,
            duplicate: 0.1,
            jitter: 20,
        };
        let mut sim = Sim::new(40 + seed, faults);
        let limits = RelayLimits {
            members: 64,
            gone: 64,
            ..SMALL
        };
        sim.relay = Sim::relay_with(
            RelayConfig::default(),
            limits,
            KeyRing::new(key()),
            seed,
            sim.now,
        );
        let members: Vec<usize> = (0..40)
            .map(|i| sim.add_client(&format!("a-long-enough-member-name-{i:03}"), "lobby"))
            .collect();
        sim.join_all(secs(30));
        sim.client(members[0]).request_members();
        let complete = |sim: &Sim| {
            let mut names = std::collections::BTreeSet::new();
            for event in &sim.peers[members[0]].events {
                if let ClientEvent::Members { names: page, .. } = event {
                    names.extend(page.iter().map(str::to_owned));
                }
            }
            names.len() == 40
        };
        assert!(
            sim.run_until(secs(30), complete),
            "seed {seed}: lost pages are asked for again"
        );
    }
}

#[test]
fn a_ping_captured_before_a_timeout_is_still_a_replay_after_the_return() {
    let config = RelayConfig {
        member_timeout: secs(8),
        ..RelayConfig::default()
    };
    let mut sim = Sim::with(24, Faults::default(), config, SMALL);
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(6)); // ann pings once (counter 1), and so on
    let pings: Vec<Vec<u8>> = sim.peers[ann].captured.clone();
    sim.pause(ann);
    sim.run_for(secs(10));
    assert_eq!(sim.relay.member_count(), 1, "ann timed out");
    sim.resume(ann);
    assert!(sim.run_until(secs(10), |sim| sim.relay.member_count() == 2));
    sim.run_for(secs(1));
    // Everything ann sent before it went, replayed from elsewhere (within the TTL):
    // nothing moves its address, nothing is answered to the replayer.
    for bytes in &pings {
        let _ = sim.relay.handle_datagram(sim.now, 777, &mut bytes.clone());
    }
    sim.run_for(secs(1));
    assert_eq!(sim.sent_to.get(&777), None, "no answer to the replayer");
    sim.say(bob, "still reaching ann at her own address");
    sim.run_for(secs(1));
    assert_eq!(
        sim.lines(ann).last().map(String::as_str),
        Some("bob: still reaching ann at her own address")
    );
}

#[test]
fn session_zero_is_no_session() {
    let mut sim = Sim::new(25, Faults::default());
    let mut join = token(
        &sim,
        0,
        Body::Join {
            version: wire::VERSION,
            nick: "zero",
            room: "lobby",
            window: 4,
            resume: None,
        },
    );
    assert_eq!(
        sim.relay.handle_datagram(sim.now, 5, &mut join),
        Err(Dropped::Malformed)
    );
    sim.flush_relay();
    assert!(sim.sent_to.is_empty());
}

#[test]
fn the_smallest_version_1_join_is_still_told_the_version() {
    let mut sim = Sim::new(26, Faults::default());
    let mut datagram = token(
        &sim,
        78,
        Body::JoinV1 {
            nick: "a",
            room: "b",
        },
    );
    let asked = datagram.len();
    let _ = sim.relay.handle_datagram(sim.now, 9, &mut datagram);
    let mut buf = [0u8; 1232];
    let (_, len) = sim.relay.poll_transmit(sim.now, &mut buf).unwrap();
    assert!(len <= asked);
    let mut plain = [0u8; 1232];
    let opened = key().decrypt(&buf[..len], None, &mut plain).unwrap();
    assert_eq!(
        Repr::parse(opened.plaintext).unwrap().body,
        Body::Notice {
            code: NoticeCode::VERSION,
            text: "v2"
        }
    );
}

#[test]
fn a_client_says_where_it_is() {
    let mut sim = Sim::new(31, Faults::default());
    let ann = sim.add_client("ann", "dev");
    let bob = sim.add_client("bob", "dev");
    sim.join_all(secs(5));
    let (epoch, _) = sim.relay.room_position("dev").expect("dev is open");
    assert_eq!(sim.client(ann).room(), "dev");
    assert_eq!(sim.client(ann).room_epoch(), epoch);
    assert!(epoch > 1);
    assert_eq!(sim.client(ann).rtt(), None, "no ping answered yet");
    for k in 0..3 {
        sim.say(bob, format!("line {k}"));
        sim.run_for(ms(100));
    }
    sim.run_for(secs(1));
    assert_eq!(sim.client(ann).next_seq(), 3, "messages 0 to 2 received");
    // A keepalive ping (every 5 s) answered: the simulated round trip, 2 × 5 ms.
    sim.run_for(secs(6));
    assert_eq!(sim.client(ann).rtt(), Some(ms(10)));
    // A driver with a clock corrects the client's.
    let now = sim.now;
    sim.client(ann).sync_clock(now, 4_000_000_000_000);
    assert_eq!(sim.client(ann).clock().unix_secs(now), Some(4_000_000_000));
}

/// PROTOCOL.md "Names": a nickname taken in the room gets the first free suffix (`-2`,
/// `-3`, ...), its base shortened, at a character boundary, only as much as the suffix
/// needs to fit in `NAME_MAX` bytes.
#[test]
fn a_taken_nickname_near_the_limit_is_shortened_just_enough_for_its_suffix() {
    let thirty = "n".repeat(30);
    let longest = "m".repeat(wire::NAME_MAX);
    let clefs = "\u{1D11E}".repeat(wire::NAME_MAX / 4);
    let mut sim = Sim::new(4, Faults::default());
    let mut nicks = Vec::new();
    for nick in [
        "ann", "ann", "ann", &thirty, &thirty, &longest, &longest, &clefs, &clefs,
    ] {
        nicks.push(sim.add_client(nick, "lobby"));
        sim.join_all(secs(5));
    }
    let given: Vec<String> = nicks
        .iter()
        .map(|&i| sim.peers[i].client.as_ref().unwrap().nick().to_owned())
        .collect();
    assert_eq!(
        given,
        [
            "ann".to_owned(),
            "ann-2".to_owned(),
            "ann-3".to_owned(),
            thirty.clone(),
            format!("{thirty}-2"),
            longest.clone(),
            format!("{}-2", &longest[..30]),
            clefs.clone(),
            format!("{}-2", "\u{1D11E}".repeat(7)),
        ]
    );
}

/// PROTOCOL.md "Rejoining": a client resumes where it was only in the same incarnation
/// of its room (the Join's epoch). A room emptied, freed and made again meanwhile is a new
/// room: the client starts at its end, told it did not resume, and is sent none of the
/// new room's earlier messages as if they followed its own.
#[test]
fn a_rejoin_into_a_new_incarnation_of_the_room_starts_at_its_end() {
    let mut sim = Sim::new(21, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    let bob = sim.add_client("bob", "lobby");
    sim.join_all(secs(5));
    for k in 0..3 {
        sim.say(ann, format!("old {k}"));
    }
    sim.run_for(secs(1));
    assert_eq!(sim.lines(bob).len(), 3);
    sim.pause(bob);
    let now = sim.now;
    sim.client(ann).leave(now);
    sim.run_for(secs(40));
    assert_eq!(sim.relay.room_count(), 0, "bob timed out: the room is gone");
    let cy = sim.add_client("cy", "lobby");
    assert!(sim.run_until(secs(5), |sim| sim.state(cy) == ClientState::Joined));
    for k in 0..5 {
        sim.say(cy, format!("new {k}"));
    }
    sim.run_for(secs(1));
    sim.resume(bob);
    sim.run_for(secs(15));
    assert!(sim.peers[bob].events.iter().any(|e| matches!(
        e,
        ClientEvent::Joined {
            rejoined: true,
            resumed: false,
            ..
        }
    )));
    sim.say(cy, "after");
    sim.run_for(secs(1));
    assert_eq!(
        sim.lines(bob),
        ["ann: old 0", "ann: old 1", "ann: old 2", "cy: after"]
    );
}

/// PROTOCOL.md "Presence": changes close together (within an eighth of the presence
/// interval, 25 ms by default) reach the members in one frame, soon; nobody is told of
/// its own join.
#[test]
fn joins_close_together_are_told_together_soon_and_not_to_the_joiner() {
    let mut sim = Sim::new(22, Faults::default());
    let ann = sim.add_client("ann", "lobby");
    sim.join_all(secs(5));
    sim.run_for(secs(1));
    let start = sim.now;
    let bob = sim.add_client("bob", "lobby");
    sim.run_for(ms(10));
    let cy = sim.add_client("cy", "lobby");
    sim.run_for(secs(2));
    let presence = |sim: &Sim, who: usize| -> Vec<(Instant, Vec<(PresenceKind, String)>)> {
        let peer = &sim.peers[who];
        peer.events
            .iter()
            .zip(&peer.times)
            .filter_map(|(e, &t)| match e {
                ClientEvent::Presence { changes, .. } => {
                    Some((t, changes.iter().map(|(k, n)| (k, n.to_owned())).collect()))
                }
                _ => None,
            })
            .collect()
    };
    let told = presence(&sim, ann);
    assert_eq!(
        told.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
        [vec![
            (PresenceKind::Joined, "bob".to_owned()),
            (PresenceKind::Joined, "cy".to_owned())
        ]]
    );
    assert!(told[0].0 - start <= ms(60), "{:?}", told[0].0 - start);
    assert_eq!(
        presence(&sim, bob)
            .into_iter()
            .map(|(_, c)| c)
            .collect::<Vec<_>>(),
        [vec![(PresenceKind::Joined, "cy".to_owned())]]
    );
    assert!(presence(&sim, cy).is_empty());
}
