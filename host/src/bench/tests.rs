use super::load::{Bench, room_name};
use super::options::Mode;
use super::receive::parse_payload;
use super::report::quantile_ms;

#[test]
fn payloads_and_quantiles() {
    assert_eq!(parse_payload(b"#3:17:xxxx"), Some((3, 17)));
    assert_eq!(parse_payload(b"legacy-2: #0:5:xx"), Some((0, 5)));
    assert_eq!(parse_payload(b"hello from bench client 1"), None);
    let v: Vec<u32> = (1..=1000).collect();
    assert_eq!(quantile_ms(&v, 0.5), Some(0.5));
    assert_eq!(quantile_ms(&v, 0.99), Some(0.99));
    assert_eq!(quantile_ms(&v, 1.0), Some(1.0));
    assert_eq!(quantile_ms(&[], 0.5), None);
}

#[test]
fn rooms_and_fanout() {
    assert_eq!(room_name(0, 1), "bench");
    assert_eq!(room_name(7, 1000), "bench-7");
    assert_eq!(Bench::fanout_in(Mode::Framed, 10), 10);
    assert_eq!(Bench::fanout_in(Mode::Plain, 10), 9);
    assert_eq!(Bench::fanout_in(Mode::Legacy, 1), 0);
}
