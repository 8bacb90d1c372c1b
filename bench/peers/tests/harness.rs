//! The harness end to end: a private mosquitto, the MQTT load, the rate search.

use serde_json::Value;
use std::process::Command;

fn peers() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peers"))
}

fn json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("peers runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
#[cfg_attr(
    not(have_mosquitto),
    ignore = "needs mosquitto (apt-get install mosquitto mosquitto-clients)"
)]
fn every_subscriber_gets_every_message_from_a_private_broker() {
    let report = json(peers().args([
        "mqtt",
        "--spawn-broker",
        "--clients",
        "3",
        "--messages",
        "30",
        "--json",
    ]));
    assert_eq!(report["mode"], "mqtt-qos1");
    assert_eq!(
        report["accepted"], 30,
        "every PUBLISH got its PUBACK: {report}"
    );
    assert_eq!(report["fanout"], 3.0, "{report}");
    assert_eq!(report["delivered"], 90, "{report}");
    assert_eq!(report["expected_deliveries"], 90, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["stopped"], "complete", "{report}");
    assert!(report["server_rss_kib"].as_u64().unwrap() > 0, "{report}");
    assert!(report["delivery_latency"]["p99_ms"].as_f64().is_some());
}

#[test]
#[cfg_attr(
    not(have_mosquitto),
    ignore = "needs mosquitto (apt-get install mosquitto mosquitto-clients)"
)]
fn the_search_raises_the_rate_until_its_ceiling() {
    // 2 subscribers easily take 20 and 40 messages/s; the ceiling (--max 40) ends it.
    let exe = env!("CARGO_BIN_EXE_peers");
    let outcome = json(peers().args([
        "search",
        "--seconds",
        "0.5",
        "--start",
        "20",
        "--max",
        "40",
        "--drain",
        "1",
        "--",
        exe,
        "mqtt",
        "--spawn-broker",
        "--clients",
        "2",
    ]));
    assert_eq!(outcome["sustained"], 40.0, "{outcome}");
    assert_eq!(outcome["probes"], 2, "{outcome}");
    assert_eq!(outcome["best"]["accepted"], 20, "{outcome}");
}

#[test]
fn a_broker_that_cannot_start_is_an_error_that_says_what_to_install() {
    let out = peers()
        .args([
            "mqtt",
            "--spawn-broker",
            "--mosquitto",
            "/nonexistent/mosquitto",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install mosquitto"), "{err}");
}

#[test]
fn a_search_whose_target_never_passes_reports_zero() {
    // `false` prints no report: every probe fails, the rate halves down to --min.
    let outcome = json(peers().args([
        "search",
        "--seconds",
        "0.1",
        "--start",
        "40",
        "--min",
        "10",
        "--",
        "false",
    ]));
    assert_eq!(outcome["sustained"], 0.0, "{outcome}");
    assert_eq!(outcome["probes"], 3, "40, 20, 10: {outcome}");
}
