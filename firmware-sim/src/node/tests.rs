//! The node's unit tests.

// Tests run without the `std` feature too.
#[allow(unused_extern_crates)]
extern crate std;
use super::reading::render;
use super::*;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

#[test]
fn renders_readings_without_fmt() {
    assert_eq!(
        render("temp 21.5 C #{n}", 12, 0).as_str(),
        "temp 21.5 C #12"
    );
    assert_eq!(render("{uptime}s {n}", 3, 0).as_str(), "0s 3");
    assert_eq!(render("#{N}", 4, 0).as_str(), "#4");
    assert_eq!(
        render("{n}{n}", u64::MAX, 0).as_str(),
        "1844674407370955161518446744073709551615"
    );
    assert_eq!(render("{x} é {", 1, 2).as_str(), "{x} é {");
    let long = "é".repeat(100);
    let cut = render(&long, 0, 0);
    assert_eq!(cut.len(), TEXT_LEN, "cut on a character boundary");
}

/// An RNG good enough for a unit test (never for a device).
struct CountingRng(u64);
impl rand_core::TryRng for CountingRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for CountingRng {}

fn node<L: Lines>(behaviour: Behaviour<'_>, lines: L) -> Node<'_, CountingRng, L> {
    Node::new(
        &ClientConfig::new("dev", "lobby"),
        Key::from_bytes(&[7; 32]),
        CountingRng(1),
        0,
        behaviour,
        lines,
    )
    .unwrap()
}

/// Lines wait for room in the outbox (two lines), in order, none lost or repeated.
#[test]
fn lines_wait_for_room_in_order() {
    let script = ["a", "b", "c"];
    let mut node = node(Behaviour::default(), Script::new(&script));
    let mut seen = Vec::new();
    node.poll(0, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
    assert_eq!(
        seen,
        [
            r#"{"event":"sent","id":1,"text":"a"}"#,
            r#"{"event":"sent","id":2,"text":"b"}"#
        ]
    );
    assert_eq!(node.lines().next, 2, "c waits");
    assert_eq!(node.poll_at(), Some(3000), "the no-answer timer");
}

#[test]
fn readings_are_due_every_period_and_the_latest_wins() {
    let behaviour = Behaviour {
        every: Some((1000, "r{n} at {uptime}")),
        ..Behaviour::default()
    };
    let mut node = node(behaviour, ());
    let mut sent = Vec::new();
    let mut out = |r: &Report<'_>| {
        if let What::Sent { text, .. } = r.what {
            sent.push(text.to_string());
        }
    };
    for now in [0, 1000, 2000, 3000, 4000] {
        node.poll(now, &mut out);
    }
    // Two fit the outbox; the third waits and is replaced twice by newer readings.
    assert_eq!(sent, ["r1 at 0", "r2 at 1"]);
    assert_eq!(node.stats().readings_skipped, 2);
}

#[test]
fn a_too_long_line_is_reported_and_skipped() {
    let long = "x".repeat(TEXT_LEN + 1);
    let script = [long.as_str(), "ok"];
    let mut node = node(Behaviour::default(), Script::new(&script));
    let mut seen = Vec::new();
    node.poll(0, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
    assert_eq!(
        seen[0],
        format!(
            r#"{{"event":"undelivered","text":"{long}","reason":"not sent: message too long: at most {TEXT_LEN} bytes"}}"#
        )
    );
    assert_eq!(seen[1], r#"{"event":"sent","id":1,"text":"ok"}"#);
    assert_eq!(node.lines().next, 2);
}

/// At the end of its lines a device that never hears the server gives up after the
/// grace: each line given gets one `undelivered` (core's for the two it held, the
/// node's for the one it never took), and the outcome says it never joined.
#[test]
fn gives_up_after_the_grace_and_every_line_gets_an_outcome() {
    let script = ["a", "b", "c"];
    let behaviour = Behaviour {
        leave_when_done: Some(GRACE_MS),
        ..Behaviour::default()
    };
    let mut node = node(behaviour, Script::new(&script));
    let mut seen = Vec::new();
    let mut out = |r: &Report<'_>| seen.push(r.json().to_string());
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut now = 0;
    node.poll(now, &mut out);
    // Every datagram goes out, and none comes back.
    while node.finished().is_none() && now < 10_000 {
        while node.poll_transmit(now, &mut buf).is_some() {}
        now = node.poll_at().expect("a timer");
        node.poll(now, &mut out);
    }
    assert_eq!(node.finished(), Some(Finish::GaveUp));
    assert_eq!(now, GRACE_MS, "given up when the grace ended");
    let outcome = node.outcome().unwrap();
    assert_eq!(
        (
            outcome.joined,
            outcome.given,
            outcome.delivered,
            outcome.undelivered
        ),
        (false, 3, 0, 3)
    );
    assert_eq!(
        outcome.failure(),
        Some(Failure::NeverJoined { room: "lobby" })
    );
    let tail: Vec<&str> = seen
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            r#"{"event":"undelivered","text":"c","reason":"not sent: the session ended first"}"#,
            r#"{"event":"undelivered","id":1,"text":"a"}"#,
            r#"{"event":"undelivered","id":2,"text":"b"}"#,
            r#"{"event":"closed"}"#,
            r#"{"event":"exit","reason":"gave_up","device_ms":5000,"joined":false,"given":3,"delivered":0,"undelivered":3,"error":"never joined room lobby: no answer from the server"}"#,
        ]
    );
    assert_eq!(node.poll_at(), None);
}

#[test]
fn failures_read_as_one_sentence() {
    let outcome = Outcome {
        finish: Finish::Done,
        joined: true,
        refusal: None,
        given: 1,
        delivered: 0,
        undelivered: 1,
        room: "lobby",
    };
    assert_eq!(
        outcome.failure().unwrap().to_string(),
        "1 of 1 line did not reach the room"
    );
    let some = Outcome {
        given: 3,
        undelivered: 2,
        ..outcome
    };
    assert_eq!(
        some.failure().unwrap().to_string(),
        "2 of 3 lines did not reach the room"
    );
    let refused = Outcome {
        refusal: Some("room \"x\" is full"),
        joined: false,
        finish: Finish::Closed,
        ..outcome
    };
    assert_eq!(
        refused.failure().unwrap().to_string(),
        "the server refused to let us in: room \"x\" is full"
    );
    let fine = Outcome {
        undelivered: 0,
        delivered: 1,
        ..outcome
    };
    assert!(fine.is_success());
    assert!(
        !Outcome {
            finish: Finish::TimedOut,
            ..fine
        }
        .is_success()
    );
    assert!(
        !Outcome {
            finish: Finish::Closed,
            ..fine
        }
        .is_success()
    );
    assert!(
        Outcome {
            finish: Finish::GaveUp,
            ..fine
        }
        .is_success()
    );
    let report = Report {
        what: What::Finished(refused),
        device_ms: 7,
        nick: "dev",
        room: "lobby",
    };
    assert_eq!(
        report.json().to_string(),
        r#"{"event":"exit","reason":"closed","device_ms":7,"joined":false,"given":1,"delivered":0,"undelivered":1,"error":"the server refused to let us in: room \"x\" is full"}"#
    );
}

#[test]
fn times_out_and_stops() {
    let behaviour = Behaviour {
        run_for_ms: Some(500),
        ..Behaviour::default()
    };
    let mut node = node(behaviour, ());
    let mut seen = Vec::new();
    node.poll(499, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
    assert!(node.finished().is_none());
    assert_eq!(node.poll_at(), Some(500));
    node.poll(500, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
    assert_eq!(node.finished(), Some(Finish::TimedOut));
    assert_eq!(
        seen.last().unwrap(),
        r#"{"event":"exit","reason":"timeout","device_ms":500,"joined":false,"given":0,"delivered":0,"undelivered":0,"error":"never joined room lobby: no answer from the server"}"#
    );
    let mut buf = [0u8; MAX_DATAGRAM];
    assert_eq!(node.poll_transmit(500, &mut buf), None);
    assert_eq!(node.poll_at(), None);
}
