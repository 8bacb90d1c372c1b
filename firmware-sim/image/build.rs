//! Puts memory.x where the linker finds it (memory-mps2.x as memory.x for the
//! `board-an385` image), and links cortex-m-rt's script.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let memory = if std::env::var_os("CARGO_FEATURE_BOARD_AN385").is_some() {
        "memory-mps2.x"
    } else {
        "memory.x"
    };
    std::fs::copy(memory, out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=memory-mps2.x");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumb") {
        println!("cargo:rustc-link-arg=-Tlink.x");
    }
}
