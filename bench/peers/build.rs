//! Sets `cfg(have_mosquitto)` when mosquitto starts here (or on CI, where it must), so
//! that the harness tests are reported ignored, with the install command, where it is
//! missing: the same probe as the root `tests/build.rs`.

use std::process::{Command, Stdio};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rustc-check-cfg=cfg(have_mosquitto)");
    let on_ci = std::env::var_os("CI").is_some_and(|ci| !ci.is_empty());
    // `mosquitto -h` prints its usage and exits non-zero: starting is enough.
    let present = Command::new("mosquitto")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if on_ci || present {
        println!("cargo::rustc-cfg=have_mosquitto");
    }
}
