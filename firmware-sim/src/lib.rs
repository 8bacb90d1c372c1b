//! The chat device application: core's [`Client`] with what a device sends and when
//! ([`node`]), and its raw-smoltcp driver ([`App`], feature `smoltcp`). The embassy-net
//! driver is the `firmware-embassy` crate beside this one, over the same [`node`].
//!
//! `no_std`, no allocator, no `unsafe`: every buffer is caller-owned ([`Buffers`]:
//! firmware keeps them in `static`s), the network is any [`smoltcp::phy::Device`], time is
//! any monotonic millisecond [`Clock`] (it may start at zero: the device has no RTC),
//! and randomness any [`CryptoRng`](rand_core::CryptoRng): the chip's hardware RNG or a
//! CSPRNG seeded from one. The device learns the real time from the server's verified
//! pong (the client starts with an unsynced [`WallClock`]).
//!
//! ```text
//!   let node = Node::new(&chat, key, rng, clock(), behaviour, Script::new(&LINES))?;
//!   let mut app = App::new(node, &net, seed, nic, clock, buffers)?;
//!   while app.node().finished().is_none() {
//!       app.poll(&mut out);             // network in, timers, lines, network out, reports
//!       sleep_until(app.poll_at());     // or until the NIC interrupts
//!   }
//! ```
//!
//! Features: `smoltcp` ([`App`], [`stub`]), `ethernet` (`App::new_ethernet`), `std` (the
//! PC side: [`bridge`], `keys`, the `firmware-sim` binary), `tap` (`firmware-sim --tap`).
//! The embassy driver and the boards use this crate with `default-features = false`:
//! the [`node`] only, no smoltcp of this version.
//!
//! # Sizes, for a small MCU
//!
//! | what | value | why |
//! | --- | --- | --- |
//! | [`MAX_DATAGRAM`] | 1232 | what the server sends: its deliveries (and member lists) may be that long, and a device that refused them would never acknowledge them |
//! | [`TEXT_LEN`] | 128 | longest line sent; longer lines received are cut to 128 bytes in events |
//! | [`MAX_SEND_DATAGRAM`] | 332 | the longest token the device ever sends (a 128-byte line) |
//! | [`OUTBOX`] | 2 | lines awaiting the server's receipt |
//! | [`EVENTS`] | 4 | events between two drains; [`App::poll`] drains after every datagram |
//! | [`REORDER`] | 0 | room messages kept while a gap before them fills: none, so after a loss the server sends what followed again (each one kept would cost 200 bytes of RAM) |
//!
//! The trade-off: a 512-byte receive path would save about 1.4 KiB of RAM (the socket's
//! receive ring and the scratch buffer are one datagram each), but the server would
//! then have to know the device's limit; it does not (the join carries none), and its
//! deliveries of long lines would be dropped as too long and retransmitted until the
//! server gives up on the device. So the device receives full 1232-byte datagrams and
//! only *sends* short ones.
//!
//! [`Client`]: chat_core::session::Client
//! [`WallClock`]: chat_core::time::WallClock

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "smoltcp")]
pub mod app;
pub mod config;
pub mod node;
#[cfg(feature = "smoltcp")]
pub mod stub;

#[cfg(all(feature = "std", feature = "smoltcp"))]
pub mod bridge;
#[cfg(feature = "std")]
pub mod keys;

#[cfg(feature = "smoltcp")]
pub use app::{App, Buffers, Clock, Metadata, NetConfig, Payload};
pub use chat_core;
pub use node::{
    Behaviour, DeviceClient, Error, Event, Failure, Finish, GRACE_MS, Lines, Node, Outcome, Output,
    Report, Script, Stats, What,
};
#[cfg(feature = "smoltcp")]
pub use smoltcp;

use chat_core::session::{DEFAULT_MAX_DATAGRAM, max_text_len};
use chat_core::wire::DELIVER_OVERHEAD;

/// Largest datagram the device receives (and the most it would send): the server's.
pub const MAX_DATAGRAM: usize = DEFAULT_MAX_DATAGRAM;
/// Bytes kept per line, in the outbox and in events: the longest line sent.
pub const TEXT_LEN: usize = 128;
/// Lines that may await the server's receipt at once.
pub const OUTBOX: usize = 2;
/// Events that may wait between two drains.
pub const EVENTS: usize = 4;
/// Room messages kept while a gap before them fills: none on the device (the server
/// sends what followed a loss again).
pub const REORDER: usize = 0;
/// The longest token the device sends: a [`TEXT_LEN`]-byte chat line (a delivery's
/// overhead bounds every frame the client emits).
pub const MAX_SEND_DATAGRAM: usize = chat_core::fernet::token_len(TEXT_LEN + DELIVER_OVERHEAD);
/// Bytes of the UDP socket's receive ring: one full datagram, since the application
/// takes each datagram out as soon as smoltcp has put it in.
pub const UDP_RX_PAYLOAD: usize = MAX_DATAGRAM;
/// Bytes of the UDP socket's transmit ring: two of the longest datagrams sent.
pub const UDP_TX_PAYLOAD: usize = 2 * MAX_SEND_DATAGRAM;
/// Datagrams (and ring paddings) each UDP ring may hold.
pub const UDP_PACKETS: usize = 2;

const _: () = assert!(TEXT_LEN <= max_text_len(MAX_DATAGRAM));
const _: () = assert!(MAX_SEND_DATAGRAM <= MAX_DATAGRAM);
