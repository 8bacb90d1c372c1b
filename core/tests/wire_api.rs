//! The frame format's public API against PROTOCOL.md's own figures and examples: the
//! header view, the error texts, the line limit, the lists of names and changes.

use chat_core::session::{DEFAULT_MAX_DATAGRAM, max_text_len};
use chat_core::wire::{
    Body, Changes, DELIVER_OVERHEAD, Error, Frame, HEADER_LEN, Names, PresenceKind, RefuseReason,
    Repr,
};

/// PROTOCOL.md "Frame layout", the Chat example: session 0x0102030405060708, msg_id 1,
/// text "hi".
const CHAT: [u8; 18] = [
    0xC1, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0, 2, b'h', b'i',
];

#[test]
fn the_header_view_reads_the_protocol_example() {
    let frame = Frame::new_checked(&CHAT[..]).unwrap();
    assert_eq!(frame.kind(), 0x03);
    assert_eq!(frame.session(), 0x0102_0304_0506_0708);
    assert_eq!(frame.body(), &CHAT[HEADER_LEN..]);
    assert_eq!(frame.into_inner(), &CHAT[..]);
    // A bare header has an empty body.
    let header = Frame::new_checked(&CHAT[..HEADER_LEN]).unwrap();
    assert_eq!(header.body(), &[] as &[u8]);
    assert_eq!(
        Frame::new_checked(&CHAT[..HEADER_LEN - 1]),
        Err(Error::Truncated)
    );
    assert_eq!(Frame::new_checked(&b"hi"[..]), Err(Error::NotAFrame));
    assert_eq!(
        Repr::parse(&CHAT).map(|r| r.body),
        Ok(Body::Chat {
            msg_id: 1,
            text: "hi"
        })
    );
    let ack: [u8; 30] = [
        0xC1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0,
        0, 2,
    ];
    let repr = Repr {
        session: 0x0102_0304_0506_0708,
        body: Body::Ack {
            next_seq: 4,
            selective: 0b10,
            presence: 2,
        },
    };
    let mut out = [0u8; 64];
    assert_eq!(repr.emit(&mut out), Ok(ack.len()));
    assert_eq!(out[..ack.len()], ack, "Ack of everything before 4, with 6");
}

#[test]
fn errors_say_what_is_wrong() {
    let texts = [
        (Error::Truncated, "frame truncated"),
        (Error::NotAFrame, "not a chat frame"),
        (Error::UnknownKind(0x7F), "unknown frame kind 0x7f"),
        (Error::Malformed, "malformed frame field"),
        (Error::TrailingBytes, "trailing bytes after frame"),
        (Error::BufferTooSmall, "buffer too small for frame"),
    ];
    for (error, text) in texts {
        assert_eq!(error.to_string(), text);
    }
}

#[test]
fn a_line_leaves_room_for_the_deliver_that_relays_it() {
    // PROTOCOL.md "Datagrams": 53 bytes of Deliver overhead with a 32-byte nickname; at
    // most 810 bytes of text in the default 1232-byte datagram.
    assert_eq!(DELIVER_OVERHEAD, 53);
    assert_eq!(max_text_len(DEFAULT_MAX_DATAGRAM), 810);
    let longest = "x".repeat(810);
    let deliver = Repr {
        session: 1,
        body: Body::Deliver {
            seq: u64::MAX,
            nick: "a-name-of-thirty-two-bytes-long!",
            text: &longest,
        },
    };
    assert_eq!(
        chat_core::fernet::max_message_len(DEFAULT_MAX_DATAGRAM),
        Some(deliver.buffer_len()),
        "the longest line's Deliver is the longest message a datagram carries"
    );
    assert_eq!(max_text_len(100), 0, "a datagram too small for any line");
}

#[test]
fn refusal_reasons_and_presence_changes_read_as_words() {
    assert_eq!(RefuseReason::TOO_LONG.as_str(), "too long");
    assert_eq!(
        RefuseReason(9).as_str(),
        "refused",
        "a reason this version does not know"
    );
    for (kind, byte, text) in [
        (PresenceKind::Joined, 1, "joined"),
        (PresenceKind::Left, 2, "left"),
        (PresenceKind::TimedOut, 3, "timed out"),
        (PresenceKind::Replaced, 4, "reconnected"),
    ] {
        assert_eq!(kind.to_u8(), byte);
        assert_eq!(PresenceKind::from_u8(byte), Some(kind));
        assert_eq!(kind.as_str(), text);
    }
    assert_eq!(PresenceKind::from_u8(0), None);
    assert_eq!(PresenceKind::from_u8(5), None);
}

#[test]
fn lists_count_what_they_hold_and_skip_invalid_names() {
    let mut storage = [0u8; 64];
    let empty = Names::pack([].into_iter(), &mut storage);
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    assert_eq!(empty.iter().count(), 0);
    let mut storage = [0u8; 64];
    let names = Names::pack(["ann", " bad", "bob"].into_iter(), &mut storage);
    assert!(!names.is_empty());
    assert_eq!(names.len(), 2);
    assert!(names.iter().eq(["ann", "bob"]));
    let mut storage = [0u8; 64];
    let changes = Changes::pack(
        [(PresenceKind::Left, "ann"), (PresenceKind::Joined, "")].into_iter(),
        &mut storage,
    );
    assert_eq!(changes.len(), 1);
    assert!(!changes.is_empty());
    assert!(changes.iter().eq([(PresenceKind::Left, "ann")]));
    let mut storage = [0u8; 8];
    let none = Changes::pack(
        [(PresenceKind::Left, "a-long-name")].into_iter(),
        &mut storage,
    );
    assert!(none.is_empty(), "does not fit");
    assert_eq!(none.len(), 0);
    // At most 255 entries, the count's byte.
    let many: Vec<String> = (0..300).map(|i| format!("n{i}")).collect();
    let mut storage = vec![0u8; 4096];
    let names = Names::pack(many.iter().map(String::as_str), &mut storage);
    assert_eq!(names.len(), 255);
    assert_eq!(names.iter().last(), Some("n254"));
}
