//! A chat member: joins a room through the server, sends lines reliably and in order
//! (each gets exactly one outcome), receives the room's messages exactly once and in the
//! room's order, and keeps its place in the room across silences and server changes.
//!
//! | module | owns |
//! |---|---|
//! | `events` | [`ClientEvent`] and its lists, [`SendError`] |
//! | `outbox` | our lines until each has its answer: send window, Busy, retransmission |
//! | `inbox` | the room's messages in order: reorder buffer, acknowledgements |

mod events;
mod inbox;
mod outbox;

pub use events::{ClientEvent, NameList, PresenceChanges, SendError};

use super::{
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_DATAGRAM, DEFAULT_TTL, Dropped, judge_age, max_text_len, open,
    seal_bytes_in_place, truncated,
};
use crate::fernet::KeyRing;
use crate::time::{Duration, Instant, WallClock};
use crate::wire::{self, Body, Changes, NAME_MAX, Names, NoticeCode, Plaintext, Repr, Resume};
use heapless::{Deque, String};
use inbox::{Arrival, Inbox, Message};
use outbox::{Outbox, Timers};
use rand_core::CryptoRng;

/// Events kept free for the session's own news (lost server, rejoining, closed) while
/// room messages and answers wait for the application to catch up.
const RESERVED_EVENTS: usize = 2;

/// How a client behaves; [`ClientConfig::new`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig<'a> {
    /// Our nickname, 1 to 32 bytes (see [`wire::is_valid_name`]).
    pub nick: &'a str,
    /// The room to join, 1 to 32 bytes.
    pub room: &'a str,
    /// Largest datagram (token text) we send or accept, bytes.
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
    /// Retransmission timeout before any round-trip sample; joins start at it too.
    pub initial_rto: Duration,
    /// Shortest retransmission timeout.
    pub min_rto: Duration,
    /// Longest retransmission timeout, after backing off.
    pub max_rto: Duration,
    /// Acknowledge after this many room messages in order...
    pub ack_every: u8,
    /// ... or this long after the first one not yet acknowledged (RFC 9000's
    /// max_ack_delay).
    pub max_ack_delay: Duration,
    /// How long to wait for the server's goodbye after [`Client::leave`].
    pub leave_timeout: Duration,
    /// How long [`Client::leave`] first lets unanswered lines reach the room.
    pub drain_timeout: Duration,
}

impl<'a> ClientConfig<'a> {
    /// Defaults: 1232-byte datagrams, 60 s TTL and clock skew, a ping every 5 s, the
    /// server lost after 15 s of silence, "no answer" after 3 s, retransmissions from
    /// 300 ms (at least 200 ms once measured) to 4 s, an Ack every 2 messages or 10 ms, up
    /// to 5 s on leaving for unanswered lines.
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
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(4),
            ack_every: 2,
            max_ack_delay: Duration::from_millis(10),
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

/// A chat member, as a sans-IO state machine (see the [module docs](super) for the call
/// order).
///
/// * `K`: older keys accepted besides the primary (0 on a device);
/// * `TEXT`: bytes kept per line, in the outbox, the reorder buffer and events;
/// * `OUTBOX`: lines that may await the server's answer at once (the window asked for,
///   at most 16);
/// * `EVENTS`: events that may wait for [`poll_event`](Self::poll_event);
/// * `REORDER`: room messages kept while a gap before them fills (0 on a small device:
///   then every message after a loss comes again).
#[derive(Debug)]
pub struct Client<
    R,
    const K: usize = 0,
    const TEXT: usize = 1024,
    const OUTBOX: usize = 8,
    const EVENTS: usize = 16,
    const REORDER: usize = 8,
> {
    keys: KeyRing<K>,
    rng: R,
    config: Config,
    nick: String<NAME_MAX>,
    room: String<NAME_MAX>,

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

    /// The room we were welcomed into (0 before): room messages carry it.
    epoch: u64,
    inbox: Inbox<TEXT, REORDER>,
    /// Every presence change before this was seen.
    presence_next: u32,
    outbox: Outbox<TEXT, OUTBOX>,

    last_heard: Instant,
    lost: bool,
    ping_due: bool,
    next_ping: Instant,
    ping_counter: u64,
    ping_sent_at: Option<Instant>,
    rtt: Option<Duration>,
    members: u32,
    who_counter: u32,
    /// A Members page from this position is to be asked for.
    who_due: Option<u32>,
    /// A Members page was asked for (from this position) and is awaited until then: asked
    /// again (a new counter) if it does not come.
    who_awaited: Option<(u32, Instant)>,

    events: Deque<ClientEvent<TEXT>, EVENTS>,
    /// [`ClientEvent::Closed`] is yet to be reported.
    closed_due: bool,
    /// The time of the last input (for what `poll_event` does).
    last_input: Instant,
}

/// The configuration, less the names.
#[derive(Clone, Copy, Debug)]
struct Config {
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
}

impl<
    R: CryptoRng,
    const K: usize,
    const TEXT: usize,
    const OUTBOX: usize,
    const EVENTS: usize,
    const REORDER: usize,
> Client<R, K, TEXT, OUTBOX, EVENTS, REORDER>
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
        let timers = Timers {
            initial_rto: config.initial_rto,
            min_rto: config.min_rto,
            max_rto: config.max_rto,
        };
        Some(Self {
            keys,
            rng,
            config: Config {
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
            },
            nick: truncated(config.nick),
            room: truncated(config.room),
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
            inbox: Inbox::new(config.ack_every, config.max_ack_delay),
            presence_next: 0,
            outbox: Outbox::new(timers),
            last_heard: now,
            lost: false,
            ping_due: false,
            next_ping: now + config.keepalive,
            ping_counter: 0,
            ping_sent_at: None,
            rtt: None,
            members: 0,
            who_counter: 0,
            who_due: None,
            who_awaited: None,
            events: Deque::new(),
            closed_due: false,
            last_input: now,
        })
    }

    /// Where the client is.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Members in the room, as of the last welcome, pong or presence change.
    pub fn members(&self) -> u32 {
        self.members
    }

    /// Round-trip time of the last answered ping.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Our nickname: the one asked for until the server grants one (a free variant of it
    /// if another member has it).
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

    /// Every room message before this one was received (or reported missed).
    pub fn next_seq(&self) -> u64 {
        self.inbox.next_seq()
    }

    /// The longest line [`send`](Self::send) accepts.
    pub fn max_text_len(&self) -> usize {
        max_text_len(self.config.max_datagram).min(TEXT)
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

    /// Queues a chat line; returns the id its outcome ([`ClientEvent::Delivered`],
    /// [`ClientEvent::Refused`] or [`ClientEvent::Undelivered`]) will carry. Lines may be
    /// sent before the server has answered the join: they go out after it.
    pub fn send(&mut self, text: &str) -> Result<u32, SendError> {
        if matches!(self.state, ClientState::Leaving | ClientState::Closed)
            || self.draining_until.is_some()
        {
            return Err(SendError::Closed);
        }
        let max = self.max_text_len();
        self.outbox.push(text, max)
    }

    /// Asks the server who is in the room; the answer comes as [`ClientEvent::Members`]
    /// pages, the next asked for as each arrives.
    pub fn request_members(&mut self) {
        self.who_due = Some(0);
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
                    self.draining_until = Some(now + self.config.drain_timeout);
                }
            }
            ClientState::SyncingClock => self.close(),
            ClientState::Leaving | ClientState::Closed => {}
        }
    }

    /// The driver now sends to another server (failover to the next server of a cluster):
    /// join there at once, asking for our place (the room's epoch and the next message we
    /// lack); after its Welcome every unanswered line goes again under the numbering the
    /// server gives (PROTOCOL.md "Several servers"). While joining, the next Join goes at
    /// once. Nothing happens once leaving or closed.
    pub fn rejoin(&mut self, now: Instant) {
        match self.state {
            ClientState::Joined => {
                self.state = ClientState::Joining;
                self.waiting_since = now;
                self.no_answer_told = false;
            }
            ClientState::Joining => {
                self.waiting_since = now;
                self.no_answer_told = false;
            }
            ClientState::SyncingClock | ClientState::Leaving | ClientState::Closed => return,
        }
        self.hello_due = true;
        self.hello_deadline = None;
        self.hello_rto = self.config.initial_rto;
        self.last_heard = now;
        self.lost = false;
    }

    /// Gives up at once: the lines still waiting are reported undelivered and the session
    /// closes without waiting for the server (a goodbye is still sent, once).
    pub fn abort(&mut self, now: Instant) {
        match self.state {
            ClientState::Joined | ClientState::Joining | ClientState::Leaving => {
                self.begin_leaving(now);
                self.leave_due = 1;
                self.leave_deadline = Some(now);
            }
            ClientState::SyncingClock => self.close(),
            ClientState::Closed => {}
        }
    }

    fn begin_leaving(&mut self, now: Instant) {
        self.draining_until = None;
        self.state = ClientState::Leaving;
        self.leave_due = 2;
        self.leave_deadline = Some(now + self.config.leave_timeout);
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
        // Control events only: data events check for room first (`has_room`).
        let _ = self.events.push_back(event);
    }

    /// Whether a data event (a message, an answer, a list) fits, leaving room for the
    /// session's own news. When it does not, the datagram is dropped unacknowledged and
    /// comes again: nothing is lost while the application catches up.
    fn has_room(&self) -> bool {
        self.events.len().saturating_add(RESERVED_EVENTS) < EVENTS.max(RESERVED_EVENTS + 1)
    }

    /// Takes one datagram from the server. On error, says why it was dropped (for
    /// counters); nothing needs to be done about it.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) -> Result<(), Dropped> {
        self.last_input = now;
        if datagram.len() > self.config.max_datagram {
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
        judge_age(
            opened.timestamp,
            self.config.ttl,
            self.config.clock_skew,
            unix_now,
        )?;
        let result = self.on_frame(now, opened.timestamp, repr.body);
        if result.is_ok() || result == Err(Dropped::Duplicate) {
            // A verified, fresh token from the server: it is there.
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
            Body::Pong { counter, members } => self.on_pong(now, timestamp, counter, members),
            Body::Welcome {
                epoch,
                next_seq,
                next_msg_id,
                members,
                window,
                presence,
                nick,
            } => {
                if self.state != ClientState::Joining {
                    return Err(Dropped::Duplicate);
                }
                let resumed = self.ever_joined && epoch == self.epoch;
                if !resumed || next_seq != self.inbox.next_seq() {
                    // A new room (or a server restart): start where the server says. When
                    // resuming, the server starts where we asked (or sends Missed).
                    self.inbox.reset(next_seq);
                }
                self.epoch = epoch;
                if resumed && presence > self.presence_next && self.has_room() {
                    // Changes while we were away: only their number is known.
                    self.push_event(ClientEvent::Presence {
                        members,
                        skipped: presence - self.presence_next,
                        changes: PresenceChanges::default(),
                    });
                }
                self.presence_next = presence;
                self.nick = truncated(nick);
                self.outbox.grant(window);
                self.outbox.renumber(next_msg_id);
                self.members = members;
                self.state = ClientState::Joined;
                self.hello_deadline = None;
                self.next_ping = now + self.config.keepalive;
                let rejoined = self.ever_joined;
                self.ever_joined = true;
                self.no_answer_told = false;
                self.push_event(ClientEvent::Joined {
                    members,
                    rejoined,
                    resumed,
                    nick: self.nick.clone(),
                });
                Ok(())
            }
            Body::Receipt {
                msg_id,
                seq,
                recipients,
            } => self.on_answer(now, msg_id, |id| ClientEvent::Delivered {
                id,
                seq,
                recipients,
            }),
            Body::Refused { msg_id, reason } => {
                self.on_answer(now, msg_id, |id| ClientEvent::Refused { id, reason })
            }
            Body::Busy {
                msg_id,
                retry_after_ms,
            } => {
                let wait = Duration::from_millis(u64::from(retry_after_ms));
                if self.outbox.on_busy(now, msg_id, wait) {
                    Ok(())
                } else {
                    Err(Dropped::Duplicate)
                }
            }
            Body::Deliver { seq, nick, text } => self.on_deliver(now, seq, nick, text, timestamp),
            Body::Missed { from: _, to } => {
                if self.state != ClientState::Joined && self.state != ClientState::Leaving {
                    return Err(Dropped::Unexpected);
                }
                let from = self.inbox.next_seq();
                if to <= from {
                    self.inbox.ack_due = true;
                    return Err(Dropped::Duplicate);
                }
                if !self.has_room() {
                    return Err(Dropped::Overloaded);
                }
                self.inbox.skip_to(to);
                self.push_event(ClientEvent::Missed { from, to });
                self.drain_kept(now);
                Ok(())
            }
            Body::Presence {
                members,
                from,
                changes,
            } => self.on_presence(members, from, changes),
            Body::Notice { code, text } => self.on_notice(now, code, text),
            Body::Members {
                total,
                start,
                nicks,
            } => self.on_members(total, start, nicks),
            Body::JoinV1 { .. }
            | Body::Join { .. }
            | Body::Chat { .. }
            | Body::Ack { .. }
            | Body::Ping { .. }
            | Body::Leave
            | Body::Who { .. } => Err(Dropped::Unexpected),
        }
    }

    fn on_pong(
        &mut self,
        now: Instant,
        timestamp: u64,
        counter: u64,
        members: u32,
    ) -> Result<(), Dropped> {
        if counter != self.ping_counter || self.ping_sent_at.is_none() {
            return Err(Dropped::Duplicate);
        }
        let sent_at = self.ping_sent_at.take().unwrap_or(now);
        self.rtt = Some(now - sent_at);
        if self.state == ClientState::SyncingClock {
            // The pong echoes our fresh random session and counter, so it is no replay:
            // its timestamp is the server's time now.
            let unix_millis = timestamp.saturating_mul(1000).saturating_add(500);
            self.clock.sync(now, unix_millis);
            self.state = ClientState::Joining;
            self.hello_due = true;
            self.hello_deadline = None;
            self.hello_rto = self.config.initial_rto;
            self.push_event(ClientEvent::ClockSynced {
                unix_secs: timestamp,
            });
        } else {
            self.members = members;
        }
        Ok(())
    }

    /// The server answered our line `msg_id` with `event(id)`.
    fn on_answer(
        &mut self,
        now: Instant,
        msg_id: u32,
        event: impl FnOnce(u32) -> ClientEvent<TEXT>,
    ) -> Result<(), Dropped> {
        if !self.has_room() {
            return Err(Dropped::Overloaded);
        }
        let id = self
            .outbox
            .on_answer(now, msg_id)
            .ok_or(Dropped::Duplicate)?;
        self.push_event(event(id));
        if self.draining_until.is_some() && self.outbox.is_empty() {
            self.begin_leaving(now);
        }
        Ok(())
    }

    fn on_deliver(
        &mut self,
        now: Instant,
        seq: u64,
        nick: &str,
        text: &str,
        timestamp: u64,
    ) -> Result<(), Dropped> {
        if self.state != ClientState::Joined && self.state != ClientState::Leaving {
            return Err(Dropped::Unexpected);
        }
        let message = Message {
            seq,
            nick: truncated(nick),
            text: truncated(text),
            timestamp,
        };
        if seq == self.inbox.next_seq() && !self.has_room() {
            // The application is behind: keep the message until it reads its events
            // (`poll_event` shows it then), or, with no room to keep it, drop it
            // unacknowledged: it comes again.
            return if self.inbox.keep_next(message) {
                Ok(())
            } else {
                Err(Dropped::Overloaded)
            };
        }
        match self.inbox.on_deliver(message) {
            Arrival::Next(message) => {
                self.show(now, message);
                self.drain_kept(now);
                Ok(())
            }
            Arrival::Kept => Ok(()),
            Arrival::Duplicate => Err(Dropped::Duplicate),
            Arrival::TooFar => Err(Dropped::Overloaded),
        }
    }

    fn show(&mut self, now: Instant, message: Message<TEXT>) {
        self.inbox.shown(now);
        self.push_event(ClientEvent::Message {
            seq: message.seq,
            nick: message.nick,
            text: message.text,
            timestamp: message.timestamp,
        });
    }

    /// Shows the kept messages that are now next, while there is room for them.
    fn drain_kept(&mut self, now: Instant) {
        while self.has_room() {
            match self.inbox.take_next() {
                Some(message) => self.show(now, message),
                None => break,
            }
        }
    }

    fn on_presence(
        &mut self,
        members: u32,
        from: u32,
        changes: Changes<'_>,
    ) -> Result<(), Dropped> {
        if self.state != ClientState::Joined && self.state != ClientState::Leaving {
            return Err(Dropped::Unexpected);
        }
        self.members = members;
        // The server resends until we acknowledge, so acknowledge even a repeat.
        self.inbox.ack_due = true;
        let count = u32::try_from(changes.len()).unwrap_or(0);
        let end = from.saturating_add(count);
        if end <= self.presence_next {
            return Err(Dropped::Duplicate);
        }
        if !self.has_room() {
            return Err(Dropped::Overloaded);
        }
        let mut listed = PresenceChanges::default();
        let mut unlisted = from.saturating_sub(self.presence_next);
        for (i, (kind, nick)) in changes.iter().enumerate() {
            let number = from.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
            if number < self.presence_next {
                continue;
            }
            if !listed.push(kind, nick) {
                unlisted = unlisted.saturating_add(1);
            }
        }
        self.presence_next = end;
        self.push_event(ClientEvent::Presence {
            members,
            skipped: unlisted,
            changes: listed,
        });
        Ok(())
    }

    fn on_notice(&mut self, now: Instant, code: NoticeCode, text: &str) -> Result<(), Dropped> {
        match code {
            NoticeCode::NOT_JOINED => {
                if self.state != ClientState::Joined {
                    return Err(Dropped::Duplicate);
                }
                self.state = ClientState::Joining;
                self.hello_due = true;
                self.hello_deadline = None;
                self.hello_rto = self.config.initial_rto;
                self.waiting_since = now;
                self.push_event(ClientEvent::Rejoining);
            }
            NoticeCode::BYE => {
                if self.state != ClientState::Leaving {
                    return Err(Dropped::Unexpected);
                }
                self.close();
            }
            NoticeCode::REFUSED | NoticeCode::VERSION => {
                if self.state != ClientState::Joining {
                    return Err(Dropped::Duplicate);
                }
                self.push_event(ClientEvent::Notice {
                    text: truncated(text),
                });
                self.close();
            }
            _ => {
                if !self.has_room() {
                    return Err(Dropped::Overloaded);
                }
                self.push_event(ClientEvent::Notice {
                    text: truncated(text),
                });
            }
        }
        Ok(())
    }

    fn on_members(&mut self, total: u32, start: u32, nicks: Names<'_>) -> Result<(), Dropped> {
        if !self.has_room() {
            return Err(Dropped::Overloaded);
        }
        let mut names = NameList::default();
        let mut listed = 0u32;
        for name in nicks.iter() {
            if !names.push(name) {
                break;
            }
            listed += 1;
        }
        let next = start.saturating_add(listed);
        if self
            .who_awaited
            .is_some_and(|(awaited, _)| awaited == start)
        {
            self.who_awaited = None;
        }
        if listed > 0 && next < total {
            self.who_due = Some(next);
        }
        self.push_event(ClientEvent::Members {
            total,
            start,
            names,
        });
        Ok(())
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_input = now;
        if self.draining_until.is_some_and(|at| at <= now) {
            // The server did not answer in time: those lines may not reach the room.
            self.begin_leaving(now);
        }
        match self.state {
            ClientState::SyncingClock | ClientState::Joining => {
                if self.hello_deadline.is_some_and(|at| at <= now) {
                    self.hello_due = true;
                    self.hello_rto = self.hello_rto.doubled_up_to(self.config.max_rto);
                    self.hello_deadline = None;
                }
                if !self.no_answer_told && now - self.waiting_since >= self.config.no_answer_after {
                    self.no_answer_told = true;
                    self.push_event(ClientEvent::NoAnswer {
                        waited: now - self.waiting_since,
                    });
                }
            }
            ClientState::Joined => {
                self.outbox.on_timeout(now);
                self.inbox.on_timeout(now);
                if let Some((start, by)) = self.who_awaited
                    && by <= now
                {
                    // The page (or the question) was lost: ask again, with a new counter.
                    self.who_awaited = None;
                    self.who_due = Some(start);
                }
                if self.next_ping <= now {
                    self.ping_due = true;
                    self.next_ping = now + self.config.keepalive;
                }
                let silent_for = now - self.last_heard;
                if !self.lost && silent_for >= self.config.server_timeout {
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
                let no_answer = (!self.no_answer_told)
                    .then(|| self.waiting_since + self.config.no_answer_after);
                earliest(
                    earliest(self.hello_deadline, no_answer),
                    self.draining_until,
                )
            }
            ClientState::Joined => {
                let lost = (!self.lost).then(|| self.last_heard + self.config.server_timeout);
                // An acknowledgement made due by `poll_event` (messages kept while the
                // application was behind, shown now): at once.
                let ack_now = self.inbox.ack_due.then_some(self.last_input);
                let timers = [
                    ack_now,
                    self.who_awaited.map(|(_, by)| by),
                    self.outbox.rto_deadline,
                    self.outbox.hold_until,
                    self.inbox.ack_deadline,
                    Some(self.next_ping),
                    lost,
                    self.draining_until,
                ];
                timers.into_iter().fold(None, earliest)
            }
            ClientState::Leaving => self.leave_deadline,
            ClientState::Closed => None,
        }
    }

    /// Writes the next datagram to send into `buf` (which should hold the largest
    /// datagram) and returns its length, or `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let due = self.next_due(now)?;
        let buf = buf.get_mut(..self.config.max_datagram.min(buf.len()))?;
        let timestamp = self.clock.unix_secs(now).unwrap_or(0);
        let body = match due {
            Due::Join => Body::Join {
                version: wire::VERSION,
                nick: &self.nick,
                room: &self.room,
                window: u8::try_from(OUTBOX).unwrap_or(u8::MAX),
                resume: self.ever_joined.then_some(Resume {
                    epoch: self.epoch,
                    next_seq: self.inbox.next_seq(),
                }),
            },
            Due::Ping => Body::Ping {
                counter: self.ping_counter,
            },
            Due::Ack => Body::Ack {
                next_seq: self.inbox.next_seq(),
                selective: self.inbox.selective(),
                presence: self.presence_next,
            },
            Due::Chat => {
                let line = self.outbox.next_due(now)?;
                let len = Repr {
                    session: self.session,
                    body: Body::Chat {
                        msg_id: line.msg_id,
                        text: line.text,
                    },
                }
                .emit(buf)
                .ok()?;
                return seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf);
            }
            Due::Who(start) => Body::Who {
                counter: self.who_counter,
                start,
            },
            Due::Leave => Body::Leave,
        };
        let len = Repr {
            session: self.session,
            body,
        }
        .emit(buf)
        .ok()?;
        seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf)
    }

    /// Picks what to send next and updates the timers as if it was sent.
    fn next_due(&mut self, now: Instant) -> Option<Due> {
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
                if self.inbox.ack_due {
                    self.inbox.acked();
                    return Some(Due::Ack);
                }
                if self.outbox.has_due(now) {
                    return Some(Due::Chat);
                }
                if let Some(start) = self.who_due.take() {
                    self.who_counter = self.who_counter.wrapping_add(1);
                    let wait = self.outbox.rto().max(Duration::from_millis(500));
                    self.who_awaited = Some((start, now + wait));
                    return Some(Due::Who(start));
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
            // Room again: messages kept while the application was behind come next.
            let now = self.last_input;
            self.drain_kept(now);
            return Some(event);
        }
        if self.state != ClientState::Closed {
            return None;
        }
        if let Some((id, text)) = self.outbox.pop_unanswered() {
            return Some(ClientEvent::Undelivered { id, text });
        }
        if core::mem::take(&mut self.closed_due) {
            return Some(ClientEvent::Closed);
        }
        None
    }
}

/// A frame that is due.
#[derive(Clone, Copy, Debug)]
enum Due {
    Join,
    Ping,
    Ack,
    Chat,
    Who(u32),
    Leave,
}
