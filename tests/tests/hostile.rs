//! The chat on a hostile network: the real `host-chat server` and `client` on 127.0.0.1,
//! through the fault-injecting proxy (`e2e_tests::proxy`), and raw sockets that replay,
//! forge and flood.
//!
//! What is asserted is content (who saw which message, what the server counted, what a
//! raw socket got back), never timing: every wait has a generous deadline, every fault
//! comes from a fixed seed, and every child is killed when its guard drops. The flood
//! test runs alone (it takes a write lock the others share), so it does not starve them.

use chat_core::fernet::{Key, plaintext_buf_len, token_len};
use chat_core::wire::{Body, Repr};
use e2e_tests::proxy::{Direction, Faults, Proxy, ProxyConfig};
use e2e_tests::{ChatServer, Running, SplitMix, host_chat, is_message, vm_rss_kib};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Bound for anything that takes milliseconds on a clean loopback.
const QUICK: Duration = Duration::from_secs(10);
/// Bound for anything that goes through a lossy network (retransmissions back off to
/// 4 s).
const SLOW: Duration = Duration::from_secs(45);
/// How long a raw socket listens for an answer that must not come, once the server's
/// stats show it has handled (and so answered, if it would) what was sent: the server
/// sends its answers before it counts, so a slow machine cannot make a silence pass.
const SILENCE: Duration = Duration::from_millis(600);
/// Resident memory the server may gain during an attack.
const RSS_SLACK_KIB: u64 = 4 * 1024;

// ---------------------------------------------------------------------------------------
// Running the binaries.

/// The flood test takes this for writing; every other test for reading.
static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|p| p.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    EXCLUSIVE.write().unwrap_or_else(|p| p.into_inner())
}

/// A running server and its address.
struct Server {
    process: Running,
    addr: SocketAddr,
}

impl Server {
    /// `host-chat server` on a free port of 127.0.0.1 with key K1 and `extra` options.
    fn start(extra: &[&str]) -> Self {
        let ChatServer { process, addr } = ChatServer::start(K1, extra);
        Self { process, addr }
    }

    /// Its resident memory, KiB (from /proc: the tests that call this are ignored
    /// off Linux, and fail here if /proc cannot tell).
    fn rss_kib(&self) -> u64 {
        vm_rss_kib(self.process.pid()).expect("VmRSS of the server in /proc/PID/status")
    }

    /// The last `--stats` line, parsed.
    fn stats(&self) -> Option<Stats> {
        self.process
            .stderr_text()
            .lines()
            .rev()
            .find_map(Stats::parse)
    }

    /// Waits (the server must run with `--stats 1`) for a stats line that satisfies
    /// `wanted`, and returns it.
    #[track_caller]
    fn wait_stats(&self, timeout: Duration, wanted: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if let Some(stats) = stats.as_ref().filter(|s| wanted(s)) {
                return stats.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the awaited stats did not come within {timeout:?}; last: {stats:?}\n{}",
                self.process.report()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The server's counters, from a line such as `stats: members=2 rooms=1 datagrams=40
/// relayed=3 ... missed=0 ... dropped: invalid_token=7 duplicate=2`.
#[derive(Clone, Debug, Default)]
struct Stats {
    members: u64,
    datagrams: u64,
    relayed: u64,
    missed: u64,
    dropped: HashMap<String, u64>,
}

impl Stats {
    fn parse(line: &str) -> Option<Self> {
        let rest = &line[line.find("stats: ")? + "stats: ".len()..];
        let (counts, dropped) = rest.split_once(" dropped: ")?;
        let pairs = |text: &str| -> HashMap<String, u64> {
            text.split_whitespace()
                .filter_map(|word| {
                    let (name, n) = word.split_once('=')?;
                    Some((name.to_owned(), n.parse().ok()?))
                })
                .collect()
        };
        let counts = pairs(counts);
        Some(Self {
            members: *counts.get("members")?,
            datagrams: *counts.get("datagrams")?,
            relayed: *counts.get("relayed")?,
            missed: *counts.get("missed")?,
            dropped: pairs(dropped),
        })
    }

    fn dropped(&self, reason: &str) -> u64 {
        self.dropped.get(reason).copied().unwrap_or(0)
    }
}

/// `host-chat client --json` for key K1.
fn client(server: SocketAddr, nick: &str) -> Running {
    let mut cmd = host_chat();
    cmd.args(["client", "--json", "--nick", nick])
        .arg(server.to_string())
        .env("HOST_CHAT_KEY", K1);
    Running::spawn(nick, &mut cmd)
}

fn joined_client(server: SocketAddr, nick: &str, timeout: Duration) -> Running {
    let mut client = client(server, nick);
    client.wait_event(timeout, "joined");
    client
}

/// What one client saw.
#[derive(Debug, Default)]
struct Transcript {
    /// Room messages (not notices): seq → (nick, text).
    messages: BTreeMap<u64, (String, String)>,
    /// Own lines: id → text.
    sent: BTreeMap<u64, String>,
    /// Receipts: id → seq (none when the server's own answer was lost and a later
    /// receipt covered the line).
    delivered: BTreeMap<u64, Option<u64>>,
    /// Gaps reported.
    missed: usize,
}

/// Reads `client`'s events until it has seen `messages` room messages and a receipt
/// for `own` lines of its own. Panics on a message or receipt seen twice, on messages
/// out of order, or at `deadline`.
#[track_caller]
fn collect(client: &mut Running, messages: usize, own: usize, deadline: Instant) -> Transcript {
    let mut t = Transcript::default();
    let mut last_seq = None;
    while t.messages.len() < messages || t.delivered.len() < own {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = client.next_line(left) else {
            panic!(
                "stopped short: {} of {messages} messages, {} of {own} receipts\n{}",
                t.messages.len(),
                t.delivered.len(),
                client.report()
            );
        };
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match value["event"].as_str() {
            Some("message") => {
                let seq = value["seq"].as_u64().expect("seq");
                let entry = (
                    value["nick"].as_str().expect("nick").to_owned(),
                    value["text"].as_str().expect("text").to_owned(),
                );
                assert!(
                    last_seq.is_none_or(|last| last < seq),
                    "#{seq} after #{last_seq:?}\n{}",
                    client.report()
                );
                last_seq = Some(seq);
                assert!(
                    t.messages.insert(seq, entry).is_none(),
                    "#{seq} shown twice\n{}",
                    client.report()
                );
            }
            Some("sent") => {
                let id = value["id"].as_u64().expect("id");
                t.sent
                    .insert(id, value["text"].as_str().expect("text").to_owned());
            }
            Some("delivered") => {
                let id = value["id"].as_u64().expect("id");
                assert!(
                    t.delivered.insert(id, value["seq"].as_u64()).is_none(),
                    "receipt for line {id} shown twice\n{}",
                    client.report()
                );
            }
            Some("missed") => t.missed += 1,
            _ => {}
        }
    }
    t
}

/// Three (or more) clients that all joined, each sends `lines` lines; checks that every
/// member saw every line exactly once, in one order, and got a receipt for each own line
/// that agrees with that order.
#[track_caller]
fn chat_and_check(clients: &mut [(Running, &str)], lines: usize, timeout: Duration) {
    for round in 0..lines {
        for (client, nick) in clients.iter_mut() {
            client.send_line(&format!("line {round} from {nick}"));
        }
    }
    let total = clients.len() * lines;
    let deadline = Instant::now() + timeout;
    let mut transcripts = Vec::new();
    for (client, nick) in clients.iter_mut() {
        let t = collect(client, total, lines, deadline);
        // Every own line got its receipt, and the receipt's number is the line's place.
        assert_eq!(
            t.delivered.keys().collect::<Vec<_>>(),
            t.sent.keys().collect::<Vec<_>>(),
            "{nick}: one receipt per line\n{}",
            client.report()
        );
        for (id, seq) in &t.delivered {
            if let Some(seq) = seq {
                assert_eq!(
                    t.messages.get(seq),
                    Some(&((*nick).to_owned(), t.sent[id].clone())),
                    "{nick}: line {id}'s receipt says #{seq}"
                );
            }
        }
        assert_eq!(t.missed, 0, "{nick} was told it missed messages");
        transcripts.push(t.messages);
    }
    for (t, (_, nick)) in transcripts.iter().zip(clients.iter()).skip(1) {
        assert_eq!(t, &transcripts[0], "{nick} saw another history");
    }
    // Each member's lines, in its own order.
    for (_, nick) in clients.iter() {
        let theirs: Vec<&str> = transcripts[0]
            .values()
            .filter(|(n, _)| n == nick)
            .map(|(_, text)| text.as_str())
            .collect();
        let expected: Vec<String> = (0..lines)
            .map(|r| format!("line {r} from {nick}"))
            .collect();
        assert_eq!(theirs, expected, "{nick}'s lines");
    }
}

// ---------------------------------------------------------------------------------------
// Raw tokens and frames.

fn key(text: &str) -> Key {
    Key::from_base64(text).expect("a valid key")
}

/// A token of `message` under `key`, stamped `timestamp`.
fn seal_at(key_text: &str, message: &[u8], timestamp: u64) -> Vec<u8> {
    let mut out = vec![0; token_len(message.len())];
    key(key_text)
        .encrypt(message, timestamp, &mut rand::rng(), &mut out)
        .expect("sealing")
        .as_bytes()
        .to_vec()
}

/// A token of `message` under `key`, now.
fn seal(key_text: &str, message: &[u8]) -> Vec<u8> {
    seal_at(key_text, message, e2e_tests::now())
}

/// The bytes of a frame.
fn frame(session: u64, body: Body<'_>) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let len = Repr { session, body }.emit(&mut buf).expect("emit");
    buf[..len].to_vec()
}

/// Opens a K1 token: its timestamp and plaintext.
fn open(token: &[u8]) -> Option<(u64, Vec<u8>)> {
    let mut out = vec![0; plaintext_buf_len(token.len())];
    let opened = key(K1).decrypt(token, None, &mut out).ok()?;
    Some((opened.timestamp, opened.plaintext.to_vec()))
}

/// The kind byte of a frame.
fn kind(plaintext: &[u8]) -> Option<u8> {
    match plaintext {
        [0xC1, kind, ..] => Some(*kind),
        _ => None,
    }
}

const WELCOME: u8 = 0x02;
const RECEIPT: u8 = 0x04;
const DELIVER: u8 = 0x05;
const PONG: u8 = 0x08;
const NOTICE: u8 = 0x0A;
const MISSED: u8 = 0x0B;
const PRESENCE: u8 = 0x11;

/// `(msg_id, seq)` of a Receipt frame.
fn receipt(plaintext: &[u8]) -> Option<(u32, u64)> {
    match Repr::parse(plaintext).ok()?.body {
        Body::Receipt { msg_id, seq, .. } => Some((msg_id, seq)),
        _ => None,
    }
}

/// A raw UDP socket speaking to the server.
struct Raw {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Raw {
    fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        Self { socket, server }
    }

    fn send(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.server).expect("send");
    }

    /// Every datagram that arrives within `window` (and from the server).
    fn receive_for(&self, window: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) if from == self.server => got.push(buf[..n].to_vec()),
                Ok(_) => {}
                Err(_) => return got,
            }
        }
    }

    /// The first datagram from the server within `timeout`.
    fn receive_one(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) if from == self.server => return Some(buf[..n].to_vec()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Sends a Join for `session` (retrying) until a Welcome comes; returns the token
    /// that was sent last.
    #[track_caller]
    fn join(&self, session: u64, nick: &str, room: &str) -> Vec<u8> {
        let deadline = Instant::now() + QUICK;
        while Instant::now() < deadline {
            let token = seal(
                K1,
                &frame(
                    session,
                    Body::Join {
                        version: chat_core::wire::VERSION,
                        nick,
                        room,
                        window: 16,
                        resume: None,
                    },
                ),
            );
            self.send(&token);
            let welcomed = self
                .receive_for(Duration::from_millis(500))
                .iter()
                .filter_map(|d| open(d))
                .any(|(_, plain)| kind(&plain) == Some(WELCOME));
            if welcomed {
                return token;
            }
        }
        panic!("{nick}: no Welcome");
    }
}

// ---------------------------------------------------------------------------------------
// Faults.

/// 20% loss, plus duplication, reordering and jitter, both ways: every member sees every
/// line once, in the same order, and every line is acknowledged.
#[test]
fn a_lossy_reordering_duplicating_network_loses_and_repeats_nothing() {
    let _guard = shared();
    let server = Server::start(&[]);
    let faults = Faults {
        loss: 0.2,
        duplicate: 0.15,
        reorder: 0.15,
        jitter: Duration::from_millis(3),
        ..Faults::NONE
    };
    let proxy =
        Proxy::start(server.addr, ProxyConfig::symmetric(0x5EED_0001, faults)).expect("proxy");
    let nicks = ["ann", "bob", "cy"];
    let mut clients: Vec<(Running, &str)> = nicks
        .iter()
        .map(|nick| (joined_client(proxy.addr(), nick, SLOW), *nick))
        .collect();
    chat_and_check(&mut clients, 10, SLOW);
    for direction in [Direction::ToServer, Direction::ToClient] {
        let c = proxy.counts(direction);
        assert!(
            c.lost > 0 && c.duplicated > 0 && c.reordered > 0 && c.delayed > 0,
            "{direction:?}: the faults were not real: {c:?}"
        );
    }
}

/// 20% of the datagrams corrupted (one bit flipped) and 20% truncated, both ways: the
/// server rejects them as invalid tokens, and retransmission still delivers everything.
#[test]
fn corrupted_and_truncated_datagrams_are_rejected_and_retransmission_wins() {
    let _guard = shared();
    let server = Server::start(&["--stats", "1"]);
    let faults = Faults {
        corrupt: 0.2,
        truncate: 0.2,
        ..Faults::NONE
    };
    let proxy =
        Proxy::start(server.addr, ProxyConfig::symmetric(0x5EED_0002, faults)).expect("proxy");
    let nicks = ["ann", "bob", "cy"];
    let mut clients: Vec<(Running, &str)> = nicks
        .iter()
        .map(|nick| (joined_client(proxy.addr(), nick, SLOW), *nick))
        .collect();
    chat_and_check(&mut clients, 6, SLOW);
    let up = proxy.counts(Direction::ToServer);
    assert!(up.corrupted > 0 && up.truncated > 0, "{up:?}");
    let down = proxy.counts(Direction::ToClient);
    assert!(down.corrupted > 0 && down.truncated > 0, "{down:?}");
    let stats = server.wait_stats(QUICK, |s| s.dropped("invalid_token") > 0);
    // Every damaged datagram that reached the server was refused unread (a truncated
    // datagram cut to nothing may be refused the same way).
    assert!(
        stats.dropped("invalid_token") >= (up.corrupted + up.truncated) / 2,
        "{stats:?} {up:?}"
    );
    assert_eq!(stats.dropped("malformed"), 0, "{stats:?}");
}

// ---------------------------------------------------------------------------------------
// Replay.

/// A chat token captured on the way, replayed from the sender's address and from
/// another one, within the TTL and after it: the line is never in the room twice, the
/// sender at most gets its receipt again, and the other address gets nothing.
///
/// The TTL is the default minute, so the replays are inside it however slow the machine
/// (the stats prove it: they are counted as duplicates, none as expired). "After the
/// TTL" is the same frame sealed with a timestamp older than the TTL: the server judges
/// only the timestamp, so that is what the captured token becomes once its TTL has
/// passed, and the test need not sleep through one.
#[test]
fn replayed_chat_tokens_are_never_delivered_twice() {
    let _guard = shared();
    let ttl = 60;
    let server = Server::start(&["--ttl", &ttl.to_string(), "--stats", "1"]);
    let config = ProxyConfig {
        capture: 10_000,
        ..ProxyConfig::symmetric(0x5EED_0003, Faults::NONE)
    };
    let proxy = Proxy::start(server.addr, config).expect("proxy");
    let mut ann = joined_client(proxy.addr(), "ann", QUICK);
    let mut bob = joined_client(server.addr, "bob", QUICK);

    ann.send_line("hello once");
    let delivered = ann.wait_event(QUICK, "delivered");
    let seq = delivered["seq"]
        .as_u64()
        .expect("a receipt with its number");
    let seen = bob.wait_for_json(QUICK, |v| is_message(v, "ann", "hello once"));
    assert_eq!(seen["seq"].as_u64(), Some(seq));

    // The token on the wire, and who sent it.
    let captured = proxy.captured();
    let (ann_addr, token, stamped, plain, msg_id) = captured
        .iter()
        .filter(|c| c.direction == Direction::ToServer)
        .find_map(|c| {
            let (stamped, plain) = open(&c.bytes)?;
            match Repr::parse(&plain).ok()?.body {
                Body::Chat {
                    msg_id,
                    text: "hello once",
                } => Some((c.client, c.bytes.clone(), stamped, plain.clone(), msg_id)),
                _ => None,
            }
        })
        .expect("ann's chat token went through the proxy");
    let receipts_to_ann = |proxy: &Proxy| {
        proxy
            .captured()
            .iter()
            .filter(|c| c.direction == Direction::ToClient && c.client == ann_addr)
            .filter_map(|c| open(&c.bytes))
            .filter_map(|(_, plain)| receipt(&plain))
            .filter(|r| *r == (msg_id, seq))
            .count()
    };
    let before = receipts_to_ann(&proxy);
    assert!(before >= 1);

    // Within the TTL, from ann's own address: the same receipt again, nothing new.
    let raw = Raw::new(server.addr);
    for _ in 0..3 {
        proxy.send_as(ann_addr, &token).expect("replay as ann");
    }
    // ... and from another address: nothing at all to that address.
    for _ in 0..3 {
        raw.send(&token);
    }
    // Once the server has counted all six, any answer to the raw socket has been sent.
    let inside = server.wait_stats(QUICK, |s| s.dropped("duplicate") >= 6);
    assert_eq!(inside.dropped("expired"), 0, "{inside:?}");
    let answers = raw.receive_for(SILENCE);
    for answer in &answers {
        let plain = open(answer).map(|(_, p)| p);
        assert_eq!(
            plain.as_deref().and_then(receipt),
            Some((msg_id, seq)),
            "a replay from elsewhere got something other than the same receipt"
        );
    }
    assert!(
        answers.is_empty(),
        "the receipt went to the replayer's address, not the member's: {} answers",
        answers.len()
    );
    let deadline = Instant::now() + QUICK;
    while receipts_to_ann(&proxy) == before {
        assert!(Instant::now() < deadline, "ann never got her receipt again");
        thread::sleep(Duration::from_millis(50));
    }

    // After the TTL, from both addresses: refused as expired, unanswered.
    let expired = seal_at(K1, &plain, stamped - ttl - 2);
    let receipts_before = receipts_to_ann(&proxy);
    for _ in 0..3 {
        proxy.send_as(ann_addr, &expired).expect("replay as ann");
        raw.send(&expired);
    }
    server.wait_stats(QUICK, |s| s.dropped("expired") >= 6);
    assert!(
        raw.receive_for(SILENCE).is_empty(),
        "an expired replay was answered"
    );

    // Nothing was ever added to the room: ann's next line comes right after.
    ann.send_line("after the replays");
    let next = bob.wait_for_json(QUICK, |v| {
        assert!(
            !is_message(v, "ann", "hello once"),
            "a replay was delivered again: {v}"
        );
        is_message(v, "ann", "after the replays")
    });
    assert_eq!(next["seq"].as_u64(), Some(seq + 1));
    // Its receipt came through the proxy after anything the server sent ann for the
    // expired replays (no reordering on this proxy), so none was sent.
    ann.wait_for_json(QUICK, |v| {
        v["event"] == "delivered" && v["seq"].as_u64() == Some(seq + 1)
    });
    assert_eq!(receipts_to_ann(&proxy), receipts_before);
    let stats = server.wait_stats(QUICK, |s| s.relayed >= 2);
    assert_eq!(stats.relayed, 2, "{stats:?}");
}

/// A replayed Join (captured from a member that later vanished) from another address,
/// within the TTL: the server must not answer the replayer nor put the ghost back in
/// the room ("never a second room message" for a replay).
#[test]
fn a_replayed_join_of_a_vanished_session_is_not_answered() {
    let _guard = shared();
    let server = Server::start(&["--member-timeout", "1", "--ttl", "30", "--stats", "1"]);
    let session = 0x0DD5_E551_0000_0001;
    let victim = Raw::new(server.addr);
    let join = victim.join(session, "victim", "lobby");
    // The victim goes silent (a crash, a lost network) and is dropped.
    let gone = server.wait_stats(QUICK, |s| s.members == 0);
    // An outsider who recorded the Join replays it, well inside the TTL.
    let replayer = Raw::new(server.addr);
    replayer.send(&join);
    // Counted means handled: any answer has been sent by then.
    server.wait_stats(QUICK, |s| s.datagrams > gone.datagrams);
    let answers: Vec<u8> = replayer
        .receive_for(SILENCE)
        .iter()
        .filter_map(|d| open(d))
        .filter_map(|(_, plain)| kind(&plain))
        .collect();
    let joins = server
        .process
        .stderr_text()
        .matches("victim joined room lobby")
        .count();
    assert!(
        answers.is_empty(),
        "the replayed Join was answered with frames of kinds {answers:02x?}; the server \
         logged {joins} joins of the victim"
    );
    assert_eq!(joins, 1, "the replayed Join put the ghost back in the room");
}

// ---------------------------------------------------------------------------------------
// Forgeries.

/// Base64url with padding, as Fernet writes it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Wrong key, forged, truncated, random: never any answer, and every one counted by
/// reason.
#[test]
fn forged_and_broken_tokens_get_no_answer_and_are_counted() {
    let _guard = shared();
    let server = Server::start(&["--stats", "1"]);
    let mut rng = SplitMix(0x5EED_0004);
    let session = 0x0F0F_0000_0000_0001;
    let join = frame(
        session,
        Body::Join {
            version: chat_core::wire::VERSION,
            nick: "eve",
            room: "lobby",
            window: 16,
            resume: None,
        },
    );
    let chat = frame(
        session,
        Body::Chat {
            msg_id: 1,
            text: "forged?",
        },
    );
    let now = e2e_tests::now();

    let mut invalid: Vec<Vec<u8>> = vec![
        // Another key.
        seal(K2, &join),
        seal(K2, &chat),
        // Our key, a flipped bit in the ciphertext, in the MAC, in the timestamp.
        {
            let mut t = seal(K1, &join);
            t[60] = if t[60] == b'A' { b'B' } else { b'A' };
            t
        },
        {
            let mut t = seal(K1, &join);
            let at = t.len() - 8;
            t[at] = if t[at] == b'A' { b'B' } else { b'A' };
            t
        },
        {
            let mut t = seal(K1, &chat);
            t[8] = if t[8] == b'A' { b'B' } else { b'A' };
            t
        },
        // A well-formed token with a made-up MAC.
        {
            let mut raw = vec![0x80];
            raw.extend_from_slice(&now.to_be_bytes());
            raw.extend(rng.bytes(16 + 32 + 32));
            base64url(&raw).into_bytes()
        },
        // Truncated: by whole base64 quanta, and in the middle of one.
        {
            let t = seal(K1, &join);
            t[..t.len() - 4].to_vec()
        },
        {
            let t = seal(K1, &join);
            t[..t.len() - 1].to_vec()
        },
        {
            let t = seal(K1, &join);
            t[..t.len() / 2].to_vec()
        },
        // Nothing at all, and random bytes.
        Vec::new(),
        b"gAAAAA".to_vec(),
    ];
    for _ in 0..20 {
        let len = 1 + rng.up_to(1200) as usize;
        invalid.push(rng.bytes(len));
    }
    // Random "tokens" in the right alphabet.
    for _ in 0..10 {
        let len = 57 + rng.up_to(600) as usize;
        invalid.push(base64url(&rng.bytes(len)).into_bytes());
    }
    let expired = seal_at(K1, &join, now - 3600);
    let future = seal_at(K1, &join, now + 3600);
    let malformed = [
        seal(K1, &[0xC1, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1]),
        seal(K1, &[0xFF, 0xFE, 0xFD]),
        seal(K1, &[&join[..], b"trailing"].concat()),
    ];
    let too_long = vec![b'A'; 2000];

    let raw = Raw::new(server.addr);
    for datagram in &invalid {
        raw.send(datagram);
    }
    raw.send(&expired);
    raw.send(&future);
    for datagram in &malformed {
        raw.send(datagram);
    }
    raw.send(&too_long);
    // The server answers while it handles a datagram and counts it, so once the stats
    // show every datagram, any answer is already on its way: the silence after that is
    // not a matter of how fast the machine is.
    let total = invalid.len() + 2 + malformed.len() + 1;
    let stats = server.wait_stats(QUICK, |s| s.datagrams >= total as u64);
    let answers = raw.receive_for(SILENCE);
    assert!(answers.is_empty(), "{} answers to forgeries", answers.len());
    assert_eq!(stats.datagrams, total as u64, "{stats:?}");
    assert_eq!(
        stats.dropped("invalid_token"),
        invalid.len() as u64,
        "{stats:?}"
    );
    assert_eq!(stats.dropped("expired"), 1, "{stats:?}");
    assert_eq!(stats.dropped("from_the_future"), 1, "{stats:?}");
    assert_eq!(
        stats.dropped("malformed"),
        malformed.len() as u64,
        "{stats:?}"
    );
    assert_eq!(stats.dropped("too_long"), 1, "{stats:?}");
    assert_eq!((stats.members, stats.relayed), (0, 0), "{stats:?}");

    // The one thing an old token may get: a clock-less device's Ping is answered with
    // one Pong of the same size, so even that amplifies nothing.
    let ping = seal_at(K1, &frame(session, Body::Ping { counter: 1 }), 0);
    raw.send(&ping);
    let first = raw
        .receive_one(QUICK)
        .expect("a Pong to the clock-less Ping");
    server.wait_stats(QUICK, |s| s.datagrams > total as u64);
    let answers: Vec<Vec<u8>> = std::iter::once(first)
        .chain(raw.receive_for(SILENCE))
        .collect();
    assert_eq!(answers.len(), 1);
    let (_, plain) = open(&answers[0]).expect("a K1 token");
    assert_eq!(kind(&plain), Some(PONG));
    assert!(
        answers[0].len() <= ping.len(),
        "the Pong is larger than the Ping"
    );
}

// ---------------------------------------------------------------------------------------
// Floods.

/// While junk and replayed tokens hit the server at full speed, two members keep
/// chatting; the server's memory does not grow, and the flood shows in its counters.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "reads the server's memory from /proc/PID/status (Linux)"
)]
fn a_flood_does_not_stop_the_chat_or_grow_the_server() {
    let _guard = exclusive();
    let server = Server::start(&["--stats", "1"]);
    let mut ann = joined_client(server.addr, "ann", QUICK);
    let mut bob = joined_client(server.addr, "bob", QUICK);
    // A member of another room whose tokens the attacker recorded.
    let recorded = Raw::new(server.addr);
    let session = 0x0F10_0D00_0000_0001;
    let join = recorded.join(session, "mallory", "elsewhere");
    let chat = seal(
        K1,
        &frame(
            session,
            Body::Chat {
                msg_id: 1,
                text: "once",
            },
        ),
    );
    recorded.send(&chat);
    server.wait_stats(QUICK, |s| s.relayed >= 1);
    let ping = seal(K1, &frame(session, Body::Ping { counter: 1 }));
    recorded.send(&ping);

    let mut rng = SplitMix(0x5EED_0005);
    let mut junk: Vec<Vec<u8>> = (0..32)
        .map(|_| {
            let len = rng.up_to(1232) as usize;
            rng.bytes(len)
        })
        .collect();
    junk.push(seal(K2, b"wrong key"));
    let mut flipped = seal(K1, &join);
    flipped[40] ^= 1;
    junk.push(flipped);
    // Replays, valid but old news: Duplicate every time.
    for _ in 0..8 {
        junk.push(join.clone());
        junk.push(chat.clone());
        junk.push(ping.clone());
    }

    let before = server.rss_kib();
    let flooder = {
        let target = server.addr;
        thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let started = Instant::now();
            let mut sent = 0u64;
            while sent < 200_000 && started.elapsed() < Duration::from_secs(3) {
                for datagram in &junk {
                    if socket.send_to(datagram, target).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        })
    };
    // The members chat through it: a line each every 300 ms while it lasts.
    let lines = 8;
    for i in 0..lines {
        ann.send_line(&format!("ann {i}"));
        bob.send_line(&format!("bob {i}"));
        thread::sleep(Duration::from_millis(300));
    }
    let flooded = flooder.join().expect("flooder");
    let deadline = Instant::now() + SLOW;
    let a = collect(&mut ann, 2 * lines, lines, deadline);
    let b = collect(&mut bob, 2 * lines, lines, deadline);
    assert_eq!(a.messages, b.messages, "ann and bob saw different rooms");
    assert_eq!(a.missed + b.missed, 0);

    let stats = server.wait_stats(QUICK, |s| {
        s.relayed > 2 * lines as u64 && s.datagrams >= 1_000
    });
    assert!(stats.dropped("invalid_token") >= 100, "{stats:?}");
    assert!(stats.dropped("duplicate") >= 100, "{stats:?}");
    // One line from mallory, 2 × lines from the members.
    assert_eq!(stats.relayed, 1 + 2 * lines as u64, "{stats:?}");
    let after = server.rss_kib();
    eprintln!(
        "flood: {flooded} datagrams sent, {} handled; server RSS {before} -> {after} KiB",
        stats.datagrams
    );
    assert!(
        after < before + RSS_SLACK_KIB,
        "the server grew from {before} KiB to {after} KiB"
    );
    assert!(
        server.process.stderr_text().lines().count() < 200,
        "the flood filled the log"
    );
}

/// A member that pings but never acknowledges cannot make the server hold unbounded
/// data: while the others chat 300 lines, its memory stays put, and the silent member is
/// told what it missed.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "reads the server's memory from /proc/PID/status (Linux)"
)]
fn a_member_that_never_acknowledges_is_told_it_missed_messages() {
    let _guard = shared();
    // A history shorter than what the others say, so that the silent member falls out.
    let server = Server::start(&["--stats", "1", "--history", "64"]);
    let silent = Raw::new(server.addr);
    let session = 0x0051_1E47_0000_0001;
    silent.join(session, "silent", "lobby");
    let mut ann = joined_client(server.addr, "ann", QUICK);
    let mut bob = joined_client(server.addr, "bob", QUICK);
    let before = server.rss_kib();

    // The silent member pings every second, never acknowledges, and notes what comes.
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut kinds: BTreeMap<u8, usize> = BTreeMap::new();
            let mut counter = 0;
            while !stop.load(Ordering::Relaxed) {
                counter += 1;
                silent.send(&seal(K1, &frame(session, Body::Ping { counter })));
                for datagram in silent.receive_for(Duration::from_secs(1)) {
                    if let Some(kind) = open(&datagram).and_then(|(_, p)| kind(&p)) {
                        *kinds.entry(kind).or_default() += 1;
                    }
                }
            }
            kinds
        })
    };

    let lines = 150;
    for i in 0..lines {
        ann.send_line(&format!("ann {i}"));
        bob.send_line(&format!("bob {i}"));
    }
    // The room waits up to the stall limit (5 s) for the silent member, then goes on
    // without it; meanwhile senders are told to wait (Busy).
    let deadline = Instant::now() + Duration::from_secs(90);
    let a = collect(&mut ann, 2 * lines, lines, deadline);
    let b = collect(&mut bob, 2 * lines, lines, deadline);
    assert_eq!(a.messages, b.messages);
    assert_eq!(
        a.missed + b.missed,
        0,
        "the members that acknowledge missed nothing"
    );
    let after = server.rss_kib();
    let stats = server.wait_stats(QUICK, |s| s.missed > 0);
    stop.store(true, Ordering::Relaxed);
    let kinds = listener.join().expect("listener");
    eprintln!("silent member got frames {kinds:02x?}; server RSS {before} -> {after} KiB");
    assert!(
        kinds.get(&MISSED).copied().unwrap_or(0) > 0,
        "the silent member was never told it missed messages: {kinds:02x?}"
    );
    // What it was sent is bounded by the window and the retransmission timer, not by
    // the 300 lines.
    let delivered = kinds.get(&DELIVER).copied().unwrap_or(0);
    assert!(
        delivered < 2 * lines,
        "{delivered} deliveries to a member that never acks"
    );
    assert_eq!(stats.relayed, 2 * lines as u64, "{stats:?}");
    assert!(
        after < before + RSS_SLACK_KIB,
        "the server grew from {before} KiB to {after} KiB"
    );
    // Only the frames any member gets.
    for kind in kinds.keys() {
        assert!(
            [WELCOME, RECEIPT, DELIVER, PONG, NOTICE, MISSED, PRESENCE].contains(kind),
            "unexpected frame kind {kind:#04x}"
        );
    }
}

/// After a member leaves, every datagram it ever sent (its Join, lines, acknowledgements,
/// pings, member-list request, its Leave), replayed from another port, gets no answer at
/// all: a departed session's tokens cannot make the server an amplifier or a bouncer.
#[test]
fn a_departed_members_datagrams_replayed_get_no_answer() {
    let _guard = shared();
    let server = Server::start(&[]);
    let member = Raw::new(server.addr);
    let session = 0x0DE9_A47E_D000_0001;
    let mut sent = vec![member.join(session, "leaver", "lobby")];
    let mut send = |body: Body<'_>| {
        let token = seal(K1, &frame(session, body));
        member.send(&token);
        sent.push(token);
    };
    for msg_id in 1..=3 {
        send(Body::Chat {
            msg_id,
            text: "a line",
        });
    }
    send(Body::Ping { counter: 1 });
    send(Body::Who {
        counter: 1,
        start: 0,
    });
    send(Body::Ack {
        next_seq: 3,
        selective: 0,
        presence: 1,
    });
    let answered = member.receive_for(Duration::from_millis(500));
    assert!(!answered.is_empty(), "a live member is answered");
    send(Body::Leave);
    let bye = member.receive_for(Duration::from_millis(500));
    assert!(
        bye.iter()
            .filter_map(|d| open(d))
            .any(|(_, plain)| kind(&plain) == Some(NOTICE)),
        "the Leave is answered once"
    );
    // Right away, from another port.
    let replayer = Raw::new(server.addr);
    for _ in 0..3 {
        for token in &sent {
            replayer.send(token);
        }
    }
    let got = replayer.receive_for(Duration::from_secs(2));
    assert!(got.is_empty(), "{} answers to replays", got.len());
    assert!(member.receive_for(Duration::from_millis(200)).is_empty());
}
