//! `host-chat server`: chat_core's [`Relay`] on a UDP socket.

use super::wrong_key::{self, WrongKeyLog};
use crate::cli::ServerArgs;
use crate::keys::Ring;
use crate::net::{self, Clock, Endpoint, Machine, Step};
use anyhow::Context as _;
use chat_cli::count;
use chat_core::session::{Dropped, Relay, RelayConfig, RelayEvent, Stats};
use chat_core::time::{Duration, Instant};
use rand::rngs::StdRng;
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;

/// Members at once.
pub const MEMBERS: usize = 256;
/// Rooms at once.
pub const ROOMS: usize = 64;
/// Room messages kept per room for members that have not acknowledged them yet.
pub const HISTORY: usize = 128;
/// Bytes kept per line.
pub const TEXT: usize = 1024;

/// The relay the host runs: several megabytes, always boxed.
pub type HostRelay = Relay<SocketAddr, StdRng, 7, MEMBERS, ROOMS, HISTORY, TEXT>;

/// The relay is built by value before it is boxed; debug builds keep several copies on
/// the stack, so the server runs on a thread with room for them.
const STACK: usize = 256 << 20;

/// `host-chat server`.
pub fn run(args: &ServerArgs, key_env: Option<OsString>) -> anyhow::Result<()> {
    let bind = super::parse_bind(&args.bind)?;
    let user = super::KeyUser::Server {
        allow_unprotected: args.allow_unprotected_key_file,
    };
    let keys = super::chat_keys(args.keys.key_file.as_deref(), key_env, user)?;
    let config = RelayConfig {
        max_datagram: args.wire.max_datagram,
        ttl: Duration::from_secs(args.wire.ttl),
        clock_skew: Duration::from_secs(args.wire.clock_skew),
        member_timeout: Duration::from_secs(args.member_timeout),
        ..RelayConfig::default()
    };
    let socket = mio::net::UdpSocket::bind(bind).map_err(|e| bind_error(bind, &e))?;
    let mut endpoint = Endpoint::new(socket, None).context("cannot set up the event loop")?;
    let bound = endpoint
        .local_addr()
        .context("cannot read the bound address")?;
    let signals = net::signals(endpoint.waker())?;
    if args.print_port {
        net::out(&bound.port().to_string());
    }
    let reach: Vec<String> = net::reachable_at(bound)
        .iter()
        .map(ToString::to_string)
        .collect();
    net::err(&format!(
        "host-chat server listening on {bound}; reach it at {} (Ctrl+C stops it)",
        reach.join(", ")
    ));
    net::err(&format!(
        "settings: --max-datagram {}, --ttl {}, --clock-skew {}, --member-timeout {}",
        args.wire.max_datagram, args.wire.ttl, args.wire.clock_skew, args.member_timeout
    ));
    let stats_every = args.stats.map(Duration::from_secs);
    let ring = keys.ring;
    std::thread::Builder::new()
        .name("relay".into())
        .stack_size(STACK)
        .spawn(move || serve(&mut endpoint, ring, config, signals, stats_every))
        .context("cannot start the server thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))?
}

/// Turns a bind failure into one clear line.
fn bind_error(bind: SocketAddr, err: &io::Error) -> anyhow::Error {
    let (ip, port) = (bind.ip(), bind.port());
    match err.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "port {port} is already in use on {ip}: is another host-chat server running? \
             pick another with --bind"
        ),
        io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "cannot listen on {bind}: {ip} is not an address of this machine (try --bind \
             0.0.0.0:{port})"
        ),
        io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot listen on {bind}: permission denied (ports below 1024 need privileges; \
             pick another with --bind)"
        ),
        _ => anyhow::anyhow!("cannot listen on {bind}: {err}"),
    }
}

fn serve(
    endpoint: &mut Endpoint,
    ring: Ring,
    config: RelayConfig,
    signals: Receiver<i32>,
    stats_every: Option<Duration>,
) -> anyhow::Result<()> {
    let clock = Clock::new();
    let now = clock.now();
    let relay = Box::new(Relay::new(config, ring, net::rng()?, clock.wall_clock(now)));
    let mut server = Server {
        relay,
        signals,
        stats_every,
        next_stats: stats_every.map(|every| now + every),
        next_clock_sync: now + CLOCK_SYNC,
        wrong_key: WrongKeyLog::new(wrong_key::CAPACITY),
    };
    net::run(endpoint, &clock, config.max_datagram, &mut server).context("event loop failed")?;
    net::err(&format!(
        "[{}] host-chat server stopped",
        net::hms(net::unix_millis() / 1000)
    ));
    Ok(())
}

/// How often the relay's real-time clock is corrected from the system clock.
const CLOCK_SYNC: Duration = Duration::from_secs(60);

struct Server {
    relay: Box<HostRelay>,
    signals: Receiver<i32>,
    stats_every: Option<Duration>,
    next_stats: Option<Instant>,
    next_clock_sync: Instant,
    /// Who was told about in the log for sending tokens of another key.
    wrong_key: WrongKeyLog,
}

impl Server {
    fn log(&self, line: &str) {
        net::err(&format!("[{}] {line}", net::hms(net::unix_millis() / 1000)));
    }

    fn print_stats(&self) {
        let line = stats_line(
            &self.relay.stats(),
            self.relay.member_count(),
            self.relay.room_count(),
        );
        self.log(&line);
    }
}

/// The counters in one line.
pub fn stats_line(stats: &Stats, members: usize, rooms: usize) -> String {
    let dropped: Vec<String> = Dropped::ALL
        .iter()
        .filter(|reason| stats.dropped(**reason) > 0)
        .map(|reason| format!("{reason} {}", stats.dropped(*reason)))
        .collect();
    format!(
        "stats: {} in {}; {} in, {} relayed, {} sent, {}, {} missed; dropped: {}",
        count(members as u64, "member"),
        count(rooms as u64, "room"),
        count(stats.datagrams, "datagram"),
        count(stats.relayed, "line"),
        count(stats.delivered, "delivery"),
        count(stats.retransmits, "retransmission round"),
        stats.missed,
        if dropped.is_empty() {
            "none".to_owned()
        } else {
            dropped.join(", ")
        }
    )
}

impl Machine for Server {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        // Why a datagram was dropped goes to the counters; only a token of another key
        // is logged, once a minute per address (a bounded table), so that a flood
        // cannot fill the log.
        let token_shaped = wrong_key::looks_like_token(datagram);
        if let Err(Dropped::InvalidToken) = self.relay.handle_datagram(now, from, datagram)
            && token_shaped
            && let Some(line) = self.wrong_key.on_invalid(now, from)
        {
            self.log(&line);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.relay.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.relay.poll_timeout()
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        self.relay.poll_transmit(now, buf)
    }

    fn app(&mut self, now: Instant) -> Step {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        while let Ok(signal) = self.signals.try_recv() {
            match signal {
                SIGINT | SIGTERM => return Step::Stop,
                SIGUSR1 => self.print_stats(),
                _ => {}
            }
        }
        while let Some(event) = self.relay.poll_event() {
            let line = match event {
                RelayEvent::Joined {
                    addr,
                    nick,
                    room,
                    members,
                } => format!(
                    "{nick} joined room {room} from {addr} ({})",
                    count(members, "member")
                ),
                RelayEvent::Left {
                    addr,
                    nick,
                    room,
                    reason,
                } => {
                    let why = match reason {
                        chat_core::session::LeaveReason::Left => "left",
                        chat_core::session::LeaveReason::TimedOut => "timed out",
                        chat_core::session::LeaveReason::Replaced => {
                            "was replaced by a new session from the same address"
                        }
                    };
                    format!("{nick} ({addr}) {why}, room {room}")
                }
                RelayEvent::Refused { addr, reason } => {
                    format!("refused a join from {addr}: {reason}")
                }
            };
            self.log(&line);
        }
        if let (Some(at), Some(every)) = (self.next_stats, self.stats_every)
            && at <= now
        {
            self.print_stats();
            self.next_stats = Some(now + every);
        }
        if self.next_clock_sync <= now {
            self.relay.sync_clock(now, net::unix_millis());
            self.next_clock_sync = now + CLOCK_SYNC;
        }
        let deadline = match self.next_stats {
            Some(at) => at.min(self.next_clock_sync),
            None => self.next_clock_sync,
        };
        Step::Continue(Some(deadline))
    }

    fn socket_error(&mut self, _now: Instant, error: &io::Error) {
        self.log(&format!("socket error: {error}"));
    }
}
