//! Encrypt an arbitrary message under an arbitrary key, timestamp and IV; it must open
//! to the same message, through every entry point. Then one mutation the input chooses,
//! of a decoded byte, of a text symbol, or of the length, must be rejected: the MAC
//! covers every byte, and the token text is strict (one text per byte string), so no
//! changed text can open at all, let alone to a different plaintext. The one exception
//! is not a change of the token: one line ending after it (`\n` or `\r\n`), which must
//! still open to the same message.
#![no_main]

use base64ct::{Base64Url, Encoding};
use chat_core::fernet::{
    Error, IV_LEN, Key, KeyRing, TtlCheck, max_message_len, plaintext_buf_len, token_len,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Mutation {
    /// XOR a byte of the decoded token with a non-zero mask.
    Byte { position: usize, mask: u8 },
    /// Replace a character of the token text with a different byte.
    Text { position: usize, byte: u8 },
    /// Cut the token text to a shorter length.
    Truncate { len: usize },
    /// Append bytes to the token text.
    Extend { tail: Vec<u8> },
}

#[derive(Debug, Arbitrary)]
struct Input {
    key: [u8; 32],
    message: Vec<u8>,
    timestamp: u64,
    iv: [u8; IV_LEN],
    mutation: Mutation,
    /// IV for re-encrypting under a second key with `KeyRing::rotate_with_iv`.
    rotate_iv: [u8; IV_LEN],
}

fn open(key: &Key, token: &[u8]) -> Result<(Vec<u8>, u64), Error> {
    let mut out = vec![0u8; plaintext_buf_len(token.len())];
    key.decrypt(token, None, &mut out)
        .map(|d| (d.plaintext.to_vec(), d.timestamp))
}

fuzz_target!(|input: Input| {
    let key = Key::from_bytes(&input.key);
    let message = &input.message[..];
    let len = token_len(message.len());
    assert!(max_message_len(len).is_some_and(|max| max >= message.len()));

    // Exactly `token_len` is enough, one byte less is not.
    let mut short = vec![0u8; len - 1];
    assert_eq!(
        key.encrypt_with_iv(message, input.timestamp, input.iv, &mut short),
        Err(Error::BufferTooSmall)
    );
    let mut buf = vec![0u8; len];
    let token = key
        .encrypt_with_iv(message, input.timestamp, input.iv, &mut buf)
        .expect("encrypt into token_len bytes")
        .to_owned();
    assert_eq!(token.len(), len);

    // Opens back, every way.
    let expected = Ok((message.to_vec(), input.timestamp));
    assert_eq!(open(&key, token.as_bytes()), expected);
    let mut in_place = token.clone().into_bytes();
    let opened = key
        .decrypt_in_place(&mut in_place, None)
        .map(|d| (d.plaintext.to_vec(), d.timestamp));
    assert_eq!(opened, expected);
    assert_eq!(key.timestamp(token.as_bytes()), Ok(input.timestamp));
    let mut out = vec![0u8; plaintext_buf_len(len)];
    let fresh = TtlCheck::new(0, input.timestamp);
    assert_eq!(
        key.decrypt(token.as_bytes(), fresh, &mut out)
            .map(|d| d.plaintext.to_vec()),
        Ok(message.to_vec())
    );

    // Rotation to another key keeps the message and the timestamp.
    let mut ring = KeyRing::<1>::new(Key::from_bytes(&input.key.map(|b| !b)));
    ring.push(key.clone()).expect("ring has room");
    let mut rotated = vec![0u8; len];
    let new = ring
        .rotate_with_iv(token.as_bytes(), input.rotate_iv, &mut rotated)
        .expect("rotate");
    assert_eq!(new.key_index, 1);
    assert_eq!(open(ring.primary(), new.token.as_bytes()), expected);

    // One change, which must be refused.
    let mut bytes = Base64Url::decode_vec(&token).expect("core writes strict base64url");
    let mutated: Vec<u8> = match input.mutation {
        Mutation::Byte { position, mask } => {
            let at = position % bytes.len();
            bytes[at] ^= mask.max(1);
            Base64Url::encode_string(&bytes).into_bytes()
        }
        Mutation::Text { position, byte } => {
            let mut text = token.clone().into_bytes();
            let at = position % text.len();
            if text[at] == byte {
                return;
            }
            text[at] = byte;
            text
        }
        Mutation::Truncate { len } => token.as_bytes()[..len % token.len()].to_vec(),
        Mutation::Extend { tail } => {
            if tail.is_empty() {
                return;
            }
            if tail == b"\n" || tail == b"\r\n" {
                // One line ending after a token is not part of it (fernet::token_text,
                // as Python's `cryptography` reads it): the token still opens.
                let line = [token.as_bytes(), &tail].concat();
                assert_eq!(open(&key, &line), expected, "token + {tail:?}");
                return;
            }
            [token.as_bytes(), &tail].concat()
        }
    };
    let result = open(&key, &mutated);
    assert_eq!(
        result,
        Err(Error::InvalidToken),
        "mutated token {mutated:?}"
    );
    let mut in_place = mutated.clone();
    assert!(key.decrypt_in_place(&mut in_place, None).is_err());
    assert!(key.timestamp(&mutated).is_err());
});
