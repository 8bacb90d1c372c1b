//! What comes in: a datagram from the server, opened and judged, then each kind of frame's
//! effect on the session.

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
    /// Takes one datagram from the server. On error, says why it was dropped (for
    /// counters); nothing needs to be done about it.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) -> Result<(), Dropped> {
        self.last_input = now;
        if datagram.len() > self.config.max_datagram {
            return Err(Dropped::TooLong);
        }
        let opened = open(&self.keys, datagram)?;
        let repr = match opened.plaintext {
            Plaintext::Frame(repr) => repr,
            Plaintext::Legacy(_) => return Err(Dropped::Unexpected),
        };
        // Room messages name the room (its epoch), everything else our session: a
        // token captured in another room or session is not ours.
        let addressee = match repr.body {
            Body::Deliver { .. } => self.epoch,
            _ => self.session,
        };
        if repr.session != addressee {
            return Err(Dropped::Unexpected);
        }
        let unix_now = self.clock.unix_secs(now);
        if unix_now.is_none() && !matches!(repr.body, Body::Pong { .. }) {
            // Without a clock only the answer to our own ping can be judged fresh.
            return Err(Dropped::Unexpected);
        }
        judge_age(
            opened.timestamp,
            self.config.ttl,
            self.config.clock_skew,
            unix_now,
        )?;
        let result = self.on_frame(now, opened.timestamp, repr.body);
        if result.is_ok() || result == Err(Dropped::Duplicate) {
            // A verified, fresh token from the server: it is there.
            self.last_heard = now;
            if self.lost {
                self.lost = false;
                self.push_event(ClientEvent::ServerBack);
            }
        }
        result
    }

    fn on_frame(&mut self, now: Instant, timestamp: u64, body: Body<'_>) -> Result<(), Dropped> {
        match body {
            Body::Pong { counter, members } => self.on_pong(now, timestamp, counter, members),
            Body::Welcome {
                epoch,
                next_seq,
                next_msg_id,
                members,
                window,
                presence,
                nick,
            } => {
                if self.state != ClientState::Joining {
                    return Err(Dropped::Duplicate);
                }
                let resumed = self.ever_joined && epoch == self.epoch;
                if !resumed || next_seq != self.inbox.next_seq() {
                    // A new room (or a server restart): start where the server says. When
                    // resuming, the server starts where we asked (or sends Missed).
                    self.inbox.reset(next_seq);
                }
                self.epoch = epoch;
                if resumed && presence > self.presence_next && self.has_room() {
                    // Changes while we were away: only their number is known.
                    self.push_event(ClientEvent::Presence {
                        members,
                        skipped: presence - self.presence_next,
                        changes: PresenceChanges::default(),
                    });
                }
                self.presence_next = presence;
                self.nick = truncated(nick);
                self.outbox.grant(window);
                self.outbox.renumber(next_msg_id);
                self.members = members;
                self.state = ClientState::Joined;
                self.hello_deadline = None;
                self.next_ping = now + self.config.keepalive;
                let rejoined = self.ever_joined;
                self.ever_joined = true;
                self.no_answer_told = false;
                self.push_event(ClientEvent::Joined {
                    members,
                    rejoined,
                    resumed,
                    nick: self.nick.clone(),
                });
                Ok(())
            }
            Body::Receipt {
                msg_id,
                seq,
                recipients,
            } => self.on_answer(now, msg_id, |id| ClientEvent::Delivered {
                id,
                seq,
                recipients,
            }),
            Body::Refused { msg_id, reason } => {
                self.on_answer(now, msg_id, |id| ClientEvent::Refused { id, reason })
            }
            Body::Busy {
                msg_id,
                retry_after_ms,
            } => {
                let wait = Duration::from_millis(u64::from(retry_after_ms));
                if self.outbox.on_busy(now, msg_id, wait) {
                    Ok(())
                } else {
                    Err(Dropped::Duplicate)
                }
            }
            Body::Deliver { seq, nick, text } => self.on_deliver(now, seq, nick, text, timestamp),
            Body::Missed { from: _, to } => {
                if self.state != ClientState::Joined && self.state != ClientState::Leaving {
                    return Err(Dropped::Unexpected);
                }
                let from = self.inbox.next_seq();
                if to <= from {
                    self.inbox.ack_due = true;
                    return Err(Dropped::Duplicate);
                }
                if !self.has_room() {
                    return Err(Dropped::Overloaded);
                }
                self.inbox.skip_to(to);
                self.push_event(ClientEvent::Missed { from, to });
                self.drain_kept(now);
                Ok(())
            }
            Body::Presence {
                members,
                from,
                changes,
            } => self.on_presence(members, from, changes),
            Body::Notice { code, text } => self.on_notice(now, code, text),
            Body::Members {
                total,
                start,
                nicks,
            } => self.on_members(total, start, nicks),
            Body::JoinV1 { .. }
            | Body::Join { .. }
            | Body::Chat { .. }
            | Body::Ack { .. }
            | Body::Ping { .. }
            | Body::Leave
            | Body::Who { .. } => Err(Dropped::Unexpected),
        }
    }

    fn on_pong(
        &mut self,
        now: Instant,
        timestamp: u64,
        counter: u64,
        members: u32,
    ) -> Result<(), Dropped> {
        if counter != self.ping_counter || self.ping_sent_at.is_none() {
            return Err(Dropped::Duplicate);
        }
        let sent_at = self.ping_sent_at.take().unwrap_or(now);
        self.rtt = Some(now - sent_at);
        if self.state == ClientState::SyncingClock {
            // The pong echoes our fresh random session and counter, so it is no replay:
            // its timestamp is the server's time now.
            let unix_millis = timestamp.saturating_mul(1000).saturating_add(500);
            self.clock.sync(now, unix_millis);
            self.state = ClientState::Joining;
            self.hello_due = true;
            self.hello_deadline = None;
            self.hello_rto = self.config.initial_rto;
            self.push_event(ClientEvent::ClockSynced {
                unix_secs: timestamp,
            });
        } else {
            self.members = members;
        }
        Ok(())
    }

    /// The server answered our line `msg_id` with `event(id)`.
    fn on_answer(
        &mut self,
        now: Instant,
        msg_id: u32,
        event: impl FnOnce(u32) -> ClientEvent<TEXT>,
    ) -> Result<(), Dropped> {
        if !self.has_room() {
            return Err(Dropped::Overloaded);
        }
        let id = self
            .outbox
            .on_answer(now, msg_id)
            .ok_or(Dropped::Duplicate)?;
        self.push_event(event(id));
        if self.draining_until.is_some() && self.outbox.is_empty() {
            self.begin_leaving(now);
        }
        Ok(())
    }

    fn on_deliver(
        &mut self,
        now: Instant,
        seq: u64,
        nick: &str,
        text: &str,
        timestamp: u64,
    ) -> Result<(), Dropped> {
        if self.state != ClientState::Joined && self.state != ClientState::Leaving {
            return Err(Dropped::Unexpected);
        }
        let message = Message {
            seq,
            nick: truncated(nick),
            text: truncated(text),
            timestamp,
        };
        if seq == self.inbox.next_seq() && !self.has_room() {
            // The application is behind: keep the message until it reads its events
            // (`poll_event` shows it then), or, with no room to keep it, drop it
            // unacknowledged: it comes again.
            return if self.inbox.keep_next(message) {
                Ok(())
            } else {
                Err(Dropped::Overloaded)
            };
        }
        match self.inbox.on_deliver(message) {
            Arrival::Next(message) => {
                self.show(now, message);
                self.drain_kept(now);
                Ok(())
            }
            Arrival::Kept => Ok(()),
            Arrival::Duplicate => Err(Dropped::Duplicate),
            Arrival::TooFar => Err(Dropped::Overloaded),
        }
    }

    fn show(&mut self, now: Instant, message: Message<TEXT>) {
        self.inbox.shown(now);
        self.push_event(ClientEvent::Message {
            seq: message.seq,
            nick: message.nick,
            text: message.text,
            timestamp: message.timestamp,
        });
    }

    /// Shows the kept messages that are now next, while there is room for them.
    pub(super) fn drain_kept(&mut self, now: Instant) {
        while self.has_room() {
            match self.inbox.take_next() {
                Some(message) => self.show(now, message),
                None => break,
            }
        }
    }

    fn on_presence(
        &mut self,
        members: u32,
        from: u32,
        changes: Changes<'_>,
    ) -> Result<(), Dropped> {
        if self.state != ClientState::Joined && self.state != ClientState::Leaving {
            return Err(Dropped::Unexpected);
        }
        self.members = members;
        // The server resends until we acknowledge, so acknowledge even a repeat.
        self.inbox.ack_due = true;
        let count = u32::try_from(changes.len()).unwrap_or(0);
        let end = from.saturating_add(count);
        if end <= self.presence_next {
            return Err(Dropped::Duplicate);
        }
        if !self.has_room() {
            return Err(Dropped::Overloaded);
        }
        let mut listed = PresenceChanges::default();
        let mut unlisted = from.saturating_sub(self.presence_next);
        for (i, (kind, nick)) in changes.iter().enumerate() {
            let number = from.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
            if number < self.presence_next {
                continue;
            }
            if !listed.push(kind, nick) {
                unlisted = unlisted.saturating_add(1);
            }
        }
        self.presence_next = end;
        self.push_event(ClientEvent::Presence {
            members,
            skipped: unlisted,
            changes: listed,
        });
        Ok(())
    }

    fn on_notice(&mut self, now: Instant, code: NoticeCode, text: &str) -> Result<(), Dropped> {
        match code {
            NoticeCode::NOT_JOINED => {
                if self.state != ClientState::Joined {
                    return Err(Dropped::Duplicate);
                }
                self.state = ClientState::Joining;
                self.hello_due = true;
                self.hello_deadline = None;
                self.hello_rto = self.config.initial_rto;
                self.waiting_since = now;
                self.push_event(ClientEvent::Rejoining);
            }
            NoticeCode::BYE => {
                if self.state != ClientState::Leaving {
                    return Err(Dropped::Unexpected);
                }
                self.close();
            }
            NoticeCode::REFUSED | NoticeCode::VERSION => {
                if self.state != ClientState::Joining {
                    return Err(Dropped::Duplicate);
                }
                self.push_event(ClientEvent::Notice {
                    text: truncated(text),
                });
                self.close();
            }
            _ => {
                if !self.has_room() {
                    return Err(Dropped::Overloaded);
                }
                self.push_event(ClientEvent::Notice {
                    text: truncated(text),
                });
            }
        }
        Ok(())
    }

    fn on_members(&mut self, total: u32, start: u32, nicks: Names<'_>) -> Result<(), Dropped> {
        if !self.has_room() {
            return Err(Dropped::Overloaded);
        }
        let mut names = NameList::default();
        let mut listed = 0u32;
        for name in nicks.iter() {
            if !names.push(name) {
                break;
            }
            listed += 1;
        }
        let next = start.saturating_add(listed);
        if self
            .who_awaited
            .is_some_and(|(awaited, _)| awaited == start)
        {
            self.who_awaited = None;
        }
        if listed > 0 && next < total {
            self.who_due = Some(next);
        }
        self.push_event(ClientEvent::Members {
            total,
            start,
            names,
        });
        Ok(())
    }
}
