//! What the `host-chat` and `firmware-sim` command lines share, written once:
//!
//! - [`keys`]: where the keys come from (`--key-file`, `HOST_CHAT_KEY`, the default key
//!   file), how key text is read, who may create the default key file, and the check
//!   that key files are private;
//! - [`exit`]: the kinds of failure and the exit status of each (the table in the README
//!   and in `--help`);
//! - [`count`]: "1 member", "2 members": counted nouns for every message.
//!
//! A small std crate rather than `firmware-sim` depending on `host-chat`: the device
//! simulator needs these rules, not the desktop program's event loop, terminal UI and
//! their dependencies.

pub mod count;
pub mod exit;
pub mod keys;

pub use count::count;
