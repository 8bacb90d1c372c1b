//! Tokens built by hand with the real key, so that each check of the spec is caught on
//! its own: a token that fails exactly one check (version, MAC, padding, ciphertext
//! length) and passes every other one, through every entry point.
//!
//! The tokens are made by [`Key::encrypt_with_iv`] and then edited as raw bytes:
//! the header is rewritten and the HMAC recomputed with the key's signing half (so the
//! MAC is right), or the IV is XORed to change the first plaintext block (CBC decrypts
//! `D(C1) ^ IV`, so the padding can be set to anything without touching AES), or the MAC
//! is made with another signing key (so the padding stays right and only the MAC is
//! wrong). Each test also checks its unedited control token opens, so a test fails if
//! the forging itself goes wrong, never passes vacuously.

use base64ct::{Base64Url, Encoding};
use chat_core::fernet::{Error, Key, KeyRing, TtlCheck, VERSION, plaintext_buf_len, token_len};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SIGNING: [u8; 16] = [0x5A; 16];
const ENCRYPTION: [u8; 16] = [0xC3; 16];
const STAMP: u64 = 1_700_000_000;
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 25;

fn secret(signing: [u8; 16], encryption: [u8; 16]) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&signing);
    bytes[16..].copy_from_slice(&encryption);
    bytes
}

fn key() -> Key {
    Key::from_bytes(&secret(SIGNING, ENCRYPTION))
}

/// The raw bytes of a real token for `message`.
fn raw_token(key: &Key, message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; token_len(message.len())];
    let token = key
        .encrypt_with_iv(message, STAMP, [0x11; 16], &mut out)
        .unwrap();
    Base64Url::decode_vec(token).unwrap()
}

fn text(raw: &[u8]) -> Vec<u8> {
    Base64Url::encode_string(raw).into_bytes()
}

/// Recomputes the HMAC of `raw` (everything before its last 32 bytes) with `signing`.
fn remac(raw: &mut [u8], signing: &[u8; 16]) {
    let (signed, tag) = raw.split_at_mut(raw.len() - MAC_LEN);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(signing).unwrap();
    mac.update(signed);
    tag.copy_from_slice(&mac.finalize().into_bytes());
}

/// What every way of opening `token` with `key` (alone, and as the second key of a ring
/// whose primary is unrelated) gives: the plaintext and timestamp, or the error.
///
/// All of them must agree; the common answer is returned.
fn open_everywhere(key: &Key, token: &[u8]) -> Result<(Vec<u8>, u64), Error> {
    let ttl = TtlCheck::new(60, STAMP);
    let mut out = vec![0u8; plaintext_buf_len(token.len()).max(16)];
    let decrypted = key
        .decrypt(token, ttl, &mut out)
        .map(|d| (d.plaintext.to_vec(), d.timestamp));
    let untimed = key
        .decrypt(token, None, &mut out)
        .map(|d| (d.plaintext.to_vec(), d.timestamp));
    assert_eq!(untimed, decrypted, "without a TTL");

    let mut buf = token.to_vec();
    let in_place = key
        .decrypt_in_place(&mut buf, ttl)
        .map(|d| (d.plaintext.to_vec(), d.timestamp));
    assert_eq!(in_place, decrypted, "in place");

    let mut ring = KeyRing::<1>::new(Key::from_bytes(&[0xEE; 32]));
    ring.push(key.clone()).unwrap();
    let from_ring = ring
        .decrypt(token, ttl, &mut out)
        .map(|(d, index)| (d.plaintext.to_vec(), d.timestamp, index));
    assert_eq!(
        from_ring,
        decrypted.clone().map(|(p, t)| (p, t, 1)),
        "key ring"
    );
    let mut buf = token.to_vec();
    let from_ring = ring
        .decrypt_in_place(&mut buf, ttl)
        .map(|(d, index)| (d.plaintext.to_vec(), d.timestamp, index));
    assert_eq!(
        from_ring,
        decrypted.clone().map(|(p, t)| (p, t, 1)),
        "key ring in place"
    );

    // Rotation opens the token the same way (without a TTL), then re-seals it.
    let mut rotated = vec![0u8; token.len().max(token_len(0))];
    match ring.rotate_with_iv(token, [0x22; 16], &mut rotated) {
        Ok(r) => {
            assert_eq!(r.key_index, 1);
            let again = ring.primary().decrypt(r.token.as_bytes(), None, &mut out);
            let again = again.map(|d| (d.plaintext.to_vec(), d.timestamp));
            assert_eq!(again, decrypted, "rotated");
        }
        Err(e) => assert_eq!(Err(e), decrypted, "rotation"),
    }
    decrypted
}

/// The timestamp the MAC-only entry points give, which must agree with each other.
fn timestamp_everywhere(key: &Key, token: &[u8]) -> Result<u64, Error> {
    let alone = key.timestamp(token);
    let mut ring = KeyRing::<1>::new(Key::from_bytes(&[0xEE; 32]));
    ring.push(key.clone()).unwrap();
    assert_eq!(ring.timestamp(token), alone, "key ring timestamp");
    alone
}

/// Messages whose tokens take each decoding path: one block, several, and longer than
/// the one-pass stack buffer (256 decoded bytes).
const MESSAGES: [&[u8]; 3] = [b"hi", &[b'm'; 40], &[b'L'; 300]];

#[test]
fn a_correctly_maced_token_with_any_other_version_byte_is_invalid() {
    let key = key();
    for message in MESSAGES {
        let raw = raw_token(&key, message);
        // Control: rewriting the right version and recomputing the MAC changes nothing.
        let mut same = raw.clone();
        same[0] = VERSION;
        remac(&mut same, &SIGNING);
        assert_eq!(same, raw, "the test's HMAC is the token's HMAC");

        for version in (0..=u8::MAX).filter(|&v| v != VERSION) {
            let mut bad = raw.clone();
            bad[0] = version;
            remac(&mut bad, &SIGNING);
            let bad = text(&bad);
            assert_eq!(
                open_everywhere(&key, &bad),
                Err(Error::InvalidToken),
                "version {version:#04x}, {} byte message",
                message.len()
            );
            assert_eq!(
                timestamp_everywhere(&key, &bad),
                Err(Error::InvalidToken),
                "version {version:#04x}"
            );
        }
        let good = text(&raw);
        assert_eq!(open_everywhere(&key, &good), Ok((message.to_vec(), STAMP)));
        assert_eq!(timestamp_everywhere(&key, &good), Ok(STAMP));
    }
}

#[test]
fn a_wrong_version_is_refused_before_the_ttl_is_judged() {
    // The spec's order: version first, so an old token with a wrong version is
    // "invalid", not "expired" (which would admit it was a token at all).
    let key = key();
    let mut raw = raw_token(&key, b"old");
    raw[0] = 0x81;
    remac(&mut raw, &SIGNING);
    let mut out = [0u8; 16];
    let late = TtlCheck::new(60, STAMP + 3600);
    assert_eq!(
        key.decrypt(&text(&raw), late, &mut out),
        Err(Error::InvalidToken)
    );
}

#[test]
fn the_mac_is_checked_on_its_own() {
    // Same encryption key, other signing key: AES and the padding are right, only the
    // MAC is wrong.
    let key = key();
    let impostor = Key::from_bytes(&secret([0xA5; 16], ENCRYPTION));
    for message in MESSAGES {
        let forged = raw_token(&impostor, message);
        assert_eq!(
            open_everywhere(&impostor, &text(&forged)),
            Ok((message.to_vec(), STAMP)),
            "control: the impostor's own key opens it"
        );
        assert_eq!(
            open_everywhere(&key, &text(&forged)),
            Err(Error::InvalidToken),
            "{} byte message under another signing key",
            message.len()
        );
        assert_eq!(
            timestamp_everywhere(&key, &text(&forged)),
            Err(Error::InvalidToken)
        );

        // Any single bit of the real tag flipped.
        let raw = raw_token(&key, message);
        let tag_at = raw.len() - MAC_LEN;
        for bit in 0..8 * MAC_LEN {
            let mut bad = raw.clone();
            bad[tag_at + bit / 8] ^= 1 << (bit % 8);
            let bad = text(&bad);
            assert_eq!(
                open_everywhere(&key, &bad),
                Err(Error::InvalidToken),
                "bit {bit}"
            );
            assert_eq!(timestamp_everywhere(&key, &bad), Err(Error::InvalidToken));
        }
        // The MAC covers the header and the ciphertext: edits there, re-encoded as valid
        // text but not re-MACed, are refused (the timestamp's last bit, so the TTL is
        // still met; the IV; the last ciphertext byte).
        for (at, flip) in [(8, 0x01), (HEADER_LEN - 1, 0x40), (tag_at - 1, 0x40)] {
            let mut bad = raw.clone();
            bad[at] ^= flip;
            assert_eq!(open_everywhere(&key, &text(&bad)), Err(Error::InvalidToken));
            assert_eq!(
                timestamp_everywhere(&key, &text(&bad)),
                Err(Error::InvalidToken)
            );
        }
    }
}

#[test]
fn a_key_ring_says_which_key_matched() {
    let keys: Vec<Key> = (1..=3u8).map(|i| Key::from_bytes(&[i; 32])).collect();
    let mut ring = KeyRing::<2>::new(keys[0].clone());
    assert_eq!(ring.len(), 1);
    ring.push(keys[1].clone()).unwrap();
    ring.push(keys[2].clone()).unwrap();
    assert_eq!(ring.len(), 3);
    assert!(!ring.is_empty());
    assert_eq!(ring.keys().count(), 3);
    for (index, key) in keys.iter().enumerate() {
        let raw = raw_token(key, b"which");
        let token = text(&raw);
        let mut out = [0u8; 16];
        let (opened, found) = ring.decrypt(&token, None, &mut out).unwrap();
        assert_eq!((opened.plaintext, found), (&b"which"[..], index));
        assert_eq!(ring.timestamp(&token), Ok(STAMP));
    }
    let stranger = text(&raw_token(&Key::from_bytes(&[9; 32]), b"which"));
    assert_eq!(ring.timestamp(&stranger), Err(Error::InvalidToken));
    let mut out = [0u8; 16];
    assert_eq!(
        ring.decrypt(&stranger, None, &mut out),
        Err(Error::InvalidToken)
    );
}

/// A token whose decrypted ciphertext is exactly `plaintext` (whole blocks, no padding
/// rules applied), with a correct MAC: AES-128-CBC done here, block by block.
fn sealed_blocks(plaintext: &[u8]) -> Vec<u8> {
    use aes::cipher::BlockCipherEncrypt;
    assert_eq!(plaintext.len() % 16, 0);
    let aes = <aes::Aes128 as KeyInit>::new(&ENCRYPTION.into());
    let iv = [0x11_u8; 16];
    let mut raw = vec![VERSION];
    raw.extend(STAMP.to_be_bytes());
    raw.extend(iv);
    let mut previous = iv;
    for chunk in plaintext.chunks_exact(16) {
        let mut block: [u8; 16] = core::array::from_fn(|i| chunk[i] ^ previous[i]);
        aes.encrypt_block((&mut block).into());
        raw.extend(block);
        previous = block;
    }
    raw.extend([0; MAC_LEN]);
    remac(&mut raw, &SIGNING);
    text(&raw)
}

#[test]
fn every_padding_byte_is_checked() {
    let key = key();
    // Control: the hand-made CBC gives the real token for a correctly padded message.
    let mut padded = [0x0D_u8; 32];
    padded[..19].fill(b'c');
    assert_eq!(
        sealed_blocks(&padded),
        text(&raw_token(&key, &[b'c'; 19])),
        "the test's AES-CBC is the token's"
    );

    for blocks in [1, 2] {
        let len = 16 * blocks;
        for pad in 1..=16u8 {
            let n = usize::from(pad);
            let mut plaintext = vec![b'p'; len];
            plaintext[len - n..].fill(pad);
            assert_eq!(
                open_everywhere(&key, &sealed_blocks(&plaintext)),
                Ok((vec![b'p'; len - n], STAMP)),
                "valid padding of {pad}"
            );
            // Any one padding byte changed (the last one included) is refused, unless
            // the change makes other valid padding (a last byte of 1, say).
            for wrong_at in len - n..len {
                for wrong in [0, pad - 1, pad + 1, pad ^ 0x80] {
                    let mut bad = plaintext.clone();
                    bad[wrong_at] = wrong;
                    assert_eq!(
                        open_everywhere(&key, &sealed_blocks(&bad)),
                        pkcs7_unpad(&bad).map(|m| (m.to_vec(), STAMP)),
                        "{blocks} blocks, padding {pad} with byte {wrong_at} = {wrong}"
                    );
                }
            }
        }
        // Pad values no padding has, even when every byte they claim agrees: 0 ("no
        // padding", so the padding is empty), and 17 and up (more than a block, though
        // within two blocks' length).
        for pad in [0u8, 17, 31, 32, 0x80, 0xFF] {
            let mut plaintext = vec![b'q'; len];
            let claimed = usize::from(pad).min(len);
            plaintext[len - claimed..].fill(pad);
            plaintext[len - 1] = pad;
            assert_eq!(pkcs7_unpad(&plaintext), Err(Error::InvalidToken));
            assert_eq!(
                open_everywhere(&key, &sealed_blocks(&plaintext)),
                Err(Error::InvalidToken),
                "{blocks} blocks ending in {claimed} bytes of {pad:#04x}"
            );
        }
    }
}

/// PKCS#7 (RFC 5652 section 6.3) for 16-byte blocks, written plainly: the oracle for
/// what `decrypt` must answer.
fn pkcs7_unpad(plaintext: &[u8]) -> Result<&[u8], Error> {
    let pad = *plaintext.last().ok_or(Error::InvalidToken)?;
    let n = usize::from(pad);
    if n == 0 || n > 16 || n > plaintext.len() {
        return Err(Error::InvalidToken);
    }
    let (message, padding) = plaintext.split_at(plaintext.len() - n);
    if padding.iter().all(|&b| b == pad) {
        Ok(message)
    } else {
        Err(Error::InvalidToken)
    }
}

#[test]
fn ciphertexts_that_are_not_whole_blocks_are_refused_even_when_maced() {
    let key = key();
    let raw = raw_token(&key, b"block");
    let header = &raw[..HEADER_LEN];
    let ciphertext = &raw[HEADER_LEN..raw.len() - MAC_LEN];
    for len in [0, 1, 15, 17, 20, 31] {
        let mut bad = header.to_vec();
        bad.extend((0..len).map(|i| ciphertext.get(i).copied().unwrap_or(7)));
        bad.extend([0u8; MAC_LEN]);
        remac(&mut bad, &SIGNING);
        let bad = text(&bad);
        assert_eq!(
            open_everywhere(&key, &bad),
            Err(Error::InvalidToken),
            "{len}"
        );
        assert_eq!(
            timestamp_everywhere(&key, &bad),
            Err(Error::InvalidToken),
            "{len}"
        );
    }
}
