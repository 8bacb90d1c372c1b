//! The chat, run as users would: `host-chat server`, `host-chat client` and `host-chat
//! demo` as real processes on 127.0.0.1, asserted through the client's `--json` events.
//!
//! Every server binds port 0 and reports the port it got (`--print-port`); every wait
//! has a deadline; every child is killed when its guard drops.

use chat_core::fernet::{Key, token_len};
use e2e_tests::{ChatServer, Running, SplitMix, host_chat, python, run};
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

fn is_message(value: &Value, nick: &str, text: &str) -> bool {
    value["event"] == "message" && value["nick"] == nick && value["text"] == text
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

#[test]
fn a_client_with_the_wrong_key_is_ignored_and_told_why() {
    let server = server(K1);
    // A raw token made with another key gets no answer at all.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let token = seal(K2, b"anybody there?");
    socket.send_to(token.as_bytes(), server.addr).unwrap();
    let mut buf = [0u8; 2048];
    let answer = socket.recv_from(&mut buf);
    assert!(
        matches!(&answer, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
        "the server answered a wrong-key token: {answer:?}"
    );

    let mut client = Running::spawn("eve", &mut client_cmd(K2, server.addr, "eve"));
    let event = client.wait_for_json(Duration::from_secs(6), |v| {
        v["event"] == "no_answer" || v["event"] == "joined"
    });
    assert_eq!(event["event"], "no_answer", "{}", client.report());
    assert_eq!(event["server"], server.addr.to_string());
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
f = Fernet(key.encode())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(f.encrypt(b"hello from python"), ("127.0.0.1", port))
data, _ = s.recvfrom(4096)
print(f.decrypt(data, ttl=60).decode())
"#;

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
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(socket.recv_from(&mut buf).is_err(), "garbage got an answer");
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
    client.wait_event(Duration::from_secs(6), "no_answer");
    // End of input: it gives up cleanly.
    client.close_stdin();
    let closed = client.wait_event(QUICK, "closed");
    assert_eq!(closed["joined"], false);
    assert!(client.wait_exit(QUICK).is_some_and(|s| s.success()));

    // The text for people says the same.
    let mut cmd = host_chat();
    cmd.args(["client", "--nick", "lonely"])
        .arg(addr.to_string())
        .env("HOST_CHAT_KEY", K1);
    let client = Running::spawn("lonely-text", &mut cmd);
    let deadline = std::time::Instant::now() + QUICK;
    let expected = format!("nothing is listening at {addr} (connection refused)");
    while !client.stderr_text().contains(&expected) {
        assert!(std::time::Instant::now() < deadline, "{}", client.report());
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let proc = std::path::PathBuf::from(format!("/proc/{server_pid}"));
    if std::path::Path::new("/proc/self").exists() {
        assert!(
            !proc.exists(),
            "the demo's server (pid {server_pid}) is still there"
        );
    }
}
