//! The broker side: one task on a current-thread tokio runtime, with helper tasks for
//! what waits on the broker (publications, consumers, lookups, roster requests).
//!
//! Publishing keeps each sender's lines in its order and stores each exactly once: a
//! session's lines are published one at a time (the next once the broker has the one
//! before), each with `Nats-Msg-Id` (its name: a retry within the duplicate window is
//! answered with the first one's sequence number) and
//! `Nats-Expected-Last-Subject-Sequence` (the sequence of the session's previous line in
//! the room: a retry after the window, or a line another server stored meanwhile, is
//! refused instead of stored twice, and the session's last line is looked up). A
//! publication that fails (timeout, broker unreachable) is tried again, the same, until
//! it is stored: lines wait, their senders wait for their receipts, nothing is lost.
//!
//! Each line's headers also carry its number (`Hc-Msg-Id`) and the sequence of the
//! session's line before it (`Hc-Prev`), so a session's last lines can be walked back
//! from the last one (a lookup: a member that rejoins here after another server).

use super::presence::{HEARTBEAT, Message, SILENCE};
use super::{Command, Counters, Event, Settings, names};
use crate::keys::Ring;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, context::PublishErrorKind, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;
use rand::rngs::StdRng;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Headers of a stored line.
const HDR_MSG_ID: &str = "Hc-Msg-Id";
const HDR_PREV: &str = "Hc-Prev";
/// Lines of a session found by a lookup: as many answers as a member's window.
const LOOKUP_LINES: usize = chat_core::session::RECEIPTS;
/// How often changed counters are told to the loop.
const COUNTERS_EVERY: Duration = Duration::from_millis(250);
/// How long a roster request collects answers.
const WHO_WAIT: Duration = Duration::from_millis(150);
/// Waits between tries of a failed publication or consumer.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The loop's end, as the broker side sees it: events, each followed by a wake-up.
#[derive(Debug, Clone)]
pub(super) struct Out {
    tx: mpsc::Sender<Event>,
    wake: Arc<mio::Waker>,
}

impl Out {
    pub fn new(tx: mpsc::Sender<Event>, wake: Arc<mio::Waker>) -> Self {
        Self { tx, wake }
    }

    async fn send(&self, event: Event) {
        if self.tx.send(event).await.is_ok() {
            let _ = self.wake.wake();
        }
    }
}

/// What helper tasks tell the main task.
enum Inner {
    Published {
        room: String,
        origin: u64,
        msg_id: u32,
        outcome: Publication,
    },
    /// The last line of `origin` in `room`: `(msg_id, seq)`; `asked` when the
    /// publisher asked for it (else a member's lookup found it).
    Last {
        room: String,
        origin: u64,
        last: Option<(u32, u64)>,
        asked: bool,
    },
    Opened {
        room: String,
        epoch: u64,
        start: u64,
        roster: Vec<(u64, u64, String)>,
    },
    OpenFailed {
        room: String,
        why: String,
    },
    Rosters {
        room: String,
        roster: Vec<(u64, u64, String)>,
    },
    Broker(bool),
}

enum Publication {
    Stored {
        seq: u64,
        duplicate: bool,
    },
    /// The session's previous line is not the one we thought: look it up.
    WrongLast,
    Failed(String),
}

/// One sender's lines in one room, published one at a time.
#[derive(Default)]
struct Sender {
    queue: VecDeque<(u32, Bytes)>,
    busy: bool,
    /// The sequence of its last stored line in the room (0: none), once known.
    last_seq: Option<u64>,
    backoff: Duration,
}

/// Another server, as seen in one room.
struct Peer {
    members: HashMap<u64, String>,
    heard: Instant,
}

struct Room {
    id: String,
    /// The task feeding its lines, once it is open.
    feeder: Option<JoinHandle<()>>,
    peers: HashMap<u64, Peer>,
}

struct Broker {
    settings: Settings,
    ring: Ring,
    rng: StdRng,
    server: u64,
    client: async_nats::Client,
    js: jetstream::Context,
    out: Out,
    inner: mpsc::UnboundedSender<Inner>,
    /// Rooms open or being opened.
    rooms: HashMap<String, Room>,
    /// This server's members per room (for beats and roster answers), as the loop told.
    local: HashMap<String, HashMap<u64, String>>,
    ids: HashMap<String, String>,
    senders: HashMap<(String, u64), Sender>,
    counters: Counters,
    /// The counters changed since the loop was last told.
    counters_changed: bool,
    up: bool,
}

/// Runs the broker side until the loop goes away.
pub(super) async fn run(
    settings: Settings,
    ring: Ring,
    server: u64,
    mut commands: mpsc::UnboundedReceiver<Command>,
    out: Out,
) {
    let (inner, mut inner_rx) = mpsc::unbounded_channel();
    let events = inner.clone();
    let options = async_nats::ConnectOptions::new()
        .name("host-chat server")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        let _ = events.send(Inner::Broker(true));
                    }
                    async_nats::Event::Disconnected => {
                        let _ = events.send(Inner::Broker(false));
                    }
                    _ => {}
                }
            }
        });
    let client = match options.connect(settings.urls.as_slice()).await {
        Ok(client) => client,
        Err(err) => {
            out.send(Event::Log(format!(
                "cluster: cannot use {:?}: {err}",
                settings.urls
            )))
            .await;
            return;
        }
    };
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(2));
    let Ok(rng) = crate::net::rng() else {
        return;
    };
    let mut broker = Broker {
        settings,
        ring,
        rng,
        server,
        client: client.clone(),
        js,
        out,
        inner,
        rooms: HashMap::new(),
        local: HashMap::new(),
        ids: HashMap::new(),
        senders: HashMap::new(),
        counters: Counters::default(),
        counters_changed: false,
        up: false,
    };
    let mut presence = loop {
        match client.subscribe(names::PRESENCE_ALL).await {
            Ok(sub) => break sub,
            Err(_) => tokio::time::sleep(RETRY_MAX).await,
        }
    };
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut tell_counters = tokio::time::interval(COUNTERS_EVERY);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => broker.command(command).await,
                None => break,
            },
            Some(inner) = inner_rx.recv() => broker.inner(inner).await,
            Some(message) = presence.next() => broker.presence(message).await,
            _ = beat.tick() => broker.beat().await,
            _ = tell_counters.tick() => {
                if std::mem::take(&mut broker.counters_changed) {
                    broker.counters().await;
                }
            }
        }
    }
    for room in broker.rooms.values() {
        if let Some(feeder) = &room.feeder {
            feeder.abort();
        }
    }
}

impl Broker {
    fn id(&mut self, room: &str) -> String {
        if let Some(id) = self.ids.get(room) {
            return id.clone();
        }
        let id = names::room_id(&self.ring, room);
        self.ids.insert(room.to_owned(), id.clone());
        id
    }

    async fn counters(&mut self) {
        self.counters.waiting = self.senders.values().map(|s| s.queue.len() as u64).sum();
        self.out.send(Event::Counters(self.counters)).await;
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Publish {
                room,
                origin,
                msg_id,
                token,
            } => {
                let sender = self.senders.entry((room.clone(), origin)).or_default();
                sender.queue.push_back((msg_id, Bytes::from(token)));
                self.next_publication(&room, origin);
                self.counters_changed = true;
            }
            Command::Open { room, resume } => {
                if self.rooms.contains_key(&room) {
                    // Open already, or on its way.
                    return;
                }
                let id = self.id(&room);
                self.rooms.insert(
                    room.clone(),
                    Room {
                        id: id.clone(),
                        feeder: None,
                        peers: HashMap::new(),
                    },
                );
                tokio::spawn(open(
                    self.js.clone(),
                    self.client.clone(),
                    self.ring.clone(),
                    self.settings.clone(),
                    self.server,
                    room,
                    id,
                    resume,
                    self.inner.clone(),
                ));
            }
            Command::Close { room } => {
                self.local.remove(&room);
                if let Some(feeder) = self.rooms.remove(&room).and_then(|r| r.feeder) {
                    feeder.abort();
                }
            }
            Command::Lookup { room, session } => {
                let id = self.id(&room);
                let js = self.js.clone();
                let out = self.out.clone();
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    let lines = lookup(&js, &id, session).await;
                    let last = lines.last().copied();
                    let _ = inner.send(Inner::Last {
                        room: room.clone(),
                        origin: session,
                        last,
                        asked: false,
                    });
                    out.send(Event::Found {
                        room,
                        session,
                        lines,
                    })
                    .await;
                });
            }
            Command::Joined {
                room,
                session,
                nick,
            } => {
                self.local
                    .entry(room.clone())
                    .or_default()
                    .insert(session, nick.clone());
                let message = Message::Join {
                    server: self.server,
                    session,
                    nick,
                };
                self.tell(&room, &message).await;
            }
            Command::Left {
                room,
                session,
                nick,
                kind,
            } => {
                if let Some(local) = self.local.get_mut(&room) {
                    local.remove(&session);
                }
                let message = Message::Left {
                    server: self.server,
                    session,
                    nick,
                    kind,
                };
                self.tell(&room, &message).await;
            }
        }
    }

    /// Publishes a presence message on room `room`'s subject.
    async fn tell(&mut self, room: &str, message: &Message) {
        let id = self.id(room);
        let token = message.seal(&self.ring, &mut self.rng);
        let _ = self
            .client
            .publish(names::presence_subject(&id), Bytes::from(token))
            .await;
    }

    /// Starts publishing the next line of `origin` in `room`, unless one is on its way.
    fn next_publication(&mut self, room: &str, origin: u64) {
        let id = self.id(room);
        let key = (room.to_owned(), origin);
        let Some(sender) = self.senders.get_mut(&key) else {
            return;
        };
        if sender.busy {
            return;
        }
        let Some((msg_id, token)) = sender.queue.front().cloned() else {
            self.senders.remove(&key);
            return;
        };
        sender.busy = true;
        let js = self.js.clone();
        let inner = self.inner.clone();
        let room = room.to_owned();
        let Some(prev) = sender.last_seq else {
            // Where the session's lines stand in the room is not known here yet.
            tokio::spawn(async move {
                let last = lookup(&js, &id, origin).await.last().copied();
                let _ = inner.send(Inner::Last {
                    room,
                    origin,
                    last,
                    asked: true,
                });
            });
            return;
        };
        let delay = sender.backoff;
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let outcome = publish(&js, &id, origin, msg_id, prev, token).await;
            let _ = inner.send(Inner::Published {
                room,
                origin,
                msg_id,
                outcome,
            });
        });
    }

    async fn inner(&mut self, inner: Inner) {
        match inner {
            Inner::Published {
                room,
                origin,
                msg_id,
                outcome,
            } => {
                let key = (room.clone(), origin);
                let Some(sender) = self.senders.get_mut(&key) else {
                    return;
                };
                sender.busy = false;
                match outcome {
                    Publication::Stored { seq, duplicate } => {
                        if sender.queue.front().is_some_and(|(m, _)| *m == msg_id) {
                            sender.queue.pop_front();
                        }
                        sender.last_seq = Some(seq.max(sender.last_seq.unwrap_or(0)));
                        sender.backoff = Duration::ZERO;
                        self.counters.published += u64::from(!duplicate);
                        self.counters.duplicates += u64::from(duplicate);
                    }
                    Publication::WrongLast => {
                        sender.last_seq = None;
                    }
                    Publication::Failed(why) => {
                        self.counters.retries += 1;
                        sender.backoff = (sender.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
                        if self.up && sender.backoff == RETRY_MAX {
                            let line =
                                format!("cluster: a line is not stored yet ({why}); trying again");
                            self.out.send(Event::Log(line)).await;
                        }
                    }
                }
                self.next_publication(&room, origin);
                self.counters_changed = true;
            }
            Inner::Last {
                room,
                origin,
                last,
                asked,
            } => {
                if let Some(sender) = self.senders.get_mut(&(room.clone(), origin)) {
                    if sender.busy && !asked {
                        // A publication is on its way: its answer says more.
                        return;
                    }
                    let (last_msg, last_seq) = match last {
                        Some((msg_id, seq)) => (Some(msg_id), seq),
                        None => (None, 0),
                    };
                    sender.last_seq = Some(last_seq);
                    if let Some(last_msg) = last_msg {
                        // Lines stored already (by us before, or by another server): their
                        // receipts come with the room's order.
                        while sender
                            .queue
                            .front()
                            .is_some_and(|(m, _)| last_msg.wrapping_sub(*m) as i32 >= 0)
                        {
                            sender.queue.pop_front();
                            self.counters.duplicates += 1;
                        }
                    }
                    sender.busy = false;
                    self.next_publication(&room, origin);
                }
            }
            Inner::Opened {
                room,
                epoch,
                start,
                roster,
            } => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    // Closed while it was being opened.
                    return;
                };
                for (server, session, nick) in roster {
                    r.peers
                        .entry(server)
                        .or_insert_with(|| Peer {
                            members: HashMap::new(),
                            heard: Instant::now(),
                        })
                        .members
                        .insert(session, nick);
                }
                // Who answered, and who said they joined meanwhile.
                let roster = r
                    .peers
                    .iter()
                    .flat_map(|(server, peer)| {
                        peer.members
                            .iter()
                            .map(|(session, nick)| (*server, *session, nick.clone()))
                    })
                    .collect();
                let stream = names::stream(&r.id);
                // The room is open in the loop before its first line comes.
                self.out
                    .send(Event::Opened {
                        room: room.clone(),
                        epoch,
                        next_seq: start,
                        roster,
                    })
                    .await;
                let feeder = tokio::spawn(feed(
                    self.js.clone(),
                    stream,
                    room.clone(),
                    start,
                    self.out.clone(),
                ));
                if let Some(old) = self
                    .rooms
                    .get_mut(&room)
                    .and_then(|r| r.feeder.replace(feeder))
                {
                    old.abort();
                }
            }
            Inner::OpenFailed { room, why } => {
                self.rooms.remove(&room);
                self.out.send(Event::OpenFailed { room, why }).await;
            }
            Inner::Rosters { room, roster } => self.reconcile(&room, roster).await,
            Inner::Broker(up) => {
                if up != self.up {
                    self.up = up;
                    if !up {
                        self.counters.outages += 1;
                    }
                    self.out.send(Event::Broker { up }).await;
                    self.counters().await;
                }
            }
        }
    }

    /// A message on a room's presence subject.
    async fn presence(&mut self, message: async_nats::Message) {
        let Some(id) = names::id_of_presence_subject(message.subject.as_str()) else {
            return;
        };
        let Some(room) = self
            .rooms
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(name, _)| name.clone())
        else {
            return;
        };
        let Some(said) = Message::open(&self.ring, &message.payload) else {
            return;
        };
        let server = said.server();
        if server == self.server {
            return;
        }
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        let peer = r.peers.entry(server).or_insert_with(|| Peer {
            members: HashMap::new(),
            heard: Instant::now(),
        });
        peer.heard = Instant::now();
        match said {
            Message::Join { session, nick, .. } => {
                peer.members.insert(session, nick.clone());
                self.out
                    .send(Event::RemoteJoined {
                        room,
                        server,
                        session,
                        nick,
                    })
                    .await;
            }
            Message::Left { session, kind, .. } => {
                peer.members.remove(&session);
                self.out
                    .send(Event::RemoteLeft {
                        room,
                        server,
                        session,
                        kind,
                    })
                    .await;
            }
            Message::Beat { count, .. } => {
                if count != peer.members.len() as u64 {
                    // Lost count (a message missed, or we came late): ask everyone.
                    self.ask_rosters(&room);
                }
            }
            Message::Who { .. } => {
                if let Some(reply) = message.reply {
                    let members = self.local.get(&room).map_or_else(Vec::new, |local| {
                        local.iter().map(|(s, n)| (*s, n.clone())).collect()
                    });
                    let roster = Message::Roster {
                        server: self.server,
                        members,
                    };
                    let token = roster.seal(&self.ring, &mut self.rng);
                    let _ = self.client.publish(reply, Bytes::from(token)).await;
                }
            }
            Message::Roster { .. } => {}
        }
    }

    fn ask_rosters(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let (client, ring, id, server) = (
            self.client.clone(),
            self.ring.clone(),
            r.id.clone(),
            self.server,
        );
        let inner = self.inner.clone();
        let room = room.to_owned();
        tokio::spawn(async move {
            let roster = who(&client, &ring, &id, server).await;
            let _ = inner.send(Inner::Rosters { room, roster });
        });
    }

    /// Brings the rosters of the servers that answered up to date, telling the loop what
    /// changed.
    async fn reconcile(&mut self, room: &str, roster: Vec<(u64, u64, String)>) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let mut told: HashMap<u64, HashMap<u64, String>> = HashMap::new();
        for (server, session, nick) in roster {
            told.entry(server).or_default().insert(session, nick);
        }
        let mut events = Vec::new();
        for (server, members) in told {
            let peer = r.peers.entry(server).or_insert_with(|| Peer {
                members: HashMap::new(),
                heard: Instant::now(),
            });
            peer.heard = Instant::now();
            for (session, nick) in &members {
                if !peer.members.contains_key(session) {
                    events.push(Event::RemoteJoined {
                        room: room.to_owned(),
                        server,
                        session: *session,
                        nick: nick.clone(),
                    });
                }
            }
            for session in peer.members.keys() {
                if !members.contains_key(session) {
                    events.push(Event::RemoteLeft {
                        room: room.to_owned(),
                        server,
                        session: *session,
                        kind: chat_core::wire::PresenceKind::Left.to_u8(),
                    });
                }
            }
            peer.members = members;
        }
        for event in events {
            self.out.send(event).await;
        }
    }

    /// Every open room: say we are alive; forget servers that stopped saying so.
    async fn beat(&mut self) {
        let mut messages = Vec::new();
        let mut gone = Vec::new();
        for (name, room) in self.rooms.iter_mut() {
            let count = self.local.get(name).map_or(0, |local| local.len() as u64);
            messages.push((
                name.clone(),
                Message::Beat {
                    server: self.server,
                    count,
                },
            ));
            room.peers.retain(|server, peer| {
                let alive = peer.heard.elapsed() < SILENCE;
                if !alive {
                    gone.push(Event::ServerGone {
                        room: name.clone(),
                        server: *server,
                    });
                }
                alive
            });
        }
        for (room, message) in messages {
            self.tell(&room, &message).await;
        }
        for event in gone {
            self.out.send(event).await;
        }
    }
}

/// Opens room `room`: makes its stream if it is new, derives its epoch, picks where to
/// start (where the joiner that asked was, if it was in this incarnation of the room;
/// else the end), asks the other servers who is there, and feeds the room's lines from
/// there on, for as long as the room is open.
#[allow(clippy::too_many_arguments)]
async fn open(
    js: jetstream::Context,
    client: async_nats::Client,
    ring: Ring,
    settings: Settings,
    server: u64,
    room: String,
    id: String,
    resume: Option<(u64, u64)>,
    inner: mpsc::UnboundedSender<Inner>,
) {
    let name = names::stream(&id);
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![names::stream_subjects(&id)],
        max_age: settings.max_age,
        max_bytes: settings.max_bytes,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        allow_direct: true,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let info = async {
        let mut stream = js
            .get_or_create_stream(config)
            .await
            .map_err(|e| e.to_string())?;
        stream.info().await.cloned().map_err(|e| e.to_string())
    }
    .await;
    let info = match info {
        Ok(info) => info,
        Err(why) => {
            let _ = inner.send(Inner::OpenFailed { room, why });
            return;
        }
    };
    let epoch = names::epoch(&ring, &name, info.created.unix_timestamp_nanos());
    let end = info.state.last_sequence.saturating_add(1);
    let start = match resume {
        Some((e, next)) if e == epoch => next.clamp(1, end),
        _ => end,
    };
    let roster = who(&client, &ring, &id, server).await;
    let _ = inner.send(Inner::Opened {
        room,
        epoch,
        start,
        roster,
    });
}

/// Feeds room `room`'s lines from `next` on, in order, through an ordered consumer
/// (made again from where it stopped whenever it fails: the broker restarted, say).
async fn feed(js: jetstream::Context, stream: String, room: String, mut next: u64, out: Out) {
    let mut backoff = RETRY_MIN;
    loop {
        let messages = async {
            let stream = js
                .get_stream_no_info(&stream)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: next,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        }
        .await;
        match messages {
            Ok(mut messages) => {
                while let Some(message) = messages.next().await {
                    let Ok(message) = message else {
                        break;
                    };
                    let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
                        continue;
                    };
                    if seq < next {
                        continue;
                    }
                    backoff = RETRY_MIN;
                    next = seq + 1;
                    let token = message.payload.to_vec();
                    out.send(Event::Ordered {
                        room: room.clone(),
                        seq,
                        token,
                    })
                    .await;
                }
            }
            Err(_) => backoff = (backoff * 2).min(RETRY_MAX),
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Publishes one line of `origin` (`msg_id`) in room `id`, its previous line at `prev`.
async fn publish(
    js: &jetstream::Context,
    id: &str,
    origin: u64,
    msg_id: u32,
    prev: u64,
    token: Bytes,
) -> Publication {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", names::msg_id(origin, msg_id).as_str());
    headers.insert(
        "Nats-Expected-Last-Subject-Sequence",
        prev.to_string().as_str(),
    );
    headers.insert(HDR_MSG_ID, msg_id.to_string().as_str());
    headers.insert(HDR_PREV, prev.to_string().as_str());
    let subject = names::line_subject(id, origin);
    let acked = match js.publish_with_headers(subject, headers, token).await {
        Ok(ack) => ack.await,
        Err(err) => Err(err),
    };
    match acked {
        Ok(ack) => Publication::Stored {
            seq: ack.sequence,
            duplicate: ack.duplicate,
        },
        Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => Publication::WrongLast,
        Err(err) => Publication::Failed(err.to_string()),
    }
}

/// The last lines of `session` in room `id`, oldest first, as `(msg_id, seq)`: the last
/// one by subject, then back through `Hc-Prev`. Empty if it has none (or the broker
/// cannot say).
async fn lookup(js: &jetstream::Context, id: &str, session: u64) -> Vec<(u32, u64)> {
    let Ok(stream) = js.get_stream_no_info(names::stream(id)).await else {
        return Vec::new();
    };
    let header = |m: &jetstream::message::StreamMessage, name: &str| -> Option<u64> {
        m.headers.get(name)?.as_str().parse().ok()
    };
    let mut lines = Vec::new();
    let mut at = stream
        .get_last_raw_message_by_subject(&names::line_subject(id, session))
        .await
        .ok();
    while let Some(message) = at.take() {
        let Some(msg_id) = header(&message, HDR_MSG_ID).and_then(|m| u32::try_from(m).ok()) else {
            break;
        };
        lines.push((msg_id, message.sequence));
        let prev = header(&message, HDR_PREV).unwrap_or(0);
        if lines.len() >= LOOKUP_LINES || prev == 0 {
            break;
        }
        at = stream.get_raw_message(prev).await.ok();
    }
    lines.reverse();
    lines
}

/// Asks the other servers with room `id` open who is there: `(server, session, nick)`.
async fn who(
    client: &async_nats::Client,
    ring: &Ring,
    id: &str,
    server: u64,
) -> Vec<(u64, u64, String)> {
    let inbox = client.new_inbox();
    let Ok(mut answers) = client.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    let Ok(mut rng) = crate::net::rng() else {
        return Vec::new();
    };
    let token = Message::Who { server }.seal(ring, &mut rng);
    if client
        .publish_with_reply(names::presence_subject(id), inbox, Bytes::from(token))
        .await
        .is_err()
    {
        return Vec::new();
    }
    let mut roster = Vec::new();
    let deadline = tokio::time::Instant::now() + WHO_WAIT;
    while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await {
        if let Some(Message::Roster { server, members }) = Message::open(ring, &answer.payload) {
            roster.extend(members.into_iter().map(|(s, n)| (server, s, n)));
        }
    }
    roster
}
