//! End to end over real UDP on 127.0.0.1: core's `Relay` on a std socket in a thread
//! stands in for `host-chat server`; another member is a core `Client` on its own
//! socket. The device runs its smoltcp stack over the user-space bridge, first as a
//! library, then as the `firmware-sim` binary.

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClientState, GoneSlot, HistoryEntry, MemberSlot,
    PresenceEntry, Relay, RelayConfig, RelayStorage, RoomSlot,
};
use chat_core::time::{Instant, WallClock};
use firmware_sim::bridge::UdpBridge;
use firmware_sim::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
use firmware_sim::{
    App, Behaviour, Buffers, Metadata, NetConfig, Node, Output, Payload, Report, Script, TEXT_LEN,
    What,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const OTHER_KEY: &str = "JR9o3RxQ6FxBw4lf7l7Bv3zWZKwzlHYFvNvGrQyEYmk=";
/// Every test is over well before this.
const DEADLINE: Duration = Duration::from_secs(20);

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A stand-in for `host-chat server`: core's relay on 127.0.0.1, an ephemeral port.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(key: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let key = Key::from_base64(key).unwrap();
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            let start = std::time::Instant::now();
            let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
            // A small relay in fixed arrays, as a device could run one: 8 members, 2
            // rooms of 16 messages.
            let mut members = [MemberSlot::EMPTY; 8];
            let mut gone = [GoneSlot::EMPTY; 8];
            let mut rooms = [RoomSlot::EMPTY; 2];
            let mut history = [HistoryEntry::EMPTY; 2 * 16];
            let mut history_bytes = [0u8; 2 * 4096];
            let mut presence = [PresenceEntry::EMPTY; 2 * 8];
            let mut relay: Relay<'_, SocketAddr, StdRng, 0> = Relay::new(
                RelayConfig::default(),
                KeyRing::new(key),
                StdRng::seed_from_u64(7),
                WallClock::synced(now(), unix_millis()),
                RelayStorage {
                    members: &mut members,
                    gone: &mut gone,
                    rooms: &mut rooms,
                    history: &mut history,
                    history_bytes: &mut history_bytes,
                    presence: &mut presence,
                },
            )
            .expect("consistent storage");
            let mut buf = [0u8; 2048];
            while !stopping.load(Ordering::Relaxed) {
                let wait = relay
                    .poll_timeout()
                    .map(|at| at.millis().saturating_sub(now().millis()))
                    .unwrap_or(20)
                    .clamp(1, 20);
                socket
                    .set_read_timeout(Some(Duration::from_millis(wait)))
                    .unwrap();
                if let Ok((len, from)) = socket.recv_from(&mut buf) {
                    let _ = relay.handle_datagram(now(), from, &mut buf[..len]);
                }
                relay.handle_timeout(now());
                while let Some((to, len)) = relay.poll_transmit(now(), &mut buf) {
                    let _ = socket.send_to(&buf[..len], to);
                }
                while relay.poll_event().is_some() {}
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Another member of the room: a core client with a real clock on its own socket.
struct Peer {
    socket: UdpSocket,
    client: Client<StdRng, 0, 1024, 8, 32>,
    start: std::time::Instant,
    events: Vec<ClientEvent<1024>>,
}

impl Peer {
    fn join(nick: &str, server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(server).unwrap();
        socket.set_nonblocking(true).unwrap();
        let start = std::time::Instant::now();
        let client = Client::new(
            &ClientConfig::new(nick, "lobby"),
            KeyRing::new(Key::from_base64(KEY).unwrap()),
            StdRng::seed_from_u64(99),
            WallClock::synced(Instant::from_millis(0), unix_millis()),
            Instant::from_millis(0),
        )
        .unwrap();
        Self {
            socket,
            client,
            start,
            events: Vec::new(),
        }
    }

    fn step(&mut self) {
        let now = Instant::from_millis(self.start.elapsed().as_millis() as u64);
        let mut buf = [0u8; 2048];
        while let Ok(len) = self.socket.recv(&mut buf) {
            let _ = self.client.handle_datagram(now, &mut buf[..len]);
        }
        if self.client.poll_timeout().is_some_and(|at| at <= now) {
            self.client.handle_timeout(now);
        }
        while let Some(len) = self.client.poll_transmit(now, &mut buf) {
            let _ = self.socket.send(&buf[..len]);
        }
        while let Some(event) = self.client.poll_event() {
            self.events.push(event);
        }
    }

    /// Room lines from members (not notices), as "nick: text", with their seq.
    fn lines(&self) -> Vec<(u64, String)> {
        messages(&self.events)
    }

    /// Lets the room settle without a time window: once the peer's own lines have their
    /// answers, it says `marker` and waits until it and `shown` (another member's view,
    /// driven by `step`) both show it. The relay takes its socket's datagrams in order
    /// and every member shows the room's messages in room order, gapless, so whatever
    /// the relay made of datagrams sent before this (a duplicate room message included)
    /// has been shown before the marker. Bounded by [`DEADLINE`], a bound on a hang.
    fn settle(&mut self, marker: &str, mut step: impl FnMut(), shown: impl Fn(&str) -> bool) {
        let end = std::time::Instant::now() + DEADLINE;
        let line = format!("{}: {marker}", self.client.nick());
        let mut said = false;
        loop {
            step();
            self.step();
            if !said && self.client.unacknowledged() == 0 {
                self.client.send(marker).unwrap();
                said = true;
            }
            if said && self.lines().iter().any(|(_, l)| *l == line) && shown(&line) {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "the marker {marker:?} did not come round: {:#?}",
                self.events
            );
            thread::sleep(Duration::from_millis(2));
        }
    }
}

fn messages<const N: usize>(events: &[ClientEvent<N>]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Message {
                seq, nick, text, ..
            } => Some((*seq, format!("{nick}: {text}"))),
            _ => None,
        })
        .collect()
}

fn seqs<const N: usize>(events: &[ClientEvent<N>]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Message { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

/// What the device reported.
#[derive(Default)]
struct Seen {
    /// Chat events, with the device clock when they came.
    events: Vec<(u64, ClientEvent<TEXT_LEN>)>,
    /// Lines handed to the client: (id, text).
    sent: Vec<(u32, String)>,
}

impl Output for Seen {
    fn report(&mut self, report: &Report<'_>) {
        match report.what {
            What::Event(event) => self.events.push((report.device_ms, event.clone())),
            What::Sent { id, text } => self.sent.push((id, text.to_owned())),
            other => panic!("unexpected report {other:?}"),
        }
    }
}

/// The device over the bridge to `server`, its clock from zero.
fn device_app<'a, L: firmware_sim::Lines>(
    server: SocketAddr,
    behaviour: Behaviour<'a>,
    lines: L,
    buffers: Buffers<'a>,
) -> App<'a, UdpBridge, impl firmware_sim::Clock, StdRng, L> {
    let device_ip = Ipv4Address::new(10, 42, 0, 2);
    let virtual_server = IpEndpoint::new(IpAddress::v4(10, 42, 0, 1), server.port());
    let bridge = UdpBridge::new(server, device_ip, virtual_server, 1500).unwrap();
    let net = NetConfig {
        address: Ipv4Cidr::new(device_ip, 24),
        gateway: None,
        local_port: 0,
        server: virtual_server,
    };
    let boot = std::time::Instant::now();
    let clock = move || boot.elapsed().as_millis() as u64;
    let node = Node::new(
        &ClientConfig::new("sensor", "lobby"),
        Key::from_base64(KEY).unwrap(),
        StdRng::seed_from_u64(2),
        clock(),
        behaviour,
        lines,
    )
    .unwrap();
    App::new(node, &net, 2, bridge, clock, buffers).unwrap()
}

/// A device told to leave when done sends its script (more lines than its outbox
/// holds), waits for every answer, leaves and finishes `done`; every line given was
/// delivered, once.
#[test]
fn device_app_leaves_once_every_line_is_answered() {
    let server = Server::start(KEY);
    let mut peer = Peer::join("alice", server.addr);
    let end = std::time::Instant::now() + DEADLINE;
    while peer.client.state() != ClientState::Joined && std::time::Instant::now() < end {
        peer.step();
        thread::sleep(Duration::from_millis(5));
    }
    let mut metadata = Metadata::new();
    let mut payload = Payload::new();
    let script = ["one", "two", "three", "four", "five"];
    let behaviour = Behaviour {
        leave_when_done: Some(firmware_sim::GRACE_MS),
        ..Behaviour::default()
    };
    let buffers = Buffers {
        metadata: &mut metadata,
        payload: &mut payload,
    };
    let mut app = device_app(server.addr, behaviour, Script::new(&script), buffers);
    let mut reports = Vec::new();
    let mut out = |report: &Report<'_>| reports.push(report.json().to_string());
    while app.node().finished().is_none() && std::time::Instant::now() < end {
        app.poll(&mut out);
        peer.step();
        let now = app.now();
        let wake = app.poll_at().unwrap_or(now + 10).min(now + 10);
        app.device_mut()
            .wait(Duration::from_millis(wake.saturating_sub(now)))
            .unwrap();
    }
    let outcome = app.node().outcome().expect("finished");
    assert_eq!(outcome.finish, firmware_sim::Finish::Done, "{reports:#?}");
    assert_eq!(
        (
            outcome.joined,
            outcome.given,
            outcome.delivered,
            outcome.undelivered
        ),
        (true, 5, 5, 0),
        "{reports:#?}"
    );
    assert!(outcome.is_success());
    let exit: Value = serde_json::from_str(reports.last().unwrap()).unwrap();
    assert_eq!(exit["event"], "exit");
    assert_eq!(exit["reason"], "done");
    assert!(exit.get("error").is_none(), "{exit}");
    // The room got each line once, in order: everything the device sent (it has left)
    // was relayed before the peer's marker.
    peer.settle("marker", || {}, |_| true);
    let got: Vec<String> = peer.lines().into_iter().map(|(_, line)| line).collect();
    let mut expected: Vec<String> = script.iter().map(|l| format!("sensor: {l}")).collect();
    expected.push("alice: marker".to_owned());
    assert_eq!(got, expected);
}

#[test]
fn device_app_over_the_bridge_joins_sends_and_receives() {
    let server = Server::start(KEY);
    let mut peer = Peer::join("alice", server.addr);

    let device_ip = Ipv4Address::new(10, 42, 0, 2);
    let virtual_server = IpEndpoint::new(IpAddress::v4(10, 42, 0, 1), server.addr.port());
    let bridge = UdpBridge::new(server.addr, device_ip, virtual_server, 1500).unwrap();
    let net = NetConfig {
        address: Ipv4Cidr::new(device_ip, 24),
        gateway: None,
        local_port: 0,
        server: virtual_server,
    };
    // The device's clock starts at zero, like a board without an RTC.
    let boot = std::time::Instant::now();
    let clock = move || boot.elapsed().as_millis() as u64;
    let mut metadata = Metadata::new();
    let mut payload = Payload::new();
    let script = ["temp 21.5 C"];
    let node = Node::new(
        &ClientConfig::new("sensor", "lobby"),
        Key::from_base64(KEY).unwrap(),
        StdRng::seed_from_u64(1),
        clock(),
        Behaviour::default(),
        Script::new(&script),
    )
    .unwrap();
    let mut app = App::new(
        node,
        &net,
        1,
        bridge,
        clock,
        Buffers {
            metadata: &mut metadata,
            payload: &mut payload,
        },
    )
    .unwrap();
    assert_eq!(app.node().state(), ClientState::SyncingClock);
    assert!(app.now() < 1000, "the device clock starts at zero");

    let mut out = Seen::default();
    let mut said_hello = false;
    let done = |events: &[(u64, ClientEvent<TEXT_LEN>)], peer: &Peer| {
        let device: Vec<_> = events.iter().map(|(_, e)| e.clone()).collect();
        messages(&device)
            .iter()
            .any(|(_, line)| line == "alice: hello device")
            && device
                .iter()
                .any(|e| matches!(e, ClientEvent::Delivered { id: 1, .. }))
            && peer
                .lines()
                .iter()
                .any(|(_, line)| line == "sensor: temp 21.5 C")
    };
    loop {
        app.poll(&mut out);
        if boot.elapsed() >= DEADLINE || done(&out.events, &peer) {
            break;
        }
        peer.step();
        if !said_hello
            && app.node().state() == ClientState::Joined
            && peer.client.state() == ClientState::Joined
        {
            peer.client.send("hello device").unwrap();
            said_hello = true;
        }
        let now = app.now();
        let wake = app.poll_at().unwrap_or(now + 10).min(now + 10);
        app.device_mut()
            .wait(Duration::from_millis(wake.saturating_sub(now)))
            .unwrap();
    }
    assert!(
        done(&out.events, &peer),
        "device events: {:#?}\npeer: {:#?}",
        out.events,
        peer.events
    );
    // Until a marker from the peer has come round to both: any duplicate of what came
    // before it would have been shown by then.
    let marker = "marker";
    let device_shown = std::cell::RefCell::new(Vec::new());
    peer.settle(
        marker,
        || {
            app.poll(&mut out);
            device_shown.replace(messages(
                &out.events
                    .iter()
                    .map(|(_, e)| e.clone())
                    .collect::<Vec<_>>(),
            ));
            app.device_mut().wait(Duration::from_millis(1)).unwrap();
        },
        |line| device_shown.borrow().iter().any(|(_, l)| l == line),
    );
    let Seen { events, sent } = out;

    // The clock came from the server's pong, first; then the join.
    let device: Vec<_> = events.iter().map(|(_, e)| e.clone()).collect();
    let (synced_at, unix) = events
        .iter()
        .find_map(|(at, e)| match e {
            ClientEvent::ClockSynced { unix_secs } => Some((*at, *unix_secs)),
            _ => None,
        })
        .expect("clock synced");
    // The device's own clock (from zero at boot), not the time it learnt.
    let since_boot = boot.elapsed().as_millis() as u64;
    assert!(synced_at <= since_boot, "synced at device ms {synced_at}");
    assert!(unix.abs_diff(unix_millis() / 1000) <= 30);
    let clock_first = device
        .iter()
        .position(|e| matches!(e, ClientEvent::ClockSynced { .. }));
    let joined = device
        .iter()
        .position(|e| matches!(e, ClientEvent::Joined { .. }));
    assert!(clock_first < joined, "{device:#?}");
    // The device took the Pong's stamp (whole seconds) plus half a second when it came:
    // it is off by at most half a second plus the Pong's trip, which took less than the
    // device's time from boot to the sync; a second more for each side's rounding to
    // whole seconds. (A loaded machine makes the trip longer, and the bound with it.)
    let now = app.now();
    let device_unix = app.node().unix_secs(now).unwrap();
    let bound = 2 + synced_at.div_ceil(1000);
    assert!(
        device_unix.abs_diff(unix_millis() / 1000) <= bound,
        "device time {device_unix}, off by more than {bound} s"
    );

    // Exactly once, in room order, on both sides.
    let lines = messages(&device);
    for line in ["sensor: temp 21.5 C", "alice: hello device"] {
        assert_eq!(
            lines.iter().filter(|(_, l)| l == line).count(),
            1,
            "{line}: {lines:?}"
        );
    }
    let seqs_seen = seqs(&device);
    assert!(seqs_seen.windows(2).all(|w| w[0] < w[1]), "{seqs_seen:?}");
    let peer_lines = peer.lines();
    assert_eq!(
        peer_lines
            .iter()
            .filter(|(_, l)| l == "sensor: temp 21.5 C")
            .count(),
        1,
        "{peer_lines:?}"
    );
    let peer_seqs = seqs(&peer.events);
    assert!(peer_seqs.windows(2).all(|w| w[0] < w[1]), "{peer_seqs:?}");
    assert_eq!(sent, [(1, "temp 21.5 C".to_owned())]);
    assert_eq!(app.node().stats().send_failed, 0);
    assert_eq!(app.device().stats().dropped_out, 0);
}

/// The `firmware-sim` binary with `--json`, its standard output read line by line.
struct Sim {
    child: Child,
    lines: Receiver<Value>,
    stderr: Receiver<String>,
}

impl Sim {
    fn start(args: &[&str], key: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
            .args(args)
            .env("HOST_CHAT_KEY", key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// Events until one matches, the peer stepping meanwhile.
    fn until(
        &mut self,
        seen: &mut Vec<Value>,
        mut peer: Option<&mut Peer>,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Value {
        let end = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < end {
            if let Some(peer) = peer.as_deref_mut() {
                peer.step();
            }
            if let Ok(value) = self.lines.recv_timeout(Duration::from_millis(10)) {
                seen.push(value.clone());
                if done(&value) {
                    return value;
                }
            }
        }
        panic!("timed out; events so far: {seen:#?}");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(event: &str) -> impl Fn(&Value) -> bool + '_ {
    move |value| value["event"] == event
}

#[test]
fn firmware_sim_binary_chats_in_json() {
    let server = Server::start(KEY);
    let mut peer = Peer::join("alice", server.addr);
    let addr = server.addr.to_string();
    let spawned = std::time::Instant::now();
    let mut sim = Sim::start(&["--nick", "sensor", "--server", &addr, "--json"], KEY);
    let mut seen = Vec::new();

    let synced = sim.until(&mut seen, Some(&mut peer), is("clock_synced"));
    // The device's own clock, from zero when the process started.
    let device_ms = synced["device_ms"].as_u64().unwrap();
    assert!(
        device_ms <= spawned.elapsed().as_millis() as u64,
        "{synced}"
    );
    let unix = synced["unix"].as_u64().unwrap();
    assert!(unix.abs_diff(unix_millis() / 1000) <= 30, "{synced}");
    sim.until(&mut seen, Some(&mut peer), is("joined"));

    let stdin = sim.child.stdin.as_mut().unwrap();
    writeln!(stdin, "reading 1: 21.5 C").unwrap();
    stdin.flush().unwrap();
    let sent = sim.until(&mut seen, Some(&mut peer), is("sent"));
    assert_eq!(sent["text"], "reading 1: 21.5 C");
    let id = sent["id"].clone();
    let delivered = sim.until(&mut seen, Some(&mut peer), |v| {
        v["event"] == "delivered" && v["id"] == id
    });
    assert!(delivered["seq"].is_u64(), "{delivered}");

    while peer.client.state() != ClientState::Joined {
        peer.step();
        thread::sleep(Duration::from_millis(5));
    }
    peer.client.send("hello sensor").unwrap();
    let message = sim.until(&mut seen, Some(&mut peer), |v| {
        v["event"] == "message" && v["nick"] == "alice"
    });
    assert_eq!(message["text"], "hello sensor");
    assert!(
        message["time"]
            .as_u64()
            .unwrap()
            .abs_diff(unix_millis() / 1000)
            <= 30,
        "{message}"
    );

    // End of input: the simulator leaves and exits.
    drop(sim.child.stdin.take());
    sim.until(&mut seen, Some(&mut peer), is("closed"));
    let end = std::time::Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = sim.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < end, "firmware-sim did not exit");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    while let Ok(value) = sim.lines.try_recv() {
        seen.push(value);
    }

    // Exactly once, in order.
    let texts: Vec<(u64, String)> = seen
        .iter()
        .filter(|v| v["event"] == "message")
        .map(|v| {
            (
                v["seq"].as_u64().unwrap(),
                format!(
                    "{}: {}",
                    v["nick"].as_str().unwrap(),
                    v["text"].as_str().unwrap()
                ),
            )
        })
        .collect();
    for line in ["sensor: reading 1: 21.5 C", "alice: hello sensor"] {
        assert_eq!(
            texts.iter().filter(|(_, l)| l == line).count(),
            1,
            "{texts:?}"
        );
    }
    assert!(texts.windows(2).all(|w| w[0].0 < w[1].0), "{texts:?}");
    let peer_lines = peer.lines();
    assert_eq!(
        peer_lines
            .iter()
            .filter(|(_, l)| l == "sensor: reading 1: 21.5 C")
            .count(),
        1,
        "{peer_lines:?}"
    );
}

/// A server that never answers (another key): at the end of input the simulator waits
/// out its grace, reports the line undelivered, and exits 1 saying it never joined.
#[test]
fn never_joined_exits_1_naming_each_line() {
    let server = Server::start(OTHER_KEY);
    let addr = server.addr.to_string();
    let mut sim = Sim::start(&["--nick", "sensor", "--server", &addr, "--json"], KEY);
    let stdin = sim.child.stdin.as_mut().unwrap();
    writeln!(stdin, "lost reading").unwrap();
    drop(sim.child.stdin.take());
    let mut seen = Vec::new();
    let undelivered = sim.until(&mut seen, None, is("undelivered"));
    assert_eq!(undelivered["text"], "lost reading", "{undelivered}");
    let exit = sim.until(&mut seen, None, is("exit"));
    assert_eq!(exit["reason"], "gave_up", "{exit}");
    assert_eq!(exit["given"], 1, "{exit}");
    assert_eq!(exit["undelivered"], 1, "{exit}");
    let status = sim.child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen:#?}");
    // It has exited, but its last lines may still be on their way from the reader thread:
    // read until its stderr closes.
    let errors: Vec<String> =
        std::iter::from_fn(|| sim.stderr.recv_timeout(Duration::from_secs(5)).ok()).collect();
    assert_eq!(
        errors.last().map(String::as_str),
        Some("firmware-sim: never joined room lobby: no answer from the server"),
        "{errors:#?}"
    );
}

#[test]
fn wrong_key_gets_the_no_answer_line() {
    let server = Server::start(OTHER_KEY);
    let addr = server.addr.to_string();
    let sim = Sim::start(&["--nick", "sensor", "--server", &addr], KEY);
    let expected = format!(
        "no answer from {addr} within 3 s: is `host-chat server` running there, with the same key?"
    );
    let line = sim
        .stderr
        .recv_timeout(DEADLINE)
        .expect("a line on standard error");
    assert_eq!(line, expected);
}

#[test]
fn periodic_readings_go_out() {
    let server = Server::start(KEY);
    let mut peer = Peer::join("alice", server.addr);
    let addr = server.addr.to_string();
    let mut sim = Sim::start(
        &[
            "--nick",
            "sensor",
            "--server",
            &addr,
            "--json",
            "--every",
            "0.2",
            "reading {N}",
        ],
        KEY,
    );
    let mut seen = Vec::new();
    for n in 1..=3 {
        let text = format!("reading {n}");
        sim.until(&mut seen, Some(&mut peer), |v| {
            v["event"] == "message" && v["nick"] == "sensor" && v["text"] == text.as_str()
        });
    }
}
