//! The chat commands: `server`, `client` and `demo`, driving chat_core's `Relay` and
//! `Client` with the event loop of [`crate::net`].

pub mod child;
pub mod client;
pub mod demo;
pub mod server;
pub mod wrong_key;

use crate::cli::DEFAULT_PORT;
use crate::error::BadArgument;
use crate::keys::{self, Keys, Unprotected};
use chat_core::fernet::Key;
use rand::TryRng as _;
use rand::rngs::SysRng;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use zeroize::Zeroizing;

/// A fresh key from OS randomness.
pub fn fresh_key() -> Result<Key, String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SysRng
        .try_fill_bytes(&mut *bytes)
        .map_err(|e| format!("cannot get randomness from the OS: {e}"))?;
    Ok(Key::from_bytes(&bytes))
}

/// Who is asking for the chat's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUser {
    /// `host-chat server`: creates the default key file if it is missing (and says how
    /// to copy it); refuses a key file open to others unless `allow_unprotected`.
    Server {
        /// `--allow-unprotected-key-file`.
        allow_unprotected: bool,
    },
    /// A client (`client`, `bench`): reads the server's key, never makes one.
    Client,
}

/// The chat's keys: `--key-file`, else `HOST_CHAT_KEY`, else the default key file
/// (see [`keys::chat_source`]), which only the server creates. Warnings and the
/// creation notice go to stderr.
pub fn chat_keys(
    key_file: Option<&Path>,
    key_env: Option<OsString>,
    user: KeyUser,
) -> anyhow::Result<Keys> {
    let source = keys::chat_source(key_file, key_env)?;
    let loaded = match user {
        KeyUser::Server { allow_unprotected } => {
            let unprotected = if allow_unprotected {
                Unprotected::Warn
            } else {
                Unprotected::Refuse
            };
            keys::load_or_create(&source, unprotected, fresh_key)?
        }
        KeyUser::Client => keys::load(&source, Unprotected::Warn)?,
    };
    if let Some(warning) = &loaded.warning {
        crate::net::err(&format!("host-chat: {warning}"));
    }
    if let Some(path) = &loaded.created {
        crate::net::err(&format!(
            "host-chat: created a new key in {} (mode 600). Every machine in the chat needs \
             this same key; to copy it to another one (its folder is made if missing):\n  \
             {}\n(or set {} there to the key line of this file)",
            keys::tilde(path),
            keys::copy_command(path),
            keys::ENV_VAR
        ));
    }
    Ok(loaded.keys)
}

/// Parses `--bind`: `IP:PORT`, `[IPv6]:PORT`, `HOST:PORT` (e.g. `localhost:4000`, as the
/// client takes it), an IP or host alone (port 12345), or a bare port (all IPv4
/// interfaces).
pub fn parse_bind(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    resolve(text, "--bind", "an address to listen on").map_err(|why| {
        BadArgument(format!(
            "{why}; expected IP:PORT such as 0.0.0.0:12345 or [::]:12345, HOST:PORT such as \
             localhost:12345, or a port"
        ))
        .into()
    })
}

/// Resolves the client's SERVER argument: `IP:PORT`, `HOST:PORT`, an IP or host alone
/// (port 12345), or a port alone (on this machine, 127.0.0.1). Port 0 is refused: no
/// server listens there.
pub fn resolve_server(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = text.parse::<u16>()
        && port != 0
    {
        // A number alone is a port: the system's resolver would read `12345` as the
        // address 0.0.48.57.
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let addr = resolve(text, "server", "an address this machine can resolve").map_err(|why| {
        BadArgument(format!(
            "{why}; expected HOST:PORT or IP:PORT, e.g. 192.168.1.20:12345"
        ))
    })?;
    if addr.port() == 0 {
        return Err(BadArgument(format!(
            "server {text:?}: port 0 is not a port a server listens on (a server bound to \
             port 0 got another one: use the port it printed)"
        ))
        .into());
    }
    Ok(addr)
}

/// `IP:PORT`, `HOST:PORT`, or an IP or host alone (port 12345), resolved. IPv4 addresses
/// are preferred: a server on 0.0.0.0 is not on `::1`. The error names `what` (the
/// option) and says what the text is not (`expected`).
fn resolve(text: &str, what: &str, expected: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{what} {text:?}: not a port (1 to 65535) nor {expected}"
        ));
    }
    let with_port = match text.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => text.to_owned(),
        Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(format!(
                "{what} {text:?}: port {port} is out of range (1 to 65535)"
            ));
        }
        _ => format!("{text}:{DEFAULT_PORT}"),
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|err| {
            format!(
                "{what} {text:?}: not {expected} ({})",
                err.to_string()
                    .split(" (os error")
                    .next()
                    .unwrap_or_default()
            )
        })?
        .collect();
    let found = addrs.iter().find(|a| a.is_ipv4()).or_else(|| addrs.first());
    found
        .copied()
        .ok_or_else(|| format!("{what} {text:?}: the name has no address"))
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
        assert!(parse_bind("no such host!").is_err());
        // A host name, as the client takes it.
        assert_eq!(
            parse_bind("localhost:12346").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 12346))
        );
        assert_eq!(parse_bind("localhost").unwrap().port(), DEFAULT_PORT);
        assert_eq!(
            resolve_server("127.0.0.1").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 12345))
        );
        assert_eq!(resolve_server("localhost:77").unwrap().port(), 77);
        assert!(resolve_server("no such host!:1").is_err());
        let err = resolve_server("127.0.0.1:0").unwrap_err().to_string();
        assert!(
            err.contains("port 0 is not a port a server listens on"),
            "{err}"
        );
        // A port alone is a port on this machine, not the address 0.0.48.57.
        assert_eq!(
            resolve_server("12346").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 12346))
        );
        for (text, says) in [
            ("99999", "not a port (1 to 65535)"),
            ("localhost:99999", "port 99999 is out of range (1 to 65535)"),
            ("127.0.0.1:70000", "port 70000 is out of range"),
        ] {
            let err = resolve_server(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
