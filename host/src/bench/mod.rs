//! `host-chat bench`: a load generator, like redis-benchmark, and the plain relay it is
//! compared with (`host-chat bench-relay --plain`, hidden).
//!
//! N clients run in one thread: one mio loop owning N UDP sockets, one per client (so the
//! server sees N addresses), each connected to the server. Each message's text carries
//! its sender and number (`#C:K:xxxx...`); the loop remembers when it was sent, so the
//! latency of every delivery is measured from the sender's `send()` to the member's
//! message event, and of every receipt from `send()` to the server's answer.
//!
//! Three kinds of load (`--mode`):
//! * `framed`: chat_core `Client`s (join, chat, deliver, ack), against `host-chat server`;
//!   every member gets every line, the sender's own included (fan-out N);
//! * `legacy`: bare-text Fernet tokens, as the original Python chat sent, against
//!   `host-chat server` (PROTOCOL.md "Legacy senders") or `bench/python_relay.py`; the
//!   sender gets a receipt, the others the line (fan-out N - 1);
//! * `plain`: the same text without cryptography, against `host-chat bench-relay --plain`.

use crate::chat::child::{Log, ServerChild};
use crate::cli::Cli;
use crate::keys::Ring;
use crate::mmsg::{self, Datagrams};
use crate::net::{self, Clock, Endpoint, Machine, Step};
use anyhow::Context as _;
use chat_core::fernet::{KEY_TEXT_LEN, TtlCheck, token_len};
use chat_core::session::{ClientConfig, ClientEvent, DEFAULT_MAX_DATAGRAM, SendError};
use chat_core::time::Instant;
use clap::{Args, ValueEnum};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use serde_json::json;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, IsTerminal as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Duration;
use zeroize::Zeroizing;

type HostClient = crate::chat::client::HostClient;

/// `host-chat bench --help`, after the options.
pub const HELP: &str = "\
Output:
  a table (or one JSON object with --json): messages sent and accepted per second,
  deliveries per second (fan-out), latency percentiles from send() to each member's
  delivery and to the sender's receipt, losses and retransmissions. A progress line is
  drawn on standard error when it is a terminal.

Examples:
  host-chat bench --spawn-server                     # a private server, 4 clients
  host-chat bench --spawn-server -c 16 -n 100000 --rate 20000
  host-chat bench 192.168.1.20:12345 -c 8            # a running server, with its key
  host-chat bench --mode plain --spawn-server        # the plain relay, no cryptography
  host-chat bench --mode legacy --spawn-server python   # bench/python_relay.py";

/// What the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The chat protocol (chat_core `Client`): reliable, acknowledged, fan-out N.
    Framed,
    /// Bare-text Fernet tokens (the original Python chat): fan-out N - 1, no retries.
    Legacy,
    /// Bare text without cryptography, for `host-chat bench-relay --plain`.
    Plain,
}

/// Which server `--spawn-server` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpawnKind {
    /// `host-chat bench-relay --plain` for `--mode plain`, else `host-chat server`.
    Auto,
    /// `host-chat server`.
    Host,
    /// `host-chat bench-relay --plain`.
    Plain,
    /// `python3 bench/python_relay.py` (see --python-relay); `--mode legacy` only.
    Python,
}

/// Options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server: IP:PORT or HOST:PORT [default: 127.0.0.1:12345, or the spawned one].
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// Clients, each on its own socket, all in one room.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=250))]
    pub clients: u16,

    /// Messages to send in all, spread evenly over the clients.
    #[arg(long, short = 'n', value_name = "M", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
    pub messages: u64,

    /// Bytes of text per message (24 to 809).
    #[arg(long, short = 'd', value_name = "B", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(24..=809))]
    pub size: u16,

    /// Messages per second in all [default: as fast as the clients' windows allow].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// What the clients speak.
    #[arg(long, value_enum, default_value_t = Mode::Framed)]
    pub mode: Mode,

    /// Start a private server on 127.0.0.1 (fresh key) and measure it.
    #[arg(long, value_enum, value_name = "KIND", num_args = 0..=1,
          default_missing_value = "auto")]
    pub spawn_server: Option<SpawnKind>,

    /// The Python relay script, for `--spawn-server python`.
    #[arg(long, value_name = "PATH", default_value = "bench/python_relay.py")]
    pub python_relay: PathBuf,

    /// Lines in flight per client awaiting the server's receipt (legacy and plain: the
    /// server keeps 8 receipts due per member; framed clients have their outbox of 16).
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub window: u16,

    /// Framed clients: lines each may have awaiting the server's receipt (its outbox
    /// holds 16). Many senders with full outboxes can send a room more lines at once than
    /// its history holds (128): the excess is dropped and retransmitted 300 ms later.
    #[arg(long, short = 'P', value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub pipeline: u16,

    /// Seconds to wait for what is still missing once every line is sent.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub drain: u64,

    /// Print one JSON object with the results instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Options of the hidden `bench-relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// A relay without cryptography: bare text in, receipts and fan-out out.
    #[arg(long, required = true)]
    pub plain: bool,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:12346")]
    pub bind: String,

    /// Print the bound port alone on the first line of standard output.
    #[arg(long)]
    pub print_port: bool,
}

/// How long clients may take to join.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A legacy or plain line whose receipt has not come after this is counted as lost.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Longest datagram handled.
const MAX_DATAGRAM: usize = DEFAULT_MAX_DATAGRAM;

/// Asks a spawned `host-chat server` for its counters (SIGUSR1) and reads them from its
/// log: lines relayed, deliveries sent, retransmission rounds.
fn server_stats(server: &ServerChild) -> Option<(u64, u64, u64)> {
    let log = server.log()?;
    while log.try_recv().is_ok() {}
    Command::new("kill")
        .args(["-USR1", &server.id().to_string()])
        .status()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let line = log.recv_timeout(left).ok()?;
        if let Some(stats) = line.split("stats: ").nth(1) {
            let number = |after: &str| -> Option<u64> {
                let head = stats.split(after).next()?;
                head.rsplit([' ', ','])
                    .find(|w| !w.is_empty())?
                    .parse()
                    .ok()
            };
            return Some((
                number(" lines relayed")?,
                number(" deliveries sent")?,
                number(" retransmission rounds")?,
            ));
        }
    }
    None
}

/// `host-chat bench`.
pub fn run(cli: &Cli, args: &BenchArgs, key_env: Option<OsString>) -> anyhow::Result<()> {
    let kind = match args.spawn_server {
        Some(SpawnKind::Auto) if args.mode == Mode::Plain => Some(SpawnKind::Plain),
        Some(SpawnKind::Auto) => Some(SpawnKind::Host),
        other => other,
    };
    match (kind, args.mode) {
        (Some(SpawnKind::Plain), Mode::Framed | Mode::Legacy)
        | (Some(SpawnKind::Host | SpawnKind::Python), Mode::Plain) => {
            anyhow::bail!("--mode plain goes with the plain relay (--spawn-server plain) only")
        }
        (Some(SpawnKind::Python), Mode::Framed) => {
            anyhow::bail!("the Python relay speaks bare-text tokens only: use --mode legacy")
        }
        _ => {}
    }
    if kind.is_some() && args.server.is_some() {
        anyhow::bail!("give either SERVER or --spawn-server, not both");
    }

    // The key: a fresh one for a spawned server, else the chat's.
    let mut ring = None;
    let mut key_text = None;
    if args.mode != Mode::Plain {
        if kind.is_some() {
            let key = crate::chat::fresh_key().map_err(anyhow::Error::msg)?;
            let mut text = Zeroizing::new([0u8; KEY_TEXT_LEN]);
            key_text = Some(Zeroizing::new(key.to_base64(&mut text).to_owned()));
            ring = Some(Ring::new(key));
        } else {
            ring = Some(crate::chat::chat_keys(cli, key_env)?.ring);
        }
    }
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let (spawned, server) = match kind {
        None => {
            let text = args.server.as_deref().unwrap_or("127.0.0.1:12345");
            (None, crate::chat::resolve_server(text)?)
        }
        Some(kind) => {
            let mut cmd = match kind {
                SpawnKind::Python => {
                    let mut cmd = Command::new("python3");
                    cmd.arg(&args.python_relay);
                    cmd
                }
                _ => Command::new(&exe),
            };
            match kind {
                SpawnKind::Plain => cmd.args(["bench-relay", "--plain"]),
                SpawnKind::Python => &mut cmd,
                _ => cmd.arg("server"),
            };
            cmd.args(["--bind", "127.0.0.1:0", "--print-port"]);
            let (spawned, addr) =
                ServerChild::start(cmd, key_text.as_deref().map(String::as_str), Log::Keep)?;
            (Some(spawned), addr)
        }
    };
    let server_name = match kind {
        None => format!("{server}"),
        Some(SpawnKind::Python) => "python relay".to_owned(),
        Some(SpawnKind::Plain) => "plain relay".to_owned(),
        Some(_) => "host-chat server".to_owned(),
    };

    let report = Bench::new(args, server, ring)?.run()?;
    let server_stats = match (kind, spawned.as_ref()) {
        (Some(SpawnKind::Host), Some(spawned)) => server_stats(spawned),
        _ => None,
    };
    drop(spawned);
    report.print(args, &server_name, server_stats);
    Ok(())
}

/// One client's share of the load.
struct Peer {
    socket: UdpSocket,
    /// A chat_core client (framed mode).
    client: Option<Box<HostClient>>,
    /// Datagrams made, not yet sent.
    out: Datagrams,
    out_sent: usize,
    /// When each of its messages was sent (ns since the start), by number.
    sent_at: Vec<u64>,
    /// Legacy and plain: numbers awaiting their receipt, oldest first.
    waiting: VecDeque<u64>,
    /// Joined (framed), or its hello answered (legacy, plain).
    ready: bool,
    hello_at: Option<u64>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    accepted: u64,
    refused: u64,
    unanswered: u64,
    delivered: u64,
    duplicates: u64,
    chat_datagrams: u64,
    datagrams_out: u64,
    datagrams_in: u64,
    syscalls_out: u64,
    syscalls_in: u64,
}

struct Bench {
    mode: Mode,
    clients: usize,
    messages: u64,
    size: usize,
    rate: Option<f64>,
    window: usize,
    pipeline: usize,
    drain: Duration,
    poll: Poll,
    peers: Vec<Peer>,
    ring: Option<Ring>,
    rng: StdRng,
    clock: Clock,
    start: std::time::Instant,
    counts: Counts,
    delivery_us: Vec<u32>,
    receipt_us: Vec<u32>,
    first_send: Option<u64>,
    last_send: u64,
    last_progress: u64,
    text: String,
    progress: bool,
    progress_drawn: u64,
}

/// What a run measured.
struct Report {
    mode: Mode,
    clients: usize,
    messages: u64,
    size: usize,
    rate: Option<f64>,
    fanout: u64,
    counts: Counts,
    elapsed: f64,
    send_elapsed: f64,
    delivery_us: Vec<u32>,
    receipt_us: Vec<u32>,
}

fn now_ns(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Sender and number of a benchmark line: `#C:K:...` somewhere in `text`.
fn parse_payload(text: &[u8]) -> Option<(usize, u64)> {
    let at = text.iter().position(|&b| b == b'#')?;
    let rest = text.get(at + 1..)?;
    let mut parts = rest.splitn(3, |&b| b == b':');
    let number =
        |part: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(part?).ok()?.parse().ok() };
    let c = number(parts.next())?;
    let k = number(parts.next())?;
    Some((usize::try_from(c).ok()?, k))
}

impl Bench {
    fn new(args: &BenchArgs, server: SocketAddr, ring: Option<Ring>) -> anyhow::Result<Self> {
        let clock = Clock::new();
        let poll = Poll::new().context("cannot set up the event loop")?;
        let clients = usize::from(args.clients);
        let per_client = args.messages / clients as u64 + 1;
        let mut peers = Vec::with_capacity(clients);
        for i in 0..clients {
            let local: SocketAddr = if server.ip().is_loopback() {
                (server.ip(), 0).into()
            } else if server.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let mut socket = UdpSocket::bind(local).context("cannot open a UDP socket")?;
            socket
                .connect(server)
                .with_context(|| format!("cannot reach {server}"))?;
            poll.registry().register(
                &mut socket,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let client = match (args.mode, &ring) {
                (Mode::Framed, Some(ring)) => {
                    let nick = format!("bench-{i}");
                    let config = ClientConfig {
                        max_datagram: MAX_DATAGRAM,
                        ..ClientConfig::new(&nick, "bench")
                    };
                    let client = crate::chat::client::new_client(&config, ring, &clock)?
                        .context("bad client name")?;
                    Some(Box::new(client))
                }
                _ => None,
            };
            peers.push(Peer {
                socket,
                client,
                out: Datagrams::new(MAX_DATAGRAM),
                out_sent: 0,
                sent_at: Vec::with_capacity(usize::try_from(per_client).unwrap_or(0)),
                waiting: VecDeque::with_capacity(usize::from(args.window)),
                ready: false,
                hello_at: None,
                closed: false,
            });
        }
        let fanout = match args.mode {
            Mode::Framed => clients as u64,
            Mode::Legacy | Mode::Plain => clients as u64 - 1,
        };
        let expected = usize::try_from(args.messages * fanout).unwrap_or(usize::MAX);
        Ok(Self {
            mode: args.mode,
            clients,
            messages: args.messages,
            size: usize::from(args.size),
            rate: args.rate.filter(|r| *r > 0.0),
            window: usize::from(args.window),
            pipeline: usize::from(args.pipeline),
            drain: Duration::from_secs(args.drain),
            poll,
            peers,
            ring,
            rng: net::rng()?,
            clock,
            start: std::time::Instant::now(),
            counts: Counts::default(),
            delivery_us: Vec::with_capacity(expected.min(64 << 20)),
            receipt_us: Vec::with_capacity(usize::try_from(args.messages).unwrap_or(0)),
            first_send: None,
            last_send: 0,
            last_progress: 0,
            text: String::with_capacity(usize::from(args.size) + 32),
            progress: io::stderr().is_terminal(),
            progress_drawn: 0,
        })
    }

    fn fanout(&self) -> u64 {
        match self.mode {
            Mode::Framed => self.clients as u64,
            Mode::Legacy | Mode::Plain => self.clients as u64 - 1,
        }
    }

    fn run(mut self) -> anyhow::Result<Report> {
        let mut events = Events::with_capacity(1024);
        let mut incoming = Datagrams::new(MAX_DATAGRAM + 1);
        // Phase 1: everyone in the room.
        let join_deadline = now_ns(self.start) + START_TIMEOUT.as_nanos() as u64;
        loop {
            self.turn(&mut events, &mut incoming, Some(Duration::from_millis(5)))?;
            self.hellos();
            if self.peers.iter().all(|p| p.ready) {
                break;
            }
            if now_ns(self.start) > join_deadline {
                anyhow::bail!(
                    "only {} of {} clients got in within {START_TIMEOUT:?}: is the server \
                     running there, with the same key?",
                    self.peers.iter().filter(|p| p.ready).count(),
                    self.clients
                );
            }
        }
        // Let the join notices and hellos pass before measuring.
        let settle = now_ns(self.start) + 50_000_000;
        while now_ns(self.start) < settle {
            self.turn(&mut events, &mut incoming, Some(Duration::from_millis(5)))?;
        }

        // Phase 2: the load, then what is still on its way.
        let mut last_progress_at = now_ns(self.start);
        let mut last_count = 0u64;
        loop {
            let now = now_ns(self.start);
            self.send_due(now);
            self.expire_receipts(now);
            let wait = match self.rate {
                Some(rate) if self.counts.sent < self.messages => {
                    let next = self.first_send.unwrap_or(now)
                        + (self.counts.sent as f64 / rate * 1e9) as u64;
                    Duration::from_nanos(next.saturating_sub(now)).min(Duration::from_millis(50))
                }
                _ => Duration::from_millis(50),
            };
            self.turn(&mut events, &mut incoming, Some(wait))?;
            let now = now_ns(self.start);
            self.show_progress(now, false);
            let progress = self.counts.accepted
                + self.counts.refused
                + self.counts.unanswered
                + self.counts.delivered;
            if progress != last_count {
                last_count = progress;
                last_progress_at = now;
            }
            if self.counts.sent == self.messages {
                let answered = self.counts.accepted + self.counts.refused + self.counts.unanswered;
                if answered == self.messages
                    && self.counts.delivered >= self.counts.accepted * self.fanout()
                {
                    break;
                }
                if now.saturating_sub(last_progress_at) > self.drain.as_nanos() as u64 {
                    break;
                }
            }
        }
        let end = self.last_progress.max(self.last_send);
        self.show_progress(now_ns(self.start), true);

        // Phase 3: framed clients say goodbye (for a server that keeps running).
        if self.mode == Mode::Framed {
            let now = self.clock.now();
            for peer in &mut self.peers {
                if let Some(client) = peer.client.as_mut() {
                    client.leave(now);
                }
            }
            let deadline = now_ns(self.start) + 2_000_000_000;
            while !self.peers.iter().all(|p| p.closed) && now_ns(self.start) < deadline {
                self.turn(&mut events, &mut incoming, Some(Duration::from_millis(10)))?;
            }
        }

        let first = self.first_send.unwrap_or(0);
        Ok(Report {
            mode: self.mode,
            clients: self.clients,
            messages: self.messages,
            size: self.size,
            rate: self.rate,
            fanout: self.fanout(),
            elapsed: end.saturating_sub(first) as f64 / 1e9,
            send_elapsed: self.last_send.saturating_sub(first) as f64 / 1e9,
            counts: self.counts,
            delivery_us: self.delivery_us,
            receipt_us: self.receipt_us,
        })
    }

    /// Legacy and plain clients introduce themselves, so that the server knows every
    /// address before the load starts.
    fn hellos(&mut self) {
        if self.mode == Mode::Framed {
            return;
        }
        let now = now_ns(self.start);
        for i in 0..self.peers.len() {
            let peer = &self.peers[i];
            let due = !peer.ready
                && peer.hello_at.is_none_or(|at| {
                    now.saturating_sub(at) > RECEIPT_TIMEOUT.as_nanos() as u64 / 3
                });
            if due && !peer.out.is_full() {
                self.text.clear();
                let _ = write!(self.text, "hello from bench client {i}");
                self.push_text(i);
                self.peers[i].hello_at = Some(now);
            }
        }
    }

    /// Puts `self.text` into client `i`'s outgoing batch, encrypted unless plain.
    fn push_text(&mut self, i: usize) {
        let unix = net::unix_millis() / 1000;
        let peer = &mut self.peers[i];
        let buf = peer.out.next_buf();
        let len = self.text.len();
        buf[..len].copy_from_slice(self.text.as_bytes());
        let len = match &self.ring {
            Some(ring) if self.mode == Mode::Legacy => {
                match ring.encrypt_in_place(buf, len, unix, &mut self.rng) {
                    Ok(token) => token.len(),
                    Err(_) => return,
                }
            }
            _ => len,
        };
        peer.out.push(len, SocketAddr::from(([0, 0, 0, 0], 0)));
    }

    fn can_send(&self, i: usize) -> bool {
        let peer = &self.peers[i];
        match &peer.client {
            Some(client) => client.unacknowledged() < self.pipeline,
            None => peer.waiting.len() < self.window && !peer.out.is_full(),
        }
    }

    /// Sends the lines that are due: all the windows allow, or what the rate says.
    fn send_due(&mut self, now: u64) {
        let allowed = match self.rate {
            None => self.messages,
            Some(rate) => {
                let since = now.saturating_sub(self.first_send.unwrap_or(now));
                ((since as f64 / 1e9 * rate) as u64 + 1).min(self.messages)
            }
        };
        let mut stalled = 0;
        let mut i = (self.counts.sent % self.clients as u64) as usize;
        while self.counts.sent < allowed && stalled < self.clients {
            if self.can_send(i) && self.send_one(i, now) {
                stalled = 0;
            } else {
                stalled += 1;
            }
            i = (i + 1) % self.clients;
        }
        if self.counts.sent > 0 {
            self.flush_all();
        }
    }

    fn send_one(&mut self, i: usize, now: u64) -> bool {
        let k = self.peers[i].sent_at.len() as u64;
        self.text.clear();
        let _ = write!(self.text, "#{i}:{k}:");
        while self.text.len() < self.size {
            self.text.push('x');
        }
        let at = now_ns(self.start);
        match self.peers[i].client.as_mut() {
            Some(client) => match client.send(&self.text) {
                Ok(_) => {}
                Err(SendError::QueueFull | SendError::Closed | SendError::TooLong { .. }) => {
                    return false;
                }
            },
            None => {
                self.push_text(i);
                self.peers[i].waiting.push_back(k);
            }
        }
        self.peers[i].sent_at.push(at);
        self.counts.sent += 1;
        self.first_send.get_or_insert(now);
        self.last_send = at;
        true
    }

    /// Legacy and plain lines without a receipt for too long are lost.
    fn expire_receipts(&mut self, now: u64) {
        let limit = RECEIPT_TIMEOUT.as_nanos() as u64;
        for peer in &mut self.peers {
            while let Some(&k) = peer.waiting.front() {
                if now.saturating_sub(peer.sent_at[k as usize]) < limit {
                    break;
                }
                peer.waiting.pop_front();
                self.counts.unanswered += 1;
            }
        }
    }

    /// One turn of the loop: wait, read every readable socket, run the timers, send.
    fn turn(
        &mut self,
        events: &mut Events,
        incoming: &mut Datagrams,
        timeout: Option<Duration>,
    ) -> anyhow::Result<()> {
        let mut timeout = timeout;
        for peer in &self.peers {
            if let Some(at) = peer.client.as_ref().and_then(|c| c.poll_timeout()) {
                let left = self
                    .clock
                    .to_std(at)
                    .saturating_duration_since(std::time::Instant::now());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
        }
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("event loop failed"),
        }
        for event in events.iter() {
            let i = event.token().0;
            if i < self.peers.len() {
                self.read(i, incoming);
            }
        }
        let now = self.clock.now();
        for peer in &mut self.peers {
            if let Some(client) = peer.client.as_mut()
                && client.poll_timeout().is_some_and(|at| at <= now)
            {
                client.handle_timeout(now);
            }
        }
        self.flush_all();
        Ok(())
    }

    /// Drains client `i`'s socket.
    fn read(&mut self, i: usize, incoming: &mut Datagrams) {
        loop {
            match mmsg::recv(&self.peers[i].socket, incoming, None) {
                Ok(n) => {
                    self.counts.syscalls_in += 1;
                    self.counts.datagrams_in += n as u64;
                    for j in 0..n {
                        let (datagram, _) = incoming.get_mut(j);
                        self.on_datagram(i, datagram);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error (the server is gone): the drain timeout ends the run.
                Err(_) => break,
            }
        }
        if self.peers[i].client.is_some() {
            self.client_events(i);
        }
    }

    fn on_datagram(&mut self, i: usize, datagram: &mut [u8]) {
        let now_core = self.clock.now();
        if let Some(client) = self.peers[i].client.as_mut() {
            let _ = client.handle_datagram(now_core, datagram);
            return;
        }
        let text: &[u8] = match (&self.ring, self.mode) {
            (Some(ring), Mode::Legacy) => {
                let ttl = TtlCheck::new(60, net::unix_millis() / 1000);
                match ring.decrypt_in_place(datagram, ttl) {
                    Ok((opened, _)) => opened.plaintext,
                    Err(_) => return,
                }
            }
            _ => datagram,
        };
        let now = now_ns(self.start);
        if text.starts_with(b"server: received as #")
            || text.starts_with(b"server: message refused")
        {
            let refused = text.starts_with(b"server: message refused");
            let peer = &mut self.peers[i];
            if !peer.ready {
                peer.ready = true;
                return;
            }
            if let Some(k) = peer.waiting.pop_front() {
                if refused {
                    self.counts.refused += 1;
                } else {
                    self.counts.accepted += 1;
                }
                let us = now.saturating_sub(peer.sent_at[k as usize]) / 1000;
                self.receipt_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                self.last_progress = now;
            }
            return;
        }
        self.delivery(text, now);
    }

    /// A benchmark line reached a member.
    fn delivery(&mut self, text: &[u8], now: u64) {
        let Some((c, k)) = parse_payload(text) else {
            return;
        };
        let Some(&at) = self
            .peers
            .get(c)
            .and_then(|p| p.sent_at.get(usize::try_from(k).unwrap_or(usize::MAX)))
        else {
            self.counts.duplicates += 1;
            return;
        };
        self.counts.delivered += 1;
        let us = (now.saturating_sub(at)) / 1000;
        self.delivery_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        self.last_progress = now;
    }

    fn client_events(&mut self, i: usize) {
        let now = now_ns(self.start);
        while let Some(event) = self.peers[i].client.as_mut().and_then(|c| c.poll_event()) {
            match event {
                ClientEvent::Joined { .. } => self.peers[i].ready = true,
                ClientEvent::Message {
                    text,
                    notice: false,
                    ..
                } => self.delivery(text.as_bytes(), now),
                ClientEvent::Delivered { id, .. } | ClientEvent::Refused { id } => {
                    if matches!(event, ClientEvent::Refused { .. }) {
                        self.counts.refused += 1;
                    } else {
                        self.counts.accepted += 1;
                    }
                    if let Some(&at) = self.peers[i].sent_at.get(id as usize - 1) {
                        let us = now.saturating_sub(at) / 1000;
                        self.receipt_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    self.last_progress = now;
                }
                ClientEvent::Closed => self.peers[i].closed = true,
                _ => {}
            }
        }
    }

    /// Sends what every client has ready.
    fn flush_all(&mut self) {
        let now = self.clock.now();
        let chat_len = token_len(32);
        for i in 0..self.peers.len() {
            let peer = &mut self.peers[i];
            loop {
                while peer.out_sent < peer.out.len() {
                    match mmsg::send(&peer.socket, &peer.out, peer.out_sent, true) {
                        Ok(n) => {
                            self.counts.syscalls_out += 1;
                            self.counts.datagrams_out += n as u64;
                            peer.out_sent += n.max(1);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => peer.out_sent += 1,
                    }
                }
                if peer.out_sent < peer.out.len() {
                    break; // the socket is full: the rest goes when it is writable
                }
                peer.out.clear();
                peer.out_sent = 0;
                let Some(client) = peer.client.as_mut() else {
                    break;
                };
                while !peer.out.is_full() {
                    match client.poll_transmit(now, peer.out.next_buf()) {
                        Some(len) => {
                            if len >= chat_len {
                                self.counts.chat_datagrams += 1;
                            }
                            peer.out.push(len, SocketAddr::from(([0, 0, 0, 0], 0)));
                        }
                        None => break,
                    }
                }
                if peer.out.is_empty() {
                    break;
                }
            }
            if peer.client.is_some() {
                self.client_events(i);
            }
        }
    }

    fn show_progress(&mut self, now: u64, last: bool) {
        if !self.progress {
            return;
        }
        if !last && now.saturating_sub(self.progress_drawn) < PROGRESS_EVERY.as_nanos() as u64 {
            return;
        }
        self.progress_drawn = now;
        let expected = (self.messages * self.fanout()).max(1);
        let done =
            (self.counts.sent + self.counts.delivered) as f64 / (self.messages + expected) as f64;
        let width = 30;
        let filled = ((done * width as f64) as usize).min(width);
        let secs = now.saturating_sub(self.first_send.unwrap_or(now)) as f64 / 1e9;
        let rate = if secs > 0.0 {
            self.counts.accepted as f64 / secs
        } else {
            0.0
        };
        let mut err = io::stderr().lock();
        let _ = io::Write::write_fmt(
            &mut err,
            format_args!(
                "\r[{}{}] {:3.0}%  sent {}/{}  delivered {}/{}  {:.0} msg/s ",
                "#".repeat(filled),
                ".".repeat(width - filled),
                done * 100.0,
                self.counts.sent,
                self.messages,
                self.counts.delivered,
                self.counts.accepted * self.fanout(),
                rate
            ),
        );
        if last {
            let _ = io::Write::write_all(&mut err, b"\n");
        }
    }
}

/// The `p`-quantile (0 to 1) of sorted `values`, in milliseconds.
fn quantile_ms(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    Some(f64::from(sorted[rank - 1]) / 1000.0)
}

impl Report {
    fn print(mut self, args: &BenchArgs, server: &str, server_stats: Option<(u64, u64, u64)>) {
        self.delivery_us.sort_unstable();
        self.receipt_us.sort_unstable();
        let c = &self.counts;
        let per_sec = |n: u64| {
            if self.elapsed > 0.0 {
                n as f64 / self.elapsed
            } else {
                0.0
            }
        };
        let expected = c.accepted * self.fanout;
        let lost = expected.saturating_sub(c.delivered);
        let retransmissions = c.chat_datagrams.saturating_sub(c.sent);
        let lat = |v: &[u32]| {
            json!({
                "p50_ms": quantile_ms(v, 0.5),
                "p99_ms": quantile_ms(v, 0.99),
                "p999_ms": quantile_ms(v, 0.999),
                "max_ms": quantile_ms(v, 1.0),
            })
        };
        let mode = match self.mode {
            Mode::Framed => "framed",
            Mode::Legacy => "legacy",
            Mode::Plain => "plain",
        };
        if args.json {
            let value = json!({
                "server": server,
                "mode": mode,
                "clients": self.clients,
                "messages": self.messages,
                "size": self.size,
                "rate": self.rate,
                "fanout": self.fanout,
                "elapsed_s": self.elapsed,
                "send_elapsed_s": self.send_elapsed,
                "sent": c.sent,
                "accepted": c.accepted,
                "refused": c.refused,
                "unanswered": c.unanswered,
                "delivered": c.delivered,
                "expected_deliveries": expected,
                "lost": lost,
                "duplicates": c.duplicates,
                "retransmissions": retransmissions,
                "server_retransmission_rounds": server_stats.map(|s| s.2),
                "server_relayed": server_stats.map(|s| s.0),
                "server_deliveries_sent": server_stats.map(|s| s.1),
                "accepted_per_s": per_sec(c.accepted),
                "delivered_per_s": per_sec(c.delivered),
                "sent_per_s": if self.send_elapsed > 0.0 { c.sent as f64 / self.send_elapsed } else { 0.0 },
                "datagrams_out": c.datagrams_out,
                "datagrams_in": c.datagrams_in,
                "datagrams_per_syscall_in": c.datagrams_in as f64 / c.syscalls_in.max(1) as f64,
                "delivery_latency": lat(&self.delivery_us),
                "receipt_latency": lat(&self.receipt_us),
            });
            net::out(&value.to_string());
            return;
        }
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "host-chat bench: {} {mode} clients, {} messages of {} bytes{}, against {server}",
            self.clients,
            self.messages,
            self.size,
            self.rate
                .map(|r| format!(" at {r:.0}/s"))
                .unwrap_or_default()
        );
        let rows: Vec<(&str, String)> = vec![
            ("elapsed", format!("{:.3} s", self.elapsed)),
            (
                "sent",
                format!(
                    "{} ({:.0}/s)",
                    c.sent,
                    if self.send_elapsed > 0.0 {
                        c.sent as f64 / self.send_elapsed
                    } else {
                        0.0
                    }
                ),
            ),
            (
                "accepted",
                format!(
                    "{} ({:.0} msg/s){}",
                    c.accepted,
                    per_sec(c.accepted),
                    if c.refused > 0 {
                        format!(", {} refused", c.refused)
                    } else {
                        String::new()
                    }
                ),
            ),
            (
                "delivered",
                format!(
                    "{} of {} (fan-out {}, {:.0} deliveries/s)",
                    c.delivered,
                    expected,
                    self.fanout,
                    per_sec(c.delivered)
                ),
            ),
            (
                "lost",
                format!(
                    "{lost} deliveries, {} lines unanswered, {} duplicates",
                    c.unanswered, c.duplicates
                ),
            ),
            (
                "retransmitted",
                format!(
                    "{retransmissions} lines by clients{}",
                    server_stats
                        .map(|s| format!(", {} rounds by the server", s.2))
                        .unwrap_or_default()
                ),
            ),
            (
                "delivery latency",
                format!(
                    "p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
                    ms(quantile_ms(&self.delivery_us, 0.5)),
                    ms(quantile_ms(&self.delivery_us, 0.99)),
                    ms(quantile_ms(&self.delivery_us, 0.999)),
                    ms(quantile_ms(&self.delivery_us, 1.0)),
                ),
            ),
            (
                "receipt latency",
                format!(
                    "p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
                    ms(quantile_ms(&self.receipt_us, 0.5)),
                    ms(quantile_ms(&self.receipt_us, 0.99)),
                    ms(quantile_ms(&self.receipt_us, 0.999)),
                    ms(quantile_ms(&self.receipt_us, 1.0)),
                ),
            ),
            (
                "datagrams",
                format!(
                    "{} out, {} in ({:.1} per recvmmsg)",
                    c.datagrams_out,
                    c.datagrams_in,
                    c.datagrams_in as f64 / c.syscalls_in.max(1) as f64
                ),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<18} {value}");
        }
        net::out(out.trim_end());
    }
}

/// Messages the plain relay keeps for fan-out.
const PLAIN_SLOTS: usize = 256;

/// `host-chat bench-relay --plain`: what `host-chat server` does for legacy senders
/// (a receipt to the sender, `legacy-N: text` to every other known address), without
/// cryptography, on the same event loop and batching ([`net::run`]).
pub fn run_relay(args: &RelayArgs) -> anyhow::Result<()> {
    let bind = crate::chat::parse_bind(&args.bind)?;
    let socket = UdpSocket::bind(bind).with_context(|| format!("cannot listen on {bind}"))?;
    let mut endpoint = Endpoint::new(socket, None).context("cannot set up the event loop")?;
    let bound = endpoint.local_addr()?;
    let signals = net::signals(endpoint.waker())?;
    if args.print_port {
        net::out(&bound.port().to_string());
    }
    net::err(&format!("plain relay (no cryptography) on {bound}"));
    let mut relay = PlainRelay {
        members: Vec::with_capacity(256),
        slots: (0..PLAIN_SLOTS)
            .map(|_| Vec::with_capacity(MAX_DATAGRAM))
            .collect(),
        queue: VecDeque::with_capacity(PLAIN_SLOTS * 256),
        seq: 0,
        signals,
    };
    let clock = Clock::new();
    net::run(&mut endpoint, &clock, MAX_DATAGRAM, &mut relay).context("event loop failed")?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum PlainOut {
    Receipt {
        to: SocketAddr,
        seq: u64,
        members: usize,
    },
    Deliver {
        to: SocketAddr,
        seq: u64,
    },
}

struct PlainRelay {
    members: Vec<SocketAddr>,
    slots: Vec<Vec<u8>>,
    queue: VecDeque<PlainOut>,
    seq: u64,
    signals: Receiver<i32>,
}

impl Machine for PlainRelay {
    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        if datagram.len() > MAX_DATAGRAM || std::str::from_utf8(datagram).is_err() {
            return;
        }
        // A slot still waiting to go out is not overwritten: the line is dropped.
        if let Some(PlainOut::Deliver { seq, .. } | PlainOut::Receipt { seq, .. }) =
            self.queue.front()
            && self.seq + 1 - seq >= PLAIN_SLOTS as u64
        {
            return;
        }
        let index = match self.members.iter().position(|m| *m == from) {
            Some(index) => index,
            None => {
                self.members.push(from);
                self.members.len() - 1
            }
        };
        self.seq += 1;
        let seq = self.seq;
        let slot = &mut self.slots[(seq % PLAIN_SLOTS as u64) as usize];
        slot.clear();
        let _ = write!(ByteWriter(slot), "legacy-{}: ", index + 1);
        slot.extend_from_slice(datagram);
        self.queue.push_back(PlainOut::Receipt {
            to: from,
            seq,
            members: self.members.len(),
        });
        for &to in &self.members {
            if to != from {
                self.queue.push_back(PlainOut::Deliver { to, seq });
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        match self.queue.pop_front()? {
            PlainOut::Receipt { to, seq, members } => {
                let mut cursor = io::Cursor::new(buf);
                let _ = io::Write::write_fmt(
                    &mut cursor,
                    format_args!("server: received as #{seq} for {members} members"),
                );
                Some((to, cursor.position() as usize))
            }
            PlainOut::Deliver { to, seq } => {
                let slot = &self.slots[(seq % PLAIN_SLOTS as u64) as usize];
                let len = slot.len().min(buf.len());
                buf[..len].copy_from_slice(&slot[..len]);
                Some((to, len))
            }
        }
    }

    fn app(&mut self, _now: Instant) -> Step {
        if self.signals.try_recv().is_ok() {
            return Step::Stop;
        }
        Step::Continue(None)
    }

    fn socket_error(&mut self, _now: Instant, _error: &io::Error) {}
}

/// `write!` into a byte vector.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_and_quantiles() {
        assert_eq!(parse_payload(b"#3:17:xxxx"), Some((3, 17)));
        assert_eq!(parse_payload(b"legacy-2: #0:5:xx"), Some((0, 5)));
        assert_eq!(parse_payload(b"hello from bench client 1"), None);
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), Some(0.5));
        assert_eq!(quantile_ms(&v, 0.99), Some(0.99));
        assert_eq!(quantile_ms(&v, 1.0), Some(1.0));
        assert_eq!(quantile_ms(&[], 0.5), None);
    }
}
