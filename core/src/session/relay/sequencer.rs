//! External ordering: a relay that serves rooms together with other servers, the rooms'
//! order kept outside it (by a broker such as NATS JetStream: one stream per room, whose
//! sequence numbers are the room's).
//!
//! Set up with [`Relay::with_external_ordering`]. Then, besides the usual call order (see
//! the [module docs](crate::session)):
//!
//! * a line the relay takes from a local member is not appended: it becomes a
//!   *proposal*, a Fernet token of a [`LineRecord`] under the chat key, which the driver
//!   takes with [`Relay::poll_proposal`] and publishes (deduplicated by its origin session
//!   and `msg_id`);
//! * the driver feeds every room's ordered lines back, in order, with
//!   [`Relay::handle_ordered`]: each is appended at exactly its sequence number, and a
//!   line of a local member gets its Receipt then (so a Receipt means the line is in the
//!   room's order for good);
//! * the relay asks the driver for what only the outside knows with
//!   [`Relay::poll_request`]: open a room (a Join for a room this server does not serve
//!   yet waits, parked, until [`Relay::open_room`] gives the room's epoch and the position
//!   to start at), look up the last lines of a session that rejoins here after another
//!   server (answered by [`Relay::session_found`]), tell the other servers who joined and
//!   left, stop feeding a room nobody here is in;
//! * the other servers' members come in with [`Relay::remote_joined`],
//!   [`Relay::remote_left`] and [`Relay::remote_server_gone`]: they count in the room's
//!   member count, are listed by `Who`, and their joins and leaves are told like local
//!   ones.
//!
//! Flow control is unchanged for members: a local sender gets Busy when its room here
//! cannot take a line or the proposals queue is full; an ordered line waits (the driver
//! holds it and offers it again, [`OrderError::Busy`]) while a member that stopped
//! acknowledging holds the room's history, for at most the stall limit, as a local line
//! would.

use super::gone::Gone;
use super::join::JoinRequest;
use super::receipts::{Outcome, Receipts};
use super::record::LineRecord;
use super::remote::{Added, Roster};
use super::rooms::room_members;
use super::{LEGACY_ROOM, LeaveReason, Relay, StorageError};
use crate::fernet;
use crate::session::{seal_bytes_in_place, truncated};
use crate::time::{Duration, Instant};
use crate::wire::{Body, NAME_MAX, PresenceKind, Repr, Resume};
use core::hash::Hash;
use heapless::{Deque, String, Vec};
use rand_core::CryptoRng;

pub use super::remote::{RemoteRoom, RemoteSlot};

/// Requests kept for the driver; when full, the join that needed one is not answered and
/// its client asks again.
const REQUESTS: usize = 256;
/// Joins waiting for a room to open or a session to be looked up.
const PARKED: usize = 64;
/// A parked join, a room being opened or a session being looked up is given up after
/// this long (the client has asked again meanwhile; asking it again asks the driver
/// again).
const PATIENCE: Duration = Duration::from_secs(3);
/// How long a sender is asked to wait when the proposals queue is full, ms.
const QUEUE_RETRY_MS: u16 = 50;

/// The storage of external ordering, all of it the caller's.
#[derive(Debug)]
pub struct ClusterStorage<'a> {
    /// Lines waiting for the driver to take them: one slot each.
    pub proposals: &'a mut [ProposalSlot],
    /// `proposals.len() ×` the largest datagram: each proposal's token.
    pub proposal_bytes: &'a mut [u8],
    /// Members connected to other servers, all rooms together.
    pub remotes: &'a mut [RemoteSlot],
    /// One per room slot (at least as many as
    /// [`RelayStorage::rooms`](super::RelayStorage::rooms)).
    pub remote_rooms: &'a mut [RemoteRoom],
}

/// One slot of the proposals queue (see [`ClusterStorage::proposals`]). Opaque.
#[derive(Clone, Debug, Default)]
pub struct ProposalSlot {
    room: String<NAME_MAX>,
    origin: u64,
    msg_id: u32,
    len: u16,
}

impl ProposalSlot {
    /// An empty slot, for `static` arrays.
    pub const EMPTY: Self = Self {
        room: String::new(),
        origin: 0,
        msg_id: 0,
        len: 0,
    };
}

/// A line for the driver to publish (its token was written by
/// [`Relay::poll_proposal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The room.
    pub room: String<NAME_MAX>,
    /// The sender's session.
    pub origin: u64,
    /// The sender's number for the line: with `origin`, the line's name everywhere (the
    /// deduplication key: a line published twice is stored once).
    pub msg_id: u32,
    /// The token's length in the buffer.
    pub len: usize,
}

/// What the relay needs from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterRequest {
    /// Start feeding room `room` ([`Relay::open_room`]); the join that asked was at
    /// `resume` (its epoch and next sequence number) if it is rejoining.
    Open {
        room: String<NAME_MAX>,
        resume: Option<Resume>,
    },
    /// Nobody here is in room `room` any more: stop feeding it.
    Close { room: String<NAME_MAX> },
    /// Session `session` rejoins room `room` here and may have sent lines through another
    /// server: find its last lines in the room's order ([`Relay::session_found`]).
    Lookup {
        room: String<NAME_MAX>,
        session: u64,
    },
    /// A member joined room `room` here: tell the other servers.
    Joined {
        room: String<NAME_MAX>,
        session: u64,
        nick: String<NAME_MAX>,
    },
    /// A member left room `room` here: tell the other servers.
    Left {
        room: String<NAME_MAX>,
        session: u64,
        nick: String<NAME_MAX>,
        kind: PresenceKind,
    },
}

/// What [`Relay::handle_ordered`] did with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordered {
    /// Appended at its sequence number.
    Appended,
    /// Already there (the driver fed it twice).
    Duplicate,
    /// Appended after a gap: the messages before it are not in the room's order any more
    /// (the stream's retention removed them); members that lacked them are told exactly
    /// which they missed.
    AfterGap { from: u64 },
}

/// Why [`Relay::handle_ordered`] did not take a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderError {
    /// The room is not open here (closed meanwhile): drop the line.
    NotOpen,
    /// Not a token under our keys: someone else writes to the room's subject.
    InvalidToken,
    /// A valid token that holds no line record.
    Malformed,
    /// The room's history is held by a member that has not acknowledged (for at most the
    /// stall limit): offer the same line again after `retry_after`.
    Busy { retry_after: Duration },
}

impl core::fmt::Display for OrderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotOpen => f.write_str("room not open here"),
            Self::InvalidToken => f.write_str("invalid token"),
            Self::Malformed => f.write_str("not a line record"),
            Self::Busy { retry_after } => {
                write!(f, "room busy: again in {} ms", retry_after.millis())
            }
        }
    }
}

/// A join waiting for the driver.
#[derive(Clone, Debug)]
struct Parked<A> {
    from: A,
    session: u64,
    version: u8,
    nick: String<NAME_MAX>,
    room: String<NAME_MAX>,
    window: u8,
    resume: Option<Resume>,
    timestamp: u64,
    len: usize,
    at: Instant,
}

/// What to do with a join (see `Relay::gate_join`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Go on: the room is here and nothing needs looking up.
    Go,
    /// Waiting for the driver: nothing is answered yet.
    Parked,
    /// No room to wait: the client asks again.
    Full,
}

/// The state of external ordering.
#[derive(Debug)]
pub(super) struct Cluster<'a, A> {
    proposals: &'a mut [ProposalSlot],
    proposal_bytes: &'a mut [u8],
    slot_len: usize,
    /// Ring position of the oldest proposal, and how many there are.
    oldest: usize,
    queued: usize,
    pub roster: Roster<'a>,
    requests: Deque<ClusterRequest, REQUESTS>,
    parked: Vec<Parked<A>, PARKED>,
    /// Rooms asked to open, and when.
    opening: Vec<(String<NAME_MAX>, Instant), 16>,
    /// Sessions asked to be looked up, and when.
    looking_up: Vec<(u64, Instant), 32>,
    /// Sessions looked up: their next join goes through.
    found: Vec<u64, 32>,
}

impl<'a, A: Copy + Eq + Hash, R: CryptoRng, const K: usize> Relay<'a, A, R, K> {
    /// Makes this relay serve its rooms together with other servers, in `storage` (the
    /// module docs of `core/src/session/relay/sequencer.rs` say what changes). Fails
    /// with [`StorageError::Empty`] without proposal slots, [`StorageError::ProposalBytes`]
    /// if the proposals' bytes do not give each slot a largest datagram,
    /// [`StorageError::RemoteRooms`] if there are fewer remote-room slots than room slots.
    pub fn with_external_ordering(
        mut self,
        storage: ClusterStorage<'a>,
    ) -> Result<Self, StorageError> {
        let slot_len = self.config.max_datagram;
        if storage.proposals.is_empty() {
            return Err(StorageError::Empty);
        }
        if storage.proposal_bytes.len() / storage.proposals.len() < slot_len {
            return Err(StorageError::ProposalBytes);
        }
        if storage.remote_rooms.len() < self.rooms.capacity() {
            return Err(StorageError::RemoteRooms);
        }
        self.cluster = Some(Cluster {
            proposals: storage.proposals,
            proposal_bytes: storage.proposal_bytes,
            slot_len,
            oldest: 0,
            queued: 0,
            roster: Roster::new(storage.remotes, storage.remote_rooms),
            requests: Deque::new(),
            parked: Vec::new(),
            opening: Vec::new(),
            looking_up: Vec::new(),
            found: Vec::new(),
        });
        Ok(self)
    }

    /// Whether the rooms' order comes from outside ([`with_external_ordering`](Self::with_external_ordering)).
    pub fn is_externally_ordered(&self) -> bool {
        self.cluster.is_some()
    }

    /// Members of room `r`, here and on the other servers.
    pub(super) fn total_members(&self, r: u32) -> u32 {
        let local = self.rooms.get(r).map_or(0, |room| room.members);
        let remote = self.cluster.as_ref().map_or(0, |c| c.roster.count(r));
        local.saturating_add(remote)
    }

    /// Whether a member of room `r` on another server, other than `session`, is called
    /// `nick`.
    pub(super) fn remote_nick_taken(&self, r: u32, nick: &str, session: u64) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.roster.has_nick(r, nick, session))
    }

    /// The names of room `r`'s members on other servers.
    pub(super) fn remote_names(&self, r: u32) -> impl Iterator<Item = &str> + '_ {
        self.cluster
            .as_ref()
            .into_iter()
            .flat_map(move |c| c.roster.iter(r).map(|m| m.nick.as_str()))
    }

    fn request(&mut self, request: ClusterRequest) -> bool {
        match self.cluster.as_mut() {
            Some(cluster) => cluster.requests.push_back(request).is_ok(),
            None => false,
        }
    }

    /// The next thing the relay needs from outside, if any.
    pub fn poll_request(&mut self) -> Option<ClusterRequest> {
        self.cluster.as_mut()?.requests.pop_front()
    }

    /// Writes the oldest line waiting to be ordered into `buf` (which should hold the
    /// largest datagram) and says what it is; `None` when none waits. The driver publishes
    /// it, and publishes it again with the same name until the broker has it.
    pub fn poll_proposal(&mut self, buf: &mut [u8]) -> Option<Proposal> {
        let cluster = self.cluster.as_mut()?;
        if cluster.queued == 0 {
            return None;
        }
        let i = cluster.oldest;
        let slot = cluster.proposals.get(i)?;
        let len = usize::from(slot.len);
        let start = i.checked_mul(cluster.slot_len)?;
        let token = cluster.proposal_bytes.get(start..start.checked_add(len)?)?;
        buf.get_mut(..len)?.copy_from_slice(token);
        let proposal = Proposal {
            room: slot.room.clone(),
            origin: slot.origin,
            msg_id: slot.msg_id,
            len,
        };
        cluster.oldest = (i + 1) % cluster.proposals.len().max(1);
        cluster.queued -= 1;
        Some(proposal)
    }

    /// Lines taken from local members and not yet handed to the driver.
    pub fn proposals_waiting(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.queued)
    }

    /// Takes a line of `origin` in room `r`: appended here (its sequence number), or,
    /// when the order is kept outside, proposed (`None`: its answer comes with the order);
    /// how long the sender should wait (ms) if it cannot be taken now.
    pub(super) fn take_line(
        &mut self,
        now: Instant,
        r: u32,
        origin: u64,
        msg_id: u32,
        nick: &str,
        text: &str,
    ) -> Result<Option<u64>, u16> {
        if self.cluster.is_some() {
            self.propose(now, r, origin, msg_id, nick, text)
                .map(|()| None)
        } else {
            self.append_line(now, r, origin, nick, text).map(Some)
        }
    }

    /// Queues a proposal for a line of `origin` in room `r`; how long the sender should
    /// wait (ms) if the room here or the queue cannot take it now.
    fn propose(
        &mut self,
        now: Instant,
        r: u32,
        origin: u64,
        msg_id: u32,
        nick: &str,
        text: &str,
    ) -> Result<(), u16> {
        if self
            .cluster
            .as_ref()
            .is_none_or(|c| c.queued >= c.proposals.len())
        {
            return Err(QUEUE_RETRY_MS);
        }
        let (room, epoch) = match self.rooms.get(r) {
            Some(room) => (room.name.clone(), room.epoch),
            None => return Err(QUEUE_RETRY_MS),
        };
        // The room here must be able to take it when it comes back in order.
        let deliver = Repr {
            session: epoch,
            body: Body::Deliver { seq: 0, nick, text },
        };
        if !self.make_room(now, r, fernet::token_len(deliver.buffer_len())) {
            return Err(self.retry_after(now, r));
        }
        let unix_now = self.unix_now;
        let Some(cluster) = self.cluster.as_mut() else {
            return Err(QUEUE_RETRY_MS);
        };
        let count = cluster.proposals.len().max(1);
        let i = (cluster.oldest + cluster.queued) % count;
        let start = i.saturating_mul(cluster.slot_len);
        let Some(bytes) = cluster
            .proposal_bytes
            .get_mut(start..start.saturating_add(cluster.slot_len))
        else {
            return Err(QUEUE_RETRY_MS);
        };
        let record = LineRecord {
            origin,
            msg_id,
            nick,
            text,
        };
        let sealed = record
            .emit(bytes)
            .ok()
            .and_then(|len| seal_bytes_in_place(&self.keys, &mut self.rng, unix_now, len, bytes))
            .and_then(|len| u16::try_from(len).ok());
        let (Some(len), Some(slot)) = (sealed, cluster.proposals.get_mut(i)) else {
            return Err(QUEUE_RETRY_MS);
        };
        *slot = ProposalSlot {
            room,
            origin,
            msg_id,
            len,
        };
        cluster.queued += 1;
        Ok(())
    }

    /// Takes line `seq` of room `room` in the room's order: `token` is a proposal's
    /// token, as the driver got it from the broker (opened in place). See [`Ordered`] and
    /// [`OrderError`].
    pub fn handle_ordered(
        &mut self,
        now: Instant,
        room: &str,
        seq: u64,
        token: &mut [u8],
    ) -> Result<Ordered, OrderError> {
        self.tick(now);
        let r = self.rooms.by_name(room).ok_or(OrderError::NotOpen)?;
        let (opened, _) = self
            .keys
            .decrypt_in_place(token, None)
            .map_err(|_| OrderError::InvalidToken)?;
        let record = LineRecord::parse(opened.plaintext).map_err(|_| OrderError::Malformed)?;
        let next = self.rooms.get(r).map_or(0, |room| room.history.next_seq());
        if seq < next {
            return Ok(Ordered::Duplicate);
        }
        let gap = (seq > next).then_some(next);
        if gap.is_some()
            && let Some(history) = self.history_of(r)
        {
            // The lines before `seq` are gone from the stream: the history restarts at
            // `seq`, and whoever lacked what it held is told exactly what it missed.
            *history.state = super::history::HistoryState::starting_at(seq);
        }
        let appended = self
            .append_line(now, r, record.origin, record.nick, record.text)
            .map_err(|ms| OrderError::Busy {
                retry_after: Duration::from_millis(u64::from(ms)),
            })?;
        debug_assert_eq!(appended, seq);
        self.ordered_receipt(r, record.origin, record.msg_id, seq);
        Ok(match gap {
            Some(from) => Ordered::AfterGap { from },
            None => Ordered::Appended,
        })
    }

    /// Line `msg_id` of session `origin` became message `seq` of room `r`: if the
    /// session is a member here (or was), it gets its answer.
    fn ordered_receipt(&mut self, r: u32, origin: u64, msg_id: u32, seq: u64) {
        let outcome = Outcome::Accepted {
            seq,
            recipients: self.total_members(r),
        };
        let head = self
            .rooms
            .get(r)
            .map_or(super::members::NIL, |room| room.head);
        let m = self
            .members
            .by_session(origin)
            .filter(|&m| self.members.get(m).is_some_and(|m| m.room == r))
            .or_else(|| {
                room_members(&self.members, head)
                    .find(|(_, m)| m.legacy && m.session == origin)
                    .map(|(i, _)| i)
            });
        if let Some(m) = m {
            let Some(member) = self.members.get_mut(m) else {
                return;
            };
            if msg_id.wrapping_sub(member.next_msg_id) as i32 >= 0 {
                // Taken through another server while this one did not know it yet.
                member.next_msg_id = msg_id.wrapping_add(1);
            }
            if !member.receipts.knows(msg_id) {
                member.receipts.record(msg_id, outcome);
                self.stats.relayed = self.stats.relayed.saturating_add(1);
                self.members.push_ready(m);
            }
        } else if let Some(mut gone) = self.gone.take(origin) {
            if !gone.receipts.knows(msg_id) {
                gone.receipts.record(msg_id, outcome);
            }
            self.gone.insert(gone);
        }
    }

    /// Whether a join may go on, or must wait for the driver (a room to open, a session
    /// to be looked up).
    pub(super) fn gate_join(&mut self, now: Instant, from: A, join: &JoinRequest<'_>) -> Gate {
        let Some(cluster) = self.cluster.as_mut() else {
            return Gate::Go;
        };
        let session = join.session;
        let open = self.rooms.by_name(join.room);
        let needs_lookup = match open.and_then(|r| self.rooms.get(r)) {
            Some(room) => join.resume.is_some_and(|resume| resume.epoch == room.epoch),
            None => false,
        };
        if open.is_some() {
            if !needs_lookup {
                return Gate::Go;
            }
            if let Some(i) = cluster.found.iter().position(|&s| s == session) {
                cluster.found.swap_remove(i);
                return Gate::Go;
            }
        }
        // Wait for the driver: forget joins it did not answer in time, then park this one
        // (in place of an earlier copy of it).
        cluster
            .parked
            .retain(|p| p.session != session && now - p.at < PATIENCE);
        let parked = Parked {
            from,
            session,
            version: join.version,
            nick: truncated(join.nick),
            room: truncated(join.room),
            window: join.window,
            resume: join.resume,
            timestamp: join.timestamp,
            len: join.len,
            at: now,
        };
        if cluster.parked.push(parked).is_err() {
            return Gate::Full;
        }
        // A rejoining session is looked up at once, even before its room is open (the
        // room's epoch is not known yet: the answer is kept whatever it turns out to be).
        let mut asked = true;
        if open.is_none() {
            cluster.opening.retain(|(_, at)| now - *at < PATIENCE);
            if !cluster.opening.iter().any(|(room, _)| room == join.room) {
                asked &= cluster.opening.push((truncated(join.room), now)).is_ok()
                    && self.request(ClusterRequest::Open {
                        room: truncated(join.room),
                        resume: join.resume,
                    });
            }
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return Gate::Go;
        };
        if (needs_lookup || (open.is_none() && join.resume.is_some()))
            && !cluster.found.contains(&session)
        {
            cluster.looking_up.retain(|(_, at)| now - *at < PATIENCE);
            if !cluster.looking_up.iter().any(|&(s, _)| s == session) {
                asked &= cluster.looking_up.push((session, now)).is_ok()
                    && self.request(ClusterRequest::Lookup {
                        room: truncated(join.room),
                        session,
                    });
            }
        }
        if asked { Gate::Parked } else { Gate::Full }
    }

    /// A legacy peer's datagram in a cluster: whether its room is open (if not, it is
    /// asked for, and the datagram is dropped: legacy programs do not retransmit, so the
    /// peer must say it again).
    pub(super) fn legacy_room_open(&mut self, now: Instant) -> bool {
        if self.cluster.is_none() || self.rooms.by_name(LEGACY_ROOM).is_some() {
            return true;
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return true;
        };
        cluster.opening.retain(|(_, at)| now - *at < PATIENCE);
        if !cluster.opening.iter().any(|(room, _)| room == LEGACY_ROOM)
            && cluster.opening.push((truncated(LEGACY_ROOM), now)).is_ok()
        {
            self.request(ClusterRequest::Open {
                room: truncated(LEGACY_ROOM),
                resume: None,
            });
        }
        false
    }

    /// Joins parked for the driver that `matches` says to try again, tried again; those
    /// older than the patience are dropped.
    fn replay_parked(&mut self, now: Instant, matches: impl Fn(&Parked<A>) -> bool) {
        let mut ready: Vec<Parked<A>, PARKED> = Vec::new();
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.parked.retain(|p| {
                if now - p.at >= PATIENCE {
                    // Given up: its client has asked again meanwhile (or has gone).
                    false
                } else if matches(p) {
                    let _ = ready.push(p.clone());
                    false
                } else {
                    true
                }
            });
        }
        for p in ready {
            let join = JoinRequest {
                session: p.session,
                version: p.version,
                nick: &p.nick,
                room: &p.room,
                window: p.window,
                resume: p.resume,
                timestamp: p.timestamp,
                len: p.len,
            };
            let _ = self.on_join(now, p.from, join);
        }
    }

    /// Room `room` is fed from now on: its epoch (the same on every server, never 0), the
    /// sequence number of the first line [`handle_ordered`](Self::handle_ordered) will
    /// give, and its members on other servers as `(server, session, nick)` (already
    /// there: not announced). The joins that waited for it go on. Returns `false` if the
    /// room table is full (they are refused, and the room is to be closed).
    pub fn open_room<'n>(
        &mut self,
        now: Instant,
        room: &str,
        epoch: u64,
        next_seq: u64,
        roster: impl IntoIterator<Item = (u64, u64, &'n str)>,
    ) -> bool {
        self.tick(now);
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.opening.retain(|(name, _)| name != room);
        }
        if self.rooms.by_name(room).is_none()
            && self
                .rooms
                .create(truncated(room), epoch.max(1), next_seq)
                .is_none()
        {
            let mut refused: Vec<Parked<A>, PARKED> = Vec::new();
            if let Some(cluster) = self.cluster.as_mut() {
                cluster.parked.retain(|p| {
                    if p.room == room {
                        let _ = refused.push(p.clone());
                        false
                    } else {
                        true
                    }
                });
            }
            for p in refused {
                let _ = self.refuse(p.from, p.session, "too many rooms", p.len);
            }
            self.request(ClusterRequest::Close {
                room: truncated(room),
            });
            return false;
        }
        if let (Some(r), Some(cluster)) = (self.rooms.by_name(room), self.cluster.as_mut()) {
            for (server, session, nick) in roster {
                cluster.roster.add(r, server, session, nick);
            }
        }
        self.replay_parked(now, |p| p.room == room);
        let waiting = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.parked.iter().any(|p| p.room == room));
        if let Some(r) = self.rooms.by_name(room)
            && room != LEGACY_ROOM
            && !waiting
            && self.rooms.get(r).is_some_and(|room| room.members == 0)
        {
            // Nobody came after all.
            self.close_room(r);
        }
        true
    }

    /// Room `room` could not be opened (the broker is unreachable): the joins that
    /// waited for it are dropped; their clients ask again.
    pub fn open_failed(&mut self, room: &str) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.opening.retain(|(name, _)| name != room);
            cluster.parked.retain(|p| p.room != room);
        }
    }

    /// Frees room `r` (it has no local members) and tells the driver to stop feeding it.
    pub(super) fn close_room(&mut self, r: u32) {
        let Some(name) = self.rooms.get(r).map(|room| room.name.clone()) else {
            return;
        };
        if let Some(cluster) = self.cluster.as_mut() {
            while cluster.roster.remove_first_on(r, None).is_some() {}
        }
        self.rooms.free(r);
        self.request(ClusterRequest::Close { room: name });
    }

    /// The answer to [`ClusterRequest::Lookup`]: session `session`'s last lines in room
    /// `room`'s order, as `(msg_id, seq)` in order (none if it never sent one there, or
    /// the lookup failed). The session rejoins with its numbering after the last and with
    /// their answers, as if it had sent them here.
    pub fn session_found(&mut self, now: Instant, room: &str, session: u64, lines: &[(u32, u64)]) {
        self.tick(now);
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        cluster.looking_up.retain(|&(s, _)| s != session);
        if !cluster.found.contains(&session)
            && cluster.found.push(session).is_err()
            && let Some(oldest) = cluster.found.first_mut()
        {
            *oldest = session;
        }
        let recipients = self
            .rooms
            .by_name(room)
            .map_or(0, |r| self.total_members(r));
        let mut gone = self
            .gone
            .take(session)
            .unwrap_or_else(|| Gone::new(session, 0, false, 1, Receipts::default()));
        for &(msg_id, seq) in lines {
            if !gone.receipts.knows(msg_id) {
                gone.receipts
                    .record(msg_id, Outcome::Accepted { seq, recipients });
            }
            if msg_id.wrapping_sub(gone.next_msg_id) as i32 >= 0 {
                gone.next_msg_id = msg_id.wrapping_add(1);
            }
        }
        self.gone.insert(gone);
        self.replay_parked(now, |p| p.session == session);
    }

    /// After a local member joined room `r`: tells the other servers. Whether the member
    /// was known there already (it moved here from another server: not news to anyone).
    pub(super) fn cluster_joined(&mut self, r: u32, session: u64, nick: &str) -> bool {
        let Some(room) = self.rooms.get(r).map(|room| room.name.clone()) else {
            return false;
        };
        let moved = self
            .cluster
            .as_mut()
            .is_some_and(|c| c.roster.remove(r, session, None).is_some());
        self.request(ClusterRequest::Joined {
            room,
            session,
            nick: truncated(nick),
        });
        moved
    }

    /// After a local member left room `r`: tells the other servers.
    pub(super) fn cluster_left(&mut self, r: u32, session: u64, nick: &str, reason: LeaveReason) {
        let Some(room) = self.rooms.get(r).map(|room| room.name.clone()) else {
            return;
        };
        self.request(ClusterRequest::Left {
            room,
            session,
            nick: truncated(nick),
            kind: reason.presence(),
        });
    }

    /// Member `session` joined room `room` on server `server` (a number the driver gives
    /// each other server): counted, listed, and told to the room here, unless it only
    /// moved from one server to another or is already a member here.
    pub fn remote_joined(
        &mut self,
        now: Instant,
        room: &str,
        server: u64,
        session: u64,
        nick: &str,
    ) {
        self.tick(now);
        let Some(r) = self.rooms.by_name(room) else {
            return;
        };
        if self.members.by_session(session).is_some() {
            return;
        }
        let added = match self.cluster.as_mut() {
            Some(cluster) => cluster.roster.add(r, server, session, nick),
            None => return,
        };
        if added == Added::New {
            self.announce(r, PresenceKind::Joined, nick);
        }
    }

    /// Member `session` left room `room` on server `server` (`kind`: how).
    pub fn remote_left(
        &mut self,
        now: Instant,
        room: &str,
        server: u64,
        session: u64,
        kind: PresenceKind,
    ) {
        self.tick(now);
        let Some(r) = self.rooms.by_name(room) else {
            return;
        };
        let removed = self
            .cluster
            .as_mut()
            .and_then(|c| c.roster.remove(r, session, Some(server)));
        if let Some(member) = removed {
            self.announce(r, kind, &member.nick);
        }
    }

    /// Server `server` stopped answering: its members of room `room` are gone (timed
    /// out).
    pub fn remote_server_gone(&mut self, now: Instant, room: &str, server: u64) {
        self.tick(now);
        let Some(r) = self.rooms.by_name(room) else {
            return;
        };
        while let Some(member) = self
            .cluster
            .as_mut()
            .and_then(|c| c.roster.remove_first_on(r, Some(server)))
        {
            self.announce(r, PresenceKind::TimedOut, &member.nick);
        }
    }

    /// Members of room `room` this relay knows on server `server` (to compare with what
    /// that server says it has).
    pub fn remote_count(&self, room: &str, server: u64) -> u32 {
        match (self.rooms.by_name(room), self.cluster.as_ref()) {
            (Some(r), Some(c)) => c.roster.count_on(r, server),
            _ => 0,
        }
    }

    /// Room `room`'s members here, as `(session, nick)`, for the other servers' rosters.
    pub fn local_roster(&self, room: &str) -> impl Iterator<Item = (u64, &str)> + '_ {
        let head = self
            .rooms
            .by_name(room)
            .and_then(|r| self.rooms.get(r))
            .map_or(super::members::NIL, |room| room.head);
        room_members(&self.members, head).map(|(_, m)| (m.session, m.nick.as_str()))
    }

    /// The epoch of room `room` and the sequence number its next line gets, if the room
    /// is open here.
    pub fn room_position(&self, room: &str) -> Option<(u64, u64)> {
        let room = self.rooms.get(self.rooms.by_name(room)?)?;
        Some((room.epoch, room.history.next_seq()))
    }
}
