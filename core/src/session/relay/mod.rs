//! The server: keeps rooms, numbers every room message, and delivers each to every member
//! exactly once and in order, at any room size, in storage the caller provides.
//!
//! | module | owns |
//! |---|---|
//! | `members` | the member table (O(1) by session and by address) and the ready queue |
//! | `gone` | departed sessions: replays get nothing, returning clients get their place |
//! | `rooms` | the room table (O(1) by name) and each room's member list |
//! | `history` | a room's recent messages as sealed tokens, in a byte ring |
//! | `presence` | joins and leaves, told without costing what a line costs |
//! | `delivery` | flow control toward a member: acknowledgements, loss, congestion window |
//! | `lines` | flow control from a sender: accepting, refusing, "busy", the room's floor |
//! | `join` | joining, leaving, timing out, nicknames |
//! | `transmit` | what each member is owed next, and the datagrams for it |
//! | `legacy` | bare-text peers (the original Python chat) |
//! | `receipts` | the answers to a member's recent lines |
//! | `sequencer` | external ordering: rooms served together with other servers |
//! | `record` | the line record a cluster's broker stores |
//! | `remote` | the members other servers of a cluster have |

mod delivery;
mod gone;
mod history;
mod join;
mod legacy;
mod lines;
mod members;
mod presence;
mod receipts;
mod record;
mod remote;
mod rooms;
mod sequencer;
mod transmit;

pub use gone::GoneSlot;
pub use history::HistoryEntry;
pub use legacy::LEGACY_ROOM;
pub use members::MemberSlot;
pub use presence::PresenceEntry;
pub use receipts::RECEIPTS;
pub use record::{LineRecord, RECORD_MAGIC, RECORD_OVERHEAD, RECORD_VERSION};
pub use rooms::RoomSlot;
pub use sequencer::{
    ClusterRequest, ClusterStorage, OrderError, Ordered, Proposal, ProposalSlot, RemoteRoom,
    RemoteSlot,
};

use super::{DEFAULT_CLOCK_SKEW, DEFAULT_MAX_DATAGRAM, DEFAULT_TTL, Dropped, judge_age, open};
use crate::fernet::KeyRing;
use crate::time::{Duration, Instant, WallClock};
use crate::wire::{Body, NAME_MAX, Plaintext, Repr};
use core::hash::Hash;
use gone::GoneTable;
use heapless::{Deque, String};
use history::History;
use members::Members;
use presence::PresenceLog;
use rand_core::CryptoRng;
use rooms::Rooms;

/// Room `r`'s history over its share of the storage (`per_room`: entries, bytes).
fn history_view<'s>(
    rooms: &'s mut Rooms<'_>,
    entries: &'s mut [HistoryEntry],
    bytes: &'s mut [u8],
    per_room: (usize, usize, usize),
    r: u32,
) -> Option<History<'s>> {
    let (n, b, _) = per_room;
    let i = r as usize;
    Some(History {
        state: &mut rooms.get_mut(r)?.history,
        entries: entries.get_mut(i.checked_mul(n)?..i.checked_add(1)?.checked_mul(n)?)?,
        bytes: bytes.get_mut(i.checked_mul(b)?..i.checked_add(1)?.checked_mul(b)?)?,
    })
}

/// Answers to addresses that are not (or no longer) members, waiting to be sent.
const REPLIES: usize = 32;
/// Events kept for the driver; more are counted in [`Stats::events_lost`].
const EVENTS: usize = 256;
/// The members' timers run at most this often: a scan of the member table costs
/// O(members) (retransmission timeouts are 200 ms or more, member timeouts seconds).
const MEMBER_SCAN: Duration = Duration::from_millis(25);
/// The rooms' timers run at most this often (admission ticks are 5 ms).
const ROOM_SCAN: Duration = Duration::from_millis(1);

/// How a relay behaves; [`RelayConfig::default`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Largest datagram (token text) sent or accepted, bytes.
    pub max_datagram: usize,
    /// Largest accepted token age.
    pub ttl: Duration,
    /// How far in the future a token's timestamp may be (clients' clocks ahead of ours).
    pub clock_skew: Duration,
    /// Silence after which a member is dropped.
    pub member_timeout: Duration,
    /// Retransmission timeout toward a member before any round-trip sample.
    pub initial_rto: Duration,
    /// Shortest retransmission timeout (RFC 6298 §2.4 says 1 s for TCP; chat datagrams
    /// are cheap, so less).
    pub min_rto: Duration,
    /// Longest retransmission timeout, after backing off.
    pub max_rto: Duration,
    /// Congestion window toward a new member, messages (RFC 9002 §7.2 starts at 10
    /// packets).
    pub initial_window: u16,
    /// Lines a client may have in flight at most (its Welcome's `window`), at most
    /// [`RECEIPTS`].
    pub client_window: u8,
    /// How long a room whose history is full waits for a member that stopped
    /// acknowledging before it goes on without it (the member is told what it missed if
    /// it comes back after its messages left the history). Meanwhile the room's senders
    /// are told to wait (Busy).
    pub stall_limit: Duration,
    /// Presence changes are sent to a member at most this often.
    pub presence_interval: Duration,
}

impl Default for RelayConfig {
    /// 1232-byte datagrams, 60 s TTL and clock skew, members dropped after 30 s of
    /// silence, retransmissions from 200 ms (300 ms before a sample) to 4 s, 16 messages in
    /// flight to a new member, 16 lines in flight from a client, a full room waits 5 s
    /// for a stalled member, presence every 200 ms at most.
    fn default() -> Self {
        Self {
            max_datagram: DEFAULT_MAX_DATAGRAM,
            ttl: DEFAULT_TTL,
            clock_skew: DEFAULT_CLOCK_SKEW,
            member_timeout: Duration::from_secs(30),
            initial_rto: Duration::from_millis(300),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(4),
            initial_window: 16,
            client_window: RECEIPTS as u8,
            stall_limit: Duration::from_secs(5),
            presence_interval: Duration::from_millis(200),
        }
    }
}

/// The storage a relay works in, all of it the caller's: `static` arrays on a device,
/// `Vec`s sized from flags on a PC (smoltcp's sockets take their buffers the same way).
/// [`RelayLimits`] makes consistent sizes and says how many bytes they take.
///
/// The per-room parts are divided evenly: room `r` uses the `r`-th
/// `history.len() / rooms.len()` entries, and so on.
#[derive(Debug)]
pub struct RelayStorage<'a, A> {
    /// One slot per member the relay can hold at once.
    pub members: &'a mut [MemberSlot<A>],
    /// Departed sessions remembered (replays of their tokens get no answer; returning
    /// clients get their place back). As many as `members` is a good size.
    pub gone: &'a mut [GoneSlot],
    /// One slot per room at once.
    pub rooms: &'a mut [RoomSlot],
    /// `rooms.len() ×` the most messages a room keeps.
    pub history: &'a mut [HistoryEntry],
    /// `rooms.len() ×` the bytes of tokens a room keeps: at least one largest datagram
    /// per room.
    pub history_bytes: &'a mut [u8],
    /// `rooms.len() ×` the presence changes a room keeps.
    pub presence: &'a mut [PresenceEntry],
}

/// Why [`Relay::new`] cannot use a [`RelayStorage`], or
/// [`Relay::with_external_ordering`] a [`ClusterStorage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageError {
    /// No member slots or no room slots (or no proposal slots).
    Empty,
    /// A room's share of `history` or `presence` is empty.
    NoHistory,
    /// A room's share of `history_bytes` is smaller than one largest datagram.
    HistoryBytes,
    /// A proposal slot's share of `proposal_bytes` is smaller than one largest datagram.
    ProposalBytes,
    /// Fewer `remote_rooms` than room slots.
    RemoteRooms,
}

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Empty => "the relay needs at least one member and one room slot",
            Self::NoHistory => "each room needs at least one history entry and presence entry",
            Self::HistoryBytes => "each room needs history bytes for at least one largest datagram",
            Self::ProposalBytes => {
                "each proposal slot needs bytes for at least one largest datagram"
            }
            Self::RemoteRooms => "the cluster storage needs a remote-room slot per room slot",
        })
    }
}

/// Sizes of a relay's storage, and what they cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Members at once.
    pub members: usize,
    /// Rooms at once.
    pub rooms: usize,
    /// Messages a room keeps for members that have not acknowledged them.
    pub history: usize,
    /// Bytes of sealed tokens a room keeps (the history holds `history` messages or this
    /// many bytes, whichever is reached first).
    pub history_bytes: usize,
    /// Presence changes a room keeps for members that have not read them.
    pub presence: usize,
    /// Departed sessions remembered.
    pub gone: usize,
}

impl RelayLimits {
    /// Bytes of history per room for `history` messages of the usual size: a token of
    /// 256 characters carries a line of about 100 bytes.
    pub const fn history_bytes_for(history: usize) -> usize {
        history.saturating_mul(256)
    }

    /// The bytes the storage takes, with `A` the driver's address type:
    ///
    /// `members × (M + G) + rooms × (R + history × H + history_bytes + presence × P)`
    ///
    /// where `M`, `G`, `R`, `H`, `P` are the sizes of [`MemberSlot<A>`], [`GoneSlot`],
    /// [`RoomSlot`], [`HistoryEntry`] and [`PresenceEntry`] (gone slots counted as
    /// `gone`).
    pub const fn bytes<A>(&self) -> usize {
        let per_room = size_of::<RoomSlot>()
            .saturating_add(self.history.saturating_mul(size_of::<HistoryEntry>()))
            .saturating_add(self.history_bytes)
            .saturating_add(self.presence.saturating_mul(size_of::<PresenceEntry>()));
        self.members
            .saturating_mul(size_of::<MemberSlot<A>>())
            .saturating_add(self.gone.saturating_mul(size_of::<GoneSlot>()))
            .saturating_add(self.rooms.saturating_mul(per_room))
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
        self.presence().as_str()
    }

    const fn presence(self) -> crate::wire::PresenceKind {
        match self {
            Self::Left => crate::wire::PresenceKind::Left,
            Self::TimedOut => crate::wire::PresenceKind::TimedOut,
            Self::Replaced => crate::wire::PresenceKind::Replaced,
        }
    }
}

/// What happened, for the server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent<A> {
    /// A member joined a room (`resumed`: where it was before, after a pause or on
    /// another session).
    Joined {
        addr: A,
        nick: String<NAME_MAX>,
        room: String<NAME_MAX>,
        members: u32,
        resumed: bool,
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
    /// A full room stopped waiting for a member that stopped acknowledging.
    Stalled {
        addr: A,
        nick: String<NAME_MAX>,
        room: String<NAME_MAX>,
    },
}

/// Counters, for `--stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handled.
    pub datagrams: u64,
    /// Lines accepted into a room.
    pub relayed: u64,
    /// Lines refused (too long).
    pub refused: u64,
    /// Lines answered "busy" (the room's history was full of messages a member still
    /// needs).
    pub busy: u64,
    /// Room-message datagrams sent, first copies and retransmissions.
    pub delivered: u64,
    /// Room-message datagrams sent again.
    pub retransmitted: u64,
    /// Retransmission timeouts toward members.
    pub timeouts: u64,
    /// Room messages members missed (they left the history first).
    pub missed: u64,
    /// Presence frames sent.
    pub presence: u64,
    /// Times a full room stopped waiting for a stalled member.
    pub stalled: u64,
    /// Answers not sent because they would have been larger than what asked for them.
    pub unanswered: u64,
    /// Events the driver did not collect in time.
    pub events_lost: u64,
    /// Datagrams dropped, by reason (index with [`Dropped::index`]).
    pub dropped: [u64; Dropped::ALL.len()],
}

impl Stats {
    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: Dropped) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }
}

/// A reply to an address that is not (or no longer) a member.
#[derive(Clone, Copy, Debug)]
struct Reply<A> {
    addr: A,
    session: u64,
    kind: ReplyKind,
    /// The datagram that asked: the answer is never longer.
    limit: usize,
}

#[derive(Clone, Copy, Debug)]
enum ReplyKind {
    Pong(u64),
    NotJoined,
    Refused(&'static str),
    Bye,
    Version,
}

/// The chat server as a sans-IO state machine (see the [module docs](super) for the
/// call order). `A` is the driver's address type; `K` older keys are accepted besides the
/// primary.
///
/// All its state is in the [`RelayStorage`] it is given, plus a few kilobytes of its own:
/// nothing a peer sends makes it grow.
#[derive(Debug)]
pub struct Relay<'a, A, R, const K: usize = 3> {
    keys: KeyRing<K>,
    rng: R,
    config: RelayConfig,
    clock: WallClock,
    /// The time of the last input.
    now: Instant,
    /// Unix seconds as of the last input, for stamping what goes.
    unix_now: u64,
    members: Members<'a, A>,
    gone: GoneTable<'a>,
    rooms: Rooms<'a>,
    history: &'a mut [HistoryEntry],
    history_bytes: &'a mut [u8],
    presence: &'a mut [PresenceEntry],
    /// Per room: history entries, history bytes, presence entries.
    per_room: (usize, usize, usize),
    replies: Deque<Reply<A>, REPLIES>,
    legacy: legacy::Seen,
    events: Deque<RelayEvent<A>, EVENTS>,
    stats: Stats,
    /// When the members' timers (silence, retransmission) next need a look: a scan of the
    /// member table, so at most every [`MEMBER_SCAN`].
    member_timer: Option<Instant>,
    /// When the rooms' timers (presence, admission) next need a look.
    room_timer: Option<Instant>,
    /// External ordering, if the relay serves its rooms with other servers.
    cluster: Option<sequencer::Cluster<'a, A>>,
}

impl<'a, A: Copy + Eq + Hash, R: CryptoRng, const K: usize> Relay<'a, A, R, K> {
    /// A relay with no members, working in `storage`. Give it the real time: tokens are
    /// judged by it.
    pub fn new(
        config: RelayConfig,
        keys: KeyRing<K>,
        mut rng: R,
        clock: WallClock,
        storage: RelayStorage<'a, A>,
    ) -> Result<Self, StorageError> {
        let rooms = storage.rooms.len();
        if storage.members.is_empty() || rooms == 0 {
            return Err(StorageError::Empty);
        }
        let per_room = (
            storage.history.len() / rooms,
            storage.history_bytes.len() / rooms,
            storage.presence.len() / rooms,
        );
        if per_room.0 == 0 || per_room.2 == 0 {
            return Err(StorageError::NoHistory);
        }
        if per_room.1 < config.max_datagram {
            return Err(StorageError::HistoryBytes);
        }
        let mut key = || (rng.next_u64(), rng.next_u64());
        let (member_keys, gone_keys, room_keys) = (key(), key(), key());
        Ok(Self {
            members: Members::new(storage.members, member_keys),
            gone: GoneTable::new(storage.gone, gone_keys),
            rooms: Rooms::new(storage.rooms, room_keys),
            history: storage.history,
            history_bytes: storage.history_bytes,
            presence: storage.presence,
            per_room,
            keys,
            rng,
            config,
            clock,
            now: Instant::default(),
            unix_now: 0,
            replies: Deque::new(),
            legacy: legacy::Seen::default(),
            events: Deque::new(),
            stats: Stats::default(),
            member_timer: None,
            room_timer: None,
            cluster: None,
        })
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
        self.rooms.len()
    }

    /// The most members and rooms at once.
    pub fn capacity(&self) -> (usize, usize) {
        (self.members.capacity(), self.rooms.capacity())
    }

    /// How it behaves.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Corrects the real time.
    pub fn sync_clock(&mut self, now: Instant, unix_millis: u64) {
        self.clock.sync(now, unix_millis);
    }

    /// The next event for the log.
    pub fn poll_event(&mut self) -> Option<RelayEvent<A>> {
        self.events.pop_front()
    }

    fn event(&mut self, event: RelayEvent<A>) {
        if self.events.push_back(event).is_err() {
            self.stats.events_lost = self.stats.events_lost.saturating_add(1);
        }
    }

    fn count(&mut self, reason: Dropped) -> Dropped {
        if let Some(n) = self.stats.dropped.get_mut(reason.index()) {
            *n = n.saturating_add(1);
        }
        reason
    }

    /// Makes sure the members' timers are looked at by `at`.
    fn arm(&mut self, at: Option<Instant>) {
        if let Some(at) = at {
            self.member_timer = Some(self.member_timer.map_or(at, |t| t.min(at)));
        }
    }

    /// Makes sure the rooms' timers are looked at by `at`.
    fn arm_room(&mut self, at: Option<Instant>) {
        if let Some(at) = at {
            self.room_timer = Some(self.room_timer.map_or(at, |t| t.min(at)));
        }
    }

    /// The retransmission timeout toward a member.
    fn rto(&self, delivery: &delivery::Delivery) -> Duration {
        delivery.rtt.rto(
            self.config.initial_rto,
            self.config.min_rto,
            self.config.max_rto,
        )
    }

    /// Room `r`'s history over its share of the storage.
    fn history_of(&mut self, r: u32) -> Option<History<'_>> {
        history_view(
            &mut self.rooms,
            self.history,
            self.history_bytes,
            self.per_room,
            r,
        )
    }

    /// Room `r`'s presence log over its share of the storage.
    fn presence_of(&mut self, r: u32) -> Option<PresenceLog<'_>> {
        let (_, _, entries) = self.per_room;
        let i = r as usize;
        let state = &mut self.rooms.get_mut(r)?.presence;
        Some(PresenceLog {
            state,
            entries: self
                .presence
                .get_mut(i.checked_mul(entries)?..i.checked_add(1)?.checked_mul(entries)?)?,
        })
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

    /// Notes the time of an input.
    fn tick(&mut self, now: Instant) -> Option<u64> {
        self.now = now;
        let unix_now = self.clock.unix_secs(now);
        self.unix_now = unix_now.unwrap_or(0);
        unix_now
    }

    fn handle(&mut self, now: Instant, from: A, datagram: &mut [u8]) -> Result<(), Dropped> {
        let len = datagram.len();
        if len > self.config.max_datagram {
            return Err(Dropped::TooLong);
        }
        let fingerprint = legacy::fingerprint(datagram);
        let unix_now = self.tick(now);
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
                    // gets one Pong no larger than its Ping, nothing more. (A fresh Ping
                    // from an unknown session is told to join instead, below.)
                    if self.members.by_session(repr.session).is_none()
                        && self.gone.find(repr.session).is_none()
                    {
                        return self.reply(from, repr.session, ReplyKind::Pong(counter), len);
                    }
                }
                age?;
                self.on_frame(now, from, repr, opened.timestamp, len)
            }
        }
    }

    fn reply(
        &mut self,
        addr: A,
        session: u64,
        kind: ReplyKind,
        limit: usize,
    ) -> Result<(), Dropped> {
        self.replies
            .push_back(Reply {
                addr,
                session,
                kind,
                limit,
            })
            .map_err(|_| Dropped::Overloaded)
    }

    fn on_frame(
        &mut self,
        now: Instant,
        from: A,
        repr: Repr<'_>,
        timestamp: u64,
        len: usize,
    ) -> Result<(), Dropped> {
        let session = repr.session;
        match repr.body {
            Body::JoinV1 { .. } => return self.reply(from, session, ReplyKind::Version, len),
            Body::Join {
                version,
                nick,
                room,
                window,
                resume,
            } => {
                return self.on_join(
                    now,
                    from,
                    join::JoinRequest {
                        session,
                        version,
                        nick,
                        room,
                        window,
                        resume,
                        timestamp,
                        len,
                    },
                );
            }
            _ => {}
        }
        let Some(m) = self.members.by_session(session) else {
            if let Some(gone) = self.gone.find(session)
                && (gone.left || timestamp <= gone.at)
            {
                // A token of a session that said goodbye, or made before the session
                // went: a replay. Nothing is answered.
                return Err(Dropped::Duplicate);
            }
            return match repr.body {
                Body::Ping { .. } | Body::Chat { .. } | Body::Ack { .. } | Body::Who { .. } => {
                    self.reply(from, session, ReplyKind::NotJoined, len)
                }
                Body::Leave => self.reply(from, session, ReplyKind::Bye, len),
                _ => Err(Dropped::Unexpected),
            };
        };
        match repr.body {
            Body::Ping { counter } => self.on_ping(now, from, m, counter),
            Body::Chat { msg_id, text } => self.on_chat(now, from, m, msg_id, text),
            Body::Ack {
                next_seq,
                selective,
                presence,
            } => self.on_ack(now, from, m, next_seq, selective, presence),
            Body::Who { counter, start } => self.on_who(m, counter, start),
            Body::Leave => {
                self.remove_member(m, LeaveReason::Left);
                self.reply(from, session, ReplyKind::Bye, len)
            }
            _ => Err(Dropped::Unexpected),
        }
    }

    fn on_ping(&mut self, now: Instant, from: A, m: u32, counter: u64) -> Result<(), Dropped> {
        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
        if counter <= member.ping_counter {
            // Counters start at 1 and rise: anything else is a replay.
            return Err(Dropped::Duplicate);
        }
        member.ping_counter = counter;
        member.pong_due = Some(counter);
        member.last_heard = now;
        self.members.set_addr(m, from);
        self.members.push_ready(m);
        Ok(())
    }

    fn on_who(&mut self, m: u32, counter: u32, start: u32) -> Result<(), Dropped> {
        let member = self.members.get_mut(m).ok_or(Dropped::Unexpected)?;
        if counter <= member.who_counter {
            return Err(Dropped::Duplicate);
        }
        member.who_counter = counter;
        member.who_due = Some(start);
        self.members.push_ready(m);
        Ok(())
    }

    /// Runs the timers that are due at `now`: drops silent members, fires retransmission
    /// timers, sends presence changes. Cheap when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if self.member_timer.is_some_and(|at| at <= now) {
            self.member_timers(now);
        }
        if self.room_timer.is_some_and(|at| at <= now) {
            self.room_timers(now);
        }
    }

    /// Drops silent members, fires retransmission timers.
    fn member_timers(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut earliest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        let slots = u32::try_from(self.members.capacity()).unwrap_or(u32::MAX);
        for m in 0..slots {
            let Some(member) = self.members.get_mut(m) else {
                continue;
            };
            let silent_until = member.last_heard + self.config.member_timeout;
            if silent_until <= now {
                self.remove_member(m, LeaveReason::TimedOut);
                continue;
            }
            earliest(silent_until);
            if member.delivery.rto_deadline.is_some_and(|at| at <= now) {
                if member.delivery.on_timeout() {
                    self.stats.timeouts = self.stats.timeouts.saturating_add(1);
                    self.members.push_ready(m);
                }
            } else if let Some(at) = member.delivery.rto_deadline {
                earliest(at);
            }
        }
        self.member_timer = next.map(|at| at.max(now + MEMBER_SCAN));
    }

    /// Sends presence changes, gives waiting senders their turn.
    fn room_timers(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut earliest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        let rooms = u32::try_from(self.rooms.capacity()).unwrap_or(u32::MAX);
        for r in 0..rooms {
            let Some(room) = self.rooms.get(r) else {
                continue;
            };
            let admit_due = room.admit_tick.is_some_and(|at| at <= now);
            if room.presence_tick.is_some_and(|at| at <= now) {
                self.presence_tick(now, r);
            }
            if admit_due {
                self.admit(now, r);
            }
            if let Some(room) = self.rooms.get(r) {
                for at in [room.presence_tick, room.admit_tick].into_iter().flatten() {
                    earliest(at);
                }
            }
        }
        // Ticks armed while this ran (`arm_room`) count too.
        let armed = self.room_timer.filter(|at| *at > now);
        self.room_timer = [next, armed]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.max(now + ROOM_SCAN));
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.member_timer, self.room_timer]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests;
