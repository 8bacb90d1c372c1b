//! Token codec benchmarks: ours against the `fernet` crate and against the raw primitives
//! a token is made of, all in one run so the ratios are comparable.
//!
//! `cargo bench -p chat-core --bench fernet` (about 2.5 minutes; see BENCHMARKS.md).
//!
//! Every group reports `Throughput::Bytes` of the *message*, so the throughput columns of
//! the primitives and of the token operations can be compared directly; the primitives
//! run over the sizes a token of that message needs (padded ciphertext, header +
//! ciphertext for the MAC, raw token for base64).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    missing_docs
)]

use aes::cipher::array::Array;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use aes::{Aes128Dec, Aes128Enc};
use base64ct::{Base64Url, Encoding};
use chat_core::fernet::{Key, TtlCheck, plaintext_buf_len, token_len};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::Sha256;
use std::hint::black_box;
use std::time::Duration;

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const TIMESTAMP: u64 = 1_700_000_000;
const SIZES: [usize; 5] = [16, 100, 1000, 8 * 1024, 64 * 1024];

/// Header (version, timestamp, IV) and MAC lengths of the spec.
const HEADER_LEN: usize = 25;
const MAC_LEN: usize = 32;

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn padded_len(len: usize) -> usize {
    (len / 16 + 1) * 16
}

fn raw_len(len: usize) -> usize {
    HEADER_LEN + padded_len(len) + MAC_LEN
}

fn label(len: usize) -> String {
    match len {
        n if n >= 1024 && n % 1024 == 0 => format!("{}KiB", n / 1024),
        n => format!("{n}B"),
    }
}

fn key_halves() -> ([u8; 16], [u8; 16]) {
    let mut bytes = [0u8; 32];
    Base64Url::decode(KEY, &mut bytes).unwrap();
    (
        bytes[..16].try_into().unwrap(),
        bytes[16..].try_into().unwrap(),
    )
}

fn encrypt(c: &mut Criterion, len: usize) {
    let key = Key::from_base64(KEY).unwrap();
    let theirs = fernet::Fernet::new(KEY).unwrap();
    let mut group = c.benchmark_group("encrypt");
    let msg = message(len);
    let mut out = vec![0u8; token_len(len)];
    group.throughput(Throughput::Bytes(len as u64));

    let mut rng = StdRng::seed_from_u64(42);
    group.bench_with_input(BenchmarkId::new("ours_rng", label(len)), &msg, |b, msg| {
        b.iter(|| {
            key.encrypt(black_box(msg), TIMESTAMP, &mut rng, &mut out)
                .unwrap()
                .len()
        });
    });
    group.bench_with_input(BenchmarkId::new("ours_iv", label(len)), &msg, |b, msg| {
        b.iter(|| {
            key.encrypt_with_iv(black_box(msg), TIMESTAMP, [7; 16], &mut out)
                .unwrap()
                .len()
        });
    });
    // Reads the clock and the OS RNG (getrandom) itself, keys AES and HMAC on every
    // call and returns a fresh `String`.
    group.bench_with_input(
        BenchmarkId::new("fernet_crate", label(len)),
        &msg,
        |b, msg| {
            b.iter(|| theirs.encrypt(black_box(msg)));
        },
    );
    group.finish();
}

fn decrypt(c: &mut Criterion, len: usize) {
    let key = Key::from_base64(KEY).unwrap();
    let theirs = fernet::Fernet::new(KEY).unwrap();
    let mut group = c.benchmark_group("decrypt");
    let msg = message(len);
    let mut token = vec![0u8; token_len(len)];
    let token = key
        .encrypt_with_iv(&msg, TIMESTAMP, [7; 16], &mut token)
        .unwrap()
        .to_owned();
    assert_eq!(theirs.decrypt(&token).unwrap(), msg);
    let mut out = vec![0u8; plaintext_buf_len(token.len())];
    group.throughput(Throughput::Bytes(len as u64));

    group.bench_with_input(BenchmarkId::new("ours", label(len)), &token, |b, token| {
        b.iter(|| {
            key.decrypt(black_box(token.as_bytes()), None, &mut out)
                .unwrap()
                .plaintext
                .len()
        });
    });
    let ttl = TtlCheck::new(60, TIMESTAMP + 10);
    group.bench_with_input(
        BenchmarkId::new("ours_ttl", label(len)),
        &token,
        |b, token| {
            b.iter(|| {
                key.decrypt(black_box(token.as_bytes()), ttl, &mut out)
                    .unwrap()
                    .plaintext
                    .len()
            });
        },
    );
    // No TTL, but it still reads the clock; keys AES and HMAC on every call, decodes
    // into a `Vec` and returns a fresh `Vec`.
    group.bench_with_input(
        BenchmarkId::new("fernet_crate", label(len)),
        &token,
        |b, token| {
            b.iter(|| theirs.decrypt(black_box(token)).unwrap());
        },
    );
    group.finish();
}

fn primitives(c: &mut Criterion, len: usize) {
    let (signing, encryption) = key_halves();
    let aes_enc = Aes128Enc::new(&encryption.into());
    let aes_dec = Aes128Dec::new(&encryption.into());
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&signing).unwrap();
    let iv = [7u8; 16];
    let mut group = c.benchmark_group("primitives");
    group.throughput(Throughput::Bytes(len as u64));
    let id = label(len);

    // AES-128-CBC over the padded message, key schedule done once (as in `Key`).
    let mut blocks = message(padded_len(len));
    group.bench_function(BenchmarkId::new("aes128cbc_encrypt", &id), |b| {
        b.iter(|| {
            let (chunks, _) = Array::slice_as_chunks_mut(black_box(&mut blocks[..]));
            cbc::Encryptor::<&Aes128Enc>::inner_iv_init(&aes_enc, &iv.into())
                .encrypt_blocks(chunks);
        });
    });
    group.bench_function(BenchmarkId::new("aes128cbc_decrypt", &id), |b| {
        b.iter(|| {
            let (chunks, _) = Array::slice_as_chunks_mut(black_box(&mut blocks[..]));
            cbc::Decryptor::<&Aes128Dec>::inner_iv_init(&aes_dec, &iv.into())
                .decrypt_blocks(chunks);
        });
    });

    // HMAC-SHA256 over header + ciphertext.
    let signed = message(HEADER_LEN + padded_len(len));
    group.bench_function(BenchmarkId::new("hmac_sha256_cloned", &id), |b| {
        b.iter(|| {
            let mut m = mac.clone();
            m.update(black_box(&signed));
            m.finalize().into_bytes()
        });
    });
    group.bench_function(BenchmarkId::new("hmac_sha256_keyed", &id), |b| {
        b.iter(|| {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(black_box(&signing)).unwrap();
            m.update(black_box(&signed));
            m.finalize().into_bytes()
        });
    });

    // Constant-time base64url over the raw token.
    let raw = message(raw_len(len));
    let mut text = vec![0u8; token_len(len)];
    let encoded = Base64Url::encode(&raw, &mut text).unwrap().to_owned();
    group.bench_function(BenchmarkId::new("base64ct_encode", &id), |b| {
        b.iter(|| Base64Url::encode(black_box(&raw), &mut text).unwrap().len());
    });
    let mut decoded = vec![0u8; raw.len()];
    group.bench_function(BenchmarkId::new("base64ct_decode", &id), |b| {
        b.iter(|| {
            Base64Url::decode(black_box(encoded.as_bytes()), &mut decoded)
                .unwrap()
                .len()
        });
    });
    group.finish();
}

/// Size by size, so a token operation and the primitives it is compared with run within
/// seconds of each other: on a shared, loaded machine the ratios stay comparable even
/// when the absolute numbers drift.
fn all(c: &mut Criterion) {
    for len in SIZES {
        encrypt(c, len);
        decrypt(c, len);
        primitives(c, len);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
