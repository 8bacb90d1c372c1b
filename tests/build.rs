//! Finds which outside tools this machine has, so that a test that needs a missing one is
//! reported as *ignored* (with the reason and the install command) rather than passing
//! without running.
//!
//! Each probe sets `cfg(have_NAME)` when the tool works; tests say
//! `#[cfg_attr(not(have_NAME), ignore = "needs ...")]`. On CI (`CI` set and not empty)
//! every cfg is set whatever the probes find: there the tests must run, and fail loudly
//! if a tool is missing.
//!
//! A tool installed after the tests were built is seen after `cargo clean -p e2e-tests`
//! (or any change to this file).

use std::path::Path;
use std::process::{Command, Stdio};

/// Whether a tool works here.
type Probe = fn() -> bool;

/// `(cfg name, its probe)`.
const PROBES: &[(&str, Probe)] = &[
    ("have_python", python_cryptography),
    ("have_tmux", || runs("tmux", &["-V"])),
    ("have_qemu_arm", qemu_arm),
    ("have_nats_server", || runs("nats-server", &["--version"])),
    ("have_mosquitto", || runs("mosquitto", &["-h"])),
    ("have_tap", tap),
    ("have_netns", netns),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in ["CI", "PYTHON", "PATH"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let on_ci = std::env::var_os("CI").is_some_and(|ci| !ci.is_empty());
    for (name, probe) in PROBES {
        println!("cargo::rustc-check-cfg=cfg({name})");
        if on_ci || probe() {
            println!("cargo::rustc-cfg={name}");
        }
    }
}

/// Whether `program args` starts and exits 0 (a tool that prints its usage and exits
/// non-zero, like `mosquitto -h`, counts as present when it starts).
fn runs(program: &str, args: &[&str]) -> bool {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) => status.success() || program == "mosquitto",
        Err(_) => false,
    }
}

fn python_cryptography() -> bool {
    let python = std::env::var("PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    runs(&python, &["-c", "import cryptography.fernet"])
}

/// `qemu-system-arm` and the Rust target the emulated board is built for.
fn qemu_arm() -> bool {
    runs("qemu-system-arm", &["--version"]) && has_rust_target("thumbv7m-none-eabi")
}

fn has_rust_target(target: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .is_some_and(|sysroot| {
            Path::new(sysroot.trim())
                .join("lib/rustlib")
                .join(target)
                .is_dir()
        })
}

/// A private network namespace with its own loopback (`unshare -rn`, as root or through a
/// user namespace): where a test may listen on the default ports (12345, 12346) without
/// touching the machine's.
fn netns() -> bool {
    runs("unshare", &["-rn", "sh", "-c", "ip link set lo up"])
}

/// Root (to create TAP devices) and the TUN/TAP driver.
fn tap() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .is_some_and(|uid| uid.trim() == "0");
    root && Path::new("/dev/net/tun").exists() && runs("ip", &["-V"])
}
