//! The external-ordering API in detail (what `cluster_sim.rs` exercises only as a whole):
//! the cluster storage's checks at their bounds, which relays say they are externally
//! ordered, how many proposals wait, and the ordering errors' texts.

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClusterRequest, ClusterStorage, GoneSlot, HistoryEntry,
    MemberSlot, OrderError, PresenceEntry, ProposalSlot, Relay, RelayConfig, RelayStorage,
    RemoteRoom, RemoteSlot, RoomSlot, StorageError,
};
use chat_core::time::{Duration, Instant, WallClock};
use rand::SeedableRng;
use rand::rngs::StdRng;

type TestRelay = Relay<'static, u32, StdRng, 1>;
type TestClient = Client<StdRng, 1, 256, 16, 64, 16>;
const UNIX_MS: u64 = 1_700_000_000_000;
const ROOMS: usize = 2;
const MEMBER: u32 = 7;

fn leak<T: Clone>(value: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![value; n].into_boxed_slice())
}

fn key() -> Key {
    Key::from_bytes(&[4; 32])
}

/// A relay of 4 members and `ROOMS` rooms, not yet externally ordered.
fn plain_relay() -> TestRelay {
    let storage = RelayStorage {
        members: leak(MemberSlot::default(), 4),
        gone: leak(GoneSlot::default(), 4),
        rooms: leak(RoomSlot::default(), ROOMS),
        history: leak(HistoryEntry::default(), ROOMS * 8),
        history_bytes: leak(0u8, ROOMS * 4096),
        presence: leak(PresenceEntry::default(), ROOMS * 8),
    };
    Relay::new(
        RelayConfig::default(),
        KeyRing::new(key()),
        StdRng::seed_from_u64(1),
        WallClock::synced(Instant::from_millis(0), UNIX_MS),
        storage,
    )
    .expect("storage")
}

/// Cluster storage of `slots` proposals with `bytes` bytes for them, and `remote_rooms`.
fn cluster(slots: usize, bytes: usize, remote_rooms: usize) -> ClusterStorage<'static> {
    ClusterStorage {
        proposals: leak(ProposalSlot::default(), slots),
        proposal_bytes: leak(0u8, bytes),
        remotes: leak(RemoteSlot::default(), 8),
        remote_rooms: leak(RemoteRoom::default(), remote_rooms),
    }
}

#[test]
fn the_cluster_storage_is_checked_at_its_bounds() {
    let datagram = RelayConfig::default().max_datagram;
    let err = |storage| plain_relay().with_external_ordering(storage).err();
    assert_eq!(err(cluster(0, 0, ROOMS)), Some(StorageError::Empty));
    // Exactly a largest datagram per slot, more, and one byte short.
    assert_eq!(err(cluster(3, 3 * datagram, ROOMS)), None);
    assert_eq!(err(cluster(3, 5 * datagram, ROOMS)), None);
    assert_eq!(
        err(cluster(3, 3 * datagram - 1, ROOMS)),
        Some(StorageError::ProposalBytes)
    );
    assert_eq!(
        err(cluster(1, datagram - 1, ROOMS)),
        Some(StorageError::ProposalBytes)
    );
    // A remote-room slot per room slot, more, and one fewer.
    assert_eq!(err(cluster(1, datagram, ROOMS + 3)), None);
    assert_eq!(
        err(cluster(1, datagram, ROOMS - 1)),
        Some(StorageError::RemoteRooms)
    );
    for (error, text) in [
        (
            StorageError::ProposalBytes,
            "each proposal slot needs bytes for at least one largest datagram",
        ),
        (
            StorageError::RemoteRooms,
            "the cluster storage needs a remote-room slot per room slot",
        ),
    ] {
        assert_eq!(error.to_string(), text);
    }
}

#[test]
fn only_a_relay_given_cluster_storage_is_externally_ordered() {
    let datagram = RelayConfig::default().max_datagram;
    assert!(!plain_relay().is_externally_ordered());
    assert_eq!(plain_relay().proposals_waiting(), 0);
    let relay = plain_relay()
        .with_external_ordering(cluster(2, 2 * datagram, ROOMS))
        .expect("storage");
    assert!(relay.is_externally_ordered());
}

#[test]
fn ordering_errors_say_what_to_do() {
    for (error, text) in [
        (OrderError::NotOpen, "room not open here"),
        (OrderError::InvalidToken, "invalid token"),
        (OrderError::Malformed, "not a line record"),
        (
            OrderError::Busy {
                retry_after: Duration::from_millis(250),
            },
            "room busy: again in 250 ms",
        ),
    ] {
        assert_eq!(error.to_string(), text);
    }
}

/// Moves datagrams between the relay and the client until neither has more.
fn exchange(relay: &mut TestRelay, client: &mut TestClient, now: Instant) {
    let mut buf = [0u8; 1500];
    for _ in 0..100 {
        let mut moved = false;
        while let Some(len) = client.poll_transmit(now, &mut buf) {
            let _ = relay.handle_datagram(now, MEMBER, &mut buf[..len]);
            moved = true;
        }
        while let Some((_, len)) = relay.poll_transmit(now, &mut buf) {
            let _ = client.handle_datagram(now, &mut buf[..len]);
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the exchange does not settle");
}

#[test]
fn lines_wait_as_proposals_until_the_driver_takes_them() {
    let datagram = RelayConfig::default().max_datagram;
    let now = Instant::from_millis(0);
    let mut relay = plain_relay()
        .with_external_ordering(cluster(4, 4 * datagram, ROOMS))
        .expect("storage");
    let mut client = TestClient::new(
        &ClientConfig::new("ann", "dev"),
        KeyRing::new(key()),
        StdRng::seed_from_u64(2),
        WallClock::synced(now, UNIX_MS),
        now,
    )
    .expect("names");
    exchange(&mut relay, &mut client, now);
    let open = relay.poll_request();
    assert!(
        matches!(&open, Some(ClusterRequest::Open { room, .. }) if room.as_str() == "dev"),
        "{open:?}"
    );
    assert!(relay.open_room(now, "dev", 9, 0, []));
    exchange(&mut relay, &mut client, now);
    assert!(
        std::iter::from_fn(|| client.poll_event()).any(|e| matches!(e, ClientEvent::Joined { .. })),
        "ann joined"
    );
    assert_eq!(relay.proposals_waiting(), 0);

    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        client.send(text).expect("room in the outbox");
        exchange(&mut relay, &mut client, now);
        assert_eq!(relay.proposals_waiting(), i + 1, "after {text:?}");
    }
    let mut buf = [0u8; 1500];
    for left in (0..3).rev() {
        let proposal = relay.poll_proposal(&mut buf).expect("a proposal");
        assert_eq!(proposal.room.as_str(), "dev");
        assert_eq!(relay.proposals_waiting(), left);
    }
    assert!(relay.poll_proposal(&mut buf).is_none());
}
