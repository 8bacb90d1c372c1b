//! What the device says: a [`Report`] for each thing that happens, its JSON, the
//! `{"event":"error"}` line, and the [`Output`] they go to.

use super::{Event, Failure, Lines, Node, Outcome};
use crate::TEXT_LEN;
use chat_core::session::{ClientEvent, JsonStr, SendError};
use core::fmt;
use heapless::String;
use rand_core::CryptoRng;

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

impl<'a, R: CryptoRng, L: Lines> Node<'a, R, L> {
    /// A report at `now`, to fill in.
    pub(super) fn report(&self, now: u64) -> Report<'a> {
        Report {
            what: What::Sent { id: 0, text: "" },
            device_ms: now,
            nick: self.nick,
            room: self.room,
        }
    }
}
