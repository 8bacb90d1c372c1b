//! The device application (`firmware-sim`: its no_std app and real smoltcp stack, over
//! the user-space UDP bridge) against a real `host-chat server`, with a `host-chat
//! client` as the other member. 127.0.0.1 and ephemeral ports only; every wait bounded.

use e2e_tests::{ChatServer, Running, bin_of, host_chat};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const QUICK: Duration = Duration::from_secs(10);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn server() -> (Running, SocketAddr) {
    let server = ChatServer::start(KEY, &[]);
    (server.process, server.addr)
}

fn device(addr: SocketAddr, nick: &str) -> Running {
    let mut cmd = Command::new(bin_of("firmware-sim", "firmware-sim"));
    cmd.args(["--json", "--nick", nick, "--server", &addr.to_string()])
        .env("HOST_CHAT_KEY", KEY);
    Running::spawn(nick, &mut cmd)
}

/// Waits for a JSON event, recording every JSON line seen on the way.
fn wait(
    process: &mut Running,
    seen: &mut Vec<Value>,
    mut wanted: impl FnMut(&Value) -> bool,
) -> Value {
    process.wait_for_json(QUICK, |value| {
        seen.push(value.clone());
        wanted(value)
    })
}

fn lines_of(seen: &[Value], nick: &str, text: &str) -> usize {
    seen.iter()
        .filter(|v| v["event"] == "message" && v["nick"] == nick && v["text"] == text)
        .count()
}

#[test]
fn device_joins_sends_a_reading_and_receives_a_message() {
    let (_server, addr) = server();
    let mut alice = Running::spawn(
        "alice",
        host_chat()
            .args(["client", "--json", "--nick", "alice"])
            .arg(addr.to_string())
            .env("HOST_CHAT_KEY", KEY),
    );
    let mut alice_seen = Vec::new();
    wait(&mut alice, &mut alice_seen, |v| v["event"] == "joined");

    let spawned = std::time::Instant::now();
    let mut sensor = device(addr, "sensor");
    let mut seen = Vec::new();
    // No RTC: the device clock starts at zero (so it reads no more than the time since
    // the process started) and the time comes from the server.
    let synced = wait(&mut sensor, &mut seen, |v| v["event"] == "clock_synced");
    let device_ms = synced["device_ms"].as_u64().expect("device_ms");
    assert!(
        device_ms <= spawned.elapsed().as_millis() as u64,
        "{synced}"
    );
    let unix = synced["unix"].as_u64().expect("unix");
    assert!(unix.abs_diff(unix_now()) <= 30, "{synced}");
    wait(&mut sensor, &mut seen, |v| v["event"] == "joined");

    sensor.send_line("temp 21.5 C");
    let sent = wait(&mut sensor, &mut seen, |v| v["event"] == "sent");
    let id = sent["id"].clone();
    wait(&mut sensor, &mut seen, |v| {
        v["event"] == "delivered" && v["id"] == id
    });
    wait(&mut alice, &mut alice_seen, |v| {
        v["event"] == "message" && v["nick"] == "sensor" && v["text"] == "temp 21.5 C"
    });

    alice.send_line("hello sensor");
    wait(&mut sensor, &mut seen, |v| {
        v["event"] == "message" && v["nick"] == "alice" && v["text"] == "hello sensor"
    });

    // End of input: the device leaves and exits.
    sensor.close_stdin();
    wait(&mut sensor, &mut seen, |v| v["event"] == "closed");
    let status = sensor.wait_exit(QUICK).expect("firmware-sim exits");
    assert!(status.success(), "{status}");

    // Exactly once, in room order.
    assert_eq!(lines_of(&seen, "sensor", "temp 21.5 C"), 1, "{seen:#?}");
    assert_eq!(lines_of(&seen, "alice", "hello sensor"), 1, "{seen:#?}");
    assert_eq!(lines_of(&alice_seen, "sensor", "temp 21.5 C"), 1);
    let seqs: Vec<u64> = seen
        .iter()
        .filter(|v| v["event"] == "message")
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}
