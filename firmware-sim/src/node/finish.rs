//! When the device is done: the tally of the lines' outcomes kept from the events, the
//! exit line, leaving at the end of the lines (or giving up after the grace), and how the
//! session went ([`Outcome`], [`Failure`]).

use super::{Lines, Node, Output, Report, What};
use chat_core::session::{ClientEvent, ClientState};
use chat_core::time::Instant;
use core::fmt;
use rand_core::CryptoRng;

/// Why the node stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// A room member sent the [exit line](super::Behaviour::exit_line); the device left.
    Asked,
    /// The lines ended, the device joined and the server answered every line; the
    /// device left ([`leave_when_done`](super::Behaviour::leave_when_done)).
    Done,
    /// The lines ended but the grace passed before the device joined or before every
    /// line was answered; the device gave up
    /// ([`Client::abort`](chat_core::session::Client::abort): the lines still waiting
    /// are undelivered).
    GaveUp,
    /// The session closed without the device asking (the server refused the join), or
    /// an application called [`Node::leave`].
    Closed,
    /// [`run_for_ms`](super::Behaviour::run_for_ms) passed.
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
    /// see [`Stats::readings_skipped`](super::Stats::readings_skipped)).
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
    /// [`Behaviour::run_for_ms`](super::Behaviour::run_for_ms) passed first.
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

impl<'a, R: CryptoRng, L: Lines> Node<'a, R, L> {
    pub(super) fn outcome_as(&self, finish: Finish) -> Outcome<'_> {
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

    /// A [`leave_when_done`](super::Behaviour::leave_when_done) device whose lines have
    /// ended: leaves once joined with every line answered, or gives up when the grace
    /// has passed.
    pub(super) fn leave_if_done(&mut self, now: u64, out: &mut impl Output) {
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
    /// Reports every event the client has, keeping the tally; acts on the exit line and
    /// the end.
    pub(super) fn drain(&mut self, now: u64, out: &mut impl Output) {
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

    pub(super) fn finished_with(&mut self, finish: Finish, now: u64, out: &mut impl Output) {
        self.finish = Some(finish);
        out.report(&Report {
            what: What::Finished(self.outcome_as(finish)),
            ..self.report(now)
        });
    }
}
