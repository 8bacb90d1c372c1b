//! Where the keys come from, and how they are read: [`chat_cli::keys`], shared with
//! `firmware-sim` so that both read `--key-file`, `HOST_CHAT_KEY` and the default key
//! file exactly alike.

pub use chat_cli::keys::*;
