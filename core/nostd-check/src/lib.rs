//! Proof that `chat-core` links with no `std` and no global allocator.
//!
//! Built on its own for a bare-metal target, where there is neither:
//!
//! ```text
//! cargo build -p chat-core-nostd-check --target thumbv7em-none-eabihf --release
//! ```
//!
//! This is a `staticlib`, so rustc has to produce everything a firmware image would link:
//! if `chat-core` or any of its dependencies pulled in `std` the build would fail with
//! "can't find crate for `std`", and if anything pulled in `alloc` it would fail for want
//! of a `#[global_allocator]`. The exported functions below call every token operation
//! into caller or stack buffers, so none of that code can be dropped before the check.
//!
//! On the host (`cargo test --workspace`, `cargo clippy --all-targets`) it is an ordinary
//! library that links `std`, and has no panic handler of its own.
#![cfg_attr(target_os = "none", no_std)]
// `#[unsafe(no_mangle)]` is what keeps the exported functions (and so all of chat-core's
// code they reach) in the library, and the `unsafe_code` lint counts it as unsafe code,
// since two exported symbols could clash at link time. This crate has no unsafe block.
#![allow(unsafe_code)]

use chat_core::fernet::{Error, IV_LEN, Key, KeyRing, TtlCheck, plaintext_buf_len, token_len};

/// Bare metal has no panic runtime: a firmware image supplies this, so the check does.
/// chat-core reports every failure as an `Error`, but the handler must exist to link.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Longest message the exported functions take.
pub const MESSAGE_MAX: usize = 64;
/// Room for the token of a [`MESSAGE_MAX`]-byte message.
pub const TOKEN_MAX: usize = token_len(MESSAGE_MAX);
/// Room for the plaintext of a [`TOKEN_MAX`]-byte token.
pub const PLAIN_MAX: usize = plaintext_buf_len(TOKEN_MAX);

/// The Fernet spec's `generate` vector, checked by [`chat_core_nostd_selftest`].
const SPEC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const SPEC_TIMESTAMP: u64 = 499_162_800;
/// Within the vector's 60 s TTL, and just past it.
const SPEC_NOW: u64 = 499_162_801;
const SPEC_LATE: u64 = 499_162_861;
const SPEC_TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";

/// A C-style error code for each [`Error`]; lengths are returned as non-negative values.
fn code(error: Error) -> isize {
    match error {
        Error::InvalidToken => -1,
        Error::Expired => -2,
        Error::FromTheFuture => -3,
        Error::BufferTooSmall => -4,
    }
}

fn length(len: usize) -> isize {
    isize::try_from(len).unwrap_or(-4)
}

fn ttl_check(check_ttl: bool, ttl: u64, now: u64) -> Option<TtlCheck> {
    if check_ttl {
        TtlCheck::new(ttl, now)
    } else {
        None
    }
}

/// Copies `plaintext` to the front of `out`, returning its length or an error code.
fn deliver(plaintext: &[u8], out: &mut [u8; PLAIN_MAX]) -> isize {
    match out.get_mut(..plaintext.len()) {
        Some(dst) => {
            dst.copy_from_slice(plaintext);
            length(plaintext.len())
        }
        None => code(Error::BufferTooSmall),
    }
}

/// Encrypts `message[..len]`; returns the token length in `out`, or an error code.
#[unsafe(no_mangle)]
pub extern "C" fn chat_core_encrypt(
    key: &[u8; 32],
    message: &[u8; MESSAGE_MAX],
    len: usize,
    timestamp: u64,
    iv: &[u8; IV_LEN],
    out: &mut [u8; TOKEN_MAX],
) -> isize {
    let Some(message) = message.get(..len) else {
        return code(Error::BufferTooSmall);
    };
    match Key::from_bytes(key).encrypt_with_iv(message, timestamp, *iv, out) {
        Ok(token) => length(token.len()),
        Err(e) => code(e),
    }
}

/// Opens `token[..len]` into `out`; returns the plaintext length, or an error code.
#[unsafe(no_mangle)]
pub extern "C" fn chat_core_decrypt(
    key: &[u8; 32],
    token: &[u8; TOKEN_MAX],
    len: usize,
    check_ttl: bool,
    ttl: u64,
    now: u64,
    out: &mut [u8; PLAIN_MAX],
) -> isize {
    let Some(token) = token.get(..len) else {
        return code(Error::InvalidToken);
    };
    match Key::from_bytes(key).decrypt(token, ttl_check(check_ttl, ttl, now), out) {
        Ok(opened) => length(opened.plaintext.len()),
        Err(e) => code(e),
    }
}

/// Opens `buf[..len]` where it lies, then copies the plaintext to `out`.
#[unsafe(no_mangle)]
pub extern "C" fn chat_core_decrypt_in_place(
    key: &[u8; 32],
    buf: &mut [u8; TOKEN_MAX],
    len: usize,
    check_ttl: bool,
    ttl: u64,
    now: u64,
    out: &mut [u8; PLAIN_MAX],
) -> isize {
    let Some(token) = buf.get_mut(..len) else {
        return code(Error::InvalidToken);
    };
    match Key::from_bytes(key).decrypt_in_place(token, ttl_check(check_ttl, ttl, now)) {
        Ok(opened) => deliver(opened.plaintext, out),
        Err(e) => code(e),
    }
}

/// A ring of `primary` and `older` (a `heapless` vector inside: no allocation).
fn ring(primary: &[u8; 32], older: &[u8; 32]) -> KeyRing<1> {
    let mut ring = KeyRing::new(Key::from_bytes(primary));
    // A ring of capacity one has room for one older key.
    let _ = ring.push(Key::from_bytes(older));
    ring
}

/// Opens `token[..len]` with either key; stores which (0 = primary) in `key_index`.
#[unsafe(no_mangle)]
pub extern "C" fn chat_core_keyring_decrypt(
    primary: &[u8; 32],
    older: &[u8; 32],
    token: &[u8; TOKEN_MAX],
    len: usize,
    out: &mut [u8; PLAIN_MAX],
    key_index: &mut usize,
) -> isize {
    let Some(token) = token.get(..len) else {
        return code(Error::InvalidToken);
    };
    match ring(primary, older).decrypt(token, None, out) {
        Ok((opened, index)) => {
            *key_index = index;
            length(opened.plaintext.len())
        }
        Err(e) => code(e),
    }
}

/// Re-encrypts `token[..len]`, made with either key, under `primary`; returns the new
/// token's length in `out`.
#[unsafe(no_mangle)]
pub extern "C" fn chat_core_keyring_rotate(
    primary: &[u8; 32],
    older: &[u8; 32],
    token: &[u8; TOKEN_MAX],
    len: usize,
    iv: &[u8; IV_LEN],
    out: &mut [u8; TOKEN_MAX],
) -> isize {
    let Some(token) = token.get(..len) else {
        return code(Error::InvalidToken);
    };
    match ring(primary, older).rotate_with_iv(token, *iv, out) {
        Ok(rotated) => length(rotated.token.len()),
        Err(e) => code(e),
    }
}

/// Runs the spec's `generate` vector and a round trip through every operation, on the
/// stack; true if all agree. Callable from firmware (or an emulator) as a smoke test.
#[unsafe(no_mangle)]
pub extern "C" fn chat_core_nostd_selftest() -> bool {
    let Ok(key) = Key::from_base64(SPEC_KEY) else {
        return false;
    };
    let iv: [u8; IV_LEN] = core::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
    let mut token = [0u8; TOKEN_MAX];
    let made = match key.encrypt_with_iv(b"hello", SPEC_TIMESTAMP, iv, &mut token) {
        Ok(text) => text.len(),
        Err(_) => return false,
    };
    if token.get(..made) != Some(SPEC_TOKEN.as_bytes()) {
        return false;
    }

    let mut plain = [0u8; PLAIN_MAX];
    let fresh = key
        .decrypt(
            SPEC_TOKEN.as_bytes(),
            TtlCheck::new(60, SPEC_NOW),
            &mut plain,
        )
        .is_ok_and(|d| d.plaintext == b"hello" && d.timestamp == SPEC_TIMESTAMP);
    let expired = key
        .decrypt(
            SPEC_TOKEN.as_bytes(),
            TtlCheck::new(60, SPEC_LATE),
            &mut plain,
        )
        .err()
        == Some(Error::Expired);
    let in_place = token
        .get_mut(..made)
        .and_then(|text| key.decrypt_in_place(text, None).ok())
        .is_some_and(|d| d.plaintext == b"hello");

    let mut ring = KeyRing::<1>::new(Key::from_bytes(&[0x42; 32]));
    if ring.push(key).is_err() {
        return false;
    }
    let mut rotated = [0u8; TOKEN_MAX];
    let reopened = match ring.rotate_with_iv(SPEC_TOKEN.as_bytes(), [9; IV_LEN], &mut rotated) {
        Ok(r) if r.key_index == 1 => ring
            .primary()
            .decrypt(r.token.as_bytes(), None, &mut plain)
            .is_ok_and(|d| d.plaintext == b"hello" && d.timestamp == SPEC_TIMESTAMP),
        _ => false,
    };
    fresh && expired && in_place && reopened
}
