//! Any sequence of datagrams and time steps into a relay and two clients: the network
//! between them is driven by the input (deliver, drop, duplicate, reorder), and the input
//! can inject raw bytes or well-formed frames sealed with the real key (as a key holder
//! could), with any timestamp. Nothing may panic; state stays within its bounds (the
//! relay works in small fixed arrays, as a device's would); and each client shows room
//! messages in order, never one number twice.
#![no_main]

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{Client, ClientConfig, ClientEvent, Relay, RelayConfig};
use chat_core::time::{Duration, Instant, WallClock};
use chat_core::wire::{Body, Changes, Names, NoticeCode, PresenceKind, RefuseReason, Repr, Resume};
use chat_core_fuzz::{CounterRng, FuzzClient, FuzzRelay, SmallRelay, UNIX_MS};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const SERVER: u8 = 0;

#[derive(Arbitrary, Debug)]
enum Op {
    Deliver(u8),
    Drop(u8),
    Duplicate(u8),
    Advance(u16),
    Send {
        client: bool,
        text: String,
    },
    Leave(bool),
    Who(bool),
    Raw {
        to: u8,
        from: u8,
        bytes: Vec<u8>,
    },
    Forge {
        to: u8,
        from: u8,
        frame: FuzzFrame,
        age: i16,
    },
}

/// A frame with arbitrary fields, sealed with the real key.
#[derive(Arbitrary, Debug)]
enum FuzzFrame {
    JoinV1 {
        session: u64,
        nick: String,
        room: String,
    },
    Join {
        session: u64,
        version: u8,
        nick: String,
        room: String,
        window: u8,
        resume: Option<(u64, u64)>,
    },
    Welcome {
        epoch: u64,
        next_seq: u64,
        next_msg_id: u32,
        members: u32,
        window: u8,
        presence: u32,
        nick: String,
    },
    Chat {
        session: u64,
        msg_id: u32,
        text: String,
    },
    Receipt {
        msg_id: u32,
        seq: u64,
        recipients: u32,
    },
    Refused {
        msg_id: u32,
        reason: u8,
    },
    Busy {
        msg_id: u32,
        retry_after_ms: u16,
    },
    Deliver {
        seq: u64,
        nick: String,
        text: String,
    },
    Ack {
        session: u64,
        next_seq: u64,
        selective: u64,
        presence: u32,
    },
    Ping {
        session: u64,
        counter: u64,
    },
    Pong {
        counter: u64,
    },
    Leave {
        session: u64,
    },
    Who {
        session: u64,
        counter: u32,
        start: u32,
    },
    Notice {
        code: u8,
        text: String,
    },
    Missed {
        from: u64,
        to: u64,
    },
    Members {
        total: u32,
        start: u32,
        names: Vec<String>,
    },
    Presence {
        members: u32,
        from: u32,
        changes: Vec<(u8, String)>,
    },
    Legacy(String),
}

struct Packet {
    from: u8,
    to: u8,
    bytes: Vec<u8>,
}

struct World<'s> {
    key: Key,
    now: Instant,
    relay: FuzzRelay<'s>,
    clients: [FuzzClient; 2],
    net: Vec<Packet>,
    /// Last room sequence number each client showed, and whether a gap is allowed next.
    last_seq: [Option<u64>; 2],
    may_jump: [bool; 2],
}

impl<'s> World<'s> {
    fn new(storage: &'s mut SmallRelay) -> Self {
        let key = Key::from_bytes(&[3; 32]);
        let now = Instant::from_millis(0);
        let client = |i: u64, nick| {
            Client::new(
                &ClientConfig::new(nick, "room"),
                KeyRing::new(key.clone()),
                CounterRng(i),
                WallClock::synced(now, UNIX_MS),
                now,
            )
            .expect("valid names")
        };
        let storage = storage.storage();
        Self {
            relay: Relay::new(
                RelayConfig::default(),
                KeyRing::new(key.clone()),
                CounterRng(99),
                WallClock::synced(now, UNIX_MS),
                storage,
            )
            .expect("consistent storage"),
            clients: [client(1, "ann"), client(2, "bob")],
            key,
            now,
            net: Vec::new(),
            last_seq: [None; 2],
            may_jump: [true; 2],
        }
    }

    fn deliver(&mut self, packet: Packet) {
        let mut bytes = packet.bytes;
        match packet.to {
            SERVER => {
                let _ = self
                    .relay
                    .handle_datagram(self.now, packet.from, &mut bytes);
            }
            to => {
                if let Some(client) = self.clients.get_mut(usize::from(to - 1) % 2) {
                    let _ = client.handle_datagram(self.now, &mut bytes);
                }
            }
        }
    }

    fn pump(&mut self) {
        let mut buf = [0u8; 1232];
        for _ in 0..64 {
            match self.relay.poll_transmit(self.now, &mut buf) {
                Some((to, len)) => self.net.push(Packet {
                    from: SERVER,
                    to,
                    bytes: buf[..len].to_vec(),
                }),
                None => break,
            }
        }
        while self.relay.poll_event().is_some() {}
        for (i, client) in self.clients.iter_mut().enumerate() {
            for _ in 0..64 {
                match client.poll_transmit(self.now, &mut buf) {
                    Some(len) => self.net.push(Packet {
                        from: i as u8 + 1,
                        to: SERVER,
                        bytes: buf[..len].to_vec(),
                    }),
                    None => break,
                }
            }
            while let Some(event) = client.poll_event() {
                match event {
                    ClientEvent::Message { seq, .. } => {
                        if let Some(last) = self.last_seq[i]
                            && !self.may_jump[i]
                        {
                            assert_eq!(seq, last + 1, "client {i} showed #{seq} after #{last}");
                        }
                        self.last_seq[i] = Some(seq);
                        self.may_jump[i] = false;
                    }
                    ClientEvent::Missed { .. } | ClientEvent::Joined { .. } => {
                        self.may_jump[i] = true;
                    }
                    _ => {}
                }
            }
            assert!(client.unacknowledged() <= 2);
        }
        // Bounded memory: the network of this harness is the only thing that grows.
        self.net.truncate(256);
        assert!(self.relay.member_count() <= 4);
        assert!(self.relay.room_count() <= 2);
    }

    fn forge(&self, frame: &FuzzFrame, age: i16, out: &mut [u8]) -> Option<usize> {
        let mut plain = [0u8; 900];
        let len = match frame {
            FuzzFrame::Legacy(text) => {
                let bytes = text.as_bytes();
                plain.get_mut(..bytes.len())?.copy_from_slice(bytes);
                bytes.len()
            }
            other => {
                let session = self.clients[0].session();
                let mut names = [0u8; 600];
                let (session, body) = match other {
                    FuzzFrame::JoinV1 {
                        session,
                        nick,
                        room,
                    } => (*session, Body::JoinV1 { nick, room }),
                    FuzzFrame::Join {
                        session,
                        version,
                        nick,
                        room,
                        window,
                        resume,
                    } => (
                        *session,
                        Body::Join {
                            version: *version,
                            nick,
                            room,
                            window: *window,
                            resume: resume.map(|(epoch, next_seq)| Resume { epoch, next_seq }),
                        },
                    ),
                    FuzzFrame::Welcome {
                        epoch,
                        next_seq,
                        next_msg_id,
                        members,
                        window,
                        presence,
                        nick,
                    } => (
                        session,
                        Body::Welcome {
                            epoch: *epoch,
                            next_seq: *next_seq,
                            next_msg_id: *next_msg_id,
                            members: *members,
                            window: *window,
                            presence: *presence,
                            nick,
                        },
                    ),
                    FuzzFrame::Chat {
                        session,
                        msg_id,
                        text,
                    } => (
                        *session,
                        Body::Chat {
                            msg_id: *msg_id,
                            text,
                        },
                    ),
                    FuzzFrame::Receipt {
                        msg_id,
                        seq,
                        recipients,
                    } => (
                        session,
                        Body::Receipt {
                            msg_id: *msg_id,
                            seq: *seq,
                            recipients: *recipients,
                        },
                    ),
                    FuzzFrame::Refused { msg_id, reason } => (
                        session,
                        Body::Refused {
                            msg_id: *msg_id,
                            reason: RefuseReason(*reason),
                        },
                    ),
                    FuzzFrame::Busy {
                        msg_id,
                        retry_after_ms,
                    } => (
                        session,
                        Body::Busy {
                            msg_id: *msg_id,
                            retry_after_ms: *retry_after_ms,
                        },
                    ),
                    FuzzFrame::Deliver { seq, nick, text } => (
                        // Addressed to the room the first client is in, as a key holder
                        // (who can read the Welcome) could.
                        self.clients[0].room_epoch(),
                        Body::Deliver {
                            seq: *seq,
                            nick,
                            text,
                        },
                    ),
                    FuzzFrame::Ack {
                        session,
                        next_seq,
                        selective,
                        presence,
                    } => (
                        *session,
                        Body::Ack {
                            next_seq: *next_seq,
                            selective: *selective,
                            presence: *presence,
                        },
                    ),
                    FuzzFrame::Ping { session, counter } => {
                        (*session, Body::Ping { counter: *counter })
                    }
                    FuzzFrame::Pong { counter } => (
                        session,
                        Body::Pong {
                            counter: *counter,
                            members: 1,
                        },
                    ),
                    FuzzFrame::Leave { session } => (*session, Body::Leave),
                    FuzzFrame::Who {
                        session,
                        counter,
                        start,
                    } => (
                        *session,
                        Body::Who {
                            counter: *counter,
                            start: *start,
                        },
                    ),
                    FuzzFrame::Notice { code, text } => (
                        session,
                        Body::Notice {
                            code: NoticeCode(*code),
                            text,
                        },
                    ),
                    FuzzFrame::Missed { from, to } => (
                        session,
                        Body::Missed {
                            from: *from,
                            to: *to,
                        },
                    ),
                    FuzzFrame::Members {
                        total,
                        start,
                        names: list,
                    } => (
                        session,
                        Body::Members {
                            total: *total,
                            start: *start,
                            nicks: Names::pack(list.iter().map(String::as_str), &mut names),
                        },
                    ),
                    FuzzFrame::Presence {
                        members,
                        from,
                        changes,
                    } => (
                        session,
                        Body::Presence {
                            members: *members,
                            from: *from,
                            changes: Changes::pack(
                                changes.iter().filter_map(|(kind, name)| {
                                    Some((PresenceKind::from_u8(*kind % 5)?, name.as_str()))
                                }),
                                &mut names,
                            ),
                        },
                    ),
                    FuzzFrame::Legacy(_) => return None,
                };
                Repr { session, body }.emit(&mut plain).ok()?
            }
        };
        let stamp =
            (UNIX_MS / 1000 + self.now.millis() / 1000).checked_add_signed(i64::from(age))?;
        let token = self
            .key
            .encrypt_with_iv(&plain[..len], stamp, [age as u8; 16], out)
            .ok()?;
        Some(token.len())
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut storage = Box::new(SmallRelay::new());
    let mut world = World::new(&mut storage);
    for op in ops.into_iter().take(200) {
        world.pump();
        let pick = |world: &World, k: u8| {
            (!world.net.is_empty()).then(|| usize::from(k) % world.net.len())
        };
        match op {
            Op::Deliver(k) => {
                if let Some(i) = pick(&world, k) {
                    let packet = world.net.remove(i);
                    world.deliver(packet);
                }
            }
            Op::Drop(k) => {
                if let Some(i) = pick(&world, k) {
                    world.net.remove(i);
                }
            }
            Op::Duplicate(k) => {
                if let Some(i) = pick(&world, k) {
                    let p = &world.net[i];
                    let copy = Packet {
                        from: p.from,
                        to: p.to,
                        bytes: p.bytes.clone(),
                    };
                    world.deliver(copy);
                }
            }
            Op::Advance(ms) => {
                world.now = world.now + Duration::from_millis(u64::from(ms) * 8);
                world.relay.handle_timeout(world.now);
                for client in &mut world.clients {
                    client.handle_timeout(world.now);
                }
            }
            Op::Send { client, text } => {
                let _ = world.clients[usize::from(client)].send(&text);
            }
            Op::Leave(client) => {
                let now = world.now;
                world.clients[usize::from(client)].leave(now);
            }
            Op::Who(client) => world.clients[usize::from(client)].request_members(),
            Op::Raw { to, from, bytes } => world.deliver(Packet {
                from,
                to: to % 3,
                bytes,
            }),
            Op::Forge {
                to,
                from,
                frame,
                age,
            } => {
                let mut out = [0u8; 1300];
                if let Some(len) = world.forge(&frame, age, &mut out) {
                    world.deliver(Packet {
                        from,
                        to: to % 3,
                        bytes: out[..len].to_vec(),
                    });
                }
            }
        }
    }
    world.pump();
});
