//! What the clients send: the legacy and plain hellos, the load's lines (round-robin, as
//! the windows or the rate allow), and the receipts given up on.

use super::load::{Bench, now_ns, room_name};
use super::options::Mode;
use crate::net;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// A legacy or plain line whose receipt has not come after this is counted as lost.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(1);

impl Bench {
    /// Legacy and plain clients introduce themselves (naming their room), so that the
    /// server knows every address before the load starts.
    pub(super) fn hellos(&mut self) {
        if self.mode == Mode::Framed {
            return;
        }
        let now = now_ns(self.start);
        let rooms = self.rooms as u32;
        for i in 0..self.peers.len() {
            let peer = &self.peers[i];
            let due = !peer.ready
                && peer.hello_at.is_none_or(|at| {
                    now.saturating_sub(at) > RECEIPT_TIMEOUT.as_nanos() as u64 / 3
                });
            if due && !peer.out.is_full() {
                self.text.clear();
                let _ = write!(self.text, "hello from bench client {i}");
                if self.mode == Mode::Plain {
                    let _ = write!(self.text, " in room {}", room_name(peer.room, rooms));
                }
                self.push_text(i);
                self.peers[i].hello_at = Some(now);
            }
        }
    }

    /// Puts `self.text` into client `i`'s outgoing batch, encrypted unless plain.
    fn push_text(&mut self, i: usize) {
        let unix = net::unix_millis() / 1000;
        let peer = &mut self.peers[i];
        let buf = peer.out.next_buf();
        let len = self.text.len();
        buf[..len].copy_from_slice(self.text.as_bytes());
        let len = match &self.ring {
            Some(ring) if self.mode == Mode::Legacy => {
                match ring.encrypt_in_place(buf, len, unix, &mut self.rng) {
                    Ok(token) => token.len(),
                    Err(_) => return,
                }
            }
            _ => len,
        };
        peer.out.push(len, SocketAddr::from(([0, 0, 0, 0], 0)));
        self.mark(i);
    }

    fn can_send(&self, i: usize) -> bool {
        let peer = &self.peers[i];
        match &peer.client {
            Some(client) => client.in_flight() < self.window,
            None => peer.waiting.len() < self.window && !peer.out.is_full(),
        }
    }

    /// Sends the lines that are due: all the windows allow, or what the rate says.
    pub(super) fn send_due(&mut self, now: u64) {
        let allowed = match self.rate {
            None => self.messages,
            Some(rate) => {
                let since = now.saturating_sub(self.first_send.unwrap_or(now));
                ((since as f64 / 1e9 * rate) as u64 + 1).min(self.messages)
            }
        };
        let mut stalled = 0;
        let mut i = (self.counts.sent % self.clients as u64) as usize;
        while self.counts.sent < allowed && stalled < self.clients {
            if self.can_send(i) && self.send_one(i, now) {
                stalled = 0;
            } else {
                stalled += 1;
            }
            i = (i + 1) % self.clients;
        }
        self.flush_dirty();
    }

    fn send_one(&mut self, i: usize, now: u64) -> bool {
        let k = self.peers[i].sent_at.len() as u64;
        self.text.clear();
        let _ = write!(self.text, "#{i}:{k}:");
        while self.text.len() < self.size {
            self.text.push('x');
        }
        let at = now_ns(self.start);
        match self.peers[i].client.as_mut() {
            Some(client) => {
                if !client.send(&self.text) {
                    return false;
                }
                self.mark(i);
            }
            None => {
                self.push_text(i);
                self.peers[i].waiting.push_back(k);
            }
        }
        self.peers[i].sent_at.push(at);
        self.counts.sent += 1;
        self.first_send.get_or_insert(now);
        self.last_send = at;
        true
    }

    /// Legacy and plain lines without a receipt for too long are lost.
    pub(super) fn expire_receipts(&mut self, now: u64) {
        if self.mode == Mode::Framed {
            return;
        }
        let limit = RECEIPT_TIMEOUT.as_nanos() as u64;
        for peer in &mut self.peers {
            while let Some(&k) = peer.waiting.front() {
                if now.saturating_sub(peer.sent_at[k as usize]) < limit {
                    break;
                }
                peer.waiting.pop_front();
                self.counts.unanswered += 1;
            }
        }
    }
}
