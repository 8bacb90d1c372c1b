//! Leaving: `/quit`, the end of input and Ctrl+C (within [`QUIT_GRACE`]), the lines that
//! will not reach the room, and how the session went (the exit status).

use super::{ChatClient, QUIT_GRACE};
use crate::error::NotDelivered;
use chat_cli::count;
use chat_core::session::ClientState;
use chat_core::time::Instant;
use serde_json::json;

impl ChatClient {
    /// Ctrl+C, SIGINT or SIGTERM: leave as soon as what is waiting is answered (within
    /// [`QUIT_GRACE`]); `true` to stop at once (the second time), reporting what is
    /// dropped.
    pub(super) fn interrupt(&mut self, now: Instant) -> bool {
        if self.quit_by.is_some() || self.leaving {
            // A second Ctrl+C: do not wait for anything more.
            self.interrupted = true;
            self.drop_everything("interrupted");
            let fields = json!({"joined": self.joined, "interrupted": true});
            self.info("closed", "stopped at once", fields);
            return true;
        }
        let waiting = self.pending.len() + self.backlog.len();
        let text = if waiting == 0 {
            "leaving... (Ctrl+C again to quit at once)".to_owned()
        } else {
            format!(
                "leaving: waiting up to {} s for the server to take {} (Ctrl+C again to quit \
                 at once and drop {})",
                QUIT_GRACE.millis() / 1000,
                count(waiting as u64, "line"),
                if waiting == 1 { "it" } else { "them" }
            )
        };
        self.info("leaving", &text, json!({"waiting": waiting}));
        self.quit(now);
        false
    }

    pub(super) fn quit(&mut self, now: Instant) {
        if self.quit_by.is_none() {
            self.quit_by = Some(now + QUIT_GRACE);
        }
    }

    pub(super) fn leave(&mut self, now: Instant) {
        if !self.leaving {
            self.leaving = true;
            // Lines the session never took cannot reach the room any more.
            while let Some(line) = self.backlog.pop_front() {
                self.not_delivered(None, &line, "not sent: the session was leaving");
            }
            self.client.leave(now);
        }
    }

    /// Stopping at once: every line not yet answered is reported undelivered.
    fn drop_everything(&mut self, why: &str) {
        for (id, line) in std::mem::take(&mut self.pending) {
            self.not_delivered(Some(id), &line, why);
        }
        while let Some(line) = self.backlog.pop_front() {
            self.not_delivered(None, &line, why);
        }
    }

    /// A line given to this session will not reach the room: says which, and why (one
    /// `undelivered` event, naming it by its text and, if the session took it, its id).
    pub(super) fn not_delivered(&mut self, id: Option<u32>, line: &str, why: &str) {
        self.undelivered += 1;
        let text = match id {
            Some(id) => format!("line {id} not delivered ({why}): {line}"),
            None => format!("line not delivered ({why}): {line}"),
        };
        let mut fields = json!({"text": line, "reason": why});
        if let Some(id) = id {
            fields["id"] = json!(id);
        }
        self.info("undelivered", &text, fields);
    }

    /// How the session went, as the exit status sees it: `Ok` only if it joined and
    /// every line given reached the room.
    pub(super) fn outcome(&self) -> anyhow::Result<()> {
        let room = self.client.room();
        let failure = if let Some(reason) = &self.refusal {
            format!("the server refused to let us in: {reason}")
        } else if !self.joined {
            let why = if self.refused_at.is_some() {
                "nothing is listening there (connection refused)"
            } else {
                "no answer (is `host-chat server` running there, with the same key?)"
            };
            format!("never joined room {room} on {}: {why}", self.server)
        } else if self.undelivered > 0 {
            format!(
                "{} of {} did not reach the room",
                self.undelivered,
                count(self.given as u64, "line")
            )
        } else {
            return Ok(());
        };
        Err(NotDelivered(failure).into())
    }

    /// Everything given is done: joined, every line taken and answered, `/who` answered.
    pub(super) fn all_answered(&self) -> bool {
        self.client.state() == ClientState::Joined
            && self.backlog.is_empty()
            && self.client.unacknowledged() == 0
            && !self.who_pending
    }
}
