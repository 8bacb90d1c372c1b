//! The small parts of the Fernet API that the round trips do not reach: what each error
//! says, the clock skew a TTL check allows, and a key ring's bookkeeping.

use chat_core::fernet::{Error, InvalidKey, Key, KeyRing, MAX_CLOCK_SKEW, TtlCheck, token_len};

#[test]
fn errors_say_what_happened_and_a_crypto_failure_nothing_more() {
    assert_eq!(Error::InvalidToken.to_string(), "invalid token");
    assert_eq!(Error::Expired.to_string(), "token expired");
    assert_eq!(
        Error::FromTheFuture.to_string(),
        "token timestamp is in the future (check the clocks)"
    );
    assert_eq!(Error::BufferTooSmall.to_string(), "buffer too small");
    assert_eq!(
        InvalidKey.to_string(),
        "invalid Fernet key: expected 44 characters of base64url (32 bytes)"
    );
    // Usable as `dyn Error` (what `?` into anyhow needs).
    let boxed: Box<dyn std::error::Error> = Box::new(Error::InvalidToken);
    assert_eq!(boxed.to_string(), "invalid token");
}

#[test]
fn the_clock_skew_is_the_default_minute_or_what_is_asked() {
    let now = 1_000_000;
    let check = TtlCheck::new(60, now).unwrap();
    assert_eq!(check.skew, MAX_CLOCK_SKEW);
    assert_eq!(check.judge(now + MAX_CLOCK_SKEW), Ok(()));
    assert_eq!(
        check.judge(now + MAX_CLOCK_SKEW + 1),
        Err(Error::FromTheFuture)
    );
    for skew in [0, 5, 3600] {
        let check = check.with_skew(skew);
        assert_eq!((check.ttl, check.now, check.skew), (60, now, skew));
        assert_eq!(check.judge(now + skew), Ok(()), "skew {skew}");
        assert_eq!(check.judge(now + skew + 1), Err(Error::FromTheFuture));
        // The skew changes nothing about expiry.
        assert_eq!(check.judge(now - 60), Ok(()));
        assert_eq!(check.judge(now - 61), Err(Error::Expired));
    }
    // And it reaches decrypt: a token 10 s ahead is refused with no skew.
    let key = Key::from_bytes(&[4; 32]);
    let mut out = [0u8; token_len(1)];
    let token = key
        .encrypt_with_iv(b"t", now + 10, [0; 16], &mut out)
        .unwrap();
    let mut plain = [0u8; 16];
    assert!(
        key.decrypt(token.as_bytes(), Some(check), &mut plain)
            .is_ok()
    );
    assert_eq!(
        key.decrypt(token.as_bytes(), Some(check.with_skew(0)), &mut plain),
        Err(Error::FromTheFuture)
    );
}

#[test]
fn a_key_ring_counts_its_keys_and_makes_tokens_with_the_primary() {
    let primary = Key::from_bytes(&[1; 32]);
    let older = Key::from_bytes(&[2; 32]);
    let mut ring = KeyRing::<1>::new(primary.clone());
    assert_eq!((ring.len(), ring.is_empty()), (1, false));
    ring.push(older.clone()).unwrap();
    assert_eq!((ring.len(), ring.is_empty()), (2, false));
    let mut text = [0u8; 44];
    let mut again = [0u8; 44];
    assert_eq!(
        ring.primary().to_base64(&mut text),
        primary.to_base64(&mut again)
    );
    let listed: Vec<String> = ring
        .keys()
        .map(|k| k.to_base64(&mut [0u8; 44]).to_owned())
        .collect();
    assert_eq!(
        listed,
        [
            primary.to_base64(&mut text).to_owned(),
            older.to_base64(&mut again).to_owned()
        ]
    );

    // Tokens the ring makes, by either path, open with the primary alone.
    let mut rng = rand::rng();
    let mut out = [0u8; token_len(5)];
    let token = ring.encrypt(b"hello", 77, &mut rng, &mut out).unwrap();
    let mut plain = [0u8; 16];
    let opened = primary.decrypt(token.as_bytes(), None, &mut plain).unwrap();
    assert_eq!((opened.plaintext, opened.timestamp), (&b"hello"[..], 77));
    let mut buf = [0u8; token_len(5)];
    buf[..5].copy_from_slice(b"howdy");
    let token = ring.encrypt_in_place(&mut buf, 5, 78, &mut rng).unwrap();
    let opened = primary.decrypt(token.as_bytes(), None, &mut plain).unwrap();
    assert_eq!((opened.plaintext, opened.timestamp), (&b"howdy"[..], 78));

    // Rotation with the ring's RNG: the older key's token becomes a primary one.
    let mut old = [0u8; token_len(3)];
    let old = older.encrypt(b"old", 79, &mut rng, &mut old).unwrap();
    let mut out = [0u8; token_len(3)];
    let rotated = ring.rotate(old.as_bytes(), &mut rng, &mut out).unwrap();
    assert_eq!(rotated.key_index, 1);
    let opened = primary
        .decrypt(rotated.token.as_bytes(), None, &mut plain)
        .unwrap();
    assert_eq!((opened.plaintext, opened.timestamp), (&b"old"[..], 79));
}

#[test]
fn random_keys_and_ivs_differ() {
    let mut rng = rand::rng();
    let (a, b) = (Key::generate(&mut rng), Key::generate(&mut rng));
    let (mut ta, mut tb) = ([0u8; 44], [0u8; 44]);
    assert_ne!(a.to_base64(&mut ta), b.to_base64(&mut tb));
    let (mut x, mut y) = ([0u8; token_len(1)], [0u8; token_len(1)]);
    let x = a.encrypt(b"x", 1, &mut rng, &mut x).unwrap();
    let y = a.encrypt(b"x", 1, &mut rng, &mut y).unwrap();
    assert_ne!(x, y, "two tokens of one message under one key share an IV");
}

#[test]
fn encrypting_in_place_refuses_a_short_buffer_without_panicking() {
    let key = Key::from_bytes(&[6; 32]);
    let mut rng = rand::rng();
    for message_len in [0, 1, 15, 16, 40, 200] {
        let need = token_len(message_len);
        // One byte short, just the message (no room to move it to where the token's
        // bytes go), and a "message" longer than the whole buffer.
        for (buf_len, len) in [
            (need - 1, message_len),
            (message_len, message_len),
            (message_len, message_len + 1),
        ] {
            let mut buf = vec![b'm'; buf_len];
            assert_eq!(
                key.encrypt_in_place(&mut buf, len, 1, &mut rng),
                Err(Error::BufferTooSmall),
                "{len} bytes in {buf_len}"
            );
        }
        let mut buf = vec![b'm'; need];
        let token = key
            .encrypt_in_place(&mut buf, message_len, 1, &mut rng)
            .unwrap();
        assert_eq!(token.len(), need);
    }
}

#[test]
fn rotation_writes_into_any_buffer_that_is_large_enough() {
    let (primary, older) = (Key::from_bytes(&[7; 32]), Key::from_bytes(&[8; 32]));
    let mut ring = KeyRing::<1>::new(primary.clone());
    ring.push(older.clone()).unwrap();
    for message_len in [0, 15, 16, 100] {
        let message = vec![b'r'; message_len];
        let mut old = vec![0u8; token_len(message_len)];
        let old = older
            .encrypt_with_iv(&message, 5, [1; 16], &mut old)
            .unwrap();
        let mut want = vec![0u8; token_len(message_len)];
        let want = primary
            .encrypt_with_iv(&message, 5, [2; 16], &mut want)
            .unwrap();
        for extra in [0, 1, 16, 300] {
            let mut out = vec![0u8; old.len() + extra];
            let rotated = ring
                .rotate_with_iv(old.as_bytes(), [2; 16], &mut out)
                .unwrap();
            assert_eq!((rotated.token, rotated.key_index), (want, 1), "{extra}");
        }
        for short in [1, 4, 40] {
            let mut out = vec![0u8; old.len().saturating_sub(short)];
            assert_eq!(
                ring.rotate_with_iv(old.as_bytes(), [2; 16], &mut out),
                Err(Error::BufferTooSmall),
                "{short} short"
            );
        }
    }
}
