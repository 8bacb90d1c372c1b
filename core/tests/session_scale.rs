//! The room promise at scale, in the deterministic simulator (see `sim/mod.rs`): big rooms,
//! many rooms, join storms and members that pause, over a network that loses, duplicates
//! and reorders 5% of datagrams.

mod sim;

use chat_core::session::{ClientEvent, RelayConfig};
use chat_core::time::Duration;
use sim::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Every member of `members` saw exactly `expected` lines, one history for all.
fn assert_everyone_saw(sim: &Sim, members: &[usize], expected: usize) {
    let history = assert_one_history(sim, members);
    assert_eq!(
        history.len(),
        expected,
        "the room's history (seed {})",
        sim.seed
    );
    for &m in members {
        assert_eq!(
            sim.lines(m).len(),
            expected,
            "member {m} saw every line once"
        );
        assert_eq!(
            sim.count_events(m, |e| matches!(e, ClientEvent::Missed { .. })),
            0,
            "member {m} missed nothing"
        );
    }
}

#[test]
fn a_room_of_a_thousand_over_a_hostile_network() {
    let members_n = 1000;
    let mut sim = Sim::with(
        100,
        Faults::HOSTILE,
        RelayConfig::default(),
        limits(members_n, 4, 256),
    );
    let members: Vec<usize> = (0..members_n)
        .map(|i| sim.add_client(&format!("m{i}"), "big"))
        .collect();
    sim.join_all(secs(60));
    // Ten members speak, five lines each, a line every 20 ms.
    for k in 0..5 {
        for s in 0..10 {
            sim.say(members[s * 97], format!("line {k} from {s}"));
            sim.run_for(ms(20));
        }
    }
    let done = sim.run_until(secs(120), |sim| {
        sim.all_answered() && members.iter().all(|&m| sim.lines(m).len() == 50)
    });
    assert!(done, "every line reached every member");
    assert_everyone_saw(&sim, &members, 50);
    let stats = sim.relay.stats();
    eprintln!("1000-room: {stats:?} at {:?}", sim.now);
    assert_eq!(stats.relayed, 50);
    assert!(stats.retransmitted > 0, "the faults were real");
    // Receipts name the whole room.
    for s in 0..10 {
        for &(_, recipients) in sim.delivered(members[s * 97]).values() {
            assert_eq!(recipients, 1000);
        }
    }
}

#[test]
fn ten_thousand_members_over_a_thousand_rooms() {
    let rooms = 1000;
    let per_room = 10;
    let mut sim = Sim::with(
        200,
        Faults::HOSTILE,
        RelayConfig::default(),
        limits(rooms * per_room, rooms, 64),
    );
    let members: Vec<usize> = (0..rooms * per_room)
        .map(|i| sim.add_client(&format!("m{i}"), &format!("room-{}", i % rooms)))
        .collect();
    sim.join_all(secs(60));
    assert_eq!(sim.relay.room_count(), rooms);
    for &m in &members {
        sim.say(m, format!("hello from {m}"));
    }
    let done = sim.run_until(secs(120), |sim| {
        sim.all_answered() && members.iter().all(|&m| sim.lines(m).len() == per_room)
    });
    assert!(done, "every line reached its room");
    for r in 0..rooms {
        let room: Vec<usize> = members.iter().copied().filter(|m| m % rooms == r).collect();
        assert_everyone_saw(&sim, &room, per_room);
        assert_stable_room(&sim, &room);
        for &m in &room {
            for line in sim.lines(m) {
                let from: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
                assert_eq!(from % rooms, r, "only its own room's lines");
            }
        }
    }
}

#[test]
fn a_join_storm_settles_in_seconds_and_never_blocks_lines() {
    let n = 1000;
    let mut sim = Sim::with(
        300,
        Faults::HOSTILE,
        RelayConfig::default(),
        limits(n + 1, 2, 128),
    );
    let first = sim.add_client("first", "storm");
    sim.join_all(secs(5));
    let start = sim.now;
    // A thousand members arrive within a tenth of a second...
    let members: Vec<usize> = (0..n)
        .map(|i| {
            if i % 100 == 99 {
                sim.run_for(ms(10));
            }
            sim.add_client(&format!("s{i}"), "storm")
        })
        .collect();
    // ...while the first member talks.
    sim.say(first, "during the storm");
    let settled = sim.run_until(secs(30), |sim| {
        sim.all_joined()
            && sim
                .peers
                .iter()
                .filter_map(|p| p.client.as_ref())
                .all(|c| c.members() == 1001)
    });
    let took = sim.now - start;
    assert!(settled, "everyone joined and knows the count");
    assert!(took < secs(10), "settled in {took:?}");
    assert_eq!(
        sim.delivered(first).len(),
        1,
        "the line was taken during the storm"
    );
    let stats = sim.relay.stats();
    eprintln!("storm: took {took:?} {stats:?}");
    // Presence went out a few frames per member, not a message per join per member.
    assert!(
        stats.presence < 20 * 1001,
        "{} presence frames for 1,001 members",
        stats.presence
    );
    // The first member heard about joins, and was told how many it was not listed.
    let (listed, skipped): (usize, u32) = sim.peers[first]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Presence {
                changes, skipped, ..
            } => Some((changes.len(), *skipped)),
            _ => None,
        })
        .fold((0, 0), |(l, s), (cl, cs)| (l + cl, s + cs));
    assert_eq!(listed + skipped as usize, n, "every join accounted for");
    let _ = members;
}

#[test]
fn paused_members_resume_where_they_were_while_the_room_goes_on() {
    let n = 200;
    let mut sim = Sim::with(
        400,
        Faults::HOSTILE,
        RelayConfig::default(),
        limits(n, 2, 512),
    );
    let members: Vec<usize> = (0..n)
        .map(|i| sim.add_client(&format!("p{i}"), "lobby"))
        .collect();
    sim.join_all(secs(30));
    let paused: Vec<usize> = members.iter().copied().filter(|m| m % 10 == 3).collect();
    for &m in &paused {
        sim.pause(m);
    }
    // Forty seconds away (past the member timeout), while the others talk.
    for k in 0..40 {
        sim.say(members[(k * 7) % n], format!("while paused {k}"));
        sim.run_for(secs(1));
    }
    assert!(
        sim.relay.member_count() <= n - paused.len(),
        "the paused timed out"
    );
    for &m in &paused {
        sim.resume(m);
    }
    let done = sim.run_until(secs(60), |sim| {
        sim.all_answered() && members.iter().all(|&m| sim.lines(m).len() >= 40)
    });
    assert!(done, "everyone has every line");
    let speakers: Vec<usize> = (0..40).map(|k| members[(k * 7) % n]).collect();
    assert_everyone_saw(&sim, &members, 40);
    for &m in &paused {
        assert!(sim.peers[m].events.iter().any(|e| matches!(
            e,
            ClientEvent::Joined {
                rejoined: true,
                resumed: true,
                ..
            }
        )));
    }
    let _ = speakers;
}
