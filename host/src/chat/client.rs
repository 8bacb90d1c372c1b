//! `host-chat client`: chat_core's [`Client`] on a connected UDP socket, reading lines
//! from standard input.

use crate::cli::{ChatArgs, ClientArgs, WireArgs};
use crate::error::NotDelivered;
use crate::keys::Ring;
use crate::net::{self, Clock, Endpoint, Machine, Step};
use crate::ui::{self, Tui, TuiState};
use anyhow::Context as _;
use chat_cli::count;
use chat_core::fernet::plaintext_buf_len;
use chat_core::session::{Client, ClientConfig, ClientEvent, ClientState, SendError};
use chat_core::time::{Duration, Instant};
use chat_core::wire::{Body, Plaintext};
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::io::{self, BufRead as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
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

/// What the standard-input thread hands to the loop.
#[derive(Debug)]
enum Input {
    Line(String),
    NotUtf8,
    Eof,
    /// `--tui`: a key, a resize...
    Term(ui::Event),
}

fn spawn_stdin(waker: Arc<mio::Waker>) -> anyhow::Result<Receiver<Input>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut stdin = stdin.lock();
            loop {
                let mut line = Vec::new();
                let input = match stdin.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => Input::Eof,
                    Ok(_) => {
                        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                            line.pop();
                        }
                        String::from_utf8(line).map_or(Input::NotUtf8, Input::Line)
                    }
                };
                let eof = matches!(input, Input::Eof);
                if tx.send(input).is_err() {
                    break;
                }
                let _ = waker.wake();
                if eof {
                    break;
                }
            }
        })
        .context("cannot start the input thread")?;
    Ok(rx)
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

impl ChatClient {
    /// Shows an event: `text` for people (stdout), or `fields` with `event` as JSON.
    fn show(&mut self, event: &str, text: &str, fields: Value) {
        if self.in_tui(event, text, &fields) {
            return;
        }
        if self.json {
            net::out(&with_event(event, fields).to_string());
        } else {
            net::out(text);
        }
    }

    /// Shows a status line: on stderr for people, as JSON on stdout.
    fn info(&mut self, event: &str, text: &str, fields: Value) {
        if self.in_tui(event, text, &fields) {
            return;
        }
        if self.json {
            net::out(&with_event(event, fields).to_string());
        } else {
            net::err(text);
        }
    }

    fn error(&mut self, text: &str) {
        if self.in_tui("error", text, &json!({})) {
            return;
        }
        if self.json {
            net::out(&json!({"event": "error", "message": text}).to_string());
        } else {
            net::err(text);
        }
    }

    /// `--tui`: hands an event to the screen; `false` without one.
    fn in_tui(&mut self, event: &str, text: &str, fields: &Value) -> bool {
        let now = self.now_hms();
        match &mut self.tui {
            Some(tui) => {
                tui.state.on_event(event, text, fields, &now);
                true
            }
            None => false,
        }
    }

    /// `--tui`: one event of the terminal; `true` to stop at once.
    fn terminal_event(&mut self, now: Instant, event: ui::Event) -> bool {
        let Some(tui) = &mut self.tui else {
            return false;
        };
        // Other events (a resize) only need the redraw that follows every turn.
        let ui::Event::Key(key) = event else {
            return false;
        };
        match ui::on_key(&mut tui.state, key) {
            Some(ui::Action::Line(line)) => self.line(line),
            Some(ui::Action::Who) => self.who(),
            Some(ui::Action::Quit) => self.quit(now),
            Some(ui::Action::Interrupt) => return self.interrupt(now),
            Some(ui::Action::Redraw) => {
                let _ = tui.clear();
            }
            None => {}
        }
        false
    }

    /// `--tui`: brings the status bar up to date and draws the screen.
    fn redraw(&mut self) {
        let Some(tui) = &mut self.tui else { return };
        let status = &mut tui.state.status;
        status.members = self.client.members();
        status.conn = ui::Conn::of(self.client.state(), status.lost);
        status.rtt_ms = self.client.rtt().map(|rtt| rtt.millis());
        // A terminal that cannot be written to is gone: its reader thread says so.
        let _ = tui.draw();
    }

    /// Ctrl+C, SIGINT or SIGTERM: leave as soon as what is waiting is answered (within
    /// [`QUIT_GRACE`]); `true` to stop at once (the second time), reporting what is
    /// dropped.
    fn interrupt(&mut self, now: Instant) -> bool {
        if self.quit_by.is_some() || self.leaving {
            // A second Ctrl+C: do not wait for anything more.
            self.interrupted = true;
            self.drop_everything("interrupted");
            let fields = json!({"joined": self.joined, "interrupted": true});
            self.info("closed", "stopped at once", fields);
            return true;
        }
        let waiting = self.pending.len() + self.backlog.len();
        let text = if waiting == 0 {
            "leaving... (Ctrl+C again to quit at once)".to_owned()
        } else {
            format!(
                "leaving: waiting up to {} s for the server to take {} (Ctrl+C again to quit \
                 at once and drop {})",
                QUIT_GRACE.millis() / 1000,
                count(waiting as u64, "line"),
                if waiting == 1 { "it" } else { "them" }
            )
        };
        self.info("leaving", &text, json!({"waiting": waiting}));
        self.quit(now);
        false
    }

    fn now_hms(&self) -> String {
        net::hms(net::unix_millis() / 1000)
    }

    /// Moves the session to the next server given (PROTOCOL.md "Several servers"), if
    /// there is another and it did not just move: it rejoins there where it was.
    fn fail_over(&mut self, now: Instant, why: &str) {
        let state = self.client.state();
        if self.servers.len() < 2
            || self.leaving
            || !matches!(state, ClientState::Joined | ClientState::Joining)
            || self.moved_at.is_some_and(|at| now - at < FAILOVER_SETTLE)
        {
            return;
        }
        let from = self.server.clone();
        self.current = (self.current + 1) % self.servers.len();
        let (addr, name) = self.servers[self.current].clone();
        self.server = name.clone();
        self.redirect = Some(addr);
        self.moved_at = Some(now);
        self.refused_told = false;
        self.refused_at = None;
        self.client.rejoin(now);
        self.info(
            "failover",
            &format!("[{}] {from} {why}; moving to {name}", self.now_hms()),
            json!({"from": from, "server": name, "why": why}),
        );
    }

    fn quit(&mut self, now: Instant) {
        if self.quit_by.is_none() {
            self.quit_by = Some(now + QUIT_GRACE);
        }
    }

    fn leave(&mut self, now: Instant) {
        if !self.leaving {
            self.leaving = true;
            // Lines the session never took cannot reach the room any more.
            while let Some(line) = self.backlog.pop_front() {
                self.not_delivered(None, &line, "not sent: the session was leaving");
            }
            self.client.leave(now);
        }
    }

    /// `/who`: asks the server who is in the room; leaving waits for the answer.
    fn who(&mut self) {
        self.who_pending = true;
        self.client.request_members();
    }

    /// Stopping at once: every line not yet answered is reported undelivered.
    fn drop_everything(&mut self, why: &str) {
        for (id, line) in std::mem::take(&mut self.pending) {
            self.not_delivered(Some(id), &line, why);
        }
        while let Some(line) = self.backlog.pop_front() {
            self.not_delivered(None, &line, why);
        }
    }

    /// A line given to this session will not reach the room: says which, and why (one
    /// `undelivered` event, naming it by its text and, if the session took it, its id).
    fn not_delivered(&mut self, id: Option<u32>, line: &str, why: &str) {
        self.undelivered += 1;
        let text = match id {
            Some(id) => format!("line {id} not delivered ({why}): {line}"),
            None => format!("line not delivered ({why}): {line}"),
        };
        let mut fields = json!({"text": line, "reason": why});
        if let Some(id) = id {
            fields["id"] = json!(id);
        }
        self.info("undelivered", &text, fields);
    }

    /// How the session went, as the exit status sees it: `Ok` only if it joined and
    /// every line given reached the room.
    fn outcome(&self) -> anyhow::Result<()> {
        let room = self.client.room();
        let failure = if let Some(reason) = &self.refusal {
            format!("the server refused to let us in: {reason}")
        } else if !self.joined {
            let why = if self.refused_at.is_some() {
                "nothing is listening there (connection refused)"
            } else {
                "no answer (is `host-chat server` running there, with the same key?)"
            };
            format!("never joined room {room} on {}: {why}", self.server)
        } else if self.undelivered > 0 {
            format!(
                "{} of {} did not reach the room",
                self.undelivered,
                count(self.given as u64, "line")
            )
        } else {
            return Ok(());
        };
        Err(NotDelivered(failure).into())
    }

    /// Everything given is done: joined, every line taken and answered, `/who` answered.
    fn all_answered(&self) -> bool {
        self.client.state() == ClientState::Joined
            && self.backlog.is_empty()
            && self.client.unacknowledged() == 0
            && !self.who_pending
    }

    fn line(&mut self, line: String) {
        let line = match line.strip_prefix('/') {
            None => line,
            Some(rest) if rest.starts_with('/') => rest.to_owned(),
            Some(command) => {
                match command.trim() {
                    "quit" | "exit" | "q" => {
                        let now = self.clock.now();
                        self.quit(now);
                    }
                    "who" | "members" => self.who(),
                    "help" | "?" => self.info(
                        "help",
                        "type a line and Enter to send it; /who lists the room, /quit \
                         leaves; start a line with // to send one beginning with /",
                        json!({}),
                    ),
                    other => self.error(&format!(
                        "unknown command /{other}: /who, /quit, /help (start a line with // \
                         to send one beginning with /)"
                    )),
                }
                return;
            }
        };
        if line.is_empty() {
            return;
        }
        self.given += 1;
        if self.quit_by.is_some() || self.leaving {
            self.not_delivered(None, &line, "not sent: leaving the room");
            return;
        }
        let max = self.client.max_text_len();
        if line.len() > max {
            let why = format!("too long: {} bytes, at most {max}", line.len());
            self.not_delivered(None, &line, &why);
            return;
        }
        self.backlog.push_back(line);
    }

    fn send_backlog(&mut self) {
        while let Some(line) = self.backlog.pop_front() {
            match self.client.send(&line) {
                Ok(id) => {
                    if self.json {
                        net::out(&json!({"event": "sent", "id": id, "text": line}).to_string());
                    }
                    self.pending.insert(id, line);
                }
                Err(SendError::QueueFull) => {
                    self.backlog.push_front(line);
                    break;
                }
                Err(SendError::TooLong { max }) => {
                    let why = format!("too long: {} bytes, at most {max}", line.len());
                    self.not_delivered(None, &line, &why);
                }
                Err(SendError::Closed) => {
                    self.not_delivered(None, &line, "not sent: the session is closed");
                }
            }
        }
    }

    /// Acts on every event the session has; `true` when it is over.
    fn events(&mut self) -> bool {
        let mut closed = false;
        while let Some(event) = self.client.poll_event() {
            closed |= self.event(event);
        }
        closed
    }

    /// Acts on one event; `true` when the session is over.
    fn event(&mut self, event: ClientEvent<TEXT>) -> bool {
        let server = self.server.clone();
        // The members every driver writes for this event (chat_core), plus ours.
        let core = core_fields(&event);
        let fields = |extra: Value| merged(&core, extra);
        match event {
            ClientEvent::Joined {
                members,
                rejoined,
                resumed,
                ..
            } => {
                self.refused_told = false;
                self.joined = true;
                let (nick, room) = (self.client.nick().to_owned(), self.client.room().to_owned());
                let members = count(members, "member");
                let text = if rejoined && resumed {
                    format!(
                        "back in room {room} on {server} as {nick} ({members}): what was said \
                         meanwhile follows"
                    )
                } else if rejoined {
                    format!(
                        "joined room {room} again on {server} as {nick} ({members}); the room \
                         was restarted, so earlier messages may be missing"
                    )
                } else {
                    format!(
                        "joined room {room} on {server} as {nick} ({members}); type a line and \
                         Enter to send it, /who lists the room, /quit leaves"
                    )
                };
                self.info(
                    "joined",
                    &text,
                    fields(json!({"nick": nick, "room": room, "server": server})),
                );
            }
            ClientEvent::Message {
                nick,
                text,
                timestamp,
                ..
            } => {
                let shown = format!("[{}] {nick}: {text}", net::hms(timestamp));
                self.show("message", &shown, fields(json!({})));
            }
            ClientEvent::Delivered {
                id,
                seq,
                recipients,
            } => {
                self.pending.remove(&id);
                let text = format!(
                    "server: delivered as #{seq} to {}",
                    count(recipients, "member")
                );
                self.show("delivered", &text, fields(json!({})));
            }
            ClientEvent::Refused { id, reason } => {
                let line = self.pending.remove(&id).unwrap_or_default();
                self.undelivered += 1;
                self.info(
                    "refused",
                    &format!(
                        "server: line {id} refused ({}: the server takes shorter lines, check \
                         --max-datagram): {line}",
                        reason.as_str()
                    ),
                    fields(json!({"text": line})),
                );
            }
            ClientEvent::Presence {
                members,
                skipped,
                changes,
            } => {
                let mut parts: Vec<String> = changes
                    .iter()
                    .map(|(kind, nick)| format!("{nick} {}", kind.as_str()))
                    .collect();
                if skipped > 0 {
                    parts.push(format!(
                        "{} more (/who lists the room)",
                        count(skipped, "change")
                    ));
                }
                let shown = format!(
                    "[{}] * {} ({})",
                    self.now_hms(),
                    parts.join(", "),
                    count(members, "member")
                );
                self.show("presence", &shown, fields(json!({})));
            }
            ClientEvent::Undelivered { id, text } => {
                let line = self
                    .pending
                    .remove(&id)
                    .unwrap_or_else(|| text.as_str().to_owned());
                let why = if self.joined {
                    "the session ended before the server took it"
                } else {
                    "never joined"
                };
                self.not_delivered(Some(id), &line, why);
            }
            ClientEvent::Notice { text } => {
                if self.client.state() == ClientState::Closed && !self.leaving {
                    // A refused join comes as a notice, then Closed.
                    self.refusal = Some(text.as_str().to_owned());
                }
                self.info(
                    "server_notice",
                    &format!("server: {text}"),
                    fields(json!({})),
                );
            }
            ClientEvent::Missed { from, to } => {
                let last = to.saturating_sub(1);
                let which = if last == from {
                    format!("message #{from}")
                } else {
                    format!("{} (#{from} to #{last})", count(to - from, "message"))
                };
                self.info(
                    "missed",
                    &format!("missed {which}: the server dropped them before they reached us"),
                    fields(json!({})),
                );
            }
            ClientEvent::Members {
                total,
                start,
                names,
            } => {
                let listed: Vec<&str> = names.iter().collect();
                let end = start as usize + listed.len();
                if end as u32 >= total || listed.is_empty() {
                    // The last page: the next ones come by themselves.
                    self.who_pending = false;
                }
                let text = if start == 0 && end as u32 >= total {
                    format!(
                        "{} in room {}: {}",
                        count(total, "member"),
                        self.client.room(),
                        listed.join(", ")
                    )
                } else {
                    format!(
                        "members {}-{end} of {total} in room {}: {}",
                        start + 1,
                        self.client.room(),
                        listed.join(", ")
                    )
                };
                self.show("members", &text, fields(json!({})));
            }
            ClientEvent::NoAnswer { waited } => {
                let secs = waited.millis().saturating_add(500) / 1000;
                if self.servers.len() > 1 {
                    let now = self.clock.now();
                    self.fail_over(now, &format!("did not answer within {secs} s"));
                    return false;
                }
                // Nothing listening has been said already: no need for the key hint.
                let refused = self
                    .refused_at
                    .is_some_and(|at| self.clock.now() - at <= waited);
                let fields = fields(json!({"server": server, "connection_refused": refused}));
                if refused && self.tui.is_none() && !self.json {
                    return false;
                }
                let text = if refused {
                    format!(
                        "no answer from {server} within {secs} s: nothing is listening there \
                         (connection refused); still trying"
                    )
                } else {
                    format!(
                        "no answer from {server} within {secs} s: is `host-chat server` \
                         running there, with the same key? (still trying)"
                    )
                };
                self.info("no_answer", &text, fields);
            }
            ClientEvent::ServerLost { silent_for } => {
                let secs = silent_for.millis() / 1000;
                if self.servers.len() > 1 {
                    let now = self.clock.now();
                    self.fail_over(now, &format!("said nothing for {secs} s"));
                } else {
                    self.info(
                        "server_lost",
                        &format!(
                            "[{}] no word from {server} for {secs} s; still trying",
                            self.now_hms()
                        ),
                        fields(json!({"server": server})),
                    );
                }
            }
            ClientEvent::ServerBack => {
                self.refused_told = false;
                self.info(
                    "server_back",
                    &format!("[{}] {server} answers again", self.now_hms()),
                    fields(json!({"server": server})),
                );
            }
            ClientEvent::Rejoining => self.info(
                "rejoining",
                &format!(
                    "[{}] {server} no longer has us as a member (we were silent past its member \
                     timeout, or it restarted); joining again where we were",
                    self.now_hms()
                ),
                fields(json!({"server": server})),
            ),
            ClientEvent::ClockSynced { unix_secs } => self.info(
                "clock_synced",
                &format!("clock set from the server: {} UTC", net::hms(unix_secs)),
                fields(json!({})),
            ),
            ClientEvent::Closed => {
                if self.refusal.is_none() {
                    let text = if self.joined {
                        "left the room"
                    } else {
                        "gave up: never joined"
                    };
                    self.info("closed", text, fields(json!({"joined": self.joined})));
                }
                return true;
            }
        }
        false
    }

    /// `--show-wire` (and the wire view of `--tui`): describes a datagram if it is one of
    /// ours (a chat line out, or the server's receipt in).
    fn show_wire(&mut self, outgoing: bool, datagram: &[u8]) {
        match describe_wire(&self.ring, outgoing, datagram) {
            Some(Wire::Sent {
                msg_id,
                text,
                token,
            }) => {
                let again = !self.wire_shown.insert(msg_id);
                if let Some(tui) = &mut self.tui {
                    tui.state.wire_sent(msg_id, &text, &token, again);
                } else if self.json {
                    net::out(
                        &json!({"event": "wire", "direction": "out", "msg_id": msg_id, "text": text,
                                "token": token, "retransmission": again})
                        .to_string(),
                    );
                } else if again {
                    net::out(&format!("resent: {text}"));
                    net::out(&format!("token: {token}"));
                } else {
                    net::out(&format!("sent: {text}"));
                    net::out(&format!("token: {token}"));
                }
            }
            Some(Wire::Receipt {
                msg_id,
                summary,
                token,
            }) => {
                if let Some(tui) = &mut self.tui {
                    tui.state.wire_response(msg_id, &summary, &token);
                } else if self.json {
                    net::out(
                        &json!({"event": "wire", "direction": "in", "response": summary,
                                "token": token})
                        .to_string(),
                    );
                } else {
                    net::out(&format!("response: {summary}"));
                    net::out(&format!("response token: {token}"));
                }
            }
            None => {}
        }
    }
}

/// One of our datagrams, decrypted: what `--show-wire` and the wire view show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A chat line we sent.
    Sent {
        /// Its number on the wire.
        msg_id: u32,
        /// The original text.
        text: String,
        /// The token (the datagram).
        token: String,
    },
    /// The server's receipt for one of our lines.
    Receipt {
        /// The line's number on the wire.
        msg_id: u32,
        /// What the receipt says.
        summary: String,
        /// The token (the datagram).
        token: String,
    },
}

/// Describes `datagram` if it is one of ours: a chat line out (`outgoing`), or the
/// server's receipt in; `None` for anything else (pings, joins, room messages...).
pub fn describe_wire(ring: &Ring, outgoing: bool, datagram: &[u8]) -> Option<Wire> {
    let mut plain = vec![0u8; plaintext_buf_len(datagram.len())];
    let (opened, _) = ring.decrypt(datagram, None, &mut plain).ok()?;
    let Ok(Plaintext::Frame(repr)) = Plaintext::parse(opened.plaintext) else {
        return None;
    };
    let token = String::from_utf8_lossy(datagram).into_owned();
    match (outgoing, repr.body) {
        (true, Body::Chat { msg_id, text }) => Some(Wire::Sent {
            msg_id,
            text: text.to_owned(),
            token,
        }),
        (
            false,
            Body::Receipt {
                msg_id,
                seq,
                recipients,
            },
        ) => {
            let summary = format!(
                "receipt for line {msg_id}: room message #{seq}, {}",
                count(recipients, "member")
            );
            Some(Wire::Receipt {
                msg_id,
                summary,
                token,
            })
        }
        (false, Body::Refused { msg_id, reason }) => Some(Wire::Receipt {
            msg_id,
            summary: format!("answer to line {msg_id}: refused ({})", reason.as_str()),
            token,
        }),
        _ => None,
    }
}

/// The event's JSON members as every driver writes them (`ClientEvent::json_fields`),
/// without `event` (which `with_event` puts first).
fn core_fields<const N: usize>(event: &ClientEvent<N>) -> Value {
    let mut fields: Value =
        serde_json::from_str(&format!("{{{}}}", event.json_fields())).unwrap_or_default();
    if let Some(map) = fields.as_object_mut() {
        map.remove("event");
    }
    fields
}

/// `base` with the members of `extra` added.
fn merged(base: &Value, extra: Value) -> Value {
    let mut fields = base.clone();
    if let (Some(map), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        map.extend(extra);
    }
    fields
}

fn with_event(event: &str, fields: Value) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), Value::from(event));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object)
}

impl Machine for ChatClient {
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, datagram: &mut [u8]) {
        // The datagram is opened in place: keep its text for the wire view, and show it
        // only if the session took it (a receipt that came twice is shown once).
        let copy = self.show_wire.then(|| datagram.to_vec());
        let taken = self.client.handle_datagram(now, datagram);
        if let (Some(copy), Ok(())) = (copy, taken) {
            self.show_wire(false, &copy);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let len = self.client.poll_transmit(now, buf)?;
        if self.show_wire {
            let copy = buf.get(..len)?.to_vec();
            self.show_wire(true, &copy);
        }
        // The socket is connected: the address is not used.
        Some((SocketAddr::from(([0, 0, 0, 0], 0)), len))
    }

    fn app(&mut self, now: Instant) -> Step {
        use signal_hook::consts::{SIGINT, SIGTERM};
        while let Ok(signal) = self.signals.try_recv() {
            if (signal == SIGINT || signal == SIGTERM) && self.interrupt(now) {
                return Step::Stop;
            }
        }
        while let Ok(input) = self.input.try_recv() {
            match input {
                Input::Line(line) => self.line(line),
                Input::NotUtf8 => {
                    self.given += 1;
                    self.not_delivered(None, "", "not sent: the line is not UTF-8 text");
                }
                Input::Eof => self.quit(now),
                Input::Term(event) => {
                    if self.terminal_event(now, event) {
                        return Step::Stop;
                    }
                }
            }
        }
        if !self.leaving {
            self.send_backlog();
        }
        let mut closed = self.events();
        // After the events: the answers they brought count for "all answered".
        if let Some(by) = self.quit_by
            && !closed
            && !self.leaving
            && (self.all_answered() || by <= now)
        {
            self.leave(now);
            closed = self.events();
        }
        if closed || self.client.state() == ClientState::Closed {
            return Step::Stop;
        }
        if self.next_clock_sync <= now {
            self.client.sync_clock(now, net::unix_millis());
            self.next_clock_sync = now + CLOCK_SYNC;
        }
        let mut deadline = self.next_clock_sync;
        if let Some(by) = self.quit_by.filter(|_| !self.leaving) {
            deadline = deadline.min(by);
        }
        self.redraw();
        Step::Continue(Some(deadline))
    }

    fn redirect(&mut self) -> Option<SocketAddr> {
        self.redirect.take()
    }

    fn socket_error(&mut self, now: Instant, error: &io::Error) {
        if error.kind() == io::ErrorKind::ConnectionRefused && self.servers.len() > 1 {
            self.refused_at = Some(now);
            self.fail_over(now, "is not there (connection refused)");
        } else if error.kind() == io::ErrorKind::ConnectionRefused {
            self.refused_at = Some(now);
            if !self.refused_told {
                self.refused_told = true;
                let server = self.server.clone();
                self.info(
                    "connection_refused",
                    &format!(
                        "nothing is listening at {server} (connection refused); is `host-chat \
                         server` running there? still trying"
                    ),
                    json!({"server": server}),
                );
            }
        } else {
            self.error(&format!("network error: {error}"));
        }
    }
}
