//! The chat, run as users would: `host-chat server`, `host-chat client` and `host-chat
//! demo` as real processes on 127.0.0.1, asserted through the client's `--json` events.
//!
//! Every server binds port 0 and reports the port it got (`--print-port`); every wait
//! has a deadline; every child is killed when its guard drops.

use chat_core::fernet::{Key, plaintext_buf_len, token_len};
use chat_core::wire::{Body, NoticeCode, Repr};
use e2e_tests::proxy::{Faults, Proxy, ProxyConfig};
use e2e_tests::{
    ChatServer, Running, SplitMix, host_chat, is_message, process_exists, python, run, run_with,
    signal,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Generous bound for anything that should take milliseconds on loopback.
const QUICK: Duration = Duration::from_secs(10);
/// A client reports `no_answer` 3 s after its first join; waiting for it is bounded
/// against a hang only (a loaded machine may start the client late).
const NO_ANSWER: Duration = Duration::from_secs(30);

fn server(key: &str) -> ChatServer {
    ChatServer::start(key, &[])
}

fn client_cmd(key: &str, addr: SocketAddr, nick: &str) -> Command {
    let mut cmd = host_chat();
    cmd.args(["client", "--json", "--nick", nick])
        .arg(addr.to_string())
        .env("HOST_CHAT_KEY", key);
    cmd
}

/// A client that has joined.
fn joined_client(key: &str, addr: SocketAddr, nick: &str) -> Running {
    let mut client = Running::spawn(nick, &mut client_cmd(key, addr, nick));
    client.wait_event(QUICK, "joined");
    client
}

/// Sends a line and waits for its receipt; returns the room sequence number.
#[track_caller]
fn say(client: &mut Running, text: &str) -> u64 {
    client.send_line(text);
    let sent = client.wait_for_json(QUICK, |v| v["event"] == "sent" && v["text"] == text);
    let id = sent["id"].clone();
    let delivered = client.wait_for_json(QUICK, |v| v["event"] == "delivered" && v["id"] == id);
    delivered["seq"].as_u64().expect("a sequence number")
}

/// Quits a client with `/quit` and checks it leaves cleanly.
#[track_caller]
fn quit(client: &mut Running) {
    client.send_line("/quit");
    client.wait_event(QUICK, "closed");
    let status = client
        .wait_exit(QUICK)
        .expect("the client exits after /quit");
    assert!(status.success(), "{status}\n{}", client.report());
}

#[test]
fn three_clients_see_the_same_messages_in_the_same_order_once() {
    let mut server = server(K1);
    let nicks = ["ann", "bob", "cy"];
    let mut clients: Vec<Running> = nicks
        .iter()
        .map(|nick| joined_client(K1, server.addr, nick))
        .collect();
    // Everyone is in the room before anyone speaks: all see every line.
    for round in 0..3 {
        for (client, nick) in clients.iter_mut().zip(nicks) {
            client.send_line(&format!("line {round} from {nick}"));
        }
    }
    let total = nicks.len() * 3;
    let mut transcripts = Vec::new();
    for (client, nick) in clients.iter_mut().zip(nicks) {
        let mut messages: BTreeMap<u64, (String, String)> = BTreeMap::new();
        let mut order = Vec::new();
        let mut delivered = Vec::new();
        let mut sent = Vec::new();
        while messages.len() < total || delivered.len() < 3 {
            let line = client
                .next_line(QUICK)
                .unwrap_or_else(|| panic!("{nick} stopped short\n{}", client.report()));
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match value["event"].as_str() {
                Some("message") => {
                    let seq = value["seq"].as_u64().unwrap();
                    let entry = (
                        value["nick"].as_str().unwrap().to_owned(),
                        value["text"].as_str().unwrap().to_owned(),
                    );
                    assert!(
                        messages.insert(seq, entry).is_none(),
                        "{nick} got #{seq} twice\n{}",
                        client.report()
                    );
                    order.push(seq);
                }
                Some("sent") => sent.push(value["id"].as_u64().unwrap()),
                Some("delivered") => {
                    assert!(value["seq"].is_u64(), "{value}");
                    delivered.push(value["id"].as_u64().unwrap());
                }
                _ => {}
            }
        }
        // Shown in room order, and one receipt per own line.
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert_eq!(delivered, sent, "{nick}: one receipt per line, in order");
        for round in 0..3 {
            let own = (nick.to_owned(), format!("line {round} from {nick}"));
            assert!(
                messages.values().any(|m| *m == own),
                "{nick} misses {own:?}"
            );
        }
        transcripts.push(messages);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    assert_eq!(transcripts[1], transcripts[2]);
    // Each member's lines keep their order in the room.
    for nick in nicks {
        let lines: Vec<&String> = transcripts[0]
            .values()
            .filter(|(n, _)| n == nick)
            .map(|(_, text)| text)
            .collect();
        let expected: Vec<String> = (0..3).map(|r| format!("line {r} from {nick}")).collect();
        assert_eq!(lines, expected.iter().collect::<Vec<_>>());
    }
    for client in &mut clients {
        quit(client);
    }
    assert!(server.process.is_running());
}

/// Asserts that `socket` got no answer to what it sent before, without a time window: a
/// fresh Ping from an unknown session is always answered (Notice 1, "not joined"), and
/// the server handles a socket's datagrams in order and sends its answers in order, so
/// the first datagram back must be the answer to this probe.
#[track_caller]
fn assert_nothing_answered_before_a_probe(socket: &UdpSocket, server: SocketAddr, what: &str) {
    const PROBE_SESSION: u64 = 0x9a0b_e5ee_d000_0001;
    let mut frame = [0u8; 64];
    let len = Repr {
        session: PROBE_SESSION,
        body: Body::Ping { counter: 1 },
    }
    .emit(&mut frame)
    .unwrap();
    let probe = seal(K1, &frame[..len]);
    socket.send_to(probe.as_bytes(), server).unwrap();
    socket.set_read_timeout(Some(QUICK)).unwrap();
    let mut buf = [0u8; 2048];
    let (got, _) = socket
        .recv_from(&mut buf)
        .expect("the probe is answered (not joined)");
    let key = Key::from_base64(K1).unwrap();
    let mut plain = vec![0u8; plaintext_buf_len(got)];
    let answer = key
        .decrypt(&buf[..got], None, &mut plain)
        .ok()
        .and_then(|opened| {
            Repr::parse(opened.plaintext)
                .ok()
                .map(|r| (r.session, r.body))
        });
    assert!(
        matches!(
            answer,
            Some((PROBE_SESSION, Body::Notice { code, .. })) if code == NoticeCode::NOT_JOINED
        ),
        "the server answered {what}: the first datagram back is not the probe's answer"
    );
}

#[test]
fn a_client_with_the_wrong_key_is_ignored_and_told_why() {
    let server = server(K1);
    // A raw token made with another key gets no answer at all.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let token = seal(K2, b"anybody there?");
    socket.send_to(token.as_bytes(), server.addr).unwrap();
    assert_nothing_answered_before_a_probe(&socket, server.addr, "a wrong-key token");

    let mut client = Running::spawn("eve", &mut client_cmd(K2, server.addr, "eve"));
    let event = client.wait_for_json(NO_ANSWER, |v| {
        v["event"] == "no_answer" || v["event"] == "joined"
    });
    assert_eq!(event["event"], "no_answer", "{}", client.report());
    assert_eq!(event["server"], server.addr.to_string());
    assert_eq!(event["connection_refused"], false, "{event}");

    // The server's log names the address once (the client sent several joins by now),
    // with the hint; the raw token's address was named too.
    let eve_says = wrong_key_lines(&server);
    assert_eq!(eve_says.len(), 2, "{eve_says:#?}");
    let local = socket.local_addr().unwrap();
    assert!(
        eve_says[0].contains(&format!(
            "a client at {local} sends tokens this server cannot verify: wrong key?"
        )),
        "{eve_says:#?}"
    );
    assert!(eve_says[1].contains("wrong key?"), "{eve_says:#?}");

    // It gives up at the end of input, never joined: exit status 1, and why.
    client.close_stdin();
    let closed = client.wait_event(QUICK, "closed");
    assert_eq!(closed["joined"], false);
    let error = client.wait_event(QUICK, "error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("never joined room lobby"),
        "{error}"
    );
    let status = client.wait_exit(QUICK).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", client.report());
    assert_eq!(
        wrong_key_lines(&server).len(),
        2,
        "said once a minute per address"
    );
}

/// The server's log lines about tokens of another key.
fn wrong_key_lines(server: &ChatServer) -> Vec<String> {
    server
        .process
        .stderr_text()
        .lines()
        .filter(|line| line.contains("cannot verify"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_restarted_client_rejoins_and_chats() {
    let server = server(K1);
    let mut bob = joined_client(K1, server.addr, "bob");
    let mut ann = joined_client(K1, server.addr, "ann");
    say(&mut ann, "before the crash");
    bob.wait_for_json(QUICK, |v| is_message(v, "ann", "before the crash"));
    ann.kill();

    // The old session lingers until it times out, so the server cannot give the name
    // back yet: the restarted client is told it joined as ann-2.
    let mut ann = Running::spawn("ann", &mut client_cmd(K1, server.addr, "ann"));
    let joined = ann.wait_event(QUICK, "joined");
    assert_eq!(joined["nick"], "ann-2", "{joined}");
    let seq = say(&mut ann, "back again");
    let seen = bob.wait_for_json(QUICK, |v| is_message(v, "ann-2", "back again"));
    assert_eq!(seen["seq"].as_u64(), Some(seq));
    say(&mut bob, "welcome back");
    ann.wait_for_json(QUICK, |v| is_message(v, "bob", "welcome back"));
    quit(&mut ann);
    quit(&mut bob);
}

const PYTHON_LEGACY: &str = r#"
import socket, sys
from cryptography.fernet import Fernet
key, port = sys.argv[1], int(sys.argv[2])
ending = sys.argv[3].encode() if len(sys.argv) > 3 else b""
f = Fernet(key.encode())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(f.encrypt(b"hello from python") + ending, ("127.0.0.1", port))
data, _ = s.recvfrom(4096)
print(f.decrypt(data, ttl=60).decode())
"#;

/// A line-oriented sender puts a line ending after each token (`print`, `nc`): the
/// server takes the token, as Python's own `decrypt` would (PROTOCOL.md, "Datagrams").
#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn a_token_with_a_line_ending_is_a_token() {
    let _ = python();
    let server = server(K1);
    let exe = std::env::var_os("PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    for ending in ["\n", "\r\n"] {
        let out = run(
            Command::new(&exe)
                .args(["-c", PYTHON_LEGACY, K1])
                .arg(server.addr.port().to_string())
                .arg(ending),
            io::empty(),
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "{ending:?}: {}", out.stderr_text());
        assert!(
            out.stdout_text().starts_with("server: received as #"),
            "{}",
            out.stdout_text()
        );
    }
}

#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn a_legacy_python_sender_chats_with_the_room() {
    let _ = python();
    let server = server(K1);
    let mut ann = joined_client(K1, server.addr, "ann");
    let exe = std::env::var_os("PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let out = run(
        Command::new(exe)
            .args(["-c", PYTHON_LEGACY, K1])
            .arg(server.addr.port().to_string()),
        io::empty(),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "python failed: {}", out.stderr_text());
    let reply = out.stdout_text().trim();
    assert!(
        reply.starts_with("server: received as #") && reply.ends_with("for 2 members"),
        "{reply}"
    );
    let seen = ann.wait_for_json(QUICK, |v| is_message(v, "legacy-1", "hello from python"));
    // The line's number in the reply is the one the room saw.
    let seq: u64 = reply["server: received as #".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(seen["seq"].as_u64(), Some(seq), "{reply}");
    quit(&mut ann);
}

/// A token of `message` made with `key`, now.
fn seal(key: &str, message: &[u8]) -> String {
    let key = Key::from_base64(key).unwrap();
    let mut out = vec![0; token_len(message.len())];
    let now = e2e_tests::now();
    key.encrypt(message, now, &mut rand::rng(), &mut out)
        .unwrap()
        .to_owned()
}

#[test]
fn the_server_survives_garbage() {
    let mut server = server(K1);
    let mut ann = joined_client(K1, server.addr, "ann");
    let mut bob = joined_client(K1, server.addr, "bob");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = SplitMix(42);
    let mut junk: Vec<Vec<u8>> = (0..50)
        .map(|_| {
            let len = rng.up_to(1500) as usize;
            rng.bytes(len)
        })
        .collect();
    junk.push(Vec::new());
    junk.push(vec![b'A'; 5000]);
    junk.push(seal(K2, b"wrong key").into_bytes());
    junk.push(seal(K1, &[0xC1, 0xff, 0, 1]).into_bytes()); // our key, not a frame
    junk.push(seal(K1, &[0xC1; 64]).into_bytes());
    let mut almost = seal(K1, b"hello").into_bytes();
    let last = almost.len() - 5;
    almost[last] ^= 1; // a flipped bit
    junk.push(almost);
    for datagram in &junk {
        socket.send_to(datagram, server.addr).unwrap();
    }
    // It still relays, to everyone.
    say(&mut ann, "still here?");
    bob.wait_for_json(QUICK, |v| is_message(v, "ann", "still here?"));
    say(&mut bob, "yes");
    ann.wait_for_json(QUICK, |v| is_message(v, "bob", "yes"));
    assert!(server.process.is_running(), "{}", server.process.report());
    // And nothing of that garbage was ever answered.
    assert_nothing_answered_before_a_probe(&socket, server.addr, "garbage");
}

#[test]
fn a_client_with_nothing_to_talk_to_says_so() {
    // A port nobody listens on: bound, then freed.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut client = Running::spawn("lonely", &mut client_cmd(K1, addr, "lonely"));
    let refused = client.wait_event(QUICK, "connection_refused");
    assert_eq!(refused["server"], addr.to_string());
    let no_answer = client.wait_event(NO_ANSWER, "no_answer");
    assert_eq!(no_answer["connection_refused"], true, "{no_answer}");
    // End of input: it gives up, never joined, and says so with its exit status.
    client.close_stdin();
    let closed = client.wait_event(QUICK, "closed");
    assert_eq!(closed["joined"], false);
    let status = client.wait_exit(QUICK).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", client.report());

    // The text for people: nothing listening, and no talk of keys after that.
    let mut cmd = host_chat();
    cmd.args(["client", "--nick", "lonely"])
        .arg(addr.to_string())
        .env("HOST_CHAT_KEY", K1);
    let out = run_with(&mut cmd, "hello\n");
    let stderr = out.stderr_text();
    assert_eq!(out.code(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "nothing is listening at {addr} (connection refused)"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("same key"), "{stderr}");
    assert!(
        stderr.contains("line 1 not delivered (never joined): hello"),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with(&format!(
            "host-chat: never joined room lobby on {addr}: nothing is listening there \
             (connection refused)"
        )),
        "{stderr}"
    );
}

/// A scripted client whose server goes away with lines unanswered: an `undelivered`
/// event names each line, and the exit status is 1.
#[test]
fn lines_the_room_never_got_are_named_and_fail_the_exit_status() {
    let mut server = server(K1);
    let mut ann = joined_client(K1, server.addr, "ann");
    say(&mut ann, "before");
    server.process.kill();
    ann.send_line("lost one");
    ann.send_line("lost two");
    let first = ann.wait_for_json(QUICK, |v| v["event"] == "sent" && v["text"] == "lost one");
    ann.close_stdin();
    let mut undelivered = Vec::new();
    while undelivered.len() < 2 {
        let event = ann.wait_event(QUICK, "undelivered");
        undelivered.push((event["id"].clone(), event["text"].clone()));
    }
    assert_eq!(undelivered[0], (first["id"].clone(), "lost one".into()));
    assert_eq!(undelivered[1].1, "lost two");
    ann.wait_event(QUICK, "closed");
    let error = ann.wait_event(QUICK, "error");
    assert_eq!(error["message"], "2 of 3 lines did not reach the room");
    let status = ann.wait_exit(QUICK).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", ann.report());
}

/// `echo /who | host-chat client --json` waits for the answer before it leaves; empty
/// input joins and leaves, exit status 0.
#[test]
fn who_at_the_end_of_input_is_answered_before_leaving() {
    let server = server(K1);
    let _bob = joined_client(K1, server.addr, "bob");
    let out = run_with(&mut client_cmd(K1, server.addr, "ann"), "/who\n").success();
    let events: Vec<Value> = out
        .stdout_text()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let members = events
        .iter()
        .find(|v| v["event"] == "members")
        .unwrap_or_else(|| panic!("no members event: {events:#?}"));
    assert_eq!(members["total"], 2, "{members}");
    let names = members["names"].to_string();
    assert!(names.contains("ann") && names.contains("bob"), "{members}");
    assert!(
        events
            .iter()
            .any(|v| v["event"] == "closed" && v["joined"] == true)
    );

    let out = run_with(&mut client_cmd(K1, server.addr, "cy"), "").success();
    assert!(out.stdout_text().contains(r#""event":"joined""#));
}

/// Ctrl+C with the server gone: the first says what it waits for, the second quits at
/// once and names the line it drops; exit status 1.
#[test]
fn ctrl_c_says_what_is_dropped_and_the_second_quits_at_once() {
    let mut server = server(K1);
    let mut ann = joined_client(K1, server.addr, "ann");
    server.process.kill();
    ann.send_line("going nowhere");
    let sent = ann.wait_event(QUICK, "sent");
    signal(ann.pid(), "INT");
    let leaving = ann.wait_event(QUICK, "leaving");
    assert_eq!(leaving["waiting"], 1, "{leaving}");
    signal(ann.pid(), "INT");
    let dropped = ann.wait_event(QUICK, "undelivered");
    assert_eq!(
        (&dropped["id"], &dropped["text"], &dropped["reason"]),
        (&sent["id"], &"going nowhere".into(), &"interrupted".into())
    );
    let closed = ann.wait_event(QUICK, "closed");
    assert_eq!(closed["interrupted"], true, "{closed}");
    let status = ann.wait_exit(QUICK).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", ann.report());

    // For people: the first Ctrl+C says what it waits for.
    let server = self::server(K1);
    let mut cmd = host_chat();
    cmd.args(["client", "--show-wire", "--nick", "bo"])
        .arg(server.addr.to_string())
        .env("HOST_CHAT_KEY", K1);
    let mut bo = Running::spawn("bo", &mut cmd);
    let deadline = std::time::Instant::now() + QUICK;
    while !bo.stderr_text().contains("joined room lobby") {
        assert!(std::time::Instant::now() < deadline, "{}", bo.report());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut server = server;
    server.process.kill();
    bo.send_line("also lost");
    // The session took it (the wire view shows it going out).
    bo.wait_for(QUICK, |line| line == "sent: also lost");
    let deadline = std::time::Instant::now() + QUICK;
    signal(bo.pid(), "INT");
    let waiting = "leaving: waiting up to 5 s for the server to take 1 line (Ctrl+C again to \
                   quit at once and drop it)";
    while !bo.stderr_text().contains(waiting) {
        assert!(std::time::Instant::now() < deadline, "{}", bo.report());
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(bo.pid(), "INT");
    let status = bo.wait_exit(QUICK).expect("it exits");
    assert_eq!(status.code(), Some(1));
    let stderr = bo.stderr_text();
    assert!(
        stderr.contains("line 1 not delivered (interrupted): also lost"),
        "{stderr}"
    );
}

/// `--show-wire` shows each receipt once, even when the network duplicates it.
#[test]
fn show_wire_shows_each_receipt_once() {
    let server = server(K1);
    let duplicating = Faults {
        duplicate: 1.0,
        ..Faults::NONE
    };
    let proxy = Proxy::start(
        server.addr,
        ProxyConfig {
            to_client: duplicating,
            ..ProxyConfig::symmetric(7, Faults::NONE)
        },
    )
    .unwrap();
    let mut cmd = host_chat();
    cmd.args(["client", "--show-wire", "--nick", "ann"])
        .arg(proxy.addr().to_string())
        .env("HOST_CHAT_KEY", K1);
    let out = run_with(&mut cmd, "one\ntwo\nthree\n").success();
    let stdout = out.stdout_text();
    let count = |prefix: &str| stdout.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("response: "), 3, "{stdout}");
    assert_eq!(count("response token: "), 3, "{stdout}");
    assert_eq!(count("server: delivered as #"), 3, "{stdout}");
    assert!(
        proxy
            .counts(e2e_tests::proxy::Direction::ToClient)
            .duplicated
            >= 3,
        "the proxy duplicated nothing"
    );
}

/// `server --bind` takes a host name as the client does; a client refuses port 0.
#[test]
fn host_names_to_bind_and_no_port_0() {
    let mut cmd = host_chat();
    cmd.args(["server", "--bind", "localhost:0", "--print-port"])
        .env("HOST_CHAT_KEY", K1);
    let mut server = Running::spawn("server", &mut cmd);
    let port: u16 = server.wait_for(QUICK, |_| true).trim().parse().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let out = run_with(&mut client_cmd(K1, addr, "ann"), "via localhost\n").success();
    assert!(out.stdout_text().contains(r#""event":"delivered""#));

    let out = run_with(
        host_chat()
            .args(["client", "127.0.0.1:0"])
            .env("HOST_CHAT_KEY", K1),
        "",
    );
    let line = out.failure(2);
    assert!(
        line.contains("port 0 is not a port a server listens on"),
        "{line}"
    );
}

#[test]
fn the_demo_echoes_a_line_and_cleans_up() {
    let mut cmd = host_chat();
    cmd.args(["demo", "--json", "--nick", "ann"]);
    let mut demo = Running::spawn("demo", &mut cmd);
    let started = demo.wait_event(QUICK, "demo");
    let server_pid = started["server_pid"].as_u64().expect("the server's pid");
    demo.wait_event(QUICK, "joined");
    demo.send_line("hello demo");
    // The wire is shown by default: the token sent, then the server's answer.
    let wire = demo.wait_for_json(QUICK, |v| v["event"] == "wire" && v["direction"] == "out");
    assert_eq!(wire["text"], "hello demo");
    assert!(wire["token"].as_str().unwrap().starts_with("gAAAAA"));
    demo.wait_for_json(QUICK, |v| v["event"] == "wire" && v["direction"] == "in");
    demo.wait_event(QUICK, "delivered");
    demo.wait_for_json(QUICK, |v| is_message(v, "ann", "hello demo"));
    quit(&mut demo);
    let server_pid = u32::try_from(server_pid).unwrap();
    assert!(
        !process_exists(server_pid),
        "the demo's server (pid {server_pid}) is still there"
    );
}
