//! Live interop with Python's `cryptography` (the reference Fernet): tokens and keys
//! cross both ways, through the `host-chat` CLI and through chat_core directly.
//!
//! Ignored (the summary says why) when python3 or `cryptography` is missing, unless
//! `$CI` is set: then the tests run and fail (see `tests/build.rs`).

use chat_core::fernet::{Error, Key, KeyRing, TtlCheck, plaintext_buf_len, token_len};
use e2e_tests::{SplitMix, TempDir, hex, host_chat, now, python, run_with, unhex};
use serde_json::{Value, json};

const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

fn open(key: &str, token: &str, ttl: Option<TtlCheck>) -> Result<(Vec<u8>, u64), Error> {
    let key = Key::from_base64(key).unwrap();
    let mut out = vec![0; plaintext_buf_len(token.len())];
    key.decrypt(token.as_bytes(), ttl, &mut out)
        .map(|opened| (opened.plaintext.to_vec(), opened.timestamp))
}

fn seal(key: &str, message: &[u8], at: u64) -> String {
    let key = Key::from_base64(key).unwrap();
    let mut out = vec![0; token_len(message.len())];
    key.encrypt(message, at, &mut rand::rng(), &mut out)
        .unwrap()
        .to_owned()
}

fn cli_decrypt(key_file: &std::path::Path, token: &str) -> Vec<u8> {
    let out = run_with(
        host_chat().args(["decrypt", "--key-file"]).arg(key_file),
        token,
    );
    out.success().stdout
}

fn cli_encrypt(key_file: &std::path::Path, message: &[u8]) -> String {
    let out = run_with(
        host_chat().args(["encrypt", "--key-file"]).arg(key_file),
        message,
    );
    out.success().stdout_text().trim_end().to_owned()
}

fn py_decrypt(keys: &[&str], token: &str, ttl: Option<u64>, now: Option<u64>) -> Value {
    json!({"op": "decrypt", "keys": keys, "token": token, "ttl": ttl, "now": now})
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// The messages of the random-size cases: fixed seed, sizes 0 to 8 KiB, and the edges.
fn messages() -> Vec<Vec<u8>> {
    let mut rng = SplitMix(0x5eed_f00d);
    let mut sizes = vec![0, 1, 15, 16, 17, 31, 32, 8191, 8192];
    while sizes.len() < 50 {
        sizes.push(rng.up_to(8192) as usize);
    }
    sizes.into_iter().map(|len| rng.bytes(len)).collect()
}

#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn python_keys_and_tokens_work_here() {
    let py = python();
    let dir = TempDir::new("py-to-rust");
    let key = text(&py.one(json!({"op": "generate_key"}))["key"]).to_owned();
    Key::from_base64(&key).expect("a Python key loads");
    let k = dir.file("k", format!("{key}\n"));

    let at = now();
    let messages = messages();
    let ops: Vec<Value> = messages
        .iter()
        .map(|m| json!({"op": "encrypt", "key": key, "msg": hex(m), "at": at}))
        .collect();
    let tokens = py.batch(&ops);
    for (message, token) in messages.iter().zip(&tokens) {
        let token = text(&token["token"]);
        assert_eq!(open(&key, token, None), Ok((message.clone(), at)));
        assert!(
            cli_decrypt(&k, token) == *message,
            "{} bytes",
            message.len()
        );
    }
}

#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn our_tokens_work_in_python() {
    let py = python();
    let dir = TempDir::new("rust-to-py");
    // A key of ours, from the CLI.
    let out = run_with(host_chat().arg("keygen"), "").success();
    let key = out.stdout_text().trim_end().to_owned();
    let k = dir.file("k", &key);

    let at = now();
    let messages = messages();
    let mut ops = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        // Half the tokens straight from chat_core, half from the CLI.
        let token = if i % 2 == 0 {
            seal(&key, message, at)
        } else {
            cli_encrypt(&k, message)
        };
        ops.push(py_decrypt(&[&key], &token, None, None));
        ops.push(json!({"op": "timestamp", "keys": [key], "token": token}));
    }
    let answers = py.batch(&ops);
    for (message, answer) in messages.iter().zip(answers.chunks(2)) {
        let [opened, stamp] = answer else {
            unreachable!()
        };
        assert_eq!(opened["ok"], true, "{} bytes: {opened}", message.len());
        assert!(
            unhex(text(&opened["msg"])) == *message,
            "{} bytes",
            message.len()
        );
        let stamp = stamp["timestamp"].as_u64().unwrap();
        assert!((at..=at + 5).contains(&stamp), "{stamp} vs {at}");
    }
}

#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn rotation_agrees_with_multifernet() {
    let py = python();
    let dir = TempDir::new("rotate");
    let keys = py.batch(&[json!({"op": "generate_key"}), json!({"op": "generate_key"})]);
    let (new, old) = (text(&keys[0]["key"]), text(&keys[1]["key"]));
    let both = dir.file("both", format!("{new}\n{old}\n"));
    let made = 1_600_000_000;
    let message = b"rotate me";

    let original = py.one(json!({"op": "encrypt", "key": old, "msg": hex(message), "at": made}));
    let original = text(&original["token"]);
    let theirs = py.one(json!({"op": "rotate", "keys": [new, old], "token": original}));
    let theirs = text(&theirs["token"]).to_owned();
    let out = run_with(
        host_chat().args(["rotate", "--key-file"]).arg(&both),
        original,
    );
    let ours = out.success().stdout_text().trim_end().to_owned();

    // Python's rotated token opens here with only the new key, timestamp kept...
    let new_only = dir.file("new", new);
    assert_eq!(cli_decrypt(&new_only, &theirs), message);
    assert_eq!(open(new, &theirs, None), Ok((message.to_vec(), made)));
    let ring = KeyRing::<0>::new(Key::from_base64(new).unwrap());
    assert_eq!(ring.timestamp(theirs.as_bytes()), Ok(made));

    // ...and ours in Python.
    let answers = py.batch(&[
        py_decrypt(&[new], &ours, None, None),
        json!({"op": "timestamp", "keys": [new], "token": ours}),
        json!({"op": "timestamp", "keys": [old], "token": ours}),
        // Python rotating our rotated token again is a no-op in content.
        json!({"op": "rotate", "keys": [new, old], "token": ours}),
    ]);
    assert_eq!(answers[0], json!({"ok": true, "msg": hex(message)}));
    assert_eq!(answers[1], json!({"ok": true, "timestamp": made}));
    assert_eq!(answers[2]["ok"], false, "the old key no longer opens it");
    assert_eq!(
        open(new, text(&answers[3]["token"]), None),
        Ok((message.to_vec(), made))
    );
}

#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn ttl_is_judged_alike() {
    let py = python();
    let dir = TempDir::new("ttl");
    let k = dir.file("k", K1);
    let now = now();
    let made = now - 100;
    let message = b"a hundred seconds old";

    let theirs = py.one(json!({"op": "encrypt", "key": K1, "msg": hex(message), "at": made}));
    let theirs = text(&theirs["token"]).to_owned();
    let ours = seal(K1, message, made);

    let mut ops = Vec::new();
    for token in [&theirs, &ours] {
        // Rejected by both at ttl 60, accepted by both at ttl 200.
        assert_eq!(open(K1, token, TtlCheck::new(60, now)), Err(Error::Expired));
        assert_eq!(
            open(K1, token, TtlCheck::new(200, now)),
            Ok((message.to_vec(), made))
        );
        // The edges: exactly `ttl` old passes, one second more does not.
        assert!(open(K1, token, TtlCheck::new(100, now)).is_ok());
        assert_eq!(open(K1, token, TtlCheck::new(99, now)), Err(Error::Expired));
        for ttl in [60, 200, 100, 99] {
            ops.push(py_decrypt(&[K1], token, Some(ttl), Some(now)));
        }
    }
    let answers = py.batch(&ops);
    for answer in answers.chunks(4) {
        assert_eq!(answer[0], json!({"ok": false, "error": "InvalidToken"}));
        assert_eq!(answer[1], json!({"ok": true, "msg": hex(message)}));
        assert_eq!(answer[2]["ok"], true);
        assert_eq!(answer[3]["ok"], false);
    }

    // The CLI, on the real clock (a second may tick in between).
    let decrypt_ttl = |ttl: &str, token: &str| {
        run_with(
            host_chat()
                .args(["decrypt", "--ttl", ttl, "--key-file"])
                .arg(&k),
            token,
        )
    };
    for token in [&theirs, &ours] {
        let line = decrypt_ttl("60", token).failure(1);
        assert!(
            line.starts_with("host-chat: token expired: made 10"),
            "{line}"
        );
        assert_eq!(decrypt_ttl("200", token).success().stdout, message);
    }
}

/// Token text at the edges, Python's `cryptography` against `host-chat decrypt`:
/// both take one line ending after the token and the standard base64 alphabet; Python
/// also takes whitespace and stray characters anywhere, which host-chat refuses (one
/// spelling per token, PROTOCOL.md "Datagrams"; the `decrypt` tool trims whitespace
/// around the token only).
#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn token_text_at_the_edges_against_python() {
    let py = python();
    let dir = TempDir::new("py-token-text");
    let k = dir.file("k", format!("{K1}\n"));
    let (token, message) = (0..200)
        .map(|i| {
            let message = format!("edge {i}");
            (seal(K1, message.as_bytes(), now()), message)
        })
        .find(|(t, _)| t.contains('-') && t.contains('_'))
        .expect("a token with - and _");
    let standard = token.replace('-', "+").replace('_', "/");
    let inner_space = format!("{} {}", &token[..40], &token[40..]);
    let cases = [
        (format!("{token}\n"), true),
        (format!("{token}\r\n"), true),
        (standard, true),
        (inner_space, false),
        (format!("{}!{}", &token[..40], &token[40..]), false),
    ];
    let ops: Vec<Value> = cases
        .iter()
        .map(|(text, _)| py_decrypt(&[K1], text, None, None))
        .collect();
    for ((text, ours), python) in cases.iter().zip(py.batch(&ops)) {
        assert_eq!(python["ok"], true, "Python takes {text:?}: {python}");
        let out = run_with(
            host_chat().args(["decrypt", "--key-file"]).arg(&k),
            text.as_str(),
        );
        if *ours {
            assert_eq!(out.success().stdout, message.as_bytes(), "{text:?}");
        } else {
            assert_eq!(out.code(), 1, "{text:?} is refused here");
        }
    }
    // In the codec (what datagrams go through): one line ending, nothing else.
    assert_eq!(
        open(K1, &format!("{token}\r\n"), None).map(|(m, _)| m),
        Ok(message.clone().into_bytes())
    );
    assert_eq!(
        open(K1, &token.replace('-', "+"), None),
        Err(Error::InvalidToken)
    );
}
