//! The mio event loop that drives a sans-IO state machine of `chat_core` (the relay or a
//! client) over a real UDP socket and the real clocks.
//!
//! One turn of [`run`], following the call order of `chat_core::session`:
//!
//! 1. wait (mio `Poll`) until a datagram, a wake-up from another thread (standard input,
//!    signals), or the earliest deadline of the machine and of the application;
//! 2. drain the socket until `WouldBlock`, [`BATCH`](crate::mmsg::BATCH) datagrams per
//!    system call, feeding each datagram to the machine and sending what it has ready
//!    after each batch;
//! 3. run the machine's timers if they are due;
//! 4. let the application act ([`Machine::app`]): its input, the machine's events;
//! 5. send every datagram the machine has ready, in batches; if the socket is full, keep
//!    the batch in hand and wait until it is writable.
//!
//! The buffers are allocated once: nothing is allocated per datagram.
//!
//! Core time is milliseconds since the loop's start ([`Clock`]).

use crate::mmsg::{self, Datagrams};
use chat_core::time::{Instant, WallClock};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// The process's monotonic clock, as core [`Instant`]s (milliseconds since start).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            start: std::time::Instant::now(),
        }
    }

    /// Now, in core time.
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The std instant of a core instant (for poll timeouts).
    pub fn to_std(&self, at: Instant) -> std::time::Instant {
        self.start + Duration::from_millis(at.millis())
    }

    /// The real time, anchored at `now`.
    pub fn wall_clock(&self, now: Instant) -> WallClock {
        WallClock::synced(now, unix_millis())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `HH:MM:SS` (UTC) of Unix seconds.
pub fn hms(unix_secs: u64) -> String {
    let day = unix_secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
}

/// A CSPRNG seeded from the OS.
pub fn rng() -> anyhow::Result<StdRng> {
    use anyhow::Context as _;
    StdRng::try_from_rng(&mut SysRng).context("cannot get randomness from the OS")
}

/// Writes one line to standard output. A closed stdout is no reason to stop chatting.
pub fn out(line: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Writes one line to standard error.
pub fn err(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Bytes asked for each socket buffer: a relay's bursts (a line to a whole room, acks from
/// it) overflow the usual 208 KiB, and every datagram the kernel drops costs a
/// retransmission timeout. The kernel caps the request at `net.core.rmem_max` /
/// `wmem_max`.
pub const SOCKET_BUFFER: usize = 8 << 20;

/// Asks for [`SOCKET_BUFFER`]-byte receive and send buffers on `socket` (best effort: a
/// kernel that refuses leaves the defaults).
pub fn grow_buffers(socket: &UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
}

/// What the application wants after its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep going; call [`Machine::app`] again by this time at the latest.
    Continue(Option<Instant>),
    /// Stop the loop.
    Stop,
}

/// A state machine and the application around it, as the loop sees them.
pub trait Machine {
    /// Feeds one received datagram (at most `max_datagram + 1` bytes).
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]);
    /// Runs the machine's timers.
    fn handle_timeout(&mut self, now: Instant);
    /// When the machine's timers are due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next datagram to send, written into `buf`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)>;
    /// The application's turn: input, the machine's events, its own timers.
    fn app(&mut self, now: Instant) -> Step;
    /// Receiving or sending failed (e.g. ICMP port unreachable on a connected socket).
    fn socket_error(&mut self, now: Instant, error: &io::Error);
    /// A new peer for a connected socket, if the machine moves to another (a client's
    /// failover to the next server); asked after each [`app`](Self::app).
    fn redirect(&mut self) -> Option<SocketAddr> {
        None
    }
}

/// A socket registered with a poll, and the waker other threads use.
#[derive(Debug)]
pub struct Endpoint {
    poll: Poll,
    socket: UdpSocket,
    waker: Arc<Waker>,
    /// Connected to this peer: `send`/`recv` (and ICMP errors reported).
    peer: Option<SocketAddr>,
}

impl Endpoint {
    /// Registers `socket`; `peer` if it is connected.
    pub fn new(mut socket: UdpSocket, peer: Option<SocketAddr>) -> io::Result<Self> {
        grow_buffers(&socket);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE | Interest::WRITABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Self {
            poll,
            socket,
            waker,
            peer,
        })
    }

    /// The waker, for threads that hand input to the loop.
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Connects the socket to `peer` instead (what it sends goes there, and only what
    /// `peer` sends is received).
    pub fn connect(&mut self, peer: SocketAddr) -> io::Result<()> {
        self.socket.connect(peer)?;
        self.peer = Some(peer);
        Ok(())
    }

    fn send(&self, batch: &Datagrams, from: usize) -> io::Result<usize> {
        mmsg::send(&self.socket, batch, from, self.peer.is_some())
    }

    fn recv(&self, batch: &mut Datagrams) -> io::Result<usize> {
        mmsg::recv(&self.socket, batch, self.peer)
    }
}

/// Datagrams the machine has made, and how many of them are already sent.
#[derive(Debug)]
struct Outgoing {
    batch: Datagrams,
    sent: usize,
}

/// Runs `machine` on `endpoint` until it says [`Step::Stop`]. `max_datagram` sizes the
/// buffers.
pub fn run(
    endpoint: &mut Endpoint,
    clock: &Clock,
    max_datagram: usize,
    machine: &mut dyn Machine,
) -> io::Result<()> {
    let mut events = Events::with_capacity(64);
    // One byte more than the largest datagram, so that longer ones are seen as such.
    let mut incoming = Datagrams::new(max_datagram + 1);
    // Made but not yet sent (the socket was full): sent first when it is writable.
    let mut outgoing = Outgoing {
        batch: Datagrams::new(max_datagram),
        sent: 0,
    };
    let mut timeout = Some(Duration::ZERO);
    loop {
        match endpoint.poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let readable = events.iter().any(|event| event.token() == SOCKET);
        if readable {
            loop {
                match endpoint.recv(&mut incoming) {
                    Ok(n) => {
                        let now = clock.now();
                        for i in 0..n {
                            let (datagram, from) = incoming.get_mut(i);
                            machine.handle_datagram(now, from, datagram);
                        }
                        // Answer as we go: a long backlog must not hold every reply back.
                        flush(endpoint, clock, machine, &mut outgoing);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        machine.socket_error(clock.now(), &e);
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                        ) {
                            break;
                        }
                    }
                }
            }
        }

        let now = clock.now();
        if machine.poll_timeout().is_some_and(|at| at <= now) {
            machine.handle_timeout(now);
        }
        let step = machine.app(now);
        let app_deadline = match step {
            Step::Stop => {
                // Push out what is ready (a goodbye, say) before stopping.
                flush(endpoint, clock, machine, &mut outgoing);
                return Ok(());
            }
            Step::Continue(deadline) => deadline,
        };
        if let Some(peer) = machine.redirect()
            && let Err(e) = endpoint.connect(peer)
        {
            machine.socket_error(clock.now(), &e);
        }
        flush(endpoint, clock, machine, &mut outgoing);

        let deadline = match (machine.poll_timeout(), app_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        timeout = deadline.map(|at| {
            clock
                .to_std(at)
                .saturating_duration_since(std::time::Instant::now())
        });
    }
}

/// Sends what the machine has ready, in batches, until it has nothing or the socket is
/// full.
fn flush(endpoint: &Endpoint, clock: &Clock, machine: &mut dyn Machine, out: &mut Outgoing) {
    loop {
        while out.sent < out.batch.len() {
            match endpoint.send(&out.batch, out.sent) {
                Ok(n) => out.sent += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Lost like any datagram; the machine retransmits if it matters.
                    machine.socket_error(clock.now(), &e);
                    out.sent += 1;
                }
            }
        }
        out.batch.clear();
        out.sent = 0;
        let now = clock.now();
        while !out.batch.is_full() {
            match machine.poll_transmit(now, out.batch.next_buf()) {
                Some((to, len)) => out.batch.push(len, to),
                None => break,
            }
        }
        if out.batch.is_empty() {
            return;
        }
    }
}

/// The addresses other machines may use to reach a server bound to `bound`: for a
/// wildcard address, this machine's outward addresses (found by "connecting" a UDP
/// socket, which sends nothing) and loopback; else the bound address itself.
pub fn reachable_at(bound: SocketAddr) -> Vec<SocketAddr> {
    let port = bound.port();
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut found = Vec::new();
    let probe = |local: IpAddr, remote: SocketAddr| -> Option<IpAddr> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(local, 0)).ok()?;
        socket.connect(remote).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
    };
    if let Some(ip) = probe(
        Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::from(([192, 0, 2, 1], 9)),
    ) {
        found.push(SocketAddr::new(ip, port));
    }
    if bound.is_ipv6()
        && let Some(ip) = probe(
            Ipv6Addr::UNSPECIFIED.into(),
            SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(), 9),
        )
    {
        found.push(SocketAddr::new(ip, port));
    }
    found.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    if bound.is_ipv6() {
        found.push(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port));
    }
    found
}

/// Starts a thread that turns SIGINT, SIGTERM and SIGUSR1 into messages on the returned
/// channel, waking the loop for each.
pub fn signals(waker: Arc<Waker>) -> anyhow::Result<std::sync::mpsc::Receiver<i32>> {
    use anyhow::Context as _;
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1])
        .context("cannot install signal handlers")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    break;
                }
                let _ = waker.wake();
            }
        })
        .context("cannot start the signal thread")?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time() {
        assert_eq!(hms(1_700_000_000), "22:13:20");
        assert_eq!(hms(59), "00:00:59");
    }

    #[test]
    fn reachable_lists_loopback_for_wildcards() {
        let any = SocketAddr::from(([0, 0, 0, 0], 4000));
        let list = reachable_at(any);
        assert!(list.contains(&SocketAddr::from(([127, 0, 0, 1], 4000))));
        let one = SocketAddr::from(([127, 0, 0, 1], 5));
        assert_eq!(reachable_at(one), vec![one]);
    }
}
