//! The load generator: `Bench`, its clients (`Peer`), setting them up, and the run's
//! phases: everyone in, settle, the load and what is still on its way, goodbyes.

use super::MAX_DATAGRAM;
use super::member::{self, Member};
use super::options::{BenchArgs, Mode};
use super::process;
use super::report::{Cost, Counts, Report};
use crate::keys::Ring;
use crate::mmsg::Datagrams;
use crate::net::{self, Clock};
use anyhow::Context as _;
use chat_core::time::Instant;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, IsTerminal as _};
use std::net::SocketAddr;
use std::time::Duration;

/// How long clients may take to join: this, plus [`JOIN_PER_CLIENT`] each.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const JOIN_PER_CLIENT: Duration = Duration::from_millis(2);
/// After the joins, the load starts once nothing has arrived for this long (the join
/// notices have passed), or after [`START_TIMEOUT`] at most.
const SETTLE_QUIET: Duration = Duration::from_millis(100);

/// One client's share of the load.
pub(super) struct Peer {
    pub(super) socket: UdpSocket,
    /// A chat member (framed mode).
    pub(super) client: Option<Member>,
    /// Its room's number (0 to R - 1).
    pub(super) room: u32,
    /// Datagrams made, not yet sent.
    pub(super) out: Datagrams,
    pub(super) out_sent: usize,
    /// When each of its messages was sent (ns since the start), by number.
    pub(super) sent_at: Vec<u64>,
    /// Legacy and plain: numbers awaiting their receipt, oldest first.
    pub(super) waiting: VecDeque<u64>,
    /// Joined (framed), or its hello answered (legacy, plain).
    pub(super) ready: bool,
    pub(super) hello_at: Option<u64>,
    pub(super) closed: bool,
    /// When its client's timers are due (framed), as last asked.
    pub(super) timer: Option<Instant>,
    /// In [`Bench::dirty`]: has something to send or events to read.
    pub(super) dirty: bool,
}

pub(super) struct Bench {
    pub(super) mode: Mode,
    pub(super) clients: usize,
    pub(super) rooms: usize,
    /// Members of each room.
    pub(super) room_sizes: Vec<u64>,
    pub(super) messages: u64,
    pub(super) size: usize,
    pub(super) rate: Option<f64>,
    /// Lines in flight per client.
    pub(super) window: usize,
    pub(super) drain: Duration,
    pub(super) time_limit: Option<Duration>,
    /// Wait for quiet after the joins.
    pub(super) settle: bool,
    pub(super) server_pids: Vec<u32>,
    pub(super) poll: Poll,
    pub(super) peers: Vec<Peer>,
    /// Peers with something to do, each once ([`Peer::dirty`]).
    pub(super) dirty: Vec<usize>,
    pub(super) ring: Option<Ring>,
    pub(super) rng: StdRng,
    pub(super) clock: Clock,
    pub(super) start: std::time::Instant,
    pub(super) counts: Counts,
    pub(super) delivery_us: Vec<u32>,
    pub(super) receipt_us: Vec<u32>,
    pub(super) first_send: Option<u64>,
    pub(super) last_send: u64,
    pub(super) last_progress: u64,
    /// When a datagram last came in (ns since the start).
    pub(super) last_datagram: u64,
    /// Framed clients whose join was refused, and the first notice one of them got.
    pub(super) refused_joins: usize,
    pub(super) join_notice: Option<String>,
    pub(super) text: String,
    pub(super) progress: bool,
    pub(super) progress_drawn: u64,
}

pub(super) fn now_ns(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The name of room `room` of `rooms`.
pub(super) fn room_name(room: u32, rooms: u32) -> String {
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
    pub(super) fn new(
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
    pub(super) fn fanout_in(mode: Mode, members: u64) -> u64 {
        match mode {
            Mode::Framed => members,
            Mode::Legacy | Mode::Plain => members.saturating_sub(1),
        }
    }

    /// Members that get client `i`'s lines.
    pub(super) fn fanout_of(&self, i: usize) -> u64 {
        Self::fanout_in(self.mode, self.room_sizes[self.peers[i].room as usize])
    }

    /// Mean fan-out over the clients (the load is spread evenly over them).
    pub(super) fn mean_fanout(&self) -> f64 {
        let sum: u64 = self
            .room_sizes
            .iter()
            .map(|&n| n * Self::fanout_in(self.mode, n))
            .sum();
        sum as f64 / self.clients as f64
    }

    pub(super) fn mark(&mut self, i: usize) {
        if !self.peers[i].dirty {
            self.peers[i].dirty = true;
            self.dirty.push(i);
        }
    }

    pub(super) fn run(mut self) -> anyhow::Result<Report> {
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
}
