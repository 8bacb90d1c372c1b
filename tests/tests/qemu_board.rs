//! The firmware image on an emulated board: `firmware-sim/image` built for QEMU's
//! `mps2-an385` (Cortex-M3, `--features board-an385`: its LAN9118 Ethernet driver,
//! smoltcp with ARP), run by `qemu-system-arm` on QEMU's user-mode network, chatting
//! with a real `host-chat server` on 127.0.0.1 (the board's 10.0.2.2) and a `host-chat
//! client` as the other member.
//!
//! Needs `qemu-system-arm` (Debian/Ubuntu: `apt-get install qemu-system-arm`) and the
//! `thumbv7m-none-eabi` Rust target (`rustup target add thumbv7m-none-eabi`): without
//! them the test is ignored (see `tests/build.rs`), except on CI, where it runs and fails.
//!
//! The image is built once (release, into `<target dir>/firmware-image`); the port, a
//! fresh key and a 256-bit seed for its CSPRNG (QEMU's boards have no TRNG) reach it on
//! QEMU's semihosting command line (`-append`).

use chat_core::fernet::{KEY_TEXT_LEN, Key};
use e2e_tests::{
    ChatServer, Running, host_chat, is_message, is_presence, run, wait_seen, workspace_root,
};
use serde_json::Value;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Waits on loopback and in the emulator (ARP, then the join, take milliseconds).
const QUICK: Duration = Duration::from_secs(15);
/// Building the image from cold: its dependencies in release with LTO, on a small,
/// possibly busy CI machine (a bound on a hang, not a speed claim: 15-70 s seen).
const BUILD: Duration = Duration::from_secs(300);
const TARGET: &str = "thumbv7m-none-eabi";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Where this test's build goes: beside the test binary's own target directory.
fn image_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<test>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("firmware-image"))
        .unwrap_or_else(|| workspace_root().join("target").join("firmware-image"))
}

/// Builds the board image.
fn board_image() -> PathBuf {
    let target_dir = image_target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root().join("firmware-sim").join("image"))
        .args(["build", "--release", "--features", "board-an385"])
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    let started = Instant::now();
    let out = run(&mut cmd, io::empty(), BUILD);
    let stderr = out.stderr_text();
    if !out.status.success() {
        panic!(
            "building the board image failed ({}):\n{stderr}",
            out.status
        );
    }
    eprintln!("board image built in {:.1?}", started.elapsed());
    target_dir
        .join(TARGET)
        .join("release")
        .join("firmware-image")
}

fn fresh_key() -> String {
    let key = Key::generate(&mut rand::rng());
    let mut text = [0u8; KEY_TEXT_LEN];
    key.to_base64(&mut text).to_owned()
}

fn server(key: &str) -> (Running, u16) {
    let server = ChatServer::start(key, &[]);
    (server.process, server.addr.port())
}

/// QEMU running the image: its stdout is the firmware's semihosting output.
fn board(image: &PathBuf, port: u16, key: &str) -> Running {
    let seed: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let append = format!("port={port} key={key} seed={seed} secs=60");
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-machine", "mps2-an385", "-nographic"])
        .args(["-nic", "user,model=lan9118"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(image)
        .args(["-append", &append]);
    Running::spawn("board", &mut cmd)
}

/// The first JSON event already seen that satisfies `wanted`, else the next one to
/// come (recording every JSON line on the way): the order of events that need not come
/// in order does not matter.
#[track_caller]
fn wait(process: &mut Running, seen: &mut Vec<Value>, wanted: impl FnMut(&Value) -> bool) -> Value {
    wait_seen(process, QUICK, seen, wanted)
}

const BOARD_LINES: [&str; 3] = [
    "hello from the board",
    "reading 1: temp 21.5 C",
    "reading 2: temp 21.7 C",
];

#[test]
#[cfg_attr(
    not(have_qemu_arm),
    ignore = "needs qemu-system-arm (apt-get install qemu-system-arm) and the thumbv7m-none-eabi target (rustup target add thumbv7m-none-eabi)"
)]
fn emulated_board_chats_over_its_lan9118_through_qemu_user_networking() {
    let started = Instant::now();
    let image = board_image();
    let key = fresh_key();
    let (_server, port) = server(&key);
    let mut ann = Running::spawn(
        "ann",
        host_chat()
            .args(["client", "--json", "--nick", "ann"])
            .arg(format!("127.0.0.1:{port}"))
            .env("HOST_CHAT_KEY", &key),
    );
    let mut ann_seen = Vec::new();
    wait(&mut ann, &mut ann_seen, |v| v["event"] == "joined");

    let spawned = Instant::now();
    let mut board = board(&image, port, &key);
    let mut seen = Vec::new();
    let boot = wait(&mut board, &mut seen, |v| v["event"] == "boot");
    assert_eq!(boot["nic"], "lan9118", "{boot}");
    assert_eq!(boot["ip"], "10.0.2.15/24", "{boot}");
    assert_eq!(boot["server"], format!("10.0.2.2:{port}"), "{boot}");

    // No RTC: the device clock (SysTick, on QEMU's virtual clock, which follows the
    // host's while the emulator runs) starts at zero, so it reads no more than the time
    // since QEMU was started; the time comes from the server.
    let synced = wait(&mut board, &mut seen, |v| v["event"] == "clock_synced");
    let device_ms = synced["device_ms"].as_u64().expect("device_ms");
    assert!(
        device_ms <= spawned.elapsed().as_millis() as u64,
        "{synced}"
    );
    let unix = synced["unix"].as_u64().expect("unix");
    assert!(unix.abs_diff(unix_now()) <= 30, "{synced}");
    wait(&mut board, &mut seen, |v| v["event"] == "joined");

    // The board's lines reach ann, in order.
    for text in BOARD_LINES {
        wait(&mut ann, &mut ann_seen, |v| is_message(v, "board", text));
    }
    // And each was acknowledged to the board.
    for id in 1..=BOARD_LINES.len() {
        wait(&mut board, &mut seen, |v| {
            v["event"] == "delivered" && v["id"] == id
        });
    }

    // Ann's line reaches the board, on QEMU's stdout.
    ann.send_line("hi board");
    wait(&mut board, &mut seen, |v| is_message(v, "ann", "hi board"));
    board.wait_for(QUICK, |line| line == "board got: ann: hi board");

    // "/exit" (typed `//exit`: `/exit` alone is the client's own command) ends QEMU.
    ann.send_line("//exit");
    let exit = wait(&mut board, &mut seen, |v| v["event"] == "exit");
    assert_eq!(exit["reason"], "asked", "{exit}");
    // Painted RAM left between the statics and the stack: a stack that reached the
    // statics has overwritten them (it once did, with the wrong memory layout).
    let stack_used = exit["stack_used"].as_u64().expect("stack_used");
    let stack_size = exit["stack_size"].as_u64().expect("stack_size");
    assert!(
        stack_used < stack_size,
        "the stack reached the statics: {exit}"
    );
    eprintln!("board image stack: {stack_used} of {stack_size} bytes used");
    let status = board.wait_exit(QUICK).expect("QEMU exits after /exit");
    assert!(status.success(), "{status}\n{}", board.report());
    assert!(!board.is_running());
    let closed = seen.iter().any(|v| v["event"] == "closed");
    assert!(closed, "the board left the room: {seen:#?}");

    // Ann sees the board leave: everything it sent has been relayed by then.
    wait(&mut ann, &mut ann_seen, |v| is_presence(v, "board", "left"));
    let from_board: Vec<(&str, u64)> = ann_seen
        .iter()
        .filter(|v| v["event"] == "message" && v["nick"] == "board")
        .map(|v| (v["text"].as_str().unwrap_or(""), v["seq"].as_u64().unwrap()))
        .collect();
    let texts: Vec<&str> = from_board.iter().map(|(text, _)| *text).collect();
    assert_eq!(texts, BOARD_LINES, "exactly once, in order: {ann_seen:#?}");
    assert!(
        from_board.windows(2).all(|w| w[0].1 < w[1].1),
        "{from_board:?}"
    );
    let got = seen
        .iter()
        .filter(|v| is_message(v, "ann", "hi board"))
        .count();
    assert_eq!(got, 1, "{seen:#?}");

    eprintln!("qemu_board: {:.1?} in all", started.elapsed());
}
