//! `host-chat demo`: a private server (this same executable, as a child process) and an
//! interactive client attached to it, sharing a fresh key that is never saved.

use super::client::{self, Options};
use crate::cli::{ChatArgs, DemoArgs};
use crate::keys::{self, Ring};
use crate::net;
use anyhow::Context as _;
use chat_core::fernet::KEY_TEXT_LEN;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the server when the demo ends, however it ends.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `host-chat demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if args.tui {
        crate::ui::check_terminal()?;
    }
    let key = super::fresh_key().map_err(anyhow::Error::msg)?;
    let mut text = Zeroizing::new([0u8; KEY_TEXT_LEN]);
    let key_text = Zeroizing::new(key.to_base64(&mut text).to_owned());
    let ring = Ring::new(key);

    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let child = Command::new(&exe)
        .args(["server", "--bind", "127.0.0.1:0", "--print-port"])
        .env(keys::ENV_VAR, key_text.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Under --tui, the server's log would scribble over the screen.
        .stderr(if args.tui {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .spawn()
        .with_context(|| format!("cannot start the server ({})", exe.display()))?;
    let mut server = ServerGuard(child);

    // The server's log, marked as such, on our stderr.
    if let Some(stderr) = server.0.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                net::err(&format!("  (server) {line}"));
            }
        });
    }
    // Its first line of stdout is its port.
    let stdout = server.0.stdout.take().context("the server's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let port: u16 = match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => line.trim().parse().with_context(|| {
            let status = server.0.try_wait().ok().flatten();
            format!(
                "the server did not start{}",
                status.map(|s| format!(" ({s})")).unwrap_or_default()
            )
        })?,
        Err(_) => anyhow::bail!("the server did not start within {START_TIMEOUT:?}"),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut intro = Vec::new();
    if args.tui {
        intro.push(format!(
            "host-chat demo: a private server on {addr} with a fresh key (never saved). To \
             join from another terminal on this machine: HOST_CHAT_KEY={} {} client {addr} \
             --nick someone",
            key_text.as_str(),
            exe.display()
        ));
    } else if args.json {
        net::out(
            &serde_json::json!({"event": "demo", "server": addr.to_string(),
                                "server_pid": server.0.id()})
            .to_string(),
        );
    } else {
        net::err(&format!(
            "host-chat demo: a private server on {addr} with a fresh key (never saved), and \
             you in it. To join from another terminal on this machine:\n  \
             HOST_CHAT_KEY={} {} client {addr} --nick someone",
            key_text.as_str(),
            exe.display()
        ));
    }
    let options = Options {
        server: addr,
        server_name: addr.to_string(),
        chat: ChatArgs {
            nick: args.nick.clone(),
            room: args.room.clone(),
            show_wire: !args.no_wire,
            json: args.json,
            tui: args.tui,
        },
        max_datagram: chat_core::session::DEFAULT_MAX_DATAGRAM,
        ttl: 60,
    };
    let result = client::run_with(ring, &options, &intro);
    drop(server);
    if !args.json {
        net::err("host-chat demo: server stopped");
    }
    result
}
