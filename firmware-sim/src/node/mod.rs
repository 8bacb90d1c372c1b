//! The device application, independent of the network stack: core's [`Client`] with what
//! the device sends and when, what it reports, and when it stops. Every network driver
//! (raw smoltcp: [`App`](crate::App); embassy-net: the `firmware-embassy` crate) is a
//! thin layer that moves datagrams and time in and out of a [`Node`]; no driver touches
//! the `Client` itself.
//!
//! # Call order
//!
//! As in [`chat_core::session`], with the device clock in milliseconds (`now`, from any
//! origin: a board without an RTC starts at zero):
//!
//! 1. [`handle_datagram`](Node::handle_datagram) for each datagram from the server
//!    (count the others with [`foreign`](Node::foreign));
//! 2. [`poll`](Node::poll): timers, the lines due, leaving, and every event reported;
//! 3. [`poll_transmit`](Node::poll_transmit) until `None`, sending each datagram to the
//!    server and telling [`transmitted`](Node::transmitted) whether it went;
//! 4. stop once [`finished`](Node::finished) says so; otherwise sleep until
//!    [`poll_at`](Node::poll_at) or the next datagram, and start again.
//!
//! Everything the device says goes to an [`Output`] as a [`Report`], whose
//! [`json`](Report::json) is the one JSON shape of every driver (core's
//! [`ClientEvent::json_fields`] plus the device's own members).
//!
//! # What it sends
//!
//! Lines from a [`Lines`] source ([`Script`]: a fixed list; the PC simulator: standard
//! input), then, if [`Behaviour::every`] is set, a reading every period (`{N}` in the
//! template is the reading's number, `{uptime}` the device's uptime in seconds). A line
//! the client cannot take yet (its outbox is full) is offered again on the next poll,
//! so nothing is lost; a reading that is still waiting when the next one is due is
//! replaced by it (a sensor's latest value is the one worth sending), and counted in
//! [`Stats::readings_skipped`].
//!
//! # When it is done
//!
//! With [`Behaviour::leave_when_done`], once the lines have ended (the end of standard
//! input; a script's are all known from the start) and no reading is configured, the
//! device leaves as soon as it has joined and the server has answered every line, or
//! gives up when the grace has passed since the lines ended ([`GRACE_MS`], as
//! `host-chat client` at the end of its input): lines the client still holds are then
//! reported undelivered by core ([`Client::abort`](chat_core::session::Client::abort)),
//! and lines it never took by the node. Every line given gets exactly one outcome:
//! `delivered`, `refused` or `undelivered`. [`Node::outcome`] then says how it went
//! (joined or not, the refusal's text, lines given and delivered), and
//! [`Outcome::failure`] why it failed, if it did: what an exit status tells.
//!
//! # Files
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Node`] and its calls, [`Behaviour`], [`Error`], [`Stats`] |
//! | `lines.rs` | what it sends: [`Lines`], [`Script`], each line offered to the client |
//! | `reading.rs` | the periodic reading: when it is due, its template rendered |
//! | `report.rs` | what it says: [`Report`], [`What`], their JSON, [`Output`], `error_json` |
//! | `finish.rs` | the tally, the exit line, the grace: [`Finish`], [`Outcome`], [`Failure`] |

mod finish;
mod lines;
mod reading;
mod report;
#[cfg(test)]
mod tests;

pub use finish::{Failure, Finish, Outcome};
pub use lines::{Lines, Script};
pub use report::{
    ErrorJson, NotSentReason, Output, Report, ReportFields, ReportJson, What, error_json,
};

use crate::{EVENTS, MAX_DATAGRAM, OUTBOX, REORDER, TEXT_LEN};
use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{Client, ClientConfig, ClientEvent, ClientState, Dropped};
use chat_core::time::{Instant, WallClock};
use core::fmt;
use heapless::String;
use rand_core::CryptoRng;
use reading::Every;

/// The chat client as sized for the device (see the [crate docs](crate)).
pub type DeviceClient<R> = Client<R, 0, TEXT_LEN, OUTBOX, EVENTS, REORDER>;

/// A chat event as the device receives it.
pub type Event = ClientEvent<TEXT_LEN>;

/// Why the application could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The nickname or room is not a valid name (1 to 32 bytes).
    InvalidName,
    /// The UDP socket could not be bound (port 0?).
    Bind,
    /// The gateway could not be set as the default route.
    Route,
    /// The device's medium is not the one this constructor serves (an Ethernet NIC
    /// needs `App::new_ethernet`, an IP device `App::new`).
    Medium,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidName => "the nickname and room must be 1 to 32 bytes",
            Self::Bind => "cannot bind the UDP socket",
            Self::Route => "cannot route through the gateway",
            Self::Medium => "the network device's medium does not match",
        })
    }
}

impl core::error::Error for Error {}

/// How the device behaves, beyond the chat client's own settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behaviour<'a> {
    /// A reading every `.0` milliseconds, from the template `.1` (`{N}` or `{n}`: the
    /// reading's number from 1, `{uptime}`: device seconds); the first one at once.
    pub every: Option<(u64, &'a str)>,
    /// `Some(grace_ms)`: once the lines have [ended](Lines::ended) and no reading is
    /// configured, leave (and finish) as soon as the device has joined and the server
    /// has answered every line; give up `grace_ms` milliseconds after the lines ended
    /// (what is unanswered then is undelivered). [`GRACE_MS`] is `host-chat client`'s.
    pub leave_when_done: Option<u64>,
    /// A line from a room member that makes the device leave (and finish), e.g. `/exit`.
    pub exit_line: Option<&'a str>,
    /// Give up after this many device milliseconds (a bound for tests and demos).
    pub run_for_ms: Option<u64>,
}

/// After the lines end, how long (ms) a [`leave_when_done`](Behaviour::leave_when_done)
/// device may take to join and have every line answered before it gives up: 5 s, as
/// `host-chat client` at the end of its input.
pub const GRACE_MS: u64 = 5_000;
/// Counters, for a status LED or a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sent to the server.
    pub sent: u32,
    /// Datagrams the network could not take (full); the client's timers resend.
    pub send_failed: u32,
    /// Datagrams from the server the client accepted.
    pub received: u32,
    /// Datagrams from anyone else, ignored.
    pub foreign: u32,
    /// Datagrams the client dropped, by [`Dropped::index`].
    pub dropped: [u32; Dropped::ALL.len()],
    /// Readings replaced by the next one before the client could take them.
    pub readings_skipped: u32,
}
/// The device application over any network driver. See the [module docs](self) for the
/// call order.
pub struct Node<'a, R, L> {
    client: DeviceClient<R>,
    nick: &'a str,
    room: &'a str,
    lines: L,
    every: Option<Every<'a>>,
    behaviour: Behaviour<'a>,
    /// The device is leaving, and how it will have finished: on its own (lines done or
    /// given up, asked by the room) or told to ([`Node::leave`]).
    leaving: Option<Finish>,
    /// When a [`leave_when_done`](Behaviour::leave_when_done) device gives up (device
    /// ms), from the end of its lines.
    grace_until: Option<u64>,
    finish: Option<Finish>,
    /// What became of the lines given, and of the join.
    tally: Tally,
    /// The server refused the join, saying this.
    refusal: Option<String<TEXT_LEN>>,
    stats: Stats,
}

/// Lines given and their outcomes, and whether the device joined.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    joined: bool,
    given: u32,
    delivered: u32,
    undelivered: u32,
}

impl<R: CryptoRng, L> fmt::Debug for Node<'_, R, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("state", &self.client.state())
            .field("finish", &self.finish)
            .field("tally", &self.tally)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<'a, R: CryptoRng, L: Lines> Node<'a, R, L> {
    /// A node that will join `chat.room` as `chat.nick` with `key`, at device time
    /// `now` (milliseconds); it has no real time yet and learns it from the server.
    /// `chat.max_datagram` is capped at [`MAX_DATAGRAM`]. `rng` makes IVs and session
    /// ids: the chip's hardware RNG, or a CSPRNG seeded from one.
    pub fn new(
        chat: &ClientConfig<'a>,
        key: Key,
        rng: R,
        now: u64,
        behaviour: Behaviour<'a>,
        lines: L,
    ) -> Result<Self, Error> {
        let mut chat = *chat;
        chat.max_datagram = chat.max_datagram.min(MAX_DATAGRAM);
        let client = Client::new(
            &chat,
            KeyRing::new(key),
            rng,
            WallClock::default(),
            Instant::from_millis(now),
        )
        .ok_or(Error::InvalidName)?;
        let every = behaviour.every.map(|(period_ms, template)| Every {
            period_ms,
            template,
            next_at: now,
            count: 0,
            due: None,
        });
        Ok(Self {
            client,
            nick: chat.nick,
            room: chat.room,
            lines,
            every,
            behaviour,
            leaving: None,
            grace_until: None,
            finish: None,
            tally: Tally::default(),
            refusal: None,
            stats: Stats::default(),
        })
    }

    /// Takes a datagram that came from the server, and reports what it brought.
    pub fn handle_datagram(&mut self, now: u64, datagram: &mut [u8], out: &mut impl Output) {
        if self.finish.is_some() {
            return;
        }
        match self
            .client
            .handle_datagram(Instant::from_millis(now), datagram)
        {
            Ok(()) => self.stats.received = self.stats.received.saturating_add(1),
            Err(reason) => self.dropped(reason),
        }
        self.drain(now, out);
    }

    /// Counts a datagram from someone other than the server (ignored).
    pub fn foreign(&mut self) {
        self.stats.foreign = self.stats.foreign.saturating_add(1);
    }

    /// Counts a datagram the driver had to drop (say, [`Dropped::TooLong`]).
    pub fn dropped(&mut self, reason: Dropped) {
        if let Some(n) = self.stats.dropped.get_mut(reason.index()) {
            *n = n.saturating_add(1);
        }
    }

    /// Runs the timers, offers the lines that are due, leaves when it is time, and
    /// reports every event.
    pub fn poll(&mut self, now: u64, out: &mut impl Output) {
        if self.finish.is_some() {
            return;
        }
        let at = Instant::from_millis(now);
        if self.client.poll_timeout().is_some_and(|due| due <= at) {
            self.client.handle_timeout(at);
        }
        self.offer_lines(now, out);
        self.leave_if_done(now, out);
        self.drain(now, out);
        if self.finish.is_none() && self.behaviour.run_for_ms.is_some_and(|limit| now >= limit) {
            self.finished_with(Finish::TimedOut, now, out);
        }
    }

    /// The next datagram for the server, written into `buf` (which should hold
    /// [`MAX_DATAGRAM`] bytes); its length, or `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: u64, buf: &mut [u8]) -> Option<usize> {
        if self.finish.is_some() {
            return None;
        }
        self.client.poll_transmit(Instant::from_millis(now), buf)
    }

    /// Counts a datagram from [`poll_transmit`](Self::poll_transmit): `sent` if the
    /// network took it (a lost one is resent by the client's timers).
    pub fn transmitted(&mut self, sent: bool) {
        let n = if sent {
            &mut self.stats.sent
        } else {
            &mut self.stats.send_failed
        };
        *n = n.saturating_add(1);
    }

    /// When [`poll`](Self::poll) should run again at the latest, device milliseconds
    /// (`None`: only when a datagram comes).
    pub fn poll_at(&self) -> Option<u64> {
        if self.finish.is_some() {
            return None;
        }
        let client = self.client.poll_timeout().map(Instant::millis);
        let reading = self
            .every
            .as_ref()
            .filter(|every| every.due.is_none())
            .map(|every| every.next_at);
        let grace = self.grace_until.filter(|_| self.leaving.is_none());
        [client, reading, grace, self.behaviour.run_for_ms]
            .into_iter()
            .flatten()
            .min()
    }

    /// Says goodbye now (the lines the client holds get the client's drain timeout to
    /// be answered); the node finishes (as [`Finish::Closed`]) when the session has
    /// closed.
    pub fn leave(&mut self, now: u64) {
        if self.leaving.is_none() {
            self.leaving = Some(Finish::Closed);
        }
        self.client.leave(Instant::from_millis(now));
    }

    /// Why the node stopped, once it has: the driver's loop ends there.
    pub fn finished(&self) -> Option<Finish> {
        self.finish
    }

    /// How the session went, once the node has finished (what an exit status says:
    /// [`Outcome::failure`]); also the last report, [`What::Finished`].
    pub fn outcome(&self) -> Option<Outcome<'_>> {
        self.finish.map(|finish| self.outcome_as(finish))
    }

    /// Where the chat session is.
    pub fn state(&self) -> ClientState {
        self.client.state()
    }

    /// Lines the server has not taken yet.
    pub fn unacknowledged(&self) -> usize {
        self.client.unacknowledged()
    }

    /// The real time at device time `now`, Unix seconds, once learnt from the server.
    pub fn unix_secs(&self, now: u64) -> Option<u64> {
        self.client.clock().unix_secs(Instant::from_millis(now))
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The lines' source (the PC simulator reads its standard input through it).
    pub fn lines(&self) -> &L {
        &self.lines
    }
}
