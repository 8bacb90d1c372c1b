//! `host-chat server --cluster`: rooms served by several servers through NATS JetStream.
//!
//! The relay (chat_core's, in external-ordering mode) stays on the mio loop; the broker
//! client (the official `async-nats`, on a current-thread tokio runtime) runs on a thread
//! of its own. They talk through two channels: [`Command`]s from the loop (send never
//! blocks), [`Event`]s to it (each followed by a `mio::Waker` wake-up). A server without
//! `--cluster` starts neither the thread nor the runtime.
//!
//! What the broker holds (see [`names`]):
//!
//! | what | where | kept |
//! |---|---|---|
//! | a room's lines | stream `HC_<room id>`, subject `hc.<room id>.<session>` | by age and size (`--cluster-max-age`, `--cluster-max-bytes`), `--cluster-replicas` copies |
//! | joins, leaves, heartbeats, rosters | subject `hcp.<room id>` (core NATS) | not kept |
//!
//! The room id is a keyed hash of the room's name (HMAC-SHA256 under the chat key), so
//! the broker never sees a room's name; every payload is a Fernet token under the chat
//! key (lines: chat_core's line record; presence: [`presence`]). The stream's sequence
//! numbers are the room's: every server delivers the same lines under the same numbers.
//!
//! | module | owns |
//! |---|---|
//! | `names` | room ids, stream and subject names, the room's epoch |
//! | `presence` | what servers tell each other about their members |
//! | `broker` | the async side: connection, streams, publishing, consumers, lookups |

mod broker;
pub mod names;
pub mod presence;

use crate::keys::Ring;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How the cluster's streams are made, and where the broker is.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `nats://HOST:PORT` of each broker node the server may use.
    pub urls: Vec<String>,
    /// Copies of each room's stream (JetStream `num_replicas`: 3 on a three-node cluster).
    pub replicas: usize,
    /// Lines older than this leave a room's stream (`max_age`).
    pub max_age: Duration,
    /// A room's stream keeps at most this many bytes, oldest lines leaving first
    /// (`max_bytes`).
    pub max_bytes: i64,
    /// How long the broker remembers a line's name to refuse it twice (JetStream's
    /// `duplicate_window`).
    pub duplicate_window: Duration,
}

/// What the loop asks of the broker side.
#[derive(Debug)]
pub enum Command {
    /// Publish a proposal's token in room `room`'s stream until it is stored.
    Publish {
        room: String,
        origin: u64,
        msg_id: u32,
        token: Vec<u8>,
    },
    /// Start feeding room `room`: answered with [`Event::Opened`] then its lines.
    Open {
        room: String,
        resume: Option<(u64, u64)>,
    },
    /// Stop feeding room `room`.
    Close { room: String },
    /// Find the last lines of `session` in room `room` ([`Event::Found`]).
    Lookup { room: String, session: u64 },
    /// A member joined room `room` here.
    Joined {
        room: String,
        session: u64,
        nick: String,
    },
    /// A member left room `room` here (`kind`: chat_core's presence kind byte).
    Left {
        room: String,
        session: u64,
        nick: String,
        kind: u8,
    },
}

/// What the broker side tells the loop.
#[derive(Debug)]
pub enum Event {
    /// Room `room` is open: its epoch, the sequence number of the first line to come,
    /// and who is in it on the other servers `(server, session, nick)`.
    Opened {
        room: String,
        epoch: u64,
        next_seq: u64,
        roster: Vec<(u64, u64, String)>,
    },
    /// Room `room` could not be opened.
    OpenFailed { room: String, why: String },
    /// Line `seq` of room `room`, in order.
    Ordered {
        room: String,
        seq: u64,
        token: Vec<u8>,
    },
    /// The answer to [`Command::Lookup`]: `(msg_id, seq)` of the session's last lines.
    Found {
        room: String,
        session: u64,
        lines: Vec<(u32, u64)>,
    },
    /// A member joined room `room` on server `server`.
    RemoteJoined {
        room: String,
        server: u64,
        session: u64,
        nick: String,
    },
    /// A member left room `room` on server `server`.
    RemoteLeft {
        room: String,
        server: u64,
        session: u64,
        kind: u8,
    },
    /// Server `server` stopped answering in room `room`.
    ServerGone { room: String, server: u64 },
    /// The broker became unreachable (`up` false) or reachable again.
    Broker { up: bool },
    /// Counters changed.
    Counters(Counters),
    /// A line for the server's log.
    Log(String),
}

/// What the broker side counts, for `--stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lines stored in a stream by this server.
    pub published: u64,
    /// Publications the broker had already (a retry whose first try was stored).
    pub duplicates: u64,
    /// Publications tried again (timeout, broker unreachable).
    pub retries: u64,
    /// Lines waiting to be stored.
    pub waiting: u64,
    /// Times the broker became unreachable.
    pub outages: u64,
}

/// The loop's end of the link to the broker thread.
#[derive(Debug)]
pub struct Link {
    /// Commands to the broker side.
    pub commands: mpsc::UnboundedSender<Command>,
    /// Events from it.
    pub events: mpsc::Receiver<Event>,
    /// This server's number among the servers of the cluster (random per start).
    pub server: u64,
}

/// Events that may wait for the loop: past this, the broker side waits (the room's
/// consumer stops pulling), so a busy loop is never flooded.
const EVENTS: usize = 4096;

/// Starts the broker thread: a current-thread tokio runtime running the broker side,
/// connecting to `settings.urls` (and reconnecting for as long as the server runs).
/// `wake` is called after each event.
pub fn start(settings: Settings, ring: Ring, wake: Arc<mio::Waker>) -> anyhow::Result<Link> {
    use anyhow::Context as _;
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (event_tx, events) = mpsc::channel(EVENTS);
    let server = rand::random::<u64>() | 1;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the broker client's runtime")?;
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            runtime.block_on(broker::run(
                settings,
                ring,
                server,
                command_rx,
                broker::Out::new(event_tx, wake),
            ));
        })
        .context("cannot start the broker thread")?;
    Ok(Link {
        commands,
        events,
        server,
    })
}
