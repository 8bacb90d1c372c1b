//! A `host-chat server` (or any relay that prints its port first) run as a child process,
//! for `demo` and `bench --spawn-server`: started with a key in the environment, its port
//! read from its first line of output, killed when dropped.

use crate::keys;
use crate::net;
use anyhow::Context as _;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server that ended without a port is given to say why (its stderr).
const LAST_WORDS: Duration = Duration::from_secs(2);

/// What becomes of the server's log (its standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Printed on our standard error, marked `(server)`.
    Show,
    /// Kept, line by line, for [`ServerChild::log`].
    Keep,
    /// Dropped (under the terminal UI it would scribble over the screen).
    Discard,
}

/// The running server; killed when dropped, however the run ends.
#[derive(Debug)]
pub struct ServerChild {
    child: Child,
    log: Option<Receiver<String>>,
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerChild {
    /// Starts `cmd` (which must print its port alone on its first line, as `host-chat
    /// server --print-port` does) with `key_text` in `HOST_CHAT_KEY`; returns it and the
    /// 127.0.0.1 address it listens on.
    pub fn start(
        mut cmd: Command,
        key_text: Option<&str>,
        log: Log,
    ) -> anyhow::Result<(Self, SocketAddr)> {
        if let Some(key) = key_text {
            cmd.env(keys::ENV_VAR, key);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if log == Log::Discard {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .spawn()
            .with_context(|| format!("cannot start the server ({cmd:?})"))?;
        let mut server = Self { child, log: None };
        if let Some(stderr) = server.child.stderr.take() {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if log == Log::Show {
                        net::err(&format!("  (server) {line}"));
                    } else if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            server.log = (log == Log::Keep).then_some(rx);
        }
        let stdout = server.child.stdout.take().context("the server's stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let port: u16 = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line.trim().parse().with_context(|| {
                // It ended without a port: its last words may still be on their way
                // (stdout closes before stderr is read); wait for them, briefly.
                let deadline = std::time::Instant::now() + LAST_WORDS;
                let mut status = None;
                while status.is_none() && std::time::Instant::now() < deadline {
                    status = server.child.try_wait().ok().flatten();
                    std::thread::sleep(Duration::from_millis(5));
                }
                let mut log = Vec::new();
                if let Some(rx) = server.log.as_ref() {
                    while let Some(left) =
                        deadline.checked_duration_since(std::time::Instant::now())
                    {
                        match rx.recv_timeout(left) {
                            Ok(line) => log.push(line),
                            Err(_) => break,
                        }
                    }
                }
                format!(
                    "the server did not start{}{}",
                    status.map(|s| format!(" ({s})")).unwrap_or_default(),
                    if log.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", log.join("; "))
                    }
                )
            })?,
            Err(_) => anyhow::bail!("the server did not start within {START_TIMEOUT:?}"),
        };
        Ok((server, SocketAddr::from(([127, 0, 0, 1], port))))
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its log lines, with [`Log::Keep`].
    pub fn log(&self) -> Option<&Receiver<String>> {
        self.log.as_ref()
    }
}
