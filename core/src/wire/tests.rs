use super::*;

fn round_trip(repr: Repr<'_>) {
    let mut buf = [0u8; 256];
    let len = repr.emit(&mut buf).unwrap();
    assert_eq!(len, repr.buffer_len(), "{repr:?}");
    assert_eq!(Repr::parse(&buf[..len]), Ok(repr));
    assert_eq!(Plaintext::parse(&buf[..len]), Ok(Plaintext::Frame(repr)));
    for cut in 0..len {
        assert!(Repr::parse(&buf[..cut]).is_err(), "{repr:?} cut at {cut}");
    }
    let mut longer = [0u8; 257];
    longer[..len].copy_from_slice(&buf[..len]);
    assert_eq!(Repr::parse(&longer[..len + 1]), Err(Error::TrailingBytes));
    for short in 0..len {
        assert_eq!(repr.emit(&mut buf[..short]), Err(Error::BufferTooSmall));
    }
}

#[test]
fn every_kind_round_trips() {
    let mut storage = [0u8; 64];
    let nicks = Names::pack(["ann", "bob", "über"].into_iter(), &mut storage);
    assert_eq!(nicks.len(), 3);
    assert_eq!(
        nicks.iter().collect::<heapless::Vec<_, 4>>(),
        ["ann", "bob", "über"]
    );
    let mut storage2 = [0u8; 64];
    let changes = Changes::pack(
        [
            (PresenceKind::Joined, "ann"),
            (PresenceKind::TimedOut, "bob"),
        ]
        .into_iter(),
        &mut storage2,
    );
    assert_eq!(
        changes.iter().collect::<heapless::Vec<_, 4>>(),
        [
            (PresenceKind::Joined, "ann"),
            (PresenceKind::TimedOut, "bob")
        ]
    );
    let session = 0x0102_0304_0506_0708;
    for body in [
        Body::JoinV1 {
            nick: "ann",
            room: "lobby",
        },
        Body::Join {
            version: VERSION,
            nick: "ann",
            room: "lobby",
            window: 16,
            resume: None,
        },
        Body::Join {
            version: VERSION,
            nick: "a-name-of-thirty-two-bytes-long!",
            room: "a-room-of-thirty-two-bytes-long!",
            window: 1,
            resume: Some(Resume {
                epoch: 9,
                next_seq: 41,
            }),
        },
        Body::Welcome {
            epoch: 3,
            next_seq: 7,
            next_msg_id: 1,
            members: 3,
            window: 16,
            presence: 12,
            nick: "ann-2",
        },
        Body::Chat {
            msg_id: 1,
            text: "héllo",
        },
        Body::Chat {
            msg_id: 2,
            text: "",
        },
        Body::Receipt {
            msg_id: 1,
            seq: 7,
            recipients: 2,
        },
        Body::Refused {
            msg_id: 3,
            reason: RefuseReason::TOO_LONG,
        },
        Body::Busy {
            msg_id: 4,
            retry_after_ms: 250,
        },
        Body::Deliver {
            seq: 7,
            nick: "ann",
            text: "héllo",
        },
        Body::Ack {
            next_seq: 8,
            selective: 0b101,
            presence: 3,
        },
        Body::Ping { counter: 9 },
        Body::Pong {
            counter: 9,
            members: 2,
        },
        Body::Leave,
        Body::Notice {
            code: NoticeCode::REFUSED,
            text: "server full",
        },
        Body::Missed { from: 3, to: 9 },
        Body::Who {
            counter: 1,
            start: 0,
        },
        Body::Members {
            total: 5,
            start: 2,
            nicks,
        },
        Body::Presence {
            members: 7,
            from: 40,
            changes,
        },
    ] {
        round_trip(Repr { session, body });
    }
}

#[test]
fn joins_are_padded_to_outweigh_any_answer() {
    let mut buf = [0u8; 128];
    let join = Repr {
        session: 1,
        body: Body::Join {
            version: VERSION,
            nick: "a",
            room: "b",
            window: 1,
            resume: None,
        },
    };
    assert_eq!(join.emit(&mut buf), Ok(JOIN_MIN_LEN));
    let welcome = Repr {
        session: 1,
        body: Body::Welcome {
            epoch: 1,
            next_seq: 1,
            next_msg_id: 1,
            members: 1,
            window: 1,
            presence: 1,
            nick: "a-name-of-thirty-two-bytes-long!",
        },
    };
    assert_eq!(welcome.buffer_len(), 72);
    assert!(welcome.buffer_len() <= JOIN_MIN_LEN);
    // Padding must be zeros, and exactly as long as needed.
    let len = join.emit(&mut buf).unwrap();
    buf[len - 1] = 1;
    assert_eq!(Repr::parse(&buf[..len]), Err(Error::Malformed));
    buf[len - 1] = 0;
    // Header, version, "a", "b", window, resume: the padding length is at 32.
    let padding_at = HEADER_LEN + 1 + 2 + 2 + 1 + 16;
    assert_eq!(usize::from(buf[padding_at]), len - padding_at - 1);
    buf[padding_at] += 1;
    buf[len] = 0;
    assert_eq!(
        Repr::parse(&buf[..len + 1]),
        Err(Error::Malformed),
        "more padding than needed"
    );
}

#[test]
fn frames_and_legacy_text_are_told_apart() {
    assert_eq!(Plaintext::parse(b"hello"), Ok(Plaintext::Legacy("hello")));
    assert_eq!(Plaintext::parse(b""), Ok(Plaintext::Legacy("")));
    assert_eq!(Plaintext::parse(&[0xFF, 1]), Err(Error::NotAFrame));
    assert_eq!(Plaintext::parse(&[MAGIC]), Err(Error::Truncated));
    assert!(core::str::from_utf8(&[MAGIC, b'a']).is_err());
    let mut frame = [MAGIC, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(Repr::parse(&frame), Err(Error::UnknownKind(0x7F)));
    frame[1] = kind::LEAVE;
    assert_eq!(
        Frame::new_checked(&frame[..]).map(|f| f.kind()),
        Ok(kind::LEAVE)
    );
}

#[test]
fn names_follow_the_unicode_rules() {
    for good in [
        "ann",
        "Ann Smith",
        "über",
        "日本語",
        "x",
        "a-name-of-thirty-two-bytes-long!",
    ] {
        assert!(is_valid_name(good), "{good:?}");
    }
    for bad in [
        "",
        " ",
        " ann",
        "ann ",
        "a\nb",
        "a\tb",
        "a\u{7f}",
        "a\u{85}b",    // NEL: Cc
        "a\u{a0}b",    // NO-BREAK SPACE: White_Space
        "a\u{3000}b",  // IDEOGRAPHIC SPACE: White_Space
        "a\u{200b}b",  // ZERO WIDTH SPACE: Cf
        "\u{feff}ann", // BOM: Cf
        "a\u{2028}b",  // LINE SEPARATOR: Zl
        "a\u{2029}b",  // PARAGRAPH SEPARATOR: Zp
        "a\u{202e}b",  // RIGHT-TO-LEFT OVERRIDE: Cf
        "a\u{e0041}",  // TAG LATIN CAPITAL A: Cf
        "\u{ad}",      // SOFT HYPHEN: Cf
        "a-name-of-thirty-three-bytes-long",
    ] {
        assert!(!is_valid_name(bad), "{bad:?}");
    }
}

#[test]
fn a_bad_name_says_which_rule_it_breaks() {
    assert_eq!(check_name("ann"), Ok(()));
    assert_eq!(check_name("a b"), Ok(()));
    assert_eq!(check_name(""), Err(NameError::Empty));
    let long = "a-name-of-thirty-three-bytes-long";
    assert_eq!(check_name(long), Err(NameError::TooLong(33)));
    assert_eq!(check_name(&long[..32]), Ok(()));
    assert_eq!(check_name(" "), Err(NameError::SpaceAtEnd));
    assert_eq!(check_name(" ann"), Err(NameError::SpaceAtEnd));
    assert_eq!(check_name("ann "), Err(NameError::SpaceAtEnd));
    assert_eq!(check_name("a\tb"), Err(NameError::Forbidden('\t')));
    assert_eq!(check_name("a\u{a0}b"), Err(NameError::Forbidden('\u{a0}')));
    assert_eq!(
        check_name("a\u{200b}b"),
        Err(NameError::Forbidden('\u{200b}'))
    );
    let says = |e: NameError| {
        let mut buf = heapless::String::<128>::new();
        fmt::write(&mut buf, format_args!("{e}")).unwrap();
        buf
    };
    assert_eq!(says(NameError::Empty), "is empty");
    assert_eq!(
        says(NameError::TooLong(33)),
        "is 33 bytes long, more than 32"
    );
    assert_eq!(says(NameError::SpaceAtEnd), "starts or ends with a space");
    assert!(says(NameError::Forbidden('\u{200b}')).starts_with("contains U+200B, "));
    assert!(says(NameError::Forbidden('\t')).starts_with("contains U+0009, "));
}

#[test]
fn bad_names_and_text_are_refused() {
    let mut buf = [0u8; 128];
    let long = "x".repeat(NAME_MAX + 1);
    for nick in ["", " ", "a\nb", long.as_str()] {
        let repr = Repr {
            session: 1,
            body: Body::JoinV1 { nick, room: "r" },
        };
        assert_eq!(repr.emit(&mut buf), Err(Error::Malformed), "{nick:?}");
    }
    // Invalid UTF-8 in a chat line.
    let mut frame = [
        MAGIC,
        kind::CHAT,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        1,
        0,
        1,
        0xFF,
    ];
    assert_eq!(Repr::parse(&frame), Err(Error::Malformed));
    frame[16] = b'a';
    assert!(Repr::parse(&frame).is_ok());
    // An unknown presence kind.
    let mut storage = [0u8; 16];
    let changes = Changes::pack([(PresenceKind::Left, "ann")].into_iter(), &mut storage);
    let mut buf = [0u8; 64];
    let len = Repr {
        session: 1,
        body: Body::Presence {
            members: 1,
            from: 0,
            changes,
        },
    }
    .emit(&mut buf)
    .unwrap();
    buf[HEADER_LEN + 9] = 9;
    assert_eq!(Repr::parse(&buf[..len]), Err(Error::Malformed));
}

#[test]
fn packing_stops_at_the_first_name_that_does_not_fit() {
    let mut storage = [0u8; 9];
    let names = Names::pack(["ann", "bob", "carol"].into_iter(), &mut storage);
    assert_eq!(
        names.iter().collect::<heapless::Vec<_, 4>>(),
        ["ann", "bob"]
    );
}
