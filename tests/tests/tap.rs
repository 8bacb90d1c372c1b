//! The device application through real Linux network devices, against a real
//! `host-chat server`, with a `host-chat client` as the other member:
//!
//! - `firmware-embassy` (the embassy-net driver on embassy's std executor) over a TAP
//!   device (Ethernet frames, ARP), through `embassy-net-tuntap`;
//! - `firmware-sim --tap` (the raw-smoltcp driver) over a TUN device (IP packets).
//!
//! Each test makes its own network namespace, so nothing touches this machine's own
//! network: the device (TAP or TUN) is created in it with the host end's address
//! (10.42.0.1/24; the device's stack is 10.42.0.2), and the server, the client and the
//! device program all run in it (`ip netns exec`, which execs the program: every PID
//! the test holds is the program's own). However a test ends, [`Running`] kills its
//! processes by PID, then [`Netns`] deletes the device and the namespace.
//!
//! Needs root, `/dev/net/tun` and iproute2's `ip` (see `tests/build.rs`); without them
//! the tests are ignored, except on CI, where they run and fail.

use chat_core::fernet::{KEY_TEXT_LEN, Key};
use e2e_tests::{Running, bin, bin_of, is_message, is_presence, run_with, wait_seen};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every wait: generous (ARP, then the join, take milliseconds; a busy machine more).
const QUICK: Duration = Duration::from_secs(20);
/// The host end of the link, where the server listens.
const HOST_IP: &str = "10.42.0.1";
const HOST_CIDR: &str = "10.42.0.1/24";
/// The device's address on the link.
const DEVICE_CIDR: &str = "10.42.0.2/24";
/// The lines the device says.
const DEVICE_LINES: [&str; 3] = [
    "hello from the device",
    "reading 1: temp 21.5 C",
    "reading 2: temp 21.7 C",
];

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn fresh_key() -> String {
    let key = Key::generate(&mut rand::rng());
    let mut text = [0u8; KEY_TEXT_LEN];
    key.to_base64(&mut text).to_owned()
}

/// Runs `ip ARGS`, panicking with its stderr if it fails.
#[track_caller]
fn ip(args: &[&str]) {
    let out = run_with(Command::new("ip").args(args), "");
    assert!(
        out.status.success(),
        "ip {}: {}\n{}",
        args.join(" "),
        out.status,
        out.stderr_text()
    );
}

/// A network namespace of this test's own, with one TUN or TAP device in it; both
/// deleted on drop.
struct Netns {
    name: String,
    device: &'static str,
    mode: &'static str,
}

impl Netns {
    /// A fresh namespace with loopback up and a `mode` (`tap` or `tun`) device named
    /// `device`, up, with [`HOST_CIDR`] on the host end.
    fn with_device(mode: &'static str, device: &'static str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hc-e2e-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        // From here on, drop cleans up whatever was made.
        let netns = Self { name, device, mode };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &netns.name,
            "tuntap",
            "add",
            "dev",
            device,
            "mode",
            mode,
        ]);
        ip(&["-n", &netns.name, "addr", "add", HOST_CIDR, "dev", device]);
        ip(&["-n", &netns.name, "link", "set", device, "up"]);
        netns
    }

    /// `program` run inside the namespace.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        // As `e2e_tests::host_chat`: no key or key file of the caller's.
        let nowhere = std::env::temp_dir().join("e2e-tests-no-home");
        cmd.env_remove("HOST_CHAT_KEY")
            .env("HOME", &nowhere)
            .env("XDG_CONFIG_HOME", &nowhere);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Not `ip()`: no panic while a test may be panicking already.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        let (name, device, mode) = (self.name.as_str(), self.device, self.mode);
        quiet(&["-n", name, "tuntap", "del", "dev", device, "mode", mode]);
        quiet(&["netns", "del", name]);
    }
}

/// Asserts that `process` is the program itself, not an `ip` still between setns and
/// exec, so that killing its PID kills the program.
#[track_caller]
fn assert_is(process: &Running, comm: &str) {
    let seen = std::fs::read_to_string(format!("/proc/{}/comm", process.pid())).unwrap_or_default();
    // /proc/PID/comm holds the first 15 bytes of the name.
    let seen = seen.trim();
    assert!(
        !seen.is_empty() && comm.starts_with(seen),
        "PID {} is {seen:?}",
        process.pid()
    );
}

/// `host-chat server` in `netns` on [`HOST_IP`] and a port of its choosing.
fn server(netns: &Netns, key: &str) -> (Running, u16) {
    let mut cmd = netns.command(&bin("host-chat"));
    cmd.args(["server", "--bind", &format!("{HOST_IP}:0"), "--print-port"])
        .env("HOST_CHAT_KEY", key);
    let mut server = Running::spawn("server", &mut cmd);
    let port: u16 = server
        .wait_for(QUICK, |_| true)
        .trim()
        .parse()
        .expect("the server prints its port first");
    assert_is(&server, "host-chat");
    (server, port)
}

/// `host-chat client --json` in `netns`, joined.
fn member(netns: &Netns, key: &str, nick: &str, port: u16, seen: &mut Vec<Value>) -> Running {
    let mut cmd = netns.command(&bin("host-chat"));
    cmd.args(["client", "--json", "--nick", nick])
        .arg(format!("{HOST_IP}:{port}"))
        .env("HOST_CHAT_KEY", key);
    let mut client = Running::spawn(nick, &mut cmd);
    wait(&mut client, seen, |v| v["event"] == "joined");
    client
}

/// The first JSON event already seen that satisfies `wanted`, else the next one to
/// come (recording every JSON line on the way).
#[track_caller]
fn wait(process: &mut Running, seen: &mut Vec<Value>, wanted: impl FnMut(&Value) -> bool) -> Value {
    wait_seen(process, QUICK, seen, wanted)
}

/// `nick`'s lines among `seen` messages, in the order seen, with their room seq.
fn lines_from(seen: &[Value], nick: &str) -> Vec<(String, u64)> {
    seen.iter()
        .filter(|v| v["event"] == "message" && v["nick"] == nick)
        .map(|v| {
            let text = v["text"].as_str().expect("text").to_owned();
            (text, v["seq"].as_u64().expect("seq"))
        })
        .collect()
}

/// Every line of `nick` reached `seen` exactly once, in order, with rising seqs.
#[track_caller]
fn assert_exactly_once_in_order(seen: &[Value], nick: &str, expected: &[&str]) {
    let lines = lines_from(seen, nick);
    let texts: Vec<&str> = lines.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(texts, expected, "exactly once, in order: {seen:#?}");
    assert!(lines.windows(2).all(|w| w[0].1 < w[1].1), "{lines:?}");
}

#[test]
#[cfg_attr(
    not(have_tap),
    ignore = "needs root, /dev/net/tun and iproute2's ip (TAP devices and a network namespace)"
)]
fn embassy_device_chats_through_a_tap_device() {
    let netns = Netns::with_device("tap", "hctap0");
    let key = fresh_key();
    let (_server, port) = server(&netns, &key);
    let mut ann_seen = Vec::new();
    let mut ann = member(&netns, &key, "ann", port, &mut ann_seen);

    let mut cmd = netns.command(&bin_of("firmware-embassy", "firmware-embassy"));
    cmd.args(["--tap", "hctap0", "--address", DEVICE_CIDR])
        .args(["--server", &format!("{HOST_IP}:{port}")])
        .args(["--nick", "emb", "--secs", "60"])
        .env("HOST_CHAT_KEY", &key);
    for line in DEVICE_LINES {
        cmd.args(["--say", line]);
    }
    let mut device = Running::spawn("firmware-embassy", &mut cmd);
    let mut seen = Vec::new();
    let boot = wait(&mut device, &mut seen, |v| v["event"] == "boot");
    assert_is(&device, "firmware-embassy");
    assert_eq!(boot["driver"], "embassy-net", "{boot}");
    assert_eq!(boot["ip"], DEVICE_CIDR, "{boot}");

    // No RTC: the device clock starts at zero and the time comes from the server.
    let synced = wait(&mut device, &mut seen, |v| v["event"] == "clock_synced");
    let unix = synced["unix"].as_u64().expect("unix");
    assert!(unix.abs_diff(unix_now()) <= 30, "{synced}");
    wait(&mut device, &mut seen, |v| v["event"] == "joined");

    // The device's lines reach ann, each acknowledged to the device.
    for text in DEVICE_LINES {
        wait(&mut ann, &mut ann_seen, |v| is_message(v, "emb", text));
    }
    for id in 1..=DEVICE_LINES.len() {
        wait(&mut device, &mut seen, |v| {
            v["event"] == "delivered" && v["id"] == id
        });
    }

    // Ann's lines reach the device, in order; "/exit" (typed `//exit`: `/exit` alone
    // is the client's own command) makes it leave and exit 0.
    ann.send_line("hi device");
    ann.send_line("second line");
    wait(&mut device, &mut seen, |v| {
        is_message(v, "ann", "second line")
    });
    ann.send_line("//exit");
    let exit = wait(&mut device, &mut seen, |v| v["event"] == "exit");
    assert_eq!(exit["reason"], "asked", "{exit}");
    let status = device.wait_exit(QUICK).expect("firmware-embassy exits");
    assert!(status.success(), "{status}\n{}", device.report());
    assert!(seen.iter().any(|v| v["event"] == "closed"), "{seen:#?}");

    // Ann sees the device leave: everything it sent was relayed by then.
    wait(&mut ann, &mut ann_seen, |v| is_presence(v, "emb", "left"));
    assert_exactly_once_in_order(&ann_seen, "emb", &DEVICE_LINES);
    assert_exactly_once_in_order(&seen, "ann", &["hi device", "second line", "/exit"]);
    assert_exactly_once_in_order(&seen, "emb", &DEVICE_LINES);
}

#[test]
#[cfg_attr(
    not(have_tap),
    ignore = "needs root, /dev/net/tun and iproute2's ip (TUN devices and a network namespace)"
)]
fn firmware_sim_chats_through_a_tun_device() {
    let netns = Netns::with_device("tun", "hctun0");
    let key = fresh_key();
    let (_server, port) = server(&netns, &key);
    let mut ann_seen = Vec::new();
    let mut ann = member(&netns, &key, "ann", port, &mut ann_seen);

    // `--tap` opens a TUN device (IP packets, smoltcp's Medium::Ip).
    let mut cmd = netns.command(&bin("firmware-sim"));
    cmd.args(["--tap", "hctun0", "--device-ip", DEVICE_CIDR])
        .args(["--server", &format!("{HOST_IP}:{port}")])
        .args(["--nick", "sim", "--json"])
        .env("HOST_CHAT_KEY", &key);
    let mut device = Running::spawn("firmware-sim", &mut cmd);
    let mut seen = Vec::new();
    let synced = wait(&mut device, &mut seen, |v| v["event"] == "clock_synced");
    assert_is(&device, "firmware-sim");
    let unix = synced["unix"].as_u64().expect("unix");
    assert!(unix.abs_diff(unix_now()) <= 30, "{synced}");
    wait(&mut device, &mut seen, |v| v["event"] == "joined");

    for (id, text) in DEVICE_LINES.iter().enumerate() {
        device.send_line(text);
        wait(&mut device, &mut seen, |v| {
            v["event"] == "delivered" && v["id"] == id + 1
        });
    }
    for text in DEVICE_LINES {
        wait(&mut ann, &mut ann_seen, |v| is_message(v, "sim", text));
    }
    ann.send_line("hi sim");
    ann.send_line("second line");
    wait(&mut device, &mut seen, |v| {
        is_message(v, "ann", "second line")
    });

    // End of input: the device leaves once everything is taken, and exits 0.
    device.close_stdin();
    let exit = wait(&mut device, &mut seen, |v| v["event"] == "exit");
    assert_eq!(exit["reason"], "done", "{exit}");
    let status = device.wait_exit(QUICK).expect("firmware-sim exits");
    assert!(status.success(), "{status}\n{}", device.report());

    wait(&mut ann, &mut ann_seen, |v| is_presence(v, "sim", "left"));
    assert_exactly_once_in_order(&ann_seen, "sim", &DEVICE_LINES);
    assert_exactly_once_in_order(&seen, "ann", &["hi sim", "second line"]);
    assert_exactly_once_in_order(&seen, "sim", &DEVICE_LINES);
}
