//! Device settings as `name=value` text: the QEMU image's semihosting command line
//! (words), and the config block a real board keeps in a flash sector of its own
//! (lines). One reader for both, so a board and the emulator take the same names.
//!
//! A config block is UTF-8 text that starts with the line [`MAGIC`], then one
//! `name=value` per line (blank lines and `#` comments skipped), and ends at the first
//! erased (`0xFF`) or zero byte, so it can be written into an erased sector as is:
//!
//! ```text
//! host-chat-device v1
//! key=cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=
//! server=192.168.1.10:12345
//! nick=pico1
//! ```
//!
//! Names: `key` (the Fernet key, base64url), `server` (`IPV4:PORT`), `port` (the
//! server's port, when its address is implied, as on QEMU), `nick`, `room`, `seed` (64
//! hex digits: entropy from the host, QEMU only), `secs` (give up after that many
//! seconds), `ssid` and `password` (Wi-Fi boards), `address` (a static `IPV4/PREFIX`
//! instead of DHCP) and `gateway`. Unknown names are ignored.

use core::net::{Ipv4Addr, SocketAddrV4};

/// The first line of a config block.
pub const MAGIC: &str = "host-chat-device v1";

/// Why a config block cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The sector is erased, or holds something else: the board was not provisioned.
    NotProvisioned,
    /// It starts with [`MAGIC`] but is not UTF-8 text.
    NotText,
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotProvisioned => {
                "no config block in flash: write one (see the board's README, 'Provisioning')"
            }
            Self::NotText => "the config block is not UTF-8 text",
        })
    }
}

/// The text of a config block read from flash: from [`MAGIC`] to the first `0xFF` or
/// zero byte.
pub fn block(flash: &[u8]) -> Result<&str, BlockError> {
    let end = flash
        .iter()
        .position(|&b| b == 0xFF || b == 0)
        .unwrap_or(flash.len());
    let bytes = flash.get(..end).unwrap_or_default();
    if !bytes.starts_with(MAGIC.as_bytes()) {
        return Err(BlockError::NotProvisioned);
    }
    core::str::from_utf8(bytes).map_err(|_| BlockError::NotText)
}

/// The `name=value` words of a command line (words without `=` are skipped).
pub fn words(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_ascii_whitespace()
        .filter_map(|word| word.split_once('='))
}

/// The `name=value` lines of a config block (values trimmed; blank lines, `#`
/// comments and lines without `=` skipped).
pub fn lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim(), value.trim()))
}

/// The settings a device reads; the last of repeated names wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings<'a> {
    /// `key`: the Fernet key, base64url (`chat_core::fernet::Key::from_base64`).
    pub key: Option<&'a str>,
    /// `server`: the chat server, `IPV4:PORT`.
    pub server: Option<SocketAddrV4>,
    /// `port`: the server's port, where its address is implied.
    pub port: Option<u16>,
    /// `nick`.
    pub nick: Option<&'a str>,
    /// `room`.
    pub room: Option<&'a str>,
    /// `seed`: 32 bytes of entropy from the host (64 hex digits).
    pub seed: Option<[u8; 32]>,
    /// `secs`: give up after that many seconds of device time.
    pub secs: Option<u64>,
    /// `ssid` and `password`: the Wi-Fi network.
    pub ssid: Option<&'a str>,
    pub password: Option<&'a str>,
    /// `address`: a static address (`IPV4/PREFIX`) instead of DHCP.
    pub address: Option<(Ipv4Addr, u8)>,
    /// `gateway`: the router, with a static address.
    pub gateway: Option<Ipv4Addr>,
    /// The first name whose value could not be read, to report.
    pub invalid: Option<&'a str>,
}

impl<'a> Settings<'a> {
    /// Reads `fields` ([`words`] or [`lines`]).
    pub fn from_fields(fields: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut settings = Self::default();
        for (name, value) in fields {
            let valid = match name {
                "key" => set(&mut settings.key, Some(value)),
                "server" => set(&mut settings.server, value.parse().ok()),
                "port" => set(&mut settings.port, value.parse().ok().filter(|&p| p != 0)),
                "nick" => set(&mut settings.nick, Some(value)),
                "room" => set(&mut settings.room, Some(value)),
                "seed" => set(&mut settings.seed, hex32(value)),
                "secs" => set(&mut settings.secs, value.parse().ok()),
                "ssid" => set(&mut settings.ssid, Some(value)),
                "password" => set(&mut settings.password, Some(value)),
                "address" => set(&mut settings.address, cidr(value)),
                "gateway" => set(&mut settings.gateway, value.parse().ok()),
                _ => true,
            };
            if !valid && settings.invalid.is_none() {
                settings.invalid = Some(name);
            }
        }
        settings
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    let valid = value.is_some();
    if valid {
        *slot = value;
    }
    valid
}

/// `a.b.c.d/prefix`.
fn cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (address, prefix) = text.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|&p| p <= 32)?;
    Some((address.parse().ok()?, prefix))
}

/// 64 hex digits as 32 bytes.
pub fn hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(*pair.first()?).to_digit(16)?;
        let low = char::from(*pair.get(1)?).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[allow(unused_extern_crates)]
    extern crate std;
    use super::*;

    #[test]
    fn reads_a_command_line_and_a_block_alike() {
        let seed = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let cmdline = std::format!("image.elf port=4000 key=abc= seed={seed} nick=board");
        let settings = Settings::from_fields(words(&cmdline));
        assert_eq!(settings.port, Some(4000));
        assert_eq!(settings.key, Some("abc="));
        assert_eq!(settings.nick, Some("board"));
        let seed = settings.seed.unwrap();
        assert_eq!((seed[0], seed[1], seed[31]), (0x00, 0x11, 0xFF));
        assert_eq!(settings.invalid, None);

        let mut flash = [0xFFu8; 256];
        let text = "host-chat-device v1\n# a comment\nssid = my home wifi \n\
                    server=192.168.1.10:12345\naddress=192.168.1.50/24\nport=x\n";
        flash[..text.len()].copy_from_slice(text.as_bytes());
        let block = block(&flash).unwrap();
        assert_eq!(block, text);
        let settings = Settings::from_fields(lines(block));
        assert_eq!(settings.ssid, Some("my home wifi"));
        assert_eq!(
            settings.server,
            Some(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 10), 12345))
        );
        assert_eq!(settings.address, Some((Ipv4Addr::new(192, 168, 1, 50), 24)));
        assert_eq!(settings.invalid, Some("port"));
    }

    #[test]
    fn an_erased_sector_is_not_provisioned() {
        assert_eq!(block(&[0xFF; 64]), Err(BlockError::NotProvisioned));
        assert_eq!(block(b"key=x\n"), Err(BlockError::NotProvisioned));
        assert_eq!(
            block(b"host-chat-device v1\n\xC3"),
            Err(BlockError::NotText)
        );
        assert_eq!(hex32("zz"), None);
        assert_eq!(hex32(&"g".repeat(64)), None);
    }
}
