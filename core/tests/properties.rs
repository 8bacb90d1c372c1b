//! Property tests: round trips for any input, and no tampering gets through.

use chat_core::fernet::{
    Error, Key, KeyRing, TtlCheck, max_message_len, plaintext_buf_len, token_len,
};
use proptest::prelude::*;

fn encrypt(key: &Key, message: &[u8], timestamp: u64, iv: [u8; 16]) -> Vec<u8> {
    let mut out = vec![0u8; token_len(message.len())];
    let token = key
        .encrypt_with_iv(message, timestamp, iv, &mut out)
        .unwrap();
    assert_eq!(token.len(), out.len());
    out
}

fn decrypt(key: &Key, token: &[u8]) -> Result<(Vec<u8>, u64), Error> {
    let mut out = vec![0u8; plaintext_buf_len(token.len()).max(16)];
    let opened = key.decrypt(token, None, &mut out)?;
    Ok((opened.plaintext.to_vec(), opened.timestamp))
}

/// Re-encodes raw token bytes as (standard, padded) base64url text.
fn encode_raw(raw: &[u8]) -> Vec<u8> {
    use base64ct::{Base64Url, Encoding};
    Base64Url::encode_string(raw).into_bytes()
}

fn decode_raw(token: &[u8]) -> Vec<u8> {
    use base64ct::{Base64Url, Encoding};
    Base64Url::decode_vec(std::str::from_utf8(token).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(secret in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..2048),
                  timestamp in any::<u64>(), iv in any::<[u8; 16]>()) {
        let key = Key::from_bytes(&secret);
        let token = encrypt(&key, &message, timestamp, iv);
        prop_assert_eq!(decrypt(&key, &token), Ok((message.clone(), timestamp)));

        let mut buf = token.clone();
        let opened = key.decrypt_in_place(&mut buf, None).unwrap();
        prop_assert_eq!(opened.plaintext, &message[..]);
        prop_assert_eq!(key.timestamp(&token), Ok(timestamp));

        // A TTL is judged against the token's own timestamp.
        let ttl = TtlCheck::new(60, timestamp);
        prop_assert!(key.decrypt(&token, ttl, &mut vec![0; token.len()]).is_ok());

        // Text form of the key survives a round trip.
        let mut text = [0u8; 44];
        let again = Key::from_base64(key.to_base64(&mut text)).unwrap();
        prop_assert_eq!(decrypt(&again, &token), Ok((message, timestamp)));
    }

    #[test]
    fn in_place_encryption_matches(secret in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..300),
                                   slack in 0usize..40) {
        let key = Key::from_bytes(&secret);
        let mut buf = vec![0u8; token_len(message.len()) + slack];
        buf[..message.len()].copy_from_slice(&message);
        let mut rng = rand_core::UnwrapErr(ZeroRng);
        let token = key.encrypt_in_place(&mut buf, message.len(), 7, &mut rng).unwrap().to_owned();
        prop_assert_eq!(token.as_bytes(), &encrypt(&key, &message, 7, [0; 16])[..]);
    }

    #[test]
    fn every_bit_flip_of_the_text_is_rejected(secret in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..48),
                                               iv in any::<[u8; 16]>()) {
        let key = Key::from_bytes(&secret);
        let token = encrypt(&key, &message, 1_700_000_000, iv);
        for index in 0..token.len() {
            for bit in 0..8 {
                let mut bad = token.clone();
                bad[index] ^= 1 << bit;
                prop_assert_eq!(decrypt(&key, &bad), Err(Error::InvalidToken), "byte {} bit {}", index, bit);
                prop_assert!(key.decrypt_in_place(&mut bad, None).is_err());
            }
        }
    }

    #[test]
    fn every_bit_flip_of_the_bytes_is_rejected(secret in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..48),
                                                iv in any::<[u8; 16]>()) {
        // Flips behind valid base64, so the MAC (not the text check) must catch them.
        let key = Key::from_bytes(&secret);
        let raw = decode_raw(&encrypt(&key, &message, 1_700_000_000, iv));
        for index in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[index] ^= 1 << bit;
                prop_assert_eq!(decrypt(&key, &encode_raw(&bad)), Err(Error::InvalidToken));
            }
        }
    }

    #[test]
    fn truncations_and_appended_bytes_are_rejected(secret in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..64),
                                                   extra in any::<u8>()) {
        let key = Key::from_bytes(&secret);
        let token = encrypt(&key, &message, 42, [3; 16]);
        for len in 0..token.len() {
            prop_assert!(decrypt(&key, &token[..len]).is_err(), "truncated to {}", len);
            prop_assert!(key.timestamp(&token[..len]).is_err());
        }
        let mut longer = token.clone();
        longer.push(extra);
        // One line ending after a token is not part of it (`fernet::token_text`);
        // any other byte makes it no token.
        if extra == b'\n' {
            prop_assert_eq!(decrypt(&key, &longer).map(|(m, _)| m), Ok(message.clone()));
            longer.push(b'\n');
        }
        prop_assert!(decrypt(&key, &longer).is_err());
        // Whole extra raw blocks, re-encoded, are caught by the MAC.
        let mut raw = decode_raw(&token);
        raw.extend_from_slice(&[extra; 16]);
        prop_assert_eq!(decrypt(&key, &encode_raw(&raw)), Err(Error::InvalidToken));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), out_len in 0usize..400,
                                   ttl in any::<u64>(), now in any::<u64>()) {
        let key = Key::from_bytes(&[1; 32]);
        let mut out = vec![0u8; out_len];
        let _ = key.decrypt(&bytes, TtlCheck::new(ttl, now), &mut out);
        let _ = key.timestamp(&bytes);
        let mut buf = bytes.clone();
        let _ = key.decrypt_in_place(&mut buf, None);
        let ring = KeyRing::<1>::new(key.clone());
        let _ = ring.rotate_with_iv(&bytes, [0; 16], &mut out);
        let _ = key.encrypt_with_iv(&bytes, now, [0; 16], &mut out);
        let _ = max_message_len(out_len);
    }

    #[test]
    fn short_buffers_are_refused_not_overrun(message in proptest::collection::vec(any::<u8>(), 0..100), short in 1usize..40) {
        let key = Key::from_bytes(&[5; 32]);
        let need = token_len(message.len());
        let mut out = vec![0u8; need.saturating_sub(short)];
        prop_assert_eq!(key.encrypt_with_iv(&message, 0, [0; 16], &mut out), Err(Error::BufferTooSmall));
        let token = encrypt(&key, &message, 0, [0; 16]);
        let mut out = vec![0u8; plaintext_buf_len(token.len()).saturating_sub(short)];
        prop_assert_eq!(key.decrypt(&token, None, &mut out), Err(Error::BufferTooSmall));
    }

    #[test]
    fn rotation_keeps_message_and_timestamp(message in proptest::collection::vec(any::<u8>(), 0..200), timestamp in any::<u64>(),
                                            which in 0usize..3) {
        let keys: Vec<Key> = (0..3u8).map(|i| Key::from_bytes(&[i + 10; 32])).collect();
        let mut ring = KeyRing::<2>::new(keys[0].clone());
        ring.push(keys[1].clone()).unwrap();
        ring.push(keys[2].clone()).unwrap();
        prop_assert!(ring.push(keys[0].clone()).is_err(), "ring holds only 1 + 2 keys");
        let old = encrypt(&keys[which], &message, timestamp, [8; 16]);
        let mut out = vec![0u8; old.len()];
        let rotated = ring.rotate_with_iv(&old, [9; 16], &mut out).unwrap();
        prop_assert_eq!(rotated.key_index, which);
        prop_assert_eq!(rotated.token.as_bytes(), &encrypt(&keys[0], &message, timestamp, [9; 16])[..]);
        let mut other = vec![0u8; old.len()];
        let unknown = KeyRing::<0>::new(Key::from_bytes(&[99; 32]));
        prop_assert_eq!(unknown.rotate_with_iv(&old, [9; 16], &mut other), Err(Error::InvalidToken));
    }
}

#[test]
fn keys_from_text_are_strict_and_never_shown() {
    let key = Key::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
    assert_eq!(format!("{key:?}"), "Key { .. }");
    let ring = KeyRing::<1>::new(key);
    assert!(!format!("{ring:?}").contains("cw_0"));
    for bad in [
        "",
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4", // no padding
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4==", // too long
        "cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4=", // standard alphabet
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e=", // 31 bytes
        " cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
    ] {
        assert!(Key::from_base64(bad).is_err(), "{bad:?}");
    }
}

struct ZeroRng;

impl rand_core::TryRng for ZeroRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(0);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for ZeroRng {}
