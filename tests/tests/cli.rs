//! The `host-chat` token tools, run as a user would: keygen, encrypt, decrypt, rotate.

use chat_core::fernet::{KEY_TEXT_LEN, Key, KeyRing, TtlCheck, plaintext_buf_len, token_len};
use e2e_tests::{Output, SplitMix, TempDir, host_chat, now, run, run_with};
use std::io::{self, Read};
use std::time::Duration;

const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

const INVALID: &str = "host-chat: invalid token (wrong key, or corrupted)";

fn keygen() -> String {
    let out = run_with(host_chat().arg("keygen"), "").success();
    let text = out.stdout_text();
    assert!(text.ends_with('\n'), "{text:?}");
    text.trim_end().to_owned()
}

fn encrypt(key_file: &std::path::Path, message: &[u8]) -> Vec<u8> {
    let out = run_with(
        host_chat().arg("encrypt").arg("--key-file").arg(key_file),
        message,
    );
    out.success().stdout
}

fn decrypt(key_file: &std::path::Path, token: impl Into<Vec<u8>>) -> Output {
    run_with(
        host_chat().arg("decrypt").arg("--key-file").arg(key_file),
        token,
    )
}

/// A token made directly with chat_core, stamped `at`.
fn token_at(key: &str, message: &[u8], at: u64) -> String {
    let key = Key::from_base64(key).unwrap();
    let mut out = vec![0; token_len(message.len())];
    key.encrypt(message, at, &mut rand::rng(), &mut out)
        .unwrap()
        .to_owned()
}

#[test]
fn keygen_prints_a_fresh_valid_key() {
    let a = keygen();
    let b = keygen();
    assert_eq!(a.len(), KEY_TEXT_LEN);
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'='),
        "{a}"
    );
    Key::from_base64(&a).unwrap();
    assert_ne!(a, b, "two keys should differ");
}

#[test]
fn round_trips() {
    let dir = TempDir::new("round-trips");
    let k = dir.file("k", format!("{}\n", keygen()));
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mib = SplitMix(7).bytes(1 << 20);
    for message in [&every_byte[..], b"", b"\n", b" hi \r\n", &mib] {
        let token = encrypt(&k, message);
        assert_eq!(token.len(), token_len(message.len()) + 1);
        assert_eq!(token.last(), Some(&b'\n'));
        assert!(token.starts_with(b"gAAAAA"));
        let out = decrypt(&k, &token[..]).success();
        assert!(
            out.stdout == message,
            "round trip of {} bytes",
            message.len()
        );
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn token_is_stamped_now_and_opens_in_chat_core() {
    let dir = TempDir::new("stamp");
    let k = dir.file("k", K1);
    let before = now();
    let token = encrypt(&k, b"hello");
    let after = now();
    let key = Key::from_base64(K1).unwrap();
    let token = token.trim_ascii();
    let mut plain = vec![0; plaintext_buf_len(token.len())];
    let opened = key
        .decrypt(token, TtlCheck::new(5, after), &mut plain)
        .unwrap();
    assert_eq!(opened.plaintext, b"hello");
    assert!((before..=after).contains(&opened.timestamp));
}

#[test]
fn whitespace_around_the_token_is_ignored() {
    let dir = TempDir::new("whitespace");
    let k = dir.file("k", K1);
    let token = token_at(K1, b"x", now());
    let out = decrypt(&k, format!(" \t\n{token}\r\n\n")).success();
    assert_eq!(out.stdout, b"x");
}

#[test]
fn wrong_key_and_corruption_are_invalid() {
    let dir = TempDir::new("wrong-key");
    let k1 = dir.file("k1", K1);
    let k2 = dir.file("k2", K2);
    let token = encrypt(&k1, b"secret");

    assert_eq!(decrypt(&k2, &token[..]).failure(1), INVALID);
    // Also with a TTL, even for an old token: a wrong key is not an expired token.
    let old = token_at(K1, b"secret", now() - 3600);
    let out = run_with(
        host_chat()
            .args(["decrypt", "--ttl", "60", "--key-file"])
            .arg(&k2),
        old,
    );
    assert_eq!(out.failure(1), INVALID);

    let mut corrupted = token.clone();
    corrupted[40] = if corrupted[40] == b'A' { b'B' } else { b'A' };
    assert_eq!(decrypt(&k1, &corrupted[..]).failure(1), INVALID);
    let out = run_with(host_chat().arg("rotate").arg("--key-file").arg(&k2), token);
    assert_eq!(out.failure(1), INVALID);
}

/// Anything that is not a token is an invalid token (1) for `decrypt` and `rotate`
/// alike, whatever its length: input is judged before any buffer is sized. No input at
/// all is an input problem (3), as the exit-status table says.
#[test]
fn garbage_is_invalid_and_no_input_is_an_input_problem() {
    let dir = TempDir::new("garbage");
    let k = dir.file("k", K1);
    let token = encrypt(&k, b"secret");
    let cut = token.trim_ascii();
    let mut garbage: Vec<Vec<u8>> = vec![
        b"gAAA".to_vec(),
        b"g".to_vec(),
        b"hello".to_vec(),
        vec![0xff; 120],
        vec![b'A'; 51],
        vec![b'A'; 100],
    ];
    for len in [1, 10, 51, 52, 53, 99, cut.len() - 4, cut.len() - 1] {
        garbage.push(cut[..len].to_vec());
    }
    for input in &garbage {
        for command in ["decrypt", "rotate"] {
            let out = run_with(
                host_chat().arg(command).arg("--key-file").arg(&k),
                input.clone(),
            );
            assert_eq!(
                out.failure(1),
                INVALID,
                "{command} of {} bytes",
                input.len()
            );
        }
    }
    for input in ["", "\n", " \r\n\t "] {
        for command in ["decrypt", "rotate"] {
            let out = run_with(host_chat().arg(command).arg("--key-file").arg(&k), input);
            assert_eq!(
                out.failure(3),
                "host-chat: no token on standard input (it is empty or only whitespace)",
                "{command} of {input:?}"
            );
        }
    }
    // An empty message is a message: its token round-trips.
    let empty = encrypt(&k, b"");
    assert_eq!(decrypt(&k, empty).success().stdout, b"");
}

/// Token text as documented: one line ending after the token (from `echo`, Python's
/// `print`, a line-oriented sender) and the standard base64 alphabet (`+` and `/`, as
/// Python reads them) are accepted; the output of `rotate` is always base64url.
#[test]
fn token_text_line_endings_and_the_standard_alphabet() {
    let dir = TempDir::new("token-text");
    let k = dir.file("k", K1);
    // A token with both `-` and `_` in it, to map.
    let (token, message) = (0..200)
        .map(|i| {
            let message = format!("message {i}");
            (token_at(K1, message.as_bytes(), now()), message)
        })
        .find(|(t, _)| t.contains('-') && t.contains('_'))
        .expect("a token with - and _");
    for ending in ["\n", "\r\n"] {
        let out = decrypt(&k, format!("{token}{ending}")).success();
        assert_eq!(out.stdout, message.as_bytes());
    }
    let standard = token.replace('-', "+").replace('_', "/");
    assert_eq!(
        decrypt(&k, standard.clone()).success().stdout,
        message.as_bytes()
    );
    let out = run_with(host_chat().args(["rotate", "--key-file"]).arg(&k), standard).success();
    let rotated = out.stdout_text().trim_end().to_owned();
    assert!(!rotated.contains(['+', '/']), "{rotated}");
    assert_eq!(decrypt(&k, rotated).success().stdout, message.as_bytes());
}

/// A key in the standard base64 alphabet (`openssl rand -base64 32`) is the same key;
/// a malformed one is named with what is wrong, never shown.
#[test]
fn keys_in_either_alphabet_and_key_errors_that_name_the_problem() {
    let dir = TempDir::new("key-text");
    // K1 has `_` and `-`: its standard spelling has `/` and `+`.
    let standard = K1.replace('-', "+").replace('_', "/");
    assert_ne!(standard, K1);
    let k = dir.file("k", &standard);
    let token = token_at(K1, b"same key", now());
    assert_eq!(decrypt(&k, token.clone()).success().stdout, b"same key");
    let cases = [
        (&K1[..43], "expected 44 characters of base64url, got 43"),
        (
            &format!("{K1}{K1}")[..],
            "expected 44 characters of base64url, got 88",
        ),
        (&token[..], "this is a Fernet token, not a key"),
        (
            &format!("{}!=", &K1[..42])[..],
            "characters that are not base64url",
        ),
        (
            &format!("{}B=", &K1[..42])[..],
            "44 characters of base64, but not the text of 32 bytes",
        ),
    ];
    for (bad, why) in cases {
        let k = dir.file("bad", bad);
        let line = decrypt(&k, token.clone()).failure(2);
        assert!(line.contains("line 1: not a Fernet key: "), "{line}");
        assert!(line.contains(why), "{bad}: {line}");
        assert!(!line.contains(&bad[..20]), "the key is shown: {line}");
    }
}

/// A key file open to others works for the token tools, with an ssh-like warning; the
/// output is unchanged.
#[test]
fn unprotected_key_files_are_warned_about() {
    let dir = TempDir::new("unprotected");
    let k = dir.file("k", K1);
    e2e_tests::set_mode(&k, 0o644);
    let token = token_at(K1, b"x", now());
    let out = decrypt(&k, token).success();
    assert_eq!(out.stdout, b"x");
    let warning = out.stderr_text();
    assert!(
        warning.starts_with("host-chat: warning: key file ")
            && warning.contains("is open to group and others (mode 0644)")
            && warning.contains("chmod 600"),
        "{warning}"
    );
    e2e_tests::set_mode(&k, 0o600);
    let out = decrypt(&k, token_at(K1, b"x", now())).success();
    assert!(out.stderr.is_empty());
}

#[test]
fn malformed_keys_are_named_but_never_shown() {
    let dir = TempDir::new("malformed");
    let truncated = &K1[..40];
    let k = dir.file("k", format!("# keys\n{K2}\n{truncated}\n"));
    let token = token_at(K2, b"x", now());
    let line = decrypt(&k, token.as_bytes()).failure(2);
    assert!(line.starts_with("host-chat: key file "), "{line}");
    assert!(line.contains("line 3: not a Fernet key"), "{line}");
    assert!(
        !line.contains(truncated) && !line.contains(&K2[..20]),
        "{line}"
    );

    let out = run_with(
        host_chat()
            .arg("encrypt")
            .env("HOST_CHAT_KEY", format!("{K1},not-a-key")),
        "x",
    );
    let line = out.failure(2);
    assert!(
        line.starts_with("host-chat: HOST_CHAT_KEY, key 2: not a Fernet key"),
        "{line}"
    );
    assert!(
        !line.contains("not-a-key") && !line.contains(&K1[..20]),
        "{line}"
    );

    let empty = dir.file("empty", "# nothing yet\n\n");
    let line = run_with(
        host_chat().arg("encrypt").arg("--key-file").arg(&empty),
        "x",
    )
    .failure(2);
    assert!(line.contains("holds no key"), "{line}");

    let nine = dir.file("nine", [K1; 9].join("\n"));
    let line = run_with(host_chat().arg("encrypt").arg("--key-file").arg(&nine), "x").failure(2);
    assert!(line.contains("holds 9 keys; at most 8"), "{line}");

    let missing = dir.path().join("missing");
    let line = run_with(
        host_chat().arg("encrypt").arg("--key-file").arg(&missing),
        "x",
    )
    .failure(2);
    assert!(
        line.starts_with("host-chat: cannot read key file "),
        "{line}"
    );
}

#[test]
fn no_key_says_how_to_get_one() {
    for command in ["encrypt", "decrypt", "rotate"] {
        let line = run_with(host_chat().arg(command), "").failure(2);
        assert_eq!(
            line,
            "host-chat: no key: pass --key-file PATH or set HOST_CHAT_KEY \
             (make one with `host-chat keygen`)"
        );
    }
}

#[test]
fn keys_from_the_environment() {
    let dir = TempDir::new("env");
    let token = token_at(K2, b"from env", now());
    // Several keys, separated by commas and whitespace; the older one opens the token.
    let out = run_with(
        host_chat()
            .arg("decrypt")
            .env("HOST_CHAT_KEY", format!(" {K1},\n{K2} ")),
        token.clone(),
    );
    assert_eq!(out.success().stdout, b"from env");
    // --key-file wins over the environment.
    let k1 = dir.file("k1", K1);
    let out = run_with(
        host_chat()
            .arg("decrypt")
            .arg("--key-file")
            .arg(&k1)
            .env("HOST_CHAT_KEY", K2),
        token,
    );
    assert_eq!(out.failure(1), INVALID);
    // Encrypt uses the first key.
    let out = run_with(
        host_chat()
            .arg("encrypt")
            .env("HOST_CHAT_KEY", format!("{K2} {K1}")),
        "first",
    );
    let token = out.success().stdout;
    let primary = Key::from_base64(K2).unwrap();
    assert!(primary.timestamp(token.trim_ascii()).is_ok());
}

#[test]
fn ttl() {
    let dir = TempDir::new("ttl");
    let k = dir.file("k", K1);
    let made = now() - 3600;
    let token = token_at(K1, b"old news", made);
    let decrypt_ttl = |ttl: &str| {
        run_with(
            host_chat()
                .args(["decrypt", "--ttl", ttl, "--key-file"])
                .arg(&k),
            token.clone(),
        )
    };
    let line = decrypt_ttl("60").failure(1);
    // The clock may tick between making the token and checking it.
    assert!(
        line == "host-chat: token expired: made 3600 s ago, TTL is 60 s"
            || line == "host-chat: token expired: made 3601 s ago, TTL is 60 s",
        "{line}"
    );
    assert_eq!(decrypt_ttl("7200").success().stdout, b"old news");
    assert_eq!(decrypt(&k, token.as_bytes()).success().stdout, b"old news");

    let future = token_at(K1, b"tomorrow", now() + 86_400);
    let out = run_with(
        host_chat()
            .args(["decrypt", "--ttl", "60", "--key-file"])
            .arg(&k),
        future,
    );
    let line = out.failure(1);
    assert!(
        line.starts_with("host-chat: token is from the future"),
        "{line}"
    );
}

#[test]
fn rotate_to_the_new_primary_keeps_message_and_timestamp() {
    let dir = TempDir::new("rotate");
    // K1 is the new primary; K2 made the old token.
    let both = dir.file("k", format!("# new\n{K1}\n# old\n{K2}\n"));
    let made = 1_500_000_000;
    let message = SplitMix(3).bytes(1000);
    let old = token_at(K2, &message, made);

    let out = run_with(
        host_chat().args(["rotate", "--key-file"]).arg(&both),
        old.clone(),
    );
    let out = out.success();
    assert!(out.stderr.is_empty(), "quiet without --verbose");
    let rotated = out.stdout_text();
    assert!(rotated.ends_with('\n'));
    let rotated = rotated.trim_end();
    assert_eq!(rotated.len(), old.len());
    assert_ne!(rotated, old);

    // Only the new primary is needed now, and the timestamp is the old one.
    let new_only = KeyRing::<0>::new(Key::from_base64(K1).unwrap());
    let mut plain = vec![0; plaintext_buf_len(rotated.len())];
    let (opened, index) = new_only
        .decrypt(rotated.as_bytes(), None, &mut plain)
        .unwrap();
    assert_eq!(
        (opened.plaintext, opened.timestamp, index),
        (&message[..], made, 0)
    );
    assert!(
        Key::from_base64(K2)
            .unwrap()
            .timestamp(rotated.as_bytes())
            .is_err()
    );

    let out = run_with(
        host_chat()
            .args(["rotate", "--verbose", "--key-file"])
            .arg(&both),
        old,
    );
    let out = out.success();
    let note = out.stderr_text();
    assert!(
        note.contains("key 2 of 2") && note.contains("line 4"),
        "{note}"
    );
    assert!(!note.contains(K1) && !note.contains(K2), "{note}");
}

#[test]
fn too_long_input_is_refused() {
    let dir = TempDir::new("too-long");
    let k = dir.file("k", K1);
    let message_limit = 64 << 20;
    let out = run(
        host_chat().args(["encrypt", "--key-file"]).arg(&k),
        io::repeat(b'x').take(message_limit + 1),
        Duration::from_secs(120),
    );
    assert_eq!(
        out.failure(3),
        "host-chat: message too long: the limit is 64 MiB"
    );
    let out = run(
        host_chat().args(["decrypt", "--key-file"]).arg(&k),
        io::repeat(b'A').take(token_len(message_limit as usize) as u64 + 8192),
        Duration::from_secs(120),
    );
    let line = out.failure(3);
    assert!(line.starts_with("host-chat: token too long"), "{line}");
}

#[test]
fn help_teaches() {
    let out = run_with(host_chat().arg("--help"), "").success();
    let help = out.stdout_text();
    for needle in [
        "keygen",
        "encrypt",
        "decrypt",
        "rotate",
        "HOST_CHAT_KEY",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    for command in ["keygen", "encrypt", "decrypt", "rotate"] {
        let out = run_with(host_chat().args([command, "--help"]), "").success();
        let help = out.stdout_text();
        assert!(
            help.contains("Examples:") && help.contains(&format!("host-chat {command}")),
            "{command} --help:\n{help}"
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    for args in [&["decrypt", "--ttl", "soon"][..], &["frobnicate"], &[]] {
        let out = run_with(host_chat().args(args), "");
        assert_eq!(out.code(), 2, "{args:?}: {}", out.stderr_text());
        assert!(out.stdout.is_empty());
    }
}
