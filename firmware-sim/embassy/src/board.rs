//! What every board does the same way, so each board's `main.rs` is only its hardware:
//! where its settings come from ([`settings`]: the flash config block, else a
//! development config compiled in), what they mean for the network ([`Device`]), and
//! the device's life ([`serve`]: a session, and after it ends a pause and the next).

use crate::{Buffers, now_ms, run};
use chat_core::fernet::Key;
use chat_core::session::{ClientConfig, JsonStr};
use core::fmt;
use embassy_net::{Config, IpAddress, IpEndpoint, Ipv4Cidr, Stack, StaticConfigV4};
use embassy_time::{Duration, Timer};
use firmware_sim::config::{self, BlockError, Settings};
use firmware_sim::{Behaviour, Lines, Node, Output};

pub use firmware_sim::node::{ErrorJson, error_json};
use rand_core::CryptoRng;

/// The environment variable a development build may carry its settings in (as
/// `name=value` words; read at compile time with `option_env!`). It puts the key in the
/// image: for a board on a developer's desk only. The release path is the flash block.
pub const DEV_CONFIG_VAR: &str = "HOST_CHAT_DEVICE_CONFIG";

/// How long the device waits before its next session when one ends.
pub const RETRY: Duration = Duration::from_secs(10);

/// What every board does: a reading of its uptime every minute, and a session ends
/// when a room member sends `/exit` (the next starts [`RETRY`] later).
pub const BEHAVIOUR: Behaviour<'static> = Behaviour {
    every: Some((60_000, "uptime {uptime} s (reading {N})")),
    leave_when_done: None,
    exit_line: Some("/exit"),
    run_for_ms: None,
};

/// Parks the board for good (after it said why: it needs provisioning or a fix).
pub async fn park() -> ! {
    loop {
        Timer::after(Duration::from_secs(3600)).await;
    }
}

/// Where the settings came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The flash config block (see [`firmware_sim::config`]).
    Flash,
    /// The development config compiled in ([`DEV_CONFIG_VAR`]).
    Development,
}

impl Source {
    /// `flash` or `development`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Flash => "flash",
            Self::Development => "development",
        }
    }
}

/// Why a board cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError<'a> {
    /// No config block in flash, and no development config compiled in.
    NotProvisioned,
    /// The config block is not text.
    Block(BlockError),
    /// A setting is missing (`key`, `server`, ...).
    Missing(&'static str),
    /// A setting's value cannot be read.
    Invalid(&'a str),
}

impl fmt::Display for SetupError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotProvisioned => write!(
                f,
                "no config block in flash and no {DEV_CONFIG_VAR} at build time: see the board's README, 'Provisioning'"
            ),
            Self::Block(error) => write!(f, "{error}"),
            Self::Missing(name) => write!(f, "the settings have no {name}="),
            Self::Invalid(name) => write!(f, "the setting {name}= is not valid"),
        }
    }
}

/// The settings: the flash config block `flash` if the board was provisioned, else the
/// development config `dev` (a build's `option_env!(DEV_CONFIG_VAR)`), else an error.
pub fn settings<'a>(
    flash: &'a [u8],
    dev: Option<&'a str>,
) -> Result<(Settings<'a>, Source), SetupError<'a>> {
    match config::block(flash) {
        Ok(text) => Ok((Settings::from_fields(config::lines(text)), Source::Flash)),
        Err(BlockError::NotProvisioned) => match dev {
            Some(text) => Ok((
                Settings::from_fields(config::words(text)),
                Source::Development,
            )),
            None => Err(SetupError::NotProvisioned),
        },
        Err(error) => Err(SetupError::Block(error)),
    }
}

/// What a board needs from its settings, checked.
#[derive(Clone, Debug)]
pub struct Device<'a> {
    /// The Fernet key.
    pub key: Key,
    /// The chat server.
    pub server: IpEndpoint,
    /// Nickname (default: the board's name) and room (default `lobby`).
    pub chat: ClientConfig<'a>,
    /// A static address, or DHCP.
    pub net: Config,
    /// Where the settings came from.
    pub source: Source,
}

impl<'a> Device<'a> {
    /// Checks `settings`: a valid `key` and `server` are needed; `nick` defaults to
    /// `board`, the board's name, `room` to `lobby` (1 to 32 bytes each).
    pub fn new(
        (settings, source): (Settings<'a>, Source),
        board: &'a str,
    ) -> Result<Self, SetupError<'a>> {
        if let Some(name) = settings.invalid {
            return Err(SetupError::Invalid(name));
        }
        let key = settings.key.ok_or(SetupError::Missing("key"))?;
        let key = Key::from_base64(key).map_err(|_| SetupError::Invalid("key"))?;
        let server = settings.server.ok_or(SetupError::Missing("server"))?;
        let nick = settings.nick.unwrap_or(board);
        let room = settings.room.unwrap_or("lobby");
        if !chat_core::wire::is_valid_name(nick) {
            return Err(SetupError::Invalid("nick"));
        }
        if !chat_core::wire::is_valid_name(room) {
            return Err(SetupError::Invalid("room"));
        }
        let net = match settings.address {
            Some((address, prefix)) => Config::ipv4_static(StaticConfigV4 {
                address: Ipv4Cidr::new(address, prefix),
                gateway: settings.gateway,
                dns_servers: Default::default(),
            }),
            None => Config::dhcpv4(Default::default()),
        };
        Ok(Self {
            key,
            server: IpEndpoint::new(IpAddress::Ipv4(*server.ip()), server.port()),
            chat: ClientConfig::new(nick, room),
            net,
            source,
        })
    }
}

/// The `boot` report: `{"event":"boot","board",...,"ip","server","nick","room","settings"}`.
pub fn boot_json<'d>(board: &'d str, device: &'d Device<'d>, stack: Stack<'d>) -> BootJson<'d> {
    BootJson {
        board,
        device,
        stack,
    }
}

/// See [`boot_json`].
#[derive(Clone, Copy)]
pub struct BootJson<'d> {
    board: &'d str,
    device: &'d Device<'d>,
    stack: Stack<'d>,
}

impl fmt::Debug for BootJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootJson")
            .field("board", &self.board)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for BootJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"{{"event":"boot","board":{},"ip":"#,
            JsonStr(self.board)
        )?;
        match self.stack.config_v4() {
            Some(config) => write!(f, r#""{}""#, config.address)?,
            None => f.write_str("null")?,
        }
        write!(
            f,
            r#","server":"{}","nick":{},"room":{},"settings":"{}"}}"#,
            self.device.server,
            JsonStr(self.device.chat.nick),
            JsonStr(self.device.chat.room),
            self.device.source.as_str()
        )
    }
}

/// The device's life: waits for the network, runs a session of `device` with the RNG
/// and lines `session()` gives (a fresh RNG each time: a CSPRNG reseeded, or the
/// hardware RNG), and when it ends (the server refused the join, the exit line came,
/// ...) waits [`RETRY`] and starts the next. `out` gets every report.
pub async fn serve<R: CryptoRng, L: Lines>(
    stack: Stack<'_>,
    device: &Device<'_>,
    behaviour: Behaviour<'_>,
    mut session: impl FnMut() -> (R, L),
    buffers: &mut Buffers,
    out: &mut impl Output,
) -> ! {
    loop {
        stack.wait_config_up().await;
        let (rng, lines) = session();
        let key = device.key.clone();
        // Cannot fail: `Device::new` checked the names.
        if let Ok(mut node) = Node::new(&device.chat, key, rng, now_ms(), behaviour, lines) {
            let _ = run(stack, &mut node, device.server, 0, buffers, out).await;
        }
        Timer::after(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_extern_crates)]
    extern crate std;
    use super::*;
    use std::format;
    use std::string::ToString;

    const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

    fn block(text: &str) -> [u8; 256] {
        let mut flash = [0xFF; 256];
        flash[..text.len()].copy_from_slice(text.as_bytes());
        flash
    }

    #[test]
    fn the_flash_block_wins_over_the_development_config() {
        let flash = block("host-chat-device v1\nkey=K\nnick=from-flash\n");
        let (read, source) = settings(&flash, Some("nick=from-dev")).unwrap();
        assert_eq!((read.nick, source), (Some("from-flash"), Source::Flash));

        let erased = [0xFF; 64];
        let (read, source) = settings(&erased, Some("nick=from-dev key=K")).unwrap();
        assert_eq!(
            (read.nick, read.key, source),
            (Some("from-dev"), Some("K"), Source::Development)
        );
        assert_eq!(settings(&erased, None), Err(SetupError::NotProvisioned));
    }

    #[test]
    fn a_device_needs_a_key_a_server_and_valid_names() {
        let erased = [0xFF; 8];
        let check = |dev: &str| {
            let checked = settings(&erased, Some(dev)).and_then(|s| Device::new(s, "board"));
            checked.map(|_| ()).map_err(|e| e.to_string())
        };
        let missing = |name: &'static str| Err(SetupError::Missing(name).to_string());
        let invalid = |name: &'static str| Err(SetupError::Invalid(name).to_string());
        assert_eq!(check("server=10.0.0.1:9"), missing("key"));
        assert_eq!(check(&format!("key={KEY}")), missing("server"));
        assert_eq!(check("key=nope server=10.0.0.1:9"), invalid("key"));
        let long_nick = format!("key={KEY} server=10.0.0.1:9 nick={}", "n".repeat(33));
        assert_eq!(check(&long_nick), invalid("nick"));
        assert_eq!(check("server=10.0.0.1:99999"), invalid("server"));

        let fine = format!("key={KEY} server=10.0.0.1:9 address=10.0.0.7/24");
        let device = Device::new(settings(&erased, Some(&fine)).unwrap(), "board").unwrap();
        assert_eq!(device.chat.nick, "board");
        assert_eq!(device.chat.room, "lobby");
        assert_eq!(device.server.to_string(), "10.0.0.1:9");
        let Config { ipv4, .. } = device.net;
        assert!(
            matches!(ipv4, embassy_net::ConfigV4::Static(ref c) if c.address.to_string() == "10.0.0.7/24"),
            "{ipv4:?}"
        );
    }

    #[test]
    fn errors_are_one_json_line_even_when_long() {
        let line = error_json(format_args!("no \"{}\"", "x".repeat(300))).to_string();
        let value: &str = line.as_str();
        assert!(
            value.starts_with(r#"{"event":"error","message":"no \"xxx"#),
            "{value}"
        );
        assert!(value.ends_with(r#"xxx"}"#), "{value}");
        assert!(!value.contains('\n'));
    }
}
