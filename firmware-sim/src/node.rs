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

use crate::{EVENTS, MAX_DATAGRAM, OUTBOX, REORDER, TEXT_LEN};
use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClientState, Dropped, JsonStr, SendError,
};
use chat_core::time::{Instant, WallClock};
use core::fmt;
use heapless::String;
use rand_core::CryptoRng;

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

/// Where the lines the device sends come from (besides its periodic reading).
///
/// [`peek`](Self::peek) shows the next line without taking it: the node calls
/// [`take`](Self::take) once the client has accepted it (or refused it for good), so a
/// line that must wait for room in the outbox is offered again later.
pub trait Lines {
    /// The next line to send, if one is ready.
    fn peek(&mut self) -> Option<&str>;
    /// Drops the line [`peek`](Self::peek) returned.
    fn take(&mut self);
    /// Whether the source has ended: no line will come beyond those
    /// [`peek`](Self::peek) still shows (the end of standard input; a script's lines are
    /// all known at once). A [`Behaviour::leave_when_done`] node then has its grace to
    /// get every line answered; when the node finishes, the lines left in an ended
    /// source are reported undelivered.
    fn ended(&self) -> bool {
        false
    }
}

/// No lines: a node that only sends its readings, or only listens.
impl Lines for () {
    fn peek(&mut self) -> Option<&str> {
        None
    }
    fn take(&mut self) {}
    fn ended(&self) -> bool {
        true
    }
}

/// A fixed list of lines, sent once, in order.
#[derive(Clone, Copy, Debug)]
pub struct Script<'a> {
    lines: &'a [&'a str],
    next: usize,
}

impl<'a> Script<'a> {
    /// The lines `lines`, first to last.
    pub const fn new(lines: &'a [&'a str]) -> Self {
        Self { lines, next: 0 }
    }
}

impl Lines for Script<'_> {
    fn peek(&mut self) -> Option<&str> {
        self.lines.get(self.next).copied()
    }
    fn take(&mut self) {
        self.next = self.next.saturating_add(1).min(self.lines.len());
    }
    fn ended(&self) -> bool {
        true
    }
}

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

/// Why the node stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// A room member sent the [exit line](Behaviour::exit_line); the device left.
    Asked,
    /// The lines ended, the device joined and the server answered every line; the
    /// device left ([`leave_when_done`](Behaviour::leave_when_done)).
    Done,
    /// The lines ended but the grace passed before the device joined or before every
    /// line was answered; the device gave up ([`Client::abort`]: the lines still
    /// waiting are undelivered).
    GaveUp,
    /// The session closed without the device asking (the server refused the join), or
    /// an application called [`Node::leave`].
    Closed,
    /// [`run_for_ms`](Behaviour::run_for_ms) passed.
    TimedOut,
}

impl Finish {
    /// `asked`, `done`, `gave_up`, `closed`, `timeout`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Asked => "asked",
            Self::Done => "done",
            Self::GaveUp => "gave_up",
            Self::Closed => "closed",
            Self::TimedOut => "timeout",
        }
    }
}

/// How the node's session went, once it has finished ([`Node::outcome`]): what an exit
/// status says. Every line given has exactly one outcome, so `given == delivered +
/// undelivered` once the node finished by leaving ([`Finish::Asked`], [`Finish::Done`],
/// [`Finish::GaveUp`], [`Finish::Closed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome<'n> {
    /// Why the node stopped.
    pub finish: Finish,
    /// The device joined the room (at least once).
    pub joined: bool,
    /// The server refused the join: its notice's text.
    pub refusal: Option<&'n str>,
    /// Lines given: taken from the [`Lines`] source (sent, or refused by the client) and
    /// readings sent (a reading replaced by the next before it was sent is not given:
    /// see [`Stats::readings_skipped`]).
    pub given: u32,
    /// Lines the server took into the room ([`ClientEvent::Delivered`]).
    pub delivered: u32,
    /// Lines given that did not reach the room: refused by the client (too long) or by
    /// the server, undelivered when the session closed, or never sent.
    pub undelivered: u32,
    /// The room.
    pub room: &'n str,
}

impl<'n> Outcome<'n> {
    /// Why the session failed, `None` if it did what it was given: joined, every line
    /// given reached the room, and it ended as meant ([`Finish::Asked`],
    /// [`Finish::Done`], or [`Finish::GaveUp`] with nothing lost). In that order: a
    /// refused join, no join, lines that did not reach the room, the time limit, a
    /// session closed early.
    pub fn failure(&self) -> Option<Failure<'n>> {
        if let Some(reason) = self.refusal {
            Some(Failure::Refused(reason))
        } else if !self.joined {
            Some(Failure::NeverJoined { room: self.room })
        } else if self.undelivered > 0 {
            Some(Failure::NotDelivered {
                undelivered: self.undelivered,
                given: self.given,
            })
        } else {
            match self.finish {
                Finish::Asked | Finish::Done | Finish::GaveUp => None,
                Finish::TimedOut => Some(Failure::TimedOut),
                Finish::Closed => Some(Failure::Closed),
            }
        }
    }

    /// Whether the session did what it was given ([`failure`](Self::failure) is `None`).
    pub fn is_success(&self) -> bool {
        self.failure().is_none()
    }
}

/// Why a session failed ([`Outcome::failure`]); its `Display` is one sentence for a
/// log or an error line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure<'n> {
    /// The server refused the join, saying this.
    Refused(&'n str),
    /// The device never joined `room`: no answer from the server (down, another key, an
    /// older protocol), or it did not answer in time.
    NeverJoined { room: &'n str },
    /// `undelivered` of the `given` lines did not reach the room.
    NotDelivered { undelivered: u32, given: u32 },
    /// [`Behaviour::run_for_ms`] passed first.
    TimedOut,
    /// The session closed before the device was done.
    Closed,
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(reason) => write!(f, "the server refused to let us in: {reason}"),
            Self::NeverJoined { room } => {
                write!(f, "never joined room {room}: no answer from the server")
            }
            Self::NotDelivered { undelivered, given } => write!(
                f,
                "{undelivered} of {given} line{} did not reach the room",
                if *given == 1 { "" } else { "s" }
            ),
            Self::TimedOut => f.write_str("the time given ran out"),
            Self::Closed => f.write_str("the session closed before the device was done"),
        }
    }
}

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

/// What the device reports: [`Report::json`] is its JSON object.
#[derive(Clone, Copy, Debug)]
pub enum What<'r> {
    /// Line `id` (what [`ClientEvent::Delivered`] will name) went to the client.
    Sent { id: u32, text: &'r str },
    /// A line given that the client never took: too long ([`SendError::TooLong`]), or
    /// still waiting when the session ended; it will not reach the room.
    NotSent { text: &'r str, error: SendError },
    /// A chat event.
    Event(&'r Event),
    /// The node stopped; nothing more will be reported.
    Finished(Outcome<'r>),
}

/// Why a line was not sent ([`What::NotSent`]), as its report's `reason` says it:
/// `not sent: message too long: at most 128 bytes`, `not sent: the session ended first`.
#[derive(Clone, Copy, Debug)]
pub struct NotSentReason(pub SendError);

impl fmt::Display for NotSentReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SendError::TooLong { .. } => write!(f, "not sent: {}", self.0),
            SendError::QueueFull | SendError::Closed => {
                f.write_str("not sent: the session ended first")
            }
        }
    }
}

/// One thing the device reports, with its context.
#[derive(Clone, Copy, Debug)]
pub struct Report<'r> {
    /// What happened.
    pub what: What<'r>,
    /// The device clock, milliseconds.
    pub device_ms: u64,
    /// The device's nickname and room.
    pub nick: &'r str,
    pub room: &'r str,
}

impl<'r> Report<'r> {
    /// The JSON object members, without the braces (so a driver may add its own):
    /// core's [`ClientEvent::json_fields`], plus `room` on `joined` and `device_ms` on
    /// `clock_synced`; `{"event":"sent","id","text"}`,
    /// `{"event":"undelivered","text","reason"}` for a line never sent, and at the end
    /// `{"event":"exit","reason","device_ms","joined","given","delivered","undelivered"}`
    /// with `"error"`, the [failure](Outcome::failure), if it failed.
    pub fn json_fields(&self) -> ReportFields<'_, 'r> {
        ReportFields(self)
    }

    /// The whole JSON object.
    pub fn json(&self) -> ReportJson<'_, 'r> {
        ReportJson(self)
    }

    /// The chat event, if this is one.
    pub fn event(&self) -> Option<&'r Event> {
        match self.what {
            What::Event(event) => Some(event),
            _ => None,
        }
    }
}

/// See [`Report::json_fields`].
#[derive(Clone, Copy, Debug)]
pub struct ReportFields<'a, 'r>(&'a Report<'r>);

impl fmt::Display for ReportFields<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        match report.what {
            What::Sent { id, text } => {
                write!(f, r#""event":"sent","id":{id},"text":{}"#, JsonStr(text))
            }
            What::NotSent { text, error } => write!(
                f,
                r#""event":"undelivered","text":{},"reason":"{}""#,
                JsonStr(text),
                NotSentReason(error)
            ),
            What::Event(event) => {
                write!(f, "{}", event.json_fields())?;
                match event {
                    // Core's `nick` is the one the server granted.
                    ClientEvent::Joined { .. } => write!(f, r#","room":{}"#, JsonStr(report.room)),
                    ClientEvent::ClockSynced { .. } => {
                        write!(f, r#","device_ms":{}"#, report.device_ms)
                    }
                    _ => Ok(()),
                }
            }
            What::Finished(outcome) => {
                write!(
                    f,
                    r#""event":"exit","reason":"{}","device_ms":{},"joined":{},"given":{},"delivered":{},"undelivered":{}"#,
                    outcome.finish.as_str(),
                    report.device_ms,
                    outcome.joined,
                    outcome.given,
                    outcome.delivered,
                    outcome.undelivered
                )?;
                match outcome.failure() {
                    Some(failure) => write!(f, r#","error":{}"#, JsonFailure(failure)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A failure as a JSON string (formatted into a fixed buffer, then escaped).
#[derive(Clone, Copy, Debug)]
struct JsonFailure<'n>(Failure<'n>);

impl fmt::Display for JsonFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: String<{ TEXT_LEN + 64 }> = cut(format_args!("{}", self.0));
        write!(f, "{}", JsonStr(&text))
    }
}

/// See [`Report::json`].
#[derive(Clone, Copy, Debug)]
pub struct ReportJson<'a, 'r>(&'a Report<'r>);

impl fmt::Display for ReportJson<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.0.json_fields())
    }
}

/// `{"event":"error","message":...}`: the message formatted into a fixed buffer (no
/// allocator; cut at 160 bytes, the start says the most), as a JSON line's text.
pub fn error_json(message: fmt::Arguments<'_>) -> ErrorJson {
    ErrorJson(cut(message))
}

/// `text` formatted into `N` bytes, cut on a character boundary when longer.
fn cut<const N: usize>(text: fmt::Arguments<'_>) -> String<N> {
    /// Takes characters until the buffer is full.
    struct Cut<'s, const N: usize>(&'s mut String<N>);
    impl<const N: usize> fmt::Write for Cut<'_, N> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            s.chars()
                .try_for_each(|c| self.0.push(c))
                .map_err(|_| fmt::Error)
        }
    }
    let mut out = String::new();
    let _ = fmt::Write::write_fmt(&mut Cut(&mut out), text);
    out
}

/// See [`error_json`].
#[derive(Clone, Debug)]
pub struct ErrorJson(String<160>);

impl fmt::Display for ErrorJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, r#"{{"event":"error","message":{}}}"#, JsonStr(&self.0))
    }
}

/// Where the device's reports go: a console, a display, a counter.
pub trait Output {
    /// One report, as it happens.
    fn report(&mut self, report: &Report<'_>);
}

impl<F: FnMut(&Report<'_>)> Output for F {
    fn report(&mut self, report: &Report<'_>) {
        self(report)
    }
}

/// The periodic reading.
#[derive(Debug)]
struct Every<'a> {
    period_ms: u64,
    template: &'a str,
    next_at: u64,
    count: u64,
    /// The reading due, rendered, until the client takes it.
    due: Option<String<TEXT_LEN>>,
}

impl Every<'_> {
    /// Renders the reading due at `now`, if one is; true if one was still waiting.
    fn tick(&mut self, now: u64) -> bool {
        if now < self.next_at {
            return false;
        }
        self.count = self.count.saturating_add(1);
        let replaced = self.due.is_some();
        self.due = Some(render(self.template, self.count, now / 1000));
        // Never in a burst after a stall: the next one a period from now at most.
        self.next_at = self
            .next_at
            .saturating_add(self.period_ms.max(1))
            .max(now.saturating_add(1));
        replaced
    }
}

/// `template` with `{N}` (or `{n}`) and `{uptime}` replaced, cut at [`TEXT_LEN`] bytes (on a
/// character boundary). No `core::fmt`: it stays out of images that print nothing.
fn render(template: &str, n: u64, uptime: u64) -> String<TEXT_LEN> {
    let mut out = String::new();
    let mut rest = template;
    while !rest.is_empty() {
        let reading = rest
            .strip_prefix("{N}")
            .or_else(|| rest.strip_prefix("{n}"));
        let (piece, number, skip) = if let Some(after) = reading {
            ("", Some(n), rest.len() - after.len())
        } else if let Some(after) = rest.strip_prefix("{uptime}") {
            ("", Some(uptime), rest.len() - after.len())
        } else {
            let len = rest.chars().next().map_or(1, char::len_utf8);
            (rest.get(..len).unwrap_or(""), None, len)
        };
        let fits = match number {
            Some(number) => push_decimal(&mut out, number),
            None => out.push_str(piece).is_ok(),
        };
        if !fits {
            break;
        }
        rest = rest.get(skip..).unwrap_or("");
    }
    out
}

fn push_decimal(out: &mut String<TEXT_LEN>, mut n: u64) -> bool {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        if let Some(slot) = digits.get_mut(len) {
            *slot = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    digits
        .get(..len)
        .unwrap_or_default()
        .iter()
        .rev()
        .all(|&d| out.push(char::from(d)).is_ok())
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

    fn outcome_as(&self, finish: Finish) -> Outcome<'_> {
        Outcome {
            finish,
            joined: self.tally.joined,
            refusal: self.refusal.as_deref(),
            given: self.tally.given,
            delivered: self.tally.delivered,
            undelivered: self.tally.undelivered,
            room: self.room,
        }
    }

    /// A [`leave_when_done`](Behaviour::leave_when_done) device whose lines have ended:
    /// leaves once joined with every line answered, or gives up when the grace has
    /// passed.
    fn leave_if_done(&mut self, now: u64, out: &mut impl Output) {
        let Some(grace_ms) = self.behaviour.leave_when_done else {
            return;
        };
        let state = self.client.state();
        if self.leaving.is_some()
            || self.every.is_some()
            || !self.lines.ended()
            || matches!(state, ClientState::Leaving | ClientState::Closed)
        {
            return;
        }
        let give_up_at = *self.grace_until.get_or_insert(now.saturating_add(grace_ms));
        let at = Instant::from_millis(now);
        if state == ClientState::Joined
            && self.lines.peek().is_none()
            && self.client.unacknowledged() == 0
        {
            self.leaving = Some(Finish::Done);
            self.client.leave(at);
        } else if now >= give_up_at {
            self.leaving = Some(Finish::GaveUp);
            // Core reports the lines it holds undelivered; the node those it never took.
            self.abandon_lines(now, out);
            self.client.abort(at);
        }
    }

    /// Hands the client every line it can take now: the source's first, then the
    /// reading due.
    fn offer_lines(&mut self, now: u64, out: &mut impl Output) {
        if self.leaving.is_some() {
            return;
        }
        let context = self.report(now);
        if let Some(every) = self.every.as_mut()
            && every.tick(now)
        {
            self.stats.readings_skipped = self.stats.readings_skipped.saturating_add(1);
        }
        while let Some(text) = self.lines.peek() {
            match offer(&mut self.client, &mut self.tally, context, text, out) {
                Offer::Later => return,
                Offer::Taken => self.lines.take(),
            }
        }
        if let Some(every) = self.every.as_mut()
            && let Some(text) = every.due.as_deref()
            && offer(&mut self.client, &mut self.tally, context, text, out) == Offer::Taken
        {
            every.due = None;
        }
    }

    /// Reports the lines an ended source still holds as never sent (the session is
    /// over for them).
    fn abandon_lines(&mut self, now: u64, out: &mut impl Output) {
        if !self.lines.ended() {
            return;
        }
        let context = self.report(now);
        while let Some(text) = self.lines.peek() {
            self.tally.given = self.tally.given.saturating_add(1);
            self.tally.undelivered = self.tally.undelivered.saturating_add(1);
            out.report(&Report {
                what: What::NotSent {
                    text,
                    error: SendError::Closed,
                },
                ..context
            });
            self.lines.take();
        }
    }

    /// Reports every event the client has, keeping the tally; acts on the exit line and
    /// the end.
    fn drain(&mut self, now: u64, out: &mut impl Output) {
        while let Some(event) = self.client.poll_event() {
            let tally = &mut self.tally;
            match &event {
                ClientEvent::Joined { .. } => tally.joined = true,
                ClientEvent::Delivered { .. } => {
                    tally.delivered = tally.delivered.saturating_add(1);
                }
                ClientEvent::Refused { .. } | ClientEvent::Undelivered { .. } => {
                    tally.undelivered = tally.undelivered.saturating_add(1);
                }
                // A refused join: the server's notice, and the session is closed.
                ClientEvent::Notice { text }
                    if self.leaving.is_none() && self.client.state() == ClientState::Closed =>
                {
                    self.refusal = Some(text.clone());
                }
                ClientEvent::Message { text, .. }
                    if self.leaving.is_none()
                        && self.behaviour.exit_line == Some(text.as_str()) =>
                {
                    self.leaving = Some(Finish::Asked);
                    self.client.leave(Instant::from_millis(now));
                }
                _ => {}
            }
            out.report(&Report {
                what: What::Event(&event),
                ..self.report(now)
            });
            if event == ClientEvent::Closed {
                self.abandon_lines(now, out);
                let finish = self.leaving.unwrap_or(Finish::Closed);
                self.finished_with(finish, now, out);
                return;
            }
        }
    }

    fn finished_with(&mut self, finish: Finish, now: u64, out: &mut impl Output) {
        self.finish = Some(finish);
        out.report(&Report {
            what: What::Finished(self.outcome_as(finish)),
            ..self.report(now)
        });
    }

    /// A report at `now`, to fill in.
    fn report(&self, now: u64) -> Report<'a> {
        Report {
            what: What::Sent { id: 0, text: "" },
            device_ms: now,
            nick: self.nick,
            room: self.room,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// The client took the line, or refused it for good: the next one.
    Taken,
    /// The outbox is full: again later.
    Later,
}

/// Offers `text` to the client, reporting what became of it and counting it as given
/// (`context` gives the report's time and names).
fn offer<R: CryptoRng>(
    client: &mut DeviceClient<R>,
    tally: &mut Tally,
    context: Report<'_>,
    text: &str,
    out: &mut impl Output,
) -> Offer {
    match client.send(text) {
        Ok(id) => {
            tally.given = tally.given.saturating_add(1);
            out.report(&Report {
                what: What::Sent { id, text },
                ..context
            });
            Offer::Taken
        }
        Err(SendError::QueueFull) => Offer::Later,
        Err(error) => {
            tally.given = tally.given.saturating_add(1);
            tally.undelivered = tally.undelivered.saturating_add(1);
            out.report(&Report {
                what: What::NotSent { text, error },
                ..context
            });
            Offer::Taken
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests run without the `std` feature too.
    #[allow(unused_extern_crates)]
    extern crate std;
    use super::*;
    use std::format;
    use std::string::{String, ToString};
    use std::vec::Vec;

    #[test]
    fn renders_readings_without_fmt() {
        assert_eq!(
            render("temp 21.5 C #{n}", 12, 0).as_str(),
            "temp 21.5 C #12"
        );
        assert_eq!(render("{uptime}s {n}", 3, 0).as_str(), "0s 3");
        assert_eq!(render("#{N}", 4, 0).as_str(), "#4");
        assert_eq!(
            render("{n}{n}", u64::MAX, 0).as_str(),
            "1844674407370955161518446744073709551615"
        );
        assert_eq!(render("{x} é {", 1, 2).as_str(), "{x} é {");
        let long = "é".repeat(100);
        let cut = render(&long, 0, 0);
        assert_eq!(cut.len(), TEXT_LEN, "cut on a character boundary");
    }

    /// An RNG good enough for a unit test (never for a device).
    struct CountingRng(u64);
    impl rand_core::TryRng for CountingRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for b in dst {
                *b = self.try_next_u64()? as u8;
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for CountingRng {}

    fn node<L: Lines>(behaviour: Behaviour<'_>, lines: L) -> Node<'_, CountingRng, L> {
        Node::new(
            &ClientConfig::new("dev", "lobby"),
            Key::from_bytes(&[7; 32]),
            CountingRng(1),
            0,
            behaviour,
            lines,
        )
        .unwrap()
    }

    /// Lines wait for room in the outbox (two lines), in order, none lost or repeated.
    #[test]
    fn lines_wait_for_room_in_order() {
        let script = ["a", "b", "c"];
        let mut node = node(Behaviour::default(), Script::new(&script));
        let mut seen = Vec::new();
        node.poll(0, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
        assert_eq!(
            seen,
            [
                r#"{"event":"sent","id":1,"text":"a"}"#,
                r#"{"event":"sent","id":2,"text":"b"}"#
            ]
        );
        assert_eq!(node.lines().next, 2, "c waits");
        assert_eq!(node.poll_at(), Some(3000), "the no-answer timer");
    }

    #[test]
    fn readings_are_due_every_period_and_the_latest_wins() {
        let behaviour = Behaviour {
            every: Some((1000, "r{n} at {uptime}")),
            ..Behaviour::default()
        };
        let mut node = node(behaviour, ());
        let mut sent = Vec::new();
        let mut out = |r: &Report<'_>| {
            if let What::Sent { text, .. } = r.what {
                sent.push(text.to_string());
            }
        };
        for now in [0, 1000, 2000, 3000, 4000] {
            node.poll(now, &mut out);
        }
        // Two fit the outbox; the third waits and is replaced twice by newer readings.
        assert_eq!(sent, ["r1 at 0", "r2 at 1"]);
        assert_eq!(node.stats().readings_skipped, 2);
    }

    #[test]
    fn a_too_long_line_is_reported_and_skipped() {
        let long = "x".repeat(TEXT_LEN + 1);
        let script = [long.as_str(), "ok"];
        let mut node = node(Behaviour::default(), Script::new(&script));
        let mut seen = Vec::new();
        node.poll(0, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
        assert_eq!(
            seen[0],
            format!(
                r#"{{"event":"undelivered","text":"{long}","reason":"not sent: message too long: at most {TEXT_LEN} bytes"}}"#
            )
        );
        assert_eq!(seen[1], r#"{"event":"sent","id":1,"text":"ok"}"#);
        assert_eq!(node.lines().next, 2);
    }

    /// At the end of its lines a device that never hears the server gives up after the
    /// grace: each line given gets one `undelivered` (core's for the two it held, the
    /// node's for the one it never took), and the outcome says it never joined.
    #[test]
    fn gives_up_after_the_grace_and_every_line_gets_an_outcome() {
        let script = ["a", "b", "c"];
        let behaviour = Behaviour {
            leave_when_done: Some(GRACE_MS),
            ..Behaviour::default()
        };
        let mut node = node(behaviour, Script::new(&script));
        let mut seen = Vec::new();
        let mut out = |r: &Report<'_>| seen.push(r.json().to_string());
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut now = 0;
        node.poll(now, &mut out);
        // Every datagram goes out, and none comes back.
        while node.finished().is_none() && now < 10_000 {
            while node.poll_transmit(now, &mut buf).is_some() {}
            now = node.poll_at().expect("a timer");
            node.poll(now, &mut out);
        }
        assert_eq!(node.finished(), Some(Finish::GaveUp));
        assert_eq!(now, GRACE_MS, "given up when the grace ended");
        let outcome = node.outcome().unwrap();
        assert_eq!(
            (
                outcome.joined,
                outcome.given,
                outcome.delivered,
                outcome.undelivered
            ),
            (false, 3, 0, 3)
        );
        assert_eq!(
            outcome.failure(),
            Some(Failure::NeverJoined { room: "lobby" })
        );
        let tail: Vec<&str> = seen
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            [
                r#"{"event":"undelivered","text":"c","reason":"not sent: the session ended first"}"#,
                r#"{"event":"undelivered","id":1,"text":"a"}"#,
                r#"{"event":"undelivered","id":2,"text":"b"}"#,
                r#"{"event":"closed"}"#,
                r#"{"event":"exit","reason":"gave_up","device_ms":5000,"joined":false,"given":3,"delivered":0,"undelivered":3,"error":"never joined room lobby: no answer from the server"}"#,
            ]
        );
        assert_eq!(node.poll_at(), None);
    }

    #[test]
    fn failures_read_as_one_sentence() {
        let outcome = Outcome {
            finish: Finish::Done,
            joined: true,
            refusal: None,
            given: 1,
            delivered: 0,
            undelivered: 1,
            room: "lobby",
        };
        assert_eq!(
            outcome.failure().unwrap().to_string(),
            "1 of 1 line did not reach the room"
        );
        let some = Outcome {
            given: 3,
            undelivered: 2,
            ..outcome
        };
        assert_eq!(
            some.failure().unwrap().to_string(),
            "2 of 3 lines did not reach the room"
        );
        let refused = Outcome {
            refusal: Some("room \"x\" is full"),
            joined: false,
            finish: Finish::Closed,
            ..outcome
        };
        assert_eq!(
            refused.failure().unwrap().to_string(),
            "the server refused to let us in: room \"x\" is full"
        );
        let fine = Outcome {
            undelivered: 0,
            delivered: 1,
            ..outcome
        };
        assert!(fine.is_success());
        assert!(
            !Outcome {
                finish: Finish::TimedOut,
                ..fine
            }
            .is_success()
        );
        assert!(
            !Outcome {
                finish: Finish::Closed,
                ..fine
            }
            .is_success()
        );
        assert!(
            Outcome {
                finish: Finish::GaveUp,
                ..fine
            }
            .is_success()
        );
        let report = Report {
            what: What::Finished(refused),
            device_ms: 7,
            nick: "dev",
            room: "lobby",
        };
        assert_eq!(
            report.json().to_string(),
            r#"{"event":"exit","reason":"closed","device_ms":7,"joined":false,"given":1,"delivered":0,"undelivered":1,"error":"the server refused to let us in: room \"x\" is full"}"#
        );
    }

    #[test]
    fn times_out_and_stops() {
        let behaviour = Behaviour {
            run_for_ms: Some(500),
            ..Behaviour::default()
        };
        let mut node = node(behaviour, ());
        let mut seen = Vec::new();
        node.poll(499, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
        assert!(node.finished().is_none());
        assert_eq!(node.poll_at(), Some(500));
        node.poll(500, &mut |r: &Report<'_>| seen.push(r.json().to_string()));
        assert_eq!(node.finished(), Some(Finish::TimedOut));
        assert_eq!(
            seen.last().unwrap(),
            r#"{"event":"exit","reason":"timeout","device_ms":500,"joined":false,"given":0,"delivered":0,"undelivered":0,"error":"never joined room lobby: no answer from the server"}"#
        );
        let mut buf = [0u8; MAX_DATAGRAM];
        assert_eq!(node.poll_transmit(500, &mut buf), None);
        assert_eq!(node.poll_at(), None);
    }
}
