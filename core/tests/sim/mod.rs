//! A deterministic network simulator for the chat state machines, in the style of
//! quinn-proto's test pair: one relay (in storage sized at run time, as the host sizes
//! it), any number of clients, a simulated clock, and a network that loses, duplicates,
//! delays and reorders datagrams from a seeded RNG. Clients can be paused (a stopped
//! process, a closed laptop, a radio out of range: nothing in or out, no timers).
//!
//! Only clients with something to do are polled (a datagram arrived, a timer is due,
//! the test gave them a line), so rooms of thousands run in seconds.

#![allow(dead_code)]

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClientState, GoneSlot, HistoryEntry, MemberSlot,
    PresenceEntry, Relay, RelayConfig, RelayEvent, RelayLimits, RelayStorage, RoomSlot, SendError,
};
use chat_core::time::{Duration, Instant, WallClock};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

pub type Addr = u32;
pub const SERVER: Addr = 0;
pub const TEXT: usize = 256;
pub type TestClient = Client<StdRng, 1, TEXT, 16, 64, 16>;
pub type TestRelay = Relay<'static, Addr, StdRng, 1>;
pub type Event = ClientEvent<TEXT>;

pub const UNIX_START_MS: u64 = 1_700_000_000_000;

pub fn key() -> Key {
    Key::from_bytes(&[7; 32])
}

/// Frame `body` of session `session`, sealed with [`key`] at `unix_secs` (any frame up to
/// a largest datagram).
pub fn sealed(session: u64, body: chat_core::wire::Body<'_>, unix_secs: u64) -> Vec<u8> {
    let mut frame = [0u8; 2048];
    let len = chat_core::wire::Repr { session, body }
        .emit(&mut frame)
        .expect("room");
    let mut out = vec![0u8; 4096];
    let len = key()
        .encrypt_with_iv(&frame[..len], unix_secs, [5; 16], &mut out)
        .expect("room")
        .len();
    out.truncate(len);
    out
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    /// Extra delay, uniform in 0..jitter ms: reorders datagrams.
    pub jitter: u64,
}

impl Faults {
    pub const HOSTILE: Self = Self {
        loss: 0.05,
        duplicate: 0.05,
        jitter: 20,
    };
}

/// A datagram in flight.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Packet {
    at: Instant,
    order: u64,
    from: Addr,
    to: Addr,
    bytes: Vec<u8>,
}

/// Storage for a relay, leaked so the relay can be `'static` (a test process is short).
pub fn storage(limits: RelayLimits) -> RelayStorage<'static, Addr> {
    RelayStorage {
        members: Box::leak(vec![MemberSlot::default(); limits.members].into_boxed_slice()),
        gone: Box::leak(vec![GoneSlot::default(); limits.gone].into_boxed_slice()),
        rooms: Box::leak(vec![RoomSlot::default(); limits.rooms].into_boxed_slice()),
        history: Box::leak(
            vec![HistoryEntry::default(); limits.rooms * limits.history].into_boxed_slice(),
        ),
        history_bytes: Box::leak(vec![0u8; limits.rooms * limits.history_bytes].into_boxed_slice()),
        presence: Box::leak(
            vec![PresenceEntry::default(); limits.rooms * limits.presence].into_boxed_slice(),
        ),
    }
}

pub const SMALL: RelayLimits = RelayLimits {
    members: 64,
    rooms: 8,
    history: 64,
    history_bytes: RelayLimits::history_bytes_for(64),
    presence: 64,
    gone: 64,
};

pub fn limits(members: usize, rooms: usize, history: usize) -> RelayLimits {
    RelayLimits {
        members,
        rooms,
        history,
        history_bytes: RelayLimits::history_bytes_for(history).max(1232),
        presence: 64,
        gone: members,
    }
}

pub struct Peer {
    pub client: Option<TestClient>,
    pub events: Vec<Event>,
    /// When each event was seen.
    pub times: Vec<Instant>,
    pub paused: bool,
    /// The application reads its events (when not, they wait in the client).
    pub reading: bool,
    /// Lines still to hand to `send` (when the outbox has room).
    pub backlog: Vec<String>,
    /// Every datagram it sent, to replay later.
    pub captured: Vec<Vec<u8>>,
    /// Ids `send` returned, with the text.
    pub sent: Vec<(u32, String)>,
}

pub struct Sim {
    pub now: Instant,
    pub rng: StdRng,
    pub faults: Faults,
    pub latency: Duration,
    packets: BinaryHeap<Reverse<Packet>>,
    order: u64,
    pub relay: TestRelay,
    pub peers: Vec<Peer>,
    /// Clients to poll on the next step.
    dirty: Vec<bool>,
    dirty_list: Vec<usize>,
    /// (when, client): a client's timer, possibly stale.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Datagrams the relay sent, by destination: (count, bytes).
    pub sent_to: BTreeMap<Addr, (u64, u64)>,
    /// Datagrams the relay sent: every one, with its length, if recording.
    pub record_relay: bool,
    pub relay_out: Vec<(Addr, usize)>,
    pub key: Key,
    pub seed: u64,
    /// Datagrams that arrived for addresses that are no simulated client, in order.
    pub outside: Vec<(Addr, Vec<u8>)>,
    /// What the relay reported for its log, in order.
    pub relay_events: Vec<RelayEvent<Addr>>,
}

impl Sim {
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self::with(seed, faults, RelayConfig::default(), SMALL)
    }

    pub fn with(seed: u64, faults: Faults, config: RelayConfig, limits: RelayLimits) -> Self {
        let now = Instant::from_millis(0);
        Self {
            now,
            rng: StdRng::seed_from_u64(seed),
            faults,
            latency: Duration::from_millis(5),
            packets: BinaryHeap::new(),
            order: 0,
            relay: Self::relay_with(config, limits, KeyRing::new(key()), seed, now),
            peers: Vec::new(),
            dirty: Vec::new(),
            dirty_list: Vec::new(),
            timers: BinaryHeap::new(),
            sent_to: BTreeMap::new(),
            record_relay: false,
            relay_out: Vec::new(),
            key: key(),
            seed,
            outside: Vec::new(),
            relay_events: Vec::new(),
        }
    }

    pub fn relay_with(
        config: RelayConfig,
        limits: RelayLimits,
        keys: KeyRing<1>,
        seed: u64,
        now: Instant,
    ) -> TestRelay {
        Relay::new(
            config,
            keys,
            StdRng::seed_from_u64(seed ^ 0xAAAA),
            WallClock::synced(now, UNIX_START_MS + now.millis()),
            storage(limits),
        )
        .expect("consistent storage")
    }

    pub fn synced_clock(&self) -> WallClock {
        WallClock::synced(self.now, UNIX_START_MS + self.now.millis())
    }

    pub fn addr(index: usize) -> Addr {
        Addr::try_from(index + 1).unwrap()
    }

    pub fn add_client(&mut self, nick: &str, room: &str) -> usize {
        let clock = self.synced_clock();
        self.add_client_with(
            ClientConfig::new(nick, room),
            KeyRing::new(self.key.clone()),
            clock,
        )
    }

    pub fn add_client_with(
        &mut self,
        config: ClientConfig<'_>,
        keys: KeyRing<1>,
        clock: WallClock,
    ) -> usize {
        let index = self.peers.len();
        let client = Client::new(
            &config,
            keys,
            StdRng::seed_from_u64(self.seed.wrapping_mul(7919) ^ (1000 + index as u64)),
            clock,
            self.now,
        )
        .expect("valid names");
        self.peers.push(Peer {
            client: Some(client),
            events: Vec::new(),
            times: Vec::new(),
            paused: false,
            reading: true,
            backlog: Vec::new(),
            captured: Vec::new(),
            sent: Vec::new(),
        });
        self.dirty.push(false);
        self.touch(index);
        index
    }

    pub fn touch(&mut self, index: usize) {
        if !self.dirty[index] {
            self.dirty[index] = true;
            self.dirty_list.push(index);
        }
    }

    pub fn client(&mut self, index: usize) -> &mut TestClient {
        self.touch(index);
        self.peers[index].client.as_mut().unwrap()
    }

    /// Queues a line for client `index` (sent as soon as its outbox has room).
    pub fn say(&mut self, index: usize, text: impl Into<String>) {
        self.peers[index].backlog.push(text.into());
        self.touch(index);
    }

    pub fn pause(&mut self, index: usize) {
        self.peers[index].paused = true;
    }

    pub fn resume(&mut self, index: usize) {
        self.peers[index].paused = false;
        self.touch(index);
        let now = self.now;
        if let Some(client) = self.peers[index].client.as_mut() {
            client.handle_timeout(now);
        }
    }

    pub fn send(&mut self, from: Addr, to: Addr, bytes: Vec<u8>) {
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
            self.order += 1;
            self.packets.push(Reverse(Packet {
                at: self.now + self.latency + Duration::from_millis(jitter),
                order: self.order,
                from,
                to,
                bytes: bytes.clone(),
            }));
        }
    }

    /// Everything the relay has to send now goes out.
    pub fn flush_relay(&mut self) {
        let mut buf = [0u8; 1232];
        while let Some((to, len)) = self.relay.poll_transmit(self.now, &mut buf) {
            let entry = self.sent_to.entry(to).or_default();
            entry.0 += 1;
            entry.1 += len as u64;
            if self.record_relay {
                self.relay_out.push((to, len));
                if std::env::var_os("SIM_TRACE").is_some() {
                    let mut plain = vec![0u8; 2048];
                    if let Ok(o) = self.key.decrypt(&buf[..len], None, &mut plain) {
                        eprintln!(
                            "{:?} relay->{to}: {:?}",
                            self.now,
                            chat_core::wire::Repr::parse(o.plaintext).map(|r| r.body)
                        );
                    }
                }
            }
            self.send(SERVER, to, buf[..len].to_vec());
        }
        while let Some(event) = self.relay.poll_event() {
            self.relay_events.push(event);
        }
    }

    fn poll_client(&mut self, index: usize) {
        let now = self.now;
        let mut buf = [0u8; 1232];
        let peer = &mut self.peers[index];
        if peer.paused {
            return;
        }
        let Some(client) = peer.client.as_mut() else {
            return;
        };
        while let Some(line) = peer.backlog.first() {
            match client.send(line) {
                Ok(id) => {
                    let line = peer.backlog.remove(0);
                    peer.sent.push((id, line));
                }
                Err(SendError::QueueFull) => break,
                Err(e) => panic!("send {line:?}: {e}"),
            }
        }
        let mut out = Vec::new();
        while let Some(len) = client.poll_transmit(now, &mut buf) {
            out.push(buf[..len].to_vec());
        }
        while peer.reading
            && let Some(event) = client.poll_event()
        {
            peer.events.push(event);
            peer.times.push(now);
        }
        if let Some(at) = client.poll_timeout() {
            self.timers.push(Reverse((at, index)));
        }
        for bytes in out {
            if self.record_relay && std::env::var_os("SIM_TRACE").is_some() {
                let mut plain = vec![0u8; 2048];
                if let Ok(o) = self.key.decrypt(&bytes, None, &mut plain) {
                    eprintln!(
                        "{:?} {}->relay: {:?}",
                        self.now,
                        index + 1,
                        chat_core::wire::Repr::parse(o.plaintext).map(|r| r.body)
                    );
                }
            }
            self.peers[index].captured.push(bytes.clone());
            self.send(Self::addr(index), SERVER, bytes);
        }
    }

    /// Lets every endpoint transmit and report, then advances time to the next thing
    /// that happens (at most to `limit`) and delivers what is due.
    pub fn step(&mut self, limit: Instant) {
        self.flush_relay();
        for index in std::mem::take(&mut self.dirty_list) {
            self.dirty[index] = false;
            self.poll_client(index);
        }
        self.flush_relay();

        let mut next = limit;
        if let Some(at) = self.relay.poll_timeout() {
            next = next.min(at);
        }
        if let Some(Reverse(packet)) = self.packets.peek() {
            next = next.min(packet.at);
        }
        if let Some(Reverse((at, _))) = self.timers.peek() {
            next = next.min(*at);
        }
        self.now = next.max(self.now);

        while self
            .packets
            .peek()
            .is_some_and(|Reverse(p)| p.at <= self.now)
        {
            let Reverse(mut packet) = self.packets.pop().unwrap();
            if packet.to == SERVER {
                let _ = self
                    .relay
                    .handle_datagram(self.now, packet.from, &mut packet.bytes);
            } else {
                let index = packet.to as usize - 1;
                let Some(peer) = self.peers.get_mut(index) else {
                    // An address the simulation does not run (a raw socket, a legacy
                    // peer): kept for the test to read.
                    self.outside.push((packet.to, packet.bytes));
                    continue;
                };
                if peer.paused {
                    continue;
                }
                if let Some(client) = peer.client.as_mut() {
                    let _ = client.handle_datagram(self.now, &mut packet.bytes);
                    self.touch(index);
                }
            }
        }
        self.relay.handle_timeout(self.now);
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= self.now)
        {
            let Reverse((_, index)) = self.timers.pop().unwrap();
            let now = self.now;
            let peer = &mut self.peers[index];
            if peer.paused {
                continue;
            }
            if let Some(client) = peer.client.as_mut()
                && client.poll_timeout().is_some_and(|at| at <= now)
            {
                client.handle_timeout(now);
                self.touch(index);
            }
        }
    }

    pub fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.step(end);
        }
        self.step(end);
    }

    /// Runs until `done` or `span` passed; whether `done`. Once done, the endpoints
    /// get one more turn to report what they saw.
    pub fn run_until(&mut self, span: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + span;
        while self.now < end && !done(self) {
            self.step(end);
        }
        let now = self.now;
        self.step(now);
        done(self)
    }

    pub fn state(&self, index: usize) -> ClientState {
        self.peers[index].client.as_ref().unwrap().state()
    }

    pub fn all_joined(&self) -> bool {
        self.peers.iter().all(|p| {
            p.client
                .as_ref()
                .is_some_and(|c| c.state() == ClientState::Joined)
        })
    }

    /// Runs until every client is in its room.
    pub fn join_all(&mut self, within: Duration) {
        assert!(
            self.run_until(within, Self::all_joined),
            "everyone joins within {within:?} (seed {})",
            self.seed
        );
    }

    /// Room messages client `index` has shown: (seq, "nick: text").
    pub fn transcript(&self, index: usize) -> Vec<(u64, String)> {
        self.peers[index]
            .events
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Message {
                    seq, nick, text, ..
                } => Some((*seq, format!("{nick}: {text}"))),
                _ => None,
            })
            .collect()
    }

    pub fn lines(&self, index: usize) -> Vec<String> {
        self.transcript(index).into_iter().map(|(_, l)| l).collect()
    }

    /// The outcome of every line client `index` sent: id → (seq, recipients).
    pub fn delivered(&self, index: usize) -> BTreeMap<u32, (u64, u32)> {
        self.peers[index]
            .events
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Delivered {
                    id,
                    seq,
                    recipients,
                } => Some((*id, (*seq, *recipients))),
                _ => None,
            })
            .collect()
    }

    pub fn count_events(&self, index: usize, wanted: impl Fn(&Event) -> bool) -> usize {
        self.peers[index]
            .events
            .iter()
            .filter(|e| wanted(e))
            .count()
    }

    /// Whether every client has handed over and got an outcome for every line.
    pub fn all_answered(&self) -> bool {
        self.peers.iter().all(|p| {
            p.backlog.is_empty() && p.client.as_ref().is_none_or(|c| c.unacknowledged() == 0)
        })
    }
}

/// Checks the room promise across `members`: whoever saw number `n` saw the same line;
/// each member saw its numbers gapless and in order (Missed excepted), nothing twice;
/// every line a member sent got a Receipt whose seq is where that line stands in the
/// room. Returns the room's history (seq → line).
pub fn assert_one_history(sim: &Sim, members: &[usize]) -> BTreeMap<u64, String> {
    let mut by_seq: BTreeMap<u64, String> = BTreeMap::new();
    for &index in members {
        for (seq, line) in sim.transcript(index) {
            let seen = by_seq.entry(seq).or_insert_with(|| line.clone());
            assert_eq!(
                *seen, line,
                "member {index} saw a different line as #{seq} (seed {})",
                sim.seed
            );
        }
    }
    for &index in members {
        let mut expected_next: Option<u64> = None;
        for event in &sim.peers[index].events {
            match event {
                ClientEvent::Message { seq, .. } => {
                    if let Some(next) = expected_next {
                        assert_eq!(*seq, next, "member {index}: gapless, in order");
                    }
                    expected_next = Some(seq + 1);
                }
                ClientEvent::Missed { from, to } => {
                    if let Some(next) = expected_next {
                        assert_eq!(*from, next, "member {index}: Missed starts where it was");
                    }
                    expected_next = Some(*to);
                }
                ClientEvent::Joined {
                    rejoined: true,
                    resumed: false,
                    ..
                } => expected_next = None,
                _ => {}
            }
        }
        let lines = sim.lines(index);
        let mut unique = lines.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), lines.len(), "member {index}: no line twice");
        // Receipts name where the line stands.
        let nick = member_nick(sim, index);
        for (id, (seq, _)) in sim.delivered(index) {
            let text = sent_text(sim, index, id);
            if let Some(line) = by_seq.get(&seq) {
                assert_eq!(
                    line,
                    &format!("{nick}: {text}"),
                    "member {index}'s receipt for line {id} names #{seq}"
                );
            }
        }
    }
    by_seq
}

/// Member `index`'s nickname (empty if it has no client).
fn member_nick(sim: &Sim, index: usize) -> String {
    sim.peers[index]
        .client
        .as_ref()
        .map(|c| c.nick().to_owned())
        .unwrap_or_default()
}

/// The text of line `id` that member `index` sent (a receipt names only lines it sent).
fn sent_text(sim: &Sim, index: usize, id: u32) -> &str {
    &sim.peers[index]
        .sent
        .iter()
        .find(|(i, _)| *i == id)
        .expect("a receipt for a line we sent")
        .1
}

/// [`assert_one_history`] for a room whose membership did not change while its lines
/// were sent (everyone joined first, nobody left or paused): every member saw every line
/// and every line it sent got a Receipt, whose `seq` is where that line stands in the
/// room's history and whose `recipients` is the room's size (PROTOCOL.md "Sending a
/// line": the room's members at that moment, the sender included).
pub fn assert_stable_room(sim: &Sim, members: &[usize]) -> BTreeMap<u64, String> {
    let history = assert_one_history(sim, members);
    for &index in members {
        assert_eq!(
            sim.transcript(index).len(),
            history.len(),
            "member {index} saw every line (seed {})",
            sim.seed
        );
        let nick = member_nick(sim, index);
        let receipts = sim.delivered(index);
        assert_eq!(
            receipts.len(),
            sim.peers[index].sent.len(),
            "member {index}: a receipt per line"
        );
        for (id, (seq, recipients)) in receipts {
            let text = sent_text(sim, index, id);
            assert_eq!(
                history.get(&seq),
                Some(&format!("{nick}: {text}")),
                "member {index}'s receipt for line {id} names #{seq}"
            );
            assert_eq!(
                recipients as usize,
                members.len(),
                "member {index}'s receipt for line {id} counts the room"
            );
        }
    }
    history
}
