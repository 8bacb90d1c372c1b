//! Puts the memory layout where the linker finds it as `memory.x` (memory-small.x, or
//! memory-mps2.x for the `board-an385` image), and links cortex-m-rt's script.
//!
//! Neither layout may be *named* `memory.x` in this directory: the linker looks for
//! link.x's `INCLUDE memory.x` in the directory it runs in (this one) before the search
//! path, so such a file would win over the one chosen here. (It did: the board image was
//! linked with the small part's 20 KiB of RAM, its stack ran into the statics and
//! overwrote the millisecond counter.)

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let memory = if std::env::var_os("CARGO_FEATURE_BOARD_AN385").is_some() {
        "memory-mps2.x"
    } else {
        "memory-small.x"
    };
    std::fs::copy(memory, out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-small.x");
    println!("cargo:rerun-if-changed=memory-mps2.x");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumb") {
        println!("cargo:rustc-link-arg=-Tlink.x");
    }
}
