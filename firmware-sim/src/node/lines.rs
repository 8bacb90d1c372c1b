//! What the device sends: the [`Lines`] source ([`Script`], or the PC's standard input),
//! each line offered to the client until it takes it, and the lines an ended source
//! still holds when the session is over.

use super::{DeviceClient, Node, Output, Report, Tally, What};
use chat_core::session::SendError;
use rand_core::CryptoRng;

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
    /// all known at once). A
    /// [`Behaviour::leave_when_done`](super::Behaviour::leave_when_done) node then has
    /// its grace to get every line answered; when the node finishes, the lines left in
    /// an ended source are reported undelivered.
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
    pub(super) next: usize,
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

impl<'a, R: CryptoRng, L: Lines> Node<'a, R, L> {
    /// Hands the client every line it can take now: the source's first, then the
    /// reading due.
    pub(super) fn offer_lines(&mut self, now: u64, out: &mut impl Output) {
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
    pub(super) fn abandon_lines(&mut self, now: u64, out: &mut impl Output) {
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
