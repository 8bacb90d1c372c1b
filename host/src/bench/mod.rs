//! `host-chat bench`: a load generator, like redis-benchmark, and the plain relay it is
//! compared with (`host-chat bench-relay --plain`, hidden; `plain`).
//!
//! N clients (up to 10,000) run in one thread: one mio loop owning N UDP sockets, one per
//! client (so the server sees N addresses), each connected to the server; the open-files
//! limit is raised to fit them ([`process::raise_open_files`]). Client `i` is in room
//! `i mod R` (`--rooms R`). Each message's text carries its sender and number
//! (`#C:K:xxxx...`); the loop remembers when it was sent, so the latency of every
//! delivery is measured from the sender's `send()` to the member's message event, and of
//! every receipt from `send()` to the server's answer.
//!
//! Three kinds of load (`--mode`):
//! * `framed`: chat_core `Client`s (join, chat, deliver, ack), against `host-chat server`;
//!   every member of the sender's room gets every line, the sender's own included
//!   (fan-out = room size);
//! * `legacy`: bare-text Fernet tokens, as the original Python chat sent, against
//!   `host-chat server` (PROTOCOL.md "Legacy senders") or `bench/python_relay.py`; the
//!   sender gets a receipt, the others the line (fan-out N - 1, one room);
//! * `plain`: the same text without cryptography, against `host-chat bench-relay --plain`
//!   (fan-out = room size - 1).
//!
//! The load is the same in every mode: lines go out round-robin over the clients, a client
//! whose window is full is skipped; with `--rate R` (open loop) at R lines per second in
//! all, else (closed loop) whenever a window has room.
//!
//! With `--spawn-server` the server's CPU time (`utime + stime`) and memory (`VmRSS`,
//! `VmHWM`) are read from `/proc` over the measured interval ([`process`]), and the
//! generator's own CPU time too, which tells whether the server or the generator was the
//! limit.

mod load;
mod member;
mod options;
mod plain;
pub mod process;
mod progress;
mod receive;
mod report;
mod send;
mod sockets;
mod spawned;
#[cfg(test)]
mod tests;

pub use options::{BenchArgs, HELP, MAX_CLIENTS, Mode, RelayArgs, SpawnKind};
pub use plain::run as run_relay;

use crate::chat::child::{Log, ServerChild};
use crate::error::{BadArgument, NotDelivered};
use crate::keys::Ring;
use anyhow::Context as _;
use chat_core::fernet::KEY_TEXT_LEN;
use chat_core::session::DEFAULT_MAX_DATAGRAM;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use zeroize::Zeroizing;

use load::Bench;
use spawned::{server_refusal, servers_stats};

/// Longest datagram handled.
const MAX_DATAGRAM: usize = DEFAULT_MAX_DATAGRAM;

fn bad_servers() -> anyhow::Result<()> {
    Err(BadArgument(
        "--servers is for host-chat servers that bench starts: add --spawn-server".into(),
    )
    .into())
}

/// `host-chat bench`.
pub fn run(args: &BenchArgs, key_env: Option<OsString>) -> anyhow::Result<()> {
    let kind = match args.spawn_server {
        Some(SpawnKind::Auto) if args.mode == Mode::Plain => Some(SpawnKind::Plain),
        Some(SpawnKind::Auto) => Some(SpawnKind::Host),
        other => other,
    };
    match (kind, args.mode) {
        (Some(SpawnKind::Plain), Mode::Framed | Mode::Legacy)
        | (Some(SpawnKind::Host | SpawnKind::Python), Mode::Plain) => {
            return Err(BadArgument(
                "--mode plain goes with the plain relay (--spawn-server plain) only".into(),
            )
            .into());
        }
        (Some(SpawnKind::Python), Mode::Framed) => {
            return Err(BadArgument(
                "the Python relay speaks bare-text tokens only: use --mode legacy".into(),
            )
            .into());
        }
        _ => {}
    }
    if args.servers > 1 && kind != Some(SpawnKind::Host) {
        bad_servers()?;
    }
    if kind.is_some() && args.server.is_some() {
        return Err(BadArgument("give either SERVER or --spawn-server, not both".into()).into());
    }
    let bad = |text: String| -> anyhow::Result<()> { Err(BadArgument(text).into()) };
    if !args.server_arg.is_empty() && kind.is_none() {
        bad("--server-arg is for a server that bench starts: add --spawn-server".into())?;
    }
    if args.rooms > args.clients {
        bad(format!(
            "--rooms {} with --clients {}: every room needs a client",
            args.rooms, args.clients
        ))?;
    }
    if args.rooms > 1 && args.mode == Mode::Legacy {
        bad(
            "legacy senders all share one room (PROTOCOL.md, \"Legacy senders\"): --rooms \
             needs --mode framed or plain"
                .into(),
        )?;
    }
    // One socket per client, and some to spare for the poll, the server's pipes, stdio.
    process::raise_open_files(u64::from(args.clients) + 64)?;

    // The key: a fresh one for a spawned server, else the chat's.
    let mut ring = None;
    let mut key_text = None;
    if args.mode != Mode::Plain {
        if kind.is_some() {
            let key = crate::chat::fresh_key().map_err(anyhow::Error::msg)?;
            let mut text = Zeroizing::new([0u8; KEY_TEXT_LEN]);
            key_text = Some(Zeroizing::new(key.to_base64(&mut text).to_owned()));
            ring = Some(Ring::new(key));
        } else {
            let user = crate::chat::KeyUser::Client;
            let keys = crate::chat::chat_keys(args.keys.key_file.as_deref(), key_env, user)?;
            ring = Some(keys.ring);
        }
    }
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let (spawned, servers): (Vec<ServerChild>, Vec<SocketAddr>) = match kind {
        None => {
            let text = args.server.as_deref().unwrap_or("127.0.0.1:12345");
            let mut servers = Vec::new();
            for name in text.split(',') {
                servers.push(crate::chat::resolve_server(name.trim())?);
            }
            (Vec::new(), servers)
        }
        Some(kind) => {
            let mut spawned = Vec::new();
            let mut addrs = Vec::new();
            for _ in 0..args.servers {
                let mut cmd = match kind {
                    SpawnKind::Python => {
                        let mut cmd = Command::new("python3");
                        cmd.arg(&args.python_relay);
                        cmd
                    }
                    _ => Command::new(&exe),
                };
                match kind {
                    SpawnKind::Plain => cmd.args(["bench-relay", "--plain"]),
                    SpawnKind::Python => &mut cmd,
                    _ => cmd.arg("server"),
                };
                cmd.args(["--bind", "127.0.0.1:0", "--print-port"]);
                cmd.args(&args.server_arg);
                let (child, addr) =
                    ServerChild::start(cmd, key_text.as_deref().map(String::as_str), Log::Keep)?;
                spawned.push(child);
                addrs.push(addr);
            }
            (spawned, addrs)
        }
    };
    let server_name = match kind {
        None => servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Some(SpawnKind::Python) => "python relay".to_owned(),
        Some(SpawnKind::Plain) => "plain relay".to_owned(),
        Some(_) if args.servers > 1 => format!("{} host-chat servers", args.servers),
        Some(_) => "host-chat server".to_owned(),
    };

    let pids: Vec<u32> = spawned.iter().map(ServerChild::id).collect();
    let mut report = Bench::new(args, &servers, ring, pids)?.run()?;
    if let Some(error) = report.error.as_mut()
        && !error.contains("refused")
        && let Some(reason) = spawned.iter().find_map(server_refusal)
    {
        let _ = write!(error, "; the server refused joins: {reason}");
    }
    let server_stats = match kind {
        Some(SpawnKind::Host) if report.error.is_none() => servers_stats(&spawned),
        _ => None,
    };
    drop(spawned);
    let error = report.error.clone();
    report.print(args, &server_name, server_stats);
    match error {
        Some(error) => Err(NotDelivered(error).into()),
        None => Ok(()),
    }
}
