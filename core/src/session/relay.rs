//! The server: keeps rooms, numbers every room message, and delivers each to every member
//! exactly once and in order, from fixed-size storage.

use super::{
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_DATAGRAM, DEFAULT_TTL, Dropped, REFUSED_SEQ, judge_age,
    max_text_len, open, seal_bytes_in_place, truncated,
};
use crate::fernet::KeyRing;
use crate::time::{Duration, Instant, WallClock};
use crate::wire::{Body, NAME_MAX, Names, NoticeCode, Plaintext, Repr};
use core::fmt::Write as _;
use heapless::{Deque, String, Vec};
use rand_core::CryptoRng;

/// Room that legacy senders (bare-text tokens) talk in.
pub const LEGACY_ROOM: &str = "lobby";
/// Receipts remembered per member, to answer retransmitted lines.
const RECEIPTS: usize = 8;
/// Answers to addresses that are not members (pongs for clock sync, "not joined").
const REPLIES: usize = 32;
/// Legacy tokens remembered to refuse replays while they are within the TTL.
const LEGACY_SEEN: usize = 256;
/// Events kept for the driver.
const EVENTS: usize = 64;
/// Sessions that are gone (left, timed out, replaced), remembered so that a replay of
/// their old Join is not taken for a new member.
const GONE: usize = 128;
/// Room-message tokens kept for reuse: every member due the same `Deliver` (which
/// carries the room's epoch, not a member's session, so the frame is the same for all) gets the same token, encrypted
/// once. A few, so that members of rooms served in turn do not evict each other.
const SEALED: usize = 4;
/// Longest token kept for reuse; longer ones (a raised `max_datagram`) are sealed for
/// every member.
const SEALED_MAX: usize = DEFAULT_MAX_DATAGRAM;

/// How a relay behaves; [`RelayConfig::default`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Largest datagram (token text) sent or accepted.
    pub max_datagram: usize,
    /// Largest accepted token age.
    pub ttl: Duration,
    /// How far in the future a token's timestamp may be (clients' clocks ahead of ours).
    pub clock_skew: Duration,
    /// Silence after which a member is dropped.
    pub member_timeout: Duration,
    /// First retransmission timeout; doubles on every retry up to `max_rto`.
    pub initial_rto: Duration,
    /// Longest retransmission timeout.
    pub max_rto: Duration,
    /// Room messages that may be in flight to one member before it acknowledges.
    pub window: u64,
    /// How long a full room history waits for a slow member before its oldest message
    /// is dropped for that member (which is then told what it missed). Meanwhile new
    /// lines are not accepted, and their senders retransmit.
    pub stall_limit: Duration,
}

impl Default for RelayConfig {
    /// 1232-byte datagrams, 60 s TTL, members dropped after 30 s of silence,
    /// retransmissions from 300 ms to 4 s, 16 messages in flight per member, a full
    /// history waits 10 s for slow members.
    fn default() -> Self {
        Self {
            max_datagram: DEFAULT_MAX_DATAGRAM,
            ttl: DEFAULT_TTL,
            clock_skew: DEFAULT_CLOCK_SKEW,
            member_timeout: Duration::from_secs(30),
            initial_rto: Duration::from_millis(300),
            max_rto: Duration::from_secs(4),
            window: 16,
            stall_limit: Duration::from_secs(10),
        }
    }
}

/// Why a member left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// It said goodbye.
    Left,
    /// Silent for longer than the member timeout.
    TimedOut,
    /// A new session joined from the same address (the client restarted).
    Replaced,
}

impl LeaveReason {
    /// How the room is told: "left", "timed out", "reconnected".
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::TimedOut => "timed out",
            Self::Replaced => "reconnected",
        }
    }
}

/// What happened, for the server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent<A> {
    /// A member joined a room.
    Joined {
        addr: A,
        nick: String<NAME_MAX>,
        room: String<NAME_MAX>,
        members: u16,
    },
    /// A member left a room.
    Left {
        addr: A,
        nick: String<NAME_MAX>,
        room: String<NAME_MAX>,
        reason: LeaveReason,
    },
    /// A join was refused.
    Refused { addr: A, reason: &'static str },
}

/// Counters, for `--stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handled.
    pub datagrams: u64,
    /// Room messages accepted.
    pub relayed: u64,
    /// Room-message datagrams sent, first copies and retransmissions.
    pub delivered: u64,
    /// Retransmission rounds started.
    pub retransmits: u64,
    /// Room messages that left the history before some member acknowledged them.
    pub missed: u64,
    /// Datagrams dropped, by reason (index with [`Dropped::index`]).
    pub dropped: [u64; Dropped::ALL.len()],
}

impl Stats {
    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: Dropped) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }
}

/// One line of a room's history.
#[derive(Clone, Debug)]
struct Entry<const TEXT: usize> {
    /// Session of the member that sent it, or that a server line is about.
    from: u64,
    nick: String<NAME_MAX>,
    notice: bool,
    text: String<TEXT>,
}

#[derive(Clone, Debug)]
struct Room<const HISTORY: usize, const TEXT: usize> {
    name: String<NAME_MAX>,
    epoch: u64,
    first_seq: u64,
    history: Deque<Entry<TEXT>, HISTORY>,
    members: u16,
    /// Since when a full history has been held back for a slow member.
    stalled_since: Option<Instant>,
    /// Since when receipts have been held back for a slow member (see `member_due`).
    paced_since: Option<Instant>,
}

impl<const HISTORY: usize, const TEXT: usize> Room<HISTORY, TEXT> {
    fn next_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.history.len() as u64)
    }

    fn get(&self, seq: u64) -> Option<&Entry<TEXT>> {
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.history.iter().nth(index)
    }

    /// Appends a line; the oldest falls out when full. Returns its sequence number.
    fn push(&mut self, entry: Entry<TEXT>) -> u64 {
        if self.history.is_full() && self.history.pop_front().is_some() {
            self.first_seq = self.first_seq.saturating_add(1);
        }
        let seq = self.next_seq();
        let _ = self.history.push_back(entry);
        seq
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Receipt {
    msg_id: u32,
    seq: u64,
    recipients: u16,
}

#[derive(Clone, Debug)]
struct Member<A> {
    addr: A,
    /// Random per client session; 0-free. Legacy senders get a made-up one.
    session: u64,
    nick: String<NAME_MAX>,
    room: usize,
    legacy: bool,
    last_heard: Instant,
    next_msg_id: u32,
    receipts: Deque<Receipt, RECEIPTS>,
    receipts_due: Deque<Receipt, RECEIPTS>,
    welcome_due: bool,
    who_due: bool,
    pong_due: Option<u64>,
    ping_counter: u64,
    /// Every room message before this one was acknowledged.
    acked: u64,
    /// The next room message to send.
    sent_upto: u64,
    rto_deadline: Option<Instant>,
    rto: Duration,
}

/// A sealed room message, for the next members due the same frame.
#[derive(Clone, Debug)]
struct Sealed {
    room: usize,
    epoch: u64,
    seq: u64,
    legacy: bool,
    /// The token's timestamp: a token is reused only within the second it was made.
    timestamp: u64,
    token: Vec<u8, SEALED_MAX>,
}

/// A session that is no longer a member.
#[derive(Clone, Copy, Debug)]
struct Gone {
    session: u64,
    /// Unix seconds when it went: only a Join made later can be its client coming back.
    at: u64,
    /// It said goodbye: it never comes back.
    left: bool,
}

/// A reply to an address that is not (or no longer) a member.
#[derive(Clone, Copy, Debug)]
struct Reply<A> {
    addr: A,
    session: u64,
    kind: ReplyKind,
}

#[derive(Clone, Copy, Debug)]
enum ReplyKind {
    Pong(u64),
    NotJoined,
    Refused(&'static str),
    Bye,
}

/// The chat server as a sans-IO state machine (see the [module docs](super) for the
/// call order). `A` is the driver's address type.
///
/// * `K`: older keys accepted besides the primary;
/// * `MEMBERS`, `ROOMS`: the most members and rooms at once;
/// * `HISTORY`: room messages kept per room for members that have not acknowledged
///   them; a member that falls further behind is told what it missed;
/// * `TEXT`: bytes kept per line.
///
/// Its size is fixed by these numbers: nothing a peer sends makes it grow.
#[derive(Debug)]
pub struct Relay<
    A,
    R,
    const K: usize = 3,
    const MEMBERS: usize = 64,
    const ROOMS: usize = 8,
    const HISTORY: usize = 64,
    const TEXT: usize = 1024,
> {
    keys: KeyRing<K>,
    rng: R,
    config: RelayConfig,
    clock: WallClock,
    members: Vec<Member<A>, MEMBERS>,
    rooms: Vec<Option<Room<HISTORY, TEXT>>, ROOMS>,
    replies: Deque<Reply<A>, REPLIES>,
    gone: Deque<Gone, GONE>,
    /// Unix seconds as of the last input, for stamping what goes.
    unix_now: u64,
    legacy_seen: Deque<([u8; 24], u64), LEGACY_SEEN>,
    legacy_count: u32,
    cursor: usize,
    sealed: Deque<Sealed, SEALED>,
    events: Deque<RelayEvent<A>, EVENTS>,
    stats: Stats,
}

impl<
    A: Copy + Eq,
    R: CryptoRng,
    const K: usize,
    const MEMBERS: usize,
    const ROOMS: usize,
    const HISTORY: usize,
    const TEXT: usize,
> Relay<A, R, K, MEMBERS, ROOMS, HISTORY, TEXT>
{
    /// A relay with no members. Give it the real time: tokens are judged by it.
    pub fn new(config: RelayConfig, keys: KeyRing<K>, rng: R, clock: WallClock) -> Self {
        let mut rooms = Vec::new();
        for _ in 0..ROOMS {
            let _ = rooms.push(None);
        }
        Self {
            keys,
            rng,
            config,
            clock,
            members: Vec::new(),
            rooms,
            replies: Deque::new(),
            gone: Deque::new(),
            unix_now: 0,
            legacy_seen: Deque::new(),
            legacy_count: 0,
            cursor: 0,
            sealed: Deque::new(),
            events: Deque::new(),
            stats: Stats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Members now, legacy senders included.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Rooms now.
    pub fn room_count(&self) -> usize {
        self.rooms.iter().flatten().count()
    }

    /// Corrects the real time.
    pub fn sync_clock(&mut self, now: Instant, unix_millis: u64) {
        self.clock.sync(now, unix_millis);
    }

    /// The next event for the log.
    pub fn poll_event(&mut self) -> Option<RelayEvent<A>> {
        self.events.pop_front()
    }

    fn count(&mut self, reason: Dropped) -> Dropped {
        if let Some(n) = self.stats.dropped.get_mut(reason.index()) {
            *n = n.saturating_add(1);
        }
        reason
    }

    /// Takes one datagram from `from`. On error, says why it was dropped; the sender of
    /// anything that is not a valid token gets no answer at all.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: A,
        datagram: &mut [u8],
    ) -> Result<(), Dropped> {
        self.stats.datagrams = self.stats.datagrams.saturating_add(1);
        let result = self.handle(now, from, datagram);
        result.map_err(|reason| self.count(reason))
    }

    fn handle(&mut self, now: Instant, from: A, datagram: &mut [u8]) -> Result<(), Dropped> {
        if datagram.len() > self.config.max_datagram {
            return Err(Dropped::TooLong);
        }
        // Token text is canonical, so equal tokens have equal text: these characters
        // cover the IV, which is what makes a token unique.
        let mut fingerprint = [0u8; 24];
        if let Some(part) = datagram.get(12..36) {
            fingerprint.copy_from_slice(part);
        }
        let unix_now = self.clock.unix_secs(now);
        self.unix_now = unix_now.unwrap_or(0);
        let opened = open(&self.keys, datagram)?;
        let age = judge_age(
            opened.timestamp,
            self.config.ttl,
            self.config.clock_skew,
            unix_now,
        );
        match opened.plaintext {
            Plaintext::Legacy(text) => {
                age?;
                self.on_legacy(now, from, text, fingerprint, opened.timestamp)
            }
            Plaintext::Frame(repr) => {
                if let (Body::Ping { counter }, Err(_)) = (repr.body, age) {
                    // A device without a clock asks for the time with an old stamp. It
                    // gets one pong of the ping's size, nothing more. (A fresh ping from
                    // an unknown session is told to join instead, below.)
                    if self.member_by_session(repr.session).is_none() {
                        return self.reply(from, repr.session, ReplyKind::Pong(counter));
                    }
                }
                age?;
                self.on_frame(now, from, repr, opened.timestamp)
            }
        }
    }

    fn reply(&mut self, addr: A, session: u64, kind: ReplyKind) -> Result<(), Dropped> {
        self.replies
            .push_back(Reply {
                addr,
                session,
                kind,
            })
            .map_err(|_| Dropped::Overloaded)
    }

    fn member_by_session(&self, session: u64) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.session == session && !m.legacy)
    }

    fn on_frame(
        &mut self,
        now: Instant,
        from: A,
        repr: Repr<'_>,
        timestamp: u64,
    ) -> Result<(), Dropped> {
        let session = repr.session;
        if let Body::Join { nick, room } = repr.body {
            return self.on_join(now, from, session, nick, room, timestamp);
        }
        let Some(index) = self.member_by_session(session) else {
            return match repr.body {
                Body::Ping { .. } | Body::Chat { .. } | Body::Ack { .. } | Body::Who => {
                    self.reply(from, session, ReplyKind::NotJoined)
                }
                Body::Leave => self.reply(from, session, ReplyKind::Bye),
                _ => Err(Dropped::Unexpected),
            };
        };
        match repr.body {
            Body::Ping { counter } => {
                let member = self.members.get_mut(index).ok_or(Dropped::Unexpected)?;
                if counter <= member.ping_counter {
                    return Err(Dropped::Duplicate);
                }
                member.ping_counter = counter;
                member.pong_due = Some(counter);
                member.addr = from;
                member.last_heard = now;
                Ok(())
            }
            Body::Chat { msg_id, text } => self.on_chat(now, from, index, msg_id, text),
            Body::Ack { next_seq, .. } => self.on_ack(now, from, index, next_seq),
            Body::Who => {
                let member = self.members.get_mut(index).ok_or(Dropped::Unexpected)?;
                member.who_due = true;
                Ok(())
            }
            Body::Leave => {
                self.remove_member(index, LeaveReason::Left);
                self.reply(from, session, ReplyKind::Bye)
            }
            _ => Err(Dropped::Unexpected),
        }
    }

    fn on_join(
        &mut self,
        now: Instant,
        from: A,
        session: u64,
        nick: &str,
        room: &str,
        timestamp: u64,
    ) -> Result<(), Dropped> {
        if let Some(index) = self.member_by_session(session) {
            // Our welcome was lost (or this is a replay): welcome again, to the member's
            // known address only.
            if let Some(member) = self.members.get_mut(index) {
                member.welcome_due = true;
            }
            return Err(Dropped::Duplicate);
        }
        if let Some(i) = self.gone.iter().position(|g| g.session == session) {
            let gone = self.gone.iter().nth(i).copied();
            if gone.is_some_and(|g| g.left || timestamp <= g.at) {
                // Said goodbye, or a Join made before the session went: a replay.
                return Err(Dropped::Duplicate);
            }
            // A Join made after the session was dropped: its client, coming back.
            self.forget_gone(i);
        }
        if let Some(old) = self.members.iter().position(|m| m.addr == from) {
            self.remove_member(old, LeaveReason::Replaced);
        }
        let Some(room_index) = self.find_or_create_room(room) else {
            return self.refuse(from, session, "too many rooms on this server");
        };
        self.add_member(now, from, session, nick, room_index, false)
    }

    fn refuse(&mut self, addr: A, session: u64, reason: &'static str) -> Result<(), Dropped> {
        let _ = self.events.push_back(RelayEvent::Refused { addr, reason });
        self.reply(addr, session, ReplyKind::Refused(reason))?;
        Err(Dropped::Overloaded)
    }

    fn find_or_create_room(&mut self, name: &str) -> Option<usize> {
        if let Some(index) = self
            .rooms
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.name == name))
        {
            return Some(index);
        }
        let index = self.rooms.iter().position(Option::is_none)?;
        let epoch = self.rng.next_u64();
        let slot = self.rooms.get_mut(index)?;
        *slot = Some(Room {
            name: truncated(name),
            epoch,
            first_seq: 0,
            history: Deque::new(),
            members: 0,
            stalled_since: None,
            paced_since: None,
        });
        Some(index)
    }

    fn room(&self, index: usize) -> Option<&Room<HISTORY, TEXT>> {
        self.rooms.get(index)?.as_ref()
    }

    fn room_mut(&mut self, index: usize) -> Option<&mut Room<HISTORY, TEXT>> {
        self.rooms.get_mut(index)?.as_mut()
    }

    fn add_member(
        &mut self,
        now: Instant,
        addr: A,
        session: u64,
        nick: &str,
        room_index: usize,
        legacy: bool,
    ) -> Result<(), Dropped> {
        if self.members.is_full() {
            if self.room(room_index).is_some_and(|r| r.members == 0) {
                self.free_room(room_index);
            }
            if legacy {
                return Err(Dropped::Overloaded);
            }
            return self.refuse(addr, session, "server full");
        }
        let nick: String<NAME_MAX> = truncated(nick);
        let Some(room) = self.room_mut(room_index) else {
            return Err(Dropped::Overloaded);
        };
        room.members = room.members.saturating_add(1);
        let next_seq = room.next_seq();
        let (members, room_name) = (room.members, room.name.clone());
        let member = Member {
            addr,
            session,
            nick: nick.clone(),
            room: room_index,
            legacy,
            last_heard: now,
            next_msg_id: 1,
            receipts: Deque::new(),
            receipts_due: Deque::new(),
            welcome_due: !legacy,
            who_due: false,
            pong_due: None,
            ping_counter: 0,
            acked: next_seq,
            sent_upto: next_seq,
            rto_deadline: None,
            rto: self.config.initial_rto,
        };
        if self.members.push(member).is_err() {
            return Err(Dropped::Overloaded);
        }
        self.announce(room_index, session, &nick, "joined");
        let _ = self.events.push_back(RelayEvent::Joined {
            addr,
            nick,
            room: room_name,
            members,
        });
        Ok(())
    }

    /// A server line about member `about` in the room's history, so every member sees it
    /// in order.
    fn announce(&mut self, room_index: usize, about: u64, nick: &str, what: &str) {
        if let Some(room) = self.room_mut(room_index) {
            room.push(Entry {
                from: about,
                nick: truncated(nick),
                notice: true,
                text: truncated(what),
            });
        }
    }

    /// Removes entry `i` of `gone`, keeping the others in order.
    fn forget_gone(&mut self, i: usize) {
        let mut kept: Deque<Gone, GONE> = Deque::new();
        for (j, gone) in self.gone.iter().enumerate() {
            if j != i {
                let _ = kept.push_back(*gone);
            }
        }
        self.gone = kept;
    }

    fn remove_member(&mut self, index: usize, reason: LeaveReason) {
        if index >= self.members.len() {
            return;
        }
        let member = self.members.swap_remove(index);
        if self.gone.is_full() {
            // The oldest first: by then its Joins are usually past the TTL.
            let _ = self.gone.pop_front();
        }
        let _ = self.gone.push_back(Gone {
            session: member.session,
            at: self.unix_now,
            left: reason == LeaveReason::Left,
        });
        let room_index = member.room;
        let room_name = self
            .room(room_index)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let empty = match self.room_mut(room_index) {
            Some(room) => {
                room.members = room.members.saturating_sub(1);
                room.members == 0
            }
            None => false,
        };
        if empty {
            self.free_room(room_index);
        } else {
            self.announce(room_index, member.session, &member.nick, reason.as_str());
        }
        let _ = self.events.push_back(RelayEvent::Left {
            addr: member.addr,
            nick: member.nick,
            room: room_name,
            reason,
        });
    }

    fn free_room(&mut self, index: usize) {
        if let Some(slot) = self.rooms.get_mut(index) {
            *slot = None;
        }
    }

    fn on_chat(
        &mut self,
        now: Instant,
        from: A,
        index: usize,
        msg_id: u32,
        text: &str,
    ) -> Result<(), Dropped> {
        let limit = max_text_len(self.config.max_datagram).min(TEXT);
        let member = self.members.get_mut(index).ok_or(Dropped::Unexpected)?;
        let ahead = msg_id.wrapping_sub(member.next_msg_id) as i32;
        if ahead < 0 {
            // A retransmission (our receipt was lost) or a replay: answer with the same
            // receipt, never a second room message.
            if let Some(receipt) = member.receipts.iter().find(|r| r.msg_id == msg_id).copied()
                && !member.receipts_due.iter().any(|r| *r == receipt)
            {
                let _ = member.receipts_due.push_back(receipt);
            }
            return Err(Dropped::Duplicate);
        }
        if ahead > 0 {
            return Err(Dropped::Unexpected);
        }
        member.next_msg_id = member.next_msg_id.wrapping_add(1);
        member.addr = from;
        member.last_heard = now;
        let (room_index, session, nick) = (member.room, member.session, member.nick.clone());
        if text.len() <= limit && self.hold_back(now, room_index) {
            // Not taken: the sender retransmits until the slow member catches up.
            if let Some(member) = self.members.get_mut(index) {
                member.next_msg_id = member.next_msg_id.wrapping_sub(1);
            }
            return Err(Dropped::Overloaded);
        }
        let receipt = if text.len() > limit {
            Receipt {
                msg_id,
                seq: REFUSED_SEQ,
                recipients: 0,
            }
        } else {
            let room = self.room_mut(room_index).ok_or(Dropped::Unexpected)?;
            let seq = room.push(Entry {
                from: session,
                nick,
                notice: false,
                text: truncated(text),
            });
            let recipients = room.members;
            self.stats.relayed = self.stats.relayed.saturating_add(1);
            Receipt {
                msg_id,
                seq,
                recipients,
            }
        };
        let member = self.members.get_mut(index).ok_or(Dropped::Unexpected)?;
        if member.receipts.is_full() {
            let _ = member.receipts.pop_front();
        }
        let _ = member.receipts.push_back(receipt);
        if member.receipts_due.is_full() {
            let _ = member.receipts_due.pop_front();
        }
        let _ = member.receipts_due.push_back(receipt);
        Ok(())
    }

    /// Whether a new line must wait: the history is full and a live member still needs
    /// its oldest message, for less than the stall limit so far.
    fn hold_back(&mut self, now: Instant, room_index: usize) -> bool {
        let Some(room) = self.room(room_index) else {
            return false;
        };
        let oldest = room.first_seq;
        let needed = room.history.is_full()
            && self
                .members
                .iter()
                .any(|m| m.room == room_index && !m.legacy && m.acked <= oldest);
        let stall_limit = self.config.stall_limit;
        let Some(room) = self.room_mut(room_index) else {
            return false;
        };
        if !needed {
            room.stalled_since = None;
            return false;
        }
        // Once the limit has passed, the room stops waiting until the slow member has
        // caught up (or left).
        let since = *room.stalled_since.get_or_insert(now);
        now - since < stall_limit
    }

    fn on_ack(
        &mut self,
        now: Instant,
        from: A,
        index: usize,
        next_seq: u64,
    ) -> Result<(), Dropped> {
        let member = self.members.get(index).ok_or(Dropped::Unexpected)?;
        let room_next = self.room(member.room).map_or(0, Room::next_seq);
        let member = self.members.get_mut(index).ok_or(Dropped::Unexpected)?;
        if next_seq <= member.acked || next_seq > room_next {
            return Err(Dropped::Duplicate);
        }
        member.acked = next_seq;
        member.sent_upto = member.sent_upto.max(next_seq);
        member.addr = from;
        member.last_heard = now;
        member.rto = self.config.initial_rto;
        member.rto_deadline = (member.acked < member.sent_upto).then(|| now + member.rto);
        Ok(())
    }

    fn on_legacy(
        &mut self,
        now: Instant,
        from: A,
        text: &str,
        fingerprint: [u8; 24],
        timestamp: u64,
    ) -> Result<(), Dropped> {
        if self
            .legacy_seen
            .iter()
            .any(|(seen, _)| *seen == fingerprint)
        {
            return Err(Dropped::Duplicate);
        }
        if self.legacy_seen.is_full() {
            // Forget the oldest only once it is too old to be accepted again.
            let horizon = self.clock.unix_secs(now).map_or(u64::MAX, |now| {
                now.saturating_sub(self.config.ttl.millis() / 1000)
                    .saturating_sub(self.config.clock_skew.millis() / 1000)
            });
            match self.legacy_seen.front() {
                Some(&(_, stamped)) if stamped < horizon => {
                    let _ = self.legacy_seen.pop_front();
                }
                _ => return Err(Dropped::Overloaded),
            }
        }
        let _ = self.legacy_seen.push_back((fingerprint, timestamp));

        let index = match self.members.iter().position(|m| m.legacy && m.addr == from) {
            Some(index) => index,
            None => {
                let room = self
                    .find_or_create_room(LEGACY_ROOM)
                    .ok_or(Dropped::Overloaded)?;
                self.legacy_count = self.legacy_count.wrapping_add(1);
                let mut nick: String<NAME_MAX> = String::new();
                let _ = write!(nick, "legacy-{}", self.legacy_count);
                let session = self.rng.next_u64();
                self.add_member(now, from, session, &nick, room, true)?;
                self.members.len().saturating_sub(1)
            }
        };
        let member = self.members.get_mut(index).ok_or(Dropped::Unexpected)?;
        let msg_id = member.next_msg_id;
        self.on_chat(now, from, index, msg_id, text)
    }

    /// Runs the timers that are due at `now`: drops silent members, starts
    /// retransmission rounds.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.unix_now = self.clock.unix_secs(now).unwrap_or(0);
        let mut index = 0;
        while let Some(member) = self.members.get_mut(index) {
            if now - member.last_heard >= self.config.member_timeout {
                self.remove_member(index, LeaveReason::TimedOut);
                continue;
            }
            if member.rto_deadline.is_some_and(|at| at <= now) {
                if member.acked < member.sent_upto {
                    member.sent_upto = member.acked;
                    member.rto = member.rto.doubled_up_to(self.config.max_rto);
                    member.rto_deadline = Some(now + member.rto);
                    self.stats.retransmits = self.stats.retransmits.saturating_add(1);
                } else {
                    member.rto_deadline = None;
                }
            }
            index = index.saturating_add(1);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members
            .iter()
            .flat_map(|m| {
                let timeout = m.last_heard + self.config.member_timeout;
                [Some(timeout), m.rto_deadline]
            })
            .flatten()
            .min()
    }

    /// Writes the next datagram into `buf` (which should hold the largest datagram) and
    /// returns where to send it and its length, or `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(A, usize)> {
        let buf = buf.get_mut(..self.config.max_datagram.min(buf.len()))?;
        let timestamp = self.clock.unix_secs(now).unwrap_or(0);
        if let Some(reply) = self.replies.pop_front() {
            let len = emit_reply(&reply, buf)?;
            let len = seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf)?;
            return Some((reply.addr, len));
        }
        let count = self.members.len();
        for step in 0..count {
            let index = self.cursor.wrapping_add(step) % count.max(1);
            if let Some(due) = self.member_due(now, index) {
                // Round robin, one datagram per member per turn: every member gets room
                // message n before any gets n + 1, and the sealed token of n is reused.
                self.cursor = index.wrapping_add(1);
                let addr = self.members.get(index)?.addr;
                let len = match due {
                    MemberDue::Deliver(seq) => {
                        self.stats.delivered = self.stats.delivered.saturating_add(1);
                        self.seal_deliver(index, seq, timestamp, buf)?
                    }
                    _ => {
                        let len = self.emit_due(index, due, buf)?;
                        seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf)?
                    }
                };
                return Some((addr, len));
            }
        }
        self.cursor = self.cursor.wrapping_add(1);
        None
    }

    /// The token of room message `seq` for member `index`: the one already sealed for
    /// another member this second if there is one, else a new one (kept for the others).
    fn seal_deliver(
        &mut self,
        index: usize,
        seq: u64,
        timestamp: u64,
        buf: &mut [u8],
    ) -> Option<usize> {
        let member = self.members.get(index)?;
        let (room, legacy) = (member.room, member.legacy);
        let epoch = self.room(room)?.epoch;
        let same = |s: &Sealed| {
            s.seq == seq
                && s.room == room
                && s.epoch == epoch
                && s.legacy == legacy
                && s.timestamp == timestamp
        };
        if let Some(sealed) = self.sealed.iter().find(|s| same(s)) {
            let len = sealed.token.len();
            buf.get_mut(..len)?.copy_from_slice(&sealed.token);
            return Some(len);
        }
        let len = self.emit_due(index, MemberDue::Deliver(seq), buf)?;
        let len = seal_bytes_in_place(&self.keys, &mut self.rng, timestamp, len, buf)?;
        if let Some(token) = buf.get(..len)
            && let Ok(token) = Vec::from_slice(token)
        {
            if self.sealed.is_full() {
                let _ = self.sealed.pop_front();
            }
            let _ = self.sealed.push_back(Sealed {
                room,
                epoch,
                seq,
                legacy,
                timestamp,
                token,
            });
        }
        Some(len)
    }

    /// Picks what a member needs next, and books it as sent.
    fn member_due(&mut self, now: Instant, index: usize) -> Option<MemberDue> {
        let member = self.members.get(index)?;
        let room = self.room(member.room)?;
        let (first_seq, next_seq) = (room.first_seq, room.next_seq());
        // A legacy peer had its answer in the receipt: skip its own lines.
        let mut own_lines = 0u64;
        if member.legacy {
            while member.sent_upto.saturating_add(own_lines) < next_seq
                && room
                    .get(member.sent_upto.saturating_add(own_lines))
                    .is_some_and(|e| e.from == member.session)
            {
                own_lines = own_lines.saturating_add(1);
            }
        }
        let window = self.config.window;
        // Pacing: a member's line is answered once every member of the room has room
        // for it in its window. Senders (whose outbox is bounded) then go at the pace
        // of the slowest reader instead of filling the history and having lines
        // dropped (see `hold_back`), which would cost them a retransmission timeout.
        // Like `hold_back`, the room waits for a slow member up to the stall limit, then
        // stops waiting until it has caught up.
        let room_index = member.room;
        let paced_from = match member.receipts_due.front() {
            Some(_) if !member.legacy => {
                let stalled = [room.paced_since, room.stalled_since]
                    .into_iter()
                    .flatten()
                    .any(|since| now - since >= self.config.stall_limit);
                let slowest = self
                    .members
                    .iter()
                    .filter(|m| m.room == room_index && !m.legacy)
                    .map(|m| m.acked)
                    .min();
                slowest
                    .filter(|_| !stalled)
                    .map_or(u64::MAX, |s| s.saturating_add(window))
            }
            _ => u64::MAX,
        };
        if let Some(receipt) = member.receipts_due.front()
            && receipt.seq != REFUSED_SEQ
            && !member.legacy
        {
            let held = receipt.seq >= paced_from;
            let caught_up = self
                .members
                .iter()
                .filter(|m| m.room == room_index && !m.legacy)
                .all(|m| receipt.seq < m.acked.saturating_add(window));
            let room = self.room_mut(room_index)?;
            if held {
                room.paced_since.get_or_insert(now);
            } else if caught_up {
                room.paced_since = None;
            }
        }
        let member = self.members.get_mut(index)?;
        if own_lines > 0 {
            member.sent_upto = member.sent_upto.saturating_add(own_lines);
            member.acked = member.sent_upto;
        }
        if member.welcome_due {
            member.welcome_due = false;
            return Some(MemberDue::Welcome);
        }
        if let Some(receipt) = member.receipts_due.front().copied()
            && (receipt.seq == REFUSED_SEQ || receipt.seq < paced_from)
        {
            let _ = member.receipts_due.pop_front();
            return Some(MemberDue::Receipt(receipt));
        }
        if let Some(counter) = member.pong_due.take() {
            return Some(MemberDue::Pong(counter));
        }
        if member.who_due {
            member.who_due = false;
            return Some(MemberDue::Who);
        }
        if member.sent_upto < first_seq {
            // History moved on before this member acknowledged: say so, then go on.
            member.sent_upto = first_seq;
            if member.legacy {
                member.acked = first_seq;
            } else if member.rto_deadline.is_none() {
                member.rto_deadline = Some(now + member.rto);
            }
            self.stats.missed = self.stats.missed.saturating_add(1);
            return Some(MemberDue::Missed(first_seq));
        }
        if member.sent_upto < next_seq && member.sent_upto < member.acked.saturating_add(window) {
            let seq = member.sent_upto;
            member.sent_upto = seq.saturating_add(1);
            if member.legacy {
                // No acknowledgements from legacy peers: best effort, once.
                member.acked = member.sent_upto;
            } else if member.rto_deadline.is_none() {
                member.rto_deadline = Some(now + member.rto);
            }
            return Some(MemberDue::Deliver(seq));
        }
        None
    }

    fn emit_due(&self, index: usize, due: MemberDue, buf: &mut [u8]) -> Option<usize> {
        let member = self.members.get(index)?;
        let room = self.room(member.room)?;
        if member.legacy {
            return emit_legacy(room, due, buf);
        }
        let body = match due {
            MemberDue::Welcome => Body::Welcome {
                epoch: room.epoch,
                next_seq: member.acked,
                next_msg_id: member.next_msg_id,
                members: room.members,
            },
            MemberDue::Receipt(r) => Body::Receipt {
                msg_id: r.msg_id,
                seq: r.seq,
                recipients: r.recipients,
            },
            MemberDue::Pong(counter) => Body::Pong {
                counter,
                members: room.members,
            },
            MemberDue::Missed(to) => Body::Missed {
                from: member.acked,
                to,
            },
            MemberDue::Deliver(seq) => {
                // The room's epoch in place of a session: the frame is the room's, the
                // same for every member, so one token serves them all (see
                // `seal_deliver`), and a replay of it can only reach this room.
                let entry = room.get(seq)?;
                return Repr {
                    session: room.epoch,
                    body: Body::Deliver {
                        seq,
                        notice: entry.notice,
                        nick: &entry.nick,
                        text: &entry.text,
                    },
                }
                .emit(buf)
                .ok();
            }
            MemberDue::Who => {
                let mut storage = [0u8; 512];
                let names = self
                    .members
                    .iter()
                    .filter(|m| m.room == member.room)
                    .map(|m| m.nick.as_str());
                let (nicks, _) = Names::pack(names, &mut storage);
                let repr = Repr {
                    session: member.session,
                    body: Body::Members {
                        total: room.members,
                        nicks,
                    },
                };
                return repr.emit(buf).ok();
            }
        };
        Repr {
            session: member.session,
            body,
        }
        .emit(buf)
        .ok()
    }
}

/// Something a member is owed.
#[derive(Clone, Copy, Debug)]
enum MemberDue {
    Welcome,
    Receipt(Receipt),
    Pong(u64),
    Who,
    Missed(u64),
    Deliver(u64),
}

fn emit_reply<A>(reply: &Reply<A>, buf: &mut [u8]) -> Option<usize> {
    let body = match reply.kind {
        ReplyKind::Pong(counter) => Body::Pong {
            counter,
            members: 0,
        },
        ReplyKind::NotJoined => Body::Notice {
            code: NoticeCode::NOT_JOINED,
            text: "not joined",
        },
        ReplyKind::Refused(reason) => Body::Notice {
            code: NoticeCode::REFUSED,
            text: reason,
        },
        ReplyKind::Bye => Body::Notice {
            code: NoticeCode::BYE,
            text: "bye",
        },
    };
    Repr {
        session: reply.session,
        body,
    }
    .emit(buf)
    .ok()
}

/// What a legacy peer gets: bare text, as the original programs exchanged.
fn emit_legacy<const HISTORY: usize, const TEXT: usize>(
    room: &Room<HISTORY, TEXT>,
    due: MemberDue,
    buf: &mut [u8],
) -> Option<usize> {
    match due {
        MemberDue::Receipt(r) if r.seq == REFUSED_SEQ => {
            write_text(buf, format_args!("server: message refused (too long)"))
        }
        MemberDue::Receipt(r) => write_text(
            buf,
            format_args!(
                "server: received as #{} for {} members",
                r.seq, r.recipients
            ),
        ),
        MemberDue::Deliver(seq) => {
            let entry = room.get(seq)?;
            if entry.notice {
                write_text(buf, format_args!("* {} {}", entry.nick, entry.text))
            } else {
                write_text(buf, format_args!("{}: {}", entry.nick, entry.text))
            }
        }
        MemberDue::Missed(to) => write_text(
            buf,
            format_args!("server: you missed messages before #{to}"),
        ),
        MemberDue::Welcome | MemberDue::Pong(_) | MemberDue::Who => None,
    }
}

/// Formats text into the front of `buf`; `None` if it does not fit.
fn write_text(buf: &mut [u8], args: core::fmt::Arguments<'_>) -> Option<usize> {
    struct Cursor<'b> {
        buf: &'b mut [u8],
        len: usize,
    }
    impl core::fmt::Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
            self.buf
                .get_mut(self.len..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut cursor = Cursor { buf, len: 0 };
    cursor.write_fmt(args).ok()?;
    Some(cursor.len)
}
