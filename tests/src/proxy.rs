//! A fault-injecting UDP proxy for the end-to-end tests: it stands between clients and a
//! server on 127.0.0.1 and loses, duplicates, reorders, corrupts, truncates and delays
//! datagrams, per direction, from a seeded generator, and counts what it did.
//!
//! ```text
//! client A ──┐                ┌── upstream socket for A ──┐
//! client B ──┼── proxy.addr() ┼── upstream socket for B ──┼── server
//! client C ──┘                └── upstream socket for C ──┘
//! ```
//!
//! Each client address gets its own upstream socket, so the server sees distinct
//! clients. One thread runs a proxy (non-blocking sockets, a short sleep when idle); it
//! stops and is joined when the [`Proxy`] drops.
//!
//! The proxy can also keep a copy of the datagrams it saw ([`ProxyConfig::capture`]) and
//! send a datagram to the server from a client's upstream socket ([`Proxy::send_as`]):
//! enough to replay a captured token "from the original address".

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Largest datagram the proxy carries (larger ones are cut by the socket).
const BUF: usize = 65_536;
/// Most clients one proxy serves; datagrams from further addresses are dropped.
const MAX_CLIENTS: usize = 1024;
/// How long the thread sleeps when it has nothing to do.
const IDLE: Duration = Duration::from_micros(500);

/// Which way a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a client to the server.
    ToServer,
    /// From the server to a client.
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Self::ToServer => 0,
            Self::ToClient => 1,
        }
    }
}

/// What to do to the datagrams of one direction. Rates are probabilities in `0.0..=1.0`,
/// drawn independently for each datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Drop the datagram.
    pub loss: f64,
    /// Send it twice.
    pub duplicate: f64,
    /// Hold it back and release it after the next datagram of the same client and
    /// direction, or after [`reorder_hold`](Self::reorder_hold) if none comes.
    pub reorder: f64,
    /// Flip one random bit.
    pub corrupt: f64,
    /// Cut it at a random length (shorter than it was, possibly empty).
    pub truncate: f64,
    /// Added to every datagram's travel time.
    pub delay: Duration,
    /// A further random delay, uniform in `0..=jitter` (which also reorders).
    pub jitter: Duration,
    /// How long a held-back datagram waits for a successor.
    pub reorder_hold: Duration,
}

impl Faults {
    /// A perfect network.
    pub const NONE: Self = Self {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        corrupt: 0.0,
        truncate: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        reorder_hold: Duration::from_millis(50),
    };
}

impl Default for Faults {
    fn default() -> Self {
        Self::NONE
    }
}

/// How a proxy behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Seeds the generator that decides every fault.
    pub seed: u64,
    /// Faults on the way to the server.
    pub to_server: Faults,
    /// Faults on the way back to the clients.
    pub to_client: Faults,
    /// Keep a copy of up to this many received datagrams (as received, before any
    /// fault), for [`Proxy::captured`].
    pub capture: usize,
}

impl ProxyConfig {
    /// The same faults both ways.
    pub fn symmetric(seed: u64, faults: Faults) -> Self {
        Self {
            seed,
            to_server: faults,
            to_client: faults,
            capture: 0,
        }
    }
}

/// What a proxy did to one direction's datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent on (duplicates included).
    pub sent: u64,
    /// Dropped as "lost".
    pub lost: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// Held back behind a later datagram (or for the hold time).
    pub reordered: u64,
    /// A bit flipped.
    pub corrupted: u64,
    /// Cut short.
    pub truncated: u64,
    /// Sent later than received (delay or jitter).
    pub delayed: u64,
}

#[derive(Debug, Default)]
struct AtomicCounts {
    received: AtomicU64,
    sent: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
    truncated: AtomicU64,
    delayed: AtomicU64,
}

impl AtomicCounts {
    fn snapshot(&self) -> Counts {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Counts {
            received: get(&self.received),
            sent: get(&self.sent),
            lost: get(&self.lost),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
            corrupted: get(&self.corrupted),
            truncated: get(&self.truncated),
            delayed: get(&self.delayed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A datagram the proxy received, as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// Which way it was going.
    pub direction: Direction,
    /// The client it came from or was going to (its own address, not the proxy's).
    pub client: SocketAddr,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// State shared between the proxy thread and its handle.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    counts: [AtomicCounts; 2],
    captured: Mutex<Vec<Captured>>,
    capture: usize,
    /// Client address → its upstream socket.
    upstreams: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running proxy; stopped and joined on drop.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `server`.
    pub fn start(server: SocketAddr, config: ProxyConfig) -> io::Result<Self> {
        let listen = UdpSocket::bind("127.0.0.1:0")?;
        listen.set_nonblocking(true)?;
        let addr = listen.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            counts: Default::default(),
            captured: Mutex::new(Vec::new()),
            capture: config.capture,
            upstreams: Mutex::new(HashMap::new()),
        });
        let mut worker = Worker {
            listen,
            server,
            config,
            rng: StdRng::seed_from_u64(config.seed),
            shared: Arc::clone(&shared),
            clients: Vec::new(),
            queue: BinaryHeap::new(),
            held: HashMap::new(),
            order: 0,
            buf: vec![0; BUF],
        };
        let thread = thread::Builder::new()
            .name(format!("proxy {addr}"))
            .spawn(move || worker.run())?;
        Ok(Self {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// Where clients should send: the proxy's own address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the proxy did so far in `direction`.
    pub fn counts(&self, direction: Direction) -> Counts {
        self.shared.counts[direction.index()].snapshot()
    }

    /// The datagrams captured so far (see [`ProxyConfig::capture`]).
    pub fn captured(&self) -> Vec<Captured> {
        lock(&self.shared.captured).clone()
    }

    /// The clients seen so far, and the address the server sees for each.
    pub fn clients(&self) -> Vec<(SocketAddr, SocketAddr)> {
        lock(&self.shared.upstreams)
            .iter()
            .filter_map(|(client, socket)| Some((*client, socket.local_addr().ok()?)))
            .collect()
    }

    /// Sends `datagram` to the server from the upstream socket of `client`, as if the
    /// client had sent it, without faults (the answer goes back to the client through
    /// the proxy). Fails if the proxy has not seen `client`.
    pub fn send_as(&self, client: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let socket = lock(&self.shared.upstreams)
            .get(&client)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such client"))?;
        socket.send(datagram).map(drop)
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A datagram on its way out, ordered by due time, then by when it was scheduled.
#[derive(Debug, PartialEq, Eq)]
struct Due {
    at: Instant,
    order: u64,
    direction: Direction,
    client: SocketAddr,
    bytes: Vec<u8>,
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: the earliest must compare greatest.
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A datagram held back to be reordered.
#[derive(Debug)]
struct Held {
    until: Instant,
    bytes: Vec<u8>,
}

struct Worker {
    listen: UdpSocket,
    server: SocketAddr,
    config: ProxyConfig,
    rng: StdRng,
    shared: Arc<Shared>,
    /// Client address and upstream socket, in order of arrival.
    clients: Vec<(SocketAddr, Arc<UdpSocket>)>,
    queue: BinaryHeap<Due>,
    held: HashMap<(Direction, SocketAddr), Held>,
    order: u64,
    buf: Vec<u8>,
}

impl Worker {
    fn run(&mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            let mut busy = self.pump_clients();
            busy |= self.pump_server();
            busy |= self.release(Instant::now());
            if !busy {
                thread::sleep(IDLE);
            }
        }
    }

    /// Reads what clients sent; `true` if anything came.
    fn pump_clients(&mut self) -> bool {
        let mut busy = false;
        // Bounded per turn, so a flood cannot starve the other direction.
        for _ in 0..256 {
            let (n, from) = match self.listen.recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from clients that went away, and the like.
                Err(_) => continue,
            };
            busy = true;
            if self.upstream(from).is_none() {
                continue;
            }
            let bytes = self.buf[..n].to_vec();
            self.received(Direction::ToServer, from, bytes);
        }
        busy
    }

    /// Reads what the server sent to each client; `true` if anything came.
    fn pump_server(&mut self) -> bool {
        let mut busy = false;
        for i in 0..self.clients.len() {
            let (client, socket) = (self.clients[i].0, Arc::clone(&self.clients[i].1));
            for _ in 0..256 {
                let (n, from) = match socket.recv_from(&mut self.buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => continue,
                };
                busy = true;
                if from != self.server {
                    continue;
                }
                let bytes = self.buf[..n].to_vec();
                self.received(Direction::ToClient, client, bytes);
            }
        }
        busy
    }

    /// The upstream socket of `client`, made on first sight.
    fn upstream(&mut self, client: SocketAddr) -> Option<Arc<UdpSocket>> {
        if let Some((_, socket)) = self.clients.iter().find(|(c, _)| *c == client) {
            return Some(Arc::clone(socket));
        }
        if self.clients.len() >= MAX_CLIENTS {
            return None;
        }
        let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
        socket.connect(self.server).ok()?;
        socket.set_nonblocking(true).ok()?;
        let socket = Arc::new(socket);
        self.clients.push((client, Arc::clone(&socket)));
        lock(&self.shared.upstreams).insert(client, Arc::clone(&socket));
        Some(socket)
    }

    fn counts(&self, direction: Direction) -> &AtomicCounts {
        &self.shared.counts[direction.index()]
    }

    fn faults(&self, direction: Direction) -> Faults {
        match direction {
            Direction::ToServer => self.config.to_server,
            Direction::ToClient => self.config.to_client,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    /// Applies the faults to one received datagram and schedules what is left of it.
    fn received(&mut self, direction: Direction, client: SocketAddr, mut bytes: Vec<u8>) {
        let now = Instant::now();
        let faults = self.faults(direction);
        bump(&self.counts(direction).received);
        if self.shared.capture > 0 {
            let mut captured = lock(&self.shared.captured);
            if captured.len() < self.shared.capture {
                captured.push(Captured {
                    direction,
                    client,
                    bytes: bytes.clone(),
                });
            }
        }
        if self.chance(faults.loss) {
            bump(&self.counts(direction).lost);
            return;
        }
        if !bytes.is_empty() && self.chance(faults.truncate) {
            let len = self.rng.random_range(0..bytes.len());
            bytes.truncate(len);
            bump(&self.counts(direction).truncated);
        }
        if !bytes.is_empty() && self.chance(faults.corrupt) {
            let bit = self.rng.random_range(0..bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            bump(&self.counts(direction).corrupted);
        }
        let copies = if self.chance(faults.duplicate) {
            bump(&self.counts(direction).duplicated);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let key = (direction, client);
            if !self.held.contains_key(&key) && self.chance(faults.reorder) {
                bump(&self.counts(direction).reordered);
                self.held.insert(
                    key,
                    Held {
                        until: now + faults.reorder_hold,
                        bytes: bytes.clone(),
                    },
                );
                continue;
            }
            let at = self.travel(now, faults);
            if at > now {
                bump(&self.counts(direction).delayed);
            }
            self.schedule(at, direction, client, bytes.clone());
            // The held one goes right after its successor.
            if let Some(held) = self.held.remove(&key) {
                self.schedule(at, direction, client, held.bytes);
            }
        }
    }

    /// When a datagram received at `now` is due out.
    fn travel(&mut self, now: Instant, faults: Faults) -> Instant {
        let jitter = if faults.jitter.is_zero() {
            Duration::ZERO
        } else {
            let max = u64::try_from(faults.jitter.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(self.rng.random_range(0..=max))
        };
        now + faults.delay + jitter
    }

    fn schedule(&mut self, at: Instant, direction: Direction, client: SocketAddr, bytes: Vec<u8>) {
        self.order += 1;
        self.queue.push(Due {
            at,
            order: self.order,
            direction,
            client,
            bytes,
        });
    }

    /// Sends what is due at `now`, held datagrams whose hold time is over included;
    /// `true` if anything went.
    fn release(&mut self, now: Instant) -> bool {
        let expired: Vec<(Direction, SocketAddr)> = self
            .held
            .iter()
            .filter(|(_, held)| held.until <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            if let Some(held) = self.held.remove(&key) {
                let at = self.travel(now, self.faults(key.0));
                self.schedule(at, key.0, key.1, held.bytes);
            }
        }
        let mut busy = false;
        while self.queue.peek().is_some_and(|due| due.at <= now) {
            let Some(due) = self.queue.pop() else { break };
            busy = true;
            self.send(&due);
        }
        busy
    }

    fn send(&self, due: &Due) {
        let sent = match due.direction {
            Direction::ToServer => self
                .clients
                .iter()
                .find(|(c, _)| *c == due.client)
                .map(|(_, socket)| socket.send(&due.bytes)),
            Direction::ToClient => Some(self.listen.send_to(&due.bytes, due.client)),
        };
        // A full socket buffer loses the datagram, as a network would.
        if matches!(sent, Some(Ok(_))) {
            bump(&self.counts(due.direction).sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1; stops when `stop` is set.
    fn echo(stop: Arc<AtomicBool>) -> (SocketAddr, thread::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        (addr, handle)
    }

    /// How long anything here may take: generous, as a loaded machine can pause the
    /// proxy's thread for a while. Nothing waits for it unless something is wrong.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn client() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    /// The next `n` datagrams (fewer if they do not come within [`PATIENCE`]), and any
    /// others already queued behind them.
    fn receive(socket: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left)).unwrap();
            match socket.recv(&mut buf) {
                Ok(len) => got.push(buf[..len].to_vec()),
                Err(_) => break,
            }
        }
        socket.set_nonblocking(true).unwrap();
        while let Ok(len) = socket.recv(&mut buf) {
            got.push(buf[..len].to_vec());
        }
        socket.set_nonblocking(false).unwrap();
        got
    }

    /// Waits until `done` holds (the proxy's counters settle a moment after the last
    /// datagram is forwarded); panics with `what` after [`PATIENCE`].
    #[track_caller]
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_perfect_proxy_forwards_both_ways_and_keeps_clients_apart() {
        let stop = Arc::new(AtomicBool::new(false));
        let (server, echo) = echo(Arc::clone(&stop));
        let mut config = ProxyConfig::symmetric(1, Faults::NONE);
        config.capture = 100;
        let proxy = Proxy::start(server, config).unwrap();
        let (a, b) = (client(), client());
        for i in 0..10u8 {
            a.send_to(&[b'a', i], proxy.addr()).unwrap();
            b.send_to(&[b'b', i], proxy.addr()).unwrap();
        }
        let (got_a, got_b) = (receive(&a, 10), receive(&b, 10));
        assert_eq!(got_a, (0..10u8).map(|i| vec![b'a', i]).collect::<Vec<_>>());
        assert_eq!(got_b, (0..10u8).map(|i| vec![b'b', i]).collect::<Vec<_>>());
        let clients = proxy.clients();
        assert_eq!(clients.len(), 2);
        assert_ne!(clients[0].1, clients[1].1, "one upstream socket per client");
        eventually("40 datagrams counted and captured", || {
            proxy.counts(Direction::ToClient).sent == 20 && proxy.captured().len() == 40
        });
        let up = proxy.counts(Direction::ToServer);
        assert_eq!((up.received, up.sent), (20, 20));
        // Injected as `a`, answered to `a`.
        proxy.send_as(a.local_addr().unwrap(), b"injected").unwrap();
        assert_eq!(receive(&a, 1), vec![b"injected".to_vec()]);
        assert_eq!(receive(&b, 0), Vec::<Vec<u8>>::new());
        drop(proxy);
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
    }

    #[test]
    fn faults_happen_at_about_their_rates_and_are_counted() {
        let stop = Arc::new(AtomicBool::new(false));
        let (server, echo) = echo(Arc::clone(&stop));
        let faults = Faults {
            loss: 0.2,
            duplicate: 0.2,
            reorder: 0.2,
            corrupt: 0.1,
            truncate: 0.1,
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            reorder_hold: Duration::from_millis(20),
        };
        let config = ProxyConfig {
            seed: 7,
            to_server: faults,
            to_client: Faults::NONE,
            capture: 0,
        };
        let proxy = Proxy::start(server, config).unwrap();
        let socket = client();
        let sent: Vec<Vec<u8>> = (0..500u32)
            .map(|i| format!("datagram {i:05}").into_bytes())
            .collect();
        // Read while sending: the socket's buffer would not hold all the answers.
        let got = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let socket = socket.try_clone().unwrap();
            let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        lock(&got).push(buf[..n].to_vec());
                    }
                }
            })
        };
        for datagram in &sent {
            socket.send_to(datagram, proxy.addr()).unwrap();
            thread::sleep(Duration::from_micros(200));
        }
        // Settled: every datagram received, and every one not lost sent on (none held
        // back for reordering or delay).
        eventually("the proxy forwarded all 500", || {
            let c = proxy.counts(Direction::ToServer);
            c.received == 500 && c.sent == c.received - c.lost + c.duplicated
        });
        let c = proxy.counts(Direction::ToServer);
        eventually("every echo came back", || lock(&got).len() as u64 >= c.sent);
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        let got = lock(&got).clone();
        assert_eq!(c.received, 500);
        for (what, n) in [
            ("lost", c.lost),
            ("duplicated", c.duplicated),
            ("reordered", c.reordered),
            ("corrupted", c.corrupted),
            ("truncated", c.truncated),
        ] {
            assert!(n > 10, "{what}: {n} ({c:?})");
        }
        assert!(c.lost > 60 && c.lost < 140, "{c:?}");
        assert_eq!(c.sent, c.received - c.lost + c.duplicated, "{c:?}");
        assert_eq!(got.len() as u64, c.sent, "the way back is perfect");
        // Damage is visible, and something arrived out of order.
        let intact = got.iter().filter(|d| sent.contains(d)).count() as u64;
        assert!(intact < c.sent, "{intact} {c:?}");
        let order: Vec<&Vec<u8>> = got.iter().filter(|d| sent.contains(d)).collect();
        assert!(order.windows(2).any(|w| w[0] > w[1]), "no reordering seen");
        drop(proxy);
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions() {
        let faults = Faults {
            loss: 0.3,
            duplicate: 0.3,
            reorder: 0.3,
            corrupt: 0.3,
            truncate: 0.3,
            ..Faults::NONE
        };
        let run = || {
            let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut worker = Worker {
                listen: UdpSocket::bind("127.0.0.1:0").unwrap(),
                server: sink.local_addr().unwrap(),
                config: ProxyConfig::symmetric(99, faults),
                rng: StdRng::seed_from_u64(99),
                shared: Arc::new(Shared {
                    stop: AtomicBool::new(false),
                    counts: Default::default(),
                    captured: Mutex::new(Vec::new()),
                    capture: 0,
                    upstreams: Mutex::new(HashMap::new()),
                }),
                clients: Vec::new(),
                queue: BinaryHeap::new(),
                held: HashMap::new(),
                order: 0,
                buf: Vec::new(),
            };
            let client: SocketAddr = "127.0.0.1:9".parse().unwrap();
            worker.upstream(client).unwrap();
            for i in 0..200u32 {
                worker.received(Direction::ToServer, client, i.to_be_bytes().to_vec());
            }
            let mut out = Vec::new();
            while let Some(due) = worker.queue.pop() {
                out.push(due.bytes);
            }
            (worker.counts(Direction::ToServer).snapshot(), out)
        };
        assert_eq!(run(), run());
    }
}
