//! Arbitrary bytes as a token's plaintext: `Plaintext::parse`, `Repr::parse` and
//! `Frame::new_checked` must never panic, and every frame they accept must be canonical:
//! emitting the parsed frame gives back exactly the input, of `buffer_len` bytes.
#![no_main]

use chat_core::wire::{Frame, Plaintext, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = Frame::new_checked(bytes).map(|f| (f.kind(), f.session(), f.body().len()));
    let plaintext = Plaintext::parse(bytes);
    match Repr::parse(bytes) {
        Ok(repr) => {
            assert_eq!(plaintext, Ok(Plaintext::Frame(repr)));
            let mut out = vec![0u8; bytes.len()];
            let len = repr
                .emit(&mut out)
                .expect("a parsed frame emits into its own size");
            assert_eq!(len, repr.buffer_len());
            assert_eq!(&out[..len], bytes, "parse/emit round trip is exact");
            if len > 0 {
                assert!(repr.emit(&mut out[..len - 1]).is_err());
            }
        }
        Err(_) => {
            if let Ok(Plaintext::Frame(_)) = plaintext {
                panic!("Plaintext accepted a frame Repr refused");
            }
        }
    }
});
