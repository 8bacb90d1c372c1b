//! Where the chat's key comes from, end to end: only `host-chat server` creates the
//! default key file, and the command it prints copies it to a machine that has no
//! `~/.config` yet; clients and `firmware-sim` then read it there, exactly alike; a
//! client without a key says where one comes from (exit 2); key files open to others
//! are refused by the server.
//!
//! "Another machine" is another home directory: the printed `ssh OTHER-MACHINE '...'` is
//! run with `ssh OTHER-MACHINE` replaced by a shell whose `HOME` is that directory.

use e2e_tests::{Running, TempDir, bin_of, host_chat, mode_of, run_with, set_mode};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const QUICK: Duration = Duration::from_secs(10);

/// `host-chat` with `home` as its home directory and no key in the environment.
fn at_home(home: &Path) -> Command {
    let mut cmd = host_chat();
    cmd.env("HOME", home).env_remove("XDG_CONFIG_HOME");
    cmd
}

/// A server started at `home` (creating its key if need be), its port, and its log.
fn server_at(home: &Path, extra: &[&str]) -> (Running, SocketAddr) {
    let mut cmd = at_home(home);
    cmd.args(["server", "--bind", "127.0.0.1:0", "--print-port"])
        .args(extra);
    let mut server = Running::spawn("server", &mut cmd);
    let port: u16 = server
        .wait_for(QUICK, |_| true)
        .trim()
        .parse()
        .expect("the port");
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Waits until the process's stderr holds `text`, and returns it.
fn stderr_with(process: &Running, text: &str) -> String {
    let deadline = Instant::now() + QUICK;
    loop {
        let stderr = process.stderr_text();
        if stderr.contains(text) {
            return stderr;
        }
        assert!(Instant::now() < deadline, "no {text:?} in:\n{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_server_makes_the_key_and_its_copy_command_works_on_a_fresh_machine() {
    let server_home = TempDir::new("server-home");
    let other_home = TempDir::new("other-home");
    let (server, addr) = server_at(server_home.path(), &[]);
    let log = stderr_with(&server, "ssh OTHER-MACHINE");
    assert!(
        log.contains("host-chat: created a new key in ~/.config/host-chat/key (mode 600)"),
        "{log}"
    );
    let key_file = server_home.path().join(".config/host-chat/key");
    assert_eq!(mode_of(&key_file), 0o600);
    assert_eq!(mode_of(key_file.parent().unwrap()), 0o700);

    // The printed command, run "on the other machine": nothing of ~/.config there yet.
    let command = log
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("ssh OTHER-MACHINE "))
        .expect("the copy command");
    assert!(!other_home.path().join(".config").exists());
    let remote_shell = format!("env HOME='{}' sh -c ", other_home.path().display());
    let local = command.replacen("ssh OTHER-MACHINE ", &remote_shell, 1);
    let out = run_with(
        Command::new("sh")
            .args(["-c", &local])
            .env("HOME", server_home.path()),
        "",
    );
    assert!(out.status.success(), "{local}: {}", out.stderr_text());
    let copied = other_home.path().join(".config/host-chat/key");
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(&key_file).unwrap()
    );
    assert_eq!(mode_of(&copied), 0o600);
    assert_eq!(mode_of(copied.parent().unwrap()), 0o700);

    // There, a client and firmware-sim find the key by themselves.
    let out = run_with(
        at_home(other_home.path())
            .args(["client", "--json", "--nick", "ann"])
            .arg(addr.to_string()),
        "hello with the copied key\n",
    )
    .success();
    assert!(out.stdout_text().contains(r#""event":"delivered""#));
    // The README's firmware-sim command, as written (no --key-file, no HOST_CHAT_KEY).
    let out = run_with(
        Command::new(bin_of("firmware-sim", "firmware-sim"))
            .env("HOME", other_home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("HOST_CHAT_KEY")
            .args(["--nick", "sensor1", "--server"])
            .arg(addr.to_string()),
        "temp 21.5 C\n",
    );
    assert!(
        out.status.success(),
        "firmware-sim: {}\n{}",
        out.status,
        out.stderr_text()
    );
    // A second start of the server uses the key it made, and says nothing of copying.
    drop(server);
    let (again, _) = server_at(server_home.path(), &[]);
    let log = stderr_with(&again, "listening on");
    assert!(!log.contains("created a new key"), "{log}");
}

#[test]
fn a_client_without_a_key_says_where_the_key_comes_from_and_makes_none() {
    let home = TempDir::new("keyless");
    for args in [
        &["client", "127.0.0.1:9"][..],
        &["bench", "127.0.0.1:9", "-n", "1"][..],
    ] {
        let out = run_with(at_home(home.path()).args(args), "hello\n");
        let line = out.failure(2);
        assert_eq!(
            line,
            "host-chat: no key: use the chat server's key: copy its key file (`host-chat \
             server` made it in ~/.config/host-chat/key on its machine) to \
             ~/.config/host-chat/key here, set HOST_CHAT_KEY, or pass --key-file PATH",
            "{args:?}"
        );
    }
    let out = run_with(
        Command::new(bin_of("firmware-sim", "firmware-sim"))
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("HOST_CHAT_KEY")
            .args(["--nick", "dev", "--server", "127.0.0.1:9"]),
        "hello\n",
    );
    assert_eq!(out.code(), 2, "{}", out.stderr_text());
    assert!(
        out.stderr_text()
            .starts_with("firmware-sim: no key: use the chat server's key"),
        "{}",
        out.stderr_text()
    );
    assert!(
        !home.path().join(".config").exists(),
        "a client made a key file"
    );
}

#[test]
fn the_server_refuses_a_key_file_open_to_others_unless_told() {
    let home = TempDir::new("open-key");
    let k = home.file("k", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n");
    set_mode(&k, 0o644);
    let out = run_with(
        at_home(home.path())
            .args(["server", "--bind", "127.0.0.1:0", "--key-file"])
            .arg(&k),
        "",
    );
    let line = out.failure(2);
    assert!(
        line.contains("is open to group and others (mode 0644)")
            && line.contains("chmod 600")
            && line.contains("--allow-unprotected-key-file"),
        "{line}"
    );
    let k = k.to_str().unwrap();
    let (server, addr) = server_at(
        home.path(),
        &["--key-file", k, "--allow-unprotected-key-file"],
    );
    stderr_with(&server, "warning: key file");
    // The client warns and goes on.
    let out = run_with(
        at_home(home.path())
            .args(["client", "--json", "--key-file", k])
            .arg(addr.to_string()),
        "",
    )
    .success();
    assert!(
        out.stderr_text().contains("host-chat: warning: key file"),
        "{}",
        out.stderr_text()
    );
}
