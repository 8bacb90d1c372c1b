//! `host-chat bench` end to end: a private server, two clients, every line delivered to
//! every member exactly once, nothing lost.

use e2e_tests::{host_chat, run};
use serde_json::Value;
use std::io;
use std::time::Duration;

/// `--drain`: a run stops as soon as every line has its answer and every delivery came;
/// the drain only ends a run where something is missing. Generous, so that a loaded
/// machine's pause is never counted as loss (the default, 5 s, is for people watching).
const DRAIN: &str = "--drain=30";
/// Bound on a whole run: the drain and more, against a hang.
const RUN: Duration = Duration::from_secs(120);

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
        DRAIN,
    ]);
    let out = run(&mut cmd, io::empty(), RUN).success();
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
        DRAIN,
    ]);
    let out = run(&mut cmd, io::empty(), RUN).success();
    let report: Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    assert_eq!(report["fanout"], 2, "the others, not the sender");
    assert_eq!(report["accepted"], 30, "{report}");
    assert_eq!(report["delivered"], 60, "{report}");
}

#[test]
fn bench_spreads_clients_over_rooms_and_reads_the_servers_cost() {
    for mode in ["framed", "plain"] {
        let mut cmd = host_chat();
        cmd.args([
            "bench",
            "--mode",
            mode,
            "--spawn-server",
            "--clients",
            "6",
            "--rooms",
            "3",
            "--messages",
            "60",
            "--json",
            DRAIN,
        ]);
        let out = run(&mut cmd, io::empty(), RUN).success();
        let report: Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
        // Two members per room: the sender and the other (framed), the other (plain).
        let fanout = if mode == "framed" { 2 } else { 1 };
        assert_eq!(report["rooms"], 3, "{report}");
        assert_eq!(report["fanout"], fanout, "{report}");
        assert_eq!(report["accepted"], 60, "{report}");
        assert_eq!(report["expected_deliveries"], 60 * fanout, "{report}");
        assert_eq!(report["delivered"], 60 * fanout, "{report}");
        assert_eq!(report["lost"], 0, "{report}");
        assert_eq!(report["stopped"], "complete", "{report}");
        assert!(report["error"].is_null(), "{report}");
        // Read from /proc: the spawned server's CPU time and memory, our own CPU time.
        assert!(report["server_cpu_s"].as_f64().is_some(), "{report}");
        assert!(report["server_rss_kib"].as_u64().unwrap() > 0, "{report}");
        assert!(
            report["server_hwm_kib"].as_u64() >= report["server_rss_kib"].as_u64(),
            "{report}"
        );
        assert!(report["bench_cpu_s"].as_f64().is_some(), "{report}");
    }
}

#[test]
fn bench_passes_server_args_through_and_fails_clearly() {
    let mut cmd = host_chat();
    cmd.args([
        "bench",
        "--spawn-server",
        "--server-arg=--no-such-flag",
        "--messages",
        "1",
    ]);
    let out = run(&mut cmd, io::empty(), Duration::from_secs(30));
    assert!(!out.status.success());
    let err = out.stderr_text();
    assert!(
        err.contains("did not start") && err.contains("--no-such-flag"),
        "the server got the argument and said so: {err}"
    );
}

#[test]
fn bench_stops_at_its_time_limit_and_says_so() {
    // 2,000 lines at 100/s would take 20 s; the limit stops it after about 1 s.
    let mut cmd = host_chat();
    cmd.args([
        "bench",
        "--mode",
        "plain",
        "--spawn-server",
        "--clients",
        "2",
        "--messages",
        "2000",
        "--rate",
        "100",
        "--time-limit",
        "1",
        "--json",
    ]);
    let out = run(&mut cmd, io::empty(), Duration::from_secs(30)).success();
    let report: Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    let stopped = report["stopped"].as_str().unwrap();
    assert!(stopped.starts_with("time limit"), "{report}");
    assert!(report["unsent"].as_u64().unwrap() > 1000, "{report}");
    assert!(report["sent"].as_u64().unwrap() >= 100, "{report}");
}
