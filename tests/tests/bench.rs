//! `host-chat bench` end to end: a private server, two clients, every line delivered to
//! every member exactly once, nothing lost.

use e2e_tests::{host_chat, run};
use serde_json::Value;
use std::io;
use std::time::Duration;

#[test]
fn bench_against_a_spawned_server_delivers_everything() {
    let mut cmd = host_chat();
    cmd.args([
        "bench",
        "--spawn-server",
        "--clients",
        "2",
        "--messages",
        "20",
        "--json",
    ]);
    let out = run(&mut cmd, io::empty(), Duration::from_secs(60)).success();
    let report: Value = serde_json::from_str(out.stdout_text().trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout_text()));
    assert_eq!(report["mode"], "framed");
    assert_eq!(report["clients"], 2);
    assert_eq!(
        report["fanout"], 2,
        "every member gets every line, its own too"
    );
    assert_eq!(report["sent"], 20);
    assert_eq!(report["accepted"], 20);
    assert_eq!(report["refused"], 0);
    assert_eq!(report["unanswered"], 0);
    assert_eq!(report["delivered"], 40, "{report}");
    assert_eq!(report["expected_deliveries"], 40);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(
        report["server_relayed"], 20,
        "the server counted the same lines"
    );
    assert!(report["delivery_latency"]["p99_ms"].as_f64().is_some());
}

#[test]
fn bench_against_the_plain_relay() {
    let mut cmd = host_chat();
    cmd.args([
        "bench",
        "--mode",
        "plain",
        "--spawn-server",
        "--clients",
        "3",
        "--messages",
        "30",
        "--json",
    ]);
    let out = run(&mut cmd, io::empty(), Duration::from_secs(60)).success();
    let report: Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    assert_eq!(report["fanout"], 2, "the others, not the sender");
    assert_eq!(report["accepted"], 30, "{report}");
    assert_eq!(report["delivered"], 60, "{report}");
}
