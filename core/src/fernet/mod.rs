//! Fernet tokens: the public spec, into caller-provided buffers.
//!
//! A token is `0x80 ‖ timestamp (u64 BE) ‖ IV (16) ‖ AES-128-CBC ciphertext ‖
//! HMAC-SHA256 (32)`, written as padded base64url. The HMAC covers everything before it
//! and is keyed with the first half of the 32-byte key; AES uses the second half.
//!
//! # Token text
//!
//! A token is read as the spec writes it: strict padded base64url, one spelling per
//! token (the relay's replay memory relies on that), followed by at most one line
//! ending (`\n` or `\r\n`), which line-oriented senders add and Python's
//! `cryptography` accepts (see [`token_text`]). Nothing else is accepted: no other
//! whitespace, no missing padding, no standard-alphabet `+` or `/` (Python accepts
//! those too; the host's `decrypt` and `rotate` tools map them before they call this
//! codec, the chat's datagrams must be base64url).
//!
//! Nothing here allocates or reads a clock: the caller passes the timestamp to stamp and
//! the time to judge a TTL against, and owns every buffer.
//!
//! ```
//! use chat_core::fernet::{Key, TtlCheck, token_len};
//!
//! let key = Key::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")?;
//! let mut token = [0u8; token_len(5)];
//! let token = key.encrypt_with_iv(b"hello", 499_162_800, [7; 16], &mut token)?;
//!
//! let mut plain = [0u8; 16];
//! let opened = key.decrypt(token.as_bytes(), TtlCheck::new(60, 499_162_830), &mut plain)?;
//! assert_eq!(opened.plaintext, b"hello");
//! assert_eq!(opened.timestamp, 499_162_800);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod base64;
mod key;
mod ring;

pub use key::{InvalidKey, KEY_TEXT_LEN, Key};
pub use ring::{KeyRing, Rotated};

use core::fmt;

/// The only version byte the spec defines.
pub const VERSION: u8 = 0x80;
/// How far in the future a token's timestamp may be when a TTL is checked, as in every
/// other Fernet implementation.
pub const MAX_CLOCK_SKEW: u64 = 60;
/// Size of the IV.
pub const IV_LEN: usize = 16;

const BLOCK_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 8 + IV_LEN;
const MAC_LEN: usize = 32;
/// Decoded bytes that are not ciphertext.
const OVERHEAD: usize = HEADER_LEN + MAC_LEN;

/// Ciphertext length for a message: PKCS#7 always adds 1 to 16 bytes.
const fn padded_len(message_len: usize) -> usize {
    (message_len / BLOCK_LEN)
        .saturating_add(1)
        .saturating_mul(BLOCK_LEN)
}

/// Decoded (binary) length of the token for a message of `message_len` bytes.
const fn raw_len(message_len: usize) -> usize {
    padded_len(message_len).saturating_add(OVERHEAD)
}

/// Exact length of the token text for a message of `message_len` bytes.
///
/// Saturates at `usize::MAX` for lengths no buffer could hold.
pub const fn token_len(message_len: usize) -> usize {
    base64::encoded_len(raw_len(message_len))
}

/// The longest message whose token fits in `token_buf_len` bytes, or `None` if not even
/// an empty message does (the shortest token is 100 bytes).
pub const fn max_message_len(token_buf_len: usize) -> Option<usize> {
    let raw = token_buf_len / 4 * 3;
    if raw < OVERHEAD + BLOCK_LEN {
        return None;
    }
    Some((raw - OVERHEAD) / BLOCK_LEN * BLOCK_LEN - 1)
}

/// The size of output buffer [`Key::decrypt`] needs for a token of `token_len` bytes of
/// text: exactly its padded ciphertext length, 1 to 16 more than the plaintext.
pub const fn plaintext_buf_len(token_len: usize) -> usize {
    // Padding removes at most two bytes from `len / 4 * 3`, and a ciphertext is whole
    // blocks, so rounding down to a block gives the exact length for any valid token.
    (token_len / 4 * 3).saturating_sub(OVERHEAD) / BLOCK_LEN * BLOCK_LEN
}

/// Why a token could not be made or opened.
///
/// Everything that would tell an attacker which check failed (format, version, MAC,
/// padding, wrong key) is the single [`Error::InvalidToken`]. The time checks are
/// separate because the timestamp is public anyway, and a user needs to tell an expired
/// message from a forged one to fix a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Not a token made with this key.
    InvalidToken,
    /// The token is older than the TTL allows.
    Expired,
    /// The token's timestamp is further in the future than the allowed clock skew.
    FromTheFuture,
    /// The output buffer is too small; see [`token_len`] and [`plaintext_buf_len`].
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidToken => "invalid token",
            Self::Expired => "token expired",
            Self::FromTheFuture => "token timestamp is in the future (check the clocks)",
            Self::BufferTooSmall => "buffer too small",
        })
    }
}

impl core::error::Error for Error {}

impl From<base64::Invalid> for Error {
    fn from(_: base64::Invalid) -> Self {
        Self::InvalidToken
    }
}

/// A TTL to enforce when opening a token, judged at `now` (Unix seconds).
///
/// As in Python's `cryptography`: a token exactly `ttl` seconds old is still valid, and
/// one stamped up to `skew` seconds ahead of `now` is accepted ([`MAX_CLOCK_SKEW`] by
/// default, as every other Fernet implementation does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtlCheck {
    /// Largest accepted age in seconds.
    pub ttl: u64,
    /// The verifier's current time, Unix seconds.
    pub now: u64,
    /// How far ahead of `now` a timestamp may be, seconds.
    pub skew: u64,
}

impl TtlCheck {
    /// A check of `ttl` seconds at time `now`, with the usual [`MAX_CLOCK_SKEW`], ready
    /// to pass to `decrypt`.
    pub const fn new(ttl: u64, now: u64) -> Option<Self> {
        Some(Self {
            ttl,
            now,
            skew: MAX_CLOCK_SKEW,
        })
    }

    /// The same check with `skew` seconds allowed into the future instead.
    #[must_use]
    pub const fn with_skew(self, skew: u64) -> Self {
        Self { skew, ..self }
    }

    /// Judges a token timestamp: [`Error::Expired`], [`Error::FromTheFuture`] or fine.
    pub fn judge(self, timestamp: u64) -> Result<(), Error> {
        if timestamp.saturating_add(self.ttl) < self.now {
            Err(Error::Expired)
        } else if self.now.saturating_add(self.skew) < timestamp {
            Err(Error::FromTheFuture)
        } else {
            Ok(())
        }
    }
}

/// An opened token: its plaintext (inside the caller's buffer) and its timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decrypted<'a> {
    /// The message.
    pub plaintext: &'a [u8],
    /// When the token was made, Unix seconds, as its creator claimed.
    pub timestamp: u64,
}

/// The fixed-size parts of a decoded token, kept apart from the ciphertext so the
/// ciphertext can be decoded straight into the caller's buffer.
struct Envelope {
    header: [u8; HEADER_LEN],
    mac: [u8; MAC_LEN],
}

impl Envelope {
    fn timestamp(&self) -> u64 {
        let [_, t @ .., _, _, _, _, _, _, _, _, _, _, _, _, _, _, _, _] = self.header;
        u64::from_be_bytes(t)
    }

    fn iv(&self) -> [u8; IV_LEN] {
        let [_, _, _, _, _, _, _, _, _, iv @ ..] = self.header;
        iv
    }

    /// The checks that need no key, in the spec's order: version, then the TTL.
    fn check(&self, ttl: Option<TtlCheck>) -> Result<(), Error> {
        if self.header[0] != VERSION {
            return Err(Error::InvalidToken);
        }
        match ttl {
            Some(check) => check.judge(self.timestamp()),
            None => Ok(()),
        }
    }
}

/// The token text of `input`: `input` without one trailing line ending (`\n` or
/// `\r\n`), which line-oriented senders (`print`, `echo`, `nc`) put after a token and
/// Python's `cryptography` ignores. The ending is outside the token: it is neither
/// authenticated nor part of the token's one spelling.
pub fn token_text(input: &[u8]) -> &[u8] {
    match input {
        [text @ .., b'\r', b'\n'] | [text @ .., b'\n'] => text,
        _ => input,
    }
}

/// Length of the ciphertext in a token that decodes to `raw_len` bytes, if that is a
/// length a token can have.
fn ciphertext_len(raw_len: usize) -> Result<usize, Error> {
    match raw_len.checked_sub(OVERHEAD) {
        Some(len) if len >= BLOCK_LEN && len % BLOCK_LEN == 0 => Ok(len),
        _ => Err(Error::InvalidToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_helpers_agree() {
        assert_eq!(token_len(0), 100);
        assert_eq!(token_len(5), 100);
        assert_eq!(token_len(15), 100);
        assert_eq!(token_len(16), 120);
        assert_eq!(max_message_len(99), None);
        assert_eq!(max_message_len(100), Some(15));
        for buf in 100..4000 {
            let max = max_message_len(buf).unwrap();
            assert!(token_len(max) <= buf, "{buf}");
            assert!(token_len(max + 1) > buf, "{buf}");
        }
        for len in 0..2000 {
            assert_eq!(plaintext_buf_len(token_len(len)), padded_len(len));
        }
        assert_eq!(token_len(usize::MAX), usize::MAX);
        assert_eq!(plaintext_buf_len(0), 0);
    }

    #[test]
    fn one_line_ending_is_not_part_of_the_token() {
        assert_eq!(token_text(b"gAAAA\n"), b"gAAAA");
        assert_eq!(token_text(b"gAAAA\r\n"), b"gAAAA");
        assert_eq!(token_text(b"gAAAA\n\n"), b"gAAAA\n");
        assert_eq!(token_text(b"gAAAA\r"), b"gAAAA\r");
        assert_eq!(token_text(b" gAAAA"), b" gAAAA");
        assert_eq!(token_text(b"\n"), b"");
        assert_eq!(token_text(b""), b"");
    }

    #[test]
    fn ttl_semantics_match_python() {
        let check = |ttl, now, ts| TtlCheck::new(ttl, now).map(|c| c.judge(ts)).unwrap();
        assert_eq!(check(60, 1060, 1000), Ok(()));
        assert_eq!(check(60, 1061, 1000), Err(Error::Expired));
        assert_eq!(check(60, 1000, 1060), Ok(()));
        assert_eq!(check(60, 1000, 1061), Err(Error::FromTheFuture));
        assert_eq!(check(u64::MAX, u64::MAX, 0), Ok(()));
        assert_eq!(check(0, 0, u64::MAX), Err(Error::FromTheFuture));
    }
}

/// The token-text rules as the whole codec applies them (issue: line endings after a
/// token; short input to `rotate`).
#[cfg(test)]
mod token_text_tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn token(message: &[u8]) -> ([u8; 120], usize) {
        let mut out = [0u8; 120];
        let len = Key::from_bytes(&KEY)
            .encrypt_with_iv(message, 1_000, [3; 16], &mut out)
            .unwrap()
            .len();
        (out, len)
    }

    #[test]
    fn a_line_ending_after_a_token_is_accepted_everywhere() {
        let key = Key::from_bytes(&KEY);
        let ring = KeyRing::<1>::new(key.clone());
        let (text, len) = token(b"hello");
        for ending in [&b"\n"[..], b"\r\n"] {
            let mut input = [0u8; 122];
            input[..len].copy_from_slice(&text[..len]);
            input[len..len + ending.len()].copy_from_slice(ending);
            let input = &input[..len + ending.len()];
            let mut plain = [0u8; 32];
            let opened = key.decrypt(input, None, &mut plain).unwrap();
            assert_eq!(opened.plaintext, b"hello");
            assert_eq!(key.timestamp(input), Ok(1_000));
            let mut buf = [0u8; 122];
            buf[..input.len()].copy_from_slice(input);
            let opened = key.decrypt_in_place(&mut buf[..input.len()], None).unwrap();
            assert_eq!(opened.plaintext, b"hello");
            let mut buf = [0u8; 122];
            buf[..input.len()].copy_from_slice(input);
            let (opened, _) = ring
                .decrypt_in_place(&mut buf[..input.len()], None)
                .unwrap();
            assert_eq!(opened.plaintext, b"hello");
            let mut out = [0u8; 122];
            let rotated = ring.rotate_with_iv(input, [4; 16], &mut out).unwrap();
            assert_eq!(rotated.token.len(), len);
        }
        // Anything more is not a token.
        for extra in [&b"\n\n"[..], b" ", b"\r", b"\t\n", b"\n "] {
            let mut input = [0u8; 122];
            input[..len].copy_from_slice(&text[..len]);
            input[len..len + extra.len()].copy_from_slice(extra);
            let input = &input[..len + extra.len()];
            let mut plain = [0u8; 32];
            assert_eq!(
                key.decrypt(input, None, &mut plain),
                Err(Error::InvalidToken),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn rotate_says_invalid_token_for_anything_too_short() {
        let ring = KeyRing::<0>::new(Key::from_bytes(&KEY));
        let (text, len) = token(b"x");
        for cut in 0..len {
            let input = &text[..cut];
            let mut out = [0u8; 120];
            // As much room as the input has (what `host-chat rotate` gives), or none.
            for room in [cut, 0] {
                assert_eq!(
                    ring.rotate_with_iv(input, [0; 16], &mut out[..room]),
                    Err(Error::InvalidToken),
                    "{cut} characters, {room} bytes of room"
                );
            }
        }
        let mut out = [0u8; 120];
        assert!(
            ring.rotate_with_iv(&text[..len], [0; 16], &mut out[..len])
                .is_ok()
        );
        assert_eq!(
            ring.rotate_with_iv(&text[..len], [0; 16], &mut out[..len - 1]),
            Err(Error::BufferTooSmall)
        );
    }
}
