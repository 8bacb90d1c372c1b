//! A chat member: joins a room through the server, sends lines reliably and in order,
//! receives the room's messages exactly once and in the room's order.

use super::{
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_DATAGRAM, DEFAULT_TTL, Dropped, REFUSED_SEQ, judge_age,
    max_text_len, open, seal_bytes_in_place, truncated,
};
use crate::fernet::KeyRing;
use crate::time::{Duration, Instant, WallClock};
use crate::wire::{self, Body, NAME_MAX, NoticeCode, Plaintext, Repr};
use heapless::{Deque, String};
use rand_core::CryptoRng;

/// How a client behaves; [`ClientConfig::new`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig<'a> {
    /// Our nickname, 1 to 32 bytes.
    pub nick: &'a str,
    /// The room to join, 1 to 32 bytes.
    pub room: &'a str,
    /// Largest datagram (token text) we send or accept.
    pub max_datagram: usize,
    /// Largest accepted token age.
    pub ttl: Duration,
    /// How far in the future a token's timestamp may be (the server's clock ahead of
    /// ours).
    pub clock_skew: Duration,
    /// How often to ping the server.
    pub keepalive: Duration,
    /// Silence after which the server counts as lost.
    pub server_timeout: Duration,
    /// How long to wait for the first answer before telling the user.
    pub no_answer_after: Duration,
    /// First retransmission timeout; doubles on every retry up to `max_rto`.
    pub initial_rto: Duration,
    /// Longest retransmission timeout.
    pub max_rto: Duration,
    /// How long to wait for the server's goodbye after [`Client::leave`].
    pub leave_timeout: Duration,
    /// How long [`Client::leave`] first lets unanswered lines reach the room.
    pub drain_timeout: Duration,
}

impl<'a> ClientConfig<'a> {
    /// Defaults: 1232-byte datagrams, 60 s TTL, a ping every 5 s, the server lost after
    /// 15 s of silence, "no answer" after 3 s, retransmissions from 300 ms to 4 s, up to
    /// 5 s on leaving for unanswered lines.
    pub const fn new(nick: &'a str, room: &'a str) -> Self {
        Self {
            nick,
            room,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            ttl: DEFAULT_TTL,
            clock_skew: DEFAULT_CLOCK_SKEW,
            keepalive: Duration::from_secs(5),
            server_timeout: Duration::from_secs(15),
            no_answer_after: Duration::from_secs(3),
            initial_rto: Duration::from_millis(300),
            max_rto: Duration::from_secs(4),
            leave_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Where a client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// No real-time clock yet: asking the server for the time with pings.
    SyncingClock,
    /// Sending joins until the server welcomes us.
    Joining,
    /// In the room.
    Joined,
    /// Said goodbye; waiting briefly for the server's answer.
    Leaving,
    /// Done: left, or refused by the server.
    Closed,
}

/// What happened, for the application to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent<const TEXT: usize> {
    /// The server welcomed us into the room (again, after a server restart or a lost
    /// session, when `rejoined`).
    Joined { members: u16, rejoined: bool },
    /// A room message, in room order, exactly once.
    Message {
        seq: u64,
        nick: String<NAME_MAX>,
        text: String<TEXT>,
        /// The server's own line (joins, leaves) rather than a member's.
        notice: bool,
        /// When the server relayed it, Unix seconds.
        timestamp: u64,
    },
    /// The server's answer to our line `id` (the value [`Client::send`] returned): it
    /// became room message `seq` for `recipients` members. `seq` is `None` when the
    /// answer itself was lost but a later one covers this line.
    Delivered {
        id: u32,
        seq: Option<u64>,
        recipients: u16,
    },
    /// The server refused our line `id` (too long for it).
    Refused { id: u32 },
    /// Our line `id` did not reach the room: the session closed (we left, the join was
    /// refused, or the server stopped answering) before the server took it. Every line
    /// still waiting gets one, in order, just before [`ClientEvent::Closed`].
    Undelivered { id: u32 },
    /// A message from the server.
    Notice { text: String<TEXT> },
    /// Room messages `from..to` were dropped by the server before we got them.
    Missed { from: u64, to: u64 },
    /// Answer to [`Client::request_members`]: `total` members, the first names.
    Members { total: u16, names: String<TEXT> },
    /// No answer from the server yet, after `waited`: wrong address, server down, or a
    /// different key (a server ignores tokens it cannot verify).
    NoAnswer { waited: Duration },
    /// Nothing heard from the server for `silent_for`.
    ServerLost { silent_for: Duration },
    /// The server is heard again after [`ClientEvent::ServerLost`].
    ServerBack,
    /// The server no longer knows us (it restarted?): joining again.
    Rejoining,
    /// The real time was learnt from the server (devices without a clock).
    ClockSynced { unix_secs: u64 },
    /// The join was refused, or we left: the session is over.
    Closed,
}

/// Why [`Client::send`] did not take a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Longer than `max` bytes, the most a datagram can carry.
    TooLong { max: usize },
    /// Too many lines await the server's answer; try again after the next event.
    QueueFull,
    /// The session is over.
    Closed,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong { max } => write!(f, "message too long: at most {max} bytes"),
            Self::QueueFull => f.write_str("too many messages waiting for the server"),
            Self::Closed => f.write_str("not connected"),
        }
    }
}

/// A line waiting for the server's receipt.
#[derive(Clone, Debug)]
struct Outgoing<const TEXT: usize> {
    /// What [`Client::send`] returned.
    id: u32,
    /// The number on the wire (renumbered if we join again).
    msg_id: u32,
    text: String<TEXT>,
}

/// A chat member, as a sans-IO state machine (see the [module docs](super) for the call
/// order).
///
/// * `K`: older keys accepted besides the primary (0 on a device);
/// * `TEXT`: bytes kept per line, in the outbox and in events;
/// * `OUTBOX`: lines that may await the server's receipt at once;
/// * `EVENTS`: events that may wait for [`poll_event`](Self::poll_event).
#[derive(Debug)]
pub struct Client<
    R,
    const K: usize = 0,
    const TEXT: usize = 1024,
    const OUTBOX: usize = 8,
    const EVENTS: usize = 16,
> {
    keys: KeyRing<K>,
    rng: R,
    nick: String<NAME_MAX>,
    room: String<NAME_MAX>,
    max_datagram: usize,
    ttl: Duration,
    clock_skew: Duration,
    keepalive: Duration,
    server_timeout: Duration,
    no_answer_after: Duration,
    initial_rto: Duration,
    max_rto: Duration,
    leave_timeout: Duration,
    drain_timeout: Duration,

    clock: WallClock,
    state: ClientState,
    session: u64,
    ever_joined: bool,

    /// Joins (or clock pings) are due, retried with backoff.
    hello_due: bool,
    hello_deadline: Option<Instant>,
    hello_rto: Duration,
    waiting_since: Instant,
    no_answer_told: bool,
    leave_deadline: Option<Instant>,
    leave_due: u8,
    /// [`Client::leave`] was called while lines still waited: until this deadline they
    /// get the chance to reach the room first.
    draining_until: Option<Instant>,

    epoch: u64,
    next_seq: u64,
    ack_due: bool,

    next_id: u32,
    next_msg_id: u32,
    outbox: Deque<Outgoing<TEXT>, OUTBOX>,
    /// Outbox entries before this index went out since the last (re)transmission round.
    sent: usize,
    rto_deadline: Option<Instant>,
    rto: Duration,

    last_heard: Instant,
    lost: bool,
    ping_due: bool,
    next_ping: Instant,
    ping_counter: u64,
    ping_sent_at: Option<Instant>,
    rtt: Option<Duration>,
    members: u16,
    who_due: bool,

    events: Deque<ClientEvent<TEXT>, EVENTS>,
    /// [`ClientEvent::Closed`] is yet to be reported.
    closed_due: bool,
}

impl<R: CryptoRng, const K: usize, const TEXT: usize, const OUTBOX: usize, const EVENTS: usize>
    Client<R, K, TEXT, OUTBOX, EVENTS>
{
    /// A client that will join `config.room` as `config.nick`. `clock` is the real time
    /// if the driver has it; unsynced, the client first asks the server. `None` if the
    /// nick or room is not a valid name.
    pub fn new(
        config: &ClientConfig<'_>,
        keys: KeyRing<K>,
        mut rng: R,
        clock: WallClock,
        now: Instant,
    ) -> Option<Self> {
        if !wire::is_valid_name(config.nick) || !wire::is_valid_name(config.room) {
            return None;
        }
        let session = rng.next_u64().max(1);
        let state = if clock.is_synced() {
            ClientState::Joining
        } else {
            ClientState::SyncingClock
        };
        Some(Self {
            keys,
            rng,
            nick: truncated(config.nick),
            room: truncated(config.room),
            max_datagram: config.max_datagram,
            ttl: config.ttl,
            clock_skew: config.clock_skew,
            keepalive: config.keepalive,
            server_timeout: config.server_timeout,
            no_answer_after: config.no_answer_after,
            initial_rto: config.initial_rto,
            max_rto: config.max_rto,
            leave_timeout: config.leave_timeout,
            drain_timeout: config.drain_timeout,
            clock,
            state,
            session,
            ever_joined: false,
            hello_due: true,
            hello_deadline: None,
            hello_rto: config.initial_rto,
            waiting_since: now,
            no_answer_told: false,
            leave_deadline: None,
            leave_due: 0,
            draining_until: None,
            epoch: 0,
            next_seq: 0,
            ack_due: false,
            next_id: 1,
            next_msg_id: 1,
            outbox: Deque::new(),
            sent: 0,
            rto_deadline: None,
            rto: config.initial_rto,
            last_heard: now,
            lost: false,
            ping_due: false,
            next_ping: now + config.keepalive,
            ping_counter: 0,
            ping_sent_at: None,
            rtt: None,
            members: 0,
            who_due: false,
            events: Deque::new(),
            closed_due: false,
        })
    }

    /// Where the client is.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Members in the room, as of the last welcome or pong.
    pub fn members(&self) -> u16 {
        self.members
    }

    /// Round-trip time of the last answered ping.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Our nickname.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Our room.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The random number naming this session on the wire.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The epoch of the room we were welcomed into (0 before): room messages carry it.
    pub fn room_epoch(&self) -> u64 {
        self.epoch
    }

    /// The longest line [`send`](Self::send) accepts.
    pub fn max_text_len(&self) -> usize {
        max_text_len(self.max_datagram).min(TEXT)
    }

    /// Lines sent but not yet answered by the server.
    pub fn unacknowledged(&self) -> usize {
        self.outbox.len()
    }

    /// The real time, as far as the client knows it.
    pub fn clock(&self) -> WallClock {
        self.clock
    }

    /// Corrects the real time (a driver with a clock may call this now and then).
    pub fn sync_clock(&mut self, now: Instant, unix_millis: u64) {
        self.clock.sync(now, unix_millis);
    }

    /// Queues a chat line; returns the id its [`ClientEvent::Delivered`] will carry.
    /// Lines may be sent before the server has answered the join: they go out after it.
    pub fn send(&mut self, text: &str) -> Result<u32, SendError> {
        if matches!(self.state, ClientState::Leaving | ClientState::Closed)
            || self.draining_until.is_some()
        {
            return Err(SendError::Closed);
        }
        let max = self.max_text_len();
        if text.len() > max {
            return Err(SendError::TooLong { max });
        }
        let mut stored = String::new();
        stored
            .push_str(text)
            .map_err(|_| SendError::TooLong { max })?;
        let id = self.next_id;
        let entry = Outgoing {
            id,
            msg_id: self.next_msg_id,
            text: stored,
        };
        self.outbox
            .push_back(entry)
            .map_err(|_| SendError::QueueFull)?;
        self.next_id = self.next_id.wrapping_add(1);
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        Ok(id)
    }

    /// Asks the server who is in the room; the answer is a [`ClientEvent::Members`].
    pub fn request_members(&mut self) {
        self.who_due = true;
    }

    /// Says goodbye to the server, once the lines still waiting for the server's answer
    /// have had up to the drain timeout to get it. The session closes when the server
    /// answers the goodbye, or after the leave timeout.
    pub fn leave(&mut self, now: Instant) {
        match self.state {
            ClientState::Joined | ClientState::Joining => {
                if self.outbox.is_empty() {
                    self.begin_leaving(now);
                } else if self.draining_until.is_none() {
                    self.draining_until = Some(now + self.drain_timeout);
                }
            }
            ClientState::SyncingClock => self.close(),
            ClientState::Leaving | ClientState::Closed => {}
        }
    }

    fn begin_leaving(&mut self, now: Instant) {
        self.draining_until = None;
        self.state = ClientState::Leaving;
        self.leave_due = 2;
        self.leave_deadline = Some(now + self.leave_timeout);
    }

    /// Ends the session. [`poll_event`](Self::poll_event) then reports every line
    /// still waiting as [`ClientEvent::Undelivered`], and [`ClientEvent::Closed`] last.
    fn close(&mut self) {
        if self.state != ClientState::Closed {
            self.state = ClientState::Closed;
            self.closed_due = true;
        }
    }

    fn push_event(&mut self, event: ClientEvent<TEXT>) {
        // A full queue means the application stopped draining; messages themselves are
        // never dropped here (they wait for a free slot, see `on_deliver`).
        let _ = self.events.push_back(event);
    }

    /// Takes one datagram from the server. On error, says why it was dropped (for
    /// counters); nothing needs to be done about it.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) -> Result<(), Dropped> {
        if datagram.len() > self.max_datagram {
            return Err(Dropped::TooLong);
        }
        let opened = open(&self.keys, datagram)?;
        let repr = match opened.plaintext {
            Plaintext::Frame(repr) => repr,
            Plaintext::Legacy(_) => return Err(Dropped::Unexpected),
        };
        // Room messages name the room (its epoch), everything else our session: a
        // token captured in another room or session is not ours.
        let addressee = match repr.body {
            Body::Deliver { .. } => self.epoch,
            _ => self.session,
        };
        if repr.session != addressee {
            return Err(Dropped::Unexpected);
        }
        let unix_now = self.clock.unix_secs(now);
        if unix_now.is_none() && !matches!(repr.body, Body::Pong { .. }) {
            // Without a clock only the answer to our own ping can be judged fresh.
            return Err(Dropped::Unexpected);
        }
        judge_age(opened.timestamp, self.ttl, self.clock_skew, unix_now)?;
        let result = self.on_frame(now, opened.timestamp, repr.body);
        if result.is_ok() {
            self.last_heard = now;
            if self.lost {
                self.lost = false;
                self.push_event(ClientEvent::ServerBack);
            }
        }
        result
    }

    fn on_frame(&mut self, now: Instant, timestamp: u64, body: Body<'_>) -> Result<(), Dropped> {
        match body {
            Body::Pong { counter, members } => {
                if counter != self.ping_counter || self.ping_sent_at.is_none() {
                    return Err(Dropped::Duplicate);
                }
                let sent_at = self.ping_sent_at.take().unwrap_or(now);
                self.rtt = Some(now - sent_at);
                if self.state == ClientState::SyncingClock {
                    // The pong echoes our fresh random session and counter, so it is no
                    // replay: its timestamp is the server's time now.
                    let unix_millis = timestamp.saturating_mul(1000).saturating_add(500);
                    self.clock.sync(now, unix_millis);
                    self.state = ClientState::Joining;
                    self.hello_due = true;
                    self.hello_deadline = None;
                    self.hello_rto = self.initial_rto;
                    self.push_event(ClientEvent::ClockSynced {
                        unix_secs: timestamp,
                    });
                } else {
                    self.members = members;
                }
                Ok(())
            }
            Body::Welcome {
                epoch,
                next_seq,
                next_msg_id,
                members,
            } => {
                if self.state != ClientState::Joining {
                    return Err(Dropped::Duplicate);
                }
                if !self.ever_joined || epoch != self.epoch {
                    self.epoch = epoch;
                    self.next_seq = next_seq;
                }
                // The server says which chat number it expects: renumber what waits.
                let mut msg_id = next_msg_id;
                for entry in self.outbox.iter_mut() {
                    entry.msg_id = msg_id;
                    msg_id = msg_id.wrapping_add(1);
                }
                self.next_msg_id = msg_id;
                self.sent = 0;
                self.rto = self.initial_rto;
                self.rto_deadline = None;
                self.members = members;
                self.state = ClientState::Joined;
                self.hello_deadline = None;
                self.next_ping = now + self.keepalive;
                let rejoined = self.ever_joined;
                self.ever_joined = true;
                self.no_answer_told = false;
                self.push_event(ClientEvent::Joined { members, rejoined });
                Ok(())
            }
            Body::Receipt {
                msg_id,
                seq,
                recipients,
            } => self.on_receipt(now, msg_id, seq, recipients),
            Body::Deliver {
                seq,
                notice,
                nick,
                text,
            } => self.on_deliver(seq, notice, nick, text, timestamp),
            Body::Missed { from: _, to } => {
                if self.state != ClientState::Joined || to <= self.next_seq {
                    return Err(Dropped::Duplicate);
                }
                let from = self.next_seq;
                self.next_seq = to;
                self.ack_due = true;
                self.push_event(ClientEvent::Missed { from, to });
                Ok(())
            }
            Body::Notice { code, text } => {
                match code {
                    NoticeCode::NOT_JOINED => {
                        if self.state != ClientState::Joined {
                            return Err(Dropped::Duplicate);
                        }
                        self.state = ClientState::Joining;
                        self.hello_due = true;
                        self.hello_deadline = None;
                        self.hello_rto = self.initial_rto;
                        self.waiting_since = now;
                        self.push_event(ClientEvent::Rejoining);
                    }
                    NoticeCode::BYE => {
                        if self.state != ClientState::Leaving {
                            return Err(Dropped::Unexpected);
                        }
                        self.close();
                    }
                    NoticeCode::REFUSED => {
                        if self.state != ClientState::Joining {
                            return Err(Dropped::Duplicate);
                        }
                        self.push_event(ClientEvent::Notice {
                            text: truncated(text),
                        });
                        self.close();
                    }
                    _ => self.push_event(ClientEvent::Notice {
                        text: truncated(text),
                    }),
                }
                Ok(())
            }
            Body::Members { total, nicks } => {
                let mut names: String<TEXT> = String::new();
                for (i, name) in nicks.iter().enumerate() {
                    if (i > 0 && names.push_str(", ").is_err()) || names.push_str(name).is_err() {
                        break;
                    }
                }
                self.push_event(ClientEvent::Members { total, names });
                Ok(())
            }
            Body::Join { .. }
            | Body::Chat { .. }
            | Body::Ack { .. }
            | Body::Ping { .. }
            | Body::Leave
            | Body::Who => Err(Dropped::Unexpected),
        }
    }

    fn on_receipt(
        &mut self,
        now: Instant,
        msg_id: u32,
        seq: u64,
        recipients: u16,
    ) -> Result<(), Dropped> {
        // The server takes lines strictly in order, so a receipt covers all before it.
        let covers = |entry: &Outgoing<TEXT>| entry.msg_id.wrapping_sub(msg_id) as i32 <= 0;
        if !self.outbox.front().is_some_and(covers) {
            return Err(Dropped::Duplicate);
        }
        while let Some(entry) = self.outbox.pop_front() {
            if !covers(&entry) {
                let _ = self.outbox.push_front(entry);
                break;
            }
            self.sent = self.sent.saturating_sub(1);
            let event = if entry.msg_id != msg_id {
                ClientEvent::Delivered {
                    id: entry.id,
                    seq: None,
                    recipients,
                }
            } else if seq == REFUSED_SEQ {
                ClientEvent::Refused { id: entry.id }
            } else {
                ClientEvent::Delivered {
                    id: entry.id,
                    seq: Some(seq),
                    recipients,
                }
            };
            self.push_event(event);
        }
        self.rto = self.initial_rto;
        self.rto_deadline = if self.outbox.is_empty() {
            None
        } else {
            Some(now + self.rto)
        };
        if self.draining_until.is_some() && self.outbox.is_empty() {
            self.begin_leaving(now);
        }
        Ok(())
    }

    fn on_deliver(
        &mut self,
        seq: u64,
        notice: bool,
        nick: &str,
        text: &str,
        timestamp: u64,
    ) -> Result<(), Dropped> {
        if self.state != ClientState::Joined && self.state != ClientState::Leaving {
            return Err(Dropped::Unexpected);
        }
        if seq != self.next_seq {
            // Old: a retransmission or replay, acknowledged again so the server stops.
            // Ahead: a gap; the server resends from the acknowledged point.
            self.ack_due = true;
            return Err(if seq < self.next_seq {
                Dropped::Duplicate
            } else {
                Dropped::Overloaded
            });
        }
        // Keep one slot for control events; unacknowledged, the message comes again.
        if self.events.len().saturating_add(1) >= EVENTS {
            return Err(Dropped::Overloaded);
        }
        self.push_event(ClientEvent::Message {
            seq,
            nick: truncated(nick),
            text: truncated(text),
            notice,
            timestamp,
        });
        self.next_seq = self.next_seq.saturating_add(1);
        self.ack_due = true;
        Ok(())
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.draining_until.is_some_and(|at| at <= now) {
            // The server did not answer in time: those lines may not reach the room.
            self.begin_leaving(now);
        }
        match self.state {
            ClientState::SyncingClock | ClientState::Joining => {
                if self.hello_deadline.is_some_and(|at| at <= now) {
                    self.hello_due = true;
                    self.hello_rto = self.hello_rto.doubled_up_to(self.max_rto);
                    self.hello_deadline = None;
                }
                if !self.no_answer_told && now - self.waiting_since >= self.no_answer_after {
                    self.no_answer_told = true;
                    self.push_event(ClientEvent::NoAnswer {
                        waited: now - self.waiting_since,
                    });
                }
            }
            ClientState::Joined => {
                if self.rto_deadline.is_some_and(|at| at <= now) {
                    self.sent = 0;
                    self.rto = self.rto.doubled_up_to(self.max_rto);
                    self.rto_deadline = Some(now + self.rto);
                }
                if self.next_ping <= now {
                    self.ping_due = true;
                    self.next_ping = now + self.keepalive;
                }
                let silent_for = now - self.last_heard;
                if !self.lost && silent_for >= self.server_timeout {
                    self.lost = true;
                    self.push_event(ClientEvent::ServerLost { silent_for });
                }
            }
            ClientState::Leaving => {
                if self.leave_deadline.is_some_and(|at| at <= now) {
                    self.close();
                }
            }
            ClientState::Closed => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.state {
            ClientState::SyncingClock | ClientState::Joining => {
                let no_answer =
                    (!self.no_answer_told).then(|| self.waiting_since + self.no_answer_after);
                earliest(
                    earliest(self.hello_deadline, no_answer),
                    self.draining_until,
                )
            }
            ClientState::Joined => {
                let lost = (!self.lost).then(|| self.last_heard + self.server_timeout);
                earliest(
                    earliest(self.rto_deadline, Some(self.next_ping)),
                    earliest(lost, self.draining_until),
                )
            }
            ClientState::Leaving => self.leave_deadline,
            ClientState::Closed => None,
        }
    }

    /// Writes the next datagram to send into `buf` (which should hold the largest
    /// datagram) and returns its length, or `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let body = self.next_body(now)?;
        let buf = buf.get_mut(..self.max_datagram.min(buf.len()))?;
        let timestamp = self.clock.unix_secs(now).unwrap_or(0);
        let len = Repr {
            session: self.session,
            body: body.as_body(self),
        }
        .emit(buf)
        .ok()?;
        seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf)
    }

    /// Picks what to send next and updates the timers as if it was sent.
    fn next_body(&mut self, now: Instant) -> Option<Due> {
        match self.state {
            ClientState::Closed => None,
            ClientState::Leaving => {
                self.leave_due = self.leave_due.checked_sub(1)?;
                Some(Due::Leave)
            }
            ClientState::SyncingClock | ClientState::Joining => {
                if !self.hello_due {
                    return None;
                }
                self.hello_due = false;
                self.hello_deadline = Some(now + self.hello_rto);
                if self.state == ClientState::Joining {
                    return Some(Due::Join);
                }
                self.ping_counter = self.ping_counter.wrapping_add(1);
                self.ping_sent_at = Some(now);
                Some(Due::Ping)
            }
            ClientState::Joined => {
                if self.ack_due {
                    self.ack_due = false;
                    return Some(Due::Ack);
                }
                if self.sent < self.outbox.len() {
                    let index = self.sent;
                    self.sent = self.sent.saturating_add(1);
                    if self.rto_deadline.is_none() {
                        self.rto_deadline = Some(now + self.rto);
                    }
                    return Some(Due::Chat(index));
                }
                if self.who_due {
                    self.who_due = false;
                    return Some(Due::Who);
                }
                if self.ping_due {
                    self.ping_due = false;
                    self.ping_counter = self.ping_counter.wrapping_add(1);
                    self.ping_sent_at = Some(now);
                    return Some(Due::Ping);
                }
                None
            }
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent<TEXT>> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if self.state != ClientState::Closed {
            return None;
        }
        if let Some(line) = self.outbox.pop_front() {
            return Some(ClientEvent::Undelivered { id: line.id });
        }
        if core::mem::take(&mut self.closed_due) {
            return Some(ClientEvent::Closed);
        }
        None
    }
}

/// A frame that is due, resolved to a [`Body`] against the client's state.
#[derive(Clone, Copy, Debug)]
enum Due {
    Join,
    Ping,
    Ack,
    Chat(usize),
    Who,
    Leave,
}

impl Due {
    fn as_body<
        'c,
        R,
        const K: usize,
        const TEXT: usize,
        const OUTBOX: usize,
        const EVENTS: usize,
    >(
        self,
        client: &'c Client<R, K, TEXT, OUTBOX, EVENTS>,
    ) -> Body<'c> {
        match self {
            Self::Join => Body::Join {
                nick: &client.nick,
                room: &client.room,
            },
            Self::Ping => Body::Ping {
                counter: client.ping_counter,
            },
            Self::Ack => Body::Ack {
                next_seq: client.next_seq,
                selective: 0,
            },
            Self::Chat(index) => match client.outbox.iter().nth(index) {
                Some(entry) => Body::Chat {
                    msg_id: entry.msg_id,
                    text: &entry.text,
                },
                None => Body::Ping {
                    counter: client.ping_counter,
                },
            },
            Self::Who => Body::Who,
            Self::Leave => Body::Leave,
        }
    }
}
