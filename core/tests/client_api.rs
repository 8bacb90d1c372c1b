//! The client's public types and calls, at their limits: the lists events carry (names
//! and presence changes in `N` bytes), what `send` says when it does not take a line, the
//! calls a driver makes besides the usual loop (`leave`, `rejoin`, `abort`), and the event
//! queue's places kept for the session's own news. Against a real relay, no simulator.

use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{
    Client, ClientConfig, ClientEvent, ClientState, GoneSlot, HistoryEntry, MemberSlot, NameList,
    PresenceChanges, PresenceEntry, Relay, RelayConfig, RelayStorage, RoomSlot, SendError,
};
use chat_core::time::{Instant, WallClock};
use chat_core::wire::{Body, NAME_MAX, PresenceKind, Repr, Resume};
use rand::SeedableRng;
use rand::rngs::StdRng;

const LONGEST: &str = "a-name-of-thirty-two-bytes-long!";

#[test]
fn a_name_list_holds_exactly_its_bytes() {
    // Each name takes its bytes and a separator.
    let mut names: NameList<8> = NameList::default();
    assert!(names.is_empty());
    assert_eq!(names.len(), 0);
    assert!(names.push("ann"));
    assert!(!names.is_empty());
    assert!(names.push("bob"), "8 of 8 bytes");
    assert!(!names.push("c"), "full");
    assert!(names.iter().eq(["ann", "bob"]));
    assert_eq!(names.len(), 2);
    let mut one: NameList<{ NAME_MAX + 1 }> = NameList::default();
    assert!(one.push(LONGEST));
    assert!(one.iter().eq([LONGEST]));
}

#[test]
fn presence_changes_hold_the_longest_names() {
    let mut changes: PresenceChanges<64> = PresenceChanges::default();
    assert!(changes.is_empty());
    assert!(changes.push(PresenceKind::Replaced, LONGEST));
    assert!(!changes.is_empty());
    assert!(changes.push(PresenceKind::Left, "ann"));
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().eq([
        (PresenceKind::Replaced, LONGEST),
        (PresenceKind::Left, "ann")
    ]));
    // A change takes its name, a tag and a separator.
    let mut exact: PresenceChanges<{ NAME_MAX + 2 }> = PresenceChanges::default();
    assert!(exact.push(PresenceKind::Joined, LONGEST));
    assert!(!exact.push(PresenceKind::Joined, "a"));
}

#[test]
fn send_errors_say_what_to_do() {
    assert_eq!(
        SendError::TooLong { max: 810 }.to_string(),
        "message too long: at most 810 bytes"
    );
    assert_eq!(
        SendError::QueueFull.to_string(),
        "too many messages waiting for the server"
    );
    assert_eq!(SendError::Closed.to_string(), "not connected");
}

const UNIX_MS: u64 = 1_700_000_000_000;
type TestRelay = Relay<'static, usize, StdRng, 1>;
/// A client whose event queue holds `EVENTS` events.
type TestClient<const EVENTS: usize> = Client<StdRng, 1, 256, 16, EVENTS, 16>;

fn key() -> Key {
    Key::from_bytes(&[6; 32])
}

fn leak<T: Clone>(value: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![value; n].into_boxed_slice())
}

fn relay() -> TestRelay {
    let storage = RelayStorage {
        members: leak(MemberSlot::default(), 4),
        gone: leak(GoneSlot::default(), 4),
        rooms: leak(RoomSlot::default(), 2),
        history: leak(HistoryEntry::default(), 64),
        history_bytes: leak(0u8, 64 * 512),
        presence: leak(PresenceEntry::default(), 16),
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

fn client<const EVENTS: usize>(nick: &str, seed: u64) -> TestClient<EVENTS> {
    let now = Instant::from_millis(0);
    Client::new(
        &ClientConfig::new(nick, "dev"),
        KeyRing::new(key()),
        StdRng::seed_from_u64(seed),
        WallClock::synced(now, UNIX_MS),
        now,
    )
    .expect("names")
}

/// Moves datagrams between the relay and the clients (client `i` at address `i`) until
/// none has more; no event is taken.
fn settle<const EVENTS: usize>(
    relay: &mut TestRelay,
    clients: &mut [TestClient<EVENTS>],
    now: Instant,
) {
    let mut buf = [0u8; 1500];
    for _ in 0..1000 {
        let mut moved = false;
        for (i, client) in clients.iter_mut().enumerate() {
            while let Some(len) = client.poll_transmit(now, &mut buf) {
                let _ = relay.handle_datagram(now, i, &mut buf[..len]);
                moved = true;
            }
        }
        while let Some((to, len)) = relay.poll_transmit(now, &mut buf) {
            let _ = clients[to].handle_datagram(now, &mut buf[..len]);
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the exchange does not settle");
}

fn events<const EVENTS: usize>(client: &mut TestClient<EVENTS>) -> Vec<ClientEvent<256>> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

/// Ann and bob joined to "dev", their events taken.
fn joined<const EVENTS: usize>(relay: &mut TestRelay) -> [TestClient<EVENTS>; 2] {
    let mut clients = [client("ann", 1), client("bob", 2)];
    let now = Instant::from_millis(0);
    settle(relay, &mut clients, now);
    for c in &mut clients {
        assert_eq!(c.state(), ClientState::Joined);
        events(c);
    }
    clients
}

fn frame_of(token: &[u8]) -> Body<'static> {
    let mut out = [0u8; 1500];
    let opened = key().decrypt(token, None, &mut out).expect("a token");
    let repr = Repr::parse(opened.plaintext).expect("a frame");
    match repr.body {
        Body::Join { resume, .. } => Body::Join {
            version: 0,
            nick: "",
            room: "",
            window: 0,
            resume,
        },
        Body::Leave => Body::Leave,
        Body::Ping { counter } => Body::Ping { counter },
        Body::Who { counter, start } => Body::Who { counter, start },
        _ => Body::Ping { counter: u64::MAX },
    }
}

#[test]
fn no_line_is_taken_once_leaving() {
    let mut relay = relay();
    let [mut ann, _] = joined::<16>(&mut relay);
    let now = Instant::from_millis(0);
    // A line still unanswered: leaving waits for it (draining) and takes no more.
    ann.send("one").expect("taken");
    ann.leave(now);
    assert_eq!(ann.state(), ClientState::Joined, "draining");
    assert_eq!(ann.send("two"), Err(SendError::Closed));
}

#[test]
fn a_rejoin_asks_the_new_server_for_our_place_at_once() {
    let mut relay = relay();
    let [mut ann, _] = joined::<16>(&mut relay);
    let now = Instant::from_millis(10);
    ann.rejoin(now);
    assert_eq!(ann.state(), ClientState::Joining);
    let mut buf = [0u8; 1500];
    let len = ann.poll_transmit(now, &mut buf).expect("a join at once");
    let place = Resume {
        epoch: ann.room_epoch(),
        next_seq: ann.next_seq(),
    };
    assert_eq!(
        frame_of(&buf[..len]),
        Body::Join {
            version: 0,
            nick: "",
            room: "",
            window: 0,
            resume: Some(place)
        }
    );
}

#[test]
fn abort_reports_what_waits_undelivered_and_says_goodbye_once() {
    let mut relay = relay();
    let [mut ann, _] = joined::<16>(&mut relay);
    let now = Instant::from_millis(10);
    let id = ann.send("one").expect("taken");
    ann.abort(now);
    let mut buf = [0u8; 1500];
    let mut goodbyes = 0;
    // The documented call order: the application's call, then what to send, then the
    // timers when they are due.
    for step in 0..50 {
        let at = Instant::from_millis(10 + step * 100);
        while let Some(len) = ann.poll_transmit(at, &mut buf) {
            if frame_of(&buf[..len]) == Body::Leave {
                goodbyes += 1;
            }
        }
        if ann.poll_timeout().is_some_and(|due| due <= at) {
            ann.handle_timeout(at);
        }
    }
    assert_eq!(goodbyes, 1);
    assert_eq!(ann.state(), ClientState::Closed);
    let seen = events(&mut ann);
    assert!(
        matches!(
            &seen[..],
            [ClientEvent::Undelivered { id: i, text }, ClientEvent::Closed] if *i == id && text.as_str() == "one"
        ),
        "{seen:?}"
    );
}

/// Messages ann has taken while bob said up to 24 lines and ann's application took none
/// (the rest are dropped unacknowledged: the relay sends them again).
fn messages_taken<const EVENTS: usize>() -> u64 {
    let mut relay = relay();
    let mut clients = joined::<EVENTS>(&mut relay);
    let now = Instant::from_millis(10);
    let mut said = 0;
    for _ in 0..4 {
        while said < 24 && clients[1].send(&format!("line {said}")).is_ok() {
            said += 1;
        }
        settle(&mut relay, &mut clients, now);
    }
    assert!(said > 8, "bob said {said}");
    clients[0].next_seq()
}

#[test]
fn the_event_queue_keeps_two_places_for_the_sessions_own_news() {
    // A queue of EVENTS takes EVENTS - 2 messages.
    assert_eq!(messages_taken::<8>(), 6);
    assert_eq!(messages_taken::<3>(), 1);
    // A queue of two (or fewer) still takes messages, one at a time.
    assert_eq!(messages_taken::<2>(), 1);
}

#[test]
fn a_datagram_longer_than_the_largest_is_not_opened() {
    use chat_core::session::{DEFAULT_MAX_DATAGRAM, Dropped};
    let mut ann: TestClient<16> = client("ann", 1);
    let now = Instant::from_millis(0);
    let mut longest = vec![b'A'; DEFAULT_MAX_DATAGRAM];
    assert_eq!(
        ann.handle_datagram(now, &mut longest),
        Err(Dropped::InvalidToken)
    );
    let mut longer = vec![b'A'; DEFAULT_MAX_DATAGRAM + 1];
    assert_eq!(ann.handle_datagram(now, &mut longer), Err(Dropped::TooLong));
}

/// A frame from "the server" to `client` (addressed to its session, or to the room's
/// epoch for a Deliver), sealed at `now` on the client's clock.
fn from_server<const EVENTS: usize>(
    client: &TestClient<EVENTS>,
    body: Body<'_>,
    now: Instant,
) -> Vec<u8> {
    let session = match body {
        Body::Deliver { .. } => client.room_epoch(),
        _ => client.session(),
    };
    let mut frame = [0u8; 512];
    let len = Repr { session, body }.emit(&mut frame).expect("room");
    let mut out = vec![0u8; 1232];
    let unix = client.clock().unix_secs(now).expect("a clock");
    let len = key()
        .encrypt_with_iv(&frame[..len], unix, [9; 16], &mut out)
        .expect("room")
        .len();
    out.truncate(len);
    out
}

/// A Welcome into epoch 9 of "dev", at message `next_seq` and presence change `presence`.
fn welcome(next_seq: u64, presence: u32) -> Body<'static> {
    Body::Welcome {
        epoch: 9,
        next_seq,
        next_msg_id: 1,
        members: 3,
        window: 4,
        presence,
        nick: "ann",
    }
}

/// Ann, welcomed into epoch 9 of "dev" at message 0 and presence change 5, events taken.
fn welcomed(now: Instant) -> TestClient<16> {
    let mut ann: TestClient<16> = client("ann", 1);
    let mut buf = [0u8; 1500];
    assert!(ann.poll_transmit(now, &mut buf).is_some(), "the join");
    let mut w = from_server(&ann, welcome(0, 5), now);
    assert_eq!(ann.handle_datagram(now, &mut w), Ok(()));
    assert_eq!(ann.state(), ClientState::Joined);
    events(&mut ann);
    ann
}

#[test]
fn a_welcome_back_says_how_many_presence_changes_were_missed() {
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    let presence_events = |ann: &mut TestClient<16>| -> Vec<u32> {
        events(ann)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Presence { skipped, .. } => Some(skipped),
                _ => None,
            })
            .collect()
    };
    // Back at the same presence change: nothing to tell.
    ann.rejoin(now);
    let mut w = from_server(&ann, welcome(0, 5), now);
    assert_eq!(ann.handle_datagram(now, &mut w), Ok(()));
    assert_eq!(presence_events(&mut ann), []);
    // Back three changes later: three skipped.
    ann.rejoin(now);
    let mut w = from_server(&ann, welcome(0, 8), now);
    assert_eq!(ann.handle_datagram(now, &mut w), Ok(()));
    assert_eq!(presence_events(&mut ann), [3]);
}

#[test]
fn a_welcome_back_elsewhere_in_the_room_starts_where_the_server_says() {
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    ann.rejoin(now);
    let mut w = from_server(&ann, welcome(10, 5), now);
    assert_eq!(ann.handle_datagram(now, &mut w), Ok(()));
    assert!(
        events(&mut ann)
            .iter()
            .any(|e| matches!(e, ClientEvent::Joined { resumed: true, .. }))
    );
    assert_eq!(ann.next_seq(), 10);
}

#[test]
fn missed_messages_are_told_while_leaving() {
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    ann.leave(now);
    assert_eq!(ann.state(), ClientState::Leaving);
    let mut missed = from_server(&ann, Body::Missed { from: 0, to: 4 }, now);
    assert_eq!(ann.handle_datagram(now, &mut missed), Ok(()));
    assert!(
        events(&mut ann)
            .iter()
            .any(|e| matches!(e, ClientEvent::Missed { from: 0, to: 4 }))
    );
    assert_eq!(ann.next_seq(), 4);
}

#[test]
fn any_fresh_answer_from_the_server_even_a_repeated_one_says_it_is_back() {
    let mut now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    let mut again = from_server(&ann, welcome(0, 5), now);
    while now < Instant::from_millis(16_000) {
        now = Instant::from_millis(now.millis() + 500);
        if ann.poll_timeout().is_some_and(|due| due <= now) {
            ann.handle_timeout(now);
        }
        let mut buf = [0u8; 1500];
        while ann.poll_transmit(now, &mut buf).is_some() {}
    }
    assert!(
        events(&mut ann)
            .iter()
            .any(|e| matches!(e, ClientEvent::ServerLost { .. }))
    );
    // A token for another session: not the server speaking to us.
    let bob: TestClient<16> = client("bob", 2);
    let mut foreign = from_server(&bob, welcome(0, 5), now);
    assert_eq!(
        ann.handle_datagram(now, &mut foreign),
        Err(chat_core::session::Dropped::Unexpected)
    );
    assert!(events(&mut ann).is_empty());
    // The Welcome again (a duplicate, still fresh): the server is back.
    assert_eq!(
        ann.handle_datagram(now, &mut again),
        Err(chat_core::session::Dropped::Duplicate)
    );
    assert!(
        events(&mut ann)
            .iter()
            .any(|e| matches!(e, ClientEvent::ServerBack))
    );
}

#[test]
fn a_pong_counts_once_and_only_for_the_ping_it_answers() {
    use chat_core::session::Dropped;
    use chat_core::time::Duration;
    let mut ann = welcomed(Instant::from_millis(0));
    // The keepalive ping, 5 s after the welcome.
    let at = Instant::from_millis(5_000);
    ann.handle_timeout(at);
    let mut buf = [0u8; 1500];
    let len = ann.poll_transmit(at, &mut buf).expect("the ping");
    let Body::Ping { counter } = frame_of(&buf[..len]) else {
        panic!("not a ping");
    };
    assert_ne!(counter, u64::MAX);
    let pong = |ann: &TestClient<16>, counter, ms| {
        let at = Instant::from_millis(ms);
        from_server(
            ann,
            Body::Pong {
                counter,
                members: 3,
            },
            at,
        )
    };
    let mut wrong = pong(&ann, counter.wrapping_add(1), 5_005);
    assert_eq!(
        ann.handle_datagram(Instant::from_millis(5_005), &mut wrong),
        Err(Dropped::Duplicate)
    );
    assert_eq!(ann.rtt(), None);
    let mut right = pong(&ann, counter, 5_010);
    assert_eq!(
        ann.handle_datagram(Instant::from_millis(5_010), &mut right.clone()),
        Ok(())
    );
    assert_eq!(ann.rtt(), Some(Duration::from_millis(10)));
    assert_eq!(
        ann.handle_datagram(Instant::from_millis(5_020), &mut right),
        Err(Dropped::Duplicate),
        "answered already"
    );
    assert_eq!(ann.rtt(), Some(Duration::from_millis(10)));
}

#[test]
fn the_servers_goodbye_closes_a_leaving_session_at_once() {
    use chat_core::session::Dropped;
    use chat_core::wire::NoticeCode;
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    let bye = |ann: &TestClient<16>| {
        from_server(
            ann,
            Body::Notice {
                code: NoticeCode::BYE,
                text: "bye",
            },
            now,
        )
    };
    // Not leaving: a goodbye is not ours.
    assert_eq!(
        ann.handle_datagram(now, &mut bye(&ann)),
        Err(Dropped::Unexpected)
    );
    assert_eq!(ann.state(), ClientState::Joined);
    assert!(events(&mut ann).is_empty());
    ann.leave(now);
    assert_eq!(ann.handle_datagram(now, &mut bye(&ann)), Ok(()));
    assert_eq!(ann.state(), ClientState::Closed, "before the leave timeout");
    assert!(matches!(&events(&mut ann)[..], [ClientEvent::Closed]));
}

/// What the client sends at `now`, each frame as [`frame_of`] reads it.
fn sent(ann: &mut TestClient<16>, now: Instant) -> Vec<Body<'static>> {
    let mut buf = [0u8; 1500];
    std::iter::from_fn(|| {
        ann.poll_transmit(now, &mut buf)
            .map(|len| frame_of(&buf[..len]))
    })
    .collect()
}

#[test]
fn the_member_list_is_asked_for_page_by_page_until_a_page_is_empty_or_the_last() {
    use chat_core::wire::Names;
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    ann.request_members();
    let asked = sent(&mut ann, now);
    let [Body::Who { counter, start: 0 }] = asked[..] else {
        panic!("{asked:?}");
    };
    let page = |ann: &TestClient<16>, start, names: &[&str], total| {
        let mut storage = [0u8; 256];
        let nicks = Names::pack(names.iter().copied(), &mut storage);
        from_server(
            ann,
            Body::Members {
                total,
                start,
                nicks,
            },
            now,
        )
    };
    // Two of five: the next page is asked for from 2.
    assert_eq!(
        ann.handle_datagram(now, &mut page(&ann, 0, &["ann", "bob"], 5)),
        Ok(())
    );
    assert_eq!(
        sent(&mut ann, now),
        [Body::Who {
            counter: counter + 1,
            start: 2
        }]
    );
    // An empty page (the list shrank meanwhile): no more asking, even short of 5.
    assert_eq!(ann.handle_datagram(now, &mut page(&ann, 2, &[], 5)), Ok(()));
    assert_eq!(sent(&mut ann, now), []);
    let totals: Vec<(u32, u32, usize)> = events(&mut ann)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Members {
                total,
                start,
                names,
            } => Some((total, start, names.len())),
            _ => None,
        })
        .collect();
    assert_eq!(totals, [(5, 0, 2), (5, 2, 0)]);
}

#[test]
fn leaving_waits_for_unanswered_lines_until_the_drain_timeout_exactly() {
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    ann.send("one").expect("taken");
    ann.leave(now);
    // The drain timeout is 5 s.
    ann.handle_timeout(Instant::from_millis(4_999));
    assert_eq!(ann.state(), ClientState::Joined, "still draining");
    ann.handle_timeout(Instant::from_millis(5_000));
    assert_eq!(ann.state(), ClientState::Leaving);
}

#[test]
fn no_answer_is_told_once_after_three_seconds_exactly() {
    let mut ann: TestClient<16> = client("ann", 1);
    let now = Instant::from_millis(0);
    sent(&mut ann, now);
    let no_answer = |ann: &mut TestClient<16>, ms| {
        ann.handle_timeout(Instant::from_millis(ms));
        events(ann)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::NoAnswer { waited } => Some(waited.millis()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(no_answer(&mut ann, 2_999), Vec::<u64>::new());
    assert_eq!(no_answer(&mut ann, 3_000), [3_000]);
    assert_eq!(no_answer(&mut ann, 6_000), Vec::<u64>::new(), "told once");
}

#[test]
fn an_unanswered_goodbye_closes_the_session_after_the_leave_timeout_exactly() {
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    ann.leave(now);
    assert_eq!(sent(&mut ann, now), [Body::Leave, Body::Leave]);
    // The leave timeout is 1 s.
    ann.handle_timeout(Instant::from_millis(999));
    assert_eq!(ann.state(), ClientState::Leaving);
    ann.handle_timeout(Instant::from_millis(1_000));
    assert_eq!(ann.state(), ClientState::Closed);
}

#[test]
fn an_information_notice_is_shown_while_there_is_room_for_it() {
    // PROTOCOL.md "Codes": plain information (code 0, or a code this client does not
    // know) is shown as a Notice event; when the event queue has no room left for data,
    // it is dropped as overloaded (counted by the driver like every dropped datagram).
    use chat_core::wire::NoticeCode;
    let now = Instant::from_millis(0);
    let mut ann = welcomed(now);
    for (k, code) in [NoticeCode::INFO, NoticeCode(9)].into_iter().enumerate() {
        let text = format!("maintenance at {k}");
        let mut notice = from_server(&ann, Body::Notice { code, text: &text }, now);
        assert_eq!(ann.handle_datagram(now, &mut notice), Ok(()));
        assert_eq!(
            events(&mut ann),
            [ClientEvent::Notice {
                text: text.as_str().try_into().unwrap()
            }]
        );
    }
    // Fill the queue's places for data, then one more notice.
    let mut k = 0;
    loop {
        let text = format!("filler {k}");
        let mut notice = from_server(
            &ann,
            Body::Notice {
                code: NoticeCode::INFO,
                text: &text,
            },
            now,
        );
        match ann.handle_datagram(now, &mut notice) {
            Ok(()) => k += 1,
            Err(dropped) => {
                assert_eq!(dropped, chat_core::session::Dropped::Overloaded);
                break;
            }
        }
        assert!(k < 64, "the queue never filled");
    }
    assert_eq!(events(&mut ann).len(), k, "every notice taken was shown");
}

#[test]
fn presence_is_taken_while_joined_or_leaving_only() {
    // A Presence frame is about the room the client is in: taken while it is a member,
    // leaving included (until the server's goodbye it is still in the room); before its
    // Welcome it is not in the room yet, and the frame is dropped as unexpected.
    use chat_core::session::Dropped;
    use chat_core::wire::Changes;
    let now = Instant::from_millis(0);
    let mut scratch = [0u8; 64];
    let changes = Changes::pack([(PresenceKind::Joined, "cat")].into_iter(), &mut scratch);
    let presence = Body::Presence {
        members: 4,
        from: 5,
        changes,
    };
    let mut bob: TestClient<16> = client("bob", 2);
    let mut buf = [0u8; 1500];
    assert!(bob.poll_transmit(now, &mut buf).is_some(), "the join");
    assert_eq!(bob.state(), ClientState::Joining);
    let mut early = from_server(&bob, presence, now);
    assert_eq!(
        bob.handle_datagram(now, &mut early),
        Err(Dropped::Unexpected)
    );
    let mut ann = welcomed(now);
    ann.leave(now);
    assert_eq!(ann.state(), ClientState::Leaving);
    events(&mut ann);
    let mut late = from_server(&ann, presence, now);
    assert_eq!(ann.handle_datagram(now, &mut late), Ok(()));
    assert!(
        events(&mut ann)
            .iter()
            .any(|e| matches!(e, ClientEvent::Presence { members: 4, .. })),
        "shown while leaving"
    );
}
