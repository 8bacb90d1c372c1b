//! What the user gives: standard input's lines (read by their own thread), the
//! terminal's keys (`--tui`), line mode's commands, and the lines waiting for room in
//! the outbox.

use super::ChatClient;
use crate::net;
use crate::ui;
use anyhow::Context as _;
use chat_core::session::SendError;
use chat_core::time::Instant;
use serde_json::json;
use std::io::{self, BufRead as _};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};

/// What the standard-input thread hands to the loop.
#[derive(Debug)]
pub(super) enum Input {
    Line(String),
    NotUtf8,
    Eof,
    /// `--tui`: a key, a resize...
    Term(ui::Event),
}

pub(super) fn spawn_stdin(waker: Arc<mio::Waker>) -> anyhow::Result<Receiver<Input>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut stdin = stdin.lock();
            loop {
                let mut line = Vec::new();
                let input = match stdin.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => Input::Eof,
                    Ok(_) => {
                        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                            line.pop();
                        }
                        String::from_utf8(line).map_or(Input::NotUtf8, Input::Line)
                    }
                };
                let eof = matches!(input, Input::Eof);
                if tx.send(input).is_err() {
                    break;
                }
                let _ = waker.wake();
                if eof {
                    break;
                }
            }
        })
        .context("cannot start the input thread")?;
    Ok(rx)
}

impl ChatClient {
    /// `--tui`: one event of the terminal; `true` to stop at once.
    pub(super) fn terminal_event(&mut self, now: Instant, event: ui::Event) -> bool {
        let Some(tui) = &mut self.tui else {
            return false;
        };
        // Other events (a resize) only need the redraw that follows every turn.
        let ui::Event::Key(key) = event else {
            return false;
        };
        match ui::on_key(&mut tui.state, key) {
            Some(ui::Action::Line(line)) => self.line(line),
            Some(ui::Action::Who) => self.who(),
            Some(ui::Action::Quit) => self.quit(now),
            Some(ui::Action::Interrupt) => return self.interrupt(now),
            Some(ui::Action::Redraw) => {
                let _ = tui.clear();
            }
            None => {}
        }
        false
    }

    /// `/who`: asks the server who is in the room; leaving waits for the answer.
    fn who(&mut self) {
        self.who_pending = true;
        self.client.request_members();
    }

    pub(super) fn line(&mut self, line: String) {
        let line = match line.strip_prefix('/') {
            None => line,
            Some(rest) if rest.starts_with('/') => rest.to_owned(),
            Some(command) => {
                match command.trim() {
                    "quit" | "exit" | "q" => {
                        let now = self.clock.now();
                        self.quit(now);
                    }
                    "who" | "members" => self.who(),
                    "help" | "?" => self.info(
                        "help",
                        "type a line and Enter to send it; /who lists the room, /quit \
                         leaves; start a line with // to send one beginning with /",
                        json!({}),
                    ),
                    other => self.error(&format!(
                        "unknown command /{other}: /who, /quit, /help (start a line with // \
                         to send one beginning with /)"
                    )),
                }
                return;
            }
        };
        if line.is_empty() {
            return;
        }
        self.given += 1;
        if self.quit_by.is_some() || self.leaving {
            self.not_delivered(None, &line, "not sent: leaving the room");
            return;
        }
        let max = self.client.max_text_len();
        if line.len() > max {
            let why = format!("too long: {} bytes, at most {max}", line.len());
            self.not_delivered(None, &line, &why);
            return;
        }
        self.backlog.push_back(line);
    }

    pub(super) fn send_backlog(&mut self) {
        while let Some(line) = self.backlog.pop_front() {
            match self.client.send(&line) {
                Ok(id) => {
                    if self.json {
                        net::out(&json!({"event": "sent", "id": id, "text": line}).to_string());
                    }
                    self.pending.insert(id, line);
                }
                Err(SendError::QueueFull) => {
                    self.backlog.push_front(line);
                    break;
                }
                Err(SendError::TooLong { max }) => {
                    let why = format!("too long: {} bytes, at most {max}", line.len());
                    self.not_delivered(None, &line, &why);
                }
                Err(SendError::Closed) => {
                    self.not_delivered(None, &line, "not sent: the session is closed");
                }
            }
        }
    }
}
