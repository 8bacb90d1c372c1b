//! `host-chat server`: chat_core's [`Relay`] on a UDP socket.

use super::wrong_key::{self, WrongKeyLog};
use crate::cli::ServerArgs;
use crate::cluster::{self, Command, Counters, Event, Link};
use crate::keys::Ring;
use crate::net::{self, Clock, Endpoint, Machine, Step};
use anyhow::Context as _;
use chat_cli::count;
use chat_core::session::{
    ClusterRequest, ClusterStorage, Dropped, GoneSlot, HistoryEntry, LeaveReason, MemberSlot,
    OrderError, PresenceEntry, ProposalSlot, Relay, RelayConfig, RelayEvent, RelayLimits,
    RelayStorage, RemoteRoom, RemoteSlot, RoomSlot, Stats,
};
use chat_core::time::{Duration, Instant};
use chat_core::wire::PresenceKind;
use rand::rngs::StdRng;
use std::collections::{HashMap, VecDeque};
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

/// Proposals (lines taken from local members, on their way to the broker) a clustered
/// server holds between two turns of its loop; more get Busy.
const PROPOSALS: usize = 1024;

/// The storage of a clustered server's external ordering (`--cluster`).
#[derive(Debug)]
pub struct ClusterStore {
    proposals: Vec<ProposalSlot>,
    proposal_bytes: Vec<u8>,
    remotes: Vec<RemoteSlot>,
    remote_rooms: Vec<RemoteRoom>,
}

impl ClusterStore {
    /// Room for `PROPOSALS` proposals of `max_datagram` bytes, and for as many members
    /// on other servers as `limits` has members.
    pub fn new(limits: &RelayLimits, max_datagram: usize) -> Self {
        Self {
            proposals: vec![ProposalSlot::EMPTY; PROPOSALS],
            proposal_bytes: vec![0; PROPOSALS * max_datagram],
            remotes: vec![RemoteSlot::EMPTY; limits.members],
            remote_rooms: vec![RemoteRoom::EMPTY; limits.rooms],
        }
    }

    /// The storage, for `Relay::with_external_ordering`.
    pub fn as_storage(&mut self) -> ClusterStorage<'_> {
        ClusterStorage {
            proposals: &mut self.proposals,
            proposal_bytes: &mut self.proposal_bytes,
            remotes: &mut self.remotes,
            remote_rooms: &mut self.remote_rooms,
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
    let cluster = cluster_settings(args)?;
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
    let mut cluster_store = cluster
        .as_ref()
        .map(|_| ClusterStore::new(&limits, config.max_datagram));
    if let Some(settings) = &cluster {
        net::err(&format!(
            "cluster: rooms served with the other servers of {} (--cluster-replicas {}, \
             --cluster-max-age {}, --cluster-max-mib {})",
            settings.urls.join(","),
            args.cluster_replicas,
            args.cluster_max_age,
            args.cluster_max_mib
        ));
    }
    let cluster = match (cluster, cluster_store.as_mut()) {
        (Some(settings), Some(store)) => Some((settings, store.as_storage())),
        _ => None,
    };
    serve(
        &mut endpoint,
        keys.ring,
        config,
        storage.as_storage(),
        cluster,
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

/// `--cluster` and its settings, checked.
fn cluster_settings(args: &ServerArgs) -> anyhow::Result<Option<cluster::Settings>> {
    if args.cluster.is_empty() {
        return Ok(None);
    }
    let mut urls = Vec::new();
    for url in &args.cluster {
        let url = url.trim();
        let valid = url.parse::<async_nats::ServerAddr>().is_ok() && !url.is_empty();
        if !valid {
            return Err(crate::error::BadArgument(format!(
                "--cluster {url:?}: not a NATS address; expected nats://HOST:PORT, \
                 comma-separated, e.g. nats://10.0.0.5:4222,nats://10.0.0.6:4222"
            ))
            .into());
        }
        urls.push(url.to_owned());
    }
    Ok(Some(cluster::Settings {
        urls,
        replicas: usize::from(args.cluster_replicas),
        max_age: std::time::Duration::from_secs(args.cluster_max_age),
        max_bytes: i64::try_from(args.cluster_max_mib << 20).unwrap_or(i64::MAX),
        duplicate_window: std::time::Duration::from_secs(120),
    }))
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

fn serve<'a>(
    endpoint: &mut Endpoint,
    ring: Ring,
    config: RelayConfig,
    storage: RelayStorage<'a, SocketAddr>,
    cluster: Option<(cluster::Settings, ClusterStorage<'a>)>,
    signals: Receiver<i32>,
    stats_every: Option<Duration>,
) -> anyhow::Result<()> {
    let clock = Clock::new();
    let now = clock.now();
    let cluster_ring = ring.clone();
    let mut relay = Relay::new(config, ring, net::rng()?, clock.wall_clock(now), storage)
        .map_err(|e| anyhow::anyhow!("cannot size the server: {e}"))?;
    let mut side = None;
    if let Some((settings, storage)) = cluster {
        relay = relay
            .with_external_ordering(storage)
            .map_err(|e| anyhow::anyhow!("cannot size the cluster's storage: {e}"))?;
        let link = cluster::start(settings, cluster_ring, endpoint.waker())?;
        side = Some(ClusterSide::new(link, config.max_datagram));
    }
    let mut server = Server {
        relay,
        cluster: side,
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
    /// `--cluster`: the link to the broker thread.
    cluster: Option<ClusterSide>,
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
        if let Some(cluster) = &self.cluster {
            self.log(&cluster.stats_line(&self.relay));
        }
    }
}

/// The loop's side of the link to the broker: what the broker sends is fed to the relay,
/// what the relay asks for is sent.
struct ClusterSide {
    link: Link,
    /// Lines the relay could not take yet (a member that stopped acknowledging holds a
    /// room's history), per room, in order; fed again at `retry_at`.
    held: HashMap<String, VecDeque<(u64, Vec<u8>)>>,
    retry_at: Option<Instant>,
    counters: Counters,
    /// The broker: `None` before it first answered.
    up: Option<bool>,
    down_since: Option<std::time::Instant>,
    /// Lines fed in order, lines found missing from a stream (gone by retention), tokens
    /// not of our key.
    ordered: u64,
    gaps: u64,
    invalid: u64,
    buf: Vec<u8>,
}

/// Events taken from the broker thread per turn of the loop (the rest wait for the
/// next turn, so datagrams are never kept waiting long).
const EVENTS_PER_TURN: usize = 4096;

impl ClusterSide {
    fn new(link: Link, max_datagram: usize) -> Self {
        Self {
            link,
            held: HashMap::new(),
            retry_at: None,
            counters: Counters::default(),
            up: None,
            down_since: None,
            ordered: 0,
            gaps: 0,
            invalid: 0,
            buf: vec![0; max_datagram],
        }
    }

    fn stats_line(&self, relay: &HostRelay<'_>) -> String {
        let c = &self.counters;
        let broker = match self.up {
            Some(true) => "up",
            Some(false) => "down",
            None => "connecting",
        };
        format!(
            "cluster: broker={broker} published={} duplicates={} retries={} waiting={} \
             outages={} ordered={} held={} gaps={} invalid={} proposals={}",
            c.published,
            c.duplicates,
            c.retries,
            c.waiting,
            c.outages,
            self.ordered,
            self.held.values().map(VecDeque::len).sum::<usize>(),
            self.gaps,
            self.invalid,
            relay.proposals_waiting()
        )
    }

    /// Feeds one ordered line; whether the relay took it (or dropped it for good).
    fn feed(
        &mut self,
        relay: &mut HostRelay<'_>,
        now: Instant,
        room: &str,
        seq: u64,
        token: &mut [u8],
        log: &dyn Fn(&str),
    ) -> bool {
        match relay.handle_ordered(now, room, seq, token) {
            Ok(chat_core::session::Ordered::AfterGap { from }) => {
                self.ordered += 1;
                self.gaps += 1;
                log(&format!(
                    "cluster: room {room}'s lines {from} to {} are no longer in the broker \
                     (--cluster-max-age, --cluster-max-mib); members that lacked them are told",
                    seq - 1
                ));
                true
            }
            Ok(_) => {
                self.ordered += 1;
                true
            }
            Err(OrderError::Busy { retry_after }) => {
                let at = now + retry_after;
                self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
                false
            }
            Err(OrderError::NotOpen) => true,
            Err(OrderError::InvalidToken | OrderError::Malformed) => {
                if self.invalid == 0 {
                    log(&format!(
                        "cluster: room {room}'s stream holds a line that is not ours (line \
                         {seq}: another key?); skipped"
                    ));
                }
                self.invalid += 1;
                true
            }
        }
    }

    /// One turn: what the broker sent, what waited, what the relay asks for. When to
    /// come back at the latest.
    fn turn(
        &mut self,
        relay: &mut HostRelay<'_>,
        now: Instant,
        log: &dyn Fn(&str),
    ) -> Option<Instant> {
        for _ in 0..EVENTS_PER_TURN {
            let Ok(event) = self.link.events.try_recv() else {
                break;
            };
            self.event(relay, now, event, log);
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            let rooms: Vec<String> = self.held.keys().cloned().collect();
            for room in rooms {
                while let Some((seq, mut token)) =
                    self.held.get_mut(&room).and_then(VecDeque::pop_front)
                {
                    if !self.feed(relay, now, &room, seq, &mut token, log) {
                        if let Some(held) = self.held.get_mut(&room) {
                            held.push_front((seq, token));
                        }
                        break;
                    }
                }
                if self.held.get(&room).is_some_and(VecDeque::is_empty) {
                    self.held.remove(&room);
                }
            }
        }
        while let Some(request) = relay.poll_request() {
            let command = match request {
                ClusterRequest::Open { room, resume } => Command::Open {
                    room: room.to_string(),
                    resume: resume.map(|r| (r.epoch, r.next_seq)),
                },
                ClusterRequest::Close { room } => {
                    self.held.remove(room.as_str());
                    Command::Close {
                        room: room.to_string(),
                    }
                }
                ClusterRequest::Lookup { room, session } => Command::Lookup {
                    room: room.to_string(),
                    session,
                },
                ClusterRequest::Joined {
                    room,
                    session,
                    nick,
                } => Command::Joined {
                    room: room.to_string(),
                    session,
                    nick: nick.to_string(),
                },
                ClusterRequest::Left {
                    room,
                    session,
                    nick,
                    kind,
                } => Command::Left {
                    room: room.to_string(),
                    session,
                    nick: nick.to_string(),
                    kind: kind.to_u8(),
                },
            };
            let _ = self.link.commands.send(command);
        }
        while let Some(proposal) = relay.poll_proposal(&mut self.buf) {
            let token = self.buf.get(..proposal.len).unwrap_or_default().to_vec();
            let _ = self.link.commands.send(Command::Publish {
                room: proposal.room.to_string(),
                origin: proposal.origin,
                msg_id: proposal.msg_id,
                token,
            });
        }
        if !self.link.events.is_empty() {
            // More waits: come back at once.
            return Some(now);
        }
        self.retry_at
    }

    fn event(&mut self, relay: &mut HostRelay<'_>, now: Instant, event: Event, log: &dyn Fn(&str)) {
        match event {
            Event::Opened {
                room,
                epoch,
                next_seq,
                roster,
            } => {
                let roster = roster
                    .iter()
                    .map(|(server, session, nick)| (*server, *session, nick.as_str()));
                if !relay.open_room(now, &room, epoch, next_seq, roster) {
                    log(&format!(
                        "cluster: cannot open room {room}: too many rooms (--max-rooms)"
                    ));
                }
            }
            Event::OpenFailed { room, why } => {
                relay.open_failed(&room);
                log(&format!(
                    "cluster: cannot open room {room} yet ({why}); its joins are tried again"
                ));
            }
            Event::Ordered {
                room,
                seq,
                mut token,
            } => {
                if let Some(held) = self.held.get_mut(&room) {
                    held.push_back((seq, token));
                } else if !self.feed(relay, now, &room, seq, &mut token, log) {
                    self.held.entry(room).or_default().push_back((seq, token));
                }
            }
            Event::Found {
                room,
                session,
                lines,
            } => relay.session_found(now, &room, session, &lines),
            Event::RemoteJoined {
                room,
                server,
                session,
                nick,
            } => relay.remote_joined(now, &room, server, session, &nick),
            Event::RemoteLeft {
                room,
                server,
                session,
                kind,
            } => {
                let kind = PresenceKind::from_u8(kind).unwrap_or(PresenceKind::Left);
                relay.remote_left(now, &room, server, session, kind);
            }
            Event::ServerGone { room, server } => {
                relay.remote_server_gone(now, &room, server);
                log(&format!(
                    "cluster: server {server:016x} stopped answering; its members of room {room} are gone"
                ));
            }
            Event::Broker { up } => {
                match (self.up, up) {
                    (None, true) => log("cluster: connected to the broker"),
                    (_, false) => {
                        self.down_since = Some(std::time::Instant::now());
                        log(
                            "cluster: the broker is unreachable: lines wait unreceipted (their \
                             senders keep them) and flow again when it is back",
                        );
                    }
                    (Some(false), true) => {
                        let secs = self
                            .down_since
                            .take()
                            .map_or(0.0, |at| at.elapsed().as_secs_f64());
                        log(&format!("cluster: the broker is back after {secs:.1} s"));
                    }
                    (Some(true), true) => {}
                }
                self.up = Some(up);
            }
            Event::Counters(counters) => self.counters = counters,
            Event::Log(line) => log(&line),
        }
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
        let mut cluster_deadline = None;
        if let Some(cluster) = self.cluster.as_mut() {
            let log =
                |line: &str| net::err(&format!("[{}] {line}", net::hms(net::unix_millis() / 1000)));
            cluster_deadline = cluster.turn(&mut self.relay, now, &log);
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
        let mut deadline = match self.next_stats {
            Some(at) => at.min(self.next_clock_sync),
            None => self.next_clock_sync,
        };
        if let Some(at) = cluster_deadline {
            deadline = deadline.min(at);
        }
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
