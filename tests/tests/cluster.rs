//! Rooms across several servers through a real NATS JetStream (`server --cluster`), end to
//! end: every test starts its own `nats-server -js` on a free port of 127.0.0.1 with a
//! store in a temporary directory, its own `host-chat server`s and clients, and stops
//! every process by PID. Without `nats-server` the tests are ignored (CI sets them all).
//!
//! - three servers, members spread over them, lines from several: every member sees the
//!   same sequence of (seq, line);
//! - `kill -9` of a server mid-stream: its members (given two servers) move to the other
//!   and end with every line once, in order; the restarted server continues the
//!   numbering;
//! - nats-server stopped for 5 s mid-stream and restarted with its store: nothing lost,
//!   nothing twice.

use e2e_tests::{Running, TempDir, host_chat, signal};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
/// The longest any test waits for its lines to reach everyone.
const SETTLE: Duration = Duration::from_secs(90);

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port()
}

/// A `nats-server -js` of our own, stopped (by PID) on drop.
struct Nats {
    process: Option<Running>,
    port: u16,
    store: TempDir,
}

impl Nats {
    fn start() -> Self {
        let store = TempDir::new("nats");
        let mut nats = Self {
            process: None,
            port: free_tcp_port(),
            store,
        };
        nats.restart();
        nats
    }

    /// Starts it (again) on the same port with the same store.
    fn restart(&mut self) {
        let mut cmd = Command::new("nats-server");
        cmd.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-sd",
        ])
        .arg(self.store.path());
        let process = Running::spawn("nats-server", &mut cmd);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {} within 15 s:\n{}",
                self.port,
                process.report()
            );
            thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(process);
    }

    /// Stops it (SIGTERM, then SIGKILL if it lingers) and waits for it to be gone.
    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            signal(process.pid(), "TERM");
            if process.wait_exit(Duration::from_secs(10)).is_none() {
                process.kill();
            }
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `host-chat server --cluster` on a port of its own (kept across restarts).
struct Server {
    process: Option<Running>,
    addr: SocketAddr,
    cluster: String,
}

impl Server {
    fn start(nats: &Nats) -> Self {
        let mut server = Self {
            process: None,
            addr: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            cluster: nats.url(),
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let mut cmd = host_chat();
        cmd.args(["server", "--bind", &self.addr.to_string(), "--print-port"])
            .args(["--cluster", &self.cluster, "--stats", "1"])
            .env("HOST_CHAT_KEY", KEY);
        let mut process = Running::spawn("server", &mut cmd);
        process.wait_for(Duration::from_secs(20), |_| true);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !process.stderr_text().contains("connected to the broker") {
            assert!(Instant::now() < deadline, "{}", process.report());
            thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(process);
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            signal(process.pid(), "KILL");
            let _ = process.wait_exit(Duration::from_secs(5));
        }
    }

    fn log(&self) -> String {
        self.process
            .as_ref()
            .map(Running::stderr_text)
            .unwrap_or_default()
    }
}

/// A `host-chat client --json` and everything it reported.
struct Member {
    nick: String,
    process: Running,
    /// Room messages: (seq, "nick: text").
    messages: Vec<(u64, String)>,
    /// Our lines' outcomes: id → seq.
    delivered: BTreeMap<u64, u64>,
    /// Our lines, in the order given.
    sent: Vec<String>,
    events: Vec<Value>,
}

impl Member {
    fn join(nick: &str, servers: &[&Server]) -> Self {
        let list: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
        let mut cmd = host_chat();
        cmd.args(["client", "--json", "--nick", nick, &list.join(",")])
            .env("HOST_CHAT_KEY", KEY);
        let mut process = Running::spawn(nick, &mut cmd);
        let joined = process.wait_event(Duration::from_secs(20), "joined");
        Self {
            nick: nick.to_owned(),
            process,
            messages: Vec::new(),
            delivered: BTreeMap::new(),
            sent: Vec::new(),
            events: vec![joined],
        }
    }

    fn say(&mut self, text: &str) {
        self.sent.push(text.to_owned());
        self.process.send_line(text);
    }

    /// Takes what it printed so far.
    fn pump(&mut self) {
        while let Some(line) = self.process.next_line(Duration::from_millis(1)) {
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match event["event"].as_str() {
                Some("message") => self.messages.push((
                    event["seq"].as_u64().unwrap(),
                    format!(
                        "{}: {}",
                        event["nick"].as_str().unwrap(),
                        event["text"].as_str().unwrap()
                    ),
                )),
                Some("delivered") => {
                    let id = event["id"].as_u64().unwrap();
                    let seq = event["seq"].as_u64().unwrap();
                    assert!(
                        self.delivered.insert(id, seq).is_none(),
                        "{}: two outcomes for line {id}",
                        self.nick
                    );
                }
                Some("undelivered" | "refused") => {
                    panic!("{}: a line did not reach the room: {event}", self.nick)
                }
                _ => {}
            }
            self.events.push(event);
        }
    }

    fn has(&self, event: &str) -> bool {
        self.events.iter().any(|e| e["event"] == event)
    }
}

/// Pumps every member until each has `total` room messages and every own line its
/// outcome (at most [`SETTLE`]).
fn settle(members: &mut [Member], total: usize, servers: &[&Server]) {
    let deadline = Instant::now() + SETTLE;
    loop {
        for m in members.iter_mut() {
            m.pump();
        }
        if members
            .iter()
            .all(|m| m.messages.len() >= total && m.delivered.len() == m.sent.len())
        {
            return;
        }
        if Instant::now() > deadline {
            let state: Vec<String> = members
                .iter()
                .map(|m| {
                    format!(
                        "{}: {} messages, {}/{} answered\n{}",
                        m.nick,
                        m.messages.len(),
                        m.delivered.len(),
                        m.sent.len(),
                        m.process.report()
                    )
                })
                .collect();
            let logs: Vec<String> = servers.iter().map(|s| s.log()).collect();
            panic!(
                "not settled within {SETTLE:?}:\n{}\n--- servers:\n{}",
                state.join("\n"),
                logs.join("\n---\n")
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Every member saw the same (seq, line) sequence from `first`, contiguous, each line
/// given exactly once, each sender's lines in its order and at the seq its outcome said.
fn assert_one_room(members: &[Member], first: u64) {
    let reference = &members[0].messages;
    let seqs: Vec<u64> = reference.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "contiguous, in order, once");
    for m in members {
        assert_eq!(&m.messages, reference, "{} saw another room", m.nick);
    }
    let by_seq: BTreeMap<u64, &str> = reference.iter().map(|(s, t)| (*s, t.as_str())).collect();
    let mut given = 0;
    for m in members {
        let mut last = 0;
        for (i, text) in m.sent.iter().enumerate() {
            let seq = m.delivered[&(i as u64 + 1)];
            assert_eq!(
                by_seq[&seq],
                format!("{}: {text}", m.nick),
                "{}'s line {}",
                m.nick,
                i + 1
            );
            assert!(seq > last, "{}'s lines in its order", m.nick);
            last = seq;
            given += 1;
        }
    }
    assert_eq!(given, reference.len(), "nothing else reached the room");
    let distinct: BTreeSet<&str> = reference.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(distinct.len(), reference.len(), "no line twice");
}

#[test]
#[cfg_attr(
    not(have_nats_server),
    ignore = "needs nats-server (apt-get install nats-server)"
)]
fn three_servers_deliver_one_sequence_to_members_spread_over_them() {
    let nats = Nats::start();
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&nats)).collect();
    let nicks = ["ann", "bob", "cid", "dan", "eve", "fay"];
    let mut members: Vec<Member> = nicks
        .iter()
        .enumerate()
        .map(|(i, nick)| Member::join(nick, &[&servers[i % 3]]))
        .collect();
    // Everyone counts everyone before the first line.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for m in members.iter_mut() {
            m.pump();
        }
        let counted = members.iter().all(|m| {
            m.events
                .iter()
                .rev()
                .find_map(|e| e["members"].as_u64())
                .is_some_and(|n| n == 6)
        });
        if counted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "presence did not span the servers: {:?}",
            members
                .iter()
                .map(|m| (m.nick.clone(), m.events.clone()))
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(20));
    }
    for round in 0..20 {
        for m in members.iter_mut().take(4) {
            let text = format!("{} says {round}", m.nick);
            m.say(&text);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let refs: Vec<&Server> = servers.iter().collect();
    settle(&mut members, 80, &refs);
    assert_one_room(&members, 1);
}

#[test]
#[cfg_attr(
    not(have_nats_server),
    ignore = "needs nats-server (apt-get install nats-server)"
)]
fn members_of_a_killed_server_fail_over_and_the_restarted_one_continues_the_numbering() {
    let nats = Nats::start();
    let mut a = Server::start(&nats);
    let b = Server::start(&nats);
    let mut members = vec![
        Member::join("ann", &[&a, &b]),
        Member::join("cid", &[&a, &b]),
        Member::join("bob", &[&b]),
    ];
    thread::sleep(Duration::from_millis(500));
    for round in 0..30 {
        if round == 12 {
            a.kill();
        }
        for i in [0, 2] {
            let text = format!("{} {round}", members[i].nick);
            members[i].say(&text);
        }
        thread::sleep(Duration::from_millis(40));
    }
    settle(&mut members, 60, &[&b]);
    assert_one_room(&members, 1);
    for m in &members[..2] {
        assert!(m.has("failover"), "{} moved to the other server", m.nick);
    }
    // The restarted server continues the numbering: a line said there is #61.
    a.restart();
    let mut dan = Member::join("dan", &[&a]);
    dan.say("after the restart");
    let deadline = Instant::now() + SETTLE;
    while dan.delivered.is_empty() {
        dan.pump();
        assert!(Instant::now() < deadline, "{}", dan.process.report());
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dan.delivered[&1], 61, "{}", a.log());
    let mut all = members;
    all.push(dan);
    let deadline = Instant::now() + SETTLE;
    loop {
        for m in all.iter_mut() {
            m.pump();
        }
        if all[..3].iter().all(|m| m.messages.len() == 61) && all[3].messages.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "line 61 did not reach everyone");
        thread::sleep(Duration::from_millis(20));
    }
    for m in &all {
        assert_eq!(
            m.messages.last().unwrap(),
            &(61, "dan: after the restart".to_owned())
        );
    }
}

#[test]
#[cfg_attr(
    not(have_nats_server),
    ignore = "needs nats-server (apt-get install nats-server)"
)]
fn a_broker_stopped_for_five_seconds_loses_nothing_and_repeats_nothing() {
    let mut nats = Nats::start();
    let a = Server::start(&nats);
    let b = Server::start(&nats);
    let mut members = vec![Member::join("ann", &[&a]), Member::join("bob", &[&b])];
    thread::sleep(Duration::from_millis(500));
    let mut stopped_at = None;
    for round in 0..40 {
        if round == 10 {
            nats.stop();
            stopped_at = Some(Instant::now());
        }
        if round == 30 {
            // 20 rounds of 250 ms: 5 s without the broker.
            nats.restart();
        }
        for m in members.iter_mut() {
            let text = format!("{} {round}", m.nick);
            m.say(&text);
        }
        thread::sleep(Duration::from_millis(250));
        for m in members.iter_mut() {
            m.pump();
        }
    }
    assert!(stopped_at.is_some_and(|at| at.elapsed() >= Duration::from_secs(5)));
    settle(&mut members, 80, &[&a, &b]);
    assert_one_room(&members, 1);
    for server in [&a, &b] {
        let log = server.log();
        assert!(log.contains("the broker is unreachable"), "{log}");
        assert!(log.contains("the broker is back after"), "{log}");
        assert!(log.contains("outages=1"), "--stats shows it: {log}");
    }
}
