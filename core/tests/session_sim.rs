//! A deterministic network simulator for the chat state machines, in the style of
//! quinn-proto's test pair: one relay, several clients, a simulated clock, and a network
//! that loses, duplicates, delays and reorders datagrams from a seeded RNG.

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClientState, Dropped, Relay, RelayConfig,
};
use chat_core::time::{Duration, Instant, WallClock};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

type Addr = u16;
const SERVER: Addr = 0;
type TestClient = Client<StdRng, 0, 256, 8, 32>;
type TestRelay = Relay<Addr, StdRng, 0, 16, 4, 32, 256>;

const UNIX_START_MS: u64 = 1_700_000_000_000;

#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    loss: f64,
    duplicate: f64,
    /// Extra delay, uniform in 0..jitter ms: reorders datagrams.
    jitter: u64,
}

struct Packet {
    at: Instant,
    from: Addr,
    to: Addr,
    bytes: Vec<u8>,
}

struct Sim {
    now: Instant,
    rng: StdRng,
    faults: Faults,
    latency: Duration,
    in_flight: Vec<Packet>,
    relay: TestRelay,
    clients: Vec<Option<TestClient>>,
    /// Events seen by each client, in order.
    events: Vec<Vec<ClientEvent<256>>>,
    /// Clients cut off from the network, both ways.
    muted: Vec<bool>,
    /// Every datagram a client sent, to replay later.
    captured: Vec<(Addr, Vec<u8>)>,
    /// Lines each client still has to hand to `send`.
    backlog: Vec<Vec<String>>,
    key: Key,
}

fn key() -> Key {
    Key::from_bytes(&[7; 32])
}

impl Sim {
    fn new(seed: u64, faults: Faults) -> Self {
        let now = Instant::from_millis(0);
        Self {
            now,
            rng: StdRng::seed_from_u64(seed),
            faults,
            latency: Duration::from_millis(5),
            in_flight: Vec::new(),
            relay: Self::new_relay(seed, now),
            clients: Vec::new(),
            events: Vec::new(),
            muted: Vec::new(),
            captured: Vec::new(),
            backlog: Vec::new(),
            key: key(),
        }
    }

    fn new_relay(seed: u64, now: Instant) -> TestRelay {
        Self::relay_with(RelayConfig::default(), seed, now)
    }

    fn relay_with(config: RelayConfig, seed: u64, now: Instant) -> TestRelay {
        Relay::new(
            config,
            KeyRing::new(key()),
            StdRng::seed_from_u64(seed ^ 0xAAAA),
            WallClock::synced(now, UNIX_START_MS),
        )
    }

    fn add_client(&mut self, nick: &str, clock: WallClock) -> usize {
        let index = self.clients.len();
        let client = Client::new(
            &ClientConfig::new(nick, "lobby"),
            KeyRing::new(self.key.clone()),
            StdRng::seed_from_u64(1000 + index as u64),
            clock,
            self.now,
        )
        .unwrap();
        self.clients.push(Some(client));
        self.events.push(Vec::new());
        self.muted.push(false);
        self.backlog.push(Vec::new());
        index
    }

    fn synced_clock(&self) -> WallClock {
        WallClock::synced(self.now, UNIX_START_MS + self.now.millis())
    }

    fn addr(index: usize) -> Addr {
        Addr::try_from(index + 1).unwrap()
    }

    fn send(&mut self, from: Addr, to: Addr, bytes: Vec<u8>) {
        if from != SERVER {
            self.captured.push((from, bytes.clone()));
            if self.muted[usize::from(from) - 1] {
                return;
            }
        }
        let copies = if self.rng.random_bool(self.faults.loss) {
            0
        } else if self.rng.random_bool(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.faults.jitter > 0 {
                self.rng.random_range(0..self.faults.jitter)
            } else {
                0
            };
            self.in_flight.push(Packet {
                at: self.now + self.latency + Duration::from_millis(jitter),
                from,
                to,
                bytes: bytes.clone(),
            });
        }
    }

    /// Lets every endpoint transmit and report, then advances time to the next thing
    /// that happens (at most `limit` ahead) and delivers what is due.
    fn step(&mut self, limit: Instant) {
        let mut buf = [0u8; 1232];
        while let Some((to, len)) = self.relay.poll_transmit(self.now, &mut buf) {
            self.send(SERVER, to, buf[..len].to_vec());
        }
        while self.relay.poll_event().is_some() {}
        for index in 0..self.clients.len() {
            let now = self.now;
            let mut out = Vec::new();
            if let Some(client) = self.clients[index].as_mut() {
                while let Some(len) = client.poll_transmit(now, &mut buf) {
                    out.push(buf[..len].to_vec());
                }
                while let Some(event) = client.poll_event() {
                    self.events[index].push(event);
                }
            }
            for bytes in out {
                self.send(Self::addr(index), SERVER, bytes);
            }
        }
        // Pending lines that met a full outbox go out as soon as there is room.
        for index in 0..self.clients.len() {
            while let Some(line) = self.backlog[index].first().cloned() {
                let Some(client) = self.clients[index].as_mut() else {
                    break;
                };
                match client.send(&line) {
                    Ok(_) => {
                        self.backlog[index].remove(0);
                    }
                    Err(chat_core::session::SendError::QueueFull) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }

        let mut next = limit;
        next = next.min(self.relay.poll_timeout().unwrap_or(limit));
        for client in self.clients.iter().flatten() {
            next = next.min(client.poll_timeout().unwrap_or(limit));
        }
        for packet in &self.in_flight {
            next = next.min(packet.at);
        }
        self.now = next.max(self.now);

        let (due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|p| p.at <= self.now);
        self.in_flight = later;
        for mut packet in due {
            if packet.to == SERVER {
                let _ = self
                    .relay
                    .handle_datagram(self.now, packet.from, &mut packet.bytes);
            } else if self.muted.get(usize::from(packet.to) - 1) != Some(&false) {
                continue; // cut off, or an address the simulation does not run
            } else if let Some(client) = self.clients[usize::from(packet.to) - 1].as_mut() {
                let _ = client.handle_datagram(self.now, &mut packet.bytes);
            }
        }
        self.relay.handle_timeout(self.now);
        for client in self.clients.iter_mut().flatten() {
            client.handle_timeout(self.now);
        }
    }

    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.step(end);
        }
        self.step(end);
    }

    fn run_until(&mut self, span: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + span;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step(end);
        }
        done(self)
    }

    fn client(&mut self, index: usize) -> &mut TestClient {
        self.clients[index].as_mut().unwrap()
    }

    /// Room messages a client has shown, as "nick: text" (notices as "* nick text").
    fn transcript(&self, index: usize) -> Vec<(u64, String)> {
        self.events[index]
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Message {
                    seq,
                    nick,
                    text,
                    notice,
                    ..
                } => Some((
                    *seq,
                    if *notice {
                        format!("* {nick} {text}")
                    } else {
                        format!("{nick}: {text}")
                    },
                )),
                _ => None,
            })
            .collect()
    }

    fn chat_lines(&self, index: usize) -> Vec<String> {
        self.transcript(index)
            .into_iter()
            .map(|(_, line)| line)
            .filter(|line| !line.starts_with("* "))
            .collect()
    }

    fn delivered_ids(&self, index: usize) -> Vec<u32> {
        self.events[index]
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Delivered { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }
}

/// Three members join, all chat at once; returns the simulator after everything settled.
fn three_member_chat(seed: u64, faults: Faults, lines_each: usize) -> Sim {
    let mut sim = Sim::new(seed, faults);
    for nick in ["ann", "bob", "cy"] {
        let clock = sim.synced_clock();
        sim.add_client(nick, clock);
    }
    let joined = sim.run_until(Duration::from_secs(30), |sim| {
        sim.clients
            .iter()
            .flatten()
            .all(|c| c.state() == ClientState::Joined)
    });
    assert!(joined, "all three join");
    // Let the join notices settle so every member's history starts at the same point.
    sim.run_for(Duration::from_secs(3));
    let mut sent = 0;
    while sent < lines_each {
        for (index, nick) in ["ann", "bob", "cy"].iter().enumerate() {
            sim.backlog[index].push(format!("{nick} line {sent}"));
        }
        sent += 1;
        sim.run_for(Duration::from_millis(40));
    }
    let all_in = sim.run_until(Duration::from_secs(120), |sim| {
        (0..3).all(|i| {
            sim.clients[i].as_ref().unwrap().unacknowledged() == 0
                && sim.backlog[i].is_empty()
                && sim.chat_lines(i).len() == 3 * lines_each
        })
    });
    let status: Vec<_> = (0..3)
        .map(|i| {
            let c = sim.clients[i].as_ref().unwrap();
            (
                c.state(),
                c.unacknowledged(),
                sim.backlog[i].len(),
                sim.chat_lines(i).len(),
            )
        })
        .collect();
    assert!(
        all_in,
        "everything is acknowledged (seed {seed}): {status:?}"
    );
    sim.run_for(Duration::from_secs(5));
    sim
}

fn assert_same_history_exactly_once(sim: &Sim, expected_lines: usize) {
    // Members joined at different points; wherever two saw the same number, they saw
    // the same line, and from its first message on each saw every later one.
    let mut by_seq = std::collections::BTreeMap::new();
    for index in 0..3 {
        for (seq, line) in sim.transcript(index) {
            let seen = by_seq.entry(seq).or_insert_with(|| line.clone());
            assert_eq!(*seen, line, "member {index} saw a different line as #{seq}");
        }
    }
    let last = *by_seq.keys().last().unwrap();
    for index in 0..3 {
        assert_eq!(
            sim.transcript(index).last().unwrap().0,
            last,
            "member {index} is complete"
        );
    }
    for index in 0..3 {
        let transcript = sim.transcript(index);
        let seqs: Vec<u64> = transcript.iter().map(|(seq, _)| *seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "gapless, in order: {seqs:?}"
        );
        let lines = sim.chat_lines(index);
        let mut unique = lines.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), lines.len(), "no line shown twice");
        assert_eq!(
            lines.len(),
            expected_lines,
            "every line arrived at member {index}"
        );
        // Every sender's own lines, in its own order.
        for nick in ["ann", "bob", "cy"] {
            let own: Vec<_> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("{nick}:")))
                .collect();
            let expected: Vec<String> = (0..expected_lines / 3)
                .map(|i| format!("{nick}: {nick} line {i}"))
                .collect();
            assert_eq!(own, expected.iter().collect::<Vec<_>>());
        }
        assert_eq!(
            sim.delivered_ids(index).len(),
            expected_lines / 3,
            "a receipt per line"
        );
    }
}

#[test]
fn three_members_share_one_history_on_a_clean_network() {
    let sim = three_member_chat(1, Faults::default(), 10);
    assert_same_history_exactly_once(&sim, 30);
    assert_eq!(sim.relay.stats().retransmits, 0);
}

#[test]
fn loss_duplication_and_reordering_lose_nothing_and_repeat_nothing() {
    for seed in 0..8 {
        let faults = Faults {
            loss: 0.2,
            duplicate: 0.1,
            jitter: 30,
        };
        let sim = three_member_chat(seed, faults, 12);
        assert_same_history_exactly_once(&sim, 36);
        assert!(sim.relay.stats().retransmits > 0, "the faults were real");
    }
}

#[test]
fn a_device_without_a_clock_learns_the_time_from_the_server() {
    let mut sim = Sim::new(3, Faults::default());
    sim.now = Instant::from_millis(0);
    let device = sim.add_client("sensor", WallClock::default());
    assert_eq!(sim.client(device).state(), ClientState::SyncingClock);
    let joined = sim.run_until(Duration::from_secs(10), |sim| {
        sim.clients[0].as_ref().unwrap().state() == ClientState::Joined
    });
    assert!(joined);
    let unix = sim.client(device).clock().unix_secs(sim.now).unwrap();
    assert!(unix.abs_diff(UNIX_START_MS / 1000) <= 2, "{unix}");
    assert!(
        sim.events[0]
            .iter()
            .any(|e| matches!(e, ClientEvent::ClockSynced { .. }))
    );
    sim.client(device).send("21.5 C").unwrap();
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.chat_lines(0), ["sensor: 21.5 C"]);
}

#[test]
fn clock_jumps_within_the_ttl_are_tolerated_and_beyond_it_are_not() {
    let mut sim = Sim::new(4, Faults::default());
    // 40 s ahead: inside TTL + skew, chat works.
    let ahead = WallClock::synced(sim.now, UNIX_START_MS + 40_000);
    sim.add_client("ahead", ahead);
    // 10 minutes behind: every token looks expired to the server.
    let behind = WallClock::synced(sim.now, UNIX_START_MS - 600_000);
    sim.add_client("behind", behind);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.client(0).state(), ClientState::Joined);
    assert_eq!(sim.client(1).state(), ClientState::Joining);
    assert!(sim.relay.stats().dropped(Dropped::Expired) > 0);
    assert!(
        sim.events[1]
            .iter()
            .any(|e| matches!(e, ClientEvent::NoAnswer { .. }))
    );
}

#[test]
fn silent_members_are_dropped_and_a_lost_server_is_reported() {
    let mut sim = Sim::new(5, Faults::default());
    for nick in ["ann", "bob"] {
        let clock = sim.synced_clock();
        sim.add_client(nick, clock);
    }
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.relay.member_count(), 2);
    // bob's machine vanishes.
    sim.clients[1] = None;
    sim.run_for(Duration::from_secs(35));
    assert_eq!(sim.relay.member_count(), 1);
    assert!(
        sim.transcript(0)
            .iter()
            .any(|(_, l)| l == "* bob timed out")
    );

    // Now the network between ann and the server fails: ann is told.
    sim.muted[0] = true;
    sim.run_for(Duration::from_secs(35));
    assert!(
        sim.events[0]
            .iter()
            .any(|e| matches!(e, ClientEvent::ServerLost { .. }))
    );
    sim.muted[0] = false;
    sim.run_for(Duration::from_secs(10));
    // ann was dropped meanwhile; she rejoins by herself.
    assert!(
        sim.events[0]
            .iter()
            .any(|e| matches!(e, ClientEvent::Rejoining))
    );
    assert_eq!(sim.client(0).state(), ClientState::Joined);
}

#[test]
fn a_restarted_server_is_rejoined_and_nothing_waiting_is_lost() {
    let mut sim = Sim::new(6, Faults::default());
    for nick in ["ann", "bob"] {
        let clock = sim.synced_clock();
        sim.add_client(nick, clock);
    }
    sim.run_for(Duration::from_secs(2));
    sim.client(0).send("before").unwrap();
    sim.run_for(Duration::from_secs(1));
    sim.relay = Sim::new_relay(99, sim.now);
    sim.relay
        .sync_clock(sim.now, UNIX_START_MS + sim.now.millis());
    sim.client(0).send("after").unwrap();
    sim.run_for(Duration::from_secs(15));
    // The new server never knew "before"; "after" waited in ann's outbox, was renumbered
    // for the new server and went through. bob rejoined on his next ping.
    assert_eq!(sim.delivered_ids(0), [1, 2]);
    assert_eq!(sim.chat_lines(0), ["ann: before", "ann: after"]);
    assert!(
        sim.events[1]
            .iter()
            .any(|e| matches!(e, ClientEvent::Rejoining))
    );
    sim.client(0).send("welcome back").unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.chat_lines(1), ["ann: before", "ann: welcome back"]);
}

#[test]
fn replayed_tokens_are_never_delivered_twice() {
    let mut sim = Sim::new(7, Faults::default());
    for nick in ["ann", "bob"] {
        let clock = sim.synced_clock();
        sim.add_client(nick, clock);
    }
    sim.run_for(Duration::from_secs(2));
    sim.client(0).send("pay 5 coins").unwrap();
    sim.run_for(Duration::from_secs(2));
    let captured = sim.captured.clone();
    // Replay everything ann ever sent, from her address and from another.
    for from in [1, 9] {
        for (_, bytes) in &captured {
            let mut bytes = bytes.clone();
            let _ = sim.relay.handle_datagram(sim.now, from, &mut bytes);
        }
    }
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.chat_lines(1), ["ann: pay 5 coins"]);
    assert!(sim.relay.stats().dropped(Dropped::Duplicate) > 0);
    // After the TTL they are refused outright.
    sim.run_for(Duration::from_secs(70));
    let expired_before = sim.relay.stats().dropped(Dropped::Expired);
    for (_, bytes) in &captured {
        let mut bytes = bytes.clone();
        let _ = sim.relay.handle_datagram(sim.now, 9, &mut bytes);
    }
    assert!(sim.relay.stats().dropped(Dropped::Expired) > expired_before);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.chat_lines(1), ["ann: pay 5 coins"]);
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
    let clock = sim.synced_clock();
    sim.add_client("ann", clock);
    sim.run_for(Duration::from_secs(2));
    // What the original Python program sends: Fernet(key).encrypt(b"hi there").
    let mut token = vec![0u8; 200];
    let len = key()
        .encrypt_with_iv(b"hi there", UNIX_START_MS / 1000, [1; 16], &mut token)
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
    assert_eq!(to_legacy, ["server: received as #2 for 2 members"]);
    sim.client(0).send("hello legacy").unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        sim.chat_lines(0),
        ["legacy-1: hi there", "ann: hello legacy"]
    );
}

#[test]
fn a_member_that_never_acknowledges_is_told_what_it_missed() {
    let mut sim = Sim::new(10, Faults::default());
    let config = RelayConfig {
        stall_limit: Duration::from_secs(2),
        ..RelayConfig::default()
    };
    sim.relay = Sim::relay_with(config, 10, sim.now);
    for nick in ["ann", "mute"] {
        let clock = sim.synced_clock();
        sim.add_client(nick, clock);
    }
    sim.run_for(Duration::from_secs(2));
    sim.muted[1] = true;
    for i in 0..40 {
        sim.backlog[0].push(format!("line {i}"));
    }
    // Longer than the stall limit, shorter than the member timeout (30 s): the room
    // waits for the silent member, then moves on without it.
    sim.run_for(Duration::from_secs(15));
    sim.muted[1] = false;
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.chat_lines(0).len(), 40);
    let missed: Vec<_> = sim.events[1]
        .iter()
        .filter(|e| matches!(e, ClientEvent::Missed { .. }))
        .collect();
    assert_eq!(missed.len(), 1, "{missed:?}");
    // What it did get is the tail of the history, in order, with no duplicates.
    let lines = sim.chat_lines(1);
    assert!(
        lines.len() >= 32 - 2 && lines.last().unwrap() == "ann: line 39",
        "{lines:?}"
    );
}

#[test]
fn leaving_lets_waiting_lines_reach_the_room_first() {
    let mut sim = Sim::new(
        11,
        Faults {
            loss: 0.3,
            duplicate: 0.0,
            jitter: 0,
        },
    );
    for nick in ["ann", "bob"] {
        let clock = sim.synced_clock();
        sim.add_client(nick, clock);
    }
    sim.run_until(Duration::from_secs(30), |sim| {
        sim.clients
            .iter()
            .flatten()
            .all(|c| c.state() == ClientState::Joined)
    });
    sim.client(0).send("last words").unwrap();
    let now = sim.now;
    sim.client(0).leave(now);
    assert!(sim.client(0).send("too late").is_err());
    sim.run_for(Duration::from_secs(20));
    assert_eq!(sim.client(0).state(), ClientState::Closed);
    assert!(sim.chat_lines(1).contains(&"ann: last words".to_string()));
    assert!(
        sim.events[0]
            .iter()
            .any(|e| matches!(e, ClientEvent::Closed))
    );
}

#[test]
fn a_join_replayed_after_its_session_went_is_refused() {
    let mut sim = Sim::new(12, Faults::default());
    for nick in ["ann", "bob"] {
        let clock = sim.synced_clock();
        sim.add_client(nick, clock);
    }
    sim.run_for(Duration::from_secs(2));
    let bobs_join = sim
        .captured
        .iter()
        .find(|(from, _)| *from == 2)
        .unwrap()
        .1
        .clone();
    sim.clients[1] = None; // bob's machine vanishes; the server drops him after 30 s
    sim.run_for(Duration::from_secs(31));
    assert_eq!(sim.relay.member_count(), 1);
    let mut replay = bobs_join.clone();
    assert_eq!(
        sim.relay.handle_datagram(sim.now, 66, &mut replay),
        Err(Dropped::Duplicate)
    );
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.relay.member_count(), 1, "no ghost member");
    assert_eq!(
        sim.transcript(0)
            .iter()
            .filter(|(_, l)| l == "* bob joined")
            .count(),
        1
    );
}

#[test]
fn room_messages_are_taken_only_from_the_room_we_are_in() {
    use chat_core::wire::{Body, Repr};
    let mut sim = Sim::new(13, Faults::default());
    let clock = sim.synced_clock();
    sim.add_client("ann", clock);
    sim.run_for(Duration::from_secs(2));
    let ann = sim.client(0);
    let (epoch, next) = (ann.room_epoch(), 1); // seq 0 was "* ann joined"
    let deliver = |room_epoch: u64, seq: u64| {
        let mut plain = [0u8; 128];
        let repr = Repr {
            session: room_epoch,
            body: Body::Deliver {
                seq,
                notice: false,
                nick: "eve",
                text: "psst",
            },
        };
        let len = repr.emit(&mut plain).unwrap();
        let mut token = vec![0u8; 300];
        let n = key()
            .encrypt_with_iv(&plain[..len], UNIX_START_MS / 1000 + 2, [4; 16], &mut token)
            .unwrap()
            .len();
        token.truncate(n);
        token
    };
    let now = sim.now;
    // A room message of another room (another epoch), as a replay from there would be.
    let mut elsewhere = deliver(epoch ^ 1, next);
    assert_eq!(
        sim.client(0).handle_datagram(now, &mut elsewhere),
        Err(Dropped::Unexpected)
    );
    let mut here = deliver(epoch, next);
    assert_eq!(sim.client(0).handle_datagram(now, &mut here), Ok(()));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.chat_lines(0), ["eve: psst"]);
}
