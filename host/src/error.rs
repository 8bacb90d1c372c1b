//! Failures and the exit status each one gives: [`chat_cli::exit`], shared with
//! `firmware-sim` (one table for every subcommand, in `--help` and the README).

pub use chat_cli::exit::*;
