//! What the fuzz targets share: deterministic randomness, a small relay's storage in
//! fixed arrays, and the client and relay types they drive.

use chat_core::session::{
    Client, GoneSlot, HistoryEntry, MemberSlot, PresenceEntry, Relay, RelayStorage, RoomSlot,
};
use rand_core::{TryCryptoRng, TryRng};

/// A client as the targets run it: no reorder buffer (as a device), 64-byte texts.
pub type FuzzClient = Client<CounterRng, 0, 64, 2, 4, 2>;
/// A relay whose addresses are one byte.
pub type FuzzRelay<'s> = Relay<'s, u8, CounterRng, 0>;
/// The wall clock at the simulated clock's zero, in Unix milliseconds.
pub const UNIX_MS: u64 = 1_700_000_000_000;

/// Deterministic "randomness" (an LCG): the fuzzer must be able to reproduce a run.
pub struct CounterRng(pub u64);

impl TryRng for CounterRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}

impl TryCryptoRng for CounterRng {}

/// A small relay's storage in fixed arrays (4 members, 2 rooms of 8 messages), as a
/// device's would be.
pub struct SmallRelay {
    members: [MemberSlot<u8>; 4],
    gone: [GoneSlot; 4],
    rooms: [RoomSlot; 2],
    history: [HistoryEntry; 16],
    history_bytes: [u8; 2 * 2048],
    presence: [PresenceEntry; 8],
}

impl SmallRelay {
    /// Empty storage.
    pub fn new() -> Self {
        Self {
            members: [MemberSlot::EMPTY; 4],
            gone: [GoneSlot::EMPTY; 4],
            rooms: [RoomSlot::EMPTY; 2],
            history: [HistoryEntry::EMPTY; 16],
            history_bytes: [0u8; 2 * 2048],
            presence: [PresenceEntry::EMPTY; 8],
        }
    }

    /// The storage, lent to a relay.
    pub fn storage(&mut self) -> RelayStorage<'_, u8> {
        RelayStorage {
            members: &mut self.members,
            gone: &mut self.gone,
            rooms: &mut self.rooms,
            history: &mut self.history,
            history_bytes: &mut self.history_bytes,
            presence: &mut self.presence,
        }
    }
}

impl Default for SmallRelay {
    fn default() -> Self {
        Self::new()
    }
}
