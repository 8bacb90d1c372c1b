//! `host-chat`: the host side of the encrypted UDP chat.
//!
//! The binary (`src/main.rs`) only calls [`main`]; everything else lives here so it can
//! be tested. Modules:
//!
//! - [`cli`]: the command line (clap), one [`cli::Command`] variant per subcommand;
//! - [`keys`]: where the keys come from and how they are parsed;
//! - [`commands`]: the token tools (`keygen`, `encrypt`, `decrypt`, `rotate`);
//! - [`chat`]: the chat (`server`, `client`, `demo`);
//! - [`net`]: the mio event loop that drives chat_core's state machines;
//! - [`mmsg`]: datagrams in batches (`recvmmsg`/`sendmmsg`);
//! - [`bench`]: the load generator (`bench`) and its plain baseline relay;
//! - [`ui`]: the terminal UI of `client --tui` and `demo --tui` (ratatui);
//! - [`error`]: failures and their exit status.

pub mod bench;
pub mod chat;
pub mod cli;
pub mod commands;
pub mod error;
pub mod keys;
pub mod mmsg;
pub mod net;
pub mod ui;

use crate::cli::{Cli, Command};
use crate::commands::Io;
use clap::Parser as _;
use std::process::ExitCode;

/// Runs one parsed command line.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> anyhow::Result<()> {
    match &cli.command {
        Command::Keygen => commands::keygen(io),
        Command::Encrypt => commands::encrypt(&load_keys(cli, io)?, io),
        Command::Decrypt(args) => {
            commands::decrypt(&load_keys(cli, io)?, args.ttl, args.verbose, io)
        }
        Command::Rotate(args) => commands::rotate(&load_keys(cli, io)?, args.verbose, io),
        Command::Server(args) => chat::server::run(cli, args, io.key_env.take()),
        Command::Client(args) => chat::client::run_cli(cli, args, io.key_env.take()),
        Command::Demo(args) => chat::demo::run(args),
        Command::Bench(args) => bench::run(cli, args, io.key_env.take()),
        Command::BenchRelay(args) => bench::run_relay(args),
    }
}

/// The keys for the token tools: `--key-file`, else `HOST_CHAT_KEY`; they have no
/// default key file.
fn load_keys(cli: &Cli, io: &mut Io<'_>) -> anyhow::Result<keys::Keys> {
    let source = keys::resolve(cli.key_file.as_deref(), io.key_env.take(), None)?;
    Ok(keys::load(&source)?)
}

/// The whole program: parses the arguments, runs the command on the real standard
/// streams, and on failure prints one line on stderr and returns the exit status of
/// [`error::exit_code`].
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unlocked handles: the chat reads and writes them from several threads.
    let (mut stdin, mut stdout, mut stderr) =
        (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
        key_env: std::env::var_os(keys::ENV_VAR),
        clock: &commands::system_clock,
    };
    match run(&cli, &mut io) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io.stderr, "host-chat: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}
