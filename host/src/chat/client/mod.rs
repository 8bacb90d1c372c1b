//! `host-chat client`: chat_core's [`Client`] on a connected UDP socket, reading lines
//! from standard input.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Options`], [`Intro`], [`run_cli`], [`run_with`], the session's state |
//! | `input.rs` | standard input's thread, the `--tui` keys, the commands, the backlog |
//! | `events.rs` | each session event, shown and acted on |
//! | `output.rs` | showing: text for people, `--json` objects, or the `--tui` screen |
//! | `wire.rs` | `--show-wire` and the wire view: [`Wire`], [`describe_wire`] |
//! | `leaving.rs` | `/quit`, Ctrl+C and the grace, lines not delivered, the exit status |
//! | `machine.rs` | the event loop's `Machine`, moving to the next server |

mod events;
mod input;
mod leaving;
mod machine;
mod output;
mod wire;

pub use wire::{Wire, describe_wire};

use crate::cli::{ChatArgs, ClientArgs, WireArgs};
use crate::keys::Ring;
use crate::net::{self, Clock, Endpoint};
use crate::ui::{self, Tui, TuiState};
use anyhow::Context as _;
use chat_core::session::{Client, ClientConfig};
use chat_core::time::{Duration, Instant};
use input::{Input, spawn_stdin};
use rand::rngs::StdRng;
use serde_json::json;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc::{self, Receiver};

/// Bytes kept per line.
pub const TEXT: usize = 1024;
/// Lines that may await the server's receipt at once.
pub const OUTBOX: usize = 16;
/// Events that may wait between two turns of the loop.
pub const EVENTS: usize = 64;

/// Room messages kept while a gap before them fills.
pub const REORDER: usize = 32;

/// The client the host runs.
pub type HostClient = Client<StdRng, 7, TEXT, OUTBOX, EVENTS, REORDER>;

/// After `/quit`, the end of input or a first Ctrl+C, how long the session may take to
/// finish what it was given (join, the server's answers to every line and to `/who`)
/// before it says goodbye; what is still unanswered then is reported undelivered.
pub const QUIT_GRACE: Duration = Duration::from_secs(5);
/// How often the client's real-time clock is corrected from the system clock.
const CLOCK_SYNC: Duration = Duration::from_secs(60);
/// A session that moved to another server stays there at least this long before it
/// moves again (a server that refuses or is silent at first gets a fair try).
const FAILOVER_SETTLE: Duration = Duration::from_secs(1);

/// Everything a client session needs besides its keys.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's address.
    pub server: SocketAddr,
    /// The server as the user named it, for messages.
    pub server_name: String,
    /// Servers of the same cluster to move to, in turn, when the current one stops
    /// answering (`client A,B,C`: B and C), each with its name as the user gave it.
    pub fallbacks: Vec<(SocketAddr, String)>,
    /// What to show, and as whom.
    pub chat: ChatArgs,
    /// Datagram size, TTL and clock skew.
    pub wire: WireArgs,
}

/// `host-chat client`.
pub fn run_cli(args: &ClientArgs, key_env: Option<OsString>) -> anyhow::Result<()> {
    let json = args.chat.json;
    let result = (|| {
        let mut servers = Vec::new();
        for name in args.server.split(',').map(str::trim) {
            servers.push((super::resolve_server(name)?, name.to_owned()));
        }
        let (server, server_name) = servers.remove(0);
        let keys = super::chat_keys(
            args.keys.key_file.as_deref(),
            key_env,
            super::KeyUser::Client,
        )?;
        let options = Options {
            server,
            server_name,
            fallbacks: servers,
            chat: args.chat.clone(),
            wire: args.wire,
        };
        run(keys.ring, &options)
    })();
    if let (Err(err), true) = (&result, json) {
        net::out(&json!({"event": "error", "message": format!("{err:#}")}).to_string());
    }
    result
}

/// Runs a client session until it is closed: joins, sends standard input's lines,
/// prints the room.
pub fn run(ring: Ring, options: &Options) -> anyhow::Result<()> {
    run_with(ring, options, &Intro::default())
}

/// A client on the host's clocks and a fresh OS-seeded RNG, of any size (`HostClient`
/// for the chat; the load generator's are smaller); `None` if the nick or room is not a
/// valid name.
pub fn new_client<
    const TEXT: usize,
    const OUTBOX: usize,
    const EVENTS: usize,
    const REORDER: usize,
>(
    config: &ClientConfig<'_>,
    ring: &Ring,
    clock: &Clock,
) -> anyhow::Result<Option<Client<StdRng, 7, TEXT, OUTBOX, EVENTS, REORDER>>> {
    let now = clock.now();
    Ok(Client::new(
        config,
        ring.clone(),
        net::rng()?,
        clock.wall_clock(now),
        now,
    ))
}

/// As [`run`], first showing the lines of `intro`.
pub fn run_with(ring: Ring, options: &Options, intro: &Intro) -> anyhow::Result<()> {
    let nick = super::default_nick(options.chat.nick.as_deref());
    let room = options.chat.room.clone();
    let config = ClientConfig {
        max_datagram: options.wire.max_datagram,
        ttl: Duration::from_secs(options.wire.ttl),
        clock_skew: Duration::from_secs(options.wire.clock_skew),
        // The session's own grace (QUIT_GRACE) covers the lines too: once it says
        // goodbye, it goes.
        drain_timeout: Duration::from_millis(0),
        ..ClientConfig::new(&nick, &room)
    };
    crate::error::check_names(&nick, &room)?;
    let clock = Clock::new();
    let client: HostClient =
        new_client(&config, &ring, &clock)?.context("the names were checked")?;
    let local: SocketAddr = if options.server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = mio::net::UdpSocket::bind(local).context("cannot open a UDP socket")?;
    socket
        .connect(options.server)
        .with_context(|| format!("cannot reach {}", options.server))?;
    let mut endpoint =
        Endpoint::new(socket, Some(options.server)).context("cannot set up the event loop")?;
    let signals = net::signals(endpoint.waker())?;
    let display = |addr: SocketAddr, name: &str| {
        if name.contains(':') {
            name.to_owned()
        } else {
            addr.to_string()
        }
    };
    let server = display(options.server, &options.server_name);
    let mut servers = vec![(options.server, server.clone())];
    servers.extend(
        options
            .fallbacks
            .iter()
            .map(|(addr, name)| (*addr, display(*addr, name))),
    );
    let (tui, input) = if options.chat.tui {
        let status = ui::Status::new(&server, &room, &nick);
        let mut state = TuiState::new(status, options.chat.show_wire);
        state.banner = intro.banner.clone();
        let tui = Tui::start(state)?;
        let (tx, rx) = mpsc::channel();
        ui::spawn_events(tx, endpoint.waker(), |event| {
            event.map_or(Input::Eof, Input::Term)
        })
        .context("cannot start the terminal thread")?;
        (Some(tui), rx)
    } else {
        (None, spawn_stdin(endpoint.waker())?)
    };
    let mut chat = ChatClient {
        client,
        ring,
        server,
        show_wire: options.chat.show_wire || tui.is_some(),
        json: options.chat.json,
        tui,
        input,
        signals,
        backlog: VecDeque::new(),
        pending: BTreeMap::new(),
        who_pending: false,
        given: 0,
        undelivered: 0,
        quit_by: None,
        leaving: false,
        interrupted: false,
        joined: false,
        refused_told: false,
        refused_at: None,
        refusal: None,
        wire_shown: HashSet::new(),
        servers,
        current: 0,
        redirect: None,
        moved_at: None,
        next_clock_sync: clock.now() + CLOCK_SYNC,
        clock,
    };
    for line in &intro.lines {
        chat.info("intro", line, json!({}));
    }
    chat.info(
        "starting",
        &format!("joining room {room} on {} as {nick}...", chat.server),
        json!({"server": chat.server, "nick": nick, "room": room}),
    );
    net::run(&mut endpoint, &clock, options.wire.max_datagram, &mut chat)
        .context("event loop failed")?;
    // The screen goes before the last word, which goes to stderr.
    drop(chat.tui.take());
    chat.outcome()
}

/// What a session shows before it starts.
#[derive(Debug, Clone, Default)]
pub struct Intro {
    /// Lines for the conversation (or stderr, or `intro` JSON events).
    pub lines: Vec<String>,
    /// `--tui`: a command to copy, shown above the conversation outside any border
    /// (see [`ui::Banner`]).
    pub banner: Option<ui::Banner>,
}

struct ChatClient {
    client: HostClient,
    ring: Ring,
    server: String,
    show_wire: bool,
    json: bool,
    /// `--tui`: the screen, which takes every event instead of stdout and stderr.
    tui: Option<Tui>,
    input: Receiver<Input>,
    signals: Receiver<i32>,
    /// Lines that met a full outbox, sent as soon as there is room.
    backlog: VecDeque<String>,
    /// Lines the session took, by id, until the server answers them (or they are
    /// reported undelivered).
    pending: BTreeMap<u32, String>,
    /// `/who` was asked and not answered yet.
    who_pending: bool,
    /// Chat lines given (typed or read).
    given: usize,
    /// Lines given that did not reach the room (refused, undelivered, not sent).
    undelivered: usize,
    /// `/quit`, end of input or a first Ctrl+C: leave once everything is answered, or
    /// by then.
    quit_by: Option<Instant>,
    leaving: bool,
    /// Stopped by a second Ctrl+C.
    interrupted: bool,
    /// Joined the room (at least once).
    joined: bool,
    refused_told: bool,
    /// When the last ICMP "connection refused" came: nothing listens at the server's
    /// address.
    refused_at: Option<Instant>,
    /// The server refused the join: why.
    refusal: Option<String>,
    /// Chat numbers whose token was shown (`--show-wire`), to mark retransmissions.
    wire_shown: HashSet<u32>,
    /// Every server given (`client A,B,C`), and the one in use.
    servers: Vec<(SocketAddr, String)>,
    current: usize,
    /// The socket is to send to this server from now on.
    redirect: Option<SocketAddr>,
    /// When the session last moved to another server.
    moved_at: Option<Instant>,
    next_clock_sync: Instant,
    clock: Clock,
}
