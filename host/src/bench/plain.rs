//! `host-chat bench-relay --plain`: the baseline `host-chat server` is measured against.
//!
//! What the server does for legacy senders (a receipt `server: received as #SEQ for N
//! members` to the sender, `legacy-K: text` to every other member of its room) without
//! cryptography, on the same event loop and batching ([`net::run`]), with O(1) lookups.
//!
//! Joining: an address's first datagram only puts it in a room (the text after its last
//! ` in room `, as in `hello from bench client 7 in room bench-3`, or room "" without
//! one) and gets its receipt; it is not relayed. So joins cost O(1), the least any relay
//! can do, and `host-chat bench --mode plain --rooms R` spreads its clients this way.

use super::{MAX_DATAGRAM, RelayArgs};
use crate::net::{self, Endpoint, Machine, Step};
use anyhow::Context as _;
use chat_core::time::Instant;
use mio::net::UdpSocket;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;

/// Lines the plain relay keeps for fan-out; a line arriving while the oldest of them is
/// still going out is dropped (the sender gets no receipt).
const SLOTS: usize = 256;

/// `host-chat bench-relay --plain`.
pub fn run(args: &RelayArgs) -> anyhow::Result<()> {
    let bind = crate::chat::parse_bind(&args.bind)?;
    let socket = UdpSocket::bind(bind).with_context(|| format!("cannot listen on {bind}"))?;
    let mut endpoint = Endpoint::new(socket, None).context("cannot set up the event loop")?;
    let bound = endpoint.local_addr()?;
    let signals = net::signals(endpoint.waker())?;
    if args.print_port {
        net::out(&bound.port().to_string());
    }
    net::err(&format!("plain relay (no cryptography) on {bound}"));
    let mut relay = PlainRelay {
        members: HashMap::new(),
        rooms: Vec::new(),
        room_index: HashMap::new(),
        slots: (0..SLOTS)
            .map(|_| Vec::with_capacity(MAX_DATAGRAM))
            .collect(),
        queue: VecDeque::with_capacity(SLOTS * 256),
        seq: 0,
        signals,
    };
    let clock = net::Clock::new();
    net::run(&mut endpoint, &clock, MAX_DATAGRAM, &mut relay).context("event loop failed")?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum PlainOut {
    Receipt {
        to: SocketAddr,
        seq: u64,
        members: usize,
    },
    Deliver {
        to: SocketAddr,
        seq: u64,
    },
    /// The receipt of a first datagram (not relayed).
    Joined {
        to: SocketAddr,
        members: usize,
    },
}

/// A known address: its room and its number in the relay (`legacy-K`).
#[derive(Debug, Clone, Copy)]
struct Member {
    room: usize,
    number: usize,
}

struct PlainRelay {
    members: HashMap<SocketAddr, Member>,
    /// Each room's members, in order of arrival.
    rooms: Vec<Vec<SocketAddr>>,
    room_index: HashMap<Vec<u8>, usize>,
    slots: Vec<Vec<u8>>,
    queue: VecDeque<PlainOut>,
    seq: u64,
    signals: Receiver<i32>,
}

/// The room named in a first datagram: the text after its last ` in room `.
fn room_name(text: &[u8]) -> &[u8] {
    const MARK: &[u8] = b" in room ";
    text.windows(MARK.len())
        .rposition(|w| w == MARK)
        .map_or(&[], |at| &text[at + MARK.len()..])
}

impl PlainRelay {
    /// A new member, in the room its first datagram names.
    fn join(&mut self, from: SocketAddr, datagram: &[u8]) -> Member {
        let name = room_name(datagram);
        let room = match self.room_index.get(name) {
            Some(&room) => room,
            None => {
                self.rooms.push(Vec::new());
                self.room_index.insert(name.to_vec(), self.rooms.len() - 1);
                self.rooms.len() - 1
            }
        };
        self.rooms[room].push(from);
        let member = Member {
            room,
            number: self.members.len() + 1,
        };
        self.members.insert(from, member);
        member
    }
}

impl Machine for PlainRelay {
    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        if datagram.len() > MAX_DATAGRAM || std::str::from_utf8(datagram).is_err() {
            return;
        }
        // A slot still waiting to go out is not overwritten: the line is dropped.
        if let Some(PlainOut::Deliver { seq, .. } | PlainOut::Receipt { seq, .. }) =
            self.queue.front()
            && self.seq + 1 - seq >= SLOTS as u64
        {
            return;
        }
        let Some(&member) = self.members.get(&from) else {
            let member = self.join(from, datagram);
            self.queue.push_back(PlainOut::Joined {
                to: from,
                members: self.rooms[member.room].len(),
            });
            return;
        };
        self.seq += 1;
        let seq = self.seq;
        let slot = &mut self.slots[(seq % SLOTS as u64) as usize];
        slot.clear();
        let _ = write!(ByteWriter(slot), "legacy-{}: ", member.number);
        slot.extend_from_slice(datagram);
        let room = &self.rooms[member.room];
        self.queue.push_back(PlainOut::Receipt {
            to: from,
            seq,
            members: room.len(),
        });
        for &to in room {
            if to != from {
                self.queue.push_back(PlainOut::Deliver { to, seq });
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        match self.queue.pop_front()? {
            PlainOut::Receipt { to, seq, members } => {
                let mut cursor = io::Cursor::new(buf);
                let _ = io::Write::write_fmt(
                    &mut cursor,
                    format_args!("server: received as #{seq} for {members} members"),
                );
                Some((to, cursor.position() as usize))
            }
            PlainOut::Joined { to, members } => {
                let mut cursor = io::Cursor::new(buf);
                let _ = io::Write::write_fmt(
                    &mut cursor,
                    format_args!("server: received as #0 for {members} members"),
                );
                Some((to, cursor.position() as usize))
            }
            PlainOut::Deliver { to, seq } => {
                let slot = &self.slots[(seq % SLOTS as u64) as usize];
                let len = slot.len().min(buf.len());
                buf[..len].copy_from_slice(&slot[..len]);
                Some((to, len))
            }
        }
    }

    fn app(&mut self, _now: Instant) -> Step {
        if self.signals.try_recv().is_ok() {
            return Step::Stop;
        }
        Step::Continue(None)
    }

    fn socket_error(&mut self, _now: Instant, _error: &io::Error) {}
}

/// `write!` into a byte vector.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_from_the_first_datagram() {
        assert_eq!(
            room_name(b"hello from bench client 7 in room bench-3"),
            b"bench-3"
        );
        assert_eq!(room_name(b"hello from bench client 7"), b"");
        assert_eq!(room_name(b"a in room x in room y"), b"y");
    }
}
