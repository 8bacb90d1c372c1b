//! A chat member: joins a room through the server, sends lines reliably and in order
//! (each gets exactly one outcome), receives the room's messages exactly once and in the
//! room's order, and keeps its place in the room across silences and server changes.
//!
//! | module | owns |
//! |---|---|
//! | `events` | [`ClientEvent`] and its lists, [`SendError`] |
//! | `outbox` | our lines until each has its answer: send window, Busy, retransmission |
//! | `inbox` | the room's messages in order: reorder buffer, acknowledgements |
//! | `receive` | a datagram from the server: opened, judged, each frame kind's effect |
//! | `transmit` | the next frame owed to the server, and the timers it books |

mod events;
mod inbox;
mod outbox;
mod receive;
mod transmit;

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
