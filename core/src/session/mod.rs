//! The chat protocol as sans-IO state machines: [`Client`] for a member, [`Relay`] for
//! the server. They never touch a socket or a clock; drivers (the host's mio loop, the
//! firmware's smoltcp socket, the tests' simulator) move bytes and time.
//!
//! # Call order
//!
//! Both machines are driven the same way, as in quinn-proto:
//!
//! 1. feed what happened: `handle_datagram(now, ..)` for each datagram received,
//!    `handle_timeout(now)` when the time from `poll_timeout` has come, and the
//!    application's own calls (`Client::send`, `Client::leave`, ...);
//! 2. call `poll_transmit(now, buf)` until it returns `None`, sending each datagram;
//! 3. call `poll_event()` until it returns `None`, acting on each event;
//! 4. sleep until `poll_timeout()` or the next datagram, then start again.
//!
//! Every datagram is one Fernet token whose plaintext is a [`wire`] frame.

mod client;
mod json;
mod relay;

pub use client::{
    Client, ClientConfig, ClientEvent, ClientState, NameList, PresenceChanges, SendError,
};
pub use json::{JsonFields, JsonStr};
pub use relay::{
    ClusterRequest, ClusterStorage, GoneSlot, HistoryEntry, LEGACY_ROOM, LeaveReason, LineRecord,
    MemberSlot, OrderError, Ordered, PresenceEntry, Proposal, ProposalSlot, RECEIPTS, RECORD_MAGIC,
    RECORD_OVERHEAD, RECORD_VERSION, Relay, RelayConfig, RelayEvent, RelayLimits, RelayStorage,
    RemoteRoom, RemoteSlot, RoomSlot, Stats, StorageError,
};

use crate::fernet::{self, KeyRing, TtlCheck};
use crate::time::Duration;
use crate::wire::{self, Plaintext};
use rand_core::CryptoRng;

/// Default largest datagram: fits the IPv6 minimum MTU (1280) less IP and UDP headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1232;
/// Default TTL: tokens older than this are refused.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Default clock skew allowance: tokens stamped further than this in the future are
/// refused ([`fernet::MAX_CLOCK_SKEW`], as in every Fernet implementation).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(fernet::MAX_CLOCK_SKEW);

/// The longest chat line whose room message still fits a datagram of `max_datagram`
/// bytes.
pub const fn max_text_len(max_datagram: usize) -> usize {
    match fernet::max_message_len(max_datagram) {
        Some(frame) => frame.saturating_sub(wire::DELIVER_OVERHEAD),
        None => 0,
    }
}

/// Why a datagram was dropped. Nothing is ever answered to the first three: an outsider
/// learns nothing and gains no amplification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// Not a token made with our key (forged, corrupted, wrong key, random bytes).
    InvalidToken,
    /// Older than the TTL.
    Expired,
    /// Stamped too far in the future.
    FromTheFuture,
    /// A valid token whose plaintext is not a frame we understand.
    Malformed,
    /// A frame that makes no sense here (wrong direction, wrong session, wrong state).
    Unexpected,
    /// Already seen: a retransmission or a replayed token.
    Duplicate,
    /// A bound was reached (members, rooms, queues); the sender will retry or was told.
    Overloaded,
    /// Longer than the largest datagram.
    TooLong,
}

impl Dropped {
    /// Every reason, in [`index`](Self::index) order.
    pub const ALL: [Dropped; 8] = [
        Self::InvalidToken,
        Self::Expired,
        Self::FromTheFuture,
        Self::Malformed,
        Self::Unexpected,
        Self::Duplicate,
        Self::Overloaded,
        Self::TooLong,
    ];

    /// Position in [`ALL`](Self::ALL), for counters.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl Dropped {
    /// A short lowercase name, for counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::Expired => "expired",
            Self::FromTheFuture => "from_the_future",
            Self::Malformed => "malformed",
            Self::Unexpected => "unexpected",
            Self::Duplicate => "duplicate",
            Self::Overloaded => "overloaded",
            Self::TooLong => "too_long",
        }
    }
}

impl core::fmt::Display for Dropped {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<fernet::Error> for Dropped {
    fn from(error: fernet::Error) -> Self {
        match error {
            fernet::Error::Expired => Self::Expired,
            fernet::Error::FromTheFuture => Self::FromTheFuture,
            fernet::Error::InvalidToken | fernet::Error::BufferTooSmall => Self::InvalidToken,
        }
    }
}

/// A token's timestamp and what its plaintext says.
struct Opened<'b> {
    timestamp: u64,
    plaintext: Plaintext<'b>,
}

/// Opens a datagram where it lies. The TTL is judged by the caller (some frames are
/// allowed without a clock), so none is passed to the codec here.
fn open<'b, const K: usize>(
    keys: &KeyRing<K>,
    datagram: &'b mut [u8],
) -> Result<Opened<'b>, Dropped> {
    let (decrypted, _) = keys.decrypt_in_place(datagram, None)?;
    let plaintext = Plaintext::parse(decrypted.plaintext).map_err(|_| Dropped::Malformed)?;
    Ok(Opened {
        timestamp: decrypted.timestamp,
        plaintext,
    })
}

/// Judges a token's age, if the time is known: at most `ttl` old, at most `skew` ahead.
fn judge_age(
    timestamp: u64,
    ttl: Duration,
    skew: Duration,
    unix_now: Option<u64>,
) -> Result<(), Dropped> {
    match unix_now {
        Some(now) => TtlCheck {
            ttl: ttl.millis() / 1000,
            now,
            skew: skew.millis() / 1000,
        }
        .judge(timestamp)
        .map_err(Dropped::from),
        None => Ok(()),
    }
}

/// Encrypts the `len` bytes at the front of `buf` into a token there.
fn seal_bytes_in_place<R: CryptoRng + ?Sized, const K: usize>(
    keys: &KeyRing<K>,
    rng: &mut R,
    timestamp: u64,
    len: usize,
    buf: &mut [u8],
) -> Option<usize> {
    keys.encrypt_in_place(buf, len, timestamp, rng)
        .ok()
        .map(str::len)
}

/// Copies as much of `text` as fits `N` bytes, cutting at a character boundary.
fn truncated<const N: usize>(text: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    for c in text.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}
