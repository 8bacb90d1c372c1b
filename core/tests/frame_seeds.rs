//! The frame seeds in `fuzz/seeds/frame_decode/` were written by
//! `fuzz/make-frame-seeds.py` from PROTOCOL.md alone: a second implementation of the
//! layout. Every one must parse, and emit back to exactly the same bytes.

use chat_core::wire::{Plaintext, Repr};
use std::path::Path;

#[test]
fn every_seed_written_from_the_protocol_text_parses_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frame_decode");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("the seeds") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match Plaintext::parse(&bytes) {
            Ok(Plaintext::Frame(repr)) => {
                let mut out = vec![0u8; bytes.len()];
                assert_eq!(repr.emit(&mut out), Ok(bytes.len()), "{name}");
                assert_eq!(out, bytes, "{name} emits back the same bytes");
                assert_eq!(Repr::parse(&out), Ok(repr));
            }
            Ok(Plaintext::Legacy(text)) => assert_eq!(name, "legacy", "{text}"),
            Err(e) => panic!("{name}: {e}"),
        }
        seen += 1;
    }
    assert!(seen >= 20, "one seed per kind: {seen}");
}

/// The examples PROTOCOL.md gives, byte for byte.
#[test]
fn the_protocol_texts_examples_are_what_the_code_writes() {
    use chat_core::wire::{Body, Repr, VERSION};
    let hex = |text: &str| -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let session = 0x0102_0304_0506_0708;
    let emit = |body| {
        let mut buf = [0u8; 128];
        let len = Repr { session, body }.emit(&mut buf).unwrap();
        buf[..len].to_vec()
    };
    assert_eq!(
        emit(Body::Chat {
            msg_id: 1,
            text: "hi"
        }),
        hex("C1 03 01 02 03 04 05 06 07 08 00 00 00 01 00 02 68 69")
    );
    assert_eq!(
        emit(Body::Ack {
            next_seq: 4,
            selective: 0b10,
            presence: 2
        }),
        hex(
            "C1 06 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 02 \
             00 00 00 02"
        )
    );
    let join = emit(Body::Join {
        version: VERSION,
        nick: "ann",
        room: "lobby",
        window: 16,
        resume: None,
    });
    let mut expected = hex("C1 0E 01 02 03 04 05 06 07 08 02 03 61 6E 6E 05 6C 6F 62 62 79 10");
    expected.extend([0u8; 16]);
    expected.push(41);
    expected.extend([0u8; 41]);
    assert_eq!(join, expected);
    assert_eq!(join.len(), 80);
}
