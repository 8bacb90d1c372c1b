//! `host-chat bench`: a load generator, like redis-benchmark, and the plain relay it is
//! compared with (`host-chat bench-relay --plain`, hidden; [`plain`]).
//!
//! N clients (up to 10,000) run in one thread: one mio loop owning N UDP sockets, one per
//! client (so the server sees N addresses), each connected to the server; the open-files
//! limit is raised to fit them ([`process::raise_open_files`]). Client `i` is in room
//! `i mod R` (`--rooms R`). Each message's text carries its sender and number
//! (`#C:K:xxxx...`); the loop remembers when it was sent, so the latency of every
//! delivery is measured from the sender's `send()` to the member's message event, and of
//! every receipt from `send()` to the server's answer.
//!
//! Three kinds of load (`--mode`):
//! * `framed`: chat_core `Client`s (join, chat, deliver, ack), against `host-chat server`;
//!   every member of the sender's room gets every line, the sender's own included
//!   (fan-out = room size);
//! * `legacy`: bare-text Fernet tokens, as the original Python chat sent, against
//!   `host-chat server` (PROTOCOL.md "Legacy senders") or `bench/python_relay.py`; the
//!   sender gets a receipt, the others the line (fan-out N - 1, one room);
//! * `plain`: the same text without cryptography, against `host-chat bench-relay --plain`
//!   (fan-out = room size - 1).
//!
//! The load is the same in every mode: lines go out round-robin over the clients, a client
//! whose window is full is skipped; with `--rate R` (open loop) at R lines per second in
//! all, else (closed loop) whenever a window has room.
//!
//! With `--spawn-server` the server's CPU time (`utime + stime`) and memory (`VmRSS`,
//! `VmHWM`) are read from `/proc` over the measured interval ([`process`]), and the
//! generator's own CPU time too, which tells whether the server or the generator was the
//! limit.

mod member;
mod plain;
pub mod process;

pub use plain::run as run_relay;

use crate::chat::child::{Log, ServerChild};
use crate::cli::ChatKeyArgs;
use crate::error::{BadArgument, NotDelivered};
use crate::keys::Ring;
use crate::mmsg::{self, Datagrams};
use crate::net::{self, Clock};
use anyhow::Context as _;
use chat_core::fernet::{KEY_TEXT_LEN, TtlCheck, token_len};
use chat_core::session::DEFAULT_MAX_DATAGRAM;
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
use std::time::Duration;
use zeroize::Zeroizing;

use member::{Happening, Member};

/// `host-chat bench --help`, after the options.
pub const HELP: &str = "\
Output:
  a table (or one JSON object with --json): lines sent and accepted per second,
  deliveries per second (fan-out), latency percentiles from send() to each member's
  delivery and to the sender's receipt, losses and retransmissions; with --spawn-server
  also the server's CPU time per delivery and its memory (RSS), and how busy the
  generator itself was. A progress line is drawn on standard error when it is a terminal.
  A run never hangs: it stops when nothing has arrived for --drain seconds (or at
  --time-limit) and reports what was lost; if not every client gets in, it says why and
  exits with status 1 (the JSON object then has \"error\").

Load:
  closed loop (default): every client keeps its window full (--window).
  open loop (--rate R): R lines per second in all, round-robin over the clients.
  Latency is from send() (a line waits for room in its client's window before it is
  sent).

Examples:
  host-chat bench --spawn-server                     # a private server, 4 clients
  host-chat bench --spawn-server -c 16 -n 100000 --rate 20000
  host-chat bench --spawn-server -c 1000 -n 500 --rate 50        # one room of 1,000
  host-chat bench --spawn-server -c 10000 --rooms 1000 -n 20000 --rate 2000
  host-chat bench --spawn-server -c 10000 --rooms 1000 \\
      --server-arg=--max-members --server-arg=10000              # flags for the server
  host-chat bench --mode plain --spawn-server -c 100 --rate 200  # the plain relay
  host-chat bench 192.168.1.20:12345 -c 8            # a running server, with its key
  host-chat bench --mode legacy --spawn-server python   # bench/python_relay.py

  The highest rate a server sustains (nothing lost, p99 under 100 ms), and the same for
  mosquitto: bench/peers.sh (see BENCHMARKS.md).";

/// Most clients one run drives.
pub const MAX_CLIENTS: u32 = 10_000;

/// What the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The chat protocol (chat_core `Client`): reliable, acknowledged, fan-out = room size.
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
    /// The server: IP:PORT or HOST:PORT [default: 127.0.0.1:12345, or the spawned one];
    /// several, comma-separated, for servers of one cluster: client i uses server i mod
    /// their number.
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// With --spawn-server (host-chat's): start N servers, 1 to 16, each with the
    /// --server-arg options (give them `--cluster nats://...` to make one cluster), and
    /// spread the clients over them.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=16))]
    pub servers: u8,

    /// Clients, 1 to 10000, each on its own socket (the open-files limit is raised to
    /// fit them).
    #[arg(long, short = 'c', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLIENTS)))]
    pub clients: u32,

    /// Rooms the clients are spread over, at most one per client: client i joins room i
    /// mod R (`bench` when R is 1, else `bench-0` ... `bench-{R-1}`). Framed and plain
    /// modes.
    #[arg(long, value_name = "R", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLIENTS)))]
    pub rooms: u32,

    /// Messages to send in all, 1 to 50000000, spread evenly over the clients.
    #[arg(long, short = 'n', value_name = "M", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
    pub messages: u64,

    /// Bytes of text per message, 24 to 810.
    #[arg(long, value_name = "B", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(24..=810))]
    pub size: u16,

    /// Open loop: messages per second in all, round-robin over the clients [default:
    /// closed loop, as fast as the clients' windows allow].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// What the clients speak.
    #[arg(long, value_enum, default_value_t = Mode::Framed)]
    pub mode: Mode,

    /// Start a private server on 127.0.0.1 (fresh key) and measure it.
    #[arg(long, value_enum, value_name = "KIND", num_args = 0..=1,
          default_missing_value = "auto")]
    pub spawn_server: Option<SpawnKind>,

    /// One more argument for the spawned server, after its own (repeat it:
    /// `--server-arg=--max-members --server-arg=10000`).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub server_arg: Vec<OsString>,

    /// The Python relay script, for `--spawn-server python`.
    #[arg(long, value_name = "PATH", default_value = "bench/python_relay.py")]
    pub python_relay: PathBuf,

    /// Closed loop: lines in flight per client, 1 to 1024, sent and awaiting the server's
    /// answer. Framed clients hold at most 16 (their outbox: more is the same as 16); the
    /// server grants them at most 16 too. When senders offer a room more than its history
    /// can take, the server answers Busy and they wait and slow down [default: 16 framed,
    /// 8 legacy and plain].
    #[arg(long, short = 'P', visible_alias = "pipeline", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub window: Option<u16>,

    /// Seconds without anything arriving after which the run stops (what is missing is
    /// lost).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub drain: u64,

    /// Stop the run this many seconds after the first line, whatever is still on its way
    /// [default: no limit].
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<u64>,

    /// Start the load as soon as every client is in, while the server may still be
    /// announcing the joins [default: once nothing has arrived for 100 ms].
    #[arg(long)]
    pub no_settle: bool,

    /// Print one JSON object with the results instead of the table.
    #[arg(long)]
    pub json: bool,

    /// The server's keys, for a server that is already running.
    #[command(flatten)]
    pub keys: ChatKeyArgs,
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

/// How long clients may take to join: this, plus [`JOIN_PER_CLIENT`] each.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const JOIN_PER_CLIENT: Duration = Duration::from_millis(2);
/// After the joins, the load starts once nothing has arrived for this long (the join
/// notices have passed), or after [`START_TIMEOUT`] at most.
const SETTLE_QUIET: Duration = Duration::from_millis(100);
/// A legacy or plain line whose receipt has not come after this is counted as lost.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Longest datagram handled.
const MAX_DATAGRAM: usize = DEFAULT_MAX_DATAGRAM;

/// [`server_stats`] of every spawned server, added up.
fn servers_stats(servers: &[ServerChild]) -> Option<(u64, u64, u64)> {
    servers.iter().try_fold((0, 0, 0), |(a, b, c), server| {
        let (x, y, z) = server_stats(server)?;
        Some((a + x, b + y, c + z))
    })
}

/// Asks a spawned `host-chat server` for its counters (SIGUSR1) and reads them from its
/// log: lines relayed, deliveries sent, deliveries sent again.
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
            let number = |name: &str| -> Option<u64> {
                stats
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            return Some((
                number("relayed")?,
                number("delivered")?,
                number("retransmitted")?,
            ));
        }
    }
    None
}

/// The first refusal a spawned server logged ("refused a join from ...: REASON"), to say
/// why clients did not get in.
fn server_refusal(server: &ServerChild) -> Option<String> {
    let log = server.log()?;
    log.try_iter().find_map(|line| {
        line.split_once("refused a join from ")
            .map(|(_, r)| r.to_owned())
    })
}

fn bad_servers() -> anyhow::Result<()> {
    Err(BadArgument(
        "--servers is for host-chat servers that bench starts: add --spawn-server".into(),
    )
    .into())
}

/// `host-chat bench`.
pub fn run(args: &BenchArgs, key_env: Option<OsString>) -> anyhow::Result<()> {
    let kind = match args.spawn_server {
        Some(SpawnKind::Auto) if args.mode == Mode::Plain => Some(SpawnKind::Plain),
        Some(SpawnKind::Auto) => Some(SpawnKind::Host),
        other => other,
    };
    match (kind, args.mode) {
        (Some(SpawnKind::Plain), Mode::Framed | Mode::Legacy)
        | (Some(SpawnKind::Host | SpawnKind::Python), Mode::Plain) => {
            return Err(BadArgument(
                "--mode plain goes with the plain relay (--spawn-server plain) only".into(),
            )
            .into());
        }
        (Some(SpawnKind::Python), Mode::Framed) => {
            return Err(BadArgument(
                "the Python relay speaks bare-text tokens only: use --mode legacy".into(),
            )
            .into());
        }
        _ => {}
    }
    if args.servers > 1 && kind != Some(SpawnKind::Host) {
        bad_servers()?;
    }
    if kind.is_some() && args.server.is_some() {
        return Err(BadArgument("give either SERVER or --spawn-server, not both".into()).into());
    }
    let bad = |text: String| -> anyhow::Result<()> { Err(BadArgument(text).into()) };
    if !args.server_arg.is_empty() && kind.is_none() {
        bad("--server-arg is for a server that bench starts: add --spawn-server".into())?;
    }
    if args.rooms > args.clients {
        bad(format!(
            "--rooms {} with --clients {}: every room needs a client",
            args.rooms, args.clients
        ))?;
    }
    if args.rooms > 1 && args.mode == Mode::Legacy {
        bad(
            "legacy senders all share one room (PROTOCOL.md, \"Legacy senders\"): --rooms \
             needs --mode framed or plain"
                .into(),
        )?;
    }
    // One socket per client, and some to spare for the poll, the server's pipes, stdio.
    process::raise_open_files(u64::from(args.clients) + 64)?;

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
            let user = crate::chat::KeyUser::Client;
            let keys = crate::chat::chat_keys(args.keys.key_file.as_deref(), key_env, user)?;
            ring = Some(keys.ring);
        }
    }
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let (spawned, servers): (Vec<ServerChild>, Vec<SocketAddr>) = match kind {
        None => {
            let text = args.server.as_deref().unwrap_or("127.0.0.1:12345");
            let mut servers = Vec::new();
            for name in text.split(',') {
                servers.push(crate::chat::resolve_server(name.trim())?);
            }
            (Vec::new(), servers)
        }
        Some(kind) => {
            let mut spawned = Vec::new();
            let mut addrs = Vec::new();
            for _ in 0..args.servers {
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
                cmd.args(&args.server_arg);
                let (child, addr) =
                    ServerChild::start(cmd, key_text.as_deref().map(String::as_str), Log::Keep)?;
                spawned.push(child);
                addrs.push(addr);
            }
            (spawned, addrs)
        }
    };
    let server_name = match kind {
        None => servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Some(SpawnKind::Python) => "python relay".to_owned(),
        Some(SpawnKind::Plain) => "plain relay".to_owned(),
        Some(_) if args.servers > 1 => format!("{} host-chat servers", args.servers),
        Some(_) => "host-chat server".to_owned(),
    };

    let pids: Vec<u32> = spawned.iter().map(ServerChild::id).collect();
    let mut report = Bench::new(args, &servers, ring, pids)?.run()?;
    if let Some(error) = report.error.as_mut()
        && !error.contains("refused")
        && let Some(reason) = spawned.iter().find_map(server_refusal)
    {
        let _ = write!(error, "; the server refused joins: {reason}");
    }
    let server_stats = match kind {
        Some(SpawnKind::Host) if report.error.is_none() => servers_stats(&spawned),
        _ => None,
    };
    drop(spawned);
    let error = report.error.clone();
    report.print(args, &server_name, server_stats);
    match error {
        Some(error) => Err(NotDelivered(error).into()),
        None => Ok(()),
    }
}

/// One client's share of the load.
struct Peer {
    socket: UdpSocket,
    /// A chat member (framed mode).
    client: Option<Member>,
    /// Its room's number (0 to R - 1).
    room: u32,
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
    /// When its client's timers are due (framed), as last asked.
    timer: Option<Instant>,
    /// In [`Bench::dirty`]: has something to send or events to read.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    accepted: u64,
    refused: u64,
    unanswered: u64,
    delivered: u64,
    /// Deliveries the accepted lines owe: each one's fan-out.
    expected: u64,
    duplicates: u64,
    chat_datagrams: u64,
    datagrams_out: u64,
    datagrams_in: u64,
    syscalls_out: u64,
    syscalls_in: u64,
}

/// CPU time and memory over the measured interval.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    /// Wall-clock seconds of the interval.
    wall_s: f64,
    /// The server's CPU seconds in it (a spawned server only).
    server_cpu_s: Option<f64>,
    /// The server's resident memory at the end, and its peak, KiB.
    server_memory_kib: Option<(u64, u64)>,
    /// This generator's CPU seconds in it.
    bench_cpu_s: Option<f64>,
}

struct Bench {
    mode: Mode,
    clients: usize,
    rooms: usize,
    /// Members of each room.
    room_sizes: Vec<u64>,
    messages: u64,
    size: usize,
    rate: Option<f64>,
    /// Lines in flight per client.
    window: usize,
    drain: Duration,
    time_limit: Option<Duration>,
    /// Wait for quiet after the joins.
    settle: bool,
    server_pids: Vec<u32>,
    poll: Poll,
    peers: Vec<Peer>,
    /// Peers with something to do, each once ([`Peer::dirty`]).
    dirty: Vec<usize>,
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
    /// When a datagram last came in (ns since the start).
    last_datagram: u64,
    /// Framed clients whose join was refused, and the first notice one of them got.
    refused_joins: usize,
    join_notice: Option<String>,
    text: String,
    progress: bool,
    progress_drawn: u64,
}

/// What a run measured.
struct Report {
    mode: Mode,
    clients: usize,
    rooms: usize,
    joined: usize,
    messages: u64,
    size: usize,
    rate: Option<f64>,
    /// Mean fan-out of a line (members that get it).
    fanout: f64,
    counts: Counts,
    elapsed: f64,
    send_elapsed: f64,
    delivery_us: Vec<u32>,
    receipt_us: Vec<u32>,
    cost: Cost,
    /// Why the run ended: "complete", or what was still missing.
    stopped: String,
    /// Why there was no run (not every client got in).
    error: Option<String>,
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

/// The name of room `room` of `rooms`.
fn room_name(room: u32, rooms: u32) -> String {
    if rooms == 1 {
        "bench".to_owned()
    } else {
        format!("bench-{room}")
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Bench {
    fn new(
        args: &BenchArgs,
        servers: &[SocketAddr],
        ring: Option<Ring>,
        server_pids: Vec<u32>,
    ) -> anyhow::Result<Self> {
        let clock = Clock::new();
        let poll = Poll::new().context("cannot set up the event loop")?;
        let clients = args.clients as usize;
        let window = usize::from(args.window.unwrap_or(match args.mode {
            Mode::Framed => member::MAX_IN_FLIGHT as u16,
            Mode::Legacy | Mode::Plain => 8,
        }));
        let per_client = args.messages / clients as u64 + 1;
        let mut peers = Vec::with_capacity(clients);
        let mut room_sizes = vec![0u64; args.rooms as usize];
        for i in 0..clients {
            let server = servers[i % servers.len()];
            let local: SocketAddr = if server.ip().is_loopback() {
                (server.ip(), 0).into()
            } else if server.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let mut socket = UdpSocket::bind(local)
                .with_context(|| format!("cannot open UDP socket {} of {clients}", i + 1))?;
            socket
                .connect(server)
                .with_context(|| format!("cannot reach {server}"))?;
            poll.registry().register(
                &mut socket,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let room = (i as u32) % args.rooms;
            room_sizes[room as usize] += 1;
            let client = match (args.mode, &ring) {
                (Mode::Framed, Some(ring)) => {
                    let nick = format!("bench-{i}");
                    let room = room_name(room, args.rooms);
                    Some(Member::new(&nick, &room, MAX_DATAGRAM, ring, &clock)?)
                }
                _ => None,
            };
            peers.push(Peer {
                socket,
                client,
                room,
                out: Datagrams::new(MAX_DATAGRAM),
                out_sent: 0,
                sent_at: Vec::with_capacity(usize::try_from(per_client).unwrap_or(0)),
                waiting: VecDeque::with_capacity(window),
                ready: false,
                hello_at: None,
                closed: false,
                timer: None,
                dirty: true,
            });
        }
        let fanout_sum: u64 = room_sizes
            .iter()
            .map(|&n| n * Self::fanout_in(args.mode, n))
            .sum();
        let mean_fanout = fanout_sum as f64 / clients as f64;
        let expected = (args.messages as f64 * mean_fanout) as usize;
        Ok(Self {
            mode: args.mode,
            clients,
            rooms: args.rooms as usize,
            room_sizes,
            messages: args.messages,
            size: usize::from(args.size),
            rate: args.rate.filter(|r| *r > 0.0),
            window,
            drain: Duration::from_secs(args.drain),
            time_limit: args.time_limit.map(Duration::from_secs),
            settle: !args.no_settle,
            server_pids,
            poll,
            peers,
            dirty: (0..clients).collect(),
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
            last_datagram: 0,
            refused_joins: 0,
            join_notice: None,
            text: String::with_capacity(usize::from(args.size) + 32),
            progress: io::stderr().is_terminal(),
            progress_drawn: 0,
        })
    }

    /// Members that get a line in a room of `members`.
    fn fanout_in(mode: Mode, members: u64) -> u64 {
        match mode {
            Mode::Framed => members,
            Mode::Legacy | Mode::Plain => members.saturating_sub(1),
        }
    }

    /// Members that get client `i`'s lines.
    fn fanout_of(&self, i: usize) -> u64 {
        Self::fanout_in(self.mode, self.room_sizes[self.peers[i].room as usize])
    }

    /// Mean fan-out over the clients (the load is spread evenly over them).
    fn mean_fanout(&self) -> f64 {
        let sum: u64 = self
            .room_sizes
            .iter()
            .map(|&n| n * Self::fanout_in(self.mode, n))
            .sum();
        sum as f64 / self.clients as f64
    }

    fn mark(&mut self, i: usize) {
        if !self.peers[i].dirty {
            self.peers[i].dirty = true;
            self.dirty.push(i);
        }
    }

    fn run(mut self) -> anyhow::Result<Report> {
        let mut events = Events::with_capacity(1024);
        let mut incoming = Datagrams::new(MAX_DATAGRAM + 1);
        // Phase 1: everyone in the room.
        let join_time = START_TIMEOUT + JOIN_PER_CLIENT * self.clients as u32;
        let join_deadline = now_ns(self.start) + join_time.as_nanos() as u64;
        loop {
            self.turn(&mut events, &mut incoming, Some(Duration::from_millis(5)))?;
            self.hellos();
            let joined = self.peers.iter().filter(|p| p.ready).count();
            if joined == self.clients {
                break;
            }
            let now = now_ns(self.start);
            if now > join_deadline || joined + self.refused_joins == self.clients {
                let mut error = format!("only {joined} of {} clients got in", self.clients);
                if joined + self.refused_joins < self.clients {
                    let _ = write!(error, " within {:.0} s", join_time.as_secs_f64());
                }
                if self.refused_joins > 0 {
                    let _ = write!(error, "; {} joins were refused", self.refused_joins);
                    if let Some(notice) = &self.join_notice {
                        let _ = write!(error, " (\"{notice}\")");
                    }
                } else if joined == 0 {
                    error.push_str(
                        ": is the server running there, with the same key? (none answered)",
                    );
                }
                self.leave_all(&mut events, &mut incoming)?;
                return Ok(self.report(Cost::default(), "not started".into(), Some(error)));
            }
        }
        // Let the join notices and hellos pass before measuring: start once nothing has
        // come in for a moment.
        let settle_deadline = now_ns(self.start) + START_TIMEOUT.as_nanos() as u64;
        while self.settle {
            self.turn(&mut events, &mut incoming, Some(Duration::from_millis(5)))?;
            let now = now_ns(self.start);
            if now.saturating_sub(self.last_datagram) > SETTLE_QUIET.as_nanos() as u64
                || now > settle_deadline
            {
                break;
            }
        }

        // Phase 2: the load, then what is still on its way.
        let wall0 = std::time::Instant::now();
        let servers_cpu = |pids: &[u32]| -> Option<Duration> {
            pids.iter().try_fold(Duration::ZERO, |sum, pid| {
                Some(sum + process::cpu_time(Some(*pid))?)
            })
        };
        let server_cpu0 = (!self.server_pids.is_empty())
            .then(|| servers_cpu(&self.server_pids))
            .flatten();
        let bench_cpu0 = process::cpu_time(None);
        let mut last_progress_at = now_ns(self.start);
        let mut last_count = 0u64;
        let stopped;
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
                + self.counts.delivered
                + self.counts.sent;
            if progress != last_count {
                last_count = progress;
                last_progress_at = now;
            }
            let answered = self.counts.accepted + self.counts.refused + self.counts.unanswered;
            if self.counts.sent == self.messages
                && answered == self.messages
                && self.counts.delivered >= self.counts.expected
            {
                stopped = "complete".to_owned();
                break;
            }
            if now.saturating_sub(last_progress_at) > self.drain.as_nanos() as u64 {
                stopped = format!(
                    "nothing arrived for {} s ({} of {} lines sent)",
                    self.drain.as_secs(),
                    self.counts.sent,
                    self.messages
                );
                break;
            }
            if let Some(limit) = self.time_limit
                && now.saturating_sub(self.first_send.unwrap_or(now)) > limit.as_nanos() as u64
            {
                stopped = format!(
                    "time limit of {} s ({} of {} lines sent)",
                    limit.as_secs(),
                    self.counts.sent,
                    self.messages
                );
                break;
            }
        }
        let cpu_s = |before: Option<Duration>, pid| {
            Some(secs(process::cpu_time(pid)?.saturating_sub(before?)))
        };
        let server_cpu_s = server_cpu0
            .and_then(|before| Some(secs(servers_cpu(&self.server_pids)?.saturating_sub(before))));
        let server_memory_kib = (!self.server_pids.is_empty())
            .then(|| {
                self.server_pids.iter().try_fold((0, 0), |(rss, hwm), pid| {
                    let (r, h) = process::memory_kib(Some(*pid))?;
                    Some((rss + r, hwm + h))
                })
            })
            .flatten();
        let cost = Cost {
            wall_s: wall0.elapsed().as_secs_f64(),
            server_cpu_s,
            server_memory_kib,
            bench_cpu_s: cpu_s(bench_cpu0, None),
        };
        self.show_progress(now_ns(self.start), true);

        // Phase 3: framed clients say goodbye (for a server that keeps running).
        self.leave_all(&mut events, &mut incoming)?;
        Ok(self.report(cost, stopped, None))
    }

    /// Framed clients leave, for a server that keeps running.
    fn leave_all(&mut self, events: &mut Events, incoming: &mut Datagrams) -> anyhow::Result<()> {
        if self.mode != Mode::Framed {
            return Ok(());
        }
        let now = self.clock.now();
        for i in 0..self.peers.len() {
            if let Some(client) = self.peers[i].client.as_mut() {
                client.leave(now);
                self.mark(i);
            }
        }
        let deadline = now_ns(self.start) + 2_000_000_000;
        while !self.peers.iter().all(|p| p.closed) && now_ns(self.start) < deadline {
            self.turn(events, incoming, Some(Duration::from_millis(10)))?;
        }
        Ok(())
    }

    fn report(self, cost: Cost, stopped: String, error: Option<String>) -> Report {
        let first = self.first_send.unwrap_or(0);
        let end = self.last_progress.max(self.last_send);
        Report {
            mode: self.mode,
            clients: self.clients,
            rooms: self.rooms,
            joined: self.peers.iter().filter(|p| p.ready).count(),
            messages: self.messages,
            size: self.size,
            rate: self.rate,
            fanout: self.mean_fanout(),
            elapsed: end.saturating_sub(first) as f64 / 1e9,
            send_elapsed: self.last_send.saturating_sub(first) as f64 / 1e9,
            counts: self.counts,
            delivery_us: self.delivery_us,
            receipt_us: self.receipt_us,
            cost,
            stopped,
            error,
        }
    }

    /// Legacy and plain clients introduce themselves (naming their room), so that the
    /// server knows every address before the load starts.
    fn hellos(&mut self) {
        if self.mode == Mode::Framed {
            return;
        }
        let now = now_ns(self.start);
        let rooms = self.rooms as u32;
        for i in 0..self.peers.len() {
            let peer = &self.peers[i];
            let due = !peer.ready
                && peer.hello_at.is_none_or(|at| {
                    now.saturating_sub(at) > RECEIPT_TIMEOUT.as_nanos() as u64 / 3
                });
            if due && !peer.out.is_full() {
                self.text.clear();
                let _ = write!(self.text, "hello from bench client {i}");
                if self.mode == Mode::Plain {
                    let _ = write!(self.text, " in room {}", room_name(peer.room, rooms));
                }
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
        self.mark(i);
    }

    fn can_send(&self, i: usize) -> bool {
        let peer = &self.peers[i];
        match &peer.client {
            Some(client) => client.in_flight() < self.window,
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
        self.flush_dirty();
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
            Some(client) => {
                if !client.send(&self.text) {
                    return false;
                }
                self.mark(i);
            }
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
        if self.mode == Mode::Framed {
            return;
        }
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

    /// One turn of the loop: wait, read every readable socket, run the timers that are
    /// due, send what the touched clients have.
    fn turn(
        &mut self,
        events: &mut Events,
        incoming: &mut Datagrams,
        timeout: Option<Duration>,
    ) -> anyhow::Result<()> {
        let next_timer = self.peers.iter().filter_map(|p| p.timer).min();
        let timeout = match next_timer {
            Some(at) => {
                let left = self
                    .clock
                    .to_std(at)
                    .saturating_duration_since(std::time::Instant::now());
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
        };
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
        if next_timer.is_some_and(|at| at <= now) {
            for i in 0..self.peers.len() {
                if self.peers[i].timer.is_some_and(|at| at <= now)
                    && let Some(client) = self.peers[i].client.as_mut()
                {
                    client.on_timer(now);
                    self.peers[i].timer = client.timer();
                    self.mark(i);
                }
            }
        }
        self.flush_dirty();
        Ok(())
    }

    /// Drains client `i`'s socket.
    fn read(&mut self, i: usize, incoming: &mut Datagrams) {
        self.mark(i);
        loop {
            match mmsg::recv(&self.peers[i].socket, incoming, None) {
                Ok(n) => {
                    self.counts.syscalls_in += 1;
                    self.counts.datagrams_in += n as u64;
                    self.last_datagram = now_ns(self.start);
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
            client.receive(now_core, datagram);
            // As an application should: read what it says at once (a client holds only a
            // few events; what does not fit is dropped unacknowledged and sent again).
            self.client_events(i);
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
            if !self.peers[i].ready {
                self.peers[i].ready = true;
                return;
            }
            if let Some(k) = self.peers[i].waiting.pop_front() {
                self.answered(i, k + 1, !refused, now);
            }
            return;
        }
        if let Some((c, k)) = parse_payload(text) {
            self.delivery(c, k, now);
        }
    }

    /// The server answered client `i`'s line `id` (numbered from 1): taken into the room
    /// (`accepted`) or refused.
    fn answered(&mut self, i: usize, id: u64, accepted: bool, now: u64) {
        if accepted {
            self.counts.accepted += 1;
            self.counts.expected += self.fanout_of(i);
        } else {
            self.counts.refused += 1;
        }
        let at = id
            .checked_sub(1)
            .and_then(|k| self.peers[i].sent_at.get(usize::try_from(k).ok()?));
        if let Some(&at) = at {
            let us = now.saturating_sub(at) / 1000;
            self.receipt_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        self.last_progress = now;
    }

    /// Client `c`'s line `k` reached a member.
    fn delivery(&mut self, c: usize, k: u64, now: u64) {
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

    /// What happened to client `i` ([`member`] turns chat_core's events into these).
    fn client_events(&mut self, i: usize) {
        let now = now_ns(self.start);
        while let Some(happening) = self.peers[i].client.as_mut().and_then(Member::next) {
            match happening {
                Happening::Joined => self.peers[i].ready = true,
                Happening::Line(Some((c, k))) => self.delivery(c, k, now),
                Happening::Line(None) => {}
                Happening::Answered { id, accepted } => self.answered(i, id, accepted, now),
                Happening::Undelivered => self.counts.unanswered += 1,
                Happening::Notice(text) => {
                    if !self.peers[i].ready {
                        self.join_notice.get_or_insert(text);
                    }
                }
                Happening::Closed => {
                    if !self.peers[i].ready && !self.peers[i].closed {
                        self.refused_joins += 1;
                    }
                    self.peers[i].closed = true;
                }
            }
        }
    }

    /// Sends what the touched clients have ready.
    fn flush_dirty(&mut self) {
        let now = self.clock.now();
        let chat_len = token_len(32);
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            let peer = &mut self.peers[i];
            peer.dirty = false;
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
                    match client.transmit(now, peer.out.next_buf()) {
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
            if let Some(client) = peer.client.as_ref() {
                peer.timer = client.timer();
                self.client_events(i);
            }
        }
        // Reuse the allocation; peers marked meanwhile (by their events) were pushed on
        // the fresh vector and stay marked.
        let mut dirty = dirty;
        dirty.clear();
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
    }

    fn show_progress(&mut self, now: u64, last: bool) {
        if !self.progress {
            return;
        }
        if !last && now.saturating_sub(self.progress_drawn) < PROGRESS_EVERY.as_nanos() as u64 {
            return;
        }
        self.progress_drawn = now;
        let expected = (self.messages as f64 * self.mean_fanout()).max(1.0);
        let done =
            (self.counts.sent + self.counts.delivered) as f64 / (self.messages as f64 + expected);
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
                self.counts.expected,
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
        let expected = c.expected;
        let lost = expected.saturating_sub(c.delivered);
        let unanswered = c.sent.saturating_sub(c.accepted + c.refused);
        let retransmissions = c.chat_datagrams.saturating_sub(c.sent);
        let cost = self.cost;
        let share = |cpu: Option<f64>| cpu.filter(|_| cost.wall_s > 0.0).map(|s| s / cost.wall_s);
        let cpu_per_delivery_us = cost
            .server_cpu_s
            .filter(|_| c.delivered > 0)
            .map(|s| s * 1e6 / c.delivered as f64);
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
        let sent_per_s = if self.send_elapsed > 0.0 {
            c.sent as f64 / self.send_elapsed
        } else {
            0.0
        };
        if args.json {
            let value = json!({
                "server": server,
                "mode": mode,
                "clients": self.clients,
                "rooms": self.rooms,
                "joined": self.joined,
                "messages": self.messages,
                "size": self.size,
                "rate": self.rate,
                "window": args.window.unwrap_or(match args.mode {
                    Mode::Framed => member::MAX_IN_FLIGHT as u16,
                    Mode::Legacy | Mode::Plain => 8,
                }),
                "drain_s": args.drain,
                "time_limit_s": args.time_limit,
                "settle": !args.no_settle,
                // Whole when every room has the same size (the usual case).
                "fanout": if self.fanout.fract() == 0.0 {
                    json!(self.fanout as u64)
                } else {
                    json!(self.fanout)
                },
                "elapsed_s": self.elapsed,
                "send_elapsed_s": self.send_elapsed,
                "stopped": self.stopped,
                "error": self.error,
                "sent": c.sent,
                "unsent": self.messages - c.sent,
                "accepted": c.accepted,
                "refused": c.refused,
                "unanswered": unanswered,
                "delivered": c.delivered,
                "expected_deliveries": expected,
                "lost": lost,
                "duplicates": c.duplicates,
                "retransmissions": retransmissions,
                "server_retransmission_rounds": server_stats.map(|s| s.2),
                "server_relayed": server_stats.map(|s| s.0),
                "server_deliveries_sent": server_stats.map(|s| s.1),
            });
            let more = json!({
                "accepted_per_s": per_sec(c.accepted),
                "delivered_per_s": per_sec(c.delivered),
                "sent_per_s": sent_per_s,
                "measured_s": cost.wall_s,
                "server_cpu_s": cost.server_cpu_s,
                "server_cpu_share": share(cost.server_cpu_s),
                "server_cpu_per_delivery_us": cpu_per_delivery_us,
                "server_rss_kib": cost.server_memory_kib.map(|m| m.0),
                "server_hwm_kib": cost.server_memory_kib.map(|m| m.1),
                "bench_cpu_s": cost.bench_cpu_s,
                "bench_cpu_share": share(cost.bench_cpu_s),
                "datagrams_out": c.datagrams_out,
                "datagrams_in": c.datagrams_in,
                "datagrams_per_syscall_in": c.datagrams_in as f64 / c.syscalls_in.max(1) as f64,
                "delivery_latency": lat(&self.delivery_us),
                "receipt_latency": lat(&self.receipt_us),
            });
            let mut value = value;
            if let (Some(value), serde_json::Value::Object(more)) = (value.as_object_mut(), more) {
                value.extend(more);
            }
            net::out(&value.to_string());
            return;
        }
        if self.error.is_some() {
            return; // said by the caller, as the error
        }
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "host-chat bench: {} {mode} clients{}, {} messages of {} bytes{}, against {server}",
            self.clients,
            if self.rooms > 1 {
                format!(" in {} rooms", self.rooms)
            } else {
                String::new()
            },
            self.messages,
            self.size,
            self.rate
                .map(|r| format!(" at {r:.0}/s"))
                .unwrap_or_default()
        );
        let mut rows: Vec<(&str, String)> = vec![
            (
                "elapsed",
                format!("{:.3} s ({})", self.elapsed, self.stopped),
            ),
            ("sent", format!("{} ({sent_per_s:.0}/s)", c.sent)),
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
                    "{} of {} (fan-out {:.1}, {:.0} deliveries/s)",
                    c.delivered,
                    expected,
                    self.fanout,
                    per_sec(c.delivered)
                ),
            ),
            (
                "lost",
                format!(
                    "{lost} deliveries, {unanswered} lines unanswered, {} duplicates",
                    c.duplicates
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
        if let Some(cpu) = cost.server_cpu_s {
            rows.push((
                "server cost",
                format!(
                    "{} CPU per delivery ({cpu:.2} s CPU, {:.0} % of a core){}",
                    cpu_per_delivery_us.map_or("-".to_owned(), |us| format!("{us:.2} µs")),
                    share(Some(cpu)).unwrap_or(0.0) * 100.0,
                    cost.server_memory_kib
                        .map(|(rss, hwm)| format!(
                            ", RSS {:.1} MiB (peak {:.1} MiB)",
                            rss as f64 / 1024.0,
                            hwm as f64 / 1024.0
                        ))
                        .unwrap_or_default()
                ),
            ));
        }
        if let Some(share) = share(cost.bench_cpu_s) {
            rows.push((
                "generator",
                format!("{:.0} % of a core (this process)", share * 100.0),
            ));
        }
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<18} {value}");
        }
        net::out(out.trim_end());
    }
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

    #[test]
    fn rooms_and_fanout() {
        assert_eq!(room_name(0, 1), "bench");
        assert_eq!(room_name(7, 1000), "bench-7");
        assert_eq!(Bench::fanout_in(Mode::Framed, 10), 10);
        assert_eq!(Bench::fanout_in(Mode::Plain, 10), 9);
        assert_eq!(Bench::fanout_in(Mode::Legacy, 1), 0);
    }
}
