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
