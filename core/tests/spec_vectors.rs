//! The Fernet spec's own acceptance vectors (`vectors/`, copied from the spec with
//! credit): every `generate`, `verify` and `invalid` case, through every entry point.

use chat_core::fernet::{Error, Key, KeyRing, TtlCheck, plaintext_buf_len, token_len};
use serde_json::Value;

fn cases(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(!cases.is_empty(), "{path} has no cases");
    cases
}

/// Unix seconds of an RFC 3339 time such as `1985-10-26T01:20:00-07:00`.
fn unix_seconds(rfc3339: &str) -> u64 {
    let b = rfc3339.as_bytes();
    let num = |range: std::ops::Range<usize>| -> i64 { rfc3339[range].parse().unwrap() };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let offset = match b[19] {
        b'Z' => 0,
        sign => {
            let minutes = num(20..22) * 60 + num(23..25);
            if sign == b'-' { -minutes } else { minutes }
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    u64::try_from(seconds).unwrap()
}

fn field<'a>(case: &'a Value, name: &str) -> &'a str {
    case[name]
        .as_str()
        .unwrap_or_else(|| panic!("missing {name} in {case}"))
}

#[test]
fn rfc3339_parser_is_right() {
    assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), 0);
    assert_eq!(unix_seconds("1985-10-26T01:20:00-07:00"), 499_162_800);
    assert_eq!(unix_seconds("2000-03-01T00:00:00+01:00"), 951_865_200);
}

#[test]
fn generate_vectors_are_reproduced_byte_for_byte() {
    for case in cases("generate") {
        let key = Key::from_base64(field(&case, "secret")).unwrap();
        let src = field(&case, "src").as_bytes();
        let iv: [u8; 16] = case["iv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| u8::try_from(v.as_u64().unwrap()).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let now = unix_seconds(field(&case, "now"));
        let expected = field(&case, "token");

        let mut out = vec![0u8; token_len(src.len())];
        let token = key.encrypt_with_iv(src, now, iv, &mut out).unwrap();
        assert_eq!(token, expected);
        assert_eq!(token.len(), token_len(src.len()));

        // In place gives the same token, from a message composed at the buffer's front.
        let mut buf = vec![0u8; token_len(src.len())];
        buf[..src.len()].copy_from_slice(src);
        let mut fixed_iv = FixedRng(iv);
        let token = key
            .encrypt_in_place(&mut buf, src.len(), now, &mut fixed_iv)
            .unwrap();
        assert_eq!(token, expected);
    }
}

#[test]
fn verify_vectors_open_through_every_entry_point() {
    for case in cases("verify") {
        let key = Key::from_base64(field(&case, "secret")).unwrap();
        let token = field(&case, "token").as_bytes();
        let now = unix_seconds(field(&case, "now"));
        let ttl = TtlCheck::new(case["ttl_sec"].as_u64().unwrap(), now);
        let src = field(&case, "src").as_bytes();

        let mut out = vec![0u8; plaintext_buf_len(token.len())];
        let opened = key.decrypt(token, ttl, &mut out).unwrap();
        assert_eq!(opened.plaintext, src);
        let timestamp = opened.timestamp;

        let mut buf = token.to_vec();
        let opened = key.decrypt_in_place(&mut buf, ttl).unwrap();
        assert_eq!((opened.plaintext, opened.timestamp), (src, timestamp));

        assert_eq!(key.timestamp(token), Ok(timestamp));

        let mut ring = KeyRing::<2>::new(Key::from_bytes(&[9; 32]));
        ring.push(key.clone()).unwrap();
        let (opened, index) = ring.decrypt(token, ttl, &mut out).unwrap();
        assert_eq!((opened.plaintext, index), (src, 1));
    }
}

#[test]
fn invalid_vectors_are_rejected_through_every_entry_point() {
    for case in cases("invalid") {
        let desc = field(&case, "desc");
        let key = Key::from_base64(field(&case, "secret")).unwrap();
        let token = field(&case, "token").as_bytes();
        let now = unix_seconds(field(&case, "now"));
        let ttl = TtlCheck::new(case["ttl_sec"].as_u64().unwrap(), now);
        let expected = match desc {
            "expired TTL" => Error::Expired,
            "far-future TS (unacceptable clock skew)" => Error::FromTheFuture,
            _ => Error::InvalidToken,
        };

        let mut out = vec![0u8; plaintext_buf_len(token.len()).max(64)];
        assert_eq!(key.decrypt(token, ttl, &mut out), Err(expected), "{desc}");
        let mut buf = token.to_vec();
        assert_eq!(key.decrypt_in_place(&mut buf, ttl), Err(expected), "{desc}");
        let ring = KeyRing::<0>::new(key.clone());
        assert_eq!(ring.decrypt(token, ttl, &mut out), Err(expected), "{desc}");

        // Without a TTL, only the time-based cases become valid.
        let untimed = key.decrypt(token, None, &mut out);
        match expected {
            Error::InvalidToken => {
                assert_eq!(untimed, Err(Error::InvalidToken), "{desc}");
                assert_eq!(
                    key.timestamp(token).is_ok(),
                    desc.contains("padding") || desc.contains("IV"),
                    "{desc}"
                );
            }
            _ => assert!(untimed.is_ok(), "{desc}"),
        }
    }
}

/// An "RNG" that hands out one fixed IV, to reproduce a vector through the RNG path.
struct FixedRng([u8; 16]);

impl rand_core::TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unimplemented!()
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unimplemented!()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.copy_from_slice(&self.0[..dst.len()]);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}
