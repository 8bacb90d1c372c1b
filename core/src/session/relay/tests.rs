//! The relay with real clients, wired to each other directly (`Wire`: no loss unless a
//! test cuts a direction), for what a test needs the relay's own state for: a session
//! whose line numbering crosses `u32::MAX` (PROTOCOL.md "Sending a line": `msg_id`s wrap
//! at 2³²), which no client reaches in a test's time. The test plants the record the
//! relay keeps of a departed session (its next `msg_id`), as it would have after four
//! billion lines, and the client comes back to it; everything else happens on the wire.
//! The protocol's other promises are held in the simulator (`core/tests/`).

extern crate std;

use super::delivery::Delivery;
use super::gone::Gone;
use super::members::{Busy, Member};
use super::receipts::{Outcome, Receipts};
use super::*;
use crate::fernet::Key;
use crate::session::{Client, ClientConfig, ClientEvent};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::vec;
use std::vec::Vec;

const UNIX_START_MS: u64 = 1_700_000_000_000;
type TestClient = Client<StdRng, 0, 64, 8, 16, 8>;

fn key() -> Key {
    Key::from_bytes(&[5; 32])
}

/// Storage for a small relay: 8 members, 2 rooms of 16 messages (the modules' own
/// tests use it too).
pub(super) struct Storage {
    members: Vec<MemberSlot<u32>>,
    gone: Vec<GoneSlot>,
    rooms: Vec<RoomSlot>,
    history: Vec<HistoryEntry>,
    history_bytes: Vec<u8>,
    presence: Vec<PresenceEntry>,
}

impl Storage {
    pub(super) fn new() -> Self {
        Self {
            members: vec![MemberSlot::EMPTY; 8],
            gone: vec![GoneSlot::EMPTY; 8],
            rooms: vec![RoomSlot::EMPTY; 2],
            history: vec![HistoryEntry::EMPTY; 2 * 16],
            history_bytes: vec![0; 2 * 16 * 256],
            presence: vec![PresenceEntry::EMPTY; 2 * 16],
        }
    }

    pub(super) fn relay(&mut self, now: Instant) -> Relay<'_, u32, StdRng, 0> {
        self.relay_with(now, RelayConfig::default())
    }

    fn relay_with(&mut self, now: Instant, config: RelayConfig) -> Relay<'_, u32, StdRng, 0> {
        Relay::new(
            config,
            KeyRing::new(key()),
            StdRng::seed_from_u64(1),
            WallClock::synced(now, UNIX_START_MS + now.millis()),
            RelayStorage {
                members: &mut self.members,
                gone: &mut self.gone,
                rooms: &mut self.rooms,
                history: &mut self.history,
                history_bytes: &mut self.history_bytes,
                presence: &mut self.presence,
            },
        )
        .expect("consistent storage")
    }
}

/// A relay and its clients (client `i` at address `i`), datagrams handed over at once.
struct Wire<'a> {
    relay: Relay<'a, u32, StdRng, 0>,
    clients: Vec<TestClient>,
    events: Vec<Vec<ClientEvent<64>>>,
    /// Every datagram each client sent.
    sent: Vec<Vec<Vec<u8>>>,
    /// A paused client does nothing, and what is sent to it is lost (a machine asleep).
    paused: Vec<bool>,
    /// Every datagram the relay sent, paused clients' too: (when, to whom, frame kind).
    log: Vec<(Instant, u32, &'static str)>,
    now: Instant,
}

impl<'a> Wire<'a> {
    fn new(relay: Relay<'a, u32, StdRng, 0>) -> Self {
        Self {
            relay,
            clients: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            paused: Vec::new(),
            log: Vec::new(),
            now: Instant::from_millis(0),
        }
    }

    fn add(&mut self, nick: &str) -> usize {
        let i = self.clients.len();
        let client = Client::new(
            &ClientConfig::new(nick, "lobby"),
            KeyRing::new(key()),
            StdRng::seed_from_u64(100 + i as u64),
            WallClock::synced(self.now, UNIX_START_MS + self.now.millis()),
            self.now,
        )
        .expect("valid names");
        self.clients.push(client);
        self.events.push(Vec::new());
        self.sent.push(Vec::new());
        self.paused.push(false);
        i
    }

    /// One round (every client, then the relay), then 5 ms pass.
    fn step(&mut self) {
        let now = self.now;
        let mut buf = [0u8; 1232];
        for (i, client) in self.clients.iter_mut().enumerate() {
            if self.paused[i] {
                continue;
            }
            if client.poll_timeout().is_some_and(|at| at <= now) {
                client.handle_timeout(now);
            }
            while let Some(len) = client.poll_transmit(now, &mut buf) {
                self.sent[i].push(buf[..len].to_vec());
                let _ = self.relay.handle_datagram(now, i as u32, &mut buf[..len]);
            }
        }
        self.relay.handle_timeout(now);
        self.flush_relay();
        self.now = now + Duration::from_millis(5);
    }

    /// What the relay has to send goes out now.
    fn flush_relay(&mut self) {
        let mut buf = [0u8; 1232];
        while let Some((to, len)) = self.relay.poll_transmit(self.now, &mut buf) {
            self.log.push((self.now, to, kind_of(&buf[..len])));
            if let Some(client) = self.clients.get_mut(to as usize)
                && !self.paused[to as usize]
            {
                let _ = client.handle_datagram(self.now, &mut buf[..len]);
            }
        }
        for (i, client) in self.clients.iter_mut().enumerate() {
            while let Some(event) = client.poll_event() {
                self.events[i].push(event);
            }
        }
    }

    fn run_until(&mut self, limit: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end && !done(self) {
            self.step();
        }
        done(self)
    }

    /// Runs until every client has joined (2 s at most, far more than it takes).
    fn join_all(&mut self) {
        assert!(self.run_until(Duration::from_secs(2), |w| {
            w.clients.iter().all(|c| c.state() == ClientState::Joined)
        }));
    }

    /// Client `i`'s outcomes: id → seq, in the order they came.
    fn delivered(&self, i: usize) -> Vec<(u32, u64)> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Delivered { id, seq, .. } => Some((*id, *seq)),
                _ => None,
            })
            .collect()
    }

    /// Room messages client `i` has shown: (seq, text).
    fn shown(&self, i: usize) -> Vec<(u64, std::string::String)> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message { seq, text, .. } => Some((*seq, text.as_str().into())),
                _ => None,
            })
            .collect()
    }

    /// The `msg_id` of every Chat client `i` sent, in order.
    fn chat_ids(&self, i: usize) -> Vec<u32> {
        self.sent[i]
            .iter()
            .filter_map(|token| {
                let mut plain = vec![0u8; token.len()];
                let opened = key().decrypt(token, None, &mut plain).ok()?;
                match Repr::parse(opened.plaintext).ok()?.body {
                    Body::Chat { msg_id, .. } => Some(msg_id),
                    _ => None,
                }
            })
            .collect()
    }
}

/// A session the relay remembers as departed with its numbering at `next_msg_id`: its
/// client (`ann`, joining for the first time in this process) is given that numbering
/// back in its Welcome, as a client coming back after a long life would be.
fn wire_with_numbering_at<'a>(storage: &'a mut Storage, next_msg_id: u32) -> Wire<'a> {
    let mut wire = Wire::new(storage.relay(Instant::from_millis(0)));
    let ann = wire.add("ann");
    let session = wire.clients[ann].session();
    wire.relay.gone.insert(Gone::new(
        session,
        0,
        false,
        next_msg_id,
        Receipts::default(),
    ));
    wire.add("bob");
    wire.join_all();
    wire
}

use crate::session::ClientState;

#[test]
fn a_session_numbers_its_lines_across_the_wrap() {
    let mut storage = Storage::new();
    let mut wire = wire_with_numbering_at(&mut storage, u32::MAX - 1);
    let (ann, bob) = (0, 1);
    for k in 0..5 {
        wire.clients[ann].send(&std::format!("line {k}")).unwrap();
    }
    assert!(
        wire.run_until(Duration::from_secs(2), |w| w.delivered(ann).len() == 5
            && w.shown(bob).len() == 5)
    );
    assert_eq!(
        wire.chat_ids(ann),
        [u32::MAX - 1, u32::MAX, 0, 1, 2],
        "numbered on from the Welcome, wrapping"
    );
    assert_eq!(
        wire.delivered(ann),
        [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)],
        "one answer per line, in order"
    );
    let texts: Vec<_> = wire.shown(bob).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2", "line 3", "line 4"]);

    // Retransmissions from before and after the wrap are answered again, the same, and
    // make no second room message; lines after them are taken in order.
    let chats: Vec<Vec<u8>> = wire.sent[ann]
        .iter()
        .filter(|t| {
            let mut plain = vec![0u8; t.len()];
            key().decrypt(t, None, &mut plain).is_ok_and(|o| {
                matches!(
                    Repr::parse(o.plaintext).map(|r| r.body),
                    Ok(Body::Chat { .. })
                )
            })
        })
        .cloned()
        .collect();
    let now = wire.now;
    for index in [1, 3] {
        assert_eq!(
            wire.relay
                .handle_datagram(now, ann as u32, &mut chats[index].clone()),
            Err(Dropped::Duplicate),
            "chat {index} again"
        );
    }
    let mut buf = [0u8; 1232];
    let mut answers = Vec::new();
    while let Some((to, len)) = wire.relay.poll_transmit(now, &mut buf) {
        let mut plain = vec![0u8; len];
        let opened = key().decrypt(&buf[..len], None, &mut plain).unwrap();
        if let Body::Receipt { msg_id, seq, .. } = Repr::parse(opened.plaintext).unwrap().body {
            answers.push((to, msg_id, seq));
        }
    }
    assert_eq!(
        answers,
        [(0, u32::MAX, 1), (0, 1, 3)],
        "the same answers, the older first"
    );
    assert_eq!(wire.relay.stats().relayed, 5);
    wire.clients[ann].send("after the replays").unwrap();
    assert!(wire.run_until(Duration::from_secs(2), |w| w.delivered(ann).len() == 6));
    assert_eq!(wire.delivered(ann)[5], (6, 5));
    assert_eq!(wire.chat_ids(ann).last(), Some(&3));
}

#[test]
fn lines_taken_across_the_wrap_keep_their_numbers_when_the_session_comes_back() {
    let mut storage = Storage::new();
    let mut wire = wire_with_numbering_at(&mut storage, u32::MAX);
    let (ann, bob) = (0, 1);
    // ann's lines reach the room, but her machine sleeps before their answers come,
    // past the member timeout: the relay keeps her numbering.
    for k in 0..3 {
        wire.clients[ann].send(&std::format!("line {k}")).unwrap();
    }
    let now = wire.now;
    let mut buf = [0u8; 1232];
    while let Some(len) = wire.clients[ann].poll_transmit(now, &mut buf) {
        let _ = wire.relay.handle_datagram(now, ann as u32, &mut buf[..len]);
    }
    assert_eq!(wire.relay.stats().relayed, 3, "u32::MAX, 0 and 1 taken");
    wire.paused[ann] = true;
    assert!(wire.run_until(Duration::from_secs(40), |w| w.relay.member_count() == 1));
    wire.paused[ann] = false;
    // Back: her next frame gets "not joined"; she joins again, is given her numbering
    // (u32::MAX + 3 wrapped: 2), keeps the numbers of the lines the relay took, and
    // gets their answers, each once; the room has each line once.
    assert!(
        wire.run_until(Duration::from_secs(20), |w| w.delivered(ann).len() == 3
            && w.shown(bob).len() == 3)
    );
    let mut outcomes = wire.delivered(ann);
    outcomes.sort_unstable();
    assert_eq!(outcomes, [(1, 0), (2, 1), (3, 2)]);
    assert_eq!(wire.relay.stats().relayed, 3, "no line twice");
    let texts: Vec<_> = wire.shown(bob).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2"]);
    assert!(
        wire.chat_ids(ann)
            .iter()
            .all(|id| [u32::MAX, 0, 1].contains(id)),
        "the numbers the relay took: {:?}",
        wire.chat_ids(ann)
    );
    wire.clients[ann].send("next").unwrap();
    assert!(wire.run_until(Duration::from_secs(2), |w| w.delivered(ann).len() == 4));
    assert_eq!(
        wire.chat_ids(ann).last(),
        Some(&2),
        "numbered on after the wrap"
    );
}

// ---------------------------------------------------------------------------------------
// The relay's tables against models, under random operations: whatever the hash chains
// look like (collisions, removals from the middle of a chain, slots reused), a lookup
// finds exactly what the model holds.

/// GoneTable: a ring of `cap` positions; taking a record leaves a hole that still takes
/// its position until the ring comes round; inserting a session forgets its older record.
#[test]
fn departed_sessions_are_remembered_as_a_ring_whatever_the_chains() {
    use super::gone::GoneTable;
    use rand::{Rng, RngExt};
    use std::collections::VecDeque;
    for (seed, cap) in [(1u64, 1usize), (2, 3), (3, 8), (4, 16)] {
        let mut slots = vec![GoneSlot::EMPTY; cap];
        let mut rng = StdRng::seed_from_u64(seed);
        let mut table = GoneTable::new(&mut slots, (rng.next_u64(), rng.next_u64()));
        // Positions of the ring, oldest first: a record (session, at) or a hole.
        let mut model: VecDeque<Option<(u64, u64)>> = VecDeque::new();
        for step in 0..2000u64 {
            // Few sessions, so that records are replaced, taken and collide often.
            let session = rng.random_range(1..=2 * cap as u64 + 2);
            if rng.random_bool(0.3) {
                let taken = table.take(session).map(|g| (g.session, g.at));
                let expected = model
                    .iter_mut()
                    .find(|p| p.is_some_and(|(s, _)| s == session))
                    .and_then(Option::take);
                assert_eq!(taken, expected, "seed {seed} step {step}: take {session}");
            } else {
                table.insert(Gone::new(session, step, false, 1, Receipts::default()));
                if let Some(p) = model
                    .iter_mut()
                    .find(|p| p.is_some_and(|(s, _)| s == session))
                {
                    *p = None;
                }
                if model.len() == cap {
                    model.pop_front();
                }
                model.push_back(Some((session, step)));
            }
            for s in 1..=2 * cap as u64 + 2 {
                let expected = model.iter().flatten().find(|(m, _)| *m == s).copied();
                assert_eq!(
                    table.find(s).map(|g| (g.session, g.at)),
                    expected,
                    "seed {seed} step {step}: find {s}"
                );
            }
        }
    }
}

/// What the relay sends client `to` now, by frame kind, until it has nothing more (and
/// nothing else happens in between: no datagram in, no timer).
fn kinds_sent_to(wire: &mut Wire<'_>, to: u32) -> Vec<&'static str> {
    let mut buf = [0u8; 1232];
    let mut kinds = Vec::new();
    while let Some((addr, len)) = wire.relay.poll_transmit(wire.now, &mut buf) {
        if addr != to {
            continue;
        }
        kinds.push(kind_of(&buf[..len]));
    }
    kinds
}

/// The kind of frame in a token the relay sent.
fn kind_of(token: &[u8]) -> &'static str {
    let mut plain = vec![0u8; token.len()];
    let opened = key().decrypt(token, None, &mut plain).expect("ours");
    match Repr::parse(opened.plaintext).expect("a frame").body {
        Body::Welcome { .. } => "Welcome",
        Body::Receipt { .. } => "Receipt",
        Body::Refused { .. } => "Refused",
        Body::Busy { .. } => "Busy",
        Body::Pong { .. } => "Pong",
        Body::Members { .. } => "Members",
        Body::Presence { .. } => "Presence",
        Body::Missed { .. } => "Missed",
        Body::Deliver { .. } => "Deliver",
        _ => "other",
    }
}

/// Something a member can be owed, planted in its state as the relay would have it.
type Plant = fn(&mut Member<u32>, u64);

#[test]
fn everything_a_member_is_owed_goes_out_back_to_back() {
    // A member owed an answer and one other thing gets both in one go: after the answer
    // the relay comes back to it, whatever the other thing is (PROTOCOL.md: nothing waits
    // for another datagram or a timer once it is due). `first_seq` is the oldest message
    // the room still keeps.
    let plants: [(&str, Plant); 6] = [
        ("Busy", |m, _| {
            m.busy = Some(Busy {
                msg_id: 99,
                retry_after_ms: 10,
            });
        }),
        ("Pong", |m, _| m.pong_due = Some(7)),
        ("Members", |m, _| m.who_due = Some(0)),
        ("Presence", |m, _| m.presence_due = true),
        ("Missed", |m, first_seq| {
            // A Missed that went unacknowledged, due again.
            m.delivery
                .skip_to(first_seq, Instant::from_millis(0), Duration::from_secs(1));
            m.delivery.missed_due = true;
        }),
        ("Missed", |m, first_seq| {
            // Messages that left the history before it got them, sent as far as its
            // window allowed, none acknowledged.
            m.delivery = Delivery::new(first_seq - 2, 4, 64);
            let (now, rto) = (Instant::from_millis(0), Duration::from_secs(1));
            while m.delivery.next(first_seq + 16, now, rto).is_some() {}
        }),
    ];
    for (kind, plant) in plants {
        let mut storage = Storage::new();
        let mut wire = Wire::new(storage.relay(Instant::from_millis(0)));
        let ann = wire.add("ann");
        for k in 0..20 {
            wire.clients[ann].send(&std::format!("line {k}")).unwrap();
            assert!(
                wire.run_until(Duration::from_secs(1), |w| w.delivered(ann).len() > k
                    && w.shown(ann).len() > k)
            );
        }
        wire.run_until(Duration::from_secs(1), |_| false);
        let r = wire.relay.rooms.by_name("lobby").expect("the room");
        let first_seq = wire
            .relay
            .rooms
            .get(r)
            .expect("the room")
            .history
            .first_seq();
        assert!(first_seq >= 2, "16 messages kept of 20");
        let m = wire.relay.members.by_session(wire.clients[ann].session());
        let member = wire
            .relay
            .members
            .get_mut(m.expect("a member"))
            .expect("a member");
        member.receipts.record(
            member.next_msg_id,
            Outcome::Refused(crate::wire::RefuseReason::TOO_LONG),
        );
        member.next_msg_id = member.next_msg_id.wrapping_add(1);
        plant(member, first_seq);
        wire.relay.members.push_ready(m.expect("a member"));
        assert_eq!(
            kinds_sent_to(&mut wire, ann as u32),
            ["Refused", kind],
            "{kind}"
        );
    }
}

/// A relay whose presence interval (40 ms) is shorter than any retransmission timeout
/// (200 ms at least), with ann and bob joined and settled.
fn presence_wire(storage: &mut Storage) -> Wire<'_> {
    let config = RelayConfig {
        presence_interval: Duration::from_millis(40),
        ..RelayConfig::default()
    };
    let mut wire = Wire::new(storage.relay_with(Instant::from_millis(0), config));
    wire.add("ann");
    wire.add("bob");
    wire.join_all();
    wire.run_until(Duration::from_secs(1), |_| false);
    wire
}

/// When client `to` was sent Presence frames, from `since` on.
fn presence_sent(wire: &Wire<'_>, to: u32, since: Instant) -> Vec<Instant> {
    wire.log
        .iter()
        .filter(|&&(at, addr, kind)| at >= since && addr == to && kind == "Presence")
        .map(|&(at, _, _)| at)
        .collect()
}

#[test]
fn a_member_that_acknowledged_its_presence_changes_gets_the_next_at_the_next_tick() {
    // PROTOCOL.md "Presence": new changes go to a member that has acknowledged what it
    // was sent at the room's next tick; only unacknowledged ones wait for its
    // retransmission timeout.
    let mut storage = Storage::new();
    let mut wire = presence_wire(&mut storage);
    let ann = 0;
    let joined_at = wire.now;
    wire.add("carol");
    let r = wire.relay.rooms.by_name("lobby").expect("the room");
    assert!(wire.run_until(Duration::from_secs(1), |w| {
        let next = w.relay.rooms.get(r).map(|room| room.presence.next());
        w.relay.room_members("lobby").count() == 3
            && w.relay.members.get(0).map(|m| Some(m.presence_acked)) == Some(next)
    }));
    assert_eq!(
        presence_sent(&wire, ann, joined_at).len(),
        1,
        "carol's join"
    );
    // Right after ann acknowledged carol's join, well within its timeout.
    let joined_at = wire.now;
    wire.add("dave");
    assert!(wire.run_until(Duration::from_millis(100), |w| {
        !presence_sent(w, ann, joined_at).is_empty()
    }));
    let sent = presence_sent(&wire, ann, joined_at);
    assert!(
        sent[0] - joined_at <= Duration::from_millis(30),
        "dave's join went to ann {} ms after",
        (sent[0] - joined_at).millis()
    );
}

#[test]
fn presence_changes_a_member_does_not_acknowledge_go_again_after_its_timeout_only() {
    // The room ticks every 40 ms while a member lacks changes, but a frame it has not
    // acknowledged is sent again only after its retransmission timeout (200 ms at
    // least): about 5 times a second, not 25.
    let mut storage = Storage::new();
    let mut wire = presence_wire(&mut storage);
    let ann = 0;
    wire.paused[ann as usize] = true;
    let since = wire.now;
    wire.add("carol");
    wire.run_until(Duration::from_secs(1), |_| false);
    let sent = presence_sent(&wire, ann, since);
    assert!(
        (3..=6).contains(&sent.len()),
        "{} frames: {sent:?}",
        sent.len()
    );
    for pair in sent.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(200), "{sent:?}");
    }
}

#[test]
fn a_member_cut_for_stalling_is_counted_on_again_only_once_caught_up() {
    // PROTOCOL.md "Flow control": a member that holds its room's history past the stall
    // limit is cut (the room goes on without it) and counted on again only when it has
    // acknowledged every message the room had when it acknowledged.
    let config = RelayConfig {
        stall_limit: Duration::from_millis(500),
        ..RelayConfig::default()
    };
    let mut storage = Storage::new();
    let mut wire = Wire::new(storage.relay_with(Instant::from_millis(0), config));
    let (ann, bob) = (wire.add("ann"), wire.add("bob"));
    wire.join_all();
    let m = wire
        .relay
        .members
        .by_session(wire.clients[bob].session())
        .expect("bob");
    wire.paused[bob] = true;
    for k in 0..24 {
        wire.clients[ann].send(&std::format!("line {k}")).unwrap();
        assert!(wire.run_until(Duration::from_secs(2), |w| w.delivered(ann).len() > k));
    }
    assert!(wire.relay.members.get(m).expect("bob").cut, "stalled, cut");
    // Bob wakes up: until it has caught up, the room still goes on without it.
    wire.paused[bob] = false;
    let r = wire.relay.rooms.by_name("lobby").expect("the room");
    let mut seen = Vec::new();
    for _ in 0..400 {
        wire.step();
        let member = wire.relay.members.get(m).expect("bob");
        let room_next = wire.relay.rooms.get(r).expect("room").history.next_seq();
        seen.push((member.delivery.acked(), room_next, member.cut));
        if !member.cut {
            break;
        }
    }
    let (acked, room_next, cut) = *seen.last().expect("steps");
    assert!(
        !cut && acked == room_next,
        "caught up, counted on: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|&(acked, room_next, cut)| cut && acked > 0 && acked < room_next),
        "acknowledged part of it first, still cut: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|&(acked, room_next, cut)| cut || acked >= room_next),
        "{seen:?}"
    );
}
