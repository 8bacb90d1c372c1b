//! Every client event as JSON (`ClientEvent::json_fields`): the one shape every driver
//! writes (`host-chat client --json`, `firmware-sim`, the board image), checked field by
//! field and parsed back with serde_json.

use chat_core::session::{ClientEvent, JsonStr, NameList, PresenceChanges};
use chat_core::time::Duration;
use chat_core::wire::{PresenceKind, RefuseReason};
use serde_json::{Value, json};

type Event = ClientEvent<64>;

fn s<const N: usize>(text: &str) -> heapless::String<N> {
    heapless::String::try_from(text).unwrap()
}

/// The event as one JSON object, parsed.
fn object(event: &Event) -> Value {
    let text = format!("{{{}}}", event.json_fields());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn every_event_is_one_json_object() {
    let mut changes = PresenceChanges::default();
    assert!(changes.push(PresenceKind::Joined, "ann"));
    assert!(changes.push(PresenceKind::TimedOut, "bob"));
    let mut names = NameList::default();
    assert!(names.push("ann") && names.push("bob") && names.push("cy"));
    let cases: Vec<(Event, Value)> = vec![
        (
            ClientEvent::Joined {
                members: 3,
                rejoined: true,
                resumed: false,
                nick: s("ann-2"),
            },
            json!({"event": "joined", "members": 3, "rejoined": true, "resumed": false, "nick": "ann-2"}),
        ),
        (
            ClientEvent::Message {
                seq: 7,
                nick: s("bob"),
                text: s("hi"),
                timestamp: 1_700_000_000,
            },
            json!({"event": "message", "seq": 7, "nick": "bob", "text": "hi", "time": 1_700_000_000u64}),
        ),
        (
            ClientEvent::Delivered {
                id: 4,
                seq: 9,
                recipients: 2,
            },
            json!({"event": "delivered", "id": 4, "seq": 9, "recipients": 2}),
        ),
        (
            ClientEvent::Refused {
                id: 5,
                reason: RefuseReason::TOO_LONG,
            },
            json!({"event": "refused", "id": 5, "reason": "too long"}),
        ),
        (
            ClientEvent::Undelivered {
                id: 6,
                text: s("lost"),
            },
            json!({"event": "undelivered", "id": 6, "text": "lost"}),
        ),
        (
            ClientEvent::Presence {
                members: 4,
                skipped: 2,
                changes,
            },
            json!({"event": "presence", "members": 4, "skipped": 2, "changes": [
                {"nick": "ann", "change": "joined"},
                {"nick": "bob", "change": "timed out"},
            ]}),
        ),
        (
            ClientEvent::Presence {
                members: 1,
                skipped: 0,
                changes: PresenceChanges::default(),
            },
            json!({"event": "presence", "members": 1, "skipped": 0, "changes": []}),
        ),
        (
            ClientEvent::Notice {
                text: s("server full"),
            },
            json!({"event": "server_notice", "text": "server full"}),
        ),
        (
            ClientEvent::Missed { from: 3, to: 35 },
            json!({"event": "missed", "from": 3, "to": 35}),
        ),
        (
            ClientEvent::Members {
                total: 5,
                start: 2,
                names,
            },
            json!({"event": "members", "total": 5, "start": 2, "names": ["ann", "bob", "cy"]}),
        ),
        (
            ClientEvent::Members {
                total: 0,
                start: 0,
                names: NameList::default(),
            },
            json!({"event": "members", "total": 0, "start": 0, "names": []}),
        ),
        (
            ClientEvent::NoAnswer {
                waited: Duration::from_millis(3001),
            },
            json!({"event": "no_answer", "waited_ms": 3001}),
        ),
        (
            ClientEvent::ServerLost {
                silent_for: Duration::from_secs(15),
            },
            json!({"event": "server_lost", "silent_ms": 15000}),
        ),
        (ClientEvent::ServerBack, json!({"event": "server_back"})),
        (ClientEvent::Rejoining, json!({"event": "rejoining"})),
        (
            ClientEvent::ClockSynced {
                unix_secs: 1_700_000_001,
            },
            json!({"event": "clock_synced", "unix": 1_700_000_001u64}),
        ),
        (ClientEvent::Closed, json!({"event": "closed"})),
    ];
    for (event, expected) in cases {
        assert_eq!(object(&event), expected, "{event:?}");
    }
}

#[test]
fn strings_are_escaped_as_json_wants() {
    for text in [
        "plain",
        "a \"quote\" and a \\ backslash",
        "line\nbreak, tab\t, bell\u{7}, escape\u{1b}, nul\u{0}",
        "\u{1f}\u{20}\u{7f} é 日本 🎉",
        "",
    ] {
        let literal = JsonStr(text).to_string();
        assert_eq!(
            serde_json::from_str::<String>(&literal).unwrap(),
            text,
            "{literal}"
        );
        assert!(
            !literal.chars().any(|c| (c as u32) < 0x20),
            "no raw control character: {literal:?}"
        );
    }
    assert_eq!(JsonStr("\u{1}\n").to_string(), r#""\u0001\n""#);
    assert_eq!(
        JsonStr("\u{7f}é").to_string(),
        "\"\u{7f}é\"",
        "only below 0x20"
    );
}
