//! `host-chat client --tui` in a real pseudo-terminal (a private tmux server) against a
//! real `host-chat server` on 127.0.0.1, next to a `--json` client.
//!
//! Needs `tmux`: without it the test is ignored (see `tests/build.rs`), except on CI,
//! where it runs and fails. The tmux server has its own socket in a scratch directory and is killed
//! when the test ends, however it ends; so is the chat server.

use e2e_tests::{ChatServer, Running, TempDir, bin, host_chat};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// Generous bound for anything that should take milliseconds on loopback.
const QUICK: Duration = Duration::from_secs(10);

/// Quotes `text` for a POSIX shell.
fn sh(text: impl AsRef<str>) -> String {
    format!("'{}'", text.as_ref().replace('\'', r"'\''"))
}

/// A private tmux server running one session; killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    const SESSION: &'static str = "tui";

    /// Starts `shell_command` in a detached `width` x `height` session.
    fn start(dir: &Path, width: u16, height: u16, shell_command: &str) -> Self {
        let tmux = Self {
            socket: dir.join("tmux.sock"),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            Self::SESSION,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            shell_command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("running tmux")
    }

    /// Types `text` as is.
    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", Self::SESSION, "-l", text]);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    /// Presses a key by its tmux name (`Enter`, `F2`, `C-c`...).
    fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", Self::SESSION, key]);
        assert!(out.status.success(), "send-keys {key}: {out:?}");
    }

    /// The screen, as text.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", Self::SESSION]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the session (the client in it) still runs.
    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", Self::SESSION])
            .status
            .success()
    }

    /// Waits until the screen satisfies `wanted`, and returns it; panics showing the last
    /// screen otherwise.
    #[track_caller]
    fn wait_screen(&self, what: &str, mut wanted: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + QUICK;
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen did not show {what} within {QUICK:?}:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The status bar: the line before the last one.
fn status_bar(screen: &str) -> &str {
    let lines: Vec<&str> = screen.lines().collect();
    lines.len().checked_sub(2).map_or("", |i| lines[i])
}

#[test]
#[cfg_attr(not(have_tmux), ignore = "needs tmux (apt-get install tmux)")]
fn tui_client_chats_shows_the_wire_and_quits() {
    // Built first (once per test process): the time limit is for the chat.
    let exe = bin("host-chat");
    let started = Instant::now();
    let dir = TempDir::new("tui");

    // The server, and bob (a --json client) in the room first: ann's welcome counts 2.
    let server = ChatServer::start(KEY, &[]);
    let addr = server.addr;
    let mut cmd = host_chat();
    cmd.args(["client", "--json", "--nick", "bob", &addr.to_string()])
        .env("HOST_CHAT_KEY", KEY);
    let mut bob = Running::spawn("bob", &mut cmd);
    bob.wait_event(QUICK, "joined");

    // ann, in the terminal UI, isolated from the user's keys like `host_chat()`.
    let nowhere = std::env::temp_dir().join("e2e-tests-no-home");
    let status_file = dir.path().join("status");
    let shell_command = format!(
        "env HOME={home} XDG_CONFIG_HOME={home} HOST_CHAT_KEY={KEY} {exe} client --tui --nick \
         ann {addr}; echo $? > {status}",
        home = sh(nowhere.to_string_lossy()),
        exe = sh(exe.to_string_lossy()),
        status = sh(status_file.to_string_lossy()),
    );
    let tmux = Tmux::start(dir.path(), 100, 30, &shell_command);

    let screen = tmux.wait_screen("the joined status", |s| {
        status_bar(s).contains("| room lobby | 2 members | joined |")
    });
    assert!(screen.contains("joined room lobby"), "{screen}");
    assert!(
        status_bar(&screen).starts_with(&format!(" {addr} | room lobby | 2 members")),
        "{screen}"
    );

    // A line goes out and comes back from the room, in the conversation pane.
    tmux.type_text("hello from tmux");
    tmux.wait_screen("the typed line", |s| s.contains("> hello from tmux"));
    tmux.press("Enter");
    let screen = tmux.wait_screen("the line back from the room", |s| {
        s.contains("> ann: hello from tmux")
    });
    eprintln!("--- conversation:\n{screen}");
    assert!(
        status_bar(&screen).contains("| 2 members | joined |"),
        "{screen}"
    );
    bob.wait_for_json(QUICK, |v: &Value| {
        v["event"] == "message" && v["nick"] == "ann" && v["text"] == "hello from tmux"
    });

    // bob's line shows too.
    bob.send_line("hi ann");
    tmux.wait_screen("bob's line", |s| s.contains("  bob: hi ann"));

    // The wire view: the line, its token, the server's answer and its token.
    tmux.press("F2");
    let screen = tmux.wait_screen("the wire view", |s| s.contains("response token: gAAAAA"));
    eprintln!("--- wire view:\n{screen}");
    assert!(screen.contains("#1 sent: hello from tmux"), "{screen}");
    assert!(screen.contains("   token: gAAAAA"), "{screen}");
    assert!(
        screen.contains("response: receipt for line 1: room message #"),
        "{screen}"
    );
    assert!(screen.contains("2 members"), "{screen}");
    tmux.press("F2");
    tmux.wait_screen("the wire view closed", |s| !s.contains("token: gAAAAA"));

    // Up recalls the line; /quit leaves and the session ends.
    tmux.press("Up");
    tmux.wait_screen("the recalled line", |s| s.contains("> hello from tmux"));
    tmux.press("C-u");
    tmux.type_text("/quit");
    tmux.press("Enter");
    let deadline = Instant::now() + QUICK;
    while tmux.alive() {
        assert!(
            Instant::now() < deadline,
            "the client did not exit after /quit:\n{}",
            tmux.screen()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let status = std::fs::read_to_string(&status_file).expect("the exit status was written");
    assert_eq!(status.trim(), "0", "the client's exit status");
    bob.wait_for_json(QUICK, |v: &Value| {
        v["event"] == "presence"
            && v["changes"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["nick"] == "ann" && c["change"] == "left")
            })
    });
    eprintln!("tui: {:.1?} in all", started.elapsed());
}

#[test]
fn tui_needs_a_terminal() {
    for args in [
        &["client", "--tui", "127.0.0.1:9"][..],
        &["demo", "--tui"][..],
    ] {
        let out = e2e_tests::run_with(host_chat().args(args).env("HOST_CHAT_KEY", KEY), "hi\n");
        let line = out.failure(2);
        assert!(line.contains("--tui needs a terminal"), "{args:?}: {line}");
    }
    let out = e2e_tests::run_with(host_chat().args(["client", "--tui", "--json"]), "");
    assert_eq!(out.code(), 2, "--tui and --json conflict");
}

/// `demo --tui` shows the command that joins it above the conversation, outside any
/// border, on rows that a shell reads back as one command: copied from the screen as it
/// is (rows and line breaks), it runs, and joins the demo's room.
#[test]
#[cfg_attr(not(have_tmux), ignore = "needs tmux (apt-get install tmux)")]
fn the_demo_join_command_is_copyable_from_the_screen() {
    let exe = bin("host-chat");
    let dir = TempDir::new("tui-demo");
    let nowhere = std::env::temp_dir().join("e2e-tests-no-home");
    let shell_command = format!(
        "env HOME={home} XDG_CONFIG_HOME={home} {exe} demo --tui --nick ann",
        home = sh(nowhere.to_string_lossy()),
        exe = sh(exe.to_string_lossy()),
    );
    // 80 columns: the command (over 100 characters) takes several rows.
    let tmux = Tmux::start(dir.path(), 80, 24, &shell_command);
    // The whole command: its rows may break anywhere between words (the path to the
    // binary decides where), each break a shell line continuation.
    let screen = tmux.wait_screen("the join command", |s| {
        s.contains("To join from another terminal")
            && s.replace(" \\\n", " ").contains("--nick someone")
    });
    eprintln!("--- demo:\n{screen}");
    let rows: Vec<&str> = screen
        .lines()
        .skip_while(|row| !row.starts_with("To join from another terminal"))
        .skip(1)
        .take_while(|row| !row.starts_with('┌'))
        .collect();
    assert!(rows.len() >= 2, "{screen}");
    for row in &rows {
        assert!(!row.contains('│'), "a border in the command: {row:?}");
    }
    // As pasted into a shell: the rows with their line breaks; the joined client reads
    // one line and leaves.
    let pasted = rows.join("\n");
    let out = e2e_tests::run_with(
        Command::new("sh")
            .args(["-c", &format!("{pasted} --json")])
            .env("HOME", &nowhere)
            .env("XDG_CONFIG_HOME", &nowhere)
            .env_remove("HOST_CHAT_KEY"),
        "hello from the copied command\n",
    );
    assert!(
        out.status.success(),
        "the copied command failed ({}): {}\n{pasted}",
        out.status,
        out.stderr_text()
    );
    assert!(
        out.stdout_text().contains(r#""event":"delivered""#),
        "{}",
        out.stdout_text()
    );
    // The line shows in the demo.
    tmux.wait_screen("the copied command's line", |s| {
        s.contains("someone: hello from the copied command")
    });
    tmux.type_text("/quit");
    tmux.press("Enter");
    let deadline = Instant::now() + QUICK;
    while tmux.alive() {
        assert!(
            Instant::now() < deadline,
            "the demo did not exit:\n{}",
            tmux.screen()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
