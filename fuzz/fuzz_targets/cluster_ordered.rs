//! A relay in external-ordering mode (`server --cluster`) fed by a fake room stream under
//! the fuzzer's control: the broker's answers (rooms opened or not, session lookups with
//! any lines, other servers' members joining and leaving or vanishing) come in any order
//! and with any values, and the stream can hand the relay any sequence number with any
//! token: a proposal it published, a line record sealed with the real key whatever its
//! fields, any sealed plaintext, any bytes. Nothing may panic; state stays within its
//! bounds; the member on this server shows room messages in order, never one number
//! twice (a Missed or a new Welcome may move it on); and a line record that parses is
//! written back byte for byte (the format is canonical).
#![no_main]

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClusterRequest, ClusterStorage, LineRecord, ProposalSlot,
    Relay, RelayConfig, RemoteRoom, RemoteSlot,
};
use chat_core::time::{Duration, Instant, WallClock};
use chat_core::wire::PresenceKind;
use chat_core_fuzz::{CounterRng, FuzzClient, FuzzRelay, SmallRelay, UNIX_MS};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const ROOMS: [&str; 2] = ["room", "other"];
const MEMBER: u8 = 1;

/// What the stream hands the relay as a line's token.
#[derive(Arbitrary, Debug)]
enum Token {
    /// A line record with any fields, sealed with the real key.
    Record {
        origin: u64,
        msg_id: u32,
        nick: String,
        text: String,
    },
    /// Any plaintext sealed with the real key (a key holder writing to the subject).
    Sealed(Vec<u8>),
    /// Any bytes (someone without the key writing to the subject).
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The member's network: deliver, drop or duplicate one datagram in flight.
    Deliver(u8),
    Drop(u8),
    Duplicate(u8),
    Advance(u16),
    Send(String),
    Leave,
    /// The driver answers the oldest request it holds: open the room (`true`, at a
    /// sequence number offset from 1 by the value) or fail it.
    Answer {
        open: bool,
        next_seq: u8,
        roster: Vec<(u8, u8, String)>,
    },
    /// A lookup's answer with any lines.
    Found {
        room: bool,
        session: u64,
        lines: Vec<(u32, u64)>,
    },
    /// The stream orders the oldest proposal (deduplicated by origin and msg_id).
    Publish,
    /// The stream feeds the next line it holds.
    Feed(bool),
    /// The stream hands the relay anything at any sequence number near its cursor.
    Inject {
        room: bool,
        seq_delta: i8,
        token: Token,
        age: i16,
    },
    RemoteJoined {
        room: bool,
        server: u8,
        session: u8,
        nick: String,
    },
    RemoteLeft {
        room: bool,
        server: u8,
        session: u8,
        kind: u8,
    },
    RemoteServerGone {
        room: bool,
        server: u8,
    },
    /// Any bytes as a line record: parsed, and if it parses, written back identically.
    Record(Vec<u8>),
}

/// The relay's storage (as session_datagram's) and its cluster storage, in fixed arrays.
struct Storage {
    relay: SmallRelay,
    proposals: [ProposalSlot; 2],
    proposal_bytes: [u8; 2 * 1232],
    remotes: [RemoteSlot; 4],
    remote_rooms: [RemoteRoom; 2],
}

impl Storage {
    fn new() -> Self {
        Self {
            relay: SmallRelay::new(),
            proposals: [const { ProposalSlot::EMPTY }; 2],
            proposal_bytes: [0u8; 2 * 1232],
            remotes: [const { RemoteSlot::EMPTY }; 4],
            remote_rooms: [RemoteRoom::EMPTY; 2],
        }
    }
}

/// A room's stream, as JetStream keeps it.
#[derive(Default)]
struct Stream {
    tokens: Vec<Vec<u8>>,
    ids: Vec<(u64, u32)>,
    /// The next sequence number this server is fed.
    cursor: u64,
}

struct World<'s> {
    key: Key,
    now: Instant,
    relay: FuzzRelay<'s>,
    client: FuzzClient,
    /// Datagrams in flight: (to the relay?, bytes).
    net: Vec<(bool, Vec<u8>)>,
    requests: Vec<ClusterRequest>,
    proposals: Vec<(usize, u64, u32, Vec<u8>)>,
    streams: [Stream; 2],
    last_seq: Option<u64>,
    may_jump: bool,
}

fn room_index(name: &str) -> usize {
    usize::from(name != ROOMS[0])
}

impl<'s> World<'s> {
    fn new(storage: &'s mut Storage) -> Self {
        let key = Key::from_bytes(&[3; 32]);
        let now = Instant::from_millis(0);
        let client = Client::new(
            &ClientConfig::new("ann", ROOMS[0]),
            KeyRing::new(key.clone()),
            CounterRng(1),
            WallClock::synced(now, UNIX_MS),
            now,
        )
        .expect("valid names");
        let relay_storage = storage.relay.storage();
        let cluster = ClusterStorage {
            proposals: &mut storage.proposals,
            proposal_bytes: &mut storage.proposal_bytes,
            remotes: &mut storage.remotes,
            remote_rooms: &mut storage.remote_rooms,
        };
        let relay = Relay::new(
            RelayConfig::default(),
            KeyRing::new(key.clone()),
            CounterRng(99),
            WallClock::synced(now, UNIX_MS),
            relay_storage,
        )
        .expect("consistent storage")
        .with_external_ordering(cluster)
        .expect("consistent cluster storage");
        Self {
            key,
            now,
            relay,
            client,
            net: Vec::new(),
            requests: Vec::new(),
            proposals: Vec::new(),
            streams: [Stream::default(), Stream::default()],
            last_seq: None,
            may_jump: true,
        }
    }

    fn pump(&mut self) {
        let mut buf = [0u8; 1232];
        for _ in 0..64 {
            match self.relay.poll_transmit(self.now, &mut buf) {
                Some((_, len)) => self.net.push((false, buf[..len].to_vec())),
                None => break,
            }
        }
        while self.relay.poll_event().is_some() {}
        while let Some(request) = self.relay.poll_request() {
            self.requests.push(request);
        }
        while let Some(p) = self.relay.poll_proposal(&mut buf) {
            let token = buf.get(..p.len).unwrap_or_default().to_vec();
            self.proposals
                .push((room_index(&p.room), p.origin, p.msg_id, token));
        }
        for _ in 0..64 {
            match self.client.poll_transmit(self.now, &mut buf) {
                Some(len) => self.net.push((true, buf[..len].to_vec())),
                None => break,
            }
        }
        while let Some(event) = self.client.poll_event() {
            match event {
                ClientEvent::Message { seq, .. } => {
                    if let Some(last) = self.last_seq
                        && !self.may_jump
                    {
                        assert_eq!(seq, last + 1, "showed #{seq} after #{last}");
                    }
                    self.last_seq = Some(seq);
                    self.may_jump = false;
                }
                ClientEvent::Missed { .. } | ClientEvent::Joined { .. } => self.may_jump = true,
                _ => {}
            }
        }
        assert!(self.client.unacknowledged() <= 2);
        // Bounded memory: the harness's queues are the only things that grow.
        self.net.truncate(256);
        self.requests.truncate(64);
        self.proposals.truncate(64);
        assert!(self.relay.member_count() <= 4);
        assert!(self.relay.room_count() <= 2);
        assert!(self.relay.proposals_waiting() <= 2);
    }

    fn deliver(&mut self, to_relay: bool, mut bytes: Vec<u8>) {
        if to_relay {
            let _ = self.relay.handle_datagram(self.now, MEMBER, &mut bytes);
        } else {
            let _ = self.client.handle_datagram(self.now, &mut bytes);
        }
    }

    fn seal(&self, plain: &[u8], age: i16, out: &mut [u8]) -> Option<usize> {
        let stamp =
            (UNIX_MS / 1000 + self.now.millis() / 1000).checked_add_signed(i64::from(age))?;
        let token = self
            .key
            .encrypt_with_iv(plain, stamp, [age as u8; 16], out)
            .ok()?;
        Some(token.len())
    }

    /// Hands line `seq` of room `r` to the relay; whether it took it (or had it).
    fn order(&mut self, r: usize, seq: u64, mut token: Vec<u8>) -> bool {
        self.relay
            .handle_ordered(self.now, ROOMS[r], seq, &mut token)
            .is_ok()
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut storage = Box::new(Storage::new());
    let mut world = World::new(&mut storage);
    for op in ops.into_iter().take(200) {
        world.pump();
        let pick = |world: &World, k: u8| {
            (!world.net.is_empty()).then(|| usize::from(k) % world.net.len())
        };
        let now = world.now;
        match op {
            Op::Deliver(k) => {
                if let Some(i) = pick(&world, k) {
                    let (to_relay, bytes) = world.net.remove(i);
                    world.deliver(to_relay, bytes);
                }
            }
            Op::Drop(k) => {
                if let Some(i) = pick(&world, k) {
                    world.net.remove(i);
                }
            }
            Op::Duplicate(k) => {
                if let Some(i) = pick(&world, k) {
                    let (to_relay, bytes) = world.net[i].clone();
                    world.deliver(to_relay, bytes);
                }
            }
            Op::Advance(ms) => {
                world.now = world.now + Duration::from_millis(u64::from(ms) * 8);
                world.relay.handle_timeout(world.now);
                world.client.handle_timeout(world.now);
            }
            Op::Send(text) => {
                let _ = world.client.send(&text);
            }
            Op::Leave => world.client.leave(now),
            Op::Answer {
                open,
                next_seq,
                roster,
            } => {
                let Some(request) = (!world.requests.is_empty()).then(|| world.requests.remove(0))
                else {
                    continue;
                };
                match request {
                    ClusterRequest::Open { room, .. } => {
                        let r = room_index(&room);
                        if open {
                            let stream = &mut world.streams[r];
                            let start = (stream.tokens.len() as u64 + 1)
                                .saturating_add(u64::from(next_seq % 4))
                                .saturating_sub(2)
                                .max(1);
                            stream.cursor = start;
                            let roster = roster.iter().map(|(server, session, nick)| {
                                (u64::from(*server), u64::from(*session), nick.as_str())
                            });
                            let _ = world
                                .relay
                                .open_room(now, &room, 7 + r as u64, start, roster);
                        } else {
                            world.relay.open_failed(&room);
                        }
                    }
                    ClusterRequest::Lookup { room, session } => {
                        let r = room_index(&room);
                        let stream = &world.streams[r];
                        let lines: Vec<(u32, u64)> = stream
                            .ids
                            .iter()
                            .enumerate()
                            .filter(|(_, (origin, _))| *origin == session)
                            .map(|(i, (_, msg_id))| (*msg_id, i as u64 + 1))
                            .collect();
                        world.relay.session_found(now, &room, session, &lines);
                    }
                    ClusterRequest::Close { .. }
                    | ClusterRequest::Joined { .. }
                    | ClusterRequest::Left { .. } => {}
                }
            }
            Op::Found {
                room,
                session,
                lines,
            } => world
                .relay
                .session_found(now, ROOMS[usize::from(room)], session, &lines),
            Op::Publish => {
                if !world.proposals.is_empty() {
                    let (r, origin, msg_id, token) = world.proposals.remove(0);
                    let stream = &mut world.streams[r];
                    if !stream.ids.contains(&(origin, msg_id)) {
                        stream.ids.push((origin, msg_id));
                        stream.tokens.push(token);
                    }
                }
            }
            Op::Feed(room) => {
                let r = usize::from(room);
                let cursor = world.streams[r].cursor;
                let token = usize::try_from(cursor)
                    .ok()
                    .and_then(|c| c.checked_sub(1))
                    .and_then(|i| world.streams[r].tokens.get(i))
                    .cloned();
                if let Some(token) = token
                    && world.order(r, cursor, token)
                {
                    world.streams[r].cursor += 1;
                }
            }
            Op::Inject {
                room,
                seq_delta,
                token,
                age,
            } => {
                let r = usize::from(room);
                let seq = world.streams[r]
                    .cursor
                    .saturating_add_signed(i64::from(seq_delta));
                let mut out = vec![0u8; 2048];
                let bytes = match token {
                    Token::Record {
                        origin,
                        msg_id,
                        nick,
                        text,
                    } => {
                        let record = LineRecord {
                            origin,
                            msg_id,
                            nick: &nick,
                            text: &text,
                        };
                        let mut plain = [0u8; 1100];
                        record
                            .emit(&mut plain)
                            .ok()
                            .and_then(|len| world.seal(&plain[..len], age, &mut out))
                            .map(|len| out[..len].to_vec())
                    }
                    Token::Sealed(plain) => world
                        .seal(&plain, age, &mut out)
                        .map(|len| out[..len].to_vec()),
                    Token::Raw(bytes) => Some(bytes),
                };
                if let Some(bytes) = bytes
                    && world.order(r, seq, bytes)
                    && seq == world.streams[r].cursor
                {
                    world.streams[r].cursor += 1;
                }
            }
            Op::RemoteJoined {
                room,
                server,
                session,
                nick,
            } => world.relay.remote_joined(
                now,
                ROOMS[usize::from(room)],
                u64::from(server),
                u64::from(session),
                &nick,
            ),
            Op::RemoteLeft {
                room,
                server,
                session,
                kind,
            } => {
                if let Some(kind) = PresenceKind::from_u8(kind % 5) {
                    world.relay.remote_left(
                        now,
                        ROOMS[usize::from(room)],
                        u64::from(server),
                        u64::from(session),
                        kind,
                    );
                }
            }
            Op::RemoteServerGone { room, server } => {
                world
                    .relay
                    .remote_server_gone(now, ROOMS[usize::from(room)], u64::from(server))
            }
            Op::Record(bytes) => {
                if let Ok(record) = LineRecord::parse(&bytes) {
                    let mut out = vec![0u8; bytes.len()];
                    assert_eq!(record.emit(&mut out), Ok(bytes.len()));
                    assert_eq!(out, bytes, "a parsed record is written back identically");
                    let _ = world.relay.room_position(ROOMS[0]);
                }
            }
        }
    }
    world.pump();
});
