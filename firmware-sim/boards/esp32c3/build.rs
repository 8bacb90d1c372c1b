//! Links esp-hal's linker script (as esp-generate's template does).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=-Tlinkall.x");
}
