//! `--help` tells the truth: every default and every limit that the help of every
//! command documents (`[default: X]`, "N to M", "N or more") is held to what the
//! program does, by running it.
//!
//! - Limits: the program runs with the lowest and highest documented value (it must not
//!   refuse them), and with one below and one above (it must exit 2, naming the option).
//! - Defaults: a check per option that observes the default at work (the join a client
//!   makes, the age of a token a server still takes, the figures a benchmark reports...).
//!   The defaults that are ports (12345, 12346) are observed in a private network
//!   namespace (`default_ports_in_a_network_namespace`), never on the machine's own.
//!
//! The table of checks and the help must match both ways: an option documented with a
//! default or a limit and no check fails the test, and so does a check of something the
//! help no longer documents.

use chat_core::fernet::{Key, plaintext_buf_len, token_len};
use e2e_tests::{ChatServer, Running, TempDir, bin_of, host_chat, now, run_with};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const QUICK: Duration = Duration::from_secs(10);

/// The programs and subcommands whose help is read.
const COMMANDS: &[&str] = &[
    "keygen",
    "encrypt",
    "decrypt",
    "rotate",
    "server",
    "client",
    "demo",
    "bench",
    "bench-relay",
    "firmware-sim",
];

/// The command line of `command` (a `host-chat` subcommand, or `firmware-sim`), with the
/// test key in `HOST_CHAT_KEY` and no home of the user's.
fn program(command: &str) -> Command {
    let mut cmd = if command == "firmware-sim" {
        let mut cmd = Command::new(bin_of("firmware-sim", "firmware-sim"));
        let nowhere = std::env::temp_dir().join("e2e-tests-no-home");
        cmd.env("HOME", &nowhere).env("XDG_CONFIG_HOME", &nowhere);
        cmd
    } else {
        let mut cmd = host_chat();
        cmd.arg(command);
        cmd
    };
    cmd.env("HOST_CHAT_KEY", KEY);
    cmd
}

/// A documented range: the lowest value and (if any) the highest.
type Range = (u64, Option<u64>);

/// One option (or argument) with what its help says of its default and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Documented {
    command: String,
    /// `--ttl`, or `SERVER` for an argument.
    name: String,
    default: Option<String>,
    /// The lowest and (if any) highest value.
    range: Option<Range>,
}

/// The options of a `--help` text that document a default or a limit.
fn documented(command: &str, help: &str) -> Vec<Documented> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            in_options = line == "Options:" || line == "Arguments:";
            continue;
        }
        let text = line.trim_start();
        if !in_options || text.is_empty() {
            continue;
        }
        let indent = line.len() - text.len();
        let starts = indent <= 6 && (text.starts_with('-') || text.starts_with('['));
        if starts {
            let name = text
                .split_whitespace()
                .find(|word| word.starts_with("--"))
                .map(|word| word.trim_end_matches(','))
                .or_else(|| {
                    text.split_whitespace()
                        .next()
                        .map(|word| word.trim_matches(['[', ']']))
                })
                .unwrap_or_default()
                .to_owned();
            blocks.push((name, text.to_owned()));
        } else if let Some((_, block)) = blocks.last_mut() {
            block.push(' ');
            block.push_str(text);
        }
    }
    blocks
        .into_iter()
        .filter_map(|(name, text)| {
            let default = text.split_once("[default: ").map(|(_, rest)| {
                rest.split_once(']')
                    .map_or(rest, |(default, _)| default)
                    .to_owned()
            });
            let range = range_in(&text);
            (default.is_some() || range.is_some()).then(|| Documented {
                command: command.to_owned(),
                name,
                default,
                range,
            })
        })
        .collect()
}

/// "N to M" or "N or more" in a help text.
fn range_in(text: &str) -> Option<Range> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || ",;:()".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(3).find_map(|w| {
        let low: u64 = w[0].parse().ok()?;
        match (w[1], w[2]) {
            ("to", high) => Some((low, Some(high.parse().ok()?))),
            ("or", "more") => Some((low, None)),
            _ => None,
        }
    })
}

fn help_of(command: &str) -> String {
    let out = run_with(program(command).arg("--help"), "").success();
    out.stdout_text().to_owned()
}

#[test]
fn the_help_parser_reads_defaults_and_limits() {
    let help = "Options:\n      --ttl <SECONDS>\n          Refuse tokens, 1 to\n          86400. Then\n          \n          [default: 60]\n\n  -c, --clients <N>  Clients, 1 or more\n      --json  Print JSON\nArguments:\n  [SERVER]  The server [default: 127.0.0.1:1]\nKeys:\n  --key-file 1 to 2 [default: x]\n";
    let found = documented("x", help);
    let names: Vec<(&str, Option<&str>, Option<Range>)> = found
        .iter()
        .map(|d| (d.name.as_str(), d.default.as_deref(), d.range))
        .collect();
    assert_eq!(
        names,
        [
            ("--ttl", Some("60"), Some((1, Some(86400)))),
            ("--clients", None, Some((1, None))),
            ("SERVER", Some("127.0.0.1:1"), None),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Limits.

/// What the program made of an option's value.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    /// Exit 2, naming the option: the line it said.
    Refused(String),
}

/// Arguments that make `command` run far enough to judge the option under test.
fn context(command: &str, option: &str) -> Vec<&'static str> {
    match command {
        "server" => vec!["--bind", "127.0.0.1:0"],
        "client" => vec!["127.0.0.1:9", "--json"],
        "demo" => vec!["--json"],
        "decrypt" => vec!["--ttl", "60"],
        // Servers it starts, small, for one line: it ends by itself.
        "bench" if option == "--servers" => vec![
            "--spawn-server",
            "-c",
            "1",
            "-n",
            "1",
            "--server-arg=--max-members",
            "--server-arg=4",
            "--server-arg=--max-rooms",
            "--server-arg=1",
            "--server-arg=--history",
            "--server-arg=16",
        ],
        "bench" => vec!["127.0.0.1:9"],
        "firmware-sim" if option == "--nick" => vec!["--server", "127.0.0.1:9"],
        "firmware-sim" => vec!["--server", "127.0.0.1:9", "--nick", "dev"],
        _ => vec![],
    }
}

/// A value of size `n` for `option`: a name of `n` bytes, else the number.
fn value(option: &str, n: u64) -> String {
    if matches!(option, "--nick" | "--room") {
        "x".repeat(usize::try_from(n).unwrap())
    } else {
        n.to_string()
    }
}

/// Runs `command option value` (in its context) until it exits, or (unless a refusal is
/// expected) 1.5 s pass: then it is killed, having taken the value.
fn judge(command: &str, option: &str, value: &str, refusal_expected: bool) -> Verdict {
    let mut cmd = program(command);
    cmd.args(context(command, option))
        .arg(option)
        .arg(value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the program starts");
    // A refusal comes by itself: wait for it. A program that took the value runs on
    // (a server, a client trying to join): 1.5 s tells. The demo has a server of its
    // own, which it stops when it ends (it does, at the end of its input): never kill
    // it, or its server would outlive it.
    let wait = if command == "demo" || option == "--servers" || refusal_expected {
        QUICK
    } else {
        Duration::from_millis(1500)
    };
    let deadline = Instant::now() + wait;
    let code = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    match code {
        Some(2) if stderr.contains(option) => Verdict::Refused(stderr),
        _ => Verdict::Accepted,
    }
}

/// Holds a documented range to the program: both ends accepted, just outside refused.
fn check_range(d: &Documented) {
    let (low, high) = d.range.expect("a range");
    let (command, option) = (d.command.as_str(), d.name.as_str());
    let mut cases = vec![(low, true)];
    if low > 0 {
        cases.push((low - 1, false));
    }
    match high {
        Some(high) => cases.extend([(high, true), (high + 1, false)]),
        None => cases.push((low + 1000, true)),
    }
    for (n, ok) in cases {
        let verdict = judge(command, option, &value(option, n), !ok);
        if ok {
            assert_eq!(verdict, Verdict::Accepted, "{command} {option} {n}");
        } else {
            assert!(
                matches!(verdict, Verdict::Refused(_)),
                "{command} {option} {n} should be refused: {verdict:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Defaults.

/// A token of `message` under the test key, stamped `at`.
fn token_at(message: &[u8], at: u64) -> String {
    let mut out = vec![0; token_len(message.len())];
    Key::from_base64(KEY)
        .unwrap()
        .encrypt(message, at, &mut rand::rng(), &mut out)
        .unwrap()
        .to_owned()
}

fn json_events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|v| v["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:#?}"))
}

/// The token tools read `HOST_CHAT_KEY` without `--key-file`.
fn token_tools_read_the_environment(_: &Documented) {
    let token = run_with(&mut program("encrypt"), "env key")
        .success()
        .stdout;
    let rotated = run_with(&mut program("rotate"), token).success().stdout;
    let out = run_with(&mut program("decrypt"), rotated).success();
    assert_eq!(out.stdout, b"env key");
}

/// `decrypt` without `--ttl` opens a token of any age.
fn decrypt_takes_any_age(_: &Documented) {
    let out = run_with(&mut program("decrypt"), token_at(b"1970", 1)).success();
    assert_eq!(out.stdout, b"1970");
}

/// `decrypt --ttl 60` takes a token stamped 50 s ahead, not 70 s.
fn decrypt_clock_skew_is_60(_: &Documented) {
    let decrypt = |at: u64| run_with(program("decrypt").args(["--ttl", "60"]), token_at(b"x", at));
    decrypt(now() + 50).success();
    let line = decrypt(now() + 70).failure(1);
    assert!(line.contains("over the 60 s allowed"), "{line}");
}

/// The chat programs read the default key file, and `HOST_CHAT_KEY` before it.
fn chat_reads_the_default_key_file(d: &Documented) {
    let home = TempDir::new("default-key");
    let dir = home.path().join(".config/host-chat");
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = home.file(".config/host-chat/key", format!("{KEY}\n"));
    assert!(key_file.exists());
    let server = ChatServer::start(KEY, &[]);
    let mut cmd = program(&d.command);
    cmd.env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("HOST_CHAT_KEY");
    match d.command.as_str() {
        "server" => {
            cmd.args(["--bind", "127.0.0.1:0", "--print-port"]);
            let mut own = Running::spawn("server", &mut cmd);
            let port: u16 = own.wait_for(QUICK, |_| true).trim().parse().unwrap();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let out = run_with(program("client").args(["--json", &addr.to_string()]), "");
            assert_eq!(out.code(), 0, "{}", out.stderr_text());
        }
        "client" => {
            let out = run_with(cmd.args(["--json", &server.addr.to_string()]), "");
            assert_eq!(out.code(), 0, "{}", out.stderr_text());
        }
        "bench" => {
            let out = run_with(
                cmd.args([&server.addr.to_string(), "-n", "20", "-c", "2", "--json"]),
                "",
            );
            assert_eq!(out.code(), 0, "{}", out.stderr_text());
        }
        "firmware-sim" => {
            let out = run_with(
                cmd.args(["--nick", "dev", "--server", &server.addr.to_string()]),
                "",
            );
            assert_eq!(out.code(), 0, "{}", out.stderr_text());
        }
        other => panic!("no default key file for {other}"),
    }
}

/// The server reports the values in force when it starts.
fn server_setting(d: &Documented) {
    let server = ChatServer::start(KEY, &[]);
    let deadline = Instant::now() + QUICK;
    let wanted = format!("{} {}", d.name, d.default.as_deref().unwrap());
    loop {
        let log = server.process.stderr_text();
        if let Some(line) = log.lines().find(|l| l.starts_with("settings: ")) {
            assert!(line.contains(&wanted), "{line} lacks {wanted}");
            return;
        }
        assert!(Instant::now() < deadline, "no settings line: {log}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The cluster's settings, as a server given `--cluster` reports them when it starts
/// (the broker need not be there: the server waits for it).
fn cluster_setting(d: &Documented) {
    let server = ChatServer::start(KEY, &["--cluster", "nats://127.0.0.1:9"]);
    let deadline = Instant::now() + QUICK;
    let wanted = format!("{} {}", d.name, d.default.as_deref().unwrap());
    loop {
        let log = server.process.stderr_text();
        if let Some(line) = log.lines().find(|l| l.starts_with("cluster: rooms served")) {
            assert!(line.contains(&wanted), "{line} lacks {wanted}");
            return;
        }
        assert!(Instant::now() < deadline, "no cluster line: {log}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The server's sizes, as its start-up line reports what it reserved.
fn server_storage(d: &Documented) {
    let server = ChatServer::start(KEY, &[]);
    let deadline = Instant::now() + QUICK;
    let default = d.default.as_deref().unwrap();
    let wanted = match d.name.as_str() {
        "--max-members" => format!("{default} members"),
        "--max-rooms" => format!("{default} rooms"),
        _ => format!("{default} messages of history per room"),
    };
    loop {
        let log = server.process.stderr_text();
        if let Some(line) = log.lines().find(|l| l.starts_with("room for ")) {
            assert!(line.contains(&wanted), "{line} lacks {wanted}");
            return;
        }
        assert!(Instant::now() < deadline, "no sizes line: {log}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The server's largest datagram is 1232: an 810-byte line (the longest at 1232)
/// reaches the room from a client allowed bigger datagrams, an 811-byte line does not.
fn server_max_datagram_is_1232(_: &Documented) {
    let server = ChatServer::start(KEY, &[]);
    let client = |line: String| {
        run_with(
            program("client").args(["--json", "--max-datagram", "1300", &server.addr.to_string()]),
            format!("{line}\n"),
        )
    };
    let out = client("x".repeat(810));
    assert_eq!(out.code(), 0, "{}", out.stderr_text());
    let out = client("y".repeat(811));
    assert_eq!(out.code(), 1, "{}", out.stdout_text());
}

/// The client's largest datagram is 1232: an 810-byte line goes, an 811-byte one is
/// refused with the limit.
fn client_max_datagram_is_1232(_: &Documented) {
    let server = ChatServer::start(KEY, &[]);
    let out = run_with(
        program("client").args(["--json", &server.addr.to_string()]),
        format!("{}\n{}\n", "x".repeat(810), "y".repeat(811)),
    );
    assert_eq!(out.code(), 1);
    let events = json_events(out.stdout_text());
    assert_eq!(event(&events, "sent")["text"].as_str().unwrap().len(), 810);
    assert_eq!(
        event(&events, "undelivered")["reason"],
        "too long: 811 bytes, at most 810"
    );
}

/// Whether the server takes a legacy (bare text) token stamped `offset` seconds from
/// now. A fresh token follows it on the same socket: the server answers in order, so
/// the first answer is the fresh token's unless the first was taken too (two answers).
fn server_takes_a_token_stamped(server: SocketAddr, offset: i64) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let at = now().checked_add_signed(offset).unwrap();
    for token in [token_at(b"how old?", at), token_at(b"fresh", now())] {
        socket.send_to(token.as_bytes(), server).unwrap();
    }
    let mut buf = [0u8; 2048];
    socket.set_read_timeout(Some(QUICK)).unwrap();
    socket
        .recv_from(&mut buf)
        .expect("the fresh token is answered");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket.recv_from(&mut buf).is_ok()
}

/// The server takes tokens up to 60 s old and 60 s ahead.
fn server_token_age(d: &Documented) {
    let server = ChatServer::start(KEY, &[]);
    let (inside, outside) = match d.name.as_str() {
        "--ttl" => (-55, -65),
        "--clock-skew" => (55, 65),
        other => panic!("{other}"),
    };
    assert!(server_takes_a_token_stamped(server.addr, inside));
    assert!(!server_takes_a_token_stamped(server.addr, outside));
}

/// A relay between a client and a server that re-stamps every token from the server
/// `offset` seconds away from its time: the server's clock as the client sees it.
struct Restamper {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Restamper {
    fn start(server: SocketAddr, offset: i64) -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(server).unwrap();
        for socket in [&front, &back] {
            socket
                .set_read_timeout(Some(Duration::from_millis(5)))
                .unwrap();
        }
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let key = Key::from_base64(KEY).unwrap();
            let mut client = None;
            let mut buf = [0u8; 2048];
            while !running.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    client = Some(from);
                    let _ = back.send(&buf[..n]);
                }
                if let (Ok(n), Some(client)) = (back.recv(&mut buf), client) {
                    let mut plain = vec![0; plaintext_buf_len(n)];
                    let Ok(opened) = key.decrypt(&buf[..n], None, &mut plain) else {
                        continue;
                    };
                    let at = opened.timestamp.checked_add_signed(offset).unwrap();
                    let mut out = vec![0; token_len(opened.plaintext.len())];
                    let token = key
                        .encrypt(opened.plaintext, at, &mut rand::rng(), &mut out)
                        .unwrap();
                    let _ = front.send_to(token.as_bytes(), client);
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Restamper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The client takes the server's tokens up to 60 s old and 60 s ahead: it joins
/// through a relay that shifts them by 55 s, and not by 65 s.
fn client_token_age(d: &Documented) {
    let (inside, outside) = match d.name.as_str() {
        "--ttl" => (-55, -65),
        "--clock-skew" => (55, 65),
        other => panic!("{other}"),
    };
    let server = ChatServer::start(KEY, &[]);
    let joins = |offset: i64| {
        let relay = Restamper::start(server.addr, offset);
        let out = run_with(
            program("client").args(["--json", &relay.addr.to_string()]),
            "",
        );
        match out.code() {
            0 => true,
            1 => false,
            other => panic!("exit {other}: {}", out.stderr_text()),
        }
    };
    assert!(joins(inside), "{} {inside}", d.name);
    assert!(!joins(outside), "{} {outside}", d.name);
}

/// The client's first event names the server it joins, its nick and its room.
fn client_starting(d: &Documented) {
    let mut cmd = program("client");
    cmd.arg("--json").env("USER", "zed");
    match d.name.as_str() {
        "SERVER" => {}
        _ => {
            cmd.arg("127.0.0.1:9");
        }
    }
    let mut client = Running::spawn("client", &mut cmd);
    let starting = client.wait_event(QUICK, "starting");
    client.kill();
    match d.name.as_str() {
        "SERVER" => assert_eq!(starting["server"], "127.0.0.1:12345"),
        "--room" => assert_eq!(starting["room"], "lobby"),
        "--nick" => {
            assert_eq!(starting["nick"], "zed");
            // Without a usable $USER: "guest".
            for user in [None, Some("x".repeat(40))] {
                let mut cmd = program("client");
                cmd.args(["--json", "127.0.0.1:9"]);
                match &user {
                    Some(user) => cmd.env("USER", user),
                    None => cmd.env_remove("USER"),
                };
                let mut client = Running::spawn("client", &mut cmd);
                assert_eq!(client.wait_event(QUICK, "starting")["nick"], "guest");
            }
        }
        other => panic!("{other}"),
    }
}

/// The demo joins room lobby as $USER.
fn demo_joins(d: &Documented) {
    let out = run_with(program("demo").arg("--json").env("USER", "zed"), "").success();
    let events = json_events(out.stdout_text());
    let joined = event(&events, "joined");
    match d.name.as_str() {
        "--nick" => assert_eq!(joined["nick"], "zed"),
        "--room" => assert_eq!(joined["room"], "lobby"),
        other => panic!("{other}"),
    }
}

/// Checked by the one benchmark run with every default ([`bench_with_defaults`]).
fn in_the_default_bench_run(_: &Documented) {}

/// One benchmark with every default: it reports them, and did what they say.
fn bench_with_defaults(documented: &[Documented]) {
    let out = run_with(program("bench").args(["--spawn-server", "--json"]), "").success();
    let report: Value = serde_json::from_str(out.stdout_text().trim()).expect("one JSON object");
    assert_eq!(report["lost"], 0, "{report:#}");
    for d in documented.iter().filter(|d| d.command == "bench") {
        let (field, expected) = match d.name.as_str() {
            // The spawned server; 127.0.0.1:12345 is checked in the namespace.
            "SERVER" => ("server", Value::from("host-chat server")),
            "--clients" => ("clients", 4.into()),
            "--messages" => ("sent", 10_000.into()),
            "--size" => ("size", 64.into()),
            "--rate" => ("rate", Value::Null),
            "--mode" => ("mode", "framed".into()),
            // Framed clients: 16 (legacy and plain ones: 8, see bench's own tests).
            "--window" => ("window", 16.into()),
            "--rooms" => ("rooms", 1.into()),
            "--time-limit" => ("time_limit_s", Value::Null),
            "--no-settle" => ("settle", true.into()),
            "--drain" => ("drain_s", 5.into()),
            _ => continue,
        };
        assert_eq!(report[field], expected, "{}: {report:#}", d.name);
    }
}

/// firmware-sim joins room lobby.
fn firmware_room(_: &Documented) {
    let server = ChatServer::start(KEY, &[]);
    let out = run_with(
        program("firmware-sim").args([
            "--json",
            "--nick",
            "dev",
            "--server",
            &server.addr.to_string(),
        ]),
        "",
    )
    .success();
    let events = json_events(out.stdout_text());
    assert_eq!(event(&events, "joined")["room"], "lobby");
}

/// Checked in a network namespace (`default_ports_in_a_network_namespace`).
fn in_the_namespace(_: &Documented) {}

/// Checked by `bench_spawns_the_python_relay_of_its_default_path` (needs Python).
fn with_python(_: &Documented) {}

/// `--device-ip` acts only with `--tap`: a TUN device and a build with the `tap` feature
/// (firmware-sim's own tests); here only its pairing with `--tap` is checked.
fn device_ip_needs_tap(_: &Documented) {
    let out = run_with(
        program("firmware-sim").args(["--nick", "dev", "--device-ip", "10.42.0.2/24"]),
        "",
    );
    assert_eq!(out.code(), 2, "{}", out.stderr_text());
    assert!(out.stderr_text().contains("--tap"), "{}", out.stderr_text());
}

type Check = fn(&Documented);

/// Every documented default, and how it is held: `(command, option, default, check)`.
const DEFAULTS: &[(&str, &str, &str, Check)] = &[
    (
        "encrypt",
        "--key-file",
        "the keys in $HOST_CHAT_KEY",
        token_tools_read_the_environment,
    ),
    (
        "decrypt",
        "--key-file",
        "the keys in $HOST_CHAT_KEY",
        token_tools_read_the_environment,
    ),
    (
        "rotate",
        "--key-file",
        "the keys in $HOST_CHAT_KEY",
        token_tools_read_the_environment,
    ),
    ("decrypt", "--ttl", "any age", decrypt_takes_any_age),
    ("decrypt", "--clock-skew", "60", decrypt_clock_skew_is_60),
    ("server", "--bind", "0.0.0.0:12345", in_the_namespace),
    (
        "server",
        "--key-file",
        "the keys in $HOST_CHAT_KEY, else ~/.config/host-chat/key",
        chat_reads_the_default_key_file,
    ),
    ("server", "--member-timeout", "30", server_setting),
    ("server", "--max-members", "10000", server_storage),
    ("server", "--max-rooms", "1000", server_storage),
    ("server", "--history", "512", server_storage),
    (
        "server",
        "--max-datagram",
        "1232",
        server_max_datagram_is_1232,
    ),
    ("server", "--ttl", "60", server_token_age),
    ("server", "--cluster-replicas", "1", cluster_setting),
    ("server", "--cluster-max-age", "604800", cluster_setting),
    ("server", "--cluster-max-mib", "256", cluster_setting),
    ("server", "--clock-skew", "60", server_token_age),
    ("client", "SERVER", "127.0.0.1:12345", client_starting),
    (
        "client",
        "--key-file",
        "the keys in $HOST_CHAT_KEY, else ~/.config/host-chat/key",
        chat_reads_the_default_key_file,
    ),
    ("client", "--nick", "$USER, else \"guest\"", client_starting),
    ("client", "--room", "lobby", client_starting),
    (
        "client",
        "--max-datagram",
        "1232",
        client_max_datagram_is_1232,
    ),
    ("client", "--ttl", "60", client_token_age),
    ("client", "--clock-skew", "60", client_token_age),
    ("demo", "--nick", "$USER, else \"guest\"", demo_joins),
    ("demo", "--room", "lobby", demo_joins),
    (
        "bench",
        "SERVER",
        "127.0.0.1:12345, or the spawned one",
        in_the_default_bench_run,
    ),
    ("bench", "--clients", "4", in_the_default_bench_run),
    ("bench", "--messages", "10000", in_the_default_bench_run),
    ("bench", "--size", "64", in_the_default_bench_run),
    (
        "bench",
        "--rate",
        "closed loop, as fast as the clients' windows allow",
        in_the_default_bench_run,
    ),
    ("bench", "--mode", "framed", in_the_default_bench_run),
    (
        "bench",
        "--python-relay",
        "bench/python_relay.py",
        with_python,
    ),
    (
        "bench",
        "--window",
        "16 framed, 8 legacy and plain",
        in_the_default_bench_run,
    ),
    ("bench", "--rooms", "1", in_the_default_bench_run),
    ("bench", "--servers", "1", in_the_default_bench_run),
    (
        "bench",
        "--time-limit",
        "no limit",
        in_the_default_bench_run,
    ),
    (
        "bench",
        "--no-settle",
        "once nothing has arrived for 100 ms",
        in_the_default_bench_run,
    ),
    ("bench", "--drain", "5", in_the_default_bench_run),
    (
        "bench",
        "--key-file",
        "the keys in $HOST_CHAT_KEY, else ~/.config/host-chat/key",
        chat_reads_the_default_key_file,
    ),
    ("bench-relay", "--bind", "127.0.0.1:12346", in_the_namespace),
    (
        "firmware-sim",
        "--server",
        "127.0.0.1:12345",
        in_the_namespace,
    ),
    ("firmware-sim", "--room", "lobby", firmware_room),
    (
        "firmware-sim",
        "--key-file",
        "the first key in $HOST_CHAT_KEY, else ~/.config/host-chat/key",
        chat_reads_the_default_key_file,
    ),
    (
        "firmware-sim",
        "--device-ip",
        "10.42.0.2/24",
        device_ip_needs_tap,
    ),
];

/// Every documented limit: `(command, option, low, high)`.
const LIMITS: &[(&str, &str, u64, Option<u64>)] = &[
    ("decrypt", "--clock-skew", 0, Some(86_400)),
    ("server", "--stats", 1, None),
    ("server", "--member-timeout", 1, Some(86_400)),
    ("server", "--max-members", 1, Some(100_000)),
    ("server", "--max-rooms", 1, Some(10_000)),
    ("server", "--history", 16, Some(4_096)),
    ("server", "--max-datagram", 200, Some(65_507)),
    ("server", "--ttl", 1, Some(86_400)),
    ("server", "--clock-skew", 0, Some(86_400)),
    ("server", "--cluster-replicas", 1, Some(5)),
    ("server", "--cluster-max-age", 60, Some(31_536_000)),
    ("server", "--cluster-max-mib", 1, Some(1_048_576)),
    ("client", "--nick", 1, Some(32)),
    ("client", "--room", 1, Some(32)),
    ("client", "--max-datagram", 200, Some(65_507)),
    ("client", "--ttl", 1, Some(86_400)),
    ("client", "--clock-skew", 0, Some(86_400)),
    ("demo", "--nick", 1, Some(32)),
    ("demo", "--room", 1, Some(32)),
    ("bench", "--clients", 1, Some(10_000)),
    ("bench", "--messages", 1, Some(50_000_000)),
    ("bench", "--size", 24, Some(810)),
    ("bench", "--window", 1, Some(1024)),
    ("bench", "--servers", 1, Some(16)),
    ("firmware-sim", "--nick", 1, Some(32)),
    ("firmware-sim", "--room", 1, Some(32)),
];

#[test]
fn every_documented_default_and_limit_holds() {
    let documented: Vec<Documented> = COMMANDS
        .iter()
        .flat_map(|command| documented(command, &help_of(command)))
        .collect();

    // The tables and the help agree, both ways.
    let in_help: BTreeSet<(String, String, String)> = documented
        .iter()
        .filter_map(|d| Some((d.command.clone(), d.name.clone(), d.default.clone()?)))
        .collect();
    let in_table: BTreeSet<(String, String, String)> = DEFAULTS
        .iter()
        .map(|(c, n, d, _)| (c.to_string(), n.to_string(), d.to_string()))
        .collect();
    assert_eq!(in_help, in_table, "documented defaults vs the checks");
    let limits_in_help: BTreeSet<(String, String, u64, Option<u64>)> = documented
        .iter()
        .filter_map(|d| {
            let (low, high) = d.range?;
            Some((d.command.clone(), d.name.clone(), low, high))
        })
        .collect();
    let limits_in_table: BTreeSet<(String, String, u64, Option<u64>)> = LIMITS
        .iter()
        .map(|(c, n, l, h)| (c.to_string(), n.to_string(), *l, *h))
        .collect();
    assert_eq!(
        limits_in_help, limits_in_table,
        "documented limits vs the checks"
    );

    // Each held to the behaviour, side by side (mostly waiting on sockets).
    thread::scope(|scope| {
        for d in documented.iter().filter(|d| d.range.is_some()) {
            scope.spawn(move || check_range(d));
        }
        for d in documented.iter().filter(|d| d.default.is_some()) {
            let check = DEFAULTS
                .iter()
                .find(|(c, n, _, _)| *c == d.command && *n == d.name)
                .map(|(_, _, _, check)| *check)
                .expect("matched above");
            scope.spawn(move || check(d));
        }
        let documented = &documented;
        scope.spawn(move || bench_with_defaults(documented));
    });
}

/// `bench --spawn-server python` finds the relay at its default path (from the
/// workspace root, where the path is relative to).
#[test]
#[cfg_attr(
    not(have_python),
    ignore = "needs python3 with cryptography (pip install cryptography)"
)]
fn bench_spawns_the_python_relay_of_its_default_path() {
    let out = run_with(
        program("bench")
            .current_dir(e2e_tests::workspace_root())
            .args([
                "--mode",
                "legacy",
                "--spawn-server",
                "python",
                "-n",
                "20",
                "-c",
                "2",
                "--json",
            ]),
        "",
    )
    .success();
    let report: Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    assert_eq!(report["server"], "python relay", "{report:#}");
}

/// The default ports, in a private network namespace (its own loopback): the server
/// listens on 0.0.0.0:12345; a client, a benchmark and firmware-sim without a SERVER find
/// it at 127.0.0.1:12345; the plain relay listens on 127.0.0.1:12346.
#[test]
#[cfg_attr(
    not(have_netns),
    ignore = "needs a network namespace (unshare -rn, and ip to bring up its loopback)"
)]
fn default_ports_in_a_network_namespace() {
    let dir = TempDir::new("netns");
    let script = format!(
        r#"set -u
ip link set lo up
export HOST_CHAT_KEY='{KEY}' HOME='{home}' XDG_CONFIG_HOME='{home}'
'{hc}' server --print-port > server.port 2> server.log &
server=$!
i=0; while [ ! -s server.port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo hello | '{hc}' client --json > client.json 2> client.err; echo "client $?"
echo reading | '{fs}' --nick dev --json > fs.json 2> fs.err; echo "firmware-sim $?"
'{hc}' bench -n 20 -c 2 --json > bench.json 2> bench.err; echo "bench $?"
kill $server; wait $server
'{hc}' bench-relay --plain --print-port > relay.port 2> relay.log &
relay=$!
i=0; while [ ! -s relay.port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill $relay; wait $relay
echo done
"#,
        home = dir.path().display(),
        hc = e2e_tests::bin("host-chat").display(),
        fs = bin_of("firmware-sim", "firmware-sim").display(),
    );
    let out = e2e_tests::run(
        Command::new("unshare")
            .args(["-rn", "sh", "-c", &script])
            .current_dir(dir.path())
            .stdin(Stdio::null()),
        std::io::empty(),
        Duration::from_secs(60),
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let report = format!(
        "{}\n{}\nserver.log: {}\nclient.err: {}\nfs.err: {}\nbench.err: {}",
        out.stdout_text(),
        out.stderr_text(),
        read("server.log"),
        read("client.err"),
        read("fs.err"),
        read("bench.err")
    );
    let stdout = out.stdout_text();
    for line in ["client 0", "firmware-sim 0", "bench 0", "done"] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {report}");
    }
    assert!(
        read("server.log").contains("host-chat server listening on 0.0.0.0:12345"),
        "{report}"
    );
    assert_eq!(read("server.port").trim(), "12345");
    let client = json_events(&read("client.json"));
    assert_eq!(event(&client, "joined")["server"], "127.0.0.1:12345");
    assert!(
        read("fs.json").contains(r#""event":"delivered""#),
        "{report}"
    );
    assert!(
        read("relay.log").contains("plain relay (no cryptography) on 127.0.0.1:12346"),
        "{}",
        read("relay.log")
    );
}

/// What the help names exists: every `host-chat WORD` it shows is a listed command;
/// `-d` is no short option of anything; firmware-sim's `{N}` placeholder is shown as
/// written (clap turns a literal `{n}` into a line break) and does what it says.
#[test]
fn the_help_names_only_what_exists() {
    let top = run_with(host_chat().arg("--help"), "").success();
    let top = top.stdout_text();
    let listed: Vec<&str> = top
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| line.as_bytes().get(2).is_some_and(|b| *b != b' '))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for command in COMMANDS.iter().filter(|c| **c != "firmware-sim") {
        assert!(
            listed.contains(command),
            "{command} is not listed: {listed:?}"
        );
    }
    for command in COMMANDS {
        let help = help_of(command);
        for (at, _) in help.match_indices("host-chat ") {
            let word = help[at + "host-chat ".len()..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .next()
                .unwrap_or_default();
            let known = listed.contains(&word) || word.is_empty() || word.starts_with('-');
            assert!(
                known,
                "`{command} --help` names `host-chat {word}`, which is not listed"
            );
        }
        assert!(
            !help.contains(" -d, ") && !help.contains(" -d <"),
            "{command} has a -d"
        );
    }
    let out = run_with(program("bench").args(["-d", "64"]), "");
    assert_eq!(out.code(), 2);

    let help = help_of("firmware-sim");
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("`{N}` in TEXT is the reading's number"),
        "{help}"
    );
    assert!(
        !help
            .lines()
            .any(|l| l.trim_start().starts_with("` in TEXT")),
        "{help}"
    );
    let server = ChatServer::start(KEY, &[]);
    let mut device = Running::spawn(
        "firmware-sim",
        program("firmware-sim").args([
            "--json",
            "--nick",
            "dev",
            "--server",
            &server.addr.to_string(),
            "--every",
            "0.2",
            "reading {N}",
        ]),
    );
    device.wait_for_json(QUICK, |v| v["event"] == "sent" && v["text"] == "reading 2");
}
