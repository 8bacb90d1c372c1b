//! Rooms served by several relays in external-ordering mode, over a simulated network
//! (seeded loss, duplication, reordering) and a fake in-process "stream" per room that
//! orders the relays' proposals as JetStream would: one sequence per room from 1,
//! deduplicated by (origin session, msg_id), every line readable again by sequence and
//! the last lines of a session found by origin.
//!
//! What is checked is the promise: members on different servers see the same
//! lines with the same sequence numbers, exactly once and in order; every line gets
//! exactly one outcome, whose seq is where it is in the room; a member whose server dies
//! moves to another and loses nothing; a restarted server continues the numbering.

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClientState, ClusterRequest, ClusterStorage, GoneSlot,
    HistoryEntry, MemberSlot, OrderError, PresenceEntry, ProposalSlot, Relay, RelayConfig,
    RelayLimits, RelayStorage, RemoteRoom, RemoteSlot, RoomSlot, SendError,
};
use chat_core::time::{Duration, Instant, WallClock};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

type Addr = u32;
const TEXT: usize = 256;
type TestClient = Client<StdRng, 1, TEXT, 16, 64, 16>;
type TestRelay = Relay<'static, Addr, StdRng, 1>;
type Event = ClientEvent<TEXT>;
const UNIX_START_MS: u64 = 1_700_000_000_000;
const SERVER_BASE: Addr = 1000;

fn key() -> Key {
    Key::from_bytes(&[9; 32])
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn leak<T: Clone>(value: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![value; n].into_boxed_slice())
}

const LIMITS: RelayLimits = RelayLimits {
    members: 64,
    rooms: 4,
    history: 64,
    history_bytes: RelayLimits::history_bytes_for(64),
    presence: 64,
    gone: 64,
};

fn relay(seed: u64, now: Instant) -> TestRelay {
    let l = LIMITS;
    let storage = RelayStorage {
        members: leak(MemberSlot::default(), l.members),
        gone: leak(GoneSlot::default(), l.gone),
        rooms: leak(RoomSlot::default(), l.rooms),
        history: leak(HistoryEntry::default(), l.rooms * l.history),
        history_bytes: leak(0u8, l.rooms * l.history_bytes),
        presence: leak(PresenceEntry::default(), l.rooms * l.presence),
    };
    let config = RelayConfig::default();
    let cluster = ClusterStorage {
        proposals: leak(ProposalSlot::default(), 8),
        proposal_bytes: leak(0u8, 8 * config.max_datagram),
        remotes: leak(RemoteSlot::default(), 128),
        remote_rooms: leak(RemoteRoom::default(), l.rooms),
    };
    Relay::new(
        config,
        KeyRing::new(key()),
        StdRng::seed_from_u64(seed),
        WallClock::synced(now, UNIX_START_MS + now.millis()),
        storage,
    )
    .expect("storage")
    .with_external_ordering(cluster)
    .expect("cluster storage")
}

/// A room's stream: what JetStream keeps for it.
#[derive(Default)]
struct Stream {
    /// Message `seq` is `tokens[seq - 1]`.
    tokens: Vec<Vec<u8>>,
    /// (origin, msg_id) → seq: the deduplication window (unbounded here).
    ids: HashMap<(u64, u32), u64>,
    /// Every (msg_id, seq) by origin, in order.
    by_origin: HashMap<u64, Vec<(u32, u64)>>,
}

impl Stream {
    fn epoch(room: &str) -> u64 {
        room.bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
            .max(1)
    }
}

struct Server {
    relay: Option<TestRelay>,
    /// Open rooms and the next sequence number to feed.
    cursors: BTreeMap<String, u64>,
}

struct Peer {
    client: TestClient,
    server: usize,
    events: Vec<Event>,
    backlog: Vec<String>,
    sent: Vec<(u32, String)>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Packet {
    at: Instant,
    order: u64,
    from: Addr,
    to: Addr,
    bytes: Vec<u8>,
}

struct Cluster {
    now: Instant,
    rng: StdRng,
    loss: f64,
    duplicate: f64,
    jitter: u64,
    /// Every proposal is published this many times (a driver retrying).
    publish_copies: usize,
    packets: BinaryHeap<Reverse<Packet>>,
    order: u64,
    servers: Vec<Server>,
    streams: BTreeMap<String, Stream>,
    peers: Vec<Peer>,
    seed: u64,
}

impl Cluster {
    fn new(seed: u64, servers: usize) -> Self {
        let now = Instant::from_millis(0);
        Self {
            now,
            rng: StdRng::seed_from_u64(seed),
            loss: 0.0,
            duplicate: 0.0,
            jitter: 0,
            publish_copies: 1,
            packets: BinaryHeap::new(),
            order: 0,
            servers: (0..servers)
                .map(|i| Server {
                    relay: Some(relay(seed ^ ((i as u64 + 1) * 0x9E37), now)),
                    cursors: BTreeMap::new(),
                })
                .collect(),
            streams: BTreeMap::new(),
            peers: Vec::new(),
            seed,
        }
    }

    fn hostile(mut self) -> Self {
        self.loss = 0.05;
        self.duplicate = 0.05;
        self.jitter = 20;
        self
    }

    fn add_client(&mut self, nick: &str, room: &str, server: usize) -> usize {
        let index = self.peers.len();
        let client = Client::new(
            &ClientConfig::new(nick, room),
            KeyRing::new(key()),
            StdRng::seed_from_u64(self.seed.wrapping_mul(31) ^ index as u64),
            WallClock::synced(self.now, UNIX_START_MS + self.now.millis()),
            self.now,
        )
        .expect("names");
        self.peers.push(Peer {
            client,
            server,
            events: Vec::new(),
            backlog: Vec::new(),
            sent: Vec::new(),
        });
        index
    }

    fn say(&mut self, peer: usize, text: &str) {
        self.peers[peer].backlog.push(text.to_owned());
    }

    fn send(&mut self, from: Addr, to: Addr, bytes: Vec<u8>) {
        let copies = if self.rng.random_bool(self.loss) {
            0
        } else if self.rng.random_bool(self.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.jitter > 0 {
                self.rng.random_range(0..self.jitter)
            } else {
                0
            };
            self.order += 1;
            self.packets.push(Reverse(Packet {
                at: self.now + Duration::from_millis(5 + jitter),
                order: self.order,
                from,
                to,
                bytes: bytes.clone(),
            }));
        }
    }

    /// Server `s`'s driver: answers requests, publishes proposals, feeds ordered lines.
    fn drive(&mut self, s: usize) {
        let now = self.now;
        let Some(relay) = self.servers[s].relay.as_mut() else {
            return;
        };
        let mut presence = Vec::new();
        let requests: Vec<ClusterRequest> = std::iter::from_fn(|| relay.poll_request()).collect();
        for request in requests {
            match request {
                ClusterRequest::Open { room, resume } => {
                    let epoch = Stream::epoch(&room);
                    let stream = self.streams.entry(room.to_string()).or_default();
                    let end = stream.tokens.len() as u64 + 1;
                    let start = match resume {
                        Some(r) if r.epoch == epoch => r.next_seq.clamp(1, end),
                        _ => end,
                    };
                    self.servers[s].cursors.insert(room.to_string(), start);
                    // Who is there already (the roster a real driver asks the others for).
                    let mut roster = Vec::new();
                    for (o, other) in self.servers.iter().enumerate() {
                        if let (true, Some(relay)) = (o != s, other.relay.as_ref()) {
                            for (session, nick) in relay.local_roster(&room) {
                                roster.push((o as u64, session, nick.to_owned()));
                            }
                        }
                    }
                    let relay = self.servers[s].relay.as_mut().unwrap();
                    let roster = roster.iter().map(|(o, s, n)| (*o, *s, n.as_str()));
                    assert!(relay.open_room(now, &room, epoch, start, roster));
                }
                ClusterRequest::Close { room } => {
                    self.servers[s].cursors.remove(room.as_str());
                }
                ClusterRequest::Lookup { room, session } => {
                    let stream = self.streams.entry(room.to_string()).or_default();
                    let lines = stream.by_origin.get(&session).cloned().unwrap_or_default();
                    let last: Vec<(u32, u64)> =
                        lines.iter().rev().take(16).rev().copied().collect();
                    let relay = self.servers[s].relay.as_mut().unwrap();
                    relay.session_found(now, &room, session, &last);
                }
                ClusterRequest::Joined {
                    room,
                    session,
                    nick,
                } => presence.push((room.to_string(), (session, nick.to_string(), None))),
                ClusterRequest::Left {
                    room,
                    session,
                    nick,
                    kind,
                } => presence.push((room.to_string(), (session, nick.to_string(), Some(kind)))),
            }
        }
        for (room, (session, nick, kind)) in presence {
            {
                {
                    for (o, other) in self.servers.iter_mut().enumerate() {
                        if o == s {
                            continue;
                        }
                        if let Some(relay) = other.relay.as_mut() {
                            match kind {
                                None => relay.remote_joined(now, &room, s as u64, session, &nick),
                                Some(kind) => {
                                    relay.remote_left(now, &room, s as u64, session, kind)
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut buf = [0u8; 1232];
        let relay = self.servers[s].relay.as_mut().unwrap();
        while let Some(p) = relay.poll_proposal(&mut buf) {
            let stream = self.streams.entry(p.room.to_string()).or_default();
            for _ in 0..self.publish_copies {
                if stream.ids.contains_key(&(p.origin, p.msg_id)) {
                    continue;
                }
                stream.tokens.push(buf[..p.len].to_vec());
                let seq = stream.tokens.len() as u64;
                stream.ids.insert((p.origin, p.msg_id), seq);
                stream
                    .by_origin
                    .entry(p.origin)
                    .or_default()
                    .push((p.msg_id, seq));
            }
        }
    }

    fn feed(&mut self, s: usize) {
        let now = self.now;
        let server = &mut self.servers[s];
        let Some(relay) = server.relay.as_mut() else {
            return;
        };
        let mut closed = Vec::new();
        for (room, cursor) in server.cursors.iter_mut() {
            let Some(stream) = self.streams.get(room) else {
                continue;
            };
            while let Some(token) = stream.tokens.get(*cursor as usize - 1) {
                let mut token = token.clone();
                match relay.handle_ordered(now, room, *cursor, &mut token) {
                    Ok(_) => *cursor += 1,
                    Err(OrderError::Busy { .. }) => break,
                    Err(OrderError::NotOpen) => {
                        // Closed since: its Close request is on its way.
                        closed.push(room.clone());
                        break;
                    }
                    Err(e) => panic!("server {s}, {room} #{cursor}: {e}"),
                }
                // Now and then a driver feeds a line twice (a consumer redelivering).
                if self.duplicate > 0.0 && *cursor > 1 && (*cursor).is_multiple_of(7) {
                    let mut again = stream.tokens[*cursor as usize - 2].clone();
                    let _ = relay.handle_ordered(now, room, *cursor - 1, &mut again);
                }
            }
        }
        for room in closed {
            server.cursors.remove(&room);
        }
    }

    fn flush_servers(&mut self) {
        for s in 0..self.servers.len() {
            self.drive(s);
        }
        for s in 0..self.servers.len() {
            self.feed(s);
        }
        let mut buf = [0u8; 1232];
        for s in 0..self.servers.len() {
            let now = self.now;
            let mut out = Vec::new();
            if let Some(relay) = self.servers[s].relay.as_mut() {
                while let Some((to, len)) = relay.poll_transmit(now, &mut buf) {
                    out.push((to, buf[..len].to_vec()));
                }
                while relay.poll_event().is_some() {}
            }
            for (to, bytes) in out {
                self.send(SERVER_BASE + s as Addr, to, bytes);
            }
        }
    }

    fn poll_clients(&mut self) {
        let now = self.now;
        let mut buf = [0u8; 1232];
        let mut out = Vec::new();
        for (i, peer) in self.peers.iter_mut().enumerate() {
            while let Some(line) = peer.backlog.first() {
                match peer.client.send(line) {
                    Ok(id) => {
                        let line = peer.backlog.remove(0);
                        peer.sent.push((id, line));
                    }
                    Err(SendError::QueueFull) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            if peer.client.poll_timeout().is_some_and(|at| at <= now) {
                peer.client.handle_timeout(now);
            }
            while let Some(len) = peer.client.poll_transmit(now, &mut buf) {
                out.push((
                    i as Addr + 1,
                    SERVER_BASE + peer.server as Addr,
                    buf[..len].to_vec(),
                ));
            }
            while let Some(event) = peer.client.poll_event() {
                peer.events.push(event);
            }
        }
        for (from, to, bytes) in out {
            self.send(from, to, bytes);
        }
    }

    fn step(&mut self, limit: Instant) {
        self.flush_servers();
        self.poll_clients();
        self.flush_servers();
        let mut next = limit.min(self.now + Duration::from_millis(10));
        for server in &self.servers {
            if let Some(at) = server.relay.as_ref().and_then(|r| r.poll_timeout()) {
                next = next.min(at);
            }
        }
        for peer in &self.peers {
            if let Some(at) = peer.client.poll_timeout() {
                next = next.min(at);
            }
        }
        if let Some(Reverse(p)) = self.packets.peek() {
            next = next.min(p.at);
        }
        self.now = next.max(self.now);
        for server in self.servers.iter_mut() {
            if let Some(relay) = server.relay.as_mut()
                && relay.poll_timeout().is_some_and(|at| at <= self.now)
            {
                relay.handle_timeout(self.now);
            }
        }
        while self
            .packets
            .peek()
            .is_some_and(|Reverse(p)| p.at <= self.now)
        {
            let Reverse(mut p) = self.packets.pop().unwrap();
            if p.to >= SERVER_BASE {
                if let Some(relay) = self.servers[(p.to - SERVER_BASE) as usize].relay.as_mut() {
                    let _ = relay.handle_datagram(self.now, p.from, &mut p.bytes);
                }
            } else {
                let peer = &mut self.peers[p.to as usize - 1];
                // Datagrams from a server the client no longer uses are still taken: they
                // are valid tokens of the same chat (a real client's socket is connected,
                // so it would not see them; this is harsher).
                let _ = peer.client.handle_datagram(self.now, &mut p.bytes);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step(end);
        }
    }

    /// Runs until every client is joined, its backlog sent and every line answered, and
    /// every server has fed every line (at most `d`).
    fn settle(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step(end);
            let quiet = self.peers.iter().all(|p| {
                p.client.state() == ClientState::Joined
                    && p.backlog.is_empty()
                    && p.client.unacknowledged() == 0
            }) && self.servers.iter().all(|s| {
                s.cursors.iter().all(|(room, &c)| {
                    self.streams
                        .get(room)
                        .is_none_or(|st| c > st.tokens.len() as u64)
                })
            });
            if quiet {
                // A few more rounds for the last deliveries and acks.
                self.run_for(secs(2));
                return;
            }
        }
        panic!("not settled within {d:?}: {}", self.describe());
    }

    fn describe(&self) -> String {
        let peers: Vec<String> = self
            .peers
            .iter()
            .map(|p| {
                format!(
                    "{}@{} {:?} backlog {} unanswered {}",
                    p.client.nick(),
                    p.server,
                    p.client.state(),
                    p.backlog.len(),
                    p.client.unacknowledged()
                )
            })
            .collect();
        format!("{peers:?}")
    }

    /// Moves client `peer` to server `to` (its server died or it chose another).
    fn fail_over(&mut self, peer: usize, to: usize) {
        let now = self.now;
        let p = &mut self.peers[peer];
        p.server = to;
        p.client.rejoin(now);
    }

    /// The room as member `peer` saw it: (seq, nick, text), in order.
    fn seen(&self, peer: usize) -> Vec<(u64, String, String)> {
        self.peers[peer]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message {
                    seq, nick, text, ..
                } => Some((*seq, nick.to_string(), text.to_string())),
                _ => None,
            })
            .collect()
    }

    /// The outcome of each line `peer` sent: id → seq (Delivered), and nothing else.
    fn outcomes(&self, peer: usize) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        for e in &self.peers[peer].events {
            match e {
                ClientEvent::Delivered { id, seq, .. } => {
                    assert!(
                        out.insert(*id, *seq).is_none(),
                        "two outcomes for line {id}"
                    );
                }
                ClientEvent::Refused { id, .. } | ClientEvent::Undelivered { id, .. } => {
                    panic!(
                        "line {id} of {} did not reach the room: {e:?}",
                        self.peers[peer].client.nick()
                    )
                }
                _ => {}
            }
        }
        out
    }
}

/// Every member saw the same sequence, every line of every member exactly once at the
/// seq its outcome said, in each sender's order.
fn assert_one_room(c: &Cluster, members: &[usize], first_seq: u64) {
    let reference = c.seen(members[0]);
    let seqs: Vec<u64> = reference.iter().map(|(s, _, _)| *s).collect();
    let expected: Vec<u64> = (first_seq..first_seq + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "contiguous, in order, once");
    for &m in members {
        assert_eq!(
            c.seen(m),
            reference,
            "{} saw another room",
            c.peers[m].client.nick()
        );
    }
    let by_seq: BTreeMap<u64, (String, String)> = reference
        .iter()
        .map(|(s, n, t)| (*s, (n.clone(), t.clone())))
        .collect();
    let mut total = 0;
    for &m in members {
        let outcomes = c.outcomes(m);
        let nick = c.peers[m].client.nick().to_owned();
        assert_eq!(
            outcomes.len(),
            c.peers[m].sent.len(),
            "{nick}: one outcome per line"
        );
        let mut last = 0;
        for (id, text) in &c.peers[m].sent {
            let seq = outcomes[id];
            assert_eq!(
                by_seq[&seq],
                (nick.clone(), text.clone()),
                "{nick}'s line {id}"
            );
            assert!(seq > last, "{nick}'s lines in its order");
            last = seq;
            total += 1;
        }
    }
    assert_eq!(total, reference.len(), "nothing else in the room");
}

#[test]
fn members_on_different_servers_see_one_room() {
    for seed in 0..4 {
        let mut c = Cluster::new(seed, 3).hostile();
        let members: Vec<usize> = ["ann", "bob", "cid", "dan", "eve", "fay"]
            .iter()
            .enumerate()
            .map(|(i, nick)| c.add_client(nick, "lobby", i % 3))
            .collect();
        c.settle(secs(20));
        for round in 0..15 {
            for &m in &members[..4] {
                c.say(m, &format!("{} says {round}", c.peers[m].client.nick()));
            }
            c.run_for(Duration::from_millis(30));
        }
        c.settle(secs(60));
        assert_one_room(&c, &members, 1);
        assert_eq!(c.streams["lobby"].tokens.len(), 60, "seed {seed}");
        for &m in &members {
            assert_eq!(c.peers[m].client.members(), 6, "counted wherever they are");
        }
    }
}

#[test]
fn proposals_published_twice_and_lines_fed_twice_are_stored_and_shown_once() {
    let mut c = Cluster::new(11, 2).hostile();
    c.publish_copies = 2;
    let members: Vec<usize> = (0..4)
        .map(|i| c.add_client(&format!("m{i}"), "room", i % 2))
        .collect();
    c.settle(secs(20));
    for round in 0..20 {
        for &m in &members {
            c.say(m, &format!("{m}/{round}"));
        }
        c.run_for(Duration::from_millis(20));
    }
    c.settle(secs(60));
    assert_eq!(c.streams["room"].tokens.len(), 80);
    assert_one_room(&c, &members, 1);
}

#[test]
fn members_of_a_dead_server_move_to_another_and_lose_nothing() {
    for seed in 0..4 {
        let mut c = Cluster::new(100 + seed, 2).hostile();
        let members: Vec<usize> = (0..4)
            .map(|i| c.add_client(&format!("m{i}"), "room", i % 2))
            .collect();
        c.settle(secs(20));
        for round in 0..30 {
            for &m in &members {
                c.say(m, &format!("{m}/{round}"));
            }
            c.run_for(Duration::from_millis(15));
            if round == 12 {
                // Server 0 dies mid-stream: its members go to server 1.
                c.servers[0].relay = None;
                c.servers[0].cursors.clear();
                c.run_for(Duration::from_millis(200));
                for &m in &members {
                    if c.peers[m].server == 0 {
                        c.fail_over(m, 1);
                    }
                }
            }
        }
        c.settle(secs(90));
        assert_one_room(&c, &members, 1);
        assert_eq!(c.streams["room"].tokens.len(), 120, "seed {seed}");
        for &m in &members {
            assert_eq!(
                c.peers[m].client.members(),
                4,
                "seed {seed}: {}",
                c.describe()
            );
        }
    }
}

#[test]
fn a_restarted_server_continues_the_numbering_and_its_members_resume() {
    let mut c = Cluster::new(7, 2).hostile();
    let members: Vec<usize> = (0..4)
        .map(|i| c.add_client(&format!("m{i}"), "room", i % 2))
        .collect();
    c.settle(secs(20));
    for round in 0..20 {
        for &m in &members {
            c.say(m, &format!("{m}/{round}"));
        }
        c.run_for(Duration::from_millis(15));
        if round == 8 {
            // Server 0 restarts with nothing: its members find it again.
            let now = c.now;
            c.servers[0].relay = Some(relay(777, now));
            c.servers[0].cursors.clear();
        }
    }
    c.settle(secs(90));
    assert_one_room(&c, &members, 1);
    assert_eq!(c.streams["room"].tokens.len(), 80);
    let rejoined = c.peers[members[0]].events.iter().any(|e| {
        matches!(
            e,
            ClientEvent::Joined {
                rejoined: true,
                resumed: true,
                ..
            }
        )
    });
    assert!(
        rejoined,
        "resumed at the restarted server: {:?}",
        c.peers[0].events
    );
}

#[test]
fn the_member_list_and_presence_span_the_servers() {
    let mut c = Cluster::new(3, 2);
    let ann = c.add_client("ann", "room", 0);
    c.settle(secs(10));
    let bob = c.add_client("bob", "room", 1);
    let ann2 = c.add_client("ann", "room", 1);
    c.settle(secs(10));
    assert_eq!(
        c.peers[ann2].client.nick(),
        "ann-2",
        "names are unique across servers"
    );
    c.peers[ann].client.request_members();
    c.run_for(secs(2));
    let listed: Vec<String> = c.peers[ann]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Members { total, names, .. } => {
                assert_eq!(*total, 3);
                Some(
                    names
                        .iter()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                        .join(","),
                )
            }
            _ => None,
        })
        .collect();
    assert_eq!(listed.len(), 1);
    for nick in ["ann", "bob", "ann-2"] {
        assert!(listed[0].split(',').any(|n| n == nick), "{listed:?}");
    }
    let joins: Vec<String> = c.peers[ann]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Presence { changes, .. } => Some(
                changes
                    .iter()
                    .map(|(k, n)| format!("{n} {}", k.as_str()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect();
    assert!(joins.join(",").contains("bob joined"), "{joins:?}");
    c.peers[bob].client.leave(c.now);
    c.run_for(secs(3));
    assert_eq!(c.peers[ann].client.members(), 2);
}
