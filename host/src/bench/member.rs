//! The one place the load generator uses chat_core's `Client` (built by host's
//! [`new_client`], as `host-chat client` builds its own). Everything chat_core's client
//! API says reaches the rest of `bench` as a [`Happening`]: when the API changes (the
//! relay's protocol version 2: `Delivered.seq` becomes `u64`, presence events, paged
//! member lists), this file is the one to follow it.

use super::receive::parse_payload;
use crate::chat::client::{OUTBOX, new_client};
use crate::keys::Ring;
use crate::net::Clock;
use anyhow::Context as _;
use chat_core::session::{Client, ClientConfig, ClientEvent};
use chat_core::time::Instant;

/// Lines a member may have awaiting the server's answer (its outbox, as the chat
/// client's).
pub const MAX_IN_FLIGHT: usize = OUTBOX;

/// A load member: the chat client's outbox, smaller buffers (ten thousand members share
/// one process): lines up to 816 bytes (the longest, 810, fits), 16 events (drained every
/// turn), 8 room messages kept across a gap.
type BenchClient = Client<rand::rngs::StdRng, 7, 816, OUTBOX, 16, 8>;

/// What a member's session says, as far as the load generator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// In the room.
    Joined,
    /// A member's line (not a server notice or presence): its sender and number when
    /// it is a benchmark line (`#C:K:...`, [`parse_payload`]).
    Line(Option<(usize, u64)>),
    /// The server answered our line `id` (numbered from 1 by `send`): taken into the
    /// room (`accepted`) or refused.
    Answered { id: u64, accepted: bool },
    /// One of our lines will never be answered (the session closed first).
    Undelivered,
    /// A message from the server (why a join was refused, for one).
    Notice(String),
    /// The session is over (left, or the join was refused).
    Closed,
}

/// One chat member of the load.
#[derive(Debug)]
pub struct Member {
    client: Box<BenchClient>,
}

impl Member {
    /// A member `nick` of `room`, not yet joined (it joins on its first transmissions).
    pub fn new(
        nick: &str,
        room: &str,
        max_datagram: usize,
        ring: &Ring,
        clock: &Clock,
    ) -> anyhow::Result<Self> {
        let config = ClientConfig {
            max_datagram,
            ..ClientConfig::new(nick, room)
        };
        let client = new_client(&config, ring, clock)?
            .with_context(|| format!("bad member or room name: {nick:?} / {room:?}"))?;
        Ok(Self {
            client: Box::new(client),
        })
    }

    /// Queues a line; `false` when its outbox is full or the session is over.
    pub fn send(&mut self, text: &str) -> bool {
        self.client.send(text).is_ok()
    }

    /// Lines sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.client.unacknowledged()
    }

    /// The next datagram to send, written into `buf`: its length.
    pub fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.client.poll_transmit(now, buf)
    }

    /// A datagram from the server (opened in place).
    pub fn receive(&mut self, now: Instant, datagram: &mut [u8]) {
        let _ = self.client.handle_datagram(now, datagram);
    }

    /// When its timers are due.
    pub fn timer(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    /// Runs its timers.
    pub fn on_timer(&mut self, now: Instant) {
        self.client.handle_timeout(now);
    }

    /// Says goodbye.
    pub fn leave(&mut self, now: Instant) {
        self.client.leave(now);
    }

    /// What happened since the last call, one at a time.
    pub fn next(&mut self) -> Option<Happening> {
        loop {
            let happening = match self.client.poll_event()? {
                ClientEvent::Joined { .. } => Happening::Joined,
                ClientEvent::Message { text, .. } => {
                    Happening::Line(parse_payload(text.as_bytes()))
                }
                ClientEvent::Delivered { id, .. } => Happening::Answered {
                    id: u64::from(id),
                    accepted: true,
                },
                ClientEvent::Refused { id, .. } => Happening::Answered {
                    id: u64::from(id),
                    accepted: false,
                },
                ClientEvent::Undelivered { .. } => Happening::Undelivered,
                ClientEvent::Notice { text } => Happening::Notice(text.as_str().to_owned()),
                ClientEvent::Closed => Happening::Closed,
                // Presence, clock, member lists, server health: not counted.
                _ => continue,
            };
            return Some(happening);
        }
    }
}
