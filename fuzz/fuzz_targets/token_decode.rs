//! Arbitrary bytes as a Fernet token, opened with the spec's key through every entry
//! point: `Key::decrypt` (with and without a TTL), `Key::decrypt_in_place`,
//! `Key::timestamp` and `KeyRing::decrypt`. None may panic, and they must agree.
//!
//! Input: the whole input is the token for the no-TTL checks. For the TTL checks the
//! input is `token [ '\n' control ]`: up to 8 bytes of TTL then up to 8 bytes of signed
//! offset of "now" from the token's timestamp (little-endian, zero-filled), so the fuzzer
//! can vary the clock of a valid token without breaking its MAC. Seeds are plain token
//! texts (`fuzz/seeds/token_decode/`).
#![no_main]

use chat_core::fernet::{
    Decrypted, Error, Key, KeyRing, MAX_CLOCK_SKEW, TtlCheck, plaintext_buf_len,
};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// The key of the Fernet spec's vectors, so the seeds are valid tokens.
const SPEC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

struct Keys {
    key: Key,
    /// Another primary with the spec key as its older key, so a valid token opens with
    /// key index 1.
    ring: KeyRing<2>,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let key = Key::from_base64(SPEC_KEY).expect("spec key");
    let mut ring = KeyRing::new(Key::from_bytes(&[0x5a; 32]));
    ring.push(key.clone()).expect("ring has room");
    Keys { key, ring }
});

/// An opened token, owned, so results of different calls can be compared.
type Opened = Result<(Vec<u8>, u64), Error>;

fn owned(result: Result<Decrypted<'_>, Error>) -> Opened {
    result.map(|d| (d.plaintext.to_vec(), d.timestamp))
}

fn decrypt(key: &Key, token: &[u8], ttl: Option<TtlCheck>) -> Opened {
    let mut out = vec![0u8; plaintext_buf_len(token.len())];
    let opened = owned(key.decrypt(token, ttl, &mut out));
    // The documented buffer size must always be enough: too small is never the answer.
    assert_ne!(
        opened,
        Err(Error::BufferTooSmall),
        "plaintext_buf_len too small"
    );
    opened
}

fn decrypt_in_place(key: &Key, token: &[u8], ttl: Option<TtlCheck>) -> Opened {
    let mut buf = token.to_vec();
    owned(key.decrypt_in_place(&mut buf, ttl))
}

/// The spec's TTL rule, written independently of core (exact, in i128).
fn time_verdict(timestamp: u64, check: TtlCheck) -> Result<(), Error> {
    let (ts, ttl, now) = (
        i128::from(timestamp),
        i128::from(check.ttl),
        i128::from(check.now),
    );
    if now - ts > ttl {
        Err(Error::Expired)
    } else if ts - now > i128::from(MAX_CLOCK_SKEW) {
        Err(Error::FromTheFuture)
    } else {
        Ok(())
    }
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(word)
}

fuzz_target!(|data: &[u8]| {
    let Keys { key, ring } = &*KEYS;

    // --- The whole input as a token, no TTL: every entry point must agree.
    let plain = decrypt(key, data, None);
    assert_eq!(
        decrypt_in_place(key, data, None),
        plain,
        "decrypt_in_place disagrees"
    );
    match (&plain, key.timestamp(data)) {
        (Ok((_, ts)), stamp) => assert_eq!(stamp, Ok(*ts), "timestamp disagrees"),
        // `timestamp` checks only the MAC, so it may accept a token whose padding is bad;
        // it can never reject one that opens, and rejects with InvalidToken only.
        (Err(e), Ok(_)) => assert_eq!(*e, Error::InvalidToken),
        (Err(_), Err(e)) => assert_eq!(e, Error::InvalidToken),
    }
    if let Err(e) = &plain {
        assert_eq!(*e, Error::InvalidToken, "only InvalidToken without a TTL");
    }
    let mut out = vec![0u8; plaintext_buf_len(data.len())];
    let via_ring = ring
        .decrypt(data, None, &mut out)
        .map(|(d, index)| (d.plaintext.to_vec(), d.timestamp, index));
    match (&plain, via_ring) {
        (Ok((p, ts)), Ok((rp, rts, index))) => {
            assert_eq!((p, *ts, 1), (&rp, rts, index), "KeyRing disagrees")
        }
        (Err(e), Err(re)) => assert_eq!(*e, re, "KeyRing disagrees"),
        (a, b) => panic!("KeyRing disagrees: key {a:?}, ring {b:?}"),
    }
    // A larger buffer changes nothing; a smaller one than documented is refused.
    let mut roomy = vec![0u8; plaintext_buf_len(data.len()) + 17];
    assert_eq!(owned(key.decrypt(data, None, &mut roomy)), plain);
    if plain.is_ok() {
        let mut short = vec![0u8; plaintext_buf_len(data.len()) - 1];
        assert_eq!(
            owned(key.decrypt(data, None, &mut short)),
            Err(Error::BufferTooSmall)
        );
    }

    // --- With a TTL, judged at a clock the input picks.
    let (token, control) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let base = if token.len() == data.len() {
        plain.clone()
    } else {
        decrypt(key, token, None)
    };
    let ttl = le_u64(control.get(..8).unwrap_or(control));
    let offset = le_u64(control.get(8..).unwrap_or(&[])) as i64;
    let anchor = base.as_ref().map_or(0, |(_, ts)| *ts);
    let check = TtlCheck::new(ttl, anchor.saturating_add_signed(offset)).expect("TtlCheck");

    let timed = decrypt(key, token, Some(check));
    assert_eq!(
        decrypt_in_place(key, token, Some(check)),
        timed,
        "decrypt_in_place disagrees with a TTL"
    );
    match &base {
        Ok((p, ts)) => match time_verdict(*ts, check) {
            Ok(()) => assert_eq!(timed, Ok((p.clone(), *ts)), "valid token, fresh, refused"),
            Err(e) => assert_eq!(timed, Err(e), "wrong time verdict"),
        },
        // A TTL never makes a bad token good; the time is checked before the MAC, so the
        // error may be a time one.
        Err(_) => assert!(timed.is_err(), "TTL check opened an invalid token"),
    }
});
