//! The device's key, read exactly as `host-chat`'s chat reads its keys, by the same code
//! ([`chat_cli::keys`]): `--key-file PATH`, else `HOST_CHAT_KEY`, else the default key file
//! `~/.config/host-chat/key` (which only `host-chat server` creates). A device holds one
//! key: the primary (the first) of the source.

use chat_cli::keys::{self, Unprotected};
pub use chat_cli::keys::{ENV_VAR, KeyError};
use chat_core::fernet::Key;
use std::path::Path;

/// The device's key from `key_file`, else [`ENV_VAR`], else the default key file, and a
/// warning to print if the key file is open to others. Errors never contain key
/// material.
pub fn load(key_file: Option<&Path>) -> Result<(Key, Option<String>), KeyError> {
    let source = keys::chat_source(key_file, std::env::var_os(ENV_VAR))?;
    let loaded = keys::load(&source, Unprotected::Warn)?;
    Ok((loaded.keys.ring.primary().clone(), loaded.warning))
}
