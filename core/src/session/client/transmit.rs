//! What goes out: the next frame the session owes the server (Join, Ping, Ack, Chat,
//! Who, Leave), and the timers it books as sent.

use super::*;

impl<
    R: CryptoRng,
    const K: usize,
    const TEXT: usize,
    const OUTBOX: usize,
    const EVENTS: usize,
    const REORDER: usize,
> Client<R, K, TEXT, OUTBOX, EVENTS, REORDER>
{
    /// Writes the next datagram to send into `buf` (which should hold the largest
    /// datagram) and returns its length, or `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let due = self.next_due(now)?;
        let buf = buf.get_mut(..self.config.max_datagram.min(buf.len()))?;
        let timestamp = self.clock.unix_secs(now).unwrap_or(0);
        let body = match due {
            Due::Join => Body::Join {
                version: wire::VERSION,
                nick: &self.nick,
                room: &self.room,
                window: u8::try_from(OUTBOX).unwrap_or(u8::MAX),
                resume: self.ever_joined.then_some(Resume {
                    epoch: self.epoch,
                    next_seq: self.inbox.next_seq(),
                }),
            },
            Due::Ping => Body::Ping {
                counter: self.ping_counter,
            },
            Due::Ack => Body::Ack {
                next_seq: self.inbox.next_seq(),
                selective: self.inbox.selective(),
                presence: self.presence_next,
            },
            Due::Chat => {
                let line = self.outbox.next_due(now)?;
                let len = Repr {
                    session: self.session,
                    body: Body::Chat {
                        msg_id: line.msg_id,
                        text: line.text,
                    },
                }
                .emit(buf)
                .ok()?;
                return seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf);
            }
            Due::Who(start) => Body::Who {
                counter: self.who_counter,
                start,
            },
            Due::Leave => Body::Leave,
        };
        let len = Repr {
            session: self.session,
            body,
        }
        .emit(buf)
        .ok()?;
        seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf)
    }

    /// Picks what to send next and updates the timers as if it was sent.
    fn next_due(&mut self, now: Instant) -> Option<Due> {
        match self.state {
            ClientState::Closed => None,
            ClientState::Leaving => {
                self.leave_due = self.leave_due.checked_sub(1)?;
                Some(Due::Leave)
            }
            ClientState::SyncingClock | ClientState::Joining => {
                if !self.hello_due {
                    return None;
                }
                self.hello_due = false;
                self.hello_deadline = Some(now + self.hello_rto);
                if self.state == ClientState::Joining {
                    return Some(Due::Join);
                }
                self.ping_counter = self.ping_counter.wrapping_add(1);
                self.ping_sent_at = Some(now);
                Some(Due::Ping)
            }
            ClientState::Joined => {
                if self.inbox.ack_due {
                    self.inbox.acked();
                    return Some(Due::Ack);
                }
                if self.outbox.has_due(now) {
                    return Some(Due::Chat);
                }
                if let Some(start) = self.who_due.take() {
                    self.who_counter = self.who_counter.wrapping_add(1);
                    let wait = self.outbox.rto().max(Duration::from_millis(500));
                    self.who_awaited = Some((start, now + wait));
                    return Some(Due::Who(start));
                }
                if self.ping_due {
                    self.ping_due = false;
                    self.ping_counter = self.ping_counter.wrapping_add(1);
                    self.ping_sent_at = Some(now);
                    return Some(Due::Ping);
                }
                None
            }
        }
    }
}

/// A frame that is due.
#[derive(Clone, Copy, Debug)]
enum Due {
    Join,
    Ping,
    Ack,
    Chat,
    Who(u32),
    Leave,
}
