//! The chat commands: `server`, `client` and `demo`, driving chat_core's `Relay` and
//! `Client` with the event loop of [`crate::net`].

pub mod child;
pub mod client;
pub mod demo;
pub mod server;

use crate::cli::{Cli, DEFAULT_PORT};
use crate::error::BadArgument;
use crate::keys::{self, Keys};
use chat_core::fernet::Key;
use rand::TryRng as _;
use rand::rngs::SysRng;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use zeroize::Zeroizing;

/// A fresh key from OS randomness.
pub fn fresh_key() -> Result<Key, String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SysRng
        .try_fill_bytes(&mut *bytes)
        .map_err(|e| format!("cannot get randomness from the OS: {e}"))?;
    Ok(Key::from_bytes(&bytes))
}

/// The chat's keys: `--key-file`, else `HOST_CHAT_KEY`, else the default key file,
/// created (and announced on stderr) on first use.
pub fn chat_keys(cli: &Cli, key_env: Option<OsString>) -> anyhow::Result<Keys> {
    let default = keys::default_key_file(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    );
    let source = keys::resolve(cli.key_file.as_deref(), key_env, default.as_deref())?;
    let loaded = keys::load_or_create(&source, fresh_key)?;
    if let Some(path) = &loaded.created {
        let shown = tilde(path);
        crate::net::err(&format!(
            "host-chat: created a new key in {shown}; every machine in the chat needs it: \
             copy this file to the other machines (scp {shown} other-host:.config/host-chat/key) \
             or set {}=$(grep -v '^#' {shown}) there",
            keys::ENV_VAR
        ));
    }
    Ok(loaded.keys)
}

/// `path` with the home directory written `~`.
fn tilde(path: &std::path::Path) -> String {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

/// Parses `--bind`: `IP:PORT`, `[IPv6]:PORT`, or a bare port (all IPv4 interfaces).
pub fn parse_bind(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    Err(BadArgument(format!(
        "--bind {text:?}: not an address to listen on (expected IP:PORT such as \
         0.0.0.0:12345 or [::]:12345, or a port)"
    ))
    .into())
}

/// Resolves the client's SERVER argument: `IP:PORT`, `HOST:PORT`, or an IP or host alone
/// (port 12345). IPv4 addresses are preferred: a server on 0.0.0.0 is not on `::1`.
pub fn resolve_server(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let with_port = if text
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        text.to_owned()
    } else {
        format!("{text}:{DEFAULT_PORT}")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|err| {
            BadArgument(format!(
                "server {text:?}: not an address this machine can resolve ({}); expected \
                 HOST:PORT or IP:PORT, e.g. 192.168.1.20:12345",
                err.to_string()
                    .split(" (os error")
                    .next()
                    .unwrap_or_default()
            ))
        })?
        .collect();
    let found = addrs.iter().find(|a| a.is_ipv4()).or_else(|| addrs.first());
    found
        .copied()
        .ok_or_else(|| BadArgument(format!("server {text:?}: the name has no address")).into())
}

/// The nickname: `--nick`, else `$USER` if it is a valid name, else "guest".
pub fn default_nick(nick: Option<&str>) -> String {
    match nick {
        Some(nick) => nick.to_owned(),
        None => std::env::var("USER")
            .ok()
            .filter(|user| chat_core::wire::is_valid_name(user))
            .unwrap_or_else(|| "guest".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_bind("0.0.0.0:1").unwrap(),
            SocketAddr::from(([0, 0, 0, 0], 1))
        );
        assert_eq!(
            parse_bind("4000").unwrap(),
            SocketAddr::from(([0, 0, 0, 0], 4000))
        );
        assert!(parse_bind("[::]:5").unwrap().is_ipv6());
        assert!(parse_bind("nonsense").is_err());
        assert_eq!(
            resolve_server("127.0.0.1").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 12345))
        );
        assert_eq!(resolve_server("localhost:77").unwrap().port(), 77);
        assert!(resolve_server("no such host!:1").is_err());
    }
}
