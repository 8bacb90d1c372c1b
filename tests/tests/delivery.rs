//! The delivery promise with the real binaries (issue: "Delivery that holds at any room
//! size and across pauses"): a member stopped past the member timeout resumes where it
//! was; every line a scripted client sends shows its outcome.

use e2e_tests::{ChatServer, Running, host_chat, run_with, signal};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
/// Generous bound for what takes milliseconds on loopback.
const QUICK: Duration = Duration::from_secs(15);

fn client_cmd(addr: SocketAddr, nick: &str) -> Command {
    let mut cmd = host_chat();
    cmd.args(["client", "--json", "--nick", nick])
        .arg(addr.to_string())
        .env("HOST_CHAT_KEY", KEY);
    cmd
}

fn joined(addr: SocketAddr, nick: &str) -> Running {
    let mut client = Running::spawn(nick, &mut client_cmd(addr, nick));
    client.wait_event(QUICK, "joined");
    client
}

fn is_message(v: &Value, text: &str) -> bool {
    v["event"] == "message" && v["text"] == text
}

/// A member stopped (SIGSTOP) for longer than the member timeout, while the room goes on,
/// gets every line it missed on SIGCONT: once each, in order, then the live stream; and
/// its own line typed just before it stopped gets its outcome.
#[test]
fn a_member_stopped_past_the_timeout_gets_every_line_on_resume() {
    // A short member timeout keeps the test short (longer than the clients' 5 s pings,
    // so that only the stopped member times out); the history keeps the lines.
    let server = ChatServer::start(KEY, &["--member-timeout", "6"]);
    let mut ann = joined(server.addr, "ann");
    let mut bob = joined(server.addr, "bob");
    ann.send_line("before");
    bob.wait_for_json(QUICK, |v| is_message(v, "before"));

    signal(bob.pid(), "STOP");
    let lines: Vec<String> = (0..20).map(|k| format!("while stopped {k}")).collect();
    for line in &lines {
        ann.send_line(line);
        ann.wait_for_json(QUICK, |v| v["event"] == "delivered" && v["id"].is_u64());
    }
    // Past the member timeout: the server drops bob.
    ann.wait_for_json(QUICK, |v| {
        v["event"] == "presence"
            && v["changes"].as_array().is_some_and(|changes| {
                changes
                    .iter()
                    .any(|c| c["nick"] == "bob" && c["change"] == "timed out")
            })
    });
    thread::sleep(Duration::from_secs(1));
    signal(bob.pid(), "CONT");

    // On resume: every line once, in order (those the kernel queued while it was stopped
    // first, the rest after it rejoined where it was), nothing missed.
    let mut seen = Vec::new();
    let mut rejoined = None;
    let deadline = Instant::now() + QUICK;
    while seen.len() < lines.len() {
        assert!(Instant::now() < deadline, "{}", bob.report());
        let v = bob.wait_for_json(QUICK, |v| {
            v["event"] == "message" || v["event"] == "missed" || v["event"] == "joined"
        });
        match v["event"].as_str() {
            Some("joined") => rejoined = Some(v),
            Some("missed") => panic!("nothing was missed: {v}"),
            _ => seen.push((
                v["seq"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            )),
        }
    }
    let rejoined = rejoined.unwrap_or_else(|| {
        bob.wait_for_json(QUICK, |v| v["event"] == "joined" && v["rejoined"] == true)
    });
    assert_eq!(
        (&rejoined["rejoined"], &rejoined["resumed"]),
        (&Value::from(true), &Value::from(true)),
        "{rejoined}"
    );
    let texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        seen.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "consecutive numbers: {seen:?}"
    );
    // And the live stream goes on.
    ann.send_line("after");
    bob.wait_for_json(QUICK, |v| is_message(v, "after"));
    bob.send_line("bob is back");
    ann.wait_for_json(QUICK, |v| is_message(v, "bob is back"));
}

/// Every line a scripted client is given shows its outcome: forty lines at once (more
/// than its window), each with its own `delivered` and room sequence number, and the
/// numbers are where the room has them.
#[test]
fn every_line_of_a_burst_shows_its_outcome_in_json() {
    let server = ChatServer::start(KEY, &[]);
    let mut watcher = joined(server.addr, "watcher");
    let input: String = (0..40).map(|k| format!("burst line {k}\n")).collect();
    let out = run_with(&mut client_cmd(server.addr, "burst"), input);
    assert_eq!(out.code(), 0, "{}", out.stderr_text());
    let events: Vec<Value> = out
        .stdout_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sent: BTreeMap<u64, String> = events
        .iter()
        .filter(|v| v["event"] == "sent")
        .map(|v| {
            (
                v["id"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(sent.len(), 40);
    let mut outcomes: BTreeMap<u64, u64> = BTreeMap::new();
    for v in events.iter().filter(|v| v["event"] == "delivered") {
        let id = v["id"].as_u64().unwrap();
        let seq = v["seq"].as_u64().expect("every receipt has its seq");
        assert!(
            outcomes.insert(id, seq).is_none(),
            "one outcome per line: {v}"
        );
    }
    assert_eq!(
        outcomes.keys().collect::<Vec<_>>(),
        sent.keys().collect::<Vec<_>>(),
        "every line delivered"
    );
    // The watcher saw each line at the number its sender was told.
    for (id, seq) in &outcomes {
        let text = &sent[id];
        let seen = watcher.wait_for_json(QUICK, |v| is_message(v, text));
        assert_eq!(seen["seq"].as_u64(), Some(*seq), "{text}");
    }
}
