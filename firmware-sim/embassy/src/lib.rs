//! The chat device application on embassy-net: [`run`] drives a
//! [`Node`](firmware_sim::Node) (what the device sends and when, what it reports) over
//! one [`UdpSocket`] of an embassy-net [`Stack`], on any executor and any
//! `embassy-net-driver` (a W5500, an ESP32's Wi-Fi, a Linux TAP device). It only moves
//! datagrams and time, like the raw-smoltcp driver `firmware_sim::App`: the logic is
//! the node's, once.
//!
//! `no_std`, no allocator, no `unsafe`. Time is embassy-time's [`Instant`] (milliseconds
//! since boot: the device has no RTC and learns the real time from the server).
//!
//! ```text
//!   // the Stack's Runner runs in its own task; the link is up (DHCP or static)
//!   stack.wait_config_up().await;
//!   let mut node = Node::new(&chat, key, rng, now_ms(), behaviour, Script::new(&LINES))?;
//!   let finish = firmware_embassy::run(stack, &mut node, server, 0, buffers, &mut out).await?;
//! ```
//!
//! The PC program `firmware-embassy` (feature `std`) runs the same thing on embassy's std
//! executor over a Linux TAP device; the boards in `../boards/` on real hardware.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

use chat_core::session::Dropped;
use core::fmt;
use embassy_futures::select::{Either, select};
use embassy_net::udp::{PacketMetadata, RecvError, UdpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Instant, Timer};
use firmware_sim::{Error, Finish, Lines, Node, Output};
use firmware_sim::{MAX_DATAGRAM, UDP_PACKETS, UDP_RX_PAYLOAD, UDP_TX_PAYLOAD};
use rand_core::CryptoRng;

pub use firmware_sim;

pub mod board;

/// The UDP socket's rings and the scratch buffer where a datagram is opened in place or
/// sealed: about 3.1 KiB, sized as for the raw-smoltcp driver (see `firmware_sim`'s
/// crate docs). `const`, so firmware can keep it in a `static` (a `StaticCell`).
pub struct Buffers {
    rx_meta: [PacketMetadata; UDP_PACKETS],
    tx_meta: [PacketMetadata; UDP_PACKETS],
    rx: [u8; UDP_RX_PAYLOAD],
    tx: [u8; UDP_TX_PAYLOAD],
    scratch: [u8; MAX_DATAGRAM],
}

impl Buffers {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            rx_meta: [PacketMetadata::EMPTY; UDP_PACKETS],
            tx_meta: [PacketMetadata::EMPTY; UDP_PACKETS],
            rx: [0; UDP_RX_PAYLOAD],
            tx: [0; UDP_TX_PAYLOAD],
            scratch: [0; MAX_DATAGRAM],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Buffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffers").finish_non_exhaustive()
    }
}

/// The device clock: milliseconds since boot.
pub fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// Runs `node` against the chat `server` over a UDP socket on `stack`, bound to
/// `local_port` (0: an ephemeral port from the stack), until the node finishes; every
/// report goes to `out` as it happens. The stack must be configured (static or DHCP:
/// `stack.wait_config_up().await`) and its `Runner` running; make the node then, since
/// its timers (the "no answer" one) start at [`Node::new`].
///
/// Errors: [`Error::Bind`] if the socket cannot be bound.
pub async fn run<R: CryptoRng, L: Lines>(
    stack: Stack<'_>,
    node: &mut Node<'_, R, L>,
    server: IpEndpoint,
    local_port: u16,
    buffers: &mut Buffers,
    out: &mut impl Output,
) -> Result<Finish, Error> {
    let Buffers {
        rx_meta,
        tx_meta,
        rx,
        tx,
        scratch,
    } = buffers;
    let mut socket = UdpSocket::new(stack, rx_meta, rx, tx_meta, tx);
    socket.bind(local_port).map_err(|_| Error::Bind)?;
    loop {
        let now = now_ms();
        node.poll(now, out);
        while let Some(len) = node.poll_transmit(now, scratch) {
            let sent = match scratch.get(..len) {
                // Waits while the transmit ring is full; fails without a route.
                Some(datagram) => socket.send_to(datagram, server).await.is_ok(),
                None => false,
            };
            node.transmitted(sent);
        }
        if let Some(finish) = node.finished() {
            socket.flush().await;
            return Ok(finish);
        }
        let wake = node.poll_at().map_or(Instant::MAX, Instant::from_millis);
        match select(socket.recv_from(scratch), Timer::at(wake)).await {
            Either::First(Ok((len, meta))) => {
                if meta.endpoint != server {
                    node.foreign();
                } else if let Some(datagram) = scratch.get_mut(..len) {
                    node.handle_datagram(now_ms(), datagram, out);
                }
            }
            Either::First(Err(RecvError::Truncated)) => node.dropped(Dropped::TooLong),
            Either::Second(()) => {}
        }
    }
}
