//! The external-ordering API in detail (what `cluster_sim.rs` exercises only as a whole):
//! the cluster storage's checks at their bounds, which relays say they are externally
//! ordered, how many proposals wait, and the ordering errors' texts.

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::Dropped;
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClusterRequest, ClusterStorage, GoneSlot, HistoryEntry,
    MemberSlot, OrderError, PresenceEntry, ProposalSlot, Relay, RelayConfig, RelayStorage,
    RemoteRoom, RemoteSlot, RoomSlot, StorageError,
};
use chat_core::time::{Duration, Instant, WallClock};
use chat_core::wire::{self, Body, Repr, Resume};
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

/// A client of `room` on a fresh externally ordered relay, its Join not yet sent.
fn cluster_relay_and_client(room: &str, now: Instant) -> (TestRelay, TestClient) {
    let datagram = RelayConfig::default().max_datagram;
    let relay = plain_relay()
        .with_external_ordering(cluster(4, 4 * datagram, ROOMS))
        .expect("storage");
    let client = TestClient::new(
        &ClientConfig::new("ann", room),
        KeyRing::new(key()),
        StdRng::seed_from_u64(3),
        WallClock::synced(now, UNIX_MS),
        now,
    )
    .expect("names");
    (relay, client)
}

/// Hands the client's datagrams to the relay (none back).
fn client_to_relay(relay: &mut TestRelay, client: &mut TestClient, now: Instant) -> usize {
    let mut buf = [0u8; 1500];
    let mut sent = 0;
    while let Some(len) = client.poll_transmit(now, &mut buf) {
        let _ = relay.handle_datagram(now, MEMBER, &mut buf[..len]);
        sent += 1;
    }
    sent
}

fn requests(relay: &mut TestRelay) -> Vec<ClusterRequest> {
    std::iter::from_fn(|| relay.poll_request()).collect()
}

/// A client welcomed into "dev", opened at epoch 9 with `next_seq` next, at `now`; the
/// relay's requests so far taken.
fn joined_to_dev(now: Instant, next_seq: u64) -> (TestRelay, TestClient) {
    let (mut relay, mut client) = cluster_relay_and_client("dev", now);
    client_to_relay(&mut relay, &mut client, now);
    requests(&mut relay);
    assert!(relay.open_room(now, "dev", 9, next_seq, []));
    exchange(&mut relay, &mut client, now);
    (relay, client)
}

#[test]
fn a_join_repeated_while_its_room_opens_asks_the_driver_once_per_patience() {
    let mut now = Instant::from_millis(0);
    let (mut relay, mut client) = cluster_relay_and_client("dev", now);
    assert_eq!(client_to_relay(&mut relay, &mut client, now), 1);
    let first = requests(&mut relay);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        matches!(&first[0], ClusterRequest::Open { room, resume: None } if room.as_str() == "dev")
    );
    // The client asks again (its join unanswered) within the relay's patience (3 s):
    // parked in place of the first, the driver is not asked twice.
    let mut repeats = 0;
    while now < Instant::from_millis(2_900) {
        now = now + Duration::from_millis(100);
        client.handle_timeout(now);
        repeats += client_to_relay(&mut relay, &mut client, now);
        assert_eq!(requests(&mut relay), [], "at {} ms", now.millis());
    }
    assert!(repeats > 0, "the client asked again");
    // Past the patience the driver is taken to have missed it: asked again.
    let mut asked = Vec::new();
    while asked.is_empty() && now < Instant::from_millis(20_000) {
        now = now + Duration::from_millis(100);
        client.handle_timeout(now);
        client_to_relay(&mut relay, &mut client, now);
        asked = requests(&mut relay);
    }
    assert!(now.millis() >= 3_000, "not before the patience ran out");
    assert!(
        matches!(&asked[..], [ClusterRequest::Open { room, .. }] if room.as_str() == "dev"),
        "{asked:?}"
    );
    // Once the room opens, the parked join goes on: a Welcome, and no request.
    assert!(relay.open_room(now, "dev", 9, 0, []));
    exchange(&mut relay, &mut client, now);
    assert!(
        std::iter::from_fn(|| client.poll_event()).any(|e| matches!(e, ClientEvent::Joined { .. }))
    );
}

/// `plain` sealed at `now` under the key, with every IV byte `iv`.
fn seal(plain: &[u8], now: Instant, iv: u8) -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    let unix = (UNIX_MS + now.millis()) / 1000;
    let len = key()
        .encrypt_with_iv(plain, unix, [iv; 16], &mut out)
        .expect("room")
        .len();
    out.truncate(len);
    out
}

/// A bare-text token, as the original Python chat sends it; `n` makes it unique.
fn legacy_token(text: &str, now: Instant, n: u8) -> Vec<u8> {
    seal(text.as_bytes(), now, n)
}

#[test]
fn a_legacy_line_to_a_cluster_asks_for_the_lobby_once_and_is_taken_once_it_is_open() {
    const LEGACY: u32 = 99;
    let mut now = Instant::from_millis(0);
    let (mut relay, _) = cluster_relay_and_client("lobby", now);
    let say = |relay: &mut TestRelay, now: Instant, n: u8| {
        let mut token = legacy_token("hello", now, n);
        relay.handle_datagram(now, LEGACY, &mut token)
    };
    // The lobby is not open here: the line is dropped, and the lobby asked for, once.
    assert!(
        say(&mut relay, now, 1).is_err(),
        "dropped while the lobby opens"
    );
    let asked = requests(&mut relay);
    assert!(
        matches!(&asked[..], [ClusterRequest::Open { room, resume: None }] if room.as_str() == "lobby"),
        "{asked:?}"
    );
    now = now + Duration::from_millis(2_000);
    assert!(say(&mut relay, now, 2).is_err());
    assert_eq!(requests(&mut relay), [], "asked once within the patience");
    now = now + Duration::from_millis(999);
    assert!(say(&mut relay, now, 3).is_err());
    assert_eq!(
        requests(&mut relay),
        [],
        "2,999 ms: still within the patience"
    );
    now = now + Duration::from_millis(1);
    assert!(say(&mut relay, now, 4).is_err());
    assert_eq!(
        requests(&mut relay).len(),
        1,
        "asked again when the patience (3 s) ran out"
    );
    // Open: the next line is taken (proposed to the room's order).
    assert!(relay.open_room(now, "lobby", 5, 0, []));
    assert_eq!(say(&mut relay, now, 5), Ok(()));
    assert_eq!(relay.proposals_waiting(), 1);
}

/// Line `msg_id` of session `origin` (nick "bob") as the stream holds it: a sealed
/// line record.
fn record_token(origin: u64, msg_id: u32, text: &str, now: Instant) -> Vec<u8> {
    let record = chat_core::session::LineRecord {
        origin,
        msg_id,
        nick: "bob",
        text,
    };
    let mut plain = [0u8; 256];
    let len = record.emit(&mut plain).expect("room");
    seal(&plain[..len], now, msg_id as u8)
}

#[test]
fn a_line_fed_beyond_the_rooms_next_number_is_appended_after_a_gap() {
    use chat_core::session::Ordered;
    let now = Instant::from_millis(0);
    let (mut relay, mut client) = joined_to_dev(now, 3);
    let seal = |origin, msg_id, text| record_token(origin, msg_id, text, now);
    // The room starts at 3: line 3 is next; 3 again is a duplicate; 7 comes after a gap
    // of 4 to 6 (the stream's retention removed them).
    assert_eq!(
        relay.handle_ordered(now, "dev", 3, &mut seal(55, 1, "three")),
        Ok(Ordered::Appended)
    );
    exchange(&mut relay, &mut client, now);
    assert_eq!(
        relay.handle_ordered(now, "dev", 3, &mut seal(55, 1, "three")),
        Ok(Ordered::Duplicate)
    );
    assert_eq!(
        relay.handle_ordered(now, "dev", 7, &mut seal(55, 2, "seven")),
        Ok(Ordered::AfterGap { from: 4 })
    );
    assert_eq!(
        relay.handle_ordered(now, "dev", 8, &mut seal(55, 3, "eight")),
        Ok(Ordered::Appended)
    );
    assert_eq!(
        relay.handle_ordered(now, "elsewhere", 1, &mut seal(55, 4, "x")),
        Err(OrderError::NotOpen)
    );
    assert_eq!(
        relay.handle_ordered(now, "dev", 9, &mut b"not a token".to_vec()),
        Err(OrderError::InvalidToken)
    );
    // The member saw 3, is told it missed 4 to 6 (Missed's `to` is the first message
    // after the gap), then sees 7 and 8.
    exchange(&mut relay, &mut client, now);
    let seen: Vec<String> = std::iter::from_fn(|| client.poll_event())
        .filter_map(|e| match e {
            ClientEvent::Message { seq, .. } => Some(format!("#{seq}")),
            ClientEvent::Missed { from, to } => Some(format!("missed {from}-{to}")),
            _ => None,
        })
        .collect();
    assert_eq!(seen, ["#3", "missed 4-7", "#7", "#8"]);
}

#[test]
fn a_legacy_senders_line_is_answered_once_the_room_has_ordered_it() {
    const LEGACY: u32 = 99;
    let now = Instant::from_millis(0);
    let (mut relay, _) = cluster_relay_and_client("lobby", now);
    let mut first = legacy_token("opens the lobby", now, 1);
    let _ = relay.handle_datagram(now, LEGACY, &mut first);
    requests(&mut relay);
    assert!(relay.open_room(now, "lobby", 5, 0, []));
    let mut line = legacy_token("hello", now, 2);
    assert_eq!(relay.handle_datagram(now, LEGACY, &mut line), Ok(()));
    let mut buf = [0u8; 1500];
    assert!(
        relay.poll_transmit(now, &mut buf).is_none(),
        "no answer before the order"
    );
    let proposal = relay.poll_proposal(&mut buf).expect("proposed");
    let mut token = buf[..proposal.len].to_vec();
    assert!(relay.handle_ordered(now, "lobby", 0, &mut token).is_ok());
    let (to, len) = relay.poll_transmit(now, &mut buf).expect("the answer");
    assert_eq!(to, LEGACY);
    let mut out = [0u8; 1500];
    let answer = key()
        .decrypt(&buf[..len], None, &mut out)
        .expect("a token under the key");
    assert_eq!(
        answer.plaintext, b"server: received as #0 for 1 member",
        "the legacy sender's receipt, in bare text"
    );
    // A line of a session on another server: the legacy peer sees it, with no receipt.
    assert!(
        relay
            .handle_ordered(now, "lobby", 1, &mut record_token(55, 7, "hi", now))
            .is_ok()
    );
    let mut texts = Vec::new();
    while let Some((to, len)) = relay.poll_transmit(now, &mut buf) {
        assert_eq!(to, LEGACY);
        let text = key().decrypt(&buf[..len], None, &mut out).expect("token");
        texts.push(String::from_utf8(text.plaintext.to_vec()).expect("text"));
    }
    assert_eq!(texts, ["bob: hi"]);
}

#[test]
fn the_roster_follows_other_servers_and_a_silent_server_takes_its_members_along() {
    let now = Instant::from_millis(0);
    let (mut relay, mut client) = cluster_relay_and_client("dev", now);
    client_to_relay(&mut relay, &mut client, now);
    requests(&mut relay);
    assert_eq!(relay.room_position("dev"), None, "not open yet");
    // Open at 12 with two members on server 2 and one on server 3.
    assert!(relay.open_room(
        now,
        "dev",
        9,
        12,
        [(2, 20, "bob"), (2, 21, "cid"), (3, 30, "dan")]
    ));
    assert_eq!(relay.room_position("dev"), Some((9, 12)));
    assert_eq!(relay.room_position("other"), None);
    assert_eq!(relay.remote_count("dev", 2), 2);
    assert_eq!(relay.remote_count("dev", 3), 1);
    assert_eq!(relay.remote_count("other", 2), 0);
    exchange(&mut relay, &mut client, now);
    let joined = std::iter::from_fn(|| client.poll_event())
        .find_map(|e| match e {
            ClientEvent::Joined { members, .. } => Some(members),
            _ => None,
        })
        .expect("joined");
    assert_eq!(joined, 4, "ann and the three elsewhere");
    // Server 2 falls silent: its two members are gone from the room; server 3's stays.
    relay.remote_server_gone(now, "dev", 2);
    assert_eq!(relay.remote_count("dev", 2), 0);
    assert_eq!(relay.remote_count("dev", 3), 1);
}

#[test]
fn a_room_that_cannot_open_drops_its_joins_and_is_asked_for_again_at_once() {
    let mut now = Instant::from_millis(0);
    let (mut relay, mut client) = cluster_relay_and_client("dev", now);
    client_to_relay(&mut relay, &mut client, now);
    assert_eq!(requests(&mut relay).len(), 1);
    relay.open_failed("dev");
    // Opening it later does not welcome the dropped join; the client's next Join asks
    // again at once (not after the patience).
    now = now + Duration::from_millis(500);
    client.handle_timeout(now);
    let mut asked = Vec::new();
    while asked.is_empty() && now < Instant::from_millis(2_900) {
        now = now + Duration::from_millis(100);
        client.handle_timeout(now);
        client_to_relay(&mut relay, &mut client, now);
        asked = requests(&mut relay);
    }
    assert!(
        matches!(&asked[..], [ClusterRequest::Open { room, .. }] if room.as_str() == "dev"),
        "asked again within the patience: {asked:?}"
    );
}

#[test]
fn the_last_member_leaving_closes_the_room_for_the_driver() {
    let now = Instant::from_millis(0);
    let (mut relay, mut client) = joined_to_dev(now, 0);
    assert!(
        requests(&mut relay)
            .iter()
            .all(|r| !matches!(r, ClusterRequest::Close { .. }))
    );
    client.leave(now);
    exchange(&mut relay, &mut client, now);
    let asked = requests(&mut relay);
    assert!(
        asked
            .iter()
            .any(|r| matches!(r, ClusterRequest::Close { room } if room.as_str() == "dev")),
        "{asked:?}"
    );
    assert_eq!(relay.room_position("dev"), None, "freed here");
}

/// A Join of session `session` to `room`, sealed at `now` (`resume`: where it was).
fn join_token(session: u64, room: &str, resume: Option<Resume>, now: Instant) -> Vec<u8> {
    let mut frame = [0u8; 256];
    let body = Body::Join {
        version: wire::VERSION,
        nick: "ann",
        room,
        window: 4,
        resume,
    };
    let len = Repr { session, body }.emit(&mut frame).expect("room");
    seal(&frame[..len], now, session as u8)
}

/// Session `session`'s Join to `room` from address `from` at `now` (`resume`: where it was).
fn join(
    relay: &mut TestRelay,
    from: u32,
    room: &str,
    resume: Option<Resume>,
    now: Instant,
) -> Result<(), Dropped> {
    let session = 1_000 + u64::from(from);
    relay.handle_datagram(now, from, &mut join_token(session, room, resume, now))
}

/// The addresses the relay sends to at `now`, in order.
fn answered(relay: &mut TestRelay, now: Instant) -> Vec<u32> {
    let mut buf = [0u8; 1500];
    std::iter::from_fn(|| relay.poll_transmit(now, &mut buf).map(|(to, _)| to)).collect()
}

fn ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

#[test]
fn parked_joins_are_bounded_and_forgotten_after_the_patience() {
    // 64 joins wait for "dev" to open: the parking is full for the patience (3 s) and
    // free again exactly when it ends.
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    for from in 0..64 {
        assert_eq!(
            join(&mut relay, from, "dev", None, ms(0)),
            Ok(()),
            "join {from}"
        );
    }
    assert_eq!(requests(&mut relay).len(), 1, "dev asked for once");
    // The same session again takes its own place, not another.
    assert_eq!(join(&mut relay, 5, "dev", None, ms(10)), Ok(()));
    for at in [1, 1_000, 2_999] {
        assert_eq!(
            join(&mut relay, 64, "dev", None, ms(at)),
            Err(Dropped::Overloaded),
            "full at {at} ms"
        );
        assert_eq!(requests(&mut relay), [], "not asked again at {at} ms");
    }
    assert_eq!(join(&mut relay, 64, "dev", None, ms(3_000)), Ok(()));
    let asked = requests(&mut relay);
    assert!(
        matches!(&asked[..], [ClusterRequest::Open { room, .. }] if room.as_str() == "dev"),
        "asked again when the patience ran out: {asked:?}"
    );
    // Only the joins within the patience go on when the room opens: the one of 3 s and
    // the repeated one of 10 ms.
    assert!(relay.open_room(ms(3_005), "dev", 9, 0, []));
    assert_eq!(answered(&mut relay, ms(3_005)), [5, 64]);
}

#[test]
fn a_parked_join_goes_on_only_when_its_own_room_opens_within_the_patience() {
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    assert_eq!(join(&mut relay, 1, "dev", None, ms(0)), Ok(()));
    assert_eq!(join(&mut relay, 2, "ops", None, ms(2_000)), Ok(()));
    assert_eq!(requests(&mut relay).len(), 2);
    assert!(relay.open_room(ms(2_500), "dev", 9, 0, []));
    assert_eq!(answered(&mut relay, ms(2_500)), [1], "dev's join, not ops'");
    assert_eq!(
        relay.room_position("dev"),
        Some((9, 0)),
        "open, with its member"
    );
    // "ops" is still being opened: another join to it does not ask again.
    assert_eq!(join(&mut relay, 3, "ops", None, ms(2_600)), Ok(()));
    assert!(
        requests(&mut relay)
            .iter()
            .all(|r| !matches!(r, ClusterRequest::Open { .. })),
        "ops asked for once"
    );
    // "ops" opens exactly 3 s after the first join to it: too late for that one (its
    // client has asked again meanwhile), in time for the second.
    assert!(relay.open_room(ms(5_000), "ops", 9, 0, []));
    assert_eq!(answered(&mut relay, ms(5_000)), [3]);
    // A room whose only join gave up waiting: opened for nobody, closed at once.
    // (A join waiting for another room changes nothing.)
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    assert_eq!(join(&mut relay, 1, "ops", None, ms(0)), Ok(()));
    assert_eq!(join(&mut relay, 2, "dev", None, ms(2_000)), Ok(()));
    requests(&mut relay);
    assert!(relay.open_room(ms(3_000), "ops", 9, 0, []));
    assert_eq!(answered(&mut relay, ms(3_000)), []);
    let asked = requests(&mut relay);
    assert!(
        matches!(&asked[..], [ClusterRequest::Close { room }] if room.as_str() == "ops"),
        "{asked:?}"
    );
    assert_eq!(relay.room_position("ops"), None);
}

#[test]
fn a_room_that_finds_no_slot_refuses_its_own_joins_only() {
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    for (from, room) in [(1, "a"), (2, "b")] {
        assert_eq!(join(&mut relay, from, room, None, ms(0)), Ok(()));
        assert!(relay.open_room(ms(0), room, 9, 0, []));
    }
    assert_eq!(answered(&mut relay, ms(0)), [1, 2]);
    requests(&mut relay);
    // Both room slots are taken: "c" cannot open here.
    assert_eq!(join(&mut relay, 3, "c", None, ms(10)), Ok(()));
    assert_eq!(join(&mut relay, 4, "d", None, ms(10)), Ok(()));
    requests(&mut relay);
    assert!(!relay.open_room(ms(20), "c", 9, 0, []));
    assert_eq!(
        answered(&mut relay, ms(20)),
        [3],
        "c's join refused, d's waits"
    );
    let asked = requests(&mut relay);
    assert!(
        matches!(&asked[..], [ClusterRequest::Close { room }] if room.as_str() == "c"),
        "{asked:?}"
    );
}

#[test]
fn a_room_that_fails_to_open_drops_only_its_own_joins() {
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    assert_eq!(join(&mut relay, 1, "dev", None, ms(0)), Ok(()));
    assert_eq!(join(&mut relay, 2, "ops", None, ms(0)), Ok(()));
    requests(&mut relay);
    relay.open_failed("dev");
    assert!(relay.open_room(ms(100), "ops", 9, 0, []));
    assert_eq!(answered(&mut relay, ms(100)), [2]);
    assert!(relay.open_room(ms(100), "dev", 9, 0, []));
    assert_eq!(answered(&mut relay, ms(100)), [], "dev's join was dropped");
}

#[test]
fn a_session_found_goes_on_and_the_others_stay_looked_up() {
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    assert_eq!(join(&mut relay, 1, "dev", None, ms(0)), Ok(()));
    assert!(relay.open_room(ms(0), "dev", 9, 0, []));
    assert_eq!(answered(&mut relay, ms(0)), [1]);
    requests(&mut relay);
    // Two sessions come back to the room's incarnation: each is looked up first.
    let resume = Some(Resume {
        epoch: 9,
        next_seq: 0,
    });
    assert_eq!(join(&mut relay, 2, "dev", resume, ms(10)), Ok(()));
    assert_eq!(join(&mut relay, 3, "dev", resume, ms(10)), Ok(()));
    assert_eq!(answered(&mut relay, ms(10)), [], "both wait");
    let lookups = requests(&mut relay)
        .into_iter()
        .filter(|r| matches!(r, ClusterRequest::Lookup { .. }))
        .count();
    assert_eq!(lookups, 2);
    relay.session_found(ms(20), "dev", 1_002, &[]);
    assert_eq!(answered(&mut relay, ms(20)), [2], "the one found goes on");
    // 1_003's lookup is still under way: its join again does not ask again.
    assert_eq!(join(&mut relay, 3, "dev", resume, ms(30)), Ok(()));
    assert!(
        requests(&mut relay)
            .iter()
            .all(|r| !matches!(r, ClusterRequest::Lookup { .. }))
    );
}

#[test]
fn a_join_is_refused_for_now_when_the_driver_cannot_be_asked() {
    // 16 rooms may be opening at once; a join to a 17th is not parked as asked.
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    for from in 0..16 {
        let room = format!("room{from}");
        assert_eq!(join(&mut relay, from, &room, None, ms(0)), Ok(()), "{room}");
    }
    assert_eq!(
        join(&mut relay, 16, "room16", None, ms(0)),
        Err(Dropped::Overloaded)
    );
    assert_eq!(requests(&mut relay).len(), 16);
    // 32 rejoining sessions may be looked up at once.
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    let resume = Some(Resume {
        epoch: 9,
        next_seq: 4,
    });
    for from in 0..32 {
        assert_eq!(
            join(&mut relay, from, "dev", resume, ms(0)),
            Ok(()),
            "{from}"
        );
    }
    assert_eq!(
        join(&mut relay, 32, "dev", resume, ms(0)),
        Err(Dropped::Overloaded)
    );
}

#[test]
fn a_rejoining_session_is_looked_up_once_per_patience() {
    let (mut relay, _) = cluster_relay_and_client("dev", ms(0));
    let resume = Some(Resume {
        epoch: 9,
        next_seq: 4,
    });
    let lookups = |asked: &[ClusterRequest]| -> Vec<u64> {
        asked
            .iter()
            .filter_map(|r| match r {
                ClusterRequest::Lookup { session, .. } => Some(*session),
                _ => None,
            })
            .collect()
    };
    assert_eq!(join(&mut relay, 1, "dev", resume, ms(0)), Ok(()));
    assert_eq!(lookups(&requests(&mut relay)), [1_001]);
    assert_eq!(join(&mut relay, 1, "dev", resume, ms(1_000)), Ok(()));
    assert_eq!(join(&mut relay, 2, "dev", resume, ms(1_000)), Ok(()));
    assert_eq!(lookups(&requests(&mut relay)), [1_002], "1_001 once");
    assert_eq!(join(&mut relay, 1, "dev", resume, ms(2_999)), Ok(()));
    assert_eq!(requests(&mut relay), []);
    assert_eq!(join(&mut relay, 1, "dev", resume, ms(3_000)), Ok(()));
    assert_eq!(lookups(&requests(&mut relay)), [1_001], "again after 3 s");
}

#[test]
fn a_line_ordered_after_its_sender_left_is_answered_when_the_sender_returns() {
    let now = ms(0);
    let (mut relay, mut client) = joined_to_dev(now, 0);
    client.send("one").expect("room in the outbox");
    let mut buf = [0u8; 1500];
    let len = client.poll_transmit(now, &mut buf).expect("the line");
    let chat = buf[..len].to_vec();
    assert_eq!(
        relay.handle_datagram(now, MEMBER, &mut chat.clone()),
        Ok(())
    );
    let proposal = relay.poll_proposal(&mut buf).expect("proposed");
    let mut token = buf[..proposal.len].to_vec();
    // Another session takes ann's address: ann is replaced, and remembered as departed.
    let mut other = join_token(77, "dev", None, now);
    assert_eq!(relay.handle_datagram(now, MEMBER, &mut other), Ok(()));
    answered(&mut relay, now);
    // Ann's line comes back from the stream while ann is away.
    assert!(relay.handle_ordered(now, "dev", 0, &mut token).is_ok());
    answered(&mut relay, now);
    // Ann returns from another address and sends the line again: its answer is the
    // stream's number, not a second line.
    let later = ms(2_000);
    let mut rejoin = join_token(client.session(), "dev", None, later);
    assert_eq!(relay.handle_datagram(later, 8, &mut rejoin), Ok(()));
    answered(&mut relay, later);
    let _ = relay.handle_datagram(later, 8, &mut chat.clone());
    let mut out = [0u8; 1500];
    let mut receipts = Vec::new();
    while let Some((to, len)) = relay.poll_transmit(later, &mut buf) {
        let opened = key().decrypt(&buf[..len], None, &mut out).expect("token");
        if let Ok(Repr {
            body: Body::Receipt { msg_id, seq, .. },
            ..
        }) = Repr::parse(opened.plaintext)
        {
            receipts.push((to, msg_id, seq));
        }
    }
    assert_eq!(receipts, [(8, proposal.msg_id, 0)]);
    assert_eq!(relay.proposals_waiting(), 0);
}

#[test]
fn a_session_that_said_goodbye_cannot_join_again_nor_make_the_driver_open_a_room() {
    let now = ms(0);
    let (mut relay, mut client) = joined_to_dev(now, 0);
    client.leave(now);
    exchange(&mut relay, &mut client, now);
    assert_eq!(relay.room_position("dev"), None, "closed: nobody left here");
    requests(&mut relay);
    // A Join of the same session made after its goodbye (a replay, or a forgery by
    // someone who holds the key but not the session): nothing asked, nothing answered.
    let later = ms(2_000);
    let mut again = join_token(client.session(), "dev", None, later);
    assert_eq!(
        relay.handle_datagram(later, MEMBER, &mut again),
        Err(Dropped::Duplicate)
    );
    assert_eq!(requests(&mut relay), []);
    assert_eq!(answered(&mut relay, later), []);
}
