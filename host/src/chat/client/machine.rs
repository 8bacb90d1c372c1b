//! The event loop's side of the session ([`Machine`]): datagrams in and out, each turn
//! (signals, input, leaving), socket errors, and moving to the next server.

use super::input::Input;
use super::{CLOCK_SYNC, ChatClient, FAILOVER_SETTLE};
use crate::net::{self, Machine, Step};
use chat_core::session::ClientState;
use chat_core::time::Instant;
use serde_json::json;
use std::io;
use std::net::SocketAddr;

impl ChatClient {
    /// Moves the session to the next server given (PROTOCOL.md "Several servers"), if
    /// there is another and it did not just move: it rejoins there where it was.
    pub(super) fn fail_over(&mut self, now: Instant, why: &str) {
        let state = self.client.state();
        if self.servers.len() < 2
            || self.leaving
            || !matches!(state, ClientState::Joined | ClientState::Joining)
            || self.moved_at.is_some_and(|at| now - at < FAILOVER_SETTLE)
        {
            return;
        }
        let from = self.server.clone();
        self.current = (self.current + 1) % self.servers.len();
        let (addr, name) = self.servers[self.current].clone();
        self.server = name.clone();
        self.redirect = Some(addr);
        self.moved_at = Some(now);
        self.refused_told = false;
        self.refused_at = None;
        self.client.rejoin(now);
        self.info(
            "failover",
            &format!("[{}] {from} {why}; moving to {name}", self.now_hms()),
            json!({"from": from, "server": name, "why": why}),
        );
    }
}

impl Machine for ChatClient {
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, datagram: &mut [u8]) {
        // The datagram is opened in place: keep its text for the wire view, and show it
        // only if the session took it (a receipt that came twice is shown once).
        let copy = self.show_wire.then(|| datagram.to_vec());
        let taken = self.client.handle_datagram(now, datagram);
        if let (Some(copy), Ok(())) = (copy, taken) {
            self.show_wire(false, &copy);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let len = self.client.poll_transmit(now, buf)?;
        if self.show_wire {
            let copy = buf.get(..len)?.to_vec();
            self.show_wire(true, &copy);
        }
        // The socket is connected: the address is not used.
        Some((SocketAddr::from(([0, 0, 0, 0], 0)), len))
    }

    fn app(&mut self, now: Instant) -> Step {
        use signal_hook::consts::{SIGINT, SIGTERM};
        while let Ok(signal) = self.signals.try_recv() {
            if (signal == SIGINT || signal == SIGTERM) && self.interrupt(now) {
                return Step::Stop;
            }
        }
        while let Ok(input) = self.input.try_recv() {
            match input {
                Input::Line(line) => self.line(line),
                Input::NotUtf8 => {
                    self.given += 1;
                    self.not_delivered(None, "", "not sent: the line is not UTF-8 text");
                }
                Input::Eof => self.quit(now),
                Input::Term(event) => {
                    if self.terminal_event(now, event) {
                        return Step::Stop;
                    }
                }
            }
        }
        if !self.leaving {
            self.send_backlog();
        }
        let mut closed = self.events();
        // After the events: the answers they brought count for "all answered".
        if let Some(by) = self.quit_by
            && !closed
            && !self.leaving
            && (self.all_answered() || by <= now)
        {
            self.leave(now);
            closed = self.events();
        }
        if closed || self.client.state() == ClientState::Closed {
            return Step::Stop;
        }
        if self.next_clock_sync <= now {
            self.client.sync_clock(now, net::unix_millis());
            self.next_clock_sync = now + CLOCK_SYNC;
        }
        let mut deadline = self.next_clock_sync;
        if let Some(by) = self.quit_by.filter(|_| !self.leaving) {
            deadline = deadline.min(by);
        }
        self.redraw();
        Step::Continue(Some(deadline))
    }

    fn redirect(&mut self) -> Option<SocketAddr> {
        self.redirect.take()
    }

    fn socket_error(&mut self, now: Instant, error: &io::Error) {
        if error.kind() == io::ErrorKind::ConnectionRefused && self.servers.len() > 1 {
            self.refused_at = Some(now);
            self.fail_over(now, "is not there (connection refused)");
        } else if error.kind() == io::ErrorKind::ConnectionRefused {
            self.refused_at = Some(now);
            if !self.refused_told {
                self.refused_told = true;
                let server = self.server.clone();
                self.info(
                    "connection_refused",
                    &format!(
                        "nothing is listening at {server} (connection refused); is `host-chat \
                         server` running there? still trying"
                    ),
                    json!({"server": server}),
                );
            }
        } else {
            self.error(&format!("network error: {error}"));
        }
    }
}
