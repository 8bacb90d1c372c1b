//! `host-chat server`: chat_core's [`Relay`] on a UDP socket.

use super::wrong_key::{self, WrongKeyLog};
use crate::cli::ServerArgs;
use crate::keys::Ring;
use crate::net::{self, Clock, Endpoint, Machine, Step};
use anyhow::Context as _;
use chat_cli::count;
use chat_core::session::{
    Dropped, GoneSlot, HistoryEntry, LeaveReason, MemberSlot, PresenceEntry, Relay, RelayConfig,
    RelayEvent, RelayLimits, RelayStorage, RoomSlot, Stats,
};
use chat_core::time::{Duration, Instant};
use rand::rngs::StdRng;
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;

/// Presence changes each room keeps for members that have not read them.
const PRESENCE: usize = 64;

/// The most memory the sizing flags may reserve (most of the history is only touched as
/// rooms fill, but a reservation this large is a mistake).
const MAX_RESERVED: usize = 8 << 30;

/// The relay the host runs, over storage sized from the command line.
pub type HostRelay<'a> = Relay<'a, SocketAddr, StdRng, 7>;

/// The relay's storage, owned (sized from `--max-members`, `--max-rooms`, `--history`).
#[derive(Debug)]
pub struct HostStorage {
    members: Vec<MemberSlot<SocketAddr>>,
    gone: Vec<GoneSlot>,
    rooms: Vec<RoomSlot>,
    history: Vec<HistoryEntry>,
    history_bytes: Vec<u8>,
    presence: Vec<PresenceEntry>,
}

impl HostStorage {
    /// Sizes for a server of `members` members in `rooms` rooms keeping `history` messages
    /// per room, each at most `max_datagram` bytes.
    pub fn limits(
        members: usize,
        rooms: usize,
        history: usize,
        max_datagram: usize,
    ) -> RelayLimits {
        RelayLimits {
            members,
            rooms,
            history,
            history_bytes: RelayLimits::history_bytes_for(history).max(max_datagram),
            presence: PRESENCE,
            gone: members,
        }
    }

    /// Allocates storage of these sizes. The history's bytes are allocated zeroed, so the
    /// system hands out their pages only as rooms fill them.
    pub fn new(limits: &RelayLimits) -> Self {
        Self {
            members: vec![MemberSlot::EMPTY; limits.members],
            gone: vec![GoneSlot::EMPTY; limits.gone],
            rooms: vec![RoomSlot::EMPTY; limits.rooms],
            history: vec![HistoryEntry::EMPTY; limits.rooms * limits.history],
            history_bytes: vec![0; limits.rooms * limits.history_bytes],
            presence: vec![PresenceEntry::EMPTY; limits.rooms * limits.presence],
        }
    }

    /// The storage, for `Relay::new`.
    pub fn as_storage(&mut self) -> RelayStorage<'_, SocketAddr> {
        RelayStorage {
            members: &mut self.members,
            gone: &mut self.gone,
            rooms: &mut self.rooms,
            history: &mut self.history,
            history_bytes: &mut self.history_bytes,
            presence: &mut self.presence,
        }
    }
}

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
    let limits = HostStorage::limits(
        args.max_members as usize,
        args.max_rooms as usize,
        args.history as usize,
        config.max_datagram,
    );
    let reserved = limits.bytes::<SocketAddr>();
    if reserved > MAX_RESERVED {
        return Err(crate::error::BadArgument(format!(
            "--max-members {}, --max-rooms {} and --history {} would reserve {}: at most {} \
             (lower --max-rooms or --history: the history takes --max-rooms × --history × \
             about 280 bytes)",
            args.max_members,
            args.max_rooms,
            args.history,
            size(reserved),
            size(MAX_RESERVED)
        ))
        .into());
    }
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
        "room for {}, {}, {} of history per room: {} reserved, of which the history's {} \
         is used only as rooms fill (--max-members, --max-rooms, --history)",
        count(args.max_members, "member"),
        count(args.max_rooms, "room"),
        count(args.history, "message"),
        size(reserved),
        size(limits.rooms * limits.history_bytes),
    ));
    if args.member_timeout < 15 {
        net::err(&format!(
            "warning: --member-timeout {} is below 15 s: clients ping every 5 s, so a member \
             with nothing to say is dropped after a single lost ping (15 s or more is safe)",
            args.member_timeout
        ));
    }
    let mut storage = HostStorage::new(&limits);
    net::err(&format!(
        "settings: --max-datagram {}, --ttl {}, --clock-skew {}, --member-timeout {}",
        args.wire.max_datagram, args.wire.ttl, args.wire.clock_skew, args.member_timeout
    ));
    let stats_every = args.stats.map(Duration::from_secs);
    serve(
        &mut endpoint,
        keys.ring,
        config,
        storage.as_storage(),
        signals,
        stats_every,
    )
}

/// A size in bytes for people: `512 KiB`, `151 MiB`, `8.0 GiB` (binary units).
fn size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB * KIB {
        format!("{:.0} KiB", (b / KIB).max(1.0))
    } else if b < KIB * KIB * KIB {
        format!("{:.0} MiB", b / (KIB * KIB))
    } else {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    }
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
    storage: RelayStorage<'_, SocketAddr>,
    signals: Receiver<i32>,
    stats_every: Option<Duration>,
) -> anyhow::Result<()> {
    let clock = Clock::new();
    let now = clock.now();
    let relay = Relay::new(config, ring, net::rng()?, clock.wall_clock(now), storage)
        .map_err(|e| anyhow::anyhow!("cannot size the server: {e}"))?;
    let mut server = Server {
        relay,
        signals,
        stats_every,
        next_stats: stats_every.map(|every| now + every),
        next_clock_sync: now + CLOCK_SYNC,
        wrong_key: WrongKeyLog::new(wrong_key::CAPACITY),
        events: Vec::new(),
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

struct Server<'a> {
    relay: HostRelay<'a>,
    signals: Receiver<i32>,
    stats_every: Option<Duration>,
    next_stats: Option<Instant>,
    next_clock_sync: Instant,
    /// Who was told about in the log for sending tokens of another key.
    wrong_key: WrongKeyLog,
    /// The relay's events, collected after every datagram (its own queue holds a few
    /// hundred: a join storm makes thousands between two turns of the loop), logged in
    /// the application's turn.
    events: Vec<RelayEvent<SocketAddr>>,
}

impl Server<'_> {
    fn collect_events(&mut self) {
        while let Some(event) = self.relay.poll_event() {
            self.events.push(event);
        }
    }

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

/// The counters in one line of `name=value` words (stable, for scripts): `stats:
/// members=2 rooms=1 datagrams=40 relayed=3 ... dropped: invalid_token=7 duplicate=2`
/// (`dropped: none` when nothing was).
pub fn stats_line(stats: &Stats, members: usize, rooms: usize) -> String {
    let dropped: Vec<String> = Dropped::ALL
        .iter()
        .filter(|reason| stats.dropped(**reason) > 0)
        .map(|reason| format!("{reason}={}", stats.dropped(*reason)))
        .collect();
    format!(
        "stats: members={members} rooms={rooms} datagrams={} relayed={} refused={} busy={} \
         delivered={} retransmitted={} timeouts={} missed={} presence={} stalled={} \
         unanswered={} events_lost={} dropped: {}",
        stats.datagrams,
        stats.relayed,
        stats.refused,
        stats.busy,
        stats.delivered,
        stats.retransmitted,
        stats.timeouts,
        stats.missed,
        stats.presence,
        stats.stalled,
        stats.unanswered,
        stats.events_lost,
        if dropped.is_empty() {
            "none".to_owned()
        } else {
            dropped.join(" ")
        }
    )
}

impl Machine for Server<'_> {
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
        self.collect_events();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.relay.handle_timeout(now);
        self.collect_events();
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
        self.collect_events();
        for event in std::mem::take(&mut self.events) {
            let line = match event {
                RelayEvent::Joined {
                    addr,
                    nick,
                    room,
                    members,
                    resumed,
                } => format!(
                    "{nick} {} room {room} from {addr} ({})",
                    if resumed { "came back to" } else { "joined" },
                    count(members, "member")
                ),
                RelayEvent::Left {
                    addr,
                    nick,
                    room,
                    reason,
                } => {
                    let why = match reason {
                        LeaveReason::Left => "left",
                        LeaveReason::TimedOut => "timed out",
                        LeaveReason::Replaced => {
                            "was replaced by a new session from the same address"
                        }
                    };
                    format!("{nick} ({addr}) {why}, room {room}")
                }
                RelayEvent::Refused { addr, reason } => {
                    format!("refused a join from {addr}: {reason}")
                }
                RelayEvent::Stalled { addr, nick, room } => format!(
                    "{nick} ({addr}) stopped acknowledging with room {room}'s history full: \
                     the room goes on without it (it is told what it missed if it comes back)"
                ),
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

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_for_people() {
        assert_eq!(size(10), "1 KiB");
        assert_eq!(size(300 << 10), "300 KiB");
        assert_eq!(size(151 << 20), "151 MiB");
        assert_eq!(size(9 << 29), "4.5 GiB");
    }
}
