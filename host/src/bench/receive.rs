//! What the clients receive: receipts, members' lines and the framed clients' events,
//! counted and timed.

use super::load::{Bench, now_ns};
use super::member::{Happening, Member};
use super::options::Mode;
use crate::net;
use chat_core::fernet::TtlCheck;

/// Sender and number of a benchmark line: `#C:K:...` somewhere in `text`.
pub(super) fn parse_payload(text: &[u8]) -> Option<(usize, u64)> {
    let at = text.iter().position(|&b| b == b'#')?;
    let rest = text.get(at + 1..)?;
    let mut parts = rest.splitn(3, |&b| b == b':');
    let number =
        |part: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(part?).ok()?.parse().ok() };
    let c = number(parts.next())?;
    let k = number(parts.next())?;
    Some((usize::try_from(c).ok()?, k))
}

impl Bench {
    pub(super) fn on_datagram(&mut self, i: usize, datagram: &mut [u8]) {
        let now_core = self.clock.now();
        if let Some(client) = self.peers[i].client.as_mut() {
            client.receive(now_core, datagram);
            // As an application should: read what it says at once (a client holds only a
            // few events; what does not fit is dropped unacknowledged and sent again).
            self.client_events(i);
            return;
        }
        let text: &[u8] = match (&self.ring, self.mode) {
            (Some(ring), Mode::Legacy) => {
                let ttl = TtlCheck::new(60, net::unix_millis() / 1000);
                match ring.decrypt_in_place(datagram, ttl) {
                    Ok((opened, _)) => opened.plaintext,
                    Err(_) => return,
                }
            }
            _ => datagram,
        };
        let now = now_ns(self.start);
        if text.starts_with(b"server: received as #")
            || text.starts_with(b"server: message refused")
        {
            let refused = text.starts_with(b"server: message refused");
            if !self.peers[i].ready {
                self.peers[i].ready = true;
                return;
            }
            if let Some(k) = self.peers[i].waiting.pop_front() {
                self.answered(i, k + 1, !refused, now);
            }
            return;
        }
        if let Some((c, k)) = parse_payload(text) {
            self.delivery(c, k, now);
        }
    }

    /// The server answered client `i`'s line `id` (numbered from 1): taken into the room
    /// (`accepted`) or refused.
    fn answered(&mut self, i: usize, id: u64, accepted: bool, now: u64) {
        if accepted {
            self.counts.accepted += 1;
            self.counts.expected += self.fanout_of(i);
        } else {
            self.counts.refused += 1;
        }
        let at = id
            .checked_sub(1)
            .and_then(|k| self.peers[i].sent_at.get(usize::try_from(k).ok()?));
        if let Some(&at) = at {
            let us = now.saturating_sub(at) / 1000;
            self.receipt_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        self.last_progress = now;
    }

    /// Client `c`'s line `k` reached a member.
    fn delivery(&mut self, c: usize, k: u64, now: u64) {
        let Some(&at) = self
            .peers
            .get(c)
            .and_then(|p| p.sent_at.get(usize::try_from(k).unwrap_or(usize::MAX)))
        else {
            self.counts.duplicates += 1;
            return;
        };
        self.counts.delivered += 1;
        let us = (now.saturating_sub(at)) / 1000;
        self.delivery_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        self.last_progress = now;
    }

    /// What happened to client `i` ([`member`](super::member) turns chat_core's events
    /// into these).
    pub(super) fn client_events(&mut self, i: usize) {
        let now = now_ns(self.start);
        while let Some(happening) = self.peers[i].client.as_mut().and_then(Member::next) {
            match happening {
                Happening::Joined => self.peers[i].ready = true,
                Happening::Line(Some((c, k))) => self.delivery(c, k, now),
                Happening::Line(None) => {}
                Happening::Answered { id, accepted } => self.answered(i, id, accepted, now),
                Happening::Undelivered => self.counts.unanswered += 1,
                Happening::Notice(text) => {
                    if !self.peers[i].ready {
                        self.join_notice.get_or_insert(text);
                    }
                }
                Happening::Closed => {
                    if !self.peers[i].ready && !self.peers[i].closed {
                        self.refused_joins += 1;
                    }
                    self.peers[i].closed = true;
                }
            }
        }
    }
}
