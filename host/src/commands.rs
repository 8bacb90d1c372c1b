//! The token tools: `keygen`, `encrypt`, `decrypt` and `rotate`.
//!
//! Each works on the standard streams of an [`Io`], so tests can run them on buffers.
//! Output is written in one piece, only once the command has succeeded: a failure
//! leaves standard output empty.

use crate::error::{InputTooLong, NoInput, Rejected};
use crate::keys::Keys;
use anyhow::Context as _;
use chat_core::fernet::{Error, KEY_TEXT_LEN, Key, TtlCheck, plaintext_buf_len, token_len};
use rand::rngs::{StdRng, SysRng};
use rand::{SeedableRng, TryRng};
use std::ffi::OsString;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// The longest message `encrypt` takes: 64 MiB.
pub const MAX_MESSAGE_LEN: usize = 64 << 20;

/// The longest input `decrypt` and `rotate` take: a token of the longest message, and
/// some room for whitespace around it.
pub const MAX_TOKEN_INPUT_LEN: usize = token_len(MAX_MESSAGE_LEN) + 4096;

/// The streams, environment and clock a command runs with.
#[allow(
    missing_debug_implementations,
    reason = "streams and the clock have nothing to show"
)]
pub struct Io<'a> {
    /// Standard input.
    pub stdin: &'a mut dyn Read,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error, for `--verbose` notes.
    pub stderr: &'a mut dyn Write,
    /// The value of `HOST_CHAT_KEY`, if set.
    pub key_env: Option<OsString>,
    /// The current time, Unix seconds.
    pub clock: &'a dyn Fn() -> anyhow::Result<u64>,
}

/// The current time from the system clock, Unix seconds.
pub fn system_clock() -> anyhow::Result<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .context("the system clock is set before 1970")
}

/// A CSPRNG for IVs, seeded once from the OS (ChaCha12): as safe as OS randomness for
/// every IV, and cheaper.
fn iv_rng() -> anyhow::Result<StdRng> {
    StdRng::try_from_rng(&mut SysRng).context("cannot get randomness from the OS")
}

/// Reads all of `input`, refusing more than `limit` bytes.
fn read_all(
    input: &mut dyn Read,
    limit: usize,
    what: &'static str,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    input
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .context("reading standard input")?;
    if buf.len() > limit {
        return Err(InputTooLong { what, limit }.into());
    }
    Ok(buf)
}

fn write_all(output: &mut dyn Write, bytes: &[u8]) -> anyhow::Result<()> {
    output
        .write_all(bytes)
        .and_then(|()| output.flush())
        .context("writing standard output")
}

/// `keygen`: a fresh key from OS randomness, and a newline.
pub fn keygen(io: &mut Io<'_>) -> anyhow::Result<()> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SysRng
        .try_fill_bytes(&mut *bytes)
        .context("cannot get randomness from the OS")?;
    let key = Key::from_bytes(&bytes);
    let mut line = Zeroizing::new([b'\n'; KEY_TEXT_LEN + 1]);
    let (text, _newline) = line.split_at_mut(KEY_TEXT_LEN);
    let text: &mut [u8; KEY_TEXT_LEN] = text.try_into().context("key buffer")?;
    key.to_base64(text);
    write_all(io.stdout, &*line)
}

/// `encrypt`: all of stdin into a token of the primary key, and a newline.
pub fn encrypt(keys: &Keys, io: &mut Io<'_>) -> anyhow::Result<()> {
    let mut buf = read_all(io.stdin, MAX_MESSAGE_LEN, "message")?;
    let now = (io.clock)()?;
    let mut rng = iv_rng()?;
    let message_len = buf.len();
    let text_len = token_len(message_len);
    // The message is encrypted where it lies; the newline follows the token.
    buf.resize(text_len + 1, b'\n');
    let token = keys
        .ring
        .primary()
        .encrypt_in_place(&mut buf[..text_len], message_len, now, &mut rng)
        .map_err(|err| anyhow::anyhow!("cannot encrypt: {err}"))?;
    debug_assert_eq!(token.len(), text_len);
    write_all(io.stdout, &buf)
}

/// A TTL to enforce in `decrypt`: `--ttl` and `--clock-skew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// Largest accepted age, seconds.
    pub ttl: u64,
    /// How far ahead of our clock a timestamp may be, seconds.
    pub clock_skew: u64,
}

/// Reads the token on standard input: the whitespace around it is dropped, and the
/// standard base64 alphabet is mapped to base64url (`+` to `-`, `/` to `_`), as Python's
/// `cryptography` reads tokens. Input with no token at all is [`NoInput`] (an input
/// problem, exit 3), whatever else it is, the codec judges (exit 1 if invalid).
fn read_token(io: &mut Io<'_>) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let input = read_all(io.stdin, MAX_TOKEN_INPUT_LEN, "token")?;
    let token = input.trim_ascii();
    if token.is_empty() {
        return Err(NoInput { what: "token" }.into());
    }
    let mut token = Zeroizing::new(token.to_vec());
    for byte in token.iter_mut() {
        match byte {
            b'+' => *byte = b'-',
            b'/' => *byte = b'_',
            _ => {}
        }
    }
    Ok(token)
}

/// `decrypt`: the plaintext of the token on stdin, exactly.
pub fn decrypt(
    keys: &Keys,
    ttl: Option<Ttl>,
    verbose: bool,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let token = read_token(io)?;
    let ttl_check = match ttl {
        Some(Ttl { ttl, clock_skew }) => {
            TtlCheck::new(ttl, (io.clock)()?).map(|check| check.with_skew(clock_skew))
        }
        None => None,
    };
    let mut out = Zeroizing::new(vec![0u8; plaintext_buf_len(token.len())]);
    let (opened, index) = keys
        .ring
        .decrypt(&token, ttl_check, &mut out)
        .map_err(|err| rejection(keys, &token, ttl_check, err))?;
    if verbose {
        note(
            io,
            &format!(
                "opened with key {} of {} ({})",
                index + 1,
                keys.ring.len(),
                origin(keys, index)
            ),
        );
    }
    write_all(io.stdout, opened.plaintext)
}

/// `rotate`: the token on stdin re-encrypted under the primary key, same timestamp.
pub fn rotate(keys: &Keys, verbose: bool, io: &mut Io<'_>) -> anyhow::Result<()> {
    let token = read_token(io)?;
    let mut rng = iv_rng()?;
    // The new token is as long as the old one; one more byte for the newline. Core
    // judges the token's shape before it looks at the buffer: a short or malformed
    // token is an invalid token, never a buffer problem.
    let mut out = Zeroizing::new(vec![0u8; token.len() + 1]);
    let rotated = keys
        .ring
        .rotate(&token, &mut rng, &mut out[..token.len()])
        .map_err(|err| rejection(keys, &token, None, err))?;
    let (len, index) = (rotated.token.len(), rotated.key_index);
    if verbose {
        let how = if index == 0 {
            "already the primary key; re-encrypted with a fresh IV".to_owned()
        } else {
            format!("now under the primary key ({})", origin(keys, 0))
        };
        note(
            io,
            &format!(
                "token was made with key {} of {} ({}); {how}",
                index + 1,
                keys.ring.len(),
                origin(keys, index)
            ),
        );
    }
    out.truncate(len);
    out.push(b'\n');
    write_all(io.stdout, &out)
}

fn origin(keys: &Keys, index: usize) -> &str {
    keys.origins.get(index).map_or("?", String::as_str)
}

/// A note on stderr; failing to write one is no reason to fail the command.
fn note(io: &mut Io<'_>, text: &str) {
    let _ = writeln!(io.stderr, "host-chat: {text}");
}

/// Turns core's error into what the user is told. A TTL failure is reported as such only
/// if one of our keys really made the token (core judges the time before the MAC, as the
/// spec orders), so a wrong key is never mistaken for an old token.
fn rejection(keys: &Keys, token: &[u8], ttl: Option<TtlCheck>, err: Error) -> anyhow::Error {
    let timestamp = || keys.ring.timestamp(token).ok();
    let rejected = match (err, ttl, timestamp()) {
        (Error::Expired, Some(check), Some(made)) => Rejected::Expired {
            age: check.now.saturating_sub(made),
            ttl: check.ttl,
        },
        (Error::FromTheFuture, Some(check), Some(made)) => Rejected::FromTheFuture {
            ahead: made.saturating_sub(check.now),
            skew: check.skew,
        },
        (Error::BufferTooSmall, ..) => {
            return anyhow::anyhow!("internal error: {err} for a {} byte token", token.len());
        }
        _ => Rejected::Invalid,
    };
    rejected.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parse_key_list;

    const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    struct Outcome {
        result: anyhow::Result<()>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    }

    fn with_io(
        stdin: &[u8],
        now: u64,
        command: impl FnOnce(&mut Io<'_>) -> anyhow::Result<()>,
    ) -> Outcome {
        let (mut stdin, mut stdout, mut stderr) = (stdin, Vec::new(), Vec::new());
        let clock = move || Ok(now);
        let mut io = Io {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
            key_env: None,
            clock: &clock,
        };
        let result = command(&mut io);
        Outcome {
            result,
            stdout,
            stderr,
        }
    }

    fn ttl(ttl: u64) -> Option<Ttl> {
        Some(Ttl {
            ttl,
            clock_skew: 60,
        })
    }

    fn keys(list: &str) -> Keys {
        parse_key_list(list, "test").unwrap()
    }

    #[test]
    fn keygen_prints_a_key() {
        let out = with_io(b"", 0, keygen);
        out.result.unwrap();
        let text = std::str::from_utf8(&out.stdout).unwrap();
        assert_eq!(text.len(), KEY_TEXT_LEN + 1);
        assert!(text.ends_with('\n'));
        Key::from_base64(text.trim_end()).unwrap();
    }

    #[test]
    fn round_trip_and_ttl() {
        let ring = keys(K1);
        let message: Vec<u8> = (0..=255).collect();
        let out = with_io(&message, 1000, |io| encrypt(&ring, io));
        out.result.unwrap();
        assert_eq!(out.stdout.last(), Some(&b'\n'));
        let token = out.stdout;

        let out = with_io(&token, 1060, |io| decrypt(&ring, ttl(60), false, io));
        out.result.unwrap();
        assert_eq!(out.stdout, message);

        let out = with_io(&token, 1061, |io| decrypt(&ring, ttl(60), false, io));
        let err = out.result.unwrap_err();
        assert_eq!(err.to_string(), "token expired: made 61 s ago, TTL is 60 s");
        assert!(out.stdout.is_empty());

        let out = with_io(&token, 900, |io| decrypt(&ring, ttl(60), false, io));
        assert_eq!(
            out.result.unwrap_err().downcast::<Rejected>().unwrap(),
            Rejected::FromTheFuture {
                ahead: 100,
                skew: 60
            }
        );
        // A larger allowance takes it.
        let wide = Some(Ttl {
            ttl: 60,
            clock_skew: 100,
        });
        let out = with_io(&token, 900, |io| decrypt(&ring, wide, false, io));
        assert_eq!(out.stdout, message);

        // With the wrong key, an old token is invalid, not expired.
        let out = with_io(&token, 5000, |io| decrypt(&keys(K2), ttl(60), false, io));
        assert_eq!(
            out.result.unwrap_err().downcast::<Rejected>().unwrap(),
            Rejected::Invalid
        );
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn rotate_keeps_message_and_time() {
        let old = keys(K2);
        let both = keys(&format!("{K1},{K2}"));
        let out = with_io(b"hello", 1234, |io| encrypt(&old, io));
        let token = out.stdout;
        let out = with_io(&token, 9999, |io| rotate(&both, true, io));
        out.result.unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr,
            "host-chat: token was made with key 2 of 2 (test, key 2); now under the primary key (test, key 1)\n"
        );
        let new = keys(K1);
        let rotated = out.stdout;
        assert_eq!(new.ring.timestamp(rotated.trim_ascii()), Ok(1234));
        let out = with_io(&rotated, 0, |io| decrypt(&new, None, false, io));
        assert_eq!(out.stdout, b"hello");
    }

    #[test]
    fn garbage_is_invalid_and_nothing_is_no_input() {
        let short: Vec<&[u8]> = vec![b"gAAAA", b"g", b"gAAAAABr", &[b'A'; 51], &[b'A'; 52]];
        for input in short.into_iter().chain([&[0xff; 200][..], &[b'A'; 100]]) {
            for rotating in [false, true] {
                let out = with_io(input, 0, |io| {
                    if rotating {
                        rotate(&keys(K1), false, io)
                    } else {
                        decrypt(&keys(K1), None, false, io)
                    }
                });
                let err = out.result.unwrap_err();
                assert_eq!(
                    err.downcast::<Rejected>().unwrap(),
                    Rejected::Invalid,
                    "{} bytes, rotate {rotating}",
                    input.len()
                );
                assert!(out.stdout.is_empty());
            }
        }
        for input in [&b""[..], b"  \n", b"\r\n\t"] {
            let out = with_io(input, 0, |io| decrypt(&keys(K1), None, false, io));
            assert!(out.result.unwrap_err().is::<NoInput>());
            let out = with_io(input, 0, |io| rotate(&keys(K1), false, io));
            assert!(out.result.unwrap_err().is::<NoInput>());
        }
    }

    #[test]
    fn standard_alphabet_tokens_are_read() {
        let ring = keys(K1);
        let mut token = None;
        // Find a token that has both `-` and `_` (most do).
        for _ in 0..64 {
            let out = with_io(b"alphabet", 1000, |io| encrypt(&ring, io));
            let text = String::from_utf8(out.stdout).unwrap();
            if text.contains('-') && text.contains('_') {
                token = Some(text);
                break;
            }
        }
        let token = token.unwrap();
        let standard = token.replace('-', "+").replace('_', "/");
        let out = with_io(standard.as_bytes(), 1000, |io| {
            decrypt(&ring, None, false, io)
        });
        assert_eq!(out.stdout, b"alphabet");
        let out = with_io(standard.as_bytes(), 1000, |io| rotate(&ring, false, io));
        let rotated = String::from_utf8(out.stdout).unwrap();
        assert!(!rotated.contains(['+', '/']), "rotate writes base64url");
    }
}
