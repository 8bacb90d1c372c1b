//! One turn of the loop: poll, read the readable sockets (recvmmsg), run the clients'
//! timers, send what the touched clients have (sendmmsg).

use super::load::{Bench, now_ns};
use crate::mmsg::{self, Datagrams};
use anyhow::Context as _;
use chat_core::fernet::token_len;
use mio::Events;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

impl Bench {
    /// One turn of the loop: wait, read every readable socket, run the timers that are
    /// due, send what the touched clients have.
    pub(super) fn turn(
        &mut self,
        events: &mut Events,
        incoming: &mut Datagrams,
        timeout: Option<Duration>,
    ) -> anyhow::Result<()> {
        let next_timer = self.peers.iter().filter_map(|p| p.timer).min();
        let timeout = match next_timer {
            Some(at) => {
                let left = self
                    .clock
                    .to_std(at)
                    .saturating_duration_since(std::time::Instant::now());
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
        };
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("event loop failed"),
        }
        for event in events.iter() {
            let i = event.token().0;
            if i < self.peers.len() {
                self.read(i, incoming);
            }
        }
        let now = self.clock.now();
        if next_timer.is_some_and(|at| at <= now) {
            for i in 0..self.peers.len() {
                if self.peers[i].timer.is_some_and(|at| at <= now)
                    && let Some(client) = self.peers[i].client.as_mut()
                {
                    client.on_timer(now);
                    self.peers[i].timer = client.timer();
                    self.mark(i);
                }
            }
        }
        self.flush_dirty();
        Ok(())
    }

    /// Drains client `i`'s socket.
    fn read(&mut self, i: usize, incoming: &mut Datagrams) {
        self.mark(i);
        loop {
            match mmsg::recv(&self.peers[i].socket, incoming, None) {
                Ok(n) => {
                    self.counts.syscalls_in += 1;
                    self.counts.datagrams_in += n as u64;
                    self.last_datagram = now_ns(self.start);
                    for j in 0..n {
                        let (datagram, _) = incoming.get_mut(j);
                        self.on_datagram(i, datagram);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error (the server is gone): the drain timeout ends the run.
                Err(_) => break,
            }
        }
        if self.peers[i].client.is_some() {
            self.client_events(i);
        }
    }

    /// Sends what the touched clients have ready.
    pub(super) fn flush_dirty(&mut self) {
        let now = self.clock.now();
        let chat_len = token_len(32);
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            let peer = &mut self.peers[i];
            peer.dirty = false;
            loop {
                while peer.out_sent < peer.out.len() {
                    match mmsg::send(&peer.socket, &peer.out, peer.out_sent, true) {
                        Ok(n) => {
                            self.counts.syscalls_out += 1;
                            self.counts.datagrams_out += n as u64;
                            peer.out_sent += n.max(1);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => peer.out_sent += 1,
                    }
                }
                if peer.out_sent < peer.out.len() {
                    break; // the socket is full: the rest goes when it is writable
                }
                peer.out.clear();
                peer.out_sent = 0;
                let Some(client) = peer.client.as_mut() else {
                    break;
                };
                while !peer.out.is_full() {
                    match client.transmit(now, peer.out.next_buf()) {
                        Some(len) => {
                            if len >= chat_len {
                                self.counts.chat_datagrams += 1;
                            }
                            peer.out.push(len, SocketAddr::from(([0, 0, 0, 0], 0)));
                        }
                        None => break,
                    }
                }
                if peer.out.is_empty() {
                    break;
                }
            }
            if let Some(client) = peer.client.as_ref() {
                peer.timer = client.timer();
                self.client_events(i);
            }
        }
        // Reuse the allocation; peers marked meanwhile (by their events) were pushed on
        // the fresh vector and stay marked.
        let mut dirty = dirty;
        dirty.clear();
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
    }
}
